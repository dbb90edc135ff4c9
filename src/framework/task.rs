//! The built-in task table and a run queue for policies.

use crate::abi::{GhostSwInfo, Gtid};
use crate::topology::CpuSet;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// Where a task is, as far as the agent knows from the messages it consumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskState {
    /// Runnable and not on a CPU: it waits for a decision of the policy.
    Runnable,
    /// On a CPU ([`Task::cpu`], if known: a task found running by discovery has no known CPU until its next
    /// message).
    OnCpu,
    /// Blocked (sleeping): it is not runnable until its next wake-up.
    Blocked,
}

/// One task of the enclave, as the framework tracks it. Policies get copies; the framework keeps the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Task {
    /// The task.
    pub gtid: Gtid,
    /// Its state.
    pub state: TaskState,
    /// The CPU it runs on ([`TaskState::OnCpu`]) or last ran on; `None` if unknown.
    pub cpu: Option<u32>,
    /// The CPU whose agent receives its messages (per-CPU runtime: set by [`Ctx::place`](super::Ctx::place)).
    pub home: Option<u32>,
    /// The task barrier: the seqnum of the newest message of this task consumed (or, for a task found by
    /// discovery, its status word's barrier). A transaction for the task carries it, so the kernel refuses a
    /// decision taken before a newer message (`TARGET_STALE`).
    pub seqnum: u32,
    /// Its CPU time in ns, from its latest message that carries one.
    pub runtime_ns: u64,
    /// When it got on its CPU (enclave clock, ns), while [`TaskState::OnCpu`] and known.
    pub on_cpu_since: Option<u64>,
    /// When it last became runnable (enclave clock, ns).
    pub runnable_since: u64,
    /// Its nice value (from `TASK_NEW` / `TASK_PRIORITY_CHANGED`).
    pub nice: i32,
    /// The CPUs it may run on, if the backend reports an affinity (`sched_getaffinity`, read again on
    /// `TASK_AFFINITY_CHANGED`); `None`: any. [`Ctx::run`](super::Ctx::run) refuses other CPUs.
    pub affinity: Option<CpuSet>,
    pub(crate) sw: Option<GhostSwInfo>,
    /// Seqnum of the last message consumed (0: none yet).
    pub(crate) last_msg: u32,
    /// A placement refused as stale, retried after the task's next messages.
    pub(crate) want_home: Option<u32>,
}

impl Task {
    pub(crate) fn new(gtid: Gtid, state: TaskState, seqnum: u32, now: u64) -> Task {
        Task {
            gtid,
            state,
            cpu: None,
            home: None,
            seqnum,
            runtime_ns: 0,
            on_cpu_since: None,
            runnable_since: now,
            nice: 0,
            affinity: None,
            sw: None,
            last_msg: 0,
            want_home: None,
        }
    }

    /// Runnable and not on a CPU.
    pub fn is_runnable(&self) -> bool {
        self.state == TaskState::Runnable
    }

    /// Whether its affinity allows `cpu`.
    pub fn may_run_on(&self, cpu: u32) -> bool {
        self.affinity.is_none_or(|a| a.contains(cpu as usize))
    }

    /// How long it has been on its CPU at `now` (0 when not on a CPU or the start is unknown).
    pub fn ran_for(&self, now: u64) -> u64 {
        match (self.state, self.on_cpu_since) {
            (TaskState::OnCpu, Some(t)) => now.saturating_sub(t),
            _ => 0,
        }
    }
}

/// The task table: every task of the enclave the agent knows, by gtid (ordered, so runs are deterministic).
#[derive(Debug, Default, Clone)]
pub struct TaskTable {
    map: BTreeMap<Gtid, Task>,
}

impl TaskTable {
    /// The task `g`.
    pub fn get(&self, g: Gtid) -> Option<&Task> {
        self.map.get(&g)
    }
    pub(crate) fn get_mut(&mut self, g: Gtid) -> Option<&mut Task> {
        self.map.get_mut(&g)
    }
    pub(crate) fn insert(&mut self, t: Task) {
        self.map.insert(t.gtid, t);
    }
    pub(crate) fn remove(&mut self, g: Gtid) -> Option<Task> {
        self.map.remove(&g)
    }
    /// Every task, in gtid order.
    pub fn iter(&self) -> impl Iterator<Item = &Task> {
        self.map.values()
    }
    /// Number of tasks.
    pub fn len(&self) -> usize {
        self.map.len()
    }
    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
    /// Tasks in state `s`.
    pub fn count(&self, s: TaskState) -> usize {
        self.map.values().filter(|t| t.state == s).count()
    }
}

/// A FIFO of tasks for policies: each task at most once, cheap membership test. Tasks that died or got on a
/// CPU meanwhile may stay queued: [`Ctx::run_next`](super::Ctx::run_next) skips them, so a policy need not
/// remove tasks on every event.
#[derive(Debug, Default, Clone)]
pub struct RunQueue {
    q: VecDeque<Gtid>,
    members: BTreeSet<Gtid>,
}

impl RunQueue {
    /// An empty queue.
    pub fn new() -> Self {
        RunQueue::default()
    }
    /// Appends `g` unless it is queued already; whether it was added.
    pub fn push_back(&mut self, g: Gtid) -> bool {
        let added = self.members.insert(g);
        if added {
            self.q.push_back(g);
        }
        added
    }
    /// Puts `g` first unless it is queued already; whether it was added.
    pub fn push_front(&mut self, g: Gtid) -> bool {
        let added = self.members.insert(g);
        if added {
            self.q.push_front(g);
        }
        added
    }
    /// Takes the first task.
    pub fn pop_front(&mut self) -> Option<Gtid> {
        let g = self.q.pop_front()?;
        self.members.remove(&g);
        Some(g)
    }
    /// Removes `g`; whether it was queued.
    pub fn remove(&mut self, g: Gtid) -> bool {
        let was = self.members.remove(&g);
        if was {
            self.q.retain(|&x| x != g);
        }
        was
    }
    /// Whether `g` is queued.
    pub fn contains(&self, g: Gtid) -> bool {
        self.members.contains(&g)
    }
    /// Tasks queued.
    pub fn len(&self) -> usize {
        self.q.len()
    }
    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.q.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_queue_holds_each_task_once_in_order() {
        let mut q = RunQueue::new();
        assert!(q.push_back(Gtid(1)));
        assert!(q.push_back(Gtid(2)));
        assert!(!q.push_back(Gtid(1)));
        assert!(q.push_front(Gtid(3)));
        assert_eq!(q.len(), 3);
        assert!(q.remove(Gtid(2)));
        assert!(!q.remove(Gtid(2)));
        assert_eq!((q.pop_front(), q.pop_front(), q.pop_front()), (Some(Gtid(3)), Some(Gtid(1)), None));
        assert!(q.is_empty() && !q.contains(Gtid(1)));
        assert!(q.push_back(Gtid(1)), "a popped task can be queued again");
    }

    #[test]
    fn ran_for_counts_only_on_cpu() {
        let mut t = Task::new(Gtid(5), TaskState::Runnable, 1, 0);
        t.on_cpu_since = Some(100);
        assert_eq!(t.ran_for(150), 0);
        t.state = TaskState::OnCpu;
        assert_eq!(t.ran_for(150), 50);
        assert_eq!(t.ran_for(50), 0);
    }
}
