// The trace page's other views (span table, statistics, flame graph, trace graph), reached
// through its view tabs, on the slow checkout trace of tests/e2e/ui_seed.py (ms from its start):
//   frontend GET /checkout 0-250 (error)
//     cart GetCart 5-40
//       redis HGET 10-30
//     payment Charge 45-240 (error)
//       payment FraudCheck 50-200
// Self times: root 250 - 35 - 195 = 20ms, GetCart 15ms, HGET 20ms, Charge 45ms, FraudCheck 150ms.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { launch, open, SEED } from './browser.mjs';

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser.close(); });

async function openView(path, tab) {
  const page = await open(browser, path);
  await page.getByRole('tab', { name: tab, exact: true }).click();
  return page;
}

/** Cell texts of a virtualized ARIA table's rendered rows, and its column titles. */
async function table(page, label) {
  const t = page.getByRole('table', { name: label, exact: true });
  await t.locator('.vtable-body [role=row]').first().waitFor();
  const head = await t.getByRole('columnheader').allTextContents();
  const rows = await t.locator('.vtable-body [role=row]').evaluateAll((els) => els
    .sort((a, b) => Number(a.getAttribute('aria-rowindex')) - Number(b.getAttribute('aria-rowindex')))
    .map((row) => [...row.querySelectorAll('[role=cell]')].map((c) => c.textContent.trim())));
  return { head: head.map((h) => h.replace(/[▲▼]/g, '').trim()), rows };
}

function column(data, title) {
  const index = data.head.indexOf(title);
  assert.ok(index >= 0, `no column ${title} in ${data.head}`);
  return data.rows.map((r) => r[index]);
}

test('statistics: per service and per operation, with self time', async () => {
  const page = await openView(`/trace/${SEED.checkout_slow}`, 'Statistics');
  let stats = await table(page, 'Statistics');
  const byService = Object.fromEntries(stats.rows.map((r) => [r[0], r]));
  assert.deepEqual(Object.keys(byService).sort(), ['cart', 'frontend', 'payment', 'redis']);
  const get = (service, title) => byService[service][stats.head.indexOf(title)];
  assert.equal(get('payment', 'Spans'), '2');
  assert.equal(get('payment', 'Total'), '345ms');
  assert.equal(get('payment', 'Self total'), '195ms');
  assert.equal(get('payment', 'Errors'), '1');
  assert.equal(get('frontend', 'Self total'), '20.0ms'); // the root
  assert.equal(get('cart', 'Self total'), '15.0ms');
  // Sorted by self total, biggest first.
  assert.deepEqual(column(stats, 'Service'), ['payment', 'frontend', 'redis', 'cart']); // ties keep trace order

  await page.getByLabel('Group by').selectOption('operation');
  await page.getByRole('table', { name: 'Statistics' }).getByRole('columnheader', { name: 'Operation' }).waitFor();
  stats = await table(page, 'Statistics');
  const selfOf = Object.fromEntries(stats.rows.map((r) => [r[1], r[stats.head.indexOf('Self total')]]));
  assert.deepEqual(selfOf, { 'GET /checkout': '20.0ms', GetCart: '15.0ms', HGET: '20.0ms', Charge: '45.0ms', FraudCheck: '150ms' });
  assert.deepEqual(page.errors, []);
});

test('span table: sorts by duration, filters, and a row opens the span', async () => {
  const page = await openView(`/trace/${SEED.checkout_slow}`, 'Span table');
  let spans = await table(page, 'Spans');
  assert.equal(spans.rows.length, 5);
  assert.deepEqual(column(spans, 'Start'), ['0µs', '5.00ms', '10.0ms', '45.0ms', '50.0ms']); // tree order
  const header = page.getByRole('table', { name: 'Spans' }).getByRole('columnheader', { name: 'Duration' });
  await header.getByRole('button').click();
  assert.equal(await header.getAttribute('aria-sort'), 'descending');
  spans = await table(page, 'Spans');
  assert.deepEqual(column(spans, 'Duration'), ['250ms', '195ms', '150ms', '35.0ms', '20.0ms']);
  assert.deepEqual(column(spans, 'Operation'), ['GET /checkout', 'Charge', 'FraudCheck', 'GetCart', 'HGET']);
  await header.getByRole('button').click();
  spans = await table(page, 'Spans');
  assert.deepEqual(column(spans, 'Duration'), ['20.0ms', '35.0ms', '150ms', '195ms', '250ms']);
  assert.deepEqual(column(spans, 'Self time'), ['20.0ms', '15.0ms', '150ms', '45.0ms', '20.0ms']);

  await page.getByLabel('Filter spans').fill('payment');
  await page.getByText('2 of 5 spans').waitFor();
  spans = await table(page, 'Spans');
  assert.deepEqual(column(spans, 'Operation'), ['FraudCheck', 'Charge']);
  assert.deepEqual(column(spans, 'Errors'), ['', 'error']);

  await page.getByRole('table', { name: 'Spans' }).getByRole('row').filter({ hasText: 'FraudCheck' }).click();
  await page.waitForURL(new RegExp(`/trace/${SEED.checkout_slow}\\?span=[0-9a-f]{16}$`));
  assert.deepEqual(page.errors, []);
});

test('flame graph: one box per span, hover names it, click zooms into its subtree', async () => {
  const page = await openView(`/trace/${SEED.checkout_slow}`, 'Flame graph');
  const graph = page.getByRole('group', { name: 'Flame graph' });
  await graph.locator('.flame-span').first().waitFor();
  assert.equal(await graph.locator('.flame-span').count(), 5);
  // Icicle: rows by depth, widths by duration (the root spans the full width).
  const boxes = await graph.locator('.flame-span').evaluateAll((els) => Object.fromEntries(els.map((el) => {
    const box = el.getBoundingClientRect();
    return [el.textContent, { x: box.x, y: box.y, w: box.width }];
  })));
  const root = boxes['GET /checkout'];
  assert.ok(Math.abs(boxes.Charge.w / root.w - 195 / 250) < 0.01);
  assert.ok(boxes.FraudCheck.y > boxes.Charge.y && boxes.Charge.y > root.y);
  assert.equal(boxes.Charge.y, boxes.GetCart.y);
  assert.equal(await graph.locator('.flame-span.has-error').count(), 2);

  await graph.locator('.flame-span', { hasText: 'Charge' }).hover();
  const tip = page.getByRole('tooltip');
  await tip.waitFor();
  assert.match(await tip.textContent(), /payment\s*Charge\s*195ms\s*\(self 45\.0ms\)/);

  await graph.locator('.flame-span', { hasText: 'Charge' }).click();
  await page.waitForFunction(() => document.querySelectorAll('.flame-span').length === 2);
  const zoomed = await graph.locator('.flame-span').evaluateAll((els) => els.map((el) => [el.textContent, el.getBoundingClientRect().width]));
  assert.deepEqual(zoomed.map(([name]) => name), ['Charge', 'FraudCheck']);
  assert.ok(Math.abs(zoomed[1][1] / zoomed[0][1] - 150 / 195) < 0.01);
  await page.getByRole('button', { name: 'Reset zoom' }).click();
  await page.waitForFunction(() => document.querySelectorAll('.flame-span').length === 5);
  assert.deepEqual(page.errors, []);
});

test('trace graph: a node per service and operation, call counts, errors marked', async () => {
  const page = await openView(`/trace/${SEED.checkout_slow}`, 'Trace graph');
  const graph = page.getByRole('group', { name: 'Trace graph' });
  await graph.locator('.graph-node').first().waitFor();
  const nodes = await graph.locator('.graph-node').evaluateAll((els) => els.map((el) => [
    el.getAttribute('aria-label'), el.classList.contains('has-error'),
  ]));
  assert.deepEqual(nodes.sort(), [
    ['cart: GetCart', false], ['frontend: GET /checkout', true], ['payment: Charge', true],
    ['payment: FraudCheck', false], ['redis: HGET', false],
  ]);
  const edges = await graph.locator('.graph-edge').evaluateAll((els) => els.map((el) => `${el.getAttribute('data-edge')} x${el.getAttribute('data-calls')}`));
  assert.deepEqual(edges.sort(), [
    'cart: GetCart -> redis: HGET x1', 'frontend: GET /checkout -> cart: GetCart x1',
    'frontend: GET /checkout -> payment: Charge x1', 'payment: Charge -> payment: FraudCheck x1',
  ]);
  await page.getByLabel('Graph nodes').selectOption('service');
  await page.waitForFunction(() => document.querySelectorAll('.graph-node').length === 4);
  assert.deepEqual(page.errors, []);
});

test('the 40,000-span trace: every view stays bounded', async () => {
  const page = await open(browser, `/trace/${SEED.large_40k}?view=statistics`);
  const stats = await table(page, 'Statistics');
  assert.equal(stats.rows.length, 4); // one per service
  const total = stats.rows.reduce((n, r) => n + Number(r[stats.head.indexOf('Spans')]), 0);
  assert.equal(total, 40000);

  await page.getByRole('tab', { name: 'Span table', exact: true }).click();
  await page.getByText('40000 spans').waitFor();
  const rendered = await page.locator('[aria-label=Spans] .vtable-body [role=row]').count();
  assert.ok(rendered > 5 && rendered < 100, `${rendered} rows in the DOM`);

  await page.getByRole('tab', { name: 'Flame graph', exact: true }).click();
  await page.locator('.flame-span').first().waitFor();
  const boxes = await page.locator('.flame-span').count();
  assert.ok(boxes > 10 && boxes <= 4000, `${boxes} flame boxes`);

  await page.getByRole('tab', { name: 'Trace graph', exact: true }).click();
  await page.locator('.graph-node').first().waitFor();
  assert.equal(await page.locator('.graph-node').count(), 4); // too many operations: by service
  assert.deepEqual(page.errors, []);
});
