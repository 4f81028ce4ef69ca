'use strict';
// Backpressure (issue 10, item 9): `pool.needsDrain` is true while the jobs waiting for a
// worker number at least `drainThreshold`, and `'drain'` fires when they drop back below.
//
// What waits: the jobs in the engine's queue (among them those waiting for a worker to start)
// and the jobs submitted in this tick that the session hands to the engine on a microtask
// (Session.waiting counts both). Callers of a shared job (`key`) wait for no worker: they are
// pending, not waiting. Items of a batch not pulled yet are no jobs at all.
//
// Nothing is counted until someone asks: the first read of needsDrain or the first 'drain'
// listener starts the watch (the session then calls check() after each hand-over and each
// batch of records). While the count is at or above the threshold (armed), the engine's
// per-dispatch records are on, so that a job a worker takes wakes the host even when no result
// comes (a worker that has just started takes queued jobs without answering any); they go off
// with the 'drain'.

class Backpressure {
  #session;
  #threshold;
  #emit; // () => void: emits 'drain'
  #armed = false;
  #watching = false;

  constructor(session, threshold, emit) {
    this.#session = session;
    this.#threshold = threshold;
    this.#emit = emit;
  }

  get threshold() {
    return this.#threshold;
  }

  /** Whether the waiting jobs number at least the threshold (and, then, 'drain' will follow). */
  needsDrain() {
    this.watch();
    const need = this.#session.waiting >= this.#threshold;
    if (need) this.#arm();
    return need;
  }

  watch() {
    if (this.#watching) return;
    this.#watching = true;
    this.#session.onQueueChange(() => this.#check());
  }

  #arm() {
    if (this.#armed) return;
    this.#armed = true;
    this.#session.setDebug(true);
  }

  #check() {
    const waiting = this.#session.waiting;
    if (!this.#armed) {
      if (waiting >= this.#threshold) this.#arm();
    } else if (waiting < this.#threshold) {
      this.#armed = false;
      this.#session.setDebug(false);
      this.#emit();
    }
  }
}

module.exports = { Backpressure };
