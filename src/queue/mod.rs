//! Message queues: the kernel-side [`Producer`] and the agent-side [`Consumer`] over the ghOSt ring.
//!
//! ## Layout (ABI 91, §1.2–1.4)
//!
//! ```text
//!  offset 0            4            8             12                    64
//!         ┌────────────┬────────────┬─────────────┬─────────────────────┐
//!         │ version=0  │ start=64   │ nelems=2^k  │ padding             │  ghost_queue_header (64 B)
//!         ├────────────┼────────────┼─────────────┼─────────────────────┘
//!      64 │ head       │ tail       │ overflow    │                        ghost_ring (12 B)
//!         ├────────────┴────────────┴─────────────┘
//!      76 │ slot 0 │ slot 1 │ … │ slot nelems−1 │                          8-byte slots (only 4-aligned!)
//!         └────────┴────────┴───┴───────────────┘  mapping = PAGE_ALIGN(76 + 8·nelems)
//!
//!  message: slot[i] = {type u16, length u16, seqnum u32}, payload in slot[i+1 ..], ceil(length/8) slots
//! ```
//!
//! `head` (kernel) and `tail` (agent) are free-running `u32` slot counters; index = value & (nelems − 1);
//! `head − tail` (wrapping) is the number of used slots and is always ≤ nelems. A message never wraps: when it
//! does not fit before the end of the array but fits at the start, the producer writes a `MSG_NOP` whose
//! `length` covers the gap (its seqnum is left stale, as the kernel does) and puts the message at slot 0.
//!
//! ## Memory ordering
//!
//! | store | pairs with |
//! |---|---|
//! | producer: slot writes, then **Release** store of `head` | consumer: **Acquire** load of `head`, then slot reads |
//! | consumer: slot reads, then **Release** store of `tail` | producer: **Acquire** load of `tail`, then slot writes |
//! | producer: **Release** store of `overflow` (after earlier heads) | consumer: **Acquire** load of `overflow` |
//! | consumer: [`Doorbell::prepare_wait`] store, `fence(SeqCst)`, load `head` | producer: store `head`, `fence(SeqCst)`, [`Doorbell::ring`] load |
//!
//! ## Releasing slots
//!
//! The consumer hands slots back with one Release store of `tail`: [`Consumer::drain`] and [`Consumer::pop`]
//! store it every call, [`Consumer::drain_lazy`] only once a quarter of the ring is held. `tail` shares a cache
//! line with `head`, so an agent that keeps up with its queue and stores `tail` per message moves that line
//! to itself and back for every message; the lazy form is the fast one for such a loop (see BENCHMARKS.md).
//!
//! ## Full rings and copies
//!
//! A produce into a full ring drops the message and counts it in `overflow`, as the kernel does: that store
//! lands in the line holding `head` and `tail`, so a producer that may wait instead (a simulation, a test, a
//! benchmark) asks [`Batch::has_room`] first, which writes nothing. Messages are copied as 8-aligned word
//! pairs after their first word (slots start at byte 76, 4 mod 8), through [`SharedMem::read_data_pair`] and
//! [`SharedMem::write_data_pair`]: one 8-byte atomic per pair on [`RawRegion`].
//!
//! [`SharedMem::read_data_pair`]: crate::shm::SharedMemRead::read_data_pair
//! [`SharedMem::write_data_pair`]: crate::shm::SharedMem::write_data_pair
//! [`RawRegion`]: crate::shm::RawRegion
//!
//! ## Trust
//!
//! The producer (kernel side) keeps private copies of `nelems` and `head` and never reads the writable header
//! again. It reads the agent-written `tail` at most once per operation (only when its cached copy says the
//! ring is full), and a `tail` that would make `head − tail > nelems` is reported as
//! [`ProduceError::CorruptTail`]: it never writes out of bounds and never overwrites a slot the agent has not
//! released. The consumer validates `head` and every message's `length` (≥ 8, fits before the end of the
//! array, fits in what was published) and answers violations with [`ConsumeError`], never a panic.
//!
//! ## Example
//!
//! ```
//! use ghost_shm::abi::{self, Message, PayloadTaskNew, PayloadCpuTick};
//! use ghost_shm::queue::{Consumer, Producer};
//! use ghost_shm::shm::OwnedRegion;
//!
//! let region = OwnedRegion::new(abi::queue_mapsize(16));
//! let producer = Producer::init(&region, 16).unwrap();          // kernel side
//! let mut consumer = Consumer::attach(&region).unwrap();         // agent side
//!
//! producer.produce(&Message::TaskNew(PayloadTaskNew { gtid: 7, ..Default::default() }), 1).unwrap();
//! producer.produce(&Message::CpuTick(PayloadCpuTick { cpu: 3, is_agent: 0 }), 9).unwrap();
//!
//! let mut seen = Vec::new();
//! let n = consumer.drain(|m| seen.push((m.seqnum, m.message.msg_type()))).unwrap();
//! assert_eq!(n, 2);
//! assert_eq!(seen[0], (1, abi::MsgType::TaskNew));
//! assert_eq!(consumer.new_overflows(), 0);
//! ```

mod consumer;
mod producer;
mod route;

pub use consumer::{ConsumeError, Consumer, RawMessage};
pub use producer::{Batch, ProduceError, Producer};
pub use route::{associate, AssocError, AssocStatus, QueueId, Routing, TaskQueue};

use crate::abi;
use crate::shm::SharedMem;
use core::sync::atomic::Ordering;

/// Byte offset of `ghost_ring.head` in a queue mapping.
pub(crate) const HEAD: usize = abi::QUEUE_RING_OFFSET;
/// Byte offset of `ghost_ring.tail`.
pub(crate) const TAIL: usize = abi::QUEUE_RING_OFFSET + 4;
/// Byte offset of `ghost_ring.overflow`.
pub(crate) const OVERFLOW: usize = abi::QUEUE_RING_OFFSET + 8;
/// Byte offset of slot 0.
pub(crate) const SLOTS: usize = abi::QUEUE_SLOTS_OFFSET;
/// Slot size in bytes.
pub(crate) const SLOT: usize = 8;

/// Byte offset of slot `idx` (callers guarantee `idx < nelems`).
#[inline(always)]
pub(crate) const fn slot_off(idx: u32) -> usize {
    SLOTS + SLOT * idx as usize
}

/// Why a queue region cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueError {
    /// `nelems` is not a power of two in 1..=65536.
    BadNelems(u32),
    /// The mapping's length is not `PAGE_ALIGN(76 + 8·nelems)`.
    LengthMismatch {
        /// Length the header's `nelems` implies.
        expected: usize,
        /// Length of the mapping.
        actual: usize,
    },
    /// The header's version is not `GHOST_QUEUE_VERSION`.
    BadVersion(u32),
    /// The header's `start` is not 64.
    BadStart(u32),
    /// `head − tail` exceeds `nelems` at attach time.
    Corrupt {
        /// head found.
        head: u32,
        /// tail found.
        tail: u32,
    },
}

impl core::fmt::Display for QueueError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            QueueError::BadNelems(n) => write!(f, "nelems {n} is not a power of two in 1..=65536"),
            QueueError::LengthMismatch { expected, actual } => {
                write!(f, "queue mapping is {actual} bytes, nelems implies {expected}")
            }
            QueueError::BadVersion(v) => write!(f, "queue version {v}, expected {}", abi::GHOST_QUEUE_VERSION),
            QueueError::BadStart(s) => write!(f, "ring start {s}, expected {}", abi::QUEUE_RING_OFFSET),
            QueueError::Corrupt { head, tail } => write!(f, "ring corrupt: head {head}, tail {tail}"),
        }
    }
}

/// Checks `nelems` and the mapping length; returns the mask.
pub(crate) fn check_geometry(nelems: u32, len: usize) -> Result<u32, QueueError> {
    if nelems == 0 || nelems > abi::GHOST_MAX_QUEUE_ELEMS || !nelems.is_power_of_two() {
        return Err(QueueError::BadNelems(nelems));
    }
    let expected = abi::queue_mapsize(nelems);
    if len != expected {
        return Err(QueueError::LengthMismatch { expected, actual: len });
    }
    Ok(nelems - 1)
}

/// Something to tell after messages were published (the kernel wakes an agent; the std backend uses a futex).
///
/// Called by the producer after the Release store of `head` and a `fence(SeqCst)`, outside the queue lock.
pub trait Notify {
    /// Messages were published.
    fn notify(&self);
}

impl Notify for () {
    #[inline(always)]
    fn notify(&self) {}
}

impl<T: Notify + ?Sized> Notify for &T {
    fn notify(&self) {
        (**self).notify()
    }
}

/// The consumer is not waiting.
pub const DOORBELL_IDLE: u32 = 0;
/// The consumer is about to sleep, or sleeping, until the word changes.
pub const DOORBELL_WAITING: u32 = 1;

/// The "about to sleep" handshake that cannot lose a wakeup (Dekker-style, as io_uring's NEED_WAKEUP).
///
/// One `u32` control word (anywhere in a [`SharedMem`], e.g. a futex word shared between processes):
///
/// ```text
///  consumer                                  producer
///  prepare_wait(): word = WAITING            publish: head = h (Release)
///  fence(SeqCst)                             fence(SeqCst)
///  load head: new message? → cancel_wait()   ring(): word == WAITING? → CAS to IDLE, wake the consumer
///  else block while word == WAITING
/// ```
///
/// The two SeqCst fences guarantee that at least one side sees the other's store: either the consumer sees
/// the new head and does not sleep, or the producer sees WAITING and wakes it. A blocking primitive that
/// sleeps only while the word still equals WAITING (futex semantics) therefore never misses the wakeup.
#[derive(Clone)]
pub struct Doorbell<M: SharedMem> {
    mem: M,
    off: usize,
}

impl<M: SharedMem> Doorbell<M> {
    /// A doorbell on the `u32` at byte `off` of `mem`; `None` if `off` is out of bounds or unaligned.
    ///
    /// # Safety
    /// While the doorbell is used, nothing in this process accesses bytes `off..off + 4` of `mem` with an
    /// atomic of another width (racing atomics of different sizes are undefined behaviour): give the doorbell
    /// a region of its own, or a word that no protocol handle on the same memory lays out (a ring's slots, for
    /// one, are accessed as 8-byte pairs). `crate::wake::FutexDoorbell` has safe constructors that allocate
    /// such a region.
    pub unsafe fn new(mem: M, off: usize) -> Option<Self> {
        if off % 4 != 0 || off.checked_add(4)? > mem.len() {
            return None;
        }
        Some(Doorbell { mem, off })
    }

    /// Consumer: announce the intent to sleep. Re-check for messages afterwards, then either
    /// [`cancel_wait`](Doorbell::cancel_wait) or block while [`is_waiting`](Doorbell::is_waiting).
    pub fn prepare_wait(&self) {
        // SAFETY: `off` was checked in `new` (aligned, in bounds).
        unsafe { self.mem.store_u32(self.off, DOORBELL_WAITING, Ordering::Relaxed) };
        // Pairs with the producer's fence in `ring`: orders this store before the consumer's re-check of head.
        self.mem.fence(Ordering::SeqCst);
    }

    /// Consumer: messages arrived after all (or the wait ended): back to IDLE.
    pub fn cancel_wait(&self) {
        // SAFETY: `off` was checked in `new`.
        unsafe { self.mem.store_u32(self.off, DOORBELL_IDLE, Ordering::Relaxed) };
    }

    /// Whether the consumer is still marked as waiting (a sleeping consumer blocks while this is true).
    pub fn is_waiting(&self) -> bool {
        // Relaxed: a wake-up is a hint, never a publication. A consumer that wakes re-checks for messages,
        // and if that check misses them it goes through `prepare_wait` again, whose store comes after the
        // producer's CAS in the word's coherence order: so the producer's `fence(SeqCst)` (before its CAS)
        // precedes the consumer's new fence in the SeqCst order, and the consumer's next load of head sees the
        // published head (C++20 [atomics.order]: the fences' order follows coherence). An Acquire here would
        // only save that extra round; the SeqCst fences carry the handshake.
        // SAFETY: `off` was checked in `new`.
        unsafe { self.mem.load_u32(self.off, Ordering::Relaxed) == DOORBELL_WAITING }
    }

    /// Producer, after publishing head: returns `true` if the consumer was waiting and must be woken.
    pub fn ring(&self) -> bool {
        // Pairs with the consumer's fence in `prepare_wait`: orders the head store before this load.
        self.mem.fence(Ordering::SeqCst);
        // SAFETY: `off` was checked in `new`.
        unsafe {
            self.mem.load_u32(self.off, Ordering::Relaxed) == DOORBELL_WAITING
                && self
                    .mem
                    .compare_exchange_u32(
                        self.off,
                        DOORBELL_WAITING,
                        DOORBELL_IDLE,
                        // Relaxed: the CAS only elects one waker (its atomicity); it publishes nothing,
                        // as the fence above and the consumer's re-check carry the handshake (see
                        // `is_waiting`), and the producer reads nothing the consumer wrote.
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    )
                    .is_ok()
        }
    }

    /// The word's byte offset (for a futex on the same memory).
    pub fn offset(&self) -> usize {
        self.off
    }

    /// The memory the word lives in.
    pub fn memory(&self) -> &M {
        &self.mem
    }
}

impl<M: SharedMem> core::fmt::Debug for Doorbell<M> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Doorbell").field("off", &self.off).finish()
    }
}

#[cfg(test)]
mod tests;
