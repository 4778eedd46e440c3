import { lazy, Suspense, useRef, useState, type FormEvent } from 'react';
import { Navigate, NavLink, Route, Routes, useNavigate } from 'react-router';
import { tracesFromFile } from './api/files';
import TracePage from './pages/TracePage';
import { addLoaded } from './state/loaded';

// The other pages load on first use: a link straight to a large trace then waits only for the
// trace page's code (the search page's chart and the graph layout are a third of the bundle).
const SearchPage = lazy(() => import('./pages/SearchPage'));
const ComparePage = lazy(() => import('./pages/ComparePage'));
const ServiceGraphPage = lazy(() => import('./pages/ServiceGraphPage'));

export default function App() {
  return (
    <div className="app">
      <TopNav />
      <main className="page">
        <Suspense fallback={<p className="empty">Loading…</p>}>
          <Routes>
            <Route path="/" element={<Navigate to="/search" replace />} />
            <Route path="/search" element={<SearchPage />} />
            <Route path="/trace/:id" element={<TracePage />} />
            <Route path="/compare" element={<ComparePage />} />
            <Route path="/dependencies" element={<ServiceGraphPage />} />
            <Route path="*" element={<p className="empty">No page here. <NavLink to="/search">Search traces</NavLink></p>} />
          </Routes>
        </Suspense>
      </main>
    </div>
  );
}

function TopNav() {
  const navigate = useNavigate();
  const [lookup, setLookup] = useState('');
  const [fileError, setFileError] = useState('');
  const fileInput = useRef<HTMLInputElement>(null);

  function onLookup(event: FormEvent) {
    event.preventDefault();
    const ids = lookup.split(/[\s,]+/).filter(Boolean);
    if (ids.length === 1) navigate(`/trace/${ids[0]}`);
    else if (ids.length > 1) navigate(`/search?${ids.map((id) => `traceID=${encodeURIComponent(id)}`).join('&')}`);
  }

  async function onFiles(files: FileList | null) {
    setFileError('');
    if (!files?.length) return;
    try {
      const traces = (await Promise.all([...files].map(async (f) => tracesFromFile(await f.text())))).flat();
      addLoaded(traces);
      navigate(traces.length === 1 ? `/trace/${traces[0].traceID}` : '/search?opened=1');
    } catch (err) {
      setFileError(err instanceof Error ? err.message : String(err));
    } finally {
      if (fileInput.current) fileInput.current.value = '';
    }
  }

  return (
    <header className="topnav">
      <NavLink to="/search" className="brand">tracemesh</NavLink>
      <nav>
        <NavLink to="/search">Search</NavLink>
        <NavLink to="/compare">Compare</NavLink>
        <NavLink to="/dependencies">Service graph</NavLink>
      </nav>
      <div className="spacer" />
      <button type="button" onClick={() => fileInput.current?.click()} title="View Jaeger JSON or OTLP JSON files offline">
        Open JSON…
      </button>
      <input ref={fileInput} type="file" accept=".json,.jsonl,application/json" multiple hidden
        data-testid="open-file" onChange={(e) => void onFiles(e.target.files)} />
      {fileError && <span className="error-text" role="alert">{fileError}</span>}
      <form onSubmit={onLookup} className="lookup">
        <input value={lookup} onChange={(e) => setLookup(e.target.value)} placeholder="Lookup by trace ID…"
          aria-label="Lookup by trace ID" />
      </form>
    </header>
  );
}
