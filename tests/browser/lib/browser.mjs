// Debian's Chromium, headless, driven by playwright-core; every page's console errors and
// uncaught exceptions are collected so a test can fail on them.

import { existsSync } from 'node:fs';
import { chromium } from 'playwright-core';

export const CHROMIUM = process.env.CHARGEOPS_CHROMIUM || '/usr/bin/chromium';

/** Chromium with a fresh profile (playwright makes a new temporary user-data dir per launch
 *  and removes it on close). */
export async function launch() {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} not found: run .ci/run to install chromium`);
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-quic',
      '--no-first-run', '--disable-component-update', '--disable-sync'],
  });
}

/** A page in its own context (viewport, phone emulation) whose console errors, page errors
 *  and failed requests land in `errors`. */
export async function newPage(browser, options = {}) {
  const context = await browser.newContext({ viewport: { width: 1440, height: 900 }, ...options });
  const page = await context.newPage();
  const errors = [];
  page.on('console', (m) => { if (m.type() === 'error') errors.push(`console: ${m.text()} (${m.location()?.url || ''})`); });
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  page.on('requestfailed', (r) => {
    // The live feed is cut when the page closes; that is not an error of the page.
    if (!/\/events\?access_token=/.test(r.url())) errors.push(`requestfailed: ${r.url()} ${r.failure()?.errorText}`);
  });
  return { page, context, errors };
}

export async function waitUntil(fn, { timeout = 15_000, interval = 100, what = 'condition' } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  while (Date.now() < deadline) {
    last = await fn();
    if (last) return last;
    await new Promise((r) => setTimeout(r, interval));
  }
  throw new Error(`timed out after ${timeout} ms waiting for ${what} (last: ${JSON.stringify(last)})`);
}
