/* global document */
// The status page in a real browser: Debian's chromium (.ci/run installs it), headless, driven
// by playwright-core. While a pool works, the page shows its workers' pids, its chart gains
// samples, and a worker killed with SIGKILL appears among the exits with reason `crash`. A
// screenshot is saved under __test__/artifacts/ (git-ignored).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { codes, fixture, openPool, waitFor, TEST } from './pool-helpers.mjs';

const require = createRequire(import.meta.url);
const { chromium } = require('playwright-core');

const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = path.join(import.meta.dirname, 'artifacts');

test('the status page in headless chromium: pids, a growing chart, a SIGKILLed worker listed as crash', { ...TEST, timeout: 90000 }, async (t) => {
  assert.ok(fs.existsSync(CHROMIUM), `${CHROMIUM} is missing: apt-get install chromium (.ci/run does)`);
  const { pool } = openPool(t, {
    module: fixture('observe.js'), name: 'browser', minWorkers: 2, maxWorkers: 2, concurrency: 2,
  });
  // Work until the test ends: short jobs, some of which fail, and a queue behind them.
  let working = true;
  const loops = Array.from({ length: 6 }, async (_, i) => {
    for (let n = 0; working; n++) {
      try {
        if (n % 25 === 24) await pool.call('fail', `loop ${i} job ${n} failed on purpose`);
        else await pool.call('sleep', 10);
      } catch (e) {
        // A failure (or the SIGKILLed worker's job) is part of the show; a pool torn down
        // (the test failed) ends the loop: its calls would reject at once, for ever.
        if (e.code === codes.POOL_CLOSED || e.code === codes.POOL_TERMINATED) break;
      }
    }
  });
  const stopLoops = () => {
    working = false;
    return Promise.all(loops);
  };
  t.after(stopLoops);
  const server = http.createServer(pool.statusHandler());
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    server.closeAllConnections();
    return new Promise((resolve) => server.close(resolve));
  });
  const url = `http://127.0.0.1:${server.address().port}/`;

  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'comrade-chromium-'));
  t.after(() => fs.rmSync(profile, { recursive: true, force: true }));
  const browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
    viewport: { width: 1280, height: 900 },
  });
  t.after(() => browser.close());
  const page = browser.pages()[0] ?? await browser.newPage();
  const pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(e.message));
  const refused = [];
  page.on('requestfailed', (r) => refused.push(r.url()));
  await page.goto(url);

  // The workers' pids, in the workers table.
  await waitFor(() => pool.pids.length === 2, 'two workers');
  const pids = pool.pids.map(String).sort();
  await page.waitForFunction((want) => {
    const cells = [...document.querySelectorAll('section.pool table tbody tr td:first-child')].map((c) => c.textContent);
    return want.every((p) => cells.includes(p));
  }, pids, { timeout: 20000 });

  // The chart's data grows between two reads a few seconds apart.
  const points = () => page.$eval('#chart-0', (svg) => ({
    chart: Number(svg.getAttribute('data-points')),
    throughput: Number(svg.querySelector('.series-throughput').getAttribute('data-points')),
    queued: Number(svg.querySelector('.series-queued').getAttribute('data-points')),
  }));
  const first = await points();
  await page.waitForFunction((n) => Number(document.querySelector('#chart-0')?.getAttribute('data-points')) >= n + 3,
    first.chart, { timeout: 20000 });
  const second = await points();
  assert.ok(second.chart >= first.chart + 3, `${JSON.stringify(first)} then ${JSON.stringify(second)}`);
  assert.ok(second.throughput > first.throughput && second.queued > first.queued);
  // Jobs were done in between: some sample of the throughput series is above the baseline.
  const drawn = await page.$eval('#chart-0 .series-throughput', (l) => l.getAttribute('points').split(' ').length);
  assert.equal(drawn, second.throughput);

  // A worker killed with SIGKILL is listed among the exits, reason crash.
  const victim = pool.pids[0];
  process.kill(victim, 'SIGKILL');
  await page.waitForFunction((pid) => [...document.querySelectorAll('table.exits tbody tr')].some((tr) => {
    const cells = [...tr.children].map((c) => c.textContent);
    return cells[1] === String(pid) && cells[2] === 'crash';
  }), victim, { timeout: 20000 });
  // The errors the loops made on purpose are listed too.
  await page.waitForFunction(() => document.querySelector('table.errors')?.textContent.includes('failed on purpose'),
    null, { timeout: 20000 });

  fs.mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: path.join(ARTIFACTS, 'status-page.png'), fullPage: true });
  assert.deepEqual(pageErrors, []);
  assert.deepEqual(refused, [], 'the page asked for nothing it could not have');
  await stopLoops();
});
