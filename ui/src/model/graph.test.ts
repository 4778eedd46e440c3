import { describe, expect, it } from 'vitest';
import { dependencyGraph, layoutGraph, traceGraph } from './graph';
import { traceOf } from './spans.fixture';

const model = traceOf([
  { id: 'root', service: 'frontend', op: 'GET /', start: 0, duration: 100 },
  { id: 'a1', parent: 'root', service: 'db', op: 'query', start: 5, duration: 10 },
  { id: 'a2', parent: 'root', service: 'db', op: 'query', start: 20, duration: 10, error: true },
  { id: 'b', parent: 'root', service: 'db', op: 'commit', start: 40, duration: 10 },
  { id: 'c', parent: 'b', service: 'db', op: 'query', start: 41, duration: 5 },
]);

describe('traceGraph', () => {
  it('merges spans by service and operation and counts calls on edges', () => {
    const graph = traceGraph(model, 'operation');
    expect(graph.nodes.map((n) => [n.service, n.operation, n.count, n.errors])).toEqual([
      ['frontend', 'GET /', 1, 0],
      ['db', 'query', 3, 1],
      ['db', 'commit', 1, 0],
    ]);
    const calls = graph.edges.map((e) => [e.from.replace('\u001f', ':'), e.to.replace('\u001f', ':'), e.count]);
    expect(calls).toEqual([
      ['frontend:GET /', 'db:query', 2],
      ['frontend:GET /', 'db:commit', 1],
      ['db:commit', 'db:query', 1],
    ]);
  });

  it('merges by service, keeping self-calls', () => {
    const graph = traceGraph(model, 'service');
    expect(graph.nodes.map((n) => [n.id, n.count, n.errors])).toEqual([['frontend', 1, 0], ['db', 4, 1]]);
    expect(graph.edges).toEqual([{ from: 'frontend', to: 'db', count: 3 }, { from: 'db', to: 'db', count: 1 }]);
  });
});

describe('dependencyGraph', () => {
  it('sums duplicate links and collects every service', () => {
    const graph = dependencyGraph([
      { parent: 'a', child: 'b', callCount: 2 },
      { parent: 'b', child: 'c', callCount: 1 },
      { parent: 'a', child: 'b', callCount: 3 },
    ]);
    expect(graph.nodes.map((n) => n.id)).toEqual(['a', 'b', 'c']);
    expect(graph.edges).toEqual([{ from: 'a', to: 'b', count: 5 }, { from: 'b', to: 'c', count: 1 }]);
  });
});

describe('layoutGraph', () => {
  it('places callers above callees with edge points and label positions, cycles included', () => {
    const graph = dependencyGraph([
      { parent: 'a', child: 'b', callCount: 1 },
      { parent: 'b', child: 'c', callCount: 1 },
      { parent: 'c', child: 'a', callCount: 1 },
      { parent: 'b', child: 'b', callCount: 4 },
    ]);
    const placed = layoutGraph(graph, { nodeSize: () => ({ width: 80, height: 30 }), labelSize: () => ({ width: 20, height: 14 }) });
    const y = Object.fromEntries(placed.nodes.map((n) => [n.id, n.y]));
    expect(y.a).toBeLessThan(y.b);
    expect(y.b).toBeLessThan(y.c);
    for (const edge of placed.edges) {
      expect(edge.points.length).toBeGreaterThan(1);
      expect(Number.isFinite(edge.label.x) && Number.isFinite(edge.label.y)).toBe(true);
    }
    for (const node of placed.nodes) {
      expect(node.x + node.width / 2).toBeLessThanOrEqual(placed.width);
      expect(node.y + node.height / 2).toBeLessThanOrEqual(placed.height);
    }
  });
});
