//! Transaction benches (criterion), each against a peer measured in the same run:
//!
//! - `txn/cache_line_round_trip`: two threads ping-pong one `AtomicU64` (the floor for any cross-CPU
//!   request/response through shared memory);
//! - `txn/commit_round_trip`: agent opens, fills and publishes a txn → a kernel thread claims it (greedy
//!   commit point), validates and publishes the outcome → the agent reads the outcome;
//! - `txn/group_commit/{2,8}`: one thread takes ownership, opens and publishes N txns, commits them as a sync
//!   group (kernel side) and reads the N outcomes.
//!
//! The goal is `commit_round_trip` ≤ 3 × `cache_line_round_trip`; the ratio is printed at the end.
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use ghost_shm::abi::{CommitFlags, Gtid, PAGE_SIZE};
use ghost_shm::shm::OwnedRegion;
use ghost_shm::txn::sim::SimView;
use ghost_shm::txn::{CommitPoint, CpuData};
use std::hint::spin_loop;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

#[repr(align(128))]
struct Padded(AtomicU64);

/// Total (nanoseconds, iterations) of every sample of each round-trip bench, for the ratio of the means.
static TOTALS: Mutex<[(u128, u128); 2]> = Mutex::new([(0, 0); 2]);

fn record(slot: usize, iters: u64, elapsed: Duration) {
    let mut t = TOTALS.lock().unwrap();
    t[slot].0 += elapsed.as_nanos();
    t[slot].1 += iters as u128;
}

fn cache_line_round_trip(iters: u64) -> Duration {
    let word = Arc::new(Padded(AtomicU64::new(0)));
    let peer = {
        let word = word.clone();
        thread::spawn(move || loop {
            let v = word.0.load(Ordering::Acquire);
            if v == u64::MAX {
                break;
            }
            if v % 2 == 1 {
                word.0.store(v + 1, Ordering::Release);
            } else {
                spin_loop();
            }
        })
    };
    // Warm the peer up.
    word.0.store(1, Ordering::Release);
    while word.0.load(Ordering::Acquire) != 2 {
        spin_loop();
    }
    let start = Instant::now();
    for i in 1..=iters {
        word.0.store(2 * i + 1, Ordering::Release);
        while word.0.load(Ordering::Acquire) != 2 * i + 2 {
            spin_loop();
        }
    }
    let elapsed = start.elapsed();
    word.0.store(u64::MAX, Ordering::Release);
    peer.join().unwrap();
    record(0, iters, elapsed);
    elapsed
}

fn commit_round_trip(iters: u64) -> Duration {
    let cd = Arc::new(CpuData::new(OwnedRegion::new(2 * PAGE_SIZE), 2).unwrap());
    cd.init_txn(0).unwrap();
    cd.init_txn(1).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let kernel = {
        let (cd, stop) = (cd.clone(), stop.clone());
        thread::spawn(move || {
            let view = SimView::new(2);
            while !stop.load(Ordering::Relaxed) {
                match cd.claim(1, 1, CommitPoint::Greedy) {
                    Ok(c) => {
                        let r = c.commit(&view);
                        debug_assert!(r.outcome.is_success());
                    }
                    Err(_) => spin_loop(),
                }
            }
        })
    };
    let mut txn = cd.agent(1).unwrap();
    let one = |txn: &mut ghost_shm::txn::AgentTxn<'_, OwnedRegion>| {
        let p = txn.open().unwrap().target(Gtid::NULL).agent_barrier(0).commit();
        // The library's wait: polls with a short pause in between (see `shm::POLL_BACKOFF`).
        assert!(p.wait(u32::MAX).unwrap().is_success());
    };
    one(&mut txn); // warm up
    let start = Instant::now();
    for _ in 0..iters {
        one(&mut txn);
    }
    let elapsed = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    kernel.join().unwrap();
    record(1, iters, elapsed);
    elapsed
}

fn round_trips(c: &mut Criterion) {
    let mut g = c.benchmark_group("txn");
    g.measurement_time(Duration::from_secs(3));
    g.bench_function("cache_line_round_trip", |b| b.iter_custom(cache_line_round_trip));
    g.bench_function("commit_round_trip", |b| b.iter_custom(commit_round_trip));
    g.finish();
    let [(raw_ns, raw_n), (txn_ns, txn_n)] = *TOTALS.lock().unwrap();
    if raw_n > 0 && txn_n > 0 && raw_ns > 0 {
        let (raw, txn) = (raw_ns as f64 / raw_n as f64, txn_ns as f64 / txn_n as f64);
        println!(
            "txn: commit round trip {txn:.1} ns / cache-line round trip {raw:.1} ns = {:.2}x (goal <= 3x)",
            txn / raw
        );
    }
}

fn group_commit(c: &mut Criterion) {
    let mut g = c.benchmark_group("txn/group_commit");
    for n in [2u32, 8] {
        let cd = CpuData::new(OwnedRegion::new(n as usize * PAGE_SIZE), n).unwrap();
        for cpu in 0..n {
            cd.init_txn(cpu).unwrap();
        }
        let view = SimView::new(n);
        let mut agents: Vec<_> = (0..n).map(|cpu| cd.agent(cpu).unwrap()).collect();
        let mask = if n == 64 { u64::MAX } else { (1u64 << n) - 1 };
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| {
                let mut pending = Vec::with_capacity(n as usize);
                for a in agents.iter_mut() {
                    a.try_own(0).unwrap();
                    pending.push(
                        a.open()
                            .unwrap()
                            .target(Gtid::NULL)
                            .commit_flags(CommitFlags::ELIDE_AGENT_BARRIER_INC)
                            .commit(),
                    );
                }
                let mut members = [mask];
                let r = cd.commit_group(0, &mut members, &view, |_| {}).unwrap();
                assert!(r.committed);
                for p in &pending {
                    assert!(p.poll().unwrap().unwrap().is_success());
                }
            })
        });
    }
    g.finish();
}

criterion_group!(benches, round_trips, group_commit);
criterion_main!(benches);
