//! Heap-backed regions for tests, benches and simulations.

use super::{RawRegion, ReadOnlyRegion, SharedMem, SharedMemRead};
use core::sync::atomic::AtomicU64;
use std::boxed::Box;
#[allow(unused_imports)]
use std::vec::Vec;

/// Zero-filled, 64-byte-aligned heap memory usable as a shared region inside one process.
///
/// Real agents map the kernel's regions instead (see the `std` backends); this type serves tests, benches and
/// the simulated kernel.
pub struct OwnedRegion {
    // Allocated as a `Box<[Chunk]>` and turned into a raw pointer at once, so that no `Box` retag can
    // invalidate `raw` (Stacked Borrows treats a moved `Box` as unique). Freed in `Drop`.
    // `#[repr(align(64))]` chunks keep the base cache-line aligned like a real mapping's header.
    mem: *mut [Chunk],
    // Private: the `'static` is a lie told only to ourselves; everything handed out borrows `self`.
    raw: RawRegion<'static>,
}

// SAFETY: the memory is only accessed through atomics (RawRegion) and freed once, in Drop.
unsafe impl Send for OwnedRegion {}
// SAFETY: as above.
unsafe impl Sync for OwnedRegion {}

impl Drop for OwnedRegion {
    fn drop(&mut self) {
        // SAFETY: `mem` came from `Box::into_raw` in `new` and is freed only here, once.
        drop(unsafe { Box::from_raw(self.mem) });
    }
}

#[repr(C, align(64))]
struct Chunk([AtomicU64; 8]);

impl OwnedRegion {
    /// Allocates `len` zeroed bytes (rounded up to a multiple of 64 internally; [`len`](SharedMemRead::len)
    /// reports `len`).
    pub fn new(len: usize) -> Self {
        let chunks = len.div_ceil(64);
        let mut v = Vec::with_capacity(chunks);
        v.resize_with(chunks, || Chunk(Default::default()));
        let mem = Box::into_raw(v.into_boxed_slice());
        let base = mem as *mut Chunk as *mut u8;
        // SAFETY: the allocation is owned by the returned value and freed only in its Drop, so
        // `base..base+len` stays valid while `raw` is used; `raw` is private and every region handed out borrows
        // `self` (`raw()`, `read_only()`), so nothing built on it outlives the allocation. It is only accessed
        // through atomics. The base is 64-aligned (Chunk alignment); a dangling-but-aligned
        // pointer for len 0 is never dereferenced.
        let raw = unsafe { RawRegion::new(base, len) }.expect("heap allocation is aligned and non-null");
        OwnedRegion { mem, raw }
    }

    /// A copy of the region's bytes (for tests and golden-byte comparisons).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.raw.len() + 4);
        for off in (0..self.raw.len()).step_by(4) {
            if off + 4 > self.raw.len() {
                break;
            }
            // SAFETY: off is 4-aligned and off + 4 <= len.
            out.extend_from_slice(&unsafe { self.raw.read_data(off) }.to_le_bytes());
        }
        out
    }

    /// Overwrites the region's bytes from `bytes` (at most `len` bytes; for tests and fuzzing).
    pub fn fill_from(&self, bytes: &[u8]) {
        let n = bytes.len().min(self.raw.len()) & !3;
        for off in (0..n).step_by(4) {
            let w = u32::from_le_bytes([bytes[off], bytes[off + 1], bytes[off + 2], bytes[off + 3]]);
            // SAFETY: off is 4-aligned and off + 4 <= n <= len.
            unsafe { self.raw.write_data(off, w) };
        }
    }

    /// The doorbell word at `off` as an atomic for a futex (see `crate::wake`): crate-private, so that only a
    /// doorbell, which accesses its word at this width alone, ever gets one.
    #[cfg(feature = "std")]
    pub(crate) fn futex_atomic(&self, off: usize) -> Option<&core::sync::atomic::AtomicU32> {
        if off % 4 != 0 || off.checked_add(4)? > self.raw.len() {
            return None;
        }
        // SAFETY: in bounds and 4-aligned (the base is 64-aligned); the memory lives as long as `&self` and is
        // only accessed atomically.
        Some(unsafe { &*(self.raw.as_ptr().add(off) as *const core::sync::atomic::AtomicU32) })
    }

    /// The region as a [`RawRegion`] borrowing `self`, so it cannot outlive the memory:
    ///
    /// ```compile_fail,E0597
    /// use ghost_shm::{abi, queue::Producer, shm::OwnedRegion};
    /// let raw = {
    ///     let owned = OwnedRegion::new(abi::queue_mapsize(16));
    ///     owned.raw() // error[E0597]: `owned` does not live long enough
    /// };
    /// let _ = Producer::init(raw, 16);
    /// ```
    pub fn raw(&self) -> RawRegion<'_> {
        self.raw
    }

    /// The region with only the read capability (what an agent gets for ghOSt's read-only status words).
    pub fn read_only(&self) -> ReadOnlyRegion<'_> {
        self.raw.read_only()
    }
}

impl core::fmt::Debug for OwnedRegion {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("OwnedRegion").field("len", &self.raw.len()).finish()
    }
}

// SharedMem: forwards to the RawRegion over memory this value owns and keeps alive.
crate::shm::forward_shared_mem!(write [] OwnedRegion, s => s.raw);
