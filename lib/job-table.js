'use strict';
// Unsettled jobs by id, for Pool and ComputeCluster (each job carries its `id`). Ids are
// consecutive and jobs mostly settle in about the order they were sent, so a ring indexed by
// the id's low bits holds them with no allocation per job (a Map rehashes as entries come and
// go). A job still unsettled when its slot comes round again moves to a Map.
const RING = 4096;
class JobTable {
  constructor() {
    this.ring = new Array(RING).fill(null);
    this.more = new Map();
    this.size = 0;
  }

  set(id, job) {
    const i = id & (RING - 1);
    const old = this.ring[i];
    if (old !== null) this.more.set(old.id, old);
    this.ring[i] = job;
    this.size++;
  }

  get(id) {
    const job = this.ring[id & (RING - 1)];
    if (job !== null && job.id === id) return job;
    return this.more.size === 0 ? undefined : this.more.get(id);
  }

  // Removes and returns the job with this id, if any.
  take(id) {
    const i = id & (RING - 1);
    const job = this.ring[i];
    if (job !== null && job.id === id) {
      this.ring[i] = null;
      this.size--;
      return job;
    }
    if (this.more.size === 0) return undefined;
    const other = this.more.get(id);
    if (other !== undefined) {
      this.more.delete(id);
      this.size--;
    }
    return other;
  }
}

module.exports = { JobTable };
