//! loom models of the message queue, running the production `Producer`/`Consumer` code over a `LoomRegion`
//! (control words are loom atomics, slot words are loom `UnsafeCell`s, so a payload read that is not ordered
//! after its write fails the model).
//!
//! Run: `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test --release --test loom_queue`
//!
//! Show the models can fail: with `--cfg ghost_shm_weaken` the producer's Release store of `head` becomes
//! Relaxed, and every model here must then fail inside loom (each is `should_panic` under that cfg, so this
//! command passes only if loom catches the weakened ordering in all of them):
//! `RUSTFLAGS="--cfg loom --cfg ghost_shm_weaken" cargo test --release --test loom_queue -- weaken_`
//!
//! `scripts/ordering-mutants.sh` weakens every ordering of the protocols one at a time and checks that some
//! model here fails on each (VERIFICATION.md, "Ordering mutants").
#![cfg(loom)]

use ghost_shm::abi::{self, Message, PayloadCpuTick, PayloadTaskDead};
use ghost_shm::queue::{Consumer, Doorbell, ProduceError, Producer};
use ghost_shm::shm::LoomRegion;
use loom::thread;
use std::sync::Arc;

/// A queue mapping of `nelems` slots with only the header, ring and slots backed by model objects.
fn queue_region(nelems: u32) -> LoomRegion {
    let backed = abi::QUEUE_SLOTS_OFFSET + 8 * nelems as usize;
    LoomRegion::sparse(abi::queue_mapsize(nelems), backed.next_multiple_of(4), &[0, 4, 8, 64, 68, 72], &[])
}

fn tick(cpu: i32) -> Message {
    Message::CpuTick(PayloadCpuTick { cpu, is_agent: 7 })
}

fn dead(gtid: u64) -> Message {
    Message::TaskDead(PayloadTaskDead { gtid, cpu: 3, _pad: 0 })
}

/// Produces `m`, retrying (with a yield) while the ring is full; returns how many attempts overflowed.
fn produce_retrying(p: &Producer<Arc<LoomRegion>>, m: &Message, seq: u32) -> u32 {
    let mut drops = 0;
    loop {
        match p.produce(m, seq) {
            Ok(()) => return drops,
            Err(ProduceError::Full) => {
                drops += 1;
                thread::yield_now();
            }
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
}

/// Reads `n` messages, yielding while the ring is empty.
fn consume(c: &mut Consumer<Arc<LoomRegion>>, n: usize) -> Vec<(u32, Message)> {
    let mut got = Vec::new();
    while got.len() < n {
        match c.pop().unwrap() {
            Some(d) => got.push((d.seqnum, d.message)),
            None => thread::yield_now(),
        }
    }
    got
}

/// 1 producer + consumer, 4 slots: a 3-slot message, then a 2-slot one that must wrap behind a NOP (or
/// overflow and retry while the first is unconsumed). Payloads arrive intact and in order; every failed
/// attempt is counted in `overflow`.
#[test]
#[cfg_attr(ghost_shm_weaken, should_panic)]
fn weaken_spsc_wrap_with_nop() {
    loom::model(|| {
        let r = Arc::new(queue_region(4));
        let p = Producer::init(r.clone(), 4).unwrap();
        let mut c = Consumer::attach(r.clone()).unwrap();
        let prod = thread::spawn(move || {
            let d1 = produce_retrying(&p, &dead(0x1122_3344_5566_7788), 1);
            let d2 = produce_retrying(&p, &tick(5), 2);
            d1 + d2
        });
        let got = consume(&mut c, 2);
        let drops = prod.join().unwrap();
        assert_eq!(got, vec![(1, dead(0x1122_3344_5566_7788)), (2, tick(5))]);
        assert_eq!(c.new_overflows(), drops);
    });
}

/// Overflow: 2 slots, two 2-slot messages, no retry. Either the consumer freed the ring in time or the second
/// message was dropped and counted: received + overflow == produced, never a lost or torn message.
#[test]
#[cfg_attr(ghost_shm_weaken, should_panic)]
fn weaken_overflow_is_counted_never_silent() {
    loom::model(|| {
        let r = Arc::new(queue_region(2));
        let p = Producer::init(r.clone(), 2).unwrap();
        let mut c = Consumer::attach(r.clone()).unwrap();
        let prod = thread::spawn(move || {
            p.produce(&tick(1), 1).unwrap();
            p.produce(&tick(2), 2).is_ok()
        });
        let first = consume(&mut c, 1);
        assert_eq!(first, vec![(1, tick(1))]);
        let second_ok = prod.join().unwrap();
        let rest = consume(&mut c, usize::from(second_ok));
        if second_ok {
            assert_eq!(rest, vec![(2, tick(2))]);
        }
        assert_eq!(c.new_overflows(), u32::from(!second_ok));
    });
}

/// Two producers (serialized by the queue lock) and a consumer: both messages arrive intact, once each.
#[test]
#[cfg_attr(ghost_shm_weaken, should_panic)]
fn weaken_two_producers_one_consumer() {
    loom::model(|| {
        let r = Arc::new(queue_region(4));
        let p = Arc::new(Producer::init(r.clone(), 4).unwrap());
        let mut c = Consumer::attach(r.clone()).unwrap();
        let handles: Vec<_> = (0..2)
            .map(|i| {
                let p = p.clone();
                thread::spawn(move || p.produce(&tick(i), 10 + i as u32).unwrap())
            })
            .collect();
        let mut got = consume(&mut c, 2);
        for h in handles {
            h.join().unwrap();
        }
        got.sort_by_key(|g| g.0);
        assert_eq!(got, vec![(10, tick(0)), (11, tick(1))]);
        assert_eq!(c.new_overflows(), 0);
    });
}

/// The sleep/wake handshake: the consumer announces it will sleep, re-checks, and "sleeps" while the doorbell
/// says WAITING (futex semantics); the producer publishes, then rings. A lost wakeup would leave the consumer
/// spinning forever, which loom reports as a failure.
#[test]
#[cfg_attr(ghost_shm_weaken, should_panic)]
fn weaken_sleep_wake_handshake_loses_no_wakeup() {
    loom::model(|| {
        let r = Arc::new(queue_region(2));
        let bell_mem = Arc::new(LoomRegion::new(4, &[0], &[]));
        let p = Producer::init(r.clone(), 2).unwrap();
        let mut c = Consumer::attach(r.clone()).unwrap();
        // SAFETY: the bell region holds only this doorbell word.
        let bell = unsafe { Doorbell::new(bell_mem.clone(), 0) }.unwrap();
        let prod = thread::spawn(move || {
            p.produce(&tick(9), 4).unwrap();
            // SAFETY: as above.
            let bell = unsafe { Doorbell::new(bell_mem, 0) }.unwrap();
            bell.ring() // true: the consumer must be woken (here it polls the word)
        });
        let got = loop {
            if let Some(d) = c.pop().unwrap() {
                break d;
            }
            bell.prepare_wait();
            if c.has_pending().unwrap() {
                bell.cancel_wait();
                continue;
            }
            // Block while WAITING: a real backend does futex_wait(word, WAITING) here.
            while bell.is_waiting() {
                thread::yield_now();
            }
        };
        assert_eq!((got.seqnum, got.message), (4, tick(9)));
        prod.join().unwrap();
    });
}

/// Seeing an overflow count means seeing the messages published before the drop: 2 slots, a 2-slot message
/// fills the ring, the next one is dropped and counted. An agent that reads the count while the producer runs
/// (not after `join`) and sees the drop must find the first message (fails if the overflow counter's Release
/// store or the consumer's Acquire load of it is weakened: the head load may then still see the empty ring).
#[test]
fn overflow_count_publishes_earlier_messages() {
    loom::model(|| {
        let r = Arc::new(queue_region(2));
        let p = Producer::init(r.clone(), 2).unwrap();
        let mut c = Consumer::attach(r.clone()).unwrap();
        let prod = thread::spawn(move || {
            p.produce(&tick(1), 1).unwrap();
            assert_eq!(p.produce(&tick(2), 2), Err(ProduceError::Full));
        });
        if c.overflow() == 1 {
            let d = c.pop().unwrap().expect("overflow seen, but not the message published before the drop");
            assert_eq!((d.seqnum, d.message), (1, tick(1)));
        }
        prod.join().unwrap();
    });
}

/// A consumer that attaches while the producer publishes (every other model attaches before the producer
/// starts): whatever head it finds at attach time, the slots below it are visible, and both messages arrive
/// intact and in order (fails if the Acquire load of head in `Consumer::attach` is weakened: the consumer then
/// reads slots that loom sees racing with the producer's writes).
#[test]
fn consumer_attaches_while_producer_publishes() {
    loom::model(|| {
        let r = Arc::new(queue_region(4));
        let p = Producer::init(r.clone(), 4).unwrap();
        let prod = thread::spawn(move || {
            p.produce(&tick(1), 1).unwrap();
            p.produce(&tick(2), 2).unwrap();
        });
        let mut c = Consumer::attach(r).unwrap();
        let got = consume(&mut c, 2);
        assert_eq!(got, vec![(1, tick(1)), (2, tick(2))]);
        prod.join().unwrap();
    });
}
