/**
 * @chorus/agent: the operations an agent performs in a space (send, read and ack its inbox, wait for work, claim,
 * renew and complete tasks, vote, shared state, resource locks), once, for every door: the relay's HTTP agent API,
 * its /mcp endpoint, `chorus mcp` over stdio and the `chorus` command. `SpaceAgent` (on a replica) is
 * `@chorus/agent/space` and the MCP server `@chorus/agent/mcp`: kept apart, so that a client of the relay loads
 * neither the replica nor the MCP SDK.
 */
export { OPERATIONS, OPERATION_NAMES, MAX_WAIT_MS, inputSchema, isOperation, type Input, type OperationName } from './operations.ts'
export type { Agent, Held, ParticipantView, Results, WaitResult } from './agent.ts'
export { RelayAgent, RelayUnreachableError, agentUrl, type RelayAgentOptions } from './relay-agent.ts'
