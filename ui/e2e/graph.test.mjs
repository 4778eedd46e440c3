// The service graph page against the seeded server. Expected call counts: every span whose
// parent is in its trace is one call parent-service -> span-service (tests/e2e/ui_seed.py):
// - checkout x2: frontend -> cart, cart -> redis, frontend -> payment, payment -> payment
//   (FraudCheck, slow run only): 2, 2, 2, 1;
// - small(i) for i in 0..23, plus the `linked` one small(99): i % 4 children of the frontend
//   root, in cart, payment, redis order: frontend -> cart 18 + 1, -> payment 12 + 1, -> redis 6 + 1;
// - the two large traces link every pair at random, so their share is counted from the traces.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { BASE, launch, open, SEED } from './browser.mjs';

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser.close(); });

const FIXED = { 'frontend->cart': 2 + 19, 'frontend->payment': 2 + 13, 'cart->redis': 2, 'frontend->redis': 7, 'payment->payment': 1 };

async function largeTraceCalls() {
  const calls = {};
  for (const id of [SEED.large_10k, SEED.large_40k]) {
    const { data: [trace] } = await (await fetch(`${BASE}/api/traces/${id}`)).json();
    const serviceOf = new Map(trace.spans.map((s) => [s.spanID, trace.processes[s.processID].serviceName]));
    for (const span of trace.spans) {
      const parent = span.references.find((r) => r.refType === 'CHILD_OF');
      if (!parent || !serviceOf.has(parent.spanID)) continue;
      const key = `${serviceOf.get(parent.spanID)}->${serviceOf.get(span.spanID)}`;
      calls[key] = (calls[key] ?? 0) + 1;
    }
  }
  return calls;
}

test('the service graph shows the seeded calls with their counts', async () => {
  const large = await largeTraceCalls();
  const page = await open(browser, '/dependencies');
  const graph = page.getByRole('group', { name: 'Service dependencies' });
  await graph.waitFor();
  assert.equal(await page.getByLabel('Lookback').inputValue(), '24h');
  for (const name of ['frontend', 'cart', 'payment', 'redis']) {
    await graph.getByRole('link', { name, exact: true }).waitFor();
  }
  const edges = Object.fromEntries(await graph.locator('.graph-edge').evaluateAll((els) => els.map((el) => [
    el.getAttribute('data-edge').replace(' -> ', '->'), Number(el.querySelector('.graph-edge-count').textContent),
  ])));
  for (const key of ['frontend->cart', 'frontend->payment', 'cart->redis']) {
    assert.equal(edges[key], FIXED[key] + (large[key] ?? 0), key);
  }
  // Every pair the traces hold, and nothing else.
  const expected = { ...large };
  for (const [key, n] of Object.entries(FIXED)) expected[key] = (expected[key] ?? 0) + n;
  assert.deepEqual(edges, expected);
  // Thicker is busier: stroke widths rise with call counts.
  const drawn = await graph.locator('.graph-edge').evaluateAll((els) => els.map((el) => [
    Number(el.getAttribute('data-calls')), Number(el.querySelector('path').getAttribute('stroke-width')),
  ]));
  drawn.sort((x, y) => x[0] - y[0]);
  for (let i = 1; i < drawn.length; i++) assert.ok(drawn[i][1] >= drawn[i - 1][1], `${drawn[i]} after ${drawn[i - 1]}`);
  assert.ok(drawn.at(-1)[1] > drawn[0][1]);
  assert.deepEqual(page.errors, []);
});

test('clicking a service opens its search; the lookback is selectable', async () => {
  const page = await open(browser, '/dependencies');
  await page.getByLabel('Lookback').selectOption('1h');
  await page.waitForURL(/lookback=1h/);
  const graph = page.getByRole('group', { name: 'Service dependencies' });
  await graph.getByRole('link', { name: 'cart', exact: true }).click();
  await page.waitForURL(/\/search\?service=cart$/);
});

test('no links: an empty state instead of a graph', async () => {
  const browserContext = await browser.newContext();
  const page = await browserContext.newPage();
  await page.route('**/api/dependencies?**', (route) => route.fulfill({
    json: { data: [], total: 0, limit: 0, offset: 0, errors: null },
  }));
  await page.goto(`${BASE}/dependencies`);
  await page.getByText('No service dependencies in the last 24 hours').waitFor();
  assert.equal(await page.getByRole('group', { name: 'Service dependencies' }).count(), 0);
  await browserContext.close();
});
