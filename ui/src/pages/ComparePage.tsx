// Two traces side by side: which spans one has and the other lacks (matched by their path of
// service + operation from the root), and how the durations of the shared ones changed.
// `/compare?a=<id>&b=<id>`; either id may be a trace opened from a file.
import { useEffect, useMemo, useState, type FormEvent } from 'react';
import { Link, useSearchParams } from 'react-router';
import { diffLabel, diffTraces, latencyDiff, type LatencyRow, type TraceDiff } from '../model/diff';
import { formatDuration } from '../model/trace';
import { lastOpenedTraces } from '../state/loaded';
import DiffTree from '../views/DiffTree';
import { formatDelta, formatPercent } from '../views/format';
import { useTraceModel, type Loaded } from '../views/useTraceModel';
import VirtualTable, { type Column } from '../views/VirtualTable';

export default function ComparePage() {
  const [params, setParams] = useSearchParams();
  const a = params.get('a')?.trim() ?? '';
  const b = params.get('b')?.trim() ?? '';
  const left = useTraceModel(a);
  const right = useTraceModel(b);
  const diff = useMemo(() => (left.model && right.model ? diffTraces(left.model, right.model) : null),
    [left.model, right.model]);

  return (
    <div className="compare-page">
      <h2>Compare traces</h2>
      <CompareForm a={a} b={b} onCompare={(next) => setParams(next)} />
      <div className="compare-sides">
        <SideSummary side="A" id={a} loaded={left} />
        <SideSummary side="B" id={b} loaded={right} />
      </div>
      {diff ? <CompareResult diff={diff} /> : a && !b && <p className="empty">Enter a trace ID for B to compare with.</p>}
    </div>
  );
}

function CompareForm({ a, b, onCompare }: { a: string; b: string; onCompare: (ids: { a: string; b: string }) => void }) {
  const [idA, setIdA] = useState(a);
  const [idB, setIdB] = useState(b);
  useEffect(() => { setIdA(a); setIdB(b); }, [a, b]); // follow back/forward navigation
  const offline = lastOpenedTraces();

  function submit(event: FormEvent) {
    event.preventDefault();
    onCompare({ a: idA.trim(), b: idB.trim() });
  }
  return (
    <form className="compare-form" onSubmit={submit}>
      <label>Trace A <input value={idA} onChange={(e) => setIdA(e.target.value)} list="opened-traces" placeholder="trace ID" autoFocus={!a} /></label>
      <button type="button" title="Swap A and B" aria-label="Swap A and B" onClick={() => onCompare({ a: idB.trim(), b: idA.trim() })}>⇄</button>
      <label>Trace B <input value={idB} onChange={(e) => setIdB(e.target.value)} list="opened-traces" placeholder="trace ID" autoFocus={!!a && !b} /></label>
      <button type="submit" className="primary">Compare</button>
      {/* Traces opened from files are offered too: they can be compared offline. */}
      <datalist id="opened-traces">
        {offline.map((t) => <option key={t.traceID} value={t.traceID} />)}
      </datalist>
    </form>
  );
}

function SideSummary({ side, id, loaded }: { side: string; id: string; loaded: Loaded }) {
  if (!id) return <div className="compare-side muted">{side}: no trace chosen</div>;
  if (loaded.loading) return <div className="compare-side muted">{side}: loading {id}…</div>;
  if (loaded.error) return <div className="compare-side error" role="alert">{side}: {loaded.error}</div>;
  const model = loaded.model;
  if (!model) return null;
  return (
    <div className="compare-side" data-side={side}>
      <strong>{side}</strong> <Link to={`/trace/${model.traceID}`}>{model.name}</Link>
      <span className="muted"> {formatDuration(model.duration)}, {model.nodes.length} spans, {model.traceID.slice(0, 12)}</span>
    </div>
  );
}

function CompareResult({ diff }: { diff: TraceDiff }) {
  const latency = useMemo(() => latencyDiff(diff), [diff]);
  return (
    <>
      <section className="compare-section">
        <h3>Structure</h3>
        <p className="muted">
          {diff.matched} spans in both, <span className="diff-added-text">{diff.added} added</span> (only in B),{' '}
          <span className="diff-removed-text">{diff.removed} removed</span> (only in A). Spans match by their path of
          service and operation from the root.
        </p>
        <DiffTree diff={diff} />
      </section>
      <section className="compare-section">
        <h3>Latency</h3>
        <VirtualTable label="Latency" rows={latency} columns={LATENCY_COLUMNS} rowKey={(r) => r.node.id}
          initialSort={{ key: 'delta', desc: true }} rowClass={(r) => (r.delta > 0 ? 'slower' : r.delta < 0 ? 'faster' : '')} />
      </section>
    </>
  );
}

function parentName(row: LatencyRow): string {
  return row.node.parent ? `under ${diffLabel(row.node.parent)}` : 'root';
}

const LATENCY_COLUMNS: Column<LatencyRow>[] = [
  { key: 'span', title: 'Span', width: 'minmax(240px, 3fr)', value: (r) => diffLabel(r.node),
    render: (r) => <span title={parentName(r)}>{diffLabel(r.node)} <span className="muted">{parentName(r)}</span></span> },
  { key: 'a', title: 'Duration A', width: '110px', numeric: true, value: (r) => r.durationA, render: (r) => formatDuration(r.durationA) },
  { key: 'b', title: 'Duration B', width: '110px', numeric: true, value: (r) => r.durationB, render: (r) => formatDuration(r.durationB) },
  { key: 'delta', title: 'Delta', width: '100px', numeric: true, value: (r) => r.delta,
    render: (r) => <span className="delta">{formatDelta(r.delta)}</span> },
  { key: 'percent', title: 'Change', width: '90px', numeric: true, value: (r) => r.percent ?? 0,
    render: (r) => <span className="delta">{formatPercent(r.percent)}</span> },
];
