//! The agent framework (`std`): write a scheduling policy in a few dozen lines.
//!
//! A ghOSt agent always does the same things around its policy: it drains its message queues, keeps a table
//! of the enclave's tasks (state, CPU, and the *barrier* — the seqnum of each task's newest message, which a
//! transaction must carry), frees the status words of dead tasks, takes over the tasks of a crashed or
//! upgraded predecessor by reading their status words, commits transactions and retries the ones the kernel
//! refused as stale. This module does all of that. A policy implements [`Policy`]: typed callbacks for the
//! messages (each with a default) and [`Policy::schedule`], which decides; it holds only its own run queues.
//! The same policy runs under two runtimes, on the simulated kernel ([`crate::sim`]) or any other
//! [`Backend`](crate::agent::Backend):
//!
//! - [`Centralized`]: one global agent on a CPU of its own decides for every worker CPU (the ghOSt paper's
//!   centralized model, used for its Shinjuku and Snap policies);
//! - [`PerCpu`]: an agent per CPU decides for that CPU only; it sleeps until its queue wakes it (optionally on
//!   an OS thread per agent, [`PerCpuThreads`]).
//!
//! ghOSt's own C++ framework, [ghost-userspace], has the same layering (`BasicDispatchScheduler` with
//! per-message callbacks, a task allocator, `RunRequest`s, global and per-CPU agents, in `lib/scheduler.h`,
//! `lib/agent.h` and `lib/enclave.h`); the kernel side of every message and transaction field is in the
//! ghOSt kernel's `include/uapi/linux/ghost.h` ([ghost-kernel]).
//!
//! # Write a policy: round robin
//!
//! ## CPUs: worker, agent, caller
//!
//! An enclave owns a set of CPUs. **Worker CPUs** ([`Enclave::cpus`](crate::agent::Enclave::cpus)) run the
//! enclave's tasks: they are the targets of decisions. A global agent needs a CPU that runs no task, where it
//! can spin: the **agent CPU**, reserved in the enclave and listed by
//! [`Enclave::agent_cpus`](crate::agent::Enclave::agent_cpus), not among the worker CPUs (in the simulator,
//! `Config::agent_cpus` reserves the last CPUs). Per-CPU agents need none: each shares its CPU with the tasks,
//! and the kernel switches to it when something happens there. Every commit names a **caller CPU**, the CPU
//! the committing agent thread runs on: the kernel commits the caller's own transaction last and, if the
//! agent commits a task onto its own CPU, switches the agent out. The runtimes pick it: the global agent's
//! CPU ([`Ctx::agent_cpu`]), or the per-CPU agent's own CPU.
//!
//! ## The policy
//!
//! A round robin with a time slice keeps one FIFO of runnable tasks; an idle CPU takes the first; a task that
//! has run for a slice while others wait is preempted by the next one, and goes to the back:
//!
//! ```
//! # #[cfg(feature = "sim")] {
//! use ghost_shm::framework::{Centralized, Ctx, Options, Policy, RunQueue, Task};
//! use ghost_shm::sim::{self, Config};
//!
//! struct RoundRobin {
//!     runq: RunQueue,
//!     slice_ns: u64,
//! }
//!
//! impl Policy for RoundRobin {
//!     fn name(&self) -> &'static str {
//!         "round-robin"
//!     }
//!     // New, woken, preempted and yielded tasks all arrive here (the callbacks' defaults).
//!     fn task_runnable(&mut self, _ctx: &mut Ctx<'_>, task: &Task) {
//!         self.runq.push_back(task.gtid);
//!     }
//!     fn schedule(&mut self, ctx: &mut Ctx<'_>) {
//!         for cpu in ctx.idle_cpus() {
//!             // Not `break` when a CPU gets nothing: the tasks left may be pinned to a later CPU.
//!             if !self.runq.is_empty() {
//!                 ctx.run_next(cpu, &mut self.runq);
//!             }
//!         }
//!         // The kernel preempts the running task (TASK_PREEMPT), which sends it to the back of the queue.
//!         for (cpu, task) in ctx.running() {
//!             if task.ran_for(ctx.now()) >= self.slice_ns && ctx.run_next(cpu, &mut self.runq) {
//!                 ctx.count("preemptions", 1);
//!             }
//!         }
//!     }
//! }
//!
//! // 4 CPUs, the last one the global agent's; a tick every 20 µs wakes the agent to check the slices.
//! let cfg = Config { cpus: 4, agent_cpus: 1, tasks: 200, tick_ns: Some(20_000), ..Config::default() };
//! let report = sim::run(&cfg, |enclave| {
//!     let rr = RoundRobin { runq: RunQueue::new(), slice_ns: 100_000 };
//!     Centralized::start(enclave, rr, Options::default())
//! });
//! assert_eq!(report.tasks_completed, 200);
//! assert_eq!((report.invariant_violations, report.seqnum_violations), (0, 0));
//! assert!(report.counter("preemptions") > 0);
//! # }
//! ```
//!
//! That is the whole agent. What the framework did around it:
//!
//! - **Messages → callbacks.** Each message updates the task's entry in the [`TaskTable`] (its
//!   [`TaskState`], its CPU, its barrier, its runtime) before the policy sees a copy of it. `TASK_NEW`,
//!   `TASK_WAKEUP`, `TASK_PREEMPT` and `TASK_YIELD` of a runnable task end up in
//!   [`task_runnable`](Policy::task_runnable) unless the policy overrides
//!   [`task_new`](Policy::task_new), [`task_preempted`](Policy::task_preempted) or
//!   [`task_yielded`](Policy::task_yielded).
//! - **Decisions → transactions.** [`Ctx::run_next`] pops tasks until one can run (a task that died or
//!   blocked while queued is dropped), and [`Ctx::run`] takes any [`RunRequest`]. At the end of the round
//!   the framework opens each CPU's transaction, fills in the target and the task's barrier, commits them all
//!   with one call from the caller CPU and reads the outcomes.
//! - **Stale decisions.** If a message of the task was in flight, the kernel refuses with `TARGET_STALE`
//!   (`AGENT_STALE` for a per-CPU agent whose queue got a message): the framework drains again, lets the
//!   callbacks see the newer messages and commits the same decision with the new barrier if it still makes
//!   sense. Other refusals go to [`Policy::run_failed`], whose default re-queues a still-runnable task.
//! - **Dead tasks.** `TASK_DEAD` / `TASK_DEPARTED` remove the task and free its status word.
//! - **Crashes and upgrades.** A new agent calls [`Centralized::start`] / [`PerCpu::start`] as the first one
//!   did; the runtime scans the status-word region for the tasks of the enclave, associates each with its
//!   queue at the barrier it read, and hands each to [`task_new`](Policy::task_new) in the state its status
//!   word shows. Messages the old agent left unread are already reflected in those words and are skipped.
//!   The policy has no discovery code.
//!
//! ## Run requests
//!
//! [`RunRequest::task`] runs a task on a CPU (preempting the ghOSt task there); [`RunRequest::idle`] runs
//! the idle task (the CPU stays idle even with runnable tasks, e.g. to quiet an SMT sibling);
//! [`RunRequest::unschedule`] takes the running ghOSt task off the CPU and leaves the CPU to the kernel. The
//! builder sets the transaction's options: [`allow_task_on_cpu`](RunRequest::allow_task_on_cpu)
//! (`ALLOW_TASK_ONCPU`: succeed if the task already runs there, e.g. to refresh its run flags),
//! [`commit_at`](RunRequest::commit_at) (at once in the commit call, the default; at the target's next
//! scheduling point; or greedy), [`run_flags`](RunRequest::run_flags), an explicit
//! [`task_barrier`](RunRequest::task_barrier), and [`see_stale`](RunRequest::see_stale) to receive stale
//! refusals in [`Policy::run_failed`] instead of the retry. Outcomes are typed ([`RunError`]).
//!
//! ## Runtimes
//!
//! [`Centralized`] consumes one queue (the enclave's default) and decides for every worker CPU with remote
//! transactions; a `CPU_BUSY` on its own CPU moves its commits to another agent CPU or an idle worker.
//! [`PerCpu`] creates a queue per worker CPU, configured to wake that CPU's agent; new tasks arrive on the
//! first CPU's queue and the policy moves each to a CPU with [`Ctx::place`] (which re-routes the task's
//! messages and wakes the agent there). Each agent decides only for its own CPU, with local transactions
//! checked against its agent barrier, and sleeps while its queue is quiet: an agent whose barrier did not move
//! and that nobody [`ping`](Ctx::ping)ed does not run. [`PerCpu::step`] runs the agents in turn on the
//! caller's thread (what the deterministic simulator needs); [`PerCpu::run_threads`] (and
//! [`PerCpuThreads`], its real-time simulator agent) gives each agent an OS thread that sleeps until its
//! barrier moves or it is pinged. `examples/fifo_percpu.rs` is such a policy.
//!
//! ## Clock, counters, stats
//!
//! [`Ctx::now`] is the enclave's clock (`CLOCK_MONOTONIC` on a kernel, virtual time in the simulator), the
//! time base of [`Task::on_cpu_since`] and [`Task::ran_for`]. [`Ctx::count`] adds to a policy counter; the
//! runtime's own counters (messages, commits, stale retries, wake-ups, …) and the policy's are in the
//! simulator's report ([`Report::counter`](crate::sim::Report::counter)). With
//! [`Options::stats_every`] the runtime prints one JSON object per interval of enclave time (the convention
//! of sched_ext's `scx_stats`): time, tasks by state, idle CPUs, the framework's counters (cumulative and as
//! deltas) and the policy's, so `jq` or a dashboard can follow a run.
//!
//! [ghost-userspace]: https://github.com/google/ghost-userspace
//! [ghost-kernel]: https://github.com/google/ghost-kernel

mod policy;
mod request;
mod runtime;
mod task;

pub use policy::{Ctx, Policy};
pub use request::{CommitAt, Failure, RunError, RunRequest, Target};
pub use runtime::{AgentCounts, Centralized, Options, PerCpu, PerCpuThreads, StatsSink};
pub use task::{RunQueue, Task, TaskState, TaskTable};

use std::collections::BTreeMap;

/// Named counters (a policy's, or the framework's own), in name order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters(BTreeMap<&'static str, u64>);

impl Counters {
    /// Adds `n` to `name`.
    pub fn add(&mut self, name: &'static str, n: u64) {
        *self.0.entry(name).or_insert(0) += n;
    }
    /// The value of `name` (0 if never counted).
    pub fn get(&self, name: &str) -> u64 {
        self.0.get(name).copied().unwrap_or(0)
    }
    /// Every counter, in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        self.0.iter().map(|(k, v)| (*k, *v))
    }
}
