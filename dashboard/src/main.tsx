import { render } from 'preact'
import { openBrowserSpace } from '@chorus/web'

const App = () => <p>hello {typeof openBrowserSpace}</p>
render(<App />, document.getElementById('app') as HTMLElement)
