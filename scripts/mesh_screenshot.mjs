// The trace screenshot in docs/mesh.md: Debian's Chromium (playwright-core, ui/e2e/browser.mjs's
// launch flags) on a trace page of a running `tracemesh demo hello`.
//   cd ui && node ../scripts/mesh_screenshot.mjs http://127.0.0.1:16686/trace/<id> ../docs/img/x.png
import { launch } from '../ui/e2e/browser.mjs';

const [url, out] = process.argv.slice(2);
const browser = await launch();
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 620 } });
  await page.goto(url);
  await page.waitForLoadState('networkidle');
  await page.waitForTimeout(500);
  await page.screenshot({ path: out });
} finally {
  await browser.close();
}
