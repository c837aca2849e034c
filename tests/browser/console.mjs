// Drives the operator console in headless Chromium against a server that
// tests/api/console_browser.rs started, seeded and described in the environment:
//   CONSOLE_URL, CONSOLE_TOKEN (a key's REST token), CONSOLE_ADMIN_PASSWORD,
//   SENDER_KEY_ID / SENDER_SECRET (another key of the company, to send an envelope),
//   SUBSCRIPTION (the name of the subscription whose delivery fails once), SCREENSHOT_DIR.
// Exits 0 when every step passed; otherwise prints the failed step and leaves failure.png.

import { createHmac } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set (this script is started by cargo test)`);
  return value;
};
const BASE = env('CONSOLE_URL');
const SHOTS = env('SCREENSHOT_DIR');
const SUBSCRIPTION = env('SUBSCRIPTION');
const TIMEOUT = 15_000;

mkdirSync(SHOTS, { recursive: true });

// The flags this machine needs: no sandbox as root, and no background traffic to Google's
// hosts, which a closed network refuses many times a second.
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});

const problems = [];
let page = null;

function watch(p, label) {
  p.on('pageerror', (e) => problems.push(`${label}: uncaught ${e.message}`));
  p.on('console', (m) => {
    if (m.type() === 'error' && !/status of 40[13]/.test(m.text())) problems.push(`${label}: console error ${m.text()}`);
  });
}

async function step(name, action) {
  const started = Date.now();
  try {
    await action();
    console.log(`ok   ${name} (${Date.now() - started} ms)`);
  } catch (e) {
    console.log(`FAIL ${name}: ${e.message}`);
    if (page) await page.screenshot({ path: join(SHOTS, 'failure.png'), fullPage: true }).catch(() => {});
    await browser.close();
    process.exit(1);
  }
}

const shot = (name) => page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });

async function noSidewaysScroll(label) {
  const [scroll, inner] = await page.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]);
  if (scroll > inner) throw new Error(`${label}: the page is ${scroll} px wide in a ${inner} px window`);
}

async function openLogin() {
  await page.goto(`${BASE}/admin`);
  await page.locator('#credential').waitFor({ state: 'visible', timeout: TIMEOUT });
}

async function signIn(credential) {
  await openLogin();
  await page.fill('#credential', credential);
  await page.click('#login-form button[type=submit]');
  await page.locator('[data-testid=live-state].on').waitFor({ timeout: TIMEOUT });
}

async function tab(name) {
  await page.click(`.tabs a[data-view=${name}]`);
  await page.waitForFunction((n) => document.getElementById('view').dataset.page === n, name);
}

function card(name) {
  return page.locator(`.sub-card[data-name="${name}"]`);
}

// The signature of the last envelope sent: the console must never show it.
let sentSignature = '';

async function sendEnvelope(body) {
  const ts = Math.floor(Date.now() / 1000);
  const raw = JSON.stringify(body);
  const signature = createHmac('sha256', env('SENDER_SECRET')).update(`${ts}.${raw}`).digest('hex');
  sentSignature = signature;
  const response = await fetch(`${BASE}/webhooks/inbound`, {
    method: 'POST',
    headers: {
      'Content-Type': 'application/json',
      'X-API-Key': env('SENDER_KEY_ID'),
      'X-Webhook-Timestamp': String(ts),
      'X-Webhook-Signature': `sha256=${signature}`,
    },
    body: raw,
  });
  if (response.status !== 200) throw new Error(`the envelope got ${response.status}: ${await response.text()}`);
  return response.json();
}

// ---- Desktop, signed in with a key's REST token ----
const desktop = await browser.newContext({ viewport: { width: 1280, height: 860 } });
page = await desktop.newPage();
watch(page, 'desktop');

await step('the login page shows, and a wrong token is refused', async () => {
  await openLogin();
  await shot('login-1280');
  await page.fill('#credential', 'hkt_not-a-real-token');
  await page.click('#login-form button[type=submit]');
  await page.locator('#login-error:not([hidden])').waitFor({ timeout: TIMEOUT });
});

await step('sign in with the REST token; the live log connects', async () => {
  await signIn(env('CONSOLE_TOKEN'));
});

let accepted = null;
await step('an envelope sent now appears in the live log without a reload', async () => {
  await page.evaluate(() => { window.notReloaded = true; });
  accepted = await sendEnvelope({
    event_type: 'project.created',
    timestamp: new Date().toISOString(),
    source: 'browser-test',
    data: { project_code: 'PRJ-LIVE', project_name: 'Seen live', customer_name: 'Acme', location_name: 'HQ' },
  });
  const row = page.locator('[data-testid=ingest-log] tr[data-event-type="project.created"].fresh');
  await row.first().waitFor({ timeout: TIMEOUT });
  if (!(await page.evaluate(() => window.notReloaded === true))) throw new Error('the page reloaded');
  await row.first().click();
  const detail = page.locator('[data-testid=entry-detail]');
  await detail.waitFor({ timeout: TIMEOUT });
  const text = await detail.innerText();
  if (!text.includes(accepted.event_id)) throw new Error(`the detail panel does not name ${accepted.event_id}`);
  // The kept request: the body as sent, the signature header redacted.
  const body = page.locator('[data-testid=request-body]').first();
  await body.waitFor({ timeout: TIMEOUT });
  if (!(await body.innerText()).includes('PRJ-LIVE')) throw new Error('the kept body is not shown');
  const headers = await page.locator('[data-testid=request-headers]').innerText();
  if (!/x-webhook-signature/i.test(headers)) throw new Error(`the kept headers are not shown: ${headers}`);
  if (headers.includes(sentSignature)) throw new Error('the signature is shown unredacted');
  await shot('log-1280');
  await noSidewaysScroll('log at 1280 px');
});

await step('the request is replayed from its detail panel', async () => {
  await page.locator('[data-testid=entry-detail] button[data-action=replay]').click();
  const result = page.locator('[data-testid=replay-result]');
  await page.waitForFunction(() => /Replayed as req_/.test(
    document.querySelector('[data-testid=replay-result]')?.textContent || ''), null, { timeout: TIMEOUT });
  await shot('replay-1280');
  if (!(await result.innerText()).match(/: \d{3} /)) throw new Error('the replay result has no status');
});

await step('subscriptions show their health; disable and enable one', async () => {
  await tab('subscriptions');
  await card(SUBSCRIPTION).waitFor({ timeout: TIMEOUT });
  await page.locator('.sub-card.failing').first().waitFor({ timeout: TIMEOUT });
  await page.locator('.sub-card.disabled').first().waitFor({ timeout: TIMEOUT });
  await shot('subscriptions-1280');
  await noSidewaysScroll('subscriptions at 1280 px');
  await card(SUBSCRIPTION).locator('button[data-action=disable]').click();
  await page.locator(`.sub-card.disabled[data-name="${SUBSCRIPTION}"]`).waitFor({ timeout: TIMEOUT });
  await card(SUBSCRIPTION).locator('button[data-action=enable]').click();
  await page.locator(`.sub-card.active[data-name="${SUBSCRIPTION}"]`).waitFor({ timeout: TIMEOUT });
});

await step('the failed delivery is retried and succeeds', async () => {
  await card(SUBSCRIPTION).getByRole('button', { name: 'Deliveries →' }).click();
  await page.waitForFunction(() => document.getElementById('view').dataset.page === 'deliveries');
  const failed = page.locator(`[data-testid=deliveries] tr[data-status=failed]`).filter({ hasText: 'project.created' });
  await failed.first().waitFor({ timeout: TIMEOUT });
  const id = await failed.first().getAttribute('data-id');
  await shot('deliveries-1280');
  await noSidewaysScroll('deliveries at 1280 px');
  await failed.first().locator('button[data-action=retry]').click();
  await page.locator(`[data-testid=deliveries] tr[data-id="${id}"][data-status=succeeded]`).waitFor({ timeout: TIMEOUT });
});

await step('the charts draw requests by outcome and delivery lag', async () => {
  await tab('charts');
  await page.locator('[data-testid=requests-chart] svg rect.bar.accepted').first().waitFor({ timeout: TIMEOUT });
  await page.locator('[data-testid=lag-chart] svg circle.dot.p50').first().waitFor({ timeout: TIMEOUT });
  await shot('charts-1280');
  await noSidewaysScroll('charts at 1280 px');
});

await step('a key is created and its secrets are shown once', async () => {
  await tab('keys');
  await page.fill('.create-key input', 'made-in-browser');
  await page.click('.create-key button[type=submit]');
  const panel = page.locator('[data-testid=secret-panel]');
  await panel.waitFor({ timeout: TIMEOUT });
  const keyId = await panel.locator('code[data-secret="X-API-Key"]').innerText();
  if (!keyId.startsWith('hk_')) throw new Error(`unexpected key id ${keyId}`);
  await page.locator('tr', { hasText: 'made-in-browser' }).first().waitFor({ timeout: TIMEOUT });
  await shot('keys-1280');
  await noSidewaysScroll('keys at 1280 px');
});
await desktop.close();

// ---- Phone, signed in as the admin ----
const phone = await browser.newContext({
  viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true,
});
page = await phone.newPage();
watch(page, 'phone');

await step('the admin signs in on a phone and sees every page without sideways scrolling', async () => {
  await openLogin();
  await shot('login-phone');
  await signIn(env('CONSOLE_ADMIN_PASSWORD'));
  await page.locator('#company:not([hidden])').waitFor({ timeout: TIMEOUT });
  await page.locator('[data-testid=ingest-log] tr[data-event-type="project.created"]').first().waitFor({ timeout: TIMEOUT });
  await shot('log-phone');
  await noSidewaysScroll('log on a phone');
  await page.locator('[data-testid=ingest-log] tr[data-event-type="project.created"]').first().tap();
  await page.locator('[data-testid=entry-detail]').waitFor({ timeout: TIMEOUT });
  await page.screenshot({ path: join(SHOTS, 'log-detail-phone.png') });
  await page.getByRole('button', { name: 'Close' }).tap();
  for (const [name, ready] of [
    ['subscriptions', '.sub-card'],
    ['deliveries', '[data-testid=deliveries] tr[data-status]'],
    ['keys', 'tr[data-id]'],
    ['charts', '[data-testid=requests-chart] svg'],
  ]) {
    await tab(name);
    await page.locator(ready).first().waitFor({ timeout: TIMEOUT });
    await shot(`${name}-phone`);
    await noSidewaysScroll(`${name} on a phone`);
  }
});

await step('no script error and no Content-Security-Policy violation on any page', async () => {
  if (problems.length) throw new Error(problems.join('\n'));
});

await browser.close();
console.log(`screenshots in ${SHOTS}`);
