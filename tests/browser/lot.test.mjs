// The robot lot page in real headless Chromium against a real server: robots that are real OCPP
// charge points (Python `ocpp`, tests/browser/robots.py) and report to the robot interface over
// HTTP (this test, as a robot's controller would). The page draws a robot driving to its car and
// the car charging as it happens, staff send a robot to a car by hand and see the platform's
// refusal when the battery is too low, release a robot, and the page fits a phone. The ops map's
// station panel links the lot.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';

import { REPO, startServer } from './lib/server.mjs';
import { startHelper } from './lib/fleet.mjs';
import { launch, newPage, waitUntil } from './lib/browser.mjs';

const SHOTS = join(REPO, 'docs', 'screenshots');
const PHONE = { viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true };
const STATION = 'g4-zhaoshan-n';
const QUIET = 'g4-zhaoshan-s';
const FULL_KWH = 150;
// Four robots in their slots at the dock; the third holds too little to take a car.
const ROBOTS = [1, 2, 3, 4].map((n) => ({
  id: `${STATION}-R0${n}`,
  password: `robot-${n}-password`,
  x: -15,
  y: -4.5 + 3 * (n - 1),
  battery_kwh: n === 3 ? 8 : FULL_KWH,
  state: 'docked',
  car: null,
}));
const LOW = ROBOTS[2];

/** Bay `i` of `Lot::service_area`: rows of 20 bays 2.7 m apart, rows 8 m apart. */
const bay = (i) => ({ x: (i % 20) * 2.7, y: Math.floor(i / 20) * 8 });

let server;
let browser;
let helper;
let beat;

/** The robots' charging side: tests/browser/robots.py, one command a line. */
function startRobots() {
  return startHelper('robots', server, { robots: ROBOTS.map(({ id, password }) => ({ id, password })) }, { timeoutMs: 60_000 });
}

/** One robot report, as its controller sends it: HTTP Basic with the charger's credentials. */
async function report(robot) {
  const body = { x: robot.x, y: robot.y, battery_kwh: robot.battery_kwh, state: robot.state };
  if (robot.car) body.car = robot.car;
  const r = await fetch(`${server.base}/api/v1/robots/${encodeURIComponent(robot.id)}/report`, {
    method: 'POST',
    headers: {
      Authorization: `Basic ${Buffer.from(`${robot.id}:${robot.password}`).toString('base64')}`,
      'Content-Type': 'application/json',
    },
    body: JSON.stringify(body),
  });
  const json = await r.json();
  assert.equal(r.status, 200, `report of ${robot.id}: ${JSON.stringify(json)}`);
  return json;
}

const lot = () => server.ok('GET', `/api/v1/stations/${STATION}/lot`);
const robotIn = (v, id) => v.robots.find((r) => r.id === id);
const carIn = (v, id) => v.cars.find((c) => c.id === id);

async function addCar(b, energy, plate) {
  const car = await server.ok('POST', `/api/v1/stations/${STATION}/lot/cars`, { bay: b, energy_kwh: energy, max_power_kw: 120, plate }, 201);
  // The dispatcher runs as the car arrives: it may have a robot already.
  assert.ok(['waiting', 'assigned'].includes(car.state), car.state);
  return car.id;
}

/** The robot the platform sent to `car` (waiting for the dispatcher's decision). */
async function robotFor(car) {
  return waitUntil(async () => {
    const c = carIn(await lot(), car);
    return c?.state === 'assigned' && c.robot;
  }, { what: `a robot sent to car ${car}` });
}

before(async () => {
  server = await startServer();
  for (const [id, dir, lon] of [[STATION, 'N', 112.99], [QUIET, 'S', 112.985]]) {
    await server.ok('POST', '/api/v1/stations', { id, name: `昭山服务区 (Zhaoshan Fuwuqu) ${dir}`, lat: 27.96, lon, highway: 'G4', direction: dir });
  }
  for (const r of ROBOTS) await server.ok('POST', '/api/v1/chargers', { id: r.id, station_id: STATION, password: r.password });
  const v = await server.ok('PUT', `/api/v1/stations/${STATION}/lot`, { bays: 40, robots: ROBOTS.map((r) => r.id) });
  assert.equal(v.bays.length, 40);
  assert.deepEqual(v.dock, { x: -15, y: 0 });
  helper = await startRobots();
  for (const r of ROBOTS) await report(r);
  // Robots report every few seconds whatever else happens, as real ones do.
  beat = setInterval(() => { for (const r of ROBOTS) report(r).catch(() => {}); }, 3000);
  browser = await launch();
});

after(async () => {
  clearInterval(beat);
  await browser?.close();
  await helper?.stop();
  await server?.stop();
});

test('the lot page follows a robot to its car, takes an override, shows a refusal and a release', async () => {
  const { page, errors, context } = await newPage(browser);
  const elsewhere = [];
  page.on('request', (r) => { if (!r.url().startsWith(server.base)) elsewhere.push(r.url()); });
  await page.goto(`${server.base}/lot?station=${STATION}#token=${server.token}`);
  await page.waitForSelector('body[data-ready="true"]');
  assert.equal(new URL(page.url()).hash, '', 'the token leaves the address bar');
  assert.equal(await page.locator('#layer-bays g.bay').count(), 40);
  assert.equal(await page.locator('#layer-robots g.robot').count(), 4);
  await waitUntil(async () => /4 of 4/.test(await page.textContent('#summary [data-k="robots_online"]')), { what: 'four robots online' });
  await waitUntil(async () => (await page.textContent('#live-text')) === 'live', { what: 'the live feed' });

  // A car takes bay 12: the dispatcher sends a robot, and the page draws the car and the task.
  const a = await addCar(12, 30, '湘AD12345');
  const carA = `#layer-cars rect.car[data-car="${a}"]`;
  await page.waitForSelector(`${carA}[data-state="assigned"]`);
  const raId = await robotFor(a);
  const robotA = ROBOTS.find((r) => r.id === raId);
  assert.ok(robotA && robotA !== LOW, `a full robot takes car A, not ${raId}`);
  const line = page.locator(`#layer-tasks line.task[data-robot="${raId}"]`);
  await waitUntil(async () => (await line.count()) === 1, { what: 'a line from the robot to its car' });
  assert.ok(Math.abs(Number(await line.getAttribute('x2')) - bay(12).x) < 0.01, 'the line ends at bay 12');
  assert.ok(Math.abs(Number(await line.getAttribute('y2')) - bay(12).y) < 0.01);
  assert.match(await page.textContent(`#robot-rows tr[data-robot="${raId}"] .task`), /car in bay 12 · 30\.0 kWh/);
  assert.match(await page.textContent(`#car-rows tr[data-car="${a}"]`), /湘AD12345.*30\.0 \/ 30\.0 kWh.*Robot on its way/);

  // The robot drives there, reporting as it goes: the page moves it at each report.
  const g = page.locator(`#layer-robots g.robot[data-robot="${raId}"]`);
  const from = { x: robotA.x, y: robotA.y };
  for (const f of [0.25, 0.5, 0.75, 1]) {
    Object.assign(robotA, { x: from.x + (bay(12).x - from.x) * f, y: from.y + (bay(12).y - from.y) * f, state: 'driving', car: a });
    await report(robotA);
    const want = robotA.x;
    await waitUntil(async () => Math.abs(Number(await g.getAttribute('data-x')) - want) < 0.01, { what: `robot drawn at x=${want}` });
  }
  assert.equal(await line.count(), 0, 'no line once the robot is at its car');

  // It plugs in and starts the car's transaction over OCPP: the car is charging.
  await helper.send({ op: 'start', robot: raId, id_tag: a.slice(0, 20), meter_wh: 1_000_000 });
  Object.assign(robotA, { state: 'charging' });
  await report(robotA);
  await page.waitForSelector(`${carA}[data-state="charging"]`);
  await page.waitForSelector(`#robot-rows tr[data-robot="${raId}"][data-state="charging"]`);
  await waitUntil(async () => /Charging/.test(await page.textContent(`#car-rows tr[data-car="${a}"]`)), { what: 'car A charging in the table' });
  await helper.send({ op: 'meter', robot: raId, meter_wh: 1_012_000, power_w: 118_000 });

  // A second car: the dispatcher sends another full robot. Staff send the third full one
  // instead, picked on the drawing and in the cars table.
  const b = await addCar(30, 20, '湘AF67890');
  const rbId = await robotFor(b);
  const rc = ROBOTS.find((r) => r !== robotA && r !== LOW && r.id !== rbId);
  assert.ok(rc, `a third full robot besides ${raId} and ${rbId}`);
  await page.waitForSelector(`#car-rows tr[data-car="${b}"][data-state="assigned"]`);
  await page.click(`#layer-robots g.robot[data-robot="${rc.id}"]`);
  await page.click(`#car-rows tr[data-car="${b}"]`);
  assert.equal(await page.textContent('#pick-robot'), rc.id.slice(STATION.length + 1));
  assert.equal(await page.textContent('#pick-car'), 'bay 30 · 湘AF67890');
  await page.click('#assign');
  await waitUntil(async () => /sent to the car in bay 30/.test(await page.textContent('#pick-msg')), { what: 'the override confirmed' });
  let v = await lot();
  assert.equal(carIn(v, b).robot, rc.id, 'the car is the picked robot\'s');
  assert.equal(robotIn(v, rc.id).override, true);
  assert.equal(robotIn(v, rc.id).task.car, b);
  assert.notEqual(robotIn(v, rbId).task.car, b, 'the robot the dispatcher had sent is freed');
  await page.waitForSelector(`#layer-tasks line.task[data-robot="${rc.id}"]`);
  assert.match(await page.textContent(`#robot-rows tr[data-robot="${rc.id}"] .task`), /override/);
  assert.equal(await page.isHidden('#banner'), true);
  await page.screenshot({ path: join(SHOTS, 'lot.png') });

  // Staff send the robot with 8 kWh to a car that needs 30: the platform refuses and says why.
  const c = await addCar(35, 30, '湘AD24680');
  await robotFor(c);
  await page.waitForSelector(`#car-rows tr[data-car="${c}"][data-state="assigned"]`);
  await page.click(`#robot-rows tr[data-robot="${LOW.id}"]`);
  await page.click(`#layer-cars rect.car[data-car="${c}"]`);
  await page.click('#assign');
  await page.waitForSelector('#banner:not([hidden])');
  assert.match(await page.textContent('#banner-text'), /battery too low: holds 8\.00 kWh, needs \d+\.\d+ kWh/);
  v = await lot();
  assert.notEqual(carIn(v, c).robot, LOW.id);
  await page.click('#banner-close');
  assert.equal(await page.isHidden('#banner'), true);

  // Release the robot sent by hand: its car waits for the dispatcher again.
  await page.click(`#robot-rows tr[data-robot="${rc.id}"] button.release`);
  await waitUntil(async () => /released/.test(await page.textContent('#pick-msg')), { what: 'the release confirmed' });
  v = await lot();
  assert.equal(robotIn(v, rc.id).override, false);
  assert.notEqual(robotIn(v, rc.id).task.car, b);

  // Car A has its energy: the transaction stops, the car is served.
  await helper.send({ op: 'stop', robot: raId, meter_wh: 1_030_000, reason: 'EVDisconnected' });
  Object.assign(robotA, { state: 'idle', car: null });
  await report(robotA);
  await waitUntil(async () => (await page.textContent('#summary [data-k="served"] b')) === '1', { what: 'one car served' });
  await page.waitForSelector(`#car-rows tr[data-car="${a}"][data-state="served"]`);
  assert.equal(await page.locator(carA).count(), 0, 'a served car leaves the drawing');
  assert.deepEqual(elsewhere, [], 'everything the page needs comes from the platform');
  // The refused override is the one failed request the browser logs.
  assert.deepEqual(errors.filter((e) => !/status of 409 .*\/lot\/assign\b/.test(e)), []);
  await context.close();
});

test('on a phone the lot scales and only the tables scroll sideways', async () => {
  const { page, errors, context } = await newPage(browser, PHONE);
  await page.goto(`${server.base}/lot?station=${STATION}#token=${server.token}`);
  await page.waitForSelector('body[data-ready="true"]');
  await page.waitForSelector('#car-rows tr');
  const widths = await page.evaluate(() => ({
    doc: document.documentElement.scrollWidth,
    body: document.body.scrollWidth,
    svg: document.getElementById('lot-svg').getBoundingClientRect().width,
    table: document.querySelector('.table-wrap').scrollWidth,
    wrap: document.querySelector('.table-wrap').clientWidth,
  }));
  assert.ok(widths.doc <= 390 && widths.body <= 390, `no sideways scrolling of the page: ${JSON.stringify(widths)}`);
  assert.ok(widths.svg > 300 && widths.svg <= 390, `the drawing fits the screen: ${JSON.stringify(widths)}`);
  assert.ok(widths.table > widths.wrap, `the robots table scrolls inside its card: ${JSON.stringify(widths)}`);
  const assign = await page.locator('#assign').boundingBox();
  assert.ok(assign.height >= 44, 'a thumb-sized Assign button');
  await page.screenshot({ path: join(SHOTS, 'lot-phone.png') });
  assert.deepEqual(errors, []);
  await context.close();
});

test('the station panel on the map links the lot of a station that has one', async () => {
  const { page, errors, context } = await newPage(browser);
  await page.goto(`${server.base}/#token=${server.token}`);
  await page.waitForSelector('body[data-ready="true"]', { timeout: 20_000 });
  await page.click(`.marker[data-id="${QUIET}"]`);
  await page.waitForSelector(`#panel[data-station="${QUIET}"] #chargers li`);
  await page.click(`.marker[data-id="${STATION}"]`);
  await page.waitForSelector(`#panel[data-station="${STATION}"] .meta a.lot-link`);
  assert.equal(await page.locator('#panel .meta a.lot-link').count(), 1);
  assert.equal(await page.getAttribute('#panel .meta a.lot-link', 'href'), `/lot?station=${STATION}`);
  await page.click(`.marker[data-id="${QUIET}"]`);
  await page.waitForSelector(`#panel[data-station="${QUIET}"] #chargers li`);
  assert.equal(await page.locator('#panel .meta a.lot-link').count(), 0, 'no link for a station without a lot');
  await page.click(`.marker[data-id="${STATION}"]`);
  await page.click(`#panel[data-station="${STATION}"] .meta a.lot-link`);
  await page.waitForSelector('body.lot[data-ready="true"]');
  assert.equal(await page.locator('#layer-robots g.robot').count(), 4, 'the lot page opens with the tab\'s token');
  assert.deepEqual(errors, []);
  await context.close();
});
