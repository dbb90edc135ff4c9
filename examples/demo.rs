//! The demo: a ghOSt agent scheduling a simulated enclave, with a report.
//!
//! ```text
//! cargo run --release --example demo -- [--agent centralized|percpu] [--cpus N] [--tasks N]
//!     [--workload mixed|cpu|wakeup] [--duration-ms MS] [--seed S] [--ticks-us US] [--crash-at-ms MS]
//!     [--mode deterministic|realtime] [--stats MS]
//! ```
//!
//! `--stats MS` prints one JSON object per MS of (virtual) time while the agent runs, with its task counts and
//! the framework's and the policy's counters (`… | grep '^{' | jq .`).
//!
//! `--crash-at-ms` kills the agent at that virtual time: the kernel falls back to its own FIFO, a new agent
//! attaches after 2 ms, rediscovers the tasks through the status words and takes over. `--upgrade-at-ms`
//! replaces the running agent by a new one at that time (live upgrade, no fallback).
//!
//! `--enclaves 2` runs two enclaves side by side, the centralized FIFO on one and the per-CPU FIFO on the
//! other; their CPUs are cut along the topology of `--topology DIR` (a sysfs root such as
//! `tests/data/topologies/intel-xeon4108-2s16c32t`: one enclave per NUMA node, else per LLC), or the two
//! halves of `--cpus`. Crash and upgrade then apply to the first enclave.

#[path = "fifo_centralized.rs"]
mod centralized;
#[path = "fifo_percpu.rs"]
mod percpu;

use ghost_shm::framework::Options;
use ghost_shm::sim::{self, BoxedAgent, Config, EnclaveSpec, Workload};
use ghost_shm::topology::{CpuSet, Level, Topology};

fn usage(msg: &str) -> ! {
    eprintln!("{msg}");
    eprintln!(
        "usage: demo [--agent centralized|percpu] [--cpus N] [--tasks N] [--workload mixed|cpu|wakeup] \
         [--duration-ms MS] [--seed S] [--ticks-us US] [--crash-at-ms MS] [--upgrade-at-ms MS] \
         [--enclaves 1|2] [--topology SYSFS_ROOT] [--mode deterministic|realtime] [--stats MS]"
    );
    std::process::exit(2)
}

fn main() {
    let mut cfg = Config { progress: true, ..Config::default() };
    let mut agent = String::from("centralized");
    let mut enclaves = 1;
    let mut realtime = false;
    let mut topology: Option<String> = None;
    let mut stats: Option<u64> = None;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut val = || args.next().unwrap_or_else(|| usage(&format!("{flag} needs a value")));
        let num = |v: String| v.parse::<u64>().unwrap_or_else(|_| usage(&format!("{v}: not a number")));
        match flag.as_str() {
            "--agent" => agent = val(),
            "--cpus" => cfg.cpus = num(val()) as u32,
            "--tasks" => cfg.tasks = num(val()) as u32,
            "--workload" => {
                let w = val();
                cfg.workload = Workload::by_name(&w).unwrap_or_else(|| usage(&format!("unknown workload {w}")))
            }
            "--duration-ms" => cfg.duration_ns = num(val()) * 1_000_000,
            "--seed" => cfg.seed = num(val()),
            "--ticks-us" => cfg.tick_ns = Some(num(val()) * 1000),
            "--crash-at-ms" => cfg.crash_at_ns = Some(num(val()) * 1_000_000),
            "--upgrade-at-ms" => cfg.upgrade_at_ns = Some(num(val()) * 1_000_000),
            "--enclaves" => enclaves = num(val()),
            "--topology" => topology = Some(val()),
            "--stats" => stats = Some(num(val()).max(1) * 1_000_000),
            "--mode" => match val().as_str() {
                "deterministic" => realtime = false,
                "realtime" => realtime = true,
                m => usage(&format!("unknown mode {m}")),
            },
            "-h" | "--help" => usage("ghOSt agent on the simulated kernel"),
            other => usage(&format!("unknown flag {other}")),
        }
    }
    if cfg.cpus < 2 {
        usage("--cpus must be at least 2");
    }
    if enclaves == 2 {
        return two_enclaves(cfg, topology.as_deref());
    } else if enclaves != 1 {
        usage("--enclaves must be 1 or 2");
    }
    let slots = cfg.queue_slots;
    if realtime && (enclaves != 1 || cfg.crash_at_ns.is_some() || cfg.upgrade_at_ns.is_some()) {
        usage("--mode realtime runs one enclave without crash or upgrade injection");
    }
    println!(
        "ghost-shm demo: {agent} FIFO agent, {} CPUs, {} tasks, seed {}, {}{}",
        cfg.cpus,
        cfg.tasks,
        cfg.seed,
        if realtime {
            "real time (a thread per CPU, the agent on its own thread)"
        } else {
            "deterministic virtual time"
        },
        cfg.crash_at_ns.map_or(String::new(), |t| format!(", agent crash at {} ms", t / 1_000_000))
    );
    let opts = || Options::default().queue_slots(slots).stats_every(stats);
    let report = match agent.as_str() {
        "centralized" => {
            cfg.agent_cpus = 1;
            let agent_cpu = cfg.cpus - 1;
            if realtime {
                sim::run_realtime(&cfg, |e| centralized::CentralizedFifo::start_with(e, opts().agent_cpu(agent_cpu)))
            } else {
                sim::run(&cfg, |e| centralized::CentralizedFifo::start_with(e, opts().agent_cpu(agent_cpu)))
            }
        }
        "percpu" if realtime => sim::run_realtime(&cfg, |e| percpu::PerCpuFifo::start_with(e, opts())),
        "percpu" => sim::run(&cfg, |e| percpu::PerCpuFifo::start_with(e, opts())),
        other => usage(&format!("unknown agent {other}")),
    };
    println!("{report}");
}

/// Two enclaves, cut along the topology (or the halves of `--cpus`): centralized FIFO and per-CPU FIFO.
fn two_enclaves(cfg: Config, topology: Option<&str>) {
    let (a, b) = match topology {
        Some(root) => {
            let topo = Topology::from_sysfs(root).unwrap_or_else(|e| usage(&format!("{root}: {e}")));
            let online = *topo.online();
            let mut parts: Vec<CpuSet> = topo.partition(&online, Level::Node).collect();
            if parts.len() < 2 {
                parts = topo.partition(&online, Level::Llc).collect();
            }
            if parts.len() < 2 {
                usage(&format!("{root}: a single NUMA node and LLC: nothing to cut along"));
            }
            // Two enclaves: the first group, and the rest.
            let rest = parts[1..].iter().fold(CpuSet::new(), |acc, p| acc | *p);
            (parts[0], rest)
        }
        None => {
            let half = cfg.cpus as usize / 2;
            (CpuSet::from_cpus(0..half).unwrap(), CpuSet::from_cpus(half..cfg.cpus as usize).unwrap())
        }
    };
    let slots = cfg.queue_slots;
    let agent_cpu = a.last().unwrap() as u32;
    println!(
        "ghost-shm demo: 2 enclaves, {} tasks each, seed {}{}{}\n  enclave 0 (centralized FIFO, agent on CPU {agent_cpu}): CPUs {a}\n  enclave 1 (per-CPU FIFO): CPUs {b}",
        cfg.tasks,
        cfg.seed,
        cfg.crash_at_ns.map_or(String::new(), |t| format!(", enclave 0 agent crash at {} ms", t / 1_000_000)),
        cfg.upgrade_at_ns.map_or(String::new(), |t| format!(", enclave 0 agent upgrade at {} ms", t / 1_000_000)),
    );
    let calm = Config { crash_at_ns: None, upgrade_at_ns: None, seed: cfg.seed + 1, ..cfg.clone() };
    let specs = vec![
        EnclaveSpec {
            name: "centralized FIFO".into(),
            cpus: a,
            config: Config { agent_cpus: 1, ..cfg.clone() },
            start: Box::new(move |e| {
                Ok(Box::new(centralized::CentralizedFifo::start(e, slots, agent_cpu)?) as BoxedAgent<'_, '_>)
            }),
        },
        EnclaveSpec {
            name: "per-CPU FIFO".into(),
            cpus: b,
            config: calm,
            start: Box::new(move |e| Ok(Box::new(percpu::PerCpuFifo::start(e, slots)?) as BoxedAgent<'_, '_>)),
        },
    ];
    println!("{}", sim::run_machine(specs, cfg.duration_ns, cfg.progress));
}
