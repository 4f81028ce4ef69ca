//! comrade-worker: the Rust side of the comrade worker protocol (built out with the modern Pool).
