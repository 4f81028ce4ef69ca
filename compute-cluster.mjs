// `import ComputeCluster from 'comrade-pool/compute-cluster'`: the CommonJS constructor itself
// (one instance per process, whichever way it is loaded), as `require` gives it.
import ComputeCluster from './compute-cluster.js';

export default ComputeCluster;
