// Search: the form on the left, the results (scatter plot, sortable list) on the right. The URL
// is the single source of truth for the query: submitting pushes a new URL, and whatever the URL
// says (after a reload, a shared link, the back button) is what gets searched and shown.
import { useEffect, useMemo, useState } from 'react';
import { useNavigate, useSearchParams } from 'react-router';
import { services as fetchServices } from '../api/client';
import { download } from '../api/files';
import ResultItem from '../components/search/ResultItem';
import ResultsHeader from '../components/search/ResultsHeader';
import ScatterPlot from '../components/search/ScatterPlot';
import SearchForm from '../components/search/SearchForm';
import { useSearchResults, type Results } from '../components/search/useSearchResults';
import {
  downloadName, formFromUrl, parseSort, queryFromUrl, queryToUrl, sortSummaries, summarize,
  type PageQuery, type SortOrder, type TraceSearchQuery,
} from '../model/search';

export default function SearchPage() {
  const [params, setParams] = useSearchParams();
  const navigate = useNavigate();
  const sort = parseSort(params.get('sort'));
  const queryKey = useMemo(() => {
    const q = new URLSearchParams(params);
    q.delete('sort'); // the order is a view of the results, not part of what is searched
    return q.toString();
  }, [params]);
  const query = useMemo(() => queryFromUrl(new URLSearchParams(queryKey), Date.now()), [queryKey]);
  const results = useSearchResults(query, queryKey);
  const services = useServices();

  function onSearch(search: TraceSearchQuery) {
    setParams(queryToUrl({ mode: 'search', search }, sort));
  }

  function onSort(next: SortOrder) {
    const q = new URLSearchParams(params);
    if (next === 'recent') q.delete('sort');
    else q.set('sort', next);
    setParams(q, { replace: true });
  }

  return (
    <div className="search-page">
      <aside className="search-side">
        <h1>Search</h1>
        <SearchForm key={queryKey} initial={formFromUrl(new URLSearchParams(queryKey), query, Date.now())} services={services.names}
          servicesError={services.error} onSearch={onSearch} />
      </aside>
      <section className="search-results" aria-live="polite" aria-busy={results.status === 'loading'} data-query={queryKey}>
        <ResultsPane query={query} queryKey={queryKey} results={results} sort={sort} onSort={onSort}
          onOpen={(id) => navigate(`/trace/${id}`)} />
      </section>
    </div>
  );
}

interface ResultsPaneProps {
  query: PageQuery;
  queryKey: string;
  results: Results;
  sort: SortOrder;
  onSort: (sort: SortOrder) => void;
  onOpen: (traceID: string) => void;
}

function ResultsPane({ query, queryKey, results, sort, onSort, onOpen }: ResultsPaneProps) {
  const navigate = useNavigate();
  const [selection, setSelection] = useState<{ key: string; ids: string[] }>({ key: '', ids: [] });
  const selected = selection.key === queryKey ? selection.ids : [];
  const done = results.status === 'done' ? results : null;
  const summaries = useMemo(() => (done ? done.traces.map(summarize) : []), [done]);
  const sorted = useMemo(() => sortSummaries(summaries, sort), [summaries, sort]);
  const nowMs = useMemo(() => Date.now(), [summaries]); // relative times as of when results came
  const maxDuration = useMemo(() => Math.max(0, ...summaries.map((s) => s.duration)), [summaries]);

  function onSelect(id: string, on: boolean) {
    // Two at most: ticking a third lets go of the oldest pick.
    const ids = selected.filter((x) => x !== id);
    setSelection({ key: queryKey, ids: on ? [...ids, id].slice(-2) : ids });
  }

  if (results.status === 'idle') {
    return (
      <div className="search-state" data-testid="search-idle">
        <h2>Find traces</h2>
        <p>Pick a service (and optionally an operation, tags, durations) and press <b>Find Traces</b>,
          or paste trace ids into <b>Lookup by trace ID</b> above.</p>
      </div>
    );
  }
  if (results.status === 'loading') {
    const what = query.mode === 'ids' ? `Looking up ${query.traceIDs.length} trace${query.traceIDs.length === 1 ? '' : 's'}…` : 'Searching…';
    return <div className="search-state loading" data-testid="search-loading"><span className="spinner" />{what}</div>;
  }
  if (results.status === 'error') {
    return (
      <div className="search-error" role="alert" data-testid="search-error">
        <strong>The search failed</strong>
        <ul>{results.errors.map((e) => <li key={e}>{e}</li>)}</ul>
      </div>
    );
  }

  const { missing } = results;
  return (
    <>
      {query.mode === 'opened' && (
        <div className="search-notice" data-testid="opened-notice">
          {summaries.length
            ? `${summaries.length} trace${summaries.length === 1 ? '' : 's'} opened from files (kept in this tab only).`
            : 'No opened files: they are kept in the tab only until it reloads. Use "Open JSON…" above.'}
        </div>
      )}
      {missing.length > 0 && (
        <div className="search-notice warn" role="status" data-testid="missing-ids">
          Not found: {missing.map((id) => <code key={id}>{id}</code>)}
        </div>
      )}
      {summaries.length === 0 ? (
        query.mode !== 'opened' && (
          <div className="search-state" data-testid="search-empty">
            <h2>No traces found</h2>
            <p>{query.mode === 'ids' ? 'None of the trace ids exist in storage.'
              : 'Try a longer lookback, fewer tags, a wider duration range or another operation.'}</p>
          </div>
        )
      ) : (
        <>
          <ScatterPlot summaries={summaries} onOpen={onOpen} />
          <ResultsHeader count={summaries.length} sort={sort} onSort={onSort} selected={selected}
            onCompare={() => navigate(`/compare?a=${selected[0]}&b=${selected[1]}`)}
            onDownload={() => download(downloadName(Date.now()), { data: sorted.map((s) => s.trace) })} />
          <ol className="result-list" data-sort={sort}>
            {sorted.map((s) => (
              <ResultItem key={s.traceID} summary={s} maxDuration={maxDuration} nowMs={nowMs}
                selected={selected.includes(s.traceID)} onSelect={onSelect} />
            ))}
          </ol>
        </>
      )}
    </>
  );
}

/** The service list for the form, fetched once per visit to the page. */
function useServices(): { names: string[]; error: string } {
  const [state, setState] = useState({ names: [] as string[], error: '' });
  useEffect(() => {
    let live = true;
    fetchServices().then(
      (names) => live && setState({ names, error: '' }),
      (err: unknown) => live && setState({ names: [], error: `Could not load services: ${err instanceof Error ? err.message : String(err)}` }),
    );
    return () => { live = false; };
  }, []);
  return state;
}
