// Shared set-up for the browser tests: Debian's Chromium driven by playwright-core, pointed at
// the tracemesh server the pytest wrapper (tests/e2e/test_ui_browser.py) started and seeded.
import { chromium } from 'playwright-core';

export const BASE = process.env.TRACEMESH_URL ?? 'http://127.0.0.1:16686';
/** Trace ids by role, from tests/e2e/ui_seed.py. */
export const SEED = JSON.parse(process.env.TRACEMESH_SEED ?? '{}');

export async function launch() {
  return chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--no-first-run', '--disable-sync'],
  });
}

/** A fresh page at `path` with console errors collected into `page.errors`. */
export async function open(browser, path, options = {}) {
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 }, acceptDownloads: true, ...options });
  const page = await context.newPage();
  page.errors = [];
  page.on('pageerror', (err) => page.errors.push(String(err)));
  page.on('console', (msg) => { if (msg.type() === 'error') page.errors.push(msg.text()); });
  await page.goto(BASE + path);
  return page;
}
