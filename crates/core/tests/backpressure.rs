//! Issue 15, point 7: with the host not taking records, a worker that floods the channel must
//! not grow the engine's memory without bound. A real process (`yes` writing events to fd 3)
//! floods; the engine stops reading it once `max_waiting` bytes wait for the host, and reads
//! again when the host takes them.

use std::time::{Duration, Instant};

use comrade_core::engine::{kind, Engine, EngineConfig, Protocol};
use comrade_core::scheduler::SchedConfig;
use comrade_core::spawn::SpawnSpec;

const EVENT: &str = r#"{"t":"event","name":"e","data":"0123456789012345678901234567890123456789"}"#;

fn flooding_engine(max_waiting: usize) -> Engine {
    let sched = SchedConfig {
        max_workers: 1,
        min_workers: 1,
        ..SchedConfig::default()
    };
    let spawn = SpawnSpec {
        program: "/bin/sh".into(),
        args: vec!["-c".into(), format!("exec yes '{EVENT}' >&3").into()],
        env: vec![],
        env_remove: vec![],
        cwd: None,
        cpu: None,
        nice: 0,
    };
    let mut cfg = EngineConfig::new(sched, spawn, Protocol::Lines);
    cfg.max_waiting = max_waiting;
    cfg.kill_grace = Duration::from_millis(100);
    // The host never reacts to a wake: it takes only when this test says so.
    Engine::new(cfg, Box::new(|| {}))
}

/// Watches the waiting bytes for `polls` polls 2 ms apart (the stopping rule only: the
/// assertions are on the largest value seen, whenever the test stops).
fn largest_waiting(engine: &Engine, polls: usize) -> usize {
    let mut max = 0;
    for _ in 0..polls {
        max = max.max(engine.waiting_bytes());
        std::thread::sleep(Duration::from_millis(2));
    }
    max
}

#[test]
fn a_flooding_worker_is_not_read_past_the_bound_until_the_host_takes() {
    let bound = 1 << 20;
    let engine = flooding_engine(bound);
    // The flood reaches the bound (however long that takes on a loaded machine).
    let deadline = Instant::now() + Duration::from_secs(30);
    while engine.waiting_bytes() < bound {
        assert!(
            Instant::now() < deadline,
            "the flood never reached the bound"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    // One read past the bound at most: 16 reads of the 64 KiB decoder buffer, as records (a
    // record's framing adds about 10 bytes to each 84-byte line; twice that read is ample).
    let slack = 2 * 16 * 64 * 1024;
    let max = largest_waiting(&engine, 250);
    assert!(max <= bound + slack, "{max} bytes waiting, bound {bound}");
    // The host takes: every record is an event of that worker, in one piece, and reading
    // resumes as it takes (a stopped reader would leave no more than what waited).
    let mut taken_bytes = 0;
    while taken_bytes <= 4 * (bound + slack) {
        let Some(b) = engine.take() else {
            std::thread::sleep(Duration::from_millis(1));
            continue;
        };
        taken_bytes += b.text.len();
        let v: Vec<serde_json::Value> = serde_json::from_str(&b.text).unwrap();
        assert_eq!(v.len(), 3 * b.count);
        for r in v.chunks(3) {
            if r[0] == kind::EVENT {
                assert_eq!(r[2]["data"], "0123456789012345678901234567890123456789");
            } else {
                assert_eq!(r[0], kind::SPAWNED);
            }
        }
        assert!(engine.waiting_bytes() <= bound + slack);
    }
    engine.shutdown(false);
}
