//! The simulated kernel (`sim` feature): develop and test ghOSt policies without a ghOSt kernel.
//!
//! A simulated machine of up to [`MAX_CPUS`](crate::txn::MAX_CPUS) CPUs cut into enclaves, driven by a seeded
//! [`Workload`] (open-loop Poisson arrivals at a mean gap or at a target load, run bursts from a [`Service`]
//! distribution — exponential, fixed, or the dispersive bimodal mix of [`Workload::DISPERSIVE`] — blocking and
//! wake-ups, yields, exits, departures, affinity changes) or by a replayed [`Trace`]. It uses only the crate's
//! kernel-side code: [`Producer`](crate::queue::Producer)s for messages (routed through the default queue and
//! [`associate`](crate::queue::associate)d queues), status-word [`Writer`](crate::status::Writer)s for status
//! words and barriers (several 65,534-word regions, as ghOSt's `sw_regions`),
//! [`AgentBarrier`](crate::status::AgentBarrier)s for CPU messages and wake-ups, and
//! [`CpuData`](crate::txn::CpuData) claim / validate / complete for transactions. Agents run on the public
//! [`agent`](crate::agent) API, exactly as on a real kernel.
//!
//! Messages: every task message of ABI 91 the kernel writes to a ring (`TASK_NEW`, `WAKEUP`, `BLOCKED`,
//! `YIELD`, `PREEMPT`, `DEAD`, `DEPARTED`, `AFFINITY_CHANGED`, `ON_CPU`) and the CPU messages `CPU_TICK`
//! ([`Config::tick_ns`]), `CPU_TIMER_EXPIRED` ([`Config::timer_ns`]), `CPU_BUSY` / `CPU_AVAILABLE` /
//! `CPU_NOT_IDLE` (competing non-ghOSt tasks, [`Config::competing`]) and `CPU_AGENT_BLOCKED` /
//! `CPU_AGENT_WAKEUP` ([`Config::agent_runnability`]). `TASK_LATCH_FAILURE` is BPF-only in ABI 91 and never
//! written to a ring, here as there. Commits outside a task's affinity fail with `NOT_PERMITTED`, commits to
//! a CPU a competing task holds with `CPU_UNAVAIL`.
//!
//! Two modes:
//! - **deterministic** ([`try_run`], [`try_run_machine`]) — virtual time, one thread; the kernel processes every
//!   event due at an instant, then lets the agents of the enclaves concerned run (drain their queues, commit).
//!   The agent's work costs virtual time ([`AgentCost`]): its decisions take effect when the work before them
//!   is done, and a busy agent runs again only when it is free, so a slow policy saturates. The same seed
//!   yields the identical event trace ([`Report::trace_hash`]) and the identical text report.
//! - **real time** ([`try_run_realtime`]) — wall-clock time; kernel threads (at most the host's cores less one,
//!   the simulated CPUs multiplexed onto them) drive the clock and process due events under the kernel lock,
//!   while the agent runs on its own thread over the same shared memory, as on a real machine.
//!
//! Every configuration is checked first ([`Config::validate`]): a bad one is a [`ConfigError`] naming the
//! value, never a hang or a meaningless run.
//!
//! Latching follows §5: a committed task runs on the target CPU (after the agent's work), preempting the
//! CPU's current task (which gets `TASK_PREEMPT`); `TASK_ON_CPU` is sent when the run flags ask for it. A later
//! commit of a task latched earlier in the same batch migrates it and drops the earlier latch (§5.4 step 7).
//!
//! Crash resilience, as in ghOSt: when the agent dies (it panics anywhere — start, step, counters — or
//! [`Config::crash_at_ns`] kills it), the kernel fails its READY transactions with `NO_AGENT` and falls back to
//! a default FIFO policy so tasks keep running; after [`Config::restart_after_ns`] a new agent attaches,
//! rediscovers the tasks through the status words (§4.4) and takes over. Both modes.
//!
//! ```
//! use ghost_shm::sim::{AgentCost, Config, Workload};
//! // The ghOSt paper's dispersive RocksDB-like load at 80 % of 16 workers, with measured agent costs.
//! let cfg = Config {
//!     cpus: 17,
//!     agent_cpus: 1,
//!     tasks: 10_000,
//!     workload: Workload { load_permille: 800, ..Workload::DISPERSIVE },
//!     agent_cost: AgentCost::MEASURED_SPINNING,
//!     ..Config::default()
//! };
//! assert!(cfg.validate().is_ok());
//! assert_eq!(cfg.workload.offered_permille(16), 800);
//! ```

mod config;
mod kernel;
mod workload;

pub use config::{AgentCost, Competing, Config, ConfigError};

pub use kernel::SimBackend;

/// The gtid the simulator gives its `index`-th task (machine-wide, enclaves in order): pid 1000 + index,
/// sequence number 1. Tests use it to aim at tasks they do not own.
pub fn task_gtid(index: usize) -> crate::abi::Gtid {
    kernel::task_gtid(index)
}
pub use workload::{Rng, Service, Trace, TraceError, TraceRow, Workload};

use crate::abi::TxnOutcome;
use crate::agent::{AgentError, Backend, Enclave};
use crate::topology::CpuSet;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::prelude::rust_2021::*;
use std::time::Instant;
use std::{eprintln, format, vec};

/// What an agent reports about itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AgentStats {
    /// Messages consumed.
    pub messages: u64,
    /// Messages whose seqnum was not above the task's previous one (must stay 0).
    pub seqnum_violations: u64,
    /// Overflows the agent saw on its queues.
    pub overflows_seen: u64,
}

/// A scheduling policy running as an agent.
pub trait Agent<B: Backend> {
    /// One pass: drain messages, make decisions, commit. Called by the simulator whenever time advances.
    fn step(&mut self, enclave: &Enclave<B>) -> Result<(), AgentError>;
    /// The agent's counters.
    fn stats(&self) -> AgentStats;
    /// Named counters of the agent and its policy, summed over incarnations into [`Report::counters`].
    fn counters(&self) -> Vec<(&'static str, u64)> {
        Vec::new()
    }
}

/// The result of a run. Times are virtual ns in deterministic mode, wall-clock ns in real-time mode
/// ([`realtime`](Report::realtime)).
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Tasks the configuration has.
    pub tasks_total: u64,
    /// Tasks that arrived.
    pub tasks_arrived: u64,
    /// Tasks that exited.
    pub tasks_completed: u64,
    /// Tasks that left the enclave (`TASK_DEPARTED`).
    pub tasks_departed: u64,
    /// Time simulated: the whole run (ns).
    pub virtual_ns: u64,
    /// This enclave's time: until its last task exited or departed, else the whole run (ns).
    pub enclave_ns: u64,
    /// Wall time the simulation took (ns). Not part of the deterministic text report (its `Display` shows it
    /// only with `{:#}`).
    pub wall_ns: u64,
    /// CPUs that ran tasks.
    pub worker_cpus: u32,
    /// CPUs reserved for agents (they run no tasks).
    pub agent_cpus: u32,
    /// Load the arrivals offer, ‰ of the worker CPUs (mean work per task / (mean gap × workers)).
    pub offered_load_permille: u64,
    /// ghOSt task time on the worker CPUs (ns): the achieved load is `cpu_busy_ns / (enclave_ns × workers)`.
    pub cpu_busy_ns: u64,
    /// Virtual time the agent spent working under [`Config::agent_cost`] (ns).
    pub agent_busy_ns: u64,
    /// The agent costs the run charged.
    pub agent_cost: AgentCost,
    /// Scheduling latencies (runnable → on CPU), ns, sorted.
    pub latencies: Vec<u64>,
    /// Per task that exited, in exit order: its CPU time and its response time (arrival → exit), ns.
    pub responses: Vec<(u64, u64)>,
    /// Transactions by final state.
    pub txn_outcomes: Vec<(TxnOutcome, u64)>,
    /// Messages produced into queues.
    pub messages_produced: u64,
    /// Messages dropped because a queue was full (each counted in that ring's `overflow`).
    pub messages_dropped: u64,
    /// Messages the agents consumed (all incarnations).
    pub messages_consumed: u64,
    /// Messages left in queues at the end (including queues of dead agents).
    pub messages_left: u64,
    /// Overflows the agents saw on their queues (at most `messages_dropped`: drops after an agent's last look
    /// are only in the rings).
    pub overflows_seen: u64,
    /// The sum of the rings' `overflow` counters at the end (equals `messages_dropped`: no drop is silent).
    pub ring_overflows: u64,
    /// Seqnum order violations seen by agents (must be 0).
    pub seqnum_violations: u64,
    /// Kernel invariant violations (a task on two CPUs, a CPU with two tasks; must be 0).
    pub invariant_violations: u64,
    /// Latches a later commit of the same batch dropped by migrating their task to its own CPU (§5.4 step 7:
    /// e.g. two members of a sync group naming one task).
    pub latches_dropped: u64,
    /// Times a competing non-ghOSt task took a worker CPU.
    pub competing_takes: u64,
    /// `CPU_TIMER_EXPIRED` messages (timerfd expiries).
    pub timer_expiries: u64,
    /// Agents that died.
    pub agent_crashes: u64,
    /// Agents started.
    pub agent_starts: u64,
    /// Live upgrades performed.
    pub upgrades: u64,
    /// Longest wall time a replacement agent took to attach and take over (rediscovery), ns (wall clock: shown
    /// only with `{:#}`).
    pub handoff_wall_ns: u64,
    /// Tasks dispatched by the kernel's fallback policy while no agent was attached.
    pub fallback_dispatches: u64,
    /// Longest time with runnable tasks and idle CPUs but no dispatch (ns).
    pub longest_gap_ns: u64,
    /// Hash (FNV-style, word by word) of the kernel's event trace (deterministic mode).
    pub trace_hash: u64,
    /// Every task id that arrived but neither exited nor departed.
    pub unfinished: Vec<u32>,
    /// Kernel events the simulator processed for the whole machine (arrivals, burst ends, wake-ups, ticks,
    /// polls, ...): with `wall_ns`, the simulator's own speed.
    pub machine_events: u64,
    /// The agents' named counters ([`Agent::counters`]: the framework's and the policy's), summed over
    /// agent incarnations, in name order.
    pub counters: Vec<(&'static str, u64)>,
    /// Real-time mode: the OS threads that ran the simulated CPUs (0 in deterministic mode).
    pub kernel_threads: u32,
    /// The run was in real time (wall-clock ns), not in virtual time.
    pub realtime: bool,
}

impl Report {
    /// The `p`-th per-mille latency (e.g. 500 = p50, 999 = p99.9), ns.
    pub fn latency_permille(&self, p: u64) -> u64 {
        if self.latencies.is_empty() {
            return 0;
        }
        let idx = ((self.latencies.len() as u64 - 1) * p.min(1000) / 1000) as usize;
        self.latencies[idx]
    }

    /// Transactions committed (any outcome) per second of the enclave's time.
    pub fn txns_per_sec(&self) -> f64 {
        let n: u64 = self.txn_outcomes.iter().map(|(_, n)| n).sum();
        per_sec(n, self.enclave_ns)
    }

    /// The agents' counter `name` (0 if absent).
    pub fn counter(&self, name: &str) -> u64 {
        self.counters.iter().find(|(k, _)| *k == name).map_or(0, |(_, v)| *v)
    }

    /// Count of transactions that ended in `o`.
    pub fn outcome(&self, o: TxnOutcome) -> u64 {
        self.txn_outcomes.iter().find(|(x, _)| *x == o).map_or(0, |(_, n)| *n)
    }

    /// Tasks that exited or departed per second of the enclave's time.
    pub fn throughput(&self) -> f64 {
        per_sec(self.tasks_completed + self.tasks_departed, self.enclave_ns)
    }

    /// Achieved load: ghOSt task time / (enclave time × worker CPUs), ‰.
    pub fn achieved_load_permille(&self) -> u64 {
        let cap = self.enclave_ns as u128 * self.worker_cpus.max(1) as u128;
        (self.cpu_busy_ns as u128 * 1000).checked_div(cap).map_or(0, |p| p as u64)
    }

    /// The report as one JSON object (for scripts): every count, the latency percentiles (ns), the outcomes
    /// by name. Wall-clock fields only with `wall`.
    pub fn to_json(&self, wall: bool) -> String {
        let mut o = String::from("{");
        let mut field = |k: &str, v: String| {
            if o.len() > 1 {
                o.push(',');
            }
            o.push_str(&format!("\"{k}\":{v}"));
        };
        field("mode", format!("\"{}\"", if self.realtime { "realtime" } else { "deterministic" }));
        for (k, v) in [
            ("tasks_total", self.tasks_total),
            ("tasks_arrived", self.tasks_arrived),
            ("tasks_completed", self.tasks_completed),
            ("tasks_departed", self.tasks_departed),
            ("unfinished", self.unfinished.len() as u64),
            ("run_ns", self.virtual_ns),
            ("enclave_ns", self.enclave_ns),
            ("worker_cpus", self.worker_cpus as u64),
            ("agent_cpus", self.agent_cpus as u64),
            ("offered_load_permille", self.offered_load_permille),
            ("achieved_load_permille", self.achieved_load_permille()),
            ("cpu_busy_ns", self.cpu_busy_ns),
            ("agent_busy_ns", self.agent_busy_ns),
            ("latency_samples", self.latencies.len() as u64),
            ("latency_p50_ns", self.latency_permille(500)),
            ("latency_p99_ns", self.latency_permille(990)),
            ("latency_p999_ns", self.latency_permille(999)),
            ("latency_max_ns", self.latencies.last().copied().unwrap_or(0)),
            ("messages_produced", self.messages_produced),
            ("messages_consumed", self.messages_consumed),
            ("messages_dropped", self.messages_dropped),
            ("messages_left", self.messages_left),
            ("overflows_seen", self.overflows_seen),
            ("ring_overflows", self.ring_overflows),
            ("seqnum_violations", self.seqnum_violations),
            ("invariant_violations", self.invariant_violations),
            ("latches_dropped", self.latches_dropped),
            ("competing_takes", self.competing_takes),
            ("timer_expiries", self.timer_expiries),
            ("agent_starts", self.agent_starts),
            ("agent_crashes", self.agent_crashes),
            ("upgrades", self.upgrades),
            ("fallback_dispatches", self.fallback_dispatches),
            ("longest_gap_ns", self.longest_gap_ns),
        ] {
            field(k, v.to_string());
        }
        field("throughput_per_s", format!("{:.3}", self.throughput()));
        field("txns_per_s", format!("{:.3}", self.txns_per_sec()));
        let outcomes: Vec<String> = self.txn_outcomes.iter().map(|(o, n)| format!("\"{o:?}\":{n}")).collect();
        field("txn_outcomes", format!("{{{}}}", outcomes.join(",")));
        let counters: Vec<String> = self.counters.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
        field("counters", format!("{{{}}}", counters.join(",")));
        if !self.realtime {
            field("trace_hash", format!("\"{:016x}\"", self.trace_hash));
        }
        if self.realtime {
            field("kernel_threads", self.kernel_threads.to_string());
        }
        field("machine_events", self.machine_events.to_string());
        if wall || self.realtime {
            field("wall_ns", self.wall_ns.to_string());
            field("handoff_wall_ns", self.handoff_wall_ns.to_string());
        }
        o.push('}');
        o
    }
}

fn per_sec(n: u64, ns: u64) -> f64 {
    if ns == 0 {
        0.0
    } else {
        n as f64 * 1e9 / ns as f64
    }
}

/// A duration with a unit that suits it.
fn dur(ns: u64) -> String {
    if ns < 1_000 {
        format!("{ns} ns")
    } else if ns < 1_000_000 {
        format!("{:.1} µs", ns as f64 / 1e3)
    } else if ns < 1_000_000_000 {
        format!("{:.3} ms", ns as f64 / 1e6)
    } else {
        format!("{:.3} s", ns as f64 / 1e9)
    }
}

/// `n` and the noun, singular or plural.
fn count(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn permille(p: u64) -> String {
    format!("{}.{} %", p / 10, p % 10)
}

/// The human report. Deterministic runs print only what the seed decides (byte-identical for the same
/// configuration); `{:#}` adds the wall-clock fields. Real-time runs print wall-clock times and no trace hash.
impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let clock = if self.realtime { "wall clock" } else { "virtual time" };
        writeln!(
            f,
            "CPUs                 {} running tasks, {} reserved for the agent",
            self.worker_cpus, self.agent_cpus
        )?;
        writeln!(
            f,
            "tasks                {} of {} completed, {} departed, {} unfinished, {} never arrived",
            self.tasks_completed,
            self.tasks_total,
            self.tasks_departed,
            self.unfinished.len(),
            self.tasks_total.saturating_sub(self.tasks_arrived)
        )?;
        write!(f, "time                 {} ({clock}; the run: {})", dur(self.enclave_ns), dur(self.virtual_ns))?;
        if f.alternate() || self.realtime {
            write!(f, ", wall {}", dur(self.wall_ns))?;
            if !self.realtime && self.machine_events > 0 {
                write!(
                    f,
                    "; {} kernel events, {:.0} ns wall each",
                    self.machine_events,
                    self.wall_ns as f64 / self.machine_events as f64
                )?;
            }
        }
        writeln!(f)?;
        writeln!(f, "throughput           {:.1} tasks/s ({clock})", self.throughput())?;
        writeln!(
            f,
            "load                 offered {}, achieved {} of the worker CPUs",
            permille(self.offered_load_permille),
            permille(self.achieved_load_permille())
        )?;
        writeln!(
            f,
            "sched latency        p50 {}  p99 {}  p99.9 {}  max {}  (runnable → on CPU, {})",
            dur(self.latency_permille(500)),
            dur(self.latency_permille(990)),
            dur(self.latency_permille(999)),
            dur(self.latencies.last().copied().unwrap_or(0)),
            count(self.latencies.len() as u64, "sample", "samples")
        )?;
        if !self.realtime {
            let c = &self.agent_cost;
            writeln!(
                f,
                "agent work           {} busy (costs: {} ns/message, {} ns/txn, {} ns/group + {} ns/member, {} ns/wake-up)",
                dur(self.agent_busy_ns),
                c.per_message_ns,
                c.per_txn_ns,
                c.per_group_ns,
                c.per_group_member_ns,
                c.wakeup_ns
            )?;
        }
        write!(f, "transactions         {:.0}/s ", self.txns_per_sec())?;
        for (o, n) in &self.txn_outcomes {
            write!(f, " {o:?}={n}")?;
        }
        writeln!(f)?;
        writeln!(
            f,
            "messages             produced {}  consumed {}  dropped (overflow) {}  overflows seen {}  left in queues {}",
            self.messages_produced, self.messages_consumed, self.messages_dropped, self.overflows_seen, self.messages_left
        )?;
        if self.competing_takes > 0 || self.timer_expiries > 0 || self.latches_dropped > 0 {
            writeln!(
                f,
                "events               competing takes {}  timer expiries {}  latches dropped {}",
                self.competing_takes, self.timer_expiries, self.latches_dropped
            )?;
        }
        writeln!(
            f,
            "agents               started {}  crashed {}  upgraded {}  fallback dispatches {}",
            self.agent_starts, self.agent_crashes, self.upgrades, self.fallback_dispatches,
        )?;
        write!(
            f,
            "hand-off             longest dispatch gap {} (runnable tasks and idle CPUs, no dispatch)",
            dur(self.longest_gap_ns)
        )?;
        if f.alternate() || self.realtime {
            write!(f, "  longest agent take-over {} (wall)", dur(self.handoff_wall_ns))?;
        }
        writeln!(f)?;
        write!(
            f,
            "checks               seqnum violations {}  invariant violations {}",
            self.seqnum_violations, self.invariant_violations
        )?;
        if !self.counters.is_empty() {
            write!(f, "\nagent counters      ")?;
            for (k, v) in &self.counters {
                write!(f, " {k}={v}")?;
            }
        }
        if self.realtime {
            write!(f, "\nkernel threads       {} (simulated CPUs multiplexed onto them)", self.kernel_threads)
        } else {
            write!(f, "\ntrace hash           {:016x}", self.trace_hash)
        }
    }
}

/// An agent started by the simulator, boxed so that enclaves may run different policies.
pub type BoxedAgent<'a, 'r> = Box<dyn Agent<SimBackend<'a, 'r>> + 'a>;

/// Builds an agent on a fresh [`Enclave`] handle (at start, after a crash, at an upgrade).
pub type StartAgent<'f> =
    Box<dyn for<'a, 'r> FnMut(&Enclave<SimBackend<'a, 'r>>) -> Result<BoxedAgent<'a, 'r>, AgentError> + 'f>;

/// One enclave of a machine run.
pub struct EnclaveSpec<'f> {
    /// A name for the report.
    pub name: String,
    /// Its CPUs (disjoint from every other enclave's).
    pub cpus: CpuSet,
    /// Its tasks, workload, seed, crash and upgrade times (`cpus` is ignored: the set above counts).
    pub config: Config,
    /// Its agent.
    pub start: StartAgent<'f>,
}

/// The result of a machine run: one [`Report`] per enclave.
#[derive(Debug, Clone, Default)]
pub struct MachineReport {
    /// Per enclave, in the order given.
    pub enclaves: Vec<(String, Report)>,
    /// Wall time of the whole run (ns).
    pub wall_ns: u64,
}

impl MachineReport {
    /// The report as JSON: `{"enclaves":[{"name":..,"report":{..}},..]}` (see [`Report::to_json`]).
    pub fn to_json(&self, wall: bool) -> String {
        let parts: Vec<String> = self
            .enclaves
            .iter()
            .map(|(n, r)| {
                format!(
                    "{{\"name\":\"{}\",\"report\":{}}}",
                    n.replace('\\', "\\\\").replace('"', "\\\""),
                    r.to_json(wall)
                )
            })
            .collect();
        let mut o = format!("{{\"enclaves\":[{}]", parts.join(","));
        if wall {
            o.push_str(&format!(",\"wall_ns\":{}", self.wall_ns));
        }
        o.push('}');
        o
    }
}

impl fmt::Display for MachineReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (name, r)) in self.enclaves.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            writeln!(f, "== enclave {i}: {name}")?;
            if f.alternate() {
                write!(f, "{r:#}")?;
            } else {
                write!(f, "{r}")?;
            }
        }
        Ok(())
    }
}

/// Runs a deterministic simulation of one enclave of `cfg.cpus` CPUs: `start` builds (and re-builds after a
/// crash or at an upgrade) the agent on a fresh [`Enclave`] handle.
///
/// # Panics
/// If `cfg` is invalid ([`Config::validate`]); [`try_run`] returns the [`ConfigError`] instead.
pub fn run<A, F>(cfg: &Config, start: F) -> Report
where
    F: for<'a, 'r> FnMut(&Enclave<SimBackend<'a, 'r>>) -> Result<A, AgentError>,
    A: for<'a, 'r> Agent<SimBackend<'a, 'r>> + 'static,
{
    try_run(cfg, start).unwrap_or_else(|e| core::panic!("sim::run: invalid configuration: {e}"))
}

/// [`run`], or the reason `cfg` cannot run.
pub fn try_run<A, F>(cfg: &Config, mut start: F) -> Result<Report, ConfigError>
where
    F: for<'a, 'r> FnMut(&Enclave<SimBackend<'a, 'r>>) -> Result<A, AgentError>,
    A: for<'a, 'r> Agent<SimBackend<'a, 'r>> + 'static,
{
    cfg.validate()?;
    let cpus = CpuSet::from_cpus(0..cfg.cpus as usize).map_err(|_| ConfigError::Cpus(cfg.cpus as u64))?;
    let spec = EnclaveSpec {
        name: String::from("enclave"),
        cpus,
        config: cfg.clone(),
        start: Box::new(move |e| start(e).map(|a| Box::new(a) as BoxedAgent<'_, '_>)),
    };
    let mut m = try_run_machine(vec![spec], cfg.duration_ns, cfg.progress)?;
    Ok(m.enclaves.pop().map(|(_, r)| r).unwrap_or_default())
}

/// Checks the enclaves of a machine run: at least one, each with CPUs, none sharing a CPU, each
/// configuration valid for its CPUs and the machine's `duration_ns`.
pub fn validate_machine(specs: &[EnclaveSpec<'_>], duration_ns: u64) -> Result<(), ConfigError> {
    if specs.is_empty() {
        return Err(ConfigError::NoEnclaves);
    }
    let mut seen = CpuSet::new();
    for (i, spec) in specs.iter().enumerate() {
        if spec.cpus.is_empty() {
            return Err(ConfigError::EmptyEnclave(i));
        }
        if let Some(c) = (spec.cpus & seen).first() {
            return Err(ConfigError::Overlap(c as u32));
        }
        seen |= spec.cpus;
        let cfg = Config { duration_ns, ..spec.config.clone() };
        cfg.validate_for(spec.cpus.count() as u32)?;
    }
    Ok(())
}

struct Slot<'a, 'r> {
    agent: Option<(BoxedAgent<'a, 'r>, Enclave<SimBackend<'a, 'r>>)>,
    dead: AgentStats,
    counters: Vec<(&'static str, u64)>,
    restart_at: Option<u64>,
    crashed: bool,
    upgraded: bool,
    last_step: Option<u64>,
    /// The enclave had an event while its agent was not yet due: the agent steps when it is.
    waiting: bool,
    fresh: bool,
    report: Report,
}

/// Runs a deterministic simulation of a machine with several enclaves side by side, each with its own CPUs,
/// queues, status words, `cpu_data` and agent. Enclaves are isolated: an enclave's agent only runs when its
/// own enclave had an event, so a crash or an upgrade in one leaves the others' traces unchanged.
///
/// # Panics
/// If the enclaves are invalid ([`validate_machine`]); [`try_run_machine`] returns the [`ConfigError`].
pub fn run_machine(specs: Vec<EnclaveSpec<'_>>, duration_ns: u64, progress: bool) -> MachineReport {
    try_run_machine(specs, duration_ns, progress)
        .unwrap_or_else(|e| core::panic!("sim::run_machine: invalid configuration: {e}"))
}

/// [`run_machine`], or the reason the enclaves cannot run.
pub fn try_run_machine(
    mut specs: Vec<EnclaveSpec<'_>>,
    duration_ns: u64,
    progress: bool,
) -> Result<MachineReport, ConfigError> {
    validate_machine(&specs, duration_ns)?;
    let wall = Instant::now();
    let ncpus = specs.iter().filter_map(|s| s.cpus.last()).max().map_or(1, |c| c as u32 + 1);
    let regions: Vec<kernel::Regions> =
        specs.iter().map(|s| kernel::Regions::new(ncpus, s.config.task_count())).collect();
    let sets: Vec<CpuSet> = specs.iter().map(|s| s.cpus).collect();
    let cfgs: Vec<Config> = specs.iter().map(|s| s.config.clone()).collect();
    let k = kernel::Kernel::new(&regions, ncpus, &sets, &cfgs);
    let mut slots: Vec<Slot<'_, '_>> = specs
        .iter()
        .map(|_| Slot {
            agent: None,
            dead: AgentStats::default(),
            counters: Vec::new(),
            restart_at: Some(0),
            crashed: false,
            upgraded: false,
            last_step: None,
            waiting: false,
            fresh: true,
            report: Report::default(),
        })
        .collect();
    let mut last_progress = Instant::now();
    let mut iterations = 0u64;
    loop {
        let now = k.now();
        for (e, (spec, slot)) in specs.iter_mut().zip(slots.iter_mut()).enumerate() {
            let cfg = &spec.config;
            let touched = k.take_touched(e) | slot.fresh;
            slot.fresh = false;
            // Live upgrade: the old agent stops and exits, a new one attaches at once and takes over.
            if let (Some(t), false) = (cfg.upgrade_at_ns, slot.upgraded) {
                if now >= t && slot.agent.is_some() {
                    slot.upgraded = true;
                    if let Some((old, _)) = slot.agent.take() {
                        slot.report.upgrades += 1;
                        slot.restart_at = Some(now);
                        if !retire(&mut slot.dead, old, |a| {
                            add_counters(&mut slot.counters, a.counters());
                            a.stats()
                        }) {
                            // It panicked on its way out: an agent death like any other.
                            k.agent_died(e);
                            slot.report.agent_crashes += 1;
                        }
                    }
                }
            }
            if let (Some(t), false) = (cfg.crash_at_ns, slot.crashed) {
                if now >= t && slot.agent.is_some() {
                    slot.crashed = true;
                    if let Some((a, _)) = slot.agent.take() {
                        retire(&mut slot.dead, a, |a| {
                            add_counters(&mut slot.counters, a.counters());
                            a.stats()
                        });
                    }
                    k.agent_died(e);
                    slot.report.agent_crashes += 1;
                    slot.restart_at = Some(now.saturating_add(cfg.restart_after_ns));
                }
            }
            let mut started = false;
            if slot.restart_at.is_some_and(|t| now >= t) {
                slot.restart_at = None;
                let enclave = Enclave::attach(SimBackend::new(&k, e)).expect("the simulator's regions are valid");
                k.agent_attached(e, true);
                let t0 = Instant::now();
                // A panic while starting is an agent death like an error (caught, never unwinding the kernel).
                let started_agent = catch_unwind(AssertUnwindSafe(|| (spec.start)(&enclave)));
                match started_agent {
                    Ok(Ok(a)) => {
                        if slot.report.agent_starts > 0 {
                            slot.report.handoff_wall_ns =
                                slot.report.handoff_wall_ns.max(t0.elapsed().as_nanos() as u64);
                        }
                        slot.report.agent_starts += 1;
                        slot.agent = Some((a, enclave));
                        started = true;
                    }
                    Ok(Err(_)) | Err(_) => {
                        k.agent_died(e);
                        slot.report.agent_crashes += 1;
                        slot.restart_at = Some(now.saturating_add(cfg.restart_after_ns));
                    }
                }
            }
            let due = slot.last_step.is_none_or(|l| now >= l.saturating_add(cfg.agent_period_ns));
            // A touch while the agent is not yet due (agent period) is kept for when it is.
            let touched = touched || slot.waiting;
            slot.waiting = touched && !due && slot.agent.is_some();
            if let (Some((a, enclave)), true) = (slot.agent.as_mut(), due && (touched || started)) {
                // The agent is still working off its last step (agent cost): it runs when that is done.
                if !k.begin_step(e) {
                    continue;
                }
                slot.last_step = Some(now);
                let r = catch_unwind(AssertUnwindSafe(|| a.step(enclave)));
                k.end_step(e);
                if !matches!(r, Ok(Ok(()))) {
                    if let Some((a, _)) = slot.agent.take() {
                        retire(&mut slot.dead, a, |a| {
                            add_counters(&mut slot.counters, a.counters());
                            a.stats()
                        });
                    }
                    k.agent_died(e);
                    slot.report.agent_crashes += 1;
                    slot.restart_at = Some(now.saturating_add(cfg.restart_after_ns));
                } else {
                    k.after_step(e);
                }
            }
        }
        iterations += 1;
        if progress && iterations % 4096 == 0 && last_progress.elapsed().as_secs() >= 1 {
            last_progress = Instant::now();
            eprintln!("progress: virtual {:.3} s, {} tasks completed", now as f64 / 1e9, k.completed());
        }
        if k.finished() || now >= duration_ns {
            break;
        }
        let until = slots
            .iter()
            .zip(&specs)
            .flat_map(|(s, spec)| {
                let c = &spec.config;
                [
                    s.restart_at,
                    c.crash_at_ns.filter(|_| !s.crashed && s.agent.is_some()),
                    c.upgrade_at_ns.filter(|_| !s.upgraded && s.agent.is_some()),
                    // The agent becomes due (agent period) with an event waiting for it.
                    s.last_step.filter(|_| s.waiting).map(|l| l.saturating_add(c.agent_period_ns)),
                ]
            })
            .flatten()
            .filter(|&t| t > now)
            .min();
        // Never past the run's end: an event after `duration_ns` stays unprocessed.
        if !k.advance(until, duration_ns) {
            break;
        }
    }
    let mut out = MachineReport::default();
    for (e, (spec, mut slot)) in specs.into_iter().zip(slots).enumerate() {
        if let Some((a, _)) = slot.agent.take() {
            if !retire(&mut slot.dead, a, |a| {
                add_counters(&mut slot.counters, a.counters());
                a.stats()
            }) {
                slot.report.agent_crashes += 1;
            }
        }
        let mut report = slot.report;
        k.fill_report(e, &mut report);
        report.messages_consumed = slot.dead.messages;
        report.seqnum_violations = slot.dead.seqnum_violations;
        report.overflows_seen = slot.dead.overflows_seen;
        report.counters = slot.counters;
        report.wall_ns = wall.elapsed().as_nanos() as u64;
        out.enclaves.push((spec.name, report));
    }
    out.wall_ns = wall.elapsed().as_nanos() as u64;
    Ok(out)
}

/// Runs one enclave in real time: kernel threads drive the wall clock and process due events (burst ends,
/// wake-ups, arrivals, ticks) under the kernel lock, and the agent runs on its own thread over the same shared
/// regions; times are wall-clock ns. The simulated CPUs are multiplexed onto at most
/// `available_parallelism − 1` kernel threads (at least one; [`Report::kernel_threads`] says how many), so
/// the host is never oversubscribed. Stops when every task is done or after `cfg.duration_ns` of wall time.
///
/// A panic anywhere in the agent (its start, a step, its counters) is an agent death, as is reaching
/// [`Config::crash_at_ns`] (wall ns): the kernel fails its READY transactions with `NO_AGENT`, falls back
/// to its FIFO, and `start` builds a replacement after [`Config::restart_after_ns`].
/// [`Config::upgrade_at_ns`] replaces the running agent at that wall time.
///
/// # Panics
/// If `cfg` is invalid ([`Config::validate`]); [`try_run_realtime`] returns the [`ConfigError`] instead.
pub fn run_realtime<A, F>(cfg: &Config, start: F) -> Report
where
    F: for<'a, 'r> FnMut(&Enclave<SimBackend<'a, 'r>>) -> Result<A, AgentError> + Send,
    A: for<'a, 'r> Agent<SimBackend<'a, 'r>>,
{
    try_run_realtime(cfg, start).unwrap_or_else(|e| core::panic!("sim::run_realtime: invalid configuration: {e}"))
}

/// [`run_realtime`], or the reason `cfg` cannot run. (Agent costs do not apply: the agent's work takes the
/// wall time it takes.)
pub fn try_run_realtime<A, F>(cfg: &Config, mut start: F) -> Result<Report, ConfigError>
where
    F: for<'a, 'r> FnMut(&Enclave<SimBackend<'a, 'r>>) -> Result<A, AgentError> + Send,
    A: for<'a, 'r> Agent<SimBackend<'a, 'r>>,
{
    cfg.validate()?;
    let cpus = CpuSet::from_cpus(0..cfg.cpus as usize).map_err(|_| ConfigError::Cpus(cfg.cpus as u64))?;
    let ncpus = cfg.cpus;
    let regions = [kernel::Regions::new(ncpus, cfg.task_count())];
    let k = kernel::Kernel::new(&regions, ncpus, &[cpus], core::slice::from_ref(cfg));
    let wall = Instant::now();
    let host = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
    let threads = host.saturating_sub(1).clamp(1, ncpus);
    // The clock starts once the first agent has started (or failed to), so no task waits for an agent that
    // is still starting up.
    let t0: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let done = std::sync::atomic::AtomicBool::new(false);
    let mut report = Report { kernel_threads: threads, ..Report::default() };
    let mut stats = AgentStats::default();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                let start = loop {
                    if let Some(t) = t0.get() {
                        break *t;
                    }
                    if done.load(std::sync::atomic::Ordering::Acquire) {
                        return;
                    }
                    std::thread::yield_now();
                };
                while !done.load(std::sync::atomic::Ordering::Acquire) {
                    let now = start.elapsed().as_nanos() as u64;
                    if !k.advance_to(now) || now >= cfg.duration_ns {
                        done.store(true, std::sync::atomic::Ordering::Release);
                        break;
                    }
                    // Sleep until the next event when it is far; spin (yielding) when it is near.
                    match k.next_event() {
                        Some(t) if t > now + 200_000 => {
                            std::thread::sleep(std::time::Duration::from_nanos(((t - now) / 2).min(10_000_000)))
                        }
                        _ => std::thread::yield_now(),
                    }
                }
            });
        }
        let agent = s.spawn(|| {
            let mut r = Report::default();
            let mut total = AgentStats::default();
            let (mut crashed, mut upgraded) = (false, false);
            let elapsed = || t0.get().map_or(0, |t| t.elapsed().as_nanos() as u64);
            while !done.load(std::sync::atomic::Ordering::Acquire) {
                let enclave = Enclave::attach(SimBackend::new(&k, 0)).expect("the simulator's regions are valid");
                k.agent_attached(0, true);
                let t_start = Instant::now();
                let started = catch_unwind(AssertUnwindSafe(|| start(&enclave)));
                let _ = t0.set(Instant::now());
                let mut died = true;
                if let Ok(Ok(mut a)) = started {
                    if r.agent_starts > 0 {
                        r.handoff_wall_ns = r.handoff_wall_ns.max(t_start.elapsed().as_nanos() as u64);
                    }
                    r.agent_starts += 1;
                    died = false;
                    while !done.load(std::sync::atomic::Ordering::Acquire) {
                        let now = elapsed();
                        if cfg.crash_at_ns.is_some_and(|t| now >= t) && !crashed {
                            crashed = true;
                            died = true;
                            break;
                        }
                        if cfg.upgrade_at_ns.is_some_and(|t| now >= t) && !upgraded {
                            upgraded = true;
                            r.upgrades += 1;
                            break;
                        }
                        if !matches!(catch_unwind(AssertUnwindSafe(|| a.step(&enclave))), Ok(Ok(()))) {
                            died = true;
                            break;
                        }
                        std::thread::yield_now();
                    }
                    died |= !retire(&mut total, a, |a| {
                        add_counters(&mut r.counters, a.counters());
                        a.stats()
                    });
                }
                if !died {
                    continue; // an upgrade, or the end of the run
                }
                k.agent_died(0);
                r.agent_crashes += 1;
                let until = elapsed().saturating_add(cfg.restart_after_ns);
                while !done.load(std::sync::atomic::Ordering::Acquire) && elapsed() < until {
                    std::thread::sleep(std::time::Duration::from_micros(100));
                }
            }
            (total, r)
        });
        // The agent thread catches every panic of the agent; a join error would be a simulator bug.
        let (st, r) = agent.join().unwrap_or_default();
        stats = st;
        report.agent_starts = r.agent_starts;
        report.agent_crashes = r.agent_crashes;
        report.upgrades = r.upgrades;
        report.handoff_wall_ns = r.handoff_wall_ns;
        report.counters = r.counters;
    });
    k.fill_report(0, &mut report);
    report.messages_consumed = stats.messages;
    report.seqnum_violations = stats.seqnum_violations;
    report.overflows_seen = stats.overflows_seen;
    report.wall_ns = wall.elapsed().as_nanos() as u64;
    report.realtime = true;
    Ok(report)
}

/// Stops an agent: adds its counters to `total` and drops it. `false` if it panicked doing either (its
/// counters are then lost; the caller treats it as an agent death).
fn retire<T>(total: &mut AgentStats, agent: T, stats: impl FnOnce(&T) -> AgentStats) -> bool {
    let s = catch_unwind(AssertUnwindSafe(|| stats(&agent)));
    let dropped = catch_unwind(AssertUnwindSafe(move || drop(agent)));
    match s {
        Ok(s) => add(total, s),
        Err(_) => return false,
    }
    dropped.is_ok()
}

fn add_counters(total: &mut Vec<(&'static str, u64)>, c: Vec<(&'static str, u64)>) {
    for (k, v) in c {
        match total.iter_mut().find(|(n, _)| *n == k) {
            Some((_, t)) => *t += v,
            None => total.push((k, v)),
        }
    }
    total.sort_unstable_by_key(|(k, _)| *k);
}

fn add(total: &mut AgentStats, s: AgentStats) {
    total.messages += s.messages;
    total.seqnum_violations += s.seqnum_violations;
    total.overflows_seen += s.overflows_seen;
}
