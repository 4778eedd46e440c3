import { describe, expect, it } from 'vitest';
import type { Span, Trace } from './jaeger';
import { buildTrace, formatDuration } from './trace';

function span(id: string, parent: string | null, start: number, duration: number, extra: Partial<Span> = {}): Span {
  return {
    traceID: 't1',
    spanID: id,
    operationName: `op-${id}`,
    references: parent ? [{ refType: 'CHILD_OF', traceID: 't1', spanID: parent }] : [],
    startTime: start,
    duration,
    tags: [],
    logs: [],
    processID: id === 'a' ? 'p1' : 'p2',
    warnings: null,
    ...extra,
  };
}

const processes = { p1: { serviceName: 'front', tags: [] }, p2: { serviceName: 'back', tags: [] } };

describe('buildTrace', () => {
  it('links spans into a tree in start order with relative times', () => {
    const trace: Trace = {
      traceID: 't1',
      processes,
      warnings: null,
      spans: [
        span('c', 'a', 1300, 100),
        span('a', null, 1000, 1000),
        span('b', 'a', 1100, 100, { tags: [{ key: 'error', type: 'bool', value: true }] }),
        span('d', 'b', 1150, 10),
      ],
    };
    const model = buildTrace(trace);
    expect(model.nodes.map((n) => n.id)).toEqual(['a', 'b', 'd', 'c']);
    expect(model.nodes.map((n) => n.depth)).toEqual([0, 1, 2, 1]);
    expect(model.nodes.map((n) => n.index)).toEqual([0, 1, 2, 3]);
    expect(model.byId.get('d')!.offset).toBe(150);
    expect(model.depth).toBe(3);
    expect(model.errors).toBe(1);
    expect(model.name).toBe('front: op-a');
    expect(model.services.get('back')).toBe(3);
    expect(model.duration).toBe(1000);
  });

  it('shows spans whose parent is missing or cyclic at the top level', () => {
    const trace: Trace = {
      traceID: 't1',
      processes,
      warnings: null,
      spans: [span('x', 'y', 10, 5), span('y', 'x', 12, 5), span('z', 'gone', 1, 1)],
    };
    const model = buildTrace(trace);
    expect(model.nodes).toHaveLength(3);
    expect(model.roots.map((n) => n.id)).toContain('z');
  });

  it('walks a 40,000-span chain without recursion', () => {
    const spans = [span('s0', null, 0, 100000)];
    for (let i = 1; i < 40000; i++) spans.push(span(`s${i}`, `s${i - 1}`, i, 1));
    const model = buildTrace({ traceID: 't1', processes, warnings: null, spans });
    expect(model.depth).toBe(40000);
  });
});

describe('formatDuration', () => {
  it('picks a readable unit', () => {
    expect(formatDuration(850)).toBe('850µs');
    expect(formatDuration(12_345)).toBe('12.3ms');
    expect(formatDuration(4_560_000)).toBe('4.56s');
    expect(formatDuration(125_000_000)).toBe('2m 5s');
  });
});
