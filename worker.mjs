// `import { progress, getInitData } from 'comrade-pool/worker'`: the CommonJS worker API
// re-exported (one instance per process, whichever way it is loaded).
import api from './worker.js';

export const {
  progress, emit, retire, onMessage, getInitData, getSignal, traceContext, isWorker, STATE,
} = api;

// Deprecated (use getInitData()): a live binding, set once the pool has given this worker its
// initData (in init() and in jobs; `undefined` at the module's top level).
export let initData;
const state = globalThis[STATE];
if (state) {
  if (state.initDataReady) initData = state.initData;
  const listeners = state[api.INIT_DATA_LISTENERS] || (state[api.INIT_DATA_LISTENERS] = []);
  listeners.push((data) => {
    initData = data;
  });
}

export default api;
