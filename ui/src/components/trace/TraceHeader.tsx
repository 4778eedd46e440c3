// The trace's name and facts, and what can be done with the whole trace.
import type { ReactNode } from 'react';
import { useNavigate } from 'react-router';
import { download } from '../../api/files';
import { serviceColor } from '../../model/colors';
import { formatDuration, type TraceModel } from '../../model/trace';
import { formatTimestamp } from './format';

export default function TraceHeader({ model, offline }: { model: TraceModel; offline: boolean }) {
  const root = model.root;
  return (
    <header className="trace-header">
      <div className="trace-title">
        <h1>
          {root && <span className="service-swatch" style={{ background: serviceColor(root.service) }} aria-hidden />}
          <span data-testid="trace-name">{model.name}</span>
        </h1>
        <code className="trace-id" title="Trace ID">{model.traceID}</code>
        <TraceActions model={model} offline={offline} />
      </div>
      <dl className="trace-facts">
        <Fact label="Start" testId="trace-start">{formatTimestamp(model.start)}</Fact>
        <Fact label="Duration" testId="trace-duration">{formatDuration(model.duration)}</Fact>
        <Fact label="Services" testId="trace-services">{model.services.size}</Fact>
        <Fact label="Depth" testId="trace-depth">{model.depth}</Fact>
        <Fact label="Spans" testId="trace-spans">{model.nodes.length}</Fact>
        <Fact label="Errors" testId="trace-errors" error={model.errors > 0}>{model.errors}</Fact>
      </dl>
      {model.trace.warnings?.length ? (
        <ul className="trace-warnings">{model.trace.warnings.map((w, i) => <li key={i}>⚠ {w}</li>)}</ul>
      ) : null}
    </header>
  );
}

function Fact({ label, testId, error, children }: { label: string; testId: string; error?: boolean; children: ReactNode }) {
  return (
    <div className={error ? 'fact error' : 'fact'}>
      <dt>{label}</dt>
      <dd data-testid={testId}>{children}</dd>
    </div>
  );
}

function TraceActions({ model, offline }: { model: TraceModel; offline: boolean }) {
  const navigate = useNavigate();
  const json = `api/traces/${encodeURIComponent(model.traceID)}?prettyPrint=true`; // relative: follows <base href>
  return (
    <div className="trace-actions">
      {offline ? <span className="muted" title="Opened from a file">offline</span> : (
        <>
          <a href={json} target="_blank" rel="noreferrer">Trace JSON</a>
          <a href={`${json}&raw=true`} target="_blank" rel="noreferrer">Trace JSON (unadjusted)</a>
        </>
      )}
      <button type="button" onClick={() => download(`trace-${model.traceID}.json`, { data: [model.trace] })}>
        Download JSON
      </button>
      <button type="button" onClick={() => navigate(`/compare?a=${encodeURIComponent(model.traceID)}`)}>
        Compare with…
      </button>
    </div>
  );
}
