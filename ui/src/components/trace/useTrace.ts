// Loads one trace for the trace page: a file opened offline first, else the server's. The model
// is built once per trace; performance marks let the browser tests time each step.
import { useEffect, useState } from 'react';
import { trace as fetchTrace } from '../../api/client';
import type { Trace } from '../../model/jaeger';
import { buildTrace, type TraceModel } from '../../model/trace';
import { loadedTrace } from '../../state/loaded';

export interface TraceState {
  id: string;
  model: TraceModel | null;
  offline: boolean; // opened from a file: the server may not know it
  error: string;
}

export const MARKS = ['trace-fetched', 'trace-built', 'trace-rendered'] as const;

const early = new Map<string, Promise<Trace>>();

declare global {
  interface Window {
    /** The trace index.html asked for before this code loaded, when the page opened on one. */
    __tracemeshPrefetch?: { id: string; response: Promise<Response> };
  }
}

/** When the app opens on `/trace/<id>`, ask for the trace at once: the request (the slow part for
 * a huge trace) then runs while the bundle finishes loading and React renders for the first time.
 * index.html has usually asked already, before the bundle even started to load: take its answer. */
export function prefetchTraceOfLocation(): void {
  const base = new URL(document.baseURI).pathname.replace(/\/$/, '');
  const path = location.pathname.startsWith(base) ? location.pathname.slice(base.length) : location.pathname;
  const match = /^\/trace\/([^/]+)\/?$/.exec(path);
  if (!match) return;
  const id = decodeURIComponent(match[1]);
  const asked = window.__tracemeshPrefetch;
  window.__tracemeshPrefetch = undefined;
  const request = fetchTrace(id, asked?.id === id ? asked.response : undefined);
  request.catch(() => undefined); // reported when the page takes it
  early.set(id, request);
}

export function useTrace(id: string): TraceState {
  const [state, setState] = useState<TraceState>({ id: '', model: null, offline: false, error: '' });
  useEffect(() => {
    let current = true; // a newer id wins over a slow earlier answer
    for (const mark of MARKS) performance.clearMarks(mark);
    const offline = loadedTrace(id);
    const prefetched = early.get(id);
    early.delete(id);
    (offline ? Promise.resolve(offline) : prefetched ?? fetchTrace(id)).then(
      (trace) => {
        if (!current) return;
        performance.mark('trace-fetched');
        const model = buildTrace(trace);
        performance.mark('trace-built');
        setState({ id, model, offline: Boolean(offline), error: '' });
      },
      (err: unknown) => current && setState({ id, model: null, offline: false, error: err instanceof Error ? err.message : String(err) }),
    );
    return () => {
      current = false;
    };
  }, [id]);
  return state.id === id ? state : { id, model: null, offline: false, error: '' };
}
