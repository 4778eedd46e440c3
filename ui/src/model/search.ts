// The Search page's logic, kept free of React so it can be unit tested: tags in logfmt, Go
// durations, lookback presets, the URL <-> query mapping (the URL holds the whole search, so a
// reload, a shared link or the back button gives the same results) and per-trace summaries.
import type { SearchParams } from '../api/client';
import type { Trace } from './jaeger';
import { isError, parentId } from './trace';

export type Result<T> = { ok: true; value: T } | { ok: false; error: string };

// ---- tags in logfmt: `error=true http.status_code=500 msg="two words"` ----------------------

/** Tags typed as logfmt. Values may be double-quoted (with `\"`, `\\`, `\n`, `\t` escapes);
 * a key without `=value`, an unclosed quote or a stray quote is an error saying where. */
export function parseLogfmt(text: string): Result<Record<string, string>> {
  const tags: Record<string, string> = {};
  let i = 0;
  const n = text.length;
  const space = (c: string) => c === ' ' || c === '\t' || c === '\n' || c === '\r';
  while (i < n) {
    while (i < n && space(text[i])) i++;
    if (i >= n) break;
    const keyStart = i;
    while (i < n && !space(text[i]) && text[i] !== '=' && text[i] !== '"') i++;
    const key = text.slice(keyStart, i);
    if (!key) return fail(`expected a key at position ${i + 1}`);
    if (text[i] !== '=') return fail(`expected key=value, got "${key}"`);
    i++; // past '='
    let value = '';
    if (text[i] === '"') {
      i++;
      let closed = false;
      while (i < n) {
        const c = text[i++];
        if (c === '"') { closed = true; break; }
        if (c === '\\' && i < n) {
          const e = text[i++];
          value += e === 'n' ? '\n' : e === 't' ? '\t' : e;
        } else value += c;
      }
      if (!closed) return fail(`unclosed quote in the value of "${key}"`);
      if (i < n && !space(text[i])) return fail(`expected a space after the quoted value of "${key}"`);
    } else {
      const valueStart = i;
      while (i < n && !space(text[i])) i++;
      value = text.slice(valueStart, i);
      if (!value) return fail(`missing value for "${key}" (use ${key}="" for an empty one)`);
      if (value.includes('"')) return fail(`stray quote in the value of "${key}"`);
    }
    tags[key] = value;
  }
  return { ok: true, value: tags };
}

/** The inverse of parseLogfmt: values quoted only when they need it. */
export function formatLogfmt(tags: Record<string, string>): string {
  return Object.entries(tags)
    .map(([k, v]) => (v === '' || /[\s"\\=]/.test(v) ? `${k}=${JSON.stringify(v)}` : `${k}=${v}`))
    .join(' ');
}

function fail<T>(error: string): Result<T> {
  return { ok: false, error };
}

// ---- Go durations (`100ms`, `1.2s`, `1h30m`), as the API's minDuration/maxDuration take them --

const DURATION_UNITS: Record<string, number> = {
  ns: 0.001, us: 1, 'µs': 1, 'μs': 1, ms: 1_000, s: 1_000_000, m: 60_000_000, h: 3_600_000_000,
};
const DURATION_PART = /^(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)/;

/** µs, or null when `text` is not a (non-negative) Go duration. */
export function parseGoDuration(text: string): number | null {
  let rest = text.trim();
  if (rest === '0') return 0;
  if (!rest) return null;
  let total = 0;
  while (rest) {
    const m = DURATION_PART.exec(rest);
    if (!m) return null;
    total += Number(m[1]) * DURATION_UNITS[m[2]];
    rest = rest.slice(m[0].length);
  }
  return total;
}

/** An error message for a duration field, or null when it is empty or valid. */
export function durationError(text: string): string | null {
  if (!text.trim()) return null;
  return parseGoDuration(text) === null ? `"${text.trim()}" is not a duration (try 100ms, 1.2s, 2m)` : null;
}

// ---- lookback presets and custom ranges -----------------------------------------------------

export const LOOKBACKS: readonly { value: string; label: string }[] = [
  ['5m', 'Last 5 minutes'], ['15m', 'Last 15 minutes'], ['30m', 'Last 30 minutes'], ['1h', 'Last hour'],
  ['2h', 'Last 2 hours'], ['3h', 'Last 3 hours'], ['6h', 'Last 6 hours'], ['12h', 'Last 12 hours'],
  ['24h', 'Last 24 hours'], ['2d', 'Last 2 days'], ['3d', 'Last 3 days'], ['5d', 'Last 5 days'],
  ['7d', 'Last 7 days'],
].map(([value, label]) => ({ value, label }));
export const DEFAULT_LOOKBACK = '1h';
export const CUSTOM = 'custom';
export const DEFAULT_LIMIT = 20;

const LOOKBACK_UNIT_MS: Record<string, number> = { m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Milliseconds in a lookback like `15m`, `6h`, `2d`; null for anything else. */
export function lookbackMs(lookback: string): number | null {
  const m = /^(\d+)([mhd])$/.exec(lookback);
  return m ? Number(m[1]) * LOOKBACK_UNIT_MS[m[2]] : null;
}

/** The window a lookback covers, ending now, in µs since the epoch (the API's units). */
export function lookbackRange(lookback: string, nowMs: number): { start: number; end: number } {
  const span = lookbackMs(lookback) ?? lookbackMs(DEFAULT_LOOKBACK)!;
  return { start: (nowMs - span) * 1000, end: nowMs * 1000 };
}

const pad = (n: number) => String(n).padStart(2, '0');

/** µs since the epoch as the values of `<input type=date>` and `<input type=time>` (local time). */
export function toLocalInputs(us: number): { date: string; time: string } {
  const d = new Date(us / 1000);
  return {
    date: `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`,
    time: `${pad(d.getHours())}:${pad(d.getMinutes())}`,
  };
}

/** Local date (YYYY-MM-DD) and time (HH:MM or HH:MM:SS) as µs since the epoch, or null. */
export function fromLocalInputs(date: string, time: string): number | null {
  const d = /^(\d{4})-(\d{2})-(\d{2})$/.exec(date);
  const t = /^(\d{2}):(\d{2})(?::(\d{2}))?$/.exec(time || '00:00');
  if (!d || !t) return null;
  const when = new Date(+d[1], +d[2] - 1, +d[3], +t[1], +t[2], +(t[3] ?? 0));
  return Number.isNaN(when.getTime()) ? null : when.getTime() * 1000;
}

// ---- the query, the URL and the form --------------------------------------------------------

export interface TraceSearchQuery {
  service: string;
  operation: string; // '' for all
  tags: Record<string, string>;
  lookback: string; // a preset, or CUSTOM
  start: number; // µs
  end: number; // µs
  minDuration: string; // Go duration or ''
  maxDuration: string;
  limit: number;
}

/** What the Search page shows, as its URL says. */
export type PageQuery =
  | { mode: 'empty' } // nothing asked yet: just the form
  | { mode: 'search'; search: TraceSearchQuery }
  | { mode: 'ids'; traceIDs: string[] } // `?traceID=a&traceID=b`
  | { mode: 'opened' } // `?opened=1`: the files opened offline
  | { mode: 'invalid'; errors: string[] }; // a hand-edited URL we cannot search with

export type SortOrder = 'recent' | 'longest' | 'shortest' | 'most-spans' | 'fewest-spans';
export const SORT_ORDERS: readonly { value: SortOrder; label: string }[] = [
  { value: 'recent', label: 'Most recent' },
  { value: 'longest', label: 'Longest first' },
  { value: 'shortest', label: 'Shortest first' },
  { value: 'most-spans', label: 'Most spans' },
  { value: 'fewest-spans', label: 'Fewest spans' },
];

export function parseSort(text: string | null): SortOrder {
  return SORT_ORDERS.find((s) => s.value === text)?.value ?? 'recent';
}

/** The URL's query string as a search. Start/end are kept in the URL when searching, so the
 * same window is searched again on reload; a URL with only a lookback is resolved against now. */
export function queryFromUrl(params: URLSearchParams, nowMs: number): PageQuery {
  if (params.get('opened') === '1') return { mode: 'opened' };
  const ids = params.getAll('traceID').flatMap((v) => v.split(/[\s,]+/)).filter(Boolean);
  if (ids.length) return { mode: 'ids', traceIDs: [...new Set(ids)] };
  const service = params.get('service') ?? '';
  if (!service) return { mode: 'empty' };

  const errors: string[] = [];
  const lookback = params.get('lookback') || DEFAULT_LOOKBACK;
  const startText = params.get('start');
  const endText = params.get('end');
  let { start, end } = lookbackRange(lookback, nowMs);
  if (startText && endText && /^\d+$/.test(startText) && /^\d+$/.test(endText)) {
    start = Number(startText);
    end = Number(endText);
  } else if (lookback === CUSTOM || lookbackMs(lookback) === null) {
    errors.push(`a custom time range needs numeric start and end (µs); got start=${startText ?? ''} end=${endText ?? ''}`);
  }
  let tags: Record<string, string> = {};
  const tagsText = params.get('tags');
  if (tagsText) {
    const parsed = tagsFromUrl(tagsText);
    if (parsed.ok) tags = parsed.value;
    else errors.push(`tags: ${parsed.error}`);
  }
  const minDuration = params.get('minDuration') ?? '';
  const maxDuration = params.get('maxDuration') ?? '';
  for (const [name, text] of [['minDuration', minDuration], ['maxDuration', maxDuration]]) {
    const err = durationError(text);
    if (err) errors.push(`${name}: ${err}`);
  }
  const limitText = params.get('limit');
  const limit = limitText ? Number(limitText) : DEFAULT_LIMIT;
  if (!Number.isInteger(limit) || limit < 1) errors.push(`limit must be a positive whole number, got ${limitText}`);
  if (errors.length) return { mode: 'invalid', errors };
  return {
    mode: 'search',
    search: { service, operation: params.get('operation') ?? '', tags, lookback, start, end, minDuration, maxDuration, limit },
  };
}

/** Tags in the URL are a JSON object of strings (as Jaeger's UI writes them); logfmt is accepted
 * too, for hand-written links. */
function tagsFromUrl(text: string): Result<Record<string, string>> {
  if (text.trim().startsWith('{')) {
    try {
      const value: unknown = JSON.parse(text);
      if (value && typeof value === 'object' && !Array.isArray(value)) {
        const entries = Object.entries(value as Record<string, unknown>);
        if (entries.every(([, v]) => typeof v === 'string')) return { ok: true, value: Object.fromEntries(entries) as Record<string, string> };
      }
      return fail('expected a JSON object of strings');
    } catch {
      return fail('not valid JSON');
    }
  }
  return parseLogfmt(text);
}

/** A query as the URL's query string (the inverse of queryFromUrl). */
export function queryToUrl(query: PageQuery, sort: SortOrder = 'recent'): URLSearchParams {
  const q = new URLSearchParams();
  if (query.mode === 'opened') q.set('opened', '1');
  else if (query.mode === 'ids') for (const id of query.traceIDs) q.append('traceID', id);
  else if (query.mode === 'search') {
    const s = query.search;
    q.set('service', s.service);
    if (s.operation) q.set('operation', s.operation);
    if (Object.keys(s.tags).length) q.set('tags', JSON.stringify(s.tags));
    q.set('lookback', s.lookback);
    q.set('start', String(s.start));
    q.set('end', String(s.end));
    if (s.minDuration) q.set('minDuration', s.minDuration.trim());
    if (s.maxDuration) q.set('maxDuration', s.maxDuration.trim());
    q.set('limit', String(s.limit));
  }
  if (sort !== 'recent' && query.mode !== 'empty') q.set('sort', sort);
  return q;
}

/** The API's parameters for a search. */
export function apiParams(search: TraceSearchQuery): SearchParams {
  return {
    service: search.service,
    operation: search.operation || undefined,
    tags: search.tags,
    start: search.start,
    end: search.end,
    minDuration: search.minDuration || undefined,
    maxDuration: search.maxDuration || undefined,
    limit: search.limit,
  };
}

/** The form's fields, as typed (strings, so half-typed values are kept while editing). */
export interface FormFields {
  service: string;
  operation: string;
  tags: string; // logfmt
  lookback: string;
  startDate: string;
  startTime: string;
  endDate: string;
  endTime: string;
  minDuration: string;
  maxDuration: string;
  limit: string;
}

export type FormErrors = Partial<Record<keyof FormFields, string>>;

/** The form showing a query; a fresh form offers the last hour, ending now, for custom ranges. */
export function formFromQuery(query: PageQuery, nowMs: number, service = ''): FormFields {
  const s = query.mode === 'search' ? query.search : null;
  const fallback = lookbackRange(DEFAULT_LOOKBACK, nowMs);
  const from = toLocalInputs(s?.start ?? fallback.start);
  const to = toLocalInputs(s?.end ?? fallback.end);
  return {
    service: s?.service ?? service,
    operation: s?.operation ?? '',
    tags: s ? formatLogfmt(s.tags) : '',
    lookback: s?.lookback ?? DEFAULT_LOOKBACK,
    startDate: from.date,
    startTime: from.time,
    endDate: to.date,
    endTime: to.time,
    minDuration: s?.minDuration ?? '',
    maxDuration: s?.maxDuration ?? '',
    limit: String(s?.limit ?? DEFAULT_LIMIT),
  };
}

/** The form for the page's URL: a URL we could not search with is still shown as written, so
 * its mistakes can be fixed in place. */
export function formFromUrl(params: URLSearchParams, query: PageQuery, nowMs: number): FormFields {
  const form = formFromQuery(query, nowMs);
  if (query.mode !== 'invalid') return form;
  const tagsText = params.get('tags') ?? '';
  const tags = tagsText ? tagsFromUrl(tagsText) : null;
  return {
    ...form,
    service: params.get('service') ?? '',
    operation: params.get('operation') ?? '',
    tags: tags?.ok ? formatLogfmt(tags.value) : tagsText,
    lookback: params.get('lookback') || DEFAULT_LOOKBACK,
    minDuration: params.get('minDuration') ?? '',
    maxDuration: params.get('maxDuration') ?? '',
    limit: params.get('limit') ?? String(DEFAULT_LIMIT),
  };
}

/** The form's fields checked and turned into a query; presets are resolved against now. */
export function queryFromForm(form: FormFields, nowMs: number): { query: TraceSearchQuery | null; errors: FormErrors } {
  const errors: FormErrors = {};
  if (!form.service) errors.service = 'Pick a service';
  const tags = parseLogfmt(form.tags);
  if (!tags.ok) errors.tags = tags.error;
  let range = lookbackRange(form.lookback, nowMs);
  if (form.lookback === CUSTOM) {
    const start = fromLocalInputs(form.startDate, form.startTime);
    const end = fromLocalInputs(form.endDate, form.endTime);
    if (start === null) errors.startDate = 'Enter a start date and time';
    if (end === null) errors.endDate = 'Enter an end date and time';
    if (start !== null && end !== null) {
      if (end <= start) errors.endDate = 'The end must be after the start';
      // the end minute is inclusive: 10:00-10:05 covers up to 10:05:59
      range = { start, end: /:\d\d:\d\d$/.test(form.endTime) ? end : end + 59_999_999 };
    }
  }
  const min = durationError(form.minDuration);
  const max = durationError(form.maxDuration);
  if (min) errors.minDuration = min;
  if (max) errors.maxDuration = max;
  if (!min && !max && form.minDuration.trim() && form.maxDuration.trim()
    && parseGoDuration(form.maxDuration)! < parseGoDuration(form.minDuration)!) {
    errors.maxDuration = 'Max duration must not be below min duration';
  }
  const limit = Number(form.limit);
  if (!/^\d+$/.test(form.limit.trim()) || limit < 1) errors.limit = 'A positive whole number';
  if (Object.keys(errors).length) return { query: null, errors };
  return {
    query: {
      service: form.service,
      operation: form.operation,
      tags: tags.ok ? tags.value : {},
      lookback: form.lookback,
      start: range.start,
      end: range.end,
      minDuration: form.minDuration.trim(),
      maxDuration: form.maxDuration.trim(),
      limit,
    },
    errors,
  };
}

// ---- the result list ------------------------------------------------------------------------

export interface ServiceCount {
  name: string;
  count: number;
}

/** What a result row shows about a trace. */
export interface TraceSummary {
  traceID: string;
  trace: Trace;
  rootService: string;
  rootOperation: string;
  start: number; // µs since the epoch
  duration: number; // µs, first start to last end
  spans: number;
  errors: number; // spans with an error
  services: ServiceCount[]; // by name
}

/** One pass over the spans (cheap even for 40,000 of them; no tree is built). The root is the
 * earliest span whose parent is not in the trace. */
export function summarize(trace: Trace): TraceSummary {
  const ids = new Set(trace.spans.map((s) => s.spanID));
  const counts = new Map<string, number>();
  let start = Infinity;
  let end = -Infinity;
  let errors = 0;
  let root: Trace['spans'][number] | undefined;
  for (const span of trace.spans) {
    const service = trace.processes[span.processID]?.serviceName ?? 'unknown';
    counts.set(service, (counts.get(service) ?? 0) + 1);
    start = Math.min(start, span.startTime);
    end = Math.max(end, span.startTime + span.duration);
    if (isError(span)) errors += 1;
    const pid = parentId(span);
    const isRoot = pid === null || pid === span.spanID || !ids.has(pid);
    if (isRoot && (!root || span.startTime < root.startTime)) root = span;
  }
  // every span has a parent in the trace (a cycle): fall back to the earliest
  if (!root && trace.spans.length) root = trace.spans.reduce((a, s) => (s.startTime < a.startTime ? s : a));
  if (!trace.spans.length) start = end = 0;
  return {
    traceID: trace.traceID,
    trace,
    rootService: root ? trace.processes[root.processID]?.serviceName ?? 'unknown' : 'unknown',
    rootOperation: root?.operationName ?? '(no spans)',
    start,
    duration: end - start,
    spans: trace.spans.length,
    errors,
    services: [...counts].map(([name, count]) => ({ name, count })).sort((a, b) => a.name.localeCompare(b.name)),
  };
}

const COMPARE: Record<SortOrder, (a: TraceSummary, b: TraceSummary) => number> = {
  recent: (a, b) => b.start - a.start,
  longest: (a, b) => b.duration - a.duration,
  shortest: (a, b) => a.duration - b.duration,
  'most-spans': (a, b) => b.spans - a.spans,
  'fewest-spans': (a, b) => a.spans - b.spans,
};

/** A sorted copy; ties go to the most recent, then by id, so the order is stable. */
export function sortSummaries(list: readonly TraceSummary[], order: SortOrder): TraceSummary[] {
  const by = COMPARE[order];
  return [...list].sort((a, b) => by(a, b) || b.start - a.start || a.traceID.localeCompare(b.traceID));
}

const RELATIVE_UNITS: [Intl.RelativeTimeFormatUnit, number][] = [
  ['day', 86_400_000], ['hour', 3_600_000], ['minute', 60_000], ['second', 1000],
];
const relativeFormat = new Intl.RelativeTimeFormat('en', { numeric: 'auto' });

/** "3 minutes ago", "yesterday", "now". */
export function formatRelative(us: number, nowMs: number): string {
  const diff = us / 1000 - nowMs;
  for (const [unit, ms] of RELATIVE_UNITS) {
    if (Math.abs(diff) >= ms) return relativeFormat.format(Math.round(diff / ms), unit);
  }
  return 'just now';
}

/** A file name for downloaded results, as Jaeger's UI names them. */
export function downloadName(nowMs: number): string {
  return `traces-${nowMs}.json`;
}
