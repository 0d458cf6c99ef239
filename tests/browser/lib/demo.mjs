// `chargeops demo` as a real process for one test file: the Hunan network with a week of
// simulated history and the Spring Festival rush at 60x, headless, on a free port with a
// temporary data directory and a known admin token.

import { spawn } from 'node:child_process';
import { mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';

import { BINARY, freePort } from './server.mjs';
import { waitUntil } from './browser.mjs';

/** Starts the demo (its files under a `chargeops-<name>-` directory) and waits for `/healthz`. */
export async function startDemo(name) {
  const token = `browser-${randomBytes(16).toString('hex')}`;
  const dir = mkdtempSync(join(tmpdir(), `chargeops-${name}-`));
  const logPath = join(dir, 'demo.log');
  const port = await freePort();
  const cleanEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('CHARGEOPS_')));
  const log = openSync(logPath, 'a');
  const proc = spawn(BINARY, ['demo', '--headless', '--listen', `127.0.0.1:${port}`, '--data-dir', join(dir, 'data'),
    '--scenario', 'spring-festival', '--history-weeks', '1', '--speed', '60', '--seed', '5'], {
    cwd: dir, env: { ...cleanEnv, RUST_LOG: 'warn', CHARGEOPS_ADMIN_TOKEN: token }, stdio: ['ignore', log, log],
  });
  const demo = {
    base: `http://127.0.0.1:${port}`,
    token,
    async stop() {
      if (proc.exitCode == null) {
        proc.kill('SIGINT');
        await Promise.race([new Promise((r) => proc.once('exit', r)), new Promise((r) => setTimeout(r, 10_000))]);
        if (proc.exitCode == null) proc.kill('SIGKILL');
      }
      if (!process.env.CHARGEOPS_KEEP_TMP) rmSync(dir, { recursive: true, force: true });
    },
  };
  try {
    await waitUntil(async () => {
      if (proc.exitCode != null) throw new Error(`demo exited\n${readFileSync(logPath, 'utf8').slice(-3000)}`);
      try { return (await fetch(`${demo.base}/healthz`)).ok; } catch { return false; }
    }, { timeout: 120_000, interval: 250, what: 'demo up' });
  } catch (e) {
    await demo.stop();
    throw e;
  }
  return demo;
}
