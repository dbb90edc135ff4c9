//! Kernel side: region creation, allocation, the per-word writer and the agent barrier.
//!
//! # Invariants
//!
//! - `Writer::capacity` is in `1..=Writer::MAX_CAPACITY` and `region_len(capacity) <= mem.len()` (checked in
//!   [`Writer::with_capacity`]); so for every `index < capacity` the 32 bytes at `64 + 32·index` lie inside the
//!   region, and the `u32` fields (offsets 0, 4) are 4-aligned and the `u64` fields (8, 16, 24) 8-aligned.
//! - The private bookkeeping ([`Book`]) is the only state allocation and freeing decide on; the kernel never
//!   reads the region. `available` = capacity − number of set `allocated` bits; a `canfree` bit is set only
//!   with its `allocated` bit.
//! - An [`Allocated`] or [`Word`] handle exists only for an allocated, not-CANFREE index below capacity, and at
//!   most one per index: the allocator hands out an index only while its `allocated` bit is clear, and a free
//!   succeeds only once the handle has been consumed (CANFREE is set only by consuming the [`Word`]).

use super::{
    region_len, word_offset, AllocError, Barrier, CreateError, Field32, Field64, FreeError, HEADER_SIZE, H_AVAILABLE,
    H_CAPACITY, H_ID, H_NUMA_NODE, H_START, H_VERSION,
};
use crate::abi::{GhostSwInfo, Gtid, SwFlags, GHOST_SW_REGION_VERSION, SW_REGION_CAPACITY};
use crate::shm::SharedMem;
use crate::sync::{AtomicU32, Lock};
use core::sync::atomic::Ordering::{self, Relaxed, Release, SeqCst};

#[cfg(not(loom))]
use core::sync::atomic::fence;
#[cfg(loom)]
use loom::sync::atomic::fence;

/// Bitmap words of kernel-private bookkeeping by default: enough for [`SW_REGION_CAPACITY`] words.
pub const DEFAULT_MAP_WORDS: usize = (SW_REGION_CAPACITY as usize).div_ceil(64);

/// Ordering of every barrier store: Release, pairing with the agent's Acquire load of the barrier
/// ([`Reader::snapshot`](super::Reader::snapshot), [`Reader::barrier`](super::Reader::barrier)): an agent that
/// sees the new barrier sees every flag change and field update the kernel made before it.
///
/// `cfg(ghost_shm_weaken)` weakens it to Relaxed, a deliberate bug the loom model `barrier_publishes_runtime`
/// must catch.
const BARRIER_STORE: Ordering = if cfg!(ghost_shm_weaken) { Relaxed } else { Release };

/// Flags a [`Word`] may change freely; the life-cycle bits (INUSE, CANFREE, ALLOCATED, MSG_GATED) change only
/// through the life-cycle operations.
const DYNAMIC_FLAGS: SwFlags = SwFlags::CPU_AVAIL
    .union(SwFlags::BOOST_PRIO)
    .union(SwFlags::TASK_ONCPU)
    .union(SwFlags::TASK_RUNNABLE)
    .union(SwFlags::TASK_IS_AGENT);

/// Kernel-private allocation state of one region (never shared with the agent).
struct Book<const N: usize> {
    /// Where the next allocation scan starts; always `< capacity`.
    cursor: u32,
    /// Free words; the header's copy is informational only.
    available: u32,
    /// Bit `i`: word `i` is allocated.
    allocated: [u64; N],
    /// Bit `i`: word `i` was marked CANFREE (its handle is gone); the agent may free it.
    canfree: [u64; N],
}

fn bit<const N: usize>(map: &[u64; N], i: u32) -> bool {
    map.get((i / 64) as usize).is_some_and(|w| (w >> (i % 64)) & 1 == 1)
}

fn set_bit<const N: usize>(map: &mut [u64; N], i: u32, on: bool) {
    if let Some(w) = map.get_mut((i / 64) as usize) {
        let m = 1u64 << (i % 64);
        if on {
            *w |= m;
        } else {
            *w &= !m;
        }
    }
}

/// The first index in `from..to` whose bit is clear (at most `(to − from) / 64 + 2` bitmap words read).
fn first_clear<const N: usize>(map: &[u64; N], from: u32, to: u32) -> Option<u32> {
    let mut i = from;
    while i < to {
        let word = *map.get((i / 64) as usize)?;
        // Clear bits of this bitmap word at positions >= i % 64, shifted down to bit 0.
        let free = !word >> (i % 64);
        if free != 0 {
            let found = i + free.trailing_zeros();
            return (found < to).then_some(found);
        }
        i = (i / 64 + 1) * 64;
    }
    None
}

/// The kernel's handle of one status-word region: creates it, allocates and frees its words.
///
/// `N` is the size of the kernel-private bookkeeping in 64-word bitmap units (2 · 8 · `N` bytes); the default
/// holds the ABI capacity. Tests and models use a small `N` with a small capacity. The value holds the
/// bookkeeping inline (16 KiB by default): keep it in static or heap memory, not on a small kernel stack.
///
/// `Writer` is `Sync`: allocation and frees serialize on an internal lock (the enclave lock of ghOSt); the
/// per-word writes go through the [`Word`] handles, which the caller serializes (the task's runqueue lock)
/// by holding them mutably.
pub struct Writer<M, const N: usize = DEFAULT_MAP_WORDS> {
    mem: M,
    id: u32,
    numa_node: u32,
    // INVARIANT: 1 <= capacity <= MAX_CAPACITY and region_len(capacity) <= mem.len().
    capacity: u32,
    book: Lock<Book<N>>,
}

impl<M, const N: usize> core::fmt::Debug for Writer<M, N> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Writer")
            .field("id", &self.id)
            .field("numa_node", &self.numa_node)
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl<M: SharedMem, const N: usize> Writer<M, N> {
    /// The largest capacity the bookkeeping of this type holds: `min(64 · N, 65534)`.
    pub const MAX_CAPACITY: u32 = if N >= DEFAULT_MAP_WORDS { SW_REGION_CAPACITY } else { (64 * N) as u32 };

    /// Creates an ABI region ([`SW_REGION_CAPACITY`] words) over `mem`, which must hold
    /// [`SW_REGION_SIZE`](crate::abi::SW_REGION_SIZE) bytes.
    pub fn new(mem: M, id: u32, numa_node: u32) -> Result<Self, CreateError> {
        Self::with_capacity(mem, id, numa_node, SW_REGION_CAPACITY)
    }

    /// Creates a region of `capacity` words over the first [`region_len`]`(capacity)` bytes of `mem`: writes the
    /// header (version 0, `id`, `numa_node`, start 64, capacity, available = capacity) and zeroes every word.
    pub fn with_capacity(mem: M, id: u32, numa_node: u32, capacity: u32) -> Result<Self, CreateError> {
        if capacity == 0 || capacity > Self::MAX_CAPACITY {
            return Err(CreateError::Capacity { capacity, max: Self::MAX_CAPACITY });
        }
        let needed = region_len(capacity);
        if mem.len() < needed {
            return Err(CreateError::TooShort { len: mem.len(), needed });
        }
        let book = Book { cursor: 0, available: capacity, allocated: [0; N], canfree: [0; N] };
        // INVARIANT: both checked above.
        let w = Writer { mem, id, numa_node, capacity, book: Lock::new(book) };
        for off in (0..HEADER_SIZE).step_by(4) {
            w.store_header(off, 0);
        }
        // Relaxed: the region is handed to agents (mmap, or thread spawn in tests) after this returns, which
        // orders these stores before any agent access.
        w.store_header(H_VERSION, GHOST_SW_REGION_VERSION);
        w.store_header(H_ID, id);
        w.store_header(H_NUMA_NODE, numa_node);
        w.store_header(H_START, HEADER_SIZE as u32);
        w.store_header(H_CAPACITY, capacity);
        w.store_header(H_AVAILABLE, capacity);
        for index in 0..capacity {
            // SAFETY: index < capacity.
            unsafe { w.zero_word(index) };
        }
        Ok(w)
    }

    /// Region id (chosen by user space, `sw_<id>`).
    pub fn id(&self) -> u32 {
        self.id
    }

    /// NUMA node.
    pub fn numa_node(&self) -> u32 {
        self.numa_node
    }

    /// Number of words.
    pub fn capacity(&self) -> u32 {
        self.capacity
    }

    /// Free words, from the kernel-private count (never from the region).
    pub fn available(&self) -> u32 {
        self.book.lock().available
    }

    /// The shared memory (e.g. to hand the mapping to an agent in a simulation).
    pub fn region(&self) -> &M {
        &self.mem
    }

    /// Allocates a word (§4.1): scans from a rotating cursor for a word that is not allocated, stores its flags
    /// as exactly ALLOCATED and decrements `available`. Initialise it with [`Allocated::init`].
    pub fn alloc(&self) -> Result<Allocated<'_, M, N>, AllocError> {
        let mut book = self.book.lock();
        if book.available == 0 {
            return Err(AllocError);
        }
        let cursor = book.cursor;
        let index =
            first_clear(&book.allocated, cursor, self.capacity).or_else(|| first_clear(&book.allocated, 0, cursor));
        // `available > 0` implies a clear bit below capacity; if the bookkeeping were inconsistent we still
        // report an error instead of panicking.
        let index = index.ok_or(AllocError)?;
        set_bit(&mut book.allocated, index, true);
        book.available = book.available.saturating_sub(1);
        // index < capacity <= 65534: the increment cannot wrap.
        let next = index.wrapping_add(1);
        book.cursor = if next >= self.capacity { 0 } else { next };
        // SAFETY: `first_clear` returns indices below `self.capacity`.
        // Relaxed: a word without INUSE means nothing to an agent; `Allocated::init` publishes with Release.
        // The word was zeroed under this lock (creation or free), so these stores come after the zeroing.
        unsafe { self.store32(index, Field32::Flags, SwFlags::ALLOCATED.bits(), Relaxed) };
        self.store_header(H_AVAILABLE, book.available);
        drop(book);
        // INVARIANT: index < capacity, allocated bit just set, canfree clear (cleared by every free).
        Ok(Allocated { writer: self, index })
    }

    /// Handles an agent's `GHOST_IOC_SW_FREE {id, index}`; both values are untrusted.
    ///
    /// Checks, in the kernel's order: region id and index (`NotFound`, ENOENT), CANFREE (`Invalid`, EINVAL),
    /// ALLOCATED (`Already`, EALREADY); then zeroes the word and increments `available`. The checks read the
    /// kernel-private bookkeeping, not the region.
    pub fn free(&self, id: u32, index: u32) -> Result<(), FreeError> {
        if id != self.id {
            return Err(FreeError::NotFound);
        }
        self.free_index(index)
    }

    /// [`free`](Writer::free) with a `ghost_sw_info`.
    pub fn free_info(&self, info: GhostSwInfo) -> Result<(), FreeError> {
        self.free(info.id, info.index)
    }

    /// The kernel frees a departed or dead task's word itself (its `TASK_DEPARTED`/`TASK_DEAD` could not be
    /// delivered, §4.1). Same checks as [`free`](Writer::free): if the agent freed the word meanwhile, this
    /// returns `Invalid` and changes nothing.
    pub fn reclaim(&self, retired: Retired) -> Result<(), FreeError> {
        self.free(retired.id, retired.index)
    }

    fn free_index(&self, index: u32) -> Result<(), FreeError> {
        if index >= self.capacity {
            return Err(FreeError::NotFound);
        }
        let mut book = self.book.lock();
        if !bit(&book.canfree, index) {
            return Err(FreeError::Invalid);
        }
        if !bit(&book.allocated, index) {
            return Err(FreeError::Already);
        }
        // SAFETY: index < capacity, checked above.
        unsafe { self.release_locked(&mut book, index) };
        Ok(())
    }

    /// Zeroes word `index`, clears its bits and increments `available`; the caller holds the book lock.
    ///
    /// # Safety
    /// `index < self.capacity`.
    unsafe fn release_locked(&self, book: &mut Book<N>, index: u32) {
        // SAFETY: index < capacity (caller).
        unsafe { self.zero_word(index) };
        set_bit(&mut book.allocated, index, false);
        set_bit(&mut book.canfree, index, false);
        book.available = book.available.saturating_add(1).min(self.capacity);
        self.store_header(H_AVAILABLE, book.available);
    }

    /// Zeroes the 32 bytes of word `index`, flags first.
    ///
    /// # Safety
    /// `index < self.capacity`.
    unsafe fn zero_word(&self, index: u32) {
        // SAFETY: index < capacity (caller). This covers all five stores.
        unsafe {
            // Flags first: the Release stores below order this before them, so a snapshot that reads one of the
            // zeroed fields sees flags 0 on its re-read and retries (see `set_u64`).
            self.store32(index, Field32::Flags, 0, Relaxed);
            self.store32(index, Field32::Barrier, 0, BARRIER_STORE);
            self.store64(index, Field64::Gtid, 0);
            self.store64(index, Field64::SwitchTime, 0);
            self.store64(index, Field64::Runtime, 0);
        }
    }

    /// Stores a header field (Relaxed: informational for the agent, never read back by the kernel).
    fn store_header(&self, off: usize, val: u32) {
        if off % 4 == 0 && off + 4 <= HEADER_SIZE {
            // SAFETY: off is 4-aligned and off + 4 <= 64 <= region_len(capacity) <= len (INVARIANT).
            unsafe { self.mem.store_u32(off, val, Relaxed) }
        }
    }

    /// Stores a `u32` field of word `index`.
    ///
    /// # Safety
    /// `index < self.capacity`.
    unsafe fn store32(&self, index: u32, field: Field32, val: u32, order: Ordering) {
        debug_assert!(index < self.capacity);
        // SAFETY: index < capacity (caller) and region_len(capacity) <= len (INVARIANT), so the word's 32 bytes
        // at 64 + 32·index are in bounds; field is 0 or 4, so the offset is 4-aligned and ends inside the word.
        unsafe { self.mem.store_u32(word_offset(index) + field as usize, val, order) }
    }

    /// Stores a `u64` field of word `index` with Release.
    ///
    /// Release pairs with the `fence(Acquire)` of [`Reader::snapshot`](super::Reader::snapshot): a snapshot
    /// that reads this value sees, on its re-read, every barrier and flags store the kernel made before it, so
    /// a field updated after a barrier bump or flag change can never be accepted with the older barrier/flags.
    ///
    /// # Safety
    /// `index < self.capacity`.
    unsafe fn store64(&self, index: u32, field: Field64, val: u64) {
        debug_assert!(index < self.capacity);
        // SAFETY: as in `store32`; the word starts at 64 + 32·index (8-aligned) and field is 8, 16 or 24, so
        // the offset is 8-aligned and its 8 bytes end inside the word.
        unsafe { self.mem.store_u64(word_offset(index) + field as usize, val, Release) }
    }
}

/// An allocated, not yet initialised status word (flags exactly ALLOCATED); the agent ignores it.
///
/// Dropping it leaks the word (it stays allocated); give it back with [`release`](Allocated::release).
#[must_use = "initialise the word or release it"]
pub struct Allocated<'w, M, const N: usize = DEFAULT_MAP_WORDS> {
    writer: &'w Writer<M, N>,
    // INVARIANT: index < writer.capacity; allocated, not CANFREE; no other handle for it exists.
    index: u32,
}

impl<M, const N: usize> core::fmt::Debug for Allocated<'_, M, N> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Allocated").field("index", &self.index).finish_non_exhaustive()
    }
}

impl<'w, M: SharedMem, const N: usize> Allocated<'w, M, N> {
    /// Index of the word in its region.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// Where the word is (`ghost_sw_info`, e.g. for `TASK_NEW`).
    pub fn info(&self) -> GhostSwInfo {
        GhostSwInfo { id: self.writer.id, index: self.index }
    }

    /// Initialises the word for `gtid` (§4.1): gtid, barrier 0, runtime 0, switch_time 0, then flags
    /// `ALLOCATED | INUSE | initial` in **one Release store**, which pairs with the agent's Acquire load of the
    /// flags (snapshot, discovery): an agent that sees INUSE sees the fully formed word.
    ///
    /// `initial` may hold the dynamic flags (TASK_IS_AGENT, TASK_RUNNABLE, TASK_ONCPU, CPU_AVAIL, BOOST_PRIO);
    /// life-cycle bits in it are ignored. Setting TASK_IS_AGENT here (rather than later) keeps discovery from
    /// ever seeing an agent's word as a task's.
    pub fn init(self, gtid: Gtid, initial: SwFlags) -> Word<'w, M, N> {
        let (w, i) = (self.writer, self.index);
        let flags = SwFlags::ALLOCATED | SwFlags::INUSE | (initial & DYNAMIC_FLAGS);
        // SAFETY: i < capacity (INVARIANT of Allocated). This covers all five stores.
        unsafe {
            w.store64(i, Field64::Gtid, gtid.0 as u64);
            w.store32(i, Field32::Barrier, 0, BARRIER_STORE);
            w.store64(i, Field64::Runtime, 0);
            w.store64(i, Field64::SwitchTime, 0);
            // Release: the INUSE publish; pairs with the Acquire flag loads of `Reader`.
            w.store32(i, Field32::Flags, flags.bits(), Release);
        }
        // INVARIANT: transferred from `self`.
        Word { writer: w, index: i, flags, barrier: Barrier(0), gtid }
    }

    /// Gives the word back without ever initialising it (e.g. fork failed): zeroes it, `available + 1`.
    pub fn release(self) {
        let mut book = self.writer.book.lock();
        // SAFETY: index < capacity (INVARIANT of Allocated).
        unsafe { self.writer.release_locked(&mut book, self.index) };
    }
}

/// The kernel's exclusive handle of one live (INUSE) status word: the task's (or agent's) `status_word`
/// pointer in ghOSt.
///
/// It keeps private copies of the word's flags and barrier, so no kernel decision ever depends on the region's
/// contents. Methods take `&mut self`: the kernel serializes them (ghOSt holds the task's runqueue lock).
/// Departure and death consume the handle: after them the kernel never touches the word again.
#[must_use = "dropping a Word leaks its status word; retire it with depart_then, die_then or retire"]
pub struct Word<'w, M, const N: usize = DEFAULT_MAP_WORDS> {
    writer: &'w Writer<M, N>,
    // INVARIANT: index < writer.capacity; allocated, INUSE, not CANFREE; this is its only handle.
    index: u32,
    flags: SwFlags,
    barrier: Barrier,
    gtid: Gtid,
}

impl<M, const N: usize> core::fmt::Debug for Word<'_, M, N> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Word")
            .field("index", &self.index)
            .field("flags", &self.flags)
            .field("barrier", &self.barrier)
            .field("gtid", &self.gtid)
            .finish_non_exhaustive()
    }
}

impl<M: SharedMem, const N: usize> Word<'_, M, N> {
    /// Index of the word in its region.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// Where the word is (`ghost_sw_info`, e.g. for `TASK_NEW`).
    pub fn info(&self) -> GhostSwInfo {
        GhostSwInfo { id: self.writer.id, index: self.index }
    }

    /// The flags last stored (kernel-private copy).
    pub fn flags(&self) -> SwFlags {
        self.flags
    }

    /// The barrier last stored (kernel-private copy): the seqnum of the task's latest message.
    pub fn barrier(&self) -> Barrier {
        self.barrier
    }

    /// The owner's gtid.
    pub fn gtid(&self) -> Gtid {
        self.gtid
    }

    /// Whether a barrier the agent passed (e.g. `txn.task_barrier`, untrusted) is stale, i.e. differs from the
    /// kernel's barrier (commit fails with `TARGET_STALE`). Only compares the value.
    pub fn is_stale(&self, seen: u32) -> bool {
        seen != self.barrier.0
    }

    /// Sets and clears dynamic flags (TASK_ONCPU, TASK_RUNNABLE, TASK_IS_AGENT, CPU_AVAIL, BOOST_PRIO; other
    /// bits are ignored): a read-modify-write of the private copy, then one Release store of the flags.
    ///
    /// Release pairs with the agent's Acquire flag loads. To order a change before a message, make it before
    /// [`bump_barrier_then`](Word::bump_barrier_then). Clear TASK_ONCPU only *after* the preempt, block or yield
    /// message was produced, so that "off CPU" implies a stable barrier (§4.2).
    pub fn update_flags(&mut self, set: SwFlags, clear: SwFlags) {
        let flags = (self.flags - (clear & DYNAMIC_FLAGS)) | (set & DYNAMIC_FLAGS);
        self.store_flags(flags);
    }

    /// [`update_flags`](Word::update_flags) setting `set`.
    pub fn set_flags(&mut self, set: SwFlags) {
        self.update_flags(set, SwFlags::empty());
    }

    /// [`update_flags`](Word::update_flags) clearing `clear`.
    pub fn clear_flags(&mut self, clear: SwFlags) {
        self.update_flags(SwFlags::empty(), clear);
    }

    /// The task got on a CPU at `now_ns` (CLOCK_MONOTONIC): stores `switch_time`, **then** sets TASK_ONCPU with
    /// Release, so an agent that sees ONCPU (Acquire) sees this switch time (§4.3).
    pub fn switched_in(&mut self, now_ns: i64) {
        // SAFETY: index < capacity (INVARIANT of Word).
        unsafe { self.writer.store64(self.index, Field64::SwitchTime, now_ns as u64) };
        self.store_flags(self.flags | SwFlags::TASK_ONCPU);
    }

    /// The task left the CPU: clears TASK_ONCPU (Release). Call it after producing the message that says so.
    pub fn switched_out(&mut self) {
        self.store_flags(self.flags - SwFlags::TASK_ONCPU);
    }

    /// Updates the cumulative runtime (ns).
    pub fn set_runtime(&mut self, runtime_ns: u64) {
        // SAFETY: index < capacity (INVARIANT of Word).
        unsafe { self.writer.store64(self.index, Field64::Runtime, runtime_ns) };
    }

    /// Bumps the barrier without a message (task without a queue, inhibited or vetoed message, §3.6).
    pub fn bump_barrier(&mut self) -> Barrier {
        self.bump_barrier_then(Barrier)
    }

    /// The barrier protocol as one operation (§3.6): stores `barrier + 1` with Release, ordered after every
    /// earlier flag change and field update, **then** calls `produce` with the new barrier, the message's
    /// `seqnum` (e.g. a closure producing into the task's queue).
    ///
    /// Release pairs with the agent's Acquire barrier load: an agent that sees the new barrier sees the state
    /// the message describes, and knows a message with that seqnum is (about to be) in its queue.
    pub fn bump_barrier_then<R>(&mut self, produce: impl FnOnce(u32) -> R) -> R {
        let b = self.barrier.next();
        self.store_barrier(b);
        produce(b.0)
    }

    /// Publishes an externally kept barrier (the agent barrier of a CPU, see [`AgentBarrier`]) into this word.
    pub fn publish_barrier(&mut self, value: Barrier) {
        self.store_barrier(value);
    }

    /// The task departs ghOSt (setsched away, §4.1): sets CANFREE|MSG_GATED in one Release store, bumps the
    /// barrier, then calls `produce` (TASK_DEPARTED) with the new barrier. Returns the token for
    /// [`Writer::reclaim`] (if the message could not be delivered) and `produce`'s result.
    pub fn depart_then<R>(self, produce: impl FnOnce(u32) -> R) -> (Retired, R) {
        let (retired, seq) = self.finish(SwFlags::CANFREE | SwFlags::TASK_MSG_GATED, true);
        (retired, produce(seq))
    }

    /// The task died (§4.1): sets CANFREE (Release), bumps the barrier, then calls `produce` (TASK_DEAD) with
    /// the new barrier.
    pub fn die_then<R>(self, produce: impl FnOnce(u32) -> R) -> (Retired, R) {
        let (retired, seq) = self.finish(SwFlags::CANFREE, true);
        (retired, produce(seq))
    }

    /// An agent task exits: sets CANFREE (Release) without a barrier bump or message; user space waits for
    /// CANFREE and frees the word.
    pub fn retire(self) -> Retired {
        self.finish(SwFlags::CANFREE, false).0
    }

    /// Stores the final flags (and bumped barrier) and marks the word CANFREE in the bookkeeping, all under the
    /// allocation lock: a free request (even a blind, hostile one) is serialized with it, so it either fails
    /// (`Invalid`) or comes after the kernel's last store to the word. `produce` runs after the lock is dropped.
    fn finish(mut self, add: SwFlags, bump: bool) -> (Retired, u32) {
        let w = self.writer;
        let mut book = w.book.lock();
        self.store_flags(self.flags | add);
        if bump {
            self.store_barrier(self.barrier.next());
        }
        set_bit(&mut book.canfree, self.index, true);
        drop(book);
        (Retired { id: w.id, index: self.index }, self.barrier.0)
    }

    fn store_flags(&mut self, flags: SwFlags) {
        self.flags = flags;
        // SAFETY: index < capacity (INVARIANT of Word).
        // Release: pairs with the Acquire flag loads of `Reader` (flags, snapshot, discovery).
        unsafe { self.writer.store32(self.index, Field32::Flags, flags.bits(), Release) };
    }

    fn store_barrier(&mut self, b: Barrier) {
        self.barrier = b;
        // SAFETY: index < capacity (INVARIANT of Word).
        // BARRIER_STORE (Release): pairs with the Acquire barrier loads of `Reader`.
        unsafe { self.writer.store32(self.index, Field32::Barrier, b.0, BARRIER_STORE) };
    }
}

/// A departed or dead task's word: CANFREE, no longer written by the kernel; the agent frees it, or the kernel
/// with [`Writer::reclaim`].
#[derive(Debug, PartialEq, Eq)]
#[must_use = "reclaim the word if its last message was not delivered"]
pub struct Retired {
    id: u32,
    index: u32,
}

impl Retired {
    /// Index of the word in its region.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// Where the word is.
    pub fn info(&self) -> GhostSwInfo {
        GhostSwInfo { id: self.id, index: self.index }
    }
}

/// A CPU's agent barrier (§4.2): the authoritative, kernel-private counter (`rq->ghost.agent_barrier`), which
/// the kernel copies into the agent's status word.
///
/// It moves under the CPU's lock before every CPU message, on pings and commits ([`bump_then`],
/// [`bump_locked`]), and locklessly when another CPU wakes the agent ([`wake`]); a locked increment may
/// clobber a concurrent lockless one, which is acceptable: only "some" increment matters.
///
/// [`bump_then`]: AgentBarrier::bump_then
/// [`bump_locked`]: AgentBarrier::bump_locked
/// [`wake`]: AgentBarrier::wake
#[derive(Debug, Default)]
pub struct AgentBarrier {
    value: AtomicU32,
}

impl AgentBarrier {
    /// A counter at 0.
    pub fn new() -> Self {
        AgentBarrier { value: AtomicU32::new(0) }
    }

    /// The current value. Relaxed: callers hold the CPU's lock, which orders the locked increments; a
    /// concurrent lockless wake may or may not be seen, as in ghOSt.
    pub fn current(&self) -> Barrier {
        Barrier(self.value.load(Relaxed))
    }

    /// A plain increment; the caller holds the CPU's lock. Returns the new value.
    pub fn bump_locked(&self) -> Barrier {
        // Load + store, not an RMW: concurrent lockless wakes may be clobbered (§4.2). Relaxed: the CPU's lock
        // orders locked increments; the lockless `wake` RMW always reads the latest value.
        let b = Barrier(self.value.load(Relaxed)).next();
        self.value.store(b.0, Relaxed);
        b
    }

    /// A lockless increment by a CPU that wants to wake the agent, followed by a full fence. Returns the new
    /// value.
    ///
    /// The `fence(SeqCst)` pairs with the one in [`is_stale`](AgentBarrier::is_stale): the waker increments,
    /// fences, then checks whether the agent is blocked in `ghost_run`; the agent's CPU publishes "blocked",
    /// fences, then re-reads this counter. At least one of them sees the other's store, so no wake-up is lost.
    pub fn wake(&self) -> Barrier {
        let b = Barrier(self.value.fetch_add(1, Relaxed)).next();
        fence(SeqCst);
        b
    }

    /// Copies the counter into the agent's status word (Release store of its barrier, pairing with the agent's
    /// Acquire load). The caller holds the CPU's lock.
    pub fn publish<M: SharedMem, const N: usize>(&self, agent_word: &mut Word<'_, M, N>) -> Barrier {
        let b = self.current();
        agent_word.publish_barrier(b);
        b
    }

    /// Produces a CPU message on behalf of the agent (§3.6): under the CPU's lock, increments the counter,
    /// publishes it into the agent's word, then calls `produce` with the new value as the message's `seqnum`.
    pub fn bump_then<M: SharedMem, const N: usize, R>(
        &self,
        agent_word: &mut Word<'_, M, N>,
        produce: impl FnOnce(u32) -> R,
    ) -> R {
        let b = self.bump_locked();
        agent_word.publish_barrier(b);
        produce(b.0)
    }

    /// The kernel's check of the barrier an agent passed to a local commit or `ghost_run` (`seen`, untrusted,
    /// only compared): after a full fence (see [`wake`](AgentBarrier::wake)), re-syncs the agent's word with
    /// the counter and reports whether `seen` is stale (`AGENT_STALE` / `ESTALE`). The caller holds the CPU's
    /// lock and has published "agent blocked" before calling.
    pub fn is_stale<M: SharedMem, const N: usize>(&self, agent_word: &mut Word<'_, M, N>, seen: u32) -> bool {
        fence(SeqCst);
        self.publish(agent_word).0 != seen
    }
}
