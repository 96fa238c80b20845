/**
 * The MCP server: one tool per operation, with the operation's zod schema as its input schema (the SDK refuses bad
 * arguments as tool errors). A failure is a tool error whose text names its code, never a crash of the server.
 */
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js'
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js'
import { isChorusError } from '@chorus/sync/vocabulary'
import type { Agent } from './agent.ts'
import { inputSchema, OPERATION_NAMES, OPERATIONS, type OperationName } from './operations.ts'

/** The tools: every operation but `join` (an MCP client joins on its first call, as its token or id says). */
export const MCP_TOOLS: readonly OperationName[] = OPERATION_NAMES.filter((n) => n !== 'join')

export interface McpServerOptions {
  /** Runs one tool call with the agent it acts through (the relay lends its hosted space for the call). */
  run: <T>(use: (agent: Agent) => Promise<T>) => Promise<T>
  version: string
}

const errorText = (e: unknown): string => {
  if (isChorusError(e)) return `${e.code}: ${e.message}`
  return e instanceof Error ? e.message : String(e)
}

export function createMcpServer(options: McpServerOptions): McpServer {
  const server = new McpServer(
    { name: 'chorus', version: options.version },
    { instructions: 'Chorus: work with people and other agents in a shared space. Read your inbox, wait_for work, claim tasks (renew the claim while you work), complete them, vote on proposals.' },
  )
  for (const name of MCP_TOOLS) {
    server.registerTool(name, { description: OPERATIONS[name].description, inputSchema: inputSchema(name) }, async (args, extra): Promise<CallToolResult> => {
      try {
        const result = await options.run((agent) => agent.call(name, args, { signal: extra.signal }))
        // The report is text for reading; everything else is a record, given as JSON.
        const text = name === 'report' ? (result as { text: string }).text : JSON.stringify(result, null, 2)
        return { content: [{ type: 'text', text }] }
      } catch (e) {
        return { isError: true, content: [{ type: 'text', text: errorText(e) }] }
      }
    })
  }
  return server
}
