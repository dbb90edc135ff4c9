//! A per-CPU FIFO agent on the [`framework`](ghost_shm::framework): an agent per CPU, each with its own queue
//! and run queue, deciding only for its own CPU with local transactions; it sleeps until its queue wakes it.
//! New tasks arrive on the first CPU's queue and are spread round-robin over the CPUs.
//!
//! Run it on the simulated kernel: `cargo run --release --example fifo_percpu` (see also `demo`).
#![allow(dead_code)]

use ghost_shm::agent::{AgentError, Backend, Enclave};
use ghost_shm::framework::{Ctx, Options, PerCpu, Policy, RunQueue, Task};
use std::collections::BTreeMap;

// ---- the policy -------------------------------------------------------------------------------------------
/// A FIFO per CPU; each task lives on one CPU, chosen round-robin when it arrives.
#[derive(Debug, Default)]
pub struct Fifo {
    runqs: BTreeMap<u32, RunQueue>,
    next: usize,
}

impl Policy for Fifo {
    fn name(&self) -> &'static str {
        "fifo-percpu"
    }
    fn task_new(&mut self, ctx: &mut Ctx<'_>, task: &Task) {
        // Round robin over the CPUs the task may run on (its affinity).
        let cpus: Vec<u32> = ctx.cpus().filter(|&c| task.may_run_on(c)).collect();
        if !cpus.is_empty() {
            let c = cpus[self.next % cpus.len()];
            self.next = self.next.wrapping_add(1);
            if ctx.place(task.gtid, c) {
                ctx.count("placed", 1);
            }
        }
        if task.is_runnable() {
            self.task_runnable(ctx, task);
        }
    }
    fn task_runnable(&mut self, ctx: &mut Ctx<'_>, task: &Task) {
        let home = ctx.task(task.gtid).and_then(|t| t.home).unwrap_or(ctx.agent_cpu());
        self.runqs.entry(home).or_default().push_back(task.gtid);
    }
    fn schedule(&mut self, ctx: &mut Ctx<'_>) {
        for cpu in ctx.idle_cpus() {
            if let Some(q) = self.runqs.get_mut(&cpu) {
                ctx.run_next(cpu, q);
            }
        }
    }
}
// ---- end of the policy ------------------------------------------------------------------------------------

/// The per-CPU FIFO agents, as the demo and the tests start them.
pub struct PerCpuFifo;

impl PerCpuFifo {
    /// Starts an agent per CPU with queues of `slots` slots (tasks already in the enclave are taken over by the
    /// framework's discovery).
    pub fn start<B: Backend>(e: &Enclave<B>, slots: u32) -> Result<PerCpu<Fifo, B::Region>, AgentError> {
        Self::start_with(e, Options::default().queue_slots(slots))
    }
    /// Starts the agents with `opts`.
    pub fn start_with<B: Backend>(e: &Enclave<B>, opts: Options) -> Result<PerCpu<Fifo, B::Region>, AgentError> {
        PerCpu::start(e, Fifo::default(), opts)
    }
}

fn main() {
    use ghost_shm::sim::{self, Config};
    let cfg = Config::default();
    let report = sim::run(&cfg, |e| PerCpuFifo::start_with(e, Options::default()));
    println!("{report}");
}
