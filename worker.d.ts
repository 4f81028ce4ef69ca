// `require('comrade-pool/worker')` or `import ... from 'comrade-pool/worker'`: the API for code
// running inside a Pool worker.

/**
 * Reports progress of the job this code runs for; the caller's `onProgress` receives it. Written
 * at once, even from synchronous code; while the channel is busy only the latest value per job
 * waits.
 */
export declare function progress(value: unknown): void;
/**
 * The AbortSignal of the job this code runs for (CommonJS: `require(...).signal`, read inside a
 * job; an ES module imports `getSignal()` instead, as its bindings are static). It
 * throws `ERR_NO_JOB` outside a job. It aborts, with an `AbortError` as its reason, when the pool
 * cancels the job: its caller aborted it, or it ran past its `timeout`. Stop the work then: the
 * answer is not delivered, but it frees the job's place on this worker; a worker still running
 * the job `cancelGraceMs` later is killed.
 */
export declare const signal: AbortSignal;
/** The current job's AbortSignal, as a function (for ES modules, whose bindings are static). */
export declare function getSignal(): AbortSignal;
/**
 * The caller's trace context for the job this code runs for: `{ traceparent }`, a W3C
 * traceparent (`00-<trace id>-<parent id>-<flags>`) that a `comrade:job` tracing subscriber set
 * in the parent, so that spans made here continue the caller's trace; null when the call
 * carries none. Throws `ERR_NO_JOB` outside a job.
 */
export declare function traceContext(): { traceparent: string } | null;
/** Sends an event to the pool: `pool.on('event', (name, data, pid) => ...)`. */
export declare function emit(name: string, data?: unknown): void;
/** No more jobs for this worker: it is stopped once the jobs it holds are answered. */
export declare function retire(): void;
/**
 * Registers `handler(message)` for the pool's broadcasts (`pool.broadcast(message)`). Every
 * registered handler runs for each message, in registration order, between jobs' callbacks (jobs
 * keep running). The worker acknowledges the message once every handler returned (a returned
 * Promise is awaited); that counts it as reached. A handler that throws or rejects still lets the
 * ack go, carrying its error: the broadcast then rejects with `ERR_BROADCAST_FAILED`. Without a
 * handler, messages are acknowledged and ignored. Returns a function that removes the handler.
 */
export declare function onMessage(handler: (message: any) => unknown): () => void;
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
