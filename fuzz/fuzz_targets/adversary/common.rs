//! Shared by the `adversary_*` fuzz targets (included with `#[path]`; not a target itself).
//!
//! - [`Guarded`]: a region inside a larger heap allocation whose bytes before and after it hold a pattern that
//!   must stay untouched (AddressSanitizer catches accesses past the allocation; the guard bytes catch accesses
//!   that stay inside it, e.g. into the slack after a ring or past a word).
//! - [`Spy`]: a [`SharedMem`] backend over that region that checks every access against the backend contract
//!   (aligned, in bounds) *before* performing it and logs it, so a target can assert exactly what the kernel
//!   side read and wrote. The agent's writes go around the spy, straight to the [`RawRegion`].
#![allow(dead_code)]

use ghost_shm::shm::{RawRegion, SharedMem, SharedMemRead};
use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::cell::RefCell;
use std::sync::atomic::Ordering;

/// Guard bytes on each side of a region.
pub const GUARD: usize = 512;

fn pattern(i: usize) -> u8 {
    0xA5 ^ (i as u8).wrapping_mul(29)
}

/// `pattern(from..from + n)`, built from whole copies of its 256-byte period (`pattern` depends on `i as u8`
/// only): a per-byte loop here, run for every input, is slow under cargo-fuzz's comparison tracing.
fn pattern_bytes(out: &mut Vec<u8>, from: usize, n: usize) {
    static PERIOD: std::sync::LazyLock<Vec<u8>> = std::sync::LazyLock::new(|| (0..512).map(pattern).collect());
    let mut done = 0;
    while done < n {
        let at = (from + done) % 256;
        let take = (n - done).min(256);
        out.extend_from_slice(&PERIOD[at..at + take]);
        done += take;
    }
}

/// `len` zeroed bytes at a 64-aligned address, between two guard areas.
pub struct Guarded {
    base: *mut u8,
    layout: Layout,
    len: usize,
    /// The guard bytes as written: the leading area, then the trailing one.
    expected: Vec<u8>,
}

impl Guarded {
    /// A zeroed region of `len` bytes with guards.
    pub fn new(len: usize) -> Guarded {
        let total = GUARD + len.next_multiple_of(64) + GUARD;
        let layout = Layout::from_size_align(total, 64).expect("layout");
        // SAFETY: `total` is non-zero.
        let base = unsafe { alloc_zeroed(layout) };
        assert!(!base.is_null(), "allocation failed");
        let mut expected = Vec::with_capacity(total - len);
        pattern_bytes(&mut expected, 0, GUARD);
        pattern_bytes(&mut expected, GUARD + len, total - GUARD - len);
        // SAFETY: both copies stay inside the allocation (0..GUARD and GUARD + len..total); no region over it
        // exists yet; `expected` is a separate allocation.
        unsafe {
            std::ptr::copy_nonoverlapping(expected.as_ptr(), base, GUARD);
            std::ptr::copy_nonoverlapping(expected[GUARD..].as_ptr(), base.add(GUARD + len), total - GUARD - len);
        }
        Guarded { base, layout, len, expected }
    }

    /// The region, for the kernel side (through a [`Spy`]) and for the agent's writes.
    pub fn region(&self) -> RawRegion<'_> {
        // SAFETY: `GUARD..GUARD + len` is inside the allocation, which lives until `self` is dropped (the targets
        // drop every handle first); the base is 64-aligned. The region's bytes are only accessed through atomics;
        // the guard bytes, read in `check`, are outside it.
        unsafe { RawRegion::new(self.base.add(GUARD), self.len) }.expect("aligned, non-null")
    }

    /// Panics if any guard byte changed. Two slice comparisons (one `memcmp` each): a byte-by-byte loop here,
    /// after every step, used to cost more than the kernel code under test, because cargo-fuzz instruments
    /// every comparison.
    pub fn check(&self) {
        let total = self.layout.size();
        // SAFETY: both ranges are inside the allocation and outside the region, so they are never accessed
        // atomically (nor written by anyone while this shared borrow lives: the targets are single-threaded).
        let (lead, trail) = unsafe {
            (
                std::slice::from_raw_parts(self.base, GUARD),
                std::slice::from_raw_parts(self.base.add(GUARD + self.len), total - GUARD - self.len),
            )
        };
        if lead != &self.expected[..GUARD] || trail != &self.expected[GUARD..] {
            let (i, _) = lead
                .iter()
                .chain(trail)
                .zip(&self.expected)
                .enumerate()
                .find(|(_, (a, b))| a != b)
                .expect("a differing byte");
            let off = if i < GUARD { i as isize - GUARD as isize } else { (self.len + i - GUARD) as isize };
            panic!("guard byte at region offset {off} overwritten");
        }
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout, freed once.
        unsafe { dealloc(self.base, self.layout) };
    }
}

/// One access by the kernel side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ev {
    Load32(usize, u32),
    Store32(usize, u32),
    Cas32 { off: usize, current: u32, new: u32, ok: bool },
    Add32(usize, u32),
    Load64(usize, u64),
    Store64(usize, u64),
    Read(usize, u32),
    Write(usize, u32),
}

impl Ev {
    /// The byte offset accessed.
    pub fn off(&self) -> usize {
        match *self {
            Ev::Load32(o, _)
            | Ev::Store32(o, _)
            | Ev::Cas32 { off: o, .. }
            | Ev::Add32(o, _)
            | Ev::Load64(o, _)
            | Ev::Store64(o, _)
            | Ev::Read(o, _)
            | Ev::Write(o, _) => o,
        }
    }

    /// Whether the access reads the region.
    pub fn reads(&self) -> bool {
        matches!(self, Ev::Load32(..) | Ev::Load64(..) | Ev::Read(..) | Ev::Cas32 { .. } | Ev::Add32(..))
    }

    /// Whether the access changes the region.
    pub fn writes(&self) -> bool {
        matches!(self, Ev::Store32(..) | Ev::Write(..) | Ev::Store64(..) | Ev::Add32(..) | Ev::Cas32 { ok: true, .. })
    }

    /// Bytes the access covers.
    pub fn width(&self) -> usize {
        match self {
            Ev::Load64(..) | Ev::Store64(..) => 8,
            _ => 4,
        }
    }
}

/// A logging, contract-checking [`SharedMem`] over a [`RawRegion`].
pub struct Spy<'a> {
    pub mem: RawRegion<'a>,
    pub log: &'a RefCell<Vec<Ev>>,
    /// Called after every kernel access is logged: lets a target interleave agent stores *between* two accesses
    /// of one kernel operation (e.g. between a claim's reads), the finest schedule a racing agent can produce.
    between: Option<&'a dyn Fn()>,
}

impl<'a> Spy<'a> {
    pub fn new(mem: RawRegion<'a>, log: &'a RefCell<Vec<Ev>>) -> Spy<'a> {
        Spy { mem, log, between: None }
    }

    /// A spy that calls `between` after every kernel access.
    pub fn with_between(mem: RawRegion<'a>, log: &'a RefCell<Vec<Ev>>, between: &'a dyn Fn()) -> Spy<'a> {
        Spy { mem, log, between: Some(between) }
    }

    fn check(&self, off: usize, width: usize) {
        assert!(
            off % width == 0 && off.checked_add(width).is_some_and(|e| e <= self.mem.len()),
            "kernel access of {width} bytes at offset {off} breaks the SharedMem contract (len {})",
            self.mem.len()
        );
    }

    fn push(&self, e: Ev) {
        self.log.borrow_mut().push(e);
        if let Some(f) = self.between {
            f();
        }
    }
}

/// Takes the events logged so far.
pub fn take(log: &RefCell<Vec<Ev>>) -> Vec<Ev> {
    std::mem::take(&mut *log.borrow_mut())
}

// SAFETY: every method checks the contract (aligned, in bounds) with a panic before forwarding to `RawRegion`,
// which upholds it for valid calls.
unsafe impl SharedMemRead for Spy<'_> {
    fn len(&self) -> usize {
        self.mem.len()
    }
    unsafe fn load_u32_relaxed(&self, off: usize) -> u32 {
        self.check(off, 4);
        // SAFETY: checked above.
        let v = unsafe { self.mem.load_u32_relaxed(off) };
        self.push(Ev::Load32(off, v));
        v
    }
    unsafe fn load_u64_relaxed(&self, off: usize) -> u64 {
        self.check(off, 8);
        // SAFETY: checked above.
        let v = unsafe { self.mem.load_u64_relaxed(off) };
        self.push(Ev::Load64(off, v));
        v
    }
    unsafe fn read_data(&self, off: usize) -> u32 {
        self.check(off, 4);
        // SAFETY: checked above.
        let v = unsafe { self.mem.read_data(off) };
        self.push(Ev::Read(off, v));
        v
    }
}

// SAFETY: as above.
unsafe impl SharedMem for Spy<'_> {
    unsafe fn load_u32(&self, off: usize, order: Ordering) -> u32 {
        self.check(off, 4);
        // SAFETY: checked above.
        let v = unsafe { self.mem.load_u32(off, order) };
        self.push(Ev::Load32(off, v));
        v
    }
    unsafe fn store_u32(&self, off: usize, val: u32, order: Ordering) {
        self.check(off, 4);
        // SAFETY: checked above.
        unsafe { self.mem.store_u32(off, val, order) };
        self.push(Ev::Store32(off, val));
    }
    unsafe fn compare_exchange_u32(
        &self,
        off: usize,
        current: u32,
        new: u32,
        success: Ordering,
        failure: Ordering,
    ) -> Result<u32, u32> {
        self.check(off, 4);
        // SAFETY: checked above.
        let r = unsafe { self.mem.compare_exchange_u32(off, current, new, success, failure) };
        self.push(Ev::Cas32 { off, current, new, ok: r.is_ok() });
        r
    }
    unsafe fn fetch_add_u32(&self, off: usize, val: u32, order: Ordering) -> u32 {
        self.check(off, 4);
        // SAFETY: checked above.
        let v = unsafe { self.mem.fetch_add_u32(off, val, order) };
        self.push(Ev::Add32(off, val));
        v
    }
    unsafe fn load_u64(&self, off: usize, order: Ordering) -> u64 {
        self.check(off, 8);
        // SAFETY: checked above.
        let v = unsafe { self.mem.load_u64(off, order) };
        self.push(Ev::Load64(off, v));
        v
    }
    unsafe fn store_u64(&self, off: usize, val: u64, order: Ordering) {
        self.check(off, 8);
        // SAFETY: checked above.
        unsafe { self.mem.store_u64(off, val, order) };
        self.push(Ev::Store64(off, val));
    }
    unsafe fn write_data(&self, off: usize, val: u32) {
        self.check(off, 4);
        // SAFETY: checked above.
        unsafe { self.mem.write_data(off, val) };
        self.push(Ev::Write(off, val));
    }
}

/// The agent's raw `u32` store at `off` (4-aligned and in bounds, else ignored): what a hostile agent writes.
pub fn agent_store32(mem: &RawRegion, off: usize, val: u32) {
    if off % 4 == 0 && off + 4 <= mem.len() {
        // SAFETY: aligned and in bounds (checked).
        unsafe { mem.store_u32(off, val, Ordering::Release) };
    }
}

/// The agent's raw `u64` store at `off` (8-aligned and in bounds, else ignored).
pub fn agent_store64(mem: &RawRegion, off: usize, val: u64) {
    if off % 8 == 0 && off + 8 <= mem.len() {
        // SAFETY: aligned and in bounds (checked).
        unsafe { mem.store_u64(off, val, Ordering::Release) };
    }
}

/// A `u32` of the region as the agent reads it (4-aligned and in bounds, else 0).
pub fn peek32(mem: &RawRegion, off: usize) -> u32 {
    if off % 4 == 0 && off + 4 <= mem.len() {
        // SAFETY: aligned and in bounds (checked).
        unsafe { mem.load_u32(off, Ordering::Acquire) }
    } else {
        0
    }
}

/// A `u64` of the region as the agent reads it (8-aligned and in bounds, else 0).
pub fn peek64(mem: &RawRegion, off: usize) -> u64 {
    if off % 8 == 0 && off + 8 <= mem.len() {
        // SAFETY: aligned and in bounds (checked).
        unsafe { mem.load_u64(off, Ordering::Acquire) }
    } else {
        0
    }
}
