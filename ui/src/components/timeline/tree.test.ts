import { describe, expect, it } from 'vitest';
import type { Span, Trace } from '../../model/jaeger';
import { buildTrace } from '../../model/trace';
import { collapseAll, hasChildren, positionOf, reveal, toggle, treeIndex, visibleRows } from './tree';

function span(id: string, parent: string | null, start: number): Span {
  return {
    traceID: 't', spanID: id, operationName: id, startTime: start, duration: 100 - start,
    references: parent ? [{ refType: 'CHILD_OF', traceID: 't', spanID: parent }] : [],
    tags: [], logs: [], processID: 'p', warnings: null,
  };
}

// a ─┬─ b ─┬─ c
//    │     └─ d
//    └─ e ─── f        g (a second root)
const trace: Trace = {
  traceID: 't', warnings: null, processes: { p: { serviceName: 's', tags: [] } },
  spans: [span('a', null, 0), span('b', 'a', 1), span('c', 'b', 2), span('d', 'b', 3),
    span('e', 'a', 4), span('f', 'e', 5), span('g', null, 6)],
};
const model = buildTrace(trace);
const tree = treeIndex(model);
const ids = (rows: Int32Array) => [...rows].map((r) => model.nodes[r].id).join('');
const row = (id: string) => model.byId.get(id)!.index;

describe('treeIndex', () => {
  it('knows each subtree as a contiguous range', () => {
    expect(ids(Int32Array.from(model.nodes.keys()))).toBe('abcdefg');
    expect([...tree.end]).toEqual([6, 4, 3, 4, 6, 6, 7]);
    expect([...tree.parent]).toEqual([-1, 0, 1, 1, 0, 4, -1]);
    expect(hasChildren(tree, row('b'))).toBe(true);
    expect(hasChildren(tree, row('d'))).toBe(false);
  });
});

describe('visibleRows', () => {
  it('shows everything when nothing is collapsed', () => {
    expect(ids(visibleRows(tree, new Set()))).toBe('abcdefg');
  });

  it('hides the subtrees of collapsed spans, nested ones too', () => {
    expect(ids(visibleRows(tree, new Set([row('b')])))).toBe('abefg');
    expect(ids(visibleRows(tree, new Set([row('b'), row('e')])))).toBe('abeg');
    expect(ids(visibleRows(tree, new Set([row('a'), row('b')])))).toBe('ag');
    expect(ids(visibleRows(tree, collapseAll(tree)))).toBe('ag');
  });

  it('finds a row in the visible list by binary search', () => {
    const visible = visibleRows(tree, new Set([row('b')]));
    expect(positionOf(visible, row('e'))).toBe(2);
    expect(positionOf(visible, row('c'))).toBe(-1);
  });
});

describe('reveal and toggle', () => {
  it('opens the collapsed ancestors of a row and nothing else', () => {
    const collapsed = new Set([row('a'), row('b'), row('e')]);
    const opened = reveal(tree, collapsed, row('d'));
    expect([...opened].sort()).toEqual([row('e')]);
    expect(ids(visibleRows(tree, opened))).toBe('abcdeg');
    expect(reveal(tree, opened, row('c'))).toBe(opened); // already visible: the same set
  });

  it('toggles one span', () => {
    const once = toggle(new Set(), row('b'));
    expect([...once]).toEqual([row('b')]);
    expect(toggle(once, row('b')).size).toBe(0);
  });

  it('is linear on a 40,000-span chain', () => {
    const spans = [span('s0', null, 0)];
    for (let i = 1; i < 40_000; i++) spans.push({ ...span(`s${i}`, `s${i - 1}`, 0) });
    const big = treeIndex(buildTrace({ ...trace, spans }));
    expect(big.end[0]).toBe(40_000);
    expect(visibleRows(big, new Set([1])).length).toBe(2);
    expect(visibleRows(big, new Set()).length).toBe(40_000);
  });
});
