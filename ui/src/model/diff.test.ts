import { describe, expect, it } from 'vitest';
import { diffLabel, diffTraces, latencyDiff } from './diff';
import { traceOf, type SpanSpec } from './spans.fixture';

// tests/e2e/ui_seed.py's checkout traces, in ms: the slow one is slower in payment and has an
// extra FraudCheck span under Charge.
function checkout(slow: boolean) {
  const specs: SpanSpec[] = [
    { id: 'root', service: 'frontend', op: 'GET /checkout', start: 0, duration: slow ? 250 : 120 },
    { id: 'cart', parent: 'root', service: 'cart', op: 'GetCart', start: 5, duration: 35 },
    { id: 'redis', parent: 'cart', service: 'redis', op: 'HGET', start: 10, duration: 20 },
    { id: 'pay', parent: 'root', service: 'payment', op: 'Charge', start: 45, duration: slow ? 195 : 65 },
  ];
  if (slow) specs.push({ id: 'fraud', parent: 'pay', service: 'payment', op: 'FraudCheck', start: 50, duration: 150 });
  return traceOf(specs, slow ? 'slow' : 'fast');
}

describe('diffTraces', () => {
  it('merges the trees and marks spans only in B as added', () => {
    const diff = diffTraces(checkout(false), checkout(true));
    expect(diff.nodes.map((n) => [diffLabel(n), n.status, n.depth])).toEqual([
      ['frontend: GET /checkout', 'both', 0],
      ['cart: GetCart', 'both', 1],
      ['redis: HGET', 'both', 2],
      ['payment: Charge', 'both', 1],
      ['payment: FraudCheck', 'added', 2],
    ]);
    expect([diff.matched, diff.added, diff.removed]).toEqual([4, 1, 0]);
    expect([diff.roots[0].spansA, diff.roots[0].spansB]).toEqual([4, 5]);
  });

  it('marks spans only in A as removed (the other direction)', () => {
    const diff = diffTraces(checkout(true), checkout(false));
    const fraud = diff.nodes.find((n) => n.operation === 'FraudCheck')!;
    expect(fraud.status).toBe('removed');
    expect(fraud.a?.id).toBe('fraud');
    expect(fraud.b).toBeNull();
  });

  it('matches same-named siblings by occurrence and keeps both orders', () => {
    const a = traceOf([
      { id: 'r', service: 's', op: 'root', start: 0, duration: 100 },
      { id: 'g1', parent: 'r', service: 'db', op: 'GET', start: 1, duration: 5 },
      { id: 'x', parent: 'r', service: 's', op: 'only-a', start: 2, duration: 5 },
      { id: 'g2', parent: 'r', service: 'db', op: 'GET', start: 3, duration: 5 },
    ]);
    const b = traceOf([
      { id: 'R', service: 's', op: 'root', start: 0, duration: 100 },
      { id: 'G1', parent: 'R', service: 'db', op: 'GET', start: 1, duration: 7 },
      { id: 'G2', parent: 'R', service: 'db', op: 'GET', start: 3, duration: 9 },
      { id: 'G3', parent: 'R', service: 'db', op: 'GET', start: 4, duration: 9 },
      { id: 'Y', parent: 'R', service: 's', op: 'only-b', start: 5, duration: 5 },
    ]);
    const diff = diffTraces(a, b);
    const rows = diff.roots[0].children.map((n) => [diffLabel(n), n.status, n.a?.id ?? null, n.b?.id ?? null]);
    expect(rows).toEqual([
      ['db: GET', 'both', 'g1', 'G1'],
      ['s: only-a', 'removed', 'x', null],
      ['db: GET #2', 'both', 'g2', 'G2'],
      ['db: GET #3', 'added', null, 'G3'],
      ['s: only-b', 'added', null, 'Y'],
    ]);
  });

  it('does not match across different parents', () => {
    const a = traceOf([
      { id: 'r', service: 's', op: 'root', start: 0, duration: 10 },
      { id: 'c', parent: 'r', service: 's', op: 'child', start: 1, duration: 1 },
    ]);
    const b = traceOf([
      { id: 'r', service: 's', op: 'other-root', start: 0, duration: 10 },
      { id: 'c', parent: 'r', service: 's', op: 'child', start: 1, duration: 1 },
    ]);
    const diff = diffTraces(a, b);
    expect(diff.nodes.map((n) => n.status)).toEqual(['removed', 'removed', 'added', 'added']);
  });

  it('handles a 40,000-deep chain', () => {
    const specs: SpanSpec[] = [{ id: 's0', service: 'a', op: 'op', start: 0, duration: 1e6 }];
    for (let i = 1; i < 40000; i++) specs.push({ id: `s${i}`, parent: `s${i - 1}`, service: 'a', op: 'op', start: i, duration: 1 });
    const diff = diffTraces(traceOf(specs), traceOf(specs.slice(0, 30000)));
    expect([diff.matched, diff.removed, diff.added]).toEqual([30000, 10000, 0]);
    expect(diff.roots[0].spansA).toBe(40000);
  });
});

describe('latencyDiff', () => {
  it('gives duration A, B, delta and percent, biggest regression first', () => {
    const rows = latencyDiff(diffTraces(checkout(false), checkout(true)));
    expect(rows.map((r) => [r.node.operation, r.durationA, r.durationB, r.delta, r.percent])).toEqual([
      ['GET /checkout', 120, 250, 130, (130 / 120) * 100],
      ['Charge', 65, 195, 130, 200],
      ['GetCart', 35, 35, 0, 0],
      ['HGET', 20, 20, 0, 0],
    ]);
  });
});
