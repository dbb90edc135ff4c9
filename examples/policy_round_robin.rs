//! Round robin with a time slice, centralized, on the [`framework`](ghost_shm::framework): one FIFO of
//! runnable tasks; an idle CPU takes the first; a task that has run for a slice while others wait is
//! preempted by the next one and goes to the back. The agent checks slices when a tick (`tick_ns`) or any
//! other event wakes it. This is the policy of the crate docs' "write a policy" chapter.
//!
//! `cargo run --release --example policy_round_robin [-- SLICE_US]` (default 500 µs).
#![allow(dead_code)]

use ghost_shm::framework::{Centralized, Ctx, Options, Policy, RunQueue, Task};

// ---- the policy -------------------------------------------------------------------------------------------
/// Round robin: FIFO order, at most `slice_ns` on a CPU while others wait.
#[derive(Debug)]
pub struct RoundRobin {
    runq: RunQueue,
    slice_ns: u64,
}

impl RoundRobin {
    /// A round robin with this time slice.
    pub fn new(slice_ns: u64) -> Self {
        RoundRobin { runq: RunQueue::new(), slice_ns }
    }
}

impl Policy for RoundRobin {
    fn name(&self) -> &'static str {
        "round-robin"
    }
    // New, woken, preempted and yielded tasks all arrive here (the callbacks' defaults).
    fn task_runnable(&mut self, _ctx: &mut Ctx<'_>, task: &Task) {
        self.runq.push_back(task.gtid);
    }
    fn schedule(&mut self, ctx: &mut Ctx<'_>) {
        for cpu in ctx.idle_cpus() {
            // Not `break` when a CPU gets nothing: the tasks left may be pinned to a later CPU.
            if !self.runq.is_empty() {
                ctx.run_next(cpu, &mut self.runq);
            }
        }
        // The kernel preempts the running task (TASK_PREEMPT), which sends it to the back of the queue.
        for (cpu, task) in ctx.running() {
            if task.ran_for(ctx.now()) >= self.slice_ns && ctx.run_next(cpu, &mut self.runq) {
                ctx.count("preemptions", 1);
            }
        }
    }
}
// ---- end of the policy ------------------------------------------------------------------------------------

fn main() {
    use ghost_shm::sim::{self, Config, Workload};
    let slice_us = match std::env::args().nth(1).map(|a| a.parse::<u64>()) {
        None => 500,
        Some(Ok(us)) if us > 0 => us,
        Some(_) => {
            eprintln!("usage: policy_round_robin [SLICE_US]  (a positive number of µs)");
            std::process::exit(2)
        }
    };
    let tick_ns = (slice_us * 1000 / 4).max(1000);
    let cfg = Config {
        agent_cpus: 1,
        tick_ns: Some(tick_ns),
        workload: Workload::CPU_BOUND,
        tasks: 500,
        ..Config::default()
    };
    let report = sim::run(&cfg, |e| Centralized::start(e, RoundRobin::new(slice_us * 1000), Options::default()));
    println!("round robin, slice {slice_us} µs, tick {} µs\n{report}", tick_ns / 1000);
}
