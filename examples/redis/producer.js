'use strict';
// A producer of the queue `jobs` on Redis; worker hosts (`comrade worker`) run its jobs.
// REDIS_URL=redis://127.0.0.1:6379 node examples/redis/producer.js
const { Pool } = require('comrade-pool');

async function main() {
  const pool = new Pool({ redis: process.env.REDIS_URL || 'redis://127.0.0.1:6379', queue: 'jobs', retries: 2 });
  // Spread over every host's workers; each result comes back to this process only.
  const hashes = await Promise.all(['a', 'b', 'c', 'd'].map((s) => pool.call('hash', s, 2000)));
  console.log('hashes:', hashes.map((h) => h.slice(0, 12)));
  // A function's error comes back as an Error of its class, naming the host it ran on.
  await pool.call('fail', 'too far').catch((e) => console.log(`${e.name} ${e.code} from ${e.host}`));
  // A message to every worker of every live host (tasks.js's onMessage sets the salt).
  console.log('broadcast reached', await pool.broadcast({ salt: 'paprika:' }), 'workers');
  console.log('queue:', await pool.queueStats());
  await pool.close();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
