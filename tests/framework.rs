//! The agent framework on the simulated kernel: the four example policies run clean over seeds and
//! workloads, survive a crash and a live upgrade with no discovery code of their own, preempt (round robin,
//! Shinjuku), per-CPU agents sleep until woken, stale decisions are retried or shown, stats lines are JSON.
#![cfg(not(miri))] // whole simulations

#[path = "../examples/fifo_centralized.rs"]
mod fifo_centralized;
#[path = "../examples/fifo_percpu.rs"]
mod fifo_percpu;
#[path = "../examples/policy_round_robin.rs"]
mod round_robin;
#[path = "../examples/policy_shinjuku.rs"]
mod shinjuku;

use ghost_shm::abi::Gtid;
use ghost_shm::framework::{Centralized, Ctx, Failure, Options, PerCpuThreads, Policy, RunQueue, RunRequest, Task};
use ghost_shm::sim::{self, Config, Report, Workload};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Which {
    FifoCentralized,
    FifoPerCpu,
    RoundRobin,
    Shinjuku,
}

const ALL: [Which; 4] = [Which::FifoCentralized, Which::FifoPerCpu, Which::RoundRobin, Which::Shinjuku];

fn small(seed: u64, workload: Workload) -> Config {
    Config { cpus: 4, tasks: 120, seed, workload, ..Config::default() }
}

fn run(which: Which, cfg: &Config) -> Report {
    let central = Config { agent_cpus: 1, ..cfg.clone() };
    match which {
        Which::FifoCentralized => {
            sim::run(&central, |e| fifo_centralized::CentralizedFifo::start_with(e, Options::default()))
        }
        Which::FifoPerCpu => sim::run(cfg, |e| fifo_percpu::PerCpuFifo::start_with(e, Options::default())),
        Which::RoundRobin => {
            let cfg = Config { tick_ns: Some(50_000), ..central };
            sim::run(&cfg, |e| Centralized::start(e, round_robin::RoundRobin::new(200_000), Options::default()))
        }
        Which::Shinjuku => {
            let cfg = Config { tick_ns: Some(10_000), ..central };
            sim::run(&cfg, |e| Centralized::start(e, shinjuku::Shinjuku::new(30_000), Options::default()))
        }
    }
}

/// What must hold after every run: all tasks done, no kernel invariant broken, no message lost silently.
fn check(r: &Report, what: &str) {
    assert_eq!(r.tasks_completed, r.tasks_arrived, "{what}: unfinished {:?}", r.unfinished);
    assert_eq!(r.invariant_violations, 0, "{what}: a task ran on two CPUs or a CPU ran two tasks");
    assert_eq!(r.seqnum_violations, 0, "{what}");
    assert_eq!(r.messages_produced, r.messages_consumed + r.messages_left, "{what}");
    assert_eq!(r.messages_dropped, 0, "{what}");
    assert!(r.latencies.len() as u64 >= r.tasks_completed, "{what}: every task got on a CPU");
    // Every dead task's status word was freed by the framework (the policies free none themselves), but for
    // TASK_DEADs still in a queue when the run ended (the agent's last step may come after the last exit).
    let freed = r.counter("status_words_freed");
    assert!(freed <= r.tasks_completed && freed + r.messages_left >= r.tasks_completed, "{what}: freed {freed}");
}

#[test]
fn every_policy_runs_clean_over_seeds_and_workloads() {
    let seeds = if cfg!(debug_assertions) { 3 } else { 15 };
    for seed in 0..seeds {
        for w in [Workload::MIXED, Workload::CPU_BOUND, Workload::WAKEUP_HEAVY] {
            for which in ALL {
                let r = run(which, &small(seed, w));
                check(&r, &format!("{which:?} seed {seed} {w:?}"));
                assert_eq!(r.counter("committed"), r.outcome(ghost_shm::abi::TxnOutcome::Complete), "{which:?}");
            }
        }
    }
}

#[test]
fn every_policy_survives_a_crash_with_no_discovery_code() {
    for seed in 0..3 {
        let cfg = Config { crash_at_ns: Some(3_000_000), restart_after_ns: 1_000_000, ..small(seed, Workload::MIXED) };
        for which in ALL {
            let r = run(which, &cfg);
            let what = format!("{which:?} seed {seed}");
            assert_eq!((r.agent_crashes, r.agent_starts), (1, 2), "{what}");
            assert!(r.fallback_dispatches > 0, "{what}: the kernel kept tasks running meanwhile");
            assert!(r.counter("tasks_discovered") > 0, "{what}: the new agent took the tasks over");
            assert_eq!(r.tasks_completed, r.tasks_arrived, "{what}: {:?}", r.unfinished);
            assert_eq!((r.invariant_violations, r.seqnum_violations), (0, 0), "{what}");
        }
    }
}

#[test]
fn every_policy_survives_a_live_upgrade() {
    for seed in 0..3 {
        let cfg = Config { upgrade_at_ns: Some(4_000_000), ..small(seed, Workload::MIXED) };
        for which in ALL {
            let r = run(which, &cfg);
            let what = format!("{which:?} seed {seed}");
            assert_eq!((r.upgrades, r.agent_starts, r.agent_crashes), (1, 2, 0), "{what}");
            assert_eq!(r.fallback_dispatches, 0, "{what}: no fallback in a live upgrade");
            assert!(r.counter("tasks_discovered") > 0, "{what}");
            check(&r, &what);
        }
    }
}

#[test]
fn round_robin_and_shinjuku_preempt_and_fifo_does_not() {
    let cfg = small(2, Workload::CPU_BOUND);
    for which in ALL {
        let r = run(which, &cfg);
        check(&r, &format!("{which:?}"));
        let preempting = matches!(which, Which::RoundRobin | Which::Shinjuku);
        assert_eq!(r.counter("preemptions") > 0, preempting, "{which:?}: {}", r.counter("preemptions"));
    }
    // Shinjuku's 30 µs slice lets waiting tasks on a CPU sooner than FIFO's run-to-block on long bursts.
    let fifo = run(Which::FifoCentralized, &cfg);
    let sj = run(Which::Shinjuku, &cfg);
    assert!(
        sj.latency_permille(990) < fifo.latency_permille(990),
        "{} vs {}",
        sj.latency_permille(990),
        fifo.latency_permille(990)
    );
}

#[test]
fn percpu_agents_sleep_until_their_queue_wakes_them() {
    // Few tasks on many CPUs: most agents have nothing to do most of the time.
    let cfg = Config { cpus: 8, tasks: 40, ..small(4, Workload::MIXED) };
    let r = run(Which::FifoPerCpu, &cfg);
    check(&r, "percpu");
    let (wakeups, sleeps) = (r.counter("agent_wakeups"), r.counter("agent_sleeps"));
    assert!(wakeups > 0 && sleeps > wakeups, "wakeups {wakeups} sleeps {sleeps}");
    assert!(r.counter("placed") > 0, "new tasks were spread over the CPUs");
}

/// FIFO that commits every task's first decision with a stale task barrier.
struct Skeptic {
    runq: RunQueue,
    tried: BTreeSet<Gtid>,
    see_stale: bool,
}

impl Policy for Skeptic {
    fn task_runnable(&mut self, _ctx: &mut Ctx<'_>, task: &Task) {
        self.runq.push_back(task.gtid);
    }
    fn run_failed(&mut self, ctx: &mut Ctx<'_>, f: Failure) {
        if f.error.is_stale() {
            ctx.count("stale_seen", 1);
        }
        if let Some(g) = f.request.gtid().filter(|&g| ctx.task(g).is_some_and(|t| t.is_runnable())) {
            self.runq.push_front(g);
        }
    }
    fn schedule(&mut self, ctx: &mut Ctx<'_>) {
        for cpu in ctx.idle_cpus() {
            let Some(g) = self.runq.pop_front() else { break };
            let Some(t) = ctx.task(g).copied() else { continue };
            let mut req = RunRequest::task(cpu, g);
            if self.tried.insert(g) {
                req = req.task_barrier(t.seqnum.wrapping_sub(1));
                if self.see_stale {
                    req = req.see_stale();
                }
            }
            ctx.run(req);
        }
    }
}

#[test]
fn stale_decisions_are_retried_by_the_framework_or_shown_to_the_policy() {
    let cfg = Config { agent_cpus: 1, ..small(6, Workload::MIXED) };
    for see_stale in [false, true] {
        let r = sim::run(&cfg, |e| {
            Centralized::start(
                e,
                Skeptic { runq: RunQueue::new(), tried: BTreeSet::new(), see_stale },
                Options::default(),
            )
        });
        check(&r, &format!("see_stale {see_stale}"));
        let n = r.tasks_completed;
        assert_eq!(r.outcome(ghost_shm::abi::TxnOutcome::TargetStale), if see_stale { n } else { 3 * n });
        assert_eq!(r.counter("stale_seen"), n, "one failure per task reaches the policy");
        // Without see_stale the framework retried twice (after draining again) before giving up.
        assert_eq!(r.counter("stale_retried"), if see_stale { 0 } else { 3 * n });
    }
}

#[test]
fn stats_lines_are_one_json_object_per_interval() {
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let sink = lines.clone();
    let cfg = Config { agent_cpus: 1, tick_ns: Some(20_000), ..small(1, Workload::CPU_BOUND) };
    let every = 2_000_000;
    let r = sim::run(&cfg, |e| {
        let sink = sink.clone();
        let opts =
            Options::default().stats_every(Some(every)).stats_to(move |l| sink.lock().unwrap().push(l.to_string()));
        Centralized::start(e, round_robin::RoundRobin::new(100_000), opts)
    });
    check(&r, "stats");
    let lines = lines.lock().unwrap();
    let expect = r.virtual_ns / every;
    assert!(
        lines.len() as u64 >= expect.saturating_sub(1) && lines.len() as u64 <= expect + 1,
        "{} lines, {expect} intervals",
        lines.len()
    );
    let mut last_t = 0;
    for l in lines.iter() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
        let t = v["t_ns"].as_u64().unwrap();
        assert!(t > last_t && t % every < every / 2 + 100_000, "{l}");
        last_t = t;
        assert_eq!(v["policy"], "round-robin");
        let tasks = v["tasks"].as_u64().unwrap();
        let by_state: u64 = ["runnable", "on_cpu", "blocked"].iter().map(|k| v[k].as_u64().unwrap()).sum();
        assert_eq!(tasks, by_state, "{l}");
        assert!(v["framework"]["messages"].as_u64().unwrap() >= v["delta"]["messages"].as_u64().unwrap());
    }
    let last: serde_json::Value = serde_json::from_str(lines.last().unwrap()).unwrap();
    assert!(last["counters"]["preemptions"].as_u64().unwrap() > 0);
    assert!(last["counters"]["preemptions"].as_u64().unwrap() <= r.counter("preemptions"));
}

#[test]
fn a_centralized_agent_without_an_agent_cpu_is_refused() {
    // agent_cpus = 0: every CPU runs tasks, so a global agent has nowhere to spin; start says so, the kernel's
    // fallback runs the tasks.
    let cfg = Config { duration_ns: 5_000_000, ..small(1, Workload::MIXED) };
    let r = sim::run(&cfg, |e| fifo_centralized::CentralizedFifo::start_with(e, Options::default()));
    assert_eq!(r.agent_starts, 0);
    assert!(r.agent_crashes > 0 && r.fallback_dispatches > 0);
}

/// FIFO that starts tasks two at a time as a sync group when two CPUs are idle (a lone task waits a little for
/// a partner); with `spoil`, every
/// fourth group carries a stale member, so the whole group must fail.
struct Gang {
    runq: RunQueue,
    spoil: bool,
    groups: u64,
}

impl Policy for Gang {
    fn task_runnable(&mut self, _ctx: &mut Ctx<'_>, task: &Task) {
        self.runq.push_back(task.gtid);
    }
    fn schedule(&mut self, ctx: &mut Ctx<'_>) {
        let idle = ctx.idle_cpus();
        for pair in idle.chunks(2) {
            let runnable = |ctx: &Ctx<'_>, g| ctx.task(g).is_some_and(|t: &Task| t.is_runnable());
            let mut take = || loop {
                let g = self.runq.pop_front()?;
                if runnable(ctx, g) {
                    return Some(g);
                }
            };
            match (pair, take(), take()) {
                ([a, b], Some(x), Some(y)) => {
                    self.groups += 1;
                    let mut second = RunRequest::task(*b, y);
                    if self.spoil && self.groups % 4 == 0 {
                        second = second.task_barrier(ctx.task(y).unwrap().seqnum.wrapping_sub(1));
                    }
                    assert!(ctx.run_group(&[RunRequest::task(*a, x), second]));
                    // A group may not reuse a CPU or a task.
                    assert!(!ctx.run_group(&[RunRequest::task(*a, x)]));
                }
                // Two idle CPUs but one task: wait up to 50 µs for a partner.
                ([_, _], Some(x), None) if ctx.now() < ctx.task(x).unwrap().runnable_since + 50_000 => {
                    self.runq.push_front(x);
                }
                (_, x, y) => {
                    for g in [x, y].into_iter().flatten() {
                        if !ctx.run(RunRequest::task(pair[0], g)) {
                            self.runq.push_front(g);
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn sync_groups_commit_all_or_nothing() {
    let cfg = Config { agent_cpus: 1, cpus: 5, ..small(3, Workload::MIXED) };
    for spoil in [false, true] {
        let r = sim::run(&cfg, |e| {
            Centralized::start(e, Gang { runq: RunQueue::new(), spoil, groups: 0 }, Options::default())
        });
        check(&r, &format!("spoil {spoil}"));
        assert!(r.counter("groups_committed") > 0, "spoil {spoil}");
        assert_eq!(r.counter("groups_failed") > 0, spoil, "spoil {spoil}");
        if spoil {
            // Each failed group had its stale member refused, and that member reached run_failed.
            assert_eq!(r.outcome(ghost_shm::abi::TxnOutcome::TargetStale), r.counter("groups_failed"));
            assert!(r.counter("run_failed") >= r.counter("groups_failed"));
        }
    }
}

#[test]
fn every_policy_copes_with_a_hostile_enclave() {
    // Higher-class tasks take worker CPUs (CPU_BUSY / CPU_AVAILABLE, refusals with CPU_UNAVAIL), tasks
    // depart (TASK_DEPARTED) and get pinned to one CPU (TASK_AFFINITY_CHANGED), a timerfd fires, agents'
    // blocking is reported: the policies have no code for any of it.
    let w = Workload { depart_permille: 200, affinity_permille: 100, ..Workload::MIXED };
    for seed in 0..3 {
        let cfg = Config {
            competing: Some(sim::Competing { mean_free_ns: 400_000, mean_busy_ns: 100_000 }),
            timer_ns: Some(250_000),
            agent_runnability: true,
            ..small(seed, w)
        };
        for which in ALL {
            let r = run(which, &cfg);
            let what = format!("{which:?} seed {seed}");
            assert_eq!(r.tasks_completed + r.tasks_departed, r.tasks_arrived, "{what}: {:?}", r.unfinished);
            assert_eq!((r.invariant_violations, r.seqnum_violations), (0, 0), "{what}");
            assert!(r.tasks_departed > 0 && r.competing_takes > 0, "{what}");
            // The framework never commits a pinned task elsewhere (the kernel would refuse: NOT_PERMITTED).
            assert_eq!(r.outcome(ghost_shm::abi::TxnOutcome::NotPermitted), 0, "{what}");
            let freed = r.counter("status_words_freed");
            assert!(freed + r.messages_left >= r.tasks_completed + r.tasks_departed, "{what}: freed {freed}");
        }
    }
}

#[test]
fn percpu_agent_threads_sleep_and_wake_in_real_time() {
    // An OS thread per CPU agent, over the real-time simulator's shared memory: each sleeps until its agent
    // barrier moves or another agent pings it.
    let cfg = Config { cpus: 4, tasks: 300, ..small(2, Workload::MIXED) };
    let r = sim::run_realtime(&cfg, |e| {
        let (quantum, nap) = (Duration::from_millis(5), Duration::from_micros(50));
        PerCpuThreads::start(e, fifo_percpu::Fifo::default(), Options::default(), quantum, nap)
    });
    assert_eq!((r.agent_starts, r.agent_crashes), (1, 0));
    assert_eq!(r.tasks_completed, r.tasks_arrived, "{:?}", r.unfinished);
    assert_eq!((r.invariant_violations, r.seqnum_violations), (0, 0));
    let (wakeups, sleeps) = (r.counter("agent_wakeups"), r.counter("agent_sleeps"));
    assert!(wakeups > 0 && sleeps > 0, "wakeups {wakeups} sleeps {sleeps}");
    assert!(r.counter("thread_quanta") > 0);
}

/// FIFO whose first decision for each task carries a stale barrier shown to the policy (`see_stale`), and
/// whose `run_failed` runs the task again on the same CPU straight away, without queueing it: that decision,
/// made after the round's commits, must still be committed (not dropped with the round).
struct Eager {
    runq: RunQueue,
    tried: BTreeSet<Gtid>,
}

impl Policy for Eager {
    fn task_runnable(&mut self, _ctx: &mut Ctx<'_>, task: &Task) {
        self.runq.push_back(task.gtid);
    }
    fn run_failed(&mut self, ctx: &mut Ctx<'_>, f: Failure) {
        if let Some(g) = f.request.gtid().filter(|&g| ctx.task(g).is_some_and(|t| t.is_runnable())) {
            if ctx.run(RunRequest::task(f.request.cpu, g)) {
                ctx.count("rerun_in_run_failed", 1);
            } else {
                self.runq.push_front(g);
            }
        }
    }
    fn schedule(&mut self, ctx: &mut Ctx<'_>) {
        for cpu in ctx.idle_cpus() {
            let Some(g) = self.runq.pop_front() else { break };
            let Some(t) = ctx.task(g).copied() else { continue };
            let mut req = RunRequest::task(cpu, g);
            if self.tried.insert(g) {
                req = req.task_barrier(t.seqnum.wrapping_sub(1)).see_stale();
            }
            if !ctx.run(req) {
                self.runq.push_front(g);
            }
        }
    }
}

#[test]
fn decisions_taken_in_run_failed_are_committed() {
    let cfg = Config { agent_cpus: 1, ..small(6, Workload::MIXED) };
    let r = sim::run(&cfg, |e| {
        Centralized::start(e, Eager { runq: RunQueue::new(), tried: BTreeSet::new() }, Options::default())
    });
    check(&r, "eager");
    assert!(r.counter("rerun_in_run_failed") > 0);
}

/// FIFO that runs the head of its queue on the first idle CPU without popping it, then calls `run_next` for
/// the second idle CPU: the head (already picked this round) must be passed over, not block the queue (a lone
/// task waits up to 50 µs for a second one, so that there are pairs).
struct PeekFirst {
    runq: RunQueue,
}

impl Policy for PeekFirst {
    fn task_runnable(&mut self, _ctx: &mut Ctx<'_>, task: &Task) {
        self.runq.push_back(task.gtid);
    }
    fn schedule(&mut self, ctx: &mut Ctx<'_>) {
        let idle = ctx.idle_cpus();
        let runnable = |ctx: &Ctx<'_>, g: Gtid, cpu| ctx.task(g).is_some_and(|t| t.is_runnable() && t.may_run_on(cpu));
        let (head, second) = (self.runq.pop_front(), self.runq.pop_front());
        for g in [second, head].into_iter().flatten() {
            self.runq.push_front(g);
        }
        if let (Some(x), None) = (head, second) {
            if ctx.task(x).is_some_and(|t| ctx.now() < t.runnable_since + 50_000) {
                return;
            }
        }
        if let ([a, b, ..], Some(x), Some(y)) = (&idle[..], head, second) {
            if runnable(ctx, x, *a) && runnable(ctx, y, *b) && ctx.run(RunRequest::task(*a, x)) {
                let ran = ctx.run_next(*b, &mut self.runq);
                ctx.count(if ran { "run_next_passed_over" } else { "run_next_blocked" }, 1);
                assert_eq!(self.runq.pop_front(), Some(x), "the picked head keeps its place");
                self.runq.push_front(x);
            }
        }
        for cpu in ctx.idle_cpus() {
            ctx.run_next(cpu, &mut self.runq);
        }
    }
}

#[test]
fn run_next_passes_over_a_task_picked_already() {
    let cfg = Config { agent_cpus: 1, ..small(2, Workload::MIXED) };
    let r = sim::run(&cfg, |e| Centralized::start(e, PeekFirst { runq: RunQueue::new() }, Options::default()));
    check(&r, "peek-first");
    assert!(r.counter("run_next_passed_over") > 0);
    assert_eq!(r.counter("run_next_blocked"), 0);
}

/// The per-CPU FIFO, recording the home CPU it gives each task that may run anywhere.
struct Homes {
    fifo: fifo_percpu::Fifo,
    homes: Arc<Mutex<BTreeSet<u32>>>,
}

impl Policy for Homes {
    fn task_new(&mut self, ctx: &mut Ctx<'_>, task: &Task) {
        self.fifo.task_new(ctx, task);
        if ctx.cpus().all(|c| task.may_run_on(c)) {
            if let Some(home) = ctx.task(task.gtid).and_then(|t| t.home) {
                self.homes.lock().unwrap().insert(home);
            }
        }
    }
    fn task_runnable(&mut self, ctx: &mut Ctx<'_>, task: &Task) {
        self.fifo.task_runnable(ctx, task);
    }
    fn schedule(&mut self, ctx: &mut Ctx<'_>) {
        self.fifo.schedule(ctx);
    }
}

#[test]
fn fifo_percpu_spreads_tasks_round_robin_between_pinned_ones() {
    // Every third task is pinned to CPU 1: the round robin over the others must go on (it was reduced modulo
    // the pinned task's one-CPU list, sending every unpinned task to the same CPU).
    let rows = (0..40u64)
        .map(|i| sim::TraceRow { arrival_ns: i * 20_000, service_ns: 5_000, cpus: (i % 3 == 2).then(|| vec![1]) })
        .collect();
    let cfg = Config { trace: Some(Arc::new(sim::Trace { rows })), ..small(1, Workload::MIXED) };
    let homes = Arc::new(Mutex::new(BTreeSet::new()));
    let h = homes.clone();
    let r = sim::run(&cfg, |e| {
        let policy = Homes { fifo: fifo_percpu::Fifo::default(), homes: h.clone() };
        ghost_shm::framework::PerCpu::start(e, policy, Options::default())
    });
    check(&r, "pinned every third");
    assert!(homes.lock().unwrap().len() >= 3, "unpinned tasks' homes: {:?}", homes.lock().unwrap());
}
