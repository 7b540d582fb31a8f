// kong.response.exit / kong.response.error end an event on Kong's side: in the access phase Kong
// stores the response and yields the plugin's coroutine (kong/pdk/response.lua, `coroutine.yield()`
// after setting ctx.delayed_response), so the bridge loop that would send the next plugin.Step
// never runs (kong/runloop/plugin_servers/rpc/mp_rpc.lua bridge_loop). kong-pdk's Server keeps
// each event's channel until a Step answers "ret": without this, every 503 of a fail-closed route
// would leave one behind for the life of the process. The event is dropped when its last answer
// to Kong is such a call.
import type { KongPdkServer } from './kong-pdk.js';

const NON_RETURN_METHODS = new Set(['kong.response.exit', 'kong.response.error']);

interface StepAnswer {
  Data?: unknown;
  EventId?: number;
}

function endsEvent(answer: unknown): answer is StepAnswer & { EventId: number } {
  const data = (answer as StepAnswer | undefined)?.Data;
  return typeof data === 'object' && data !== null && NON_RETURN_METHODS.has((data as { Method?: unknown }).Method as string) && typeof (answer as StepAnswer).EventId === 'number';
}

/** Wraps the server's HandleEvent and step (every Step* method goes through it). */
export function forgetEventsEndedByExit(ps: KongPdkServer): void {
  const server = ps as unknown as { events: Map<number, unknown>; HandleEvent(e: unknown): Promise<unknown>; step(d: unknown, isError: boolean): Promise<unknown> };
  const forget = (answer: unknown) => {
    if (endsEvent(answer)) server.events.delete(answer.EventId);
    return answer;
  };
  const handleEvent = server.HandleEvent.bind(server);
  const step = server.step.bind(server);
  server.HandleEvent = (e) => handleEvent(e).then(forget);
  server.step = (d, isError) => step(d, isError).then(forget);
}
