// Loading the addon on a platform comrade-pool has no build for: a clear error naming the
// platform, not napi-rs's "npm has a bug related to optional dependencies". Each case runs in
// a child process whose process.platform and process.arch are overridden by a preload.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.join(here, '..');
const preload = path.join(here, 'fixtures', 'simulate-platform.js');
const { napi } = require('../package.json');

// Loads `what` (a specifier resolved from the package root) as if on platform-arch; returns
// what the child reports: { loaded } or the error's { code, message, cause }.
function loadAs(platform, arch, what = 'comrade-pool') {
  const script = `
    try { require(${JSON.stringify(what)}); console.log(JSON.stringify({ loaded: true })); }
    catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message, cause: e.cause && e.cause.message })); }`;
  const r = spawnSync(process.execPath, ['--require', preload, '-e', script], {
    cwd: root,
    env: { ...process.env, COMRADE_SIM_PLATFORM: platform, COMRADE_SIM_ARCH: arch },
    encoding: 'utf8',
    timeout: 30_000,
  });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout.trim().split('\n').pop());
}

for (const [platform, arch, key] of [
  ['darwin', 'arm64', 'darwin-arm64'],
  ['darwin', 'x64', 'darwin-x64'],
  ['win32', 'x64', 'win32-x64'],
  ['freebsd', 'x64', 'freebsd-x64'],
  ['linux', 'riscv64', 'linux-riscv64-gnu'],
  ['linux', 'ppc64', 'linux-ppc64-gnu'],
]) {
  test(`on ${platform}-${arch}: "comrade-pool has no build for ${key} yet"`, () => {
    for (const what of ['comrade-pool', 'comrade-pool/compute-cluster', './lib/native.js']) {
      const r = loadAs(platform, arch, what);
      assert.equal(r.loaded, undefined, `${what} loaded on ${platform}-${arch}`);
      assert.equal(r.code, 'ERR_UNSUPPORTED_PLATFORM', JSON.stringify(r));
      assert.match(r.message, new RegExp(`^comrade-pool has no build for ${key} yet`));
      assert.doesNotMatch(r.message, /optional dependencies/);
      // The builds there are, from package.json's napi.targets, and napi-rs's error as the cause.
      assert.match(r.message, /\(builds: linux-x64-gnu, linux-arm64-gnu\)/);
      assert.match(r.cause, /Cannot find native binding/);
    }
  });
}

// linux-arm64-gnu has a build, in the platform package (scripts/cross-check.sh loads it under
// qemu-user); where that package is not installed, as here, napi-rs's own error about the
// missing optional dependency is the true one.
test('on linux-arm64 without its platform package: napi-rs\'s error, not "no build"', () => {
  assert.ok(napi.targets.includes('aarch64-unknown-linux-gnu'));
  const r = loadAs('linux', 'arm64');
  assert.equal(r.loaded, undefined);
  assert.notEqual(r.code, 'ERR_UNSUPPORTED_PLATFORM', JSON.stringify(r));
  assert.match(r.message, /Cannot find native binding/);
});

test('on this platform (a build exists), the package loads through the same preload', () => {
  assert.deepEqual(loadAs(process.platform, process.arch), { loaded: true });
  assert.ok(napi.targets.includes('x86_64-unknown-linux-gnu'));
});
