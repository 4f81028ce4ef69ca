//! comrade-core: the engine of the comrade process pool, with no Node dependency.
//!
//! - [`scheduler`]: the pure state machine (queue, backlog, dispatch, sizing, retries,
//!   deadlines), on an injected clock; worker state lives in its slots.
//! - [`engine`]: carries out the scheduler's decisions on real workers; split by concern
//!   (cycle, session, lifecycle, outbox, io, direct reads, stats).
//! - [`direct_policy`]: when the host should read worker channels itself.
//! - [`frame`]: the line decoder (from `comrade-protocol`) and Node IPC's message checks.
//! - [`estimator`]: expected-wait admission control.
//! - [`burst`]: deadline-driven growth and speculation rules.
//! - [`broadcast`]: which workers a broadcast waits for, and its tally.
//! - [`idhash`]: the hasher of maps keyed by the pool's own ids.
//! - [`metrics`]: histogram buckets and exit counts for `pool.metrics()`.
//! - [`spawn`]: process spawning, reaping, signals, CPU and memory queries.

pub mod broadcast;
pub mod burst;
pub mod direct_policy;
pub mod engine;
pub mod estimator;
pub mod frame;
pub mod idhash;
pub mod metrics;
pub mod scheduler;
pub mod spawn;
