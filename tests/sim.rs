//! The simulated kernel in deterministic mode, with the example agents: invariants over many seeds,
//! determinism, crash resilience, stale-transaction recovery and overflow accounting.
#![cfg(not(miri))] // whole simulations: minutes per run under Miri (no unsafe code of their own)

#[path = "../examples/fifo_centralized.rs"]
mod centralized;
#[path = "../examples/fifo_percpu.rs"]
mod percpu;

use ghost_shm::abi::{Gtid, Message, TxnOutcome};
use ghost_shm::agent::{AgentError, AgentQueue, Backend, Enclave};
use ghost_shm::sim::{self, Agent, AgentStats, Config, Report, Workload};
use std::collections::BTreeMap;

fn small(seed: u64, workload: Workload) -> Config {
    Config { cpus: 4, tasks: 120, seed, workload, ..Config::default() }
}

fn run_centralized(cfg: &Config) -> Report {
    let cfg = Config { agent_cpus: 1, ..cfg.clone() };
    let agent_cpu = cfg.cpus - 1;
    let slots = cfg.queue_slots;
    sim::run(&cfg, |e| centralized::CentralizedFifo::start(e, slots, agent_cpu))
}

fn run_percpu(cfg: &Config) -> Report {
    let slots = cfg.queue_slots;
    sim::run(cfg, |e| percpu::PerCpuFifo::start(e, slots))
}

/// What must hold after every run without a crash.
fn check(r: &Report, what: &str) {
    assert_eq!(r.tasks_completed, r.tasks_arrived, "{what}: unfinished {:?}", r.unfinished);
    assert!(r.unfinished.is_empty(), "{what}");
    assert_eq!(r.invariant_violations, 0, "{what}: a task ran on two CPUs or a CPU ran two tasks");
    assert_eq!(r.seqnum_violations, 0, "{what}: seqnums of a task did not strictly increase");
    // No message disappears unless an overflow was reported.
    assert_eq!(r.messages_produced, r.messages_consumed + r.messages_left, "{what}");
    assert_eq!(r.messages_dropped, r.ring_overflows, "{what}");
    assert_eq!(r.messages_dropped, r.overflows_seen, "{what}");
    assert!(r.latencies.len() as u64 >= r.tasks_completed, "{what}: every task got on a CPU");
}

#[test]
fn invariants_hold_over_many_seeds() {
    let seeds = if cfg!(debug_assertions) { 12 } else { 60 };
    for seed in 0..seeds {
        for w in [Workload::MIXED, Workload::CPU_BOUND, Workload::WAKEUP_HEAVY] {
            let cfg = small(seed, w);
            check(&run_centralized(&cfg), &format!("centralized seed {seed} {w:?}"));
            check(&run_percpu(&cfg), &format!("percpu seed {seed} {w:?}"));
        }
    }
}

#[test]
fn same_seed_same_trace() {
    let a = run_centralized(&small(7, Workload::MIXED));
    let b = run_centralized(&small(7, Workload::MIXED));
    let c = run_centralized(&small(8, Workload::MIXED));
    assert_eq!(a.trace_hash, b.trace_hash);
    assert_eq!(a.latencies, b.latencies);
    assert_ne!(a.trace_hash, c.trace_hash);
    let p = run_percpu(&small(7, Workload::MIXED));
    assert_eq!(p.trace_hash, run_percpu(&small(7, Workload::MIXED)).trace_hash);
}

#[test]
fn ticks_are_delivered_and_ignored_by_fifo() {
    let cfg = Config { tick_ns: Some(50_000), ..small(3, Workload::CPU_BOUND) };
    let with = run_percpu(&cfg);
    let without = run_percpu(&small(3, Workload::CPU_BOUND));
    check(&with, "ticks");
    assert!(with.messages_produced > without.messages_produced, "CPU_TICKs were produced");
}

#[test]
fn agent_crash_falls_back_and_a_new_agent_takes_over() {
    for seed in 0..4 {
        let cfg = Config { crash_at_ns: Some(3_000_000), restart_after_ns: 1_000_000, ..small(seed, Workload::MIXED) };
        for (name, r) in [("centralized", run_centralized(&cfg)), ("percpu", run_percpu(&cfg))] {
            assert_eq!(r.agent_crashes, 1, "{name}");
            assert_eq!(r.agent_starts, 2, "{name}");
            assert!(r.fallback_dispatches > 0, "{name}: the kernel kept tasks running");
            assert_eq!(r.tasks_completed, r.tasks_arrived, "{name} seed {seed}: {:?}", r.unfinished);
            assert_eq!(r.invariant_violations, 0, "{name}");
            assert_eq!(r.seqnum_violations, 0, "{name}");
        }
    }
}

/// An agent that panics at its 50th step: the kernel falls back, a new one takes over, nothing is lost.
struct Panicky<A> {
    inner: A,
    steps: u32,
    panic_at: Option<u32>,
}

impl<B: Backend, A: Agent<B>> Agent<B> for Panicky<A> {
    fn step(&mut self, e: &Enclave<B>) -> Result<(), AgentError> {
        self.steps += 1;
        if Some(self.steps) == self.panic_at {
            panic!("agent bug (injected)");
        }
        self.inner.step(e)
    }
    fn stats(&self) -> AgentStats {
        self.inner.stats()
    }
}

#[test]
fn a_panicking_agent_is_replaced() {
    let cfg = small(5, Workload::MIXED);
    let slots = cfg.queue_slots;
    let mut first = true;
    let prev = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let r = sim::run(&cfg, |e| {
        let panic_at = if first { Some(50) } else { None };
        first = false;
        Ok(Panicky { inner: percpu::PerCpuFifo::start(e, slots)?, steps: 0, panic_at })
    });
    std::panic::set_hook(prev);
    assert_eq!((r.agent_crashes, r.agent_starts), (1, 2));
    assert_eq!(r.tasks_completed, r.tasks_arrived, "{:?}", r.unfinished);
    assert_eq!(r.invariant_violations, 0);
}

/// A minimal agent that first commits every task with a stale task barrier (seqnum − 1): the kernel must
/// reject each with TARGET_STALE, and the retry with the right barrier must succeed.
struct StaleFirst<M: ghost_shm::shm::SharedMem> {
    q: AgentQueue<M>,
    seq: BTreeMap<Gtid, u32>,
    runnable: Vec<Gtid>,
    tried: BTreeMap<Gtid, bool>,
    busy: Vec<Option<Gtid>>,
    stats: AgentStats,
}

impl<B: Backend> Agent<B> for StaleFirst<B::Region> {
    fn step(&mut self, e: &Enclave<B>) -> Result<(), AgentError> {
        let mut msgs = Vec::new();
        self.q.consumer().drain(|d| msgs.push(d))?;
        for d in msgs {
            self.stats.messages += 1;
            let g = d.message.gtid().unwrap();
            self.seq.insert(g, d.seqnum);
            match d.message {
                Message::TaskNew(_) | Message::TaskWakeup(_) | Message::TaskYield(_) | Message::TaskPreempt(_) => {
                    self.busy.iter_mut().filter(|b| **b == Some(g)).for_each(|b| *b = None);
                    self.runnable.push(g)
                }
                Message::TaskBlocked(_) | Message::TaskDead(_) => {
                    self.busy.iter_mut().filter(|b| **b == Some(g)).for_each(|b| *b = None)
                }
                _ => {}
            }
        }
        for cpu in e.cpus().iter() {
            if self.busy[cpu].is_some() || self.runnable.is_empty() {
                continue;
            }
            let g = self.runnable.remove(0);
            let first = !self.tried.contains_key(&g);
            self.tried.insert(g, true);
            let seq = self.seq[&g];
            let barrier = if first { seq.wrapping_sub(1) } else { seq };
            let mut txn = e.txn(cpu as u32)?;
            let p = txn.open().unwrap().target(g).task_barrier(barrier).commit();
            e.commit(0, &[cpu as u32])?;
            let o = p.poll().unwrap().unwrap();
            if first {
                assert_eq!(o.outcome, TxnOutcome::TargetStale);
                self.runnable.insert(0, g);
            } else if o.is_success() {
                self.busy[cpu] = Some(g);
            } else {
                self.runnable.insert(0, g);
            }
        }
        Ok(())
    }
    fn stats(&self) -> AgentStats {
        self.stats
    }
}

#[test]
fn stale_transactions_are_rejected_and_the_agent_recovers() {
    let cfg = small(11, Workload::MIXED);
    let r = sim::run(&cfg, |e| {
        let q = e.create_queue(4096)?;
        e.set_default_queue(&q)?;
        let n = e.backend().ncpus() as usize;
        Ok(StaleFirst {
            q,
            seq: BTreeMap::new(),
            runnable: Vec::new(),
            tried: BTreeMap::new(),
            busy: vec![None; n],
            stats: AgentStats::default(),
        })
    });
    assert_eq!(r.tasks_completed, r.tasks_arrived);
    assert_eq!(r.outcome(TxnOutcome::TargetStale), r.tasks_arrived, "one stale commit per task");
    assert!(r.outcome(TxnOutcome::Complete) >= r.tasks_arrived);
}

#[test]
fn overflow_is_reported_not_silent() {
    // A slow agent (one pass per 200 µs), 16-slot queues and a wake-up heavy load: the kernel drops messages,
    // and every drop is seen by the agent. (Lost messages may strand tasks; the run is capped at 50 ms.)
    let cfg = Config {
        queue_slots: 16,
        agent_period_ns: 200_000,
        duration_ns: 50_000_000,
        ..small(2, Workload::WAKEUP_HEAVY)
    };
    let r = run_percpu(&cfg);
    assert!(r.messages_dropped > 0, "the scenario must overflow");
    // Every drop is counted in its ring's overflow word; the agent saw all of them up to its last look.
    assert_eq!(r.messages_dropped, r.ring_overflows);
    assert!(r.overflows_seen > 0 && r.overflows_seen <= r.messages_dropped);
    assert_eq!(r.messages_produced, r.messages_consumed + r.messages_left);
    assert_eq!(r.invariant_violations, 0);
}

#[test]
fn real_time_mode_with_agent_thread() {
    for (name, r) in [
        ("centralized", {
            let cfg = Config { cpus: 4, agent_cpus: 1, tasks: 60, ..Config::default() };
            sim::run_realtime(&cfg, |e| centralized::CentralizedFifo::start(e, 4096, 3))
        }),
        ("percpu", {
            let cfg = Config { cpus: 4, tasks: 60, ..Config::default() };
            sim::run_realtime(&cfg, |e| percpu::PerCpuFifo::start(e, 4096))
        }),
    ] {
        assert_eq!(r.tasks_completed, 60, "{name}: {:?}", r.unfinished);
        assert_eq!(r.invariant_violations, 0, "{name}");
        assert_eq!(r.seqnum_violations, 0, "{name}");
        assert_eq!(r.agent_crashes, 0, "{name}");
        assert!(r.outcome(TxnOutcome::Complete) > 0, "{name}: the agent thread committed transactions");
        assert_eq!(r.messages_produced, r.messages_consumed + r.messages_left, "{name}");
    }
}

/// A backend that is the simulator in everything but the topology, which it leaves to the trait's default: the
/// real sysfs, restricted to the enclave's CPUs.
struct WithSysfs<'a, 'r>(ghost_shm::sim::SimBackend<'a, 'r>);

impl Backend for WithSysfs<'_, '_> {
    type Region = <ghost_shm::sim::SimBackend<'static, 'static> as Backend>::Region;
    type StatusRegion = <ghost_shm::sim::SimBackend<'static, 'static> as Backend>::StatusRegion;
    fn abi_version(&self) -> u32 {
        self.0.abi_version()
    }
    fn cpus(&self) -> ghost_shm::topology::CpuSet {
        self.0.cpus()
    }
    fn ncpus(&self) -> u32 {
        self.0.ncpus()
    }
    fn status_region(&self) -> Self::StatusRegion {
        self.0.status_region()
    }
    fn cpu_data(&self) -> Self::Region {
        self.0.cpu_data()
    }
    fn create_queue(&self, n: u32) -> Result<(ghost_shm::queue::QueueId, Self::Region), AgentError> {
        self.0.create_queue(n)
    }
    fn set_default_queue(&self, q: ghost_shm::queue::QueueId) -> Result<(), AgentError> {
        self.0.set_default_queue(q)
    }
    fn associate_queue(
        &self,
        q: ghost_shm::queue::QueueId,
        g: Gtid,
        b: u32,
    ) -> Result<ghost_shm::queue::AssocStatus, AgentError> {
        self.0.associate_queue(q, g, b)
    }
    fn config_queue_wakeup(&self, q: ghost_shm::queue::QueueId, cpu: Option<u32>) -> Result<(), AgentError> {
        self.0.config_queue_wakeup(q, cpu)
    }
    fn commit(&self, caller: u32, cpus: &[u32]) -> Result<(), AgentError> {
        self.0.commit(caller, cpus)
    }
    fn sync_group_commit(&self, caller: u32, cpus: &[u32]) -> Result<bool, AgentError> {
        self.0.sync_group_commit(caller, cpus)
    }
    fn free_status_word(&self, info: ghost_shm::abi::GhostSwInfo) -> Result<(), AgentError> {
        self.0.free_status_word(info)
    }
    fn agent_status_word(&self, cpu: u32) -> Result<ghost_shm::abi::GhostSwInfo, AgentError> {
        self.0.agent_status_word(cpu)
    }
}

#[test]
fn enclave_topology_is_the_machines_restricted_to_the_enclave() {
    let cfg = Config { cpus: 2, tasks: 1, ..Config::default() };
    let mut checked = false;
    sim::run(&cfg, |e| {
        // The simulator has no topology model.
        assert!(e.topology().is_none());
        // The default reads this machine's sysfs and keeps only the enclave's CPUs (CPU 0 and 1 exist here).
        let sysfs = WithSysfs(ghost_shm::sim::SimBackend::clone_of(e.backend()));
        let topo = sysfs.topology().expect("this machine's /sys");
        assert!(topo.online().is_subset(e.cpus()), "{} ⊄ {}", topo.online(), e.cpus());
        assert!(!topo.online().is_empty());
        checked = true;
        percpu::PerCpuFifo::start(e, 64)
    });
    assert!(checked);
}
