'use strict';
// A 1 MiB Buffer echoed by 2 workers (issue 11, item 3), in MB/s each way (MiB of payload sent,
// and received, per second), with 4 echoes in flight per worker. Each contender runs in a fresh
// process of its own (as the peers harness does), interleaved, rotating the order each round:
//   comrade Pool            module worker, json serialization (the Buffer as a raw attachment)
//   comrade Pool advanced   module worker, serialization: 'advanced' (v8.serialize)
//   comrade Pool + Rust     the Rust worker crate's bytes_worker example (serde_bytes ByteBuf),
//                           when built: cargo build --release -p comrade-worker --examples
//   fork advanced           bare child_process.fork, serialization: 'advanced', pipelined
//   piscina (threads)       worker threads, the buffer moved in a transfer list both ways
//   raw socketpair          the bytes alone, echoed by `cat`-like children on socketpairs
//                           (libuv's stdio pipes): the physical limit of a process echo
//   ... (before)            with COMRADE_BASELINE=<another checkout, built (its addon, and its
//                           bytes_worker for the Rust row)>: the three comrade rows on that
//                           build, interleaved with this one's, for a paired comparison
// Usage: node bench/binary.js [--rounds 3] [--seconds 2]

const { spawn, fork } = require('node:child_process');
const { existsSync } = require('node:fs');
const path = require('node:path');
const { median, machineInfo, cpuSnapshot, othersCpuShare } = require('./common');

const MIB = 1 << 20;
const WORKERS = 2;
const IN_FLIGHT = 4; // per worker
const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? dflt : process.argv[i + 1];
};
const ROUNDS = Number(arg('rounds', 3));
const SECONDS = Number(arg('seconds', 2));
const WORKER = path.join(__dirname, 'workers', 'binary.js');
const HERE = path.join(__dirname, '..');
const BASELINE = process.env.COMRADE_BASELINE
  ? path.resolve(process.env.COMRADE_BASELINE).replace(/[\\/]index\.js$/, '')
  : null;
const rustWorker = (root) => path.join(root, 'target', 'release', 'examples', 'bytes_worker');
const RUST_WORKER = rustWorker(HERE);

// Every echo, the warm-up's too (`--one` prints it: CPU per echo under perf stat).
let echoed = 0;

// Keeps WORKERS × IN_FLIGHT echoes going for `SECONDS` after a warm-up of 0.5 s; `echo(buf)`
// resolves with the echoed buffer. Returns MiB/s each way.
async function drive(echo) {
  const payload = Buffer.alloc(MIB, 5);
  let counting = false;
  let done = 0;
  let stop = false;
  const loop = async () => {
    let buf = payload;
    while (!stop) {
      const back = await echo(buf);
      if (back.length !== MIB) throw new Error(`echoed ${back.length} bytes`);
      buf = back.length === MIB ? back : payload;
      echoed++;
      if (counting) done++;
    }
  };
  const loops = Array.from({ length: WORKERS * IN_FLIGHT }, loop);
  await new Promise((r) => setTimeout(r, 500));
  counting = true;
  const t0 = process.hrtime.bigint();
  await new Promise((r) => setTimeout(r, SECONDS * 1000));
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  const n = done;
  stop = true;
  await Promise.all(loops);
  return n / secs;
}

// The three comrade contenders on the checkout at `root` (this one, or the baseline).
function comrade(root, suffix) {
  const pool = (opts) => {
    const { Pool } = require(root);
    return new Pool({ maxWorkers: WORKERS, minWorkers: WORKERS, concurrency: IN_FLIGHT, ...opts });
  };
  const run = async (opts) => {
    const p = pool(opts);
    const r = await drive((b) => p.call('echo', b));
    await p.close();
    return r;
  };
  return {
    [`comrade Pool${suffix}`]: () => run({ module: WORKER }),
    [`comrade Pool advanced${suffix}`]: () => run({ module: WORKER, serialization: 'advanced' }),
    [`comrade Pool + Rust${suffix}`]: () => run({ command: [rustWorker(root)] }),
  };
}

const contenders = {
  ...comrade(HERE, ''),
  ...(BASELINE ? comrade(BASELINE, ' (before)') : {}),
  async 'fork advanced'() {
    const children = Array.from({ length: WORKERS }, () => {
      const c = fork(path.join(__dirname, 'workers', 'binary-fork.js'), { serialization: 'advanced' });
      c.waiting = new Map();
      c.on('message', ([id, v]) => {
        const w = c.waiting.get(id);
        c.waiting.delete(id);
        w(Buffer.from(v.buffer, v.byteOffset, v.byteLength));
      });
      return c;
    });
    let next = 0;
    const r = await drive((b) => new Promise((resolve) => {
      const id = next++;
      const c = children[id % WORKERS];
      c.waiting.set(id, resolve);
      c.send([id, b]);
    }));
    for (const c of children) c.kill();
    return r;
  },
  async 'piscina (threads)'() {
    const { Piscina } = require('piscina');
    const pool = new Piscina({
      filename: path.join(__dirname, 'workers', 'binary-piscina.js'),
      minThreads: WORKERS, maxThreads: WORKERS, concurrentTasksPerWorker: IN_FLIGHT,
    });
    const r = await drive(async (b) => {
      // The payload may be shared by several loops at the start: move a copy of it then.
      const own = b.byteOffset === 0 && b.buffer.byteLength === b.length && b.owned ? b : Buffer.from(b);
      const back = await pool.run(own, { transferList: [own.buffer] });
      const out = Buffer.from(back.buffer, back.byteOffset, back.byteLength);
      out.owned = true;
      return out;
    });
    await pool.destroy();
    return r;
  },
  async 'raw socketpair'() {
    const children = Array.from({ length: WORKERS }, () => {
      const c = spawn(process.execPath, ['-e', 'process.stdin.pipe(process.stdout)'], { stdio: ['pipe', 'pipe', 'inherit'] });
      c.queue = [];
      c.got = 0;
      c.stdout.on('data', (chunk) => {
        c.got += chunk.length;
        while (c.queue.length > 0 && c.got >= MIB) {
          c.got -= MIB;
          c.queue.shift()(chunk);
        }
      });
      return c;
    });
    let next = 0;
    // Bytes only: the echo "returns" the payload (its bytes have come back).
    const r = await drive((b) => new Promise((resolve) => {
      const c = children[next++ % WORKERS];
      c.queue.push(() => resolve(b));
      c.stdin.write(b);
    }));
    for (const c of children) c.kill();
    return r;
  },
};

async function one(name) {
  const before = cpuSnapshot();
  const rate = await contenders[name]();
  const others = othersCpuShare(before, cpuSnapshot());
  process.stdout.write(JSON.stringify({ rate, others, echoed }) + '\n');
}

function runOne(name) {
  return new Promise((resolve, reject) => {
    const c = spawn(process.execPath, [__filename, '--one', name, '--seconds', String(SECONDS)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    c.stdout.on('data', (d) => { out += d; });
    c.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`${name} exited with ${code}`))));
  });
}

async function main() {
  if (process.argv.includes('--help')) {
    console.log('usage: node bench/binary.js [--rounds 3] [--seconds 2]\n' +
      'Echoes a 1 MiB Buffer on 2 workers through each contender, one process each, interleaved;\n' +
      'prints MiB/s each way. Build the addon in release first (bash scripts/build.sh release), and\n' +
      'the Rust contender with cargo build --release -p comrade-worker --examples.');
    return undefined;
  }
  if (process.argv.includes('--one')) return one(arg('one'));
  const names = Object.keys(contenders).filter((n) => !n.startsWith('comrade Pool + Rust') ||
    existsSync(rustWorker(n.endsWith('(before)') ? BASELINE : HERE)));
  if (!names.includes('comrade Pool + Rust')) console.error(`(${RUST_WORKER} not built: no Rust contender)`);
  const rates = Object.fromEntries(names.map((n) => [n, []]));
  const others = [];
  for (let round = 0; round < ROUNDS; round++) {
    const k = round % names.length;
    for (const name of names.slice(k).concat(names.slice(0, k))) {
      const r = await runOne(name);
      rates[name].push(r.rate);
      if (r.others !== null) others.push(r.others);
      console.error(`round ${round + 1}/${ROUNDS}  ${name.padEnd(31)} ${r.rate.toFixed(0)} MiB/s`);
    }
  }
  const m = machineInfo();
  console.log(`\n1 MiB Buffer echo, ${WORKERS} workers, ${IN_FLIGHT} in flight each; MiB/s each way, ` +
    `median of ${ROUNDS} rounds, one process per contender (${m.cpu || ''} ${m.node || process.version})`);
  if (others.length) console.log(`other processes used ${(median(others) * 100).toFixed(0)}% of the machine's CPU meanwhile (median)`);
  const base = median(rates['fork advanced']);
  const raw = median(rates['raw socketpair']);
  console.log('\n| contender | MiB/s each way | × fork advanced | × raw socketpair |');
  console.log('|---|---:|---:|---:|');
  for (const name of names) {
    const v = median(rates[name]);
    console.log(`| ${name} | ${v.toFixed(0)} | ${(v / base).toFixed(2)}× | ${(v / raw).toFixed(2)}× |`);
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
