'use strict';
// The producer of a queue on Redis: `new Pool({ redis, queue })`. Its jobs go to the shared
// queue and run on the worker hosts (`comrade worker`); their results come back to this
// producer only. docs/REDIS.md has the design; crates/redis-queue does the Redis work.
//
// Calls made in one tick are admitted in one script call. Results are read by one loop that
// runs while jobs are pending.

const { EventEmitter, setMaxListeners } = require('node:events');
const { AsyncResource } = require('node:async_hooks');
const json = require('../json');
const {
  codes, PoolError, argumentError, optionError, unknownOptionError, unserializableError, closedError,
  abortError,
} = require('../errors');
const { resolveOption, OPTIONS, MAX_DURATION_MS, durationMessage, spanOption } = require('../options');
const {
  redactUrl, redisError, checkUrl, checkTls, checkQueue, deserializeError, bytesOver,
} = require('./common');
const { runBatch } = require('../batch');
const { Job } = require('../session');
const { RemoteBroadcasts } = require('./broadcast');
const broadcasts = require('../broadcast');

// The options a producer takes. Every other Pool option is about local workers, or is not
// carried over yet (docs/REDIS.md): refused with ERR_INVALID_OPTION.
const PRODUCER_OPTIONS = [
  'redis', 'tls', 'queue', 'retries', 'timeout', 'priority', 'maxMessage', 'maxBacklog', 'maxExpectedWait',
  'lease', 'queueTimeout', 'totalTimeout', 'prioritySlots', 'sacredGuarantees',
];
const ROW = Object.fromEntries(OPTIONS.map((r) => [r.name, r]));
const LEASE_ROW = Object.freeze({ name: 'lease', type: 'int', range: [100, MAX_DURATION_MS], default: 30000 });
const READ_BLOCK_MS = 1000;
// The codes of a job the host's pool failed (rather than its function threw).
const HOST_FAILURES = new Set([
  codes.WORKER_EXITED, codes.JOB_TIMEOUT, codes.WORKER_INIT_FAILED, codes.SPAWN_FAILED,
  codes.RESULT_TOO_LARGE, codes.POOL_CLOSED, codes.POOL_TERMINATED, codes.INTERNAL,
]);

const binding = () => require('../../binding.js');

// True when `options` asks for a producer (a `redis` option): Pool's constructor returns one.
function isRemote(options) {
  return options !== null && typeof options === 'object' && Object.hasOwn(options, 'redis') &&
    options.redis !== undefined;
}

// What a producer does not offer yet, named.
function notAcrossMachines(what) {
  return optionError(`${what} is not supported with \`redis\`: it is not carried across machines ` +
    'yet (docs/REDIS.md lists what a producer offers)');
}

function resolveProducerOptions(options) {
  for (const key of Object.keys(options)) {
    if (PRODUCER_OPTIONS.includes(key)) continue;
    if (Object.hasOwn(ROW, key) || key === 'selectWorker') {
      throw optionError(`option ${JSON.stringify(key)} is not supported with \`redis\`: ` +
        (key === 'module' || key === 'command'
          ? 'a producer runs nothing itself; the worker hosts (comrade worker) run the module'
          : key === 'selectWorker'
            ? 'a function cannot choose among workers on other machines'
            : 'it applies to local workers, or is not carried across machines yet') +
        ` (a producer takes: ${PRODUCER_OPTIONS.join(', ')})`);
    }
    throw unknownOptionError('option', key, PRODUCER_OPTIONS);
  }
  if (options.queue === undefined) throw optionError('`redis` needs `queue`, the queue\'s name');
  const redis = checkUrl('redis', options.redis);
  return {
    redis,
    tls: checkTls(options.tls, redis),
    queue: checkQueue('queue', options.queue),
    retries: resolveOption(ROW.retries, options, {}),
    timeout: resolveOption(ROW.timeout, options, {}),
    priority: resolveOption(ROW.priority, options, {}),
    maxMessage: resolveOption(ROW.maxMessage, options, {}),
    maxBacklog: resolveOption(ROW.maxBacklog, options, {}),
    maxExpectedWait: resolveOption(ROW.maxExpectedWait, options, {}),
    lease: resolveOption(LEASE_ROW, options, {}),
    queueTimeout: resolveOption(ROW.queueTimeout, options, {}),
    totalTimeout: resolveOption(ROW.totalTimeout, options, {}),
    policy: policyOf(options),
  };
}

// The queue's priority policy from prioritySlots and sacredGuarantees, as the scripts read it:
// `<sacred 0|1>;<from>:<slots>;...`; null without prioritySlots. The slots are the cluster's
// (every live host's), unknown here: only the shape is checked.
function policyOf(options) {
  const pairs = resolveOption(ROW.prioritySlots, options, { maxWorkers: Infinity, concurrency: 1 });
  const sacred = resolveOption(ROW.sacredGuarantees, options, {});
  if (pairs === null) return null;
  let text = sacred ? '1' : '0';
  for (let i = 0; i < pairs.length; i += 2) text += `;${String(pairs[i])}:${pairs[i + 1]}`;
  return text;
}

// The per-job options a producer takes (run: `name` too).
const JOB_OPTIONS = ['onProgress', 'signal', 'timeout', 'retries', 'priority', 'queueTimeout', 'totalTimeout', 'key'];
// map()'s and mapSettled()'s options (lib/batch.js reads the batch's own; onProgress is the
// batch's progress there, not a job's).
const BATCH_OPTIONS = [
  'name', 'signal', 'timeout', 'retries', 'priority', 'queueTimeout', 'totalTimeout', 'window', 'collect', 'onResult', 'onProgress'];
const BATCH_OWN = new Set(['window', 'collect', 'onResult', 'onProgress']);
// A batch's default window is WINDOW_SLOTS x these slots: the hosts' slots are not known here,
// and a window this wide keeps every host of a mid-sized cluster busy while results travel.
const BATCH_SLOTS = 256;
const unlimited = new WeakSet(); // batch signals whose listener limit is lifted

class RemoteJob {
  constructor(local, resolve, reject, cb) {
    this.local = local;
    this.resolve = resolve;
    this.reject = reject;
    this.cb = cb; // enqueue()'s callback, bound to its async context
    this.onProgress = null; // bound to the context of the call that made the job
    this.signal = null; // its AbortSignal, with onAbort listening, until it settles
    this.onAbort = null;
    this.done = false;
    this.admission = null; // a Promise settled once its admission answered (or failed)
    this.timers = []; // its queue, total and (once it joined a shared job) own timeouts
    this.joined = false; // it joined a shared job (same function and key) of any producer
    this.expired = false; // its totalTimeout passed: settled once its withdrawal answers
    this.ownTimeout = 0; // with a key: its own `timeout`, from when it joined a shared job
    this.name = null; // its function's name, for events (null: the default one)
  }

  settle(err, value) {
    if (this.done) return;
    this.done = true;
    for (const t of this.timers) clearTimeout(t);
    if (this.signal !== null) this.signal.removeEventListener('abort', this.onAbort);
    if (this.cb !== null) {
      if (err) this.cb(err);
      else this.cb(null, value);
    } else if (err) {
      this.reject(err);
    } else {
      this.resolve(value);
    }
  }
}

class RemotePool extends EventEmitter {
  #o;
  #url;
  #producer = null; // the binding's RedisProducer once connected
  #connecting = null; // its Promise while connecting
  #jobs = new Map(); // local id -> RemoteJob, admitted (or being admitted) and not settled
  #batch = []; // [RemoteJob, native job] waiting for this tick's admission
  #nextId = 1;
  #state = 'open'; // 'open' | 'closing' | 'closed'
  #reading = false;
  #heartbeat = null;
  #lastBeat = 0;
  #done = null;
  #counts = {
    completed: 0, errored: 0, failed: 0, rejected: 0, timedOut: 0, aborted: 0,
    queueTimedOut: 0, totalTimedOut: 0, coalesced: 0,
  };
  #cancels = []; // local ids of aborted jobs, for this tick's cancel
  #cancelling = Promise.resolve(); // the cancels sent
  #admitting = new Set(); // admissions under way (settled Promises of them)
  #started = Date.now();
  // Completions per 100 ms slot over the last ten seconds, for throughput: constant work per
  // completion, however many complete.
  #slots = new Uint32Array(100);
  #slot = 0; // the last slot (Date.now() / 100) counted in
  #runTime = null; // the whole queue's run-time percentiles, as last read from Redis
  #runTimeAt = -1; // this producer's completed count when they were read
  // broadcast(): lib/remote/broadcast.js; the results loop also runs while one waits.
  #broadcasts = new RemoteBroadcasts(() => this.#connect(), this.#oForBroadcasts(), () => {
    if (this.#broadcasts.size > 0) this.#read();
    else this.#maybeDone();
  });

  constructor(options) {
    super();
    this.#o = resolveProducerOptions(options);
    this.#url = this.#o.redis;
  }

  // The options the broadcasts read, once the constructor has resolved them.
  #oForBroadcasts() {
    const pool = this;
    return {
      get maxMessage() { return pool.#o.maxMessage; },
      get redis() { return pool.#url; },
    };
  }

  /**
   * Sends `message` to every worker of every live worker host; resolves with the number of
   * workers that acknowledged it (see Pool's broadcast(), and docs/REDIS.md).
   */
  broadcast(message) {
    if (this.#state !== 'open') return Promise.reject(broadcasts.closedError());
    return this.#broadcasts.send(message);
  }

  /** The queue's name. */
  get queue() {
    return this.#o.queue;
  }

  /** The Redis URL, its password redacted. */
  get redis() {
    return redactUrl(this.#url);
  }

  run(task, options) {
    return this.#fromOptions(options, 'run', 'run(task, options)', (o) => this.#submit('r', o.name ?? '', task, undefined, o));
  }

  exec(name, args, options) {
    if (typeof name !== 'string') {
      return Promise.reject(argumentError('exec(name, args, options): name must be a string'));
    }
    if (args === undefined || args === null) {
      args = [];
    } else if (!Array.isArray(args)) {
      return Promise.reject(argumentError('exec(name, args, options): args must be an array'));
    }
    return this.#fromOptions(options, 'exec', 'exec(name, args, options)', (o) => this.#submit('x', name, undefined, args, o));
  }

  call(name, ...args) {
    if (typeof name !== 'string') {
      return Promise.reject(argumentError('call(name, ...args): name must be a string'));
    }
    return this.#submit('x', name, undefined, args, {});
  }

  enqueue(task, cb) {
    if (typeof cb !== 'function') throw argumentError('enqueue(task, cb): cb must be a function');
    this.#add('r', '', task, undefined, {}, AsyncResource.bind(cb));
    return this;
  }

  /** Lets every pending job settle, then leaves the queue. */
  close() {
    if (this.#state === 'open') this.#state = 'closing';
    return this.#finish();
  }

  /** Rejects every pending job with ERR_POOL_TERMINATED (their results are ignored), then leaves. */
  terminate() {
    if (this.#state !== 'closed') this.#state = 'closing';
    this.#failAll(new PoolError(codes.POOL_TERMINATED,
      'the pool was terminated before this job\'s result came back'));
    return this.#finish();
  }

  get pending() {
    let waiting = 0;
    for (const [job] of this.#batch) if (!job.done) waiting++;
    return this.#jobs.size + waiting;
  }

  /** No local workers: the worker hosts run the jobs. */
  get pids() {
    return [];
  }

  get maxWorkers() {
    return 0;
  }

  get minWorkers() {
    return 0;
  }

  get concurrency() {
    return 0;
  }

  get burstWorkers() {
    return 0;
  }

  /**
   * Runs the default function (or `options.name`) on each item of `items` on the worker hosts,
   * through a bounded window (lib/batch.js, as Pool's map): resolves with the results in input
   * order, or rejects with the first error after withdrawing (or cancelling) the rest.
   * `finishBy` and `speculate` are refused: they steer local workers.
   */
  map(items, options) {
    return this.#mapItems(items, options, 'map', false);
  }

  /** As map(), but resolves with every item's { status, value | reason }. */
  mapSettled(items, options) {
    return this.#mapItems(items, options, 'mapSettled', true);
  }

  #mapItems(items, options, what, settledMode) {
    if (options !== null && typeof options === 'object') {
      for (const k of ['finishBy', 'speculate']) {
        let v;
        try {
          v = options[k];
        } catch (e) {
          return Promise.reject(argumentError(`${what}(items, options): options cannot be read`, e));
        }
        if (v !== undefined) {
          return Promise.reject(optionError(`${what}(): options.${k} is not supported with \`redis\`: it grows ` +
            'and re-runs local workers, and has no meaning across machines'));
        }
      }
    }
    const host = {
      slots: BATCH_SLOTS,
      bursting: false,
      readJob: (o) => this.#readBatchJob(o, what),
      submit: (name, item, job) => {
        // Every item listens to the batch's signal: as many listeners as the window.
        if (!unlimited.has(job.signal)) {
          unlimited.add(job.signal);
          setMaxListeners(0, job.signal);
        }
        this.#add('r', name ?? '', item, undefined, {
          retries: job.retries, timeout: job.timeout, priority: job.priority, signal: job.signal,
          queueTimeout: job.queueTimeout, totalTimeout: job.totalTimeout,
        }, null, (v) => job.resolve(v), (e) => job.reject(e));
      },
    };
    return runBatch(host, items, options, what, settledMode);
  }

  // A batch's per-job options: the template lib/batch.js copies into each item's job.
  #readBatchJob(options, what) {
    for (const key of Object.keys(options)) {
      if (key === 'key') {
        return notAcrossMachines(`${what}(): options.key`);
      }
      if (!BATCH_OPTIONS.includes(key)) return unknownOptionError(`${what}() option`, key, BATCH_OPTIONS);
    }
    const jobOptions = {};
    for (const key of Object.keys(options)) if (!BATCH_OWN.has(key)) jobOptions[key] = options[key];
    const o = readJobOptions(jobOptions, what, ['name', ...JOB_OPTIONS]);
    if (o instanceof Error) return o;
    const template = new Job(null, null, null, undefined);
    template.retries = o.retries;
    template.timeout = o.timeout;
    template.priority = o.priority;
    template.queueTimeout = o.queueTimeout;
    template.totalTimeout = o.totalTimeout;
    template.signal = o.signal ?? null;
    return { template, name: o.name ?? null, key: null };
  }

  /** Backpressure is not carried across machines yet: reading it throws, as for map(). */
  get needsDrain() {
    throw notAcrossMachines('needsDrain');
  }

  get drainThreshold() {
    throw notAcrossMachines('drainThreshold');
  }

  /**
   * Pool's stats() as a producer sees them: no local workers; `queued` counts the jobs sent
   * and not answered yet (waiting or running on a host: queueStats() tells which); completed,
   * errored, failed, rejected, aborted and timedOut since the start; throughput over the last
   * ten seconds. `runTime`: the whole queue's recent run times (every host's, every
   * producer's jobs) as last read from Redis, by queueStats() or by the heartbeat (every lease
   * / 3, after this producer's jobs completed). Retries happen on the hosts and wait times are
   * not measured here (0, null).
   */
  stats() {
    const now = Date.now();
    this.#advance(Math.floor(now / 100));
    let recent = 0;
    for (let i = 0; i < this.#slots.length; i++) recent += this.#slots[i];
    const span = Math.min(10, Math.max(1, (now - this.#started) / 1000));
    return {
      queue: this.#o.queue,
      workers: [],
      queued: this.#jobs.size,
      inFlight: 0,
      pending: this.pending,
      completed: this.#counts.completed,
      errored: this.#counts.errored,
      failed: this.#counts.failed,
      retried: 0,
      rejected: this.#counts.rejected,
      aborted: this.#counts.aborted,
      timedOut: this.#counts.timedOut,
      queueTimedOut: this.#counts.queueTimedOut,
      totalTimedOut: this.#counts.totalTimedOut,
      coalesced: this.#counts.coalesced,
      throughput: recent / span,
      waitTime: null,
      runTime: this.#runTime,
    };
  }

  /**
   * The whole queue, read from Redis: jobs waiting, running (on a host), dead letters; live
   * hosts and their slots; the mean of the newest 100 run times (maxExpectedWait's estimate;
   * null before any); the percentiles of the recent run times (the newest 1000, every host's),
   * of the whole queue and per function ('' is the default function).
   */
  async queueStats() {
    try {
      const p = await this.#connect();
      const [counts, g, rt] = await Promise.all([
        binding().redisQueueCounts(this.#url, this.#o.queue, this.#o.tls ?? undefined), p.gauge(), p.runTimes(),
      ]);
      this.#runTime = percentiles(rt.all);
      this.#runTimeAt = this.#counts.completed;
      const functions = {};
      for (let i = 0; i < rt.names.length; i++) functions[rt.names[i]] = percentiles(rt.functions[i]);
      return {
        ...counts,
        hosts: g.hosts,
        slots: g.slots,
        meanRunTime: g.samples > 0 ? g.meanMs : null,
        runTime: this.#runTime,
        functions,
      };
    } catch (e) {
      throw e instanceof PoolError ? e : redisError(e, this.#url, 'reading the queue\'s counts');
    }
  }

  // Reads `options` (per-job), then calls `go` with them; any error rejects the Promise.
  #fromOptions(options, what, usage, go) {
    if (options === undefined) return go({});
    if (options === null || typeof options !== 'object') {
      return Promise.reject(argumentError(`${usage}: options must be an object`));
    }
    const o = readJobOptions(options, what, what === 'run' ? ['name', ...JOB_OPTIONS] : JOB_OPTIONS, usage);
    if (o instanceof Error) return Promise.reject(o);
    if (o.signal !== undefined && o.signal.aborted) {
      this.#counts.aborted++;
      return Promise.reject(abortError(o.signal));
    }
    return go(o);
  }

  #submit(kind, name, task, args, o) {
    return new Promise((resolve, reject) => {
      this.#add(kind, name, task, args, o, null, resolve, reject);
    });
  }

  #add(kind, name, task, args, o, cb, resolve, reject) {
    const job = new RemoteJob(String(this.#nextId++), resolve, reject, cb);
    job.name = name === '' ? null : name;
    if (this.#state !== 'open') return this.#refuse(job, closedError());
    let text;
    try {
      const value = args === undefined ? task : args;
      const t = typeof value;
      if (t === 'function' || t === 'symbol') throw new TypeError(`argument 0 is a ${t}`);
      if (args !== undefined) {
        for (let i = 0; i < args.length; i++) {
          const ta = typeof args[i];
          if (ta === 'function' || ta === 'symbol') throw new TypeError(`argument ${i} is a ${ta}`);
        }
      }
      text = json.stringify(value) ?? 'null';
    } catch (e) {
      return this.#refuse(job, unserializableError(e.message));
    }
    const bytes = bytesOver(text, this.#o.maxMessage);
    if (bytes > 0) {
      return this.#refuse(job, new PoolError(codes.MESSAGE_TOO_LARGE,
        `the arguments are ${bytes} bytes as JSON, more than maxMessage (${this.#o.maxMessage})`,
        { maxMessage: this.#o.maxMessage }));
    }
    const timeout = o.timeout ?? this.#o.timeout;
    // 0 (Infinity given per job): none.
    const queueTimeout = o.queueTimeout ?? this.#o.queueTimeout ?? 0;
    const totalTimeout = o.totalTimeout ?? this.#o.totalTimeout ?? 0;
    this.#batch.push([job, {
      local: job.local,
      kind,
      name,
      args: text,
      retries: o.retries ?? this.#o.retries,
      timeout: timeout === null || timeout === undefined || timeout === Infinity ? 0 : Math.ceil(timeout),
      priority: o.priority ?? this.#o.priority,
      progress: o.onProgress !== undefined,
      queueTimeout,
      totalTimeout,
      key: o.key,
    }]);
    // The deadlines count from the call, as Pool's. Redis holds them too (in its own clock):
    // no host takes the job past them, whatever this producer's timers do.
    if (queueTimeout > 0) job.timers.push(setTimeout(() => this.#queueTimedOut(job, queueTimeout), queueTimeout));
    if (totalTimeout > 0) job.timers.push(setTimeout(() => this.#totalTimedOut(job, totalTimeout), totalTimeout));
    if (o.key !== undefined && o.timeout !== undefined && o.timeout !== Infinity) job.ownTimeout = o.timeout;
    if (o.onProgress !== undefined) job.onProgress = AsyncResource.bind(o.onProgress);
    if (this.#batch.length === 1) process.nextTick(() => this.#flush());
    if (o.signal !== undefined) {
      job.signal = o.signal;
      job.onAbort = () => this.#abort(job);
      o.signal.addEventListener('abort', job.onAbort, { once: true });
    }
    return undefined;
  }

  // A job's signal fired: it rejects now. Once admitted, it is withdrawn from the queue, or
  // cancelled on the host that runs it (at that host's next lease renewal).
  #abort(job) {
    if (job.done) return;
    this.#counts.aborted++;
    const admitted = this.#jobs.delete(job.local);
    job.settle(abortError(job.signal));
    if (admitted) {
      this.#cancels.push(job.local);
      if (this.#cancels.length === 1) process.nextTick(() => this.#sendCancels());
    }
    this.#maybeDone();
  }

  #sendCancels() {
    const locals = this.#cancels;
    this.#cancels = [];
    // After the admissions under way (each native call is its own task: a cancel sent
    // alongside could reach Redis first, and find nothing to cancel).
    const sent = Promise.all(this.#admitting)
      .then(() => this.#connect())
      .then((p) => p.cancel(locals))
      .catch(() => {
        // Redis unreachable: the job may still run; its result is ignored.
      });
    this.#cancelling = this.#cancelling.then(() => sent);
  }

  #refuse(job, err) {
    this.#counts.rejected++;
    process.nextTick(() => job.settle(err));
  }

  async #connect() {
    if (this.#producer !== null) return this.#producer;
    if (this.#connecting === null) {
      this.#connecting = binding().redisProducer(this.#url, this.#o.queue, this.#o.lease, this.#o.tls ?? undefined)
        .then((p) => {
          this.#producer = p;
          this.#lastBeat = Date.now();
          this.#heartbeat = setInterval(() => this.#beat(), Math.max(50, Math.floor(this.#o.lease / 3)));
          this.#heartbeat.unref();
          return p;
        }, (e) => {
          throw redisError(e, this.#url, 'connecting');
        })
        .finally(() => { this.#connecting = null; });
    }
    return this.#connecting;
  }

  async #flush() {
    // Jobs aborted before they were sent are left out.
    let batch = this.#batch.filter(([job]) => !job.done);
    this.#batch = [];
    if (batch.length === 0) return;
    let admitted;
    const answered = new Promise((r) => { admitted = r; });
    for (const [job] of batch) {
      this.#jobs.set(job.local, job);
      job.admission = answered;
    }
    this.#read();
    try {
      const p = await this.#connect();
      if (this.#o.maxExpectedWait !== null) {
        batch = await this.#refuseExpectedWait(p, batch);
        if (batch.length === 0) return;
      }
      // Flat: five strings and six numbers per job (src/redis.rs, admit).
      const strings = [];
      const numbers = [];
      for (const [, j] of batch) {
        strings.push(j.local, j.kind, j.name, j.args, j.key ?? '');
        numbers.push(j.retries, j.timeout, j.queueTimeout, j.totalTimeout, j.priority, j.progress ? 1 : 0);
      }
      const admission = p.admit(strings, numbers, this.#o.maxBacklog ?? undefined, this.#o.policy ?? undefined);
      const settled = admission.then(() => {}, () => {});
      this.#admitting.add(settled);
      settled.then(() => this.#admitting.delete(settled));
      const { refused, joined, conflict } = await admission;
      admitted();
      if (conflict !== null && conflict !== undefined) this.#refusePolicy(batch, conflict);
      if (refused.length > 0) this.#refuseBacklog(refused);
      if (joined.length > 0) this.#joined(joined);
    } catch (e) {
      admitted();
      const err = e instanceof PoolError ? e
        : redisError(e, this.#url, 'queueing the job failed (it may or may not have been queued)');
      for (const [job] of batch) {
        if (this.#jobs.delete(job.local)) {
          this.#counts.rejected++;
          job.settle(err);
        }
      }
      this.#maybeDone();
    }
  }

  // The queue holds another priority policy (another producer's prioritySlots): one queue has
  // one, so this producer's jobs are refused, none admitted.
  #refusePolicy(batch, conflict) {
    const [sacred, ...ranges] = conflict.split(';');
    const theirs = `prioritySlots ${JSON.stringify(Object.fromEntries(ranges.map((r) => {
      const [from, n] = r.split(':');
      return [from, Number(n)];
    })))}, sacredGuarantees ${sacred === '1'}`;
    for (const [job] of batch) {
      if (!this.#jobs.delete(job.local)) continue;
      this.#counts.rejected++;
      job.settle(optionError(`queue ${JSON.stringify(this.#o.queue)} has another priority policy (${theirs}), ` +
        'set by another producer: the producers of one queue must give the same prioritySlots and ' +
        'sacredGuarantees (the policy lasts a lease after the last producer that holds it)'));
    }
    this.#maybeDone();
  }

  // Jobs that joined a shared job (the same function and key, waiting or running anywhere):
  // they settle with its outcome. A queue timeout is the shared job's (its first caller's);
  // a joiner's own `timeout` counts from now.
  #joined(locals) {
    for (const local of locals) {
      const job = this.#jobs.get(local);
      if (job === undefined) continue;
      job.joined = true;
      this.#counts.coalesced++;
      if (job.ownTimeout > 0) {
        const ms = job.ownTimeout;
        job.timers.push(setTimeout(() => this.#leaveShared(job, new PoolError(codes.JOB_TIMEOUT,
          `the job waited longer than its timeout (${ms} ms) for the shared job of its key; ` +
          'the shared job goes on for its other callers')), ms));
      }
    }
  }

  // A caller of a shared job leaves it alone (its own timeout): the shared job is cancelled
  // only once every caller everywhere has gone (the cancel script counts them).
  #leaveShared(job, err) {
    if (job.done || !this.#jobs.delete(job.local)) return;
    this.#counts.failed++;
    this.#counts.timedOut++;
    job.settle(err);
    this.#cancels.push(job.local);
    if (this.#cancels.length === 1) process.nextTick(() => this.#sendCancels());
    this.#maybeDone();
  }

  // Its queueTimeout passed: a job still waiting is withdrawn and never runs
  // (ERR_QUEUE_TIMEOUT); one a host took goes on. A shared job's callers fail with it.
  async #queueTimedOut(job, ms) {
    if (job.done || job.joined) return;
    let status;
    try {
      await job.admission;
      if (job.done || job.joined || !this.#jobs.has(job.local)) return;
      const p = await this.#connect();
      [status] = await p.withdraw([job.local], true);
    } catch {
      // Redis unreachable: no host takes the job past its deadline (Redis's clock) anyway,
      // and the heartbeat fails it if Redis is gone for long.
      return;
    }
    if (status !== 'w' || !this.#jobs.delete(job.local)) return;
    this.#failQueueTimeout(job, ms);
    this.#maybeDone();
  }

  #failQueueTimeout(job, waitedMs) {
    this.#counts.failed++;
    this.#counts.queueTimedOut++;
    this.emit('queueTimeout', { name: job.name, waitedMs });
    job.settle(new PoolError(codes.QUEUE_TIMEOUT,
      `the job waited ${waitedMs} ms in the queue for a worker host, longer than its queueTimeout: it never ran`,
      { waitedMs }));
  }

  // Its totalTimeout passed: it rejects with ERR_TOTAL_TIMEOUT, withdrawn from the queue, or
  // cancelled on the host that runs it (at that host's next lease renewal), or, for a caller
  // of a shared job, leaving it alone. Results that come in the meantime are dropped.
  async #totalTimedOut(job, ms) {
    if (job.done || !this.#jobs.has(job.local)) return;
    job.expired = true;
    let status = null;
    try {
      await job.admission;
      const p = await this.#connect();
      await Promise.all(this.#admitting);
      [status] = await p.withdraw([job.local], false);
    } catch {
      // Redis unreachable: the job may still run; its result is dropped.
    }
    if (!this.#jobs.delete(job.local)) return;
    this.#counts.failed++;
    this.#counts.totalTimedOut++;
    const host = status !== null && status.startsWith('r:') ? status.slice(2) : null;
    this.emit('totalTimeout', { name: job.name, pid: null, host });
    let how;
    if (status === 'w') how = 'while it waited in the queue: it never ran';
    else if (host !== null) how = `while it ran on worker host ${host}: it was cancelled there`;
    else if (status === 'j') how = 'while it shared the job of its key; the shared job goes on for its other callers';
    else how = 'before its outcome came back: the outcome is dropped';
    job.settle(new PoolError(codes.TOTAL_TIMEOUT, `the job's totalTimeout (${ms} ms) passed ${how}`,
      { pid: null, host }));
    this.#maybeDone();
  }

  // maxExpectedWait, as the local Pool's (crates/core/src/estimator.rs): a job is expected to
  // complete after (jobs waiting ahead of it / the live hosts' slots) x the mean recent run
  // time, plus its own run; past maxExpectedWait it is refused with ERR_EXPECTED_WAIT. The
  // jobs waiting, the slots and the mean are the whole queue's, read from Redis in one script
  // call per admission; silent until the queue has recorded twice its slots in run times (the
  // warm-up), or while no host is alive. Returns the jobs to admit.
  async #refuseExpectedWait(p, batch) {
    const g = await p.gauge();
    // Jobs aborted meanwhile are left out (their cancel found nothing to cancel).
    const live = batch.filter(([job]) => !job.done);
    if (g.slots === 0 || g.samples < 2 * g.slots || g.samples === 0) return live;
    const max = this.#o.maxExpectedWait;
    const out = [];
    for (const b of live) {
      const expected = ((g.waiting + out.length) / g.slots) * g.meanMs + g.meanMs;
      if (expected <= max) {
        out.push(b);
        continue;
      }
      const [job] = b;
      if (!this.#jobs.delete(job.local)) continue;
      this.#counts.rejected++;
      const ms = Math.round(expected);
      job.settle(new PoolError(codes.EXPECTED_WAIT,
        `the job would take about ${ms} ms to complete (${g.waiting + out.length} jobs waiting in the queue, ` +
        `${g.slots} slots on ${g.hosts} hosts, ${g.meanMs.toFixed(1)} ms a job), more than maxExpectedWait: job refused`,
        { expectedWait: ms }));
    }
    if (out.length < live.length) this.#maybeDone();
    return out;
  }

  // Jobs the admission refused: the queue held maxBacklog jobs waiting (from every producer).
  #refuseBacklog(locals) {
    const max = this.#o.maxBacklog;
    for (const local of locals) {
      const job = this.#jobs.get(local);
      if (job === undefined) continue;
      this.#jobs.delete(local);
      this.#counts.rejected++;
      job.settle(new PoolError(codes.BACKLOG_FULL,
        `the queue's backlog is full (${max} jobs waiting, from every producer): job refused`,
        { maxBacklog: max }));
    }
    this.#maybeDone();
  }

  // The results loop: runs while jobs are pending.
  async #read() {
    if (this.#reading) return;
    this.#reading = true;
    let backoff = 100;
    try {
      while (this.#jobs.size > 0 || this.#broadcasts.size > 0) {
        let replies;
        try {
          const p = await this.#connect();
          replies = await p.read(READ_BLOCK_MS);
          backoff = 100;
        } catch {
          // Redis is unreachable for now: the heartbeat fails the jobs if that lasts past the
          // lease, or if Redis comes back without them.
          if (this.#jobs.size === 0 && this.#broadcasts.size === 0) break;
          await sleep(backoff);
          backoff = Math.min(backoff * 2, 2000);
          continue;
        }
        // Three strings per reply: its local id, status and value.
        for (let i = 0; i < replies.length; i += 3) this.#settleReply(replies[i], replies[i + 1], replies[i + 2]);
      }
    } finally {
      this.#reading = false;
      this.#maybeDone();
    }
  }

  #settleReply(local, status, value) {
    if (status === 'b') {
      this.#broadcasts.check(local); // a host answered a broadcast
      return;
    }
    const job = this.#jobs.get(local);
    if (job === undefined) return; // settled already (terminated, or failed when Redis lost it)
    if (status === 'p') {
      this.#progress(job, value);
      return;
    }
    // Its totalTimeout passed: it settles when its withdrawal answers, with ERR_TOTAL_TIMEOUT.
    if (job.expired) return;
    this.#jobs.delete(local);
    if (status === 'q') {
      // A host found it waiting past its queue deadline (Redis's clock).
      let waited = 0;
      try {
        waited = Number(JSON.parse(value).waitedMs) || 0;
      } catch {
        // No details.
      }
      this.#failQueueTimeout(job, waited);
      return;
    }
    if (status === 't') {
      this.#counts.failed++;
      this.#counts.totalTimedOut++;
      this.emit('totalTimeout', { name: job.name, pid: null, host: null });
      job.settle(new PoolError(codes.TOTAL_TIMEOUT,
        'the job\'s totalTimeout passed while it waited in the queue: it never ran', { pid: null, host: null }));
      return;
    }
    if (status === 'o') {
      const bytes = bytesOver(value, this.#o.maxMessage);
      if (bytes > 0) {
        this.#counts.failed++;
        job.settle(new PoolError(codes.MESSAGE_TOO_LARGE,
          `the job's result is ${bytes} bytes as JSON, more than maxMessage (${this.#o.maxMessage})`,
          { maxMessage: this.#o.maxMessage }));
        return;
      }
      let result;
      try {
        result = JSON.parse(value);
      } catch {
        this.#counts.failed++;
        job.settle(new PoolError(codes.WORKER_EXITED, 'a worker host sent a result that is not JSON'));
        return;
      }
      this.#counts.completed++;
      this.#completedAt();
      job.settle(null, result);
    } else if (status === 'e') {
      const err = deserializeError(value);
      // A failure of the host's pool (timeout, worker exit) counts as failed, as in Pool.
      if (err instanceof PoolError && HOST_FAILURES.has(err.code)) {
        this.#counts.failed++;
        if (err.code === codes.JOB_TIMEOUT) this.#counts.timedOut++;
      } else {
        this.#counts.errored++;
      }
      job.settle(err);
    } else {
      let f = {};
      try {
        f = JSON.parse(value);
      } catch {
        // A failure without details.
      }
      this.#counts.failed++;
      job.settle(new PoolError(codes.WORKER_EXITED,
        `worker host ${f.host || '(unknown)'} died or stopped answering while running this job: ` +
        `it was delivered ${f.deliveries} times, more than its retries (${f.retries}) allow`,
        { host: f.host, deliveries: f.deliveries }));
    }
  }

  #completedAt() {
    const slot = Math.floor(Date.now() / 100);
    this.#advance(slot);
    this.#slots[slot % 100]++;
  }

  // Clears the slots older than ten seconds before `slot`.
  #advance(slot) {
    if (slot <= this.#slot) return;
    if (slot - this.#slot >= 100) this.#slots.fill(0);
    else for (let s = this.#slot + 1; s <= slot; s++) this.#slots[s % 100] = 0;
    this.#slot = slot;
  }


  // A progress report of a job that asked for them, in the context of the call that made it.
  // A report over maxMessage, or not JSON, is skipped; a callback that throws throws as an
  // uncaught exception, as an event listener's would.
  #progress(job, text) {
    if (job.onProgress === null || bytesOver(text, this.#o.maxMessage) > 0) return;
    let value;
    try {
      value = JSON.parse(text);
    } catch {
      return;
    }
    try {
      job.onProgress(value);
    } catch (e) {
      process.nextTick(() => { throw e; });
    }
  }

  async #beat() {
    const p = this.#producer;
    if (p === null) return;
    if (this.#o.policy !== null) {
      // The queue's policy lasts a lease after the last producer that holds it.
      p.keepPolicy(this.#o.policy).catch(() => {});
    }
    try {
      const alive = await p.heartbeat();
      this.#lastBeat = Date.now();
      // Hosts that died while a broadcast waited for them: let go once their lease ran out.
      if (alive) this.#broadcasts.checkAll();
      if (this.#runTimeAt !== this.#counts.completed) {
        // stats().runTime: the whole queue's, read again once this producer's jobs completed.
        this.#runTimeAt = this.#counts.completed;
        this.#runTime = percentiles((await p.runTimes()).all);
      }
      if (!alive) {
        this.#failAll(new PoolError(codes.REDIS,
          `Redis (${redactUrl(this.#url)}) lost this job: its records were gone (Redis restarted ` +
          'without persistence, or this producer was silent longer than its lease); it may or may not have run'));
      }
    } catch {
      if (Date.now() - this.#lastBeat > this.#o.lease) {
        this.#lastBeat = Date.now();
        this.#failAll(new PoolError(codes.REDIS,
          `Redis (${redactUrl(this.#url)}) could not be reached for longer than the lease ` +
          `(${this.#o.lease} ms): this job may or may not have run`));
      }
    }
  }

  #failAll(err) {
    this.#broadcasts.failAll(err);
    const jobs = [...this.#jobs.values()];
    this.#jobs.clear();
    for (const job of jobs) {
      this.#counts.failed++;
      job.settle(err);
    }
    this.#maybeDone();
  }

  #finish() {
    if (this.#done === null) {
      let resolve;
      const promise = new Promise((r) => { resolve = r; });
      this.#done = { promise, resolve };
      this.#maybeDone();
    }
    return this.#done.promise;
  }

  async #maybeDone() {
    if (this.#done === null || this.#state === 'closed' || this.pending > 0 ||
        this.#broadcasts.size > 0) return;
    this.#state = 'closed';
    if (this.#heartbeat !== null) clearInterval(this.#heartbeat);
    // Cancels reach Redis before the producer leaves it.
    await this.#cancelling;
    const p = this.#producer ?? (this.#connecting ? await this.#connecting.catch(() => null) : null);
    if (p !== null) {
      try {
        await p.close();
      } catch {
        // Redis is unreachable: the keys expire on their own.
      }
    }
    this.#done.resolve();
  }
}

// Percentiles of run times (ms), as Pool's stats() gives them; null when there are none.
function percentiles(samples) {
  if (samples.length === 0) return null;
  const s = Float64Array.from(samples).sort();
  const at = (q) => s[Math.min(s.length - 1, Math.floor(s.length * q))];
  return { p50: at(0.5), p90: at(0.9), p99: at(0.99), samples: s.length };
}

// A job's options (`names` are those allowed), checked: the options, or the Error to reject with.
function readJobOptions(options, what, names, usage = `${what}(options)`) {
  const o = {};
  try {
    for (const key of Object.keys(options)) {
      if (!names.includes(key)) return unknownOptionError(`${what}() option`, key, names);
      o[key] = options[key];
    }
  } catch (e) {
    return argumentError(`${usage}: options cannot be read`, e);
  }
  if (o.name !== undefined && o.name !== null && typeof o.name !== 'string') {
    return argumentError(`${what}(): options.name must be a string`);
  }
  if (o.timeout !== undefined) {
    if (typeof o.timeout !== 'number' || !(o.timeout > 0)) {
      return argumentError(`${what}(): options.timeout must be a number of milliseconds > 0`);
    }
    if (o.timeout !== Infinity && o.timeout > MAX_DURATION_MS) {
      return argumentError(`${what}(): ${durationMessage('options.timeout', o.timeout)}`);
    }
  }
  if (o.retries !== undefined && (!Number.isInteger(o.retries) || o.retries < 0 || o.retries > 1000)) {
    return argumentError(`${what}(): options.retries must be an integer from 0 to 1000`);
  }
  if (o.priority !== undefined && (typeof o.priority !== 'number' || !Number.isFinite(o.priority))) {
    return argumentError(`${what}(): options.priority must be a finite number`);
  }
  for (const name of ['queueTimeout', 'totalTimeout']) {
    if (o[name] === undefined) continue;
    const ms = spanOption(what, name, o[name]);
    if (ms instanceof Error) return ms;
    o[name] = ms;
  }
  if (o.key !== undefined && (typeof o.key !== 'string' || o.key.length === 0)) {
    return argumentError(`${what}(): options.key must be a non-empty string`);
  }
  if (o.onProgress !== undefined && typeof o.onProgress !== 'function') {
    return argumentError(`${what}(): options.onProgress must be a function`);
  }
  if (o.signal !== undefined && o.signal !== null) {
    const sig = o.signal;
    if (typeof sig !== 'object' || typeof sig.aborted !== 'boolean' || typeof sig.addEventListener !== 'function') {
      return argumentError(`${what}(): options.signal must be an AbortSignal`);
    }
  } else {
    o.signal = undefined;
  }
  return o;
}

function sleep(ms) {
  return new Promise((r) => { setTimeout(r, ms); });
}

module.exports = { RemotePool, isRemote, LEASE_ROW };
