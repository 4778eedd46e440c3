// The critical path: the chain of work that decides when the trace ends. Walk back from the
// root's end; at each span take the child that finished last before the cursor, descend into it,
// and once a span has no such child left, its remaining time is its own and the cursor moves to
// its start in the parent. The parts of a span no critical child covers are its segments.
//
// As in Jaeger's UI: only CHILD_OF children block their parent (FOLLOWS_FROM ones do not), and a
// child is clipped to its parent's time (clock skew must not stretch the path).
import type { SpanNode, TraceModel } from './trace';

/** A stretch of a span's own critical time, in µs from the trace's start. */
export interface CriticalSegment {
  start: number;
  end: number;
}

/** Critical segments by span id, each list in time order. Spans off the path are absent. */
export type CriticalPath = Map<string, CriticalSegment[]>;

interface Frame {
  node: SpanNode;
  start: number; // µs since the epoch, clipped to the parent frame
  end: number;
  up: Frame | null;
  children: Frame[] | null; // blocking children by end time, built on first visit
  next: number; // the last child not yet taken or passed over
}

export function criticalPath(model: TraceModel, root: SpanNode | null = model.root): CriticalPath {
  const path: CriticalPath = new Map();
  if (!root) return path;
  const add = (node: SpanNode, start: number, end: number) => {
    if (end <= start) return;
    const segment = { start: start - model.start, end: end - model.start };
    const list = path.get(node.id);
    if (list) list.push(segment);
    else path.set(node.id, [segment]);
  };

  const rootStart = root.span.startTime;
  let frame: Frame = { node: root, start: rootStart, end: rootStart + root.span.duration, up: null, children: null, next: -1 };
  let cursor = frame.end;
  // Each frame's `next` only moves down and each child is entered at most once, so the walk is
  // linear after the per-span sort, and iterative: a 40,000-deep chain must not overflow.
  for (;;) {
    const children = (frame.children ??= blockingChildren(frame)); // also sets `next`
    let child: Frame | null = null;
    while (frame.next >= 0) {
      const candidate = children[frame.next--];
      if (candidate.end <= cursor) {
        child = candidate;
        break;
      }
    }
    if (child) {
      add(frame.node, child.end, cursor);
      frame = child;
      cursor = child.end;
      continue;
    }
    add(frame.node, frame.start, cursor);
    if (!frame.up) break;
    cursor = frame.start;
    frame = frame.up;
  }
  for (const list of path.values()) list.reverse(); // found latest first
  return path;
}

const EMPTY: Frame[] = [];

/** CHILD_OF children clipped to the parent's time, by end time (ties: the longer one last). */
function blockingChildren(parent: Frame): Frame[] {
  if (!parent.node.children.length) return EMPTY;
  const out: Frame[] = [];
  for (const node of parent.node.children) {
    if (!isChildOf(node, parent.node)) continue;
    const start = Math.max(node.span.startTime, parent.start);
    const end = Math.min(node.span.startTime + node.span.duration, parent.end);
    if (end < start) continue; // entirely outside its parent
    out.push({ node, start, end, up: parent, children: null, next: -1 });
  }
  out.sort((a, b) => a.end - b.end || b.start - a.start);
  parent.next = out.length - 1;
  return out.length ? out : EMPTY;
}

function isChildOf(child: SpanNode, parent: SpanNode): boolean {
  return child.span.references.some(
    (r) => r.refType === 'CHILD_OF' && r.spanID === parent.id && r.traceID === child.span.traceID,
  );
}

/** Total critical time of one span, in µs. */
export function criticalTime(path: CriticalPath, id: string): number {
  let total = 0;
  for (const s of path.get(id) ?? []) total += s.end - s.start;
  return total;
}
