// The queue pages in real headless Chromium: at phone size a driver takes a number, sees its
// place and wait, and sees it called when a charge point (Python `ocpp`, over OCPP) frees a
// connector; the staff desk shows the queue; the station card lists neighbours with amenities.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';

import { REPO, startServer } from './lib/server.mjs';
import { startFleet } from './lib/fleet.mjs';
import { launch, newPage, waitUntil } from './lib/browser.mjs';

const SHOTS = join(REPO, 'docs', 'screenshots');
const PHONE = { viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true };
const STATION = 'g4-leiyang-s';
const TWIN = 'g4-leiyang-n';
const CHARGER = 'QUEUE-CP-1';
const PASSWORD = 'queue-browser-password';

let server;
let fleet;
let browser;

before(async () => {
  server = await startServer({ env: { CHARGEOPS_QUEUE_PLUG_IN_SECS: '120' } });
  for (const [id, dir] of [[STATION, 'S'], [TWIN, 'N']]) {
    await server.ok('POST', '/api/v1/stations', { id, name: `耒阳服务区 (Leiyang) ${dir}`, lat: 26.42, lon: 112.86, highway: 'G4', direction: dir });
  }
  await server.ok('POST', '/api/v1/chargers', { id: CHARGER, station_id: STATION, password: PASSWORD });
  fleet = await startFleet(server, { chargers: [{
    id: CHARGER, version: '1.6', password: PASSWORD,
    connectors: [{ id: 1, status: 'Charging' }, { id: 2, status: 'Charging' }],
  }] });
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await fleet?.stop();
  await server?.stop();
});

test('a driver takes a number on a phone and sees it called when a connector frees', async () => {
  const { page, errors, context } = await newPage(browser, PHONE);
  await page.goto(`${server.base}/queue?station=${STATION}`);
  await page.waitForSelector('body[data-ready="true"]');
  await page.fill('#contact', '138 0013 8000');
  await page.click('#take-button');
  await page.waitForSelector('#t-state[data-state="waiting"]');
  assert.equal(await page.textContent('#t-number'), '1');
  assert.match(await page.textContent('#t-detail'), /Place 1 in the queue · about \d+ min/);
  assert.equal(await page.isVisible('#take'), false, 'one number at a time');
  const width = await page.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(width <= 390, `no sideways scrolling at phone width (${width})`);
  await page.screenshot({ path: join(SHOTS, 'queue-waiting.png') });

  // The charge point frees connector 2 over OCPP: the page shows the call within a poll.
  await fleet.status(CHARGER, 2, 'Available');
  await page.waitForSelector('#t-state[data-state="called"]', { timeout: 15_000 });
  assert.match(await page.textContent('#t-detail'), new RegExp(`charger ${CHARGER}, connector 2`));
  await page.screenshot({ path: join(SHOTS, 'queue-called.png') });

  // A reload keeps following the same number (kept in this browser).
  await page.reload();
  await page.waitForSelector('#t-state[data-state="called"]');

  // The connector is held for the ticket's own tag: the driver starts without a card, and the
  // charge point (told over OCPP to start with that tag) begins charging.
  await page.waitForSelector('#start:not([hidden])', { timeout: 15_000 });
  await page.click('#start');
  await page.waitForSelector('#t-state[data-state="charging"]', { timeout: 15_000 });
  assert.equal(await page.isVisible('#start'), false, 'nothing left to start');
  // The session follows the charger's StartTransaction, a moment after the car plugged in.
  let session;
  await waitUntil(async () => {
    [session] = (await server.ok('GET', `/api/v1/sessions?charger=${CHARGER}`)).filter((s) => !s.stopped_at);
    return Boolean(session);
  }, { what: 'the session' });
  assert.match(session.id_tag, /^Q[0-9A-F]{18}$/, 'started with the ticket\'s own tag');
  assert.deepEqual(errors, []);
  await context.close();
});

test('the staff desk lists the queue and hands out a paper number', async () => {
  const { page, errors, context } = await newPage(browser, { viewport: { width: 1024, height: 768 } });
  await page.goto(`${server.base}/staff?station=${STATION}#token=${server.token}`);
  await page.waitForSelector('body[data-ready="true"]');
  await waitUntil(async () => (await page.$$('#rows tr')).length === 1, { what: 'one ticket row' });
  assert.equal(await page.getAttribute('#rows tr', 'data-state'), 'charging');
  await page.click('#hand-out button[type="submit"]');
  await waitUntil(async () => (await page.$$('#rows tr[data-state="waiting"]')).length === 1, { what: 'a paper number' });
  assert.match(await page.textContent('#hand-out-result'), /Number 2/);
  assert.deepEqual(errors, []);
  await context.close();
});

test('the station card shows neighbours with availability and amenities, and prints', async () => {
  const { page, errors, context } = await newPage(browser, PHONE);
  await page.goto(`${server.base}/card?station=${STATION}`);
  await page.waitForSelector('body[data-ready="true"]');
  assert.match(await page.textContent('#amenities'), /toilets/);
  const rows = await page.$$eval('#rows tr', (trs) => trs.map((tr) => tr.textContent));
  assert.ok(rows.some((r) => r.includes('opposite side')), rows.join('\n'));
  await page.emulateMedia({ media: 'print' });
  assert.equal(await page.isVisible('#print'), false, 'the print button is not printed');
  assert.deepEqual(errors, []);
  await context.close();
});
