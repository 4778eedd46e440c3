// Every span of the trace as a sortable, filterable, virtualized table; a row opens the span on
// the trace page.
import { useMemo, useState } from 'react';
import { Link, useNavigate } from 'react-router';
import { selfTimes } from '../model/stats';
import { formatDuration, type SpanNode, type TraceModel } from '../model/trace';
import ServiceName from './ServiceName';
import VirtualTable, { type Column } from './VirtualTable';

interface Row {
  node: SpanNode;
  self: number;
}

function spanLink(model: TraceModel, node: SpanNode): string {
  return `/trace/${model.traceID}?span=${encodeURIComponent(node.id)}`;
}

function columns(model: TraceModel): Column<Row>[] {
  return [
    { key: 'service', title: 'Service', width: 'minmax(120px, 1fr)', value: (r) => r.node.service,
      render: (r) => <ServiceName name={r.node.service} /> },
    { key: 'operation', title: 'Operation', width: 'minmax(160px, 2fr)', value: (r) => r.node.span.operationName,
      render: (r) => <Link to={spanLink(model, r.node)} onClick={(e) => e.stopPropagation()}>{r.node.span.operationName}</Link> },
    { key: 'start', title: 'Start', width: '100px', numeric: true, value: (r) => r.node.offset,
      render: (r) => formatDuration(r.node.offset) },
    { key: 'duration', title: 'Duration', width: '100px', numeric: true, value: (r) => r.node.span.duration,
      render: (r) => formatDuration(r.node.span.duration) },
    { key: 'self', title: 'Self time', width: '100px', numeric: true, value: (r) => r.self,
      render: (r) => formatDuration(r.self) },
    { key: 'error', title: 'Errors', width: '70px', numeric: true, value: (r) => (r.node.error ? 1 : 0),
      render: (r) => (r.node.error ? <span className="error-badge">error</span> : '') },
  ];
}

export default function TraceSpanTable({ model }: { model: TraceModel }) {
  const navigate = useNavigate();
  const [filter, setFilter] = useState('');
  const all = useMemo(() => {
    const selfs = selfTimes(model);
    return model.nodes.map((node) => ({ node, self: selfs.get(node)! }));
  }, [model]);
  const rows = useMemo(() => {
    const needle = filter.trim().toLowerCase();
    if (!needle) return all;
    return all.filter(({ node }) => node.service.toLowerCase().includes(needle)
      || node.span.operationName.toLowerCase().includes(needle) || node.id.includes(needle));
  }, [all, filter]);
  const cols = useMemo(() => columns(model), [model]);

  return (
    <section className="view span-table">
      <div className="view-toolbar">
        <input type="search" value={filter} onChange={(e) => setFilter(e.target.value)}
          placeholder="Filter by service, operation or span ID" aria-label="Filter spans" />
        <span className="muted">{rows.length === all.length ? `${all.length} spans` : `${rows.length} of ${all.length} spans`}</span>
      </div>
      <VirtualTable label="Spans" rows={rows} columns={cols} rowKey={(r) => r.node.id}
        onRowClick={(r) => navigate(spanLink(model, r.node))} rowClass={(r) => (r.node.error ? 'has-error' : '')} />
    </section>
  );
}
