//! An operation sequence applied to the real queue and to a reference model of the kernel's semantics,
//! written independently: the model tracks which slots hold unconsumed messages in an occupancy array and
//! places each message where ghOSt would (contiguously at head, or behind a NOP at slot 0, else drop).
//! Outcomes, delivered messages, head/tail and the overflow count are compared after every step.
#![no_main]
#[path = "shared.rs"]
mod shared;

use arbitrary::Arbitrary;
use ghost_shm::abi::{self, Message};
use ghost_shm::queue::{Consumer, ProduceError, Producer};
use ghost_shm::shm::{OwnedRegion, SharedMem};
use libfuzzer_sys::fuzz_target;
use shared::message;
use std::collections::VecDeque;

#[derive(Arbitrary, Debug)]
enum Op {
    Produce { kind: u8, seq: u32 },
    Batch { kinds: Vec<u8> },
    Pop,
    ReadOnly,
    Release,
    Drain,
}

struct Model {
    n: usize,
    head: u32,
    tail: u32,
    read: u32,
    occupied: Vec<bool>,
    /// (message, seqnum, first slot position (free-running), slots incl. preceding NOP)
    queue: VecDeque<(Message, u32, u32, u32)>,
    overflow: u32,
}

impl Model {
    fn produce(&mut self, m: &Message, seq: u32) -> bool {
        let need = m.wire_len().div_ceil(8);
        let hi = self.head as usize % self.n;
        let free = |occ: &Vec<bool>, a: usize, b: usize| (a..b).all(|i| !occ[i]);
        let (start, nop) = if hi + need <= self.n && free(&self.occupied, hi, hi + need) {
            (hi, 0)
        } else if need <= hi && free(&self.occupied, hi, self.n) && free(&self.occupied, 0, need) {
            // The NOP covers hi..n, the message 0..need: they must not overlap.
            (0, self.n - hi)
        } else {
            self.overflow += 1;
            return false;
        };
        // The NOP padding stays occupied until the consumer steps over it, like the message itself.
        for i in (start..start + need).chain(if nop > 0 { hi..self.n } else { 0..0 }) {
            self.occupied[i] = true;
        }
        self.queue.push_back((*m, seq, self.head, (nop + need) as u32));
        self.head = self.head.wrapping_add((nop + need) as u32);
        true
    }
}

fuzz_target!(|input: (u8, Vec<Op>)| {
    let nelems = 1u32 << (input.0 % 6 + 2); // 4..=128
    let r = OwnedRegion::new(abi::queue_mapsize(nelems));
    let p = Producer::init(&r, nelems).unwrap();
    let mut c = Consumer::attach(&r).unwrap();
    let mut m = Model {
        n: nelems as usize,
        head: 0,
        tail: 0,
        read: 0,
        occupied: vec![false; nelems as usize],
        queue: VecDeque::new(),
        overflow: 0,
    };
    // Index into m.queue of the next message the consumer will read.
    let mut next = 0usize;
    let release = |m: &mut Model, next: &mut usize| {
        for _ in 0..*next {
            let (msg, _, pos, slots) = m.queue.pop_front().unwrap();
            let need = msg.wire_len().div_ceil(8);
            let first = pos as usize % m.n;
            let range =
                if slots as usize > need { (0..need).chain(first..m.n) } else { (first..first + need).chain(0..0) };
            for i in range {
                m.occupied[i] = false;
            }
            m.tail = pos.wrapping_add(slots);
        }
        *next = 0;
    };
    for op in input.1.into_iter().take(500) {
        match op {
            Op::Produce { kind, seq } => {
                let msg = message(kind, seq);
                let ok = m.produce(&msg, seq);
                assert_eq!(p.produce(&msg, seq), if ok { Ok(()) } else { Err(ProduceError::Full) });
            }
            Op::Batch { kinds } => {
                let mut b = p.batch();
                for (i, k) in kinds.into_iter().take(16).enumerate() {
                    let msg = message(k, i as u32);
                    let ok = m.produce(&msg, i as u32);
                    assert_eq!(b.push(&msg, i as u32).is_ok(), ok);
                }
                b.publish();
            }
            Op::Pop | Op::ReadOnly | Op::Drain => {
                let mut got = Vec::new();
                match op {
                    Op::Drain => {
                        c.drain(|d| got.push(d)).unwrap();
                    }
                    _ => got.extend(c.read().unwrap()),
                }
                for d in &got {
                    let (msg, seq, pos, slots) = m.queue[next];
                    assert_eq!((d.message, d.seqnum), (msg, seq));
                    m.read = pos.wrapping_add(slots);
                    next += 1;
                }
                if got.is_empty() {
                    assert_eq!(next, m.queue.len(), "consumer saw nothing but the model has messages");
                }
                if matches!(op, Op::Pop | Op::Drain) {
                    if matches!(op, Op::Pop) {
                        c.release();
                    }
                    release(&mut m, &mut next);
                }
            }
            Op::Release => {
                c.release();
                release(&mut m, &mut next);
            }
        }
        // SAFETY: 64 and 68 are the ring's head and tail words, in bounds and aligned.
        let (head, tail) = unsafe {
            (r.load_u32(64, std::sync::atomic::Ordering::Relaxed), r.load_u32(68, std::sync::atomic::Ordering::Relaxed))
        };
        assert_eq!((head, tail), (m.head, m.tail));
        assert_eq!(c.overflow(), m.overflow);
        assert_eq!(p.overflow_count(), m.overflow);
    }
});
