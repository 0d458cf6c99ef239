// The mobile units layer of the operations map in real headless Chromium against `chargeops
// demo` (the Hunan network, a week of simulated history, the Spring Festival rush): the
// eighteen units drawn where they are, their planned drives as lines with the stations they
// head for ringed, the panel listing when each must leave and the plan's totals, a unit
// reported broken turning red and leaving the plan live, and the layout at phone width.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

import { REPO } from './lib/server.mjs';
import { startDemo } from './lib/demo.mjs';
import { launch, newPage, waitUntil } from './lib/browser.mjs';

const SHOTS = join(REPO, 'docs', 'screenshots');
const PHONE = { viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true };

let demo;
let browser;
let base;
let token;

async function api(method, path, body) {
  const r = await fetch(`${base}/api/v1${path}`, {
    method,
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = await r.json().catch(() => null);
  if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${JSON.stringify(json)}`);
  return json;
}

before(async () => {
  demo = await startDemo('units');
  ({ base, token } = demo);
  // The first plan (every station's forecast fitted, then planned).
  await waitUntil(async () => (await api('GET', '/mobile-units/plan')).version >= 1,
    { timeout: 120_000, interval: 500, what: 'a first plan' });
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await demo?.stop();
});

async function openMap(options) {
  const p = await newPage(browser, options);
  await p.page.goto(`${base}/#token=${token}`);
  await p.page.waitForSelector('body[data-ready="true"]', { timeout: 60_000 });
  await p.page.waitForSelector('#units[data-ready="true"]', { timeout: 60_000 });
  return p;
}

test('units, their planned routes and the plan panel; a breakdown shows live', async () => {
  const { page, errors, context } = await openMap();
  assert.equal(await page.locator('.unit-marker').count(), 18);
  assert.equal(await page.locator('.unit-marker.kind-vehicle').count(), 10);
  assert.equal(await page.locator('.unit-marker.kind-container').count(), 8);
  // Every marker sits inside the map.
  const inside = await page.$$eval('.unit-marker', (ms) => {
    const box = document.getElementById('map').getBoundingClientRect();
    return ms.every((m) => {
      const r = m.getBoundingClientRect();
      return r.width > 4 && r.left >= box.left && r.right <= box.right && r.top >= box.top && r.bottom <= box.bottom;
    });
  });
  assert.ok(inside, 'unit markers are drawn on the map');

  // The drives still to come are lines of several points, each ending at a ringed station.
  await waitUntil(async () => (await page.locator('.unit-route').count()) > 0, { timeout: 60_000, what: 'planned routes' });
  const routes = await page.$$eval('.unit-route', (rs) => rs.map((r) => ({ unit: r.dataset.unit, to: r.dataset.to, points: (r.getAttribute('d').match(/[ML]/g) || []).length })));
  assert.ok(routes.every((r) => r.points >= 2), JSON.stringify(routes));
  const rings = await page.$$eval('.unit-target', (cs) => cs.map((c) => c.dataset.station));
  assert.ok(rings.length > 0 && routes.every((r) => rings.includes(r.to)), `rings ${rings} for routes ${JSON.stringify(routes)}`);
  const plan = await api('GET', '/mobile-units/plan');
  const drivers = new Set(plan.units.filter((u) => u.moves.length).map((u) => u.unit));
  assert.ok(routes.every((r) => drivers.has(r.unit)), 'only units the plan moves have routes');

  // The panel: one line a unit, when it leaves and for where, and the plan's totals.
  assert.equal(await page.locator('#units-list li').count(), 18);
  const lines = await page.locator('#units-list li .next').allTextContents();
  assert.ok(lines.some((t) => /^(leave at \d{2}:\d{2} for |driving to ).+(~\d+ cars|passing)$/.test(t)), lines.join('\n'));
  const totals = await page.textContent('#units-totals');
  assert.match(totals, /car-h with plan/);
  assert.match(totals, /static/);
  const fmt = (v) => new Intl.NumberFormat('en-US').format(Math.round(v));
  const shown = Number(await page.getAttribute('#units', 'data-version'));
  const current = await api('GET', '/mobile-units/plan');
  if (current.version === shown) assert.ok(totals.includes(fmt(current.unmet_car_h)), `${totals} vs ${current.unmet_car_h}`);

  // A unit reported broken where it is: it turns red, its routes go, the panel says so.
  const victim = [...drivers][0] || plan.units[0].unit;
  const unit = (await api('GET', '/mobile-units')).find((u) => u.id === victim);
  await api('POST', `/mobile-units/${victim}/report`, { lat: unit.position.lat, lon: unit.position.lon, status: 'broken' });
  await page.waitForSelector(`.unit-marker.broken[data-id="${victim}"]`, { timeout: 60_000 });
  await waitUntil(async () => (await page.textContent(`#units-list li[data-unit="${victim}"]`)).includes('broken'),
    { timeout: 30_000, what: 'the panel shows the breakdown' });
  await waitUntil(async () => {
    const p = await api('GET', '/mobile-units/plan');
    return p.reason === 'unit_report' && Number(await page.getAttribute('#units', 'data-version')) >= p.version;
  }, { timeout: 60_000, what: 'the page re-read the new plan' });
  assert.equal(await page.locator(`.unit-route[data-unit="${victim}"]`).count(), 0, 'a broken unit drives nowhere');
  const fill = await page.$eval(`.unit-marker[data-id="${victim}"] path`, (p) => getComputedStyle(p).fill);
  assert.equal(fill, 'rgb(239, 68, 68)', 'broken in red');

  // Staff move the broken unit (a tow): no re-plan, and the list is re-read only once a minute,
  // so only the platform's `unit_moved` event can move the marker within seconds.
  const marker = `.unit-marker[data-id="${victim}"]`;
  const before = await page.getAttribute(marker, 'style');
  await api('POST', `/mobile-units/${victim}/report`, { lat: unit.position.lat + 0.08, lon: unit.position.lon + 0.05, status: 'broken' });
  await waitUntil(async () => (await page.getAttribute(marker, 'style')) !== before, { timeout: 5_000, what: 'the marker moved live' });

  mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: join(SHOTS, 'units.png') });
  assert.deepEqual(errors, []);
  await context.close();
});

test('at phone width the units fold into a button that opens a sheet', async () => {
  const { page, errors, context } = await openMap(PHONE);
  const toggle = page.locator('.units-toggle');
  assert.equal(await toggle.getAttribute('aria-expanded'), 'false', 'folded on a phone');
  assert.ok(await toggle.isVisible());
  assert.equal(await page.locator('#units-list').isVisible(), false);
  const box = await toggle.boundingBox();
  assert.ok(box.x >= 0 && box.x + box.width <= 390, JSON.stringify(box));
  await toggle.tap();
  assert.equal(await toggle.getAttribute('aria-expanded'), 'true');
  assert.ok(await page.locator('#units-list').isVisible());
  const sheet = await page.locator('#units').boundingBox();
  assert.ok(sheet.width <= 390 && sheet.y + sheet.height <= 844 + 1, JSON.stringify(sheet));
  const widths = await page.evaluate(() => ({ doc: document.documentElement.scrollWidth, body: document.body.scrollWidth }));
  assert.ok(widths.doc <= 390 && widths.body <= 390, `no sideways scrolling: ${JSON.stringify(widths)}`);
  assert.equal(await page.locator('.unit-marker').count(), 18);
  // A unit's line opens the station it is heading for.
  await page.locator('#units-list li button').first().tap();
  await page.waitForSelector('#panel:not([hidden])', { timeout: 15_000 });
  assert.deepEqual(errors, []);
  await context.close();
});
