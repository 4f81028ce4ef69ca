'use strict';
// A worker host of a queue on Redis: a local Pool that takes exactly as many jobs as it has
// free slots, renews their leases while they run, and writes each result back. The bin
// (`comrade worker`, bin/comrade.js) and startWorkerHost() from code both run this.

const os = require('node:os');
const crypto = require('node:crypto');
const { EventEmitter } = require('node:events');
const { codes, PoolError, optionError, unknownOptionError } = require('../errors');
const { OPTIONS, resolveOption } = require('../options');
const {
  redactUrl, redisError, checkUrl, checkTls, checkQueue, serializeError, bytesOver,
} = require('./common');
const { LEASE_ROW } = require('./producer');

const ROW = Object.fromEntries(OPTIONS.map((r) => [r.name, r]));
const HOST_OPTIONS = [
  'redis', 'tls', 'queue', 'module', 'command', 'workers', 'concurrency', 'lease', 'poll', 'maxMessage',
  'initData', 'env', 'cwd', 'name',
];
const POLL_ROW = Object.freeze({ name: 'poll', type: 'int', range: [10, 60000], default: 1000 });
const MAX_BACKOFF_MS = 5000;
// Results per completeMany call (the crate splits larger ones too).
const MAX_WRITE = 500;

// A job's cancel signal: what the local Pool reads of an AbortSignal (`aborted`, `reason`, its
// one 'abort' listener), without an EventTarget per job; a cancel is rare, a job is not
// (measured: an AbortController per job cost a host about 4 µs of CPU per echo job).
class JobCancel {
  aborted = false;
  reason = undefined;
  #listener = null;

  addEventListener(type, listener) {
    if (type === 'abort') this.#listener = listener;
  }

  removeEventListener(type, listener) {
    if (this.#listener === listener) this.#listener = null;
  }

  abort() {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = new DOMException('the job was cancelled by its producer', 'AbortError');
    const listener = this.#listener;
    this.#listener = null;
    if (listener !== null) listener();
  }
}

function resolveHostOptions(options) {
  if (options === null || typeof options !== 'object') {
    throw optionError('startWorkerHost(options): options must be an object');
  }
  for (const key of Object.keys(options)) {
    if (!HOST_OPTIONS.includes(key)) throw unknownOptionError('worker host option', key, HOST_OPTIONS);
  }
  if (options.queue === undefined) throw optionError('a worker host needs `queue`, the queue\'s name');
  if ((options.module !== undefined) === (options.command !== undefined)) {
    throw optionError('a worker host needs exactly one of `module` (a Node module) or `command` (an executable)');
  }
  if (options.name !== undefined && (typeof options.name !== 'string' || options.name.length === 0 ||
      options.name.length > 200)) {
    throw optionError('name must be a non-empty string of at most 200 characters');
  }
  const redis = checkUrl('redis', options.redis);
  const o = {
    redis,
    tls: checkTls(options.tls, redis),
    queue: checkQueue('queue', options.queue),
    workers: resolveOption({ ...ROW.maxWorkers, name: 'workers' }, options, {}),
    concurrency: resolveOption(ROW.concurrency, options, {}),
    lease: resolveOption(LEASE_ROW, options, {}),
    poll: resolveOption(POLL_ROW, options, {}),
    maxMessage: resolveOption(ROW.maxMessage, options, {}),
    name: options.name ?? `${os.hostname()}:${process.pid}:${crypto.randomBytes(3).toString('hex')}`,
  };
  // What the local Pool checks itself. Its workers start with the host and stay: `--workers N`
  // is N workers, and a broadcast reaches each of them.
  o.local = {
    maxWorkers: o.workers,
    minWorkers: o.workers,
    concurrency: o.concurrency,
    maxMessage: o.maxMessage,
  };
  for (const k of ['module', 'command', 'initData', 'env', 'cwd']) {
    if (options[k] !== undefined) o.local[k] = options[k];
  }
  return o;
}

/**
 * A worker host. Events: 'job' ({ entry, job, deliveries }), 'result' ({ entry, job,
 * accepted }), 'lost' ({ entry, job }: another host took a running job after this one was
 * silent past its lease), 'cancel' ({ entry, job }: its producer aborted it; it is aborted
 * here), 'broadcast' ({ producer, id, reached }: a broadcast answered, with how many local
 * workers acknowledged it), 'redisError' (a PoolError, ERR_REDIS: the host keeps its jobs and
 * retries with backoff), 'reconnected'.
 */
class WorkerHost extends EventEmitter {
  #o;
  #native;
  #pool;
  #held = new Map(); // entry id -> delivery, owned and not completed
  #slots;
  #state = 'running'; // 'running' | 'stopping' | 'stopped'
  #freed = null; // { promise, resolve }: a slot was freed, or the host is stopping
  #timer; // every lease / 4: this host's registration (beat) and its leases' renewal
  #loop;
  #counts = { taken: 0, completed: 0, dropped: 0, lost: 0, cancelled: 0, failed: 0, dead: 0 };
  #failing = false;
  #closed;
  // Broadcasts (docs/REDIS.md): this host says it is live with each beat, and reads its inbox
  // on a connection of its own; `#answering` holds the broadcasts being handled.
  #inbox;
  #listening;
  #answering = new Set();
  #outbox = []; // finished jobs whose results are not written yet: { d, status, value }
  #writing = false; // a write of results is under way (or scheduled)
  #written = 0; // jobs whose results are being written: finished, so their slots are free
  #parked = false; // the take loop waits for a slot to free
  #cycling = false; // a write takes the next jobs too (RedisHost.cycle): the loop stays parked

  constructor(o, native, pool, inbox) {
    super();
    this.#o = o;
    this.#native = native;
    this.#pool = pool;
    this.#inbox = inbox;
    this.#slots = o.workers * o.concurrency;
    // startWorkerHost registered it (its slots, live for broadcasts) before it took a job.
    this.#timer = setInterval(() => {
      this.#beat();
      this.#renew();
    }, Math.max(25, Math.floor(o.lease / 4)));
    this.#loop = this.#run();
    this.#listening = this.#listen();
  }

  /** This host's consumer name: the name errors give for it. */
  get name() {
    return this.#o.name;
  }

  /** Jobs taken and not completed. */
  get running() {
    return this.#held.size;
  }

  get slots() {
    return this.#slots;
  }

  /** Counts since the start: taken, completed, dropped (late results), lost, cancelled, failed, dead. */
  stats() {
    return { name: this.#o.name, running: this.#held.size, slots: this.#slots, ...this.#counts };
  }

  /**
   * Stops taking jobs, finishes those it holds, leaves the queue and stops the local workers.
   * Resolves once all of that is done.
   */
  close() {
    if (this.#closed === undefined) this.#closed = this.#close();
    return this.#closed;
  }

  async #close() {
    this.#state = 'stopping';
    this.#wake();
    // No broadcast waits for a host that is stopping; its beats from now on keep only its
    // slots registered (its running jobs still count for prioritySlots' caps).
    try {
      await this.#native.leaveHosts();
    } catch {
      // Redis is unreachable: its lease runs out on its own.
    }
    await this.#loop;
    await this.#listening;
    await Promise.all(this.#answering);
    while (this.#held.size > 0) await this.#slotFreed();
    clearInterval(this.#timer);
    try {
      // Its slots no longer count for the queue's prioritySlots.
      await this.#native.register(0);
      await this.#native.leave();
    } catch {
      // Redis is unreachable: the consumer stays in the group, holding nothing.
    }
    await this.#pool.close();
    this.#state = 'stopped';
  }

  #slotFreed() {
    if (this.#freed === null) {
      let resolve;
      const promise = new Promise((r) => { resolve = r; });
      this.#freed = { promise, resolve };
    }
    return this.#freed.promise;
  }

  #wake() {
    if (this.#freed !== null) {
      const f = this.#freed;
      this.#freed = null;
      f.resolve();
    }
  }

  #redisFailed(e, what) {
    const err = redisError(e, this.#o.redis, what);
    this.#failing = true;
    this.emit('redisError', err);
  }

  #redisOk() {
    if (this.#failing) {
      this.#failing = false;
      this.emit('reconnected');
    }
  }

  async #run() {
    let backoff = 100;
    while (this.#state === 'running') {
      // A job whose result is being written holds its entry until Redis answers, but not its
      // slot: the next take goes out with the write instead of one round trip after it.
      const free = this.#slots - this.#held.size + this.#written;
      if (free <= 0 || this.#cycling) {
        this.#parked = true;
        await this.#slotFreed();
        this.#parked = false;
        continue;
      }
      let t;
      try {
        t = await this.#native.take(free);
        this.#redisOk();
        backoff = 100;
      } catch (e) {
        this.#redisFailed(e, 'taking jobs');
        await sleep(backoff);
        backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
        continue;
      }
      this.#took(t);
      if (t.strings.length === 0 && this.#state === 'running') {
        try {
          await this.#native.wait(this.#o.poll);
        } catch (e) {
          this.#redisFailed(e, 'waiting for jobs');
          await sleep(backoff);
          backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
        }
      }
    }
  }

  // The jobs a take (or a cycle) brought: each starts on the local pool.
  #took(t) {
    this.#counts.failed += t.failed;
    this.#counts.dead += t.dead;
    // Flat: five strings and four numbers per job (src/redis.rs, RemoteTake).
    const { strings, numbers } = t;
    for (let i = 0, j = 0; i < strings.length; i += 5, j += 4) {
      this.#start({
        entry: strings[i],
        job: strings[i + 1],
        kind: strings[i + 2],
        name: strings[i + 3],
        args: strings[i + 4],
        retries: numbers[j],
        timeout: numbers[j + 1],
        deliveries: numbers[j + 2],
        progress: numbers[j + 3] === 1,
        // Set by #start and #execute; here so that every delivery has one shape.
        cancel: null,
        chain: null,
        t0: 0,
        runMs: undefined,
        lost: false,
      });
    }
  }

  // Registers this host for a lease: live for broadcasts (until it stops), and its slots, for
  // the caps of a prioritySlots policy and maxExpectedWait's estimate. One script call.
  async #beat() {
    if (this.#state === 'stopped') return;
    try {
      await this.#native.beat();
      this.#redisOk();
    } catch (e) {
      this.#redisFailed(e, 'saying this host is live');
    }
  }

  // The broadcasts loop: each message read from this host's inbox goes to the local workers.
  async #listen() {
    let backoff = 100;
    while (this.#state === 'running') {
      let m;
      try {
        m = await this.#inbox.next(this.#o.poll);
        backoff = 100;
      } catch (e) {
        this.#redisFailed(e, 'reading broadcasts');
        await sleep(backoff);
        backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
        continue;
      }
      if (m == null || this.#state !== 'running') continue;
      const answering = this.#answer(m);
      this.#answering.add(answering);
      answering.then(() => this.#answering.delete(answering));
    }
  }

  // Broadcasts `m` to the local workers, then answers its producer with the count and the
  // handlers' errors (retried while Redis is unreachable, until a lease has passed).
  async #answer(m) {
    let reached = 0;
    const failures = [];
    try {
      reached = await this.#pool.broadcast(JSON.parse(m.message));
    } catch (e) {
      if (e instanceof PoolError && e.code === codes.BROADCAST_FAILED) {
        reached = e.reached;
        for (const f of e.failures) failures.push({ pid: f.pid, error: serializeError(f.error, this.#o.name) });
      } else {
        // Refused here (this host's maxMessage is lower, or its pool is closing).
        failures.push({ pid: null, error: serializeError(e, this.#o.name) });
      }
    }
    const result = JSON.stringify({ reached, failures });
    const started = Date.now();
    let backoff = 100;
    for (;;) {
      try {
        await this.#native.broadcastAck(m.producer, m.id, result);
        this.#redisOk();
        this.emit('broadcast', { producer: m.producer, id: m.id, reached });
        return;
      } catch (e) {
        this.#redisFailed(e, 'answering a broadcast');
        if (Date.now() - started > this.#o.lease) return;
        await sleep(backoff);
        backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
      }
    }
  }

  #start(d) {
    // An entry of its own that it still runs (its renewal came late): already running.
    if (this.#held.has(d.entry)) return;
    d.cancel = new JobCancel();
    d.chain = null; // its progress reports, in order (only for a job that sends them)
    this.#held.set(d.entry, d);
    this.#counts.taken++;
    // Events cost an object per job: made only for listeners.
    if (this.listenerCount('job') > 0) this.emit('job', { entry: d.entry, job: d.job, deliveries: d.deliveries });
    // No async function and no await per job: the pool's own Promise, one reaction.
    let running;
    try {
      running = this.#execute(d);
    } catch (e) {
      this.#complete(d, 'e', serializeError(e, this.#o.name));
      return;
    }
    running.then((result) => this.#finished(d, result), (e) => {
      d.runMs = performance.now() - d.t0;
      this.#complete(d, 'e', serializeError(e, this.#o.name));
    });
  }

  // Starts one delivery on the local pool (the Promise of its result), or throws why not.
  #execute(d) {
    const bytes = bytesOver(d.args, this.#o.maxMessage);
    if (bytes > 0) {
      throw new PoolError(codes.MESSAGE_TOO_LARGE,
        `the job's arguments are ${bytes} bytes as JSON, more than the worker host's maxMessage ` +
        `(${this.#o.maxMessage})`, { maxMessage: this.#o.maxMessage });
    }
    let args;
    try {
      args = JSON.parse(d.args);
    } catch {
      throw new PoolError(codes.INVALID_ARGUMENT, 'the job\'s arguments are not valid JSON');
    }
    const opts = { retries: d.retries, signal: d.cancel };
    // Progress reports go to the producer one after another (each native call is its own
    // task: sent together they could overtake each other), and the result after the last
    // (#complete waits for d.chain). Best effort: a report lost with the connection is not
    // sent again.
    if (d.progress) {
      opts.onProgress = (v) => {
        const text = JSON.stringify(v) ?? 'null';
        d.chain = (d.chain ?? Promise.resolve()).then(() => this.#native.progress(d.entry, d.job, text)).catch(() => {});
      };
    }
    if (d.timeout > 0) opts.timeout = d.timeout;
    if (d.kind === 'x' && !Array.isArray(args)) {
      throw new PoolError(codes.INVALID_ARGUMENT, 'the job\'s arguments are not an array');
    }
    // The function's run time, for the queue's recent run times (stats, maxExpectedWait).
    d.t0 = performance.now();
    if (d.kind === 'x') return this.#pool.exec(d.name, args, opts);
    if (d.name !== '') opts.name = d.name;
    return this.#pool.run(args, opts);
  }

  // A delivery's result, as JSON text, joins the next write.
  #finished(d, result) {
    d.runMs = performance.now() - d.t0;
    let text;
    try {
      text = JSON.stringify(result) ?? 'null';
    } catch (e) {
      this.#complete(d, 'e', serializeError(e, this.#o.name));
      return;
    }
    const size = bytesOver(text, this.#o.maxMessage);
    if (size > 0) {
      this.#complete(d, 'e', serializeError(new PoolError(codes.MESSAGE_TOO_LARGE,
        `the job's result is ${size} bytes as JSON, more than the worker host's maxMessage ` +
        `(${this.#o.maxMessage})`, { maxMessage: this.#o.maxMessage }), this.#o.name));
      return;
    }
    this.#complete(d, 'o', text);
  }

  // A finished job's result joins the next write: every result that finishes while a write is
  // under way goes in the one after it, so a busy host writes many results per round trip.
  // After its last progress report, when it sent any.
  #complete(d, status, value) {
    if (d.chain !== null) {
      const chain = d.chain;
      d.chain = null;
      chain.then(() => this.#complete(d, status, value));
      return;
    }
    this.#outbox.push({ d, status, value });
    if (!this.#writing) {
      this.#writing = true;
      // After this turn of the event loop: the results its I/O finished go together.
      setImmediate(() => this.#writeResults());
    }
  }

  // Writes the results waiting in the outbox, one cycle (with the next take) or completeMany
  // per batch; a batch is retried with completeMany while Redis is unreachable, until the lease
  // would have run out (another host may own its jobs by then, and their results would be
  // dropped anyway).
  async #writeResults() {
    while (this.#outbox.length > 0) {
      const batch = this.#outbox.splice(0, MAX_WRITE);
      this.#written += batch.length;
      const entries = batch.map((c) => c.d.entry);
      const jobs = batch.map((c) => c.d.job);
      const statuses = batch.map((c) => c.status);
      const values = batch.map((c) => c.value);
      // A job cancelled by its producer ran only part of its time: not a run time.
      const runs = batch.map((c) => (c.d.cancel.aborted ? -1 : c.d.runMs ?? -1));
      let accepted = null;
      // While the take loop waits for free slots, the take for the slots this write frees
      // goes with it: one script call and one round trip per wave instead of two
      // (cycle.lua). The loop stays parked meanwhile, so no other take counts those slots.
      if (this.#parked && this.#state === 'running') {
        this.#cycling = true;
        try {
          const r = await this.#native.cycle(this.#slots - this.#held.size + this.#written,
            entries, jobs, statuses, values, runs);
          this.#redisOk();
          accepted = r.accepted;
          if (r.take != null) this.#took(r.take);
          else this.#redisFailed(new Error(r.takeError), 'taking jobs');
        } catch (e) {
          // Written or not, as a lost reply of completeMany: the write below tells.
          this.#redisFailed(e, 'writing results');
        }
        this.#cycling = false;
      }
      if (accepted === null) {
        this.#wake();
        // The take for the slots just freed goes out before this write (the take loop resumes
        // in the microtask queued before this one), so Redis runs it first: the next jobs do
        // not wait for this write's script (measured: echo +18% jobs/s; docs/REDIS.md,
        // Benchmark).
        await null;
        const started = Date.now();
        let backoff = 100;
        for (;;) {
          try {
            accepted = await this.#native.completeMany(entries, jobs, statuses, values, runs);
            this.#redisOk();
            break;
          } catch (e) {
            this.#redisFailed(e, 'writing results');
            if (Date.now() - started > this.#o.lease) break;
            await sleep(backoff);
            backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
          }
        }
      }
      this.#written -= batch.length;
      for (let i = 0; i < batch.length; i++) {
        const { d } = batch[i];
        const ok = accepted !== null && accepted[i] === true;
        if (ok) this.#counts.completed++;
        else this.#counts.dropped++;
        this.#held.delete(d.entry);
        if (this.listenerCount('result') > 0) this.emit('result', { entry: d.entry, job: d.job, accepted: ok });
      }
      this.#wake();
    }
    this.#writing = false;
  }

  async #renew() {
    if (this.#held.size === 0) return;
    const running = [...this.#held.values()];
    let lost;
    let cancelled;
    try {
      ({ lost, cancelled } = await this.#native.renew(running.map((d) => d.entry), running.map((d) => d.job)));
      this.#redisOk();
    } catch (e) {
      this.#redisFailed(e, 'renewing leases');
      return;
    }
    // Cancelled by its producer: the local job is aborted (its worker is sent a cancel, and
    // replaced if it does not stop within cancelGraceMs); its error completes the entry.
    for (const entry of cancelled) {
      const d = this.#held.get(entry);
      if (d === undefined || d.cancel.aborted) continue;
      this.#counts.cancelled++;
      this.emit('cancel', { entry, job: d.job });
      d.cancel.abort();
    }
    for (const entry of lost) {
      const d = this.#held.get(entry);
      if (d === undefined || d.lost) continue;
      d.lost = true;
      this.#counts.lost++;
      this.emit('lost', { entry, job: d.job });
    }
  }
}

/**
 * Starts a worker host: connects to Redis (a wrong password or an unreachable server rejects
 * with ERR_REDIS, the URL redacted), starts the local Pool, and starts taking jobs.
 */
async function startWorkerHost(options) {
  const o = resolveHostOptions(options);
  // Required here, not at the top: lib/pool.js requires lib/remote/producer.js.
  const { Pool } = require('../pool');
  const pool = new Pool(o.local);
  let native;
  let inbox;
  try {
    const binding = require('../../binding.js');
    native = await binding.redisHost(o.redis, o.queue, o.name, o.lease, o.tls ?? undefined);
    inbox = await binding.redisInbox(o.redis, o.queue, o.name, o.tls ?? undefined);
    // Live from the start, with its slots: a broadcast made now reaches this host.
    await native.register(o.workers * o.concurrency);
  } catch (e) {
    await pool.terminate();
    throw redisError(e, o.redis, 'connecting');
  }
  return new WorkerHost(o, native, pool, inbox);
}

function sleep(ms) {
  return new Promise((r) => { setTimeout(r, ms); });
}

module.exports = { startWorkerHost, WorkerHost, HOST_OPTIONS, redactUrl };
