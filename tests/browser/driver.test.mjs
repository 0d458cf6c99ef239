// The driver page at phone size in real headless Chromium, and the public endpoint it reads.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

import { REPO, startServer } from './lib/server.mjs';
import { buildNetwork, readStations } from './lib/network.mjs';
import { startFleet } from './lib/fleet.mjs';
import { launch, newPage, waitUntil } from './lib/browser.mjs';

const SHOTS = join(REPO, 'docs', 'screenshots');
const PHONE = { viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true };
// A quiet G4 southbound station the test fills up through its charge points.
const CONTROLLED = 'g4-leiyang-s';

let server;
let fleet;
let browser;
let network;
const timings = {};

before(async () => {
  assert.ok(readStations().some((s) => s.id === CONTROLLED), `${CONTROLLED} is in data/network/hunan.csv`);
  let t = Date.now();
  server = await startServer();
  network = await buildNetwork(server, { controlled: [CONTROLLED] });
  timings.setup_ms = Date.now() - t;
  t = Date.now();
  fleet = await startFleet(server, network.plan);
  timings.fleet_ms = Date.now() - t;
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await fleet?.stop();
  await server?.stop();
  console.log(`# driver setup: ${JSON.stringify(timings)}`);
});

test('the public endpoint needs no token and shows nothing but availability', async () => {
  const r = await server.api('GET', '/api/v1/public/stations', undefined, { token: null });
  assert.equal(r.status, 200);
  assert.equal(r.json.length, network.stations.length);
  const keys = new Set(r.json.flatMap((s) => Object.keys(s)));
  assert.deepEqual([...keys].sort(), ['available', 'connectors', 'direction', 'highway', 'id', 'lat', 'lon', 'name', 'total', 'wait_estimate_s']);
  assert.doesNotMatch(r.text, /-0[1-5]"|HN1\d{3}/, 'no charger ids, no id tags');
  const full = r.json.find((s) => s.total > 0 && s.available === 0 && s.connectors.charging > 0);
  assert.ok(full && full.wait_estimate_s > 0, 'a full station has a wait estimate');
  assert.ok(r.json.filter((s) => s.available > 0).every((s) => s.wait_estimate_s === 0));
  const g4 = await server.api('GET', '/api/v1/public/stations?highway=G4&direction=S', undefined, { token: null });
  assert.ok(g4.json.length > 5 && g4.json.every((s) => s.highway === 'G4' && s.direction === 'S'));
});

test('the driver page lists a highway in order of travel at phone width and updates live', async () => {
  const { page, errors, context } = await newPage(browser, PHONE);
  await page.goto(`${server.base}/driver?highway=G4&dir=S`);
  await page.waitForSelector('body[data-ready="true"]');
  const expected = network.stations.filter((s) => s.highway === 'G4' && s.direction === 'S').sort((a, b) => b.lat - a.lat);
  const ids = await page.$$eval('#route .stop', (els) => els.map((e) => e.dataset.station));
  assert.deepEqual(ids, expected.map((s) => s.id), 'southbound: north to south');
  assert.equal(await page.textContent('#route .stop:first-child .zh'), expected[0].name_zh);
  // Nothing wider than the phone.
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `page wider than the screen by ${overflow}px`);
  // Full stations near Changsha show a wait.
  assert.ok(await page.locator('#route .stop.full').count() > 0, 'some stations are full');
  assert.match(await page.textContent('#route .stop.full .wait'), /≈ \d+ min wait/);

  const row = `#route .stop[data-station="${CONTROLLED}"]`;
  assert.match(await page.getAttribute(row, 'class'), /\bfree\b/);
  const t = Date.now();
  for (const c of network.plan.chargers.filter((x) => x.station === CONTROLLED)) {
    for (const k of c.connectors) await fleet.status(c.id, k.id, c.version === '1.6' ? 'Charging' : 'Occupied');
  }
  await waitUntil(async () => /\bfull\b/.test(await page.getAttribute(row, 'class')), { what: 'station turns full', timeout: 20_000 });
  timings.status_to_driver_ms = Date.now() - t;
  assert.match(await page.textContent(`${row} .count`), /^0 \/ \d+ free$/);

  mkdirSync(SHOTS, { recursive: true });
  await page.goto(`${server.base}/driver?highway=G4&dir=S`);
  await page.waitForSelector('body[data-ready="true"]');
  await page.screenshot({ path: join(SHOTS, 'driver.png') });
  assert.deepEqual(errors, []);
  await context.close();
});

test('the driver page finds a service area by name and shows both directions', async () => {
  const { page, errors, context } = await newPage(browser, PHONE);
  await page.goto(`${server.base}/driver`);
  await page.waitForSelector('body[data-ready="true"]');
  await page.click('#tab-area');
  await page.fill('#area-search', 'Changsha Fuwuqu');
  await waitUntil(async () => (await page.locator('#areas .area').count()) === 1, { what: 'one match' });
  assert.equal(await page.textContent('#areas .area h2'), '长沙服务区 G4');
  assert.equal(await page.locator('#areas .area .side').count(), 2);
  await page.fill('#area-search', '长沙');
  await waitUntil(async () => (await page.locator('#areas .area').count()) >= 3, { what: 'matches for 长沙' });
  // The direction picker and tabs work from the keyboard.
  await page.click('#tab-road');
  await page.selectOption('#highway', 'G60');
  await page.waitForSelector('#dirs [role="radio"][aria-checked="true"]');
  const before = await page.$$eval('#route .stop', (els) => els.map((e) => e.dataset.station));
  await page.focus('#dirs [aria-checked="true"]');
  await page.keyboard.press('ArrowRight');
  const afterIds = await page.$$eval('#route .stop', (els) => els.map((e) => e.dataset.station));
  assert.notDeepEqual(afterIds, before);
  assert.ok(afterIds.every((id) => id.startsWith('g60-')));
  assert.deepEqual(errors, []);
  await context.close();
});
