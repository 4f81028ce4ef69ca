// `import ... from 'comrade-pool/worker'`: the ES module's types (worker.mjs). The same API as
// worker.d.ts, except `signal`: a per-job getter of the CommonJS object, which an ES module's
// static bindings cannot be; import `getSignal()` (or read `signal` on the default export).
import * as api from './worker.js';

export {
  progress, getSignal, traceContext, emit, retire, onMessage, isWorker, getInitData, initData,
  STATE,
} from './worker.js';
/** The CommonJS module itself (`require('comrade-pool/worker')`), `signal` getter included. */
declare const worker: typeof api;
export default worker;
