// An organizer in a real browser: signs in (a wrong password first), creates
// an event with the form, opens its sale view and watches the counts move
// while a small load run (`boxoffice loadgen`) books seats, then opens the
// operations view and sees queue depth and every pod. A second organizer
// creates an account in the sign-in form, does not see the first one's
// event and cannot open it, signs out, and the API refuses the token the
// browser held. Prints a JSON summary on the last line; screenshots go to
// the folder given.
//   node organizer.mjs <dashboard-url> <api-url> <screenshot-dir> <boxoffice-binary>
import { spawn } from 'node:child_process';
import { launch, open, log } from './common.mjs';

const [dashboard, api, shots, boxoffice] = process.argv.slice(2);
const browser = await launch();
const summary = {};
const stat = async (page, key) => Number((await page.locator(`[data-stat="${key}"] .value`).textContent()).trim());
try {
  const page = await (await browser.newContext({ viewport: { width: 1366, height: 1000 } })).newPage();
  await open(page, `${dashboard}/organizer`);
  await page.getByRole('heading', { name: 'Organizers only' }).waitFor();
  await page.fill('#password', 'not the password');
  await page.click('#sign-in');
  await page.getByRole('status').getByText(/wrong organizer password/i).waitFor({ timeout: 10000 });
  await page.fill('#password', 'organizer');
  await page.click('#sign-in');
  await page.getByRole('heading', { name: 'Your events' }).waitFor({ timeout: 15000 });
  summary.signed_in = true;

  // A new event through the form: the defaults are 2 sections, 100 seats.
  await page.click('text=Create an event');
  await page.getByRole('heading', { name: 'New event' }).waitFor();
  await page.waitForFunction(() => document.querySelector('#starts-at')?.value !== '');
  await page.fill('#event-name', 'Browser Test Gala');
  await page.fill('#venue-name', 'Test Hall');
  await page.screenshot({ path: `${shots}/organizer-new-event.png`, fullPage: true });
  await page.click('#create');
  await page.waitForURL(/\/organizer\/events\/[0-9a-f-]{36}$/, { timeout: 20000 });
  const event = page.url().split('/').pop();
  await page.locator('[data-stat="capacity"] .value').getByText('100').waitFor({ timeout: 15000 });
  summary.created = event;
  log('created event', event);

  // A small load run against the new event while the page watches: two
  // buyers at a time, so the sale takes some seconds.
  const loadgen = spawn(boxoffice, ['loadgen', '--api', api, '--event', event,
    '--requests', '300', '--concurrency', '2', '--max-quantity', '2'], { stdio: ['ignore', 'pipe', 'inherit'] });
  let report = '';
  let done = false;
  loadgen.stdout.on('data', (d) => { report += d; });
  const finished = new Promise((resolve) => loadgen.on('exit', (code) => { done = true; resolve(code); }));
  const seen = new Set();
  let fastest = 0;
  let shot = false;
  while (!done) {
    const taken = (await stat(page, 'held')) + (await stat(page, 'sold'));
    if (!Number.isNaN(taken)) seen.add(taken);
    const rate = Number((await page.locator('[data-stat="rate"] .value').textContent()).trim());
    if (rate > fastest) fastest = rate;
    if (!shot && taken >= 30) {
      await page.screenshot({ path: `${shots}/organizer-sale-live.png`, fullPage: true });
      shot = true;
    }
    await page.waitForTimeout(250);
  }
  const code = await finished;
  if (code !== 0) throw new Error(`loadgen failed (${code}): ${report}`);
  // After the run the view catches up with what the API says.
  const seats = await (await fetch(`${api}/api/events/${event}/seats`)).json();
  const free = seats.sections.reduce((n, s) => n + s.free, 0);
  await page.waitForFunction((f) => Number(document.querySelector('[data-stat="free"] .value')?.textContent) === f, free, { timeout: 20000 });
  summary.final_free = free;
  summary.loadgen = JSON.parse(report);
  const moving = [...seen].sort((a, b) => a - b);
  summary.counts_seen = moving;
  summary.fastest_bookings_per_s = fastest;
  summary.rejections_listed = await page.locator('#rejections tbody tr').count();
  summary.revenue = (await page.locator('[data-stat="revenue"] .value').textContent()).trim();
  await page.screenshot({ path: `${shots}/organizer-sale-sold-out.png`, fullPage: true });
  log('sale view moved through', moving.length, 'counts; revenue', summary.revenue);

  // Close the sale from the view.
  await page.click('#sale-switch');
  await page.locator('#sale-switch').getByText('Open the sale').waitFor({ timeout: 15000 });
  summary.sale_closed = true;

  // Operations: queue depth from the broker and every pod's figures.
  await page.goto(`${dashboard}/organizer/operations`);
  await page.waitForSelector('body[data-hydrated="true"]');
  await page.locator('#queue-depth tbody tr').first().waitFor({ timeout: 20000 });
  await page.waitForFunction(() => [...document.querySelectorAll('#pods tbody tr')]
    .some((r) => r.dataset.pod?.startsWith('api') && /\d/.test(r.children[2].textContent)), null, { timeout: 20000 });
  summary.partitions = await page.locator('#queue-depth tbody tr').count();
  // The dead-letter topic's depth, read from the broker (0 in a clean run).
  await page.waitForFunction(() => /^\d+$/.test(document.querySelector('#dead-letters')?.textContent ?? ''), null, { timeout: 20000 });
  summary.dead_letters = Number(await page.locator('#dead-letters').textContent());
  summary.pods = await page.locator('#pods tbody tr').evaluateAll((rows) => rows.map((r) => r.dataset.pod));
  await page.waitForTimeout(4000); // a few samples for the charts
  await page.screenshot({ path: `${shots}/organizer-operations.png`, fullPage: true });
  log('operations view:', summary.partitions, 'partitions,', summary.pods.length, 'pods');

  // Another organizer: an account of their own, made in the sign-in form.
  const other = await browser.newContext({ viewport: { width: 1366, height: 1000 } });
  const second = await other.newPage();
  await open(second, `${dashboard}/organizer`);
  const email = `organizer-${Date.now()}@example.com`;
  await second.fill('#email', email);
  await second.fill('#password', 'short');
  await second.click('#sign-up');
  await second.getByRole('status').getByText(/10 to 128 characters/i).waitFor({ timeout: 10000 });
  await second.fill('#password', 'a long enough passphrase');
  await second.click('#sign-up');
  await second.getByRole('heading', { name: 'Your events' }).waitFor({ timeout: 15000 });
  await second.getByText('No events yet').waitFor({ timeout: 15000 });
  if (await second.getByText('Browser Test Gala').count() !== 0) throw new Error("another organizer's event is listed");
  summary.second_organizer_signed_up = email;
  // The first organizer's sale view: refused, and no figure shown.
  await open(second, `${dashboard}/organizer/events/${event}`);
  await second.getByText(/belongs to another organizer/i).waitFor({ timeout: 15000 });
  // Give the page a few refreshes: no figure is drawn.
  await second.waitForTimeout(2500);
  const figures = await second.locator('[data-stat] .value').allTextContents();
  if (figures.length !== 0) {
    throw new Error(`another organizer's sale figures were shown: ${JSON.stringify(figures)}`);
  }
  await second.screenshot({ path: `${shots}/organizer-not-your-event.png`, fullPage: true });
  summary.other_event_refused = true;
  // Signing out ends the session at the API: the token this browser held
  // is refused from then on, not only forgotten.
  const token = (await other.cookies()).find((c) => c.name === 'bx_organizer')?.value;
  if (!token) throw new Error('no organizer cookie after signing up');
  const before = await fetch(`${api}/api/auth/session`, { headers: { Authorization: `Bearer ${token}` } });
  if (before.status !== 200) throw new Error(`the session did not count: ${before.status}`);
  await open(second, `${dashboard}/organizer`);
  await second.click('#sign-out');
  await second.getByRole('heading', { name: 'Organizers only' }).waitFor({ timeout: 15000 });
  const after = await fetch(`${api}/api/auth/session`, { headers: { Authorization: `Bearer ${token}` } });
  const refusal = await after.json();
  if (after.status !== 401 || refusal.code !== 'signed_out') throw new Error(`a signed-out token was not refused: ${after.status} ${JSON.stringify(refusal)}`);
  summary.signed_out_token_refused = refusal.code;
  // Signing in again with the account works.
  await second.fill('#email', email.toUpperCase());
  await second.fill('#password', 'a long enough passphrase');
  await second.click('#sign-in');
  await second.getByRole('heading', { name: 'Your events' }).waitFor({ timeout: 15000 });
  summary.signed_in_again = true;
  log('second organizer: signed up, refused the other event, signed out, token refused');
} finally {
  await browser.close();
}
console.log(JSON.stringify(summary));
