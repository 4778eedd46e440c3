// The waterfall: a collapsible span tree with bars on a shared time axis, virtualized so only
// the rows on screen exist (a 40,000-span trace costs the same to scroll as a 40-span one).
// Everything derived from the model is computed once per trace; collapsing only re-scans rows.
import { useCallback, useDeferredValue, useEffect, useMemo, useRef, useState, type CSSProperties } from 'react';
import { criticalPath } from '../../model/criticalPath';
import { serviceColor } from '../../model/colors';
import type { TraceModel } from '../../model/trace';
import KeyboardHelp from '../trace/KeyboardHelp';
import SpanDetails from '../trace/SpanDetails';
import Minimap from './Minimap';
import { spanSearcher } from './spanSearch';
import TimelineRows, { type Align, type ScrollTarget } from './TimelineRows';
import TimelineToolbar from './TimelineToolbar';
import { collapseAll, hasChildren, positionOf, reveal, toggle, treeIndex, visibleRows, type TreeIndex } from './tree';
import { useKeys } from './useKeys';
import type { Zoom } from './zoom';

const NONE: ReadonlySet<number> = new Set();

interface Props {
  model: TraceModel;
  active: boolean; // shown (the page keeps it mounted behind other views to keep its state)
  focusId: string | null; // a span to select and scroll to: `?span=` deep links
}

interface Selection {
  row: number; // index in model.nodes, -1 for none
  details: boolean;
}

export default function Timeline({ model, active, focusId }: Props) {
  const tree = useMemo(() => treeIndex(model), [model]);
  const critical = useMemo(() => criticalPath(model), [model]);
  const search = useMemo(() => spanSearcher(model.nodes), [model]);
  const colors = useMemo(() => new Map([...model.services.keys()].map((s) => [s, serviceColor(s)])), [model]);

  const [collapsed, setCollapsed] = useState<ReadonlySet<number>>(NONE);
  const [selection, setSelection] = useState<Selection>({ row: -1, details: false });
  const [zoom, setZoom] = useState<Zoom>({ start: 0, end: model.duration });
  const [help, setHelp] = useState(false);
  const [nameWidth, setNameWidth] = useState(32); // % of a row; a CSS variable, so rows need no re-render
  const [query, setQuery] = useState('');
  const deferredQuery = useDeferredValue(query); // typing stays responsive on huge traces
  const [stepState, setStepState] = useState<{ matches: Int32Array; at: number } | null>(null);
  const [scrollTarget, setScrollTarget] = useState<ScrollTarget | null>(null);
  const searchBox = useRef<HTMLInputElement>(null);

  const rows = useMemo(() => visibleRows(tree, collapsed), [tree, collapsed]);
  const matches = useMemo(() => search(deferredQuery), [search, deferredQuery]);
  const matchFlags = useMemo(() => {
    const flags = new Uint8Array(tree.size);
    for (const row of matches) flags[row] = 1;
    return flags;
  }, [tree, matches]);
  const matchAt = stepState?.matches === matches ? stepState.at : -1; // a new query starts over

  /** Select a span, opening its collapsed ancestors, and bring it into view. */
  const goTo = useCallback((row: number, align: Align, details?: boolean) => {
    setCollapsed((c) => reveal(tree, c, row));
    setSelection((s) => ({ row, details: details ?? s.details }));
    setScrollTarget({ row, align });
  }, [tree]);
  const onScrolled = useCallback(() => setScrollTarget(null), []);

  useEffect(() => {
    const node = focusId === null ? undefined : model.byId.get(focusId);
    if (node) goTo(node.index, 'center', true);
  }, [focusId, model, goTo]);

  const onToggle = useCallback((row: number) => {
    setCollapsed((c) => toggle(c, row));
    // A selection inside the subtree being hidden moves up to the span collapsed.
    setSelection((s) => (s.row > row && s.row < tree.end[row] ? { ...s, row } : s));
  }, [tree]);

  const onSelect = useCallback((row: number) => {
    setSelection((s) => (s.row === row ? { row, details: !s.details } : { row, details: true }));
  }, []);

  const onGoToSpan = useCallback((id: string) => {
    const node = model.byId.get(id);
    if (node) goTo(node.index, 'center', true);
  }, [model, goTo]);
  const closeDetails = useCallback(() => setSelection((s) => ({ ...s, details: false })), []);

  function step(direction: 1 | -1) {
    if (!matches.length) return;
    const at = matchAt < 0 ? (direction === 1 ? 0 : matches.length - 1) : (matchAt + direction + matches.length) % matches.length;
    setStepState({ matches, at });
    goTo(matches[at], 'center');
  }

  useKeys(active, (event) => {
    switch (event.key) {
      case '/':
        searchBox.current?.focus();
        searchBox.current?.select();
        return true;
      case '?':
        setHelp((h) => !h);
        return true;
      case 'Escape':
        if (help) setHelp(false);
        else if (selection.details) closeDetails();
        else return false;
        return true;
      default:
        return navigate(event.key);
    }
  });

  /** Arrow keys and Enter over the visible rows; true when the key did something. */
  function navigate(key: string): boolean {
    if (!rows.length) return false;
    const row = selection.row;
    const at = positionOf(rows, visibleAncestor(tree, rows, row));
    switch (key) {
      case 'ArrowDown':
        goTo(rows[at < 0 ? 0 : Math.min(at + 1, rows.length - 1)], 'auto');
        return true;
      case 'ArrowUp':
        goTo(rows[at < 0 ? 0 : Math.max(at - 1, 0)], 'auto');
        return true;
      case 'ArrowLeft':
        if (row < 0) return false;
        if (hasChildren(tree, row) && !collapsed.has(row)) onToggle(row);
        else if (tree.parent[row] >= 0) goTo(tree.parent[row], 'auto');
        return true;
      case 'ArrowRight':
        if (row < 0 || !hasChildren(tree, row)) return false;
        if (collapsed.has(row)) onToggle(row);
        else goTo(row + 1, 'auto'); // the first child follows its parent
        return true;
      case 'Enter':
        if (row < 0) goTo(rows[0], 'auto', true);
        else setSelection((s) => ({ ...s, details: !s.details }));
        return true;
      default:
        return false;
    }
  }

  const zoomed = zoom.start > 0 || zoom.end < model.duration;
  const selected = selection.row >= 0 ? model.nodes[selection.row] : null;
  return (
    <section className="timeline" hidden={!active} aria-label="Timeline" style={{ '--tl-name': `${nameWidth}%` } as CSSProperties}>
      <TimelineToolbar searchBox={searchBox} query={query} onQuery={setQuery} matchCount={matches.length}
        searching={query !== deferredQuery} matchAt={matchAt} onStep={step}
        zoomed={zoomed} onResetZoom={() => setZoom({ start: 0, end: model.duration })}
        onCollapseAll={() => setCollapsed(collapseAll(tree))} onExpandAll={() => setCollapsed(NONE)}
        onHelp={() => setHelp((h) => !h)} />
      <Minimap model={model} zoom={zoom} onZoom={setZoom} />
      <div className="tl-body">
        <TimelineRows model={model} tree={tree} rows={rows} collapsed={collapsed} selected={selection.row}
          matchFlags={matchFlags} critical={critical} colors={colors} zoom={zoom}
          scrollTarget={scrollTarget} onScrolled={onScrolled} onToggle={onToggle} onSelect={onSelect}
          onResizeName={setNameWidth} />
        {selected && selection.details && (
          <SpanDetails model={model} node={selected} critical={critical.get(selected.id)}
            onGoToSpan={onGoToSpan} onClose={closeDetails} />
        )}
      </div>
      {help && <KeyboardHelp onClose={() => setHelp(false)} />}
    </section>
  );
}

/** The row itself if shown, else its nearest shown ancestor (-1 for none). */
function visibleAncestor(tree: TreeIndex, rows: Int32Array, row: number): number {
  let at = row;
  while (at >= 0 && positionOf(rows, at) < 0) at = tree.parent[at];
  return at;
}
