// Reading trace files people open: Jaeger's API format (`{"data": [...]}` or a bare array of
// traces) is used as it is; OTLP JSON (`{"resourceSpans": ...}`, or JSON lines of it) goes
// through the server's `POST /api/transform`.
import type { Trace } from '../model/jaeger';
import { transform } from './client';

export async function tracesFromFile(text: string): Promise<Trace[]> {
  const trimmed = text.trim();
  let doc: unknown;
  try {
    doc = JSON.parse(trimmed);
  } catch {
    // JSON lines: one OTLP request per line.
    const lines = trimmed.split('\n').filter((l) => l.trim());
    const out: Trace[] = [];
    for (const line of lines) out.push(...(await transform(line)));
    return out;
  }
  if (Array.isArray(doc)) return doc as Trace[];
  if (doc && typeof doc === 'object') {
    const obj = doc as Record<string, unknown>;
    if (Array.isArray(obj.data)) return obj.data as Trace[];
    if ('resourceSpans' in obj) return transform(trimmed);
  }
  throw new Error('not a Jaeger trace file ({"data": [...]}) nor OTLP JSON ({"resourceSpans": [...]})');
}

/** Offer JSON for download, as Jaeger's UI names its files. */
export function download(name: string, value: unknown): void {
  const blob = new Blob([JSON.stringify(value, null, 2)], { type: 'application/json' });
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  a.click();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}
