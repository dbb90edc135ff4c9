//! The queue's two-thread comparisons as *paired, interleaved rounds*: each round runs ghost-shm and its peer
//! back to back (in alternating order) on the same fresh workload size and records their ratio; the report is
//! the median ratio over the rounds with its range.
//!
//! Why besides criterion (`benches/queue.rs`, which measures each bench in its own few-second window): on a
//! virtual machine the two threads' placement (same core's hyperthreads, two cores, time-sliced) changes
//! from second to second and moves absolute two-thread times by up to 10×, so ratios of benches measured a
//! minute apart can mean nothing. A pair measured within milliseconds of each other sees the same placement.
//!
//! `cargo bench --bench queue_paired` (`ROUNDS`, default 31; `MSGS`, default 200000 per run; `ONLY`, a substring:
//! run only the comparisons whose name contains it, e.g. `ONLY=ping-pong`).

use std::time::Duration;

#[path = "support/queue_impls.rs"]
mod impls;

struct Pair {
    name: &'static str,
    goal: &'static str,
    ghost: fn(u64) -> Duration,
    peer: fn(u64) -> Duration,
}

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn ns_per(d: Duration, n: u64) -> f64 {
    d.as_nanos() as f64 / n as f64
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing: then run one tiny round as a smoke.
    let smoke = !std::env::args().any(|a| a == "--bench");
    let rounds = if smoke { 1 } else { env("ROUNDS", 31) as usize };
    let msgs = if smoke { 2000 } else { env("MSGS", 200_000) };
    let pairs = [
        Pair {
            name: "spsc one at a time (agent drains) vs heapless::spsc",
            goal: "≥ 1.0",
            ghost: |n| impls::ghost_one(n, true),
            peer: impls::heapless,
        },
        Pair {
            name: "spsc one at a time (pop per message) vs heapless::spsc",
            goal: "",
            ghost: |n| impls::ghost_one(n, false),
            peer: impls::heapless,
        },
        Pair {
            name: "spsc batches of 16 vs heapless::spsc",
            goal: "≥ 2.0",
            ghost: impls::ghost_batch16,
            peer: impls::heapless,
        },
        Pair {
            name: "spsc batches of 16: word-pair copies vs one word per access",
            goal: "",
            ghost: impls::ghost_batch16,
            peer: |n| {
                let (p, c) = impls::ghost_pair_word_at_a_time();
                impls::ghost_batch16_in(p, c, n)
            },
        },
        Pair {
            name: "spsc one at a time (agent drains): word-pair copies vs one word per access",
            goal: "",
            ghost: |n| impls::ghost_one(n, true),
            peer: |n| {
                let (p, c) = impls::ghost_pair_word_at_a_time();
                impls::ghost_one_in(p, c, n, true)
            },
        },
        Pair {
            name: "spsc one at a time (agent drains) vs rtrb",
            goal: "",
            ghost: |n| impls::ghost_one(n, true),
            peer: impls::rtrb,
        },
        Pair { name: "spsc batches of 16 vs rtrb", goal: "", ghost: impls::ghost_batch16, peer: impls::rtrb },
        Pair {
            name: "spsc one at a time (agent drains) vs crossbeam ArrayQueue",
            goal: "",
            ghost: |n| impls::ghost_one(n, true),
            peer: impls::crossbeam_array,
        },
        Pair {
            name: "ping-pong one-way latency vs raw cache line",
            goal: "≤ 1.3 (latency)",
            ghost: |n| impls::pingpong_ghost(n, impls::GHOST_SLOTS, true),
            peer: impls::pingpong_raw,
        },
        Pair {
            name: "ping-pong one-way latency vs unchecked ring of the same ABI layout",
            goal: "",
            ghost: |n| impls::pingpong_ghost(n, impls::GHOST_SLOTS, true),
            peer: impls::pingpong_layout_floor,
        },
        Pair {
            name: "ping-pong (both sides unchecked ABI-layout ring) vs raw cache line",
            goal: "",
            ghost: impls::pingpong_layout_floor,
            peer: impls::pingpong_raw,
        },
        Pair {
            name: "ping-pong one-way latency, message in head's cache line (8-slot rings) vs raw cache line",
            goal: "",
            ghost: |n| impls::pingpong_ghost(n, 8, false),
            peer: impls::pingpong_raw,
        },
    ];
    println!("{rounds} paired rounds of {msgs} messages (ping-pong: {} round trips) per side", msgs / 10);
    println!("| comparison | left ns/msg (median) | right ns/msg (median) | ratio median [min, max] | goal |");
    println!("|---|---:|---:|---|---|");
    let only = std::env::var("ONLY").unwrap_or_default();
    for p in pairs.iter().filter(|p| p.name.contains(only.as_str())) {
        let n = if p.name.starts_with("ping-pong") { msgs / 10 } else { msgs };
        // Warm-up: page in the queues and spin up both threads once.
        (p.ghost)(n / 10 + 1);
        (p.peer)(n / 10 + 1);
        let (mut g, mut q, mut r) = (Vec::new(), Vec::new(), Vec::new());
        for round in 0..rounds {
            let (a, b) = if round % 2 == 0 {
                let a = (p.ghost)(n);
                (a, (p.peer)(n))
            } else {
                let b = (p.peer)(n);
                ((p.ghost)(n), b)
            };
            let (a, b) = (ns_per(a, n), ns_per(b, n));
            g.push(a);
            q.push(b);
            // Throughput comparisons: peer time / ghost time (> 1: ghost-shm faster). Latency: ghost / peer.
            r.push(if p.name.starts_with("ping-pong") { a / b } else { b / a });
        }
        for v in [&mut g, &mut q, &mut r] {
            v.sort_by(|x, y| x.total_cmp(y));
        }
        let med = |v: &Vec<f64>| v[v.len() / 2];
        println!(
            "| {} | {:.1} | {:.1} | {:.2} [{:.2}, {:.2}] | {} |",
            p.name,
            med(&g),
            med(&q),
            med(&r),
            r[0],
            r[r.len() - 1],
            p.goal
        );
    }
    println!("(throughput rows: right time / left time, > 1 means the left (ghost-shm) is faster; ping-pong rows: left latency / right latency)");
}
