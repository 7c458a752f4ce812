/**
 * The dashboard in a real browser: Debian's headless Chromium driven by playwright-core, against
 * the real server in this process, with history made by real handouts. Everything on 127.0.0.1.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { chromium, type Browser, type Page } from 'playwright-core';
import { keyIdOf, maskKey } from '../../shared/keys.js';
import type { StatsResponse } from '../../shared/stats.js';
import { FakeClock } from '../helpers/clock.js';
import { makeKeys } from '../helpers/keys.js';
import { call, getJson, postJson, startInProcess } from '../helpers/server.js';
import { tempDir } from '../helpers/tmp.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const MISSING = `Chromium not found at ${CHROMIUM} (apt-get install chromium; .ci/run installs it)`;
const present = existsSync(CHROMIUM);
if (!present && process.env.CI) throw new Error(MISSING);

const TOKEN = 'dashboard-api-token-0123456789';
const ADMIN = 'dashboard-admin-token-0123456789';
const auth = { authorization: `Bearer ${TOKEN}` };

/** Headless Chromium as this machine allows it: no sandbox (root), and none of its background calls to Google's hosts. */
function launch(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

/** Console errors, page errors and CSP violations, as they happen. */
function watch(page: Page): string[] {
  const problems: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`console: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  void page.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) =>
      console.error(`CSP violation: ${e.violatedDirective} ${e.blockedURI}`),
    );
  });
  return problems;
}

describe('dashboard in headless Chromium', { skip: present ? false : MISSING }, () => {
  it('sign in (a wrong token says so), both pools with masked keys only, a chart from real handouts, a key disabled from the page; no console error, no CSP violation', async (t) => {
    const plant = makeKeys(3, 'plant');
    const health = makeKeys(2, 'health');
    // A clock that stands still (at a minute's middle): the handouts below stay in the newest minute the chart shows.
    const clock = new FakeClock(Math.floor(Date.now() / 60_000) * 60_000 + 30_000);
    const s = await startInProcess(t, {
      clock,
      keys: { plantid: plant, healthid: health },
      pools: { plantid: { limits: { perDay: 100 } } },
      env: { API_TOKENS: TOKEN, ADMIN_TOKEN: ADMIN, ALERT_CHECK_INTERVAL_MS: '200' },
    });
    // Real traffic for the charts: handouts, reports, and one request with no key.
    for (let i = 0; i < 7; i++) assert.equal((await getJson(`${s.url}/api/plantid`, { headers: auth })).status, 200);
    await postJson(`${s.url}/api/plantid/report`, { keyId: keyIdOf(plant[0]!), outcome: 'ok' }, auth);
    await postJson(`${s.url}/api/plantid/report`, { keyId: keyIdOf(plant[1]!), status: 429, retryAfter: 120 }, auth);
    const served = (
      await getJson(`${s.url}/api/stats/history?pool=plantid&range=1h`, { headers: auth })
    ).body.counts.served.at(-1);
    assert.equal(served, 7);

    const browser = await launch();
    t.after(() => browser.close());

    // A wrong token: the form says so, and nothing is shown. (Its own session: Chromium logs the
    // refused request as a console error, which is the point here.)
    const wrong = await browser.newPage();
    await wrong.goto(`${s.url}/dashboard`);
    await wrong.locator('#signin-form input[name="token"]').fill('wrong-token-0123456789');
    await wrong.locator('#signin-form button[type="submit"]').click();
    await wrong.locator('#signin-error').filter({ hasText: 'refused' }).waitFor();
    assert.match(
      await wrong.locator('#signin-error').innerText(),
      /That API token was refused by the server \(401 unauthorized\)/u,
    );
    assert.equal(await wrong.locator('section.pool').count(), 0);
    await wrong.close();

    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const problems = watch(page);
    const first = await page.goto(`${s.url}/`);
    assert.equal(first?.url(), `${s.url}/dashboard`);
    assert.match(first!.headers()['content-security-policy'] ?? '', /script-src 'self'/u);
    assert.equal(first!.headers()['x-frame-options'], 'DENY');
    await page.locator('#signin-form input[name="token"]').waitFor();
    // Signed out: "Sign in" alone.
    assert.deepEqual(
      [await page.locator('#show-signin').isVisible(), await page.locator('#signout').isVisible()],
      [true, false],
    );

    // The right tokens, typed with the keyboard.
    await page.locator('#signin-form input[name="token"]').fill(TOKEN);
    await page.locator('#signin-form input[name="adminToken"]').fill(ADMIN);
    await page.keyboard.press('Enter');
    await page.locator('section[data-pool="plantid"] .table-wrap tbody tr').nth(2).waitFor();
    await page.locator('section[data-pool="healthid"] .table-wrap tbody tr').nth(1).waitFor();
    assert.equal(await page.evaluate(() => window.location.href.includes('token')), false);
    const text = await page.locator('body').innerText();
    for (const k of [...plant, ...health]) {
      assert.ok(text.includes(maskKey(k)), `masked ${maskKey(k)} shown`);
      assert.ok(!text.includes(k), 'a plaintext key is on the page');
    }
    assert.ok(!(await page.content()).includes(plant[0]!));
    const row = page.locator(`section[data-pool="plantid"] tr[data-key-id="${keyIdOf(plant[1]!)}"]`);
    assert.match(await row.innerText(), /blocked\s+reported 429/u);

    // Signed in: "Sign out" alone.
    assert.deepEqual(
      [await page.locator('#show-signin').isVisible(), await page.locator('#signout').isVisible()],
      [false, true],
    );

    // The chart: uPlot drew plantid's, from the history the handouts made. Before any pointer is
    // on it, the legend reads the newest minute: the handouts made above, the 429 reported.
    await page.locator('section[data-pool="plantid"] .chart .uplot canvas').first().waitFor();
    const legend = page.locator('section[data-pool="plantid"] .chart .u-legend');
    await legend.filter({ hasText: /served\s*:?\s*7(?!\d)/u }).waitFor({ timeout: 5000 });
    assert.match(await legend.innerText(), /rate limited\s*:?\s*1(?!\d)/u);
    // The range switch: 7d per hour, the same handouts in the newest hour.
    await page.locator('section[data-pool="plantid"] .switch button', { hasText: '7d' }).click();
    await page.locator('section[data-pool="plantid"] h3', { hasText: 'Last 7 days, per hour' }).waitFor();
    await legend.filter({ hasText: /served\s*:?\s*7(?!\d)/u }).waitFor({ timeout: 5000 });

    // Disable a key from the page: a prompt for the reason, then the stats say so.
    const target = keyIdOf(plant[2]!);
    page.once('dialog', (d) => void d.accept('rotated out by the test'));
    await page.getByRole('button', { name: `Disable ${target}` }).click();
    await page
      .locator('#message')
      .filter({ hasText: `Disable ${target}: done` })
      .waitFor();
    const stats = (await getJson(`${s.url}/api/stats?pool=plantid`, { headers: auth })).body as StatsResponse;
    const disabled = stats.pools[0]!.keys.find((k) => k.keyId === target)!;
    assert.deepEqual([disabled.status, disabled.reason], ['disabled', 'disabled by admin: rotated out by the test']);
    await page.locator(`tr[data-key-id="${target}"] .status.disabled`).waitFor();
    // The server's alerts in force show as a banner: plantid has one usable key of three now.
    await page.locator('#alerts .alert', { hasText: 'pool plantid has 1 of 3 keys usable' }).waitFor();

    // An app with a budget spends through the API: the apps table shows it against its budget,
    // and the latest admin actions list its making and the disable above.
    const made = await call(`${s.url}/admin/apps`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN}` },
      json: { name: 'mobile', mode: 'handout', budget: { plantid: { day: 5 } } },
    });
    const appAuth = { authorization: `Bearer ${made.body.token}` };
    assert.equal((await getJson(`${s.url}/api/plantid`, { headers: appAuth })).status, 200);
    const appRow = page.locator('#apps tr[data-app="mobile"][data-pool="plantid"]');
    await appRow.waitFor({ timeout: 10_000 });
    assert.match(await appRow.innerText(), /mobile\s+handout\s+plantid\s+1 \/ 5/u);
    await page.locator('#audit li').filter({ hasText: 'admin: app.add app mobile' }).waitFor();
    assert.match(await page.locator('#audit').innerText(), new RegExp(`admin: key\\.disable plantid/${target}`, 'u'));
    assert.ok(!(await page.content()).includes(made.body.token), 'an app token is on the page');

    // Sorting and filtering, through their controls.
    await page.getByRole('button', { name: 'keyId' }).first().click();
    await page.locator('section[data-pool="plantid"] input[type="search"]').fill(target);
    assert.equal(await page.locator('section[data-pool="plantid"] .table-wrap tbody tr').count(), 1);
    await page.locator('section[data-pool="plantid"] input[type="search"]').fill('');

    // At 1280 px nothing scrolls sideways and every key's actions are in the viewport.
    const actionsInView = async (width: number) => {
      const boxes = await page
        .locator('section.pool tbody tr .actions')
        .evaluateAll((els) => els.map((e) => e.getBoundingClientRect().right));
      assert.ok(boxes.length >= 5, `actions of ${boxes.length} keys`);
      for (const right of boxes) assert.ok(right <= width, `actions end at ${right} px, past ${width}`);
      assert.ok(
        (await page.evaluate(() => document.documentElement.scrollWidth)) <= width,
        'the page scrolls sideways',
      );
    };
    await actionsInView(1280);
    if (process.env.DASHBOARD_SCREENSHOT)
      await page.screenshot({ path: process.env.DASHBOARD_SCREENSHOT, fullPage: true });

    // On a phone each key is a card, its actions in reach; dark mode follows the system.
    await page.setViewportSize({ width: 390, height: 844 });
    await page.emulateMedia({ colorScheme: 'dark' });
    await page
      .waitForFunction(() => document.documentElement.scrollWidth <= 390, undefined, { timeout: 5000 })
      .catch(() => undefined);
    assert.ok(
      (await page.evaluate(() => document.documentElement.scrollWidth)) <= 390,
      'the page is wider than a phone',
    );
    await actionsInView(390);
    if (process.env.DASHBOARD_SCREENSHOT_PHONE)
      await page.screenshot({ path: process.env.DASHBOARD_SCREENSHOT_PHONE, fullPage: true });
    assert.equal(await page.evaluate(() => getComputedStyle(document.body).backgroundColor), 'rgb(16, 20, 28)');
    await page.emulateMedia({ colorScheme: 'light' });
    await page.setViewportSize({ width: 1280, height: 900 });

    const shot = join(await tempDir(t), 'dashboard.png');
    await page.screenshot({ path: shot, fullPage: true });
    console.log(`dashboard screenshot: ${shot}`);
    assert.deepEqual(problems, []);
  });
});
