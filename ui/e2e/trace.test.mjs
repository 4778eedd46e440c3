// The trace page on the seeded checkout traces (tests/e2e/ui_seed.py): frontend GET /checkout
// -> cart GetCart -> redis HGET, and -> payment Charge (an error, an `exception` event 60ms in,
// a link to SEED.linked) -> payment FraudCheck (the slow run only).
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { readFile } from 'node:fs/promises';
import { BASE, launch, open, SEED } from './browser.mjs';

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser.close(); });

const ROW = '.tl-row';
const row = (page, text) => page.locator(ROW, { hasText: text });
const details = (page) => page.getByRole('complementary', { name: 'Span details' });

async function openTrace(path) {
  const page = await open(browser, path);
  await page.locator(ROW).first().waitFor();
  return page;
}

async function spanIds(traceID) {
  const body = await (await fetch(`${BASE}/api/traces/${traceID}`)).json();
  return Object.fromEntries(body.data[0].spans.map((s) => [s.operationName, s.spanID]));
}

test('the header sums up the slow checkout trace', async () => {
  const page = await openTrace(`/trace/${SEED.checkout_slow}`);
  const fact = (id) => page.getByTestId(id).textContent();
  assert.equal(await fact('trace-name'), 'frontend: GET /checkout');
  assert.equal(await fact('trace-spans'), '5');
  assert.equal(await fact('trace-services'), '4');
  assert.equal(await fact('trace-depth'), '3');
  assert.equal(await fact('trace-errors'), '2');
  assert.equal(await fact('trace-duration'), '250ms');
  assert.match(await fact('trace-start'), /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}$/);
  assert.equal(await page.locator(ROW).count(), 5);
  assert.deepEqual(await page.locator(`${ROW}.has-error .tl-op`).allTextContents(), ['GET /checkout', 'Charge']);
  assert.deepEqual(page.errors, []);
});

test('the payment span shows typed tags, its process, a timed event and a link that navigates', async () => {
  const page = await openTrace(`/trace/${SEED.checkout_slow}`);
  await row(page, 'Charge').click();
  const panel = details(page);
  await panel.waitFor();
  const tag = (key) => panel.getByRole('table', { name: 'Tags' }).locator('tr', { has: page.locator(`th:text-is("${key}")`) }).locator('.kv-value');
  assert.equal(await tag('payment.amount').getAttribute('data-type'), 'float64');
  assert.equal(await tag('payment.amount').textContent(), '42.5');
  assert.match(await tag('payment.amount').getAttribute('class'), /kv-number/);
  assert.equal(await tag('card.brand').getAttribute('data-type'), 'string');
  assert.equal(await tag('card.brand').textContent(), 'visa');
  assert.equal(await tag('error').getAttribute('data-type'), 'bool');
  assert.match(await tag('error').getAttribute('class'), /kv-bool/);
  assert.equal(await tag('span.kind').textContent(), 'client');
  assert.match(await panel.getByRole('table', { name: 'Process tags' }).textContent(), /host\.namepayment-host/);

  const event = panel.getByTestId('span-event');
  assert.equal(await event.count(), 1);
  assert.equal(await event.locator('.event-name').textContent(), 'exception');
  assert.equal(await event.locator('.event-time').textContent(), '+60.0ms'); // from the trace's start
  assert.match(await event.textContent(), /exception\.messagedeclined/);

  const refs = panel.getByTestId('span-ref');
  assert.equal(await refs.count(), 2); // its parent, and the link
  assert.match(await refs.nth(0).textContent(), /^parent frontend: GET \/checkout/);
  const link = refs.nth(1).getByRole('link');
  assert.match(await refs.nth(1).textContent(), /^follows from span/);
  assert.match(await link.getAttribute('href'), new RegExp(`/trace/${SEED.linked}\\?span=`));
  await link.click();
  await page.waitForURL(new RegExp(`/trace/${SEED.linked}`));
  await page.getByText('frontend: GET /item/0').waitFor();
  assert.equal(await page.getByTestId('trace-spans').textContent(), '4');
  assert.deepEqual(page.errors, []);
});

test('a reference within the trace selects and shows that span', async () => {
  const page = await openTrace(`/trace/${SEED.checkout_slow}`);
  await row(page, 'FraudCheck').click();
  await details(page).getByRole('button', { name: /payment: Charge/ }).click();
  await row(page, 'Charge').and(page.locator('[aria-selected="true"]')).waitFor();
  assert.equal(await details(page).getAttribute('data-span-id'), (await spanIds(SEED.checkout_slow)).Charge);
});

test('collapsing hides descendants; collapse all and expand all', async () => {
  const page = await openTrace(`/trace/${SEED.checkout_slow}`);
  await row(page, 'GetCart').getByRole('button', { name: 'Collapse span' }).click();
  assert.equal(await page.locator(ROW).count(), 4);
  assert.equal(await row(page, 'HGET').count(), 0);
  await row(page, 'GET /checkout').getByRole('button', { name: 'Collapse span' }).click();
  assert.deepEqual(await page.locator(`${ROW} .tl-op`).allTextContents(), ['GET /checkout']);
  await row(page, 'GET /checkout').getByRole('button', { name: 'Expand span' }).click();
  assert.equal(await page.locator(ROW).count(), 4); // GetCart stays collapsed
  await page.getByRole('button', { name: 'Expand all' }).click();
  assert.equal(await page.locator(ROW).count(), 5);
  await page.getByRole('button', { name: 'Collapse all' }).click();
  assert.equal(await page.locator(ROW).count(), 1);
});

test('the critical path runs through the root, Charge and FraudCheck', async () => {
  const page = await openTrace(`/trace/${SEED.checkout_slow}`);
  const critical = await page.locator(`${ROW}[data-critical="true"] .tl-op`).allTextContents();
  for (const op of ['GET /checkout', 'Charge', 'FraudCheck']) assert.ok(critical.includes(op), `${op} in ${critical}`);
  // GetCart and HGET end before Charge starts, so the walk back from Charge's start reaches them.
  assert.deepEqual(critical.sort(), ['Charge', 'FraudCheck', 'GET /checkout', 'GetCart', 'HGET']);
  // FraudCheck is critical throughout; Charge only around it (45-50ms and 200-240ms).
  assert.equal(await row(page, 'FraudCheck').locator('.tl-critical').count(), 1);
  assert.equal(await row(page, 'Charge').locator('.tl-critical').count(), 2);
  await row(page, 'Charge').click();
  assert.match(await details(page).textContent(), /Critical path45\.0ms/);
});

test('search within the trace highlights and counts matches, with next and previous', async () => {
  const page = await openTrace(`/trace/${SEED.checkout_slow}`);
  const box = page.getByLabel('Find in trace');
  await box.fill('redis');
  await page.getByTestId('match-count').getByText('1 match').waitFor();
  assert.deepEqual(await page.locator(`${ROW}[data-match] .tl-op`).allTextContents(), ['HGET']);
  await box.fill('payment'); // the payment service's two spans, and the root's `payment failed` status
  await page.getByTestId('match-count').getByText('3 matches').waitFor();
  assert.deepEqual(await page.locator(`${ROW}[data-match] .tl-op`).allTextContents(), ['GET /checkout', 'Charge', 'FraudCheck']);
  await page.getByRole('button', { name: 'Next match' }).click();
  assert.equal(await page.getByTestId('match-count').textContent(), '1 of 3');
  await box.press('Enter');
  assert.equal(await page.getByTestId('match-count').textContent(), '2 of 3');
  assert.equal(await page.locator(`${ROW}[aria-selected="true"] .tl-op`).textContent(), 'Charge');
  await box.press('Shift+Enter');
  await page.getByRole('button', { name: 'Previous match' }).click();
  assert.equal(await page.getByTestId('match-count').textContent(), '3 of 3'); // wraps around
  assert.equal(await page.locator(`${ROW}[aria-selected="true"] .tl-op`).textContent(), 'FraudCheck');
  await box.fill('card.brand=visa');
  await page.getByTestId('match-count').getByText('1 match').waitFor();
  await box.fill('nothing-like-this');
  await page.getByTestId('match-count').getByText('0 matches').waitFor();
  assert.equal(await page.locator(`${ROW}[data-match]`).count(), 0);
});

test('a match under a collapsed span opens it', async () => {
  const page = await openTrace(`/trace/${SEED.checkout_slow}`);
  await page.getByRole('button', { name: 'Collapse all' }).click();
  await page.getByLabel('Find in trace').fill('HGET');
  await page.getByRole('button', { name: 'Next match' }).click();
  await row(page, 'HGET').and(page.locator('[aria-selected="true"]')).waitFor();
});

test('the keyboard moves, collapses, opens details, searches and shows help', async () => {
  const page = await openTrace(`/trace/${SEED.checkout_slow}`);
  const selected = () => page.locator(`${ROW}[aria-selected="true"] .tl-op`).textContent();
  await page.keyboard.press('ArrowDown');
  assert.equal(await selected(), 'GET /checkout');
  await page.keyboard.press('ArrowDown');
  assert.equal(await selected(), 'GetCart');
  assert.equal(await details(page).count(), 0);
  await page.keyboard.press('Enter');
  await details(page).waitFor();
  assert.match(await details(page).locator('h2').textContent(), /cart: GetCart/);
  await page.keyboard.press('ArrowLeft'); // collapse GetCart
  assert.equal(await row(page, 'HGET').count(), 0);
  await page.keyboard.press('ArrowRight'); // expand it again
  await page.keyboard.press('ArrowRight'); // to its first child
  assert.equal(await selected(), 'HGET');
  await page.keyboard.press('ArrowLeft'); // no children: to the parent
  assert.equal(await selected(), 'GetCart');
  await page.keyboard.press('Enter');
  assert.equal(await details(page).count(), 0);
  await page.keyboard.press('?');
  const help = page.getByRole('dialog', { name: 'Keyboard shortcuts' });
  await help.waitFor();
  assert.match(await help.textContent(), /Enter.*details/);
  await page.keyboard.press('Escape');
  assert.equal(await help.count(), 0);
  await page.keyboard.press('/');
  assert.equal(await page.evaluate(() => document.activeElement?.getAttribute('aria-label')), 'Find in trace');
  assert.deepEqual(page.errors, []);
});

test('a ?span= deep link selects the span and shows its details', async () => {
  const ids = await spanIds(SEED.checkout_slow);
  const page = await openTrace(`/trace/${SEED.checkout_slow}?span=${ids.FraudCheck}`);
  await details(page).waitFor();
  assert.equal(await page.locator(`${ROW}[aria-selected="true"] .tl-op`).textContent(), 'FraudCheck');
  assert.equal(await details(page).getByTestId('span-id').textContent(), ids.FraudCheck);
  const deep = details(page).getByRole('link', { name: 'Deep link' });
  assert.match(await deep.getAttribute('href'), new RegExp(`/trace/${SEED.checkout_slow}\\?span=${ids.FraudCheck}$`));
});

test('dragging on the minimap zooms the timeline; reset shows it all', async () => {
  const page = await openTrace(`/trace/${SEED.checkout_slow}`);
  const firstTick = () => page.locator('.tl-tick').first().textContent();
  assert.equal(await firstTick(), '0µs');
  const box = await page.getByTestId('minimap').boundingBox();
  await page.mouse.move(box.x + box.width * 0.5, box.y + 20);
  await page.mouse.down();
  await page.mouse.move(box.x + box.width * 0.7, box.y + 20, { steps: 4 });
  await page.mouse.up();
  assert.equal(await firstTick(), '125ms');
  await page.getByRole('button', { name: 'Reset zoom' }).click();
  assert.equal(await firstTick(), '0µs');
});

test('trace JSON links, download and compare', async () => {
  const page = await openTrace(`/trace/${SEED.checkout_slow}`);
  const json = `api/traces/${SEED.checkout_slow}?prettyPrint=true`;
  assert.equal(await page.getByRole('link', { name: 'Trace JSON', exact: true }).getAttribute('href'), json);
  assert.equal(await page.getByRole('link', { name: 'Trace JSON (unadjusted)' }).getAttribute('href'), `${json}&raw=true`);
  const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Download JSON' }).click()]);
  const body = JSON.parse(await readFile(await download.path(), 'utf8'));
  assert.equal(body.data.length, 1);
  assert.equal(body.data[0].traceID, SEED.checkout_slow);
  assert.equal(body.data[0].spans.length, 5);
  await page.getByRole('button', { name: 'Compare with…' }).click();
  await page.waitForURL(new RegExp(`/compare\\?a=${SEED.checkout_slow}`));
});

test('every view of the trace renders', async () => {
  const page = await openTrace(`/trace/${SEED.checkout_slow}`);
  for (const name of ['Span table', 'Statistics', 'Flame graph', 'Trace graph', 'Timeline']) {
    await page.getByRole('tab', { name }).click();
    await page.getByRole('tab', { name, selected: true }).waitFor(); // after the URL's ?view= changed
    const panel = page.getByRole('tabpanel');
    await page.waitForFunction(() => {
      const view = document.querySelector('.trace-other-view') ?? document.querySelector('.timeline:not([hidden])');
      return view && view.textContent.trim().length > 0;
    });
    assert.ok((await panel.textContent()).length > 0, name);
  }
  assert.equal(await page.locator(ROW).count(), 5);
  assert.deepEqual(page.errors, []);
});

test('a trace opened from a file shows offline, with no server JSON links', async () => {
  const offlineId = 'f'.repeat(32);
  const text = (await (await fetch(`${BASE}/api/traces/${SEED.checkout_fast}`)).text()).replaceAll(SEED.checkout_fast, offlineId);
  const page = await open(browser, '/search');
  await page.getByTestId('open-file').setInputFiles({ name: 'trace.json', mimeType: 'application/json', buffer: Buffer.from(text) });
  await page.waitForURL(new RegExp(`/trace/${offlineId}`));
  await page.locator(ROW).first().waitFor();
  assert.equal(await page.getByTestId('trace-spans').textContent(), '4');
  assert.equal(await page.getByRole('link', { name: 'Trace JSON', exact: true }).count(), 0);
  await page.getByText('offline', { exact: true }).waitFor();
  assert.deepEqual(page.errors, []);
});
