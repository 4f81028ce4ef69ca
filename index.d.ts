// Type definitions for comrade's public API (hand-written; the generated binding.d.ts types
// the internal native layer only).

import { EventEmitter } from 'node:events';

/** Options of the compute-cluster-compatible constructor. */
export interface ComputeClusterOptions {
  /** Path of the worker script (required; must exist). */
  module: string;
  /** Most worker processes. Default: `Math.ceil(os.cpus().length * 1.25)`. */
  max_processes?: number;
  /** Most jobs waiting for a worker; any negative value means no limit. Default: `10 * max_processes`. */
  max_backlog?: number;
  /** Reject a job expected to take longer than this many seconds (after a warm-up). Default: 0 (off). */
  max_request_time?: number;
}

/**
 * Node-style callback of a compute-cluster job. Errors are strings, as in compute-cluster.
 */
export type ComputeClusterCallback<R = any> = (err: string | null, result?: R) => void;

/**
 * A drop-in replacement for the npm package compute-cluster@0.0.9, on the comrade engine.
 * May be called with or without `new`. Validation failures throw strings.
 */
export interface ComputeCluster extends EventEmitter {
  /** Runs `args` (any JSON value) on a worker; the worker's reply is passed to `cb`. */
  enqueue<R = any>(args: unknown, cb?: ComputeClusterCallback<R>): this;
  /** Stops every worker; `cb(null)` runs once all have exited. */
  exit(cb?: (err: null) => void): this;

  on(event: 'error', listener: (message: string) => void): this;
  on(event: 'info', listener: (message: string) => void): this;
  on(event: 'debug', listener: (message: string) => void): this;
  on(event: string | symbol, listener: (...args: any[]) => void): this;
  once(event: 'error' | 'info' | 'debug', listener: (message: string) => void): this;
  once(event: string | symbol, listener: (...args: any[]) => void): this;
}

export interface ComputeClusterConstructor {
  new (options: ComputeClusterOptions): ComputeCluster;
  (options: ComputeClusterOptions): ComputeCluster;
  readonly prototype: ComputeCluster;
}

export declare const ComputeCluster: ComputeClusterConstructor;

// ---------------------------------------------------------------------------------------------
// The modern Pool
// ---------------------------------------------------------------------------------------------

/** Codes of the errors the pool itself raises (workers' own errors keep their own `code`). */
export declare const codes: {
  readonly INVALID_OPTION: 'ERR_INVALID_OPTION';
  readonly INVALID_ARGUMENT: 'ERR_INVALID_ARGUMENT';
  readonly POOL_CLOSED: 'ERR_POOL_CLOSED';
  readonly POOL_TERMINATED: 'ERR_POOL_TERMINATED';
  readonly BACKLOG_FULL: 'ERR_BACKLOG_FULL';
  readonly EXPECTED_WAIT: 'ERR_EXPECTED_WAIT';
  readonly UNSERIALIZABLE: 'ERR_UNSERIALIZABLE';
  readonly MESSAGE_TOO_LARGE: 'ERR_MESSAGE_TOO_LARGE';
  readonly WORKER_EXITED: 'ERR_WORKER_EXITED';
  readonly WORKER_INIT_FAILED: 'ERR_WORKER_INIT_FAILED';
  readonly SPAWN_FAILED: 'ERR_SPAWN_FAILED';
  readonly JOB_TIMEOUT: 'ERR_JOB_TIMEOUT';
  readonly QUEUE_TIMEOUT: 'ERR_QUEUE_TIMEOUT';
  readonly TOTAL_TIMEOUT: 'ERR_TOTAL_TIMEOUT';
  /** The `code` of an abort's error, a DOMException named AbortError (not a PoolError). */
  readonly ABORTED: 'ABORT_ERR';
  /** Raised in the worker: it has no function of that name (or no default function). */
  readonly UNKNOWN_FUNCTION: 'ERR_UNKNOWN_FUNCTION';
  /** Raised in a Node worker: the function's result cannot be sent as JSON. */
  readonly UNSERIALIZABLE_RESULT: 'ERR_UNSERIALIZABLE_RESULT';
  readonly RESULT_TOO_LARGE: 'ERR_RESULT_TOO_LARGE';
  readonly INTERNAL: 'ERR_INTERNAL';
  /** A queue on Redis: Redis unreachable, credentials refused, or its state lost. Never holds the credentials. */
  readonly REDIS: 'ERR_REDIS';
  /** `broadcast()`: the onMessage handler of at least one worker threw or rejected (see `reached`, `failures`). */
  readonly BROADCAST_FAILED: 'ERR_BROADCAST_FAILED';
};

export type PoolErrorCode = (typeof codes)[keyof typeof codes];

/**
 * An error raised by the pool (not thrown by a worker's function): every one has a code of
 * `codes`. The one exception is an abort, which rejects with a DOMException named AbortError
 * (`code` ABORT_ERR, `cause` the signal's reason), as the web platform's APIs do.
 */
export declare class PoolError extends Error {
  readonly name: 'PoolError';
  code: PoolErrorCode;
  /** ERR_WORKER_EXITED, ERR_WORKER_INIT_FAILED, ERR_POOL_TERMINATED: the worker's pid. */
  pid?: number;
  /** The worker's exit code, or null when a signal ended it. */
  exitCode?: number | null;
  /** The signal that ended the worker (`'SIGKILL'`), or null. */
  signal?: string | null;
  /** ERR_BACKLOG_FULL: the limit. */
  maxBacklog?: number;
  /** ERR_MESSAGE_TOO_LARGE: the limit, in bytes. */
  maxMessage?: number;
  /** ERR_EXPECTED_WAIT: the expected completion time, in ms. */
  expectedWait?: number;
  /** ERR_WORKER_INIT_FAILED: the worker's own error (module load or init), when it sent one. */
  cause?: unknown;
  /** A queue on Redis: the worker host (its name) the job ran on, or was last delivered to. */
  host?: string;
  /** ERR_WORKER_EXITED from a queue on Redis: how many times the job was delivered. */
  deliveries?: number;
  /** ERR_REDIS: the Redis URL, its password redacted. */
  url?: string;
  /** ERR_BROADCAST_FAILED: the workers that acknowledged the message, those whose handler failed included. */
  reached?: number;
  /** ERR_BROADCAST_FAILED: each worker whose onMessage handler failed, and its error (rebuilt as a job's error is); on a queue on Redis, also its worker host (`pid` null: the host refused the message itself). */
  failures?: Array<{ pid: number | null; error: Error; host?: string | null }>;
}

interface PoolCommonOptions {
  /** The pool's name: the `pool` label of `metrics()`, the title on the status page. Default: `'default'`. */
  name?: string;
  /** Most worker processes. Default: `Math.ceil(cpus * 1.25)`. */
  maxWorkers?: number;
  /** Most workers while a `map()` with a `finishBy` runs behind it (the swarm seed's sprint); an integer from maxWorkers to 1024. Default: maxWorkers (no growth). */
  burstWorkers?: number;
  /** Workers kept running even when idle; they start with the pool. Default: 0. */
  minWorkers?: number;
  /** The pool grows by at most one worker per this many ms (workers up to `minWorkers`, and the first, start at once). Default: 100. */
  spawnDelay?: number;
  /** Stop a worker idle for this many ms, unless that leaves fewer than `minWorkers`; 0 or Infinity: never. Default: 10000. */
  idleTimeout?: number;
  /** Replace a worker after it completed this many jobs. Default: off. */
  maxJobsPerWorker?: number;
  /** Replace a worker whose resident memory exceeds this many bytes (checked each second). Default: off. */
  maxRss?: number;
  /** Pin worker i to CPU i (Linux). Default: false. */
  affinity?: boolean;
  /** Added to each worker's nice value (an integer 0–19): lower CPU priority than the parent. Default: 0. */
  niceIncrement?: number;
  /** Times a job is run again on another worker if its worker dies while holding it. Default: 0. */
  retries?: number;
  /** Longest run time of a job on a worker, in ms; the worker is then killed and replaced (ERR_JOB_TIMEOUT). Default: off. */
  timeout?: number;
  /** Most jobs in flight on one worker at once (answered in any order). Default: 1. */
  concurrency?: number;
  /** Longest a job waits for a worker, in ms (proletariat's EATO): past it the job rejects with ERR_QUEUE_TIMEOUT, never runs, and the pool emits `'queueTimeout'`. A retried job waits anew (counted from its return to the queue). Infinity: none. Default: none. */
  queueTimeout?: number;
  /** Longest time from the call to the job's settlement, in ms, retries included (proletariat's ECSTO): a waiting job is withdrawn, a running one cancelled as after an abort (killed and replaced after `cancelGraceMs`); it rejects with ERR_TOTAL_TIMEOUT and the pool emits `'totalTimeout'`. Infinity: none. Default: none. */
  totalTimeout?: number;
  /** A job's priority when `run()`/`exec()` give none (a finite number): higher runs sooner, equal ones first come first served. Default: 0. */
  priority?: number;
  /**
   * Guaranteed slots per priority range (proletariat's `prioritySlots`): `{ from: slots }`, each
   * key a priority >= 0 starting a range, each value an integer >= 0. The pool's slots are
   * `maxWorkers × concurrency`; the lowest range (below the first key, negative priorities too)
   * has the slots the others do not guarantee. A range's cap (most of its jobs in flight) is
   * its slots plus those of every range below it, or with `sacredGuarantees` its slots plus the
   * lowest range's. A job over its range's cap waits, even with slots free; the next job taken
   * is the highest-priority one whose range is under its cap. Guarantees beyond the slots:
   * ERR_INVALID_OPTION. Default: none (no caps).
   */
  prioritySlots?: Record<number, number>;
  /** `needsDrain` is true while at least this many jobs wait for a worker; `'drain'` fires when they drop back below. An integer >= 1. Default: maxWorkers × concurrency. */
  drainThreshold?: number;
  /** With `prioritySlots`, a higher range borrows only from the lowest range (proletariat's `SACRED_GUARANTEES`). Default: false. */
  sacredGuarantees?: boolean;
  /**
   * How free slots are shared among the requestor groups (a job's `group`; jobs without one
   * count as one group). `'fifo'`: the queue's order. `'round-robin'`: the groups whose best
   * waiting job has the highest waiting priority take turns, so one group's big batch cannot
   * starve another group's single job. Default: 'fifo'.
   */
  fairness?: 'fifo' | 'round-robin';
  /** A worker that last served group G takes G's best waiting job first (unless the queue's next job has a higher priority), otherwise the head of the queue. Default: false. */
  groupAffinity?: boolean;
  /**
   * Which worker with a free slot takes a job: `'least-busy'` (the fewest jobs in flight, an
   * idle one first), `'round-robin'` (in turn), `'random'` (weighted by free slots), or a
   * function `selectWorker(job, workers)` (proletariat's `workSelectWorker`), called on the JS
   * thread when the job is submitted: the pid it returns is the worker the job goes to when it
   * is dispatched, if that worker has a free slot then; `undefined` (or a busy worker then):
   * the default strategy. A function that throws or returns a pid it was not shown: the
   * default, and the pool emits `'warning'`. Default: 'least-busy'.
   */
  strategy?: 'least-busy' | 'round-robin' | 'random' | SelectWorker;
  /** Passed to each worker's `init(initData)` before its first job (any JSON value). */
  initData?: unknown;
  /** Variables added to the workers' environment. */
  env?: Record<string, string | number | boolean | undefined>;
  /** Working directory of the workers. */
  cwd?: string;
  /** Most jobs waiting for a worker; more are refused with ERR_BACKLOG_FULL. Default: Infinity. */
  maxBacklog?: number;
  /** Refuse (ERR_EXPECTED_WAIT) a job expected to complete later than this many ms from now. */
  maxExpectedWait?: number;
  /** Longest message, in bytes, accepted from a worker or sent to one (larger arguments: ERR_MESSAGE_TOO_LARGE). Default: 64 MiB. */
  maxMessage?: number;
  /** Milliseconds between SIGTERM and SIGKILL when a worker is stopped. Default: 5000. */
  killGraceMs?: number;
  /** Milliseconds a worker has to answer a job cancelled while it runs (an abort, a timeout) before it is killed; 0 kills it at once. Default: 1000. */
  cancelGraceMs?: number;
}

export interface PoolModuleOptions extends PoolCommonOptions {
  /** A Node module (CommonJS or ESM) exporting a function, or an object of named functions. */
  module: string | URL;
  command?: never;
  /** Node flags for the workers. Default: the parent's, minus --inspect/--test/--watch. */
  execArgv?: string[];
  /**
   * How arguments and results travel: `'json'`, or `'advanced'` (`v8.serialize`, the structured
   * clone algorithm: Map, Set, Date, RegExp, BigInt, typed arrays, cycles and undefined survive).
   * In both, binaries (`Buffer`, typed arrays, `ArrayBuffer`) travel as raw bytes. Default: `'json'`.
   */
  serialization?: 'json' | 'advanced';
}

export interface PoolCommandOptions extends PoolCommonOptions {
  /** An executable speaking docs/PROTOCOL.md, with its arguments: `['./worker', '--fast']`. */
  command: string | string[];
  module?: never;
  /** A command worker speaks JSON (with binary attachments): only `'json'`. */
  serialization?: 'json';
}

export type PoolOptions = PoolModuleOptions | PoolCommandOptions;

/**
 * A producer of a queue on Redis (docs/REDIS.md): its jobs run on worker hosts
 * (`comrade worker`), its results come back to it only. Any other Pool option is refused
 * (ERR_INVALID_OPTION).
 */
/** TLS material for a `rediss://` URL, PEM text: `ca` (default: the system's trusted roots), and a client certificate `cert` with its `key` for a server that asks for one. */
export interface RedisTlsOptions {
  ca?: string | Buffer;
  cert?: string | Buffer;
  key?: string | Buffer;
}

export interface PoolRedisOptions {
  /** `redis://[user:password@]host:port[/db]`, or `rediss://` for TLS. */
  redis: string;
  /** TLS material for a `rediss://` URL. */
  tls?: RedisTlsOptions;
  /** The queue's name: 1 to 200 bytes, no braces or control characters. */
  queue: string;
  /** Times a job is delivered again when its host dies or stops answering past its lease. Default: 0. */
  retries?: number;
  /** A job's run timeout on its host, in ms. Default: off. */
  timeout?: number;
  /** A job's priority when run()/exec() give none: higher is taken sooner. Default: 0. */
  priority?: number;
  /** Longest arguments (refused before queueing) and result (refused when it comes back), in bytes. Default: 64 MiB. */
  maxMessage?: number;
  /** Most jobs waiting in the whole queue (from every producer) when this producer queues one; past it: ERR_BACKLOG_FULL. Default: Infinity. */
  maxBacklog?: number;
  /** Refuse a job expected to complete later than this many ms (ERR_EXPECTED_WAIT): (jobs waiting in the queue / the live hosts' slots + 1) × the mean of the queue's newest 100 run times, once twice the slots in run times are recorded. Default: off. */
  maxExpectedWait?: number;
  /** This producer's keys expire this many ms after its last heartbeat (every lease / 3): its results are then dropped. Default: 30000. */
  lease?: number;
  /** Longest a job waits in the queue for a worker host, in ms: past it the job is withdrawn, never runs, and rejects with ERR_QUEUE_TIMEOUT (no host takes it past its deadline, kept in Redis's clock). A job's own `queueTimeout` overrides it. Default: none. */
  queueTimeout?: number;
  /** Longest from the call to the settlement, in ms: past it the job rejects with ERR_TOTAL_TIMEOUT, withdrawn from the queue or cancelled on the host that runs it. A job's own `totalTimeout` overrides it. Default: none. */
  totalTimeout?: number;
  /** Guaranteed slots per priority range, `{ from: slots }`, as Pool's, over the cluster's slots (those of every live worker host). One queue has one policy: a producer with another one has its jobs refused (ERR_INVALID_OPTION). Default: none. */
  prioritySlots?: Record<number, number>;
  /** With `prioritySlots`, a higher range borrows only from the lowest range. Default: false. */
  sacredGuarantees?: boolean;
  module?: never;
  command?: never;
}

/** A job's own options, for `exec()` and `run()`. Any other key is refused (ERR_INVALID_OPTION). */
export interface JobOptions<P = unknown> {
  /** Receives each `progress(value)` the job reports, in order, before it settles. */
  onProgress?: (value: P) => void;
  /** Aborting withdraws a queued job; a running one is cancelled (its worker is sent a cancel, and killed and replaced if it has not stopped the job within `cancelGraceMs`). Rejects at once with an AbortError: a DOMException, `code` ABORT_ERR, `cause` the signal's reason. */
  signal?: AbortSignal;
  /** This job's run timeout in ms (overrides the pool's `timeout`). */
  timeout?: number;
  /** This job's retries (overrides the pool's `retries`). */
  retries?: number;
  /** This job's priority, a finite number (overrides the pool's `priority`): higher runs sooner; a retried job goes back to the head of its priority. */
  priority?: number;
  /**
   * Coalescing (proletariat's `_key`), a non-empty string: while a job of the same function and
   * key is queued or running, this one joins it instead of running, and settles with its outcome
   * (its own copy of the value, or an Error of the same shape). The shared job runs with the
   * options of the caller that started it; a caller that aborts (or, having joined, passes its
   * own `timeout`) detaches alone; the shared job is cancelled when every caller has gone.
   */
  key?: string;
  /** This job's queue timeout in ms (overrides the pool's `queueTimeout`; Infinity: none). */
  queueTimeout?: number;
  /** This job's total timeout in ms, from this call to its settlement (overrides the pool's `totalTimeout`; Infinity: none). */
  totalTimeout?: number;
  /** The requestor this job runs for (a non-empty string), for `fairness` and `groupAffinity`. Default: none. */
  group?: string;
}

/** `run()`'s options: a job's own options, and the function to run. */
export interface RunOptions<P = unknown> extends JobOptions<P> {
  /** A named function instead of the default one. */
  name?: string;
}

/** What `onProgress` of `map()`/`mapSettled()` reports. */
export interface BatchProgress {
  /** Items settled, either way. */
  done: number;
  /** Items among them that failed. */
  failed: number;
  /** The number of items: known from the start for an array, typed array, Set or Map; for any other iterable, null until it is exhausted (the last report always has it). */
  total: number | null;
}

/** The options of `map()` and `mapSettled()`: each item's job options, and the batch's own. */
export interface MapOptions<T = unknown, R = unknown> extends Omit<JobOptions, 'onProgress' | 'key'> {
  /** A named function instead of the default one. */
  name?: string;
  /** Most items accepted and unsettled at once (queued or running); the next is pulled as one settles. Default: 4 × maxWorkers × concurrency (a producer on Redis: 1024). */
  window?: number;
  /** false: keep no results; the batch resolves with the last `BatchProgress` instead. Default: true. */
  collect?: boolean;
  /** Each item as it settles (proletariat's `workIndividual`), in the context of the map() call. */
  onResult?: (err: Error | null, value: R | undefined, index: number) => void;
  /** After each item settles: how far the batch is. */
  onProgress?: (progress: BatchProgress) => void;
  /** Coalescing for each item: one key for all, or a function of the item (undefined: none). A producer on Redis refuses it (ERR_INVALID_OPTION). */
  key?: string | ((item: T, index: number) => string | undefined);
  /** The batch's deadline (ms since the epoch, or a Date; must be in the future): the pool grows up to `burstWorkers` while its recent run times say it would finish later. Default: none. A producer on Redis refuses it (ERR_INVALID_OPTION): it steers local workers. */
  finishBy?: number | Date;
  /** With `finishBy`, for idempotent functions: near the deadline, an item running longer than twice the batch's recent p90 is started again on an idle worker; the first outcome wins, the other copy is cancelled. Default: false. A producer on Redis refuses it (ERR_INVALID_OPTION). */
  speculate?: boolean;
}

/** One item's outcome in `mapSettled()`. */
export type MapSettledResult<R> =
  | { status: 'fulfilled'; value: R }
  | { status: 'rejected'; reason: Error };

/** `exec()`'s options: a job's own options (the function's name is exec's first argument). */
export type ExecOptions<P = unknown> = JobOptions<P> & { name?: never };

export interface WorkerStats {
  pid: number;
  state: 'starting' | 'idle' | 'busy' | 'stopping';
  jobsDone: number;
  jobsInFlight: number;
  /** Resident memory in bytes, or null if it cannot be read. */
  rss: number | null;
  /** The CPU it is pinned to (`affinity`), or null. */
  cpu: number | null;
}

export interface Percentiles {
  p50: number;
  p90: number;
  p99: number;
  /** How many recent jobs the percentiles cover. */
  samples: number;
}

export interface PoolStats {
  workers: WorkerStats[];
  /** Jobs waiting for a worker: in the engine's queue (waiting for a worker to start, too) or submitted in this tick. */
  queued: number;
  /** Jobs on workers. */
  inFlight: number;
  /** Jobs accepted and not settled (queued, in flight, or about to be submitted). */
  pending: number;
  /** Jobs whose function returned. */
  completed: number;
  /** Jobs whose function threw. */
  errored: number;
  /** Jobs the pool failed (worker exit, timeout, close...). */
  failed: number;
  /** Times a job was re-run after its worker died. */
  retried: number;
  /** Jobs refused at submission. */
  rejected: number;
  /** Jobs their AbortSignal withdrew (queued or running), or refused because it was aborted already. */
  aborted: number;
  /** Jobs that ran past their timeout (ERR_JOB_TIMEOUT; also counted in `failed`), and callers of a shared job (`key`) that waited past theirs. */
  timedOut: number;
  /** Jobs with a `key` that joined a shared job instead of running, since the start. */
  coalesced: number;
  /** Jobs that waited past their `queueTimeout` (ERR_QUEUE_TIMEOUT; also counted in `failed`). */
  queueTimedOut: number;
  /** Jobs not settled within their `totalTimeout` (ERR_TOTAL_TIMEOUT; also counted in `failed`). */
  totalTimedOut: number;
  /** Completions per second over the last ten seconds (over the time since the start while that is shorter, counted as at least one second). */
  throughput: number;
  /** Time from submission to a worker, in ms, over recent jobs (null before any). */
  waitTime: Percentiles | null;
  /** Time on a worker, in ms, over recent jobs (null before any). */
  runTime: Percentiles | null;
}

/** What a custom `strategy` function is shown of a job. */
export interface SelectWorkerJob {
  /** The function's name (null: the default function). */
  name: string | null;
  /** Its arguments (`run(task)`: `[task]`). */
  args: unknown[];
  group: string | null;
  priority: number;
}

/** What a custom `strategy` function is shown of each worker that takes work (spawn order). */
export interface WorkerLoad {
  pid: number;
  /** Jobs it holds now. */
  inFlight: number;
  jobsDone: number;
  /** The group of the job it was last given, while that group has live jobs; else null. */
  group: string | null;
}

/** A custom worker selection: the pid of the worker `job` should go to, or undefined for the default strategy. */
export type SelectWorker = (job: SelectWorkerJob, workers: WorkerLoad[]) => number | undefined;

/** `'warning'`: a custom `strategy` threw (`cause`) or returned a pid it was not shown; the default strategy chose instead. */
export interface PoolWarning {
  message: string;
  cause?: unknown;
}

/** `'queueTimeout'`: a job waited past its `queueTimeout` (it rejected with ERR_QUEUE_TIMEOUT). */
export interface QueueTimeoutInfo {
  /** The job's function (null: the default one). */
  name: string | null;
  /** How long it waited for a worker, in ms. */
  waitedMs: number;
}

/** `'totalTimeout'`: a job was not settled within its `totalTimeout` (it rejected with ERR_TOTAL_TIMEOUT). */
export interface TotalTimeoutInfo {
  /** The job's function (null: the default one). */
  name: string | null;
  /** The worker it was cancelled on, or null if it was still waiting. */
  pid: number | null;
  /** A producer of a queue on Redis: the worker host it was cancelled on, or null. */
  host?: string | null;
}

/**
 * The context object of a job's events on the `comrade:job` TracingChannel
 * (`require('node:diagnostics_channel').tracingChannel('comrade:job')`): one object per job,
 * through start, end, error, asyncStart and asyncEnd.
 */
export interface JobTraceContext {
  /** The pool's `name`. */
  pool: string;
  /** The function the job named, or null for the default function. */
  function: string | null;
  /** The job's id in its pool. */
  jobId: number;
  /** The worker it was last sent to (null until it was sent). */
  pid: number | null;
  /** Submission to being written to its worker (the last attempt), in ms; null until then. */
  waitMs: number | null;
  /** Written to its worker to its answer, in ms; null if no worker answered (a timeout, a crash). */
  runMs: number | null;
  /** Set it (a W3C traceparent) in a `start` subscriber to have it sent with the call to the worker. */
  traceparent: string | null;
  /** What the job returned (asyncStart, asyncEnd). */
  result?: unknown;
  /** Why the job failed (error, asyncStart, asyncEnd). */
  error?: unknown;
}

/** A job's error as the status page lists it (`StatusSnapshot.errors`). */
export interface StatusError {
  /** When it failed, ms since the epoch. */
  time: number;
  /** The function the job named, or null for the default function. */
  function: string | null;
  name: string;
  code: string | null;
  message: string;
  /** The worker's pid, when the error says it (a worker exit, a timeout). */
  pid: number | null;
}

/** A worker exit as the status page lists it (`StatusSnapshot.exits`). */
export interface StatusExit {
  time: number;
  pid: number;
  reason: WorkerExitReason;
  code: number | null;
  signal: string | null;
  expected: boolean;
}

/** One pool in the status page's JSON (`?format=json`: `{ time, pools: StatusSnapshot[] }`). */
export interface StatusSnapshot {
  name: string;
  stats: PoolStats;
  /** One sample a second over the last 5 minutes, oldest first: time (ms since the epoch), queue depth, jobs settled per second. */
  history: { intervalMs: number; t: number[]; queued: number[]; throughput: number[] };
  /** The last 50 job errors (thrown, timed out, worker died...), oldest first. */
  errors: StatusError[];
  /** The last 50 worker exits, oldest first. */
  exits: StatusExit[];
}

/** A plain `(req, res)` handler, for `node:http` and Express. */
export type StatusHandler = (req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse) => void;

/** Physical cores and execution units (logical CPUs) of this machine. */
export declare function ncpu(): { physical: number; logical: number };

/**
 * Why a worker ended: `'crash'` (nobody asked: it died, or its channel broke), `'idle'`
 * (`idleTimeout`), `'recycled'` (`maxJobsPerWorker`), `'retired'` (it called `retire()`),
 * `'memory'` (`maxRss`), `'timeout'` (killed for a job's timeout), `'aborted'` (killed for an
 * aborted job), `'protocol'` (killed for breaking the protocol), `'shutdown'` (`close()`,
 * `terminate()`).
 */
export type WorkerExitReason =
  | 'crash' | 'idle' | 'recycled' | 'retired' | 'memory' | 'timeout' | 'aborted' | 'protocol'
  | 'shutdown';

export interface WorkerExitInfo {
  pid: number;
  code: number | null;
  signal: string | null;
  /** The pool ended it, for any reason but a crash: false only when `reason` is `'crash'`. */
  expected: boolean;
  reason: WorkerExitReason;
}

type AnyFn = (...args: any[]) => any;
type FnNames<F> = { [K in keyof F]: F[K] extends AnyFn ? K : never }[keyof F] & string;
type DefaultArg<F> = F extends AnyFn ? Parameters<F>[0] : F extends { default: AnyFn } ? Parameters<F['default']>[0] : any;
type DefaultResult<F> = F extends AnyFn ? Awaited<ReturnType<F>> : F extends { default: AnyFn } ? Awaited<ReturnType<F['default']>> : any;
/** The parameters of the module's function `K`. */
type ArgsOf<F, K extends keyof F> = F[K] extends AnyFn ? Parameters<F[K]> : any[];
/** What the module's function `K` returns, awaited. */
type ResultOf<F, K extends keyof F> = F[K] extends AnyFn ? Awaited<ReturnType<F[K]>> : any;
/** `exec()`'s arguments after the name: the args array (optional when the function needs none), then options. */
type ExecRest<A extends readonly unknown[]> = [] extends A
  ? [args?: Readonly<A> | null, options?: ExecOptions]
  : [args: Readonly<A>, options?: ExecOptions];
/** `run()`'s `name` when the module is not described (any name), or when it is (none: the default function). */
type DefaultName<F> = string extends FnNames<F> ? string | null : null;

/**
 * A pool of worker processes. `F` may describe the worker module's exports
 * (`new Pool<typeof import('./tasks')>(...)`) to type `exec()`, `call()` and `run()` (by
 * `options.name`, or the default function).
 */
export declare class Pool<F = any> extends EventEmitter {
  constructor(options: PoolOptions);
  /** A producer of a queue on Redis: run/exec/call/enqueue go to the queue (a job's `signal` withdraws it, or cancels it on the host that runs it; its `onProgress` gets the reports sent from that host). */
  constructor(options: PoolRedisOptions);
  /** Runs the function `options.name` with `task` as its one argument. */
  run<K extends FnNames<F>>(
    task: F[K] extends AnyFn ? Parameters<F[K]>[0] : any,
    options: RunOptions & { name: K },
  ): Promise<ResultOf<F, K>>;
  /** Runs the default function with `task` as its one argument. */
  run<R = DefaultResult<F>>(task: DefaultArg<F>, options?: RunOptions & { name?: DefaultName<F> }): Promise<R>;
  /** Runs the named function with the array `args` as its arguments (workerpool's order). */
  exec<K extends FnNames<F>>(name: K, ...rest: ExecRest<ArgsOf<F, K>>): Promise<ResultOf<F, K>>;
  /** Runs the named function with positional arguments. */
  call<K extends FnNames<F>>(
    name: K,
    ...args: F[K] extends AnyFn ? Parameters<F[K]> : any[]
  ): Promise<F[K] extends AnyFn ? Awaited<ReturnType<F[K]>> : any>;
  /**
   * Runs the function `options.name` on each item of an iterable or async iterable, pulled
   * through a bounded window; resolves with the results in input order, or rejects with the
   * first error, after withdrawing the items not started and cancelling the running ones.
   */
  map<K extends FnNames<F>>(
    items: Iterable<F[K] extends AnyFn ? Parameters<F[K]>[0] : any> | AsyncIterable<F[K] extends AnyFn ? Parameters<F[K]>[0] : any>,
    options: MapOptions<F[K] extends AnyFn ? Parameters<F[K]>[0] : any, ResultOf<F, K>> & { name: K; collect?: true },
  ): Promise<ResultOf<F, K>[]>;
  map<K extends FnNames<F>>(
    items: Iterable<F[K] extends AnyFn ? Parameters<F[K]>[0] : any> | AsyncIterable<F[K] extends AnyFn ? Parameters<F[K]>[0] : any>,
    options: MapOptions<F[K] extends AnyFn ? Parameters<F[K]>[0] : any, ResultOf<F, K>> & { name: K; collect: false },
  ): Promise<BatchProgress>;
  /** The same with the default function. */
  map<R = DefaultResult<F>>(
    items: Iterable<DefaultArg<F>> | AsyncIterable<DefaultArg<F>>,
    options?: MapOptions<DefaultArg<F>, R> & { name?: DefaultName<F>; collect?: true },
  ): Promise<R[]>;
  map<R = DefaultResult<F>>(
    items: Iterable<DefaultArg<F>> | AsyncIterable<DefaultArg<F>>,
    options: MapOptions<DefaultArg<F>, R> & { name?: DefaultName<F>; collect: false },
  ): Promise<BatchProgress>;
  /** As `map()`, but never fails for an item: resolves with every item's outcome, in input order. */
  mapSettled<K extends FnNames<F>>(
    items: Iterable<F[K] extends AnyFn ? Parameters<F[K]>[0] : any> | AsyncIterable<F[K] extends AnyFn ? Parameters<F[K]>[0] : any>,
    options: MapOptions<F[K] extends AnyFn ? Parameters<F[K]>[0] : any, ResultOf<F, K>> & { name: K; collect?: true },
  ): Promise<MapSettledResult<ResultOf<F, K>>[]>;
  mapSettled<R = DefaultResult<F>>(
    items: Iterable<DefaultArg<F>> | AsyncIterable<DefaultArg<F>>,
    options?: MapOptions<DefaultArg<F>, R> & { name?: DefaultName<F>; collect?: true },
  ): Promise<MapSettledResult<R>[]>;
  mapSettled(
    items: Iterable<unknown> | AsyncIterable<unknown>,
    options: MapOptions & { collect: false },
  ): Promise<BatchProgress>;
  /** Runs the default function; `cb` runs once, in the caller's async context. */
  enqueue<R = DefaultResult<F>>(task: DefaultArg<F>, cb: (err: Error | null, result?: R) => void): this;
  /**
   * Sends `message` (any JSON value; `undefined` is null) to the onMessage handlers of every live
   * worker (comrade-pool/worker; the Rust crate's `Worker::on_message`; the Python example's
   * `@worker.on_message`), between jobs. Resolves with the number of workers that acknowledged
   * it, once every worker live now has: a worker that dies, retires or is stopped first is not
   * waited for nor counted; one started later does not get it; none live: 0 at once. Rejects
   * with ERR_BROADCAST_FAILED when a handler threw (`reached`, `failures`), ERR_POOL_CLOSED after
   * close()/terminate(), ERR_UNSERIALIZABLE (not JSON, or binary data), ERR_MESSAGE_TOO_LARGE
   * (over maxMessage).
   */
  broadcast(message: unknown): Promise<number>;
  /** Lets every accepted job finish, then stops the workers; resolves when all are reaped. */
  close(): Promise<void>;
  /** Stops now: unsettled jobs reject with ERR_POOL_TERMINATED; resolves when all are reaped. */
  terminate(): Promise<void>;
  /** Pids of the live workers. */
  readonly pids: number[];
  /** Jobs accepted and not yet settled. */
  readonly pending: number;
  /** Whether at least `drainThreshold` jobs wait for a worker: hold new work until `'drain'`. */
  readonly needsDrain: boolean;
  readonly drainThreshold: number;
  readonly maxWorkers: number;
  /** The most workers while a `map()` with a `finishBy` runs behind (maxWorkers: no growth). */
  readonly burstWorkers: number;
  readonly minWorkers: number;
  readonly concurrency: number;
  /** Workers, queue, totals, throughput and wait/run time percentiles. */
  stats(): PoolStats;
  /** The `name` option. */
  readonly name: string;
  /** Prometheus text exposition (format 0.0.4) of the pool's counters, gauges and histograms. */
  metrics(): string;
  /** `metrics()` of several pools in one text (one HELP and TYPE per metric). */
  static metrics(pools: Pool<any> | readonly Pool<any>[]): string;
  /** The content type to serve `metrics()` with: `'text/plain; version=0.0.4; charset=utf-8'`. */
  static readonly METRICS_CONTENT_TYPE: string;
  /** A read-only live status page for this pool: HTML, or JSON with `?format=json`. */
  statusHandler(): StatusHandler;
  /** One status page for several pools. */
  static statusHandler(pools: Pool<any> | readonly Pool<any>[]): StatusHandler;

  on(event: 'event', listener: (name: string, data: unknown, pid: number) => void): this;
  on(event: 'workerSpawn' | 'workerRetire', listener: (worker: { pid: number }) => void): this;
  on(event: 'workerExit', listener: (info: WorkerExitInfo) => void): this;
  on(event: 'protocolError', listener: (info: { pid: number; message: string }) => void): this;
  /** The jobs waiting for a worker dropped below `drainThreshold` (after they reached it). */
  on(event: 'drain', listener: () => void): this;
  on(event: 'queueTimeout', listener: (info: QueueTimeoutInfo) => void): this;
  on(event: 'totalTimeout', listener: (info: TotalTimeoutInfo) => void): this;
  on(event: 'warning', listener: (warning: PoolWarning) => void): this;
  on(event: string | symbol, listener: (...args: any[]) => void): this;
  once(event: 'event', listener: (name: string, data: unknown, pid: number) => void): this;
  once(event: 'workerSpawn' | 'workerRetire', listener: (worker: { pid: number }) => void): this;
  once(event: 'workerExit', listener: (info: WorkerExitInfo) => void): this;
  once(event: 'protocolError', listener: (info: { pid: number; message: string }) => void): this;
  once(event: 'drain', listener: () => void): this;
  once(event: 'queueTimeout', listener: (info: QueueTimeoutInfo) => void): this;
  once(event: 'totalTimeout', listener: (info: TotalTimeoutInfo) => void): this;
  once(event: 'warning', listener: (warning: PoolWarning) => void): this;
  once(event: string | symbol, listener: (...args: any[]) => void): this;
}

// ---------------------------------------------------------------------------------------------
// A worker host of a queue on Redis (`comrade worker`)
// ---------------------------------------------------------------------------------------------

/** What a producer's `queueStats()` reads from Redis: the whole queue, every host's and every producer's jobs. */
export interface QueueStats {
  /** Jobs queued and not taken by a host yet. */
  waiting: number;
  /** Jobs a host took and has not completed. */
  running: number;
  /** Entries in the dead-letter stream. */
  dead: number;
  /** Worker hosts heard from within their lease. */
  hosts: number;
  /** Their slots (workers × concurrency), summed. */
  slots: number;
  /** The mean of the newest 100 run times, in ms (what `maxExpectedWait` estimates with); null before any. */
  meanRunTime: number | null;
  /** Percentiles of the newest 1000 run times (ms on a host's worker), of every function; null before any. */
  runTime: Percentiles | null;
  /** The same per function that has run ('' is the default function). */
  functions: Record<string, Percentiles>;
}

// A producer (`new Pool({ redis, queue })`) also has queueStats().
export interface Pool<F = any> {
  /** A producer of a queue on Redis only: the whole queue's counts. */
  queueStats?(): Promise<QueueStats>;
}

export interface WorkerHostOptions {
  /** `redis://[user:password@]host:port[/db]`, or `rediss://` for TLS. */
  redis: string;
  /** TLS material for a `rediss://` URL. */
  tls?: RedisTlsOptions;
  /** The queue's name. */
  queue: string;
  /** The Node module that runs the jobs (this or `command`). */
  module?: string | URL;
  /** A native worker speaking docs/PROTOCOL.md (this or `module`). */
  command?: string | string[];
  /** Local worker processes, started with the host and kept (a broadcast reaches each). Default: `Math.ceil(cpus * 1.25)`. */
  workers?: number;
  /** Jobs in flight per local worker. Default: 1. */
  concurrency?: number;
  /** A job held by a silent host goes to another host after this many ms; renewed every lease / 4 while it runs. Default: 30000. */
  lease?: number;
  /** Longest wait for work, in ms, before looking again (queued jobs wake the host at once). Default: 1000. */
  poll?: number;
  /** Longest arguments or result of a job, in bytes. Default: 64 MiB. */
  maxMessage?: number;
  /** The local workers' init() argument. */
  initData?: unknown;
  env?: Record<string, string | undefined>;
  cwd?: string;
  /** This host's name in the queue and in errors. Default: `hostname:pid:random`. */
  name?: string;
}

export interface WorkerHostStats {
  name: string;
  running: number;
  slots: number;
  /** Jobs taken since the start. */
  taken: number;
  /** Results accepted. */
  completed: number;
  /** Results dropped: another host owned the job by then. */
  dropped: number;
  /** Running jobs another host took (this one was silent past its lease). */
  lost: number;
  /** Running jobs their producer aborted: aborted here. */
  cancelled: number;
  /** Jobs this host failed for their producer: delivered more times than their retries allow. */
  failed: number;
  /** Malformed entries it moved to the dead-letter stream. */
  dead: number;
}

export interface WorkerHost extends EventEmitter {
  /** Its consumer name, the one errors give. */
  readonly name: string;
  /** Jobs taken and not completed. */
  readonly running: number;
  /** Its free slots at most: workers × concurrency. */
  readonly slots: number;
  stats(): WorkerHostStats;
  /** Stops taking jobs, finishes those it holds, leaves the queue, stops the local workers. */
  close(): Promise<void>;
  on(event: 'job', listener: (info: { entry: string; job: string; deliveries: number }) => void): this;
  on(event: 'result', listener: (info: { entry: string; job: string; accepted: boolean }) => void): this;
  on(event: 'lost', listener: (info: { entry: string; job: string }) => void): this;
  on(event: 'cancel', listener: (info: { entry: string; job: string }) => void): this;
  /** A broadcast this host answered: `reached`, its local workers that acknowledged it. */
  on(event: 'broadcast', listener: (info: { producer: string; id: number; reached: number }) => void): this;
  on(event: 'redisError', listener: (err: PoolError) => void): this;
  on(event: 'reconnected', listener: () => void): this;
  on(event: string | symbol, listener: (...args: any[]) => void): this;
}

/** Starts a worker host (what `comrade worker` runs). Rejects with ERR_REDIS when Redis cannot be reached or refuses the credentials. */
export declare function startWorkerHost(options: WorkerHostOptions): Promise<WorkerHost>;
