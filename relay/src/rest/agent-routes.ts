/**
 * The agent API and the MCP endpoint, on the default space and under `/spaces/{space}/`:
 *
 * - `POST /agent/{operation}`: one operation of @chorus/agent (send_message, read_inbox, wait_for, claim_task, ...)
 *   with its input as the JSON body; the answer is its result. What `chorus` and `chorus mcp` use.
 * - `POST /mcp`: MCP over streamable HTTP (stateless: every request stands alone; answers are JSON), with one tool
 *   per operation. GET and DELETE are 405, which MCP clients take as "no server-initiated stream".
 *
 * Who acts: with tokens, the token's participant; on an open relay, the participant the request names in the
 * `Chorus-Participant` header or `?participant=`. Operations run on the relay's hosted replica of the space.
 */
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js'
import { inputSchema, isOperation, OPERATION_NAMES, type Agent } from '@chorus/agent'
import { SpaceAgent, type SpaceAgentOptions } from '@chorus/agent/space'
import { createMcpServer } from '@chorus/agent/mcp'
import { ChorusError, checkId } from '@chorus/sync'
import { checkActingAs, checkSpaceAccess, type Caller } from '../auth.ts'
import type { HostedSpaces } from '../hosted-spaces.ts'
import { RELAY_VERSION } from '../version.ts'
import type { RequestContext, Router } from './http.ts'
import { parseBody, spaceParam } from './params.ts'

export interface AgentRoutesContext {
  spaces: HostedSpaces
  caller: (req: RequestContext['req']) => Caller
  defaultSpace: string
}

const PARTICIPANT_HEADER = 'chorus-participant'

/** Who the request acts as, and with which kind when it joins. */
function actorOf(ctx: RequestContext, caller: Caller): SpaceAgentOptions {
  const header = ctx.req.headers[PARTICIPANT_HEADER]
  const named = (Array.isArray(header) ? header[0] : header) ?? ctx.url.searchParams.get('participant') ?? undefined
  if (!caller.open) {
    if (named !== undefined) checkActingAs(caller, named)
    return { participant: caller.identity.participant, kind: caller.identity.kind, fixedKind: true }
  }
  if (named === undefined) {
    throw new ChorusError('invalid_input', `name the participant who acts: the ${PARTICIPANT_HEADER} header or ?participant=<id>`)
  }
  return { participant: checkId(named, 'participant id') }
}

/** Runs `use` with an agent on the request's space, acting as its caller; the space is given back after. */
async function withAgent<T>(ctx: RequestContext, context: AgentRoutesContext, use: (agent: Agent) => Promise<T>): Promise<T> {
  const caller = context.caller(ctx.req)
  const name = spaceParam(ctx, context.defaultSpace)
  checkSpaceAccess(caller, name)
  const actor = actorOf(ctx, caller)
  const hosted = await context.spaces.use(name)
  try {
    return await use(new SpaceAgent(hosted.space, actor))
  } finally {
    hosted.release()
  }
}

/** Aborted when the client goes away, so a wait_for it no longer hears ends. */
const abortedOnClose = (ctx: RequestContext): AbortSignal => {
  const controller = new AbortController()
  ctx.res.once('close', () => controller.abort())
  return controller.signal
}

export function addAgentRoutes(router: Router, context: AgentRoutesContext): void {
  for (const prefix of ['', '/spaces/{space}']) {
    router.post(`${prefix}/agent/{operation}`, async (ctx) => {
      const operation = ctx.params.operation ?? ''
      if (!isOperation(operation)) {
        throw new ChorusError('not_found', `no agent operation "${operation}"; there are ${OPERATION_NAMES.join(', ')}`, { operation })
      }
      const input = parseBody(inputSchema(operation), await ctx.body())
      const signal = abortedOnClose(ctx)
      return withAgent(ctx, context, (agent) => agent.call(operation, input, { signal }))
    })

    router.post(`${prefix}/mcp`, async (ctx) => {
      // Refuse a bad space or caller before speaking MCP, with the relay's own JSON errors.
      const caller = context.caller(ctx.req)
      checkSpaceAccess(caller, spaceParam(ctx, context.defaultSpace))
      actorOf(ctx, caller)
      const body = await ctx.body()
      const server = createMcpServer({ version: RELAY_VERSION, run: (use) => withAgent(ctx, context, use) })
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
}
