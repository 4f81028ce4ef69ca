'use strict';
// node examples/pool/quickstart.js
const path = require('node:path');
const { Pool } = require('comrade-pool');

async function main() {
  const pool = new Pool({
    module: path.join(__dirname, 'tasks.js'),
    maxWorkers: 2,
    concurrency: 2,
    initData: { salt: 'pepper:' },
  });
  pool.on('event', (name, data, pid) => console.log(`event ${name} from ${pid}:`, data));

  // Named functions, in parallel over the workers.
  const hashes = await Promise.all(['a', 'b', 'c', 'd'].map((s) => pool.call('hash', s, 2000)));
  console.log('hashes:', hashes.map((h) => h.slice(0, 12)));

  // Progress from inside the job.
  const r = await pool.run(3, { name: 'countdown', onProgress: (i) => console.log('progress', i) });
  console.log('countdown:', r);

  // A worker's error arrives as an Error of the same class, code and stack included.
  try {
    await pool.call('fail', 'out of range');
  } catch (err) {
    console.log('caught:', err instanceof RangeError, err.code, err.message);
  }

  // A message to every live worker (its onMessage handlers), acknowledged by each.
  const reached = await pool.broadcast({ salt: 'paprika:' });
  console.log('broadcast reached', reached, 'workers');

  await pool.close(); // every accepted job settles, then the workers stop
  console.log('closed');
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
