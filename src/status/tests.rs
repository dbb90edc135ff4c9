//! Unit tests (also run under Miri: `cargo +nightly miri test --lib status`).

use super::*;
use crate::abi::{GhostSwInfo, Gtid, SwFlags, SW_REGION_CAPACITY};
use crate::shm::{OwnedRegion, SharedMem, SharedMemRead};
use core::sync::atomic::{AtomicU32, Ordering};
use std::vec::Vec;

/// Bookkeeping for up to 128 words: two bitmap words, so scans cross a bitmap-word boundary.
type W<'a> = Writer<&'a OwnedRegion, 2>;

fn region(capacity: u32) -> OwnedRegion {
    OwnedRegion::new(region_len(capacity))
}

fn writer(r: &OwnedRegion, capacity: u32) -> W<'_> {
    W::with_capacity(r, 7, 1, capacity).unwrap()
}

fn u32_at(r: &OwnedRegion, off: usize) -> u32 {
    // SAFETY: tests pass 4-aligned header offsets inside the region.
    unsafe { r.load_u32(off, Ordering::Relaxed) }
}

/// The region's bytes, each field read with its own width (Miri does not support mixed-size atomic accesses,
/// so `OwnedRegion::to_bytes`, which reads `u32`s, is not used on `u64` fields).
fn bytes(r: &OwnedRegion, capacity: u32) -> Vec<u8> {
    let mut out = Vec::new();
    for off in (0..HEADER_SIZE).step_by(4) {
        out.extend(u32_at(r, off).to_le_bytes());
    }
    for i in 0..capacity as usize {
        let w = HEADER_SIZE + WORD_SIZE * i;
        // SAFETY: word i < capacity is inside the region; offsets 4-aligned (u32) and 8-aligned (u64).
        unsafe {
            out.extend(r.load_u32(w, Ordering::Relaxed).to_le_bytes());
            out.extend(r.load_u32(w + 4, Ordering::Relaxed).to_le_bytes());
            for f in [8, 16, 24] {
                out.extend(r.load_u64(w + f, Ordering::Relaxed).to_le_bytes());
            }
        }
    }
    out
}

/// A hostile writer: overwrites every field of the region with `junk(offset)`, each with its own width.
fn scribble(r: &OwnedRegion, capacity: u32, junk: impl Fn(usize) -> u64) {
    for off in (0..HEADER_SIZE).step_by(4) {
        set_u32(r, off, junk(off) as u32);
    }
    for i in 0..capacity as usize {
        let w = HEADER_SIZE + WORD_SIZE * i;
        set_u32(r, w, junk(w) as u32);
        set_u32(r, w + 4, junk(w + 4) as u32);
        for f in [8, 16, 24] {
            // SAFETY: word i < capacity is inside the region; the offset is 8-aligned.
            unsafe { r.store_u64(w + f, junk(w + f), Ordering::Relaxed) };
        }
    }
}

fn set_u32(r: &OwnedRegion, off: usize, v: u32) {
    // SAFETY: tests pass 4-aligned offsets inside the region.
    unsafe { r.store_u32(off, v, Ordering::Relaxed) }
}

#[test]
fn create_writes_header_and_zeroes_words() {
    let r = region(5);
    scribble(&r, 5, |_| 0xABAB_ABAB_ABAB_ABAB);
    let w = writer(&r, 5);
    let b = bytes(&r, 5);
    let hdr: Vec<u32> = (0..6).map(|i| u32_at(&r, 4 * i)).collect();
    assert_eq!(hdr, [0, 7, 1, 64, 5, 5]);
    assert!(b[24..].iter().all(|&x| x == 0), "padding and words are zeroed");
    assert_eq!((w.id(), w.numa_node(), w.capacity(), w.available()), (7, 1, 5, 5));
    let rd = Reader::attach(&r).unwrap();
    assert_eq!((rd.id(), rd.numa_node(), rd.capacity(), rd.available()), (7, 1, 5, Ok(5)));
}

#[test]
fn create_errors() {
    let r = region(4);
    assert_eq!(W::with_capacity(&r, 0, 0, 0).unwrap_err(), CreateError::Capacity { capacity: 0, max: 128 });
    assert_eq!(W::with_capacity(&r, 0, 0, 129).unwrap_err(), CreateError::Capacity { capacity: 129, max: 128 });
    assert_eq!(W::with_capacity(&r, 0, 0, 5).unwrap_err(), CreateError::TooShort { len: 192, needed: 224 });
    // The ABI size needs the default bookkeeping and a 2 MiB mapping.
    assert!(matches!(W::new(&r, 0, 0), Err(CreateError::Capacity { .. })));
    assert_eq!(
        Writer::<&OwnedRegion>::new(&r, 0, 0).unwrap_err(),
        CreateError::TooShort { len: 192, needed: crate::abi::SW_REGION_SIZE }
    );
    assert_eq!(Writer::<&OwnedRegion>::MAX_CAPACITY, SW_REGION_CAPACITY);
    assert_eq!(Writer::<&OwnedRegion, 1>::MAX_CAPACITY, 64);
}

#[test]
fn attach_validates_header_against_mapping() {
    let r = region(4);
    let _w = writer(&r, 4);
    assert!(Reader::attach(&r).is_ok());
    let short = OwnedRegion::new(60);
    assert_eq!(Reader::attach(&short).unwrap_err(), AttachError::TooShort { len: 60 });

    set_u32(&r, 0, 1);
    assert_eq!(Reader::attach(&r).unwrap_err(), AttachError::Version { found: 1 });
    set_u32(&r, 0, 0);
    set_u32(&r, 12, 96);
    assert_eq!(Reader::attach(&r).unwrap_err(), AttachError::Start { found: 96 });
    set_u32(&r, 12, 64);
    set_u32(&r, 16, 5);
    assert_eq!(Reader::attach(&r).unwrap_err(), AttachError::Capacity { capacity: 5, len: 192 });
    set_u32(&r, 16, u32::MAX);
    assert_eq!(Reader::attach(&r).unwrap_err(), AttachError::Capacity { capacity: u32::MAX, len: 192 });
    set_u32(&r, 16, 3);
    set_u32(&r, 20, 4);
    assert_eq!(Reader::attach(&r).unwrap_err(), AttachError::Available { available: 4, capacity: 3 });
    set_u32(&r, 20, 3);
    let rd = Reader::attach(&r).unwrap();
    assert_eq!(rd.capacity(), 3);
    set_u32(&r, 20, 9);
    assert_eq!(rd.available(), Err(ReadError::Available { available: 9, capacity: 3 }));
}

#[test]
fn alloc_rotates_and_reports_full() {
    let r = region(4);
    let w = writer(&r, 4);
    let a0 = w.alloc().unwrap();
    let a1 = w.alloc().unwrap();
    assert_eq!((a0.index(), a1.index()), (0, 1));
    let (ret, _) = a0.init(Gtid(10), SwFlags::empty()).die_then(|_| ());
    w.free(7, ret.index()).unwrap();
    // The cursor moved on: word 0 is free again but the next allocations take 2 and 3 first.
    let a2 = w.alloc().unwrap();
    let a3 = w.alloc().unwrap();
    let again0 = w.alloc().unwrap();
    assert_eq!((a2.index(), a3.index(), again0.index()), (2, 3, 0));
    assert_eq!(w.available(), 0);
    assert_eq!(w.alloc().unwrap_err(), AllocError);
    assert_eq!(AllocError.errno(), ENOMEM);
    assert_eq!(u32_at(&r, 20), 0, "header available mirrors the private count");
    a1.release();
    assert_eq!((w.available(), u32_at(&r, 20)), (1, 1));
    assert_eq!(w.alloc().unwrap().index(), 1);
}

#[test]
fn alloc_scans_across_bitmap_words() {
    let r = region(100);
    let w = writer(&r, 100);
    let mut held: Vec<_> = (0..100).map(|_| w.alloc().unwrap()).collect();
    assert_eq!(held.iter().map(|a| a.index()).collect::<Vec<_>>(), (0..100).collect::<Vec<_>>());
    assert!(w.alloc().is_err());
    // Free 70 (second bitmap word) and 3 (first); the cursor is at 0 after the wrap, so 3 comes first.
    let a70 = held.remove(70);
    let a3 = held.remove(3);
    a70.release();
    a3.release();
    assert_eq!(w.alloc().unwrap().index(), 3);
    assert_eq!(w.alloc().unwrap().index(), 70);
    assert!(w.alloc().is_err());
}

#[test]
fn alloc_and_init_publish_a_full_word() {
    let r = region(2);
    let w = writer(&r, 2);
    let rd = Reader::attach(&r).unwrap();
    let a = w.alloc().unwrap();
    assert_eq!(a.info(), GhostSwInfo { id: 7, index: 0 });
    assert_eq!(rd.flags(0), Ok(SwFlags::ALLOCATED), "exactly ALLOCATED");
    assert_eq!(rd.available(), Ok(1));
    assert!(!rd.snapshot(0).unwrap().in_use());
    assert_eq!(rd.discover().count(), 0, "an uninitialised word is not discovered");
    // Life-cycle bits in `initial` are ignored.
    let word = a.init(Gtid(1234), SwFlags::TASK_RUNNABLE | SwFlags::CANFREE | SwFlags::TASK_MSG_GATED);
    let s = rd.snapshot(0).unwrap();
    assert_eq!(
        s,
        Snapshot {
            barrier: Barrier(0),
            flags: SwFlags::ALLOCATED | SwFlags::INUSE | SwFlags::TASK_RUNNABLE,
            gtid: Gtid(1234),
            switch_time: 0,
            runtime: 0,
        }
    );
    assert_eq!(word.flags(), s.flags);
    assert_eq!((word.gtid(), word.barrier(), word.index()), (Gtid(1234), Barrier(0), 0));
    assert_eq!(s.to_abi().gtid, 1234);
}

#[test]
fn flag_updates_touch_only_dynamic_bits() {
    let r = region(1);
    let w = writer(&r, 1);
    let rd = Reader::attach(&r).unwrap();
    let mut word = w.alloc().unwrap().init(Gtid(5), SwFlags::empty());
    word.update_flags(SwFlags::TASK_RUNNABLE | SwFlags::CANFREE, SwFlags::INUSE | SwFlags::ALLOCATED);
    assert_eq!(rd.flags(0).unwrap(), SwFlags::ALLOCATED | SwFlags::INUSE | SwFlags::TASK_RUNNABLE);
    word.set_flags(SwFlags::BOOST_PRIO | SwFlags::CPU_AVAIL);
    word.clear_flags(SwFlags::TASK_RUNNABLE | SwFlags::BOOST_PRIO);
    assert_eq!(rd.flags(0).unwrap(), SwFlags::ALLOCATED | SwFlags::INUSE | SwFlags::CPU_AVAIL);
    assert_eq!(word.flags(), rd.flags(0).unwrap());
    word.switched_in(1_000);
    word.set_runtime(77);
    let s = rd.snapshot(0).unwrap();
    assert!(s.on_cpu());
    assert_eq!((s.switch_time, s.runtime), (1_000, 77));
    word.switched_out();
    assert!(!rd.snapshot(0).unwrap().on_cpu());
}

#[test]
fn barrier_is_stored_before_the_message_is_produced() {
    let r = region(3);
    let w = writer(&r, 3);
    let rd = Reader::attach(&r).unwrap();
    let _other = w.alloc().unwrap();
    let mut word = w.alloc().unwrap().init(Gtid(9), SwFlags::empty());
    let i = word.index();
    for expect in 1..=3u32 {
        let seen = word.bump_barrier_then(|seq| {
            assert_eq!(seq, expect);
            rd.barrier(i).unwrap()
        });
        assert_eq!(seen, Barrier(expect), "the barrier is visible when the producer runs");
    }
    assert_eq!(word.bump_barrier(), Barrier(4));
    assert!(word.is_stale(3) && !word.is_stale(4));
    let s = rd.snapshot(i).unwrap();
    assert!(s.messages_pending(Barrier(3)));
    assert!(!s.messages_pending(Barrier(4)));
    // Wrap-around.
    word.publish_barrier(Barrier(u32::MAX));
    assert_eq!(word.bump_barrier_then(|seq| seq), 0);
    let s = rd.snapshot(i).unwrap();
    assert!(s.messages_pending(Barrier(u32::MAX)) && !s.messages_pending(Barrier(0)));
}

#[test]
fn barrier_serial_arithmetic() {
    let cases: [(u32, u32, bool); 7] = [
        (1, 0, true),
        (0, 1, false),
        (0, u32::MAX, true),
        (u32::MAX, 0, false),
        (5, 5, false),
        (0x7fff_ffff, 0, true),
        (0x8000_0000, 0, false), // exactly 2^31 apart: neither is newer
    ];
    for (a, b, newer) in cases {
        assert_eq!(Barrier(a).is_newer_than(Barrier(b)), newer, "{a} vs {b}");
        assert_eq!(Barrier(b).is_older_than(Barrier(a)), newer, "{b} older than {a}");
    }
    assert!(!Barrier(0).is_newer_than(Barrier(0x8000_0000)));
    assert_eq!(Barrier(3).distance_from(Barrier(u32::MAX)), 4);
    assert_eq!(u32::from(Barrier::from(9)), 9);
}

#[test]
fn departure_then_free() {
    let r = region(2);
    let w = writer(&r, 2);
    let rd = Reader::attach(&r).unwrap();
    let mut word = w.alloc().unwrap().init(Gtid(3), SwFlags::TASK_RUNNABLE);
    word.set_runtime(500);
    let i = word.index();
    assert_eq!(w.free(7, i), Err(FreeError::Invalid), "a live word cannot be freed");
    let (retired, seen) = word.depart_then(|seq| (seq, rd.snapshot(i).unwrap()));
    assert_eq!(retired.info(), GhostSwInfo { id: 7, index: i });
    let (seq, s) = seen;
    assert_eq!((seq, s.barrier), (1, Barrier(1)));
    assert!(s.can_free() && s.msg_gated() && s.in_use() && s.runnable());

    assert_eq!(w.free(8, i), Err(FreeError::NotFound));
    assert_eq!(w.free(7, 2), Err(FreeError::NotFound));
    assert_eq!(w.free(7, u32::MAX), Err(FreeError::NotFound));
    assert_eq!(w.free(7, 1), Err(FreeError::Invalid), "never allocated");
    assert_eq!(w.available(), 1);
    w.free_info(GhostSwInfo { id: 7, index: i }).unwrap();
    assert_eq!((w.available(), rd.available()), (2, Ok(2)));
    assert!(bytes(&r, 2)[64..96].iter().all(|&b| b == 0), "a freed word is zeroed");
    assert_eq!(w.free(7, i), Err(FreeError::Invalid), "double free");
    assert_eq!(w.reclaim(retired), Err(FreeError::Invalid), "the agent freed it already");
    assert_eq!(
        [FreeError::NotFound, FreeError::Invalid, FreeError::Already].map(FreeError::errno),
        [ENOENT, EINVAL, EALREADY]
    );
}

#[test]
fn death_retire_and_reclaim() {
    let r = region(2);
    let w = writer(&r, 2);
    let rd = Reader::attach(&r).unwrap();
    let task = w.alloc().unwrap().init(Gtid(1), SwFlags::empty());
    let agent = w.alloc().unwrap().init(Gtid(2), SwFlags::TASK_IS_AGENT);
    let (dead, seq) = task.die_then(|seq| seq);
    assert_eq!(seq, 1);
    let s = rd.snapshot(dead.index()).unwrap();
    assert!(s.can_free() && !s.msg_gated());
    let gone = agent.retire();
    let s = rd.snapshot(gone.index()).unwrap();
    assert!(s.can_free() && s.is_agent());
    assert_eq!(s.barrier, Barrier(0), "an agent's exit bumps no barrier");
    assert_eq!(w.reclaim(dead), Ok(()));
    assert_eq!(w.reclaim(gone), Ok(()));
    assert_eq!(w.available(), 2);
}

#[test]
fn discovery_yields_in_use_task_words_only() {
    let r = region(6);
    let w = writer(&r, 6);
    let rd = Reader::attach(&r).unwrap();
    let _a0 = w.alloc().unwrap(); // allocated, not initialised
    let _t1 = w.alloc().unwrap().init(Gtid(11), SwFlags::TASK_RUNNABLE);
    let _ag = w.alloc().unwrap().init(Gtid(12), SwFlags::TASK_IS_AGENT);
    let t3 = w.alloc().unwrap().init(Gtid(13), SwFlags::empty());
    let (_d3, ()) = t3.depart_then(|_| ());
    let t4 = w.alloc().unwrap().init(Gtid(14), SwFlags::empty());
    let (d4, ()) = t4.die_then(|_| ());
    w.free(7, d4.index()).unwrap();
    let found: Vec<(u32, Gtid, bool)> =
        rd.discover().map(|x| x.unwrap()).map(|(i, s)| (i, s.gtid, s.can_free())).collect();
    // A departed word is still INUSE (with CANFREE): discovery reports it and the agent frees it (§4.4).
    assert_eq!(found, [(1, Gtid(11), false), (3, Gtid(13), true)]);
    assert_eq!(rd.discover().size_hint(), (0, Some(6)));
}

#[test]
fn reads_are_bounds_checked() {
    let r = region(2);
    let _w = writer(&r, 2);
    let rd = Reader::attach(&r).unwrap();
    let oor = ReadError::OutOfRange { index: 2, capacity: 2 };
    assert_eq!(rd.snapshot(2), Err(oor));
    assert_eq!(rd.flags(2), Err(oor));
    assert_eq!(rd.barrier(2), Err(oor));
    assert!(matches!(rd.snapshot(u32::MAX), Err(ReadError::OutOfRange { .. })));
}

/// A backend whose word-0 barrier changes on every load: the snapshot can never settle.
struct Flapping {
    inner: OwnedRegion,
    loads: AtomicU32,
}

// SAFETY: forwards to `OwnedRegion` (same contract), except that one offset returns a counter instead.
unsafe impl SharedMemRead for Flapping {
    fn len(&self) -> usize {
        self.inner.len()
    }
    unsafe fn load_u32_relaxed(&self, off: usize) -> u32 {
        if off == word_offset(0) {
            return self.loads.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract, forwarded.
        unsafe { self.inner.load_u32_relaxed(off) }
    }
    unsafe fn load_u64_relaxed(&self, off: usize) -> u64 {
        // SAFETY: same contract, forwarded.
        unsafe { self.inner.load_u64_relaxed(off) }
    }
    unsafe fn read_data(&self, off: usize) -> u32 {
        // SAFETY: same contract, forwarded.
        unsafe { self.inner.read_data(off) }
    }
}

// SAFETY: forwards to `OwnedRegion` (same contract), except that one offset returns a counter instead.
unsafe impl SharedMem for Flapping {
    unsafe fn load_u32(&self, off: usize, order: Ordering) -> u32 {
        if off == word_offset(0) {
            return self.loads.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract, forwarded.
        unsafe { self.inner.load_u32(off, order) }
    }
    unsafe fn store_u32(&self, off: usize, val: u32, order: Ordering) {
        // SAFETY: same contract, forwarded.
        unsafe { self.inner.store_u32(off, val, order) }
    }
    unsafe fn compare_exchange_u32(&self, off: usize, c: u32, n: u32, s: Ordering, f: Ordering) -> Result<u32, u32> {
        // SAFETY: same contract, forwarded.
        unsafe { self.inner.compare_exchange_u32(off, c, n, s, f) }
    }
    unsafe fn fetch_add_u32(&self, off: usize, val: u32, order: Ordering) -> u32 {
        // SAFETY: same contract, forwarded.
        unsafe { self.inner.fetch_add_u32(off, val, order) }
    }
    unsafe fn load_u64(&self, off: usize, order: Ordering) -> u64 {
        // SAFETY: same contract, forwarded.
        unsafe { self.inner.load_u64(off, order) }
    }
    unsafe fn store_u64(&self, off: usize, val: u64, order: Ordering) {
        // SAFETY: same contract, forwarded.
        unsafe { self.inner.store_u64(off, val, order) }
    }
    unsafe fn write_data(&self, off: usize, val: u32) {
        // SAFETY: same contract, forwarded.
        unsafe { self.inner.write_data(off, val) }
    }
}

#[test]
fn snapshot_gives_up_on_a_word_that_never_settles() {
    let flap = Flapping { inner: region(2), loads: AtomicU32::new(0) };
    let w = Writer::<&Flapping, 1>::with_capacity(&flap, 1, 0, 2).unwrap();
    let _a = w.alloc().unwrap().init(Gtid(1), SwFlags::empty());
    let _b = w.alloc().unwrap().init(Gtid(2), SwFlags::empty());
    let rd = Reader::attach(&flap).unwrap();
    assert_eq!(rd.snapshot_with(0, 5), Err(ReadError::Unstable { index: 0 }));
    assert_eq!(flap.loads.load(Ordering::Relaxed), 10, "5 attempts, two barrier loads each");
    assert_eq!(rd.snapshot_with(0, 0), Err(ReadError::Unstable { index: 0 }), "at least one attempt");
    assert_eq!(rd.snapshot(1).unwrap().gtid, Gtid(2));
    // Discovery reports the unstable word and goes on.
    let found: Vec<_> = rd.discover().collect();
    assert_eq!(found.len(), 2);
    assert_eq!(found[0], Err(ReadError::Unstable { index: 0 }));
    assert_eq!(found[1].map(|(i, s)| (i, s.gtid)), Ok((1, Gtid(2))));
}

/// Runs `ops` against a writer, optionally scribbling over the whole region between steps (a hostile agent
/// with a writable mapping), and records every kernel-visible result.
fn kernel_trace(hostile: bool) -> Vec<i64> {
    let r = region(5);
    let w = writer(&r, 5);
    let mut out = Vec::new();
    let mess = |seed: u8| {
        if hostile {
            scribble(&r, 5, |off| (off as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ seed as u64);
        }
    };
    let mut words = Vec::new();
    for g in 0..4 {
        mess(g as u8);
        let a = w.alloc().unwrap();
        out.push(a.index() as i64);
        words.push(a.init(Gtid(100 + g), SwFlags::empty()));
    }
    mess(9);
    let mut w1 = words.remove(1);
    out.push(w1.bump_barrier_then(|s| s) as i64);
    out.push(w.free(7, w1.index()).map_or_else(|e| -e.errno() as i64, |()| 0));
    let (ret, seq) = w1.depart_then(|s| s);
    out.push(seq as i64);
    mess(10);
    for (id, index) in [(7, 1), (7, 1), (7, 0), (7, 4), (7, 5), (8, 1), (7, u32::MAX)] {
        out.push(w.free(id, index).map_or_else(|e| -e.errno() as i64, |()| 0));
        mess(index as u8);
    }
    out.push(w.reclaim(ret).map_or_else(|e| -e.errno() as i64, |()| 0));
    out.push(w.available() as i64);
    for _ in 0..3 {
        mess(3);
        out.push(w.alloc().map_or(-1, |a| a.index() as i64));
    }
    out.push(w.available() as i64);
    out
}

#[test]
fn region_contents_never_steer_the_kernel() {
    let clean = kernel_trace(false);
    assert_eq!(clean, [0, 1, 2, 3, 1, -22, 2, 0, -22, -22, -22, -2, -2, -2, -22, 2, 4, 1, -1, 0]);
    assert_eq!(kernel_trace(true), clean);
}

#[test]
fn agent_barrier_is_published_and_checked() {
    let r = region(1);
    let w = writer(&r, 1);
    let rd = Reader::attach(&r).unwrap();
    let mut agent = w.alloc().unwrap().init(Gtid(-1), SwFlags::TASK_IS_AGENT);
    let ab = AgentBarrier::new();
    assert_eq!(ab.bump_then(&mut agent, |seq| (seq, rd.barrier(0).unwrap())), (1, Barrier(1)));
    let seen = rd.barrier(0).unwrap();
    assert!(!ab.is_stale(&mut agent, seen.0));
    assert_eq!(ab.wake(), Barrier(2));
    assert_eq!(rd.barrier(0).unwrap(), Barrier(1), "a lockless wake does not write the word");
    assert!(ab.is_stale(&mut agent, seen.0), "the check re-syncs and sees the wake");
    assert_eq!(rd.barrier(0).unwrap(), Barrier(2));
    assert_eq!(ab.bump_locked(), Barrier(3));
    assert_eq!(ab.publish(&mut agent), Barrier(3));
    assert_eq!((ab.current(), agent.barrier()), (Barrier(3), Barrier(3)));
    assert!(AgentBarrier::default().current() == Barrier(0));
}

/// Concurrency smoke test with real threads: snapshots are consistent while a writer runs.
#[test]
fn concurrent_snapshots_are_consistent() {
    const STEPS: u32 = if cfg!(miri) { 30 } else { 20_000 };
    let r = std::sync::Arc::new(region(2));
    let w = std::sync::Arc::new(Writer::<_, 1>::with_capacity(r.clone(), 1, 0, 2).unwrap());
    let runtime = |b: u32| 1000 * b as u64;
    let switch = |b: u32| 7 + b as i64;
    let kernel = {
        let w = w.clone();
        std::thread::spawn(move || {
            let mut word = w.alloc().unwrap().init(Gtid(77), SwFlags::TASK_RUNNABLE);
            for k in 1..=STEPS {
                // ON CPU for period k−1, then a message (barrier k) and off CPU.
                word.switched_in(switch(k - 1));
                word.set_runtime(runtime(k));
                word.bump_barrier_then(|_| ());
                word.switched_out();
            }
            word.retire()
        })
    };
    let rd = Reader::attach(r.clone()).unwrap();
    let mut accepted = 0u32;
    let mut last = Barrier(0);
    while !kernel.is_finished() || accepted == 0 {
        let Ok(s) = rd.snapshot(0) else { continue };
        if !s.in_use() {
            continue;
        }
        accepted += 1;
        let b = s.barrier.0;
        assert!(!last.is_newer_than(s.barrier), "barrier went backwards");
        last = s.barrier;
        assert_eq!(s.gtid, Gtid(77));
        assert!(s.runtime == runtime(b) || s.runtime == runtime(b + 1), "runtime {} at {b}", s.runtime);
        if s.on_cpu() {
            // Period b, or period b − 1 between its message (barrier b) and the clear of ONCPU.
            let ok = s.switch_time == switch(b) || (b > 0 && s.switch_time == switch(b - 1));
            assert!(ok, "switch_time {} of another on-CPU period at {b}", s.switch_time);
        }
    }
    let retired = kernel.join().unwrap();
    assert!(w.reclaim(retired).is_ok());
    assert!(accepted > 0);
}
