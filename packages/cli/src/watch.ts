/** `chorus watch`: the relay's event stream for you (`/spaces/<space>/ws/<id>`), one JSON line per event. */
import type { EventType } from '@chorus/sync'
import type { CommandContext } from './context.ts'
import { EXIT, UsageError } from './exit-codes.ts'

export const eventsUrl = (relay: string, space: string, id: string, token: string | undefined): string => {
  const url = new URL(relay)
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:'
  url.pathname = `${url.pathname.replace(/\/+$/, '')}/spaces/${encodeURIComponent(space)}/ws/${encodeURIComponent(id)}`
  if (token !== undefined) url.searchParams.set('token', token)
  return url.href
}

export function watchEvents(ctx: CommandContext, types: EventType[] | undefined): Promise<number> {
  const { conn, io } = ctx
  if (conn.id === undefined) throw new UsageError('who are you? give --id or set CHORUS_ID')
  const socket = new WebSocket(eventsUrl(conn.relay, conn.space, conn.id, conn.token))
  return new Promise<number>((resolve) => {
    let opened = false
    const stop = (): void => socket.close(1000)
    io.signal.addEventListener('abort', stop)
    socket.onmessage = (message: MessageEvent<unknown>) => {
      if (typeof message.data !== 'string') return
      let frame: { type?: string }
      try {
        frame = JSON.parse(message.data) as { type?: string }
      } catch {
        return
      }
      if (frame.type === 'hello') {
        io.err(`watching ${conn.space} as ${conn.id}`)
        return
      }
      if (types === undefined || types.includes(frame.type as EventType)) io.out(message.data)
    }
    socket.onopen = () => {
      opened = true
    }
    socket.onclose = (event: CloseEvent) => {
      io.signal.removeEventListener('abort', stop)
      if (io.signal.aborted) return resolve(EXIT.ok)
      if (!opened) {
        io.err(`cannot reach the relay's event stream at ${conn.relay}`)
        return resolve(EXIT.unreachable)
      }
      io.err(`the relay closed the stream: ${event.code} ${event.reason}`)
      resolve(event.code === 4404 ? EXIT.notFound : EXIT.failed)
    }
  })
}
