// Calls to the query API. Paths are relative so they follow index.html's <base href>
// (the server's `--query.base-path`).
import type { DependencyLink, Envelope, Operation, Trace } from '../model/jaeger';

export class ApiFailure extends Error {}

/** `answer`: the response to `path` when it was already asked for (index.html's prefetch). */
async function call<T>(path: string, init?: RequestInit, answer?: Promise<Response>): Promise<{ data: T; errors: Envelope<T>['errors'] }> {
  const response = await (answer ?? fetch(path, init));
  let body: Envelope<T>;
  try {
    body = (await response.json()) as Envelope<T>;
  } catch {
    throw new ApiFailure(`${response.status} ${response.statusText} from ${path}`);
  }
  if (!response.ok || body.data === null) {
    const message = body.errors?.map((e) => e.msg).join('; ') || `${response.status} ${response.statusText}`;
    throw new ApiFailure(message);
  }
  return { data: body.data, errors: body.errors };
}

export async function services(): Promise<string[]> {
  return (await call<string[]>('api/services')).data.sort();
}

export async function operations(service: string): Promise<Operation[]> {
  const path = `api/operations?service=${encodeURIComponent(service)}`;
  return (await call<Operation[]>(path)).data;
}

/** Search parameters as the Jaeger API takes them (times in µs, durations as Go strings). */
export interface SearchParams {
  service?: string;
  operation?: string;
  tags?: Record<string, string>;
  start?: number;
  end?: number;
  minDuration?: string;
  maxDuration?: string;
  limit?: number;
  traceIDs?: string[];
}

export function searchQuery(params: SearchParams): string {
  const q = new URLSearchParams();
  if (params.traceIDs?.length) {
    for (const id of params.traceIDs) q.append('traceID', id);
    return q.toString();
  }
  if (params.service) q.set('service', params.service);
  if (params.operation) q.set('operation', params.operation);
  if (params.tags && Object.keys(params.tags).length) q.set('tags', JSON.stringify(params.tags));
  if (params.start !== undefined) q.set('start', String(params.start));
  if (params.end !== undefined) q.set('end', String(params.end));
  if (params.minDuration) q.set('minDuration', params.minDuration);
  if (params.maxDuration) q.set('maxDuration', params.maxDuration);
  if (params.limit) q.set('limit', String(params.limit));
  return q.toString();
}

/** Traces found, and the ids asked for that were not (lookup by id). */
export async function searchTraces(params: SearchParams): Promise<{ traces: Trace[]; missing: string[] }> {
  const { data, errors } = await call<Trace[]>(`api/traces?${searchQuery(params)}`);
  const missing = (errors ?? []).flatMap((e) => (e.traceID ? [e.traceID] : []));
  return { traces: data, missing };
}

export async function trace(id: string, answer?: Promise<Response>): Promise<Trace> {
  const { data } = await call<Trace[]>(`api/traces/${encodeURIComponent(id)}`, undefined, answer);
  if (!data.length) throw new ApiFailure(`trace ${id} not found`);
  return data[0];
}

export async function dependencies(endTs: number, lookbackMs: number): Promise<DependencyLink[]> {
  return (await call<DependencyLink[]>(`api/dependencies?endTs=${endTs}&lookback=${lookbackMs}`)).data;
}

/** OTLP JSON (`{"resourceSpans": [...]}`) turned into Jaeger traces by the server. */
export async function transform(otlpJson: string): Promise<Trace[]> {
  const init = { method: 'POST', body: otlpJson, headers: { 'Content-Type': 'application/json' } };
  return (await call<Trace[]>('api/transform', init)).data;
}
