// One trace in the result list, laid out like Jaeger's: root "service: operation", id and
// duration (with a bar relative to the longest result) on top; counts, services and start time
// below. The whole row opens the trace; the checkbox picks it for comparison.
import type { MouseEvent } from 'react';
import { Link, useNavigate } from 'react-router';
import { serviceColor } from '../../model/colors';
import { formatRelative, type TraceSummary } from '../../model/search';
import { formatDuration } from '../../model/trace';
import ServicePills from './ServicePills';

interface ResultItemProps {
  summary: TraceSummary;
  maxDuration: number; // µs, the longest in the list: scales the duration bar
  nowMs: number;
  selected: boolean;
  onSelect: (traceID: string, selected: boolean) => void;
}

export default function ResultItem({ summary: s, maxDuration, nowMs, selected, onSelect }: ResultItemProps) {
  const navigate = useNavigate();
  const href = `/trace/${s.traceID}`;

  function onRowClick(event: MouseEvent) {
    // Links and the checkbox do their own thing; anywhere else on the row opens the trace.
    if ((event.target as HTMLElement).closest('a, input, label')) return;
    navigate(href);
  }

  return (
    <li className={`result-item${selected ? ' selected' : ''}`} data-testid="trace-result" data-trace-id={s.traceID}
      data-spans={s.spans} data-errors={s.errors} data-duration={s.duration} onClick={onRowClick}>
      <div className="result-head">
        <div className="result-bar" style={{ width: `${maxDuration ? (100 * s.duration) / maxDuration : 0}%` }} />
        <label className="result-check" title="Select for comparison">
          <input type="checkbox" checked={selected} onChange={(e) => onSelect(s.traceID, e.target.checked)}
            aria-label={`Select ${s.traceID} for comparison`} />
        </label>
        <Link to={href} className="result-title">
          <span className="swatch" style={{ background: serviceColor(s.rootService) }} />
          {s.rootService}: {s.rootOperation}
          <span className="result-id">{s.traceID.slice(0, 7)}</span>
        </Link>
        <span className="result-duration">{formatDuration(s.duration)}</span>
      </div>
      <div className="result-body">
        <div className="result-counts">
          <span className="tag">{s.spans} span{s.spans === 1 ? '' : 's'}</span>
          {s.errors > 0 && <span className="tag error-tag">{s.errors} error{s.errors === 1 ? '' : 's'}</span>}
        </div>
        <ServicePills services={s.services} />
        <div className="result-time">
          <time dateTime={new Date(s.start / 1000).toISOString()}>{formatStart(s.start, nowMs)}</time>
          <span className="relative">{formatRelative(s.start, nowMs)}</span>
        </div>
      </div>
    </li>
  );
}

const timeFormat = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit' });
const dateFormat = new Intl.DateTimeFormat(undefined, { year: 'numeric', month: 'short', day: 'numeric' });

/** "Today 10:42:01" or "May 1, 2024 10:42:01", in local time. */
function formatStart(us: number, nowMs: number): string {
  const when = new Date(us / 1000);
  const today = new Date(nowMs).toDateString() === when.toDateString();
  return `${today ? 'Today' : dateFormat.format(when)} ${timeFormat.format(when)}`;
}
