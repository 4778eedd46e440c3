// Traces opened from files (offline viewing): kept in memory for this page's life, and looked
// up before the server, so `/trace/:id` works for them too.
import type { Trace } from '../model/jaeger';

const loaded = new Map<string, Trace>();
let lastOpened: Trace[] = [];

export function addLoaded(traces: Trace[]): void {
  for (const t of traces) loaded.set(t.traceID, t);
  lastOpened = traces;
}

export function loadedTrace(id: string): Trace | undefined {
  return loaded.get(id.toLowerCase()) ?? loaded.get(id);
}

export function lastOpenedTraces(): Trace[] {
  return lastOpened;
}
