// Type definitions for comrade's public API (hand-written; the generated binding.d.ts types
// the internal native layer only).

import { EventEmitter } from 'node:events';

/** Options of the compute-cluster-compatible constructor. */
export interface ComputeClusterOptions {
  /** Path of the worker script (required; must exist). */
  module: string;
  /** Most worker processes. Default: `Math.ceil(os.cpus().length * 1.25)`. */
  max_processes?: number;
  /** Most jobs waiting for a worker; any negative value means no limit. Default: `10 * max_processes`. */
  max_backlog?: number;
  /** Reject a job expected to take longer than this many seconds (after a warm-up). Default: 0 (off). */
  max_request_time?: number;
}

/**
 * Node-style callback of a compute-cluster job. Errors are strings, as in compute-cluster.
 */
export type ComputeClusterCallback<R = any> = (err: string | null, result?: R) => void;

/**
 * A drop-in replacement for the npm package compute-cluster@0.0.9, on the comrade engine.
 * May be called with or without `new`. Validation failures throw strings.
 */
export interface ComputeCluster extends EventEmitter {
  /** Runs `args` (any JSON value) on a worker; the worker's reply is passed to `cb`. */
  enqueue<R = any>(args: unknown, cb?: ComputeClusterCallback<R>): this;
  /** Stops every worker; `cb(null)` runs once all have exited. */
  exit(cb?: (err: null) => void): this;

  on(event: 'error', listener: (message: string) => void): this;
  on(event: 'info', listener: (message: string) => void): this;
  on(event: 'debug', listener: (message: string) => void): this;
  on(event: string | symbol, listener: (...args: any[]) => void): this;
  once(event: 'error' | 'info' | 'debug', listener: (message: string) => void): this;
  once(event: string | symbol, listener: (...args: any[]) => void): this;
}

export interface ComputeClusterConstructor {
  new (options: ComputeClusterOptions): ComputeCluster;
  (options: ComputeClusterOptions): ComputeCluster;
  readonly prototype: ComputeCluster;
}

export declare const ComputeCluster: ComputeClusterConstructor;
