// `/trace/:id`: one trace, its header, and a switch between views of it. The model is built once;
// the timeline stays mounted behind the other views so its tree, zoom and selection survive.
import { lazy, Suspense, type ComponentType } from 'react';
import { useParams, useSearchParams } from 'react-router';
import Timeline from '../components/timeline/Timeline';
import TraceHeader from '../components/trace/TraceHeader';
import { prefetchTraceOfLocation, useTrace } from '../components/trace/useTrace';
import ViewTabs, { viewName, type ViewName } from '../components/trace/ViewTabs';
import type { TraceModel } from '../model/trace';

// Views other than the timeline load when first shown, so opening a trace waits only for it.
const OTHER_VIEWS: Record<Exclude<ViewName, 'timeline'>, ComponentType<{ model: TraceModel }>> = {
  table: lazy(() => import('../views/TraceSpanTable')),
  statistics: lazy(() => import('../views/TraceStatistics')),
  flamegraph: lazy(() => import('../views/TraceFlameGraph')),
  graph: lazy(() => import('../views/TraceGraph')),
};

prefetchTraceOfLocation(); // once, as the app boots: a deep link's trace starts loading right away

export default function TracePage() {
  const { id = '' } = useParams();
  const [params, setParams] = useSearchParams();
  const { model, offline, error } = useTrace(id);
  const view = viewName(params.get('view'));

  function showView(next: ViewName) {
    setParams((p) => {
      if (next === 'timeline') p.delete('view');
      else p.set('view', next);
      p.delete('span'); // a later `?span=` link (from the span table) must count as new
      return p;
    });
  }

  if (error) return <p className="empty error" role="alert">Could not load trace {id}: {error}</p>;
  if (!model) return <p className="empty">Loading trace {id}…</p>;
  const Other = view === 'timeline' ? null : OTHER_VIEWS[view];
  return (
    <div className="trace-page">
      <TraceHeader model={model} offline={offline} />
      <ViewTabs view={view} onChange={showView} />
      <div className="trace-view" role="tabpanel">
        <Timeline key={model.traceID} model={model} active={view === 'timeline'} focusId={params.get('span')} />
        {Other && (
          <div className="trace-other-view">
            <Suspense fallback={<p className="empty">Loading…</p>}><Other model={model} /></Suspense>
          </div>
        )}
      </div>
    </div>
  );
}
