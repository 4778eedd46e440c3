// The merged span tree of two traces, one virtualized row per node in tree order, each marked
// added (only in B), removed (only in A) or in both.
import { useVirtualizer } from '@tanstack/react-virtual';
import { useRef } from 'react';
import type { DiffNode, DiffStatus, TraceDiff } from '../model/diff';
import { diffLabel } from '../model/diff';
import { formatDuration } from '../model/trace';
import { formatDelta } from './format';

const ROW = 26;
const STATUS_TEXT: Record<DiffStatus, string> = { both: 'in both', added: 'added', removed: 'removed' };

export default function DiffTree({ diff }: { diff: TraceDiff }) {
  const scroller = useRef<HTMLDivElement>(null);
  const virtual = useVirtualizer({
    count: diff.nodes.length,
    getScrollElement: () => scroller.current,
    estimateSize: () => ROW,
    overscan: 12,
  });
  return (
    <div className="vtable diff-tree" role="table" aria-label="Structure">
      <div className="vtable-head" role="row">
        <div role="columnheader">Span</div>
        <div role="columnheader">Status</div>
        <div role="columnheader" className="num">Spans A</div>
        <div role="columnheader" className="num">Spans B</div>
        <div role="columnheader" className="num">Duration A</div>
        <div role="columnheader" className="num">Duration B</div>
        <div role="columnheader" className="num">Delta</div>
      </div>
      <div className="vtable-body" ref={scroller}>
        <div style={{ height: virtual.getTotalSize(), position: 'relative' }}>
          {virtual.getVirtualItems().map((item) => (
            <DiffRow key={diff.nodes[item.index].id} node={diff.nodes[item.index]} top={item.start} />
          ))}
        </div>
      </div>
    </div>
  );
}

function DiffRow({ node, top }: { node: DiffNode; top: number }) {
  const delta = node.a && node.b ? node.b.span.duration - node.a.span.duration : null;
  return (
    <div role="row" className={`vtable-row diff-${node.status}`} data-status={node.status}
      style={{ height: ROW, transform: `translateY(${top}px)` }}>
      <div role="cell" style={{ paddingLeft: 8 + Math.min(node.depth, 40) * 14 }} title={diffLabel(node)}>
        <span className="diff-mark" aria-hidden>{node.status === 'added' ? '+' : node.status === 'removed' ? '−' : '·'}</span>
        {diffLabel(node)}
      </div>
      <div role="cell"><span className={`diff-badge diff-${node.status}`}>{STATUS_TEXT[node.status]}</span></div>
      <div role="cell" className="num">{node.spansA}</div>
      <div role="cell" className="num">{node.spansB}</div>
      <div role="cell" className="num">{node.a ? formatDuration(node.a.span.duration) : ''}</div>
      <div role="cell" className="num">{node.b ? formatDuration(node.b.span.duration) : ''}</div>
      <div role="cell" className={`num ${delta === null ? '' : delta > 0 ? 'slower' : delta < 0 ? 'faster' : ''}`}>
        {delta === null ? '' : formatDelta(delta)}
      </div>
    </div>
  );
}
