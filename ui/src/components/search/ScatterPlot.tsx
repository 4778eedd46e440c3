// Duration over start time, one dot per trace, error traces in red. uPlot draws the axes and
// dots; each dot also gets a transparent button on top (portalled into uPlot's overlay) so dots
// can be clicked, hovered and reached by keyboard like any other link.
import { useEffect, useMemo, useRef, useState } from 'react';
import { createPortal } from 'react-dom';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import type { TraceSummary } from '../../model/search';
import { formatDuration } from '../../model/trace';

interface ScatterPlotProps {
  summaries: TraceSummary[];
  onOpen: (traceID: string) => void;
}

interface Dot {
  summary: TraceSummary;
  left: number; // CSS px within the plotting area
  top: number;
}

const HEIGHT = 170;
const OK = '#0b6bcb';
const ERROR = '#d32f2f';

export default function ScatterPlot({ summaries, onOpen }: ScatterPlotProps) {
  const host = useRef<HTMLDivElement>(null);
  const [plot, setPlot] = useState<uPlot | null>(null);
  const [dots, setDots] = useState<Dot[]>([]);
  const [hover, setHover] = useState<Dot | null>(null);

  // uPlot wants x ascending; the two series share x and leave gaps (null) for each other's dots.
  const points = useMemo(() => [...summaries].sort((a, b) => a.start - b.start), [summaries]);

  useEffect(() => {
    const el = host.current;
    if (!el) return;
    const data: uPlot.AlignedData = [
      points.map((s) => s.start / 1e6), // seconds: uPlot's time unit
      points.map((s) => (s.errors ? null : s.duration)),
      points.map((s) => (s.errors ? s.duration : null)),
    ];
    const dotSeries = (color: string, label: string): uPlot.Series => ({
      label,
      stroke: color,
      fill: `${color}66`,
      paths: () => null,
      points: { show: true, space: 0, size: 9, width: 1.5, stroke: color, fill: `${color}66` },
    });
    const axis = { stroke: '#6b7280', grid: { stroke: '#eeeeee', width: 1 }, ticks: { stroke: '#e3e3e3', width: 1 }, font: '11px system-ui' };
    const u = new uPlot({
      width: Math.max(200, el.clientWidth),
      height: HEIGHT,
      padding: [10, 30, 0, 0], // room for the last time label
      legend: { show: false },
      cursor: { show: false, drag: { x: false, y: false } },
      scales: {
        x: { time: true, range: (_u, min, max) => pad(min, max, 1) },
        y: { range: (_u, _min, max) => [0, max > 0 ? max * 1.15 : 1] },
      },
      axes: [
        { ...axis, size: 28, space: 80, values: (_u, splits) => timeLabels(splits) },
        { ...axis, size: 58, values: (_u, splits) => splits.map((v) => (v ? formatDuration(v) : '0')) },
      ],
      series: [{}, dotSeries(OK, 'traces'), dotSeries(ERROR, 'traces with errors')],
      hooks: {
        draw: [(self) => setDots(points.map((summary) => ({
          summary,
          left: self.valToPos(summary.start / 1e6, 'x'),
          top: self.valToPos(summary.duration, 'y'),
        })))],
      },
    }, data, el);
    setPlot(u);
    return () => { u.destroy(); setPlot(null); setDots([]); setHover(null); };
  }, [points]);

  // Follow the column's width.
  useEffect(() => {
    const el = host.current;
    if (!el || !plot) return;
    const observer = new ResizeObserver(() => plot.setSize({ width: Math.max(200, el.clientWidth), height: HEIGHT }));
    observer.observe(el);
    return () => observer.disconnect();
  }, [plot]);

  return (
    <div className="scatter" ref={host} data-testid="scatter-plot">
      {plot && createPortal(
        <>
          {dots.map((dot) => (
            <button key={dot.summary.traceID} type="button"
              className={`scatter-dot${dot.summary.errors ? ' error' : ''}`}
              style={{ left: dot.left, top: dot.top }}
              data-trace-id={dot.summary.traceID}
              aria-label={`${label(dot.summary)}, ${formatDuration(dot.summary.duration)}`}
              onMouseEnter={() => setHover(dot)} onMouseLeave={() => setHover(null)}
              onFocus={() => setHover(dot)} onBlur={() => setHover(null)}
              onClick={() => onOpen(dot.summary.traceID)} />
          ))}
          {hover && <DotTip dot={hover} flip={hover.left > plot.over.clientWidth / 2} />}
        </>,
        plot.over,
      )}
    </div>
  );
}

function DotTip({ dot, flip }: { dot: Dot; flip: boolean }) {
  const s = dot.summary;
  return (
    <div className={`scatter-tip${flip ? ' flip' : ''}`} style={{ left: dot.left, top: dot.top }} role="tooltip">
      <strong>{label(s)}</strong>
      <span>{formatDuration(s.duration)} · {s.spans} span{s.spans === 1 ? '' : 's'}{s.errors ? ` · ${s.errors} error${s.errors === 1 ? '' : 's'}` : ''}</span>
    </div>
  );
}

function label(s: TraceSummary): string {
  return `${s.rootService}: ${s.rootOperation}`;
}

const pad2 = (n: number) => String(n).padStart(2, '0');

/** Local clock times for the x ticks (seconds since the epoch), as precise as their spacing needs. */
function timeLabels(splits: number[]): string[] {
  const step = splits.length > 1 ? splits[1] - splits[0] : 60;
  return splits.map((v) => {
    const d = new Date(v * 1000);
    const hm = `${pad2(d.getHours())}:${pad2(d.getMinutes())}`;
    if (step >= 60) return hm;
    const hms = `${hm}:${pad2(d.getSeconds())}`;
    return step >= 1 ? hms : `${hms}.${String(d.getMilliseconds()).padStart(3, '0')}`;
  });
}

/** A little room either side, and a sensible window when all dots share one time. */
function pad(min: number | null, max: number | null, seconds: number): [number, number] {
  const lo = min ?? 0;
  const hi = max ?? lo;
  const margin = Math.max((hi - lo) * 0.04, seconds);
  return [lo - margin, hi + margin];
}
