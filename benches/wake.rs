//! Message delivery latency, producer → agent, in the same run as the peers' equivalent:
//!
//! - `wake/ghost_sleeping`: one-way latency (round trip / 2) of a ping-pong over two ghost-shm queues where
//!   both sides sleep in `futex_wait` on a [`FutexDoorbell`] and are woken by the producer's notify hook.
//! - `wake/futex_pingpong`: the same ping-pong with two bare futex words (the peer: what a hand-rolled
//!   futex wake-up costs).
//! - `wake/ghost_spinning`: one-way latency to an agent that spins on its queue (no sleep).
//! - `wake/raw_cacheline`: the raw cache-line ping-pong floor.

use criterion::{criterion_group, criterion_main, Criterion};
use ghost_shm::abi::{self, Message, PayloadCpuTick};
use ghost_shm::queue::{Consumer, Producer};
use ghost_shm::shm::OwnedRegion;
use ghost_shm::wake::FutexDoorbell;
use rustix::thread::futex;
use std::hint::black_box;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

type Q = Producer<Arc<OwnedRegion>, FutexDoorbell<Arc<OwnedRegion>>>;

/// A queue and its doorbell (a 64-byte region of its own, so two doorbells never share a cache line).
fn queue() -> (Q, Consumer<Arc<OwnedRegion>>, FutexDoorbell<Arc<OwnedRegion>>) {
    let r = Arc::new(OwnedRegion::new(abi::queue_mapsize(64)));
    let bell = FutexDoorbell::in_process();
    let p = Producer::init(r.clone(), 64).unwrap().with_notify(bell.clone());
    let c = Consumer::attach(r).unwrap();
    (p, c, bell)
}

const TICK: Message = Message::CpuTick(PayloadCpuTick { cpu: 0, is_agent: 0 });

fn wake(c: &mut Criterion) {
    let mut g = c.benchmark_group("wake");
    g.bench_function("ghost_sleeping", |b| {
        b.iter_custom(|n| {
            let (pa, mut ca, wa) = queue();
            let (pb, mut cb, wb) = queue();
            let t = std::thread::spawn(move || {
                for i in 0..n {
                    wa.wait_for(&mut ca, None).unwrap();
                    black_box(ca.pop().unwrap());
                    pb.produce(&TICK, i as u32).unwrap();
                }
            });
            let start = Instant::now();
            for i in 0..n {
                pa.produce(&TICK, i as u32).unwrap();
                wb.wait_for(&mut cb, None).unwrap();
                black_box(cb.pop().unwrap());
            }
            let e = start.elapsed();
            t.join().unwrap();
            e / 2
        })
    });
    g.bench_function("futex_pingpong", |b| {
        b.iter_custom(|n| {
            let words = Arc::new([AtomicU32::new(0), AtomicU32::new(0)]);
            let w2 = words.clone();
            let wait = |w: &AtomicU32, want: u32| loop {
                let v = w.load(Ordering::Acquire);
                if v == want {
                    return;
                }
                let _ = futex::wait(w, futex::Flags::PRIVATE, v, None);
            };
            let t = std::thread::spawn(move || {
                for i in 1..=n as u32 {
                    wait(&w2[0], i);
                    w2[1].store(i, Ordering::Release);
                    let _ = futex::wake(&w2[1], futex::Flags::PRIVATE, 1);
                }
            });
            let start = Instant::now();
            for i in 1..=n as u32 {
                words[0].store(i, Ordering::Release);
                let _ = futex::wake(&words[0], futex::Flags::PRIVATE, 1);
                wait(&words[1], i);
            }
            let e = start.elapsed();
            t.join().unwrap();
            e / 2
        })
    });
    g.bench_function("ghost_spinning", |b| {
        b.iter_custom(|n| {
            let (pa, mut ca, _) = queue();
            let (pb, mut cb, _) = queue();
            let t = std::thread::spawn(move || {
                for i in 0..n {
                    while !ca.has_pending().unwrap() {
                        std::hint::spin_loop();
                    }
                    black_box(ca.pop().unwrap());
                    pb.produce(&TICK, i as u32).unwrap();
                }
            });
            let start = Instant::now();
            for i in 0..n {
                pa.produce(&TICK, i as u32).unwrap();
                while !cb.has_pending().unwrap() {
                    std::hint::spin_loop();
                }
                black_box(cb.pop().unwrap());
            }
            let e = start.elapsed();
            t.join().unwrap();
            e / 2
        })
    });
    g.bench_function("raw_cacheline", |b| {
        b.iter_custom(|n| {
            #[repr(align(128))]
            struct Line(AtomicU64);
            let lines = Arc::new([Line(AtomicU64::new(0)), Line(AtomicU64::new(0))]);
            let l2 = lines.clone();
            let t = std::thread::spawn(move || {
                for i in 1..=n {
                    while l2[0].0.load(Ordering::Acquire) != i {
                        std::hint::spin_loop();
                    }
                    l2[1].0.store(i, Ordering::Release);
                }
            });
            let start = Instant::now();
            for i in 1..=n {
                lines[0].0.store(i, Ordering::Release);
                while lines[1].0.load(Ordering::Acquire) != i {
                    std::hint::spin_loop();
                }
            }
            let e = start.elapsed();
            t.join().unwrap();
            e / 2
        })
    });
    g.finish();
}

fn config() -> Criterion {
    Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3))
}

criterion_group!(name = benches; config = config(); targets = wake);
criterion_main!(benches);
