// The Search page against the seeded server (tests/e2e/ui_seed.py): what a service search lists,
// tags, sorting, the URL as the query (reload, back), lookup by ids, opening traces from the list
// and the scatter plot, comparing, downloading, and files opened offline.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { after, before, test } from 'node:test';
import { BASE, launch, open, SEED } from './browser.mjs';

// Searches that include the 10k- and 40k-span traces move ~20 MB of JSON: allow for it.
const SLOW = 180_000;
const BOGUS = 'deadbeefdeadbeefdeadbeefdeadbeef';
// Every trace whose root is in `frontend`: the checkout pair, the trace they link to, 24 small
// ones and the two large ones.
const FRONTEND_TRACES = 2 + 1 + 24 + 2;

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser.close(); });

async function openPage(path) {
  const page = await open(browser, path);
  page.setDefaultTimeout(SLOW);
  return page;
}

/** Waits until the results shown are those of the URL's current query (not a stale one). */
async function settled(page) {
  await page.waitForFunction(() => {
    const q = new URLSearchParams(location.search);
    q.delete('sort');
    const section = document.querySelector('.search-results');
    return section && section.dataset.query === q.toString() && section.getAttribute('aria-busy') === 'false';
  }, null, { timeout: SLOW });
}

/** The result rows as shown, top to bottom. */
async function listed(page) {
  return page.$$eval('[data-testid=trace-result]', (rows) => rows.map((row) => ({
    id: row.dataset.traceId,
    spans: Number(row.dataset.spans),
    errors: Number(row.dataset.errors),
    duration: Number(row.dataset.duration),
    title: row.querySelector('.result-title').textContent,
    text: row.textContent,
    services: Object.fromEntries([...row.querySelectorAll('.service-pill')]
      .map((pill) => [pill.dataset.service, Number(pill.dataset.count)])),
  })));
}

/** Picks a sort order and waits for the list to be drawn in it. */
async function sortBy(page, order) {
  await page.getByLabel('Sort').selectOption(order);
  await page.locator(`.result-list[data-sort="${order}"]`).waitFor();
}

async function search(page, fields) {
  await page.getByLabel('Service', { exact: true }).selectOption(fields.service);
  if (fields.tags !== undefined) await page.getByLabel('Tags', { exact: true }).fill(fields.tags);
  if (fields.limit !== undefined) await page.getByLabel('Limit results').fill(String(fields.limit));
  const before = page.url();
  await page.getByRole('button', { name: 'Find Traces' }).click();
  await page.waitForURL((url) => url.href !== before);
  await settled(page);
}

test('a service search lists every seeded trace with its shape, sorts, and survives a reload', async () => {
  const page = await openPage('/search');
  await page.getByTestId('search-idle').waitFor();
  await search(page, { service: 'frontend', limit: 50 });

  const url = new URL(page.url());
  assert.equal(url.searchParams.get('service'), 'frontend');
  assert.equal(url.searchParams.get('limit'), '50');
  assert.equal(url.searchParams.get('lookback'), '1h');
  assert.match(url.searchParams.get('start'), /^\d{16}$/); // µs

  let rows = await listed(page);
  assert.equal(rows.length, FRONTEND_TRACES);
  assert.equal(await page.getByTestId('result-count').textContent(), `${FRONTEND_TRACES} Traces`);
  const byId = new Map(rows.map((r) => [r.id, r]));

  const fast = byId.get(SEED.checkout_fast);
  assert.ok(fast, 'checkout_fast is listed');
  assert.equal(fast.spans, 4);
  assert.equal(fast.errors, 2); // the root and payment
  assert.deepEqual(fast.services, { cart: 1, frontend: 1, payment: 1, redis: 1 });
  assert.match(fast.title, /^frontend: GET \/checkout/);
  assert.match(fast.text, /4 spans/);
  assert.match(fast.text, /2 errors/);
  assert.match(fast.text, /120ms/);
  assert.match(fast.text, /minutes? ago/);

  const slow = byId.get(SEED.checkout_slow);
  assert.equal(slow.spans, 5);
  assert.deepEqual(slow.services, { cart: 1, frontend: 1, payment: 2, redis: 1 });
  assert.match(slow.text, /250ms/);

  SEED.small.forEach((id, i) => {
    const row = byId.get(id);
    assert.ok(row, `small[${i}] is listed`);
    assert.equal(row.spans, 1 + (i % 4), `small[${i}] span count`);
    assert.equal(row.errors, 0);
    assert.equal(row.duration, (i + 1) * 3000, `small[${i}] duration`);
    assert.match(row.title, new RegExp(`^frontend: GET /item/${i % 3}`));
  });
  assert.equal(byId.get(SEED.large_10k).spans, 10_000);
  assert.equal(byId.get(SEED.large_40k).spans, 40_000);
  assert.deepEqual(byId.get(SEED.large_40k).services, { cart: 10_000, frontend: 10_000, payment: 10_000, redis: 10_000 });

  // Most recent first by default: the 40k trace started last.
  assert.equal(rows[0].id, SEED.large_40k);
  assert.equal(await page.locator('.scatter-dot').count(), FRONTEND_TRACES);
  assert.equal(await page.locator('.scatter-dot.error').count(), 4);

  await sortBy(page, 'longest');
  assert.equal(new URL(page.url()).searchParams.get('sort'), 'longest');
  rows = await listed(page);
  assert.deepEqual(new Set(rows.slice(0, 2).map((r) => r.id)), new Set([SEED.large_10k, SEED.large_40k]));
  // then the linked trace (small #99: 300ms) and the slow checkout (250ms)
  assert.deepEqual(rows.slice(2, 4).map((r) => r.id), [SEED.linked, SEED.checkout_slow]);
  for (let i = 1; i < rows.length; i++) assert.ok(rows[i - 1].duration >= rows[i].duration, 'longest first');

  await sortBy(page, 'fewest-spans');
  rows = await listed(page);
  assert.equal(rows[0].spans, 1);
  assert.equal(rows.at(-1).id, SEED.large_40k);

  // The URL is the whole query: a reload shows the same traces in the same order.
  await sortBy(page, 'longest');
  const shown = (await listed(page)).map((r) => r.id);
  await page.reload();
  await settled(page);
  assert.deepEqual((await listed(page)).map((r) => r.id), shown);
  assert.equal(await page.getByLabel('Service', { exact: true }).inputValue(), 'frontend');
  assert.equal(await page.getByLabel('Limit results').inputValue(), '50');
  assert.equal(await page.getByLabel('Sort').inputValue(), 'longest');
  assert.deepEqual(page.errors, []);
});

test('a tags search finds only error traces; bad durations are refused; back returns', async () => {
  const page = await openPage('/search');
  // The small traces' roots say 200 (the checkouts' 500, the large ones nothing); also quick.
  await search(page, { service: 'frontend', tags: 'http.status_code=200', limit: 50 });
  const all = await listed(page);
  assert.deepEqual(new Set(all.map((r) => r.id)), new Set([...SEED.small, SEED.linked]));
  assert.ok(all.every((r) => r.errors === 0));
  const firstUrl = page.url();

  // A malformed duration is caught in the form, and nothing is searched.
  await page.getByLabel('Min duration').fill('12');
  await page.getByRole('button', { name: 'Find Traces' }).click();
  await page.getByText('"12" is not a duration').waitFor();
  assert.equal(page.url(), firstUrl);
  await page.getByLabel('Min duration').fill('');

  // Bad logfmt too.
  await page.getByLabel('Tags', { exact: true }).fill('error="true');
  await page.getByRole('button', { name: 'Find Traces' }).click();
  await page.getByText('unclosed quote').waitFor();
  assert.equal(page.url(), firstUrl);

  await search(page, { service: 'frontend', tags: 'error=true' });
  assert.deepEqual(JSON.parse(new URL(page.url()).searchParams.get('tags')), { error: 'true' });
  const rows = await listed(page);
  const ids = new Set(rows.map((r) => r.id));
  assert.deepEqual(ids, new Set([SEED.checkout_fast, SEED.checkout_slow, SEED.large_10k, SEED.large_40k]));
  for (const row of rows) assert.ok(row.errors > 0, `${row.id} has errors`);
  assert.equal(await page.getByLabel('Tags', { exact: true }).inputValue(), 'error=true');

  // Back: the previous search (and its form) come back.
  await page.goBack();
  await page.waitForURL(firstUrl);
  await settled(page);
  assert.deepEqual((await listed(page)).map((r) => r.id), all.map((r) => r.id));
  assert.equal(await page.getByLabel('Tags', { exact: true }).inputValue(), 'http.status_code=200');
  assert.deepEqual(page.errors, []);
});

test('lookup by ids lists the found traces and names the missing one', async () => {
  const page = await openPage('/search');
  await page.getByLabel('Lookup by trace ID').fill(`${SEED.checkout_fast} ${SEED.checkout_slow} ${BOGUS}`);
  await page.keyboard.press('Enter');
  await page.waitForURL(/traceID=/);
  await settled(page);
  const url = new URL(page.url());
  assert.deepEqual(url.searchParams.getAll('traceID'), [SEED.checkout_fast, SEED.checkout_slow, BOGUS]);
  const rows = await listed(page);
  assert.deepEqual(rows.map((r) => r.id), [SEED.checkout_slow, SEED.checkout_fast]); // most recent first
  assert.deepEqual(rows.map((r) => r.spans), [5, 4]);
  const missing = await page.getByTestId('missing-ids').textContent();
  assert.match(missing, /Not found/);
  assert.match(missing, new RegExp(BOGUS));
  assert.doesNotMatch(missing, new RegExp(SEED.checkout_fast));

  // Ticking two results enables Compare, which opens the compare page with both.
  const compare = page.getByRole('button', { name: /^Compare/ });
  assert.equal(await compare.isDisabled(), true);
  await page.getByLabel(`Select ${SEED.checkout_fast} for comparison`).check();
  await page.getByLabel(`Select ${SEED.checkout_slow} for comparison`).check();
  await compare.click();
  await page.waitForURL(/\/compare\?/);
  const target = new URL(page.url()).searchParams;
  assert.equal(target.get('a'), SEED.checkout_fast);
  assert.equal(target.get('b'), SEED.checkout_slow);
});

test('a scatter dot and a result row open their traces', async () => {
  const page = await openPage(`/search?traceID=${SEED.checkout_fast}&traceID=${SEED.checkout_slow}`);
  await settled(page);
  const dots = page.locator('.scatter-dot');
  assert.equal(await dots.count(), 2);
  // both checkout traces have errors: both dots are marked
  assert.equal(await page.locator('.scatter-dot.error').count(), 2);

  const dot = page.locator(`.scatter-dot[data-trace-id="${SEED.checkout_slow}"]`);
  await dot.hover();
  assert.match(await page.getByRole('tooltip').textContent(), /frontend: GET \/checkout.*250ms.*5 spans/);
  await dot.click();
  await page.waitForURL(new RegExp(`/trace/${SEED.checkout_slow}$`));

  await page.goBack();
  await settled(page);
  // anywhere on the row (here its service pills) opens the trace
  await page.locator(`[data-trace-id="${SEED.checkout_fast}"] .service-pills`).click();
  await page.waitForURL(new RegExp(`/trace/${SEED.checkout_fast}$`));
});

test('Download results writes the listed traces as {"data": [...]}', async () => {
  const page = await openPage(`/search?traceID=${SEED.checkout_fast}&traceID=${SEED.checkout_slow}&sort=fewest-spans`);
  await settled(page);
  const shown = (await listed(page)).map((r) => r.id);
  assert.deepEqual(shown, [SEED.checkout_fast, SEED.checkout_slow]);
  const [file] = await Promise.all([
    page.waitForEvent('download'),
    page.getByRole('button', { name: 'Download results' }).click(),
  ]);
  assert.match(file.suggestedFilename(), /^traces-\d{13}\.json$/);
  const doc = JSON.parse(await readFile(await file.path(), 'utf8'));
  assert.deepEqual(Object.keys(doc), ['data']);
  assert.deepEqual(doc.data.map((t) => t.traceID), shown);
  assert.deepEqual(doc.data.map((t) => t.spans.length), [4, 5]);
  assert.ok(doc.data.every((t) => Object.values(t.processes).some((p) => p.serviceName === 'payment')));
});

test('files opened offline are listed at ?opened=1', async () => {
  const response = await fetch(`${BASE}/api/traces?traceID=${SEED.checkout_fast}&traceID=${SEED.linked}`);
  const body = await response.json();
  assert.equal(body.data.length, 2);
  const page = await openPage('/search');
  await page.getByTestId('open-file').setInputFiles({
    name: 'two.json', mimeType: 'application/json', buffer: Buffer.from(JSON.stringify({ data: body.data })),
  });
  await page.waitForURL(/\/search\?opened=1$/);
  await settled(page);
  const rows = await listed(page);
  assert.deepEqual(new Set(rows.map((r) => r.id)), new Set([SEED.checkout_fast, SEED.linked]));
  assert.match(await page.getByTestId('opened-notice').textContent(), /2 traces opened from files/);
});

test('API errors are shown as the server words them', async () => {
  const page = await openPage('/search?traceID=not-hex');
  await settled(page);
  assert.match(await page.getByTestId('search-error').textContent(), /cannot parse traceID param/);

  const bad = await openPage('/search?service=frontend&maxDuration=soon');
  await settled(bad);
  assert.match(await bad.getByTestId('search-error').textContent(), /maxDuration: "soon" is not a duration/);
  // the form shows the URL as written, to be fixed in place
  assert.equal(await bad.getByLabel('Max duration').inputValue(), 'soon');
});
