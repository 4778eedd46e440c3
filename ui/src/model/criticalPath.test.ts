import { describe, expect, it } from 'vitest';
import { criticalPath, criticalTime } from './criticalPath';
import type { Span, Trace } from './jaeger';
import { buildTrace } from './trace';

function span(id: string, parent: string | null, start: number, end: number, refType: 'CHILD_OF' | 'FOLLOWS_FROM' = 'CHILD_OF'): Span {
  return {
    traceID: 't',
    spanID: id,
    operationName: id,
    references: parent ? [{ refType, traceID: 't', spanID: parent }] : [],
    startTime: 1000 + start,
    duration: end - start,
    tags: [],
    logs: [],
    processID: 'p',
    warnings: null,
  };
}

function pathOf(...spans: Span[]) {
  const trace: Trace = { traceID: 't', spans, processes: { p: { serviceName: 's', tags: [] } }, warnings: null };
  const path = criticalPath(buildTrace(trace));
  return Object.fromEntries([...path].map(([id, segs]) => [id, segs.map((s) => [s.start, s.end])]));
}

describe('criticalPath', () => {
  it('follows the last-finishing child, then the ones before it (the checkout trace)', () => {
    // root 0-250: cart 5-40 (redis 10-30), charge 45-240 (fraud 50-200)
    const path = pathOf(
      span('root', null, 0, 250),
      span('cart', 'root', 5, 40),
      span('redis', 'cart', 10, 30),
      span('charge', 'root', 45, 240),
      span('fraud', 'charge', 50, 200),
    );
    expect(path).toEqual({
      root: [[0, 5], [40, 45], [240, 250]],
      cart: [[5, 10], [30, 40]],
      redis: [[10, 30]],
      charge: [[45, 50], [200, 240]],
      fraud: [[50, 200]],
    });
  });

  it('skips children that overlap a later critical child', () => {
    // a and b run in parallel; b ends last, a ends after b starts: only b is critical.
    const path = pathOf(span('root', null, 0, 100), span('a', 'root', 10, 60), span('b', 'root', 20, 90));
    expect(path).toEqual({ root: [[0, 20], [90, 100]], b: [[20, 90]] });
  });

  it('clips a child that overflows its parent and ignores FOLLOWS_FROM children', () => {
    const path = pathOf(
      span('root', null, 0, 100),
      span('late', 'root', 50, 150), // clock skew: ends after its parent
      span('async', 'root', 60, 99, 'FOLLOWS_FROM'),
    );
    expect(path).toEqual({ root: [[0, 50]], late: [[50, 100]] });
  });

  it('treats a child ending exactly at the cursor as critical, and zero-length ones once', () => {
    const path = pathOf(
      span('root', null, 0, 100),
      span('first', 'root', 0, 40),
      span('blip', 'root', 40, 40),
      span('second', 'root', 40, 100),
    );
    expect(path).toEqual({ first: [[0, 40]], second: [[40, 100]] });
  });

  it('covers the root exactly: segments add up to its duration', () => {
    const spans = [span('s0', null, 0, 10_000)];
    let seed = 3;
    const rand = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) % n);
    for (let i = 1; i < 2000; i++) {
      const parent = spans[rand(i)];
      const pStart = parent.startTime - 1000;
      const start = pStart + rand(Math.max(1, parent.duration));
      spans.push(span(`s${i}`, parent.spanID, start, start + rand(parent.duration + 1)));
    }
    const trace: Trace = { traceID: 't', spans, processes: {}, warnings: null };
    const model = buildTrace(trace);
    const path = criticalPath(model);
    let total = 0;
    for (const id of path.keys()) total += criticalTime(path, id);
    expect(total).toBe(10_000);
    // Segments never overlap across spans.
    const all = [...path.values()].flat().sort((a, b) => a.start - b.start);
    for (let i = 1; i < all.length; i++) expect(all[i].start).toBeGreaterThanOrEqual(all[i - 1].end);
  });

  it('walks a 40,000-span chain without recursion', () => {
    const spans = [span('s0', null, 0, 100_000)];
    for (let i = 1; i < 40_000; i++) spans.push(span(`s${i}`, `s${i - 1}`, i, 100_000 - i));
    const path = pathOf(...spans);
    expect(Object.keys(path)).toHaveLength(40_000);
    expect(path.s39999).toEqual([[39_999, 60_001]]);
  });

  it('is empty for an empty trace', () => {
    expect(pathOf()).toEqual({});
  });
});
