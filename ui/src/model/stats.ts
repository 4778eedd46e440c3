// Per-span self time and per-service / per-operation statistics for one trace. Everything here
// is one pass over the spans (each child is visited once by its parent), so 40,000-span traces
// aggregate in a few milliseconds.
import type { SpanNode, TraceModel } from './trace';

/** A span's duration minus the union of its children's intervals, each clipped to the span.
 * Relies on `children` being sorted by start time (buildTrace does that): one sweep, no sort. */
export function selfTime(node: SpanNode): number {
  const start = node.span.startTime;
  const end = start + node.span.duration;
  let covered = 0;
  let reach = start; // the end of the union of the children seen so far
  for (const child of node.children) {
    const from = Math.max(child.span.startTime, reach);
    const to = Math.min(child.span.startTime + child.span.duration, end);
    if (to > from) {
      covered += to - from;
      reach = to;
    }
  }
  return node.span.duration - covered;
}

/** Self time of every span, computed once per trace for tables that sort by it. */
export function selfTimes(model: TraceModel): Map<SpanNode, number> {
  const out = new Map<SpanNode, number>();
  for (const node of model.nodes) out.set(node, selfTime(node));
  return out;
}

export type GroupBy = 'service' | 'operation';

export interface StatRow {
  key: string;
  service: string;
  operation: string | null; // null when grouped by service only
  count: number;
  total: number;
  avg: number;
  min: number;
  max: number;
  selfTotal: number;
  selfAvg: number;
  selfMin: number;
  selfMax: number;
  errors: number;
}

/** One row per service, or per service + operation, in order of first appearance. */
export function statistics(model: TraceModel, groupBy: GroupBy, selfs = selfTimes(model)): StatRow[] {
  const rows = new Map<string, StatRow>();
  for (const node of model.nodes) {
    const operation = groupBy === 'operation' ? node.span.operationName : null;
    // U+001F cannot appear in a sensible name, so service + operation keys never collide.
    const key = operation === null ? node.service : `${node.service}\u001f${operation}`;
    const duration = node.span.duration;
    const self = selfs.get(node) ?? selfTime(node);
    let row = rows.get(key);
    if (!row) {
      row = { key, service: node.service, operation, count: 0, total: 0, avg: 0, min: Infinity, max: -Infinity,
        selfTotal: 0, selfAvg: 0, selfMin: Infinity, selfMax: -Infinity, errors: 0 };
      rows.set(key, row);
    }
    row.count += 1;
    row.total += duration;
    row.min = Math.min(row.min, duration);
    row.max = Math.max(row.max, duration);
    row.selfTotal += self;
    row.selfMin = Math.min(row.selfMin, self);
    row.selfMax = Math.max(row.selfMax, self);
    if (node.error) row.errors += 1;
  }
  for (const row of rows.values()) {
    row.avg = row.total / row.count;
    row.selfAvg = row.selfTotal / row.count;
  }
  return [...rows.values()];
}
