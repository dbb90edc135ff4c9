//! Workloads (open-loop Poisson at a target load, the dispersive RocksDB-like mix, trace replay), agent
//! costs that saturate a centralized agent, typed `Config` errors, and status words from several regions
//! (issue 16).
#![cfg(not(miri))] // whole simulations

#[path = "../examples/fifo_centralized.rs"]
mod centralized;
#[path = "../examples/fifo_percpu.rs"]
mod percpu;

use ghost_shm::sim::{self, AgentCost, Config, ConfigError, Report, Service, Trace, TraceRow, Workload};
use std::sync::Arc;

fn central(cfg: &Config) -> Report {
    let cfg = Config { agent_cpus: 1, ..cfg.clone() };
    let agent_cpu = cfg.cpus - 1;
    sim::try_run(&cfg, |e| centralized::CentralizedFifo::start(e, 4096, agent_cpu)).unwrap()
}

#[track_caller]
fn healthy(r: &Report) {
    assert_eq!(r.tasks_completed, r.tasks_total, "{:?}", r.unfinished);
    assert_eq!(r.invariant_violations, 0);
    assert_eq!(r.seqnum_violations, 0);
}

#[test]
fn poisson_arrivals_offer_the_target_load() {
    for load in [300, 700] {
        let w = Workload { load_permille: load, ..Workload::POISSON };
        let cfg = Config { cpus: 9, tasks: 4000, workload: w, agent_cost: AgentCost::FREE, ..Config::default() };
        let r = central(&cfg);
        healthy(&r);
        assert_eq!(r.offered_load_permille, load as u64, "offered = requested");
        // Open loop with spare capacity: achieved ≈ offered (±15 % of it, a random sample of 4000 tasks).
        let a = r.achieved_load_permille() as i64;
        assert!((a - load as i64).abs() * 100 < 15 * load as i64, "load {load}: achieved {a}‰");
    }
}

#[test]
fn dispersive_mix_is_bimodal() {
    // 4 workers: long requests often hold every CPU at once, and FIFO makes short ones wait behind them.
    let cfg = Config {
        cpus: 5,
        tasks: 6000,
        workload: Workload::DISPERSIVE,
        agent_cost: AgentCost::MEASURED_SPINNING,
        ..Config::default()
    };
    assert_eq!(Workload::DISPERSIVE.service.mean_ns(&Workload::DISPERSIVE), 53_980);
    let r = central(&cfg);
    healthy(&r);
    assert_eq!(r.offered_load_permille, 500);
    // One burst per task: the mean CPU time per task is the mix's mean, 53.98 µs (0.5 % of 10 ms dominate):
    // within 40 % for 6000 tasks (about 30 long ones).
    let mean = r.cpu_busy_ns / r.tasks_completed;
    assert!((32_000..76_000).contains(&mean), "mean service {mean} ns");
    // Short requests queue behind long ones now and then: the tail is far above the median.
    assert!(
        r.latency_permille(999) > 10 * r.latency_permille(500).max(1),
        "p50 {} p99.9 {} max {:?}",
        r.latency_permille(500),
        r.latency_permille(999),
        r.latencies.last()
    );
}

#[test]
fn service_distributions_sample_what_they_say() {
    let mut rng = sim::Rng::new(3);
    let w = Workload { mean_service_ns: 7_000, service: Service::Fixed, ..Workload::MIXED };
    assert!((0..100).all(|_| w.service.sample(&w, &mut rng) == 7_000));
    let b = Service::Bimodal { short_ns: 4_000, long_ns: 10_000_000, long_ppm: 5_000 };
    let long = (0..200_000).filter(|_| b.sample(&w, &mut rng) == 10_000_000).count();
    assert!((800..1200).contains(&long), "{long} long of 200000 (expect ~1000)");
}

#[test]
fn trace_replay_runs_each_row_once_with_its_affinity() {
    let mut rows = Vec::new();
    for i in 0..200u64 {
        // Out of order on purpose; every 10th task pinned to worker 2.
        let arrival = (200 - i) * 3_000;
        rows.push(TraceRow { arrival_ns: arrival, service_ns: 5_000 + i, cpus: (i % 10 == 0).then(|| vec![2]) });
    }
    let trace = Arc::new(Trace { rows });
    let cfg = Config { cpus: 5, trace: Some(trace), ..Config::default() };
    let r = central(&cfg);
    healthy(&r);
    assert_eq!(r.tasks_total, 200);
    let work: u64 = (0..200).map(|i| 5_000 + i).sum();
    assert_eq!(r.cpu_busy_ns, work, "each row's service time ran exactly once");
    // Parsing: header, comments, cpulists with commas, errors with line numbers.
    let t = Trace::parse_csv("arrival_ns,service_ns,cpus\n# c\n0,10\n5,20,0-1,3\n").unwrap();
    assert_eq!(t.rows[1], TraceRow { arrival_ns: 5, service_ns: 20, cpus: Some(vec![0, 1, 3]) });
    assert_eq!(Trace::parse_csv("0,10\n1,0\n").unwrap_err().line, 2);
    assert!(Trace::parse_csv("0,10\n1,5,9-2\n").unwrap_err().to_string().contains("line 2"));
    assert!(Trace::parse_csv("").is_err());
}

#[test]
fn agent_cost_saturates_a_centralized_agent() {
    // 7 workers offered 90 % with 10 µs requests: ~630 k decisions/s. An agent that needs 5 µs per decision
    // (2 messages + 1 commit) manages at most ~200 k/s: throughput is capped by the agent, not the CPUs.
    let w = Workload { load_permille: 900, ..Workload::POISSON };
    let base = Config { cpus: 8, tasks: 3000, workload: w, ..Config::default() };
    let free = central(&Config { agent_cost: AgentCost::FREE, ..base.clone() });
    let slow = AgentCost { per_message_ns: 1_500, per_txn_ns: 2_000, ..AgentCost::FREE };
    let sat = central(&Config { agent_cost: slow, ..base.clone() });
    healthy(&free);
    healthy(&sat);
    assert!(free.achieved_load_permille() > 800, "{}", free.achieved_load_permille());
    assert!(sat.achieved_load_permille() < 450, "saturated agent: {}‰", sat.achieved_load_permille());
    assert!(sat.throughput() < free.throughput() * 0.6);
    assert!(sat.latency_permille(500) > 20 * free.latency_permille(500).max(1));
    // The agent was busy nearly all of the enclave's time.
    assert!(sat.agent_busy_ns * 10 > sat.enclave_ns * 9, "{} of {}", sat.agent_busy_ns, sat.enclave_ns);
}

#[test]
fn many_tasks_use_several_status_word_regions() {
    // More tasks than one 65,534-word region: all of them alive at once (arrivals in the first microseconds,
    // long service), on a per-CPU agent; the run is cut short, what matters is that every task got a word.
    let w = Workload { mean_arrival_gap_ns: 1, bursts: (1, 1), mean_service_ns: 1_000_000_000, ..Workload::CPU_BOUND };
    let cfg = Config { cpus: 4, tasks: 70_000, workload: w, duration_ns: 1_000_000, ..Config::default() };
    let r = sim::try_run(&cfg, |e| {
        assert_eq!(e.status_regions().count(), 2);
        percpu::PerCpuFifo::start(e, 65_536)
    })
    .unwrap();
    assert_eq!(r.tasks_arrived, 70_000);
    assert_eq!(r.invariant_violations, 0, "a status-word allocation failed");
}

#[test]
fn invalid_configs_are_typed_errors() {
    let ok = Config::default();
    let bad = |c: Config| c.validate().unwrap_err();
    assert_eq!(bad(Config { tick_ns: Some(0), ..ok.clone() }), ConfigError::ZeroTick);
    assert_eq!(bad(Config { timer_ns: Some(0), ..ok.clone() }), ConfigError::ZeroTimer);
    assert_eq!(bad(Config { cpus: 0, ..ok.clone() }), ConfigError::Cpus(0));
    assert_eq!(bad(Config { cpus: 8193, ..ok.clone() }), ConfigError::Cpus(8193));
    assert_eq!(
        bad(Config { cpus: 2, agent_cpus: 2, ..ok.clone() }),
        ConfigError::NoWorkerCpus { cpus: 2, agent_cpus: 2 }
    );
    assert_eq!(bad(Config { tasks: 0, ..ok.clone() }), ConfigError::Tasks(0));
    assert_eq!(bad(Config { duration_ns: 0, ..ok.clone() }), ConfigError::ZeroDuration);
    assert_eq!(bad(Config { queue_slots: 3, ..ok.clone() }), ConfigError::QueueSlots(3));
    // Too small for the longest message (7 slots) wherever the head is: every such message would be dropped.
    for n in [1, 2, 4, 8] {
        assert_eq!(bad(Config { queue_slots: n, ..ok.clone() }), ConfigError::QueueTooSmall(n));
    }
    assert_eq!(ConfigError::MIN_QUEUE_SLOTS, 16);
    assert!(Config { queue_slots: 16, ..ok.clone() }.validate().is_ok());
    assert_eq!(
        bad(Config { crash_at_ns: Some(5), duration_ns: 5, ..ok.clone() }),
        ConfigError::CrashAfterEnd { at_ns: 5, duration_ns: 5 }
    );
    assert!(matches!(
        bad(Config { upgrade_at_ns: Some(9), duration_ns: 5, ..ok.clone() }),
        ConfigError::UpgradeAfterEnd { .. }
    ));
    assert!(matches!(
        bad(Config { workload: Workload { bursts: (3, 2), ..Workload::MIXED }, ..ok.clone() }),
        ConfigError::Workload(_)
    ));
    assert!(matches!(
        bad(Config { workload: Workload { block_permille: 1001, ..Workload::MIXED }, ..ok.clone() }),
        ConfigError::Workload(_)
    ));
    let pinned = Trace { rows: vec![TraceRow { arrival_ns: 0, service_ns: 1, cpus: Some(vec![7]) }] };
    assert_eq!(bad(Config { cpus: 4, trace: Some(Arc::new(pinned)), ..ok.clone() }), ConfigError::TraceCpu(0, 7));
    // try_run reports instead of hanging (tick 0 re-armed at the same instant forever) or panicking.
    let err = sim::try_run(&Config { tick_ns: Some(0), ..ok.clone() }, |e| percpu::PerCpuFifo::start(e, 64));
    assert_eq!(err.unwrap_err(), ConfigError::ZeroTick);
    assert!(ConfigError::ZeroTick.to_string().contains("tick period 0"));
    let err = sim::try_run_realtime(&Config { cpus: 9000, ..ok }, |e| percpu::PerCpuFifo::start(e, 64));
    assert_eq!(err.unwrap_err(), ConfigError::Cpus(9000));
}

#[test]
fn machine_runs_refuse_overlapping_or_empty_enclaves() {
    use ghost_shm::sim::{BoxedAgent, EnclaveSpec};
    use ghost_shm::topology::CpuSet;
    let spec = |cpus: CpuSet| EnclaveSpec {
        name: "e".into(),
        cpus,
        config: Config { tasks: 10, ..Config::default() },
        start: Box::new(|e| Ok(Box::new(percpu::PerCpuFifo::start(e, 64)?) as BoxedAgent<'_, '_>)),
    };
    let r = sim::try_run_machine(
        vec![spec(CpuSet::from_cpus(0..3).unwrap()), spec(CpuSet::from_cpus(2..5).unwrap())],
        1_000_000,
        false,
    );
    assert_eq!(r.unwrap_err(), ConfigError::Overlap(2));
    let r = sim::try_run_machine(vec![spec(CpuSet::new())], 1_000_000, false);
    assert_eq!(r.unwrap_err(), ConfigError::EmptyEnclave(0));
    assert_eq!(sim::try_run_machine(vec![], 1, false).unwrap_err(), ConfigError::NoEnclaves);
}

#[test]
fn example_agents_handle_departures_and_affinity() {
    let w = Workload { depart_permille: 150, affinity_permille: 150, ..Workload::MIXED };
    let cfg = Config { cpus: 5, tasks: 400, seed: 8, workload: w, ..Config::default() };
    let c = central(&cfg);
    let p = sim::try_run(&cfg, |e| percpu::PerCpuFifo::start(e, 4096)).unwrap();
    for (name, r) in [("centralized", &c), ("percpu", &p)] {
        assert_eq!(r.tasks_completed + r.tasks_departed, r.tasks_total, "{name}: {:?}", r.unfinished);
        assert!(r.tasks_departed > 20, "{name}");
        assert_eq!(r.invariant_violations, 0, "{name}");
        assert_eq!(r.seqnum_violations, 0, "{name}");
        assert_eq!(r.outcome(ghost_shm::abi::TxnOutcome::NotPermitted), 0, "{name}: commits respect affinity");
    }
}
