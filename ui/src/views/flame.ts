// Icicle layout for the flame graph: a row per tree depth, x from time, width from duration.
// Bounded for huge traces: spans narrower than a pixel are skipped with their subtrees, and at
// most `maxItems` rectangles are made, widest levels first (breadth-first).
import type { SpanNode, TraceModel } from '../model/trace';

export interface FlameItem {
  node: SpanNode;
  x: number; // px
  width: number; // px
  row: number; // 0 for the focus (or the roots)
}

export interface FlameLayout {
  items: FlameItem[];
  rows: number;
  inScope: number; // spans under the focus (all spans without one)
}

export function flameLayout(model: TraceModel, focus: SpanNode | null, width: number,
  minWidth = 1, maxItems = 4000): FlameLayout {
  const from = focus ? focus.span.startTime : model.start;
  const span = focus ? focus.span.duration : model.duration;
  const scale = width / Math.max(span, 1);
  const to = from + span;
  const baseDepth = focus ? focus.depth : 0;
  const items: FlameItem[] = [];
  let rows = 0;
  const queue: SpanNode[] = focus ? [focus] : [...model.roots];
  for (let head = 0; head < queue.length && items.length < maxItems; head++) {
    const node = queue[head];
    const x0 = Math.max(node.span.startTime, from);
    const x1 = Math.min(node.span.startTime + node.span.duration, to);
    const w = (x1 - x0) * scale;
    if (w < minWidth) continue; // children of a sub-pixel span are (almost always) sub-pixel too
    const row = node.depth - baseDepth;
    items.push({ node, x: (x0 - from) * scale, width: w, row });
    rows = Math.max(rows, row + 1);
    for (const child of node.children) queue.push(child);
  }
  return { items, rows, inScope: focus ? subtreeSize(focus) : model.nodes.length };
}

function subtreeSize(node: SpanNode): number {
  let count = 0;
  const stack = [node];
  while (stack.length) {
    const at = stack.pop()!;
    count += 1;
    for (const child of at.children) stack.push(child);
  }
  return count;
}

/** The label that fits `width` px at ~6.5 px per character, or '' when nothing useful fits. */
export function fitLabel(text: string, width: number): string {
  const chars = Math.floor((width - 8) / 6.5);
  if (chars < 3) return '';
  return text.length <= chars ? text : `${text.slice(0, chars - 1)}…`;
}
