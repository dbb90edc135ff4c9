//! The simulated kernel keeps its promises under faulty agents (issue 15, items 6 and 7): a panic anywhere in
//! an agent is an agent death in both modes, and a sync group is validated member by member against the
//! state the earlier members produce.
#![cfg(not(miri))] // whole simulations

#[path = "../examples/fifo_percpu.rs"]
mod percpu;

use ghost_shm::abi::{Gtid, Message, TxnOutcome};
use ghost_shm::agent::{AgentError, AgentQueue, Backend, Enclave};
use ghost_shm::sim::{self, Agent, AgentStats, Config, Workload};
use std::collections::BTreeMap;
use std::sync::Mutex;

/// Silences the default panic hook while `f` runs (the injected panics are expected).
fn quietly<T>(f: impl FnOnce() -> T) -> T {
    static HOOK: Mutex<()> = Mutex::new(());
    let _g = HOOK.lock().unwrap_or_else(|p| p.into_inner());
    let prev = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let r = f();
    std::panic::set_hook(prev);
    r
}

/// Where an injected agent panics.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum PanicIn {
    Step(u32),
    Stats,
}

struct Faulty<A> {
    inner: A,
    steps: u32,
    at: Option<PanicIn>,
}

impl<B: Backend, A: Agent<B>> Agent<B> for Faulty<A> {
    fn step(&mut self, e: &Enclave<B>) -> Result<(), AgentError> {
        self.steps += 1;
        if self.at == Some(PanicIn::Step(self.steps)) {
            panic!("agent bug (injected) in step");
        }
        self.inner.step(e)
    }
    fn stats(&self) -> AgentStats {
        if self.at == Some(PanicIn::Stats) {
            panic!("agent bug (injected) in stats");
        }
        self.inner.stats()
    }
}

fn small() -> Config {
    Config { cpus: 4, tasks: 120, seed: 5, workload: Workload::MIXED, ..Config::default() }
}

#[test]
fn deterministic_panic_in_start_is_an_agent_death() {
    let cfg = small();
    let mut n = 0;
    let r = quietly(|| {
        sim::run(&cfg, |e| {
            n += 1;
            if n == 1 {
                panic!("agent bug (injected) in start");
            }
            Ok(Faulty { inner: percpu::PerCpuFifo::start(e, 4096)?, steps: 0, at: None })
        })
    });
    assert_eq!((r.agent_crashes, r.agent_starts), (1, 1), "the first start died, the second took over");
    assert!(r.fallback_dispatches > 0, "the kernel's fallback ran tasks while no agent was attached");
    assert_eq!(r.tasks_completed, r.tasks_arrived, "{:?}", r.unfinished);
    assert_eq!(r.invariant_violations, 0);
}

#[test]
fn deterministic_panic_in_stats_is_an_agent_death() {
    // The first agent's stats() panics when the live upgrade retires it, and at the end of the run
    // the replacement's does too: both are counted, neither unwinds out of the simulator.
    let cfg = Config { upgrade_at_ns: Some(3_000_000), ..small() };
    let r = quietly(|| {
        sim::run(&cfg, |e| {
            Ok(Faulty { inner: percpu::PerCpuFifo::start(e, 4096)?, steps: 0, at: Some(PanicIn::Stats) })
        })
    });
    assert_eq!(r.upgrades, 1);
    assert_eq!(r.agent_crashes, 2, "the upgraded agent's and the last agent's stats() panicked");
    assert_eq!(r.tasks_completed, r.tasks_arrived, "{:?}", r.unfinished);
    assert_eq!(r.invariant_violations, 0);
}

#[test]
fn realtime_panicking_agent_is_noticed_and_replaced() {
    let cfg = Config { restart_after_ns: 1_000_000, duration_ns: 20_000_000_000, ..small() };
    let mut n = 0;
    let r = quietly(|| {
        sim::run_realtime(&cfg, |e| {
            n += 1;
            let at = (n == 1).then_some(PanicIn::Step(20));
            Ok(Faulty { inner: percpu::PerCpuFifo::start(e, 4096)?, steps: 0, at })
        })
    });
    assert_eq!(r.agent_crashes, 1, "the panic was noticed");
    assert_eq!(r.agent_starts, 2, "a replacement took over");
    assert_eq!(r.tasks_completed, r.tasks_arrived, "{:?}", r.unfinished);
    assert_eq!(r.invariant_violations, 0);
    assert!(r.kernel_threads >= 1 && r.kernel_threads <= cfg.cpus);
}

#[test]
fn realtime_panic_in_start_falls_back() {
    let cfg = Config { restart_after_ns: 1_000_000, duration_ns: 20_000_000_000, ..small() };
    let mut n = 0;
    let r = quietly(|| {
        sim::run_realtime(&cfg, |e| {
            n += 1;
            if n == 1 {
                panic!("agent bug (injected) in start");
            }
            percpu::PerCpuFifo::start(e, 4096)
        })
    });
    assert_eq!((r.agent_crashes, r.agent_starts), (1, 1));
    assert_eq!(r.tasks_completed, r.tasks_arrived, "{:?}", r.unfinished);
}

/// What the double-latching agent saw of its one sync group.
#[derive(Debug, Default, Clone)]
struct GroupSeen {
    committed: Option<bool>,
    outcomes: Vec<TxnOutcome>,
    /// Successful single-CPU commits (each starts a task).
    commits: u64,
}

/// A minimal FIFO agent (any CPU, commits from CPU 0) that, the first time it has a runnable task and two
/// idle CPUs, commits a sync group of two members naming the *same* task.
struct DoubleLatch<M: ghost_shm::shm::SharedMem> {
    q: AgentQueue<M>,
    seq: BTreeMap<Gtid, u32>,
    runnable: Vec<Gtid>,
    busy: Vec<Option<Gtid>>,
    stats: AgentStats,
    seen: &'static Mutex<GroupSeen>,
    done: bool,
    /// What the first idle CPU's member (committed last, as the caller's) names instead of the task.
    last_member: Option<Gtid>,
}

impl<B: Backend> Agent<B> for DoubleLatch<B::Region> {
    fn step(&mut self, e: &Enclave<B>) -> Result<(), AgentError> {
        let mut msgs = Vec::new();
        self.q.consumer().drain(|d| msgs.push(d))?;
        for d in msgs {
            self.stats.messages += 1;
            let Some(g) = d.message.gtid() else { continue };
            self.seq.insert(g, d.seqnum);
            self.busy.iter_mut().filter(|b| **b == Some(g)).for_each(|b| *b = None);
            self.runnable.retain(|&x| x != g);
            if let Message::TaskNew(_) | Message::TaskWakeup(_) | Message::TaskYield(_) | Message::TaskPreempt(_) =
                d.message
            {
                self.runnable.push(g);
            }
        }
        let idle: Vec<u32> = e.cpus().iter().filter(|&c| self.busy[c].is_none()).map(|c| c as u32).collect();
        if !self.done && idle.len() >= 2 && !self.runnable.is_empty() {
            self.done = true;
            let g = self.runnable[0];
            let (a, b) = (idle[0], idle[1]);
            let mut ta = e.txn(a)?;
            let mut tb = e.txn(b)?;
            ta.try_own(0).unwrap();
            tb.try_own(0).unwrap();
            let pa = match self.last_member {
                Some(other) => ta.open().unwrap().target(other).commit(),
                None => ta.open().unwrap().target(g).task_barrier(self.seq[&g]).commit(),
            };
            let pb = tb.open().unwrap().target(g).task_barrier(self.seq[&g]).commit();
            let committed = e.group_commit(0, &[a, b])?;
            let oa = pa.poll().unwrap().unwrap().outcome;
            let ob = pb.poll().unwrap().unwrap().outcome;
            let mut seen = self.seen.lock().unwrap();
            (seen.committed, seen.outcomes) = (Some(committed), vec![oa, ob]);
            drop(seen);
            ta.disown();
            tb.disown();
            // Whatever happened, the task's next message (TASK_PREEMPT if the latch was dropped, or its
            // blocking/yield/exit) tells this agent where it stands.
            self.runnable.remove(0);
            if committed {
                self.busy[a as usize] = Some(g);
                self.busy[b as usize] = Some(g);
            }
            return Ok(());
        }
        for cpu in idle {
            let Some(&g) = self.runnable.first() else { break };
            let mut txn = e.txn(cpu)?;
            let p = txn.open().unwrap().target(g).task_barrier(self.seq[&g]).commit();
            e.commit(0, &[cpu])?;
            if p.poll().unwrap().is_some_and(|o| o.is_success()) {
                self.seen.lock().unwrap().commits += 1;
                self.runnable.remove(0);
                self.busy[cpu as usize] = Some(g);
            }
        }
        Ok(())
    }
    fn stats(&self) -> AgentStats {
        self.stats
    }
}

/// §5.4 step 7: a task latched by an earlier member is not running, so a later member naming it migrates it and
/// drops the earlier latch. Both members are COMPLETE; the task runs on one CPU only, and the dropped latch is
/// counted, not an invariant violation.
#[test]
fn sync_group_members_see_the_earlier_members_latches() {
    static SEEN: Mutex<GroupSeen> = Mutex::new(GroupSeen { committed: None, outcomes: Vec::new(), commits: 0 });
    let cfg = Config { cpus: 4, tasks: 40, seed: 3, ..Config::default() };
    let r = sim::run(&cfg, |e| {
        let q = e.create_queue(4096)?;
        e.set_default_queue(&q)?;
        Ok(DoubleLatch {
            q,
            seq: BTreeMap::new(),
            runnable: Vec::new(),
            busy: vec![None; e.backend().ncpus() as usize],
            stats: AgentStats::default(),
            seen: &SEEN,
            done: false,
            last_member: None,
        })
    });
    let seen = SEEN.lock().unwrap().clone();
    assert_eq!(seen.committed, Some(true), "{seen:?}");
    assert_eq!(seen.outcomes, [TxnOutcome::Complete, TxnOutcome::Complete], "{seen:?}");
    assert_eq!(r.invariant_violations, 0, "the task ran on one CPU; no latch failed silently");
    assert_eq!(r.latches_dropped, 1, "the earlier member's latch was dropped by the migration");
    // One latency sample per start: the single commits, the group's surviving latch and the fallback's
    // dispatches; the dropped latch's sample (taken at the commit's delayed switch time) is removed.
    assert_eq!(
        r.latencies.len() as u64,
        seen.commits + 1 + r.fallback_dispatches,
        "{seen:?} fallback {}",
        r.fallback_dispatches
    );
    assert_eq!(r.tasks_completed, r.tasks_arrived, "{:?}", r.unfinished);
}

/// A sync group that fails after a member committed: no latch of the group takes effect (the kernel poisons
/// the rendezvous), and the task the agent saw COMPLETE is told it is runnable again (TASK_PREEMPT).
#[test]
fn sync_group_failure_drops_every_latch() {
    static SEEN: Mutex<GroupSeen> = Mutex::new(GroupSeen { committed: None, outcomes: Vec::new(), commits: 0 });
    let cfg = Config { cpus: 4, tasks: 40, seed: 3, ..Config::default() };
    let r = sim::run(&cfg, |e| {
        let q = e.create_queue(4096)?;
        e.set_default_queue(&q)?;
        Ok(DoubleLatch {
            q,
            seq: BTreeMap::new(),
            runnable: Vec::new(),
            busy: vec![None; e.backend().ncpus() as usize],
            stats: AgentStats::default(),
            seen: &SEEN,
            done: false,
            last_member: Some(Gtid(987_654_321)),
        })
    });
    let seen = SEEN.lock().unwrap().clone();
    assert_eq!(seen.committed, Some(false), "{seen:?}");
    // Members commit after the caller (CPU 0) first, the caller last: CPU 1's member, then CPU 0's.
    assert_eq!(seen.outcomes, [TxnOutcome::TargetNotFound, TxnOutcome::Complete], "{seen:?}");
    assert_eq!(r.invariant_violations, 0);
    assert_eq!(r.tasks_completed, r.tasks_arrived, "the task whose latch was dropped still ran: {:?}", r.unfinished);
}

/// A run stops at `duration_ns`: the clock never jumps to an event after the deadline (review item 1).
#[test]
fn deterministic_run_stops_at_the_duration() {
    // A short run of long bursts: the next burst end lies past the deadline.
    let cfg = Config { duration_ns: 1_000_000, workload: Workload::CPU_BOUND, ..small() };
    let r = sim::run(&cfg, |e| percpu::PerCpuFifo::start(e, 4096));
    assert!(r.virtual_ns <= cfg.duration_ns, "ran to {} ns for a {} ns duration", r.virtual_ns, cfg.duration_ns);
    assert!(r.tasks_completed < r.tasks_total, "the run was cut short");
    // A huge agent cost: the agent's next step lies far past the deadline.
    let cost = sim::AgentCost {
        per_message_ns: 1_000_000_000,
        per_txn_ns: 1,
        per_group_ns: 1,
        per_group_member_ns: 1,
        wakeup_ns: 1,
    };
    let cfg = Config { duration_ns: 10_000_000, agent_cost: cost, ..small() };
    let r = sim::run(&cfg, |e| percpu::PerCpuFifo::start(e, 4096));
    assert!(r.virtual_ns <= cfg.duration_ns, "ran to {} ns for a {} ns duration", r.virtual_ns, cfg.duration_ns);
}

/// With an agent period, an event that arrives while the agent is not yet due makes it step when it is due:
/// the run does not end early with the tasks unfinished (review item 2).
#[test]
fn deterministic_agent_period_steps_when_due() {
    let cfg = Config { tasks: 50, agent_period_ns: 1_000_000, ..small() };
    let r = sim::run(&cfg, |e| percpu::PerCpuFifo::start(e, 4096));
    assert_eq!(r.tasks_completed, 50, "{:?} (ran to {} ns)", r.unfinished, r.virtual_ns);
    assert_eq!(r.invariant_violations, 0);
}

/// Huge times in the configuration saturate rather than overflow (review item 4): no panic in debug builds.
#[test]
fn deterministic_huge_times_do_not_overflow() {
    let cfg = Config {
        crash_at_ns: Some(1_000_000),
        restart_after_ns: u64::MAX - 1,
        agent_period_ns: u64::MAX - 1,
        duration_ns: 5_000_000,
        ..small()
    };
    let r = sim::run(&cfg, |e| percpu::PerCpuFifo::start(e, 4096));
    assert_eq!(r.agent_crashes, 1);
    assert_eq!(r.agent_starts, 1, "the restart lies past the end of the run");
    assert!(r.virtual_ns <= cfg.duration_ns);
    assert_eq!(r.invariant_violations, 0);
}
