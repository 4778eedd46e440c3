import { describe, expect, it } from 'vitest';
import { traceOf, type SpanSpec } from './spans.fixture';
import { selfTime, statistics } from './stats';

describe('selfTime', () => {
  it('subtracts the union of overlapping children once', () => {
    const model = traceOf([
      { id: 'r', service: 'a', op: 'root', start: 0, duration: 100 },
      { id: 'c1', parent: 'r', service: 'b', op: 'x', start: 10, duration: 30 }, // 10-40
      { id: 'c2', parent: 'r', service: 'b', op: 'x', start: 20, duration: 40 }, // 20-60, overlaps c1
      { id: 'c3', parent: 'r', service: 'b', op: 'y', start: 25, duration: 5 }, // inside c2
      { id: 'c4', parent: 'r', service: 'b', op: 'y', start: 70, duration: 10 }, // 70-80
    ]);
    // covered: 10-60 (50) + 70-80 (10) = 60
    expect(selfTime(model.byId.get('r')!)).toBe(40);
    expect(selfTime(model.byId.get('c3')!)).toBe(5);
  });

  it('clips children that run outside the span', () => {
    const model = traceOf([
      { id: 'r', service: 'a', op: 'root', start: 100, duration: 100 }, // 100-200
      { id: 'early', parent: 'r', service: 'b', op: 'x', start: 50, duration: 80 }, // 50-130 -> 100-130
      { id: 'late', parent: 'r', service: 'b', op: 'x', start: 180, duration: 100 }, // 180-280 -> 180-200
      { id: 'after', parent: 'r', service: 'b', op: 'x', start: 250, duration: 10 }, // wholly outside
    ]);
    expect(selfTime(model.byId.get('r')!)).toBe(100 - 30 - 20);
  });

  it('is zero when a child covers the whole span, and never negative', () => {
    const model = traceOf([
      { id: 'r', service: 'a', op: 'root', start: 0, duration: 10 },
      { id: 'big', parent: 'r', service: 'a', op: 'x', start: -5, duration: 30 },
      { id: 'big2', parent: 'r', service: 'a', op: 'x', start: 0, duration: 10 },
    ]);
    expect(selfTime(model.byId.get('r')!)).toBe(0);
  });
});

// The slow checkout trace of tests/e2e/ui_seed.py, in ms.
const checkout = traceOf([
  { id: 'root', service: 'frontend', op: 'GET /checkout', start: 0, duration: 250, error: true },
  { id: 'cart', parent: 'root', service: 'cart', op: 'GetCart', start: 5, duration: 35 },
  { id: 'redis', parent: 'cart', service: 'redis', op: 'HGET', start: 10, duration: 20 },
  { id: 'pay', parent: 'root', service: 'payment', op: 'Charge', start: 45, duration: 195, error: true },
  { id: 'fraud', parent: 'pay', service: 'payment', op: 'FraudCheck', start: 50, duration: 150 },
]);

describe('statistics', () => {
  it('groups by service with duration and self-time aggregates', () => {
    const rows = statistics(checkout, 'service');
    expect(rows.map((r) => r.service)).toEqual(['frontend', 'cart', 'redis', 'payment']);
    const payment = rows.find((r) => r.service === 'payment')!;
    expect(payment).toMatchObject({ count: 2, total: 345, min: 150, max: 195, avg: 172.5, errors: 1,
      selfTotal: 45 + 150, selfMin: 45, selfMax: 150, operation: null });
    const frontend = rows.find((r) => r.service === 'frontend')!;
    expect(frontend.selfTotal).toBe(250 - 35 - 195);
  });

  it('groups by service and operation', () => {
    const rows = statistics(checkout, 'operation');
    expect(rows).toHaveLength(5);
    const fraud = rows.find((r) => r.operation === 'FraudCheck')!;
    expect(fraud).toMatchObject({ service: 'payment', count: 1, selfTotal: 150, errors: 0 });
  });

  it('aggregates 40,000 spans quickly', () => {
    const specs: SpanSpec[] = [{ id: 's0', service: 'a', op: 'root', start: 0, duration: 1e6 }];
    for (let i = 1; i < 40000; i++) {
      specs.push({ id: `s${i}`, parent: `s${Math.floor(i / 4)}`, service: `svc${i % 5}`, op: `op${i % 50}`,
        start: i, duration: 100 });
    }
    const model = traceOf(specs);
    const began = performance.now();
    const rows = statistics(model, 'operation');
    expect(performance.now() - began).toBeLessThan(500);
    expect(rows.reduce((n, r) => n + r.count, 0)).toBe(40000);
  });
});
