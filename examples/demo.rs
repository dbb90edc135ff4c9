//! The demo: a ghOSt agent scheduling a simulated enclave, with a report. `--help` lists every flag.
//!
//! Every input gets an answer: a bad value is a one-line error naming it (exit status 2), never a panic, a
//! hang or a meaningless report. `--crash-at-ms` kills the agent at that virtual time: the kernel falls back
//! to its own FIFO, a new agent attaches after 2 ms, rediscovers the tasks through the status words and takes
//! over. `--upgrade-at-ms` replaces the running agent by a new one (live upgrade, no fallback).
//!
//! `--enclaves 2` runs two enclaves side by side, the centralized FIFO on enclave 0 and the per-CPU FIFO on
//! enclave 1; their CPUs are cut along the topology of `--topology DIR` (a sysfs root such as
//! a fixture machine's tree written by `cargo run --example topology -- --write-fixture intel-xeon4108-2s16c32t DIR`: one enclave per NUMA node, else per LLC), or split from
//! `--cpus` (the centralized enclave, which gives one CPU to its agent, gets the larger part). Crash and
//! upgrade then apply to enclave 0.

#[path = "fifo_centralized.rs"]
mod centralized;
#[path = "fifo_percpu.rs"]
mod percpu;

// The run's unknown-flag check lists flags by hand: keep VALUED in step with `parse`.

use ghost_shm::framework::Options;
use ghost_shm::sim::{self, AgentCost, BoxedAgent, Competing, Config, ConfigError, EnclaveSpec, Trace, Workload};
use ghost_shm::topology::{CpuSet, Level, Topology};
use std::process::ExitCode;
use std::sync::Arc;

const USAGE: &str = "\
ghOSt agent on the simulated kernel (ghost-shm demo)

usage: demo [FLAGS]

policy and machine
  --agent centralized|percpu   the policy of a single enclave (default centralized: a global agent spinning
                               on the last CPU; percpu: one agent per CPU, woken by its queue)
  --cpus N                     simulated CPUs, 2..=8192 (1..=8192 for percpu; default 8)
  --enclaves 1|2               2: centralized FIFO on enclave 0, per-CPU FIFO on enclave 1 (default 1)
  --topology SYSFS_ROOT        simulate that machine's online CPUs (a fixture machine's tree: `cargo run --example
                               topology -- --write-fixture NAME DIR`); with --enclaves 2, cut along its NUMA
                               nodes or LLCs
  --mode deterministic|realtime  virtual time (default; reproducible per seed) or wall-clock time (simulated
                               CPUs multiplexed onto at most the host's cores less one)
workload
  --workload NAME              mixed (default), cpu, wakeup, dispersive (99.5 % 4 us, 0.5 % 10 ms), poisson
  --tasks N                    tasks that arrive (default 2000)
  --load PCT                   open-loop Poisson arrivals offering PCT % of the worker CPUs (1..=1000)
  --trace FILE                 replay a CSV trace: arrival_ns,service_ns[,cpulist of worker indices]
  --seed S                     seed of the workload's random numbers (default 1)
  --competing FREE_US:BUSY_US  non-ghOSt tasks take each worker CPU for ~BUSY_US every ~FREE_US (CPU_BUSY,
                               CPU_AVAILABLE, CPU_NOT_IDLE)
kernel and agent
  --duration-ms MS             stop after this much time (default 60000)
  --ticks-us US                CPU_TICK every US on busy CPUs
  --timer-us US                the agent's timerfd fires every US (CPU_TIMER_EXPIRED)
  --agent-runnability          deliver CPU_AGENT_BLOCKED / CPU_AGENT_WAKEUP
  --queue-slots N              slots of each agent queue, a power of two in 16..=65536 (default 4096)
  --agent-period-us US         the agent runs at most once per US (deterministic; default 0: at every event)
  --agent-cost measured|free|MSG,TXN,GROUP,MEMBER,WAKE
                               the agent's cost in virtual ns (default measured: this crate's benches)
  --crash-at-ms MS             kill the agent at MS (fallback, then a new agent after 2 ms)
  --upgrade-at-ms MS           replace the agent at MS (live upgrade)
report
  --json                       one JSON object instead of the text report
  --stats MS                   while the agent runs, one JSON line per MS of run time: tasks by state and the
                               framework's and the policy's counters (lines starting with {\"t_ns\")
  --wall                       include wall-clock fields in a deterministic report
  -h, --help                   this help
";

/// What the command line asks for.
struct Opts {
    cfg: Config,
    agent: Option<String>,
    cpus_given: bool,
    enclaves: u32,
    realtime: bool,
    topology: Option<String>,
    json: bool,
    wall: bool,
    stats_ns: Option<u64>,
    cost_given: bool,
    period_given: bool,
    tasks_given: bool,
    workload_given: bool,
    load_given: bool,
}

type Res<T> = Result<T, String>;

/// The flags that take a value.
const VALUED: &[&str] = &[
    "--agent",
    "--cpus",
    "--tasks",
    "--workload",
    "--load",
    "--trace",
    "--seed",
    "--competing",
    "--duration-ms",
    "--ticks-us",
    "--timer-us",
    "--queue-slots",
    "--agent-period-us",
    "--agent-cost",
    "--crash-at-ms",
    "--upgrade-at-ms",
    "--enclaves",
    "--topology",
    "--mode",
    "--stats",
];

/// `v` as a whole number in `lo..=hi`, or an error naming the flag and the value.
fn num(flag: &str, v: &str, lo: u64, hi: u64) -> Res<u64> {
    match v.parse::<u64>() {
        Ok(n) if (lo..=hi).contains(&n) => Ok(n),
        _ => Err(format!("{flag} {v}: not a whole number in {lo}..={hi}")),
    }
}

/// `v` (in units of `unit_ns`) as ns, at least 1 unit; an error if it overflows.
fn time(flag: &str, v: &str, unit_ns: u64, unit: &str) -> Res<u64> {
    let max = u64::MAX / unit_ns;
    let n = num(flag, v, 1, u64::MAX).map_err(|_| format!("{flag} {v}: not a whole number of {unit} >= 1"))?;
    n.checked_mul(unit_ns).ok_or_else(|| format!("{flag} {v}: too large (at most {max} {unit})"))
}

fn parse(args: impl Iterator<Item = String>) -> Res<Option<Opts>> {
    let mut o = Opts {
        cfg: Config { progress: true, ..Config::default() },
        agent: None,
        cpus_given: false,
        enclaves: 1,
        realtime: false,
        topology: None,
        json: false,
        wall: false,
        stats_ns: None,
        cost_given: false,
        period_given: false,
        tasks_given: false,
        workload_given: false,
        load_given: false,
    };
    let mut args = args.peekable();
    let mut load = None;
    while let Some(flag) = args.next() {
        let flag = flag.as_str();
        if matches!(flag, "-h" | "--help") {
            return Ok(None);
        }
        let switch = matches!(flag, "--json" | "--wall" | "--agent-runnability");
        let v = if switch {
            String::new()
        } else if VALUED.contains(&flag) {
            args.next().ok_or_else(|| format!("{flag} needs a value"))?
        } else if flag.starts_with('-') {
            return Err(format!("unknown flag {flag}"));
        } else {
            return Err(format!("unexpected argument {flag:?}"));
        };
        let c = &mut o.cfg;
        match flag {
            "--agent" => match v.as_str() {
                "centralized" | "percpu" => o.agent = Some(v),
                _ => return Err(format!("--agent {v}: unknown policy (centralized or percpu)")),
            },
            "--cpus" => {
                c.cpus = num(flag, &v, 1, ghost_shm::txn::MAX_CPUS as u64)? as u32;
                o.cpus_given = true;
            }
            "--tasks" => {
                c.tasks = num(flag, &v, 1, ConfigError::MAX_TASKS as u64)? as u32;
                o.tasks_given = true;
            }
            "--workload" => {
                c.workload = Workload::by_name(&v).ok_or_else(|| {
                    format!("--workload {v}: unknown workload (one of {})", Workload::NAMES.join(", "))
                })?;
                o.workload_given = true;
            }
            "--load" => {
                load = Some(num(flag, &v, 1, 1000)? as u32 * 10);
                o.load_given = true;
            }
            "--trace" => {
                let t = Trace::from_file(std::path::Path::new(&v)).map_err(|e| format!("--trace {e}"))?;
                c.trace = Some(Arc::new(t));
            }
            "--seed" => c.seed = num(flag, &v, 0, u64::MAX)?,
            "--competing" => {
                let (free, busy) =
                    v.split_once(':').ok_or_else(|| format!("--competing {v}: expected FREE_US:BUSY_US"))?;
                c.competing = Some(Competing {
                    mean_free_ns: time(flag, free, 1000, "µs")?,
                    mean_busy_ns: time(flag, busy, 1000, "µs")?,
                });
            }
            "--duration-ms" => c.duration_ns = time(flag, &v, 1_000_000, "ms")?,
            "--ticks-us" => c.tick_ns = Some(time(flag, &v, 1000, "µs")?),
            "--timer-us" => c.timer_ns = Some(time(flag, &v, 1000, "µs")?),
            "--agent-runnability" => c.agent_runnability = true,
            "--queue-slots" => {
                let min = ConfigError::MIN_QUEUE_SLOTS as u64;
                let n = num(flag, &v, 1, 65_536)?;
                if !n.is_power_of_two() {
                    return Err(format!("--queue-slots {v}: not a power of two in {min}..=65536"));
                }
                if n < min {
                    return Err(format!(
                        "--queue-slots {v}: below {min}, the longest message ({} slots) would not always fit",
                        ConfigError::MAX_MSG_SLOTS
                    ));
                }
                c.queue_slots = n as u32;
            }
            "--agent-period-us" => {
                c.agent_period_ns = if v == "0" { 0 } else { time(flag, &v, 1000, "µs")? };
                o.period_given = true;
            }
            "--agent-cost" => {
                c.agent_cost = match v.as_str() {
                    "measured" => AgentCost::MEASURED,
                    "free" => AgentCost::FREE,
                    custom => {
                        let p: Vec<&str> = custom.split(',').collect();
                        let n = |i: usize| num(flag, p[i], 0, 1_000_000_000);
                        if p.len() != 5 {
                            return Err(format!(
                                "--agent-cost {v}: expected measured, free or five ns values MSG,TXN,GROUP,MEMBER,WAKE"
                            ));
                        }
                        AgentCost {
                            per_message_ns: n(0)?,
                            per_txn_ns: n(1)?,
                            per_group_ns: n(2)?,
                            per_group_member_ns: n(3)?,
                            wakeup_ns: n(4)?,
                        }
                    }
                };
                o.cost_given = true;
            }
            "--crash-at-ms" => c.crash_at_ns = Some(time(flag, &v, 1_000_000, "ms")?),
            "--upgrade-at-ms" => c.upgrade_at_ns = Some(time(flag, &v, 1_000_000, "ms")?),
            "--enclaves" => o.enclaves = num(flag, &v, 1, 2)? as u32,
            "--topology" => o.topology = Some(v),
            "--mode" => match v.as_str() {
                "deterministic" => o.realtime = false,
                "realtime" => o.realtime = true,
                _ => return Err(format!("--mode {v}: unknown mode (deterministic or realtime)")),
            },
            "--json" => o.json = true,
            "--stats" => o.stats_ns = Some(time(flag, &v, 1_000_000, "ms")?),
            "--wall" => o.wall = true,
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    if let Some(l) = load {
        o.cfg.workload.load_permille = l;
    }
    Ok(Some(o))
}

/// Checks combinations that one flag alone cannot tell.
fn check(o: &Opts) -> Res<()> {
    let c = &o.cfg;
    let ms = |ns: u64| ns / 1_000_000;
    if c.trace.is_some() && (o.tasks_given || o.workload_given || o.load_given) {
        return Err("--trace replays its own tasks: drop --tasks, --workload and --load".into());
    }
    if o.topology.is_some() && o.cpus_given {
        return Err(format!("--cpus {} conflicts with --topology (the topology's online CPUs are used)", c.cpus));
    }
    if o.enclaves == 2 {
        if let Some(a) = &o.agent {
            return Err(format!(
                "--agent {a} with --enclaves 2: the two enclaves run the centralized and the per-CPU FIFO; drop --agent"
            ));
        }
        if o.realtime {
            return Err("--mode realtime runs one enclave: drop --enclaves 2".into());
        }
        if o.topology.is_none() && c.cpus < 3 {
            return Err(format!(
                "--cpus {} with --enclaves 2: need at least 3 (2 for the centralized enclave and its agent, 1 for the per-CPU one)",
                c.cpus
            ));
        }
    }
    if o.agent.as_deref() != Some("percpu") && o.enclaves == 1 && c.cpus < 2 {
        return Err(format!(
            "--cpus {}: the centralized agent needs at least 2 (one for the agent, one for tasks)",
            c.cpus
        ));
    }
    if o.realtime && (o.cost_given || o.period_given) {
        return Err(
            "--agent-cost and --agent-period-us are virtual-time settings: drop them with --mode realtime".into()
        );
    }
    for (flag, at) in [("--crash-at-ms", c.crash_at_ns), ("--upgrade-at-ms", c.upgrade_at_ns)] {
        if let Some(t) = at.filter(|&t| t >= c.duration_ns) {
            return Err(format!(
                "{flag} {}: not before the end of the run (--duration-ms {})",
                ms(t),
                ms(c.duration_ns)
            ));
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let o = match parse(std::env::args().skip(1)) {
        Ok(None) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Ok(Some(o)) => o,
        Err(e) => {
            eprintln!("demo: {e} (demo --help lists the flags)");
            return ExitCode::from(2);
        }
    };
    match check(&o).and_then(|()| if o.enclaves == 2 { two_enclaves(o) } else { one_enclave(o) }) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("demo: {e}");
            ExitCode::from(2)
        }
    }
}

/// A crash or upgrade the run ended before (every task done) did not happen: say so instead of printing a
/// report that looks like it did.
fn injected(c: &Config, r: &sim::Report) -> Res<()> {
    for (flag, at) in [("--crash-at-ms", c.crash_at_ns), ("--upgrade-at-ms", c.upgrade_at_ns)] {
        if let Some(t) = at.filter(|&t| t > r.virtual_ns) {
            return Err(format!(
                "{flag} {}: every task was done at {:.3} ms, before it; use a smaller value or more --tasks",
                t / 1_000_000,
                r.virtual_ns as f64 / 1e6
            ));
        }
    }
    Ok(())
}

fn describe(c: &Config) -> String {
    match &c.trace {
        Some(t) => format!("{} traced tasks", t.rows.len()),
        None => {
            let name = Workload::NAMES
                .iter()
                .find(|n| {
                    Workload::by_name(n).is_some_and(|w| w == Workload { load_permille: w.load_permille, ..c.workload })
                })
                .unwrap_or(&"custom");
            format!("{} tasks, {name} workload", c.tasks)
        }
    }
}

fn one_enclave(mut o: Opts) -> Res<()> {
    if let Some(root) = o.topology.as_deref() {
        let topo = Topology::from_sysfs(root).map_err(|e| format!("--topology {root}: {e}"))?;
        let online = *topo.online();
        let n = online.count();
        if online.last() != Some(n - 1) {
            return Err(format!(
                "--topology {root}: online CPUs {online} are not 0..N (one enclave needs them contiguous)"
            ));
        }
        o.cfg.cpus = n as u32;
        if o.agent.as_deref() != Some("percpu") && n < 2 {
            return Err(format!("--topology {root}: {n} online CPU; the centralized agent needs 2"));
        }
    }
    let agent = o.agent.clone().unwrap_or_else(|| "centralized".into());
    let slots = o.cfg.queue_slots;
    let centralized = agent == "centralized";
    if centralized {
        o.cfg.agent_cpus = 1;
        if !o.cost_given {
            // The global agent spins: no wake-up cost.
            o.cfg.agent_cost = AgentCost::MEASURED_SPINNING;
        }
    }
    o.cfg.progress = !o.json;
    let cfg = &o.cfg;
    let agent_cpu = cfg.cpus - 1;
    let placement = if centralized {
        format!("centralized FIFO agent on CPU {agent_cpu}, CPUs 0-{} run tasks", agent_cpu.saturating_sub(1))
    } else {
        format!("per-CPU FIFO agents, CPUs 0-{} run tasks", cfg.cpus - 1)
    };
    let clock = if o.realtime { "real time" } else { "deterministic virtual time" };
    let opts = || Options::default().queue_slots(slots).stats_every(o.stats_ns);
    let report = match (centralized, o.realtime) {
        (true, true) => {
            sim::try_run_realtime(cfg, |e| centralized::CentralizedFifo::start_with(e, opts().agent_cpu(agent_cpu)))
        }
        (true, false) => {
            sim::try_run(cfg, |e| centralized::CentralizedFifo::start_with(e, opts().agent_cpu(agent_cpu)))
        }
        // Real time: an OS thread per CPU agent, sleeping until its queue wakes it.
        (false, true) => sim::try_run_realtime(cfg, |e| {
            let (quantum, nap) = (std::time::Duration::from_millis(10), std::time::Duration::from_micros(50));
            ghost_shm::framework::PerCpuThreads::start(e, percpu::Fifo::default(), opts(), quantum, nap)
        }),
        (false, false) => sim::try_run(cfg, |e| percpu::PerCpuFifo::start_with(e, opts())),
    }
    .map_err(|e| e.to_string())?;
    injected(cfg, &report)?;
    if !o.json {
        let events = [("agent crash", cfg.crash_at_ns), ("agent upgrade", cfg.upgrade_at_ns)]
            .iter()
            .filter_map(|(what, at)| at.map(|t| format!(", {what} at {} ms", t / 1_000_000)))
            .collect::<String>();
        println!("ghost-shm demo: {placement}; {}, seed {}, {clock}{events}", describe(cfg), cfg.seed);
    }
    if o.json {
        println!("{}", report.to_json(o.wall));
    } else if o.wall {
        println!("{report:#}");
    } else {
        println!("{report}");
    }
    Ok(())
}

/// Two enclaves, cut along the topology (or split from `--cpus`): centralized FIFO and per-CPU FIFO.
fn two_enclaves(o: Opts) -> Res<()> {
    let cfg = o.cfg;
    let (a, b) = match o.topology.as_deref() {
        Some(root) => {
            let topo = Topology::from_sysfs(root).map_err(|e| format!("--topology {root}: {e}"))?;
            let online = *topo.online();
            let mut parts: Vec<CpuSet> = topo.partition(&online, Level::Node).collect();
            if parts.len() < 2 {
                parts = topo.partition(&online, Level::Llc).collect();
            }
            if parts.len() < 2 {
                return Err(format!("--topology {root}: a single NUMA node and LLC: nothing to cut along"));
            }
            // Two enclaves: the first group, and the rest.
            let rest = parts[1..].iter().fold(CpuSet::new(), |acc, p| acc | *p);
            (parts[0], rest)
        }
        None => {
            // The centralized enclave gives one CPU to its agent: it gets the larger part.
            let first = (cfg.cpus as usize).div_ceil(2);
            (
                CpuSet::from_cpus(0..first).map_err(|e| e.to_string())?,
                CpuSet::from_cpus(first..cfg.cpus as usize).map_err(|e| e.to_string())?,
            )
        }
    };
    if a.count() < 2 {
        return Err(format!("enclave 0 (centralized FIFO) gets CPUs {a}: it needs 2 (one for its agent)"));
    }
    let slots = cfg.queue_slots;
    // --stats: every enclave's agent prints its interval lines.
    let stats = o.stats_ns;
    let agent_cpu = a.last().unwrap_or(0) as u32;
    let calm = Config { crash_at_ns: None, upgrade_at_ns: None, seed: cfg.seed.wrapping_add(1), ..cfg.clone() };
    let first_cost = if o.cost_given { cfg.agent_cost } else { AgentCost::MEASURED_SPINNING };
    let specs = vec![
        EnclaveSpec {
            name: "centralized FIFO".into(),
            cpus: a,
            config: Config { agent_cpus: 1, agent_cost: first_cost, ..cfg.clone() },
            start: Box::new(move |e| {
                let opts = Options::default().queue_slots(slots).stats_every(stats).agent_cpu(agent_cpu);
                Ok(Box::new(centralized::CentralizedFifo::start_with(e, opts)?) as BoxedAgent<'_, '_>)
            }),
        },
        EnclaveSpec {
            name: "per-CPU FIFO".into(),
            cpus: b,
            config: calm,
            start: Box::new(move |e| {
                let opts = Options::default().queue_slots(slots).stats_every(stats);
                Ok(Box::new(percpu::PerCpuFifo::start_with(e, opts)?) as BoxedAgent<'_, '_>)
            }),
        },
    ];
    let m = sim::try_run_machine(specs, cfg.duration_ns, !o.json).map_err(|e| e.to_string())?;
    if let Some((_, first)) = m.enclaves.first() {
        injected(&cfg, first)?;
    }
    if !o.json {
        println!(
            "ghost-shm demo: 2 enclaves, {} each, seed {}, deterministic virtual time{}{}\n  enclave 0 (centralized FIFO, agent on CPU {agent_cpu}): CPUs {a}\n  enclave 1 (per-CPU FIFO): CPUs {b}",
            describe(&cfg),
            cfg.seed,
            cfg.crash_at_ns.map_or(String::new(), |t| format!(", enclave 0 agent crash at {} ms", t / 1_000_000)),
            cfg.upgrade_at_ns.map_or(String::new(), |t| format!(", enclave 0 agent upgrade at {} ms", t / 1_000_000)),
        );
    }

    if o.json {
        println!("{}", m.to_json(o.wall));
    } else if o.wall {
        println!("{m:#}");
    } else {
        println!("{m}");
    }
    Ok(())
}
