// Structural and latency diff of two traces. Spans match when they have the same path of
// (service, operation) from the root, with an occurrence index telling same-named siblings
// apart (the 2nd `redis: GET` under a parent matches the other trace's 2nd one). The result is
// the merged tree: every node is in both traces, only in A (removed) or only in B (added).
import type { SpanNode, TraceModel } from './trace';

export type DiffStatus = 'both' | 'added' | 'removed';

export interface DiffNode {
  id: number; // unique within the diff; path strings would grow quadratically on deep traces
  service: string;
  operation: string;
  occurrence: number; // 0 for the first sibling of this name, 1 for the next...
  a: SpanNode | null;
  b: SpanNode | null;
  status: DiffStatus;
  depth: number;
  parent: DiffNode | null;
  children: DiffNode[];
  spansA: number; // spans of A in this subtree, this node included
  spansB: number;
}

export interface TraceDiff {
  roots: DiffNode[];
  nodes: DiffNode[]; // depth-first, the merged tree's row order
  matched: number;
  added: number;
  removed: number;
}

type Named = { key: string; node: SpanNode; occurrence: number };

/** Sibling keys: `service\u001foperation`, numbered per name in start order. */
function named(siblings: SpanNode[]): Named[] {
  const seen = new Map<string, number>();
  return siblings.map((node) => {
    const name = `${node.service}\u001f${node.span.operationName}`;
    const occurrence = seen.get(name) ?? 0;
    seen.set(name, occurrence + 1);
    return { key: `${name}#${occurrence}`, node, occurrence };
  });
}

/** Pairs two sibling lists in B's order, slotting A-only spans where A had them; within a gap
 * between matches, removed spans come before added ones (as a text diff shows them). */
function pairSiblings(a: SpanNode[], b: SpanNode[]): Array<[Named | null, Named | null]> {
  const inA = named(a);
  const inB = named(b);
  const indexA = new Map(inA.map((n, i) => [n.key, i]));
  const keysB = new Set(inB.map((n) => n.key));
  const out: Array<[Named | null, Named | null]> = [];
  let added: Named[] = []; // B-only spans since the last match
  let nextA = 0; // A's siblings before this index are emitted or matched
  const flush = (untilA: number) => {
    for (; nextA < untilA; nextA++) if (!keysB.has(inA[nextA].key)) out.push([inA[nextA], null]);
    for (const nb of added) out.push([null, nb]);
    added = [];
  };
  for (const nb of inB) {
    const ia = indexA.get(nb.key);
    if (ia === undefined) {
      added.push(nb);
      continue;
    }
    flush(ia);
    out.push([inA[ia], nb]);
    nextA = Math.max(nextA, ia + 1);
  }
  flush(inA.length);
  return out;
}

export function diffTraces(a: TraceModel, b: TraceModel): TraceDiff {
  const roots: DiffNode[] = [];
  const nodes: DiffNode[] = [];
  let id = 0;
  // Iterative: a 40,000-deep chain must not overflow the stack.
  type Job = { parent: DiffNode | null; a: SpanNode[]; b: SpanNode[]; depth: number };
  const stack: Job[] = [{ parent: null, a: a.roots, b: b.roots, depth: 0 }];
  while (stack.length) {
    const job = stack.pop()!;
    const made: DiffNode[] = [];
    for (const [na, nb] of pairSiblings(job.a, job.b)) {
      const span = (na ?? nb)!.node;
      const node: DiffNode = {
        id: id++,
        service: span.service,
        operation: span.span.operationName,
        occurrence: (na ?? nb)!.occurrence,
        a: na?.node ?? null,
        b: nb?.node ?? null,
        status: na && nb ? 'both' : na ? 'removed' : 'added',
        depth: job.depth,
        parent: job.parent,
        children: [],
        spansA: 0,
        spansB: 0,
      };
      made.push(node);
    }
    if (job.parent) job.parent.children = made;
    else roots.push(...made);
    for (let i = made.length - 1; i >= 0; i--) {
      const node = made[i];
      stack.push({ parent: node, a: node.a?.children ?? [], b: node.b?.children ?? [], depth: job.depth + 1 });
    }
  }
  // Depth-first order, then subtree counts bottom-up (children come after their parent).
  const walk = [...roots].reverse();
  while (walk.length) {
    const node = walk.pop()!;
    nodes.push(node);
    for (let i = node.children.length - 1; i >= 0; i--) walk.push(node.children[i]);
  }
  let matched = 0;
  let added = 0;
  let removed = 0;
  for (let i = nodes.length - 1; i >= 0; i--) {
    const node = nodes[i];
    node.spansA += node.a ? 1 : 0;
    node.spansB += node.b ? 1 : 0;
    if (node.parent) {
      node.parent.spansA += node.spansA;
      node.parent.spansB += node.spansB;
    }
    if (node.status === 'both') matched += 1;
    else if (node.status === 'added') added += 1;
    else removed += 1;
  }
  return { roots, nodes, matched, added, removed };
}

export interface LatencyRow {
  node: DiffNode;
  durationA: number; // µs
  durationB: number;
  delta: number; // B - A: positive is slower
  percent: number | null; // null when A took no time
}

/** Duration changes of the spans in both traces, biggest regression first. */
export function latencyDiff(diff: TraceDiff): LatencyRow[] {
  const rows: LatencyRow[] = [];
  for (const node of diff.nodes) {
    if (!node.a || !node.b) continue;
    const durationA = node.a.span.duration;
    const durationB = node.b.span.duration;
    const delta = durationB - durationA;
    rows.push({ node, durationA, durationB, delta, percent: durationA > 0 ? (delta / durationA) * 100 : null });
  }
  return rows.sort((x, y) => y.delta - x.delta);
}

/** `service: operation` with the occurrence when there are same-named siblings. */
export function diffLabel(node: DiffNode): string {
  const base = `${node.service}: ${node.operation}`;
  return node.occurrence ? `${base} #${node.occurrence + 1}` : base;
}
