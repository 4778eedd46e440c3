// The left column: service, operation, tags, time range, durations and limit. It edits its own
// copy of the fields and hands a checked query up on submit; the page remounts it whenever the
// URL's query changes (back button, a shared link), so it always starts from what the URL says.
import { useEffect, useId, useState, type FormEvent, type ReactNode } from 'react';
import { operations as fetchOperations } from '../../api/client';
import {
  CUSTOM, LOOKBACKS, queryFromForm, type FormErrors, type FormFields, type TraceSearchQuery,
} from '../../model/search';

const LAST_SERVICE = 'tracemesh.search.service';

interface SearchFormProps {
  initial: FormFields;
  services: string[];
  servicesError: string;
  onSearch: (query: TraceSearchQuery) => void;
}

export default function SearchForm({ initial, services, servicesError, onSearch }: SearchFormProps) {
  const [form, setForm] = useState(initial);
  const [errors, setErrors] = useState<FormErrors>({});
  const operations = useOperations(form.service);

  // A fresh form offers the service searched last, once the list has arrived.
  useEffect(() => {
    const remembered = localStorage.getItem(LAST_SERVICE);
    if (!form.service && remembered && services.includes(remembered)) {
      setForm((f) => (f.service ? f : { ...f, service: remembered }));
    }
  }, [services, form.service]);

  function set<K extends keyof FormFields>(key: K, value: FormFields[K]) {
    setForm((f) => ({ ...f, [key]: value, ...(key === 'service' ? { operation: '' } : {}) }));
    setErrors((e) => ({ ...e, [key]: undefined }));
  }

  function submit(event: FormEvent) {
    event.preventDefault();
    const { query, errors: found } = queryFromForm(form, Date.now());
    setErrors(found);
    if (!query) return;
    localStorage.setItem(LAST_SERVICE, query.service);
    onSearch(query);
  }

  const serviceOptions = form.service && !services.includes(form.service) ? [form.service, ...services] : services;
  const operationOptions = form.operation && !operations.names.includes(form.operation)
    ? [form.operation, ...operations.names] : operations.names;

  return (
    <form className="search-form" onSubmit={submit} noValidate aria-label="Search traces">
      <Field label={`Service (${services.length})`} error={errors.service ?? servicesError}>
        {(id) => (
          <select id={id} value={form.service} onChange={(e) => set('service', e.target.value)} aria-label="Service">
            <option value="">Select a service…</option>
            {serviceOptions.map((s) => <option key={s} value={s}>{s}</option>)}
          </select>
        )}
      </Field>
      <Field label={`Operation (${operations.names.length})`} error={operations.error}>
        {(id) => (
          <select id={id} value={form.operation} onChange={(e) => set('operation', e.target.value)}
            disabled={!form.service} aria-label="Operation">
            <option value="">all</option>
            {operationOptions.map((o) => <option key={o} value={o}>{o}</option>)}
          </select>
        )}
      </Field>
      <Field label="Tags" error={errors.tags} hint={'logfmt: error=true http.status_code=500 msg="a b"'}>
        {(id) => (
          <input id={id} value={form.tags} onChange={(e) => set('tags', e.target.value)}
            placeholder="http.status_code=200 error=true" aria-label="Tags" spellCheck={false} />
        )}
      </Field>
      <Field label="Lookback">
        {(id) => (
          <select id={id} value={form.lookback} onChange={(e) => set('lookback', e.target.value)} aria-label="Lookback">
            {LOOKBACKS.map((l) => <option key={l.value} value={l.value}>{l.label}</option>)}
            <option value={CUSTOM}>Custom time range</option>
          </select>
        )}
      </Field>
      {form.lookback === CUSTOM && (
        <>
          <DateTime label="Start" date={form.startDate} time={form.startTime} error={errors.startDate}
            onDate={(v) => set('startDate', v)} onTime={(v) => set('startTime', v)} />
          <DateTime label="End" date={form.endDate} time={form.endTime} error={errors.endDate}
            onDate={(v) => set('endDate', v)} onTime={(v) => set('endTime', v)} />
        </>
      )}
      <div className="search-form-row">
        <Field label="Min duration" error={errors.minDuration}>
          {(id) => (
            <input id={id} value={form.minDuration} onChange={(e) => set('minDuration', e.target.value)}
              placeholder="e.g. 100ms" aria-label="Min duration" spellCheck={false} />
          )}
        </Field>
        <Field label="Max duration" error={errors.maxDuration}>
          {(id) => (
            <input id={id} value={form.maxDuration} onChange={(e) => set('maxDuration', e.target.value)}
              placeholder="e.g. 1.2s" aria-label="Max duration" spellCheck={false} />
          )}
        </Field>
      </div>
      <Field label="Limit results" error={errors.limit}>
        {(id) => (
          <input id={id} type="number" min={1} value={form.limit} onChange={(e) => set('limit', e.target.value)}
            aria-label="Limit results" />
        )}
      </Field>
      <button type="submit" className="primary search-submit" disabled={!form.service}>Find Traces</button>
    </form>
  );
}

interface FieldProps {
  label: string;
  error?: string;
  hint?: string;
  children: (id: string) => ReactNode;
}

/** A labelled control with its error (or hint) underneath. */
function Field({ label, error, hint, children }: FieldProps) {
  const id = useId();
  return (
    <div className={`search-field${error ? ' invalid' : ''}`}>
      <label htmlFor={id}>{label}</label>
      {children(id)}
      {error ? <div className="field-error" role="alert">{error}</div> : hint ? <div className="field-hint">{hint}</div> : null}
    </div>
  );
}

interface DateTimeProps {
  label: string;
  date: string;
  time: string;
  error?: string;
  onDate: (value: string) => void;
  onTime: (value: string) => void;
}

function DateTime({ label, date, time, error, onDate, onTime }: DateTimeProps) {
  return (
    <Field label={`${label} (local time)`} error={error}>
      {(id) => (
        <div className="search-datetime">
          <input id={id} type="date" value={date} onChange={(e) => onDate(e.target.value)} aria-label={`${label} date`} />
          <input type="time" value={time} onChange={(e) => onTime(e.target.value)} aria-label={`${label} time`} />
        </div>
      )}
    </Field>
  );
}

// Operations per service, fetched once per page life: switching services back and forth is instant.
const operationsCache = new Map<string, Promise<string[]>>();

function useOperations(service: string): { names: string[]; error: string } {
  const [state, setState] = useState<{ service: string; names: string[]; error: string }>({ service: '', names: [], error: '' });
  useEffect(() => {
    if (!service) return;
    let live = true;
    let request = operationsCache.get(service);
    if (!request) {
      request = fetchOperations(service).then((ops) => [...new Set(ops.map((o) => o.name))].sort());
      operationsCache.set(service, request);
      request.catch(() => operationsCache.delete(service)); // let a later visit retry
    }
    request.then(
      (names) => live && setState({ service, names, error: '' }),
      (err: unknown) => live && setState({ service, names: [], error: `Operations: ${err instanceof Error ? err.message : String(err)}` }),
    );
    return () => { live = false; };
  }, [service]);
  return state.service === service ? state : { names: [], error: '' };
}
