// The trace's calls as a graph: one node per service + operation (span counts, errors marked),
// edges with call counts. Huge traces with many distinct operations fall back to one node per
// service, since a layered layout of thousands of edges takes too long to be useful.
import { useMemo, useState } from 'react';
import { traceGraph, type GraphLevel, type GraphNode } from '../model/graph';
import type { TraceModel } from '../model/trace';
import GraphView from './GraphView';

const MAX_NODES = 120;
const MAX_EDGES = 400;

function details(node: GraphNode): string[] {
  const lines = node.operation === null ? [] : [node.operation];
  const spans = `${node.count} ${node.count === 1 ? 'span' : 'spans'}`;
  lines.push(node.errors ? `${spans}, ${node.errors} ${node.errors === 1 ? 'error' : 'errors'}` : spans);
  return lines;
}

export default function TraceGraph({ model }: { model: TraceModel }) {
  const [chosen, setChosen] = useState<GraphLevel>('operation');
  const detailed = useMemo(() => traceGraph(model, 'operation'), [model]);
  const tooBig = detailed.nodes.length > MAX_NODES || detailed.edges.length > MAX_EDGES;
  const level: GraphLevel = tooBig ? 'service' : chosen;
  const graph = useMemo(() => (level === 'operation' ? detailed : traceGraph(model, 'service')), [level, detailed, model]);

  return (
    <section className="view trace-graph">
      <div className="view-toolbar">
        <label>
          Nodes{' '}
          <select value={level} disabled={tooBig} onChange={(e) => setChosen(e.target.value as GraphLevel)} aria-label="Graph nodes">
            <option value="operation">Service + operation</option>
            <option value="service">Service</option>
          </select>
        </label>
        {tooBig && (
          <span className="muted">
            {detailed.nodes.length} operations and {detailed.edges.length} call pairs are too many to lay out: grouped by service.
          </span>
        )}
      </div>
      <GraphView graph={graph} label="Trace graph" details={details} />
    </section>
  );
}
