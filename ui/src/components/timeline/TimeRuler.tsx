// The time scale above the rows: ticks at each quarter of the zoomed range, and the handle that
// resizes the name column.
import { memo, type PointerEvent } from 'react';
import { formatDuration } from '../../model/trace';
import type { Zoom } from './zoom';

const TICKS = [0, 0.25, 0.5, 0.75, 1];

interface Props {
  zoom: Zoom;
  onResizeName: (percent: number) => void; // the name column's new width, in % of a row
}

function TimeRuler({ zoom, onResizeName }: Props) {
  function onPointerDown(event: PointerEvent<HTMLDivElement>) {
    const handle = event.currentTarget;
    const row = handle.parentElement!.getBoundingClientRect();
    handle.setPointerCapture(event.pointerId);
    const move = (e: globalThis.PointerEvent) =>
      onResizeName(Math.min(70, Math.max(15, ((e.clientX - row.left) / row.width) * 100)));
    const up = () => {
      handle.removeEventListener('pointermove', move);
      handle.removeEventListener('pointerup', up);
    };
    handle.addEventListener('pointermove', move);
    handle.addEventListener('pointerup', up);
  }

  return (
    <div className="tl-ruler">
      <div className="tl-name">Service &amp; operation</div>
      <div className="tl-resizer" role="separator" aria-orientation="vertical" aria-label="Resize the name column"
        title="Drag to resize" onPointerDown={onPointerDown} />
      <div className="tl-track">
        {TICKS.map((f) => (
          <span key={f} className={f === 1 ? 'tl-tick last' : 'tl-tick'} style={{ left: `${f * 100}%` }}>
            {formatDuration(zoom.start + f * (zoom.end - zoom.start))}
          </span>
        ))}
      </div>
    </div>
  );
}

export default memo(TimeRuler);
