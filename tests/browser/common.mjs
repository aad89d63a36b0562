// What the browser tests share: launching Debian's chromium (never a
// downloaded browser) and waiting for a page to be interactive.
import { chromium } from 'playwright-core';

export async function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

// Opens `url` and waits until the wasm client has hydrated the page;
// answers the milliseconds that took.
export async function open(page, url) {
  const started = Date.now();
  await page.goto(url);
  await page.waitForSelector('body[data-hydrated="true"]', { timeout: 30000 });
  return Date.now() - started;
}

export function log(...args) {
  console.error('[browser]', ...args);
}

// The q-quantile of `values` (nearest rank, 0 <= q <= 1); null when empty.
export function percentile(values, q) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] : null;
}
