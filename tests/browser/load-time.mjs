// Page load of the web app, measured in Debian's chromium (headless), each
// visit in a fresh browser context (cold cache): time to the first HTML,
// to DOMContentLoaded and to interactive (the wasm client hydrated), and the
// bytes transferred (compressed, as sent). Prints a JSON summary.
//   node load-time.mjs <page-url> [visits]
import { launch, open, percentile } from './common.mjs';

const [url, visitsArg] = process.argv.slice(2);
const visits = Number(visitsArg || 10);
const browser = await launch();
const runs = [];
try {
  for (let i = 0; i < visits; i++) {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    const interactive = await open(page, url);
    const timing = await page.evaluate(() => {
      const nav = performance.getEntriesByType('navigation')[0];
      const resources = performance.getEntriesByType('resource');
      const bytes = (e) => e.transferSize || e.encodedBodySize || 0;
      return {
        html_ms: nav.responseEnd - nav.startTime,
        dom_content_loaded_ms: nav.domContentLoadedEventEnd - nav.startTime,
        html_bytes: bytes(nav),
        wasm_bytes: resources.filter((r) => r.name.endsWith('.wasm')).reduce((n, r) => n + bytes(r), 0),
        total_bytes: bytes(nav) + resources.reduce((n, r) => n + bytes(r), 0),
      };
    });
    runs.push({ interactive_ms: interactive, ...timing });
    process.stderr.write(`[load-time] visit ${i + 1}/${visits}: interactive after ${interactive} ms\n`);
    await context.close();
  }
} finally {
  await browser.close();
}
const pick = (key, q) => Math.round(percentile(runs.map((r) => r[key]), q));
const summary = { url, visits };
for (const key of ['html_ms', 'dom_content_loaded_ms', 'interactive_ms']) {
  summary[key] = { p50: pick(key, 0.5), p90: pick(key, 0.9), max: pick(key, 1) };
}
for (const key of ['html_bytes', 'wasm_bytes', 'total_bytes']) summary[key] = pick(key, 0.5);
console.log(JSON.stringify(summary, null, 2));
