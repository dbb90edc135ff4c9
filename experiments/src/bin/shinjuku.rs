//! The ghOSt paper's Shinjuku result (SOSP '21), reproduced on the simulated kernel: FIFO, round robin
//! and a Shinjuku-style preemptive policy, all three centralized on the agent framework, on the dispersive
//! RocksDB-like workload (99.5 % requests of 4 µs, 0.5 % of 10 ms, open-loop Poisson arrivals) at offered
//! loads from 10 % to 90 % of 8 worker CPUs, with the agent's measured costs charged in virtual time. The
//! metric is the response time (arrival → exit) of the short requests, p99 and p99.9.
//!
//! `cargo run --release -p ghost-shm-experiments --bin shinjuku [-- OUT_DIR]` writes `shinjuku.csv`,
//! `shinjuku.svg` (the plot) and `shinjuku.md` (the table in BENCHMARKS.md) into OUT_DIR (default
//! `experiments/`). Deterministic: the same seed gives the same numbers.

#[path = "../../../examples/fifo_centralized.rs"]
mod fifo;
#[path = "../../../examples/policy_round_robin.rs"]
mod round_robin;
#[path = "../../../examples/policy_shinjuku.rs"]
mod shinjuku;

use ghost_shm::framework::{Centralized, Options};
use ghost_shm::sim::{self, AgentCost, Config, Report, Workload};
use plotters::prelude::*;
use std::fmt::Write as _;
use std::path::PathBuf;

/// Worker CPUs (plus one for the global agent).
const WORKERS: u32 = 8;
/// Requests per run.
const TASKS: u32 = 40_000;
/// The agent looks at the running requests this often (ghOSt's global agent spins; the simulator ticks).
const TICK_NS: u64 = 10_000;
/// Shinjuku's preemption slice.
const SHINJUKU_SLICE_NS: u64 = 30_000;
/// Round robin's time slice.
const RR_SLICE_NS: u64 = 1_000_000;
/// A request is "short" below this CPU time (they are 4 µs; long ones 10 ms).
const SHORT_NS: u64 = 1_000_000;

#[derive(Clone, Copy)]
enum Policy {
    Fifo,
    RoundRobin,
    Shinjuku,
}

impl Policy {
    fn name(self) -> &'static str {
        match self {
            Policy::Fifo => "FIFO",
            Policy::RoundRobin => "round robin (1 ms)",
            Policy::Shinjuku => "Shinjuku (30 µs)",
        }
    }
}

struct Point {
    load: u32,
    short_p99: u64,
    short_p999: u64,
    long_p99: u64,
    achieved_permille: u64,
    preemptions: u64,
    agent_busy_permille: u64,
}

fn run(p: Policy, load_pct: u32, seed: u64) -> Report {
    let cfg = Config {
        cpus: WORKERS + 1,
        agent_cpus: 1,
        tasks: TASKS,
        workload: Workload { load_permille: load_pct * 10, ..Workload::DISPERSIVE },
        seed,
        tick_ns: Some(TICK_NS),
        agent_cost: AgentCost::MEASURED_SPINNING,
        ..Config::default()
    };
    let r = match p {
        Policy::Fifo => sim::try_run(&cfg, |e| Centralized::start(e, fifo::Fifo::default(), Options::default())),
        Policy::RoundRobin => {
            sim::try_run(&cfg, |e| Centralized::start(e, round_robin::RoundRobin::new(RR_SLICE_NS), Options::default()))
        }
        Policy::Shinjuku => sim::try_run(&cfg, |e| {
            Centralized::start(e, shinjuku::Shinjuku::new(SHINJUKU_SLICE_NS), Options::default())
        }),
    };
    r.unwrap_or_else(|e| {
        eprintln!("shinjuku: invalid configuration: {e}");
        std::process::exit(2)
    })
}

fn permille(sorted: &[u64], p: u64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() as u64 - 1) * p / 1000) as usize]
}

fn point(r: &Report, load: u32) -> Point {
    let (mut short, mut long): (Vec<u64>, Vec<u64>) = (Vec::new(), Vec::new());
    for &(cpu, resp) in &r.responses {
        if cpu < SHORT_NS {
            short.push(resp)
        } else {
            long.push(resp)
        }
    }
    short.sort_unstable();
    long.sort_unstable();
    let agent = (r.agent_busy_ns * 1000).checked_div(r.enclave_ns).unwrap_or(0);
    Point {
        load,
        short_p99: permille(&short, 990),
        short_p999: permille(&short, 999),
        long_p99: permille(&long, 990),
        achieved_permille: r.achieved_load_permille(),
        preemptions: r.counter("preemptions"),
        agent_busy_permille: agent,
    }
}

fn main() {
    let out = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "experiments".into()));
    if !out.is_dir() {
        eprintln!("shinjuku: {}: not a directory", out.display());
        std::process::exit(2);
    }
    let policies = [Policy::Fifo, Policy::RoundRobin, Policy::Shinjuku];
    let loads: Vec<u32> = (1..=9).map(|i| i * 10).collect();
    let mut results: Vec<(Policy, Vec<Point>)> = Vec::new();
    for p in policies {
        let mut pts = Vec::new();
        for &l in &loads {
            let r = run(p, l, 1);
            if r.tasks_completed != r.tasks_arrived || r.invariant_violations != 0 || r.seqnum_violations != 0 {
                eprintln!(
                    "shinjuku: {} at {l} %: an unclean run ({} of {} done)",
                    p.name(),
                    r.tasks_completed,
                    r.tasks_arrived
                );
                std::process::exit(1);
            }
            let pt = point(&r, l);
            eprintln!(
                "{:<20} load {l:>2} %  short p99 {:>9.1} µs  p99.9 {:>9.1} µs  (wall {:.1} s)",
                p.name(),
                pt.short_p99 as f64 / 1e3,
                pt.short_p999 as f64 / 1e3,
                r.wall_ns as f64 / 1e9
            );
            pts.push(pt);
        }
        results.push((p, pts));
    }
    let mut csv = String::from("policy,offered_load_pct,achieved_load_permille,short_p99_ns,short_p999_ns,long_p99_ns,preemptions,agent_busy_permille\n");
    let mut md = String::new();
    let _ = writeln!(md, "| offered load | {} |", policies.map(|p| format!("{} p99 / p99.9", p.name())).join(" | "));
    let _ = writeln!(md, "|---|{}", "---|".repeat(policies.len()));
    for (i, &l) in loads.iter().enumerate() {
        let cells: Vec<String> =
            results.iter().map(|(_, pts)| format!("{} / {}", us(pts[i].short_p99), us(pts[i].short_p999))).collect();
        let _ = writeln!(md, "| {l} % | {} |", cells.join(" | "));
    }
    for (p, pts) in &results {
        for pt in pts {
            let _ = writeln!(
                csv,
                "{},{},{},{},{},{},{},{}",
                p.name(),
                pt.load,
                pt.achieved_permille,
                pt.short_p99,
                pt.short_p999,
                pt.long_p99,
                pt.preemptions,
                pt.agent_busy_permille
            );
        }
    }
    let write = |name: &str, text: &str| {
        let path = out.join(name);
        std::fs::write(&path, text).unwrap_or_else(|e| {
            eprintln!("shinjuku: {}: {e}", path.display());
            std::process::exit(1)
        })
    };
    write("shinjuku.csv", &csv);
    write("shinjuku.md", &md);
    if let Err(e) = plot(&out.join("shinjuku.svg"), &results) {
        eprintln!("shinjuku: plot: {e}");
        std::process::exit(1);
    }
    print!("{md}");
}

fn us(ns: u64) -> String {
    if ns >= 1_000_000 {
        format!("{:.1} ms", ns as f64 / 1e6)
    } else {
        format!("{:.1} µs", ns as f64 / 1e3)
    }
}

fn plot(path: &std::path::Path, results: &[(Policy, Vec<Point>)]) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let max = results.iter().flat_map(|(_, p)| p.iter().map(|p| p.short_p999)).max().unwrap_or(1).max(10_000);
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Dispersive workload (99.5 % × 4 µs, 0.5 % × 10 ms), 8 worker CPUs: short-request response time",
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(5f64..95f64, (1f64..(max as f64 / 1e3) * 2.0).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("offered load (% of the worker CPUs)")
        .y_desc("response time (µs, log scale)")
        .draw()?;
    let colors = [RED, BLUE, RGBColor(0, 140, 0)];
    for ((p, pts), color) in results.iter().zip(colors) {
        for (metric, dashed) in [("p99", false), ("p99.9", true)] {
            let data: Vec<(f64, f64)> = pts
                .iter()
                .map(|pt| (pt.load as f64, (if dashed { pt.short_p999 } else { pt.short_p99 }).max(1) as f64 / 1e3))
                .collect();
            let style = ShapeStyle { color: color.to_rgba(), filled: false, stroke_width: if dashed { 1 } else { 3 } };
            chart
                .draw_series(LineSeries::new(data.clone(), style))?
                .label(format!("{} {metric}", p.name()))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
            chart.draw_series(data.iter().map(|&(x, y)| Circle::new((x, y), 3, style)))?;
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}
