//! Status words and the barrier (seqnum) protocol (ghOSt ABI 91, §1.6–1.7, §3.6, §4).
//!
//! The kernel describes every task and agent of an enclave in a *status word* inside a 2 MiB *status-word
//! region*: flags (in use, on CPU, runnable, …), the owner's gtid, when it last got on a CPU, its runtime, and
//! its *barrier*, a counter the kernel bumps right before producing each message of that task (the message's
//! `seqnum` is the new barrier). Agents map the region read-only and read the words without locks.
//!
//! | side | handle | does |
//! |---|---|---|
//! | kernel | [`Writer`] | creates the region, allocates ([`Writer::alloc`]) and frees ([`Writer::free`]) words |
//! | kernel | [`Allocated`] → [`Word`] → [`Retired`] | one task's word: init, flags, barrier + message, departure/death |
//! | kernel | [`AgentBarrier`] | a CPU's agent barrier: kernel-private counter published into the agent's word |
//! | agent | [`Reader`] | attaches to a mapping, validates it, takes consistent [`Snapshot`]s, discovers tasks |
//! | both | [`Barrier`] | a barrier value with wrapping (serial-number) comparison |
//!
//! # Layout
//!
//! ```text
//!  offset 0                         64         96         128                     64 + 32·k        2 MiB
//!  ┌─────────────────────────────────┬──────────┬──────────┬─────────── … ─────────┬──────────┬── … ──┐
//!  │ header (ghost_sw_region_header) │ word 0   │ word 1   │                       │ word k   │       │
//!  └─────────────────────────────────┴──────────┴──────────┴─────────── … ─────────┴──────────┴── … ──┘
//!
//!  header:  0 version (0)   4 id   8 numa_node   12 start (64)   16 capacity (65534)   20 available   24..64 zero
//!
//!  word k (ghost_status_word, 32 bytes at 64 + 32·k):
//!  ┌─────────┬─────────┬───────────────────┬───────────────────┬───────────────────┐
//!  │ barrier │ flags   │ gtid              │ switch_time       │ runtime           │
//!  │ u32 @0  │ u32 @4  │ u64 @8            │ i64 @16           │ u64 @24           │
//!  └─────────┴─────────┴───────────────────┴───────────────────┴───────────────────┘
//! ```
//!
//! Production regions are [`abi::SW_REGION_SIZE`] bytes with [`abi::SW_REGION_CAPACITY`] words
//! ([`Writer::new`]); tests and models use smaller ones of [`region_len`]`(capacity)` bytes
//! ([`Writer::with_capacity`]). Every field is accessed as an atomic of its own width: `barrier` and `flags` as
//! `u32`, the other three as `u64` (all 8-aligned).
//!
//! # Protocol
//!
//! - **Life cycle** (§4.1): `0 → ALLOCATED` ([`Writer::alloc`], rotating cursor, `available − 1`) `→
//!   ALLOCATED|INUSE` ([`Allocated::init`]: gtid, barrier 0, runtime 0, *then* INUSE with one Release store, so
//!   an agent never sees a half-formed word) `→ … + CANFREE` ([`Word::die_then`], [`Word::retire`]) or
//!   `+ CANFREE|MSG_GATED` ([`Word::depart_then`]) `→ 0` ([`Writer::free`] on the agent's `GHOST_IOC_SW_FREE`,
//!   or [`Writer::reclaim`] when the kernel frees it itself; the word is zeroed and `available + 1`).
//! - **Barrier** (§3.6, §4.2): [`Word::bump_barrier_then`] stores `barrier + 1` with Release, after every flag
//!   change (flag stores are Release too, and program order puts them first), then calls the producer with the
//!   new value as `seqnum`. An agent that consumed the message with seqnum `s` knows it is up to date while
//!   `barrier == s` ([`Snapshot::messages_pending`]).
//! - **Agent barrier** (§4.2): [`AgentBarrier`] is the kernel-private per-CPU counter, bumped under the CPU's
//!   lock ([`AgentBarrier::bump_then`]) or locklessly by a waker ([`AgentBarrier::wake`]), and published into
//!   the agent's word.
//! - **Snapshots**: [`Reader::snapshot`] reads barrier and flags (Acquire), the three `u64` fields, an Acquire
//!   fence, and barrier and flags again; it accepts the copy only if neither moved, retrying a bounded number of
//!   times ([`ReadError::Unstable`]). The kernel stores the `u64` fields with Release, so a field value written
//!   after a barrier/flags change makes that change visible to the re-read (the fence pairs with those stores).
//!   An accepted snapshot therefore shows barrier and flags as they were together, with `u64` fields no older
//!   than them and at most one in-flight update newer. With TASK_ONCPU, `switch_time` is the switch-in time of
//!   an on-CPU period that coexisted with the snapshot's barrier: the kernel clears ONCPU only after the
//!   message that ends the period, i.e. after a barrier bump, so a later period's `switch_time` cannot be
//!   accepted with an earlier barrier even though the flags read the same.
//!
//! The snapshot cannot detect a word that is freed *and* re-initialised during the copy (the ABI resets the
//! barrier to 0 and has no generation counter). Only the agent frees words it owns, so this concerns words of
//! tasks it has not been told about, which discovery only scans in a quiescent enclave (§4.4).
//!
//! # Threat model
//!
//! The region is mapped read-only by agents, but the kernel side does not rely on it: it **never reads the
//! region**. Everything it decides on lives in kernel-private memory: the allocation cursor, the `available`
//! count and per-word allocated/can-free bitmaps in the [`Writer`] (the header's `available` is written for
//! the agent's information only), each live word's flags and barrier in its [`Word`] handle. So whatever an
//! agent (or a writable mapping) puts into the region, allocation never hands out a live word, `available`
//! stays exact, and frees are checked against the kernel's own state. The free request's region id and index
//! and every agent-provided barrier are treated as hostile values: bounds-checked or only compared. No kernel
//! operation panics or loops more than `capacity / 64` bitmap words.
//!
//! The agent side trusts the kernel but still validates the header against the mapping length
//! ([`AttachError`]) and bounds-checks every index, so a buggy kernel yields an error, not undefined behaviour.
//!
//! # Verification
//!
//! - Unit tests (also under Miri: `cargo +nightly miri test --lib status`).
//! - loom models in `tests/loom_status.rs`:
//!   `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test --release --test loom_status`.
//! - The models can fail: `cfg(ghost_shm_weaken)` weakens the Release store of the barrier
//!   ([`Word::bump_barrier_then`]) to Relaxed, and the model `weaken_barrier_publishes_runtime` must then
//!   fail (it is marked `should_panic` under that cfg, so this command passes only if loom catches it):
//!   `RUSTFLAGS="--cfg loom --cfg ghost_shm_weaken" LOOM_MAX_PREEMPTIONS=2 cargo test --release --test
//!   loom_status -- weaken_`. Weakening instead the INUSE publish of [`Allocated::init`], or the Release of
//!   the `u64` field stores, or dropping the snapshot's fence, makes `discovery_never_sees_half_formed_words`,
//!   respectively `oncpu_comes_with_its_switch_time` and `weaken_barrier_publishes_runtime`, fail (checked by
//!   hand).
//! - Fuzz targets `status_reader` (the agent side over arbitrary bytes) and `status_alloc` (kernel operations
//!   with hostile ids, indices and region scribbles against a reference model).
//!
//! # Example
//!
//! ```
//! use ghost_shm::abi::{Gtid, SwFlags};
//! use ghost_shm::shm::OwnedRegion;
//! use ghost_shm::status::{region_len, Barrier, Reader, Writer};
//!
//! // Kernel: a small region (the ABI size is `Writer::new`), one task.
//! let region = OwnedRegion::new(region_len(4));
//! let writer: Writer<&OwnedRegion> = Writer::with_capacity(&region, 7, 0, 4).unwrap();
//! let mut word = writer.alloc().unwrap().init(Gtid(42), SwFlags::TASK_RUNNABLE);
//! // Produce a message: bump the barrier first, its new value is the message's seqnum.
//! let seqnum = word.bump_barrier_then(|seqnum| seqnum /* produce into a queue here */);
//! assert_eq!(seqnum, 1);
//!
//! // Agent: attach (read-only use), discover, snapshot.
//! let reader = Reader::attach(&region).unwrap();
//! assert_eq!((reader.id(), reader.capacity()), (7, 4));
//! let (index, snap) = reader.discover().next().unwrap().unwrap();
//! assert_eq!((index, snap.gtid, snap.barrier), (word.index(), Gtid(42), Barrier(1)));
//! assert!(snap.in_use() && snap.runnable());
//! assert!(!snap.messages_pending(Barrier(1)));
//!
//! // The task dies: CANFREE before TASK_DEAD is produced; the agent then frees the word.
//! let (retired, seqnum) = word.die_then(|seqnum| seqnum);
//! assert_eq!(seqnum, 2);
//! assert!(reader.snapshot(retired.index()).unwrap().can_free());
//! writer.free(7, retired.index()).unwrap();
//! assert_eq!(writer.available(), 4);
//! ```

mod kernel;
mod reader;
#[cfg(all(test, not(loom)))]
mod tests;

pub use kernel::{AgentBarrier, Allocated, Retired, Word, Writer, DEFAULT_MAP_WORDS};
pub use reader::{Discovery, Reader, Snapshot, DEFAULT_SNAPSHOT_ATTEMPTS};

use crate::abi::{self, GhostStatusWord, GhostSwRegionHeader};
use core::mem::{offset_of, size_of};

// ---- layout -----------------------------------------------------------------------------------------------------

/// Size of the region header, and offset of word 0 (`ghost_sw_region_header.start`).
pub const HEADER_SIZE: usize = size_of::<GhostSwRegionHeader>();
/// Size of one status word.
pub const WORD_SIZE: usize = size_of::<GhostStatusWord>();

/// Bytes of a status-word region with `capacity` words: `64 + 32 · capacity`.
///
/// For the ABI capacity this is [`abi::SW_REGION_SIZE`].
pub const fn region_len(capacity: u32) -> usize {
    HEADER_SIZE + WORD_SIZE * capacity as usize
}

/// Byte offset of word `index`.
const fn word_offset(index: u32) -> usize {
    HEADER_SIZE + WORD_SIZE * index as usize
}

// Header fields (all u32).
const H_VERSION: usize = offset_of!(GhostSwRegionHeader, version);
const H_ID: usize = offset_of!(GhostSwRegionHeader, id);
const H_NUMA_NODE: usize = offset_of!(GhostSwRegionHeader, numa_node);
const H_START: usize = offset_of!(GhostSwRegionHeader, start);
const H_CAPACITY: usize = offset_of!(GhostSwRegionHeader, capacity);
const H_AVAILABLE: usize = offset_of!(GhostSwRegionHeader, available);

/// A `u32` field of a status word.
#[derive(Clone, Copy)]
#[repr(usize)]
enum Field32 {
    Barrier = offset_of!(GhostStatusWord, barrier),
    Flags = offset_of!(GhostStatusWord, flags),
}

/// A `u64` field of a status word.
#[derive(Clone, Copy)]
#[repr(usize)]
enum Field64 {
    Gtid = offset_of!(GhostStatusWord, gtid),
    SwitchTime = offset_of!(GhostStatusWord, switch_time),
    Runtime = offset_of!(GhostStatusWord, runtime),
}

// The alignment arguments of every SAFETY comment in this module rest on these.
static_assertions::const_assert_eq!(HEADER_SIZE, 64);
static_assertions::const_assert_eq!(WORD_SIZE, 32);
static_assertions::const_assert_eq!(region_len(abi::SW_REGION_CAPACITY), abi::SW_REGION_SIZE);
static_assertions::const_assert_eq!(Field32::Barrier as usize, 0);
static_assertions::const_assert_eq!(Field32::Flags as usize, 4);
static_assertions::const_assert_eq!(Field64::Gtid as usize, 8);
static_assertions::const_assert_eq!(Field64::SwitchTime as usize, 16);
static_assertions::const_assert_eq!(Field64::Runtime as usize, 24);
static_assertions::const_assert_eq!(H_AVAILABLE, 20);

// ---- barrier ----------------------------------------------------------------------------------------------------

/// A barrier (sequence) value: a task's or agent's status-word barrier, or a message's `seqnum`.
///
/// The counter is a free-running `u32` that wraps, so values compare with serial-number arithmetic (RFC 1982):
/// `a` is newer than `b` iff `a − b`, as a signed 32-bit number, is positive. Two values exactly 2³¹ apart are
/// neither newer nor older than each other.
///
/// ```
/// use ghost_shm::status::Barrier;
/// assert!(Barrier(5).is_newer_than(Barrier(4)));
/// assert!(Barrier(0).is_newer_than(Barrier(u32::MAX))); // across the wrap
/// assert!(!Barrier(7).is_newer_than(Barrier(7)));
/// assert_eq!(Barrier(u32::MAX).next(), Barrier(0));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(transparent)]
pub struct Barrier(pub u32);

impl Barrier {
    /// The raw value.
    pub const fn get(self) -> u32 {
        self.0
    }

    /// The value after one increment (wrapping).
    #[must_use]
    pub const fn next(self) -> Barrier {
        Barrier(self.0.wrapping_add(1))
    }

    /// Signed distance `self − other` in serial-number arithmetic (positive: `self` is newer).
    pub const fn distance_from(self, other: Barrier) -> i32 {
        self.0.wrapping_sub(other.0) as i32
    }

    /// Whether `self` is newer than `other` (serial-number arithmetic).
    pub const fn is_newer_than(self, other: Barrier) -> bool {
        self.distance_from(other) > 0
    }

    /// Whether `self` is older than `other` (serial-number arithmetic).
    pub const fn is_older_than(self, other: Barrier) -> bool {
        other.is_newer_than(self)
    }
}

impl From<u32> for Barrier {
    fn from(v: u32) -> Barrier {
        Barrier(v)
    }
}

impl From<Barrier> for u32 {
    fn from(b: Barrier) -> u32 {
        b.0
    }
}

impl core::fmt::Display for Barrier {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "barrier:{}", self.0)
    }
}

// ---- errors -----------------------------------------------------------------------------------------------------

/// Linux `ENOENT`.
pub const ENOENT: i32 = 2;
/// Linux `ENOMEM`.
pub const ENOMEM: i32 = 12;
/// Linux `EINVAL`.
pub const EINVAL: i32 = 22;
/// Linux `EALREADY` (x86_64 and the asm-generic numbering of aarch64).
pub const EALREADY: i32 = 114;

/// Why the kernel cannot create a region over a mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreateError {
    /// The mapping is shorter than the region needs.
    TooShort {
        /// Mapping length.
        len: usize,
        /// Bytes needed: [`region_len`] of the capacity.
        needed: usize,
    },
    /// The capacity is 0, or more than the kernel-private bookkeeping holds (64 · `N` words, at most
    /// [`abi::SW_REGION_CAPACITY`]).
    Capacity {
        /// Requested capacity.
        capacity: u32,
        /// The largest capacity this [`Writer`] type supports.
        max: u32,
    },
}

/// The kernel has no free status word in the region (`ENOMEM` on entering ghOSt).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AllocError;

impl AllocError {
    /// The errno the kernel returns: `ENOMEM`.
    pub const fn errno(self) -> i32 {
        ENOMEM
    }
}

/// Why a free request (`GHOST_IOC_SW_FREE {id, index}`) is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FreeError {
    /// Unknown region id, or index out of range (`ENOENT`).
    NotFound,
    /// The kernel has not marked the word CANFREE: it is free, or still describes a live task (`EINVAL`).
    Invalid,
    /// The word is not allocated (`EALREADY`). With kernel-private bookkeeping a CANFREE word is always
    /// allocated, so this is only reported if that invariant were broken; kept for ABI fidelity.
    Already,
}

impl FreeError {
    /// The errno the kernel returns (positive).
    pub const fn errno(self) -> i32 {
        match self {
            FreeError::NotFound => ENOENT,
            FreeError::Invalid => EINVAL,
            FreeError::Already => EALREADY,
        }
    }
}

/// Why an agent refuses a mapping as a status-word region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachError {
    /// The mapping is shorter than a header.
    TooShort {
        /// Mapping length.
        len: usize,
    },
    /// `version` is not `GHOST_SW_REGION_VERSION`.
    Version {
        /// The version found.
        found: u32,
    },
    /// `start` is not 64 (words must follow the header).
    Start {
        /// The start found.
        found: u32,
    },
    /// `capacity` words do not fit in the mapping.
    Capacity {
        /// The capacity found.
        capacity: u32,
        /// Mapping length.
        len: usize,
    },
    /// `available` exceeds `capacity`.
    Available {
        /// The available count found.
        available: u32,
        /// The capacity.
        capacity: u32,
    },
}

/// Why an agent-side read failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadError {
    /// The index is not below the region's capacity.
    OutOfRange {
        /// The index asked for.
        index: u32,
        /// The region's capacity.
        capacity: u32,
    },
    /// The word changed during every attempt of a snapshot.
    Unstable {
        /// The word's index.
        index: u32,
    },
    /// The header's `available` exceeds `capacity` (a buggy kernel).
    Available {
        /// The available count found.
        available: u32,
        /// The capacity.
        capacity: u32,
    },
}

macro_rules! display {
    ($t:ty, $s:ident, $f:ident, $body:expr) => {
        impl core::fmt::Display for $t {
            fn fmt(&self, $f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                let $s = self;
                $body
            }
        }
    };
}

display!(
    CreateError,
    s,
    f,
    match *s {
        CreateError::TooShort { len, needed } =>
            write!(f, "status-word region needs {needed} bytes, mapping has {len}"),
        CreateError::Capacity { capacity, max } => write!(f, "status-word capacity {capacity} not in 1..={max}"),
    }
);
display!(AllocError, _s, f, f.write_str("no free status word (ENOMEM)"));
display!(
    FreeError,
    s,
    f,
    match s {
        FreeError::NotFound => f.write_str("no such status word (ENOENT)"),
        FreeError::Invalid => f.write_str("status word not marked CANFREE (EINVAL)"),
        FreeError::Already => f.write_str("status word not allocated (EALREADY)"),
    }
);
display!(
    AttachError,
    s,
    f,
    match *s {
        AttachError::TooShort { len } =>
            write!(f, "mapping of {len} bytes is shorter than a status-word region header"),
        AttachError::Version { found } => write!(f, "status-word region version {found}, expected 0"),
        AttachError::Start { found } => write!(f, "status-word region start {found}, expected 64"),
        AttachError::Capacity { capacity, len } => {
            write!(f, "status-word capacity {capacity} does not fit a mapping of {len} bytes")
        }
        AttachError::Available { available, capacity } => {
            write!(f, "status-word region available {available} exceeds capacity {capacity}")
        }
    }
);
display!(
    ReadError,
    s,
    f,
    match *s {
        ReadError::OutOfRange { index, capacity } =>
            write!(f, "status word {index} out of range (capacity {capacity})"),
        ReadError::Unstable { index } => write!(f, "status word {index} kept changing during the snapshot"),
        ReadError::Available { available, capacity } => {
            write!(f, "status-word region available {available} exceeds capacity {capacity}")
        }
    }
);

// ---- loom ---------------------------------------------------------------------------------------------------------

/// A zeroed [`LoomRegion`](crate::shm::LoomRegion) laid out for a status-word region of `capacity` words: every
/// header word and the `barrier`/`flags` of each word are `u32` control words, `gtid`/`switch_time`/`runtime`
/// are `u64` control words (the snapshot reads race with kernel writes by design, through atomics only).
#[cfg(loom)]
pub fn loom_region(capacity: u32) -> crate::shm::LoomRegion {
    use std::vec::Vec;
    let mut a32: Vec<usize> = (0..HEADER_SIZE).step_by(4).collect();
    let mut a64 = Vec::new();
    for i in 0..capacity {
        let w = word_offset(i);
        a32.extend([w + Field32::Barrier as usize, w + Field32::Flags as usize]);
        a64.extend([w + Field64::Gtid as usize, w + Field64::SwitchTime as usize, w + Field64::Runtime as usize]);
    }
    crate::shm::LoomRegion::new(region_len(capacity), &a32, &a64)
}
