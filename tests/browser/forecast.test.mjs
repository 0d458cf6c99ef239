// The forecast layer of the operations map in real headless Chromium against `chargeops demo`
// with a week of simulated history: the time slider recolours the stations by their forecast
// probability of a queue, the legend and the warnings list are there, and the printable plan
// page renders a station's plan.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';

import { startDemo } from './lib/demo.mjs';
import { launch, newPage } from './lib/browser.mjs';

let demo;
let browser;
let base;
let token;

before(async () => {
  demo = await startDemo('forecast');
  ({ base, token } = demo);
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await demo?.stop();
});

test('moving the forecast slider recolours the stations by their probability of a queue', async () => {
  const { page, errors, context } = await newPage(browser);
  await page.goto(`${base}/#token=${token}`);
  await page.waitForSelector('body[data-ready="true"]', { timeout: 30_000 });
  await page.waitForSelector('#forecast[data-ready="true"]', { timeout: 60_000 });
  assert.equal(await page.locator('#fc-legend li').count(), 5, 'a legend of five probability bands');
  assert.equal(await page.getAttribute('#fc-hour', 'max'), '23');
  const fills = () => page.$$eval('.marker', (ms) => ms.map((m) => `${m.dataset.id}:${getComputedStyle(m).fill}`));
  const bins = () => page.$$eval('.marker', (ms) => ms.map((m) => m.getAttribute('data-fc')));

  const live = await fills();
  await page.click('#fc-toggle');
  assert.equal(await page.getAttribute('#fc-toggle', 'aria-pressed'), 'true');
  assert.ok((await bins()).every((b) => b != null), 'every station has a forecast band');
  const first = await fills();
  assert.notDeepEqual(first, live, 'the forecast layer replaces the live colours');
  const seen = new Set([first.join()]);
  const times = new Set([await page.textContent('#fc-time')]);
  for (const h of ['4', '8', '12', '16', '20', '23']) {
    await page.locator('#fc-hour').fill(h);
    times.add(await page.textContent('#fc-time'));
    seen.add((await fills()).join());
  }
  assert.ok(seen.size > 1, 'moving the slider changes marker colours');
  assert.equal(times.size, 7, 'the time label follows the slider');
  // The warnings list is sorted as the API sorts it and opens a station on click.
  const warnings = await (await fetch(`${base}/api/v1/forecast/warnings?hours=24`, { headers: { Authorization: `Bearer ${token}` } })).json();
  assert.equal(await page.textContent('#fc-count'), String(warnings.warnings.length));
  if (warnings.warnings.length) {
    const firstId = await page.getAttribute('#fc-warnings li:first-child', 'data-station');
    assert.equal(firstId, warnings.warnings[0].station_id);
    await page.click('#fc-warnings li:first-child button');
    await page.waitForSelector(`#panel[data-station="${firstId}"]`);
  }
  // Hiding the layer brings the live colours back.
  await page.click('#fc-toggle');
  const back = await page.$$eval('.marker', (ms) => ms.filter((m) => m.closest('svg').classList.contains('forecast-on')).length);
  assert.equal(back, 0);
  assert.deepEqual(errors, []);
  await context.close();
});

test('the plan page shows a station plan, hour by hour, ready to print', async () => {
  const { page, errors, context } = await newPage(browser);
  // The demo's clock: the Spring Festival rush starts on 3 February 2027.
  await page.goto(`${base}/plan?station=g4-changsha-s&from=2027-02-03&to=2027-02-04#token=${token}`);
  await page.waitForSelector('body[data-ready="true"]', { timeout: 60_000 });
  assert.match(await page.textContent('#plan-title'), /长沙/);
  assert.ok(await page.locator('#hours tr').count() >= 24);
  assert.ok(await page.locator('#advice li').count() >= 1);
  assert.ok(await page.locator('#neighbours tr').count() >= 2, 'downstream and opposite-direction neighbours');
  await page.goto(`${base}/plan?station=g4-changsha-s&from=2027-02-05&to=2027-02-04#token=${token}`);
  await page.waitForSelector('body[data-ready="error"]');
  assert.match(await page.textContent('#plan-error'), /after/);
  assert.deepEqual(errors.filter((e) => !/status of 400/.test(e)), []);
  await context.close();
});
