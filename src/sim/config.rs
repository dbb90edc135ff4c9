//! What a simulated run does ([`Config`]), what the agent's work costs ([`AgentCost`]), and the typed errors of
//! a configuration that cannot run ([`ConfigError`]).

use super::{Trace, Workload};
use crate::txn::MAX_CPUS;
use std::fmt;
use std::prelude::rust_2021::*;
use std::sync::Arc;

/// What a simulated run does. Check it with [`Config::validate`] (the `try_run*` functions do).
#[derive(Debug, Clone)]
pub struct Config {
    /// CPUs in the enclave (at most [`MAX_CPUS`]).
    pub cpus: u32,
    /// CPUs reserved for agents (a global agent spins on one), taken from the end; they run no tasks. At
    /// least one CPU must be left for tasks.
    pub agent_cpus: u32,
    /// Tasks that arrive (ignored with a [`trace`](Config::trace): one task per row).
    pub tasks: u32,
    /// The workload.
    pub workload: Workload,
    /// Replay this trace instead of generating arrivals and bursts from [`workload`](Config::workload).
    pub trace: Option<Arc<Trace>>,
    /// Seed of the workload's random numbers.
    pub seed: u64,
    /// Stop after this much virtual time even if tasks remain (at least 1 ns).
    pub duration_ns: u64,
    /// Deliver `CPU_TICK` every this many ns on CPUs running a ghOSt task (ghOSt's `deliver_ticks`; > 0).
    pub tick_ns: Option<u64>,
    /// The agent's ghOSt timerfd fires every this many ns (> 0): `CPU_TIMER_EXPIRED` on the enclave's first
    /// worker CPU, `type` 0, `cookie` = the expiry count.
    pub timer_ns: Option<u64>,
    /// Non-ghOSt tasks (a higher scheduling class) that take worker CPUs away from the enclave for a while:
    /// `CPU_BUSY` / `CPU_AVAILABLE` edges, `CPU_UNAVAIL` commits, and `CPU_NOT_IDLE` for an idle-latched CPU
    /// that asked for it (`NEED_CPU_NOT_IDLE`).
    pub competing: Option<Competing>,
    /// ghOSt's `deliver_agent_runnability`: `CPU_AGENT_BLOCKED` when a worker CPU's agent gives the CPU to a
    /// task, `CPU_AGENT_WAKEUP` when the CPU needs a decision again (a task's burst ended).
    pub agent_runnability: bool,
    /// Kill the agent at this virtual time (before `duration_ns`).
    pub crash_at_ns: Option<u64>,
    /// Start a new agent this long after the old one died.
    pub restart_after_ns: u64,
    /// Live upgrade at this virtual time (before `duration_ns`): the running agent stops and a new one takes
    /// over at once.
    pub upgrade_at_ns: Option<u64>,
    /// Slots of each queue the agent creates (a power of two in 1..=65536; agents choose, this is a hint
    /// they may use).
    pub queue_slots: u32,
    /// The agent runs at most once per this much virtual time (0: at every instant something happens); a
    /// slower agent lets messages pile up in its queues.
    pub agent_period_ns: u64,
    /// What the agent's work costs in virtual time (deterministic mode).
    pub agent_cost: AgentCost,
    /// Print a progress line to stderr every second of wall time.
    pub progress: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            cpus: 8,
            agent_cpus: 0,
            tasks: 2000,
            workload: Workload::default(),
            trace: None,
            seed: 1,
            duration_ns: 60_000_000_000,
            tick_ns: None,
            timer_ns: None,
            competing: None,
            agent_runnability: false,
            crash_at_ns: None,
            restart_after_ns: 2_000_000,
            upgrade_at_ns: None,
            queue_slots: 4096,
            agent_period_ns: 0,
            agent_cost: AgentCost::MEASURED,
            progress: false,
        }
    }
}

/// Non-ghOSt tasks competing for the enclave's worker CPUs: each worker CPU independently alternates between
/// free (exponential, mean `mean_free_ns`) and taken by a higher-class task (exponential, mean `mean_busy_ns`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Competing {
    /// Mean time a CPU is free for ghOSt, ns (> 0).
    pub mean_free_ns: u64,
    /// Mean time a higher-class task holds it, ns (> 0).
    pub mean_busy_ns: u64,
}

/// What an agent's work costs in virtual time (deterministic mode). A step that consumes `m` messages and
/// commits `t` transactions keeps the agent busy for `m × per_message_ns + t × per_txn_ns` (+ group costs):
/// each commit takes effect (the task switches in) only once the work before it is done, and the agent's next
/// step starts no earlier than the end of this one. A step that wakes a sleeping agent (one that had nothing
/// to do) starts `wakeup_ns` late: that delays its decisions but does not occupy the agent. So a centralized
/// agent saturates at about `1 / (per_message_ns × messages per decision + per_txn_ns)` decisions per second.
///
/// The enclave's agents are charged as one serial agent: exact for a centralized agent, pessimistic for
/// per-CPU agents, whose message and commit work would overlap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgentCost {
    /// Per message consumed, ns (counted as the messages produced for the agent since its last step).
    pub per_message_ns: u64,
    /// Per transaction committed with `GHOST_IOC_COMMIT_TXN`, ns.
    pub per_txn_ns: u64,
    /// Per sync-group commit, ns, plus `per_group_member_ns` per member.
    pub per_group_ns: u64,
    /// Per member of a sync group, ns.
    pub per_group_member_ns: u64,
    /// To wake a sleeping agent (its step starts after a gap with nothing to do), ns. 0 for an agent that
    /// spins (a global agent).
    pub wakeup_ns: u64,
}

impl AgentCost {
    /// Decisions are free (the simulator before costs: latency then only measures queueing for CPUs).
    pub const FREE: AgentCost =
        AgentCost { per_message_ns: 0, per_txn_ns: 0, per_group_ns: 0, per_group_member_ns: 0, wakeup_ns: 0 };

    /// This crate's own benches (BENCHMARKS.md, 2-vCPU VM, 2026-11-29): a message consumed one at a time
    /// across threads 85 ns (run B: 84.5 ns/msg), a commit round trip 190 ns (`PendingTxn::wait`, 180–192 ns),
    /// a group commit 123 ns for 2 CPUs and 441 ns for 8 (17 ns + 53 ns per member), a futex wake-up of a
    /// sleeping agent 7.1 µs (one way, 7.09 µs). An agent's own policy work comes on top (not modelled).
    pub const MEASURED: AgentCost =
        AgentCost { per_message_ns: 85, per_txn_ns: 190, per_group_ns: 17, per_group_member_ns: 53, wakeup_ns: 7_090 };

    /// The same costs for an agent that spins instead of sleeping (no wake-up cost).
    pub const MEASURED_SPINNING: AgentCost = AgentCost { wakeup_ns: 0, ..AgentCost::MEASURED };
}

impl Default for AgentCost {
    fn default() -> Self {
        AgentCost::MEASURED
    }
}

/// Why a [`Config`] (or a machine of enclaves) cannot run. Each names the offending value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// `cpus` is 0 or above [`MAX_CPUS`].
    Cpus(u64),
    /// Every CPU is reserved for agents: `agent_cpus` ≥ `cpus`, nothing would run tasks.
    NoWorkerCpus {
        /// The enclave's CPUs.
        cpus: u32,
        /// CPUs reserved for agents.
        agent_cpus: u32,
    },
    /// More tasks than the simulator's status-word regions hold ([`ConfigError::MAX_TASKS`]), or none.
    Tasks(u64),
    /// `duration_ns` is 0.
    ZeroDuration,
    /// `tick_ns` is `Some(0)`: the tick would re-arm at the same instant forever.
    ZeroTick,
    /// `timer_ns` is `Some(0)`.
    ZeroTimer,
    /// `queue_slots` is not a power of two in 1..=65536.
    QueueSlots(u32),
    /// `queue_slots` is below [`ConfigError::MIN_QUEUE_SLOTS`]: the longest message would not always fit in
    /// an empty queue, and every such message would be dropped.
    QueueTooSmall(u32),
    /// `crash_at_ns` is not before the end of the run.
    CrashAfterEnd {
        /// The crash time.
        at_ns: u64,
        /// The run's duration.
        duration_ns: u64,
    },
    /// `upgrade_at_ns` is not before the end of the run.
    UpgradeAfterEnd {
        /// The upgrade time.
        at_ns: u64,
        /// The run's duration.
        duration_ns: u64,
    },
    /// A workload field is out of range (its name and why).
    Workload(&'static str),
    /// A competing-task mean is 0.
    Competing,
    /// A trace row names a CPU outside the enclave (row index, CPU).
    TraceCpu(usize, u32),
    /// Two enclaves of a machine share this CPU.
    Overlap(u32),
    /// An enclave has no CPU (its index).
    EmptyEnclave(usize),
    /// A machine run without enclaves.
    NoEnclaves,
}

impl ConfigError {
    /// Status-word regions the simulator allocates per enclave at most (ghOSt's `sw_regions`, 65,534 words
    /// each).
    pub const MAX_SW_REGIONS: u32 = 64;
    /// The most tasks an enclave can hold: its status-word regions less one word per CPU agent.
    pub const MAX_TASKS: u32 = Self::MAX_SW_REGIONS * 65_534 - MAX_CPUS;
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Cpus(n) => write!(f, "cpus {n}: must be in 1..={MAX_CPUS}"),
            ConfigError::NoWorkerCpus { cpus, agent_cpus } => write!(
                f,
                "{agent_cpus} agent CPU(s) of {cpus}: no CPU is left to run tasks (need at least {})",
                agent_cpus + 1
            ),
            ConfigError::Tasks(n) => write!(f, "tasks {n}: must be in 1..={}", ConfigError::MAX_TASKS),
            ConfigError::ZeroDuration => f.write_str("duration 0: nothing would run"),
            ConfigError::ZeroTick => f.write_str("tick period 0: must be at least 1 ns"),
            ConfigError::ZeroTimer => f.write_str("timer period 0: must be at least 1 ns"),
            ConfigError::QueueSlots(n) => write!(f, "queue slots {n}: must be a power of two in 1..=65536"),
            ConfigError::QueueTooSmall(n) => write!(
                f,
                "queue slots {n}: below {}, the longest message ({} slots) does not always fit",
                ConfigError::MIN_QUEUE_SLOTS,
                ConfigError::MAX_MSG_SLOTS
            ),
            ConfigError::CrashAfterEnd { at_ns, duration_ns } => {
                write!(f, "crash at {at_ns} ns: not before the end of the run ({duration_ns} ns)")
            }
            ConfigError::UpgradeAfterEnd { at_ns, duration_ns } => {
                write!(f, "upgrade at {at_ns} ns: not before the end of the run ({duration_ns} ns)")
            }
            ConfigError::Workload(why) => write!(f, "workload: {why}"),
            ConfigError::Competing => f.write_str("competing tasks: mean free and busy times must be > 0"),
            ConfigError::TraceCpu(row, cpu) => {
                write!(f, "trace row {row}: CPU {cpu} is not a worker CPU of the enclave")
            }
            ConfigError::Overlap(cpu) => write!(f, "CPU {cpu} is in two enclaves"),
            ConfigError::EmptyEnclave(e) => write!(f, "enclave {e} has no CPU"),
            ConfigError::NoEnclaves => f.write_str("no enclave to run"),
        }
    }
}

impl std::error::Error for ConfigError {}

impl ConfigError {
    /// The slots of the longest message (header and payload, [`MAX_MSG_LEN`](crate::abi::MAX_MSG_LEN) bytes,
    /// in 8-byte slots).
    pub const MAX_MSG_SLOTS: u32 = crate::abi::MAX_MSG_LEN.div_ceil(crate::abi::MSG_HEADER_LEN) as u32;
    /// The fewest queue slots that always take the longest message when the queue is empty: a message is
    /// contiguous (at the head, or wrapped to slot 0), so the head may split the free slots in two, and the
    /// larger part is at least half of the ring.
    pub const MIN_QUEUE_SLOTS: u32 = (2 * Self::MAX_MSG_SLOTS).next_power_of_two();
}

impl Config {
    /// The tasks this run will have: the trace's rows, or `tasks`.
    pub fn task_count(&self) -> u64 {
        self.trace.as_ref().map_or(self.tasks as u64, |t| t.rows.len() as u64)
    }

    /// Checks everything but the CPU set (for an enclave of `cpus` CPUs; [`validate`](Config::validate) uses
    /// `self.cpus`).
    pub fn validate_for(&self, cpus: u32) -> Result<(), ConfigError> {
        if cpus == 0 || cpus > MAX_CPUS {
            return Err(ConfigError::Cpus(cpus as u64));
        }
        if self.agent_cpus >= cpus {
            return Err(ConfigError::NoWorkerCpus { cpus, agent_cpus: self.agent_cpus });
        }
        let tasks = self.task_count();
        if tasks == 0 || tasks > ConfigError::MAX_TASKS as u64 {
            return Err(ConfigError::Tasks(tasks));
        }
        if self.duration_ns == 0 {
            return Err(ConfigError::ZeroDuration);
        }
        if self.tick_ns == Some(0) {
            return Err(ConfigError::ZeroTick);
        }
        if self.timer_ns == Some(0) {
            return Err(ConfigError::ZeroTimer);
        }
        if !self.queue_slots.is_power_of_two() || self.queue_slots > 65_536 {
            return Err(ConfigError::QueueSlots(self.queue_slots));
        }
        if self.queue_slots < ConfigError::MIN_QUEUE_SLOTS {
            return Err(ConfigError::QueueTooSmall(self.queue_slots));
        }
        if let Some(at_ns) = self.crash_at_ns.filter(|&t| t >= self.duration_ns) {
            return Err(ConfigError::CrashAfterEnd { at_ns, duration_ns: self.duration_ns });
        }
        if let Some(at_ns) = self.upgrade_at_ns.filter(|&t| t >= self.duration_ns) {
            return Err(ConfigError::UpgradeAfterEnd { at_ns, duration_ns: self.duration_ns });
        }
        let w = &self.workload;
        if w.bursts.0 == 0 || w.bursts.1 < w.bursts.0 {
            return Err(ConfigError::Workload("bursts must be a range lo..=hi with 1 <= lo <= hi"));
        }
        if w.block_permille > 1000 || w.depart_permille > 1000 || w.affinity_permille > 1000 {
            return Err(ConfigError::Workload("a probability in ‰ is above 1000"));
        }
        if let super::Service::Bimodal { long_ppm, .. } = w.service {
            if long_ppm > 1_000_000 {
                return Err(ConfigError::Workload("long_ppm is above 1,000,000"));
            }
        }
        if w.load_permille == 0 && w.mean_arrival_gap_ns == 0 && self.trace.is_none() {
            return Err(ConfigError::Workload("mean_arrival_gap_ns is 0 (every task at once: use load_permille)"));
        }
        if self.competing.is_some_and(|c| c.mean_free_ns == 0 || c.mean_busy_ns == 0) {
            return Err(ConfigError::Competing);
        }
        if let Some(t) = &self.trace {
            let workers = cpus - self.agent_cpus;
            for (i, row) in t.rows.iter().enumerate() {
                if let Some(&c) = row.cpus.iter().flatten().find(|&&c| c >= workers) {
                    return Err(ConfigError::TraceCpu(i, c));
                }
            }
        }
        Ok(())
    }

    /// Checks that this configuration can run as one enclave of `cpus` CPUs.
    ///
    /// ```
    /// use ghost_shm::sim::{Config, ConfigError};
    /// assert_eq!(Config { tick_ns: Some(0), ..Config::default() }.validate(), Err(ConfigError::ZeroTick));
    /// assert!(Config::default().validate().is_ok());
    /// ```
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_for(self.cpus)
    }
}
