// The server under test: `sportello serve --demo` on a free port with a temporary data
// dir, shared by run.mjs (pages audited) and tasks.mjs (the clerk's day).

import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

/** A TCP port nobody listens on now (the OS picks it). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** The demo logins printed by `serve --demo`: `  operatore  role operator  password P  token T`. */
export function parseLogins(stdout) {
  const found = {};
  for (const m of stdout.matchAll(/^\s*(\S+)\s+role\s+(\S+)\s+password\s+(\S+)\s+token\s+(\S+)/gm)) {
    found[m[2]] = { login: m[1], password: m[3], token: m[4] };
  }
  return found.operator && found.supervisor ? found : null;
}

/**
 * Starts `serverBin serve --demo` (working directory `root`) and waits until it answers
 * and has printed the demo logins. Returns `{ base, logins, stop }`; `stop()` ends the
 * server and removes its data dir.
 */
export async function startServer(serverBin, root, { prefix = 'sportello-a11y-' } = {}) {
  const dir = await mkdtemp(path.join(os.tmpdir(), prefix));
  const port = await freePort();
  const config = path.join(dir, 'sportello.toml');
  await writeFile(config, `data_dir = "${path.join(dir, 'data')}"\nlisten = "127.0.0.1:${port}"\n`);
  const child = spawn(serverBin, ['--config', config, 'serve', '--demo'], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');
  child.stdout.on('data', (d) => { stdout += d; });
  // The server logs every document it reads; keep only the tail for a failure report.
  child.stderr.on('data', (d) => { stderr = (stderr + d).slice(-20000); });
  let exited = null;
  child.on('exit', (code, signal) => { exited = { code, signal }; });
  child.on('error', (e) => { exited = { error: e.message }; });
  const base = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 120_000;
  let logins = null;
  for (;;) {
    if (exited) {
      await rm(dir, { recursive: true, force: true });
      throw new Error(`the server stopped: ${JSON.stringify(exited)}\n${stdout}\n${stderr}`);
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      await rm(dir, { recursive: true, force: true });
      throw new Error(`the server did not start in time\n${stdout}\n${stderr}`);
    }
    logins = logins || parseLogins(stdout);
    if (logins) {
      try {
        const res = await fetch(`${base}/`);
        if (res.ok) break;
      } catch {
        // not listening yet
      }
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  const stop = async () => {
    if (!exited) {
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 5000);
      await new Promise((r) => (exited ? r() : child.on('exit', r)));
      clearTimeout(t);
    }
    await rm(dir, { recursive: true, force: true });
  };
  return { base, logins, stop };
}

/** Chromium's flags for a headless run on a CI machine. */
export function chromiumArgs() {
  return [
    // Root (as in CI) cannot use Chromium's sandbox.
    ...(process.getuid && process.getuid() === 0 ? ['--no-sandbox'] : []),
    '--disable-gpu',
    '--disable-quic',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--no-first-run',
  ];
}
