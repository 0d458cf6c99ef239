// The chargeops server as a real process for one test file: `target/debug/chargeops serve` on
// a free port with a temporary data directory and a known admin token.

import { spawn } from 'node:child_process';
import { mkdtempSync, openSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';

export const REPO = resolve(fileURLToPath(new URL('.', import.meta.url)), '..', '..', '..');
export const BINARY = process.env.CHARGEOPS_BIN || join(REPO, 'target', 'debug', 'chargeops');

export function freePort() {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.unref();
    s.on('error', fail);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export async function startServer({ env = {} } = {}) {
  if (!existsSync(BINARY)) throw new Error(`${BINARY} not found: build it with cargo build --bin chargeops`);
  const dir = mkdtempSync(join(tmpdir(), 'chargeops-browser-'));
  const token = `browser-${randomBytes(16).toString('hex')}`;
  const logPath = join(dir, 'server.log');
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort();
    const cleanEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('CHARGEOPS_')));
    const log = openSync(logPath, 'a');
    const proc = spawn(BINARY, ['serve', '--listen', `127.0.0.1:${port}`, '--data-dir', join(dir, 'data')], {
      cwd: dir,
      env: { ...cleanEnv, RUST_LOG: 'warn', ...env, CHARGEOPS_ADMIN_TOKEN: token },
      stdio: ['ignore', log, log],
    });
    let exited = false;
    proc.on('exit', () => { exited = true; });
    const base = `http://127.0.0.1:${port}`;
    const deadline = Date.now() + 30_000;
    while (!exited && Date.now() < deadline) {
      try {
        const r = await fetch(`${base}/healthz`);
        if (r.ok) return new Server({ proc, port, base, token, dir, logPath });
      } catch { /* not listening yet */ }
      await sleep(50);
    }
    if (!exited) {
      proc.kill('SIGKILL');
      throw new Error(`server did not become ready\n${readFileSync(logPath, 'utf8').slice(-3000)}`);
    }
    // Exited before ready: most likely the port was taken meanwhile; try another.
  }
  throw new Error(`server kept exiting before it was ready\n${readFileSync(logPath, 'utf8').slice(-3000)}`);
}

export class Server {
  constructor({ proc, port, base, token, dir, logPath }) {
    Object.assign(this, { proc, port, base, token, dir, logPath });
  }

  async api(method, path, body, { token = this.token } = {}) {
    const headers = { Accept: 'application/json' };
    if (token) headers.Authorization = `Bearer ${token}`;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const r = await fetch(`${this.base}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await r.text();
    let json = null;
    try { json = text ? JSON.parse(text) : null; } catch { /* not JSON */ }
    return { status: r.status, json, text, headers: r.headers };
  }

  async ok(method, path, body, status = [200, 201]) {
    const r = await this.api(method, path, body);
    const want = Array.isArray(status) ? status : [status];
    if (!want.includes(r.status)) throw new Error(`${method} ${path}: expected ${want}, got ${r.status}: ${r.text.slice(0, 500)}`);
    return r.json;
  }

  logTail(n = 4000) {
    try { return readFileSync(this.logPath, 'utf8').slice(-n); } catch { return ''; }
  }

  async stop() {
    if (this.proc.exitCode == null) {
      this.proc.kill('SIGTERM');
      await Promise.race([new Promise((r) => this.proc.once('exit', r)), sleep(5000)]);
      if (this.proc.exitCode == null) this.proc.kill('SIGKILL');
    }
    if (!process.env.CHARGEOPS_KEEP_TMP) rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Runs `fn` over `items` with at most `n` at a time. */
export async function pool(items, n, fn) {
  let i = 0;
  const workers = Array.from({ length: Math.min(n, items.length) }, async () => {
    while (i < items.length) {
      const item = items[i++];
      await fn(item);
    }
  });
  await Promise.all(workers);
}
