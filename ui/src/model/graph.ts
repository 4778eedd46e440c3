// Graphs the views draw: a trace's calls aggregated by service + operation (or by service), and
// the service dependency links; laid out with dagre into plain coordinates for SVG.
import { Graph as DagreGraph, layout } from '@dagrejs/dagre';
import type { DependencyLink } from './jaeger';
import type { TraceModel } from './trace';

export interface GraphNode {
  id: string;
  service: string;
  operation: string | null; // null for service-level nodes
  count: number; // spans (trace graph) or 0 when unknown (dependency links carry none)
  errors: number;
}

export interface GraphEdge {
  from: string;
  to: string;
  count: number; // calls
}

export interface Graph {
  nodes: GraphNode[];
  edges: GraphEdge[];
}

export type GraphLevel = 'operation' | 'service';

function nodeId(service: string, operation: string | null): string {
  return operation === null ? service : `${service}\u001f${operation}`;
}

/** The trace's spans merged into one node per service + operation (or per service); an edge
 * per parent -> child pair with the number of such calls. One pass over the spans. */
export function traceGraph(model: TraceModel, level: GraphLevel): Graph {
  const nodes = new Map<string, GraphNode>();
  const edges = new Map<string, GraphEdge>();
  const idOf = new Map<string, string>(); // span id -> node id
  for (const span of model.nodes) {
    const operation = level === 'operation' ? span.span.operationName : null;
    const id = nodeId(span.service, operation);
    idOf.set(span.id, id);
    let node = nodes.get(id);
    if (!node) nodes.set(id, (node = { id, service: span.service, operation, count: 0, errors: 0 }));
    node.count += 1;
    if (span.error) node.errors += 1;
  }
  // model.nodes is depth-first, so a parent's node id is always known before its children's.
  for (const span of model.nodes) {
    if (!span.parent) continue;
    const from = idOf.get(span.parent.id)!;
    const to = idOf.get(span.id)!;
    const key = `${from}\u001e${to}`;
    const edge = edges.get(key);
    if (edge) edge.count += 1;
    else edges.set(key, { from, to, count: 1 });
  }
  return { nodes: [...nodes.values()], edges: [...edges.values()] };
}

/** The service graph from `/api/dependencies` links (duplicates summed). */
export function dependencyGraph(links: DependencyLink[]): Graph {
  const nodes = new Map<string, GraphNode>();
  const edges = new Map<string, GraphEdge>();
  for (const link of links) {
    for (const service of [link.parent, link.child]) {
      if (!nodes.has(service)) nodes.set(service, { id: service, service, operation: null, count: 0, errors: 0 });
    }
    const key = `${link.parent}\u001e${link.child}`;
    const edge = edges.get(key);
    if (edge) edge.count += link.callCount;
    else edges.set(key, { from: link.parent, to: link.child, count: link.callCount });
  }
  return { nodes: [...nodes.values()], edges: [...edges.values()] };
}

export interface Point {
  x: number;
  y: number;
}

export interface PlacedNode extends GraphNode {
  x: number; // centre
  y: number;
  width: number;
  height: number;
}

export interface PlacedEdge extends GraphEdge {
  points: Point[];
  label: Point; // where the call count goes
}

export interface GraphLayout {
  width: number;
  height: number;
  nodes: PlacedNode[];
  edges: PlacedEdge[];
}

export interface LayoutOptions {
  nodeSize: (node: GraphNode) => { width: number; height: number };
  labelSize?: (edge: GraphEdge) => { width: number; height: number };
  rankdir?: 'TB' | 'LR';
}

/** dagre's layered layout (cycles and self-calls allowed), top to bottom by default. */
export function layoutGraph(graph: Graph, options: LayoutOptions): GraphLayout {
  const g = new DagreGraph();
  g.setGraph({ rankdir: options.rankdir ?? 'TB', nodesep: 30, ranksep: 50, edgesep: 12, marginx: 12, marginy: 12 });
  g.setDefaultEdgeLabel(() => ({}));
  for (const node of graph.nodes) g.setNode(node.id, { ...options.nodeSize(node) });
  for (const edge of graph.edges) {
    const size = options.labelSize?.(edge) ?? { width: 0, height: 0 };
    g.setEdge(edge.from, edge.to, { ...size, labelpos: 'c' });
  }
  layout(g);
  const nodes = graph.nodes.map((node) => {
    const placed = g.node(node.id) as { x: number; y: number; width: number; height: number };
    return { ...node, x: placed.x, y: placed.y, width: placed.width, height: placed.height };
  });
  const edges = graph.edges.map((edge) => {
    const placed = g.edge(edge.from, edge.to) as { points?: Point[]; x?: number; y?: number };
    const points = placed.points ?? [];
    const middle = points[Math.floor(points.length / 2)] ?? { x: 0, y: 0 };
    return { ...edge, points, label: { x: placed.x ?? middle.x, y: placed.y ?? middle.y } };
  });
  const box = g.graph() as { width?: number; height?: number };
  return { width: box.width ?? 0, height: box.height ?? 0, nodes, edges };
}
