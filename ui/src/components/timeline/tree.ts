// The timeline's rows as flat arrays over the model's depth-first order, so collapsing a span is
// a linear scan (its subtree is one contiguous range) and never rebuilds the model.
import type { TraceModel } from '../../model/trace';

export interface TreeIndex {
  size: number;
  parent: Int32Array; // row of the parent, -1 for a root
  end: Int32Array; // one past the last row of the span's subtree
}

/** Rows are indexes into model.nodes (SpanNode.index). */
export function treeIndex(model: TraceModel): TreeIndex {
  const { nodes } = model;
  const size = nodes.length;
  const parent = new Int32Array(size);
  const end = new Int32Array(size);
  for (let i = 0; i < size; i++) {
    parent[i] = nodes[i].parent?.index ?? -1;
    end[i] = i + 1;
  }
  // Descendants follow their ancestor in depth-first order: widen each parent's range from the back.
  for (let i = size - 1; i >= 0; i--) {
    const p = parent[i];
    if (p >= 0 && end[i] > end[p]) end[p] = end[i];
  }
  return { size, parent, end };
}

export function hasChildren(tree: TreeIndex, row: number): boolean {
  return tree.end[row] > row + 1;
}

/** Rows shown when the spans in `collapsed` hide their subtrees; ascending row indexes. */
export function visibleRows(tree: TreeIndex, collapsed: ReadonlySet<number>): Int32Array {
  const out = new Int32Array(tree.size);
  let count = 0;
  for (let row = 0; row < tree.size; ) {
    out[count++] = row;
    row = collapsed.size && collapsed.has(row) ? tree.end[row] : row + 1;
  }
  return out.subarray(0, count);
}

/** Position of `row` in `visible` (sorted), or -1: a binary search. */
export function positionOf(visible: Int32Array, row: number): number {
  let lo = 0;
  let hi = visible.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    if (visible[mid] === row) return mid;
    if (visible[mid] < row) lo = mid + 1;
    else hi = mid - 1;
  }
  return -1;
}

/** Every span with children collapsed: only the roots remain. */
export function collapseAll(tree: TreeIndex): Set<number> {
  const out = new Set<number>();
  for (let row = 0; row < tree.size; row++) if (hasChildren(tree, row)) out.add(row);
  return out;
}

/** `collapsed` with every ancestor of `row` opened, so the row shows; the same set if none was closed. */
export function reveal(tree: TreeIndex, collapsed: ReadonlySet<number>, row: number): ReadonlySet<number> {
  let out: Set<number> | null = null;
  for (let p = tree.parent[row]; p >= 0; p = tree.parent[p]) {
    if (!collapsed.has(p)) continue;
    out ??= new Set(collapsed);
    out.delete(p);
  }
  return out ?? collapsed;
}

export function toggle(collapsed: ReadonlySet<number>, row: number): Set<number> {
  const out = new Set(collapsed);
  if (!out.delete(row)) out.add(row);
  return out;
}
