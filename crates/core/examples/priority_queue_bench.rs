//! Submit + dispatch ops/s of the scheduler with 1M jobs queued over 8 priority levels (issue
//! 10). One worker with one slot stays busy; each step completes its job (which dispatches the
//! highest waiting one) and submits a new job at a random level, so the queue stays at 1M.
//! Also times cancelling queued jobs at random.
//!
//!   cargo run --release -p comrade-core --example priority_queue_bench
use std::time::Instant;

use comrade_core::scheduler::{Action, JobOpts, SchedConfig, Scheduler};

fn drain(s: &mut Scheduler, now: Instant) -> Option<(u64, u32)> {
    let mut sent = None;
    while let Some(a) = s.next_action() {
        match a {
            Action::Spawn(w) => {
                s.spawned(w);
                s.worker_serving(w, now);
            }
            Action::Send { worker, job } => {
                s.mark_sent(worker, job, now);
                sent = Some((worker, job));
            }
            Action::Stop(_) => {}
        }
    }
    sent
}

fn main() {
    const QUEUED: u32 = 1_000_000;
    const STEPS: u32 = 1_000_000;
    let t = Instant::now();
    let mut s = Scheduler::new_at(SchedConfig::default(), t);
    let mut rng: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut level = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        (rng % 8) as f64
    };
    let opts = |priority| JobOpts {
        priority,
        ..JobOpts::default()
    };
    s.submit(0, Box::new([])).unwrap();
    let mut running = drain(&mut s, t).expect("the first job runs");
    let t0 = Instant::now();
    for id in 1..=QUEUED {
        s.submit_with(id, Box::new([]), opts(level())).unwrap();
    }
    let fill = t0.elapsed().as_secs_f64();
    let mut next = QUEUED + 1;
    let t1 = Instant::now();
    for _ in 0..STEPS {
        s.complete(running.0, running.1, t).unwrap();
        running = drain(&mut s, t).expect("a queued job runs");
        s.submit_with(next, Box::new([]), opts(level())).unwrap();
        next += 1;
    }
    let steady = t1.elapsed().as_secs_f64();
    assert_eq!(s.queued(), QUEUED as usize);
    let t2 = Instant::now();
    let mut cancelled = 0u32;
    for id in (next - QUEUED..next).step_by(7) {
        if s.cancel(id) == comrade_core::scheduler::Cancelled::Queued {
            cancelled += 1;
        }
    }
    let cancel = t2.elapsed().as_secs_f64();
    println!(
        "fill: {QUEUED} submits in {fill:.3} s ({:.0} ops/s)",
        f64::from(QUEUED) / fill
    );
    println!(
        "steady, {QUEUED} queued over 8 levels: {STEPS} × (complete + dispatch + submit) in {steady:.3} s ({:.0} steps/s, {:.0} ops/s counting submit and dispatch apart)",
        f64::from(STEPS) / steady,
        2.0 * f64::from(STEPS) / steady
    );
    println!(
        "cancel: {cancelled} queued jobs in {cancel:.3} s ({:.0} ops/s)",
        f64::from(cancelled) / cancel
    );
}
