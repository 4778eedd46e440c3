// The whole trace in a strip: every span drawn on a canvas (cheap even for 40,000), the zoomed
// range left clear, and a drag across it choosing a new range. Double-click resets.
import { memo, useEffect, useRef, useState, type PointerEvent } from 'react';
import { serviceColor } from '../../model/colors';
import type { TraceModel } from '../../model/trace';
import type { Zoom } from './zoom';

const HEIGHT = 56;
const MIN_DRAG_PX = 4;

interface Props {
  model: TraceModel;
  zoom: Zoom;
  onZoom: (zoom: Zoom) => void;
}

export default memo(Minimap);

function Minimap({ model, zoom, onZoom }: Props) {
  const box = useRef<HTMLDivElement>(null);
  const canvas = useRef<HTMLCanvasElement>(null);
  const [width, setWidth] = useState(0);
  const [drag, setDrag] = useState<{ from: number; to: number } | null>(null); // px in the box

  useEffect(() => {
    const element = box.current!;
    setWidth(element.clientWidth);
    const observer = new ResizeObserver(() => setWidth(element.clientWidth));
    observer.observe(element);
    return () => observer.disconnect();
  }, []);

  useEffect(() => {
    if (width > 0) draw(canvas.current!, model, width);
  }, [model, width]);

  const toTime = (px: number) => Math.min(Math.max(px / width, 0), 1) * model.duration;
  const boxX = (event: PointerEvent) => event.clientX - box.current!.getBoundingClientRect().left;

  function onPointerDown(event: PointerEvent<HTMLDivElement>) {
    if (event.button !== 0) return;
    event.currentTarget.setPointerCapture(event.pointerId);
    const x = boxX(event);
    setDrag({ from: x, to: x });
  }

  function onPointerUp() {
    if (drag && Math.abs(drag.to - drag.from) >= MIN_DRAG_PX) {
      const [a, b] = drag.from < drag.to ? [drag.from, drag.to] : [drag.to, drag.from];
      onZoom({ start: toTime(a), end: toTime(b) });
    }
    setDrag(null);
  }

  const dur = model.duration || 1;
  const shownLeft = (zoom.start / dur) * 100;
  const shownRight = 100 - (zoom.end / dur) * 100;
  return (
    <div className="tl-minimap" ref={box} data-testid="minimap" title="Drag to zoom into a time range; double-click to reset"
      onPointerDown={onPointerDown} onPointerUp={onPointerUp} onPointerCancel={() => setDrag(null)}
      onPointerMove={(e) => drag && setDrag({ ...drag, to: boxX(e) })}
      onDoubleClick={() => onZoom({ start: 0, end: model.duration })}>
      <canvas ref={canvas} style={{ width: '100%', height: HEIGHT }} />
      <div className="mm-shade" style={{ left: 0, width: `${shownLeft}%` }} />
      <div className="mm-shade" style={{ right: 0, width: `${shownRight}%` }} />
      {drag && (
        <div className="mm-drag" style={{ left: Math.min(drag.from, drag.to), width: Math.abs(drag.to - drag.from) }} />
      )}
    </div>
  );
}

/** One thin bar per span, in row order from top to bottom; errors marked red at their start. */
function draw(canvas: HTMLCanvasElement, model: TraceModel, width: number): void {
  const ratio = window.devicePixelRatio || 1;
  canvas.width = Math.round(width * ratio);
  canvas.height = Math.round(HEIGHT * ratio);
  const ctx = canvas.getContext('2d');
  if (!ctx) return;
  ctx.scale(ratio, ratio);
  const { nodes } = model;
  const dur = model.duration || 1;
  const rowHeight = Math.min(6, HEIGHT / Math.max(nodes.length, 1));
  const barHeight = Math.max(rowHeight * 0.8, 1);
  const colors = new Map<string, string>();
  for (let i = 0; i < nodes.length; i++) {
    const node = nodes[i];
    let color = colors.get(node.service);
    if (!color) colors.set(node.service, (color = serviceColor(node.service)));
    ctx.fillStyle = color;
    ctx.fillRect((node.offset / dur) * width, i * rowHeight, Math.max((node.span.duration / dur) * width, 1), barHeight);
  }
  ctx.fillStyle = '#d32f2f';
  for (let i = 0; i < nodes.length; i++) {
    if (nodes[i].error) ctx.fillRect((nodes[i].offset / dur) * width - 1, i * rowHeight, 3, Math.max(barHeight, 4));
  }
}
