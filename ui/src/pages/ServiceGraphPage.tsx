// Which services call which, from `/api/dependencies` over a chosen lookback. A service opens
// the search page for it.
import { useEffect, useMemo, useState } from 'react';
import { useNavigate, useSearchParams } from 'react-router';
import { dependencies } from '../api/client';
import type { DependencyLink } from '../model/jaeger';
import { dependencyGraph, type GraphNode } from '../model/graph';
import GraphView from '../views/GraphView';

const HOUR = 3_600_000;
const LOOKBACKS: Array<[string, string, number]> = [
  ['1h', 'Last hour', HOUR],
  ['6h', 'Last 6 hours', 6 * HOUR],
  ['24h', 'Last 24 hours', 24 * HOUR],
  ['2d', 'Last 2 days', 48 * HOUR],
  ['7d', 'Last 7 days', 168 * HOUR],
];
const DEFAULT_LOOKBACK = '24h';

const noDetails = () => [];

export default function ServiceGraphPage() {
  const navigate = useNavigate();
  const [params, setParams] = useSearchParams();
  const lookback = LOOKBACKS.find(([key]) => key === params.get('lookback')) ?? LOOKBACKS.find(([key]) => key === DEFAULT_LOOKBACK)!;
  const [links, setLinks] = useState<DependencyLink[] | null>(null);
  const [error, setError] = useState('');
  const [reload, setReload] = useState(0);

  useEffect(() => {
    let current = true;
    setLinks(null);
    setError('');
    dependencies(Date.now(), lookback[2]).then(
      (found) => current && setLinks(found),
      (err: unknown) => current && setError(err instanceof Error ? err.message : String(err)),
    );
    return () => {
      current = false;
    };
  }, [lookback, reload]);

  const graph = useMemo(() => (links ? dependencyGraph(links) : null), [links]);

  function choose(key: string) {
    const next = new URLSearchParams(params);
    if (key === DEFAULT_LOOKBACK) next.delete('lookback');
    else next.set('lookback', key);
    setParams(next);
  }

  return (
    <div className="service-graph-page">
      <div className="view-toolbar">
        <h2>Service graph</h2>
        <label>
          Lookback{' '}
          <select value={lookback[0]} onChange={(e) => choose(e.target.value)} aria-label="Lookback">
            {LOOKBACKS.map(([key, label]) => <option key={key} value={key}>{label}</option>)}
          </select>
        </label>
        <button type="button" onClick={() => setReload((n) => n + 1)}>Refresh</button>
        {graph && graph.edges.length > 0 && (
          <span className="muted">{graph.nodes.length} services, {graph.edges.length} links. Click a service to search its traces.</span>
        )}
      </div>
      {error && <p className="error" role="alert">{error}</p>}
      {!graph && !error && <p className="empty">Loading dependencies…</p>}
      {graph && graph.edges.length === 0 && (
        <p className="empty">No service dependencies in the {lookback[1].toLowerCase()}: no span with a parent in its trace.</p>
      )}
      {graph && graph.edges.length > 0 && (
        <GraphView graph={graph} label="Service dependencies" details={noDetails}
          onNodeClick={(node: GraphNode) => navigate(`/search?service=${encodeURIComponent(node.service)}`)} />
      )}
    </div>
  );
}
