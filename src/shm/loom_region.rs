//! The loom backend: the production protocol code, run under the loom model checker.

use super::{SharedMem, SharedMemRead};
use core::sync::atomic::Ordering;
use loom::cell::UnsafeCell;
use loom::sync::atomic::{AtomicU32, AtomicU64};
use std::vec::Vec;

enum Word {
    /// A data word: loom reports a read that is not ordered after the last write (and vice versa).
    Data(UnsafeCell<u32>),
    /// A 32-bit control word.
    A32(AtomicU32),
    /// The low half of a 64-bit control word (the high half is `A64Hi`).
    A64(AtomicU64),
    A64Hi,
}

/// A region for loom models: each 4-byte word is either a loom atomic (a control word the protocol accesses
/// atomically) or a loom `UnsafeCell` (a data word ordered by the protocol).
///
/// Accessing a word with the wrong kind of operation panics: that is a protocol bug (e.g. a field the protocol
/// treats as data accessed atomically somewhere), and it fails the model.
pub struct LoomRegion {
    len: usize,
    words: Vec<Word>,
}

impl core::fmt::Debug for LoomRegion {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("LoomRegion").field("len", &self.len).finish()
    }
}

// SAFETY: shared between loom model threads on purpose: control words are loom atomics, and data words are
// loom UnsafeCells whose every access loom checks for races (a race fails the model instead of being UB).
unsafe impl Sync for LoomRegion {}
// SAFETY: as above; the region owns its words.
unsafe impl Send for LoomRegion {}

impl LoomRegion {
    /// A zeroed region of `len` bytes (a multiple of 4) whose `u32` control words are at `atomics32` and `u64`
    /// control words at `atomics64`; every other word is a data word.
    pub fn new(len: usize, atomics32: &[usize], atomics64: &[usize]) -> Self {
        Self::sparse(len, len, atomics32, atomics64)
    }

    /// Like [`new`](LoomRegion::new), but only the first `backed` bytes exist as model objects (keeping models
    /// small when the ABI fixes a large region, e.g. a 4096-byte queue mapping of 4 slots); an access beyond
    /// `backed` panics, failing the model.
    pub fn sparse(len: usize, backed: usize, atomics32: &[usize], atomics64: &[usize]) -> Self {
        assert!(len % 4 == 0 && backed % 4 == 0 && backed <= len, "loom region lengths must be multiples of 4");
        let mut kinds = std::vec![0u8; backed / 4];
        for &o in atomics32 {
            assert!(o % 4 == 0 && o + 4 <= backed);
            kinds[o / 4] = 1;
        }
        for &o in atomics64 {
            assert!(o % 8 == 0 && o + 8 <= backed);
            kinds[o / 4] = 2;
            kinds[o / 4 + 1] = 3;
        }
        let words = kinds
            .into_iter()
            .map(|k| match k {
                0 => Word::Data(UnsafeCell::new(0)),
                1 => Word::A32(AtomicU32::new(0)),
                2 => Word::A64(AtomicU64::new(0)),
                _ => Word::A64Hi,
            })
            .collect();
        LoomRegion { len, words }
    }

    fn a32(&self, off: usize) -> &AtomicU32 {
        assert!(off % 4 == 0 && off + 4 <= self.len, "out-of-bounds u32 access at {off}");
        match self.words.get(off / 4).expect("access beyond the backed part of a loom region") {
            Word::A32(a) => a,
            _ => panic!("word at {off} is not a u32 control word"),
        }
    }

    fn a64(&self, off: usize) -> &AtomicU64 {
        assert!(off % 8 == 0 && off + 8 <= self.len, "out-of-bounds u64 access at {off}");
        match self.words.get(off / 4).expect("access beyond the backed part of a loom region") {
            Word::A64(a) => a,
            _ => panic!("word at {off} is not a u64 control word"),
        }
    }

    fn data(&self, off: usize) -> &UnsafeCell<u32> {
        assert!(off % 4 == 0 && off + 4 <= self.len, "out-of-bounds data access at {off}");
        match self.words.get(off / 4).expect("access beyond the backed part of a loom region") {
            Word::Data(c) => c,
            _ => panic!("word at {off} is a control word, accessed as data"),
        }
    }
}

// SAFETY: every access is bounds-checked (panicking in the model on a violation) and goes through loom's
// atomics or loom's UnsafeCell, which tracks and reports racing accesses instead of exhibiting UB.
unsafe impl SharedMemRead for LoomRegion {
    fn len(&self) -> usize {
        self.len
    }
    unsafe fn load_u32_relaxed(&self, off: usize) -> u32 {
        self.a32(off).load(Ordering::Relaxed)
    }
    unsafe fn load_u64_relaxed(&self, off: usize) -> u64 {
        self.a64(off).load(Ordering::Relaxed)
    }
    unsafe fn read_data(&self, off: usize) -> u32 {
        // SAFETY: loom's UnsafeCell checks that this read does not race a write; a race fails the model.
        self.data(off).with(|p| unsafe { *p })
    }
    fn fence(&self, order: Ordering) {
        loom::sync::atomic::fence(order);
    }
    fn spin_hint(&self) {
        loom::thread::yield_now();
    }
}

// SAFETY: as above.
unsafe impl SharedMem for LoomRegion {
    unsafe fn load_u32(&self, off: usize, order: Ordering) -> u32 {
        self.a32(off).load(order)
    }
    unsafe fn store_u32(&self, off: usize, val: u32, order: Ordering) {
        self.a32(off).store(val, order)
    }
    unsafe fn compare_exchange_u32(
        &self,
        off: usize,
        current: u32,
        new: u32,
        success: Ordering,
        failure: Ordering,
    ) -> Result<u32, u32> {
        self.a32(off).compare_exchange(current, new, success, failure)
    }
    unsafe fn fetch_add_u32(&self, off: usize, val: u32, order: Ordering) -> u32 {
        self.a32(off).fetch_add(val, order)
    }
    unsafe fn load_u64(&self, off: usize, order: Ordering) -> u64 {
        self.a64(off).load(order)
    }
    unsafe fn store_u64(&self, off: usize, val: u64, order: Ordering) {
        self.a64(off).store(val, order)
    }
    unsafe fn write_data(&self, off: usize, val: u32) {
        // SAFETY: loom's UnsafeCell checks that this write does not race any access; a race fails the model.
        self.data(off).with_mut(|p| unsafe { *p = val })
    }
}
