import { describe, expect, it } from 'vitest';
import { serviceColor, PALETTE } from './colors';
import type { Span, Trace } from './jaeger';
import {
  durationError, formatLogfmt, formatRelative, formFromQuery, formFromUrl, fromLocalInputs, lookbackMs, lookbackRange,
  LOOKBACKS, parseGoDuration, parseLogfmt, parseSort, queryFromForm, queryFromUrl, queryToUrl, sortSummaries,
  summarize, toLocalInputs, type PageQuery, type FormFields,
} from './search';

const NOW = Date.UTC(2024, 4, 1, 12, 0, 0); // ms

describe('parseLogfmt', () => {
  it('reads bare and quoted values', () => {
    expect(parseLogfmt('error=true http.status_code=500')).toEqual({ ok: true, value: { error: 'true', 'http.status_code': '500' } });
    expect(parseLogfmt('  msg="two words"  k=v ')).toEqual({ ok: true, value: { msg: 'two words', k: 'v' } });
    expect(parseLogfmt('q="say \\"hi\\" \\\\ ok" e=""')).toEqual({ ok: true, value: { q: 'say "hi" \\ ok', e: '' } });
    expect(parseLogfmt('url=http://x/?a=b')).toEqual({ ok: true, value: { url: 'http://x/?a=b' } });
    expect(parseLogfmt('')).toEqual({ ok: true, value: {} });
  });

  it('rejects bad input with a message naming the problem', () => {
    const error = (text: string) => {
      const r = parseLogfmt(text);
      return r.ok ? null : r.error;
    };
    expect(error('error')).toMatch(/key=value.*"error"/);
    expect(error('a=1 b')).toMatch(/"b"/);
    expect(error('=1')).toMatch(/expected a key/);
    expect(error('a=')).toMatch(/missing value for "a"/);
    expect(error('a="open')).toMatch(/unclosed quote/);
    expect(error('a="x"y')).toMatch(/space after/);
    expect(error('a=x"y')).toMatch(/stray quote/);
  });

  it('round trips through formatLogfmt', () => {
    const tags = { error: 'true', msg: 'two words', q: 'a "b"', e: '', eq: 'a=b' };
    expect(parseLogfmt(formatLogfmt(tags))).toEqual({ ok: true, value: tags });
    expect(formatLogfmt({ a: '1', b: 'x y' })).toBe('a=1 b="x y"');
  });
});

describe('durations', () => {
  it('parses Go durations into µs', () => {
    expect(parseGoDuration('100ms')).toBe(100_000);
    expect(parseGoDuration('1.2s')).toBe(1_200_000);
    expect(parseGoDuration('1h30m')).toBe(5_400_000_000);
    expect(parseGoDuration('500us')).toBe(500);
    expect(parseGoDuration('500µs')).toBe(500);
    expect(parseGoDuration('1500ns')).toBe(1.5);
    expect(parseGoDuration('.5s')).toBe(500_000);
    expect(parseGoDuration('0')).toBe(0);
  });

  it('rejects what Go rejects (and negatives)', () => {
    for (const bad of ['', '100', 'ms', '1.2', '1x', '-1s', '1 s', '1s2', 'abc']) expect(parseGoDuration(bad)).toBeNull();
  });

  it('validates fields: empty is fine, junk gets a message', () => {
    expect(durationError('')).toBeNull();
    expect(durationError('1.2s')).toBeNull();
    expect(durationError('12')).toMatch(/not a duration/);
  });
});

describe('lookback', () => {
  it('has the presets, default 1h', () => {
    expect(LOOKBACKS.map((l) => l.value)).toEqual(['5m', '15m', '30m', '1h', '2h', '3h', '6h', '12h', '24h', '2d', '3d', '5d', '7d']);
    expect(lookbackMs('15m')).toBe(900_000);
    expect(lookbackMs('2d')).toBe(172_800_000);
    expect(lookbackMs('custom')).toBeNull();
  });

  it('turns a lookback into start/end in µs ending now', () => {
    expect(lookbackRange('1h', NOW)).toEqual({ start: (NOW - 3_600_000) * 1000, end: NOW * 1000 });
    expect(lookbackRange('7d', NOW).start).toBe((NOW - 7 * 86_400_000) * 1000);
    expect(lookbackRange('nonsense', NOW).start).toBe((NOW - 3_600_000) * 1000);
  });

  it('converts local date/time inputs both ways', () => {
    const us = fromLocalInputs('2024-05-01', '09:30')!;
    expect(new Date(us / 1000).getHours()).toBe(9);
    expect(toLocalInputs(us)).toEqual({ date: '2024-05-01', time: '09:30' });
    expect(fromLocalInputs('2024-05-01', '09:30:15')! - us).toBe(15_000_000);
    expect(fromLocalInputs('', '09:30')).toBeNull();
    expect(fromLocalInputs('2024-05-01', 'nine')).toBeNull();
  });
});

describe('URL <-> query', () => {
  const search: PageQuery = {
    mode: 'search',
    search: {
      service: 'frontend', operation: 'GET /checkout', tags: { error: 'true', msg: 'a b' }, lookback: '1h',
      start: 1_000_000, end: 2_000_000, minDuration: '100ms', maxDuration: '1.2s', limit: 50,
    },
  };

  it('round trips a search, ids and opened files', () => {
    for (const q of [search, { mode: 'ids', traceIDs: ['a1', 'b2'] }, { mode: 'opened' }] as PageQuery[]) {
      expect(queryFromUrl(new URLSearchParams(queryToUrl(q).toString()), NOW)).toEqual(q);
    }
  });

  it('writes Jaeger-style parameters, tags as JSON', () => {
    const url = queryToUrl(search, 'longest');
    expect(url.get('tags')).toBe('{"error":"true","msg":"a b"}');
    expect(url.get('start')).toBe('1000000');
    expect(url.get('sort')).toBe('longest');
    expect(parseSort(url.get('sort'))).toBe('longest');
    expect(parseSort('bogus')).toBe('recent');
    expect(queryToUrl({ mode: 'ids', traceIDs: ['a', 'b'] }).toString()).toBe('traceID=a&traceID=b');
  });

  it('fills defaults for a hand-written URL', () => {
    const q = queryFromUrl(new URLSearchParams('service=cart&tags=error%3Dtrue'), NOW);
    expect(q).toEqual({
      mode: 'search',
      search: {
        service: 'cart', operation: '', tags: { error: 'true' }, lookback: '1h', ...lookbackRange('1h', NOW),
        minDuration: '', maxDuration: '', limit: 20,
      },
    });
    expect(queryFromUrl(new URLSearchParams(''), NOW)).toEqual({ mode: 'empty' });
    expect(queryFromUrl(new URLSearchParams('traceID=a,b&traceID=a'), NOW)).toEqual({ mode: 'ids', traceIDs: ['a', 'b'] });
  });

  it('reports what is wrong with a bad URL', () => {
    const q = queryFromUrl(new URLSearchParams('service=x&minDuration=12&limit=0&tags=%7B%22a%22%3A1%7D&lookback=custom'), NOW);
    expect(q.mode).toBe('invalid');
    const errors = q.mode === 'invalid' ? q.errors.join('\n') : '';
    expect(errors).toMatch(/minDuration/);
    expect(errors).toMatch(/limit/);
    expect(errors).toMatch(/tags: expected a JSON object of strings/);
    expect(errors).toMatch(/custom time range/);
  });
});

describe('the form', () => {
  const base = (over: Partial<FormFields> = {}): FormFields => ({ ...formFromQuery({ mode: 'empty' }, NOW, 'frontend'), ...over });

  it('turns valid fields into a query with the lookback resolved now', () => {
    const { query, errors } = queryFromForm(base({ tags: 'error=true', minDuration: '100ms', limit: '5' }), NOW);
    expect(errors).toEqual({});
    expect(query).toEqual({
      service: 'frontend', operation: '', tags: { error: 'true' }, lookback: '1h', ...lookbackRange('1h', NOW),
      minDuration: '100ms', maxDuration: '', limit: 5,
    });
  });

  it('shows a query back in the form', () => {
    const { query } = queryFromForm(base({ tags: 'msg="a b" error=true', maxDuration: '2s' }), NOW);
    const form = formFromQuery({ mode: 'search', search: query! }, NOW);
    expect(form.tags).toBe('msg="a b" error=true');
    expect(form.maxDuration).toBe('2s');
    expect(form.service).toBe('frontend');
  });

  it('flags every bad field', () => {
    const { query, errors } = queryFromForm(
      base({ service: '', tags: 'oops', minDuration: '2s', maxDuration: '1s', limit: '-3' }), NOW);
    expect(query).toBeNull();
    expect(Object.keys(errors).sort()).toEqual(['limit', 'maxDuration', 'service', 'tags']);
    expect(queryFromForm(base({ minDuration: 'soon' }), NOW).errors.minDuration).toMatch(/not a duration/);
  });

  it('keeps a bad URL as written so it can be fixed', () => {
    const params = new URLSearchParams('service=cart&minDuration=12&tags=%7B%22a%22%3A%22x%20y%22%7D&limit=0');
    const form = formFromUrl(params, queryFromUrl(params, NOW), NOW);
    expect(form).toMatchObject({ service: 'cart', minDuration: '12', tags: 'a="x y"', limit: '0', lookback: '1h' });
  });

  it('takes a custom range in local time, the end minute included', () => {
    const form = base({ lookback: 'custom', startDate: '2024-05-01', startTime: '10:00', endDate: '2024-05-01', endTime: '10:05' });
    const { query } = queryFromForm(form, NOW);
    expect(query!.start).toBe(fromLocalInputs('2024-05-01', '10:00'));
    expect(query!.end).toBe(fromLocalInputs('2024-05-01', '10:05:59')! + 999_999);
    const backwards = queryFromForm({ ...form, endTime: '09:00' }, NOW);
    expect(backwards.errors.endDate).toMatch(/after the start/);
    // shown again, the same range comes back out
    const again = queryFromForm(formFromQuery({ mode: 'search', search: query! }, NOW), NOW);
    expect(again.query).toEqual(query);
  });
});

function span(id: string, parent: string | null, start: number, duration: number, process: string, error = false): Span {
  return {
    traceID: 't', spanID: id, operationName: `op-${id}`,
    references: parent ? [{ refType: 'CHILD_OF', traceID: 't', spanID: parent }] : [],
    startTime: start, duration, tags: error ? [{ key: 'error', type: 'bool', value: true }] : [],
    logs: [], processID: process, warnings: null,
  };
}

function trace(id: string, spans: Span[]): Trace {
  return {
    traceID: id, warnings: null, spans: spans.map((s) => ({ ...s, traceID: id })),
    processes: { p1: { serviceName: 'frontend', tags: [] }, p2: { serviceName: 'cart', tags: [] } },
  };
}

describe('summaries', () => {
  it('finds the root, duration, counts and errors', () => {
    const s = summarize(trace('t1', [
      span('b', 'a', 1100, 500, 'p2', true),
      span('a', null, 1000, 1000, 'p1'),
      span('c', 'a', 1900, 300, 'p2'),
      span('o', 'missing', 900, 10, 'p2'), // an orphan starting earlier is a root too
    ]));
    expect(s.rootService).toBe('cart');
    expect(s.rootOperation).toBe('op-o');
    expect(s).toMatchObject({ start: 900, duration: 1300, spans: 4, errors: 1 });
    expect(s.services).toEqual([{ name: 'cart', count: 3 }, { name: 'frontend', count: 1 }]);
    expect(summarize(trace('e', [])).spans).toBe(0);
  });

  it('falls back to the earliest span when every span has a parent (a cycle)', () => {
    const s = summarize(trace('c', [span('a', 'b', 20, 5, 'p1'), span('b', 'a', 10, 5, 'p2')]));
    expect(s.rootOperation).toBe('op-b');
    expect(s.rootService).toBe('cart');
  });

  it('sorts five ways, ties to the most recent', () => {
    const list = [
      summarize(trace('old-long', [span('a', null, 100, 900, 'p1'), span('b', 'a', 200, 1, 'p1')])),
      summarize(trace('new-short', [span('a', null, 500, 10, 'p1')])),
      summarize(trace('mid', [span('a', null, 300, 50, 'p1'), span('b', 'a', 301, 1, 'p1'), span('c', 'a', 302, 1, 'p1')])),
      summarize(trace('mid-same', [span('a', null, 400, 50, 'p1'), span('b', 'a', 401, 1, 'p1'), span('c', 'a', 402, 1, 'p1')])),
    ];
    const ids = (order: Parameters<typeof sortSummaries>[1]) => sortSummaries(list, order).map((s) => s.traceID);
    expect(ids('recent')).toEqual(['new-short', 'mid-same', 'mid', 'old-long']);
    expect(ids('longest')).toEqual(['old-long', 'mid-same', 'mid', 'new-short']);
    expect(ids('shortest')).toEqual(['new-short', 'mid-same', 'mid', 'old-long']);
    expect(ids('most-spans')).toEqual(['mid-same', 'mid', 'old-long', 'new-short']);
    expect(ids('fewest-spans')).toEqual(['new-short', 'old-long', 'mid-same', 'mid']);
  });

  it('says how long ago', () => {
    expect(formatRelative((NOW - 3 * 60_000) * 1000, NOW)).toBe('3 minutes ago');
    expect(formatRelative((NOW - 2 * 3_600_000) * 1000, NOW)).toBe('2 hours ago');
    expect(formatRelative(NOW * 1000, NOW)).toBe('just now');
  });
});

describe('serviceColor', () => {
  it('is stable and from the palette', () => {
    expect(serviceColor('frontend')).toBe(serviceColor('frontend'));
    expect(PALETTE).toContain(serviceColor('cart'));
    const colors = new Set(['frontend', 'cart', 'payment', 'redis', 'db', 'auth', 'search', 'email'].map(serviceColor));
    expect(colors.size).toBeGreaterThanOrEqual(5);
  });
});
