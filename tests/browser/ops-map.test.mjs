// The operations map in real headless Chromium against a real server with 160 Hunan stations
// and their chargers connected over OCPP by the Python fleet.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';

import { REPO, startServer } from './lib/server.mjs';
import { buildNetwork, readStations } from './lib/network.mjs';
import { startFleet } from './lib/fleet.mjs';
import { launch, newPage, waitUntil } from './lib/browser.mjs';

const SHOTS = join(REPO, 'docs', 'screenshots');
const FEATURED = ['g4-changsha-s', 'g4-changsha-n', 'g4-zhaoshan-s', 'g4-zhaoshan-n', 'g4-ansha-s'];
// A quiet station the test changes through its charge points.
const CONTROLLED = readStations().find((s) => s.highway === 'G72' && s.direction === 'E').id;

let server;
let fleet;
let browser;
let network;
const timings = {};

before(async () => {
  let t = Date.now();
  server = await startServer();
  timings.server_ms = Date.now() - t;
  t = Date.now();
  network = await buildNetwork(server, { featured: FEATURED, controlled: [CONTROLLED] });
  timings.api_setup_ms = Date.now() - t;
  t = Date.now();
  fleet = await startFleet(server, network.plan);
  timings.fleet_ms = Date.now() - t;
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await fleet?.stop();
  await server?.stop();
  console.log(`# ops map setup: ${JSON.stringify(timings)}, ${network?.plan.chargers.length} chargers`);
});

async function openMap(options) {
  const p = await newPage(browser, options);
  await p.page.goto(`${server.base}/#token=${server.token}`);
  await p.page.waitForSelector('body[data-ready="true"]', { timeout: 20_000 });
  return p;
}

function markerClass(page, id) {
  return page.getAttribute(`.marker[data-id="${id}"]`, 'class');
}

test('the map shows every station, the totals, and keeps the token out of the URL', async () => {
  const { page, errors, context } = await newPage(browser);
  const elsewhere = [];
  page.on('request', (r) => { if (!r.url().startsWith(server.base)) elsewhere.push(r.url()); });
  await page.goto(`${server.base}/#token=${server.token}`);
  await page.waitForSelector('body[data-ready="true"]', { timeout: 20_000 });
  const withPosition = network.stations.filter((s) => s.lat != null).length;
  assert.equal(await page.locator('svg#map .markers .marker').count(), withPosition);
  assert.equal(withPosition, 160);
  assert.equal(await page.textContent('#t-stations'), '160');
  assert.ok(!page.url().includes('token='), `token left in the URL: ${page.url()}`);
  // Every station has connected chargers, so every marker has a state.
  await waitUntil(async () => (await page.locator('.marker.s-empty').count()) === 0, { what: 'no marker without data' });
  for (const id of network.offline) assert.match(await markerClass(page, id), /\bs-offline\b/);
  for (const id of network.allFaulted) assert.match(await markerClass(page, id), /\bs-fault\b/);
  assert.ok(await page.locator('.marker.s-full').count() > 0, 'the busy corridor shows full stations');
  assert.ok(await page.locator('.land path').count() > 0, 'the province outline is drawn');
  assert.ok(await page.locator('.roads path').count() > 0, 'the highways are drawn');
  const connected = Number((await page.textContent('#t-connected')).replace(/,/g, ''));
  const expected = network.plan.chargers.filter((c) => !c.disconnect).length;
  assert.equal(connected, expected);
  assert.deepEqual(elsewhere, [], 'with no tile layer configured nothing is fetched from elsewhere');
  assert.deepEqual(errors, []);
  await context.close();
});

test('a click on a marker opens the station panel with its chargers, sessions and chart', async () => {
  const { page, errors, context } = await openMap();
  const id = FEATURED[0];
  await page.click(`.marker[data-id="${id}"]`);
  await page.waitForSelector(`#panel[data-station="${id}"]`);
  assert.equal(await page.textContent('#panel-title .zh'), '长沙服务区');
  assert.equal(await page.textContent('#panel .pinyin'), 'Changsha Fuwuqu');
  const plan = network.plan.chargers.filter((c) => c.station === id);
  const connectors = plan.reduce((n, c) => n + c.connectors.length, 0);
  await waitUntil(async () => (await page.locator('#chargers .conn').count()) === connectors, { what: `${connectors} connectors listed` });
  assert.equal(await page.locator('#chargers .charger').count(), plan.length);
  await waitUntil(async () => (await page.locator('#sessions tr').count()) >= 5, { what: 'recent sessions' });
  await page.waitForSelector('#chart svg path.line');
  // Keyboard: Escape closes the panel and gives focus back to the marker; Enter reopens it.
  await page.keyboard.press('Escape');
  assert.equal(await page.isHidden('#panel'), true);
  assert.equal(await page.evaluate(() => document.activeElement?.dataset?.id), id);
  await page.keyboard.press('Enter');
  await page.waitForSelector(`#panel[data-station="${id}"]`);
  // A screenshot for the README: the whole network with a busy station open.
  await page.waitForTimeout(400);
  mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: join(SHOTS, 'map.png') });
  assert.deepEqual(errors, []);
  await context.close();
});

test('a status change sent by a charge point shows on the map and in the panel without a reload', async () => {
  const { page, errors, context } = await openMap();
  const id = CONTROLLED;
  const chargers = network.plan.chargers.filter((c) => c.station === id && c.version === '1.6');
  assert.match(await markerClass(page, id), /\bs-idle\b/);
  await page.focus(`.marker[data-id="${id}"]`);
  await page.keyboard.press('Enter');
  await page.waitForSelector(`#panel[data-station="${id}"] #chargers .conn`);
  const chip = `#chargers [data-charger="${chargers[0].id}"] [data-connector="1/1"]`;
  assert.equal(await page.getAttribute(chip, 'data-status'), 'available');
  const navigations = [];
  page.on('framenavigated', (f) => { if (f === page.mainFrame()) navigations.push(f.url()); });

  let t = Date.now();
  await fleet.status(chargers[0].id, 1, 'Charging');
  await waitUntil(async () => (await page.getAttribute(chip, 'data-status')) === 'charging', { what: 'panel shows charging' });
  timings.status_to_panel_ms = Date.now() - t;

  // Every connector of the station busy: the marker turns "full".
  t = Date.now();
  for (const c of network.plan.chargers.filter((x) => x.station === id)) {
    for (const k of c.connectors) await fleet.status(c.id, k.id, c.version === '1.6' ? 'Charging' : 'Occupied');
  }
  await waitUntil(async () => /\bs-full\b/.test(await markerClass(page, id)), { what: 'marker turns full' });
  timings.status_to_marker_ms = Date.now() - t;
  assert.match(await page.textContent('#panel .badge'), /Full/);

  // A fault shows on the connector, with its error code, and rings the marker.
  await fleet.status(chargers[0].id, 2, 'Faulted', 'GroundFailure');
  const chip2 = `#chargers [data-charger="${chargers[0].id}"] [data-connector="2/2"]`;
  await waitUntil(async () => (await page.getAttribute(chip2, 'data-status')) === 'faulted', { what: 'panel shows faulted' });
  await waitUntil(async () => /\bhas-fault\b/.test(await markerClass(page, id)), { what: 'marker shows a fault' });
  await waitUntil(async () => /GroundFailure/.test(await page.textContent(chip2)), { what: 'error code shown (after reload of the charger list)' }).catch(() => {});

  // A queue sensor counts cars waiting: the panel, the marker's label and the attention list
  // say how many, live.
  await server.ok('PUT', `/api/v1/stations/${id}/waiting`, { waiting: 7 });
  await waitUntil(async () => /7 cars waiting/.test(await page.textContent('#panel .wait')), { what: 'panel shows the queue' });
  await waitUntil(async () => /7 waiting/.test(await page.getAttribute(`.marker[data-id="${id}"]`, 'aria-label')), { what: 'marker label shows the queue' });
  await waitUntil(async () => /7 waiting/.test(await page.textContent('#attention-list')), { what: 'attention list shows the queue' });

  assert.deepEqual(navigations, [], 'the page did not reload');
  assert.deepEqual(errors, []);
  await context.close();
});

test('on a phone the map works and the panel is a bottom sheet', async () => {
  const { page, errors, context } = await openMap({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 });
  assert.equal(await page.locator('svg#map .marker').count(), 160);
  const id = FEATURED[1];
  await page.tap(`.marker[data-id="${id}"]`).catch(async () => page.click(`.marker[data-id="${id}"]`, { force: true }));
  await page.waitForSelector(`#panel[data-station="${id}"]`);
  const box = await page.locator('#panel').boundingBox();
  assert.ok(Math.abs(box.y + box.height - 844) < 2, `panel at the bottom: ${JSON.stringify(box)}`);
  assert.ok(box.width >= 388, 'panel spans the width');
  assert.deepEqual(errors, []);
  await context.close();
});

test('without a token the page asks for one, and refuses a wrong one', async () => {
  const { page, context } = await newPage(browser);
  await page.goto(`${server.base}/`);
  await page.waitForSelector('#token-dialog[open]');
  await page.fill('#token-input', 'not-a-valid-token-at-all');
  await page.click('#token-dialog button[type="submit"]');
  await waitUntil(async () => /not accepted/.test(await page.textContent('#token-error')), { what: 'token refused' });
  await page.fill('#token-input', server.token);
  await page.click('#token-dialog button[type="submit"]');
  await page.waitForSelector('body[data-ready="true"]');
  assert.equal(await page.locator('svg#map .marker').count(), 160);
  await context.close();
});

test('with a tile URL configured the map loads tiles from that server', async () => {
  const tiles = [];
  // One transparent pixel for every tile.
  const png = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==', 'base64');
  const tileServer = createServer((req, res) => { tiles.push(req.url); res.writeHead(200, { 'Content-Type': 'image/png' }); res.end(png); });
  await new Promise((r) => tileServer.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${tileServer.address().port}/tiles/{z}/{x}/{y}.png`;
  const tiled = await startServer({ env: { CHARGEOPS_MAP_TILE_URL: url } });
  try {
    assert.deepEqual((await tiled.ok('GET', '/api/v1/map/config')), { tile_url: url });
    await tiled.ok('POST', '/api/v1/stations', { id: 'g4-changsha-s', name: '长沙服务区 (Changsha Fuwuqu)', lat: 28.3, lon: 113.08, highway: 'G4', direction: 'S' });
    const { page, errors, context } = await newPage(browser);
    await page.goto(`${tiled.base}/#token=${tiled.token}`);
    await page.waitForSelector('body[data-ready="true"]');
    await waitUntil(async () => (await page.locator('svg#map .tiles image').count()) > 0, { what: 'tile images' });
    await waitUntil(() => tiles.length > 0, { what: 'tile requests' });
    assert.ok(tiles.every((t) => /^\/tiles\/\d+\/\d+\/\d+\.png$/.test(t)), tiles.join(' '));
    assert.equal(await page.locator('svg#map .marker').count(), 1);
    assert.deepEqual(errors, []);
    await context.close();
  } finally {
    await tiled.stop();
    tileServer.close();
  }
});
