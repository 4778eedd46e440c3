import { describe, expect, it } from 'vitest';
import type { Span, Trace } from '../../model/jaeger';
import { buildTrace } from '../../model/trace';
import { queryTerms, spanSearcher } from './spanSearch';

const base = { traceID: 't', references: [], startTime: 0, duration: 1, tags: [], logs: [], warnings: null };
const spans: Span[] = [
  { ...base, spanID: 'aa01', operationName: 'GET /checkout', processID: 'front' },
  { ...base, spanID: 'bb02', operationName: 'HGET', processID: 'redis',
    tags: [{ key: 'db.system', type: 'string', value: 'redis' }, { key: 'retry', type: 'bool', value: false }] },
  { ...base, spanID: 'cc03', operationName: 'Charge', processID: 'pay',
    tags: [{ key: 'payment.amount', type: 'float64', value: 42.5 }],
    logs: [{ timestamp: 0, fields: [{ key: 'event', type: 'string', value: 'exception' }] }] },
];
const trace: Trace = {
  traceID: 't', spans, warnings: null,
  processes: { front: { serviceName: 'frontend', tags: [] }, redis: { serviceName: 'redis', tags: [] },
    pay: { serviceName: 'payment', tags: [{ key: 'host.name', type: 'string', value: 'redis-host' }] } },
};
const model = buildTrace(trace);
const search = spanSearcher(model.nodes);
const found = (q: string) => [...search(q)].map((r) => model.nodes[r].id);

describe('in-trace search', () => {
  it('splits the query into lowercase terms', () => {
    expect(queryTerms('  Foo  bar ')).toEqual(['foo', 'bar']);
  });

  it('matches operations, services and span ids, case-insensitively', () => {
    expect(found('checkout')).toEqual(['aa01']);
    expect(found('PAYMENT')).toEqual(['cc03']);
    expect(found('bb02')).toEqual(['bb02']);
  });

  it('matches tag keys, values and key=value, of any type', () => {
    expect(found('db.system')).toEqual(['bb02']);
    expect(found('db.system=redis')).toEqual(['bb02']);
    expect(found('retry=false')).toEqual(['bb02']);
    expect(found('42.5')).toEqual(['cc03']);
  });

  it('matches log fields but not process tags', () => {
    expect(found('exception')).toEqual(['cc03']);
    expect(found('redis')).toEqual(['bb02']); // the payment host is redis-host: a process tag
  });

  it('needs every term, and an empty query matches nothing', () => {
    expect(found('hget redis')).toEqual(['bb02']);
    expect(found('hget payment')).toEqual([]);
    expect(found('   ')).toEqual([]);
  });
});
