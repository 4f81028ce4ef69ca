//! comrade-core: the engine of the comrade process pool, with no Node dependency.
//!
//! - [`scheduler`]: the pure state machine (queue, backlog, estimator, dispatch).
//! - [`frame`]: bounded line framing of worker channels (Node's IPC `json` mode).
//! - [`estimator`]: expected-wait admission control.

pub mod direct_policy;
pub mod engine;
pub mod estimator;
pub mod frame;
pub mod scheduler;
pub mod spawn;
