// Number formats the views share.
import { formatDuration } from '../model/trace';

/** +130ms / -4.20ms / 0µs: the sign says slower or faster. */
export function formatDelta(us: number): string {
  if (us === 0) return '0µs';
  return `${us > 0 ? '+' : '-'}${formatDuration(Math.abs(us))}`;
}

/** +200% / -12.5%, or '—' when there is no base to compare with. */
export function formatPercent(percent: number | null): string {
  if (percent === null) return '—';
  if (percent === 0) return '0%';
  const rounded = Math.abs(percent) >= 10 ? percent.toFixed(0) : percent.toFixed(1);
  return `${percent > 0 ? '+' : ''}${rounded}%`;
}
