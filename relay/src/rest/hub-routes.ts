import type { IncomingMessage } from 'node:http'
import type { Caller } from '../auth.ts'
import type { HostedSpaces } from '../hosted-spaces.ts'
import type { Router } from './http.ts'

export interface HubRoutesContext {
  spaces: HostedSpaces
  caller: (req: IncomingMessage) => Caller
  defaultSpace: string
}

export function addHubRoutes(_router: Router, _context: HubRoutesContext): void {}
