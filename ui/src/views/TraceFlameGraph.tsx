// Icicle flame graph: the root on top, each level below it, x = time, width = duration.
// Hover names a span; a click zooms into its subtree (the breadcrumb zooms back out).
import { useMemo, useRef, useState, type MouseEvent } from 'react';
import { serviceColor } from '../model/colors';
import { selfTime } from '../model/stats';
import { formatDuration, type SpanNode, type TraceModel } from '../model/trace';
import { fitLabel, flameLayout, type FlameItem } from './flame';
import { useWidth } from './useWidth';

const ROW = 20;

interface Hover {
  node: SpanNode;
  x: number; // px within the graph box
  y: number;
}

export default function TraceFlameGraph({ model }: { model: TraceModel }) {
  const [box, width] = useWidth<HTMLDivElement>();
  // The zoom belongs to one trace: another model (same component, new trace) starts unzoomed.
  const [zoom, setZoom] = useState<{ model: TraceModel; node: SpanNode | null }>({ model, node: null });
  const focus = zoom.model === model ? zoom.node : null;
  const setFocus = (node: SpanNode | null) => setZoom({ model, node });
  const [hover, setHover] = useState<Hover | null>(null);
  const wrap = useRef<HTMLDivElement>(null); // the tooltip's frame: outside the scroller so it is not clipped
  const layout = useMemo(() => flameLayout(model, focus, width), [model, focus, width]);
  // The same elements across hover re-renders, so React skips thousands of unchanged boxes.
  const rects = useMemo(() => layout.items.map((item, index) => <FlameRect key={item.node.id} item={item} index={index} />), [layout]);

  // One set of handlers on the <svg> (event delegation), not thousands of per-rect closures.
  function itemAt(event: MouseEvent): FlameItem | undefined {
    const index = (event.target as Element).closest('[data-index]')?.getAttribute('data-index');
    return index === null || index === undefined ? undefined : layout.items[Number(index)];
  }
  function onMove(event: MouseEvent<SVGSVGElement>) {
    const item = itemAt(event);
    const rect = wrap.current!.getBoundingClientRect();
    setHover(item ? { node: item.node, x: event.clientX - rect.left, y: event.clientY - rect.top } : null);
  }
  function onClick(event: MouseEvent<SVGSVGElement>) {
    const item = itemAt(event);
    if (!item) return;
    // Clicking the zoomed-in span itself steps out one level.
    setFocus(item.node === focus ? focus.parent : item.node);
  }

  return (
    <section className="view flame">
      <div className="view-toolbar">
        <Breadcrumb focus={focus} onZoom={setFocus} />
        <span className="spacer" />
        <span className="muted">
          {layout.items.length < layout.inScope
            ? `${layout.items.length} of ${layout.inScope} spans drawn (the others are too narrow: click a span to zoom in)`
            : `${layout.items.length} spans`}
        </span>
      </div>
      <div className="flame-frame" ref={wrap}>
        <div className="flame-box" ref={box}>
          {width > 0 && (
            <svg width={width} height={Math.max(layout.rows, 1) * ROW} role="group" aria-label="Flame graph"
              onMouseMove={onMove} onMouseLeave={() => setHover(null)} onClick={onClick}>
              {rects}
            </svg>
          )}
        </div>
        {hover && <FlameTip hover={hover} width={width} />}
      </div>
    </section>
  );
}

function FlameRect({ item, index }: { item: FlameItem; index: number }) {
  const { node } = item;
  const label = fitLabel(node.span.operationName, item.width);
  return (
    <g className={`flame-span${node.error ? ' has-error' : ''}`} data-index={index} data-span={node.id}
      transform={`translate(${item.x},${item.row * ROW})`}>
      <rect width={Math.max(item.width - 1, 1)} height={ROW - 1} fill={serviceColor(node.service)} />
      {label && <text x={4} y={ROW - 6}>{label}</text>}
    </g>
  );
}

function FlameTip({ hover, width }: { hover: Hover; width: number }) {
  const { node } = hover;
  const left = Math.min(hover.x + 12, Math.max(width - 280, 0)); // stay inside the box
  return (
    <div className="flame-tip" role="tooltip" style={{ left, top: hover.y + 14 }}>
      <strong>{node.service}</strong> {node.span.operationName}
      <div>
        {formatDuration(node.span.duration)} <span className="muted">(self {formatDuration(selfTime(node))})</span>
        {node.error && <span className="error-badge">error</span>}
      </div>
    </div>
  );
}

function Breadcrumb({ focus, onZoom }: { focus: SpanNode | null; onZoom: (node: SpanNode | null) => void }) {
  const path: SpanNode[] = [];
  for (let at = focus; at; at = at.parent) path.unshift(at);
  return (
    <nav className="flame-crumbs" aria-label="Flame graph zoom">
      <button type="button" disabled={!focus} onClick={() => onZoom(null)}>Reset zoom</button>
      {/* Long ancestries show their last few levels. */}
      {path.slice(-4).map((node) => (
        <button key={node.id} type="button" className="link" onClick={() => onZoom(node)} disabled={node === focus}>
          {node.service}: {node.span.operationName}
        </button>
      ))}
    </nav>
  );
}
