//! A Shinjuku-style centralized preemptive policy on the [`framework`](ghost_shm::framework), after the ghOSt
//! paper's Shinjuku policy (itself after Shinjuku, NSDI '19): a global agent keeps one FIFO of requests and
//! preempts any request that has run longer than a slice of tens of µs, longest-running first, so that short
//! requests never wait behind long ones; the preempted request goes to the back. The global agent in ghOSt
//! spins; here a tick every few µs wakes it.
//!
//! `cargo run --release --example policy_shinjuku [-- SLICE_US]` (default 30 µs).
#![allow(dead_code)]

use ghost_shm::framework::{Centralized, Ctx, Options, Policy, RunQueue, Task};

// ---- the policy -------------------------------------------------------------------------------------------
/// Shinjuku: FIFO, preemption after `slice_ns` (tens of µs) when requests wait.
#[derive(Debug)]
pub struct Shinjuku {
    runq: RunQueue,
    slice_ns: u64,
}

impl Shinjuku {
    /// A Shinjuku policy with this preemption slice.
    pub fn new(slice_ns: u64) -> Self {
        Shinjuku { runq: RunQueue::new(), slice_ns }
    }
}

impl Policy for Shinjuku {
    fn name(&self) -> &'static str {
        "shinjuku"
    }
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
        // Over-slice requests, longest-running first, yield their CPU to waiting ones.
        let now = ctx.now();
        let mut over: Vec<(u64, u32)> = ctx.running().iter().map(|(c, t)| (t.ran_for(now), *c)).collect();
        over.retain(|&(ran, _)| ran >= self.slice_ns);
        over.sort_unstable_by(|a, b| b.cmp(a));
        for (_, cpu) in over {
            if !self.runq.is_empty() && ctx.run_next(cpu, &mut self.runq) {
                ctx.count("preemptions", 1);
            }
        }
    }
}
// ---- end of the policy ------------------------------------------------------------------------------------

fn main() {
    use ghost_shm::sim::{self, Config, Workload};
    let slice_us = match std::env::args().nth(1).map(|a| a.parse::<u64>()) {
        None => 30,
        Some(Ok(us)) if us > 0 => us,
        Some(_) => {
            eprintln!("usage: policy_shinjuku [SLICE_US]  (a positive number of µs)");
            std::process::exit(2)
        }
    };
    let tick_ns = (slice_us * 1000 / 3).max(1000);
    let cfg =
        Config { agent_cpus: 1, tick_ns: Some(tick_ns), workload: Workload::MIXED, tasks: 1000, ..Config::default() };
    let report = sim::run(&cfg, |e| Centralized::start(e, Shinjuku::new(slice_us * 1000), Options::default()));
    println!("shinjuku, slice {slice_us} µs, tick {} µs\n{report}", tick_ns / 1000);
}
