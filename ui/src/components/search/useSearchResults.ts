// Runs the search the URL describes. Keyed on the query (not the sort), and a newer query makes
// an older, slower response be ignored, so results never come back out of order.
import { useEffect, useState } from 'react';
import { searchTraces } from '../../api/client';
import type { Trace } from '../../model/jaeger';
import { apiParams, type PageQuery } from '../../model/search';
import { lastOpenedTraces } from '../../state/loaded';

export type Results =
  | { status: 'idle' }
  | { status: 'loading' }
  | { status: 'error'; errors: string[] }
  | { status: 'done'; traces: Trace[]; missing: string[] };

export function useSearchResults(query: PageQuery, key: string): Results {
  const [results, setResults] = useState<{ key: string; value: Results }>({ key: '', value: { status: 'idle' } });

  useEffect(() => {
    let live = true;
    const settle = (value: Results) => { if (live) setResults({ key, value }); };
    switch (query.mode) {
      case 'empty':
        settle({ status: 'idle' });
        break;
      case 'invalid':
        settle({ status: 'error', errors: query.errors });
        break;
      case 'opened':
        // one row per trace, even when a file held a trace twice
        settle({ status: 'done', traces: [...new Map(lastOpenedTraces().map((t) => [t.traceID, t])).values()], missing: [] });
        break;
      default: {
        setResults({ key, value: { status: 'loading' } });
        const params = query.mode === 'ids' ? { traceIDs: query.traceIDs } : apiParams(query.search);
        searchTraces(params).then(
          ({ traces, missing }) => settle({ status: 'done', traces, missing }),
          (err: unknown) => settle({ status: 'error', errors: [err instanceof Error ? err.message : String(err)] }),
        );
      }
    }
    return () => { live = false; };
    // `key` stands for `query` (a new object on every render).
  }, [key]);

  // Until the effect has run for a new key, the old results are stale: show loading instead.
  return results.key === key ? results.value : query.mode === 'empty' ? { status: 'idle' } : { status: 'loading' };
}
