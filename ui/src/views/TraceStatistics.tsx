// Duration and self-time aggregates per service, or per service + operation, for one trace.
import { useMemo, useState } from 'react';
import { selfTimes, statistics, type GroupBy, type StatRow } from '../model/stats';
import { formatDuration, type TraceModel } from '../model/trace';
import ServiceName from './ServiceName';
import VirtualTable, { type Column } from './VirtualTable';

function time(key: keyof StatRow & string, title: string): Column<StatRow> {
  return { key, title, width: '90px', numeric: true, value: (r) => r[key] as number,
    render: (r) => formatDuration(r[key] as number) };
}

function columns(groupBy: GroupBy): Column<StatRow>[] {
  const name: Column<StatRow>[] = [
    { key: 'service', title: 'Service', width: 'minmax(120px, 1fr)', value: (r) => r.service,
      render: (r) => <ServiceName name={r.service} /> },
  ];
  if (groupBy === 'operation') {
    name.push({ key: 'operation', title: 'Operation', width: 'minmax(140px, 1.5fr)', value: (r) => r.operation ?? '' });
  }
  return [
    ...name,
    { key: 'count', title: 'Spans', width: '70px', numeric: true, value: (r) => r.count },
    time('total', 'Total'),
    time('avg', 'Avg'),
    time('min', 'Min'),
    time('max', 'Max'),
    time('selfTotal', 'Self total'),
    time('selfAvg', 'Self avg'),
    time('selfMin', 'Self min'),
    time('selfMax', 'Self max'),
    { key: 'errors', title: 'Errors', width: '70px', numeric: true, value: (r) => r.errors,
      render: (r) => (r.errors ? <span className="error">{r.errors}</span> : '0') },
  ];
}

export default function TraceStatistics({ model }: { model: TraceModel }) {
  const [groupBy, setGroupBy] = useState<GroupBy>('service');
  const selfs = useMemo(() => selfTimes(model), [model]);
  const rows = useMemo(() => statistics(model, groupBy, selfs), [model, groupBy, selfs]);
  const cols = useMemo(() => columns(groupBy), [groupBy]);
  return (
    <section className="view trace-stats">
      <div className="view-toolbar">
        <label>
          Group by{' '}
          <select value={groupBy} onChange={(e) => setGroupBy(e.target.value as GroupBy)} aria-label="Group by">
            <option value="service">Service</option>
            <option value="operation">Service + operation</option>
          </select>
        </label>
        <span className="muted">Self time: a span's duration minus the time its children cover.</span>
      </div>
      {/* Remount per grouping: the sort column may not exist in the other one. */}
      <VirtualTable key={groupBy} label="Statistics" rows={rows} columns={cols} rowKey={(r) => r.key}
        initialSort={{ key: 'selfTotal', desc: true }} />
    </section>
  );
}
