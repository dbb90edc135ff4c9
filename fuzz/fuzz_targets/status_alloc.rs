//! Kernel-side status-word operations (alloc, init, release, flag/switch/runtime updates, barrier bumps,
//! departure, death, retirement, frees with arbitrary region ids and indices, reclaim) and hostile scribbles
//! over the region, applied to the real `Writer` and to a simple reference model (a `Vec` of word states, a
//! cursor and a count, written independently of the bitmap allocator). Every result, the kernel's `available`,
//! and, while nobody scribbled, the whole region as an agent reads it, are compared after every step.
#![no_main]
use arbitrary::Arbitrary;
use ghost_shm::abi::{Gtid, SwFlags};
use ghost_shm::shm::{OwnedRegion, SharedMem};
use ghost_shm::status::{region_len, AllocError, Allocated, FreeError, Reader, Retired, Word, Writer};
use libfuzzer_sys::fuzz_target;
use std::sync::atomic::Ordering;

const ID: u32 = 7;

#[derive(Arbitrary, Debug)]
enum Op {
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
    Free { id: u32, index: u32 },
    FreeRetired { slot: u8, hostile_id: bool },
    Reclaim { slot: u8 },
    Scribble { word: u16, field: u8, value: u64 },
}

#[derive(Arbitrary, Debug)]
struct Input {
    capacity: u8,
    ops: Vec<Op>,
}

/// What the reference model knows about one word.
#[derive(Clone, Copy, Debug, PartialEq)]
enum St {
    Free,
    /// Allocated, flags exactly ALLOCATED.
    Allocated,
    /// Initialised: (barrier, flags, gtid, switch_time, runtime); `canfree` once retired.
    Live {
        w: [u64; 5],
        canfree: bool,
    },
}

struct Model {
    cursor: usize,
    available: u32,
    st: Vec<St>,
}

const DYNAMIC: u32 = 0x100 | 0x200 | 0x10000 | 0x20000 | 0x40000;
const ALLOCATED: u32 = 0x4;
const INUSE: u32 = 0x1;
const CANFREE: u32 = 0x2;
const MSG_GATED: u32 = 0x80000;

impl Model {
    fn alloc(&mut self) -> Option<u32> {
        let n = self.st.len();
        for k in 0..n {
            let i = (self.cursor + k) % n;
            if self.st[i] == St::Free {
                self.st[i] = St::Allocated;
                self.cursor = (i + 1) % n;
                self.available -= 1;
                return Some(i as u32);
            }
        }
        None
    }

    fn free(&mut self, id: u32, index: u32) -> Result<(), FreeError> {
        if id != ID || index as usize >= self.st.len() {
            return Err(FreeError::NotFound);
        }
        match self.st[index as usize] {
            St::Live { canfree: true, .. } => {
                self.st[index as usize] = St::Free;
                self.available += 1;
                Ok(())
            }
            _ => Err(FreeError::Invalid),
        }
    }

    fn live(&mut self, index: u32) -> &mut [u64; 5] {
        match &mut self.st[index as usize] {
            St::Live { w, canfree: false } => w,
            s => panic!("model: word {index} is {s:?}, not live"),
        }
    }

    fn retire(&mut self, index: u32, add: u32, bump: bool) -> u32 {
        let w = self.live(index);
        w[1] |= add as u64;
        if bump {
            w[0] = (w[0] as u32).wrapping_add(1) as u64;
        }
        let b = w[0] as u32;
        let w = *w;
        self.st[index as usize] = St::Live { w, canfree: true };
        b
    }

    /// The region as an agent should read it: (barrier, flags, gtid, switch_time, runtime) per word.
    fn expected(&self, i: usize) -> [u64; 5] {
        match self.st[i] {
            St::Free => [0; 5],
            St::Allocated => [0, ALLOCATED as u64, 0, 0, 0],
            St::Live { w, .. } => w,
        }
    }
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
    if v.is_empty() {
        None
    } else {
        let n = v.len();
        v.get_mut(slot as usize % n)
    }
}

fuzz_target!(|input: Input| {
    let cap = 1 + input.capacity as u32 % 128;
    let r = OwnedRegion::new(region_len(cap));
    let writer = Writer::<&OwnedRegion, 2>::with_capacity(&r, ID, 0, cap).unwrap();
    let mut m = Model { cursor: 0, available: cap, st: vec![St::Free; cap as usize] };
    let mut allocs: Vec<Allocated<'_, &OwnedRegion, 2>> = Vec::new();
    let mut words: Vec<Word<'_, &OwnedRegion, 2>> = Vec::new();
    let mut retired: Vec<Retired> = Vec::new();
    let mut scribbled = false;

    for op in input.ops.iter().take(400) {
        match *op {
            Op::Alloc => match (writer.alloc(), m.alloc()) {
                (Ok(a), Some(i)) => {
                    assert_eq!(a.index(), i);
                    allocs.push(a);
                }
                (Err(AllocError), None) => assert_eq!(m.available, 0),
                (got, want) => panic!("alloc: {:?} vs model {want:?}", got.map(|a| a.index())),
            },
            Op::Init { slot, gtid, flags } => {
                if let Some(a) = pick(&mut allocs, slot) {
                    let i = a.index();
                    let word = a.init(Gtid(gtid), SwFlags::from_bits_retain(flags));
                    let f = (ALLOCATED | INUSE | (flags & DYNAMIC)) as u64;
                    m.st[i as usize] = St::Live { w: [0, f, gtid as u64, 0, 0], canfree: false };
                    assert_eq!(word.flags().bits() as u64, f);
                    words.push(word);
                }
            }
            Op::Release { slot } => {
                if let Some(a) = pick(&mut allocs, slot) {
                    m.st[a.index() as usize] = St::Free;
                    m.available += 1;
                    a.release();
                }
            }
            Op::Flags { slot, set, clear } => {
                if let Some(w) = get(&mut words, slot) {
                    w.update_flags(SwFlags::from_bits_retain(set), SwFlags::from_bits_retain(clear));
                    let mw = m.live(w.index());
                    mw[1] = ((mw[1] as u32 & !(clear & DYNAMIC)) | (set & DYNAMIC)) as u64;
                    assert_eq!(w.flags().bits() as u64, mw[1]);
                }
            }
            Op::SwitchIn { slot, now } => {
                if let Some(w) = get(&mut words, slot) {
                    w.switched_in(now);
                    let mw = m.live(w.index());
                    mw[3] = now as u64;
                    mw[1] |= 0x10000;
                }
            }
            Op::SwitchOut { slot } => {
                if let Some(w) = get(&mut words, slot) {
                    w.switched_out();
                    m.live(w.index())[1] &= !0x10000;
                }
            }
            Op::Runtime { slot, ns } => {
                if let Some(w) = get(&mut words, slot) {
                    w.set_runtime(ns);
                    m.live(w.index())[4] = ns;
                }
            }
            Op::Bump { slot } => {
                if let Some(w) = get(&mut words, slot) {
                    let i = w.index();
                    let seq = w.bump_barrier_then(|seq| seq);
                    let mw = m.live(i);
                    mw[0] = (mw[0] as u32).wrapping_add(1) as u64;
                    assert_eq!(seq as u64, mw[0]);
                }
            }
            Op::Publish { slot, barrier } => {
                if let Some(w) = get(&mut words, slot) {
                    w.publish_barrier(barrier.into());
                    m.live(w.index())[0] = barrier as u64;
                }
            }
            Op::Stale { slot, seen } => {
                if let Some(w) = get(&mut words, slot) {
                    assert_eq!(w.is_stale(seen), seen as u64 != m.live(w.index())[0]);
                }
            }
            Op::Depart { slot } => {
                if let Some(w) = pick(&mut words, slot) {
                    let i = w.index();
                    let (ret, seq) = w.depart_then(|seq| seq);
                    assert_eq!(seq, m.retire(i, CANFREE | MSG_GATED, true));
                    retired.push(ret);
                }
            }
            Op::Die { slot } => {
                if let Some(w) = pick(&mut words, slot) {
                    let i = w.index();
                    let (ret, seq) = w.die_then(|seq| seq);
                    assert_eq!(seq, m.retire(i, CANFREE, true));
                    retired.push(ret);
                }
            }
            Op::Retire { slot } => {
                if let Some(w) = pick(&mut words, slot) {
                    let i = w.index();
                    m.retire(i, CANFREE, false);
                    retired.push(w.retire());
                }
            }
            Op::Free { id, index } => assert_eq!(writer.free(id, index), m.free(id, index)),
            Op::FreeRetired { slot, hostile_id } => {
                // A known index (the agent frees what it was told about), possibly twice or with a wrong id.
                if let Some(ret) = get(&mut retired, slot) {
                    let info = ret.info();
                    let id = if hostile_id { info.id ^ 1 } else { info.id };
                    assert_eq!(writer.free(id, info.index), m.free(id, info.index));
                }
            }
            Op::Reclaim { slot } => {
                if let Some(ret) = pick(&mut retired, slot) {
                    let index = ret.index();
                    assert_eq!(writer.reclaim(ret), m.free(ID, index));
                }
            }
            Op::Scribble { word, field, value } => {
                // A hostile agent with a writable mapping: any field of any word, or the header.
                let off = if word as u32 % (cap + 1) == cap {
                    4 * (field as usize % 16)
                } else {
                    region_len(word as u32 % (cap + 1)) + [0, 4, 8, 16, 24][field as usize % 5]
                };
                // SAFETY: `off` is a field offset inside the region, aligned for its width.
                unsafe {
                    if off < 64 || (off - 64) % 32 < 8 {
                        r.store_u32(off, value as u32, Ordering::Relaxed);
                    } else {
                        r.store_u64(off, value, Ordering::Relaxed);
                    }
                }
                scribbled = true;
            }
        }

        assert_eq!(writer.available(), m.available);
        assert_eq!(m.st.iter().filter(|s| **s == St::Free).count() as u32, m.available);
        if !scribbled {
            let rd = Reader::attach(&r).expect("the kernel's header is valid");
            assert_eq!(rd.available(), Ok(m.available));
            for i in 0..cap {
                let s = rd.snapshot_with(i, 1).unwrap();
                let got = [s.barrier.0 as u64, s.flags.bits() as u64, s.gtid.0 as u64, s.switch_time as u64, s.runtime];
                assert_eq!(got, m.expected(i as usize), "word {i}");
            }
            let tasks = (0..cap as usize).filter(|&i| {
                let f = m.expected(i)[1] as u32;
                f & INUSE != 0 && f & 0x40000 == 0
            });
            assert_eq!(
                rd.discover().map(|x| x.unwrap().0).collect::<Vec<_>>(),
                tasks.map(|i| i as u32).collect::<Vec<_>>()
            );
        }
    }
});
