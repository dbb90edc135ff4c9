//! Queue benchmarks, with the peers a user would pick instead measured in the same run.
//!
//! - `spsc/*`: 40-byte payloads across two threads (one producer thread, one consumer thread), time per
//!   message. ghost-shm moves a `MSG_TASK_YIELD` (40-byte payload, 48 bytes on the wire with its header);
//!   the peers move a `[u8; 40]`.
//! - `pingpong/*`: one-way latency (round trip / 2) between two threads over two queues, against a raw
//!   cache-line ping-pong (two `AtomicU64`s on their own cache lines).
//! - `spsc_same_thread/*`: the same 40-byte messages, 32 pushes then 32 pops on one thread: per-message cost
//!   without cross-thread scheduling effects (the robust comparison on a shared machine).
//! - `mpsc/N`: N producer threads into one queue, one consumer; time per message (set
//!   `GHOST_SHM_MAX_PRODUCERS` to cap N; default: every count up to 15 that the machine has cores for + 1).
//!
//! `scripts/bench-ratios.py` turns criterion's estimates into the ratios of BENCHMARKS.md.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[path = "support/queue_impls.rs"]
mod impls;
use impls::{ghost_pair, item, msg, PEER_CAP};

fn spsc(c: &mut Criterion) {
    let mut g = c.benchmark_group("spsc");
    g.throughput(Throughput::Elements(1));
    g.bench_function("ghost_one", |b| b.iter_custom(|n| impls::ghost_one(n, true)));
    g.bench_function("ghost_one_pop", |b| b.iter_custom(|n| impls::ghost_one(n, false)));
    g.bench_function("ghost_batch16", |b| b.iter_custom(impls::ghost_batch16));
    g.bench_function("heapless", |b| b.iter_custom(impls::heapless));
    g.bench_function("rtrb", |b| b.iter_custom(impls::rtrb));
    g.bench_function("crossbeam_array", |b| b.iter_custom(impls::crossbeam_array));
    g.finish();
}

/// Per-message cost without a second thread: 32 pushes then 32 pops on one thread, so the numbers do not
/// depend on how the OS schedules two spinning threads (robust on a shared, noisy machine).
fn same_thread(c: &mut Criterion) {
    const N: u64 = 32;
    let mut g = c.benchmark_group("spsc_same_thread");
    g.throughput(Throughput::Elements(N));
    {
        let (mut p, mut cons) = ghost_pair();
        g.bench_function("ghost_one", |b| {
            b.iter(|| {
                for i in 0..N {
                    p.produce_mut(&msg(i), i as u32).unwrap();
                }
                for _ in 0..N {
                    black_box(cons.pop().unwrap());
                }
            })
        });
    }
    {
        // The shared (`Sync`) producer: every produce takes the queue's spin lock, as many CPUs would.
        let (p, mut cons) = ghost_pair();
        g.bench_function("ghost_one_locked", |b| {
            b.iter(|| {
                for i in 0..N {
                    p.produce(&msg(i), i as u32).unwrap();
                }
                for _ in 0..N {
                    black_box(cons.pop().unwrap());
                }
            })
        });
    }
    {
        let (mut p, mut cons) = ghost_pair();
        g.bench_function("ghost_batch", |b| {
            b.iter(|| {
                let mut batch = p.batch_mut();
                for i in 0..N {
                    batch.push(&msg(i), i as u32).unwrap();
                }
                batch.publish();
                cons.drain(|d| {
                    black_box(d);
                })
                .unwrap();
            })
        });
    }
    {
        let mut q: heapless::spsc::Queue<[u8; 40], PEER_CAP> = heapless::spsc::Queue::new();
        let (mut prod, mut cons) = q.split();
        g.bench_function("heapless", |b| {
            b.iter(|| {
                for i in 0..N {
                    prod.enqueue(item(i)).unwrap();
                }
                for _ in 0..N {
                    black_box(cons.dequeue());
                }
            })
        });
    }
    {
        let (mut prod, mut cons) = rtrb::RingBuffer::<[u8; 40]>::new(PEER_CAP);
        g.bench_function("rtrb", |b| {
            b.iter(|| {
                for i in 0..N {
                    prod.push(item(i)).unwrap();
                }
                for _ in 0..N {
                    black_box(cons.pop().ok());
                }
            })
        });
    }
    {
        let q = crossbeam_queue::ArrayQueue::<[u8; 40]>::new(PEER_CAP);
        g.bench_function("crossbeam_array", |b| {
            b.iter(|| {
                for i in 0..N {
                    q.push(item(i)).unwrap();
                }
                for _ in 0..N {
                    black_box(q.pop());
                }
            })
        });
    }
    g.finish();
}

fn pingpong(c: &mut Criterion) {
    let mut g = c.benchmark_group("pingpong");
    g.bench_function("raw_cacheline", |b| b.iter_custom(impls::pingpong_raw));
    g.bench_function("abi_layout_floor", |b| b.iter_custom(impls::pingpong_layout_floor));
    g.bench_function("ghost", |b| b.iter_custom(|n| impls::pingpong_ghost(n, impls::GHOST_SLOTS, true)));
    g.bench_function("ghost_pop", |b| b.iter_custom(|n| impls::pingpong_ghost(n, impls::GHOST_SLOTS, false)));
    g.bench_function("ghost_head_line", |b| b.iter_custom(|n| impls::pingpong_ghost(n, 8, false)));
    g.finish();
}

fn mpsc(c: &mut Criterion) {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let max: usize = std::env::var("GHOST_SHM_MAX_PRODUCERS").ok().and_then(|v| v.parse().ok()).unwrap_or(15);
    let mut g = c.benchmark_group("mpsc");
    g.throughput(Throughput::Elements(1));
    for producers in [1usize, 2, 4, 8, 15] {
        if producers > max || producers > cores.max(2) {
            continue;
        }
        g.bench_with_input(BenchmarkId::from_parameter(producers), &producers, |b, &np| {
            b.iter_custom(|n| {
                let (p, mut cons) = ghost_pair();
                let p = Arc::new(p);
                let per = n.div_ceil(np as u64);
                let total = per * np as u64;
                let start = Instant::now();
                let hs: Vec<_> = (0..np)
                    .map(|t| {
                        let p = p.clone();
                        std::thread::spawn(move || {
                            for i in 0..per {
                                let m = msg(i);
                                loop {
                                    let mut b = p.batch();
                                    if b.has_room(m.payload_bytes().len()).unwrap() {
                                        b.push(&m, t as u32).unwrap();
                                        break;
                                    }
                                    drop(b);
                                    std::hint::spin_loop();
                                }
                            }
                        })
                    })
                    .collect();
                let mut got = 0;
                while got < total {
                    got += cons
                        .drain(|d| {
                            black_box(d);
                        })
                        .unwrap_or(0) as u64;
                }
                let e = start.elapsed();
                for h in hs {
                    h.join().unwrap();
                }
                e.mul_f64(n as f64 / total as f64)
            })
        });
    }
    g.finish();
}

fn config() -> Criterion {
    Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3))
}

criterion_group!(name = benches; config = config(); targets = same_thread, spsc, pingpong, mpsc);
criterion_main!(benches);
