'use strict';
// A producer's broadcasts (pool.broadcast(message) on a queue on Redis; docs/REDIS.md): the
// message goes to every live worker host, each host broadcasts it to its local workers and
// answers with its count; the broadcast resolves with the sum once every host it went to has
// answered or is no longer live (its lease ran out, or it left). A host's answer nudges the
// producer through its reply stream (status 'b'); the heartbeat checks too, so a host that
// died is let go once its lease runs out.

const { messageText, failedError } = require('../broadcast');
const { redisError, deserializeError } = require('./common');

class RemoteBroadcasts {
  #pending = new Map(); // broadcast id -> { resolve, reject, promise, checking, again }
  #next = 0;
  #connect; // () => Promise<the binding's RedisProducer>
  #o;
  #changed; // called when a broadcast starts or settles

  constructor(connect, o, changed) {
    this.#connect = connect;
    this.#o = o;
    this.#changed = changed;
  }

  /** Broadcasts waiting for hosts. */
  get size() {
    return this.#pending.size;
  }

  async send(message) {
    const text = messageText(message, this.#o.maxMessage);
    const p = await this.#connect();
    this.#next = (this.#next % 0xffffffff) + 1;
    const id = this.#next;
    const entry = { checking: false, again: false };
    entry.promise = new Promise((resolve, reject) => {
      entry.resolve = resolve;
      entry.reject = reject;
    });
    this.#pending.set(id, entry);
    this.#changed();
    let hosts;
    try {
      hosts = await p.broadcast(id, text);
    } catch (e) {
      this.#settle(id, redisError(e, this.#o.redis, 'broadcasting (it may or may not have been sent)'));
      return entry.promise;
    }
    if (hosts === 0) this.#settle(id, null, 0);
    else this.check(id);
    return entry.promise;
  }

  /** A host answered broadcast `id` (its reply's local id), or the heartbeat asks: is it over? */
  async check(id) {
    const entry = this.#pending.get(Number(id));
    if (entry === undefined) return;
    if (entry.checking) {
      entry.again = true;
      return;
    }
    entry.checking = true;
    try {
      const p = await this.#connect();
      do {
        entry.again = false;
        const s = await p.broadcastCheck(Number(id));
        if (s.done) {
          this.#done(Number(id), s.answers);
          return;
        }
      } while (entry.again);
    } catch {
      // Redis is unreachable for now: the next heartbeat checks again.
    } finally {
      entry.checking = false;
    }
  }

  checkAll() {
    for (const id of this.#pending.keys()) this.check(id);
  }

  /** Rejects every broadcast waiting (terminate(), or Redis lost its state). */
  failAll(err) {
    for (const id of [...this.#pending.keys()]) this.#settle(id, err);
  }

  // The hosts' answers: { reached, failures: [{ pid, error (JSON text) }] } each.
  #done(id, answers) {
    let reached = 0;
    const failures = [];
    for (const text of answers) {
      let a;
      try {
        a = JSON.parse(text);
      } catch {
        continue;
      }
      if (Number.isSafeInteger(a.reached) && a.reached > 0) reached += a.reached;
      if (!Array.isArray(a.failures)) continue;
      for (const f of a.failures) {
        const error = deserializeError(typeof f.error === 'string' ? f.error : '');
        failures.push({ pid: Number.isSafeInteger(f.pid) ? f.pid : null, host: error.host ?? null, error });
      }
    }
    if (failures.length > 0) this.#settle(id, failedError(reached, failures));
    else this.#settle(id, null, reached);
  }

  #settle(id, err, value) {
    const entry = this.#pending.get(id);
    if (entry === undefined) return;
    this.#pending.delete(id);
    if (err) entry.reject(err);
    else entry.resolve(value);
    this.#changed();
  }
}

module.exports = { RemoteBroadcasts };
