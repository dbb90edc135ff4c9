//! The simulated kernel (`sim` feature): develop and test ghOSt policies without a ghOSt kernel.
//!
//! A simulated enclave of N CPUs and M tasks, driven by a seeded workload (arrivals, run bursts with an
//! exponential service-time distribution, blocking and wake-ups, yields, exits, optional CPU ticks). It uses
//! only the crate's kernel-side code: [`Producer`](crate::queue::Producer)s for messages (routed through the
//! default queue and [`associate`](crate::queue::associate)d queues), a status-word
//! [`Writer`](crate::status::Writer) for status words and barriers, [`AgentBarrier`](crate::status::AgentBarrier)s
//! for CPU messages and wake-ups, and [`CpuData`](crate::txn::CpuData) claim / validate / complete for
//! transactions. Agents run on the public [`agent`](crate::agent) API, exactly as on a real kernel.
//!
//! Two modes:
//! - **deterministic** ([`run`], [`run_machine`]) — virtual time, one thread; the kernel processes every event
//!   due at an instant, then lets the agents of the enclaves concerned run (drain their queues, commit). The
//!   same seed yields the identical event trace ([`Report::trace_hash`]).
//! - **real time** ([`run_realtime`]) — wall-clock time; one kernel thread per simulated CPU drives the clock
//!   and processes due events (burst ends, wake-ups, arrivals, ticks) under the kernel lock, while the agent
//!   runs on its own thread over the same shared memory, as on a real machine.
//!
//! Latching follows §5: a committed task runs on the target CPU at once, preempting the CPU's current task
//! (which gets `TASK_PREEMPT`); `TASK_ON_CPU` is sent when the run flags ask for it.
//!
//! Crash resilience, as in ghOSt: when the agent dies (it panics, or [`Config::crash_at_ns`] kills it), the
//! kernel fails its READY transactions with `NO_AGENT` and falls back to a default FIFO policy so tasks keep
//! running; after [`Config::restart_after_ns`] a new agent attaches, rediscovers the tasks through the status
//! words (§4.4) and takes over.

mod kernel;
mod workload;

pub use kernel::SimBackend;

/// The gtid the simulator gives its `index`-th task (machine-wide, enclaves in order): pid 1000 + index,
/// sequence number 1. Tests use it to aim at tasks they do not own.
pub fn task_gtid(index: usize) -> crate::abi::Gtid {
    kernel::task_gtid(index)
}
pub use workload::{Rng, Workload};

use crate::abi::TxnOutcome;
use crate::agent::{AgentError, Backend, Enclave};
use crate::topology::CpuSet;
use std::fmt;
use std::prelude::rust_2021::*;
use std::time::Instant;
use std::{eprintln, format, vec};

/// What a simulated run does.
#[derive(Debug, Clone)]
pub struct Config {
    /// CPUs in the enclave.
    pub cpus: u32,
    /// CPUs reserved for agents (a global agent spins on one), taken from the end; they run no tasks.
    pub agent_cpus: u32,
    /// Tasks that arrive.
    pub tasks: u32,
    /// The workload.
    pub workload: Workload,
    /// Seed of the workload's random numbers.
    pub seed: u64,
    /// Stop after this much virtual time even if tasks remain.
    pub duration_ns: u64,
    /// Deliver `CPU_TICK` every this many ns on CPUs running a ghOSt task (ghOSt's `deliver_ticks`).
    pub tick_ns: Option<u64>,
    /// Kill the agent at this virtual time.
    pub crash_at_ns: Option<u64>,
    /// Start a new agent this long after the old one died.
    pub restart_after_ns: u64,
    /// Live upgrade at this virtual time: the running agent stops and a new one takes over at once.
    pub upgrade_at_ns: Option<u64>,
    /// Slots of each queue the agent creates (agents choose; this is a hint they may use).
    pub queue_slots: u32,
    /// The agent runs at most once per this much virtual time (0: at every instant something happens); a
    /// slower agent lets messages pile up in its queues.
    pub agent_period_ns: u64,
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
            seed: 1,
            duration_ns: 60_000_000_000,
            tick_ns: None,
            crash_at_ns: None,
            restart_after_ns: 2_000_000,
            upgrade_at_ns: None,
            queue_slots: 4096,
            agent_period_ns: 0,
            progress: false,
        }
    }
}

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

/// The result of a run.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Tasks that arrived.
    pub tasks_arrived: u64,
    /// Tasks that exited.
    pub tasks_completed: u64,
    /// Virtual time simulated (ns).
    pub virtual_ns: u64,
    /// Wall time the simulation took (ns).
    pub wall_ns: u64,
    /// Scheduling latencies (runnable → on CPU), ns, sorted.
    pub latencies: Vec<u64>,
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
    /// Agents that died.
    pub agent_crashes: u64,
    /// Agents started.
    pub agent_starts: u64,
    /// Live upgrades performed.
    pub upgrades: u64,
    /// Longest wall time a replacement agent took to attach and take over (rediscovery), ns.
    pub handoff_wall_ns: u64,
    /// Tasks dispatched by the kernel's fallback policy while no agent was attached.
    pub fallback_dispatches: u64,
    /// Longest virtual time with runnable tasks and idle CPUs but no dispatch (ns).
    pub longest_gap_ns: u64,
    /// FNV-1a hash of the kernel's event trace.
    pub trace_hash: u64,
    /// Every task id that arrived but did not complete.
    pub unfinished: Vec<u32>,
    /// The agents' named counters ([`Agent::counters`]: the framework's and the policy's), summed over
    /// agent incarnations, in name order.
    pub counters: Vec<(&'static str, u64)>,
}

impl Report {
    /// The `p`-th per-mille latency (e.g. 500 = p50, 999 = p99.9), ns.
    pub fn latency_permille(&self, p: u64) -> u64 {
        if self.latencies.is_empty() {
            return 0;
        }
        let idx = ((self.latencies.len() as u64 - 1) * p / 1000) as usize;
        self.latencies[idx]
    }

    /// Transactions committed (any outcome) per second of simulated time.
    pub fn txns_per_sec(&self) -> f64 {
        let n: u64 = self.txn_outcomes.iter().map(|(_, n)| n).sum();
        if self.virtual_ns == 0 {
            0.0
        } else {
            n as f64 * 1e9 / self.virtual_ns as f64
        }
    }

    /// The agents' counter `name` (0 if absent).
    pub fn counter(&self, name: &str) -> u64 {
        self.counters.iter().find(|(k, _)| *k == name).map_or(0, |(_, v)| *v)
    }

    /// Count of transactions that ended in `o`.
    pub fn outcome(&self, o: TxnOutcome) -> u64 {
        self.txn_outcomes.iter().find(|(x, _)| *x == o).map_or(0, |(_, n)| *n)
    }

    /// Completed tasks per virtual second.
    pub fn throughput(&self) -> f64 {
        if self.virtual_ns == 0 {
            0.0
        } else {
            self.tasks_completed as f64 * 1e9 / self.virtual_ns as f64
        }
    }
}

fn us(ns: u64) -> String {
    format!("{:.1} µs", ns as f64 / 1000.0)
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "tasks completed      {} / {}", self.tasks_completed, self.tasks_arrived)?;
        writeln!(
            f,
            "simulated time       {:.3} s  (wall {:.3} s)",
            self.virtual_ns as f64 / 1e9,
            self.wall_ns as f64 / 1e9
        )?;
        writeln!(f, "throughput           {:.1} tasks/s (simulated time)", self.throughput())?;
        writeln!(
            f,
            "sched latency        p50 {}  p99 {}  p99.9 {}  (runnable → on CPU, {} samples)",
            us(self.latency_permille(500)),
            us(self.latency_permille(990)),
            us(self.latency_permille(999)),
            self.latencies.len()
        )?;
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
        writeln!(
            f,
            "agents               started {}  crashed {}  upgraded {}  fallback dispatches {}",
            self.agent_starts, self.agent_crashes, self.upgrades, self.fallback_dispatches,
        )?;
        writeln!(
            f,
            "hand-off             longest dispatch gap {} (virtual; runnable tasks and idle CPUs, no dispatch)  \
             longest agent take-over {} (wall)",
            us(self.longest_gap_ns),
            us(self.handoff_wall_ns)
        )?;
        writeln!(
            f,
            "checks               seqnum violations {}  invariant violations {}  unfinished {}",
            self.seqnum_violations,
            self.invariant_violations,
            self.unfinished.len()
        )?;
        if !self.counters.is_empty() {
            write!(f, "agent counters      ")?;
            for (k, v) in &self.counters {
                write!(f, " {k}={v}")?;
            }
            writeln!(f)?;
        }
        write!(f, "trace hash           {:016x}", self.trace_hash)
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

impl fmt::Display for MachineReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (name, r)) in self.enclaves.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            writeln!(f, "== enclave {i}: {name}")?;
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

/// Runs a deterministic simulation of one enclave of `cfg.cpus` CPUs: `start` builds (and re-builds after a
/// crash or at an upgrade) the agent on a fresh [`Enclave`] handle.
pub fn run<A, F>(cfg: &Config, mut start: F) -> Report
where
    F: for<'a, 'r> FnMut(&Enclave<SimBackend<'a, 'r>>) -> Result<A, AgentError>,
    A: for<'a, 'r> Agent<SimBackend<'a, 'r>> + 'static,
{
    let cpus = CpuSet::from_cpus(0..cfg.cpus.max(1) as usize).unwrap_or_default();
    let spec = EnclaveSpec {
        name: String::from("enclave"),
        cpus,
        config: cfg.clone(),
        start: Box::new(move |e| start(e).map(|a| Box::new(a) as BoxedAgent<'_, '_>)),
    };
    let mut m = run_machine(vec![spec], cfg.duration_ns, cfg.progress);
    m.enclaves.pop().map(|(_, r)| r).unwrap_or_default()
}

struct Slot<'a, 'r> {
    agent: Option<(BoxedAgent<'a, 'r>, Enclave<SimBackend<'a, 'r>>)>,
    dead: AgentStats,
    counters: Vec<(&'static str, u64)>,
    restart_at: Option<u64>,
    crashed: bool,
    upgraded: bool,
    last_step: Option<u64>,
    fresh: bool,
    report: Report,
}

/// Runs a deterministic simulation of a machine with several enclaves side by side, each with its own CPUs,
/// queues, status words, `cpu_data` and agent. Enclaves are isolated: an enclave's agent only runs when its
/// own enclave had an event, so a crash or an upgrade in one leaves the others' traces unchanged.
pub fn run_machine(mut specs: Vec<EnclaveSpec<'_>>, duration_ns: u64, progress: bool) -> MachineReport {
    let wall = Instant::now();
    let ncpus = specs.iter().filter_map(|s| s.cpus.last()).max().map_or(1, |c| c as u32 + 1);
    let regions: Vec<kernel::Regions> = specs.iter().map(|s| kernel::Regions::new(ncpus, s.config.tasks)).collect();
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
            fresh: true,
            report: Report::default(),
        })
        .collect();
    let mut last_progress = Instant::now();
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
                    let (old, _) = slot.agent.take().unwrap();
                    add(&mut slot.dead, old.stats());
                    add_counters(&mut slot.counters, old.counters());
                    drop(old);
                    slot.report.upgrades += 1;
                    slot.restart_at = Some(now);
                }
            }
            if let (Some(t), false) = (cfg.crash_at_ns, slot.crashed) {
                if now >= t && slot.agent.is_some() {
                    slot.crashed = true;
                    let (a, _) = slot.agent.take().unwrap();
                    add(&mut slot.dead, a.stats());
                    add_counters(&mut slot.counters, a.counters());
                    k.agent_died(e);
                    slot.report.agent_crashes += 1;
                    slot.restart_at = Some(now + cfg.restart_after_ns);
                }
            }
            let mut started = false;
            if slot.restart_at.is_some_and(|t| now >= t) {
                slot.restart_at = None;
                let enclave = Enclave::attach(SimBackend::new(&k, e)).expect("the simulator's regions are valid");
                k.agent_attached(e, true);
                let t0 = Instant::now();
                match (spec.start)(&enclave) {
                    Ok(a) => {
                        if slot.report.agent_starts > 0 {
                            slot.report.handoff_wall_ns =
                                slot.report.handoff_wall_ns.max(t0.elapsed().as_nanos() as u64);
                        }
                        slot.report.agent_starts += 1;
                        slot.agent = Some((a, enclave));
                        started = true;
                    }
                    Err(_) => {
                        k.agent_died(e);
                        slot.report.agent_crashes += 1;
                        slot.restart_at = Some(now + cfg.restart_after_ns);
                    }
                }
            }
            let due = slot.last_step.is_none_or(|l| now >= l + cfg.agent_period_ns);
            if let (Some((a, enclave)), true) = (slot.agent.as_mut(), due && (touched || started)) {
                slot.last_step = Some(now);
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| a.step(enclave)));
                if !matches!(r, Ok(Ok(()))) {
                    let (a, _) = slot.agent.take().unwrap();
                    add(&mut slot.dead, a.stats());
                    add_counters(&mut slot.counters, a.counters());
                    k.agent_died(e);
                    slot.report.agent_crashes += 1;
                    slot.restart_at = Some(now + cfg.restart_after_ns);
                } else {
                    k.after_step(e);
                }
            }
        }
        if progress && last_progress.elapsed().as_secs() >= 1 {
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
                ]
            })
            .flatten()
            .filter(|&t| t > now)
            .min();
        if !k.advance(until) {
            break;
        }
    }
    let mut out = MachineReport::default();
    for (e, (spec, mut slot)) in specs.into_iter().zip(slots).enumerate() {
        if let Some((a, _)) = slot.agent.take() {
            add(&mut slot.dead, a.stats());
            add_counters(&mut slot.counters, a.counters());
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
    out
}

/// Runs one enclave in real time: a kernel thread per simulated CPU and the agent on its own thread, all over
/// the same shared regions; times are wall-clock ns. Stops when every task is done or after
/// `cfg.duration_ns` of wall time. (Crash and upgrade injection are deterministic-mode features.)
pub fn run_realtime<A, F>(cfg: &Config, start: F) -> Report
where
    F: for<'a, 'r> FnOnce(&Enclave<SimBackend<'a, 'r>>) -> Result<A, AgentError> + Send,
    A: for<'a, 'r> Agent<SimBackend<'a, 'r>>,
{
    let cpus = CpuSet::from_cpus(0..cfg.cpus.max(1) as usize).unwrap_or_default();
    let ncpus = cfg.cpus.max(1);
    let regions = [kernel::Regions::new(ncpus, cfg.tasks)];
    let k = kernel::Kernel::new(&regions, ncpus, &[cpus], core::slice::from_ref(cfg));
    let wall = Instant::now();
    // The clock starts once the agent is attached (time 0 = first task arrival window), so no task waits for
    // an agent that is still starting up.
    let t0: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let done = std::sync::atomic::AtomicBool::new(false);
    let mut report = Report::default();
    let mut stats = AgentStats::default();
    std::thread::scope(|s| {
        for _cpu in 0..ncpus {
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
                            std::thread::sleep(std::time::Duration::from_nanos((t - now) / 2))
                        }
                        _ => std::thread::yield_now(),
                    }
                }
            });
        }
        let agent = s.spawn(|| {
            let enclave = Enclave::attach(SimBackend::new(&k, 0)).expect("the simulator's regions are valid");
            k.agent_attached(0, true);
            let started = start(&enclave);
            let _ = t0.set(Instant::now());
            let Ok(mut a) = started else {
                k.agent_died(0);
                return (AgentStats::default(), Vec::new(), 1);
            };
            let mut crashes = 0;
            while !done.load(std::sync::atomic::Ordering::Acquire) {
                if a.step(&enclave).is_err() {
                    k.agent_died(0);
                    crashes = 1;
                    break;
                }
                std::thread::yield_now();
            }
            (a.stats(), a.counters(), crashes)
        });
        let (st, counters, crashes) = agent.join().unwrap_or_default();
        stats = st;
        report.counters = counters;
        report.agent_starts = 1;
        report.agent_crashes = crashes;
    });
    k.fill_report(0, &mut report);
    report.messages_consumed = stats.messages;
    report.seqnum_violations = stats.seqnum_violations;
    report.overflows_seen = stats.overflows_seen;
    report.wall_ns = wall.elapsed().as_nanos() as u64;
    report
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
