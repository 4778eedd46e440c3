// Above the timeline: search within the trace (with the match count and next/previous), tree
// and zoom controls, and the keyboard help.
import type { KeyboardEvent, RefObject } from 'react';

interface Props {
  searchBox: RefObject<HTMLInputElement | null>;
  query: string;
  onQuery: (query: string) => void;
  matchCount: number;
  searching: boolean; // the matches are still for an older query
  matchAt: number; // -1 before next/previous is used
  onStep: (step: 1 | -1) => void;
  onCollapseAll: () => void;
  onExpandAll: () => void;
  zoomed: boolean;
  onResetZoom: () => void;
  onHelp: () => void;
}

export default function TimelineToolbar(props: Props) {
  const { searchBox, query, onQuery, matchCount, searching, matchAt, onStep } = props;

  function onKeyDown(event: KeyboardEvent<HTMLInputElement>) {
    if (event.key === 'Enter') {
      event.preventDefault();
      onStep(event.shiftKey ? -1 : 1);
    } else if (event.key === 'Escape') {
      if (query) onQuery('');
      else event.currentTarget.blur();
    }
  }

  return (
    <div className="tl-toolbar">
      <div className="tl-search">
        <input ref={searchBox} type="search" value={query} placeholder="Find in trace…  ( / )"
          aria-label="Find in trace" onChange={(e) => onQuery(e.target.value)} onKeyDown={onKeyDown} />
        {query.trim() && (
          <span className="tl-match-count" data-testid="match-count" aria-live="polite">
            {searching ? 'searching…' : matchAt >= 0 ? `${matchAt + 1} of ${matchCount}`
              : `${matchCount} ${matchCount === 1 ? 'match' : 'matches'}`}
          </span>
        )}
        <button type="button" className="small" onClick={() => onStep(-1)} disabled={!matchCount}
          aria-label="Previous match" title="Previous match (Shift+Enter)">↑</button>
        <button type="button" className="small" onClick={() => onStep(1)} disabled={!matchCount}
          aria-label="Next match" title="Next match (Enter)">↓</button>
      </div>
      <span className="tl-legend" title="The work that decided when the trace ended">
        <i className="tl-legend-critical" aria-hidden /> critical path
      </span>
      <div className="tl-buttons">
        <button type="button" className="small" onClick={props.onCollapseAll}>Collapse all</button>
        <button type="button" className="small" onClick={props.onExpandAll}>Expand all</button>
        {props.zoomed && <button type="button" className="small" onClick={props.onResetZoom}>Reset zoom</button>}
        <button type="button" className="small" onClick={props.onHelp} aria-label="Keyboard shortcuts" title="Keyboard shortcuts (?)">?</button>
      </div>
    </div>
  );
}
