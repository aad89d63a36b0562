// The seat map at stadium size in real browsers (Debian's chromium,
// headless): 20,000 seats in 40 sections, all but two sold. A buyer on a
// phone-sized touch screen finds a section with seats left on the venue
// overview, taps it, zooms in, picks one seat by touch and the next by
// keyboard, holds and pays. A second browser on a desktop, zoomed into the
// same section, sees them turn sold live. The event list says "few left";
// once the rest is sold (through the API), it says "sold out" without a
// reload. Prints a JSON summary on the last line; screenshots go to the
// folder given.
//   node stadium.mjs <dashboard-url> <api-url> <event-id> <screenshot-dir>
import { launch, open, log } from './common.mjs';

const [dashboard, api, event, shots] = process.argv.slice(2);
const browser = await launch();
const summary = {};

// A guest's token, straight from the API.
async function guest() {
  return (await (await fetch(`${api}/api/auth/buyer`, { method: 'POST' })).json()).token;
}

try {
  const list = await (await browser.newContext({ viewport: { width: 1280, height: 900 } })).newPage();
  await open(list, dashboard);
  const badge = list.locator(`[data-event="${event}"] [data-availability]`);
  await badge.getByText(/^Few left: /).waitFor({ timeout: 15000 });
  summary.listed_few_left_before = (await badge.textContent()).trim();

  const phone = await (await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true })).newPage();
  const desk = await (await browser.newContext({ viewport: { width: 1280, height: 900 } })).newPage();
  summary.phone_interactive_ms = await open(phone, `${dashboard}/events/${event}`);
  summary.desktop_interactive_ms = await open(desk, `${dashboard}/events/${event}`);
  await desk.locator('[data-live="true"]').waitFor({ timeout: 15000 });
  // Only one section is drawn at seat level: the page stays small.
  summary.seat_buttons_drawn = await phone.locator('button.seat').count();
  if (summary.seat_buttons_drawn > 1500) throw new Error(`${summary.seat_buttons_drawn} seats drawn at once`);
  await phone.screenshot({ path: `${shots}/stadium-overview-phone.png`, fullPage: true });
  await desk.screenshot({ path: `${shots}/stadium-overview-desktop.png` });

  // The overview: sold-out sections say so; the buyer taps one with seats left.
  const soldOut = await phone.locator('g.zone.sold-out').count();
  const open_zones = phone.locator('g.zone:not(.sold-out)');
  summary.sections_sold_out = soldOut;
  summary.sections_with_seats = await open_zones.count();
  const zone = open_zones.last();
  const code = await zone.getAttribute('data-zone');
  const label = await zone.getAttribute('aria-label');
  if (!/few left|free/.test(label)) throw new Error(`zone label: ${label}`);
  await zone.tap();
  await phone.locator(`section#section-${code}`).waitFor({ timeout: 5000 });
  await phone.locator('#zoom-in').tap();
  log('phone buyer zoomed into', code, '-', label);

  // One seat by touch, the next by keyboard.
  const firstId = await phone.locator(`section#section-${code} button.seat.free`).first().getAttribute('data-seat');
  const first = phone.locator(`[data-seat="${firstId}"]`);
  await first.tap();
  if (await first.getAttribute('aria-pressed') !== 'true') throw new Error('tapping a seat did not pick it');
  await first.focus();
  await phone.keyboard.press('Tab');
  const secondId = await phone.evaluate(() => document.activeElement?.getAttribute('data-seat'));
  await phone.keyboard.press('Enter');
  if (await phone.locator(`[data-seat="${secondId}"]`).getAttribute('aria-pressed') !== 'true') {
    throw new Error(`the keyboard did not pick ${secondId}`);
  }
  await phone.screenshot({ path: `${shots}/stadium-section-phone.png`, fullPage: true });

  // The desktop buyer looks at the same section.
  await desk.locator(`g.zone[data-zone="${code}"]`).click();
  await desk.locator(`[data-seat="${firstId}"].free`).waitFor({ timeout: 5000 });

  await phone.locator('#hold').tap();
  await phone.getByRole('status').getByText(/^Held /).waitFor({ timeout: 15000 });
  await phone.locator('#confirm').tap();
  await phone.getByRole('status').getByText(/^Paid: /).waitFor({ timeout: 15000 });
  summary.paid = [firstId, secondId];
  log('phone buyer paid for', firstId, secondId);

  for (const s of summary.paid) await desk.locator(`[data-seat="${s}"].sold`).waitFor({ timeout: 15000 });
  summary.second_browser_saw_sold = true;
  await desk.screenshot({ path: `${shots}/stadium-section-desktop.png`, fullPage: true });
  log('the desktop saw them sold live');

  // The list (open all along) tells the truth as it changes.
  await badge.getByText(/^Few left: 998 seats/).waitFor({ timeout: 30000 });
  summary.listed_few_left = (await badge.textContent()).trim();
  await list.screenshot({ path: `${shots}/stadium-event-list-few-left.png` });

  // Everything else is sold through the API, 50 seats per buyer.
  const map = await (await fetch(`${api}/api/events/${event}/seats`)).json();
  const free = [];
  for (const s of map.sections) {
    if (s.free === 0) continue;
    for (let row = 1; row <= 20; row++) {
      for (let n = 1; n <= 25; n++) {
        const id = `${s.code}-${row}-${n}`;
        if (!map.seats[id]) free.push(id);
      }
    }
  }
  for (let i = 0; i < free.length; i += 50) {
    const token = await guest();
    const res = await fetch(`${api}/api/events/${event}/bookings`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}`, 'idempotency-key': `rest-${i}` },
      body: JSON.stringify({ seats: free.slice(i, i + 50) }),
    });
    if (res.status !== 201 && res.status !== 202) throw new Error(`selling the rest got ${res.status}: ${await res.text()}`);
  }
  log('sold the remaining', free.length, 'seats through the API');
  await badge.getByText('Sold out').waitFor({ timeout: 30000 });
  summary.listed_sold_out = (await badge.textContent()).trim();
  await list.screenshot({ path: `${shots}/stadium-event-list-sold-out.png` });
  // The overview shows every section sold out.
  await desk.locator('g.zone:not(.sold-out)').first().waitFor({ state: 'detached', timeout: 15000 });
  await desk.screenshot({ path: `${shots}/stadium-overview-sold-out.png` });
} finally {
  await browser.close();
}
console.log(JSON.stringify(summary));
