//! The ghOSt ABI 91 layer: `#[repr(C)]` layouts, constants, typed messages.
//!
//! Everything here mirrors `include/uapi/linux/ghost.h` of ABI 91 (see the crate's `README.md` for the
//! sources). C names are kept in this module only; the protocol modules use Rust names.
//!
//! ```
//! use ghost_shm::abi::{self, MsgType, TxnState, TxnOutcome};
//! assert_eq!(abi::GHOST_VERSION, 91);
//! assert_eq!(MsgType::try_from(67u16), Ok(MsgType::TaskNew));
//! assert_eq!(TxnState::from_raw(abi::GHOST_TXN_COMPLETE), TxnState::Committed(TxnOutcome::Complete));
//! assert_eq!(TxnState::from_raw(3), TxnState::Claimed(3));
//! ```

mod layout;
mod msg;

pub use layout::*;
pub use msg::*;

use bitflags::bitflags;
use core::mem::size_of;

// ---- §2.1 versions and limits ----------------------------------------------------------------------------------

/// `GHOST_VERSION`: the ABI this crate speaks. An agent must refuse to run on an enclave of another ABI.
pub const GHOST_VERSION: u32 = 91;
/// `GHOST_QUEUE_VERSION`.
pub const GHOST_QUEUE_VERSION: u32 = 0;
/// `GHOST_SW_REGION_VERSION`.
pub const GHOST_SW_REGION_VERSION: u32 = 0;
/// `GHOST_TXN_VERSION`.
pub const GHOST_TXN_VERSION: i32 = 0;
/// `SCHED_GHOST`: the scheduling class number.
pub const SCHED_GHOST: i32 = 18;
/// `GHOST_MAX_QUEUE_ELEMS`: the largest queue, in slots.
pub const GHOST_MAX_QUEUE_ELEMS: u32 = 65536;
/// `GHOST_MAX_WINFO`: wake-up targets per queue.
pub const GHOST_MAX_WINFO: i32 = 2;
/// `GHOST_ASSOC_SF_ALREADY`: the task was already associated with that queue.
pub const GHOST_ASSOC_SF_ALREADY: i32 = 1;
/// `GHOST_ASSOC_SF_BRAND_NEW`: the task's `TASK_NEW` has not been delivered yet.
pub const GHOST_ASSOC_SF_BRAND_NEW: i32 = 2;
/// `GHOST_AGENT` (`enum ghost_type`): message source is the agent of a CPU.
pub const GHOST_AGENT: u32 = 0;
/// `GHOST_TASK` (`enum ghost_type`): message source is a task.
pub const GHOST_TASK: u32 = 1;

// ---- §2.2 message types ----------------------------------------------------------------------------------------

macro_rules! msg_types {
    ($( $(#[$m:meta])* $cname:ident = $val:literal => $variant:ident ),* $(,)?) => {
        $( $(#[$m])* pub const $cname: u16 = $val; )*

        /// A message type (`MSG_*`), with checked conversion from the wire's `u16`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u16)]
        pub enum MsgType { $( $(#[$m])* $variant = $val ),* }

        impl TryFrom<u16> for MsgType {
            type Error = UnknownMsgType;
            fn try_from(v: u16) -> Result<Self, UnknownMsgType> {
                match v { $( $val => Ok(MsgType::$variant), )* other => Err(UnknownMsgType(other)) }
            }
        }

        impl MsgType {
            /// The C name, e.g. `"MSG_TASK_NEW"`.
            pub const fn c_name(self) -> &'static str {
                match self { $( MsgType::$variant => stringify!($cname) ),* }
            }
            /// Every message type, in value order.
            pub const ALL: &'static [MsgType] = &[$( MsgType::$variant ),*];
        }
    };
}

msg_types! {
    /// Padding before the end of the ring; skipped by consumers.
    MSG_NOP = 0 => Nop,
    /// A task exited.
    MSG_TASK_DEAD = 64 => TaskDead,
    /// A task blocked.
    MSG_TASK_BLOCKED = 65 => TaskBlocked,
    /// A task woke up.
    MSG_TASK_WAKEUP = 66 => TaskWakeup,
    /// A task entered ghOSt.
    MSG_TASK_NEW = 67 => TaskNew,
    /// A task was preempted.
    MSG_TASK_PREEMPT = 68 => TaskPreempt,
    /// A task yielded.
    MSG_TASK_YIELD = 69 => TaskYield,
    /// A task left ghOSt.
    MSG_TASK_DEPARTED = 70 => TaskDeparted,
    /// A task switched to another (switchto).
    MSG_TASK_SWITCHTO = 71 => TaskSwitchto,
    /// A task's affinity changed.
    MSG_TASK_AFFINITY_CHANGED = 72 => TaskAffinityChanged,
    /// A latched task got on a CPU (with `SEND_TASK_ON_CPU`).
    MSG_TASK_ON_CPU = 73 => TaskOnCpu,
    /// A task's nice value changed.
    MSG_TASK_PRIORITY_CHANGED = 74 => TaskPriorityChanged,
    /// Latching failed (BPF only).
    MSG_TASK_LATCH_FAILURE = 75 => TaskLatchFailure,
    /// Timer tick on a CPU.
    MSG_CPU_TICK = 128 => CpuTick,
    /// A ghOSt timerfd fired.
    MSG_CPU_TIMER_EXPIRED = 129 => CpuTimerExpired,
    /// A non-ghOSt task displaced the latched idle task.
    MSG_CPU_NOT_IDLE = 130 => CpuNotIdle,
    /// The CPU became available to ghOSt.
    MSG_CPU_AVAILABLE = 131 => CpuAvailable,
    /// The CPU became busy with a higher class.
    MSG_CPU_BUSY = 132 => CpuBusy,
    /// The agent on the CPU blocked.
    MSG_CPU_AGENT_BLOCKED = 133 => CpuAgentBlocked,
    /// The agent on the CPU woke up.
    MSG_CPU_AGENT_WAKEUP = 134 => CpuAgentWakeup,
}

/// `_MSG_TASK_FIRST`: task messages are 64..=127.
pub const MSG_TASK_FIRST: u16 = 64;
/// `_MSG_CPU_FIRST`: CPU messages are 128..=191.
pub const MSG_CPU_FIRST: u16 = 128;

impl MsgType {
    /// Whether this is a task message (payload starts with a gtid).
    pub const fn is_task(self) -> bool {
        let v = self as u16;
        v >= MSG_TASK_FIRST && v < MSG_CPU_FIRST
    }
    /// Whether this is a CPU message (payload starts with a cpu).
    pub const fn is_cpu(self) -> bool {
        let v = self as u16;
        v >= MSG_CPU_FIRST && v < MSG_CPU_FIRST + 64
    }
}

/// A `u16` that is no ABI 91 message type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownMsgType(pub u16);

impl core::fmt::Display for UnknownMsgType {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "unknown ghOSt message type {}", self.0)
    }
}

// ---- §2.3 transaction states -----------------------------------------------------------------------------------

/// `GHOST_TXN_COMPLETE`: committed successfully.
pub const GHOST_TXN_COMPLETE: i32 = i32::MIN;
/// `GHOST_TXN_ABORTED`.
pub const GHOST_TXN_ABORTED: i32 = i32::MIN + 1;
/// `GHOST_TXN_TARGET_ONCPU`.
pub const GHOST_TXN_TARGET_ONCPU: i32 = i32::MIN + 2;
/// `GHOST_TXN_TARGET_STALE`.
pub const GHOST_TXN_TARGET_STALE: i32 = i32::MIN + 3;
/// `GHOST_TXN_TARGET_NOT_FOUND`.
pub const GHOST_TXN_TARGET_NOT_FOUND: i32 = i32::MIN + 4;
/// `GHOST_TXN_TARGET_NOT_RUNNABLE`.
pub const GHOST_TXN_TARGET_NOT_RUNNABLE: i32 = i32::MIN + 5;
/// `GHOST_TXN_AGENT_STALE`.
pub const GHOST_TXN_AGENT_STALE: i32 = i32::MIN + 6;
/// `GHOST_TXN_CPU_OFFLINE`.
pub const GHOST_TXN_CPU_OFFLINE: i32 = i32::MIN + 7;
/// `GHOST_TXN_CPU_UNAVAIL`.
pub const GHOST_TXN_CPU_UNAVAIL: i32 = i32::MIN + 8;
/// `GHOST_TXN_INVALID_FLAGS`.
pub const GHOST_TXN_INVALID_FLAGS: i32 = i32::MIN + 9;
/// `GHOST_TXN_INVALID_TARGET`.
pub const GHOST_TXN_INVALID_TARGET: i32 = i32::MIN + 10;
/// `GHOST_TXN_NOT_PERMITTED`.
pub const GHOST_TXN_NOT_PERMITTED: i32 = i32::MIN + 11;
/// `GHOST_TXN_INVALID_CPU`.
pub const GHOST_TXN_INVALID_CPU: i32 = i32::MIN + 12;
/// `GHOST_TXN_NO_AGENT`.
pub const GHOST_TXN_NO_AGENT: i32 = i32::MIN + 13;
/// `GHOST_TXN_UNSUPPORTED_VERSION`.
pub const GHOST_TXN_UNSUPPORTED_VERSION: i32 = i32::MIN + 14;
/// `GHOST_TXN_POISONED`.
pub const GHOST_TXN_POISONED: i32 = i32::MIN + 15;
/// `GHOST_TXN_READY`: open, waiting to be claimed.
pub const GHOST_TXN_READY: i32 = i32::MAX;

/// The final state of a committed (`state < 0`) transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum TxnOutcome {
    /// Success.
    Complete = GHOST_TXN_COMPLETE,
    /// The agent aborted it.
    Aborted = GHOST_TXN_ABORTED,
    /// The target is running on some CPU.
    TargetOnCpu = GHOST_TXN_TARGET_ONCPU,
    /// The task barrier moved: re-read messages and retry.
    TargetStale = GHOST_TXN_TARGET_STALE,
    /// No such task.
    TargetNotFound = GHOST_TXN_TARGET_NOT_FOUND,
    /// The target is not runnable.
    TargetNotRunnable = GHOST_TXN_TARGET_NOT_RUNNABLE,
    /// The agent barrier moved: drain the agent's queue and retry.
    AgentStale = GHOST_TXN_AGENT_STALE,
    /// The target CPU is offline.
    CpuOffline = GHOST_TXN_CPU_OFFLINE,
    /// A higher-priority class has the CPU.
    CpuUnavail = GHOST_TXN_CPU_UNAVAIL,
    /// Invalid run or commit flags.
    InvalidFlags = GHOST_TXN_INVALID_FLAGS,
    /// Invalid target (agent task, gtid < −2, CPU outside any enclave).
    InvalidTarget = GHOST_TXN_INVALID_TARGET,
    /// Not permitted (other enclave, non-agent caller).
    NotPermitted = GHOST_TXN_NOT_PERMITTED,
    /// The txn's cpu field does not match its CPU.
    InvalidCpu = GHOST_TXN_INVALID_CPU,
    /// No agent on the target CPU.
    NoAgent = GHOST_TXN_NO_AGENT,
    /// The txn's version is not `GHOST_TXN_VERSION`.
    UnsupportedVersion = GHOST_TXN_UNSUPPORTED_VERSION,
    /// Another member of a sync group failed.
    Poisoned = GHOST_TXN_POISONED,
}

impl TxnOutcome {
    /// Every outcome, in value order.
    pub const ALL: [TxnOutcome; 16] = [
        TxnOutcome::Complete,
        TxnOutcome::Aborted,
        TxnOutcome::TargetOnCpu,
        TxnOutcome::TargetStale,
        TxnOutcome::TargetNotFound,
        TxnOutcome::TargetNotRunnable,
        TxnOutcome::AgentStale,
        TxnOutcome::CpuOffline,
        TxnOutcome::CpuUnavail,
        TxnOutcome::InvalidFlags,
        TxnOutcome::InvalidTarget,
        TxnOutcome::NotPermitted,
        TxnOutcome::InvalidCpu,
        TxnOutcome::NoAgent,
        TxnOutcome::UnsupportedVersion,
        TxnOutcome::Poisoned,
    ];

    /// The raw `i32` state.
    pub const fn raw(self) -> i32 {
        self as i32
    }

    /// Decodes a final state; `None` for any value that is not one.
    pub const fn from_raw(v: i32) -> Option<TxnOutcome> {
        let i = v.wrapping_sub(i32::MIN);
        if i >= 0 && (i as usize) < TxnOutcome::ALL.len() {
            Some(TxnOutcome::ALL[i as usize])
        } else {
            None
        }
    }

    /// Whether the commit succeeded.
    pub const fn is_success(self) -> bool {
        matches!(self, TxnOutcome::Complete)
    }
}

/// A transaction's `state` word, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TxnState {
    /// `GHOST_TXN_READY`: open, waiting to be claimed.
    Ready,
    /// Claimed by the CPU with this id (the CPU executing the commit, not the target).
    Claimed(u32),
    /// Reached its final state.
    Committed(TxnOutcome),
    /// A negative value that is no ABI 91 final state (a hostile or buggy writer).
    Invalid(i32),
}

impl TxnState {
    /// Decodes a raw `state`.
    pub const fn from_raw(v: i32) -> TxnState {
        if v == GHOST_TXN_READY {
            TxnState::Ready
        } else if v >= 0 {
            TxnState::Claimed(v as u32)
        } else {
            match TxnOutcome::from_raw(v) {
                Some(o) => TxnState::Committed(o),
                None => TxnState::Invalid(v),
            }
        }
    }

    /// The raw `state`.
    pub const fn raw(self) -> i32 {
        match self {
            TxnState::Ready => GHOST_TXN_READY,
            TxnState::Claimed(c) => c as i32,
            TxnState::Committed(o) => o.raw(),
            TxnState::Invalid(v) => v,
        }
    }
}

// ---- §2.4–2.6 flags ------------------------------------------------------------------------------------------

/// `GHOST_SW_F_INUSE`.
pub const GHOST_SW_F_INUSE: u32 = 0x1;
/// `GHOST_SW_F_CANFREE`.
pub const GHOST_SW_F_CANFREE: u32 = 0x2;
/// `GHOST_SW_F_ALLOCATED`.
pub const GHOST_SW_F_ALLOCATED: u32 = 0x4;
/// `GHOST_SW_CPU_AVAIL`.
pub const GHOST_SW_CPU_AVAIL: u32 = 0x100;
/// `GHOST_SW_BOOST_PRIO`.
pub const GHOST_SW_BOOST_PRIO: u32 = 0x200;
/// `GHOST_SW_TASK_ONCPU`.
pub const GHOST_SW_TASK_ONCPU: u32 = 0x10000;
/// `GHOST_SW_TASK_RUNNABLE`.
pub const GHOST_SW_TASK_RUNNABLE: u32 = 0x20000;
/// `GHOST_SW_TASK_IS_AGENT`.
pub const GHOST_SW_TASK_IS_AGENT: u32 = 0x40000;
/// `GHOST_SW_TASK_MSG_GATED`.
pub const GHOST_SW_TASK_MSG_GATED: u32 = 0x80000;

bitflags! {
    /// Status-word flags (`GHOST_SW_*`).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct SwFlags: u32 {
        /// Initialised; describes a live source.
        const INUSE = GHOST_SW_F_INUSE;
        /// The kernel is done with it; the agent may free it.
        const CANFREE = GHOST_SW_F_CANFREE;
        /// Allocated.
        const ALLOCATED = GHOST_SW_F_ALLOCATED;
        /// Agent word: the CPU is available to ghOSt.
        const CPU_AVAIL = GHOST_SW_CPU_AVAIL;
        /// Agent word: a higher class wants the CPU.
        const BOOST_PRIO = GHOST_SW_BOOST_PRIO;
        /// The task is on a CPU.
        const TASK_ONCPU = GHOST_SW_TASK_ONCPU;
        /// The task is runnable.
        const TASK_RUNNABLE = GHOST_SW_TASK_RUNNABLE;
        /// The word belongs to an agent.
        const TASK_IS_AGENT = GHOST_SW_TASK_IS_AGENT;
        /// Messages of the task's next incarnation are held until this word is freed.
        const TASK_MSG_GATED = GHOST_SW_TASK_MSG_GATED;
    }
}

/// `RTLA_ON_PREEMPT`.
pub const RTLA_ON_PREEMPT: u16 = 0x1;
/// `RTLA_ON_BLOCKED`.
pub const RTLA_ON_BLOCKED: u16 = 0x2;
/// `RTLA_ON_YIELD`.
pub const RTLA_ON_YIELD: u16 = 0x4;
/// `RTLA_ON_IDLE`.
pub const RTLA_ON_IDLE: u16 = 0x20;
/// `NEED_L1D_FLUSH`.
pub const NEED_L1D_FLUSH: u16 = 0x40;
/// `NEED_CPU_NOT_IDLE`.
pub const NEED_CPU_NOT_IDLE: u16 = 0x80;
/// `ELIDE_PREEMPT`.
pub const ELIDE_PREEMPT: u16 = 0x200;
/// `SEND_TASK_ON_CPU`.
pub const SEND_TASK_ON_CPU: u16 = 0x400;
/// `DEFER_LATCHED_PREEMPTION_BY_AGENT`.
pub const DEFER_LATCHED_PREEMPTION_BY_AGENT: u16 = 0x800;
/// `DO_NOT_PREEMPT`.
pub const DO_NOT_PREEMPT: u16 = 0x1000;

bitflags! {
    /// Transaction run flags (`txn.run_flags`).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct RunFlags: u16 {
        /// Return to the local agent when the task is preempted.
        const RTLA_ON_PREEMPT = RTLA_ON_PREEMPT;
        /// Return to the local agent when the task blocks.
        const RTLA_ON_BLOCKED = RTLA_ON_BLOCKED;
        /// Return to the local agent when the task yields.
        const RTLA_ON_YIELD = RTLA_ON_YIELD;
        /// Return to the local agent when the CPU goes idle.
        const RTLA_ON_IDLE = RTLA_ON_IDLE;
        /// Flush L1D before running the task.
        const NEED_L1D_FLUSH = NEED_L1D_FLUSH;
        /// Send `MSG_CPU_NOT_IDLE` when the idle task is displaced.
        const NEED_CPU_NOT_IDLE = NEED_CPU_NOT_IDLE;
        /// No `TASK_PREEMPT` for the previously latched task.
        const ELIDE_PREEMPT = ELIDE_PREEMPT;
        /// Send `MSG_TASK_ON_CPU` when the task gets on the CPU.
        const SEND_TASK_ON_CPU = SEND_TASK_ON_CPU;
        /// Let the agent, not the kernel, preempt a latched task.
        const DEFER_LATCHED_PREEMPTION_BY_AGENT = DEFER_LATCHED_PREEMPTION_BY_AGENT;
        /// Fail with `AGENT_STALE` rather than preempt.
        const DO_NOT_PREEMPT = DO_NOT_PREEMPT;
    }
}

/// `COMMIT_AT_SCHEDULE`.
pub const COMMIT_AT_SCHEDULE: u8 = 0x1;
/// `COMMIT_AT_TXN_COMMIT`.
pub const COMMIT_AT_TXN_COMMIT: u8 = 0x2;
/// `ALLOW_TASK_ONCPU`.
pub const ALLOW_TASK_ONCPU: u8 = 0x4;
/// `ELIDE_AGENT_BARRIER_INC`.
pub const ELIDE_AGENT_BARRIER_INC: u8 = 0x8;
/// `INC_AGENT_BARRIER_ON_FAILURE`.
pub const INC_AGENT_BARRIER_ON_FAILURE: u8 = 0x10;
/// `COMMIT_AT_FLAGS`: both commit-point bits.
pub const COMMIT_AT_FLAGS: u8 = COMMIT_AT_SCHEDULE | COMMIT_AT_TXN_COMMIT;

bitflags! {
    /// Transaction commit flags (`txn.commit_flags`).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct CommitFlags: u8 {
        /// Commit in the target CPU's scheduler.
        const COMMIT_AT_SCHEDULE = COMMIT_AT_SCHEDULE;
        /// Commit inline in the commit ioctl.
        const COMMIT_AT_TXN_COMMIT = COMMIT_AT_TXN_COMMIT;
        /// Allow targeting a task already on the target CPU.
        const ALLOW_TASK_ONCPU = ALLOW_TASK_ONCPU;
        /// Do not bump the target CPU's agent barrier on success.
        const ELIDE_AGENT_BARRIER_INC = ELIDE_AGENT_BARRIER_INC;
        /// Bump the target CPU's agent barrier on failure.
        const INC_AGENT_BARRIER_ON_FAILURE = INC_AGENT_BARRIER_ON_FAILURE;
    }
}

// ---- §2.7 gtids ------------------------------------------------------------------------------------------------

/// `GHOST_NULL_GTID`.
pub const GHOST_NULL_GTID: i64 = 0;
/// `GHOST_AGENT_GTID`.
pub const GHOST_AGENT_GTID: i64 = -1;
/// `GHOST_IDLE_GTID`.
pub const GHOST_IDLE_GTID: i64 = -2;

/// A ghOSt thread id: `(pid << seqnum_bits) | seqnum`, positive for real tasks; 0, −1, −2 are special.
///
/// ABI 91 computes the split at run time (`63 − ceil(log2(pid_max_max))`); [`GtidLayout::DEFAULT`] is the
/// common 41-bit seqnum of `pid_max_max` = 2^22.
///
/// ```
/// use ghost_shm::abi::{Gtid, GtidLayout};
/// let l = GtidLayout::DEFAULT;
/// let g = l.compose(1234, 7).unwrap();
/// assert_eq!((l.pid(g), l.seqnum(g)), (1234, 7));
/// assert!(g.is_task());
/// assert!(Gtid::IDLE.is_special());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
#[repr(transparent)]
pub struct Gtid(pub i64);

impl Gtid {
    /// `GHOST_NULL_GTID`: run nothing / yield.
    pub const NULL: Gtid = Gtid(GHOST_NULL_GTID);
    /// `GHOST_AGENT_GTID`: run (ping) the agent.
    pub const AGENT: Gtid = Gtid(GHOST_AGENT_GTID);
    /// `GHOST_IDLE_GTID`: run the idle task.
    pub const IDLE: Gtid = Gtid(GHOST_IDLE_GTID);

    /// Whether this names a real task (positive).
    pub const fn is_task(self) -> bool {
        self.0 > 0
    }
    /// Whether this is one of the special values NULL, AGENT, IDLE.
    pub const fn is_special(self) -> bool {
        self.0 <= 0 && self.0 >= GHOST_IDLE_GTID
    }
    /// The raw value.
    pub const fn raw(self) -> i64 {
        self.0
    }
}

impl From<u64> for Gtid {
    fn from(v: u64) -> Gtid {
        Gtid(v as i64)
    }
}

impl core::fmt::Display for Gtid {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "gtid:{}", self.0)
    }
}

/// How a gtid splits into pid and seqnum (`GHOST_TID_SEQNUM_BITS` / `GHOST_TID_PID_BITS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GtidLayout {
    seqnum_bits: u32,
}

impl GtidLayout {
    /// 41 seqnum bits, 22 pid bits (`pid_max_max` = 4194304).
    pub const DEFAULT: GtidLayout = GtidLayout { seqnum_bits: 41 };

    /// A layout with `seqnum_bits` low bits of sequence number (1..=62); `None` otherwise.
    pub const fn new(seqnum_bits: u32) -> Option<GtidLayout> {
        if seqnum_bits >= 1 && seqnum_bits <= 62 {
            Some(GtidLayout { seqnum_bits })
        } else {
            None
        }
    }

    /// The layout ABI 91 user space derives from `/proc/sys/kernel/pid_max_max`: 63 − ceil(log2(v)).
    pub const fn from_pid_max_max(v: u64) -> Option<GtidLayout> {
        if v < 2 {
            return None;
        }
        let ceil_log2 = 64 - (v - 1).leading_zeros();
        if ceil_log2 >= 63 {
            return None;
        }
        GtidLayout::new(63 - ceil_log2)
    }

    /// Sequence-number bits.
    pub const fn seqnum_bits(self) -> u32 {
        self.seqnum_bits
    }
    /// Pid bits.
    pub const fn pid_bits(self) -> u32 {
        63 - self.seqnum_bits
    }
    /// The pid part of a gtid.
    pub const fn pid(self, g: Gtid) -> u64 {
        (g.0 as u64 & (i64::MAX as u64)) >> self.seqnum_bits
    }
    /// The seqnum part of a gtid.
    pub const fn seqnum(self, g: Gtid) -> u64 {
        g.0 as u64 & ((1u64 << self.seqnum_bits) - 1)
    }
    /// Builds a gtid; `None` if the pid or seqnum does not fit or seqnum is 0 (the kernel skips 0).
    pub const fn compose(self, pid: u64, seqnum: u64) -> Option<Gtid> {
        if seqnum == 0 || seqnum >> self.seqnum_bits != 0 || pid >> self.pid_bits() != 0 {
            return None;
        }
        Some(Gtid(((pid << self.seqnum_bits) | seqnum) as i64))
    }
}

// ---- §2.8 ioctls ------------------------------------------------------------------------------------------------

const IOC_NONE: u32 = 0;
const IOC_WRITE: u32 = 1;
const IOC_READ: u32 = 2;

/// Linux `_IOC(dir, type, nr, size)` (asm-generic encoding, used by x86_64 and aarch64).
pub const fn ioc(dir: u32, ty: u8, nr: u8, size: usize) -> u32 {
    (dir << 30) | ((size as u32) << 16) | ((ty as u32) << 8) | nr as u32
}

/// The ghOSt ioctl type, `'g'`.
pub const GHOST_IOC_TYPE: u8 = b'g';
/// `GHOST_IOC_NULL`.
pub const GHOST_IOC_NULL: u32 = ioc(IOC_NONE, GHOST_IOC_TYPE, 0, 0);
/// `GHOST_IOC_SW_GET_INFO`.
pub const GHOST_IOC_SW_GET_INFO: u32 = ioc(IOC_READ | IOC_WRITE, GHOST_IOC_TYPE, 1, size_of::<GhostIocSwGetInfo>());
/// `GHOST_IOC_SW_FREE`.
pub const GHOST_IOC_SW_FREE: u32 = ioc(IOC_WRITE, GHOST_IOC_TYPE, 2, size_of::<GhostSwInfo>());
/// `GHOST_IOC_CREATE_QUEUE`.
pub const GHOST_IOC_CREATE_QUEUE: u32 = ioc(IOC_READ | IOC_WRITE, GHOST_IOC_TYPE, 3, size_of::<GhostIocCreateQueue>());
/// `GHOST_IOC_ASSOC_QUEUE`.
pub const GHOST_IOC_ASSOC_QUEUE: u32 = ioc(IOC_WRITE, GHOST_IOC_TYPE, 4, size_of::<GhostIocAssocQueue>());
/// `GHOST_IOC_SET_DEFAULT_QUEUE`.
pub const GHOST_IOC_SET_DEFAULT_QUEUE: u32 = ioc(IOC_WRITE, GHOST_IOC_TYPE, 5, size_of::<GhostIocSetDefaultQueue>());
/// `GHOST_IOC_CONFIG_QUEUE_WAKEUP`.
pub const GHOST_IOC_CONFIG_QUEUE_WAKEUP: u32 =
    ioc(IOC_WRITE, GHOST_IOC_TYPE, 6, size_of::<GhostIocConfigQueueWakeup>());
/// `GHOST_IOC_GET_CPU_TIME`.
pub const GHOST_IOC_GET_CPU_TIME: u32 = ioc(IOC_READ | IOC_WRITE, GHOST_IOC_TYPE, 7, size_of::<GhostIocGetCpuTime>());
/// `GHOST_IOC_COMMIT_TXN`.
pub const GHOST_IOC_COMMIT_TXN: u32 = ioc(IOC_WRITE, GHOST_IOC_TYPE, 8, size_of::<GhostIocCommitTxn>());
/// `GHOST_IOC_SYNC_GROUP_TXN`.
pub const GHOST_IOC_SYNC_GROUP_TXN: u32 = ioc(IOC_WRITE, GHOST_IOC_TYPE, 9, size_of::<GhostIocCommitTxn>());
/// `GHOST_IOC_TIMERFD_SETTIME`.
pub const GHOST_IOC_TIMERFD_SETTIME: u32 =
    ioc(IOC_READ | IOC_WRITE, GHOST_IOC_TYPE, 10, size_of::<GhostIocTimerfdSettime>());
/// `TIMERFD_GHOST_ENABLED`: `timerfd_ghost.flags` bit that turns a timer's expiry into `CPU_TIMER_EXPIRED`.
pub const TIMERFD_GHOST_ENABLED: i32 = 1;
/// `GHOST_IOC_RUN`.
pub const GHOST_IOC_RUN: u32 = ioc(IOC_WRITE, GHOST_IOC_TYPE, 11, size_of::<GhostIocRun>());

// ---- region geometry (§1.1) ----------------------------------------------------------------------------------

/// Page size the regions are laid out for.
pub const PAGE_SIZE: usize = 4096;
/// Byte offset of the ring (`ghost_queue_header.start`).
pub const QUEUE_RING_OFFSET: usize = 64;
/// Byte offset of slot 0 in a queue mapping (64 + 12 = 76).
pub const QUEUE_SLOTS_OFFSET: usize = QUEUE_RING_OFFSET + size_of::<GhostRing>();
/// Size of a status-word region (2 MiB).
pub const SW_REGION_SIZE: usize = 2 * 1024 * 1024;
/// Status words per region (65534).
pub const SW_REGION_CAPACITY: u32 = ((SW_REGION_SIZE - 64) / size_of::<GhostStatusWord>()) as u32;
/// Size of one CPU's page in the `cpu_data` mapping.
pub const CPU_DATA_SIZE: usize = size_of::<GhostCpuData>();

/// `PAGE_ALIGN(64 + 12 + 8 * nelems)`: the size of a queue mapping of `nelems` slots.
pub const fn queue_mapsize(nelems: u32) -> usize {
    let raw = QUEUE_SLOTS_OFFSET + 8 * nelems as usize;
    raw.div_ceil(PAGE_SIZE) * PAGE_SIZE
}

static_assertions::const_assert_eq!(QUEUE_SLOTS_OFFSET, 76);
static_assertions::const_assert_eq!(SW_REGION_CAPACITY, 65534);
static_assertions::const_assert_eq!(queue_mapsize(65536), 528_384);

// ---- the constant table ------------------------------------------------------------------------------------------

/// Every constant of ABI 91 by its C name, in the format of `abi91-consts.txt` (`NAME value`).
pub const CONSTS: &[(&str, i64)] = &[
    ("ALLOW_TASK_ONCPU", ALLOW_TASK_ONCPU as i64),
    ("COMMIT_AT_FLAGS", COMMIT_AT_FLAGS as i64),
    ("COMMIT_AT_SCHEDULE", COMMIT_AT_SCHEDULE as i64),
    ("COMMIT_AT_TXN_COMMIT", COMMIT_AT_TXN_COMMIT as i64),
    ("DEFER_LATCHED_PREEMPTION_BY_AGENT", DEFER_LATCHED_PREEMPTION_BY_AGENT as i64),
    ("DO_NOT_PREEMPT", DO_NOT_PREEMPT as i64),
    ("ELIDE_AGENT_BARRIER_INC", ELIDE_AGENT_BARRIER_INC as i64),
    ("ELIDE_PREEMPT", ELIDE_PREEMPT as i64),
    ("GHOST_AGENT_GTID", GHOST_AGENT_GTID),
    ("GHOST_ASSOC_SF_ALREADY", GHOST_ASSOC_SF_ALREADY as i64),
    ("GHOST_ASSOC_SF_BRAND_NEW", GHOST_ASSOC_SF_BRAND_NEW as i64),
    ("GHOST_IDLE_GTID", GHOST_IDLE_GTID),
    ("GHOST_IOC_ASSOC_QUEUE", GHOST_IOC_ASSOC_QUEUE as i64),
    ("GHOST_IOC_COMMIT_TXN", GHOST_IOC_COMMIT_TXN as i64),
    ("GHOST_IOC_CONFIG_QUEUE_WAKEUP", GHOST_IOC_CONFIG_QUEUE_WAKEUP as i64),
    ("GHOST_IOC_CREATE_QUEUE", GHOST_IOC_CREATE_QUEUE as i64),
    ("GHOST_IOC_GET_CPU_TIME", GHOST_IOC_GET_CPU_TIME as i64),
    ("GHOST_IOC_NULL", GHOST_IOC_NULL as i64),
    ("GHOST_IOC_RUN", GHOST_IOC_RUN as i64),
    ("GHOST_IOC_SET_DEFAULT_QUEUE", GHOST_IOC_SET_DEFAULT_QUEUE as i64),
    ("GHOST_IOC_SW_FREE", GHOST_IOC_SW_FREE as i64),
    ("GHOST_IOC_SW_GET_INFO", GHOST_IOC_SW_GET_INFO as i64),
    ("GHOST_IOC_SYNC_GROUP_TXN", GHOST_IOC_SYNC_GROUP_TXN as i64),
    ("GHOST_IOC_TIMERFD_SETTIME", GHOST_IOC_TIMERFD_SETTIME as i64),
    ("GHOST_MAX_QUEUE_ELEMS", GHOST_MAX_QUEUE_ELEMS as i64),
    ("GHOST_MAX_WINFO", GHOST_MAX_WINFO as i64),
    ("GHOST_NULL_GTID", GHOST_NULL_GTID),
    ("GHOST_QUEUE_VERSION", GHOST_QUEUE_VERSION as i64),
    ("GHOST_SW_BOOST_PRIO", GHOST_SW_BOOST_PRIO as i64),
    ("GHOST_SW_CPU_AVAIL", GHOST_SW_CPU_AVAIL as i64),
    ("GHOST_SW_F_ALLOCATED", GHOST_SW_F_ALLOCATED as i64),
    ("GHOST_SW_F_CANFREE", GHOST_SW_F_CANFREE as i64),
    ("GHOST_SW_F_INUSE", GHOST_SW_F_INUSE as i64),
    ("GHOST_SW_REGION_VERSION", GHOST_SW_REGION_VERSION as i64),
    ("GHOST_SW_TASK_IS_AGENT", GHOST_SW_TASK_IS_AGENT as i64),
    ("GHOST_SW_TASK_MSG_GATED", GHOST_SW_TASK_MSG_GATED as i64),
    ("GHOST_SW_TASK_ONCPU", GHOST_SW_TASK_ONCPU as i64),
    ("GHOST_SW_TASK_RUNNABLE", GHOST_SW_TASK_RUNNABLE as i64),
    ("GHOST_TXN_ABORTED", GHOST_TXN_ABORTED as i64),
    ("GHOST_TXN_AGENT_STALE", GHOST_TXN_AGENT_STALE as i64),
    ("GHOST_TXN_COMPLETE", GHOST_TXN_COMPLETE as i64),
    ("GHOST_TXN_CPU_OFFLINE", GHOST_TXN_CPU_OFFLINE as i64),
    ("GHOST_TXN_CPU_UNAVAIL", GHOST_TXN_CPU_UNAVAIL as i64),
    ("GHOST_TXN_INVALID_CPU", GHOST_TXN_INVALID_CPU as i64),
    ("GHOST_TXN_INVALID_FLAGS", GHOST_TXN_INVALID_FLAGS as i64),
    ("GHOST_TXN_INVALID_TARGET", GHOST_TXN_INVALID_TARGET as i64),
    ("GHOST_TXN_NOT_PERMITTED", GHOST_TXN_NOT_PERMITTED as i64),
    ("GHOST_TXN_NO_AGENT", GHOST_TXN_NO_AGENT as i64),
    ("GHOST_TXN_POISONED", GHOST_TXN_POISONED as i64),
    ("GHOST_TXN_READY", GHOST_TXN_READY as i64),
    ("GHOST_TXN_TARGET_NOT_FOUND", GHOST_TXN_TARGET_NOT_FOUND as i64),
    ("GHOST_TXN_TARGET_NOT_RUNNABLE", GHOST_TXN_TARGET_NOT_RUNNABLE as i64),
    ("GHOST_TXN_TARGET_ONCPU", GHOST_TXN_TARGET_ONCPU as i64),
    ("GHOST_TXN_TARGET_STALE", GHOST_TXN_TARGET_STALE as i64),
    ("GHOST_TXN_UNSUPPORTED_VERSION", GHOST_TXN_UNSUPPORTED_VERSION as i64),
    ("GHOST_TXN_VERSION", GHOST_TXN_VERSION as i64),
    ("GHOST_VERSION", GHOST_VERSION as i64),
    ("INC_AGENT_BARRIER_ON_FAILURE", INC_AGENT_BARRIER_ON_FAILURE as i64),
    ("MSG_CPU_AGENT_BLOCKED", MSG_CPU_AGENT_BLOCKED as i64),
    ("MSG_CPU_AGENT_WAKEUP", MSG_CPU_AGENT_WAKEUP as i64),
    ("MSG_CPU_AVAILABLE", MSG_CPU_AVAILABLE as i64),
    ("MSG_CPU_BUSY", MSG_CPU_BUSY as i64),
    ("MSG_CPU_NOT_IDLE", MSG_CPU_NOT_IDLE as i64),
    ("MSG_CPU_TICK", MSG_CPU_TICK as i64),
    ("MSG_CPU_TIMER_EXPIRED", MSG_CPU_TIMER_EXPIRED as i64),
    ("MSG_NOP", MSG_NOP as i64),
    ("MSG_TASK_AFFINITY_CHANGED", MSG_TASK_AFFINITY_CHANGED as i64),
    ("MSG_TASK_BLOCKED", MSG_TASK_BLOCKED as i64),
    ("MSG_TASK_DEAD", MSG_TASK_DEAD as i64),
    ("MSG_TASK_DEPARTED", MSG_TASK_DEPARTED as i64),
    ("MSG_TASK_LATCH_FAILURE", MSG_TASK_LATCH_FAILURE as i64),
    ("MSG_TASK_NEW", MSG_TASK_NEW as i64),
    ("MSG_TASK_ON_CPU", MSG_TASK_ON_CPU as i64),
    ("MSG_TASK_PREEMPT", MSG_TASK_PREEMPT as i64),
    ("MSG_TASK_PRIORITY_CHANGED", MSG_TASK_PRIORITY_CHANGED as i64),
    ("MSG_TASK_SWITCHTO", MSG_TASK_SWITCHTO as i64),
    ("MSG_TASK_WAKEUP", MSG_TASK_WAKEUP as i64),
    ("MSG_TASK_YIELD", MSG_TASK_YIELD as i64),
    ("NEED_CPU_NOT_IDLE", NEED_CPU_NOT_IDLE as i64),
    ("NEED_L1D_FLUSH", NEED_L1D_FLUSH as i64),
    ("RTLA_ON_BLOCKED", RTLA_ON_BLOCKED as i64),
    ("RTLA_ON_IDLE", RTLA_ON_IDLE as i64),
    ("RTLA_ON_PREEMPT", RTLA_ON_PREEMPT as i64),
    ("RTLA_ON_YIELD", RTLA_ON_YIELD as i64),
    ("SCHED_GHOST", SCHED_GHOST as i64),
    ("SEND_TASK_ON_CPU", SEND_TASK_ON_CPU as i64),
];
