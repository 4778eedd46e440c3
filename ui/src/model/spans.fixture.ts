// Compact trace builders for the model's unit tests (not used by the app).
import type { Span, Trace } from './jaeger';
import { buildTrace, type TraceModel } from './trace';

export interface SpanSpec {
  id: string;
  parent?: string;
  service: string;
  op: string;
  start: number; // µs
  duration: number; // µs
  error?: boolean;
}

/** A TraceModel from span specs; processes are made per service name. */
export function traceOf(specs: SpanSpec[], traceID = 't1'): TraceModel {
  const processes: Trace['processes'] = {};
  const spans: Span[] = specs.map((s) => {
    processes[s.service] = { serviceName: s.service, tags: [] };
    return {
      traceID,
      spanID: s.id,
      operationName: s.op,
      references: s.parent ? [{ refType: 'CHILD_OF', traceID, spanID: s.parent }] : [],
      startTime: s.start,
      duration: s.duration,
      tags: s.error ? [{ key: 'error', type: 'bool', value: true }] : [],
      logs: [],
      processID: s.service,
      warnings: null,
    };
  });
  return buildTrace({ traceID, spans, processes, warnings: null });
}
