// Staff sign-in in real headless Chromium: a hotline page opened without a token sends the
// agent to /login, the agent signs in on a phone with an account's password, and lands back on
// the hotline under their own name; a wrong password is told plainly.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';

import { REPO, startServer } from './lib/server.mjs';
import { launch, newPage } from './lib/browser.mjs';

const SHOTS = join(REPO, 'docs', 'screenshots');
const PHONE = { viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true };

let server;
let browser;

before(async () => {
  server = await startServer();
  await server.ok('POST', '/api/v1/accounts', { login: 'li.na', name: 'Li Na (hotline)', role: 'agent', password: 'hotline-pass-2026' });
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

test('an agent without a token signs in and gets back to the hotline', async () => {
  const { page, errors } = await newPage(browser, PHONE);
  await page.goto(`${server.base}/hotline`);
  // No token: the page says so and links to the sign-in page, which returns here.
  const link = await page.waitForSelector('#who a[href^="/login"]');
  assert.equal(await link.getAttribute('href'), '/login?next=%2Fhotline');
  await link.click();
  await page.waitForSelector('#login-form');

  await page.fill('#login', 'li.na');
  await page.fill('#password', 'wrong-password-1');
  await page.click('#submit');
  await page.waitForFunction(() => document.getElementById('error').textContent.length > 0);
  assert.equal(await page.textContent('#error'), 'wrong login or password');
  assert.match(page.url(), /\/login\?next=/, 'still on the sign-in page');
  const width = await page.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(width <= 390, `no sideways scrolling at phone width (${width})`);
  await page.screenshot({ path: join(SHOTS, 'login.png') });

  await page.fill('#password', 'hotline-pass-2026');
  await page.click('#submit');
  await page.waitForURL(`${server.base}/hotline`);
  await page.waitForFunction(() => document.getElementById('who').textContent.includes('Li Na (hotline)'));
  assert.match(await page.textContent('#who'), /agent/);
  assert.deepEqual(errors.filter((e) => !/401/.test(e)), [], 'no script errors');
});

test('the sign-in page never sends the browser to another site', async () => {
  const { page } = await newPage(browser, PHONE);
  await page.goto(`${server.base}/login?next=${encodeURIComponent('//evil.example/x')}`);
  await page.fill('#login', 'li.na');
  await page.fill('#password', 'hotline-pass-2026');
  await page.click('#submit');
  await page.waitForURL(`${server.base}/`);
});
