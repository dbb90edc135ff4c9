//! The kernel-side status-word `Writer`, its `Word` handles and an `AgentBarrier` under a hostile agent: a
//! schedule of kernel operations interleaved with agent stores of any value to any word of the region (header
//! included, as through a writable mapping) and `GHOST_IOC_SW_FREE` requests with arbitrary region ids and
//! indices (or replays of real ones).
//!
//! The region sits between guard bytes and the kernel side accesses it only through a logging backend
//! (`adversary/common.rs`). After every step the target asserts that
//! - the kernel side never reads the region (its decisions use private state only) and never writes outside
//!   it: allocation writes only the new word's flags and the header's `available`; a `Word` handle, a
//!   retirement or an agent-barrier publish write only their own word; a free writes the freed word (zeroed)
//!   and `available`, and a refused free writes nothing;
//! - a word is never handed out while allocated: no `alloc` returns an index that is allocated, live, or
//!   retired but not freed; `available` is exactly capacity minus those;
//! - a free is accepted exactly for words the kernel retired (CANFREE) and not yet freed, refused with
//!   `NotFound` for a wrong id or an index out of range, with `Invalid` otherwise, however often it is replayed;
//! - the values stored (flags, barrier, the barrier passed to `produce`) are the handle's private ones, never
//!   influenced by what the agent wrote.
#![no_main]

#[path = "adversary/common.rs"]
mod common;

use arbitrary::Arbitrary;
use common::{agent_store32, agent_store64, peek32, peek64, take, Ev, Guarded, Spy};
use ghost_shm::abi::{Gtid, SwFlags};
use ghost_shm::status::{region_len, AgentBarrier, AllocError, Allocated, FreeError, Retired, Word, Writer};
use libfuzzer_sys::fuzz_target;
use std::cell::RefCell;
use std::collections::HashSet;

const ID: u32 = 7;
const AVAILABLE: usize = 20;
const BARRIER: usize = 0;
const FLAGS: usize = 4;

#[derive(Arbitrary, Debug)]
enum Step {
    // Kernel.
    Alloc,
    Init { slot: u8, gtid: i64, flags: u32 },
    Release { slot: u8 },
    Flags { slot: u8, set: u32, clear: u32 },
    SwitchIn { slot: u8, now: i64 },
    SwitchOut { slot: u8 },
    Runtime { slot: u8, ns: u64 },
    Bump { slot: u8 },
    Publish { slot: u8, barrier: u32 },
    Stale { slot: u8, seen: u32 },
    Depart { slot: u8 },
    Die { slot: u8 },
    Retire { slot: u8 },
    Reclaim { slot: u8 },
    AgentBump { slot: u8 },
    AgentWake,
    AgentStale { slot: u8, seen: u32 },
    // Agent.
    Scribble { off: u16, value: u64, wide: bool },
    Free { id: u32, index: u32 },
    FreeKnown { slot: u8, wrong_id: bool },
}

#[derive(Arbitrary, Debug)]
struct Input {
    capacity: u8,
    steps: Vec<Step>,
}

fn word_off(index: u32) -> usize {
    region_len(index)
}

fn pick<T>(v: &mut Vec<T>, slot: u8) -> Option<T> {
    if v.is_empty() {
        None
    } else {
        let i = slot as usize % v.len();
        Some(v.swap_remove(i))
    }
}

fn get<T>(v: &mut [T], slot: u8) -> Option<&mut T> {
    let n = v.len();
    if n == 0 {
        None
    } else {
        v.get_mut(slot as usize % n)
    }
}

/// Every access is a store; each lies inside word `index`, or is the header's `available` when allowed.
/// Returns the last values stored to the word's flags and barrier, if any.
fn only_word(ev: &[Ev], index: u32, header: bool) -> (Option<u32>, Option<u32>) {
    let w = word_off(index);
    let (mut flags, mut barrier) = (None, None);
    for e in ev {
        assert!(e.writes() && !e.reads(), "the kernel side read the region: {e:?}");
        let (o, end) = (e.off(), e.off() + e.width());
        if header && o == AVAILABLE {
            continue;
        }
        assert!(o >= w && end <= w + 32, "store {e:?} outside word {index} ({w}..{})", w + 32);
        match *e {
            Ev::Store32(o, v) if o == w + FLAGS => flags = Some(v),
            Ev::Store32(o, v) if o == w + BARRIER => barrier = Some(v),
            _ => {}
        }
    }
    (flags, barrier)
}

/// What the target knows of one handed-out word.
struct Model {
    cap: u32,
    /// Allocated and not freed (allocated, live or retired).
    handed: HashSet<u32>,
    /// Retired (CANFREE) and not freed.
    retired: HashSet<u32>,
    /// The agent barrier's counter.
    agent_barrier: u32,
}

impl Model {
    fn free(&mut self, id: u32, index: u32) -> Result<(), FreeError> {
        if id != ID || index >= self.cap {
            return Err(FreeError::NotFound);
        }
        if !self.retired.remove(&index) {
            return Err(FreeError::Invalid);
        }
        assert!(self.handed.remove(&index));
        Ok(())
    }
}

/// Checks a free: the result against the model and its stores (a zeroed word and `available`, or nothing).
fn check_free(g: &Guarded, m: &mut Model, ev: &[Ev], id: u32, index: u32, got: Result<(), FreeError>) {
    let want = m.free(id, index);
    assert_eq!(got, want, "free({id}, {index})");
    match got {
        Ok(()) => {
            only_word(ev, index, true);
            let raw = g.region();
            let w = word_off(index);
            assert_eq!((peek32(&raw, w), peek32(&raw, w + 4)), (0, 0), "freed word not zeroed");
            assert_eq!((peek64(&raw, w + 8), peek64(&raw, w + 16), peek64(&raw, w + 24)), (0, 0, 0));
        }
        Err(_) => assert!(ev.is_empty(), "refused free accessed the region: {ev:?}"),
    }
}

fuzz_target!(|input: Input| {
    let cap = 1 + input.capacity as u32 % 128;
    let g = Guarded::new(region_len(cap));
    let log = RefCell::new(Vec::new());
    {
        let writer = Writer::<Spy<'_>, 2>::with_capacity(Spy::new(g.region(), &log), ID, 0, cap).unwrap();
        assert!(take(&log).iter().all(|e| e.writes() && !e.reads() && e.off() + e.width() <= region_len(cap)));
        let ab = AgentBarrier::new();
        let mut m = Model { cap, handed: HashSet::new(), retired: HashSet::new(), agent_barrier: 0 };
        let mut allocs: Vec<Allocated<'_, Spy<'_>, 2>> = Vec::new();
        let mut words: Vec<Word<'_, Spy<'_>, 2>> = Vec::new();
        let mut retired: Vec<Retired> = Vec::new();
        // Indices the agent learned about (TASK_NEW), for replayed frees.
        let mut known: Vec<u32> = Vec::new();

        for step in input.steps.into_iter().take(300) {
            match step {
                Step::Alloc => match writer.alloc() {
                    Ok(a) => {
                        let i = a.index();
                        assert!(i < cap, "index {i} out of range");
                        assert!(m.handed.insert(i), "word {i} handed out twice");
                        let (flags, barrier) = only_word(&take(&log), i, true);
                        assert_eq!((flags, barrier), (Some(SwFlags::ALLOCATED.bits()), None));
                        allocs.push(a);
                    }
                    Err(AllocError) => {
                        assert_eq!(m.handed.len() as u32, cap, "ENOMEM with free words");
                        assert!(take(&log).is_empty());
                    }
                },
                Step::Init { slot, gtid, flags } => {
                    if let Some(a) = pick(&mut allocs, slot) {
                        let i = a.index();
                        let w = a.init(Gtid(gtid), SwFlags::from_bits_retain(flags));
                        let (f, b) = only_word(&take(&log), i, false);
                        assert_eq!((f, b), (Some(w.flags().bits()), Some(0)));
                        assert!(w.flags().contains(SwFlags::INUSE | SwFlags::ALLOCATED));
                        known.push(i);
                        words.push(w);
                    }
                }
                Step::Release { slot } => {
                    if let Some(a) = pick(&mut allocs, slot) {
                        let i = a.index();
                        a.release();
                        only_word(&take(&log), i, true);
                        assert!(m.handed.remove(&i));
                    }
                }
                Step::Flags { slot, set, clear } => {
                    if let Some(w) = get(&mut words, slot) {
                        w.update_flags(SwFlags::from_bits_retain(set), SwFlags::from_bits_retain(clear));
                        assert_eq!(only_word(&take(&log), w.index(), false), (Some(w.flags().bits()), None));
                    }
                }
                Step::SwitchIn { slot, now } => {
                    if let Some(w) = get(&mut words, slot) {
                        w.switched_in(now);
                        assert_eq!(only_word(&take(&log), w.index(), false), (Some(w.flags().bits()), None));
                        assert!(w.flags().contains(SwFlags::TASK_ONCPU));
                    }
                }
                Step::SwitchOut { slot } => {
                    if let Some(w) = get(&mut words, slot) {
                        w.switched_out();
                        assert_eq!(only_word(&take(&log), w.index(), false), (Some(w.flags().bits()), None));
                    }
                }
                Step::Runtime { slot, ns } => {
                    if let Some(w) = get(&mut words, slot) {
                        w.set_runtime(ns);
                        assert_eq!(take(&log), vec![Ev::Store64(word_off(w.index()) + 24, ns)]);
                    }
                }
                Step::Bump { slot } => {
                    if let Some(w) = get(&mut words, slot) {
                        let before = w.barrier().0;
                        let log_at_produce = RefCell::new(Vec::new());
                        let seq = w.bump_barrier_then(|seq| {
                            // The barrier store comes before the message.
                            *log_at_produce.borrow_mut() = take(&log);
                            seq
                        });
                        assert_eq!(seq, before.wrapping_add(1));
                        assert_eq!(only_word(&log_at_produce.into_inner(), w.index(), false), (None, Some(seq)));
                        assert!(take(&log).is_empty());
                    }
                }
                Step::Publish { slot, barrier } => {
                    if let Some(w) = get(&mut words, slot) {
                        w.publish_barrier(barrier.into());
                        assert_eq!(only_word(&take(&log), w.index(), false), (None, Some(barrier)));
                    }
                }
                Step::Stale { slot, seen } => {
                    if let Some(w) = get(&mut words, slot) {
                        assert_eq!(w.is_stale(seen), seen != w.barrier().0);
                        assert!(take(&log).is_empty());
                    }
                }
                Step::Depart { slot } | Step::Die { slot } | Step::Retire { slot } => {
                    let depart = matches!(step, Step::Depart { .. });
                    let bump = !matches!(step, Step::Retire { .. });
                    if let Some(w) = pick(&mut words, slot) {
                        let (i, b0, f0) = (w.index(), w.barrier().0, w.flags());
                        let mut seen_at_produce = None;
                        let ret = if !bump {
                            w.retire()
                        } else if depart {
                            w.depart_then(|seq| seen_at_produce = Some((seq, take(&log)))).0
                        } else {
                            w.die_then(|seq| seen_at_produce = Some((seq, take(&log)))).0
                        };
                        let add = if depart { SwFlags::CANFREE | SwFlags::TASK_MSG_GATED } else { SwFlags::CANFREE };
                        let ev = match seen_at_produce {
                            Some((seq, ev)) => {
                                assert_eq!(seq, b0.wrapping_add(1));
                                assert!(take(&log).is_empty(), "stores after the message");
                                ev
                            }
                            None => take(&log),
                        };
                        let want_b = if bump { Some(b0.wrapping_add(1)) } else { None };
                        assert_eq!(only_word(&ev, i, false), (Some((f0 | add).bits()), want_b));
                        assert_eq!(ret.index(), i);
                        assert!(m.retired.insert(i));
                        retired.push(ret);
                    }
                }
                Step::Reclaim { slot } => {
                    if let Some(ret) = pick(&mut retired, slot) {
                        let i = ret.index();
                        let got = writer.reclaim(ret);
                        check_free(&g, &mut m, &take(&log), ID, i, got);
                    }
                }
                Step::AgentBump { slot } => {
                    if let Some(w) = get(&mut words, slot) {
                        let mut at = None;
                        let seq = ab.bump_then(w, |seq| {
                            at = Some(take(&log));
                            seq
                        });
                        m.agent_barrier = m.agent_barrier.wrapping_add(1);
                        assert_eq!(seq, m.agent_barrier);
                        assert_eq!(only_word(&at.unwrap(), w.index(), false), (None, Some(seq)));
                    }
                }
                Step::AgentWake => {
                    m.agent_barrier = m.agent_barrier.wrapping_add(1);
                    assert_eq!(ab.wake().0, m.agent_barrier);
                    assert!(take(&log).is_empty());
                }
                Step::AgentStale { slot, seen } => {
                    if let Some(w) = get(&mut words, slot) {
                        assert_eq!(ab.is_stale(w, seen), seen != m.agent_barrier);
                        assert_eq!(only_word(&take(&log), w.index(), false), (None, Some(m.agent_barrier)));
                    }
                }
                Step::Scribble { off, value, wide } => {
                    let raw = g.region();
                    let off = off as usize % region_len(cap);
                    if wide {
                        agent_store64(&raw, off & !7, value);
                    } else {
                        agent_store32(&raw, off & !3, value as u32);
                    }
                }
                Step::Free { id, index } => {
                    let got = writer.free(id, index);
                    check_free(&g, &mut m, &take(&log), id, index, got);
                }
                Step::FreeKnown { slot, wrong_id } => {
                    if let Some(&mut i) = get(&mut known, slot) {
                        let id = if wrong_id { ID ^ 1 } else { ID };
                        let got = writer.free(id, i);
                        check_free(&g, &mut m, &take(&log), id, i, got);
                    }
                }
            }
            assert_eq!(writer.available(), cap - m.handed.len() as u32);
            assert!(take(&log).is_empty(), "unchecked accesses");
            g.check();
        }
    }
    g.check();
});
