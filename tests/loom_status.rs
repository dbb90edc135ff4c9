//! loom models of the status-word protocol, running the production code over a `LoomRegion`.
//!
//! ```text
//! RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test --release --test loom_status
//! ```
//!
//! The models can fail: `--cfg ghost_shm_weaken` weakens the kernel's Release barrier store to Relaxed, and
//! `weaken_barrier_publishes_runtime` must then fail (it is `should_panic` under that cfg; the CI runs the
//! `weaken_` models in that build):
//!
//! ```text
//! RUSTFLAGS="--cfg loom --cfg ghost_shm_weaken" LOOM_MAX_PREEMPTIONS=2 cargo test --release --test loom_status -- weaken_
//! ```
//!
//! `scripts/ordering-mutants.sh` weakens every ordering of the protocols one at a time and checks that some
//! model here fails on each (VERIFICATION.md, "Ordering mutants").
#![cfg(loom)]
// loom runs its threads on one OS thread, so `loom::thread::spawn` needs no `Send`: a `LoomRegion` (not `Sync`)
// is shared through a plain `Arc` (`SharedMem` is implemented for `Arc`, not `Rc`).
#![allow(clippy::arc_with_non_send_sync)]

use core::sync::atomic::Ordering;
use ghost_shm::abi::{self, Gtid, Message, PayloadCpuTick, SwFlags};
use ghost_shm::queue::{Consumer, Producer};
use ghost_shm::shm::LoomRegion;
use ghost_shm::status::{loom_region, AgentBarrier, Barrier, Reader, Writer};
use loom::sync::atomic::AtomicBool;
use loom::thread;
use std::sync::Arc;

type W = Writer<Arc<LoomRegion>, 1>;

/// A kernel writer and the agent's mapping of a `capacity`-word region.
fn setup(capacity: u32) -> (Arc<W>, Arc<LoomRegion>) {
    let r = Arc::new(loom_region(capacity));
    let w = Arc::new(W::with_capacity(r.clone(), 1, 0, capacity).unwrap());
    (w, r)
}

const G: Gtid = Gtid(0x5151);

fn runtime(b: u32) -> u64 {
    100 * b as u64
}

/// The kernel stores runtime r_k, then barrier k (Release). An accepted snapshot with barrier b must carry
/// runtime r_b or the in-flight r_(b+1): never an older value (that needs the Release barrier store, so this
/// model fails under `ghost_shm_weaken`), never one two updates ahead (that needs the re-read and the Release
/// runtime stores).
#[test]
#[cfg_attr(ghost_shm_weaken, should_panic)]
fn weaken_barrier_publishes_runtime() {
    loom::model(|| {
        let (w, r) = setup(1);
        let mut word = w.alloc().unwrap().init(G, SwFlags::empty());
        let rd = Reader::attach(r).unwrap();
        let agent = thread::spawn(move || {
            if let Ok(s) = rd.snapshot_with(0, 3) {
                let b = s.barrier.0;
                assert_eq!(s.gtid, G);
                assert!(
                    s.runtime == runtime(b) || s.runtime == runtime(b + 1),
                    "torn snapshot: barrier {b}, runtime {}",
                    s.runtime
                );
            }
        });
        for k in 1..=2 {
            word.set_runtime(runtime(k));
            assert_eq!(word.bump_barrier_then(|seq| seq), k);
        }
        agent.join().unwrap();
    });
}

/// switch_time T(0), then ONCPU (Release); a message (barrier 1) while still on CPU; ONCPU cleared; switch_time
/// T(1), ONCPU again. An accepted snapshot that says ONCPU at barrier b carries the switch time of an on-CPU
/// period that coexisted with barrier b: T(b), or T(b − 1) between the message and the clear. Never the
/// initial 0 (needs switch_time before the Release of ONCPU), never T(1) with barrier 0 (the flags bits read
/// the same before and after, so only the barrier re-read, ordered by the Release switch_time store and the
/// snapshot's fence, tells them apart).
#[test]
fn oncpu_comes_with_its_switch_time() {
    loom::model(|| {
        let (w, r) = setup(1);
        let mut word = w.alloc().unwrap().init(G, SwFlags::TASK_RUNNABLE);
        let rd = Reader::attach(r).unwrap();
        let agent = thread::spawn(move || {
            if let Ok(s) = rd.snapshot_with(0, 3) {
                if s.on_cpu() {
                    let b = s.barrier.0 as i64;
                    assert!(s.switch_time == 10 + b || s.switch_time == 9 + b, "switch_time of another period: {s:?}");
                }
            }
        });
        word.switched_in(10);
        word.bump_barrier_then(|_| ()); // e.g. TASK_PREEMPT
        word.switched_out();
        word.switched_in(11);
        agent.join().unwrap();
    });
}

/// Allocation, initialisation, departure and re-allocation against a discovery scan that frees what it finds
/// CANFREE: discovery never yields a half-formed word (INUSE implies the gtid written before it), and a free
/// of a word seen CANFREE always succeeds (the kernel marked it in its bookkeeping before publishing it).
#[test]
fn discovery_never_sees_half_formed_words() {
    loom::model(|| {
        let (w, r) = setup(2);
        let kernel = {
            let w = w.clone();
            thread::spawn(move || {
                let t1 = w.alloc().unwrap().init(Gtid(1), SwFlags::empty());
                assert_eq!(t1.index(), 0);
                let (_departed, ()) = t1.depart_then(|_| ());
                let t2 = w.alloc().unwrap().init(Gtid(2), SwFlags::empty());
                assert_eq!(t2.index(), 1);
                // Word 0 again, if the agent freed it already.
                let t3 = w.alloc().ok().map(|a| a.init(Gtid(3), SwFlags::empty()));
                t3.map(|t| t.index())
            })
        };
        let rd = Reader::attach(r).unwrap();
        let mut freed = false;
        for found in rd.discover() {
            let (i, s) = found.expect("a quiescent-enough scan settles");
            assert!(s.in_use() && s.allocated());
            match i {
                0 => assert!(s.gtid == Gtid(1) || s.gtid == Gtid(3), "half-formed word 0: {s:?}"),
                1 => assert_eq!(s.gtid, Gtid(2), "half-formed word 1: {s:?}"),
                _ => unreachable!(),
            }
            if s.can_free() {
                assert_eq!(s.gtid, Gtid(1));
                assert_eq!(w.free(1, i), Ok(()));
                freed = true;
            }
        }
        let t3 = kernel.join().unwrap();
        assert!(t3.is_none() || t3 == Some(0));
        // Word 0 is free at the end iff the agent freed it after the kernel's third allocation attempt.
        assert_eq!(w.available(), u32::from(freed && t3.is_none()));
    });
}

/// A lockless wake-up against the agent's CPU going to sleep: the waker increments the agent barrier and then
/// checks "blocked"; the agent's CPU sets "blocked" and then re-checks the barrier. The SeqCst fences in
/// `wake` and `is_stale` guarantee that the wake is noticed: the agent's barrier already included it, or the
/// re-check finds it stale, or the waker sees the agent blocked (and kicks it).
#[test]
fn agent_wake_is_never_lost() {
    loom::model(|| {
        let (w, _r) = setup(1);
        let ab = Arc::new(AgentBarrier::new());
        let blocked = Arc::new(AtomicBool::new(false));
        let waker = {
            let (ab, blocked) = (ab.clone(), blocked.clone());
            thread::spawn(move || {
                ab.wake();
                blocked.load(Ordering::Relaxed)
            })
        };
        let mut agent = w.alloc().unwrap().init(Gtid(-1), SwFlags::TASK_IS_AGENT);
        let seen = ab.publish(&mut agent).0;
        blocked.store(true, Ordering::Relaxed);
        let stale = ab.is_stale(&mut agent, seen);
        let waker_saw_blocked = waker.join().unwrap();
        assert!(seen == 1 || stale || waker_saw_blocked, "lost wake-up");
        let _ = agent.retire();
    });
}

/// A locked increment with a message against a lockless wake: the message's seqnum is what the agent's word
/// shows afterwards, and the counter moved (a lockless increment may be clobbered, §4.2).
#[test]
fn agent_barrier_locked_bump_vs_wake() {
    loom::model(|| {
        let (w, r) = setup(1);
        let ab = Arc::new(AgentBarrier::new());
        let waker = {
            let ab = ab.clone();
            thread::spawn(move || ab.wake())
        };
        let mut agent = w.alloc().unwrap().init(Gtid(-1), SwFlags::TASK_IS_AGENT);
        let seq = ab.bump_then(&mut agent, |seq| seq);
        let woke = waker.join().unwrap();
        assert!(seq == 1 || seq == 2);
        let now = ab.current().0;
        assert!((1..=2).contains(&now) && (woke.0 == 1 || woke.0 == 2));
        let s = Reader::attach(r).unwrap().snapshot(0).unwrap();
        assert_eq!(s.barrier, Barrier(seq));
        assert!(s.is_agent());
        let _ = agent.retire();
    });
}

/// Freeing a status word while the agent snapshots it: the word is live at barrier 1 before the agent starts,
/// then dies (CANFREE, barrier 2) and is freed (zeroed). An accepted snapshot that says INUSE carries a live
/// barrier and the owner's gtid: the zeroing never pairs a barrier of 0 (or a zeroed gtid) with live flags.
#[test]
fn freeing_a_word_never_pairs_zeros_with_live_flags() {
    loom::model(|| {
        let (w, r) = setup(1);
        let mut word = w.alloc().unwrap().init(G, SwFlags::TASK_RUNNABLE);
        word.bump_barrier();
        let rd = Reader::attach(r).unwrap();
        let agent = thread::spawn(move || {
            if let Ok(s) = rd.snapshot_with(0, 3) {
                if s.in_use() {
                    assert!(s.barrier.0 >= 1 && s.gtid == G, "live flags with zeroed fields: {s:?}");
                }
            }
        });
        let (retired, ()) = word.die_then(|_| ());
        w.reclaim(retired).unwrap();
        agent.join().unwrap();
    });
}

/// A word freed and handed to a new source while the agent reads it field by field: flags that show the new
/// incarnation (INUSE, not CANFREE) come with its barrier (0), never the departed source's (1). Fails if the
/// Acquire load of `Reader::flags` (or the Release INUSE publish) is weakened.
#[test]
fn inuse_flags_come_with_their_incarnation() {
    loom::model(|| {
        let (w, r) = setup(1);
        let mut t1 = w.alloc().unwrap().init(Gtid(1), SwFlags::empty());
        t1.bump_barrier();
        let retired = t1.retire();
        let rd = Reader::attach(r).unwrap();
        let agent = thread::spawn(move || {
            let f = rd.flags(0).unwrap();
            if f.contains(SwFlags::INUSE) && !f.contains(SwFlags::CANFREE) {
                assert_eq!(rd.barrier(0).unwrap(), Barrier(0), "the new word's flags with the old word's barrier");
            }
        });
        w.reclaim(retired).unwrap();
        let t2 = w.alloc().unwrap().init(Gtid(2), SwFlags::empty());
        agent.join().unwrap();
        let _ = t2.retire();
    });
}

/// The ghOSt contract across a status word and a queue: the kernel bumps the barrier to b, then produces the
/// message with seqnum b (twice). An agent that read barrier b and then drains the queue sees every message
/// below b. Fails if the barrier's Release store, the Acquire load of `Reader::barrier` or the head publish is
/// weakened.
#[test]
fn barrier_then_drain_sees_every_earlier_message() {
    loom::model(|| {
        let (w, r) = setup(1);
        let backed = abi::QUEUE_SLOTS_OFFSET + 8 * 4;
        let q = Arc::new(LoomRegion::sparse(abi::queue_mapsize(4), backed, &[0, 4, 8, 64, 68, 72], &[]));
        let p = Producer::init(q.clone(), 4).unwrap();
        let mut word = w.alloc().unwrap().init(G, SwFlags::empty());
        let rd = Reader::attach(r).unwrap();
        let mut c = Consumer::attach(q).unwrap();
        let agent = thread::spawn(move || {
            let b = rd.barrier(0).unwrap().0;
            let mut seen = Vec::new();
            while let Some(d) = c.pop().unwrap() {
                seen.push(d.seqnum);
            }
            for s in 1..b {
                assert!(seen.contains(&s), "read barrier {b}, then drained {seen:?}: message {s} missing");
            }
        });
        for _ in 0..2 {
            let tick = |seq| Message::CpuTick(PayloadCpuTick { cpu: seq as i32, is_agent: 0 });
            word.bump_barrier_then(|seq| p.produce(&tick(seq), seq).unwrap());
        }
        agent.join().unwrap();
        let _ = word.retire();
    });
}
