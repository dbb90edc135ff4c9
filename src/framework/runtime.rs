//! The runtimes: the loop that drains queues, keeps the task table, calls the policy and commits.

use super::policy::{CpuView, Ctx, Ops, Policy, Round, Scope};
use super::request::{Failure, RunError, RunRequest, Target};
use super::task::{Task, TaskState, TaskTable};
use super::Counters;
use crate::abi::{GhostSwInfo, Gtid, Message};
use crate::agent::{AgentError, AgentQueue, Backend, Enclave};
use crate::queue::QueueId;
use crate::shm::SharedMem;
use crate::status::Barrier;
use crate::txn::WaitError;
use core::time::Duration;
use std::boxed::Box;
use std::string::String;
use std::vec::Vec;

/// Polls of a transaction's state after the commit call before its outcome is taken as "later".
const WAIT_SPINS: u32 = 64;
/// Stale decisions are retried this many times per round (each after draining the queue again).
const MAX_RETRIES: u32 = 2;

/// Where `--stats` lines go.
pub type StatsSink = Box<dyn FnMut(&str) + Send>;

/// How a runtime runs.
pub struct Options {
    /// Slots of each queue the agent creates.
    pub queue_slots: u32,
    /// Centralized runtime: the CPU the global agent runs on (the caller of its commits). Default: the
    /// enclave's first agent CPU ([`Enclave::agent_cpus`]).
    pub agent_cpu: Option<u32>,
    /// Print a stats line (one JSON object) every this many ns of enclave time.
    pub stats_every_ns: Option<u64>,
    /// Where stats lines go (default: standard output).
    pub stats_sink: Option<StatsSink>,
}

impl Default for Options {
    fn default() -> Self {
        Options { queue_slots: 4096, agent_cpu: None, stats_every_ns: None, stats_sink: None }
    }
}

impl core::fmt::Debug for Options {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Options")
            .field("queue_slots", &self.queue_slots)
            .field("agent_cpu", &self.agent_cpu)
            .field("stats_every_ns", &self.stats_every_ns)
            .finish_non_exhaustive()
    }
}

impl Options {
    /// Queues of `slots` slots.
    pub fn queue_slots(mut self, slots: u32) -> Self {
        self.queue_slots = slots;
        self
    }
    /// The global agent's CPU.
    pub fn agent_cpu(mut self, cpu: u32) -> Self {
        self.agent_cpu = Some(cpu);
        self
    }
    /// A stats line every `ns` of enclave time (`None`: none).
    pub fn stats_every(mut self, ns: Option<u64>) -> Self {
        self.stats_every_ns = ns.filter(|&n| n > 0);
        self
    }
    /// Stats lines go to `sink` instead of standard output.
    pub fn stats_to(mut self, sink: impl FnMut(&str) + Send + 'static) -> Self {
        self.stats_sink = Some(Box::new(sink));
        self
    }
}

/// Queue ids by CPU, for placing tasks (empty for the centralized runtime).
struct PlaceOps<'e, B: Backend> {
    enclave: &'e Enclave<B>,
    queues: &'e [Option<QueueId>],
}

impl<B: Backend> Ops for PlaceOps<'_, B> {
    fn place(&self, g: Gtid, cpu: u32, barrier: u32) -> Result<(), AgentError> {
        if self.queues.is_empty() {
            return Ok(());
        }
        let q = self.queues.get(cpu as usize).copied().flatten().ok_or(AgentError::BadCpu(cpu))?;
        self.enclave.backend().associate_queue(q, g, barrier).map(|_| ())
    }
}

/// The context of a round: the clock, the agent's CPU, which CPUs it decides for, placement.
#[derive(Clone, Copy)]
struct Env<'o> {
    now: u64,
    agent_cpu: u32,
    scope: Scope,
    ops: &'o dyn Ops,
}

/// Outcomes of the requests of a commit: the commit time on success.
type Outcomes = Vec<(RunRequest, Result<i64, RunError>)>;

/// The state both runtimes share: the policy, the task table, the CPUs, the counters.
struct Core<P> {
    policy: P,
    tasks: TaskTable,
    cpus: Vec<CpuView>,
    /// CPUs reserved for agents (a global agent can move there on `CPU_BUSY`).
    agent_cpus: Vec<u32>,
    fw: Counters,
    pc: Counters,
    round: Round,
    pending_free: Vec<GhostSwInfo>,
    stats_every: Option<u64>,
    next_stats: u64,
    last_stats: (u64, Counters),
    sink: Option<StatsSink>,
}

/// Serial-number "newer than".
fn newer(a: u32, b: u32) -> bool {
    Barrier(a).is_newer_than(Barrier(b))
}

impl<P: Policy> Core<P> {
    fn new<B: Backend>(enclave: &Enclave<B>, policy: P, opts: &mut Options) -> Self {
        let n = enclave.backend().ncpus() as usize;
        let now = enclave.now();
        let every = opts.stats_every_ns;
        // Every CPU is available until a CPU_BUSY says otherwise; tasks run on the worker CPUs only.
        let mut cpus = std::vec![CpuView { worker: false, available: true, current: None }; n];
        for c in enclave.cpus().iter().filter(|&c| c < n) {
            cpus[c].worker = true;
        }
        Core {
            policy,
            tasks: TaskTable::default(),
            cpus,
            agent_cpus: enclave.agent_cpus().iter().map(|c| c as u32).collect(),
            fw: Counters::default(),
            pc: Counters::default(),
            round: Round::default(),
            pending_free: Vec::new(),
            stats_every: every,
            // The first line one interval after the agent started.
            next_stats: every.map_or(0, |e| (now / e + 1) * e),
            last_stats: (now, Counters::default()),
            sink: opts.stats_sink.take(),
        }
    }

    /// Calls `f` with the policy and a context over this core.
    fn with<R>(&mut self, env: Env<'_>, f: impl FnOnce(&mut P, &mut Ctx<'_>) -> R) -> R {
        let mut ctx = Ctx {
            now: env.now,
            agent_cpu: env.agent_cpu,
            scope: env.scope,
            tasks: &mut self.tasks,
            cpus: &self.cpus,
            round: &mut self.round,
            counters: &mut self.pc,
            ops: env.ops,
        };
        f(&mut self.policy, &mut ctx)
    }

    /// Takes over the tasks already in the enclave (after a crash or an upgrade): every in-use task status
    /// word is associated with `queue` at its current barrier and handed to the policy as a new task.
    fn discover<B: Backend>(&mut self, enclave: &Enclave<B>, queue: QueueId, env: Env<'_>) -> Result<(), AgentError> {
        let now = env.now;
        let mut found = Vec::new();
        // Every status-word region: an enclave with more tasks than one region holds has several.
        for f in enclave.discover_all() {
            let (sw, mut snap) = f?;
            for _attempt in 0..2 {
                match enclave.backend().associate_queue(queue, snap.gtid, snap.barrier.0) {
                    // Its TASK_NEW is still on the way and will go to `queue`.
                    Ok(st) if st.brand_new => {}
                    Ok(_) => {
                        let state = if snap.on_cpu() {
                            TaskState::OnCpu
                        } else if snap.runnable() {
                            TaskState::Runnable
                        } else {
                            TaskState::Blocked
                        };
                        let mut t = Task::new(snap.gtid, state, snap.barrier.0, now);
                        t.sw = Some(sw);
                        t.affinity = enclave.backend().task_affinity(snap.gtid);
                        t.runtime_ns = snap.runtime;
                        self.tasks.insert(t);
                        found.push(t);
                    }
                    // A message raced the association: re-read the word and try once more.
                    Err(AgentError::Stale) => {
                        snap = enclave.status_word(sw)?;
                        continue;
                    }
                    // Gone: free its word if the kernel is done with it.
                    Err(_) => {
                        if snap.can_free() && enclave.free_status_word(sw).is_ok() {
                            self.fw.add("status_words_freed", 1);
                        }
                    }
                }
                break;
            }
        }
        self.fw.add("tasks_discovered", found.len() as u64);
        for t in found {
            self.with(env, |p, ctx| p.task_new(ctx, &t));
        }
        Ok(())
    }

    /// Handles one message consumed on the agent of `agent_cpu`.
    fn handle<B: Backend>(&mut self, enclave: &Enclave<B>, env: Env<'_>, seqnum: u32, m: Message) {
        self.fw.add("messages", 1);
        match m.gtid() {
            Some(g) => self.handle_task(enclave, env, g, seqnum, m),
            None => self.handle_cpu(env, m),
        }
    }

    fn handle_task<B: Backend>(&mut self, enclave: &Enclave<B>, env: Env<'_>, g: Gtid, seqnum: u32, m: Message) {
        let (now, scope) = (env.now, env.scope);
        let known = self.tasks.get(g).copied();
        let mut t = match known {
            Some(t) => t,
            None => {
                if !matches!(m, Message::TaskNew(_)) {
                    // A message of a task we never heard of (its TASK_NEW went to a dead agent's queue and
                    // discovery did not see it): track it from here on.
                    self.fw.add("unknown_task_messages", 1);
                }
                Task::new(g, TaskState::Blocked, 0, now)
            }
        };
        // Messages of a task carry strictly increasing seqnums.
        if t.last_msg != 0 && !newer(seqnum, t.last_msg) {
            self.fw.add("seqnum_violations", 1);
        }
        // A task taken over by discovery starts from its status word's barrier: messages at or before it (a
        // dead agent may have left several in flight) are already reflected in the word's state. (For any
        // other task such a message is out of order, counted above.)
        if known.is_some() && t.seqnum != 0 && !newer(seqnum, t.seqnum) {
            self.fw.add("messages_already_seen", 1);
            return;
        }
        t.last_msg = seqnum;
        if t.seqnum == 0 || newer(seqnum, t.seqnum) {
            t.seqnum = seqnum;
        }
        enum Cb {
            New,
            Runnable,
            Blocked,
            Preempted,
            Yielded,
            Departed,
            Dead,
            Affinity,
            Priority,
            Latch(i32),
            None,
        }
        let cb = match m {
            Message::TaskNew(p) => {
                t.sw = Some(p.sw_info);
                t.nice = p.nice;
                t.runtime_ns = p.runtime;
                t.state = if p.is_runnable() { TaskState::Runnable } else { TaskState::Blocked };
                t.runnable_since = now;
                t.affinity = enclave.backend().task_affinity(g);
                Cb::New
            }
            Message::TaskWakeup(_) => {
                t.state = TaskState::Runnable;
                t.runnable_since = now;
                Cb::Runnable
            }
            Message::TaskBlocked(p) => {
                self.off_cpu(&mut t, p.cpu_id(), p.runtime, TaskState::Blocked, now);
                Cb::Blocked
            }
            Message::TaskSwitchto(p) => {
                self.off_cpu(&mut t, p.cpu_id(), p.runtime, TaskState::Blocked, now);
                Cb::Blocked
            }
            Message::TaskPreempt(p) => {
                self.off_cpu(&mut t, p.cpu_id(), p.runtime, TaskState::Runnable, now);
                Cb::Preempted
            }
            Message::TaskYield(p) => {
                self.off_cpu(&mut t, p.cpu_id(), p.runtime, TaskState::Runnable, now);
                Cb::Yielded
            }
            Message::TaskDead(p) => {
                let rt = t.runtime_ns;
                self.off_cpu(&mut t, p.cpu_id(), rt, TaskState::Blocked, now);
                Cb::Dead
            }
            Message::TaskDeparted(p) => {
                let rt = t.runtime_ns;
                self.off_cpu(&mut t, p.cpu_id(), rt, TaskState::Blocked, now);
                Cb::Departed
            }
            Message::TaskOnCpu(p) => {
                t.state = TaskState::OnCpu;
                t.cpu = p.cpu_id();
                t.on_cpu_since = Some(p.commit_time);
                if let Some(c) = p.cpu_id().and_then(|c| self.cpus.get_mut(c as usize)) {
                    c.current = Some(g);
                }
                Cb::None
            }
            Message::TaskAffinityChanged(_) => {
                t.affinity = enclave.backend().task_affinity(g);
                Cb::Affinity
            }
            Message::TaskPriorityChanged(p) => {
                t.nice = p.nice;
                Cb::Priority
            }
            Message::TaskLatchFailure(p) => Cb::Latch(p.errno),
            _ => Cb::None,
        };
        if matches!(cb, Cb::Dead | Cb::Departed) {
            self.tasks.remove(g);
            if let Some(sw) = t.sw {
                self.free(enclave, sw);
            }
        } else {
            self.tasks.insert(t);
        }
        // A per-CPU agent handling a message of a task homed elsewhere wakes that CPU's agent.
        if let (Scope::Local(here), Some(home)) = (scope, t.home) {
            if home != here {
                self.round.pings.push(home);
            }
        }
        self.with(env, |p, ctx| match cb {
            Cb::New => p.task_new(ctx, &t),
            Cb::Runnable => p.task_runnable(ctx, &t),
            Cb::Blocked => p.task_blocked(ctx, &t),
            Cb::Preempted => p.task_preempted(ctx, &t),
            Cb::Yielded => p.task_yielded(ctx, &t),
            Cb::Departed => p.task_departed(ctx, &t),
            Cb::Dead => p.task_dead(ctx, &t),
            Cb::Affinity => p.task_affinity_changed(ctx, &t),
            Cb::Priority => p.task_priority_changed(ctx, &t),
            Cb::Latch(errno) => p.task_latch_failure(ctx, &t, errno),
            Cb::None => {}
        });
    }

    /// The task left its CPU (named by the message, or the one we recorded).
    fn off_cpu(&mut self, t: &mut Task, cpu: Option<u32>, runtime: u64, state: TaskState, now: u64) {
        for c in [cpu, t.cpu].into_iter().flatten() {
            if let Some(v) = self.cpus.get_mut(c as usize) {
                if v.current == Some(t.gtid) {
                    v.current = None;
                }
            }
        }
        t.cpu = cpu.or(t.cpu);
        t.on_cpu_since = None;
        t.runtime_ns = runtime;
        if state == TaskState::Runnable {
            t.runnable_since = now;
        }
        t.state = state;
    }

    fn handle_cpu(&mut self, env: Env<'_>, m: Message) {
        let Some(cpu) = m.cpu_id().filter(|&c| (c as usize) < self.cpus.len()) else {
            self.fw.add("bad_cpu_messages", 1);
            return;
        };
        if let Scope::Local(here) = env.scope {
            if cpu != here {
                self.round.pings.push(cpu);
            }
        }
        match m {
            Message::CpuTick(_) => self.with(env, |p, ctx| p.cpu_tick(ctx, cpu)),
            Message::CpuTimerExpired(t) => self.with(env, |p, ctx| p.cpu_timer(ctx, cpu, t.cookie)),
            Message::CpuAvailable(_) => {
                self.cpus[cpu as usize].available = true;
                self.with(env, |p, ctx| p.cpu_available(ctx, cpu));
            }
            Message::CpuBusy(_) => {
                self.cpus[cpu as usize].available = false;
                self.with(env, |p, ctx| p.cpu_busy(ctx, cpu));
            }
            _ => {}
        }
    }

    fn free<B: Backend>(&mut self, enclave: &Enclave<B>, sw: GhostSwInfo) {
        match enclave.free_status_word(sw) {
            Ok(()) => self.fw.add("status_words_freed", 1),
            // Not CANFREE yet (a departed task the kernel still holds): try again next round.
            Err(AgentError::Invalid(_)) => self.pending_free.push(sw),
            Err(_) => {}
        }
    }

    fn retry_frees<B: Backend>(&mut self, enclave: &Enclave<B>) {
        // Through `free`, so a word still not CANFREE is queued again (not dropped after one retry).
        for sw in std::mem::take(&mut self.pending_free) {
            self.free(enclave, sw);
        }
    }

    /// Opens, fills and commits `reqs` from `caller` (a local commit passes `agent_barrier`); the outcomes.
    fn commit<B: Backend>(
        &mut self,
        enclave: &Enclave<B>,
        caller: u32,
        agent_barrier: Option<u32>,
        reqs: Vec<RunRequest>,
    ) -> Result<Outcomes, AgentError> {
        let mut out = Vec::new();
        let mut txns = Vec::new();
        for r in reqs {
            match enclave.txn(r.cpu) {
                Ok(t) => txns.push((r, t)),
                Err(_) => out.push((r, Err(RunError::Refused(crate::abi::TxnOutcome::InvalidCpu)))),
            }
        }
        let mut pending = Vec::new();
        for (r, txn) in txns.iter_mut() {
            match txn.open() {
                Ok(open) => {
                    let barrier = r
                        .task_barrier
                        .or_else(|| r.gtid().and_then(|g| self.tasks.get(g)).map(|t| t.seqnum))
                        .unwrap_or(0);
                    let mut open = open
                        .target(r.target.gtid())
                        .task_barrier(barrier)
                        .run_flags(r.run_flags)
                        .commit_flags(r.txn_commit_flags());
                    if let Some(b) = agent_barrier {
                        open = open.agent_barrier(b);
                    }
                    pending.push((*r, open.commit()));
                }
                Err(b) => out.push((*r, Err(RunError::Busy(b)))),
            }
        }
        if pending.is_empty() {
            return Ok(out);
        }
        let cpus: Vec<u32> = pending.iter().map(|(_, p)| p.cpu()).collect();
        self.fw.add("commits", cpus.len() as u64);
        enclave.commit(caller, &cpus)?;
        for (r, p) in pending {
            out.push((
                r,
                match p.wait(WAIT_SPINS) {
                    Ok(o) if o.is_success() => Ok(o.commit_time),
                    Ok(o) => Err(RunError::Refused(o.outcome)),
                    Err(WaitError::TimedOut) => Err(RunError::Pending),
                    Err(WaitError::Corrupt(_)) => Err(RunError::Corrupt),
                },
            ));
        }
        Ok(out)
    }

    /// Commits a sync group all-or-nothing from `caller`: owns every member's transaction, opens and fills
    /// them all (nothing is published if one cannot be opened), publishes them and commits them as a group;
    /// the outcomes, member by member. In a failed group a member may still show `COMPLETE`: its task latched
    /// and the kernel forces it off again (`TASK_PREEMPT`), so it is recorded as on the CPU until that
    /// message. Group members are never retried.
    fn commit_group<B: Backend>(
        &mut self,
        enclave: &Enclave<B>,
        caller: u32,
        agent_barrier: Option<u32>,
        group: Vec<RunRequest>,
    ) -> Result<Outcomes, AgentError> {
        let group: Vec<RunRequest> = group.into_iter().map(RunRequest::see_stale).collect();
        let fail_all = |e: RunError| group.iter().map(|r| (*r, Err(e))).collect::<Outcomes>();
        let mut txns = Vec::new();
        for r in &group {
            txns.push(enclave.txn(r.cpu)?);
        }
        let owner = caller as i32;
        if !txns.iter_mut().all(|t| t.try_own(owner).is_ok()) {
            txns.iter_mut().for_each(|t| {
                t.disown();
            });
            return Ok(fail_all(RunError::Busy(crate::txn::Busy::Owned(-1))));
        }
        let mut open = Vec::new();
        let mut busy = None;
        for (r, t) in group.iter().zip(txns.iter_mut()) {
            match t.open() {
                Ok(o) => {
                    let barrier = r
                        .task_barrier
                        .or_else(|| r.gtid().and_then(|g| self.tasks.get(g)).map(|t| t.seqnum))
                        .unwrap_or(0);
                    let mut o = o
                        .target(r.target.gtid())
                        .task_barrier(barrier)
                        .run_flags(r.run_flags)
                        .commit_flags(r.txn_commit_flags());
                    if let Some(b) = agent_barrier {
                        o = o.agent_barrier(b);
                    }
                    open.push(o);
                }
                Err(b) => {
                    busy = Some(b);
                    break;
                }
            }
        }
        if let Some(b) = busy {
            drop(open);
            txns.iter_mut().for_each(|t| {
                t.disown();
            });
            return Ok(fail_all(RunError::Busy(b)));
        }
        let pending: Vec<_> = open.into_iter().map(|o| o.commit()).collect();
        let cpus: Vec<u32> = group.iter().map(|r| r.cpu).collect();
        self.fw.add("commits", cpus.len() as u64);
        let committed = enclave.group_commit(caller, &cpus)?;
        let mut out = Vec::new();
        for (r, p) in group.iter().zip(pending) {
            let res = match p.wait(WAIT_SPINS) {
                Ok(o) if o.is_success() => Ok(o.commit_time),
                Ok(o) => Err(RunError::Refused(o.outcome)),
                Err(WaitError::TimedOut) => Err(RunError::Pending),
                Err(WaitError::Corrupt(_)) => Err(RunError::Corrupt),
            };
            out.push((*r, res));
        }
        if committed {
            self.fw.add("groups_committed", 1);
        } else {
            // The kernel releases the owners only after a successful group.
            self.fw.add("groups_failed", 1);
            txns.iter_mut().for_each(|t| {
                t.disown();
            });
        }
        Ok(out)
    }

    /// Applies outcomes to the task table; returns the stale requests to retry.
    fn apply(&mut self, env: Env<'_>, results: Outcomes) -> Vec<RunRequest> {
        let mut retry = Vec::new();
        for (r, res) in results {
            match res {
                Ok(commit_time) => {
                    self.fw.add("committed", 1);
                    let since = if commit_time > 0 { commit_time as u64 } else { env.now };
                    match r.target {
                        Target::Task(g) => {
                            if let Some(c) = self.cpus.get_mut(r.cpu as usize) {
                                c.current = Some(g);
                            }
                            if let Some(t) = self.tasks.get_mut(g) {
                                if !(t.state == TaskState::OnCpu && t.cpu == Some(r.cpu)) {
                                    t.on_cpu_since = Some(since);
                                }
                                t.state = TaskState::OnCpu;
                                t.cpu = Some(r.cpu);
                            }
                        }
                        Target::Idle | Target::Unschedule => {
                            if let Some(c) = self.cpus.get_mut(r.cpu as usize) {
                                c.current = None;
                            }
                        }
                    }
                }
                // A commit point after the call: the outcome is read in a later round (`poll_inflight`);
                // until then the CPU and the task are reserved.
                Err(RunError::Pending) => {
                    self.fw.add("commits_deferred", 1);
                    self.round.inflight.push(r);
                }
                Err(e) if e.is_stale() && !r.see_stale => {
                    self.fw.add("stale_retried", 1);
                    retry.push(r);
                }
                Err(e) => self.failed(env, Failure { request: r, error: e }),
            }
        }
        retry
    }

    /// Reads the outcomes of deferred commits that have become final and applies them (no retries).
    fn poll_inflight<B: Backend>(&mut self, enclave: &Enclave<B>, env: Env<'_>) {
        let mut done = Vec::new();
        self.round.inflight.retain(|r| {
            let res = match enclave.txn(r.cpu).map(|t| t.last_outcome()) {
                Ok(Ok(None)) => return true,
                Ok(Ok(Some(o))) if o.is_success() => Ok(o.commit_time),
                Ok(Ok(Some(o))) => Err(RunError::Refused(o.outcome)),
                Ok(Err(_)) | Err(_) => Err(RunError::Corrupt),
            };
            done.push((r.see_stale(), res));
            false
        });
        if !done.is_empty() {
            let retry = self.apply(env, done);
            debug_assert!(retry.is_empty(), "see_stale: nothing to retry");
        }
    }

    /// Retries placements refused as stale, now that newer messages are handled.
    fn retry_placements(&mut self, env: Env<'_>) {
        let wanted: Vec<(Gtid, u32)> = self.tasks.iter().filter_map(|t| Some((t.gtid, t.want_home?))).collect();
        for (g, cpu) in wanted {
            let Some(t) = self.tasks.get(g).copied() else { continue };
            match env.ops.place(g, cpu, t.seqnum) {
                Err(AgentError::Stale) => continue,
                Err(_) => {}
                Ok(()) => {
                    self.fw.add("placements_retried", 1);
                    self.round.pings.push(cpu);
                    if let Some(t) = self.tasks.get_mut(g) {
                        t.home = Some(cpu);
                    }
                    if let Some(t) = self.tasks.get(g).copied().filter(|t| t.is_runnable()) {
                        self.with(env, |p, ctx| p.task_runnable(ctx, &t));
                    }
                }
            }
            if let Some(t) = self.tasks.get_mut(g) {
                t.want_home = None;
            }
        }
    }

    fn failed(&mut self, env: Env<'_>, f: Failure) {
        self.fw.add("run_failed", 1);
        // As in `handle_task`: a failure of a task homed elsewhere wakes its home CPU's agent.
        if let (Scope::Local(here), Some(Some(home))) =
            (env.scope, f.request.gtid().map(|g| self.tasks.get(g).and_then(|t| t.home)))
        {
            if home != here {
                self.round.pings.push(home);
            }
        }
        self.with(env, |p, ctx| p.run_failed(ctx, f));
    }

    /// One round after its messages are handled: the policy decides, the framework commits and retries stale
    /// decisions after draining again (`drain` handles the messages; `barrier` re-reads a local agent barrier).
    fn decide<B: Backend>(
        &mut self,
        enclave: &Enclave<B>,
        env: Env<'_>,
        mut agent_barrier: Option<u32>,
        mut drain: impl FnMut(&mut Self) -> Result<(), AgentError>,
    ) -> Result<(), AgentError> {
        self.poll_inflight(enclave, env);
        self.with(env, |p, ctx| p.schedule(ctx));
        let reqs = std::mem::take(&mut self.round.requests);
        let mut results = self.commit(enclave, env.agent_cpu, agent_barrier, reqs)?;
        for group in std::mem::take(&mut self.round.groups) {
            results.extend(self.commit_group(enclave, env.agent_cpu, agent_barrier, group)?);
        }
        let mut retry = self.apply(env, results);
        let mut attempt = 0;
        // Also loop while `run_failed` (or a retry's drain) left new decisions: the policy already popped
        // those tasks from its queues. Whatever is still left after the last attempt carries to the next round.
        while !retry.is_empty() || !self.round.requests.is_empty() || !self.round.groups.is_empty() {
            if attempt == MAX_RETRIES {
                for r in retry {
                    let f = Failure { request: r, error: RunError::Refused(crate::abi::TxnOutcome::TargetStale) };
                    self.failed(env, f);
                }
                break;
            }
            attempt += 1;
            if let Scope::Local(cpu) = env.scope {
                agent_barrier = Some(enclave.agent_barrier(cpu)?);
            }
            if !retry.is_empty() {
                drain(self)?;
            }
            // Keep the decisions that still make sense after the newer messages.
            let mut again = Vec::new();
            for r in retry {
                let ok = self.with(env, |_, ctx| ctx.run(r));
                if !ok {
                    again.push(r);
                }
            }
            for r in again {
                let f = Failure { request: r, error: RunError::Refused(crate::abi::TxnOutcome::TargetStale) };
                self.failed(env, f);
            }
            let reqs = std::mem::take(&mut self.round.requests);
            let mut results = self.commit(enclave, env.agent_cpu, agent_barrier, reqs)?;
            for group in std::mem::take(&mut self.round.groups) {
                results.extend(self.commit_group(enclave, env.agent_cpu, agent_barrier, group)?);
            }
            retry = self.apply(env, results);
        }
        Ok(())
    }

    fn agent_stats(&self) -> AgentCounts {
        AgentCounts {
            messages: self.fw.get("messages"),
            seqnum_violations: self.fw.get("seqnum_violations"),
            overflows_seen: self.fw.get("overflows_seen"),
        }
    }

    fn counters(&self) -> Vec<(&'static str, u64)> {
        self.fw.iter().chain(self.pc.iter()).collect()
    }

    /// Emits a stats line if one is due at `now`.
    fn maybe_stats(&mut self, now: u64) {
        let Some(every) = self.stats_every else { return };
        if now < self.next_stats {
            return;
        }
        self.next_stats = (now / every + 1) * every;
        let line = self.stats_line(now);
        match self.sink.as_mut() {
            Some(s) => s(&line),
            None => std::println!("{line}"),
        }
        self.last_stats = (now, self.fw.clone());
    }

    /// One JSON object: the time, the task table's shape, the framework's counters (cumulative and since the
    /// previous line) and the policy's counters.
    fn stats_line(&self, now: u64) -> String {
        use core::fmt::Write;
        let mut s = String::new();
        let idle = self.cpus.iter().filter(|c| c.worker && c.current.is_none()).count();
        let _ = write!(
            s,
            "{{\"t_ns\":{now},\"interval_ns\":{},\"policy\":{},\"tasks\":{},\"runnable\":{},\"on_cpu\":{},\"blocked\":{},\"idle_cpus\":{idle}",
            now - self.last_stats.0,
            json_str(self.policy.name()),
            self.tasks.len(),
            self.tasks.count(TaskState::Runnable),
            self.tasks.count(TaskState::OnCpu),
            self.tasks.count(TaskState::Blocked),
        );
        let obj = |s: &mut String, name: &str, it: &mut dyn Iterator<Item = (&'static str, u64)>| {
            let _ = write!(s, ",{}:{{", json_str(name));
            for (i, (k, v)) in it.enumerate() {
                let _ = write!(s, "{}{}:{v}", if i > 0 { "," } else { "" }, json_str(k));
            }
            s.push('}');
        };
        obj(&mut s, "framework", &mut self.fw.iter());
        obj(&mut s, "delta", &mut self.fw.iter().map(|(k, v)| (k, v - self.last_stats.1.get(k))));
        obj(&mut s, "counters", &mut self.pc.iter());
        s.push('}');
        s
    }
}

fn json_str(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for ch in s.chars() {
        match ch {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => o.push_str(&std::format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

/// The counters every runtime keeps about itself (the simulator's `AgentStats`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AgentCounts {
    /// Messages consumed.
    pub messages: u64,
    /// Messages whose seqnum was not above the task's previous one (must stay 0).
    pub seqnum_violations: u64,
    /// Overflows seen on the agent's queues.
    pub overflows_seen: u64,
}

/// The centralized runtime: one global agent on a CPU of its own consumes one queue with every message of the
/// enclave and decides for all worker CPUs with remote transactions (ghOSt's global-agent model). When a
/// higher class needs its CPU (`CPU_BUSY`), its commits move to another agent CPU or an idle worker.
pub struct Centralized<P, M: SharedMem> {
    core: Core<P>,
    queue: AgentQueue<M>,
    agent_cpu: u32,
    /// The worker CPU the agent borrowed (made a non-worker) when its own CPU went busy; given back to the
    /// policy when the agent moves off it.
    borrowed: Option<u32>,
}

impl<P: Policy, M: SharedMem> Centralized<P, M> {
    /// Attaches `policy` to `enclave`: creates the queue, makes it the default, and takes over the tasks
    /// already in the enclave (discovery). The agent runs on `opts.agent_cpu` or the enclave's first agent
    /// CPU; an enclave without one is refused (a global agent needs a CPU that runs no task).
    pub fn start<B: Backend<Region = M>>(
        enclave: &Enclave<B>,
        policy: P,
        mut opts: Options,
    ) -> Result<Self, AgentError> {
        let agent_cpu = match opts.agent_cpu.or_else(|| enclave.agent_cpus().first().map(|c| c as u32)) {
            Some(c) => c,
            None => {
                return Err(AgentError::Invalid("a centralized agent needs an agent CPU: the enclave reserves none"))
            }
        };
        let queue = enclave.create_queue(opts.queue_slots)?;
        enclave.set_default_queue(&queue)?;
        let mut core = Core::new(enclave, policy, &mut opts);
        if let Some(c) = core.cpus.get_mut(agent_cpu as usize) {
            c.worker = false;
        }
        let ops = PlaceOps { enclave, queues: &[] };
        let env = Env { now: enclave.now(), agent_cpu, scope: Scope::Global, ops: &ops };
        core.discover(enclave, queue.id(), env)?;
        Ok(Centralized { core, queue, agent_cpu, borrowed: None })
    }

    /// One round: drain the queue, update the task table and call the policy's callbacks, let it decide,
    /// commit, retry stale decisions.
    pub fn step<B: Backend<Region = M>>(&mut self, enclave: &Enclave<B>) -> Result<(), AgentError> {
        let now = enclave.now();
        let ops = PlaceOps { enclave, queues: &[] };
        self.core.retry_frees(enclave);
        self.drain(enclave, Env { now, agent_cpu: self.agent_cpu, scope: Scope::Global, ops: &ops })?;
        // (The agent may have moved: its CPU is the caller of this round's commits.)
        let env = Env { now, agent_cpu: self.agent_cpu, scope: Scope::Global, ops: &ops };
        let queue = &mut self.queue;
        self.core.decide(enclave, env, None, |core| drain_into(core, queue, enclave, env))?;
        self.core.maybe_stats(now);
        Ok(())
    }

    fn drain<B: Backend<Region = M>>(&mut self, enclave: &Enclave<B>, env: Env<'_>) -> Result<(), AgentError> {
        drain_into(&mut self.core, &mut self.queue, enclave, env)?;
        // CPU_BUSY on the agent's own CPU: move to another agent CPU, else to an idle worker.
        if self.core.cpus.get(self.agent_cpu as usize).is_some_and(|c| !c.available) {
            self.move_agent();
        }
        Ok(())
    }

    fn move_agent(&mut self) {
        if let Some(to) =
            agent_cpu_after_busy(&mut self.core.cpus, &self.core.agent_cpus, self.agent_cpu, &mut self.borrowed)
        {
            self.agent_cpu = to;
            self.core.fw.add("agent_moves", 1);
        }
    }

    /// The CPU the agent runs on now (the caller of its commits).
    pub fn agent_cpu(&self) -> u32 {
        self.agent_cpu
    }
    /// The policy.
    pub fn policy(&self) -> &P {
        &self.core.policy
    }
    /// The task table.
    pub fn tasks(&self) -> &TaskTable {
        &self.core.tasks
    }
    /// The framework's and the policy's counters.
    pub fn counters(&self) -> Vec<(&'static str, u64)> {
        self.core.counters()
    }
    /// Messages, seqnum violations and overflows seen.
    pub fn agent_counts(&self) -> AgentCounts {
        self.core.agent_stats()
    }
}

/// Drains `queue` and handles its messages.
fn drain_into<P: Policy, B: Backend, M: SharedMem>(
    core: &mut Core<P>,
    queue: &mut AgentQueue<M>,
    enclave: &Enclave<B>,
    env: Env<'_>,
) -> Result<(), AgentError> {
    let mut msgs = Vec::new();
    queue.consumer().drain(|d| msgs.push((d.seqnum, d.message)))?;
    let o = queue.consumer().new_overflows();
    if o > 0 {
        core.fw.add("overflows_seen", o as u64);
    }
    for (seqnum, m) in msgs {
        core.handle(enclave, env, seqnum, m);
    }
    core.retry_placements(env);
    Ok(())
}

/// One per-CPU agent: its CPU, its queue, the agent barrier it last woke for.
struct CpuAgent<M: SharedMem> {
    cpu: u32,
    queue: AgentQueue<M>,
    seen: Option<u32>,
    pinged: bool,
}

/// The per-CPU runtime: an agent per worker CPU, each with its own queue (configured to wake it) and deciding
/// only for its own CPU with local transactions checked against its agent barrier. The first CPU's queue is
/// the default: new tasks arrive there and the policy [`place`](Ctx::place)s them. An agent whose queue did not
/// wake it (its agent barrier did not move) and that nobody pinged sleeps: it does not run.
pub struct PerCpu<P, M: SharedMem> {
    core: Core<P>,
    agents: Vec<CpuAgent<M>>,
    queues: Vec<Option<QueueId>>,
}

impl<P: Policy, M: SharedMem> PerCpu<P, M> {
    /// Attaches `policy` to `enclave`: a queue per worker CPU waking that CPU's agent, the first one the
    /// default, then discovery of the tasks already there.
    pub fn start<B: Backend<Region = M>>(
        enclave: &Enclave<B>,
        policy: P,
        mut opts: Options,
    ) -> Result<Self, AgentError> {
        let n = enclave.backend().ncpus() as usize;
        let mut agents = Vec::new();
        let mut queues = std::vec![None; n];
        for cpu in enclave.cpus().iter().filter(|&c| c < n) {
            let queue = enclave.create_queue(opts.queue_slots)?;
            enclave.config_queue_wakeup(&queue, Some(cpu as u32))?;
            queues[cpu] = Some(queue.id());
            agents.push(CpuAgent { cpu: cpu as u32, queue, seen: None, pinged: true });
        }
        let Some(first) = agents.first() else { return Err(AgentError::Invalid("enclave without CPUs")) };
        enclave.set_default_queue(&first.queue)?;
        let (first_cpu, first_q) = (first.cpu, first.queue.id());
        let mut core = Core::new(enclave, policy, &mut opts);
        let ops = PlaceOps { enclave, queues: &queues };
        let env = Env { now: enclave.now(), agent_cpu: first_cpu, scope: Scope::Global, ops: &ops };
        core.discover(enclave, first_q, env)?;
        let mut me = PerCpu { core, agents, queues };
        me.take_pings();
        Ok(me)
    }

    fn take_pings(&mut self) {
        for cpu in std::mem::take(&mut self.core.round.pings) {
            if let Some(a) = self.agents.iter_mut().find(|a| a.cpu == cpu) {
                a.pinged = true;
            }
        }
    }

    /// One step: every agent whose queue woke it (or that was pinged) drains its queue, decides for its CPU
    /// and commits locally; the others sleep. Agents pinged during the step run in the same step.
    pub fn step<B: Backend<Region = M>>(&mut self, enclave: &Enclave<B>) -> Result<(), AgentError> {
        let now = enclave.now();
        self.core.retry_frees(enclave);
        for pass in 0..4 {
            let mut ran = false;
            for i in 0..self.agents.len() {
                let cpu = self.agents[i].cpu;
                // Read before draining: a message that arrives afterwards moves the barrier and the local
                // commit fails AGENT_STALE instead of acting on old state.
                let barrier = enclave.agent_barrier(cpu)?;
                let a = &mut self.agents[i];
                if a.seen == Some(barrier) && !a.pinged {
                    if pass == 0 {
                        self.core.fw.add("agent_sleeps", 1);
                    }
                    continue;
                }
                a.seen = Some(barrier);
                a.pinged = false;
                ran = true;
                self.core.fw.add("agent_wakeups", 1);
                let ops = PlaceOps { enclave, queues: &self.queues };
                let env = Env { now, agent_cpu: cpu, scope: Scope::Local(cpu), ops: &ops };
                let queue = &mut self.agents[i].queue;
                drain_into(&mut self.core, queue, enclave, env)?;
                self.core.decide(enclave, env, Some(barrier), |core| drain_into(core, queue, enclave, env))?;
                self.take_pings();
            }
            if !ran {
                break;
            }
        }
        self.core.maybe_stats(now);
        Ok(())
    }

    /// The policy.
    pub fn policy(&self) -> &P {
        &self.core.policy
    }
    /// The task table.
    pub fn tasks(&self) -> &TaskTable {
        &self.core.tasks
    }
    /// The framework's and the policy's counters.
    pub fn counters(&self) -> Vec<(&'static str, u64)> {
        self.core.counters()
    }
    /// Messages, seqnum violations and overflows seen.
    pub fn agent_counts(&self) -> AgentCounts {
        self.core.agent_stats()
    }

    /// Runs every agent on a thread of its own for `quantum` of wall time, then returns (call it again to go
    /// on). Each thread waits for its agent barrier to move (its queue got a message, a commit or a tick
    /// touched its CPU) or for a ping, sleeping `nap` between looks; when woken it drains its queue, decides
    /// for its CPU and commits locally. The task table and the policy are shared under a lock, so one agent
    /// at a time takes decisions (as with a per-CPU policy whose state is global). Real time only: in the
    /// deterministic simulator time stands still during a step.
    pub fn run_threads<B>(&mut self, enclave: &Enclave<B>, quantum: Duration, nap: Duration) -> Result<(), AgentError>
    where
        B: Backend<Region = M> + Sync,
        B::StatusRegion: Send + Sync,
        M: Send + Sync,
        P: Send,
    {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::Mutex;
        let agents = std::mem::take(&mut self.agents);
        let n = agents.len();
        let pinged: Vec<AtomicBool> = agents.iter().map(|a| AtomicBool::new(a.pinged)).collect();
        let index: Vec<u32> = agents.iter().map(|a| a.cpu).collect();
        let stop = AtomicBool::new(false);
        let core = Mutex::new(&mut self.core);
        let queues = &self.queues;
        let deadline = std::time::Instant::now() + quantum;
        let results: Vec<(CpuAgent<M>, Result<(), AgentError>)> = std::thread::scope(|s| {
            let handles: Vec<_> = agents
                .into_iter()
                .enumerate()
                .map(|(i, mut a)| {
                    let (pinged, index, stop, core) = (&pinged, &index, &stop, &core);
                    s.spawn(move || {
                        let mut sleeps = 0u64;
                        let r = (|| -> Result<(), AgentError> {
                            while !stop.load(Ordering::Acquire) && std::time::Instant::now() < deadline {
                                // Read before draining (see `step`).
                                let barrier = enclave.agent_barrier(a.cpu)?;
                                let ping = pinged[i].swap(false, Ordering::AcqRel);
                                if a.seen == Some(barrier) && !ping {
                                    sleeps += 1;
                                    std::thread::sleep(nap);
                                    continue;
                                }
                                a.seen = Some(barrier);
                                let mut guard = core.lock().unwrap_or_else(|p| p.into_inner());
                                let core: &mut Core<P> = &mut guard;
                                core.fw.add("agent_wakeups", 1);
                                let ops = PlaceOps { enclave, queues };
                                let now = enclave.now();
                                let env = Env { now, agent_cpu: a.cpu, scope: Scope::Local(a.cpu), ops: &ops };
                                let queue = &mut a.queue;
                                drain_into(core, queue, enclave, env)?;
                                core.decide(enclave, env, Some(barrier), |c| drain_into(c, queue, enclave, env))?;
                                for cpu in std::mem::take(&mut core.round.pings) {
                                    if let Some(j) = index.iter().position(|&c| c == cpu) {
                                        pinged[j].store(true, Ordering::Release);
                                    }
                                }
                                core.maybe_stats(now);
                            }
                            Ok(())
                        })();
                        if r.is_err() {
                            stop.store(true, Ordering::Release);
                        }
                        core.lock().unwrap_or_else(|p| p.into_inner()).fw.add("agent_sleeps", sleeps);
                        (a, r)
                    })
                })
                .collect();
            // A panicking agent thread is re-raised here (the simulator counts it as an agent death).
            handles.into_iter().map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))).collect()
        });
        let mut first_err = Ok(());
        for (i, (mut a, r)) in results.into_iter().enumerate() {
            a.pinged = pinged[i].load(Ordering::Acquire);
            self.agents.push(a);
            if first_err.is_ok() {
                first_err = r;
            }
        }
        debug_assert_eq!(self.agents.len(), n);
        self.core.fw.add("thread_quanta", 1);
        first_err
    }
}

/// The per-CPU runtime with an OS thread per agent (see [`PerCpu::run_threads`]): as an agent of the
/// real-time simulator, each step runs the threads for one quantum.
pub struct PerCpuThreads<P, M: SharedMem> {
    inner: PerCpu<P, M>,
    // Read by the simulator's `Agent` impl only (a `std` build without `sim`, e.g. ffi/agent, never steps it).
    #[cfg_attr(not(feature = "sim"), allow(dead_code))]
    quantum: Duration,
    #[cfg_attr(not(feature = "sim"), allow(dead_code))]
    nap: Duration,
}

impl<P: Policy, M: SharedMem> PerCpuThreads<P, M> {
    /// Attaches like [`PerCpu::start`]; each step runs the agent threads for `quantum`, and an agent with
    /// nothing to do sleeps `nap` between looks at its barrier.
    pub fn start<B: Backend<Region = M>>(
        enclave: &Enclave<B>,
        policy: P,
        opts: Options,
        quantum: Duration,
        nap: Duration,
    ) -> Result<Self, AgentError> {
        Ok(PerCpuThreads { inner: PerCpu::start(enclave, policy, opts)?, quantum, nap })
    }
    /// The single-threaded runtime inside.
    pub fn runtime(&self) -> &PerCpu<P, M> {
        &self.inner
    }
}

#[cfg(feature = "sim")]
mod sim_agent {
    use super::*;
    use crate::sim::{Agent, AgentStats};

    fn stats(c: AgentCounts) -> AgentStats {
        AgentStats { messages: c.messages, seqnum_violations: c.seqnum_violations, overflows_seen: c.overflows_seen }
    }

    impl<B: Backend, P: Policy> Agent<B> for Centralized<P, B::Region> {
        fn step(&mut self, enclave: &Enclave<B>) -> Result<(), AgentError> {
            Centralized::step(self, enclave)
        }
        fn stats(&self) -> AgentStats {
            stats(self.agent_counts())
        }
        fn counters(&self) -> Vec<(&'static str, u64)> {
            Centralized::counters(self)
        }
    }

    impl<B: Backend + Sync, P: Policy + Send> Agent<B> for PerCpuThreads<P, B::Region>
    where
        B::Region: Send + Sync,
        B::StatusRegion: Send + Sync,
    {
        fn step(&mut self, enclave: &Enclave<B>) -> Result<(), AgentError> {
            self.inner.run_threads(enclave, self.quantum, self.nap)
        }
        fn stats(&self) -> AgentStats {
            stats(self.inner.agent_counts())
        }
        fn counters(&self) -> Vec<(&'static str, u64)> {
            self.inner.counters()
        }
    }

    impl<B: Backend, P: Policy> Agent<B> for PerCpu<P, B::Region> {
        fn step(&mut self, enclave: &Enclave<B>) -> Result<(), AgentError> {
            PerCpu::step(self, enclave)
        }
        fn stats(&self) -> AgentStats {
            stats(self.agent_counts())
        }
        fn counters(&self) -> Vec<(&'static str, u64)> {
            PerCpu::counters(self)
        }
    }
}

/// Where an agent whose CPU `from` went busy moves: another available agent CPU, else an idle available worker
/// CPU, which it borrows (no longer a worker while the agent is there); a CPU borrowed before (`borrowed`) is a
/// worker again once the agent leaves it. `None`: nowhere to go, nothing changed.
fn agent_cpu_after_busy(
    cpus: &mut [CpuView],
    agent_cpus: &[u32],
    from: u32,
    borrowed: &mut Option<u32>,
) -> Option<u32> {
    let spare = agent_cpus.iter().copied().find(|&c| c != from && cpus.get(c as usize).is_some_and(|v| v.available));
    let to = spare.or_else(|| {
        (0..cpus.len()).find(|&c| cpus[c].worker && cpus[c].available && cpus[c].current.is_none()).map(|c| c as u32)
    })?;
    if let Some(v) = borrowed.take().and_then(|b| cpus.get_mut(b as usize)) {
        v.worker = true;
    }
    if let Some(v) = cpus.get_mut(to as usize) {
        v.worker = false;
    }
    if spare.is_none() {
        *borrowed = Some(to);
    }
    Some(to)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cpu(worker: bool, available: bool) -> CpuView {
        CpuView { worker, available, current: None }
    }

    #[test]
    fn a_worker_cpu_borrowed_by_the_agent_is_given_back_when_it_moves_on() {
        // CPU 0 is the only agent CPU; 1..=3 are workers.
        let mut cpus = [cpu(false, false), cpu(true, true), cpu(true, true), cpu(true, true)];
        let mut borrowed = None;
        // CPU 0 busy: the agent borrows worker 1.
        assert_eq!(agent_cpu_after_busy(&mut cpus, &[0], 0, &mut borrowed), Some(1));
        assert!(!cpus[1].worker);
        assert_eq!(borrowed, Some(1));
        // CPU 1 busy too: the agent moves to worker 2, and 1 is a worker again.
        cpus[1].available = false;
        assert_eq!(agent_cpu_after_busy(&mut cpus, &[0], 1, &mut borrowed), Some(2));
        assert!(cpus[1].worker && !cpus[2].worker);
        assert_eq!(borrowed, Some(2));
        // CPU 0 free again, CPU 2 busy: back to the agent CPU, and 2 is a worker again.
        cpus[0].available = true;
        cpus[2].available = false;
        assert_eq!(agent_cpu_after_busy(&mut cpus, &[0], 2, &mut borrowed), Some(0));
        assert!(cpus[2].worker && !cpus[0].worker);
        assert_eq!(borrowed, None);
        assert_eq!(cpus.iter().filter(|c| c.worker).count(), 3, "no worker CPU lost");
    }
}
