// The Python charge point helpers (tests/browser/fleet.py, tests/browser/robots.py) as child
// processes: started with a plan, ready when every charge point has connected and reported,
// then driven one command at a time.

import { spawn } from 'node:child_process';
import { writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { REPO } from './server.mjs';

const PYTHON = process.env.CHARGEOPS_PYTHON || join(REPO, '.venv', 'bin', 'python');

/**
 * Starts tests/browser/`name`.py against `server` with `plan` and waits for its `READY`. Its
 * `send(cmd)` resolves with the JSON after `OK <seq>` (`{}` when there is none); `stop()` ends it.
 */
export async function startHelper(name, server, plan, { timeoutMs = 120_000 } = {}) {
  if (!existsSync(PYTHON)) throw new Error(`${PYTHON} not found: scripts/test creates .venv with the ocpp package`);
  const planPath = join(server.dir, `${name}-plan.json`);
  writeFileSync(planPath, JSON.stringify(plan));
  const proc = spawn(PYTHON, [join(REPO, 'tests', 'browser', `${name}.py`), '--port', String(server.port), '--plan', planPath], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stderr = '';
  proc.stderr.on('data', (d) => { stderr = (stderr + d).slice(-6000); });
  const lines = createInterface({ input: proc.stdout });
  const waiting = new Map();
  let ready;
  const readyP = new Promise((ok, fail) => { ready = { ok, fail }; });
  lines.on('line', (line) => {
    const [word, seq, ...rest] = line.split(' ');
    if (word === 'READY') ready.ok(Number(seq));
    else if (word === 'FAILED') ready.fail(new Error(`${name} failed: ${line}\n${stderr}`));
    else if (word === 'OK' || word === 'ERR') {
      const w = waiting.get(Number(seq));
      waiting.delete(Number(seq));
      if (w) (word === 'OK' ? w.ok(JSON.parse(rest.join(' ') || '{}')) : w.fail(new Error(`${name}: ${rest.join(' ')}`)));
    }
  });
  proc.on('exit', (code) => {
    ready.fail(new Error(`${name} exited with ${code} before it was ready\n${stderr}`));
    for (const w of waiting.values()) w.fail(new Error(`${name} exited with ${code}\n${stderr}`));
  });
  const timer = setTimeout(() => ready.fail(new Error(`${name} not ready within ${timeoutMs} ms\n${stderr}`)), timeoutMs);
  try {
    await readyP;
  } catch (e) {
    proc.kill('SIGKILL');
    throw e;
  } finally {
    clearTimeout(timer);
  }
  let seq = 0;
  const send = (cmd) => new Promise((ok, fail) => {
    const s = ++seq;
    waiting.set(s, { ok, fail });
    proc.stdin.write(`${JSON.stringify({ ...cmd, seq: s })}\n`);
  });
  return {
    send,
    async stop() {
      if (proc.exitCode != null) return;
      const gone = new Promise((r) => proc.once('exit', r));
      send({ op: 'quit' }).catch(() => {});
      proc.stdin.end();
      await Promise.race([gone, new Promise((r) => setTimeout(r, 5000))]);
      if (proc.exitCode == null) proc.kill('SIGKILL');
    },
  };
}

/** The fleet of tests/browser/fleet.py: chargers that tell their story, then change status. */
export async function startFleet(server, plan, options) {
  const { send, stop } = await startHelper('fleet', server, plan, options);
  return {
    status: (charger, connector, status, errorCode = 'NoError') => send({ op: 'status', charger, connector, status, error_code: errorCode }),
    disconnect: (charger) => send({ op: 'disconnect', charger }),
    stop,
  };
}
