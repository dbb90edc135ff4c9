//! The report tells the truth (issue 16): per-enclave time and throughput, offered vs achieved load, a
//! deterministic text report byte-identical per seed without wall-clock fields, real-time reports without
//! virtual-time labels, `unfinished` = arrived and not done, singular/plural, JSON.
#![cfg(not(miri))] // whole simulations

#[path = "../examples/fifo_centralized.rs"]
mod centralized;
#[path = "../examples/fifo_percpu.rs"]
mod percpu;

use ghost_shm::sim::{self, AgentCost, BoxedAgent, Config, EnclaveSpec, Report, Workload};
use ghost_shm::topology::CpuSet;

fn machine(tasks_a: u32, tasks_b: u32) -> sim::MachineReport {
    let spec = |cpus: CpuSet, tasks: u32, seed: u64| EnclaveSpec {
        name: format!("{tasks} tasks"),
        cpus,
        config: Config { tasks, seed, ..Config::default() },
        start: Box::new(|e| Ok(Box::new(percpu::PerCpuFifo::start(e, 4096)?) as BoxedAgent<'_, '_>)),
    };
    sim::try_run_machine(
        vec![spec(CpuSet::from_cpus(0..4).unwrap(), tasks_a, 1), spec(CpuSet::from_cpus(4..8).unwrap(), tasks_b, 2)],
        60_000_000_000,
        false,
    )
    .unwrap()
}

#[test]
fn each_enclave_reports_its_own_time_and_throughput() {
    let m = machine(50, 400);
    let (a, b) = (&m.enclaves[0].1, &m.enclaves[1].1);
    assert_eq!((a.tasks_completed, b.tasks_completed), (50, 400));
    // The small enclave finished long before the machine stopped; its time and throughput are its own.
    assert!(a.enclave_ns < b.enclave_ns, "{} vs {}", a.enclave_ns, b.enclave_ns);
    assert_eq!(a.virtual_ns, b.virtual_ns, "the run is the machine's");
    assert_eq!(b.enclave_ns, b.virtual_ns);
    let expect = 50.0 * 1e9 / a.enclave_ns as f64;
    assert!((a.throughput() - expect).abs() < 1e-6);
    assert!(a.to_string().contains(&format!("{:.1} tasks/s", a.throughput())));
}

#[test]
fn offered_versus_achieved_load() {
    // 3 workers offered 150 %: the CPUs, not the agent, cap the throughput, and the report says so.
    let w = Workload { load_permille: 1500, ..Workload::POISSON };
    let cfg = Config { cpus: 3, tasks: 3000, workload: w, agent_cost: AgentCost::FREE, ..Config::default() };
    let r = sim::try_run(&cfg, |e| percpu::PerCpuFifo::start(e, 4096)).unwrap();
    assert_eq!(r.offered_load_permille, 1500);
    assert!(r.achieved_load_permille() > 950 && r.achieved_load_permille() <= 1000, "{}", r.achieved_load_permille());
    let text = r.to_string();
    assert!(text.contains("offered 150.0 %"), "{text}");
}

fn small() -> Config {
    Config { cpus: 4, agent_cpus: 1, tasks: 200, seed: 21, ..Config::default() }
}

fn central(cfg: &Config) -> Report {
    sim::try_run(cfg, |e| centralized::CentralizedFifo::start(e, 4096, 3)).unwrap()
}

#[test]
fn deterministic_text_is_byte_identical_and_has_no_wall_clock() {
    let (a, b) = (central(&small()), central(&small()));
    assert_ne!(a.wall_ns, 0);
    assert_eq!(a.to_string(), b.to_string(), "same seed, same bytes");
    assert!(!a.to_string().contains("wall"));
    assert!(format!("{a:#}").contains("wall"), "wall-clock fields on request");
    assert!(a.to_string().contains("trace hash"));
    assert!(a.to_string().contains("3 running tasks, 1 reserved for the agent"));
    // JSON: the same numbers, no wall clock unless asked.
    let v: serde_json::Value = serde_json::from_str(&a.to_json(false)).unwrap();
    assert_eq!(v["tasks_completed"], 200);
    assert_eq!(v["latency_p50_ns"], a.latency_permille(500));
    assert!(v.get("wall_ns").is_none());
    let v: serde_json::Value = serde_json::from_str(&a.to_json(true)).unwrap();
    assert_eq!(v["wall_ns"], a.wall_ns);
}

#[test]
fn realtime_text_has_no_virtual_labels_or_trace_hash() {
    let cfg = Config { cpus: 4, tasks: 60, ..Config::default() };
    let r = sim::try_run_realtime(&cfg, |e| percpu::PerCpuFifo::start(e, 4096)).unwrap();
    let text = r.to_string();
    assert!(!text.contains("trace hash") && !text.contains("virtual"), "{text}");
    assert!(text.contains("wall clock") && text.contains("kernel threads"), "{text}");
    assert_eq!(serde_json::from_str::<serde_json::Value>(&r.to_json(false)).unwrap()["mode"], "realtime");
    // Never more kernel threads than the host's cores less one (the agent has its own), at least one.
    let host = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
    assert!(r.kernel_threads >= 1 && r.kernel_threads <= host.saturating_sub(1).max(1), "{}", r.kernel_threads);
}

#[test]
fn unfinished_counts_arrived_tasks_only_and_plurals_are_right() {
    // Stop early: some tasks never arrived, some arrived and did not finish.
    let cfg = Config { duration_ns: 2_000_000, ..small() };
    let r = central(&cfg);
    assert!(r.tasks_arrived < r.tasks_total);
    assert_eq!(r.unfinished.len() as u64, r.tasks_arrived - r.tasks_completed - r.tasks_departed);
    let text = r.to_string();
    assert!(text.contains(&format!("{} never arrived", r.tasks_total - r.tasks_arrived)), "{text}");
    // One latency sample: singular.
    let one = central(&Config { tasks: 1, workload: Workload { bursts: (1, 1), ..Workload::MIXED }, ..small() });
    assert!(one.to_string().contains("(runnable → on CPU, 1 sample)"), "{one}");
}
