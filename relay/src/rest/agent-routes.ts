/**
 * The agent API and the MCP endpoint, on the default space and under `/spaces/{space}/`:
 *
 * - `POST /agent/{operation}`: one operation of @chorus/agent (send_message, read_inbox, wait_for, claim_task, ...)
 *   with its input as the JSON body; the answer is its result. What `chorus` and `chorus mcp` use.
 * - `POST /mcp`: MCP over streamable HTTP (stateless: every request stands alone; answers are JSON), with one tool
 *   per operation. GET and DELETE are 405, which MCP clients take as "no server-initiated stream".
 *
 * Who acts (access.ts): with tokens, the token's participant; on an open relay, the participant the request names
 * in the `Chorus-Participant` header or `?participant=`. Operations run on the relay's hosted replica of the space.
 */
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js'
import { inputSchema, isOperation, OPERATION_NAMES } from '@chorus/agent'
import { SpaceAgent } from '@chorus/agent/space'
import { createMcpServer } from '@chorus/agent/mcp'
import { ChorusError } from '@chorus/sync'
import { agentActor, type AgentActor, type Caller } from '../access.ts'
import type { HostedSpaces } from '../hosted-spaces.ts'
import { RELAY_VERSION } from '../version.ts'
import type { RequestContext } from './http.ts'
import { parseBody } from './params.ts'
import type { SpaceRoutes } from './space-routes.ts'

const PARTICIPANT_HEADER = 'chorus-participant'

/** Who the request acts as (access.ts), from the participant it names in the header or the query. */
function actorOf(ctx: RequestContext, caller: Caller): AgentActor {
  const header = ctx.req.headers[PARTICIPANT_HEADER]
  const named = (Array.isArray(header) ? header[0] : header) ?? ctx.url.searchParams.get('participant') ?? undefined
  const actor = agentActor(caller, named)
  if (actor === undefined) throw new ChorusError('invalid_input', `name the participant who acts: the ${PARTICIPANT_HEADER} header or ?participant=<id>`)
  return actor
}

/** Aborted when the client goes away, so a wait_for it no longer hears ends. */
const abortedOnClose = (ctx: RequestContext): AbortSignal => {
  const controller = new AbortController()
  ctx.res.once('close', () => controller.abort())
  return controller.signal
}

export function addAgentRoutes(routes: SpaceRoutes, spaces: HostedSpaces): void {
  routes.post('/agent/{operation}', async ({ caller, space, ctx }) => {
    const operation = ctx.params.operation ?? ''
    if (!isOperation(operation)) {
      throw new ChorusError('not_found', `no agent operation "${operation}"; there are ${OPERATION_NAMES.join(', ')}`, { operation })
    }
    const input = parseBody(inputSchema(operation), await ctx.body())
    const actor = actorOf(ctx, caller)
    const signal = abortedOnClose(ctx)
    return spaces.using(space, (hosted) => new SpaceAgent(hosted, actor).call(operation, input, { signal }))
  })

  routes.post('/mcp', async ({ caller, space, ctx }) => {
    // Refuse a bad caller before speaking MCP, with the relay's own JSON errors.
    const actor = actorOf(ctx, caller)
    const body = await ctx.body()
    const server = createMcpServer({ version: RELAY_VERSION, run: (use) => spaces.using(space, (hosted) => use(new SpaceAgent(hosted, actor))) })
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true })
    ctx.res.once('close', () => {
      void transport.close()
      void server.close()
    })
    await server.connect(transport)
    await transport.handleRequest(ctx.req, ctx.res, body)
    // The transport has answered; the router writes nothing more.
    return undefined
  })
}
