//! Status words at the ABI size, byte layout, and a multi-threaded stress run of writer against readers.
#![cfg(not(loom))]
#![cfg_attr(miri, allow(unused_imports))] // used only by the test that is not built under Miri

use ghost_shm::abi::{GhostStatusWord, GhostSwRegionHeader, Gtid, SwFlags, SW_REGION_CAPACITY, SW_REGION_SIZE};
use ghost_shm::shm::OwnedRegion;
use ghost_shm::status::{region_len, Barrier, Reader, Writer};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use zerocopy::{FromBytes, IntoBytes};

#[cfg(not(miri))] // 65534 allocations over a 2 MiB region: over 10 minutes under Miri
#[test]
fn abi_region_fills_and_empties() {
    let r = OwnedRegion::new(SW_REGION_SIZE);
    let w: Writer<&OwnedRegion> = Writer::new(&r, 3, 1).unwrap();
    let hdr = GhostSwRegionHeader::read_from_prefix(&r.to_bytes()).unwrap().0;
    assert_eq!(
        (hdr.version, hdr.id, hdr.numa_node, hdr.start, hdr.capacity, hdr.available),
        (0, 3, 1, 64, 65534, 65534)
    );
    let rd = Reader::attach(&r).unwrap();
    assert_eq!(rd.capacity(), SW_REGION_CAPACITY);

    let all: Vec<_> = (0..SW_REGION_CAPACITY).map(|_| w.alloc().unwrap()).collect();
    assert!(all.iter().enumerate().all(|(i, a)| a.index() == i as u32));
    assert!(w.alloc().is_err());
    assert_eq!((w.available(), rd.available()), (0, Ok(0)));

    // The last word ends exactly at the end of the 2 MiB mapping.
    let last = all.into_iter().last().unwrap().init(Gtid(99), SwFlags::TASK_RUNNABLE);
    assert_eq!(last.index(), 65533);
    assert_eq!(rd.snapshot(65533).unwrap().gtid, Gtid(99));
    let (retired, _) = last.die_then(|_| ());
    w.free(3, retired.index()).unwrap();
    assert_eq!(w.alloc().unwrap().index(), 65533);
}

#[test]
fn words_are_byte_compatible() {
    let r = OwnedRegion::new(region_len(3));
    let w: Writer<&OwnedRegion, 1> = Writer::with_capacity(&r, 5, 0, 3).unwrap();
    let _a = w.alloc().unwrap();
    let mut word = w.alloc().unwrap().init(Gtid(0x0123_4567_89ab), SwFlags::TASK_RUNNABLE);
    word.switched_in(-5);
    word.set_runtime(0xfeed);
    word.bump_barrier_then(|_| ());
    let expect = GhostStatusWord {
        barrier: 1,
        flags: (SwFlags::ALLOCATED | SwFlags::INUSE | SwFlags::TASK_RUNNABLE | SwFlags::TASK_ONCPU).bits(),
        gtid: 0x0123_4567_89ab,
        switch_time: -5,
        runtime: 0xfeed,
    };
    let bytes = r.to_bytes();
    assert_eq!(&bytes[96..128], expect.as_bytes());
    assert_eq!(&bytes[68..72], &4u32.to_le_bytes()[..], "word 0: flags exactly ALLOCATED");
    assert_eq!(&bytes[60..64], &[0; 4][..]);
    assert_eq!(Reader::attach(&r).unwrap().snapshot(1).unwrap().to_abi(), expect);
}

/// Several kernel threads (one per word) against readers taking snapshots and discovery scans.
#[test]
fn stress_writers_against_readers() {
    const WORDS: u32 = 4;
    const STEPS: u32 = if cfg!(miri) { 30 } else { 20_000 };
    let r = Arc::new(OwnedRegion::new(region_len(WORDS)));
    let w = Arc::new(Writer::<_, 1>::with_capacity(r.clone(), 1, 0, WORDS).unwrap());
    let done = Arc::new(AtomicBool::new(false));
    let kernels: Vec<_> = (0..WORDS)
        .map(|t| {
            let w = w.clone();
            std::thread::spawn(move || {
                let mut word = w.alloc().unwrap().init(Gtid(1000 + t as i64), SwFlags::TASK_RUNNABLE);
                for k in 1..=STEPS {
                    word.switched_in(k as i64 - 1);
                    word.set_runtime(10 * k as u64);
                    word.bump_barrier_then(|_| ());
                    word.switched_out();
                }
                word.retire()
            })
        })
        .collect();
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (r, done) = (r.clone(), done.clone());
            std::thread::spawn(move || {
                let rd = Reader::attach(r).unwrap();
                let mut last = [Barrier(0); WORDS as usize];
                let mut seen = 0u64;
                while !done.load(Ordering::Relaxed) {
                    for found in rd.discover() {
                        let Ok((i, s)) = found else { continue };
                        let b = s.barrier.0 as u64;
                        assert!((1000..1000 + WORDS as i64).contains(&s.gtid.0), "{s:?}");
                        assert!(s.runtime == 10 * b || s.runtime == 10 * (b + 1), "{s:?}");
                        if s.on_cpu() {
                            assert!(s.switch_time as u64 == b || s.switch_time as u64 + 1 == b, "{s:?}");
                        }
                        assert!(!last[i as usize].is_newer_than(s.barrier), "barrier went backwards");
                        last[i as usize] = s.barrier;
                        seen += 1;
                    }
                }
                seen
            })
        })
        .collect();
    let retired: Vec<_> = kernels.into_iter().map(|k| k.join().unwrap()).collect();
    done.store(true, Ordering::Relaxed);
    let seen: u64 = readers.into_iter().map(|r| r.join().unwrap()).sum();
    assert!(seen > 0);
    for ret in retired {
        w.reclaim(ret).unwrap();
    }
    assert_eq!(w.available(), WORDS);
}
