'use strict';
// The parent's memory for one 64 MiB Buffer each way (issue 11, item 1): the peak resident
// set (VmHWM, reset before each measurement) above the resident set just before, in copies of
// the payload. Sending: the caller's Buffer itself is not counted (it exists before); each
// copy the pool makes of it is. Receiving: the Buffer the caller gets is one copy.
//   node bench/binary-rss.js [MiB]   (default 64)

const fs = require('node:fs');
const path = require('node:path');
const { Pool } = require('..');

const MIB = 1 << 20;
const size = (Number(process.argv[2]) || 64) * MIB;

function status() {
  const s = fs.readFileSync('/proc/self/status', 'utf8');
  const kb = (k) => Number(new RegExp(`${k}:\\s+(\\d+)`).exec(s)[1]) * 1024;
  return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
}

// Resets VmHWM to the current resident set (Linux: clear_refs 5).
function resetPeak() {
  fs.writeFileSync('/proc/self/clear_refs', '5');
}

async function measure(label, fn) {
  if (global.gc) global.gc();
  resetPeak();
  const before = status().rss;
  const keep = await fn();
  const { hwm } = status();
  const copies = (hwm - before) / size;
  console.log(`${label.padEnd(34)} peak +${((hwm - before) / MIB).toFixed(1)} MiB = ${copies.toFixed(2)} copies`);
  return keep;
}

async function main() {
  const pool = new Pool({
    module: path.join(__dirname, 'workers', 'binary.js'),
    maxWorkers: 1,
    maxMessage: size + MIB,
  });
  // Warm up: the worker is started, the code paths are compiled.
  await pool.call('length', Buffer.alloc(1024, 1));
  await pool.call('make', 1024);
  const payload = Buffer.alloc(size, 1);
  console.log(`payload ${size / MIB} MiB, Node ${process.version}`);
  await measure('argument (call length(buf))', () => pool.call('length', payload));
  const got = await measure('result (call make(size))', () => pool.call('make', size));
  if (got.length !== size) throw new Error('wrong result');
  await pool.close();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
