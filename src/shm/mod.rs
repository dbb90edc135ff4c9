//! Access to shared memory: the one place where the crate touches a region the other side also writes.
//!
//! Every protocol in this crate (queue, status words, transactions) is written once, generic over
//! [`SharedMem`], a small backend that offers typed atomic accesses at byte offsets plus plain "data" words:
//!
//! - [`RawRegion`]: the production backend, over a raw pointer into a mapping (or a kernel buffer). Every access
//!   is a `core::sync::atomic` operation, so a concurrent, hostile writer on the other side can change the
//!   *values* we read but cannot cause undefined behaviour in our process.
//! - `OwnedRegion` (`std` or tests): zeroed, 64-byte-aligned heap memory for tests, benches and simulations.
//! - `LoomRegion` (`cfg(loom)`): control words are loom atomics and data words are `loom::cell::UnsafeCell`s, so
//!   the loom model checker runs the *production* protocol code and flags any payload read that races a
//!   payload write (i.e. a missing Release/Acquire pair).
//!
//! Offsets are byte offsets from the start of the region. Data words are 4-byte units (ghOSt ring slots are
//! only 4-byte aligned) that the protocol orders through a Release/Acquire pair on a control word; two data
//! words at an 8-aligned offset may move together ([`SharedMem::read_data_pair`]); a data word and a control
//! word never overlap.

use core::ptr::NonNull;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

#[cfg(loom)]
mod loom_region;
#[cfg(loom)]
pub use loom_region::LoomRegion;

#[cfg(any(feature = "std", test))]
mod owned;
#[cfg(any(feature = "std", test))]
pub use owned::OwnedRegion;

/// A region of shared memory, accessed only through atomics and data words.
///
/// # Safety
///
/// An implementation promises that every method below is sound to call whenever its own `# Safety` conditions
/// hold (offset in bounds and aligned), no matter what another thread or process writes to the region at the
/// same time, and that [`len`](SharedMem::len) does not change while the value is alive.
pub unsafe trait SharedMem {
    /// Length of the region in bytes.
    fn len(&self) -> usize;

    /// Whether the region has no bytes at all.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Atomically loads the `u32` at `off`.
    ///
    /// # Safety
    /// `off` is a multiple of 4 and `off + 4 <= self.len()`.
    unsafe fn load_u32(&self, off: usize, order: Ordering) -> u32;

    /// Atomically stores `val` into the `u32` at `off`.
    ///
    /// # Safety
    /// As for [`load_u32`](SharedMem::load_u32).
    unsafe fn store_u32(&self, off: usize, val: u32, order: Ordering);

    /// Atomic compare-and-exchange of the `u32` at `off`.
    ///
    /// # Safety
    /// As for [`load_u32`](SharedMem::load_u32).
    unsafe fn compare_exchange_u32(
        &self,
        off: usize,
        current: u32,
        new: u32,
        success: Ordering,
        failure: Ordering,
    ) -> Result<u32, u32>;

    /// Atomic wrapping add to the `u32` at `off`; returns the previous value.
    ///
    /// # Safety
    /// As for [`load_u32`](SharedMem::load_u32).
    unsafe fn fetch_add_u32(&self, off: usize, val: u32, order: Ordering) -> u32;

    /// Atomically loads the `u64` at `off`.
    ///
    /// # Safety
    /// `off` is a multiple of 8 and `off + 8 <= self.len()`.
    unsafe fn load_u64(&self, off: usize, order: Ordering) -> u64;

    /// Atomically stores `val` into the `u64` at `off`.
    ///
    /// # Safety
    /// As for [`load_u64`](SharedMem::load_u64).
    unsafe fn store_u64(&self, off: usize, val: u64, order: Ordering);

    /// Reads the 4-byte data word at `off` (ordered by the protocol through a control word).
    ///
    /// # Safety
    /// As for [`load_u32`](SharedMem::load_u32).
    unsafe fn read_data(&self, off: usize) -> u32;

    /// Writes the 4-byte data word at `off` (published by the protocol through a control word).
    ///
    /// # Safety
    /// As for [`load_u32`](SharedMem::load_u32).
    unsafe fn write_data(&self, off: usize, val: u32);

    /// Reads the data words at `off` and `off + 4`, in that order of the returned array. Each word is read as
    /// by [`read_data`](SharedMem::read_data); a backend may read both with one 8-byte access (the default
    /// makes two [`read_data`](SharedMem::read_data) calls). Slot arrays that are only 4-aligned use this for
    /// their 8-aligned word pairs, halving the accesses of a message copy.
    ///
    /// # Safety
    /// As for [`load_u64`](SharedMem::load_u64): `off` is a multiple of 8 and `off + 8 <= self.len()`.
    #[inline(always)]
    unsafe fn read_data_pair(&self, off: usize) -> [u32; 2] {
        // SAFETY: off is 8-aligned (so 4-aligned) and off + 8 <= len, so both words are in bounds (our contract).
        unsafe { [self.read_data(off), self.read_data(off + 4)] }
    }

    /// Writes `val[0]` to the data word at `off` and `val[1]` to the one at `off + 4`, as by
    /// [`write_data`](SharedMem::write_data); a backend may write both with one 8-byte access (the default makes
    /// two [`write_data`](SharedMem::write_data) calls).
    ///
    /// # Safety
    /// As for [`read_data_pair`](SharedMem::read_data_pair).
    #[inline(always)]
    unsafe fn write_data_pair(&self, off: usize, val: [u32; 2]) {
        // SAFETY: as in read_data_pair.
        unsafe {
            self.write_data(off, val[0]);
            self.write_data(off + 4, val[1]);
        }
    }

    /// A memory fence of the backend's memory model.
    fn fence(&self, order: Ordering) {
        core::sync::atomic::fence(order);
    }

    /// Called once per iteration of every spin loop (`core::hint::spin_loop`; loom yields instead).
    fn spin_hint(&self) {
        core::hint::spin_loop();
    }
}

/// Spin hints between two polls of a word the other side is about to write (a transaction's state, a ring's
/// `head`), in the crate's spinning waits ([`crate::txn::PendingTxn::wait`],
/// [`crate::queue::Consumer::spin_until_pending`]). Polling a cache line back to back takes it away from the
/// writer between its stores, and on SMT siblings takes the core's issue slots from it; a short pause between
/// polls made the transaction round trip 3–4× and the queue ping-pong 1.4× faster on the benchmark machine
/// (BENCHMARKS.md). Agents writing their own poll loops should pause likewise.
pub const POLL_BACKOFF: u32 = 8;

/// Implements [`SharedMem`] for a type by forwarding every call to an inner `SharedMem` (`$s` names `self`).
macro_rules! forward_shared_mem {
    ([$($gen:tt)*] $ty:ty, $s:ident => $inner:expr) => {
        // SAFETY: every call is forwarded unchanged to the inner region, which upholds the contract itself for
        // the memory this value keeps alive.
        unsafe impl<$($gen)*> $crate::shm::SharedMem for $ty {
            #[inline(always)]
            fn len(&self) -> usize {
                let $s = self;
                $inner.len()
            }
            #[inline(always)]
            unsafe fn load_u32(&self, off: usize, order: core::sync::atomic::Ordering) -> u32 {
                let $s = self;
                // SAFETY: same contract, forwarded.
                unsafe { $inner.load_u32(off, order) }
            }
            #[inline(always)]
            unsafe fn store_u32(&self, off: usize, val: u32, order: core::sync::atomic::Ordering) {
                let $s = self;
                // SAFETY: same contract, forwarded.
                unsafe { $inner.store_u32(off, val, order) }
            }
            #[inline(always)]
            unsafe fn compare_exchange_u32(
                &self,
                off: usize,
                current: u32,
                new: u32,
                success: core::sync::atomic::Ordering,
                failure: core::sync::atomic::Ordering,
            ) -> Result<u32, u32> {
                let $s = self;
                // SAFETY: same contract, forwarded.
                unsafe { $inner.compare_exchange_u32(off, current, new, success, failure) }
            }
            #[inline(always)]
            unsafe fn fetch_add_u32(&self, off: usize, val: u32, order: core::sync::atomic::Ordering) -> u32 {
                let $s = self;
                // SAFETY: same contract, forwarded.
                unsafe { $inner.fetch_add_u32(off, val, order) }
            }
            #[inline(always)]
            unsafe fn load_u64(&self, off: usize, order: core::sync::atomic::Ordering) -> u64 {
                let $s = self;
                // SAFETY: same contract, forwarded.
                unsafe { $inner.load_u64(off, order) }
            }
            #[inline(always)]
            unsafe fn store_u64(&self, off: usize, val: u64, order: core::sync::atomic::Ordering) {
                let $s = self;
                // SAFETY: same contract, forwarded.
                unsafe { $inner.store_u64(off, val, order) }
            }
            #[inline(always)]
            unsafe fn read_data(&self, off: usize) -> u32 {
                let $s = self;
                // SAFETY: same contract, forwarded.
                unsafe { $inner.read_data(off) }
            }
            #[inline(always)]
            unsafe fn write_data(&self, off: usize, val: u32) {
                let $s = self;
                // SAFETY: same contract, forwarded.
                unsafe { $inner.write_data(off, val) }
            }
            #[inline(always)]
            unsafe fn read_data_pair(&self, off: usize) -> [u32; 2] {
                let $s = self;
                // SAFETY: same contract, forwarded.
                unsafe { $inner.read_data_pair(off) }
            }
            #[inline(always)]
            unsafe fn write_data_pair(&self, off: usize, val: [u32; 2]) {
                let $s = self;
                // SAFETY: same contract, forwarded.
                unsafe { $inner.write_data_pair(off, val) }
            }
            #[inline(always)]
            fn fence(&self, order: core::sync::atomic::Ordering) {
                let $s = self;
                $inner.fence(order)
            }
            #[inline(always)]
            fn spin_hint(&self) {
                let $s = self;
                $inner.spin_hint()
            }
        }
    };
}
// Other modules' use (`OwnedRegion`) exists only with `std` or in tests.
#[cfg(any(feature = "std", test))]
pub(crate) use forward_shared_mem;

forward_shared_mem!([T: SharedMem + ?Sized] &T, s => (**s));
#[cfg(any(feature = "std", test))]
forward_shared_mem!([T: SharedMem + ?Sized] std::sync::Arc<T>, s => (**s));

/// Why a pointer and length cannot be used as a [`RawRegion`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegionError {
    /// The base pointer is null.
    Null,
    /// The base pointer is not 8-byte aligned (mappings are page-aligned; `u64` atomics need 8).
    Misaligned,
    /// The region is larger than `isize::MAX` bytes.
    TooLarge,
}

impl core::fmt::Display for RegionError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            RegionError::Null => "region base pointer is null",
            RegionError::Misaligned => "region base pointer is not 8-byte aligned",
            RegionError::TooLarge => "region is larger than isize::MAX bytes",
        })
    }
}

/// The production backend: a raw pointer and a length, every access a `core::sync::atomic` operation.
///
/// `RawRegion` is `Copy`: it does not own the memory. Whoever creates it keeps the memory mapped (and valid
/// for atomic access) for as long as any copy, or any protocol handle built on it, is used.
#[derive(Debug, Clone, Copy)]
pub struct RawRegion {
    base: NonNull<u8>,
    len: usize,
}

// SAFETY: all accesses through a RawRegion are atomic, so sharing or sending the pointer between threads
// cannot introduce a data race.
unsafe impl Send for RawRegion {}
// SAFETY: as above.
unsafe impl Sync for RawRegion {}

impl RawRegion {
    /// Wraps `len` bytes at `base`.
    ///
    /// # Safety
    /// `base..base + len` must stay valid for reads and writes (through atomics) for as long as the returned
    /// value, any copy of it, or any handle built on it is used, and must not be accessed through non-atomic
    /// Rust references during that time (other processes and the kernel may of course write it).
    pub unsafe fn new(base: *mut u8, len: usize) -> Result<Self, RegionError> {
        let base = NonNull::new(base).ok_or(RegionError::Null)?;
        if base.as_ptr() as usize % 8 != 0 {
            return Err(RegionError::Misaligned);
        }
        if len > isize::MAX as usize {
            return Err(RegionError::TooLarge);
        }
        Ok(RawRegion { base, len })
    }

    /// The base pointer.
    pub fn as_ptr(&self) -> *mut u8 {
        self.base.as_ptr()
    }

    #[inline(always)]
    fn a32(&self, off: usize) -> &AtomicU32 {
        debug_assert!(off % 4 == 0 && off + 4 <= self.len);
        // SAFETY: the caller of the SharedMem method guarantees `off` is 4-aligned and in bounds; the base is
        // 8-aligned (checked in `new`), so the address is aligned for AtomicU32, and `new`'s contract keeps
        // the memory valid and only atomically accessed while `self` is used.
        unsafe { &*(self.base.as_ptr().add(off) as *const AtomicU32) }
    }

    #[inline(always)]
    fn a64(&self, off: usize) -> &AtomicU64 {
        debug_assert!(off % 8 == 0 && off + 8 <= self.len);
        // SAFETY: as in `a32`, with 8-byte alignment guaranteed by the caller and the 8-aligned base.
        unsafe { &*(self.base.as_ptr().add(off) as *const AtomicU64) }
    }
}

// SAFETY: every access is an atomic operation on an aligned, in-bounds location (the callers' contract), so a
// concurrent writer anywhere cannot make these calls undefined behaviour.
unsafe impl SharedMem for RawRegion {
    #[inline(always)]
    fn len(&self) -> usize {
        self.len
    }
    #[inline(always)]
    unsafe fn load_u32(&self, off: usize, order: Ordering) -> u32 {
        self.a32(off).load(order)
    }
    #[inline(always)]
    unsafe fn store_u32(&self, off: usize, val: u32, order: Ordering) {
        self.a32(off).store(val, order)
    }
    #[inline(always)]
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
    #[inline(always)]
    unsafe fn fetch_add_u32(&self, off: usize, val: u32, order: Ordering) -> u32 {
        self.a32(off).fetch_add(val, order)
    }
    #[inline(always)]
    unsafe fn load_u64(&self, off: usize, order: Ordering) -> u64 {
        self.a64(off).load(order)
    }
    #[inline(always)]
    unsafe fn store_u64(&self, off: usize, val: u64, order: Ordering) {
        self.a64(off).store(val, order)
    }
    #[inline(always)]
    unsafe fn read_data(&self, off: usize) -> u32 {
        // Relaxed atomic: a plain `mov` on x86_64/aarch64, yet well-defined if the other side races us.
        self.a32(off).load(Ordering::Relaxed)
    }
    #[inline(always)]
    unsafe fn write_data(&self, off: usize, val: u32) {
        self.a32(off).store(val, Ordering::Relaxed)
    }
    // Mixed-size atomics: a slot word is sometimes written as half of a pair and later read alone (or the
    // other way round), always ordered by the protocol's Release/Acquire pairs, never racing, which Rust's
    // memory model allows (only a racing write must match the other access's size). Miri's weak-memory
    // emulation cannot represent overlapping atomics of different sizes at all (it aborts), so under Miri these
    // two fall back to the trait's default, two 4-byte accesses: the same protocol at word width.
    #[cfg(not(miri))]
    #[inline(always)]
    unsafe fn read_data_pair(&self, off: usize) -> [u32; 2] {
        // One Relaxed 8-byte load (a plain `mov`); its native-endian bytes are the word at `off`, then the one
        // at `off + 4`.
        let b = self.a64(off).load(Ordering::Relaxed).to_ne_bytes();
        [u32::from_ne_bytes([b[0], b[1], b[2], b[3]]), u32::from_ne_bytes([b[4], b[5], b[6], b[7]])]
    }
    #[cfg(not(miri))]
    #[inline(always)]
    unsafe fn write_data_pair(&self, off: usize, val: [u32; 2]) {
        let (a, b) = (val[0].to_ne_bytes(), val[1].to_ne_bytes());
        self.a64(off).store(u64::from_ne_bytes([a[0], a[1], a[2], a[3], b[0], b[1], b[2], b[3]]), Ordering::Relaxed)
    }
}
