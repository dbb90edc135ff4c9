//! Agent side: attach to a region, snapshots, discovery.

use super::{
    word_offset, AttachError, Barrier, Field32, Field64, ReadError, HEADER_SIZE, H_AVAILABLE, H_CAPACITY, H_ID,
    H_NUMA_NODE, H_START, H_VERSION, WORD_SIZE,
};
use crate::abi::{GhostStatusWord, Gtid, SwFlags, GHOST_SW_REGION_VERSION};
use crate::shm::SharedMemRead;
use core::sync::atomic::Ordering::Acquire;

/// Attempts [`Reader::snapshot`] makes before reporting [`ReadError::Unstable`].
///
/// The kernel changes a word a few times per scheduling event, so a copy that takes a few nanoseconds almost
/// always succeeds at once; the bound only keeps a reader from spinning forever on a word that never settles.
pub const DEFAULT_SNAPSHOT_ATTEMPTS: u32 = 64;

/// An agent's read-only view of a status-word region, validated against the mapping.
///
/// It only ever loads from the region, through [`SharedMemRead`] (ghOSt maps status words read-only for agents,
/// e.g. a `MappedRegion<ReadOnly>`): every load is a `Relaxed` atomic of the field's width, followed by an
/// Acquire fence where the protocol needs Acquire semantics (Rust permits only Relaxed atomic loads on read-only
/// memory). Every index is bounds-checked against the validated capacity.
#[derive(Debug)]
pub struct Reader<M> {
    mem: M,
    id: u32,
    numa_node: u32,
    // INVARIANT: region_len(capacity) <= mem.len().
    capacity: u32,
}

/// A consistent copy of one status word (see [`Reader::snapshot`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Snapshot {
    /// The barrier: the seqnum of the source's latest message.
    pub barrier: Barrier,
    /// The flags (unknown bits kept).
    pub flags: SwFlags,
    /// The owner's gtid.
    pub gtid: Gtid,
    /// CLOCK_MONOTONIC ns when the task last got on a CPU (meaningful with TASK_ONCPU).
    pub switch_time: i64,
    /// Cumulative CPU time in ns.
    pub runtime: u64,
}

impl Snapshot {
    /// INUSE: the word describes a live (or just departed/dead) source.
    pub fn in_use(&self) -> bool {
        self.flags.contains(SwFlags::INUSE)
    }
    /// CANFREE: the kernel is done with the word; the agent may free it.
    pub fn can_free(&self) -> bool {
        self.flags.contains(SwFlags::CANFREE)
    }
    /// ALLOCATED.
    pub fn allocated(&self) -> bool {
        self.flags.contains(SwFlags::ALLOCATED)
    }
    /// TASK_ONCPU: the task is on a CPU since `switch_time`.
    pub fn on_cpu(&self) -> bool {
        self.flags.contains(SwFlags::TASK_ONCPU)
    }
    /// TASK_RUNNABLE.
    pub fn runnable(&self) -> bool {
        self.flags.contains(SwFlags::TASK_RUNNABLE)
    }
    /// TASK_IS_AGENT: the word belongs to an agent.
    pub fn is_agent(&self) -> bool {
        self.flags.contains(SwFlags::TASK_IS_AGENT)
    }
    /// TASK_MSG_GATED: the task departed; its next incarnation's messages wait until this word is freed.
    pub fn msg_gated(&self) -> bool {
        self.flags.contains(SwFlags::TASK_MSG_GATED)
    }
    /// Whether messages of this source are pending for an agent that last consumed the message with
    /// `last_seqnum`: the barrier is newer (serial-number arithmetic). The kernel bumps the barrier before the
    /// message reaches the queue, so "pending" may precede the message's arrival by a moment (§8.4).
    pub fn messages_pending(&self, last_seqnum: Barrier) -> bool {
        self.barrier.is_newer_than(last_seqnum)
    }
    /// The ABI layout of this copy.
    pub fn to_abi(&self) -> GhostStatusWord {
        GhostStatusWord {
            barrier: self.barrier.0,
            flags: self.flags.bits(),
            gtid: self.gtid.0 as u64,
            switch_time: self.switch_time,
            runtime: self.runtime,
        }
    }
}

impl<M: SharedMemRead> Reader<M> {
    /// Attaches to a mapped region and validates its header against the mapping length: at least a header,
    /// version 0, start 64, `capacity` words fit in the mapping, `available <= capacity`.
    pub fn attach(mem: M) -> Result<Self, AttachError> {
        let len = mem.len();
        if len < HEADER_SIZE {
            return Err(AttachError::TooShort { len });
        }
        // Relaxed: the header is written before the region is mapped (mmap orders it before these loads);
        // `available` is informational.
        let h = |off| load_header(&mem, off);
        let version = h(H_VERSION);
        if version != GHOST_SW_REGION_VERSION {
            return Err(AttachError::Version { found: version });
        }
        let start = h(H_START);
        if start as usize != HEADER_SIZE {
            return Err(AttachError::Start { found: start });
        }
        let capacity = h(H_CAPACITY);
        if capacity as usize > (len - HEADER_SIZE) / WORD_SIZE {
            return Err(AttachError::Capacity { capacity, len });
        }
        let available = h(H_AVAILABLE);
        if available > capacity {
            return Err(AttachError::Available { available, capacity });
        }
        let (id, numa_node) = (h(H_ID), h(H_NUMA_NODE));
        // INVARIANT: 64 + 32·capacity <= len, checked above.
        Ok(Reader { mem, id, numa_node, capacity })
    }

    /// Region id.
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

    /// The shared memory.
    pub fn region(&self) -> &M {
        &self.mem
    }

    /// The header's current `available` (informational; validated against `capacity`).
    pub fn available(&self) -> Result<u32, ReadError> {
        // Relaxed: a statistic, ordered with nothing.
        let available = load_header(&self.mem, H_AVAILABLE);
        if available > self.capacity {
            return Err(ReadError::Available { available, capacity: self.capacity });
        }
        Ok(available)
    }

    /// Word `index`'s flags (a Relaxed load and an Acquire fence: pairs with the kernel's Release flag stores,
    /// so e.g. TASK_ONCPU comes with its `switch_time`, INUSE with the initialised word).
    pub fn flags(&self, index: u32) -> Result<SwFlags, ReadError> {
        self.check(index)?;
        // SAFETY: index < capacity, checked above.
        let flags = unsafe { self.load32(index, Field32::Flags) };
        // Acquire fence: with the Relaxed load above, synchronizes with the kernel's Release store of the flags.
        self.mem.fence(Acquire);
        Ok(SwFlags::from_bits_retain(flags))
    }

    /// Word `index`'s barrier (a Relaxed load and an Acquire fence: pairs with the kernel's Release barrier
    /// store). An agent reads its own barrier this way before draining its queue, so that it sees every message
    /// the barrier covers.
    pub fn barrier(&self, index: u32) -> Result<Barrier, ReadError> {
        self.check(index)?;
        // SAFETY: index < capacity, checked above.
        let barrier = unsafe { self.load32(index, Field32::Barrier) };
        // Acquire fence: with the Relaxed load above, synchronizes with the kernel's Release barrier store.
        self.mem.fence(Acquire);
        Ok(Barrier(barrier))
    }

    /// A consistent copy of word `index`, with at most [`DEFAULT_SNAPSHOT_ATTEMPTS`] attempts.
    pub fn snapshot(&self, index: u32) -> Result<Snapshot, ReadError> {
        self.snapshot_with(index, DEFAULT_SNAPSHOT_ATTEMPTS)
    }

    /// A consistent copy of word `index`, with at most `attempts` attempts (at least one).
    ///
    /// Each attempt reads barrier and flags (Relaxed loads followed by one Acquire fence, i.e. Acquire semantics
    /// on read-only memory), then gtid, switch_time, runtime (Relaxed), then an Acquire fence, then barrier and
    /// flags again (Relaxed); it succeeds if neither moved. The first two loads with their fence pair with the
    /// kernel's Release barrier/flag stores (the fields are at least as new as them); the
    /// fence pairs with the kernel's Release stores of the `u64` fields (a field value written after a later
    /// barrier/flag store makes that store visible to the re-read, so the attempt fails). See the module docs
    /// for what an accepted snapshot guarantees.
    pub fn snapshot_with(&self, index: u32, attempts: u32) -> Result<Snapshot, ReadError> {
        self.check(index)?;
        for _ in 0..attempts.max(1) {
            // SAFETY: index < capacity, checked above. This covers all eight loads.
            let snap = unsafe {
                let barrier = self.load32(index, Field32::Barrier);
                let flags = self.load32(index, Field32::Flags);
                // One Acquire fence for both Relaxed loads above: it pairs with the kernel's Release barrier and
                // flag stores whose values they read, so the u64 fields read next are at least that new. No
                // fence between the two loads: their mutual order does not matter, since both are read again
                // after the fields and the attempt fails if either moved (the mutation run confirms no model
                // depends on one: scripts/ordering-mutants.sh --file status/reader).
                self.mem.fence(Acquire);
                let gtid = self.load64(index, Field64::Gtid);
                let switch_time = self.load64(index, Field64::SwitchTime);
                let runtime = self.load64(index, Field64::Runtime);
                // Acquire fence: pairs with the kernel's Release stores of the u64 fields.
                self.mem.fence(Acquire);
                if self.load32(index, Field32::Barrier) != barrier || self.load32(index, Field32::Flags) != flags {
                    continue;
                }
                Snapshot {
                    barrier: Barrier(barrier),
                    flags: SwFlags::from_bits_retain(flags),
                    gtid: Gtid(gtid as i64),
                    switch_time: switch_time as i64,
                    runtime,
                }
            };
            return Ok(snap);
        }
        Err(ReadError::Unstable { index })
    }

    /// Task discovery (§4.4): every word with INUSE and without TASK_IS_AGENT, in index order, as
    /// `(index, snapshot)`; a word that stays unstable is reported as `Err(Unstable)` and the scan goes on.
    /// The scan reads each word's flags once (with Acquire semantics) and snapshots only candidates.
    pub fn discover(&self) -> Discovery<'_, M> {
        Discovery { reader: self, next: 0 }
    }

    fn check(&self, index: u32) -> Result<(), ReadError> {
        if index < self.capacity {
            Ok(())
        } else {
            Err(ReadError::OutOfRange { index, capacity: self.capacity })
        }
    }

    /// Relaxed load of a `u32` field (the callers add the Acquire fences the protocol needs).
    ///
    /// # Safety
    /// `index < self.capacity`.
    unsafe fn load32(&self, index: u32, field: Field32) -> u32 {
        // SAFETY: index < capacity (caller) and 64 + 32·capacity <= len (INVARIANT), so word `index` is in
        // bounds; it starts at 64 + 32·index and field is 0 or 4: 4-aligned, ending inside the word.
        unsafe { self.mem.load_u32_relaxed(word_offset(index) + field as usize) }
    }

    /// Relaxed load of a `u64` field (ordered by the snapshot's Acquire loads and fence).
    ///
    /// # Safety
    /// `index < self.capacity`.
    unsafe fn load64(&self, index: u32, field: Field64) -> u64 {
        // SAFETY: as in `load32`; the word start is 8-aligned and field is 8, 16 or 24: 8-aligned, in the word.
        unsafe { self.mem.load_u64_relaxed(word_offset(index) + field as usize) }
    }
}

/// Loads a header field (Relaxed: the header is written before the region is mapped, and `available` is
/// informational); `off` is one of the `H_*` constants.
fn load_header<M: SharedMemRead>(mem: &M, off: usize) -> u32 {
    if off % 4 == 0 && off + 4 <= HEADER_SIZE && off + 4 <= mem.len() {
        // SAFETY: off is 4-aligned and off + 4 <= len, checked just above.
        unsafe { mem.load_u32_relaxed(off) }
    } else {
        0
    }
}

/// Iterator of [`Reader::discover`].
#[derive(Debug)]
pub struct Discovery<'r, M> {
    reader: &'r Reader<M>,
    next: u32,
}

impl<M: SharedMemRead> Iterator for Discovery<'_, M> {
    type Item = Result<(u32, Snapshot), ReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        let candidate = |f: SwFlags| f.contains(SwFlags::INUSE) && !f.contains(SwFlags::TASK_IS_AGENT);
        while self.next < self.reader.capacity {
            let index = self.next;
            self.next += 1;
            match self.reader.flags(index) {
                Ok(f) if candidate(f) => {}
                _ => continue,
            }
            match self.reader.snapshot(index) {
                Ok(s) if candidate(s.flags) => return Some(Ok((index, s))),
                Ok(_) => continue,
                Err(e) => return Some(Err(e)),
            }
        }
        None
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.reader.capacity.saturating_sub(self.next) as usize))
    }
}
