/** `chorus mcp`: the MCP tools over stdio, each call asked of the relay as CHORUS_ID. Nothing else goes to stdout. */
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js'
import { createMcpServer } from '@chorus/agent/mcp'
import { agentOf, type CommandContext } from './context.ts'
import { EXIT } from './exit-codes.ts'
import { CLI_VERSION } from './version.ts'

export async function serveMcp(ctx: CommandContext): Promise<number> {
  const agent = agentOf(ctx.conn)
  const server = createMcpServer({ version: CLI_VERSION, run: (use) => use(agent) })
  const transport = new StdioServerTransport()
  const closed = new Promise<void>((resolve) => {
    transport.onclose = resolve
    process.stdin.once('end', resolve)
    ctx.io.signal.addEventListener('abort', () => resolve())
  })
  await server.connect(transport)
  ctx.io.err(`chorus mcp: serving ${ctx.conn.space} on ${ctx.conn.relay} as ${agent.participant}`)
  await closed
  await server.close()
  return EXIT.ok
}
