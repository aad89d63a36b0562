// How late open seat maps show seat changes. Opens <pages> event pages in
// Debian's chromium (headless, each in a browser context of its own, half of
// them phone-sized), and for every message of the seat feed a page receives
// records when the feed published it (`published_at_ms`), when the page
// received it, and when the page had applied it and drawn the next frame.
// Prints `ready` on stderr once every page is live, runs until a line
// arrives on stdin, then checks that every page shows what the API's seat
// map says for the seats it draws, and prints a JSON summary on stdout.
//   node feed-latency.mjs <page-url> <api-url> <pages>
import { createInterface } from 'node:readline';
import { launch, open, log, percentile } from './common.mjs';

const [url, api, pagesArg] = process.argv.slice(2);
const count = Number(pagesArg || 3);
const event = new URL(url).pathname.split('/').pop();

// Runs in each page before its own scripts: our listener on every seat
// feed is added first, so its frame callback runs after the app's handler
// (and whatever the app schedules for that frame); the timeout after that
// frame is when the change is on screen.
function watchFeed() {
  window.__feed = [];
  const Native = window.EventSource;
  window.EventSource = class extends Native {
    constructor(...args) {
      super(...args);
      this.addEventListener('seats', (e) => {
        const received = Date.now();
        let m;
        try { m = JSON.parse(e.data); } catch { return; }
        requestAnimationFrame(() => setTimeout(() => {
          window.__feed.push({ published: m.published_at_ms, received, drawn: Date.now(), changes: m.changes.length });
        }, 0));
      });
      this.addEventListener('reload', () => window.__feed.push({ reload: Date.now() }));
    }
  };
}

const browser = await launch();
const pages = [];
try {
  for (let i = 0; i < count; i++) {
    const phone = i % 2 === 1;
    const context = await browser.newContext(phone
      ? { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 }
      : { viewport: { width: 1280, height: 900 } });
    await context.addInitScript(watchFeed);
    const page = await context.newPage();
    await open(page, url);
    await page.waitForSelector('[data-live="true"]', { timeout: 30000 });
    pages.push({ page, phone });
  }
  log(`${count} pages open on ${url}`);
  console.error('ready');
  await new Promise((done) => createInterface({ input: process.stdin }).once('line', done));
  // Let the last changes arrive before reading what the pages show.
  await new Promise((r) => setTimeout(r, 2000));

  const map = await (await fetch(`${api}/api/events/${event}/seats`)).json();
  const samples = [];
  let reloads = 0;
  const disagreements = [];
  for (const [i, { page }] of pages.entries()) {
    const feed = await page.evaluate(() => window.__feed);
    for (const f of feed) {
      if (f.reload) reloads++;
      else samples.push(f);
    }
    const shown = await page.evaluate(() => [...document.querySelectorAll('button[data-seat]')]
      .map((b) => [b.dataset.seat, ['sold', 'held', 'free'].find((c) => b.classList.contains(c)) || 'other']));
    for (const [seat, status] of shown) {
      const truth = map.seats[seat] || 'free';
      if (status !== truth) disagreements.push({ page: i, seat, shown: status, api: truth });
    }
    log(`page ${i + 1}: ${feed.length} feed messages, ${shown.length} seats drawn`);
  }
  const stats = (values) => ({
    p50: percentile(values, 0.5), p90: percentile(values, 0.9), p99: percentile(values, 0.99), max: percentile(values, 1),
  });
  const stamped = samples.filter((s) => s.published > 0);
  console.log(JSON.stringify({
    url,
    pages: count,
    messages: samples.length,
    unstamped: samples.length - stamped.length,
    changes: samples.reduce((n, s) => n + s.changes, 0),
    reloads,
    published_to_drawn_ms: stats(stamped.map((s) => s.drawn - s.published)),
    published_to_received_ms: stats(stamped.map((s) => s.received - s.published)),
    received_to_drawn_ms: stats(samples.map((s) => s.drawn - s.received)),
    seats_checked: pages.length ? (await pages[0].page.locator('button[data-seat]').count()) : 0,
    disagreements: disagreements.slice(0, 20),
    disagreement_count: disagreements.length,
  }, null, 2));
} finally {
  await browser.close();
}
