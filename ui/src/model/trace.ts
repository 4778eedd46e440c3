// A trace as every view uses it: spans linked into a tree, times relative to the trace's start,
// and the per-trace facts the headers and result lists show. Built once per loaded trace.
import type { KeyValue, Process, Span, Trace } from './jaeger';

export interface SpanNode {
  span: Span;
  id: string;
  service: string;
  process: Process;
  parent: SpanNode | null;
  children: SpanNode[]; // by start time
  depth: number; // 0 for a root
  index: number; // position in TraceModel.nodes (the timeline's row order)
  offset: number; // µs from the trace's start
  error: boolean;
  kind: string; // span.kind tag: server, client, producer, consumer, or '' (internal)
}

export interface TraceModel {
  trace: Trace;
  traceID: string;
  nodes: SpanNode[]; // depth-first, children by start time: the timeline's row order
  byId: Map<string, SpanNode>;
  roots: SpanNode[];
  root: SpanNode | null; // the earliest root span
  start: number; // µs since the epoch
  duration: number; // µs, first start to last end
  depth: number; // levels in the tree
  services: Map<string, number>; // span count per service
  errors: number; // spans with an error
  name: string; // "service: operation" of the root span
}

export function tagValue(tags: KeyValue[], key: string): KeyValue['value'] | undefined {
  return tags.find((t) => t.key === key)?.value;
}

export function isError(span: Span): boolean {
  for (const tag of span.tags) {
    if (tag.key === 'error' && (tag.value === true || tag.value === 'true')) return true;
    if (tag.key === 'otel.status_code' && tag.value === 'ERROR') return true;
  }
  return false;
}

/** The parent id within this trace: the first CHILD_OF reference, else the first FOLLOWS_FROM. */
export function parentId(span: Span): string | null {
  let first: string | null = null; // a loop, not filter/find: this runs for every span of huge traces
  for (const ref of span.references) {
    if (ref.traceID !== span.traceID) continue;
    if (ref.refType === 'CHILD_OF') return ref.spanID;
    first ??= ref.spanID;
  }
  return first;
}

export function buildTrace(trace: Trace): TraceModel {
  // Few passes with plain loops: this runs once per trace, mostly before the JIT has warmed up,
  // and a 40,000-span trace must still open quickly.
  const byId = new Map<string, SpanNode>();
  const unknown: Process = { serviceName: 'unknown', tags: [] };
  const services = new Map<string, number>();
  let start = Infinity;
  let end = -Infinity;
  let errors = 0;
  for (const span of trace.spans) {
    if (byId.has(span.spanID)) continue; // a duplicate id: the first one wins
    const process = trace.processes[span.processID] ?? unknown;
    const { kind, error } = kindAndError(span.tags);
    byId.set(span.spanID, {
      span,
      id: span.spanID,
      service: process.serviceName,
      process,
      parent: null,
      children: [],
      depth: 0,
      index: 0,
      offset: 0,
      error,
      kind,
    });
    if (error) errors += 1;
    services.set(process.serviceName, (services.get(process.serviceName) ?? 0) + 1);
    if (span.startTime < start) start = span.startTime;
    if (span.startTime + span.duration > end) end = span.startTime + span.duration;
  }
  for (const node of byId.values()) {
    const pid = parentId(node.span);
    node.parent = (pid !== null && pid !== node.id && byId.get(pid)) || null;
  }
  breakCycles(byId);
  const roots: SpanNode[] = [];
  for (const node of byId.values()) {
    if (node.parent) node.parent.children.push(node);
    else roots.push(node); // no parent, or its parent never arrived: shown at the top level
  }
  const byStart = (a: SpanNode, b: SpanNode) => a.span.startTime - b.span.startTime || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
  roots.sort(byStart);
  for (const node of byId.values()) if (node.children.length > 1) node.children.sort(byStart);
  if (!byId.size) start = end = 0;
  const nodes: SpanNode[] = [];
  let depth = 0;
  // Iterative depth-first walk: a 40,000-span chain must not overflow the stack.
  const stack: SpanNode[] = [];
  for (let i = roots.length - 1; i >= 0; i--) stack.push(roots[i]);
  while (stack.length) {
    const node = stack.pop()!;
    node.depth = node.parent ? node.parent.depth + 1 : 0;
    node.offset = node.span.startTime - start;
    if (node.depth >= depth) depth = node.depth + 1;
    node.index = nodes.length;
    nodes.push(node);
    for (let i = node.children.length - 1; i >= 0; i--) stack.push(node.children[i]);
  }
  const root = roots[0] ?? null;
  return {
    trace,
    traceID: trace.traceID,
    nodes,
    byId,
    roots,
    root,
    start,
    duration: end - start,
    depth,
    services,
    errors,
    name: root ? `${root.service}: ${root.span.operationName}` : '(no spans)',
  };
}

/** The span.kind tag (the first one, if a string) and isError, in one pass over the tags. */
function kindAndError(tags: KeyValue[]): { kind: string; error: boolean } {
  let kind: string | null = null;
  let error = false;
  for (const tag of tags) {
    if (tag.key === 'span.kind') kind ??= typeof tag.value === 'string' ? tag.value : '';
    else if (tag.key === 'error') error ||= tag.value === true || tag.value === 'true';
    else if (tag.key === 'otel.status_code') error ||= tag.value === 'ERROR';
  }
  return { kind: kind ?? '', error };
}

/** Parent links that close a loop (a corrupt or hostile trace) are cut, so the span becomes a
 * root. Each span is walked once: linear even for a 40,000-span chain. `index` (set later by the
 * depth-first walk) serves as the walk's mark: 1 on the current walk, 2 known to reach a root. */
function breakCycles(byId: Map<string, SpanNode>): void {
  const path: SpanNode[] = [];
  for (const start of byId.values()) {
    let at: SpanNode | null = start;
    while (at && at.index === 0) {
      at.index = 1;
      path.push(at);
      at = at.parent;
    }
    if (at && at.index === 1) at.parent = null; // the walk came back to itself
    for (const node of path) node.index = 2;
    path.length = 0;
  }
}

/** µs as people read durations: 850µs, 12.3ms, 4.56s, 2m 5s. */
export function formatDuration(us: number): string {
  if (us < 1000) return `${Math.round(us)}µs`;
  if (us < 1_000_000) return `${trim(us / 1000)}ms`;
  if (us < 60_000_000) return `${trim(us / 1_000_000)}s`;
  const minutes = Math.floor(us / 60_000_000);
  return `${minutes}m ${Math.round((us - minutes * 60_000_000) / 1_000_000)}s`;
}

function trim(value: number): string {
  return value >= 100 ? value.toFixed(0) : value >= 10 ? value.toFixed(1) : value.toFixed(2);
}
