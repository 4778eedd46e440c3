// One timeline row: the span's place in the tree on the left, its bar on the right. Memoized:
// while scrolling, only rows entering the window render.
import { memo } from 'react';
import type { CriticalSegment } from '../../model/criticalPath';
import { formatDuration, type SpanNode } from '../../model/trace';
import { percentOf, type Zoom } from './zoom';

export const ROW_HEIGHT = 24;
const INDENT = 12; // px per tree level
const MAX_INDENT_LEVELS = 20; // deeper rows stop moving right and show their depth instead
const TOGGLE_WIDTH = 22; // the toggle button and the gap after it
const MAX_LOG_MARKS = 100; // a span with thousands of logs must not cost thousands of elements

interface Props {
  node: SpanNode;
  row: number; // index in model.nodes
  top: number; // px within the rows box
  color: string;
  zoom: Zoom;
  expandable: boolean;
  collapsed: boolean;
  selected: boolean;
  matched: boolean;
  critical: CriticalSegment[] | undefined;
  onToggle: (row: number) => void;
  onSelect: (row: number) => void;
}

function SpanRow(props: Props) {
  const { node, row, top, color, zoom, expandable, collapsed, selected, matched, critical, onToggle, onSelect } = props;
  const { span } = node;
  const left = percentOf(zoom, node.offset);
  const width = percentOf(zoom, node.offset + span.duration) - left;
  // The duration goes right of the bar, or left of it near the end, or inside a full-width bar.
  const place = left + width <= 80 ? 'right' : left >= 12 ? 'left' : 'inside';
  const classes = ['tl-row'];
  if (selected) classes.push('selected');
  if (matched) classes.push('match');
  if (node.error) classes.push('has-error');
  return (
    <div className={classes.join(' ')} role="row" aria-selected={selected} data-span-id={node.id} data-row={row}
      data-critical={critical ? 'true' : undefined} data-match={matched ? 'true' : undefined}
      style={{ transform: `translateY(${top}px)` }} onClick={() => onSelect(row)}>
      <div className="tl-name" role="gridcell" style={{ borderLeftColor: color, paddingLeft: indent(node.depth, expandable) }}>
        {expandable && (
          <button type="button" className="tl-toggle" aria-expanded={!collapsed}
            aria-label={collapsed ? 'Expand span' : 'Collapse span'}
            onClick={(e) => { e.stopPropagation(); onToggle(row); }}>
            {collapsed ? '▸' : '▾'}
          </button>
        )}
        {node.depth > MAX_INDENT_LEVELS && <span className="tl-depth" title="Depth in the tree">{node.depth}</span>}
        {node.error && <span className="tl-error-icon" title="Error" aria-label="error">!</span>}
        <span className="tl-service">{node.service}</span>
        <span className="tl-op" title={span.operationName}>{span.operationName}</span>
        {collapsed && <span className="tl-hidden" title="Hidden descendants">+</span>}
      </div>
      <div className="tl-track" role="gridcell">
        <div className="tl-bar" style={{ left: `${left}%`, width: `${width}%`, background: color }} />
        {critical?.map((s, i) => {
          const from = percentOf(zoom, s.start);
          return <div key={i} className="tl-critical" style={{ left: `${from}%`, width: `${percentOf(zoom, s.end) - from}%` }} />;
        })}
        {span.logs.slice(0, MAX_LOG_MARKS).map((log, i) => (
          <div key={i} className="tl-log" style={{ left: `${percentOf(zoom, node.offset + log.timestamp - span.startTime)}%` }} />
        ))}
        <span className={`tl-label ${place}`}
          style={place === 'right' ? { left: `${left + width}%` } : { right: `${place === 'left' ? 100 - left : Math.max(100 - left - width, 0)}%` }}>
          {formatDuration(span.duration)}
        </span>
      </div>
    </div>
  );
}

/** Tree indentation in px; leaves also skip the toggle's place (fewer elements per row). */
function indent(depth: number, expandable: boolean): number {
  return Math.min(depth, MAX_INDENT_LEVELS) * INDENT + (expandable ? 0 : TOGGLE_WIDTH);
}

export default memo(SpanRow);
