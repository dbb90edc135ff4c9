//! The [`Policy`] trait and the [`Ctx`] its callbacks get.

use super::request::{Failure, RunRequest, Target};
use super::task::{RunQueue, Task, TaskState, TaskTable};
use super::Counters;
use crate::abi::Gtid;
use crate::agent::AgentError;

/// A scheduling policy: typed callbacks for the kernel's messages, and [`schedule`](Policy::schedule), which
/// takes decisions. Every callback but `schedule` has a default, so a policy implements only what it cares
/// about; the defaults send every task that becomes runnable to [`task_runnable`](Policy::task_runnable).
///
/// The framework keeps the task table (state, CPU, barrier of each task), frees status words, rediscovers
/// tasks after a crash or an upgrade (they arrive through [`task_new`](Policy::task_new) like new ones),
/// commits the decisions and retries stale ones. A policy holds only its own run queues.
pub trait Policy {
    /// A short name, for stats lines.
    fn name(&self) -> &'static str {
        "policy"
    }
    /// A task entered the enclave, or was found by discovery when this agent started (its state then comes
    /// from its status word; a task found on a CPU is [`TaskState::OnCpu`] with no known CPU). Default: if
    /// runnable, [`task_runnable`](Policy::task_runnable).
    fn task_new(&mut self, ctx: &mut Ctx<'_>, task: &Task) {
        if task.is_runnable() {
            self.task_runnable(ctx, task);
        }
    }
    /// A task became runnable and waits for a CPU (a wake-up, and by default also a new, preempted, yielded
    /// or failed task).
    fn task_runnable(&mut self, _ctx: &mut Ctx<'_>, _task: &Task) {}
    /// A task blocked (or switched to another task with `switchto`).
    fn task_blocked(&mut self, _ctx: &mut Ctx<'_>, _task: &Task) {}
    /// A task lost its CPU involuntarily (to another decision, a higher class, or a latched task replaced).
    /// Default: [`task_runnable`](Policy::task_runnable).
    fn task_preempted(&mut self, ctx: &mut Ctx<'_>, task: &Task) {
        self.task_runnable(ctx, task);
    }
    /// A task yielded its CPU. Default: [`task_runnable`](Policy::task_runnable).
    fn task_yielded(&mut self, ctx: &mut Ctx<'_>, task: &Task) {
        self.task_runnable(ctx, task);
    }
    /// A task left ghOSt (another scheduling class). It is gone from the table. Default:
    /// [`task_dead`](Policy::task_dead).
    fn task_departed(&mut self, ctx: &mut Ctx<'_>, task: &Task) {
        self.task_dead(ctx, task);
    }
    /// A task exited. It is gone from the table and its status word is freed. Queued copies in a
    /// [`RunQueue`] are skipped by [`Ctx::run_next`], so removing it is optional.
    fn task_dead(&mut self, _ctx: &mut Ctx<'_>, _task: &Task) {}
    /// A task's CPU affinity changed (now in [`Task::affinity`]; decisions outside it are refused by
    /// [`Ctx::run`]). Default: a task [`place`](Ctx::place)d on a CPU it may no longer use moves to the first
    /// CPU it may use and, if runnable, goes through [`task_runnable`](Policy::task_runnable) again.
    fn task_affinity_changed(&mut self, ctx: &mut Ctx<'_>, task: &Task) {
        let (Some(home), Some(allowed)) = (task.home, task.affinity) else { return };
        if allowed.contains(home as usize) {
            return;
        }
        let Some(cpu) = ctx.cpus().find(|&c| allowed.contains(c as usize)) else { return };
        if ctx.place(task.gtid, cpu) {
            if let Some(t) = ctx.task(task.gtid).copied().filter(|t| t.is_runnable()) {
                self.task_runnable(ctx, &t);
            }
        }
    }
    /// A task's nice value changed (now in [`Task::nice`]).
    fn task_priority_changed(&mut self, _ctx: &mut Ctx<'_>, _task: &Task) {}
    /// A latch failed (BPF-produced message). Default: if runnable, [`task_runnable`](Policy::task_runnable).
    fn task_latch_failure(&mut self, ctx: &mut Ctx<'_>, task: &Task, _errno: i32) {
        if task.is_runnable() {
            self.task_runnable(ctx, task);
        }
    }
    /// A timer tick on `cpu` (while a ghOSt task or the agent runs there; the simulator's `tick_ns`).
    fn cpu_tick(&mut self, _ctx: &mut Ctx<'_>, _cpu: u32) {}
    /// A ghOSt timerfd fired on `cpu` with its cookie.
    fn cpu_timer(&mut self, _ctx: &mut Ctx<'_>, _cpu: u32, _cookie: u64) {}
    /// `cpu` is available to ghOSt again.
    fn cpu_available(&mut self, _ctx: &mut Ctx<'_>, _cpu: u32) {}
    /// A higher scheduling class took `cpu`: it gets no decisions until it is available. If it was the
    /// global agent's CPU, the runtime has already moved the agent's commits to another CPU.
    fn cpu_busy(&mut self, _ctx: &mut Ctx<'_>, _cpu: u32) {}
    /// A decision did not take effect (any refusal except a stale one, which the framework retries with the
    /// newer barrier unless the request asked [`see_stale`](RunRequest::see_stale)). Default: if the task
    /// is still runnable, [`task_runnable`](Policy::task_runnable).
    fn run_failed(&mut self, ctx: &mut Ctx<'_>, failure: Failure) {
        if let Some(task) = failure.request.gtid().and_then(|g| ctx.task(g)).copied() {
            if task.is_runnable() {
                self.task_runnable(ctx, &task);
            }
        }
    }
    /// Takes decisions: [`Ctx::run`] / [`Ctx::run_next`] for the CPUs in [`Ctx::idle_cpus`], or preempts
    /// [`Ctx::current`] tasks. Called after the messages of a round are handled; the framework commits
    /// everything requested in the round at once.
    fn schedule(&mut self, ctx: &mut Ctx<'_>);
}

/// What a per-CPU runtime needs from the outside world during a callback.
pub(crate) trait Ops {
    /// Routes `g`'s messages to the queue of `cpu`'s agent, if `barrier` is current.
    fn place(&self, g: Gtid, cpu: u32, barrier: u32) -> Result<(), AgentError>;
}

/// Which CPUs a round decides for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    /// Every worker CPU (the global agent).
    Global,
    /// Only this CPU (its per-CPU agent).
    Local(u32),
}

/// The agent's view of one CPU.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CpuView {
    /// A worker CPU of the enclave (runs ghOSt tasks).
    pub worker: bool,
    /// Not taken by a higher class (`CPU_BUSY`).
    pub available: bool,
    /// The task on it, as far as the agent knows.
    pub current: Option<Gtid>,
}

/// The decisions of one round.
#[derive(Debug, Default)]
pub(crate) struct Round {
    pub requests: std::vec::Vec<RunRequest>,
    /// Sync groups: each committed all-or-nothing.
    pub groups: std::vec::Vec<std::vec::Vec<RunRequest>>,
    /// Committed requests without an outcome yet (a commit point after the commit call); they keep their
    /// CPU and task from other decisions until the outcome is read, in a later round.
    pub inflight: std::vec::Vec<RunRequest>,
    pub pings: std::vec::Vec<u32>,
}

/// What a policy callback sees and does: the clock, the task table, the CPUs, and the decisions of this round.
pub struct Ctx<'a> {
    pub(crate) now: u64,
    pub(crate) agent_cpu: u32,
    pub(crate) scope: Scope,
    pub(crate) tasks: &'a mut TaskTable,
    pub(crate) cpus: &'a [CpuView],
    pub(crate) round: &'a mut Round,
    pub(crate) counters: &'a mut Counters,
    pub(crate) ops: &'a dyn Ops,
}

impl core::fmt::Debug for Ctx<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Ctx").field("now", &self.now).field("agent_cpu", &self.agent_cpu).finish_non_exhaustive()
    }
}

impl Ctx<'_> {
    /// The enclave's clock (ns) at the start of this round.
    pub fn now(&self) -> u64 {
        self.now
    }
    /// The CPU this agent runs on: the global agent's own CPU, or the per-CPU agent's CPU (which is also the
    /// only CPU it decides for).
    pub fn agent_cpu(&self) -> u32 {
        self.agent_cpu
    }
    /// The enclave's worker CPUs (every CPU ghOSt tasks may run on, in this round's scope or not).
    pub fn cpus(&self) -> impl Iterator<Item = u32> + '_ {
        self.cpus.iter().enumerate().filter(|(_, c)| c.worker).map(|(i, _)| i as u32)
    }
    /// The task `g`.
    pub fn task(&self, g: Gtid) -> Option<&Task> {
        self.tasks.get(g)
    }
    /// The task table.
    pub fn tasks(&self) -> &TaskTable {
        self.tasks
    }
    /// The task on `cpu`, as far as the agent knows.
    pub fn current(&self, cpu: u32) -> Option<&Task> {
        self.cpus.get(cpu as usize)?.current.and_then(|g| self.tasks.get(g))
    }
    /// The CPUs this round decides for that run no task and have no decision yet.
    pub fn idle_cpus(&self) -> std::vec::Vec<u32> {
        self.in_scope().filter(|&c| self.cpus[c as usize].current.is_none() && !self.targeted(c)).collect()
    }
    /// The CPUs this round decides for that run a task and have no decision yet, with that task.
    pub fn running(&self) -> std::vec::Vec<(u32, Task)> {
        self.in_scope().filter(|&c| !self.targeted(c)).filter_map(|c| Some((c, *self.current(c)?))).collect()
    }
    fn in_scope(&self) -> impl Iterator<Item = u32> + '_ {
        self.cpus
            .iter()
            .enumerate()
            .filter(|(i, c)| {
                c.worker && c.available && (self.scope == Scope::Global || self.scope == Scope::Local(*i as u32))
            })
            .map(|(i, _)| i as u32)
    }
    fn targeted(&self, cpu: u32) -> bool {
        self.round
            .requests
            .iter()
            .chain(self.round.groups.iter().flatten())
            .chain(self.round.inflight.iter())
            .any(|r| r.cpu == cpu)
    }
    /// Whether `req` is acceptable now: its CPU is in scope, available and has no decision yet; its task is
    /// runnable, off-CPU and not picked already (or on that very CPU with `ALLOW_TASK_ONCPU`).
    pub fn can_run(&self, req: &RunRequest) -> bool {
        let cpu_ok = self.in_scope().any(|c| c == req.cpu) && !self.targeted(req.cpu);
        let task_ok = match req.target {
            Target::Task(g) => self.tasks.get(g).is_some_and(|t| {
                let picked = self
                    .round
                    .requests
                    .iter()
                    .chain(self.round.groups.iter().flatten())
                    .chain(self.round.inflight.iter())
                    .any(|r| r.gtid() == Some(g));
                let here = t.state == TaskState::OnCpu
                    && t.cpu == Some(req.cpu)
                    && req.commit_flags.contains(crate::abi::CommitFlags::ALLOW_TASK_ONCPU);
                !picked && (t.is_runnable() || here) && t.may_run_on(req.cpu)
            }),
            Target::Idle | Target::Unschedule => true,
        };
        cpu_ok && task_ok
    }
    /// Requests `req` for this round; `false` (and nothing requested) if [`can_run`](Ctx::can_run) says no.
    pub fn run(&mut self, req: RunRequest) -> bool {
        let ok = self.can_run(&req);
        if ok {
            self.round.requests.push(req);
        }
        ok
    }
    /// Requests `reqs` as a sync group (a gang decision): committed all-or-nothing
    /// (`GHOST_IOC_SYNC_GROUP_TXN`), so either every member's task runs or none does. `false` (and nothing
    /// requested) unless every member could [`run`](Ctx::run) on its own and no two share a CPU or a task.
    /// Failed groups reach [`Policy::run_failed`] member by member and are not retried.
    pub fn run_group(&mut self, reqs: &[RunRequest]) -> bool {
        // Each member is checked against the earlier ones: stage them in the round, then take them back.
        let before = self.round.requests.len();
        let mut ok = !reqs.is_empty();
        for r in reqs {
            ok = ok && self.can_run(r);
            self.round.requests.push(*r);
        }
        self.round.requests.truncate(before);
        if ok {
            self.round.groups.push(reqs.to_vec());
        }
        ok
    }
    /// Runs the first task of `q` that can run on `cpu`, dropping tasks that cannot run anywhere now (dead,
    /// blocked or on a CPU) and passing over (keeping, in order) runnable ones refused for `cpu` (affinity,
    /// already picked this round, a deferred commit in flight); `false` if none, or if `cpu` cannot take a
    /// task now (out of scope, unavailable or already decided), in which case `q` is untouched.
    pub fn run_next(&mut self, cpu: u32, q: &mut RunQueue) -> bool {
        if !self.in_scope().any(|c| c == cpu) || self.targeted(cpu) {
            return false;
        }
        let mut passed = std::vec::Vec::new();
        let mut ran = false;
        while let Some(g) = q.pop_front() {
            if self.run(RunRequest::task(cpu, g)) {
                ran = true;
                break;
            }
            if self.tasks.get(g).is_some_and(|t| t.is_runnable()) {
                passed.push(g);
            }
        }
        for g in passed.into_iter().rev() {
            q.push_front(g);
        }
        ran
    }
    /// Per-CPU runtime: routes task `g`'s messages to `cpu`'s agent (and wakes it). Needs the task's latest
    /// barrier: if a newer message is in flight, `false`, the task stays where it was for now, and the
    /// framework retries after the task's next messages; once placed, a runnable task goes through
    /// [`Policy::task_runnable`] again (for the queue of its new CPU). The centralized runtime has one queue:
    /// it only records the choice.
    pub fn place(&mut self, g: Gtid, cpu: u32) -> bool {
        let Some(t) = self.tasks.get(g).copied() else { return false };
        if t.home == Some(cpu) {
            return true;
        }
        match self.ops.place(g, cpu, t.seqnum) {
            Ok(()) => {
                if let Some(t) = self.tasks.get_mut(g) {
                    t.home = Some(cpu);
                    t.want_home = None;
                }
                self.ping(cpu);
                true
            }
            Err(AgentError::Stale) => {
                if let Some(t) = self.tasks.get_mut(g) {
                    t.want_home = Some(cpu);
                }
                false
            }
            Err(_) => false,
        }
    }
    /// Wakes `cpu`'s per-CPU agent (it runs in this step or the next); no effect in the centralized runtime.
    pub fn ping(&mut self, cpu: u32) {
        if !self.round.pings.contains(&cpu) {
            self.round.pings.push(cpu);
        }
    }
    /// Adds `n` to the policy's counter `name` (published in the report and the `--stats` lines).
    pub fn count(&mut self, name: &'static str, n: u64) {
        self.counters.add(name, n);
    }
}
