// Shared helpers of the Redis tests: a real redis-server (Debian's package) on a free loopback
// port without persistence, and worker hosts as real `comrade worker` processes. Everything
// started here is stopped after its test, pass or fail.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
export const { Pool, PoolError, codes, startWorkerHost } = require('../index.js');

const here = path.dirname(fileURLToPath(import.meta.url));
export const BIN = path.join(path.dirname(here), 'bin', 'comrade.js');
export const TASKS = path.join(here, 'fixtures', 'redis', 'tasks.js');

/** A free TCP port on 127.0.0.1 (free when asked; redis-server takes it right after). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function listening(port, child) {
  // Up to a minute on a loaded machine: a liveness bound, not a timing claim.
  for (let i = 0; i < 600; i++) {
    if (child.exitCode !== null) throw new Error(`redis-server exited with code ${child.exitCode}`);
    const ok = await new Promise((resolve) => {
      const c = net.connect(port, '127.0.0.1');
      c.on('connect', () => { c.destroy(); resolve(true); });
      c.on('error', () => resolve(false));
    });
    if (ok) return;
    await sleep(100);
  }
  throw new Error(`redis-server did not listen on ${port}`);
}

/**
 * Starts redis-server on a free loopback port, without persistence (`--save ''
 * --appendonly no`), stopped after the test `t`. `password`: `--requirepass`. `tls`: the
 * certificates of makeCerts(): the port is then TLS only (`--tls-port`), and clients must show
 * a certificate the CA signed. Returns { port, url (with the password, if any; rediss:// with
 * TLS), stop(), restart() }: restart() stops the server and starts a new one on the same port,
 * with nothing of the old one's data.
 */
export async function startRedis(t, { password, tls } = {}) {
  const port = await freePort();
  let child = null;
  const start = async () => {
    const args = tls
      ? ['--port', '0', '--tls-port', String(port), '--tls-cert-file', tls.files.serverCert,
        '--tls-key-file', tls.files.serverKey, '--tls-ca-cert-file', tls.files.ca,
        '--tls-auth-clients', 'yes']
      : ['--port', String(port)];
    args.push('--bind', '127.0.0.1', '--save', '', '--appendonly', 'no');
    if (password) args.push('--requirepass', password);
    child = spawn('redis-server', args, { stdio: 'ignore' });
    await listening(port, child);
  };
  const stop = async () => {
    if (child === null) return;
    const c = child;
    child = null;
    if (c.exitCode === null && c.signalCode === null) {
      const exited = new Promise((r) => c.once('exit', r));
      c.kill('SIGKILL');
      await exited;
    }
  };
  await start();
  t.after(stop);
  const auth = password ? `:${encodeURIComponent(password)}@` : '';
  return {
    port,
    url: `${tls ? 'rediss' : 'redis'}://${auth}127.0.0.1:${port}`,
    stop,
    async restart() {
      await stop();
      await start();
    },
  };
}

/**
 * A worker host as a real process: `node bin/comrade.js worker --redis URL --queue Q ...`,
 * running `module` (the tasks fixture by default) or `command` ([executable, ...args]).
 * `env` is added to its environment (HOST_TAG, MARK, SLOW_MS for the tasks fixture). Its
 * stderr is collected in `out`; `ready()` resolves once it takes jobs. Killed after the test.
 */
export function startHost(t, { url, queue, args = [], env = {}, module = TASKS, command }) {
  const what = command === undefined
    ? ['--module', module]
    : ['--command', command[0], ...args, '--', ...command.slice(1)];
  const argv = [BIN, 'worker', '--redis', url, '--queue', queue, ...what,
    ...(command === undefined ? args : [])];
  const child = spawn(process.execPath, argv, {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const host = {
    child,
    out: '',
    exited: new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal }))),
  };
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d) => { host.out += d; });
  host.waitFor = async (re, what = String(re)) => {
    for (let i = 0; i < 1200; i++) {
      if (re.test(host.out)) return;
      if (child.exitCode !== null) break;
      await sleep(50);
    }
    assert.fail(`host never printed ${what}; it printed:\n${host.out}`);
  };
  host.ready = () => host.waitFor(/takes jobs of queue/, 'its start line');
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) {
      try { process.kill(child.pid, 'SIGCONT'); } catch { /* gone */ }
      child.kill('SIGKILL');
    }
  });
  return host;
}

/**
 * A CA, a server certificate for 127.0.0.1 and a client certificate, made with openssl for the
 * test `t` (EC P-256 keys: quick to make). Returns { files: { ca, serverCert, serverKey,
 * clientCert, clientKey }, pem: { ca, cert, key } (the client's, as the `tls` option takes) }.
 */
export function makeCerts(t) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'comrade-tls-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const openssl = (...args) => {
    const r = spawnSync('openssl', args, { cwd: dir, encoding: 'utf8' });
    assert.equal(r.status, 0, `openssl ${args.join(' ')}: ${r.stderr}`);
  };
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl('req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=comrade test CA');
  for (const [name, usage] of [['server', 'serverAuth'], ['client', 'clientAuth']]) {
    fs.writeFileSync(path.join(dir, `${name}.ext`),
      `subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=${usage}\n`);
    openssl('req', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', '/CN=127.0.0.1');
    openssl('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial',
      '-out', `${name}.crt`, '-days', '2', '-extfile', `${name}.ext`);
  }
  const f = (n) => path.join(dir, n);
  const files = {
    ca: f('ca.crt'), serverCert: f('server.crt'), serverKey: f('server.key'),
    clientCert: f('client.crt'), clientKey: f('client.key'),
  };
  const read = (p) => fs.readFileSync(p, 'utf8');
  return { files, pem: { ca: read(files.ca), cert: read(files.clientCert), key: read(files.clientKey) } };
}

/** A temporary file path, removed after the test. */
export function tempFile(t, name) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'comrade-redis-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return path.join(dir, name);
}

/** The lines of `file` (none if it does not exist yet). */
export function lines(file) {
  try {
    return fs.readFileSync(file, 'utf8').split('\n').filter(Boolean);
  } catch {
    return [];
  }
}

/** Polls `cond` every 50 ms until it holds: at most `limit` ms (a liveness bound). */
export async function until(cond, what, limit = 60000) {
  const end = Date.now() + limit;
  while (Date.now() < end) {
    if (await cond()) return;
    await sleep(50);
  }
  assert.fail(`timed out waiting for ${what}`);
}

export function sleep(ms) {
  return new Promise((r) => { setTimeout(r, ms); });
}

/** Runs `redis-cli -p port args...` (Debian's redis-tools, a dependency of redis-server). */
export function redisCli(port, ...args) {
  const r = spawnSync('redis-cli', ['-p', String(port), ...args], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.trim();
}

/** The counts of a producer's queueStats() (it also has hosts, slots and run times). */
export function counted({ waiting, running, dead }) {
  return { waiting, running, dead };
}
