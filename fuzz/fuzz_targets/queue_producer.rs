//! A producer whose `tail` is rewritten by the fuzz input between its operations (a hostile agent). It never
//! panics, never writes outside the header's ring words and the slot array, keeps `head` consistent with what
//! it reports, and never reports a message produced while the tail it validated was corrupt.
#![no_main]
use arbitrary::Arbitrary;
use ghost_shm::abi::{self, Message, PayloadCpuTick, PayloadTaskDead};
use ghost_shm::queue::{ProduceError, Producer};
use ghost_shm::shm::{RawRegion, SharedMem};
use libfuzzer_sys::fuzz_target;
use std::sync::atomic::Ordering::Relaxed;

#[derive(Arbitrary, Debug)]
enum Op {
    Produce(bool),
    SetTail(u32),
    AdvanceTail(u8),
}

fuzz_target!(|input: (u8, Vec<Op>)| {
    let nelems = 1u32 << (input.0 % 5 + 2);
    let len = abi::queue_mapsize(nelems);
    let slots_end = abi::QUEUE_SLOTS_OFFSET + 8 * nelems as usize;
    // The slack after the slot array holds a pattern the producer must never touch. A plain buffer rather than
    // an `OwnedRegion`, so that filling and checking it are one `memset`/`memcmp` each (a word loop, under
    // cargo-fuzz's comparison tracing, cost more than the producer under test).
    let mut buf = vec![0xAAAA_AAAA_AAAA_AAAAu64; len / 8];
    // SAFETY: `buf` is 8-aligned, `len` bytes long (queue_mapsize is a multiple of the page size), and only
    // accessed through `r` until `r` and `p` are dropped below.
    let r = unsafe { RawRegion::new(buf.as_mut_ptr().cast(), len) }.unwrap();
    let p = Producer::init(r, nelems).unwrap();
    let mut header = [0u32; 16];
    for (k, w) in header.iter_mut().enumerate() {
        // SAFETY: k < 16: an in-bounds, aligned header word.
        *w = unsafe { r.load_u32(4 * k, Relaxed) };
    }
    let mut head = 0u32;
    for op in input.1.into_iter().take(1000) {
        match op {
            Op::Produce(big) => {
                let m = if big {
                    Message::TaskDead(PayloadTaskDead { gtid: 1, cpu: 2, _pad: 0 })
                } else {
                    Message::CpuTick(PayloadCpuTick { cpu: 1, is_agent: 0 })
                };
                // SAFETY: 68 is the ring's tail word.
                let tail_now = unsafe { r.load_u32(68, Relaxed) };
                let res = p.produce(&m, 0);
                // SAFETY: 64 is the ring's head word.
                let new_head = unsafe { r.load_u32(64, Relaxed) };
                match res {
                    Ok(()) => {
                        let grew = new_head.wrapping_sub(head);
                        assert!(grew >= m.slots() && grew < m.slots() + nelems, "head moved by {grew}");
                        head = new_head;
                    }
                    Err(ProduceError::CorruptTail { head: h, tail }) => {
                        assert_eq!((h, tail), (head, tail_now));
                        assert!(head.wrapping_sub(tail) > nelems);
                        assert_eq!(new_head, head);
                    }
                    Err(ProduceError::Full) => assert_eq!(new_head, head),
                    Err(e) => panic!("unexpected {e:?}"),
                }
            }
            // SAFETY: 68 is the ring's tail word.
            Op::SetTail(t) => unsafe { r.store_u32(68, t, Relaxed) },
            // An honest-ish agent: advance tail by a few slots, but not past head.
            Op::AdvanceTail(k) => unsafe {
                let t = r.load_u32(68, Relaxed);
                let t2 = t.wrapping_add(k as u32 % 8);
                if head.wrapping_sub(t2) <= nelems {
                    r.store_u32(68, t2, Relaxed);
                }
            },
        }
        // The read-only header, word by word.
        for (k, &w) in header.iter().enumerate() {
            // SAFETY: k < 16, so 4·k < 64 is an in-bounds, aligned header word.
            assert_eq!(unsafe { r.load_u32(4 * k, Relaxed) }, w, "header word {k} rewritten");
        }
    }
    drop(p);
    // A stray write beyond the slot array would still be there: check the slack once, with one comparison.
    // SAFETY: the producer is gone, so nothing accesses `buf` any more; reading it as bytes is fine.
    let bytes = unsafe { std::slice::from_raw_parts(buf.as_ptr().cast::<u8>(), len) };
    assert!(bytes[slots_end..] == [0xAAu8; 4096][..len - slots_end], "write beyond the slot array");
});
