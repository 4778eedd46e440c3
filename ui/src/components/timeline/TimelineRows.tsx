// The scrolling part of the timeline: the time scale and the rows on screen. Scrolling
// re-renders only this component, and of its rows only those that came into view.
import { useVirtualizer } from '@tanstack/react-virtual';
import { memo, useCallback, useEffect, useLayoutEffect, useRef } from 'react';
import type { CriticalPath } from '../../model/criticalPath';
import type { TraceModel } from '../../model/trace';
import SpanRow, { ROW_HEIGHT } from './SpanRow';
import TimeRuler from './TimeRuler';
import { hasChildren, positionOf, type TreeIndex } from './tree';
import type { Zoom } from './zoom';

const RULER_HEIGHT = 26; // the sticky time scale at the top of the scroll box

export type Align = 'auto' | 'center';

export interface ScrollTarget {
  row: number;
  align: Align;
}

interface Props {
  model: TraceModel;
  tree: TreeIndex;
  rows: Int32Array; // visible rows, ascending
  collapsed: ReadonlySet<number>;
  selected: number;
  matchFlags: Uint8Array; // 1 for rows matching the search
  critical: CriticalPath;
  colors: Map<string, string>;
  zoom: Zoom;
  scrollTarget: ScrollTarget | null;
  onScrolled: () => void;
  onToggle: (row: number) => void;
  onSelect: (row: number) => void;
  onResizeName: (percent: number) => void;
}

function TimelineRows(props: Props) {
  const { model, tree, rows, collapsed, selected, matchFlags, critical, colors, zoom, scrollTarget, onScrolled } = props;
  const scroller = useRef<HTMLDivElement>(null);
  const virtualizer = useVirtualizer({
    count: rows.length,
    getScrollElement: () => scroller.current,
    estimateSize: () => ROW_HEIGHT,
    getItemKey: useCallback((i: number) => rows[i], [rows]),
    overscan: 6, // enough for smooth wheel scrolling; every extra row costs on each fast frame
    scrollMargin: RULER_HEIGHT,
    scrollPaddingStart: RULER_HEIGHT,
  });

  useLayoutEffect(() => {
    if (!scrollTarget) return;
    const position = positionOf(rows, scrollTarget.row);
    if (position >= 0) virtualizer.scrollToIndex(position, { align: scrollTarget.align });
    onScrolled();
  }, [scrollTarget, rows, virtualizer, onScrolled]);

  const items = virtualizer.getVirtualItems();
  useFirstPaintMark(items.length > 0);
  return (
    <div className="tl-scroll" ref={scroller} role="grid" aria-label="Spans" aria-rowcount={rows.length}>
      <TimeRuler zoom={zoom} onResizeName={props.onResizeName} />
      <div className="tl-rows" style={{ height: virtualizer.getTotalSize() }}>
        <div className="tl-grid" aria-hidden />
        {items.map((item) => {
          const row = rows[item.index];
          const node = model.nodes[row];
          return (
            <SpanRow key={row} node={node} row={row} top={item.start - RULER_HEIGHT} color={colors.get(node.service)!}
              zoom={zoom} expandable={hasChildren(tree, row)} collapsed={collapsed.has(row)}
              selected={row === selected} matched={matchFlags[row] === 1} critical={critical.get(node.id)}
              onToggle={props.onToggle} onSelect={props.onSelect} />
          );
        })}
      </div>
    </div>
  );
}

export default memo(TimelineRows);

/** `trace-rendered` once the first rows are on screen: the browser tests time opening with it. */
function useFirstPaintMark(ready: boolean): void {
  const done = useRef(false);
  useEffect(() => {
    if (!ready || done.current) return;
    done.current = true;
    // The frame after this commit has painted when a task queued from its rAF callback runs.
    requestAnimationFrame(() => setTimeout(() => performance.mark('trace-rendered'), 0));
  }, [ready]);
}
