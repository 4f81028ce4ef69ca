'use strict';
// Loads the addon once and installs the safety nets: no worker may outlive this process,
// whether it ends naturally (env cleanup hook), by process.exit() ('exit' listener), or by a
// signal (the workers' parent-death signal, set when they are spawned). In a worker thread,
// which has its own copy of this module, the same nets stop only that thread's pools: a
// thread that ends must not kill the workers of the others.

const { isMainThread } = require('node:worker_threads');

// The platforms comrade-pool ships a build for, as napi-rs names their packages
// (comrade-pool-<key>): the triples of package.json's napi.targets.
const TRIPLE_KEYS = {
  'x86_64-unknown-linux-gnu': 'linux-x64-gnu',
  'x86_64-unknown-linux-musl': 'linux-x64-musl',
  'aarch64-unknown-linux-gnu': 'linux-arm64-gnu',
  'aarch64-unknown-linux-musl': 'linux-arm64-musl',
};

function supportedKeys() {
  const { napi } = require('../package.json');
  return napi.targets.map((t) => TRIPLE_KEYS[t] || t);
}

// This process's platform as the packages name it: `linux-x64-gnu`, `darwin-arm64`.
function platformKey() {
  const { platform, arch } = process;
  if (platform !== 'linux') return `${platform}-${arch}`;
  let glibc = true;
  try {
    glibc = Boolean(process.report.getReport().header.glibcVersionRuntime);
  } catch {
    // no report: take glibc, as the generated loader does
  }
  return `linux-${arch}-${glibc ? 'gnu' : 'musl'}`;
}

// binding.js is generated (napi build); on a platform with no build it throws napi-rs's
// "npm has a bug related to optional dependencies", which sends users the wrong way. Say
// what is true instead; on a platform that has a build, its own error stands.
function loadBinding() {
  try {
    return require('../binding.js');
  } catch (e) {
    const key = platformKey();
    if (supportedKeys().includes(key)) throw e;
    const err = new Error(
      `comrade-pool has no build for ${key} yet (builds: ${supportedKeys().join(', ')})`,
      { cause: e },
    );
    err.code = 'ERR_UNSUPPORTED_PLATFORM';
    throw err;
  }
}

const binding = loadBinding();

let installed = false;

function install() {
  if (installed) return;
  installed = true;
  binding.installCleanup(isMainThread);
  if (isMainThread) process.on('exit', () => binding.killAllWorkers());
  else process.on('exit', () => binding.killEnvWorkers());
}

// Node flags that must not reach worker processes: they would make a worker evaluate the
// parent's `-e` script again (and start a pool of its own), run the test runner, open a second
// inspector on the same port, or watch files.
const UNSAFE_EXEC_ARGV = /^(-e|-p|-pe|-c|-i|--eval|--print|--check|--interactive|--test|--inspect|--debug-port|--watch|--experimental-test)/;
// Of those, the ones whose value may follow as a separate argument (`-e CODE`, `--test-shard 1/2`).
const TAKES_VALUE = new Set([
  '-e', '-p', '-pe', '--eval', '--print', '--inspect-port', '--debug-port', '--watch-path',
  '--test-concurrency', '--test-name-pattern', '--test-skip-pattern', '--test-reporter',
  '--test-reporter-destination', '--test-shard', '--test-timeout', '--test-coverage-include',
  '--test-coverage-exclude', '--test-coverage-branches', '--test-coverage-functions',
  '--test-coverage-lines', '--test-isolation', '--test-global-setup',
]);

function workerExecArgv() {
  const out = [];
  const argv = process.execArgv;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!UNSAFE_EXEC_ARGV.test(a)) {
      out.push(a);
      continue;
    }
    if (TAKES_VALUE.has(a) && i + 1 < argv.length) i++; // drop its value too
  }
  return out;
}

// Environment for a Node worker: the channel on fd 3 in JSON mode, and none of the markers
// that would make the child believe it is a Node `cluster` worker.
const NODE_WORKER_ENV = { NODE_CHANNEL_FD: '3', NODE_CHANNEL_SERIALIZATION_MODE: 'json' };
const NODE_WORKER_ENV_REMOVE = ['NODE_UNIQUE_ID', 'NODE_WORKER_ID'];

// The binding's enums under the names lib/ uses: `RecordKind.ProtocolError` is
// `KIND.PROTOCOL_ERROR`. Numbers come from the engine only.
function upperSnake(e) {
  const out = {};
  for (const [name, value] of Object.entries(e)) {
    out[name.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase()] = value;
  }
  return Object.freeze(out);
}

// Record kinds: the first of each `kind, id, value` triple from NativePool#take.
const KIND = upperSnake(binding.RecordKind);

// Reasons in the flat rejection triples returned by NativePool#submit.
const REJECT = upperSnake(binding.RejectReason);

// Engine defaults the JS layer needs to know (validation, messages).
const DEFAULTS = Object.freeze({
  maxMessage: binding.DEFAULT_MAX_MESSAGE,
  killGraceMs: binding.DEFAULT_KILL_GRACE_MS,
  // Longest finite span an option or a job may give, in ms (2^32 - 1, about 49.7 days).
  maxDurationMs: binding.MAX_DURATION_MS,
});

module.exports = {
  DEFAULTS,
  NativePool: binding.NativePool,
  ncpu: binding.ncpu,
  install,
  workerExecArgv,
  NODE_WORKER_ENV,
  NODE_WORKER_ENV_REMOVE,
  KIND,
  REJECT,
};
