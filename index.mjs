// comrade-pool as an ES module: the CommonJS entry point re-exported, so that `import` and
// `require` share one engine instance (and the same classes) in a process.
import comrade from './index.js';

export const { Pool, PoolError, codes, ncpu, ComputeCluster, startWorkerHost } = comrade;
export default comrade;
