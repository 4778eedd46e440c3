// Time formats of the trace page.

/** µs since the epoch as local `2024-05-01 12:34:56.789`. */
export function formatTimestamp(us: number): string {
  const d = new Date(us / 1000);
  const pad = (n: number, width = 2) => String(n).padStart(width, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

/** The path of a span's deep link, for react-router (under the app's base path). */
export function spanPath(traceID: string, spanID: string): string {
  return `/trace/${encodeURIComponent(traceID)}?span=${encodeURIComponent(spanID)}`;
}

/** The absolute URL of a span's deep link, to copy and share. */
export function spanUrl(traceID: string, spanID: string): string {
  return new URL(spanPath(traceID, spanID).slice(1), document.baseURI).href;
}
