//! A centralized FIFO agent (the ghOSt paper's global-agent model) on the [`framework`](ghost_shm::framework):
//! one agent, on a CPU of its own, gets every task's messages and runs the longest-waiting runnable task on
//! each idle worker CPU; a task keeps its CPU until it blocks, yields or exits.
//!
//! Run it on the simulated kernel: `cargo run --release --example fifo_centralized` (see also `demo`).
#![allow(dead_code)]

use ghost_shm::agent::{AgentError, Backend, Enclave};
use ghost_shm::framework::{Centralized, Ctx, Options, Policy, RunQueue, Task};

// ---- the policy -------------------------------------------------------------------------------------------
/// First come, first served.
#[derive(Debug, Default)]
pub struct Fifo {
    runq: RunQueue,
}

impl Policy for Fifo {
    fn name(&self) -> &'static str {
        "fifo"
    }
    fn task_runnable(&mut self, _ctx: &mut Ctx<'_>, task: &Task) {
        self.runq.push_back(task.gtid);
    }
    fn schedule(&mut self, ctx: &mut Ctx<'_>) {
        for cpu in ctx.idle_cpus() {
            // Not `break` when a CPU gets nothing: the tasks left may be pinned to a later CPU.
            if !self.runq.is_empty() && ctx.run_next(cpu, &mut self.runq) {
                ctx.count("dispatched", 1);
            }
        }
    }
}
// ---- end of the policy ------------------------------------------------------------------------------------

/// The centralized FIFO agent, as the demo and the tests start it.
pub struct CentralizedFifo;

impl CentralizedFifo {
    /// Starts the agent on `agent_cpu` with queues of `slots` slots (tasks already in the enclave are taken
    /// over by the framework's discovery).
    pub fn start<B: Backend>(
        e: &Enclave<B>,
        slots: u32,
        agent_cpu: u32,
    ) -> Result<Centralized<Fifo, B::Region>, AgentError> {
        Self::start_with(e, Options::default().queue_slots(slots).agent_cpu(agent_cpu))
    }
    /// Starts the agent with `opts`.
    pub fn start_with<B: Backend>(e: &Enclave<B>, opts: Options) -> Result<Centralized<Fifo, B::Region>, AgentError> {
        Centralized::start(e, Fifo::default(), opts)
    }
}

fn main() {
    use ghost_shm::sim::{self, Config};
    let cfg = Config { agent_cpus: 1, ..Config::default() };
    let report = sim::run(&cfg, |e| CentralizedFifo::start_with(e, Options::default()));
    println!("{report}");
}
