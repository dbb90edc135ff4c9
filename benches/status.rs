//! Cost of a consistent status-word snapshot against a plain 32-byte copy, measured in the same run.
//!
//! `cargo bench --bench status`: criterion timings for
//! - `status/snapshot`: [`Reader::snapshot`] of a live word (2 Acquire loads, 3 `u64` loads, an Acquire fence,
//!   2 re-loads, compare),
//! - `status/relaxed_copy`: the same 32 bytes as four relaxed `u64` atomic loads from the region (no checks),
//! - `status/plain_copy`: a volatile 32-byte copy of a `ghost_status_word` in ordinary memory,
//!
//! then a direct side-by-side measurement that prints the ratio snapshot / plain copy.

use criterion::{criterion_group, criterion_main, Criterion};
use ghost_shm::abi::{GhostStatusWord, Gtid, SwFlags};
use ghost_shm::shm::{OwnedRegion, SharedMem};
use ghost_shm::status::{region_len, Reader, Writer};
use std::hint::black_box;
use std::sync::atomic::Ordering;
use std::time::Instant;

fn setup(r: &OwnedRegion) -> u32 {
    let w = Writer::<&OwnedRegion, 1>::with_capacity(r, 1, 0, 4).unwrap();
    let _other = w.alloc().unwrap();
    let mut word = w.alloc().unwrap().init(Gtid(0x1234_5678), SwFlags::TASK_RUNNABLE);
    word.switched_in(1_000_000);
    word.set_runtime(42_000);
    word.bump_barrier_then(|_| ());
    word.index()
}

fn relaxed_copy(r: &OwnedRegion, index: u32) -> [u64; 4] {
    let base = region_len(index);
    // SAFETY: word `index` (< 4) lies inside the 4-word region; base is 8-aligned (64 + 32·index).
    unsafe { [0, 8, 16, 24].map(|f| r.load_u64(base + f, Ordering::Relaxed)) }
}

fn bench(c: &mut Criterion) {
    let r = OwnedRegion::new(region_len(4));
    let index = setup(&r);
    let rd = Reader::attach(&r).unwrap();
    let plain = rd.snapshot(index).unwrap().to_abi();

    let mut g = c.benchmark_group("status");
    g.bench_function("snapshot", |b| b.iter(|| rd.snapshot(black_box(index))));
    g.bench_function("relaxed_copy", |b| b.iter(|| relaxed_copy(&r, black_box(index))));
    // SAFETY: `plain` is a valid, aligned local.
    g.bench_function("plain_copy", |b| b.iter(|| unsafe { std::ptr::read_volatile(black_box(&plain)) }));
    g.finish();

    // Side by side, interleaved rounds, best of each (integer picoseconds per operation).
    const OPS: u32 = 2_000_000;
    fn time(mut f: impl FnMut()) -> u128 {
        let t = Instant::now();
        for _ in 0..OPS {
            f();
        }
        t.elapsed().as_nanos() * 1000 / OPS as u128
    }
    let (mut snap, mut copy) = (u128::MAX, u128::MAX);
    for _ in 0..10 {
        snap = snap.min(time(|| {
            black_box(rd.snapshot(black_box(index)).is_ok());
        }));
        copy = copy.min(time(|| {
            // SAFETY: `plain` is a valid, aligned local.
            black_box(unsafe { std::ptr::read_volatile(black_box(&plain)) });
        }));
    }
    let ratio_x100 = snap * 100 / copy.max(1);
    println!(
        "status snapshot: {snap} ps/op, plain 32-byte copy: {copy} ps/op, ratio snapshot/copy = {}.{:02}",
        ratio_x100 / 100,
        ratio_x100 % 100
    );
    let _: GhostStatusWord = plain;
}

criterion_group!(benches, bench);
criterion_main!(benches);
