import { describe, expect, it } from 'vitest';
import { traceOf, type SpanSpec } from '../model/spans.fixture';
import { fitLabel, flameLayout } from './flame';

const model = traceOf([
  { id: 'root', service: 'frontend', op: 'GET /checkout', start: 0, duration: 250 },
  { id: 'cart', parent: 'root', service: 'cart', op: 'GetCart', start: 5, duration: 35 },
  { id: 'redis', parent: 'cart', service: 'redis', op: 'HGET', start: 10, duration: 20 },
  { id: 'pay', parent: 'root', service: 'payment', op: 'Charge', start: 45, duration: 195 },
  { id: 'tiny', parent: 'pay', service: 'payment', op: 'tiny', start: 50, duration: 0.1 },
]);

describe('flameLayout', () => {
  it('places spans by time and depth, skipping sub-pixel ones', () => {
    const layout = flameLayout(model, null, 1000);
    const byId = Object.fromEntries(layout.items.map((i) => [i.node.id, i]));
    expect(Object.keys(byId)).toEqual(['root', 'cart', 'pay', 'redis']);
    expect(byId.cart).toMatchObject({ x: 20, width: 140, row: 1 });
    expect(byId.redis.row).toBe(2);
    expect(layout.rows).toBe(3);
    expect(layout.inScope).toBe(5);
  });

  it('zooms into a subtree, clipping to it', () => {
    const layout = flameLayout(model, model.byId.get('cart')!, 350);
    expect(layout.items.map((i) => [i.node.id, i.x, i.width, i.row])).toEqual([['cart', 0, 350, 0], ['redis', 50, 200, 1]]);
    expect(layout.inScope).toBe(2);
  });

  it('makes a bounded number of items for 40,000 spans', () => {
    const specs: SpanSpec[] = [{ id: 's0', service: 'a', op: 'root', start: 0, duration: 40000 }];
    for (let i = 1; i < 40000; i++) specs.push({ id: `s${i}`, parent: `s${Math.floor((i - 1) / 3)}`, service: 'a', op: 'x', start: 0, duration: 40000 - i });
    const layout = flameLayout(traceOf(specs), null, 1200, 1, 4000);
    expect(layout.items).toHaveLength(4000);
  });
});

describe('fitLabel', () => {
  it('truncates to the width', () => {
    expect(fitLabel('GetCart', 200)).toBe('GetCart');
    expect(fitLabel('GET /checkout/really/long', 60)).toBe('GET /ch…');
    expect(fitLabel('GetCart', 20)).toBe('');
  });
});
