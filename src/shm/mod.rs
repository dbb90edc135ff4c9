//! Access to shared memory: the one place where the crate touches a region the other side also writes.
//!
//! Every protocol in this crate (queue, status words, transactions) is written once, generic over a small
//! backend trait that offers typed atomic accesses at byte offsets plus plain "data" words. The capability is in
//! the trait: [`SharedMemRead`] (Relaxed loads, data reads, fences: all that read-only memory permits) and
//! [`SharedMem`] (that plus stores and read-modify-writes). A protocol handle that writes needs `SharedMem`; the
//! status-word reader needs only `SharedMemRead`, so it also runs on a read-only mapping, on which nothing that
//! writes compiles.
//!
//! - [`RawRegion`]: the production backend, over a raw pointer into a mapping (or a kernel buffer), borrowing
//!   that memory for a lifetime. Every access is a `core::sync::atomic` operation, so a concurrent, hostile
//!   writer on the other side can change the *values* we read but cannot cause undefined behaviour in our
//!   process. [`ReadOnlyRegion`] is the same with only the read capability.
//! - `OwnedRegion` (`std` or tests): zeroed, 64-byte-aligned heap memory for tests, benches and simulations.
//! - `LoomRegion` (`cfg(loom)`): control words are loom atomics and data words are `loom::cell::UnsafeCell`s, so
//!   the loom model checker runs the *production* protocol code and flags any payload read that races a
//!   payload write (i.e. a missing Release/Acquire pair).
//!
//! Safe code never holds a region longer than its memory: [`RawRegion`] and [`ReadOnlyRegion`] carry the
//! lifetime of what they point into (`OwnedRegion::raw` and `MappedRegion::raw` borrow their owner), and only
//! the `unsafe` constructors let a caller choose it.
//!
//! Offsets are byte offsets from the start of the region. Data words are 4-byte units (ghOSt ring slots are
//! only 4-byte aligned) that the protocol orders through a Release/Acquire pair on a control word; two data
//! words at an 8-aligned offset may move together ([`SharedMemRead::read_data_pair`]); a data word and a control
//! word never overlap. Within one protocol every byte is accessed at one width whenever accesses may race (racing
//! atomics of different sizes are undefined behaviour in Rust); attaching two *different* protocols to
//! overlapping bytes of one region in one process is outside that guarantee (each protocol owns its region, as
//! in ghOSt), which is why the one primitive that places a word at a caller-chosen offset,
//! [`Doorbell::new`](crate::queue::Doorbell::new), is `unsafe`.

use core::marker::PhantomData;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};

#[cfg(loom)]
mod loom_region;
#[cfg(loom)]
pub use loom_region::LoomRegion;

#[cfg(any(feature = "std", test))]
mod owned;
#[cfg(any(feature = "std", test))]
pub use owned::OwnedRegion;

/// A region of shared memory the holder may only **read**: Relaxed atomic loads, data-word reads and fences.
///
/// This is the capability of memory mapped `PROT_READ` (ghOSt hands agents their status words read-only): it
/// offers no store, so writing it does not compile. Its loads are all `Relaxed` because Rust only permits
/// Relaxed atomic loads (of at most 8 bytes on x86_64 and aarch64) on read-only memory (`core::sync::atomic`,
/// "Atomic accesses to read-only memory"); a reader that needs Acquire semantics follows the load with
/// [`fence`](SharedMemRead::fence)`(Acquire)`, which synchronizes with the writer's Release store as an Acquire
/// load would.
///
/// # Safety
///
/// An implementation promises that every method below is sound to call whenever its own `# Safety` conditions
/// hold (offset in bounds and aligned), no matter what another thread or process writes to the region at the
/// same time, and that [`len`](SharedMemRead::len) does not change while the value is alive.
pub unsafe trait SharedMemRead {
    /// Length of the region in bytes.
    fn len(&self) -> usize;

    /// Whether the region has no bytes at all.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Loads the `u32` at `off` with a `Relaxed` atomic load.
    ///
    /// # Safety
    /// `off` is a multiple of 4 and `off + 4 <= self.len()`.
    unsafe fn load_u32_relaxed(&self, off: usize) -> u32;

    /// Loads the `u64` at `off` with a `Relaxed` atomic load.
    ///
    /// # Safety
    /// `off` is a multiple of 8 and `off + 8 <= self.len()`.
    unsafe fn load_u64_relaxed(&self, off: usize) -> u64;

    /// Reads the 4-byte data word at `off` (ordered by the protocol through a control word).
    ///
    /// # Safety
    /// As for [`load_u32_relaxed`](SharedMemRead::load_u32_relaxed).
    unsafe fn read_data(&self, off: usize) -> u32;

    /// Reads the data words at `off` and `off + 4`, in that order of the returned array. Each word is read as
    /// by [`read_data`](SharedMemRead::read_data); a backend may read both with one 8-byte access (the default
    /// makes two [`read_data`](SharedMemRead::read_data) calls). Slot arrays that are only 4-aligned use this
    /// for their 8-aligned word pairs, halving the accesses of a message copy.
    ///
    /// # Safety
    /// As for [`load_u64_relaxed`](SharedMemRead::load_u64_relaxed): `off` is a multiple of 8 and
    /// `off + 8 <= self.len()`.
    #[inline(always)]
    unsafe fn read_data_pair(&self, off: usize) -> [u32; 2] {
        // SAFETY: off is 8-aligned (so 4-aligned) and off + 8 <= len, so both words are in bounds (our contract).
        unsafe { [self.read_data(off), self.read_data(off + 4)] }
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

/// A region of shared memory the holder may read **and write**, accessed only through atomics and data words.
///
/// Every load of [`SharedMemRead`] is available too; this trait adds loads of any ordering, stores and
/// read-modify-writes. Only writable backends implement it ([`RawRegion`], `OwnedRegion`, a read-write
/// `MappedRegion`); a read-only mapping or a [`ReadOnlyRegion`] does not, so a protocol handle that writes
/// (producer, consumer, status-word writer, transactions) cannot be built on one.
///
/// # Safety
///
/// As for [`SharedMemRead`]; in addition the memory is writable for as long as the value is alive.
pub unsafe trait SharedMem: SharedMemRead {
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

    /// Writes the 4-byte data word at `off` (published by the protocol through a control word).
    ///
    /// # Safety
    /// As for [`load_u32`](SharedMem::load_u32).
    unsafe fn write_data(&self, off: usize, val: u32);

    /// Writes `val[0]` to the data word at `off` and `val[1]` to the one at `off + 4`, as by
    /// [`write_data`](SharedMem::write_data); a backend may write both with one 8-byte access (the default makes
    /// two [`write_data`](SharedMem::write_data) calls).
    ///
    /// # Safety
    /// As for [`read_data_pair`](SharedMemRead::read_data_pair).
    #[inline(always)]
    unsafe fn write_data_pair(&self, off: usize, val: [u32; 2]) {
        // SAFETY: as in read_data_pair.
        unsafe {
            self.write_data(off, val[0]);
            self.write_data(off + 4, val[1]);
        }
    }
}

/// Spin hints between two polls of a word the other side is about to write (a transaction's state, a ring's
/// `head`), in the crate's spinning waits ([`crate::txn::PendingTxn::wait`],
/// [`crate::queue::Consumer::spin_until_pending`]). Polling a cache line back to back takes it away from the
/// writer between its stores, and on SMT siblings takes the core's issue slots from it; a short pause between
/// polls made the transaction round trip 3–4× and the queue ping-pong 1.4× faster on the benchmark machine
/// (BENCHMARKS.md). Agents writing their own poll loops should pause likewise.
pub const POLL_BACKOFF: u32 = 8;

/// Implements [`SharedMemRead`] (`read`), [`SharedMem`] (`write_only`) or both (`write`) for a type by
/// forwarding every call to an inner backend (`$s` names `self`).
macro_rules! forward_shared_mem {
    (read [$($gen:tt)*] $ty:ty, $s:ident => $inner:expr) => {
        // SAFETY: every call is forwarded unchanged to the inner region, which upholds the contract itself for
        // the memory this value keeps alive.
        unsafe impl<$($gen)*> $crate::shm::SharedMemRead for $ty {
            #[inline(always)]
            fn len(&self) -> usize {
                let $s = self;
                $crate::shm::SharedMemRead::len(&$inner)
            }
            #[inline(always)]
            unsafe fn load_u32_relaxed(&self, off: usize) -> u32 {
                let $s = self;
                // SAFETY: same contract, forwarded.
                unsafe { $crate::shm::SharedMemRead::load_u32_relaxed(&$inner, off) }
            }
            #[inline(always)]
            unsafe fn load_u64_relaxed(&self, off: usize) -> u64 {
                let $s = self;
                // SAFETY: same contract, forwarded.
                unsafe { $crate::shm::SharedMemRead::load_u64_relaxed(&$inner, off) }
            }
            #[inline(always)]
            unsafe fn read_data(&self, off: usize) -> u32 {
                let $s = self;
                // SAFETY: same contract, forwarded.
                unsafe { $crate::shm::SharedMemRead::read_data(&$inner, off) }
            }
            #[inline(always)]
            unsafe fn read_data_pair(&self, off: usize) -> [u32; 2] {
                let $s = self;
                // SAFETY: same contract, forwarded.
                unsafe { $crate::shm::SharedMemRead::read_data_pair(&$inner, off) }
            }
            #[inline(always)]
            fn fence(&self, order: core::sync::atomic::Ordering) {
                let $s = self;
                $crate::shm::SharedMemRead::fence(&$inner, order)
            }
            #[inline(always)]
            fn spin_hint(&self) {
                let $s = self;
                $crate::shm::SharedMemRead::spin_hint(&$inner)
            }
        }
    };
    (write [$($gen:tt)*] $ty:ty, $s:ident => $inner:expr) => {
        $crate::shm::forward_shared_mem!(read [$($gen)*] $ty, $s => $inner);
        $crate::shm::forward_shared_mem!(write_only [$($gen)*] $ty, $s => $inner);
    };
    (write_only [$($gen:tt)*] $ty:ty, $s:ident => $inner:expr) => {
        // SAFETY: every call is forwarded unchanged to the inner region, which upholds the contract itself for
        // the memory this value keeps alive.
        unsafe impl<$($gen)*> $crate::shm::SharedMem for $ty {
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
            unsafe fn write_data(&self, off: usize, val: u32) {
                let $s = self;
                // SAFETY: same contract, forwarded.
                unsafe { $inner.write_data(off, val) }
            }
            #[inline(always)]
            unsafe fn write_data_pair(&self, off: usize, val: [u32; 2]) {
                let $s = self;
                // SAFETY: same contract, forwarded.
                unsafe { $inner.write_data_pair(off, val) }
            }
        }
    };
}
#[cfg(any(feature = "std", test))] // used by the std backends (OwnedRegion, MappedRegion)
pub(crate) use forward_shared_mem;

// A shared reference or an `Arc` to a backend has the backend's capability, no more: `&ReadOnlyRegion` stays
// read-only. (Separate impls per capability: a blanket `T: SharedMem` impl would overlap the `T: SharedMemRead`
// one.)
forward_shared_mem!(read [T: SharedMemRead + ?Sized] &T, s => (**s));
forward_shared_mem!(write_only [T: SharedMem + ?Sized] &T, s => (**s));
#[cfg(any(feature = "std", test))]
forward_shared_mem!(read [T: SharedMemRead + ?Sized] std::sync::Arc<T>, s => (**s));
#[cfg(any(feature = "std", test))]
forward_shared_mem!(write_only [T: SharedMem + ?Sized] std::sync::Arc<T>, s => (**s));

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
/// `RawRegion<'a>` does not own the memory: it borrows it for `'a`. Safe code only gets one from a value that
/// keeps the memory alive (`OwnedRegion::raw`, `MappedRegion::raw`), borrowing that value, so no copy can
/// outlive the memory; building one from a pointer is `unsafe` ([`RawRegion::new`]) and the caller chooses
/// (and vouches for) the lifetime. It is `Copy`, like the shared reference it stands for.
#[derive(Debug, Clone, Copy)]
pub struct RawRegion<'a> {
    base: NonNull<u8>,
    len: usize,
    _borrow: PhantomData<&'a [AtomicU8]>,
}

// SAFETY: all accesses through a RawRegion are atomic (as through a `&[AtomicU8]`, which is Send and Sync), so
// sharing or sending the pointer between threads cannot introduce a data race.
unsafe impl Send for RawRegion<'_> {}
// SAFETY: as above.
unsafe impl Sync for RawRegion<'_> {}

/// Checks a base pointer and length for [`RawRegion::new`] and [`ReadOnlyRegion::new`].
fn check_region(base: *const u8, len: usize) -> Result<NonNull<u8>, RegionError> {
    let base = NonNull::new(base.cast_mut()).ok_or(RegionError::Null)?;
    if base.as_ptr() as usize % 8 != 0 {
        return Err(RegionError::Misaligned);
    }
    if len > isize::MAX as usize {
        return Err(RegionError::TooLarge);
    }
    Ok(base)
}

impl<'a> RawRegion<'a> {
    /// Wraps `len` writable bytes at `base` for the lifetime `'a`, which the caller chooses.
    ///
    /// # Safety
    /// `base..base + len` must stay valid for reads and writes (through atomics) for all of `'a`, and must not
    /// be accessed through non-atomic Rust references during that time (other processes and the kernel may of
    /// course write it).
    pub unsafe fn new(base: *mut u8, len: usize) -> Result<Self, RegionError> {
        let base = check_region(base, len)?;
        Ok(RawRegion { base, len, _borrow: PhantomData })
    }

    /// The base pointer.
    pub fn as_ptr(&self) -> *mut u8 {
        self.base.as_ptr()
    }

    /// The same memory with only the read capability: a [`ReadOnlyRegion`] for the same lifetime.
    pub fn read_only(self) -> ReadOnlyRegion<'a> {
        ReadOnlyRegion { base: self.base, len: self.len, _borrow: PhantomData }
    }

    #[inline(always)]
    fn a32(&self, off: usize) -> &AtomicU32 {
        // SAFETY: the memory is valid for atomic access for 'a (the contract of `new`, or a borrow of its owner).
        unsafe { atomic32(self.base, self.len, off) }
    }

    #[inline(always)]
    fn a64(&self, off: usize) -> &AtomicU64 {
        // SAFETY: as in `a32`.
        unsafe { atomic64(self.base, self.len, off) }
    }
}

/// The `AtomicU32` at `base + off`.
///
/// # Safety
/// `base..base + len` is valid for atomic access while the result is used, `base` is 8-aligned, and the
/// caller of the `SharedMemRead`/`SharedMem` method guarantees `off` is 4-aligned with `off + 4 <= len`.
#[inline(always)]
unsafe fn atomic32<'m>(base: NonNull<u8>, len: usize, off: usize) -> &'m AtomicU32 {
    debug_assert!(off % 4 == 0 && off + 4 <= len);
    let _ = len;
    // SAFETY: in bounds and 4-aligned (caller), so the address is aligned for AtomicU32 and inside memory valid
    // for atomic access (caller).
    unsafe { &*(base.as_ptr().add(off) as *const AtomicU32) }
}

/// The `AtomicU64` at `base + off`.
///
/// # Safety
/// As for [`atomic32`], with `off` 8-aligned and `off + 8 <= len`.
#[inline(always)]
unsafe fn atomic64<'m>(base: NonNull<u8>, len: usize, off: usize) -> &'m AtomicU64 {
    debug_assert!(off % 8 == 0 && off + 8 <= len);
    let _ = len;
    // SAFETY: as in `atomic32`, with 8-byte alignment from the caller and the 8-aligned base.
    unsafe { &*(base.as_ptr().add(off) as *const AtomicU64) }
}

// SAFETY: every access is a Relaxed atomic load on an aligned, in-bounds location (the callers' contract) of
// memory valid for 'a, so a concurrent writer anywhere cannot make these calls undefined behaviour.
unsafe impl SharedMemRead for RawRegion<'_> {
    #[inline(always)]
    fn len(&self) -> usize {
        self.len
    }
    #[inline(always)]
    unsafe fn load_u32_relaxed(&self, off: usize) -> u32 {
        self.a32(off).load(Ordering::Relaxed)
    }
    #[inline(always)]
    unsafe fn load_u64_relaxed(&self, off: usize) -> u64 {
        self.a64(off).load(Ordering::Relaxed)
    }
    #[inline(always)]
    unsafe fn read_data(&self, off: usize) -> u32 {
        // Relaxed atomic: a plain `mov` on x86_64/aarch64, yet well-defined if the other side races us.
        self.a32(off).load(Ordering::Relaxed)
    }
    // Mixed-size atomics: a slot word is sometimes written as half of a pair and later read alone (or the
    // other way round), always ordered by the protocol's Release/Acquire pairs, never racing, which Rust's
    // memory model allows (only racing accesses must have the same size). Miri's weak-memory emulation cannot
    // represent overlapping atomics of different sizes (it aborts), so a default Miri run takes the trait's
    // default (two 4-byte accesses); CI runs the queue tests a second time under Miri with
    // `--cfg ghost_shm_miri_pairs` and weak-memory emulation off, which executes this 8-byte path with Miri's
    // data-race detector (racing mixed-size accesses are reported). See VERIFICATION.md.
    #[cfg(any(not(miri), ghost_shm_miri_pairs))]
    #[inline(always)]
    unsafe fn read_data_pair(&self, off: usize) -> [u32; 2] {
        // One Relaxed 8-byte load (a plain `mov`); its native-endian bytes are the word at `off`, then the one
        // at `off + 4`.
        split_pair(self.a64(off).load(Ordering::Relaxed))
    }
}

// SAFETY: as for SharedMemRead above; the memory is writable for 'a (the contract of `new`, or the borrowed
// owner's capability), and every store or read-modify-write is an atomic operation on an aligned, in-bounds
// location.
unsafe impl SharedMem for RawRegion<'_> {
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
    unsafe fn write_data(&self, off: usize, val: u32) {
        self.a32(off).store(val, Ordering::Relaxed)
    }
    // See `read_data_pair` above for Miri.
    #[cfg(any(not(miri), ghost_shm_miri_pairs))]
    #[inline(always)]
    unsafe fn write_data_pair(&self, off: usize, val: [u32; 2]) {
        self.a64(off).store(join_pair(val), Ordering::Relaxed)
    }
}

/// The two words of a native-endian 8-byte pair: the one at the lower address first.
#[inline(always)]
fn split_pair(v: u64) -> [u32; 2] {
    let b = v.to_ne_bytes();
    [u32::from_ne_bytes([b[0], b[1], b[2], b[3]]), u32::from_ne_bytes([b[4], b[5], b[6], b[7]])]
}

/// Inverse of [`split_pair`].
#[cfg(any(not(miri), ghost_shm_miri_pairs))]
#[inline(always)]
fn join_pair(val: [u32; 2]) -> u64 {
    let (a, b) = (val[0].to_ne_bytes(), val[1].to_ne_bytes());
    u64::from_ne_bytes([a[0], a[1], a[2], a[3], b[0], b[1], b[2], b[3]])
}

/// Memory the holder may only read, borrowed for `'a`: [`SharedMemRead`] and nothing else.
///
/// Every access is a `Relaxed` atomic load of at most 8 bytes, which Rust permits on read-only (`PROT_READ`)
/// memory on the 64-bit targets this crate supports. A read-only `MappedRegion` (ghOSt's status words as an
/// agent maps them) hands out this type; writing through it does not compile:
///
/// ```compile_fail,E0599
/// use ghost_shm::shm::{OwnedRegion, SharedMem};
/// let owned = OwnedRegion::new(64);
/// let ro = owned.read_only();
/// unsafe { ro.store_u32(0, 1, core::sync::atomic::Ordering::Relaxed) }; // no such method: read-only
/// ```
#[derive(Debug, Clone, Copy)]
pub struct ReadOnlyRegion<'a> {
    base: NonNull<u8>,
    len: usize,
    _borrow: PhantomData<&'a [AtomicU8]>,
}

// SAFETY: only atomic loads go through it (as through a `&[AtomicU8]`), so sharing or sending it is race-free.
unsafe impl Send for ReadOnlyRegion<'_> {}
// SAFETY: as above.
unsafe impl Sync for ReadOnlyRegion<'_> {}

impl ReadOnlyRegion<'_> {
    /// Wraps `len` readable bytes at `base` for the lifetime the caller chooses.
    ///
    /// # Safety
    /// `base..base + len` must stay valid for reads (through atomics) for that whole lifetime, and must not be
    /// accessed through non-atomic Rust references during it (other processes and the kernel may write it).
    pub unsafe fn new(base: *const u8, len: usize) -> Result<Self, RegionError> {
        let base = check_region(base, len)?;
        Ok(ReadOnlyRegion { base, len, _borrow: PhantomData })
    }

    /// The base pointer.
    pub fn as_ptr(&self) -> *const u8 {
        self.base.as_ptr()
    }
}

// SAFETY: every access is a Relaxed atomic load of at most 8 bytes (allowed on read-only memory on x86_64 and
// aarch64) on an aligned, in-bounds location (the callers' contract) of memory valid for reads for 'a.
unsafe impl SharedMemRead for ReadOnlyRegion<'_> {
    #[inline(always)]
    fn len(&self) -> usize {
        self.len
    }
    #[inline(always)]
    unsafe fn load_u32_relaxed(&self, off: usize) -> u32 {
        // SAFETY: memory valid for atomic reads for 'a (contract of `new` or the borrowed owner); off checked by
        // the caller.
        unsafe { atomic32(self.base, self.len, off) }.load(Ordering::Relaxed)
    }
    #[inline(always)]
    unsafe fn load_u64_relaxed(&self, off: usize) -> u64 {
        // SAFETY: as above.
        unsafe { atomic64(self.base, self.len, off) }.load(Ordering::Relaxed)
    }
    #[inline(always)]
    unsafe fn read_data(&self, off: usize) -> u32 {
        // SAFETY: as above.
        unsafe { self.load_u32_relaxed(off) }
    }
    #[inline(always)]
    unsafe fn read_data_pair(&self, off: usize) -> [u32; 2] {
        // SAFETY: as above.
        split_pair(unsafe { self.load_u64_relaxed(off) })
    }
}
