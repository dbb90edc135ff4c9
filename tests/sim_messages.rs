//! The messages a ghOSt kernel sends that the simulator used to leave out (issue 16, "Fidelity"), each with the
//! ABI's payload and exercised by a test agent: CPU_AVAILABLE / CPU_BUSY / CPU_NOT_IDLE (competing non-ghOSt
//! tasks), CPU_TIMER_EXPIRED, TASK_DEPARTED, TASK_AFFINITY_CHANGED (affinity respected by commits),
//! CPU_AGENT_BLOCKED / CPU_AGENT_WAKEUP. TASK_LATCH_FAILURE is BPF-only in ABI 91 (never written to a ring):
//! checked never to appear.
#![cfg(not(miri))] // whole simulations

use ghost_shm::abi::{CommitFlags, Gtid, Message, MsgType, RunFlags, TxnOutcome};
use ghost_shm::agent::{AgentError, AgentQueue, Backend, Enclave};
use ghost_shm::sim::{self, Agent, AgentCost, AgentStats, Competing, Config, Report, Workload};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};

/// What the agent saw.
#[derive(Debug, Default)]
struct Seen {
    types: BTreeMap<MsgType, u64>,
    timer_cookies: Vec<u64>,
    not_idle_cpus: BTreeSet<i32>,
    departed: BTreeSet<Gtid>,
}

/// A FIFO agent that records every message, respects the kernel's affinity (`task_affinity`), and latches
/// the idle task with `NEED_CPU_NOT_IDLE` on CPUs it has nothing for.
struct Recorder<M: ghost_shm::shm::SharedMem> {
    q: AgentQueue<M>,
    seq: BTreeMap<Gtid, u32>,
    runq: VecDeque<Gtid>,
    running: Vec<Option<Gtid>>,
    idle_latched: BTreeSet<u32>,
    seen: Arc<Mutex<Seen>>,
    stats: AgentStats,
    respect_affinity: bool,
    /// The agent's own CPU (it commits from there: never a local commit).
    agent_cpu: u32,
}

impl<B: Backend> Agent<B> for Recorder<B::Region> {
    fn step(&mut self, e: &Enclave<B>) -> Result<(), AgentError> {
        let mut msgs = Vec::new();
        self.q.consumer().drain(|d| msgs.push(d))?;
        self.stats.overflows_seen += self.q.consumer().new_overflows() as u64;
        let mut seen = self.seen.lock().unwrap();
        for d in msgs {
            self.stats.messages += 1;
            *seen.types.entry(d.message.msg_type()).or_default() += 1;
            match d.message {
                Message::CpuTimerExpired(p) => seen.timer_cookies.push(p.cookie),
                Message::CpuNotIdle(p) => {
                    seen.not_idle_cpus.insert(p.cpu);
                    self.idle_latched.remove(&(p.cpu as u32));
                }
                _ => {}
            }
            let Some(g) = d.message.gtid() else { continue };
            self.seq.insert(g, d.seqnum);
            for r in self.running.iter_mut().filter(|r| **r == Some(g)) {
                *r = None;
            }
            self.runq.retain(|&x| x != g);
            match d.message {
                Message::TaskNew(_) | Message::TaskWakeup(_) | Message::TaskYield(_) | Message::TaskPreempt(_) => {
                    self.runq.push_back(g)
                }
                Message::TaskDeparted(_) => {
                    seen.departed.insert(g);
                }
                _ => {}
            }
        }
        drop(seen);
        for cpu in e.cpus().iter().map(|c| c as u32) {
            if self.running[cpu as usize].is_some() {
                continue;
            }
            let pick = self.runq.iter().position(|&g| {
                !self.respect_affinity || e.backend().task_affinity(g).is_none_or(|a| a.contains(cpu as usize))
            });
            let mut txn = e.txn(cpu)?;
            let Some(i) = pick else {
                // Nothing for this CPU: latch the idle task and ask to hear when something else runs here.
                if self.idle_latched.insert(cpu) {
                    if let Ok(open) = txn.open() {
                        let _p = open
                            .target(Gtid::IDLE)
                            .run_flags(RunFlags::NEED_CPU_NOT_IDLE)
                            .commit_flags(CommitFlags::ALLOW_TASK_ONCPU)
                            .commit();
                        e.commit(self.agent_cpu, &[cpu])?;
                    }
                }
                continue;
            };
            let g = self.runq[i];
            let Ok(open) = txn.open() else { continue };
            let p = open.target(g).task_barrier(self.seq[&g]).commit();
            e.commit(self.agent_cpu, &[cpu])?;
            if p.poll().ok().flatten().is_some_and(|o| o.is_success()) {
                self.runq.remove(i);
                self.running[cpu as usize] = Some(g);
                self.idle_latched.remove(&cpu);
            } else {
                // Refused (stale, CPU taken, not permitted): try it again later, elsewhere.
                let g = self.runq.remove(i).unwrap();
                self.runq.push_back(g);
            }
        }
        Ok(())
    }
    fn stats(&self) -> AgentStats {
        self.stats
    }
}

fn run(cfg: &Config, respect_affinity: bool) -> (Report, Seen) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let s2 = seen.clone();
    let r = sim::run(cfg, move |e| {
        let q = e.create_queue(4096)?;
        e.set_default_queue(&q)?;
        Ok(Recorder {
            q,
            seq: BTreeMap::new(),
            runq: VecDeque::new(),
            running: vec![None; e.backend().ncpus() as usize],
            idle_latched: BTreeSet::new(),
            seen: s2.clone(),
            stats: AgentStats::default(),
            respect_affinity,
            agent_cpu: e.backend().ncpus() - 1,
        })
    });
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    (r, seen)
}

fn base() -> Config {
    Config { cpus: 5, agent_cpus: 1, tasks: 150, seed: 4, workload: Workload::MIXED, ..Config::default() }
}

#[track_caller]
fn healthy(r: &Report) {
    assert_eq!(r.tasks_completed + r.tasks_departed, r.tasks_total, "{:?}", r.unfinished);
    assert_eq!(r.invariant_violations, 0);
    assert_eq!(r.messages_produced, r.messages_consumed + r.messages_left);
    assert_eq!(r.messages_dropped, 0);
}

fn n(seen: &Seen, t: MsgType) -> u64 {
    seen.types.get(&t).copied().unwrap_or(0)
}

#[test]
fn competing_tasks_send_cpu_busy_available_and_not_idle() {
    let cfg = Config { competing: Some(Competing { mean_free_ns: 400_000, mean_busy_ns: 100_000 }), ..base() };
    let workers = (cfg.cpus - cfg.agent_cpus) as u64;
    let (r, seen) = run(&cfg, true);
    healthy(&r);
    assert!(r.competing_takes > 0);
    assert_eq!(n(&seen, MsgType::CpuBusy), r.competing_takes, "one CPU_BUSY per take");
    let avail = n(&seen, MsgType::CpuAvailable);
    assert!(avail + workers >= r.competing_takes && avail <= r.competing_takes, "{avail}");
    assert!(n(&seen, MsgType::CpuNotIdle) > 0, "a competing task displaced an idle-latched CPU");
    assert!(seen.not_idle_cpus.iter().all(|&c| (0..workers as i32).contains(&c)));
    // Tasks running when a competing task arrived were preempted; commits to a taken CPU failed.
    assert!(n(&seen, MsgType::TaskPreempt) > 0);
    let (quiet, qseen) = run(&base(), true);
    healthy(&quiet);
    assert_eq!(n(&qseen, MsgType::CpuBusy) + n(&qseen, MsgType::CpuNotIdle), 0);
}

#[test]
fn commits_to_a_taken_cpu_fail_with_cpu_unavail() {
    // An agent that ignores CPU_BUSY keeps committing to taken CPUs.
    let cfg = Config { competing: Some(Competing { mean_free_ns: 50_000, mean_busy_ns: 200_000 }), ..base() };
    let (r, _) = run(&cfg, true);
    healthy(&r);
    assert!(r.outcome(TxnOutcome::CpuUnavail) > 0, "{:?}", r.txn_outcomes);
}

#[test]
fn timer_expiries_arrive_with_increasing_cookies() {
    let cfg = Config { timer_ns: Some(250_000), ..base() };
    let (r, seen) = run(&cfg, true);
    healthy(&r);
    assert!(r.timer_expiries > 3);
    assert_eq!(n(&seen, MsgType::CpuTimerExpired), r.timer_expiries);
    assert_eq!(seen.timer_cookies, (1..=r.timer_expiries).collect::<Vec<_>>());
}

#[test]
fn departing_tasks_send_task_departed() {
    let cfg = Config { workload: Workload { depart_permille: 300, ..Workload::MIXED }, ..base() };
    let (r, seen) = run(&cfg, true);
    healthy(&r);
    assert!(r.tasks_departed > 10 && r.tasks_completed > 10, "{} {}", r.tasks_departed, r.tasks_completed);
    assert_eq!(n(&seen, MsgType::TaskDeparted), r.tasks_departed);
    assert_eq!(n(&seen, MsgType::TaskDead), r.tasks_completed);
    assert_eq!(seen.departed.len() as u64, r.tasks_departed);
}

#[test]
fn affinity_changes_are_announced_and_respected() {
    let cfg = Config { workload: Workload { affinity_permille: 200, ..Workload::MIXED }, ..base() };
    let (r, seen) = run(&cfg, true);
    healthy(&r);
    assert!(n(&seen, MsgType::TaskAffinityChanged) > 10);
    assert_eq!(r.outcome(TxnOutcome::NotPermitted), 0, "an affinity-aware agent never commits outside it");
    // An agent that ignores affinity gets its commits refused, and the tasks still finish elsewhere.
    let (r, _) = run(&cfg, false);
    healthy(&r);
    assert!(r.outcome(TxnOutcome::NotPermitted) > 0, "{:?}", r.txn_outcomes);
}

#[test]
fn agent_runnability_messages() {
    let cfg = Config { agent_runnability: true, ..base() };
    let (r, seen) = run(&cfg, true);
    healthy(&r);
    let (blocked, wakeup) = (n(&seen, MsgType::CpuAgentBlocked), n(&seen, MsgType::CpuAgentWakeup));
    assert!(blocked > 0 && wakeup > 0);
    assert_eq!(blocked, r.latencies.len() as u64, "one CPU_AGENT_BLOCKED per task switched in");
    let (_, quiet) = run(&base(), true);
    assert_eq!(n(&quiet, MsgType::CpuAgentBlocked) + n(&quiet, MsgType::CpuAgentWakeup), 0);
}

#[test]
fn latch_failure_is_never_written_to_a_ring() {
    let cfg = Config {
        competing: Some(Competing { mean_free_ns: 100_000, mean_busy_ns: 100_000 }),
        workload: Workload { depart_permille: 100, affinity_permille: 100, ..Workload::WAKEUP_HEAVY },
        timer_ns: Some(100_000),
        agent_runnability: true,
        ..base()
    };
    let (r, seen) = run(&cfg, true);
    healthy(&r);
    assert_eq!(n(&seen, MsgType::TaskLatchFailure), 0, "BPF only in ABI 91");
    assert!(seen.types.len() >= 12, "{:?}", seen.types.keys().collect::<Vec<_>>());
}

#[test]
fn free_agent_costs_keep_the_old_numbers_and_costs_show_in_latency() {
    let free = Config { agent_cost: AgentCost::FREE, ..base() };
    let (rf, _) = run(&free, true);
    let (rm, _) = run(&base(), true);
    healthy(&rf);
    healthy(&rm);
    assert_eq!(rf.agent_busy_ns, 0);
    assert!(rm.agent_busy_ns > 0);
    assert!(
        rm.latency_permille(500) > rf.latency_permille(500),
        "{} vs {}",
        rm.latency_permille(500),
        rf.latency_permille(500)
    );
}
