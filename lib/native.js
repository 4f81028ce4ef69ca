'use strict';
// Loads the addon once and installs the process-wide safety nets: no worker may outlive this
// process, whether it ends naturally (env cleanup hook), by process.exit() ('exit' listener),
// or by a signal (the workers' parent-death signal, set when they are spawned).

const binding = require('../binding.js');

let installed = false;

function install() {
  if (installed) return;
  installed = true;
  binding.installCleanup();
  process.on('exit', () => binding.killAllWorkers());
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

// Record kinds, as numbered by the engine (crates/core/src/engine.rs, `kind`).
const KIND = Object.freeze({
  RESULT: 0,
  FAILED: 1,
  SPAWNED: 2,
  EXITED: 3,
  STRAY: 4,
  DISPATCHED: 5,
  COMPLETED: 6,
  PROTOCOL_ERROR: 7,
  SPAWN_FAILED: 8,
  ALL_EXITED: 9,
  VOID: 10,
  JOB_ERROR: 11,
  EVENT: 12,
  PROGRESS: 13,
  RETIRING: 14,
});

// Reasons in the flat rejection triples returned by NativePool#submit.
const REJECT = Object.freeze({ CLOSED: 0, BACKLOG: 1, DURATION: 2 });

// Engine defaults the JS layer needs to know (validation, messages).
const DEFAULTS = Object.freeze({ maxMessage: 64 * 1024 * 1024, killGraceMs: 5000 });

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
