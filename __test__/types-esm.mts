// Compiled (not run) with __test__/types.ts: the package's types as an ES module sees them,
// through the "import" condition of its `exports`. Every name imported here is a named export
// of the .mjs entry points at run time (__test__/entry-points.test.mjs checks those).
import comrade, { ComputeCluster, Pool, PoolError, codes, ncpu, startWorkerHost } from 'comrade-pool';
import CC from 'comrade-pool/compute-cluster';
import * as workerApi from 'comrade-pool/worker';
import workerDefault, {
  emit, getInitData, getSignal, initData, isWorker, onMessage, progress, retire, traceContext,
} from 'comrade-pool/worker';
// @ts-expect-error the worker API has no such export
import { nope } from 'comrade-pool/worker';
// @ts-expect-error `signal` is a per-job getter of the CommonJS object, not an ES export
import { signal } from 'comrade-pool/worker';

const pool = new Pool<{ add(a: number, b: number): number }>({ module: './tasks.mjs' });
const sum: Promise<number> = pool.call('add', 1, 2);
const same: typeof Pool = comrade.Pool;
const cc = new ComputeCluster({ module: './w.js' });
const cc2 = new CC({ module: './w.js', max_processes: 1 });
const cores: number = ncpu().logical;
const code: string = codes.WORKER_EXITED;
const isPoolError = (e: unknown): boolean => e instanceof PoolError;
void sum; void same; void cc; void cc2; void cores; void code; void isPoolError; void nope; void startWorkerHost;

if (isWorker && workerApi.isWorker) {
  const data = getInitData<{ salt: string }>();
  const salt: string = data.salt;
  const legacy: unknown = initData;
  progress(0.5);
  emit('ready', { salt });
  const off: () => void = onMessage(async (m: { level: number }) => void m.level);
  off();
  retire();
  const aborted: boolean = getSignal().aborted || workerDefault.signal.aborted;
  const tp: string | undefined = traceContext()?.traceparent;
  void legacy; void aborted; void signal; void tp;
}
// @ts-expect-error getInitData takes no argument
getInitData('x');
