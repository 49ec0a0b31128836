// A live question from an investigation on the hub (hub-events.ts `query`): the messages this gateway's
// tracking holds for some observables — the same searches as its relay module's (observableQueries) —
// as summaries. Version 0: the hub keeps a summary it already has from the stream (a higher version) and
// stores only what was not streamed yet, which the stream later replaces.
import { observableQueries } from './observables.ts';
import type { MessageSource } from './relay.ts';
import type { MessageSummary } from './summary.ts';

export function liveAnswer(
  source: MessageSource,
  observables: Array<{ type: string; value: string }>,
  limit: number,
): MessageSummary[] {
  const found = new Map<number, MessageSummary>();
  for (const o of observables)
    for (const q of observableQueries(o)) for (const s of source.find(q.query, limit)) found.set(s.mid, s);
  return [...found.values()]
    .map((s) => ({ ...s, version: 0 }))
    .sort((a, b) => Date.parse(b.receivedAt) - Date.parse(a.receivedAt));
}
