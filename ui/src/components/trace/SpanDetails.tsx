// One span in full, beside the timeline: typed tags, its process, events at times relative to
// the trace's start, references and links that navigate, warnings, and its id and deep link.
import { memo, type ReactNode } from 'react';
import { Link } from 'react-router';
import type { CriticalSegment } from '../../model/criticalPath';
import { serviceColor } from '../../model/colors';
import type { Reference } from '../../model/jaeger';
import { formatDuration, parentId, type SpanNode, type TraceModel } from '../../model/trace';
import CopyButton from './CopyButton';
import { spanPath, spanUrl } from './format';
import KeyValues from './KeyValues';

interface Props {
  model: TraceModel;
  node: SpanNode;
  critical: CriticalSegment[] | undefined;
  onGoToSpan: (spanID: string) => void;
  onClose: () => void;
}

export default memo(SpanDetails);

function SpanDetails({ model, node, critical, onGoToSpan, onClose }: Props) {
  const { span } = node;
  const criticalTime = critical?.reduce((sum, s) => sum + s.end - s.start, 0) ?? 0;
  return (
    <aside className="span-details" aria-label="Span details" data-span-id={node.id}>
      <header>
        <h2>
          <span className="service-swatch" style={{ background: serviceColor(node.service) }} aria-hidden />
          {node.service}: {span.operationName}
        </h2>
        <button type="button" className="small" onClick={onClose} aria-label="Close details">✕</button>
      </header>
      <dl className="span-facts">
        <dt>Service</dt><dd>{node.service}</dd>
        <dt>Duration</dt><dd>{formatDuration(span.duration)}</dd>
        <dt>Start</dt><dd>+{formatDuration(node.offset)}</dd>
        {node.kind && <><dt>Kind</dt><dd>{node.kind}</dd></>}
        {criticalTime > 0 && <><dt>Critical path</dt><dd>{formatDuration(criticalTime)}</dd></>}
        {node.error && <><dt>Status</dt><dd className="error">error</dd></>}
        <dt>Span ID</dt>
        <dd className="span-id">
          <code data-testid="span-id">{node.id}</code>
          <CopyButton text={node.id} label="Copy span ID" />
          <Link to={spanPath(model.traceID, node.id)} title={spanUrl(model.traceID, node.id)}>Deep link</Link>
          <CopyButton text={spanUrl(model.traceID, node.id)} label="Copy deep link" />
        </dd>
      </dl>
      <Section title="Tags" count={span.tags.length}>
        <KeyValues items={span.tags} label="Tags" />
      </Section>
      <Section title={`Process: ${node.process.serviceName}`} count={node.process.tags.length}>
        <KeyValues items={node.process.tags} label="Process tags" />
      </Section>
      <Section title="Events" count={span.logs.length}>
        <Events model={model} node={node} />
      </Section>
      <Section title="References and links" count={span.references.length}>
        <References model={model} node={node} onGoToSpan={onGoToSpan} />
      </Section>
      {span.warnings?.length ? (
        <Section title="Warnings" count={span.warnings.length}>
          <ul className="span-warnings">{span.warnings.map((w, i) => <li key={i}>⚠ {w}</li>)}</ul>
        </Section>
      ) : null}
    </aside>
  );
}

function Section({ title, count, children }: { title: string; count: number; children: ReactNode }) {
  return (
    <details className="detail-section" open={count > 0}>
      <summary>{title} <span className="muted">({count})</span></summary>
      {children}
    </details>
  );
}

function Events({ model, node }: { model: TraceModel; node: SpanNode }) {
  if (!node.span.logs.length) return <p className="muted">None</p>;
  return (
    <ol className="span-events">
      {node.span.logs.map((log, i) => {
        const name = log.fields.find((f) => f.key === 'event')?.value;
        return (
          <li key={i} data-testid="span-event">
            <div className="event-head">
              <span className="event-time" title={`+${formatDuration(log.timestamp - node.span.startTime)} into the span`}>
                +{formatDuration(log.timestamp - model.start)}
              </span>
              <span className="event-name">{name === undefined ? 'log' : String(name)}</span>
            </div>
            <KeyValues items={log.fields} label="Event fields" />
          </li>
        );
      })}
    </ol>
  );
}

const REF_LABEL: Record<Reference['refType'], string> = { CHILD_OF: 'child of', FOLLOWS_FROM: 'follows from' };

function References({ model, node, onGoToSpan }: { model: TraceModel; node: SpanNode; onGoToSpan: (id: string) => void }) {
  const refs = node.span.references;
  if (!refs.length) return <p className="muted">None: a root span</p>;
  const parent = parentId(node.span);
  return (
    <ul className="span-refs">
      {refs.map((ref, i) => {
        const role = ref.traceID === model.traceID && ref.spanID === parent ? 'parent' : REF_LABEL[ref.refType];
        return (
          <li key={i} data-testid="span-ref">
            <span className="ref-type">{role}</span> <RefTarget model={model} reference={ref} onGoToSpan={onGoToSpan} />
          </li>
        );
      })}
    </ul>
  );
}

function RefTarget({ model, reference, onGoToSpan }: { model: TraceModel; reference: Reference; onGoToSpan: (id: string) => void }) {
  if (reference.traceID !== model.traceID) {
    return (
      <Link to={spanPath(reference.traceID, reference.spanID)} className="ref-link">
        span <code>{reference.spanID}</code> in trace <code>{reference.traceID}</code>
      </Link>
    );
  }
  const target = model.byId.get(reference.spanID);
  if (!target) return <span className="muted">span <code>{reference.spanID}</code> (not in this trace)</span>;
  return (
    <button type="button" className="link ref-link" onClick={() => onGoToSpan(target.id)}>
      {target.service}: {target.span.operationName} <code>{target.id}</code>
    </button>
  );
}
