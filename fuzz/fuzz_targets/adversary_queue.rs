//! The kernel-side queue `Producer` under a hostile agent: a schedule of kernel operations (produce, raw
//! produce, batches, each through the locked and the exclusive lock-free path, doorbell rings at arbitrary
//! offsets) interleaved, also *inside* batches, with agent stores
//! to any agent-writable word: `tail` (arbitrary or honestly advanced), every word of the writable ring header
//! (version, start, nelems, padding, `head`, `overflow`) and any slot.
//!
//! The region sits between guard bytes and is accessed by the producer only through a logging backend
//! (`adversary/common.rs`). After every step the target asserts that the producer
//! - reads nothing but `tail`, at most once per message, and never touches memory outside the header's ring
//!   words and the slot array (contract checks, guard bytes, ASan);
//! - never writes a slot the agent has not released according to the last valid `tail` it read: with `L` that
//!   tail, every published `head` satisfies `head − L ≤ nelems`, and each message (and its wrap NOP) lies in the
//!   positions between the previous and the new head;
//! - publishes `head` once per non-empty batch, with exactly the producer's count, and only after every byte
//!   of every message in it was written with the right value (header, payload; a NOP's type and length);
//! - reports a `tail` that makes `head − tail > nelems` as `CorruptTail` (never as success), a real lack of room
//!   as `Full`, each with exactly one `overflow` store of the next count, and `TooLong` without any access.
#![no_main]

#[path = "adversary/common.rs"]
mod common;

#[path = "shared.rs"]
mod shared;

use arbitrary::Arbitrary;
use common::{agent_store32, peek32, take, Ev, Guarded, Spy};
use ghost_shm::abi::{self, encode_header, MSG_NOP};
use ghost_shm::queue::{Doorbell, ProduceError, Producer};
use ghost_shm::shm::RawRegion;
use libfuzzer_sys::fuzz_target;
use shared::message;
use std::cell::RefCell;
use std::collections::HashMap;

const HEAD: usize = abi::QUEUE_RING_OFFSET;
const TAIL: usize = HEAD + 4;
const OVERFLOW: usize = HEAD + 8;
const SLOTS: usize = abi::QUEUE_SLOTS_OFFSET;

/// Whether a `tail` is valid only if the agent could have seen it: at most the *published* head (the batch's
/// start), not the producer's private head inside a batch.
///
/// Found by this target and fixed: `Producer::write` used to validate a re-read tail only against its private
/// head, so inside a batch a hostile tail in `(published head, head]` was accepted and a later push of the same
/// batch reused the slots of an earlier, unpublished message. The producer now answers such a tail with
/// `CorruptTail` (unit test `a_tail_inside_the_unpublished_batch_is_corrupt`), and this check is on.
const STRICT_TAIL: bool = true;

#[derive(Arbitrary, Debug)]
enum Agent {
    /// Any tail value.
    Tail(u32),
    /// An honest consumer: release up to `k` slots (never past the published head).
    Consume(u8),
    /// Any of the 19 words at offsets 0..76: header, head, tail, overflow.
    Header { word: u8, value: u32 },
    /// Any word of the slot array.
    Slot { word: u16, value: u32 },
}

#[derive(Arbitrary, Debug)]
enum BatchStep {
    Push { kind: u8, seq: u32 },
    Agent(Agent),
}

#[derive(Arbitrary, Debug)]
enum Step {
    /// `exclusive`: the lock-free single-producer path (`produce_mut`, `batch_mut`).
    Produce {
        kind: u8,
        seq: u32,
        exclusive: bool,
    },
    Raw {
        ty: u16,
        len: u16,
        seq: u32,
    },
    Batch {
        exclusive: bool,
        steps: Vec<BatchStep>,
    },
    Doorbell {
        off: u32,
    },
    Agent(Agent),
}

/// The words the producer must write for a message: header and payload, zero-padded to 4 bytes.
fn wire_words(ty: u16, seq: u32, payload: &[u8]) -> Vec<u32> {
    let mut b = encode_header(ty, (8 + payload.len()) as u16, seq).to_vec();
    b.extend_from_slice(payload);
    while b.len() % 4 != 0 {
        b.push(0);
    }
    b.chunks(4).map(|c| u32::from_ne_bytes([c[0], c[1], c[2], c[3]])).collect()
}

/// What the target knows of the kernel side.
struct Model {
    n: u32,
    mask: u32,
    /// The producer's private head (published or within the current batch).
    head: u32,
    /// The head the agent can have seen: the last one published.
    published: u32,
    /// The last valid tail the producer read (its cached tail).
    tail: u32,
    overflow: u32,
}

impl Model {
    fn slot_pos(&self, off: usize) -> u32 {
        assert!(off >= SLOTS && off < SLOTS + 8 * self.n as usize, "data write at {off} outside the slot array");
        ((off - SLOTS) / 8) as u32
    }

    /// `(ahead, behind)` free slots for a valid `tail`, as ghOSt computes them.
    fn space(&self, head: u32, tail: u32) -> (u32, u32) {
        let used = head.wrapping_sub(tail);
        if used == self.n {
            return (0, 0);
        }
        let (hi, ti) = (head & self.mask, tail & self.mask);
        if ti <= hi {
            (self.n - hi, ti)
        } else {
            (ti - hi, 0)
        }
    }
}

/// Checks the accesses of one message push at model head `head0` (the model is updated).
/// `written` collects the producer's data writes of the current batch (offset → value).
fn check_push(
    m: &mut Model,
    ev: &[Ev],
    res: Result<(), ProduceError>,
    words: &[u32],
    written: &mut HashMap<usize, u32>,
    placed: &mut Vec<(u32, usize, Vec<u32>)>,
) {
    let need = (words.len() as u32 * 4).div_ceil(8);
    let head0 = m.head;
    let loads: Vec<u32> = ev
        .iter()
        .filter(|e| e.reads())
        .map(|e| match *e {
            Ev::Load32(TAIL, v) => v,
            other => panic!("producer read something else than tail: {other:?}"),
        })
        .collect();
    assert!(loads.len() <= 1, "tail read {} times for one message", loads.len());
    let read = loads.first().copied();
    if let Some(t) = read {
        if head0.wrapping_sub(t) <= m.n && (!STRICT_TAIL || m.published.wrapping_sub(t) <= m.n) {
            m.tail = t;
        } else {
            assert_eq!(res, Err(ProduceError::CorruptTail { head: head0, tail: t }), "invalid tail {t} accepted");
        }
    }
    let stores: Vec<(usize, u32)> = ev
        .iter()
        .filter(|e| !e.reads())
        .filter_map(|e| match *e {
            Ev::Store32(o, v) => Some((o, v)),
            _ => None,
        })
        .collect();
    let data: Vec<(usize, u32)> = ev
        .iter()
        .filter_map(|e| match *e {
            Ev::Write(o, v) => Some((o, v)),
            _ => None,
        })
        .collect();
    assert!(
        ev.iter().all(|e| matches!(e, Ev::Load32(..) | Ev::Store32(..) | Ev::Write(..))),
        "unexpected access kind: {ev:?}"
    );
    match res {
        Ok(()) => {
            assert!(stores.is_empty(), "stores inside a push: {stores:?}");
            // Where the message went: contiguous at head, or at slot 0 behind a NOP covering the gap.
            let (ahead, _) = m.space(head0, m.tail);
            let gap = if ahead >= need { 0 } else { ahead };
            let head1 = head0.wrapping_add(gap + need);
            assert!(
                head1.wrapping_sub(m.tail) <= m.n,
                "message at {head0}..{head1} overwrites slots not released by tail {}",
                m.tail
            );
            for &(off, v) in &data {
                let rel = m.slot_pos(off).wrapping_sub(head0 & m.mask) & m.mask;
                assert!(rel < gap + need, "data write at slot {} outside {head0}..{head1}", m.slot_pos(off));
                written.insert(off, v);
            }
            if gap > 0 {
                let nop = encode_header(MSG_NOP, (gap * 8) as u16, 0);
                let off = SLOTS + 8 * (head0 & m.mask) as usize;
                assert_eq!(written.get(&off), Some(&u32::from_ne_bytes([nop[0], nop[1], nop[2], nop[3]])), "NOP");
                assert_eq!(head1.wrapping_sub(need) & m.mask, 0, "a wrapped message starts at slot 0");
            }
            let base = SLOTS + 8 * (head1.wrapping_sub(need) & m.mask) as usize;
            for (k, w) in words.iter().enumerate() {
                assert_eq!(written.get(&(base + 4 * k)), Some(w), "message word {k} not written");
            }
            placed.push((head1.wrapping_sub(need), base, words.to_vec()));
            m.head = head1;
        }
        Err(ProduceError::TooLong(len)) => {
            assert!(len > u16::MAX as usize && ev.is_empty(), "TooLong({len}) with accesses {ev:?}");
        }
        Err(e) => {
            assert!(data.is_empty(), "{e:?} after writing slots");
            assert!(read.is_some(), "{e:?} without reading tail");
            m.overflow = m.overflow.wrapping_add(1);
            assert_eq!(stores, vec![(OVERFLOW, m.overflow)], "{e:?}: overflow not counted once");
            if e == ProduceError::Full {
                let (ahead, behind) = m.space(head0, m.tail);
                assert!(ahead < need && behind < need, "Full with room: {ahead}/{behind} for {need}");
            }
        }
    }
}

/// Checks the end of a batch: one head store of the producer's head if anything was pushed, and every message
/// of the batch still intact in what the producer wrote (unless a tail the producer accepted released it).
fn check_publish(
    m: &mut Model,
    ev: &[Ev],
    start: u32,
    written: &HashMap<usize, u32>,
    placed: &[(u32, usize, Vec<u32>)],
) {
    if m.head == start {
        assert!(ev.is_empty(), "accesses by an empty batch: {ev:?}");
    } else {
        assert_eq!(ev, &[Ev::Store32(HEAD, m.head)], "publish");
    }
    for (pos, base, words) in placed {
        if m.tail.wrapping_sub(*pos) as i32 > 0 {
            assert!(!STRICT_TAIL, "a message of the batch was released before it was published");
            continue;
        }
        for (k, w) in words.iter().enumerate() {
            assert_eq!(written.get(&(base + 4 * k)), Some(w), "published message word {k} clobbered in its batch");
        }
    }
    m.published = m.head;
}

fn agent(raw: &RawRegion, m: &Model, a: &Agent) {
    let published = m.published;
    match *a {
        Agent::Tail(t) => agent_store32(raw, TAIL, t),
        Agent::Consume(k) => {
            let t = peek32(raw, TAIL);
            if published.wrapping_sub(t) <= m.n {
                agent_store32(raw, TAIL, t.wrapping_add((k as u32).min(published.wrapping_sub(t))));
            }
        }
        Agent::Header { word, value } => agent_store32(raw, 4 * (word as usize % 19), value),
        Agent::Slot { word, value } => agent_store32(raw, SLOTS + 4 * (word as usize % (2 * m.n as usize)), value),
    }
}

fuzz_target!(|input: (u8, Vec<Step>)| {
    let nelems = 1u32 << (input.0 % 7); // 1..=64
    let len = abi::queue_mapsize(nelems);
    let g = Guarded::new(len);
    let raw = g.region();
    let log = RefCell::new(Vec::new());
    {
        let mut p = Producer::init(Spy::new(raw, &log), nelems).unwrap();
        let ev = take(&log);
        assert!(ev.iter().all(|e| e.writes() && e.off() < SLOTS), "init: {ev:?}");
        let mut m = Model { n: nelems, mask: nelems - 1, head: 0, published: 0, tail: 0, overflow: 0 };
        for step in input.1.into_iter().take(256) {
            match step {
                Step::Produce { kind, seq, exclusive } => {
                    let msg = message(kind, seq);
                    let words = wire_words(msg.msg_type() as u16, seq, msg.payload_bytes());
                    let start = m.head;
                    let res = if exclusive { p.produce_mut(&msg, seq) } else { p.produce(&msg, seq) };
                    let ev = take(&log);
                    // Split off the publish (a head store after the push's own accesses).
                    let split = if res.is_ok() { ev.len() - 1 } else { ev.len() };
                    let (mut written, mut placed) = (HashMap::new(), Vec::new());
                    check_push(&mut m, &ev[..split], res, &words, &mut written, &mut placed);
                    check_publish(&mut m, &ev[split..], start, &written, &placed);
                }
                Step::Raw { ty, len, seq } => {
                    let n = if len >= 65000 { len as usize + 600 } else { len as usize % 300 };
                    let payload: Vec<u8> = (0..n).map(|i| (i as u8) ^ (seq as u8)).collect();
                    let start = m.head;
                    let res = p.produce_raw(ty, seq, &payload);
                    let ev = take(&log);
                    let split = if res.is_ok() { ev.len() - 1 } else { ev.len() };
                    let (mut written, mut placed) = (HashMap::new(), Vec::new());
                    let words = if n + 8 > u16::MAX as usize { Vec::new() } else { wire_words(ty, seq, &payload) };
                    check_push(&mut m, &ev[..split], res, &words, &mut written, &mut placed);
                    check_publish(&mut m, &ev[split..], start, &written, &placed);
                }
                Step::Batch { exclusive, steps } => {
                    let start = m.head;
                    let (mut written, mut placed) = (HashMap::new(), Vec::new());
                    let mut b = if exclusive { p.batch_mut() } else { p.batch() };
                    for s in steps.into_iter().take(32) {
                        match s {
                            BatchStep::Push { kind, seq } => {
                                let msg = message(kind, seq);
                                let words = wire_words(msg.msg_type() as u16, seq, msg.payload_bytes());
                                let res = b.push(&msg, seq);
                                let ev = take(&log);
                                check_push(&mut m, &ev, res, &words, &mut written, &mut placed);
                                assert_eq!(b.pending_slots(), m.head.wrapping_sub(start));
                            }
                            BatchStep::Agent(a) => agent(&raw, &m, &a),
                        }
                    }
                    b.publish();
                    check_publish(&mut m, &take(&log), start, &written, &placed);
                }
                Step::Doorbell { off } => {
                    let off = off as usize % (len + 64);
                    // SAFETY: the target is single-threaded, so no access of another width can race the
                    // doorbell's (the ring's pair accesses of the same bytes happen at other times).
                    match unsafe { Doorbell::new(Spy::new(raw, &log), off) } {
                        Some(d) => {
                            assert!(off % 4 == 0 && off + 4 <= len);
                            let waiting = peek32(&raw, off) == 1;
                            assert_eq!(d.ring(), waiting);
                            assert!(take(&log).iter().all(|e| e.off() == off), "doorbell touched another word");
                        }
                        None => assert!(off % 4 != 0 || off + 4 > len, "doorbell refused at {off}"),
                    }
                    assert!(take(&log).is_empty());
                }
                Step::Agent(a) => agent(&raw, &m, &a),
            }
            assert_eq!(p.overflow_count(), m.overflow);
            g.check();
        }
    }
    g.check();
});
