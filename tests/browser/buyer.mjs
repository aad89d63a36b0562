// Buyers in real browsers (Debian's chromium, headless), each with its own
// cookies. Buyer 1 asks for the best two seats, sees the hold and its
// countdown, and pays; buyer 2, on the same page, sees those seats turn sold
// without reloading. Buyer 3, on a phone-sized screen, picks a seat someone
// takes meanwhile and reads why the hold failed. Buyer 3 then cannot open
// the organizer pages or call their server functions. Prints a JSON summary
// on the last line; screenshots go to the folder given.
// On an event whose holds last seconds, a hold runs out in front of buyer 1.
// Buyer 4 creates an account, holds a seat as that account, signs out, and
// the API refuses the token the browser held.
//   node buyer.mjs <dashboard-url> <api-url> <event-id> <screenshot-dir> <short-hold-event-id>
import { launch, open, log } from './common.mjs';

const [dashboard, api, event, shots, shortHold] = process.argv.slice(2);
const browser = await launch();
const summary = {};
try {
  const one = await (await browser.newContext({ viewport: { width: 1280, height: 900 } })).newPage();
  const two = await (await browser.newContext({ viewport: { width: 1280, height: 900 } })).newPage();
  summary.load_to_interactive_ms = await open(one, `${dashboard}/events/${event}`);
  await open(two, `${dashboard}/events/${event}`);
  await two.locator('[data-live="true"]').waitFor({ timeout: 15000 });
  log('two buyers on the event page; load to interactive', summary.load_to_interactive_ms, 'ms');

  // Buyer 1: best two seats in section A.
  await one.selectOption('#best-section', 'A');
  await one.fill('#best-quantity', '2');
  await one.click('#best');
  const held = one.getByRole('status').getByText(/^Held A-\d+-\d+, A-\d+-\d+/);
  await held.waitFor({ timeout: 15000 });
  const seats = (await held.textContent()).match(/A-\d+-\d+/g);
  await one.locator('#countdown').getByText(/^\d\d:\d\d left$/).waitFor({ timeout: 5000 });
  for (const s of seats) {
    await one.locator(`[data-seat="${s}"].mine`).waitFor({ timeout: 5000 });
    if (await one.getByRole('button', { name: `Seat ${s}, yours` }).count() !== 1) {
      throw new Error(`seat ${s} is not labelled as the buyer's`);
    }
  }
  await one.screenshot({ path: `${shots}/buyer-hold.png`, fullPage: true });
  log('buyer 1 holds', seats.join(', '));
  await one.click('#confirm');
  await one.getByRole('status').getByText(/^Paid: /).waitFor({ timeout: 15000 });
  summary.best_available_confirmed = seats;
  await one.screenshot({ path: `${shots}/buyer-paid.png`, fullPage: true });

  // Buyer 2 saw it live: the seats turned sold without a reload.
  for (const s of seats) {
    await two.locator(`[data-seat="${s}"].sold`).waitFor({ timeout: 15000 });
  }
  summary.second_browser_saw_sold = true;
  await two.screenshot({ path: `${shots}/buyer-seat-map-live.png`, fullPage: true });
  log('buyer 2 saw', seats.join(', '), 'turn sold live');

  // Buyer 1 may have 4 seats for this event: 3 more is refused, in words.
  await one.fill('#best-quantity', '3');
  await one.click('#best');
  await one.getByRole('status').getByText(/more seats than one buyer may have/).waitFor({ timeout: 15000 });
  // One more seat is fine; buyer 1 holds it, then gives it back.
  await one.getByRole('button', { name: 'Seat B-6-14, free' }).click();
  await one.click('#hold');
  await one.getByRole('status').getByText(/^Held B-6-14/).waitFor({ timeout: 15000 });
  await two.locator('[data-seat="B-6-14"].held').waitFor({ timeout: 15000 });
  await one.click('#cancel');
  await one.getByRole('status').getByText(/^Cancelled: B-6-14/).waitFor({ timeout: 15000 });
  await two.locator('[data-seat="B-6-14"].free').waitFor({ timeout: 15000 });
  summary.limit_refused_and_hold_cancelled = true;
  log('buyer 1 was refused past the limit, then held and cancelled B-6-14');

  // Buyer 3 is on a phone whose live feed lags (blocked here), so the map
  // still shows A-3-5 free when a rival takes it through the API.
  const three = await (await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true })).newPage();
  await three.route('**/live/**', (route) => route.abort());
  await open(three, `${dashboard}/events/${event}`);
  await three.getByRole('button', { name: 'Seat A-3-5, free' }).click();
  if (await three.locator('[data-seat="A-3-5"]').getAttribute('aria-pressed') !== 'true') {
    throw new Error('clicking a seat did not pick it');
  }
  // Keyboard: tab to the next seat and pick it with Enter.
  await three.locator('[data-seat="A-3-5"]').focus();
  await three.keyboard.press('Tab');
  await three.keyboard.press('Enter');
  if (await three.locator('[data-seat="A-3-6"]').getAttribute('aria-pressed') !== 'true') {
    throw new Error('the keyboard did not pick the next seat');
  }
  const token = (await (await fetch(`${api}/api/auth/buyer`, { method: 'POST' })).json()).token;
  const rival = await fetch(`${api}/api/events/${event}/bookings`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}`, 'idempotency-key': 'browser-test-rival' },
    body: JSON.stringify({ seats: ['A-3-5'] }),
  });
  if (rival.status !== 201) throw new Error(`the rival booking got ${rival.status}`);
  await three.click('#hold');
  await three.getByRole('status').getByText(/taken meanwhile/).waitFor({ timeout: 15000 });
  // After the refusal the map shows the seat taken, even without the feed.
  await three.locator('[data-seat="A-3-5"].held').waitFor({ timeout: 10000 });
  summary.taken_seat_refused = true;
  await three.screenshot({ path: `${shots}/buyer-seat-taken-phone.png`, fullPage: true });
  log('buyer 3 was told A-3-5 was taken meanwhile');

  // Buyer 3 cannot reach the organizer pages or their data.
  for (const path of ['/organizer', '/organizer/operations', `/organizer/events/${event}`]) {
    await open(three, `${dashboard}${path}`);
    await three.getByRole('heading', { name: 'Organizers only' }).waitFor({ timeout: 10000 });
    if (await three.locator('#queue-depth, #pods, [data-stat]').count() !== 0) {
      throw new Error(`${path} showed organizer data to a buyer`);
    }
  }
  await three.screenshot({ path: `${shots}/buyer-organizers-only.png`, fullPage: true });
  const direct = await three.evaluate(async () => {
    const r = await fetch('/rpc/operations', { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: '' });
    return { status: r.status, body: await r.text() };
  });
  if (direct.status !== 403) throw new Error(`a buyer calling /rpc/operations got ${direct.status}: ${direct.body}`);
  summary.organizer_pages_refused = true;

  // A hold that runs out: the countdown ends and the page says so.
  await open(one, `${dashboard}/events/${shortHold}`);
  await one.getByRole('button', { name: 'Seat A-2-3, free' }).click();
  await one.click('#hold');
  await one.getByRole('status').getByText(/^Held A-2-3/).waitFor({ timeout: 15000 });
  await one.locator('#countdown').getByText('the hold ended').waitFor({ timeout: 15000 });
  if (!(await one.locator('#confirm').isDisabled())) throw new Error('paying stays possible after the hold ended');
  await one.getByRole('status').getByText(/^The hold on A-2-3 ended/).waitFor({ timeout: 30000 });
  await one.locator('[data-seat="A-2-3"].free').waitFor({ timeout: 10000 });
  summary.hold_expired_in_view = true;
  await one.screenshot({ path: `${shots}/buyer-hold-expired.png` });
  log('buyer 1 watched a hold run out');

  // The event list links to the event.
  const list = await browser.newPage();
  await open(list, dashboard);
  await list.locator(`a[href="/events/${event}"]`).waitFor({ timeout: 15000 });
  await list.screenshot({ path: `${shots}/event-list.png` });
  summary.listed = true;

  // Buyer 4 books with an account of their own.
  const fourth = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const four = await fourth.newPage();
  await open(four, `${dashboard}/account`);
  const email = `buyer-${Date.now()}@example.com`;
  await four.fill('#buyer-email', email);
  await four.fill('#buyer-password', 'a long enough passphrase');
  await four.click('#buyer-sign-up');
  await four.locator('#account-state').waitFor({ timeout: 15000 });
  const accountToken = (await fourth.cookies()).find((c) => c.name === 'bx_buyer')?.value;
  const me = await (await fetch(`${api}/api/auth/session`, { headers: { Authorization: `Bearer ${accountToken}` } })).json();
  if (me.signed_in !== true || me.role !== 'buyer') throw new Error(`not an account's session: ${JSON.stringify(me)}`);
  await open(four, `${dashboard}/events/${event}`);
  await four.getByRole('button', { name: 'Seat B-1-1, free' }).click();
  await four.click('#hold');
  await four.getByRole('status').getByText(/^Held B-1-1/).waitFor({ timeout: 15000 });
  await four.screenshot({ path: `${shots}/buyer-account-hold.png`, fullPage: true });
  // The hold is the account's, as the API sees it.
  const seatsNow = await (await fetch(`${api}/api/events/${event}/seats`)).json();
  if (seatsNow.seats['B-1-1'] !== 'held') throw new Error(`B-1-1 is ${seatsNow.seats['B-1-1']}`);
  await open(four, `${dashboard}/account`);
  await four.click('#buyer-sign-out');
  await four.locator('#buyer-sign-in').waitFor({ timeout: 15000 });
  const after = await fetch(`${api}/api/auth/session`, { headers: { Authorization: `Bearer ${accountToken}` } });
  const refusal = await after.json();
  if (after.status !== 401 || refusal.code !== 'signed_out') throw new Error(`a signed-out token was not refused: ${after.status} ${JSON.stringify(refusal)}`);
  summary.account_booked_and_signed_out = { account: me.id, refused: refusal.code };
  log('buyer 4 signed up, held B-1-1, signed out; the token is refused');
} finally {
  await browser.close();
}
console.log(JSON.stringify(summary));
