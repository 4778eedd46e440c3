import { useEffect, useState } from 'react';
import { trace as fetchTrace } from '../api/client';
import { loadedTrace } from '../state/loaded';
import { buildTrace, type TraceModel } from '../model/trace';

export interface Loaded {
  model: TraceModel | null;
  error: string;
  loading: boolean;
}

/** A trace by id: one opened from a file (offline) first, else the server's. '' loads nothing. */
export function useTraceModel(id: string): Loaded {
  const [state, setState] = useState<Loaded>({ model: null, error: '', loading: false });
  useEffect(() => {
    if (!id) {
      setState({ model: null, error: '', loading: false });
      return;
    }
    let current = true; // a newer id wins over a slow earlier answer
    const offline = loadedTrace(id);
    if (offline) {
      setState({ model: buildTrace(offline), error: '', loading: false });
      return;
    }
    setState({ model: null, error: '', loading: true });
    fetchTrace(id).then(
      (t) => current && setState({ model: buildTrace(t), error: '', loading: false }),
      (err: unknown) => current && setState({ model: null, error: err instanceof Error ? err.message : String(err), loading: false }),
    );
    return () => {
      current = false;
    };
  }, [id]);
  return state;
}
