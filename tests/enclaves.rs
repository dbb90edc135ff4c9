//! Several enclaves side by side on one simulated machine, each with its own policy; isolation of
//! transactions, messages and faults; live agent upgrade.
#![cfg(not(miri))] // whole simulations: minutes per run under Miri (no unsafe code of their own)

#[path = "../examples/fifo_centralized.rs"]
mod centralized;
#[path = "../examples/fifo_percpu.rs"]
mod percpu;

use ghost_shm::abi::{Gtid, GtidLayout, TxnOutcome};
use ghost_shm::agent::{AgentError, AgentQueue, Backend, Enclave};
use ghost_shm::sim::{self, Agent, AgentStats, BoxedAgent, Config, EnclaveSpec, MachineReport, Workload};
use ghost_shm::topology::CpuSet;

fn set(s: &str) -> CpuSet {
    s.parse().unwrap()
}

fn cfg(seed: u64, tasks: u32) -> Config {
    Config { tasks, seed, workload: Workload::MIXED, ..Config::default() }
}

/// Enclave 0: centralized FIFO on CPUs 0-3 (agent on 3); enclave 1: per-CPU FIFO on CPUs 4-7.
fn two(a: Config, b: Config) -> MachineReport {
    let slots = a.queue_slots;
    let specs = vec![
        EnclaveSpec {
            name: "centralized".into(),
            cpus: set("0-3"),
            config: Config { agent_cpus: 1, ..a },
            start: Box::new(move |e| {
                Ok(Box::new(centralized::CentralizedFifo::start(e, slots, 3)?) as BoxedAgent<'_, '_>)
            }),
        },
        EnclaveSpec {
            name: "percpu".into(),
            cpus: set("4-7"),
            config: b,
            start: Box::new(move |e| Ok(Box::new(percpu::PerCpuFifo::start(e, slots)?) as BoxedAgent<'_, '_>)),
        },
    ];
    sim::run_machine(specs, 60_000_000_000, false)
}

fn complete(m: &MachineReport) {
    for (name, r) in &m.enclaves {
        assert_eq!(r.tasks_completed, r.tasks_arrived, "{name}: {:?}", r.unfinished);
        assert_eq!(r.invariant_violations, 0, "{name}");
        assert_eq!(r.seqnum_violations, 0, "{name}");
    }
}

#[test]
fn two_policies_side_by_side() {
    for seed in 0..6 {
        let m = two(cfg(seed, 150), cfg(seed + 100, 150));
        complete(&m);
        for (name, r) in &m.enclaves {
            // Messages never cross enclaves: each enclave's agent consumed exactly what its kernel produced.
            assert_eq!(r.messages_produced, r.messages_consumed + r.messages_left, "{name}");
        }
    }
}

#[test]
fn a_crash_in_one_enclave_leaves_the_other_untouched() {
    for seed in 0..4 {
        let calm = two(cfg(seed, 150), cfg(seed + 50, 150));
        let crash = Config { crash_at_ns: Some(2_000_000), ..cfg(seed, 150) };
        let stormy = two(crash, cfg(seed + 50, 150));
        complete(&calm);
        complete(&stormy);
        let (a, b) = (&stormy.enclaves[0].1, &stormy.enclaves[1].1);
        assert_eq!(a.agent_crashes, 1);
        assert!(a.fallback_dispatches > 0);
        // The other enclave ran exactly as without the crash: same trace, same latencies.
        let b0 = &calm.enclaves[1].1;
        assert_eq!(b.trace_hash, b0.trace_hash, "seed {seed}");
        assert_eq!(b.latencies, b0.latencies);
        assert_eq!(b.agent_crashes, 0);
    }
}

#[test]
fn live_upgrade_loses_and_duplicates_nothing() {
    for seed in 0..6 {
        let up = |s| Config { upgrade_at_ns: Some(4_000_000), ..cfg(s, 200) };
        let m = two(up(seed), up(seed + 7));
        complete(&m);
        for (name, r) in &m.enclaves {
            assert_eq!((r.upgrades, r.agent_starts, r.agent_crashes), (1, 2, 0), "{name}");
            assert_eq!(r.fallback_dispatches, 0, "{name}: the hand-off needs no fallback");
            // Every dispatch is one latency sample; a task run twice at once would be an invariant violation.
            assert!(r.latencies.len() as u64 >= r.tasks_completed);
        }
    }
}

/// An agent of enclave 0 that aims transactions at the other enclave.
struct Trespasser<M: ghost_shm::shm::SharedMem> {
    q: AgentQueue<M>,
    own: Option<(Gtid, u32)>,
    seen: u32,
    foreign: Gtid,
    done: bool,
    outcomes: std::rc::Rc<std::cell::RefCell<Vec<TxnOutcome>>>,
    foreign_messages: std::rc::Rc<std::cell::Cell<u32>>,
    own_range: std::ops::Range<u64>,
}

impl<B: Backend> Agent<B> for Trespasser<B::Region> {
    fn step(&mut self, e: &Enclave<B>) -> Result<(), AgentError> {
        let mut msgs = Vec::new();
        self.q.consumer().drain(|d| msgs.push(d))?;
        for d in msgs {
            if let Some(g) = d.message.gtid() {
                if !self.own_range.contains(&GtidLayout::DEFAULT.pid(g)) {
                    self.foreign_messages.set(self.foreign_messages.get() + 1);
                }
                self.seen += 1;
                self.own = Some((g, d.seqnum));
            }
        }
        let Some((own, seq)) = self.own else { return Ok(()) };
        if self.done || self.seen < 20 {
            return Ok(());
        }
        self.done = true;
        // My task (with its current barrier) on the other enclave's CPU 5; then the other enclave's first task
        // on my CPU 0, with every barrier it may have (a hostile agent can guess).
        let attempts = std::iter::once((5u32, own, seq)).chain((0..64).map(|b| (0, self.foreign, b)));
        for (cpu, target, barrier) in attempts {
            let mut txn = e.txn(cpu)?;
            let p = txn.open().map_err(|_| AgentError::Invalid("busy"))?.target(target).task_barrier(barrier).commit();
            e.commit(3, &[cpu])?;
            self.outcomes.borrow_mut().push(p.poll().unwrap().unwrap().outcome);
        }
        Ok(())
    }
    fn stats(&self) -> AgentStats {
        AgentStats::default()
    }
}

#[test]
fn transactions_and_messages_never_cross_enclaves() {
    let outcomes = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let foreign_messages = std::rc::Rc::new(std::cell::Cell::new(0));
    let (o2, f2) = (outcomes.clone(), foreign_messages.clone());
    let na = 50u32;
    let specs = vec![
        EnclaveSpec {
            name: "trespasser".into(),
            cpus: set("0-3"),
            config: Config { agent_cpus: 1, duration_ns: 20_000_000, ..cfg(1, na) },
            start: Box::new(move |e| {
                let q = e.create_queue(4096)?;
                e.set_default_queue(&q)?;
                Ok(Box::new(Trespasser {
                    q,
                    own: None,
                    seen: 0,
                    foreign: sim::task_gtid(na as usize),
                    done: false,
                    outcomes: o2.clone(),
                    foreign_messages: f2.clone(),
                    own_range: 1000..1000 + na as u64,
                }) as BoxedAgent<'_, '_>)
            }),
        },
        EnclaveSpec {
            name: "victim".into(),
            cpus: set("4-7"),
            config: cfg(2, 50),
            start: Box::new(|e| Ok(Box::new(percpu::PerCpuFifo::start(e, 4096)?) as BoxedAgent<'_, '_>)),
        },
    ];
    let m = sim::run_machine(specs, 20_000_000, false);
    let outcomes = outcomes.borrow();
    assert_eq!(outcomes.len(), 65);
    assert_eq!(outcomes[0], TxnOutcome::InvalidTarget, "a CPU of another enclave");
    // The other enclave's task: stale for every wrong barrier, and for the right one NOT_PERMITTED (or
    // NOT_RUNNABLE if it happened to be blocked, which §5.4 checks first). Never a success.
    assert!(outcomes[1..]
        .iter()
        .all(|o| matches!(o, TxnOutcome::TargetStale | TxnOutcome::NotPermitted | TxnOutcome::TargetNotRunnable)));
    assert!(outcomes[1..].iter().any(|o| matches!(o, TxnOutcome::NotPermitted | TxnOutcome::TargetNotRunnable)));
    assert_eq!(foreign_messages.get(), 0, "a message of the other enclave reached this one");
    let victim = &m.enclaves[1].1;
    assert_eq!(victim.tasks_completed, victim.tasks_arrived);
    assert_eq!(victim.invariant_violations, 0);
}
