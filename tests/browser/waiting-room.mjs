// The waiting room in real browsers (Debian's chromium, headless). The
// test lets one buyer in through the API first, so the line is moving:
// buyer A signs up, joins the waiting room, waits for their turn, holds a
// seat and pays. Buyer B, a guest on a phone-sized screen who joins after
// A, sees their place move up while A shops, then gets their turn too.
// Prints a JSON summary on the last line; screenshots go to the folder given.
//   node waiting-room.mjs <dashboard-url> <event-id> <screenshot-dir>
import { launch, open, log } from './common.mjs';

const [dashboard, event, shots] = process.argv.slice(2);
const browser = await launch();
const summary = {};
try {
  const a = await (await browser.newContext({ viewport: { width: 1280, height: 900 } })).newPage();
  await open(a, `${dashboard}/account`);
  await a.fill('#buyer-email', `waiting-${Date.now()}@example.com`);
  await a.fill('#buyer-password', 'a long enough passphrase');
  await a.click('#buyer-sign-up');
  await a.locator('#account-state').waitFor({ timeout: 15000 });
  await open(a, `${dashboard}/events/${event}`);
  await a.click('#join-waiting-room');
  await a.locator('#waiting-room').waitFor({ timeout: 15000 });
  summary.a_position = (await a.locator('#position').textContent()).trim();
  await a.locator('#estimate').getByText(/Your turn comes in about/).waitFor({ timeout: 5000 });
  await a.screenshot({ path: `${shots}/waiting-room.png`, fullPage: true });
  log('buyer A waits:', summary.a_position);

  const b = await (await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true })).newPage();
  await open(b, `${dashboard}/events/${event}`);
  await b.click('#join-waiting-room');
  await b.locator('#position').getByText('1 buyer ahead of you.').waitFor({ timeout: 15000 });
  summary.b_positions = ['1 buyer ahead of you.'];
  await b.screenshot({ path: `${shots}/waiting-room-phone.png`, fullPage: true });
  log('buyer B waits behind A');

  // A's turn comes (at most ten seconds after the first buyer's).
  await a.locator('#turn').waitFor({ timeout: 30000 });
  summary.a_admitted = true;
  await a.getByRole('button', { name: 'Seat A-1-1, free' }).click();
  await a.click('#hold');
  await a.getByRole('status').getByText(/^Held A-1-1/).waitFor({ timeout: 15000 });
  await a.screenshot({ path: `${shots}/waiting-room-admitted.png`, fullPage: true });
  await a.click('#confirm');
  await a.getByRole('status').getByText(/^Paid: /).waitFor({ timeout: 15000 });
  summary.a_booked = 'A-1-1';
  log('buyer A was let in, held A-1-1 and paid');

  // B saw their place move up, and then their turn came.
  await b.locator('#position').getByText('You are next.').waitFor({ timeout: 15000 });
  summary.b_positions.push('You are next.');
  await b.locator('#turn').waitFor({ timeout: 30000 });
  summary.b_admitted = true;
  log('buyer B moved up and was let in');
} finally {
  await browser.close();
}
console.log(JSON.stringify(summary));
