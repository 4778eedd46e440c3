// Screenshots of every page for docs/screenshots/ (shown in the README). Run by hand, not by
// `make test`:
//
//   cd ui && node e2e/screenshots.mjs
//
// It starts a seeded all-in-one (`python -m tests.e2e.ui_seed`, the browser tests' data) unless
// TRACEMESH_URL and TRACEMESH_SEED name one already running, then drives Debian's Chromium.
import { spawn } from 'node:child_process';
import { mkdir, stat } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { launch } from './browser.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const OUT = path.join(ROOT, 'docs', 'screenshots');
const MAX_BYTES = 300 * 1024;

/** The server to photograph: {url, seed, stop}. */
async function server() {
  if (process.env.TRACEMESH_URL && process.env.TRACEMESH_SEED) {
    return { url: process.env.TRACEMESH_URL, seed: JSON.parse(process.env.TRACEMESH_SEED), stop() {} };
  }
  const python = path.join(ROOT, '.venv', 'bin', 'python');
  const child = spawn(python, ['-m', 'tests.e2e.ui_seed'], { cwd: ROOT, stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout });
  const first = await new Promise((resolve, reject) => {
    lines.once('line', resolve);
    child.once('exit', (code) => reject(new Error(`the seeded server exited with ${code}`)));
  });
  const { url, seed } = JSON.parse(first);
  return { url, seed, stop: () => child.stdin.end() }; // it stops when its input closes
}

const { url, seed, stop } = await server();
const browser = await launch();
await mkdir(OUT, { recursive: true });

async function page(route) {
  const context = await browser.newContext({ viewport: { width: 1400, height: 860 } });
  const p = await context.newPage();
  p.setDefaultTimeout(120_000);
  await p.goto(url + route);
  return p;
}

/** Saves the page's top `height` px (pages with little on them are cut below their content). */
async function shoot(p, name, height = 860) {
  await p.waitForTimeout(300); // transitions and the last layout settle
  const file = path.join(OUT, `${name}.png`);
  await p.screenshot({ path: file, clip: { x: 0, y: 0, width: 1400, height } });
  const { size } = await stat(file);
  console.log(`${file} ${Math.round(size / 1024)} KB`);
  if (size > MAX_BYTES) throw new Error(`${name}.png is over ${MAX_BYTES} bytes`);
  await p.context().close();
}

const ROW = '.tl-row';
try {
  // Search: the frontend's checkout and small traces, with the scatter plot. The window ends
  // before the huge traces start (the seed sends them 2 and 3 s after the first checkout).
  const checkout = (await (await fetch(`${url}/api/traces/${seed.checkout_fast}`)).json()).data[0];
  const t0 = Math.min(...checkout.spans.map((s) => s.startTime)); // µs
  let p = await page(`/search?service=frontend&lookback=custom&start=${t0 - 200_000}&end=${t0 + 1_950_000}&limit=40`);
  await p.locator('[data-testid=trace-result]').first().waitFor();
  await p.locator('.scatter-dot').first().waitFor();
  await shoot(p, 'search');

  // The trace timeline: the slow checkout with the payment span's details open; the critical
  // path is drawn on the bars.
  p = await page(`/trace/${seed.checkout_slow}`);
  await p.locator(ROW).first().waitFor();
  await p.locator(ROW, { hasText: 'Charge' }).click();
  await p.getByRole('complementary', { name: 'Span details' }).waitFor();
  await shoot(p, 'trace-timeline');

  for (const [tab, name, height] of [['Span table', 'trace-span-table', 360],
    ['Statistics', 'trace-statistics', 340], ['Flame graph', 'trace-flame-graph', 250],
    ['Trace graph', 'trace-graph', 530]]) {
    p = await page(`/trace/${seed.checkout_slow}`);
    await p.locator(ROW).first().waitFor();
    await p.getByRole('tab', { name: tab, exact: true }).click();
    await p.locator('.trace-other-view').waitFor();
    await shoot(p, name, height);
  }

  // A 10,000-span trace, virtualized.
  p = await page(`/trace/${seed.large_10k}`);
  await p.locator(ROW).first().waitFor();
  await shoot(p, 'trace-large');

  p = await page(`/compare?a=${seed.checkout_fast}&b=${seed.checkout_slow}`);
  await p.locator('.diff-mark').first().waitFor();
  await shoot(p, 'compare', 580);

  p = await page('/dependencies');
  await p.getByRole('group', { name: 'Service dependencies' }).getByRole('link', { name: 'redis', exact: true }).waitFor();
  await shoot(p, 'service-graph', 450);
} finally {
  await browser.close();
  stop();
}
