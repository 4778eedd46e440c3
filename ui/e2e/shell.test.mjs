// The app shell: it loads under the query port, navigates, and opens a trace by id.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { launch, open, SEED } from './browser.mjs';

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser.close(); });

test('the root redirects to search and the nav reaches every page', async () => {
  const page = await open(browser, '/');
  await page.waitForURL(/\/search/);
  for (const [label, path] of [['Service graph', '/dependencies'], ['Compare', '/compare'], ['Search', '/search']]) {
    await page.getByRole('link', { name: label, exact: true }).click();
    await page.waitForURL(new RegExp(path));
  }
  assert.deepEqual(page.errors, []);
});

test('trace id lookup in the top bar opens the trace page', async () => {
  const page = await open(browser, '/search');
  await page.getByLabel('Lookup by trace ID').fill(SEED.checkout_fast);
  await page.keyboard.press('Enter');
  await page.waitForURL(new RegExp(`/trace/${SEED.checkout_fast}`));
});
