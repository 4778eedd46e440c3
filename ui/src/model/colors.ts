// Stable per-service colours shared by every view (search pills, timeline bars,
// service graph nodes), so a service looks the same everywhere.

/** 20 distinguishable medium-light colours (after Jaeger UI's palette, without its darkest
 * shades and its red, which means "error"), readable under dark text. */
export const PALETTE: readonly string[] = [
  '#17b8be', '#f8dca1', '#b7885e', '#ffcb99', '#f89570', '#829ae3', '#e79fd5', '#1e96be', '#89dac1', '#b3ad9e',
  '#12939a', '#ddb27c', '#a4c639', '#ff9833', '#c39bd3', '#5c7cfa', '#da70bf', '#9ccc65', '#4dc19c', '#d4c95c',
];

/** FNV-1a 32-bit: tiny, fast and well spread for short strings. */
function hash(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** The colour for a service name; the same name always gets the same colour. */
export function serviceColor(name: string): string {
  return PALETTE[hash(name) % PALETTE.length];
}
