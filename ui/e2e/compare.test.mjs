// The compare page on the seeded checkout traces (tests/e2e/ui_seed.py): the slow run (B) has
// an extra FraudCheck span under payment's Charge, and Charge took 195ms instead of 65ms.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { launch, open, SEED } from './browser.mjs';

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser.close(); });

/** The cells' texts of every row of an ARIA table, header excluded. */
async function rowsOf(page, label) {
  const table = page.getByRole('table', { name: label, exact: true });
  await table.getByRole('row').nth(1).waitFor();
  return table.locator('.vtable-body [role=row]').evaluateAll((rows) => rows.map((row) => ({
    status: row.getAttribute('data-status'),
    className: row.className,
    cells: [...row.querySelectorAll('[role=cell]')].map((c) => c.textContent.trim()),
  })));
}

test('fast vs slow checkout: FraudCheck added, Charge slower, the rest unchanged', async () => {
  const page = await open(browser, `/compare?a=${SEED.checkout_fast}&b=${SEED.checkout_slow}`);
  const tree = await rowsOf(page, 'Structure');
  // The merged tree in order: label, status, spans A / B in the subtree.
  assert.deepEqual(tree.map((r) => [r.cells[0].replace(/^[+−·]/, ''), r.status, r.cells[2], r.cells[3]]), [
    ['frontend: GET /checkout', 'both', '4', '5'],
    ['cart: GetCart', 'both', '2', '2'],
    ['redis: HGET', 'both', '1', '1'],
    ['payment: Charge', 'both', '1', '2'],
    ['payment: FraudCheck', 'added', '0', '1'],
  ]);
  assert.equal(tree[4].cells[1], 'added');
  assert.match(tree[4].className, /diff-added/);
  assert.ok(tree.slice(0, 4).every((r) => r.cells[1] === 'in both'));

  // Latency: biggest regression first; the root and Charge both grew by 130ms.
  const latency = await rowsOf(page, 'Latency');
  const charge = latency.find((r) => r.cells[0].startsWith('payment: Charge'));
  assert.deepEqual(charge.cells.slice(1), ['65.0ms', '195ms', '+130ms', '+200%']);
  assert.match(charge.className, /slower/);
  assert.deepEqual(latency.map((r) => r.cells[3]), ['+130ms', '+130ms', '0µs', '0µs']);
  const cart = latency.find((r) => r.cells[0].startsWith('cart: GetCart'));
  assert.deepEqual(cart.cells.slice(1), ['35.0ms', '35.0ms', '0µs', '0%']);
  assert.deepEqual(page.errors, []);
});

test('the other direction marks FraudCheck removed, and the sort flips to improvements', async () => {
  const page = await open(browser, `/compare?a=${SEED.checkout_slow}&b=${SEED.checkout_fast}`);
  const tree = await rowsOf(page, 'Structure');
  assert.equal(tree.find((r) => r.cells[0].includes('FraudCheck')).status, 'removed');
  const latency = page.getByRole('table', { name: 'Latency', exact: true });
  await latency.getByRole('columnheader', { name: 'Delta' }).getByRole('button').click(); // now ascending
  const rows = await rowsOf(page, 'Latency');
  assert.deepEqual(rows.map((r) => r.cells[3]), ['-130ms', '-130ms', '0µs', '0µs']);
  assert.match(rows[0].className, /faster/);
});

test('with only A, the form asks for B; submitting it compares', async () => {
  const page = await open(browser, `/compare?a=${SEED.checkout_fast}`);
  await page.getByText('Enter a trace ID for B').waitFor();
  await page.getByLabel('Trace B').fill(SEED.checkout_slow);
  await page.getByRole('button', { name: 'Compare', exact: true }).click();
  await page.waitForURL(new RegExp(`b=${SEED.checkout_slow}`));
  const tree = await rowsOf(page, 'Structure');
  assert.equal(tree.length, 5);
  assert.deepEqual(page.errors, []);
});

test('a trace opened from a file compares offline', async () => {
  const page = await open(browser, '/search');
  // Fetch the fast trace, change its id, and open it as a file: it exists only in the browser.
  const body = await page.evaluate(async (id) => (await fetch(`api/traces/${id}`)).json(), SEED.checkout_fast);
  const offlineId = 'feedfacefeedfacefeedfacefeedface';
  const trace = body.data[0];
  trace.traceID = offlineId;
  for (const span of trace.spans) {
    span.traceID = offlineId;
    for (const ref of span.references) if (ref.traceID === SEED.checkout_fast) ref.traceID = offlineId;
  }
  await page.getByTestId('open-file').setInputFiles({
    name: 'fast.json', mimeType: 'application/json', buffer: Buffer.from(JSON.stringify({ data: [trace] })),
  });
  await page.waitForURL(new RegExp(`/trace/${offlineId}`));
  // In-app navigation keeps the opened trace (a reload would drop it).
  await page.getByRole('link', { name: 'Compare', exact: true }).click();
  await page.getByLabel('Trace A').fill(offlineId);
  await page.getByLabel('Trace B').fill(SEED.checkout_slow);
  await page.getByRole('button', { name: 'Compare', exact: true }).click();
  const tree = await rowsOf(page, 'Structure');
  assert.equal(tree.find((r) => r.cells[0].includes('FraudCheck')).status, 'added');
  assert.equal(tree.filter((r) => r.status === 'both').length, 4);
});
