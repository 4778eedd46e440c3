// A dagre-laid-out graph in SVG, shared by the trace graph and the service graph: boxes in
// service colours (red border when they hold errors), arrows whose thickness grows with the
// call count, and the count on each arrow.
import { useId, useMemo } from 'react';
import { serviceColor } from '../model/colors';
import { layoutGraph, type Graph, type GraphNode, type PlacedEdge, type PlacedNode, type Point } from '../model/graph';

const LINE = 16;
const CHAR = 7; // px per character at the node font size: boxes are sized without measuring text
const LOOP = 36; // how far a self-call's loop reaches right of its node

export function nodeName(node: GraphNode): string {
  return node.operation === null ? node.service : `${node.service}: ${node.operation}`;
}

interface Props {
  graph: Graph;
  label: string;
  /** Lines under the bold service name. */
  details: (node: GraphNode) => string[];
  onNodeClick?: (node: GraphNode) => void;
}

export default function GraphView({ graph, label, details, onNodeClick }: Props) {
  const marker = `arrow-${useId().replace(/:/g, '')}`;
  const placed = useMemo(() => layoutGraph(graph, {
    nodeSize: (node) => {
      const lines = [node.service, ...details(node)];
      return { width: Math.max(90, Math.max(...lines.map((l) => l.length)) * CHAR + 28), height: lines.length * LINE + 14 };
    },
    // A self-call's "label" is its loop and count, which dagre then keeps clear of other nodes.
    labelSize: (edge) => ({ width: String(edge.count).length * CHAR + 8 + (edge.from === edge.to ? LOOP : 0), height: LINE }),
  }), [graph, details]);
  const names = useMemo(() => new Map(graph.nodes.map((n) => [n.id, nodeName(n)])), [graph]);
  const byId = useMemo(() => new Map(placed.nodes.map((n) => [n.id, n])), [placed]);
  const maxCount = Math.max(1, ...graph.edges.map((e) => e.count));

  return (
    <div className="graph-box">
      <svg width={placed.width} height={placed.height} role="group" aria-label={label} className="graph">
        <defs>
          {/* Fixed-size arrowheads: by default markers scale with the (call-count) stroke width. */}
          <marker id={marker} viewBox="0 0 10 10" refX="9" refY="5" markerWidth="9" markerHeight="9"
            markerUnits="userSpaceOnUse" orient="auto-start-reverse">
            <path d="M 0 0 L 10 5 L 0 10 z" className="graph-arrowhead" />
          </marker>
        </defs>
        {placed.edges.map((edge) => (
          <EdgeShape key={`${edge.from}\u001e${edge.to}`} edge={edge} marker={marker} maxCount={maxCount}
            self={edge.from === edge.to ? byId.get(edge.from) : undefined}
            name={`${names.get(edge.from)} -> ${names.get(edge.to)}`} />
        ))}
        {placed.nodes.map((node) => (
          <NodeShape key={node.id} node={node} details={details(node)} onClick={onNodeClick} />
        ))}
      </svg>
    </div>
  );
}

/** A smooth path through all of dagre's bend points (Catmull-Rom as cubic Béziers), so the
 * count dagre placed on a bend point sits on the line. */
function curve(points: Point[]): string {
  if (!points.length) return '';
  let d = `M${points[0].x},${points[0].y}`;
  for (let i = 0; i < points.length - 1; i++) {
    const [p0, p1, p2, p3] = [points[i - 1] ?? points[i], points[i], points[i + 1], points[i + 2] ?? points[i + 1]];
    const c1 = { x: p1.x + (p2.x - p0.x) / 6, y: p1.y + (p2.y - p0.y) / 6 };
    const c2 = { x: p2.x - (p3.x - p1.x) / 6, y: p2.y - (p3.y - p1.y) / 6 };
    d += ` C${c1.x},${c1.y} ${c2.x},${c2.y} ${p2.x},${p2.y}`;
  }
  return d;
}

/** A self-call: a loop off the node's right side (dagre's own self-edge points are a zigzag). */
function loop(node: PlacedNode): { d: string; label: Point } {
  const right = node.x + node.width / 2;
  const dy = node.height / 4;
  return {
    d: `M${right},${node.y - dy} C${right + LOOP},${node.y - dy * 3} ${right + LOOP},${node.y + dy * 3} ${right},${node.y + dy}`,
    label: { x: right + LOOP, y: node.y },
  };
}

interface EdgeProps {
  edge: PlacedEdge;
  marker: string;
  maxCount: number;
  name: string;
  self?: PlacedNode; // the node, for a self-call
}

function EdgeShape({ edge, marker, maxCount, name, self }: EdgeProps) {
  // Log scale: 1 call is 1px, the busiest link 5px, without one hot edge flattening the rest.
  const thickness = 1 + (4 * Math.log(edge.count + 1)) / Math.log(maxCount + 1);
  const text = String(edge.count);
  const w = text.length * CHAR + 6;
  const shape = self ? loop(self) : { d: curve(edge.points), label: edge.label };
  const labelX = self ? shape.label.x + w / 2 - 4 : shape.label.x;
  return (
    <g className="graph-edge" data-edge={name} data-calls={edge.count}>
      <title>{`${name}: ${edge.count} ${edge.count === 1 ? 'call' : 'calls'}`}</title>
      <path d={shape.d} strokeWidth={thickness} markerEnd={`url(#${marker})`} />
      <rect x={labelX - w / 2} y={shape.label.y - LINE / 2} width={w} height={LINE} rx={3} />
      <text x={labelX} y={shape.label.y + 4} textAnchor="middle" className="graph-edge-count">{text}</text>
    </g>
  );
}

interface NodeProps {
  node: PlacedNode;
  details: string[];
  onClick?: (node: GraphNode) => void;
}

function NodeShape({ node, details, onClick }: NodeProps) {
  const left = node.x - node.width / 2;
  const top = node.y - node.height / 2;
  const name = nodeName(node);
  const interactive = onClick
    ? { role: 'link', tabIndex: 0, onClick: () => onClick(node),
      onKeyDown: (e: React.KeyboardEvent) => { if (e.key === 'Enter') onClick(node); } }
    : { role: 'img' };
  return (
    <g className={`graph-node${node.errors ? ' has-error' : ''}${onClick ? ' clickable' : ''}`} aria-label={name}
      data-node={name} {...interactive}>
      <title>{node.errors ? `${name} (${node.errors} with errors)` : name}</title>
      <rect x={left} y={top} width={node.width} height={node.height} rx={4} className="graph-node-box" />
      <rect x={left} y={top} width={6} height={node.height} rx={2} fill={serviceColor(node.service)} />
      <text x={left + 14} y={top + 6 + LINE - 4} className="graph-node-service">{node.service}</text>
      {details.map((line, i) => (
        <text key={i} x={left + 14} y={top + 6 + LINE * (i + 2) - 4}
          className={line.includes('error') ? 'graph-node-error' : undefined}>{line}</text>
      ))}
    </g>
  );
}
