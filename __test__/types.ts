// Compiled (not run) by `tsc -p __test__/tsconfig.json`: the public types must accept real
// usage and reject misuse.
import { ComputeCluster, ComputeClusterOptions } from '../index';
import CC = require('../compute-cluster');

const opts: ComputeClusterOptions = { module: './worker.js', max_processes: 2, max_backlog: -1 };
const cc = new ComputeCluster(opts);
const cc2 = ComputeCluster({ module: './worker.js' });
const cc3 = new CC({ module: './worker.js', max_request_time: 1.5 });

cc.enqueue({ n: 1 }, (err, result?: number) => {
  if (err !== null) {
    const text: string = err;
    void text;
  }
  void result;
})
  .enqueue('chained');
cc.on('info', (m) => m.toUpperCase()).on('debug', (m: string) => m);
cc.exit((err) => {
  const nothing: null = err;
  void nothing;
});
cc2.exit();
cc3.exit();

// @ts-expect-error module is required
new ComputeCluster({ max_processes: 2 });
// @ts-expect-error max_processes is a number
new ComputeCluster({ module: 'x', max_processes: 'two' });

// --- Pool ---
import {
  Pool, PoolError, codes, PoolOptions, RunOptions, ncpu, StatusHandler, StatusSnapshot, WorkerExitReason,
  JobTraceContext,
} from '../index';
import { tracingChannel } from 'node:diagnostics_channel';
import { createServer, IncomingMessage, ServerResponse } from 'node:http';
import { progress, emit, retire, isWorker, traceContext, onMessage } from '../worker';

const tasks = {
  add: (a: number, b: number) => a + b,
  shout: async (s: string) => s.toUpperCase(),
  default: (n: number) => n * 2,
};

const cores: number = ncpu().physical;
void cores;
const sized = new Pool({ module: 'a.js', minWorkers: 1, maxWorkers: 4, spawnDelay: 100, idleTimeout: 10000, maxJobsPerWorker: 1000, maxRss: 1 << 28, affinity: true, niceIncrement: 10, retries: 1, timeout: 5000, queueTimeout: 2000, totalTimeout: 60000, fairness: 'round-robin', groupAffinity: true, priority: -1, prioritySlots: { 1: 2, 2.5: 1 }, sacredGuarantees: true });
void sized;
const typed = new Pool<typeof tasks>({ module: './tasks.js', maxWorkers: 2, concurrency: 4 });
async function usePool(): Promise<void> {
  const sum: number = await typed.call('add', 1, 2);
  const loud: string = await typed.call('shout', 'x');
  const doubled: number = await typed.run(21);
  // @ts-expect-error wrong argument type for add
  await typed.call('add', 'one', 2);
  // @ts-expect-error no such function
  await typed.call('nope');
  void sum; void loud; void doubled;

  // exec(name, args, options): typed from the module's exports.
  const sum2: number = await typed.exec('add', [1, 2]);
  const loud2: string = await typed.exec('shout', ['x'], { timeout: 1000, retries: 1, priority: 2, queueTimeout: 500, totalTimeout: Infinity, group: 'tenant-1' });
  // Binary data and serialization: 'advanced' (issue 11).
  const rich = new Pool({ module: 'a.js', serialization: 'advanced' });
  const bytes: unknown = await rich.run(Buffer.from('x'));
  void bytes;
  void new Pool({ command: ['./w'], serialization: 'json' });
  // @ts-expect-error a command worker speaks JSON
  void new Pool({ command: ['./w'], serialization: 'advanced' });
  // @ts-expect-error fairness is 'fifo' or 'round-robin'
  void new Pool({ module: 'a.js', fairness: 'fair' });
  const picky = new Pool({
    module: 'a.js',
    strategy: (job, workers) => {
      const n: string | null = job.name;
      const a: unknown[] = job.args;
      void n; void a; void job.group; void job.priority;
      const idle = workers.find((w) => w.inFlight === 0 && w.jobsDone >= 0 && w.group !== 'x');
      return idle?.pid;
    },
  });
  picky.on('warning', ({ message, cause }) => { const m: string = message; void m; void cause; });
  void new Pool({ module: 'a.js', strategy: 'round-robin' });
  void new Pool({ module: 'a.js', strategy: 'random' });
  // @ts-expect-error an unknown strategy
  void new Pool({ module: 'a.js', strategy: 'fastest' });
  const ac2 = new AbortController();
  await typed.exec('add', [1, 2], { signal: ac2.signal, onProgress: (p) => void p });
  const asConst = [3, 4] as const;
  await typed.exec('add', asConst);
  // @ts-expect-error a priority is a number
  void typed.exec('shout', ['x'], { priority: 'high' });
  // @ts-expect-error exec's args are the function's parameters
  await typed.exec('add', ['one', 2]);
  // @ts-expect-error too few arguments for add
  await typed.exec('add', [1]);
  // @ts-expect-error add needs its arguments
  await typed.exec('add');
  // @ts-expect-error no such function
  await typed.exec('nope', []);
  // @ts-expect-error the name is exec's first argument, never an option
  await typed.exec('add', [1, 2], { name: 'shout' });
  // @ts-expect-error a misspelled option
  await typed.exec('add', [1, 2], { timout: 5 });
  // @ts-expect-error exec's result is add's (a number)
  const wrongResult: string = await typed.exec('add', [1, 2]);
  void sum2; void loud2; void wrongResult;

  // run(task, { name }): typed from the function `name` names.
  const loud3: string = await typed.run('x', { name: 'shout' });
  const twice: number = await typed.run(2, { name: 'add', timeout: 10 });
  // @ts-expect-error shout takes a string
  await typed.run(5, { name: 'shout' });
  // @ts-expect-error no such function
  await typed.run(5, { name: 'nope' });
  // @ts-expect-error run's result is shout's (a string)
  const wrongRun: number = await typed.run('x', { name: 'shout' });
  // @ts-expect-error a misspelled option
  await typed.run(21, { timout: 5 });
  void loud3; void twice; void wrongRun;

  // A module with no default function: run() needs a name.
  const named = new Pool<{ upper: (s: string) => string }>({ module: './named.js' });
  const up: string = await named.run('x', { name: 'upper' });
  void up;

  const loose = new Pool({ command: ['./md5_worker'], initData: { salt: 1 }, maxBacklog: 100 });
  const anything = await loose.call('whatever', 1, 'two', { three: 3 });
  await loose.run({ x: 1 }, { name: 'f', onProgress: (p) => void p });
  loose.enqueue('x', (err, result) => {
    if (err) {
      const msg: string = err.message;
      void msg;
    }
    void result;
  });
  loose.on('event', (name, data, pid) => { const n: string = name; const p: number = pid; void n; void p; void data; });
  loose.on('workerExit', (info) => {
    const s: string | null = info.signal;
    const why: 'crash' | 'idle' | 'recycled' | 'retired' | 'memory' | 'timeout' | 'aborted' | 'protocol' | 'shutdown' = info.reason;
    // @ts-expect-error not a reason
    const notWhy: typeof info.reason = 'killed';
    void s; void why; void notWhy;
  });
  // Untyped: any name, any arguments, any options object of the known keys.
  const anyExec = await loose.exec('whatever', [1, 'two'], { retries: 1 });
  const runOpts: RunOptions = { name: 'f', timeout: 5 };
  await loose.run(1, runOpts);
  await loose.exec('whatever');
  void anyExec;
  try {
    await loose.call('x');
  } catch (e) {
    if (e instanceof PoolError && e.code === codes.UNKNOWN_FUNCTION) {
      const unknown: 'ERR_UNKNOWN_FUNCTION' = e.code;
      void unknown;
    }
    if (e instanceof PoolError && e.code === codes.WORKER_EXITED) {
      const pid: number | undefined = e.pid;
      void pid;
    }
  }
  const ac = new AbortController();
  await loose.run(1, { signal: ac.signal, timeout: 1000, retries: 2, priority: 0.5 });
  await typed.exec('add', [1, 2], { key: 'one-plus-two' });
  const shared: string = await typed.run('x', { name: 'shout', key: 'x' });
  void shared;
  // @ts-expect-error a key is a string
  await typed.run(21, { key: 21 });
  // Batches: typed from the module's function, items in input order.
  const sums: number[] = await typed.map([1, 2, 3]);
  const louds: string[] = await typed.map(['a', 'b'], {
    name: 'shout', window: 8, timeout: 1000, retries: 1, priority: 1, signal: ac.signal,
    key: (s, i) => `${s}${i}`,
    onResult: (err, value, index) => { const v: string | undefined = value; void err; void v; void index; },
    onProgress: ({ done, failed, total }) => { const n: number | null = total; void done; void failed; void n; },
  });
  async function* gen(): AsyncGenerator<string> { yield 'x'; }
  const settled = await typed.mapSettled(gen(), { name: 'shout', key: 'same' });
  for (const r of settled) {
    if (r.status === 'fulfilled') { const v: string = r.value; void v; } else { const e: Error = r.reason; void e; }
  }
  const counted = await typed.map([1, 2], { collect: false });
  const doneCount: number = counted.done;
  const anyMap: unknown[] = await loose.map(new Set([1, 'two']), { name: 'f' });
  void sums; void louds; void doneCount; void anyMap;
  // @ts-expect-error shout takes strings
  await typed.map([1, 2], { name: 'shout' });
  // @ts-expect-error a window is a number
  await typed.map([1], { window: 'big' });
  // @ts-expect-error map's onProgress reports the batch
  await typed.map([1], { onProgress: (p: string) => p });
  // Deadline-driven growth and speculation.
  const bursty = new Pool<typeof tasks>({ module: './tasks.js', maxWorkers: 2, burstWorkers: 8 });
  const burstMax: number = bursty.burstWorkers;
  const onTime: number[] = await bursty.map([1, 2], { finishBy: Date.now() + 5000 });
  const onTimeSettled = await bursty.mapSettled(['a'], { name: 'shout', finishBy: new Date(Date.now() + 5000), speculate: true });
  void burstMax; void onTime; void onTimeSettled;
  // @ts-expect-error finishBy is a time
  await bursty.map([1], { finishBy: 'soon' });
  // @ts-expect-error speculate is a boolean
  await bursty.map([1], { finishBy: Date.now() + 1000, speculate: 1 });
  // Backpressure.
  const drained = new Pool({ module: 'a.js', drainThreshold: 64 });
  if (drained.needsDrain) await new Promise<void>((resolve) => drained.once('drain', resolve));
  drained.on('drain', () => void 0);
  const threshold: number = drained.drainThreshold;
  void threshold;
  // @ts-expect-error needsDrain is read-only
  drained.needsDrain = false;
  // @ts-expect-error a threshold is a number
  new Pool({ module: 'a.js', drainThreshold: 'lots' });
  const st = loose.stats();
  const namedPool = new Pool({ module: './w.js', name: 'hashes' });
  const poolName: string = namedPool.name;
  const text: string = namedPool.metrics() + Pool.metrics([namedPool, loose]) + Pool.metrics(namedPool);
  const contentType: string = Pool.METRICS_CONTENT_TYPE;
  const page: StatusHandler = namedPool.statusHandler();
  const both: (req: IncomingMessage, res: ServerResponse) => void = Pool.statusHandler([namedPool, loose]);
  createServer(page).close();
  void poolName; void text; void contentType; void both;
  // @ts-expect-error name is a string
  void new Pool({ module: './w.js', name: 1 });
  // @ts-expect-error pools, not strings
  Pool.metrics(['a']);
  const snap = null as unknown as StatusSnapshot;
  const exitReason: WorkerExitReason = snap.exits[0].reason;
  const errFn: string | null = snap.errors[0].function;
  const depth: number = snap.history.queued[0] + snap.stats.queued;
  void exitReason; void errFn; void depth;
  tracingChannel<JobTraceContext>('comrade:job').subscribe({
    start(ctx) { ctx.traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'; },
    end() {},
    asyncStart(ctx) { const ms: number | null = ctx.runMs; void ms; },
    asyncEnd() {},
    error(ctx) { const e: unknown = ctx.error; const fn: string | null = ctx.function; void e; void fn; },
  });
  const aborted: number = st.aborted + st.timedOut + st.coalesced + st.queueTimedOut + st.totalTimedOut;
  loose.on('queueTimeout', ({ name, waitedMs }) => { const n: string | null = name; const w: number = waitedMs; void n; void w; });
  loose.once('totalTimeout', ({ pid }) => { const p: number | null = pid; void p; });
  const qt: 'ERR_QUEUE_TIMEOUT' = codes.QUEUE_TIMEOUT;
  const tt: 'ERR_TOTAL_TIMEOUT' = codes.TOTAL_TIMEOUT;
  void qt; void tt;
  void aborted;
  const busy: number = st.workers.filter((w) => w.state === 'busy').length;
  const p99: number | undefined = st.runTime?.p99;
  void busy; void p99;
  // @ts-expect-error timeout is a number
  await loose.run(1, { timeout: '1s' });
  const pids: number[] = loose.pids;
  void pids; void anything;
  const reached: number = await loose.broadcast({ reload: 'v2' });
  void reached;
  try {
    await loose.broadcast(1);
  } catch (e) {
    if (e instanceof PoolError && e.code === codes.BROADCAST_FAILED) {
      const n: number | undefined = e.reached;
      const who: (number | null)[] = (e.failures ?? []).map((f) => f.pid);
      const where: (string | null | undefined)[] = (e.failures ?? []).map((f) => f.host);
      void where;
      const why: Error[] = (e.failures ?? []).map((f) => f.error);
      void n; void who; void why;
    }
  }
  await loose.close();
  await typed.terminate();
}
void usePool;

// @ts-expect-error module and command are exclusive
const both: PoolOptions = { module: 'a.js', command: ['b'] };
void both;
// @ts-expect-error concurrency is a number
new Pool({ module: 'a.js', concurrency: 'many' });

if (isWorker) {
  progress(0.5);
  emit('cache', { size: 1 });
  retire();
  const parent: string | undefined = traceContext()?.traceparent;
  void parent;
  const off: () => void = onMessage((message: { reload?: string }) => void message.reload);
  onMessage(async () => undefined);
  off();
  // @ts-expect-error the handler is a function
  onMessage('reload');
}

// --- A queue on Redis ---
import { startWorkerHost, PoolRedisOptions, RedisTlsOptions, WorkerHost, QueueStats, MapSettledResult } from '../index';

async function useRedis(): Promise<void> {
  const opts: PoolRedisOptions = { redis: 'redis://127.0.0.1:6379', queue: 'jobs', retries: 2, timeout: 5000, priority: 1, maxMessage: 1 << 20, maxBacklog: 1000, maxExpectedWait: 2000, lease: 30000 };
  const producer = new Pool<typeof tasks>(opts);
  const sum: number = await producer.call('add', 1, 2);
  const twice: number = await producer.run(2, { priority: 3, retries: 1, timeout: 100, signal: AbortSignal.timeout(1000), onProgress: (v) => void v });
  void sum; void twice;
  const scheduled = new Pool<typeof tasks>({ ...opts, queueTimeout: 1000, totalTimeout: 5000, prioritySlots: { 1: 2, 5: 1 }, sacredGuarantees: true });
  const shared: number = await scheduled.exec('add', [1, 2], { key: 'k', queueTimeout: 100, totalTimeout: Infinity });
  scheduled.on('totalTimeout', ({ host: h }) => void h);
  void shared;
  // Batches run on the hosts too (finishBy and speculate are refused at run time).
  const doubled: number[] = await producer.map([1, 2, 3], { window: 64, retries: 1, priority: 2, timeout: 1000 });
  const outcomes: MapSettledResult<string>[] = await producer.mapSettled(['a', 'b'], { name: 'shout', onResult: (err, v, i) => void [err, v, i], onProgress: (p) => void p.done, collect: true, signal: AbortSignal.timeout(5000) });
  void doubled; void outcomes;
  const q: QueueStats | undefined = await producer.queueStats?.();
  if (q !== undefined) {
    const spread: number = q.waiting + q.running + q.dead + q.hosts + q.slots + (q.meanRunTime ?? 0) + (q.runTime?.p99 ?? 0);
    const perFunction: number | undefined = q.functions.add?.p50;
    void spread; void perFunction;
  }
  const code: 'ERR_REDIS' = codes.REDIS;
  void code;
  const host: WorkerHost = await startWorkerHost({ redis: 'redis://127.0.0.1:6379', queue: 'jobs', module: './tasks.js', workers: 2, concurrency: 4, lease: 30000, poll: 1000, maxMessage: 1 << 20, initData: { a: 1 }, env: { A: '1' }, cwd: '.', name: 'host-1' });
  host.on('redisError', (e: PoolError) => void e.code);
  host.on('lost', ({ job }) => void job);
  host.on('cancel', ({ entry }) => void entry);
  host.on('result', ({ accepted }) => void accepted);
  host.on('job', ({ deliveries }) => void deliveries);
  host.on('reconnected', () => undefined);
  host.on('broadcast', ({ reached, id }) => { const r: number = reached + id; void r; });
  const everywhere: number = await producer.broadcast({ salt: 'x' });
  void everywhere;
  const s = host.stats();
  const n: number = s.completed + s.dropped + s.lost + s.cancelled + s.failed + s.dead + s.taken + host.running + host.slots;
  const name: string = host.name;
  void n; void name;
  await host.close();
  await startWorkerHost({ redis: 'rediss://h:1', tls: { ca: 'PEM', cert: Buffer.from('PEM'), key: 'PEM' }, queue: 'q', command: ['./worker'] });
  const tls: RedisTlsOptions = { ca: 'PEM' };
  void new Pool({ redis: 'rediss://h:1', tls, queue: 'q' });
  const e = new PoolError();
  const where: string | undefined = e.host;
  const times: number | undefined = e.deliveries;
  void where; void times;
}
void useRedis;
// @ts-expect-error a producer takes no module
new Pool({ redis: 'redis://h:1', queue: 'q', module: 'a.js' });
// @ts-expect-error queue is required
new Pool({ redis: 'redis://h:1' });
