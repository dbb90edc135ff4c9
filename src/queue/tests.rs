use super::*;
use crate::abi::*;
use crate::shm::{OwnedRegion, SharedMemRead};
use std::vec::Vec;

fn region(nelems: u32) -> OwnedRegion {
    OwnedRegion::new(queue_mapsize(nelems))
}

/// Stores a control word, as a hostile agent or kernel would (bounds-checked, test only).
fn poke(r: &OwnedRegion, off: usize, v: u32) {
    assert!(off % 4 == 0 && off + 4 <= r.len());
    // SAFETY: checked just above: 4-aligned and in bounds.
    unsafe { r.store_u32(off, v, core::sync::atomic::Ordering::Relaxed) }
}

/// Writes a data word (bounds-checked, test only).
fn poke_data(r: &OwnedRegion, off: usize, v: u32) {
    assert!(off % 4 == 0 && off + 4 <= r.len());
    // SAFETY: checked just above: 4-aligned and in bounds.
    unsafe { r.write_data(off, v) }
}

fn tick(cpu: i32) -> Message {
    Message::CpuTick(PayloadCpuTick { cpu, is_agent: 0 })
}

fn dead(gtid: u64, cpu: i32) -> Message {
    Message::TaskDead(PayloadTaskDead { gtid, cpu, _pad: 0 })
}

/// A small ring after a known sequence with a wrap (NOP) and an overflow equals bytes written out by hand
/// from the ABI tables (§1.2–1.5, §3.3).
#[test]
fn golden_bytes_after_wrap_and_overflow() {
    let r = region(8);
    let p = Producer::init(&r, 8).unwrap();
    let mut c = Consumer::attach(&r).unwrap();
    let wake = Message::TaskWakeup(PayloadTaskWakeup {
        gtid: 0x0102_0304_0506_0708,
        agent_data: 0,
        deferrable: 1,
        _pad: [0; 3],
        last_ran_cpu: 5,
        wake_up_cpu: 6,
        waker_cpu: 7,
    });
    p.produce(&wake, 1).unwrap(); // 40 bytes = 5 slots: 0..=4, head 5
    assert_eq!(c.pop().unwrap().unwrap().message, wake); // tail 5
    p.produce(&tick(1), 2).unwrap(); // 16 bytes = 2 slots: 5, 6; head 7
    p.produce(&dead(0x1122_3344_5566_7788, 2), 3).unwrap(); // 3 slots; 1 left before the end: NOP at 7, msg at 0..=2
    let new = Message::TaskNew(PayloadTaskNew::default()); // 7 slots; ahead = 5 - 3 = 2: full
    assert_eq!(p.produce(&new, 4), Err(ProduceError::Full));

    let mut want = std::vec![0u8; 4096];
    let put = |w: &mut Vec<u8>, off: usize, b: &[u8]| w[off..off + b.len()].copy_from_slice(b);
    put(&mut want, 0, &[0, 0, 0, 0, 64, 0, 0, 0, 8, 0, 0, 0]); // version 0, start 64, nelems 8
    put(&mut want, 64, &[11, 0, 0, 0, 5, 0, 0, 0, 1, 0, 0, 0]); // head 11, tail 5, overflow 1
    let slot = |i: usize| 76 + 8 * i;
    // slot 0: TASK_DEAD header {type 64, length 24, seqnum 3}; slots 1–2: gtid, cpu 2, 4 bytes padding.
    put(&mut want, slot(0), &[64, 0, 24, 0, 3, 0, 0, 0]);
    put(&mut want, slot(1), &[0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11, 2, 0, 0, 0, 0, 0, 0, 0]);
    // slots 3–4: left over from TASK_WAKEUP's payload bytes 16..32: deferrable 1, pad, cpus 5, 6, 7.
    put(&mut want, slot(3), &[1, 0, 0, 0, 5, 0, 0, 0, 6, 0, 0, 0, 7, 0, 0, 0]);
    // slot 5: CPU_TICK header {type 128, length 16, seqnum 2}; slot 6: cpu 1, is_agent 0.
    put(&mut want, slot(5), &[128, 0, 16, 0, 2, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]);
    // slot 7: NOP {type 0, length 8}, seqnum not written (stale: still 0).
    put(&mut want, slot(7), &[0, 0, 8, 0, 0, 0, 0, 0]);
    assert_eq!(r.to_bytes(), want);

    // And the consumer sees exactly the two messages, skipping the NOP, and the overflow.
    let mut got = Vec::new();
    c.drain(|m| got.push((m.seqnum, m.message))).unwrap();
    assert_eq!(got, [(2, tick(1)), (3, dead(0x1122_3344_5566_7788, 2))]);
    assert_eq!(c.new_overflows(), 1);
    assert_eq!(c.new_overflows(), 0);
}

#[test]
fn fills_exactly_then_overflows_then_recovers() {
    let r = region(4);
    let p = Producer::init(&r, 4).unwrap();
    let mut c = Consumer::attach(&r).unwrap();
    p.produce(&tick(0), 0).unwrap();
    p.produce(&tick(1), 1).unwrap(); // 4 slots used: full
    assert_eq!(p.produce(&tick(2), 2), Err(ProduceError::Full));
    assert_eq!(p.overflow_count(), 1);
    assert_eq!(c.pop().unwrap().unwrap().seqnum, 0);
    p.produce(&tick(3), 3).unwrap();
    let mut seq = Vec::new();
    c.drain(|m| seq.push(m.seqnum)).unwrap();
    assert_eq!(seq, [1, 3]);
    assert_eq!(c.new_overflows(), 1);
}

#[test]
fn batch_publishes_once_and_notifies_once() {
    use core::cell::Cell;
    struct Count(Cell<u32>);
    impl Notify for Count {
        fn notify(&self) {
            self.0.set(self.0.get() + 1);
        }
    }
    let r = region(16);
    let p = Producer::init(&r, 16).unwrap().with_notify(Count(Cell::new(0)));
    let mut c = Consumer::attach(&r).unwrap();
    {
        let mut b = p.batch();
        b.push(&tick(0), 1).unwrap();
        b.push(&tick(1), 2).unwrap();
        assert_eq!(b.pending_slots(), 4);
        // Not visible before the publish.
        assert!(!c.has_pending().unwrap());
        b.publish();
    }
    assert_eq!(p.notifier().0.get(), 1);
    assert_eq!(c.drain(|_| ()).unwrap(), 2);
    // An empty batch neither publishes nor notifies.
    p.batch().publish();
    assert_eq!(p.notifier().0.get(), 1);
}

#[test]
fn hostile_tail_is_reported_and_nothing_is_overwritten() {
    let r = region(4);
    let p = Producer::init(&r, 4).unwrap();
    p.produce(&tick(0), 0).unwrap();
    p.produce(&tick(1), 1).unwrap(); // full: the next produce must read tail
    let before = r.to_bytes();
    for bad_tail in [5u32, u32::MAX - 10, 100] {
        poke(&r, TAIL, bad_tail);
        assert_eq!(p.produce(&tick(2), 2), Err(ProduceError::CorruptTail { head: 4, tail: bad_tail }));
    }
    let after = r.to_bytes();
    // Only tail (written by us) and overflow (3 drops) changed.
    let mut expect = before.clone();
    expect[TAIL..TAIL + 4].copy_from_slice(&100u32.to_le_bytes());
    expect[OVERFLOW..OVERFLOW + 4].copy_from_slice(&3u32.to_le_bytes());
    assert_eq!(after, expect);
}

#[test]
fn hostile_head_and_lengths_are_typed_errors() {
    let r = region(8);
    let p = Producer::init(&r, 8).unwrap();
    let mut c = Consumer::attach(&r).unwrap();
    poke(&r, HEAD, 9);
    assert_eq!(c.read(), Err(ConsumeError::CorruptHead { head: 9, tail: 0 }));
    // length 0 (would loop forever if trusted)
    poke(&r, HEAD, 2);
    poke_data(&r, slot_off(0), u32::from_ne_bytes([128, 0, 0, 0]));
    assert_eq!(c.read(), Err(ConsumeError::BadLength { at: 0, ty: 128, length: 0 }));
    // longer than published
    poke_data(&r, slot_off(0), u32::from_ne_bytes([128, 0, 24, 0]));
    assert_eq!(c.read(), Err(ConsumeError::BadLength { at: 0, ty: 128, length: 24 }));
    // crossing the end of the array
    poke(&r, HEAD, 8);
    poke_data(&r, slot_off(0), u32::from_ne_bytes([128, 0, 255, 255]));
    assert!(matches!(c.read(), Err(ConsumeError::BadLength { length: 65535, .. })));
    // Unknown type, well framed: reported, stepped over, and reading continues.
    poke_data(&r, slot_off(0), u32::from_ne_bytes([99, 0, 16, 0]));
    poke_data(&r, slot_off(2), u32::from_ne_bytes([128, 0, 16, 0]));
    poke(&r, HEAD, 4);
    assert!(matches!(c.read(), Err(ConsumeError::Undecodable { error: DecodeError::UnknownType(99), .. })));
    assert_eq!(c.read().unwrap().unwrap().message.msg_type(), MsgType::CpuTick);
    let _ = p;
}

#[test]
fn attach_validates_the_header() {
    let r = region(8);
    assert_eq!(Consumer::attach(&r).err(), Some(QueueError::BadStart(0)));
    Producer::init(&r, 8).unwrap();
    poke(&r, 0, 1);
    assert_eq!(Consumer::attach(&r).err(), Some(QueueError::BadVersion(1)));
    poke(&r, 0, 0);
    poke(&r, 4, 60);
    assert_eq!(Consumer::attach(&r).err(), Some(QueueError::BadStart(60)));
    poke(&r, 4, 64);
    poke(&r, 8, 1024);
    assert_eq!(
        Consumer::attach(&r).err(),
        Some(QueueError::LengthMismatch { expected: queue_mapsize(1024), actual: queue_mapsize(8) })
    );
    assert_eq!(
        Consumer::attach(OwnedRegion::new(8)).err(),
        Some(QueueError::LengthMismatch { expected: 4096, actual: 8 })
    );
    assert_eq!(Producer::init(&r, 3).err(), Some(QueueError::BadNelems(3)));
}

#[test]
fn a_new_consumer_resumes_at_the_released_tail() {
    let r = region(8);
    let p = Producer::init(&r, 8).unwrap();
    for s in 0..3 {
        p.produce(&tick(s), s as u32).unwrap();
    }
    let mut c = Consumer::attach(&r).unwrap();
    assert_eq!(c.pop().unwrap().unwrap().seqnum, 0);
    assert_eq!(c.read().unwrap().unwrap().seqnum, 1); // read, not released
    let _ = c; // the agent goes away without releasing what it read
    let mut c2 = Consumer::attach(&r).unwrap();
    let mut seq = Vec::new();
    c2.drain(|m| seq.push(m.seqnum)).unwrap();
    assert_eq!(seq, [1, 2]);
}

#[test]
fn raw_view_copies_payload() {
    let r = region(8);
    let p = Producer::init(&r, 8).unwrap();
    p.produce_raw(200, 77, &[1, 2, 3, 4, 5, 6]).unwrap();
    let mut c = Consumer::attach(&r).unwrap();
    let m = c.read_raw().unwrap().unwrap();
    assert_eq!((m.msg_type(), m.length(), m.seqnum()), (200, 14, 77));
    let mut out = [0u8; 8];
    assert_eq!(m.copy_payload(&mut out), 6);
    assert_eq!(out, [1, 2, 3, 4, 5, 6, 0, 0]);
    assert!(matches!(m.decode(), Err(ConsumeError::Undecodable { error: DecodeError::UnknownType(200), .. })));
    assert_eq!(p.produce_raw(1, 0, &[0; 65535]), Err(ProduceError::TooLong(65543)));
}

#[test]
fn many_producers_one_consumer_keep_per_producer_order() {
    use std::sync::Arc;
    let per = if cfg!(miri) { 40 } else { 20_000 };
    let r = Arc::new(region(16));
    let p = Arc::new(Producer::init(r.clone(), 16).unwrap());
    let mut c = Consumer::attach(r.clone()).unwrap();
    let threads: Vec<_> = (0..3)
        .map(|t| {
            let p = p.clone();
            std::thread::spawn(move || {
                for i in 0..per {
                    // seqnum encodes (producer, index); spin until there is room.
                    while p.produce(&tick(t), (t as u32) << 24 | i).is_err() {
                        std::thread::yield_now();
                    }
                }
            })
        })
        .collect();
    let mut next = [0u32; 3];
    let mut total = 0;
    while total < 3 * per {
        match c.pop().unwrap() {
            Some(m) => {
                let (t, i) = ((m.seqnum >> 24) as usize, m.seqnum & 0xff_ffff);
                assert_eq!(m.message.cpu(), Some(t as i32));
                assert_eq!(i, next[t], "producer {t} out of order");
                next[t] += 1;
                total += 1;
            }
            None => std::thread::yield_now(),
        }
    }
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(next, [per; 3]);
    assert!(!c.has_pending().unwrap());
}

#[test]
fn doorbell_handshake() {
    let bell_mem = OwnedRegion::new(64);
    // SAFETY: the 64-byte region belongs to this doorbell alone.
    let bell = unsafe { Doorbell::new(&bell_mem, 0) }.unwrap();
    // SAFETY: as above (and refused: unaligned).
    assert!(unsafe { Doorbell::new(&bell_mem, 62) }.is_none());
    assert!(!bell.ring()); // nobody waiting
    bell.prepare_wait();
    assert!(bell.is_waiting());
    assert!(bell.ring()); // must wake
    assert!(!bell.is_waiting());
    assert!(!bell.ring()); // only once
    bell.prepare_wait();
    bell.cancel_wait();
    assert!(!bell.ring());
}

#[test]
fn a_tail_inside_the_unpublished_batch_is_corrupt() {
    // Found by adversary_queue: the agent "releases" messages of a batch that is not published yet; a later
    // push of the same batch must not reuse their slots.
    let r = region(16);
    let p = Producer::init(&r, 16).unwrap();
    let mut b = p.batch();
    for i in 0..8 {
        b.push(&tick(i), i as u32).unwrap(); // 16 slots: the ring is now full (unpublished)
    }
    poke(&r, TAIL, 2); // beyond the published head (0)
    assert_eq!(b.push(&tick(9), 9), Err(ProduceError::CorruptTail { head: 16, tail: 2 }));
    b.publish();
    assert_eq!(p.overflow_count(), 1, "the refused message is counted");
    // The eight messages of the batch were published intact.
    poke(&r, TAIL, 0);
    let mut c = Consumer::attach(&r).unwrap();
    let mut seq = Vec::new();
    c.drain(|d| seq.push(d.seqnum)).unwrap();
    assert_eq!(seq, [0, 1, 2, 3, 4, 5, 6, 7]);
}

/// `drain_lazy` stores `tail` only once a quarter of the ring is read and unreleased (or on `release`), and
/// never loses or repeats a message across calls.
#[test]
fn drain_lazy_defers_the_tail_store() {
    let r = region(16); // a quarter: 4 slots
    let p = Producer::init(&r, 16).unwrap();
    let mut c = Consumer::attach(&r).unwrap();
    let tail = |r: &OwnedRegion| {
        // SAFETY: TAIL is in bounds and 4-aligned.
        unsafe { r.load_u32(TAIL, core::sync::atomic::Ordering::Relaxed) }
    };
    let mut seen = Vec::new();
    p.produce(&tick(1), 1).unwrap(); // 2 slots
    assert_eq!(c.drain_lazy(|d| seen.push(d.seqnum)).unwrap(), 1);
    assert_eq!(tail(&r), 0, "2 of 16 slots held: no store yet");
    assert_eq!(c.drain_lazy(|d| seen.push(d.seqnum)).unwrap(), 0);
    assert_eq!(tail(&r), 0);
    p.produce(&tick(2), 2).unwrap(); // slots 2, 3: now 4 held
    assert_eq!(c.drain_lazy(|d| seen.push(d.seqnum)).unwrap(), 1);
    assert_eq!(tail(&r), 4, "a quarter held: released");
    p.produce(&tick(3), 3).unwrap();
    assert_eq!(c.drain_lazy(|d| seen.push(d.seqnum)).unwrap(), 1);
    assert_eq!(tail(&r), 4);
    // The producer treats the read but unreleased slots (4..6) as used: 14 free slots, 7 messages.
    let mut n = 0;
    while p.produce(&tick(9), 9).is_ok() {
        n += 1;
    }
    assert_eq!(n, 7, "exactly the released slots were reused");
    c.release();
    assert_eq!(tail(&r), 6, "release hands back the rest");
    assert_eq!(seen, [1, 2, 3]);
}

/// `spin_until_pending` gives up after its polls on an empty ring, reports a pending message at once, and
/// passes a corrupt head on as an error.
#[test]
fn spin_until_pending_polls_bounded() {
    let r = region(16);
    let p = Producer::init(&r, 16).unwrap();
    let mut c = Consumer::attach(&r).unwrap();
    assert_eq!(c.spin_until_pending(3), Ok(false));
    p.produce(&tick(1), 1).unwrap();
    assert_eq!(c.spin_until_pending(0), Ok(true));
    assert_eq!(c.pop().unwrap().unwrap().seqnum, 1);
    poke(&r, HEAD, 1000);
    assert!(matches!(c.spin_until_pending(3), Err(ConsumeError::CorruptHead { .. })));
}

/// Every message type, produced at successive slot positions (so each starts at every offset mod 64 of the
/// slot array, and wraps with NOPs), comes back equal: the word-pair copies of producer and consumer agree
/// for every payload length the ABI has.
#[test]
fn every_type_round_trips_through_the_ring_at_every_position() {
    let r = region(64);
    let mut p = Producer::init(&r, 64).unwrap();
    let mut c = Consumer::attach(&r).unwrap();
    let mut seq = 0u32;
    for round in 0..8u8 {
        for &ty in MsgType::ALL {
            let Some(plen) = Message::payload_len(ty) else { continue };
            let payload: Vec<u8> = (0..plen as u8).map(|i| i.wrapping_mul(31).wrapping_add(round + 1)).collect();
            let m = Message::from_payload(ty, &payload).unwrap();
            seq = seq.wrapping_add(0x0101_0101);
            p.produce_mut(&m, seq).unwrap();
            let d = c.pop().unwrap().unwrap();
            assert_eq!(d, Decoded { seqnum: seq, message: m }, "{ty:?} round {round}");
        }
    }
    assert_eq!(c.pop(), Ok(None));
}

/// Raw payloads of every length from 0 to 24 (every remainder modulo 8, twice) leave exactly the ABI's bytes in
/// the ring: header, payload, zeros up to the next 4-byte boundary, and nothing written beyond that.
#[test]
fn raw_payloads_of_every_length_write_exactly_their_bytes() {
    for plen in 0..=24usize {
        let r = region(16);
        let p = Producer::init(&r, 16).unwrap();
        // Poison the slot array, so a stray write shows.
        let mut img = r.to_bytes();
        img[abi::QUEUE_SLOTS_OFFSET..abi::QUEUE_SLOTS_OFFSET + 8 * 16].fill(0xAA);
        r.fill_from(&img);
        let payload: Vec<u8> = (0..plen as u8).map(|i| i + 1).collect();
        p.produce_raw(0x1234, 0x5566_7788, &payload).unwrap();
        let got = r.to_bytes();
        let mut want = img.clone();
        let s = abi::QUEUE_SLOTS_OFFSET;
        want[s..s + 2].copy_from_slice(&0x1234u16.to_le_bytes());
        want[s + 2..s + 4].copy_from_slice(&((8 + plen) as u16).to_le_bytes());
        want[s + 4..s + 8].copy_from_slice(&0x5566_7788u32.to_le_bytes());
        want[s + 8..s + 8 + plen].copy_from_slice(&payload);
        want[s + 8 + plen..s + 8 + plen.next_multiple_of(4)].fill(0);
        want[HEAD..HEAD + 4].copy_from_slice(&((8 + plen).div_ceil(8) as u32).to_le_bytes());
        assert_eq!(&got[..s + 8 * 16], &want[..s + 8 * 16], "payload length {plen}");
        let mut c = Consumer::attach(&r).unwrap();
        let m = c.read_raw().unwrap().unwrap();
        let mut out = [0u8; 24];
        assert_eq!(m.copy_payload(&mut out), plen);
        assert_eq!(&out[..plen], &payload[..]);
        // A shorter buffer gets the payload's first bytes, nothing beyond it is touched.
        let mut short = [0xEEu8; 16];
        let k = plen / 2;
        assert_eq!(m.copy_payload(&mut short[..k]), plen);
        assert_eq!(&short[..k], &payload[..k]);
        assert!(short[k..].iter().all(|&b| b == 0xEE));
    }
}

/// The pair accessors move the same bytes as two word accesses, in both directions.
#[test]
fn data_pairs_are_two_words() {
    let r = OwnedRegion::new(64);
    // SAFETY: 8 and 16 are 8-aligned and 8 + 8, 16 + 8 <= 64.
    unsafe {
        r.write_data_pair(8, [0x0403_0201, 0x0807_0605]);
        assert_eq!((r.read_data(8), r.read_data(12)), (0x0403_0201, 0x0807_0605));
        r.write_data(16, 0xaaaa_bbbb);
        r.write_data(20, 0xcccc_dddd);
        assert_eq!(r.read_data_pair(16), [0xaaaa_bbbb, 0xcccc_dddd]);
    }
    assert_eq!(&r.to_bytes()[8..16], &[1, 2, 3, 4, 5, 6, 7, 8]);
}

/// `has_room` answers like a produce would (room, full, corrupt tail, too long) but writes nothing and counts
/// no overflow; room comes back once the agent releases.
#[test]
fn has_room_checks_without_side_effects() {
    let r = region(8);
    let mut p = Producer::init(&r, 8).unwrap();
    let mut c = Consumer::attach(&r).unwrap();
    let m = dead(7, 1); // 16-byte payload: 3 slots
    let plen = m.payload_bytes().len();
    assert_eq!(p.batch_mut().has_room(plen), Ok(true));
    p.produce_mut(&m, 1).unwrap();
    p.produce_mut(&m, 2).unwrap();
    // 6 of 8 slots used: a third message does not fit, before or after the wrap.
    let before = r.to_bytes();
    assert_eq!(p.batch_mut().has_room(plen), Ok(false));
    assert_eq!(p.batch_mut().has_room(65_528), Err(ProduceError::TooLong(65_536)));
    assert_eq!(r.to_bytes(), before);
    assert_eq!((p.overflow_count(), c.overflow()), (0, 0));
    // The agent releases one message: room again (a NOP wrap is needed, and fits behind).
    assert_eq!(c.pop().unwrap().unwrap().seqnum, 1);
    assert_eq!(p.batch_mut().has_room(plen), Ok(true));
    // A hostile tail: typed error, still nothing counted.
    poke(&r, TAIL, 100);
    p.produce_mut(&m, 3).unwrap(); // fits with the cached tail (3): no re-read yet
    assert_eq!(p.batch_mut().has_room(plen), Err(ProduceError::CorruptTail { head: 11, tail: 100 }));
    assert_eq!(p.overflow_count(), 0);
}

#[test]
fn assoc_status_round_trips_through_the_ioctl_value() {
    use super::route::AssocStatus;
    for (already, brand_new) in [(false, false), (true, false), (false, true), (true, true)] {
        let s = AssocStatus { already, brand_new };
        assert_eq!(AssocStatus::from_raw(s.to_raw()), s);
    }
    assert_eq!(AssocStatus::from_raw(0x43), AssocStatus { already: true, brand_new: true }, "unknown bits ignored");
}
