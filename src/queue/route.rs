//! Queue routing on the kernel side: the enclave's default queue and per-task association
//! (`GHOST_IOC_SET_DEFAULT_QUEUE`, `GHOST_IOC_ASSOC_QUEUE`; §4.4).
//!
//! The routing words hold queue ids, not pointers, and are accessed Relaxed: they order nothing else. The
//! caller resolves an id in its own queue table under its own synchronisation (as the kernel does under the
//! enclave lock), and that synchronisation orders a queue's creation before any message routed to it.

use crate::abi::{GHOST_ASSOC_SF_ALREADY, GHOST_ASSOC_SF_BRAND_NEW};
use crate::sync::{AtomicU32, Ordering};

const NONE: u32 = u32::MAX;

/// Identifies a queue within an enclave (the kernel's queue fd or an index of its choosing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueueId(pub u32);

/// An enclave's routing: its default queue, where messages of tasks without an association go.
#[derive(Debug)]
pub struct Routing {
    default: AtomicU32,
}

impl Default for Routing {
    fn default() -> Self {
        Self::new()
    }
}

impl Routing {
    /// No default queue yet.
    pub fn new() -> Self {
        Routing { default: AtomicU32::new(NONE) }
    }

    /// Sets the default queue (`GHOST_IOC_SET_DEFAULT_QUEUE`). `QueueId(u32::MAX)` is reserved and clears it.
    pub fn set_default(&self, q: QueueId) {
        // Relaxed: a routing word holds an id, never a pointer, and publishes nothing else. The queue the id
        // names is found by the caller in its own table under its own synchronisation (the kernel's enclave
        // lock; the simulated kernel's state mutex), which also orders the queue's creation before any use;
        // coherence alone gives every reader this id or a later one.
        self.default.store(q.0, Ordering::Relaxed);
    }

    /// The default queue.
    pub fn default_queue(&self) -> Option<QueueId> {
        // Relaxed: only the id is read (see `set_default`).
        match self.default.load(Ordering::Relaxed) {
            NONE => None,
            q => Some(QueueId(q)),
        }
    }

    /// Where a message of `task` goes: its associated queue, else the default queue, else nowhere (the kernel
    /// then bumps the barrier without a message, §3.6).
    pub fn route(&self, task: &TaskQueue) -> Option<QueueId> {
        task.queue().or_else(|| self.default_queue())
    }
}

/// A task's (or a CPU agent's) queue association, kept in the kernel's task structure.
#[derive(Debug)]
pub struct TaskQueue {
    q: AtomicU32,
}

impl Default for TaskQueue {
    fn default() -> Self {
        Self::new()
    }
}

impl TaskQueue {
    /// Not associated: messages go to the default queue.
    pub fn new() -> Self {
        TaskQueue { q: AtomicU32::new(NONE) }
    }

    /// The associated queue, if any.
    pub fn queue(&self) -> Option<QueueId> {
        // Relaxed: only the id is read; what it names is synchronised by the caller's queue table (see
        // `Routing::set_default`).
        match self.q.load(Ordering::Relaxed) {
            NONE => None,
            q => Some(QueueId(q)),
        }
    }

    /// Drops the association (e.g. the queue was destroyed).
    pub fn clear(&self) {
        // Relaxed: see `Routing::set_default`.
        self.q.store(NONE, Ordering::Relaxed);
    }
}

/// Status bits of a successful association (the non-negative return value of `GHOST_IOC_ASSOC_QUEUE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AssocStatus {
    /// `GHOST_ASSOC_SF_ALREADY`: the task was already associated with that queue.
    pub already: bool,
    /// `GHOST_ASSOC_SF_BRAND_NEW`: the task's `TASK_NEW` has not been delivered yet; it will arrive there.
    pub brand_new: bool,
}

impl AssocStatus {
    /// Decodes the ioctl's non-negative return value (unknown bits ignored); inverse of
    /// [`to_raw`](AssocStatus::to_raw).
    pub fn from_raw(bits: i32) -> AssocStatus {
        AssocStatus { already: bits & GHOST_ASSOC_SF_ALREADY != 0, brand_new: bits & GHOST_ASSOC_SF_BRAND_NEW != 0 }
    }

    /// The ioctl's return value.
    pub fn to_raw(self) -> i32 {
        (if self.already { GHOST_ASSOC_SF_ALREADY } else { 0 })
            | (if self.brand_new { GHOST_ASSOC_SF_BRAND_NEW } else { 0 })
    }
}

/// Why an association was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssocError {
    /// `ESTALE`: the caller's barrier is not the task's current barrier (a message is in flight): drain the
    /// queue, re-read the status word and retry.
    Stale {
        /// The task's barrier now.
        current: u32,
        /// The barrier the caller passed.
        given: u32,
    },
}

impl core::fmt::Display for AssocError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            AssocError::Stale { current, given } => {
                write!(f, "stale barrier {given} (task is at {current}): drain messages and retry")
            }
        }
    }
}

/// `GHOST_IOC_ASSOC_QUEUE` semantics, run by the kernel with the task's runqueue lock held (so
/// `current_barrier` cannot move): succeeds only if `caller_barrier` (agent-provided, hostile) equals the
/// task's current barrier; reports ALREADY and BRAND_NEW.
///
/// ```
/// use ghost_shm::queue::{associate, AssocError, QueueId, Routing, TaskQueue};
/// let routing = Routing::new();
/// routing.set_default(QueueId(0));
/// let task = TaskQueue::new();
/// assert_eq!(routing.route(&task), Some(QueueId(0)));
/// assert_eq!(associate(&task, 5, 4, QueueId(1), false), Err(AssocError::Stale { current: 5, given: 4 }));
/// let st = associate(&task, 5, 5, QueueId(1), false).unwrap();
/// assert!(!st.already);
/// assert_eq!(routing.route(&task), Some(QueueId(1)));
/// assert!(associate(&task, 5, 5, QueueId(1), true).unwrap().already);
/// ```
pub fn associate(
    task: &TaskQueue,
    current_barrier: u32,
    caller_barrier: u32,
    queue: QueueId,
    task_new_pending: bool,
) -> Result<AssocStatus, AssocError> {
    if caller_barrier != current_barrier {
        return Err(AssocError::Stale { current: current_barrier, given: caller_barrier });
    }
    // Relaxed: the swap's atomicity alone makes `already` exact (it reads the association it replaces, in the
    // word's modification order); the id publishes nothing (see `Routing::set_default`).
    let prev = task.q.swap(queue.0, Ordering::Relaxed);
    Ok(AssocStatus { already: prev == queue.0, brand_new: task_new_pending })
}
