// `require('comrade-pool/worker')` or `import ... from 'comrade-pool/worker'`: the API for code
// running inside a Pool worker.

/** Reports progress of the job this code runs for; the caller's `onProgress` receives it. */
export declare function progress(value: unknown): void;
/** Sends an event to the pool: `pool.on('event', (name, data, pid) => ...)`. */
export declare function emit(name: string, data?: unknown): void;
/** No more jobs for this worker: it is stopped once the jobs it holds are answered. */
export declare function retire(): void;
/** True inside a pool worker. */
export declare const isWorker: boolean;
/**
 * The pool's `initData` (also passed to the module's `init`). Call it in `init` or in a job: at
 * the module's top level the worker has not received it yet, and it throws
 * (`code: 'ERR_INIT_DATA_NOT_READY'`). Outside a pool worker it throws `ERR_NOT_IN_WORKER`.
 */
export declare function getInitData<T = unknown>(): T;
/**
 * @deprecated Use `getInitData()`. The pool's `initData`, read in `init` or in a job (with
 * `require`, reading it at the module's top level throws; an ES module's live binding is
 * `undefined` there).
 */
export declare const initData: unknown;
/** The global key of the worker state (internal). */
export declare const STATE: unique symbol;
