//! The agent side over arbitrary region bytes: attaching, snapshots of every word (and out-of-range ones),
//! discovery and `available` never panic; what they return agrees with the bytes.
//!
//! Input: one mode byte, then the region's bytes (the region is as long as they are, up to 64 + 32·200).
//! Mode bit 0 patches a valid version/start into the header, bit 1 clamps `capacity` to what fits, so that
//! most inputs reach the word readers; bit 2 shortens the mapping by up to 255 bytes (from the next byte).
#![no_main]
use ghost_shm::abi::SwFlags;
use ghost_shm::shm::{OwnedRegion, SharedMem};
use ghost_shm::status::{region_len, AttachError, ReadError, Reader};
use libfuzzer_sys::fuzz_target;
use std::sync::atomic::Ordering;

fn le32(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
}

fn le64(b: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(b[off..off + 8].try_into().unwrap())
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, body)) = data.split_first() else { return };
    let cut = if mode & 4 != 0 { body.first().copied().unwrap_or(0) as usize } else { 0 };
    let len = (body.len().min(region_len(200)).saturating_sub(cut)) & !3;
    let r = OwnedRegion::new(len);
    r.fill_from(body);
    if len >= 64 {
        // SAFETY: 4-aligned offsets inside the 64-byte header, which fits.
        unsafe {
            if mode & 1 != 0 {
                r.store_u32(0, 0, Ordering::Relaxed);
                r.store_u32(12, 64, Ordering::Relaxed);
            }
            if mode & 2 != 0 {
                let fit = ((len - 64) / 32) as u32;
                let cap = r.load_u32(16, Ordering::Relaxed);
                r.store_u32(16, if fit == 0 { 0 } else { cap % (fit + 1) }, Ordering::Relaxed);
            }
        }
    }
    let bytes = r.to_bytes();
    let rd = match Reader::attach(&r) {
        Ok(rd) => rd,
        Err(e) => {
            // The refusal names the first check that fails.
            match e {
                AttachError::TooShort { len: l } => assert!(l == len && len < 64),
                AttachError::Version { found } => assert!(found != 0 && found == le32(&bytes, 0)),
                AttachError::Start { found } => assert!(found != 64 && found == le32(&bytes, 12)),
                AttachError::Capacity { capacity, .. } => assert!(region_len(capacity) > len),
                AttachError::Available { available, capacity } => assert!(available > capacity),
            }
            return;
        }
    };
    let cap = rd.capacity();
    assert!(region_len(cap) <= len);
    assert_eq!((rd.id(), rd.numa_node(), cap), (le32(&bytes, 4), le32(&bytes, 8), le32(&bytes, 16)));
    assert_eq!(rd.available(), Ok(le32(&bytes, 20)));

    let mut candidates = Vec::new();
    for i in 0..cap {
        let w = region_len(i);
        // Nothing writes concurrently: every snapshot settles at once and equals the bytes.
        let s = rd.snapshot_with(i, 1).expect("a quiet word is stable");
        assert_eq!(s.barrier.0, le32(&bytes, w));
        assert_eq!(s.flags.bits(), le32(&bytes, w + 4));
        assert_eq!(s.gtid.0 as u64, le64(&bytes, w + 8));
        assert_eq!(s.switch_time as u64, le64(&bytes, w + 16));
        assert_eq!(s.runtime, le64(&bytes, w + 24));
        assert_eq!(rd.flags(i), Ok(s.flags));
        assert_eq!(rd.barrier(i), Ok(s.barrier));
        assert_eq!(s.messages_pending(s.barrier), false);
        if s.flags.contains(SwFlags::INUSE) && !s.flags.contains(SwFlags::TASK_IS_AGENT) {
            candidates.push((i, s));
        }
    }
    for bad in [cap, cap.wrapping_add(1), u32::MAX] {
        if bad >= cap {
            assert_eq!(rd.snapshot(bad), Err(ReadError::OutOfRange { index: bad, capacity: cap }));
            assert!(rd.flags(bad).is_err() && rd.barrier(bad).is_err());
        }
    }
    let found: Vec<_> = rd.discover().map(|x| x.expect("quiet words are stable")).collect();
    assert_eq!(found, candidates);
});
