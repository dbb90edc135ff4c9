//! A table-driven [`KernelView`] for tests, benches, fuzzing and examples (`std` or tests only).
//!
//! Every answer comes from public fields the test sets; the actions count what the kernel would do.

use super::{KernelView, TaskInfo, TxnSnapshot};
use crate::abi::Gtid;
use core::cell::Cell;
use std::vec::Vec;

/// One simulated CPU.
#[derive(Debug, Clone)]
pub struct SimCpu {
    /// Online.
    pub online: bool,
    /// Its enclave.
    pub enclave: Option<u64>,
    /// It has an agent.
    pub agent: bool,
    /// The idle task is current.
    pub idle_running: bool,
    /// A ghOSt task is current or latched.
    pub ghost_busy: bool,
    /// A higher-priority class runs.
    pub higher_class: bool,
    /// The agent barrier (bumped by [`KernelView::bump_agent_barrier`]).
    pub agent_barrier: Cell<u32>,
    /// The runqueue's `cpu_seqnum` (incremented by each [`KernelView::latch`]).
    pub cpu_seqnum: Cell<u64>,
    /// The last target latched here.
    pub latched: Cell<Option<Gtid>>,
}

impl Default for SimCpu {
    /// Online, in enclave 1, with an agent, nothing running.
    fn default() -> Self {
        SimCpu {
            online: true,
            enclave: Some(1),
            agent: true,
            idle_running: false,
            ghost_busy: false,
            higher_class: false,
            agent_barrier: Cell::new(0),
            cpu_seqnum: Cell::new(0),
            latched: Cell::new(None),
        }
    }
}

/// A simulated kernel: CPUs, tasks, permission, a clock.
#[derive(Debug, Clone)]
pub struct SimView {
    /// The CPUs, indexed by id (missing ids: offline, no enclave, no agent).
    pub cpus: Vec<SimCpu>,
    /// The tasks.
    pub tasks: Vec<(Gtid, TaskInfo)>,
    /// The answer of [`KernelView::sync_commit_permitted`].
    pub permitted: bool,
    /// The clock: [`KernelView::now_ns`] returns it and adds 1.
    pub now: Cell<i64>,
    /// Number of [`KernelView::latch`] calls.
    pub latches: Cell<u32>,
}

impl SimView {
    /// `ncpus` default CPUs, no tasks, permitted, clock at 1000.
    pub fn new(ncpus: u32) -> SimView {
        SimView {
            cpus: (0..ncpus).map(|_| SimCpu::default()).collect(),
            tasks: Vec::new(),
            permitted: true,
            now: Cell::new(1000),
            latches: Cell::new(0),
        }
    }

    /// A runnable, not running task of enclave 1 with status-word barrier `barrier`.
    pub fn runnable_task(barrier: u32) -> TaskInfo {
        TaskInfo { barrier, runnable: true, enclave: 1, ..TaskInfo::default() }
    }

    /// Adds (or replaces) a task.
    pub fn add_task(&mut self, gtid: Gtid, info: TaskInfo) {
        self.tasks.retain(|(g, _)| *g != gtid);
        self.tasks.push((gtid, info));
    }

    fn cpu(&self, cpu: u32) -> Option<&SimCpu> {
        self.cpus.get(cpu as usize)
    }
}

impl KernelView for SimView {
    fn lookup(&self, gtid: Gtid) -> Option<TaskInfo> {
        self.tasks.iter().find(|(g, _)| *g == gtid).map(|(_, t)| *t)
    }
    fn cpu_online(&self, cpu: u32) -> bool {
        self.cpu(cpu).is_some_and(|c| c.online)
    }
    fn cpu_enclave(&self, cpu: u32) -> Option<u64> {
        self.cpu(cpu).and_then(|c| c.enclave)
    }
    fn agent_present(&self, cpu: u32) -> bool {
        self.cpu(cpu).is_some_and(|c| c.agent)
    }
    fn idle_running(&self, cpu: u32) -> bool {
        self.cpu(cpu).is_some_and(|c| c.idle_running)
    }
    fn sync_commit_permitted(&self, _caller: u32, _target: u32, _gtid: Gtid) -> bool {
        self.permitted
    }
    fn ghost_busy(&self, cpu: u32) -> bool {
        self.cpu(cpu).is_some_and(|c| c.ghost_busy)
    }
    fn higher_class_running(&self, cpu: u32) -> bool {
        self.cpu(cpu).is_some_and(|c| c.higher_class)
    }
    fn agent_barrier(&self, cpu: u32) -> u32 {
        self.cpu(cpu).map_or(0, |c| c.agent_barrier.get())
    }
    fn now_ns(&self) -> i64 {
        let t = self.now.get();
        self.now.set(t.wrapping_add(1));
        t
    }
    fn latch(&self, cpu: u32, txn: &TxnSnapshot, _already_on_cpu: bool) -> u64 {
        self.latches.set(self.latches.get() + 1);
        match self.cpu(cpu) {
            Some(c) => {
                c.latched.set(Some(txn.gtid));
                let s = c.cpu_seqnum.get().wrapping_add(1);
                c.cpu_seqnum.set(s);
                s
            }
            None => 0,
        }
    }
    fn bump_agent_barrier(&self, cpu: u32) {
        if let Some(c) = self.cpu(cpu) {
            c.agent_barrier.set(c.agent_barrier.get().wrapping_add(1));
        }
    }
}
