// Above the list: how many traces, the sort order, and the actions on them.
import { SORT_ORDERS, type SortOrder } from '../../model/search';

interface ResultsHeaderProps {
  count: number;
  sort: SortOrder;
  onSort: (sort: SortOrder) => void;
  selected: string[];
  onCompare: () => void;
  onDownload: () => void;
}

export default function ResultsHeader({ count, sort, onSort, selected, onCompare, onDownload }: ResultsHeaderProps) {
  return (
    <div className="results-header">
      <h2 data-testid="result-count">{count} Trace{count === 1 ? '' : 's'}</h2>
      <div className="spacer" />
      <label className="results-sort">
        Sort
        <select value={sort} onChange={(e) => onSort(e.target.value as SortOrder)} aria-label="Sort">
          {SORT_ORDERS.map((o) => <option key={o.value} value={o.value}>{o.label}</option>)}
        </select>
      </label>
      <button type="button" onClick={onCompare} disabled={selected.length !== 2}
        title={selected.length === 2 ? 'Compare the two selected traces' : 'Tick two traces to compare them'}>
        Compare{selected.length ? ` (${selected.length}/2)` : ''}
      </button>
      <button type="button" onClick={onDownload} disabled={!count}>Download results</button>
    </div>
  );
}
