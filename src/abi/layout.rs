//! `#[repr(C)]` mirrors of every shared-memory and ioctl structure of ghOSt ABI 91.
//!
//! Field names are the C names (`type` becomes `r#type`). Implicit C padding is an explicit `_padN` field, so
//! every type is [`IntoBytes`](zerocopy::IntoBytes) and no uninitialised byte can reach the other side. Size,
//! alignment and every field offset are pinned at compile time below. These types describe *layouts* and
//! serve as copied-out snapshots; live shared memory is only ever accessed through [`crate::shm::SharedMem`].
//! User-space pointers in ioctl arguments are `u64` (ghOSt is LP64 only).

use core::mem::{align_of, offset_of, size_of};
use static_assertions::const_assert_eq;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

macro_rules! abi_struct {
    ($(#[$m:meta])* $name:ident, align $align:literal { $($(#[$fm:meta])* $vis:vis $field:ident : $ty:ty),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
        #[repr(C, align($align))]
        pub struct $name { $($(#[$fm])* $vis $field: $ty),* }

        impl Default for $name {
            /// All bytes zero.
            fn default() -> Self {
                <Self as zerocopy::FromZeros>::new_zeroed()
            }
        }
    };
}

// ---- §1.2–1.4 message queue ------------------------------------------------------------------------------

abi_struct!(
    /// `struct ghost_queue_header`: the first 64 bytes of a queue mapping (kernel-written, but the mapping is
    /// writable, so the kernel never trusts it after initialisation).
    GhostQueueHeader, align 64 {
        /// `GHOST_QUEUE_VERSION` (0).
        pub version: u32,
        /// Offset of the [`GhostRing`] from the start of the mapping (64).
        pub start: u32,
        /// Number of 8-byte slots, a power of two.
        pub nelems: u32,
        /// Explicit padding.
        pub _pad: [u8; 52],
    }
);

abi_struct!(
    /// `struct ghost_ring`: head (kernel), tail (agent), overflow (kernel); slots follow at offset 12.
    GhostRing, align 4 {
        /// Producer index, free-running, written by the kernel.
        pub head: u32,
        /// Consumer index, free-running, written by the agent.
        pub tail: u32,
        /// Count of dropped messages, written by the kernel.
        pub overflow: u32,
    }
);

abi_struct!(
    /// `struct ghost_msg`: a message header, exactly one 8-byte slot; the payload follows.
    GhostMsg, align 4 {
        /// `MSG_*` type.
        pub r#type: u16,
        /// Header + payload length in bytes, not rounded.
        pub length: u16,
        /// Barrier value of the message's source.
        pub seqnum: u32,
    }
);

// ---- §1.6–1.7 status words ---------------------------------------------------------------------------------

abi_struct!(
    /// `struct ghost_status_word`: per task or agent, kernel-written.
    GhostStatusWord, align 32 {
        /// Barrier (sequence) counter of the source.
        pub barrier: u32,
        /// `GHOST_SW_*` flags.
        pub flags: u32,
        /// Owner's gtid.
        pub gtid: u64,
        /// CLOCK_MONOTONIC ns when the task last got on a CPU.
        pub switch_time: i64,
        /// Cumulative CPU time in ns.
        pub runtime: u64,
    }
);

abi_struct!(
    /// `struct ghost_sw_region_header`: the first 64 bytes of a status-word region.
    GhostSwRegionHeader, align 64 {
        /// `GHOST_SW_REGION_VERSION` (0).
        pub version: u32,
        /// Region id chosen by user space.
        pub id: u32,
        /// NUMA node requested.
        pub numa_node: u32,
        /// Offset of the first status word (64).
        pub start: u32,
        /// Number of status words (65534).
        pub capacity: u32,
        /// Free words.
        pub available: u32,
        /// Explicit padding.
        pub _pad: [u8; 40],
    }
);

// ---- §1.8 transactions ---------------------------------------------------------------------------------------

abi_struct!(
    /// `struct ghost_txn`: the per-CPU transaction at offset 0 of that CPU's `ghost_cpu_data` page.
    GhostTxn, align 64 {
        /// `GHOST_TXN_VERSION` (0), kernel, read-only after init.
        pub version: i32,
        /// CPU number, kernel, read-only after init.
        pub cpu: i32,
        /// `enum ghost_txn_state`, both sides.
        pub state: i32,
        /// Agent barrier seen by the agent.
        pub agent_barrier: u32,
        /// Task barrier (seqnum of the last consumed message of the target).
        pub task_barrier: u32,
        /// `RUN_FLAGS`.
        pub run_flags: u16,
        /// `COMMIT_FLAGS`.
        pub commit_flags: u8,
        /// Unused.
        pub unused: u8,
        /// Target gtid (may be a special gtid).
        pub gtid: i64,
        /// ns when the txn reached its final state (kernel).
        pub commit_time: i64,
        /// The runqueue's cpu_seqnum on success (kernel).
        pub cpu_seqnum: u64,
        /// `u.sync_group_owner`: −1 when free.
        pub sync_group_owner: i32,
        /// Explicit padding.
        pub _pad: [u8; 12],
    }
);

abi_struct!(
    /// `struct ghost_cpu_data`: one page per possible CPU in the `cpu_data` mapping.
    GhostCpuData, align 4096 {
        /// The CPU's transaction.
        pub txn: GhostTxn,
        /// Explicit padding to the page.
        pub _pad: [[u8; 64]; 63],
    }
);

// ---- §1.9 ioctl arguments ----------------------------------------------------------------------------------

abi_struct!(
    /// `struct ghost_msg_src`: a message source (agent of a CPU, or a task).
    GhostMsgSrc, align 8 {
        /// `enum ghost_type`: `GHOST_AGENT` (0) or `GHOST_TASK` (1).
        pub r#type: u32,
        /// Explicit padding.
        pub _pad: u32,
        /// CPU for an agent, gtid for a task.
        pub arg: u64,
    }
);

abi_struct!(
    /// `struct ghost_sw_info`: names a status word (region id, index).
    GhostSwInfo, align 4 {
        /// Region id.
        pub id: u32,
        /// Index in the region.
        pub index: u32,
    }
);

abi_struct!(
    /// `struct ghost_ioc_sw_get_info` (`GHOST_IOC_SW_GET_INFO`).
    GhostIocSwGetInfo, align 8 {
        /// Whose status word.
        pub request: GhostMsgSrc,
        /// Out: where it is.
        pub response: GhostSwInfo,
    }
);

abi_struct!(
    /// `struct ghost_ioc_create_queue` (`GHOST_IOC_CREATE_QUEUE`).
    GhostIocCreateQueue, align 8 {
        /// Slots, a power of two in 1..=65536.
        pub elems: i32,
        /// NUMA node.
        pub node: i32,
        /// Must be 0.
        pub flags: i32,
        /// Explicit padding.
        pub _pad: u32,
        /// Out: mapping size.
        pub mapsize: u64,
    }
);

abi_struct!(
    /// `struct ghost_ioc_assoc_queue` (`GHOST_IOC_ASSOC_QUEUE`).
    GhostIocAssocQueue, align 8 {
        /// Queue fd.
        pub fd: i32,
        /// Explicit padding.
        pub _pad: u32,
        /// Source to associate.
        pub src: GhostMsgSrc,
        /// Barrier the caller saw.
        pub barrier: u32,
        /// Must be 0.
        pub flags: i32,
    }
);

abi_struct!(
    /// `struct ghost_ioc_set_default_queue` (`GHOST_IOC_SET_DEFAULT_QUEUE`).
    GhostIocSetDefaultQueue, align 4 {
        /// Queue fd.
        pub fd: i32,
    }
);

abi_struct!(
    /// `struct ghost_agent_wakeup`: whom to wake for a queue.
    GhostAgentWakeup, align 4 {
        /// Agent CPU.
        pub cpu: i32,
        /// Must be 0.
        pub prio: i32,
    }
);

abi_struct!(
    /// `struct ghost_ioc_config_queue_wakeup` (`GHOST_IOC_CONFIG_QUEUE_WAKEUP`).
    GhostIocConfigQueueWakeup, align 8 {
        /// Queue fd.
        pub qfd: i32,
        /// Explicit padding.
        pub _pad: u32,
        /// User pointer to `ninfo` [`GhostAgentWakeup`]s.
        pub w: u64,
        /// 0..=`GHOST_MAX_WINFO`.
        pub ninfo: i32,
        /// Must be 0.
        pub flags: i32,
    }
);

abi_struct!(
    /// `struct ghost_ioc_get_cpu_time` (`GHOST_IOC_GET_CPU_TIME`).
    GhostIocGetCpuTime, align 8 {
        /// Task.
        pub gtid: i64,
        /// Out: runtime in ns.
        pub runtime: u64,
    }
);

abi_struct!(
    /// `struct ghost_ioc_commit_txn` (`GHOST_IOC_COMMIT_TXN`, `GHOST_IOC_SYNC_GROUP_TXN`).
    GhostIocCommitTxn, align 8 {
        /// User pointer to a CPU mask.
        pub mask_ptr: u64,
        /// Mask length in bytes.
        pub mask_len: u32,
        /// Must be 0.
        pub flags: i32,
    }
);

abi_struct!(
    /// `struct timerfd_ghost`: ghOSt extension of a timerfd.
    TimerfdGhost, align 8 {
        /// CPU whose agent gets `MSG_CPU_TIMER_EXPIRED`.
        pub cpu: i32,
        /// `TIMERFD_GHOST_ENABLED`.
        pub flags: i32,
        /// Opaque type echoed in the message.
        pub r#type: u64,
        /// Opaque cookie echoed in the message.
        pub cookie: u64,
    }
);

abi_struct!(
    /// `struct ghost_ioc_timerfd_settime` (`GHOST_IOC_TIMERFD_SETTIME`).
    GhostIocTimerfdSettime, align 8 {
        /// The timerfd.
        pub timerfd: i32,
        /// timerfd_settime flags.
        pub flags: i32,
        /// User pointer to the new `itimerspec`.
        pub in_tmr: u64,
        /// User pointer to the old `itimerspec` (out).
        pub out_tmr: u64,
        /// ghOSt extension.
        pub timerfd_ghost: TimerfdGhost,
    }
);

abi_struct!(
    /// `struct ghost_ioc_run` (`GHOST_IOC_RUN`).
    GhostIocRun, align 8 {
        /// `GHOST_NULL_GTID` (yield) or `GHOST_AGENT_GTID` (ping).
        pub gtid: i64,
        /// Agent barrier seen.
        pub agent_barrier: u32,
        /// Ignored by the kernel.
        pub task_barrier: u32,
        /// CPU.
        pub run_cpu: i32,
        /// ⊆ `RTLA_ON_IDLE`.
        pub run_flags: i32,
    }
);

// ---- §1.5 message payloads -----------------------------------------------------------------------------------

abi_struct!(
    /// `MSG_TASK_NEW` payload.
    PayloadTaskNew, align 8 {
        /// Task.
        pub gtid: u64,
        /// Parent task.
        pub parent_gtid: u64,
        /// Runtime in ns.
        pub runtime: u64,
        /// 1 if queued on a runqueue.
        pub runnable: u16,
        /// Explicit padding.
        pub _pad: u16,
        /// Nice value.
        pub nice: i32,
        /// Where its status word is.
        pub sw_info: GhostSwInfo,
        /// Reserved for BPF (0).
        pub agent_data: u64,
    }
);

abi_struct!(
    /// `MSG_TASK_PREEMPT` payload.
    PayloadTaskPreempt, align 8 {
        /// Task.
        pub gtid: u64,
        /// Runtime in ns.
        pub runtime: u64,
        /// Runqueue sequence number.
        pub cpu_seqnum: u64,
        /// Reserved for BPF (0).
        pub agent_data: u64,
        /// CPU it was preempted on.
        pub cpu: i32,
        /// 1 if in a switchto chain.
        pub from_switchto: u8,
        /// 1 if the task was latched and never ran.
        pub was_latched: u8,
        /// Explicit padding.
        pub _pad: [u8; 2],
    }
);

abi_struct!(
    /// `MSG_TASK_YIELD` payload.
    PayloadTaskYield, align 8 {
        /// Task.
        pub gtid: u64,
        /// Runtime in ns.
        pub runtime: u64,
        /// Runqueue sequence number.
        pub cpu_seqnum: u64,
        /// Reserved for BPF (0).
        pub agent_data: u64,
        /// CPU.
        pub cpu: i32,
        /// 1 if in a switchto chain.
        pub from_switchto: u8,
        /// Explicit padding.
        pub _pad: [u8; 3],
    }
);

abi_struct!(
    /// `MSG_TASK_BLOCKED` payload.
    PayloadTaskBlocked, align 8 {
        /// Task.
        pub gtid: u64,
        /// Runtime in ns.
        pub runtime: u64,
        /// Runqueue sequence number.
        pub cpu_seqnum: u64,
        /// CPU.
        pub cpu: i32,
        /// 1 if in a switchto chain.
        pub from_switchto: u8,
        /// Explicit padding.
        pub _pad: [u8; 3],
    }
);

abi_struct!(
    /// `MSG_TASK_DEAD` payload.
    PayloadTaskDead, align 8 {
        /// Task.
        pub gtid: u64,
        /// CPU (ABI 90+).
        pub cpu: i32,
        /// Explicit padding.
        pub _pad: u32,
    }
);

abi_struct!(
    /// `MSG_TASK_DEPARTED` payload.
    PayloadTaskDeparted, align 8 {
        /// Task.
        pub gtid: u64,
        /// Runqueue sequence number.
        pub cpu_seqnum: u64,
        /// CPU.
        pub cpu: i32,
        /// 1 if in a switchto chain.
        pub from_switchto: u8,
        /// 1 if it was current on `cpu`.
        pub was_current: u8,
        /// Explicit padding.
        pub _pad: [u8; 2],
    }
);

abi_struct!(
    /// `MSG_TASK_AFFINITY_CHANGED` payload.
    PayloadTaskAffinityChanged, align 8 {
        /// Task.
        pub gtid: u64,
    }
);

abi_struct!(
    /// `MSG_TASK_PRIORITY_CHANGED` payload.
    PayloadTaskPriorityChanged, align 8 {
        /// Task.
        pub gtid: u64,
        /// New nice value.
        pub nice: i32,
        /// Explicit padding.
        pub _pad: u32,
    }
);

abi_struct!(
    /// `MSG_TASK_WAKEUP` payload.
    PayloadTaskWakeup, align 8 {
        /// Task.
        pub gtid: u64,
        /// Reserved for BPF (0).
        pub agent_data: u64,
        /// 1 if the wakeup may be deferred.
        pub deferrable: u8,
        /// Explicit padding.
        pub _pad: [u8; 3],
        /// CPU it last ran on.
        pub last_ran_cpu: i32,
        /// CPU it was woken on.
        pub wake_up_cpu: i32,
        /// CPU of the waker.
        pub waker_cpu: i32,
    }
);

abi_struct!(
    /// `MSG_TASK_SWITCHTO` payload.
    PayloadTaskSwitchto, align 8 {
        /// Task.
        pub gtid: u64,
        /// Runtime in ns.
        pub runtime: u64,
        /// Runqueue sequence number.
        pub cpu_seqnum: u64,
        /// CPU.
        pub cpu: i32,
        /// Explicit padding.
        pub _pad: u32,
    }
);

abi_struct!(
    /// `MSG_TASK_ON_CPU` payload.
    PayloadTaskOnCpu, align 8 {
        /// Task.
        pub gtid: u64,
        /// ns at the switch.
        pub commit_time: u64,
        /// Runqueue sequence number.
        pub cpu_seqnum: u64,
        /// CPU.
        pub cpu: i32,
        /// Explicit padding.
        pub _pad: u32,
    }
);

abi_struct!(
    /// `MSG_TASK_LATCH_FAILURE` payload (BPF only; never written to a ring by the kernel).
    PayloadTaskLatchFailure, align 8 {
        /// Task.
        pub gtid: u64,
        /// Error number.
        pub errno: i32,
        /// Explicit padding.
        pub _pad: u32,
    }
);

abi_struct!(
    /// `MSG_CPU_TICK` payload.
    PayloadCpuTick, align 4 {
        /// CPU.
        pub cpu: i32,
        /// 1 if the tick hit the agent (ABI 90+).
        pub is_agent: i32,
    }
);

abi_struct!(
    /// `MSG_CPU_TIMER_EXPIRED` payload (`struct ghost_msg_payload_timer`).
    PayloadTimer, align 8 {
        /// CPU.
        pub cpu: i32,
        /// Explicit padding.
        pub _pad: u32,
        /// From the timerfd's [`TimerfdGhost`].
        pub r#type: u64,
        /// From the timerfd's [`TimerfdGhost`].
        pub cookie: u64,
    }
);

abi_struct!(
    /// `MSG_CPU_NOT_IDLE` payload.
    PayloadCpuNotIdle, align 8 {
        /// CPU.
        pub cpu: i32,
        /// Explicit padding.
        pub _pad: u32,
        /// Task that displaced the idle task.
        pub next_gtid: u64,
    }
);

abi_struct!(
    /// `MSG_CPU_AVAILABLE` payload.
    PayloadCpuAvailable, align 4 {
        /// CPU.
        pub cpu: i32,
    }
);

abi_struct!(
    /// `MSG_CPU_BUSY` payload.
    PayloadCpuBusy, align 4 {
        /// CPU.
        pub cpu: i32,
    }
);

abi_struct!(
    /// `MSG_CPU_AGENT_BLOCKED` payload (`struct ghost_msg_payload_agent_blocked`).
    PayloadAgentBlocked, align 4 {
        /// CPU.
        pub cpu: i32,
    }
);

abi_struct!(
    /// `MSG_CPU_AGENT_WAKEUP` payload (`struct ghost_msg_payload_agent_wakeup`).
    PayloadAgentWakeup, align 4 {
        /// CPU.
        pub cpu: i32,
    }
);

// ---- the layout table: compile-time pins and the printable listing --------------------------------------------

/// One line of the layout listing, in the format of `abi91-layout.txt`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayoutLine {
    /// `NAME size S align A`
    Struct {
        /// C struct name.
        name: &'static str,
        /// `sizeof`.
        size: usize,
        /// `alignof`.
        align: usize,
    },
    /// `NAME.FIELD offset O size S` (no size for a flexible array member).
    Field {
        /// C struct name.
        name: &'static str,
        /// C field name.
        field: &'static str,
        /// `offsetof`.
        offset: usize,
        /// `sizeof` of the field; `None` for a flexible array member.
        size: Option<usize>,
    },
}

impl core::fmt::Display for LayoutLine {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            LayoutLine::Struct { name, size, align } => write!(f, "{name} size {size} align {align}"),
            LayoutLine::Field { name, field, offset, size: Some(size) } => {
                write!(f, "{name}.{field} offset {offset} size {size}")
            }
            LayoutLine::Field { name, field, offset, size: None } => write!(f, "{name}.{field} offset {offset}"),
        }
    }
}

/// `(struct, member)` of the C flexible array members: they have an offset but no size.
const FLEXIBLE_MEMBERS: &[(&str, &str)] = &[("ghost_ring", "msgs"), ("ghost_msg", "payload")];

macro_rules! layouts {
    ($( $ty:ident $cname:literal ($size:literal, $align:literal) { $($field:ident $cfield:literal $off:literal),* $(,)? } )*) => {
        $(
            const_assert_eq!(size_of::<$ty>(), $size);
            const_assert_eq!(align_of::<$ty>(), $align);
            $( const_assert_eq!(offset_of!($ty, $field), $off); )*
        )*

        /// Calls `f` with every line of the layout listing: each struct, then each of its named fields (explicit
        /// padding is not listed), computed from the Rust types with `size_of`/`align_of`/`offset_of`.
        pub fn for_each_layout_line(mut f: impl FnMut(LayoutLine)) {
            $(
                f(LayoutLine::Struct { name: $cname, size: size_of::<$ty>(), align: align_of::<$ty>() });
                {
                    let _z = <$ty as zerocopy::FromZeros>::new_zeroed();
                    $( f(LayoutLine::Field {
                        name: $cname,
                        field: $cfield,
                        offset: offset_of!($ty, $field),
                        size: Some(core::mem::size_of_val(&_z.$field)),
                    }); )*
                }
                // Flexible array members (`msgs[]`, `payload[]`) start right after the fixed part.
                for (s, field) in FLEXIBLE_MEMBERS {
                    if *s == $cname {
                        f(LayoutLine::Field { name: $cname, field, offset: size_of::<$ty>(), size: None });
                    }
                }
            )*
        }
    };
}

layouts! {
    GhostQueueHeader "ghost_queue_header" (64, 64) { version "version" 0, start "start" 4, nelems "nelems" 8 }
    GhostRing "ghost_ring" (12, 4) { head "head" 0, tail "tail" 4, overflow "overflow" 8 }
    GhostMsg "ghost_msg" (8, 4) { r#type "type" 0, length "length" 2, seqnum "seqnum" 4 }
    GhostStatusWord "ghost_status_word" (32, 32) {
        barrier "barrier" 0, flags "flags" 4, gtid "gtid" 8, switch_time "switch_time" 16, runtime "runtime" 24
    }
    GhostSwRegionHeader "ghost_sw_region_header" (64, 64) {
        version "version" 0, id "id" 4, numa_node "numa_node" 8, start "start" 12, capacity "capacity" 16,
        available "available" 20
    }
    GhostTxn "ghost_txn" (64, 64) {
        version "version" 0, cpu "cpu" 4, state "state" 8, agent_barrier "agent_barrier" 12,
        task_barrier "task_barrier" 16, run_flags "run_flags" 20, commit_flags "commit_flags" 22, unused "unused" 23,
        gtid "gtid" 24, commit_time "commit_time" 32, cpu_seqnum "cpu_seqnum" 40,
        sync_group_owner "sync_group_owner" 48
    }
    GhostCpuData "ghost_cpu_data" (4096, 4096) { txn "txn" 0 }
    GhostMsgSrc "ghost_msg_src" (16, 8) { r#type "type" 0, arg "arg" 8 }
    GhostSwInfo "ghost_sw_info" (8, 4) { id "id" 0, index "index" 4 }
    GhostIocSwGetInfo "ghost_ioc_sw_get_info" (24, 8) { request "request" 0, response "response" 16 }
    GhostIocCreateQueue "ghost_ioc_create_queue" (24, 8) {
        elems "elems" 0, node "node" 4, flags "flags" 8, mapsize "mapsize" 16
    }
    GhostIocAssocQueue "ghost_ioc_assoc_queue" (32, 8) {
        fd "fd" 0, src "src" 8, barrier "barrier" 24, flags "flags" 28
    }
    GhostIocSetDefaultQueue "ghost_ioc_set_default_queue" (4, 4) { fd "fd" 0 }
    GhostAgentWakeup "ghost_agent_wakeup" (8, 4) { cpu "cpu" 0, prio "prio" 4 }
    GhostIocConfigQueueWakeup "ghost_ioc_config_queue_wakeup" (24, 8) {
        qfd "qfd" 0, w "w" 8, ninfo "ninfo" 16, flags "flags" 20
    }
    GhostIocGetCpuTime "ghost_ioc_get_cpu_time" (16, 8) { gtid "gtid" 0, runtime "runtime" 8 }
    GhostIocCommitTxn "ghost_ioc_commit_txn" (16, 8) { mask_ptr "mask_ptr" 0, mask_len "mask_len" 8, flags "flags" 12 }
    TimerfdGhost "timerfd_ghost" (24, 8) { cpu "cpu" 0, flags "flags" 4, r#type "type" 8, cookie "cookie" 16 }
    GhostIocTimerfdSettime "ghost_ioc_timerfd_settime" (48, 8) {
        timerfd "timerfd" 0, flags "flags" 4, in_tmr "in_tmr" 8, out_tmr "out_tmr" 16, timerfd_ghost "timerfd_ghost" 24
    }
    GhostIocRun "ghost_ioc_run" (24, 8) {
        gtid "gtid" 0, agent_barrier "agent_barrier" 8, task_barrier "task_barrier" 12, run_cpu "run_cpu" 16,
        run_flags "run_flags" 20
    }
    PayloadTaskNew "ghost_msg_payload_task_new" (48, 8) {
        gtid "gtid" 0, parent_gtid "parent_gtid" 8, runtime "runtime" 16, runnable "runnable" 24, nice "nice" 28,
        sw_info "sw_info" 32, agent_data "agent_data" 40
    }
    PayloadTaskPreempt "ghost_msg_payload_task_preempt" (40, 8) {
        gtid "gtid" 0, runtime "runtime" 8, cpu_seqnum "cpu_seqnum" 16, agent_data "agent_data" 24, cpu "cpu" 32,
        from_switchto "from_switchto" 36, was_latched "was_latched" 37
    }
    PayloadTaskYield "ghost_msg_payload_task_yield" (40, 8) {
        gtid "gtid" 0, runtime "runtime" 8, cpu_seqnum "cpu_seqnum" 16, agent_data "agent_data" 24, cpu "cpu" 32,
        from_switchto "from_switchto" 36
    }
    PayloadTaskBlocked "ghost_msg_payload_task_blocked" (32, 8) {
        gtid "gtid" 0, runtime "runtime" 8, cpu_seqnum "cpu_seqnum" 16, cpu "cpu" 24, from_switchto "from_switchto" 28
    }
    PayloadTaskDead "ghost_msg_payload_task_dead" (16, 8) { gtid "gtid" 0, cpu "cpu" 8 }
    PayloadTaskDeparted "ghost_msg_payload_task_departed" (24, 8) {
        gtid "gtid" 0, cpu_seqnum "cpu_seqnum" 8, cpu "cpu" 16, from_switchto "from_switchto" 20,
        was_current "was_current" 21
    }
    PayloadTaskAffinityChanged "ghost_msg_payload_task_affinity_changed" (8, 8) { gtid "gtid" 0 }
    PayloadTaskPriorityChanged "ghost_msg_payload_task_priority_changed" (16, 8) { gtid "gtid" 0, nice "nice" 8 }
    PayloadTaskWakeup "ghost_msg_payload_task_wakeup" (32, 8) {
        gtid "gtid" 0, agent_data "agent_data" 8, deferrable "deferrable" 16, last_ran_cpu "last_ran_cpu" 20,
        wake_up_cpu "wake_up_cpu" 24, waker_cpu "waker_cpu" 28
    }
    PayloadTaskSwitchto "ghost_msg_payload_task_switchto" (32, 8) {
        gtid "gtid" 0, runtime "runtime" 8, cpu_seqnum "cpu_seqnum" 16, cpu "cpu" 24
    }
    PayloadTaskOnCpu "ghost_msg_payload_task_on_cpu" (32, 8) {
        gtid "gtid" 0, commit_time "commit_time" 8, cpu_seqnum "cpu_seqnum" 16, cpu "cpu" 24
    }
    PayloadTaskLatchFailure "ghost_msg_payload_task_latch_failure" (16, 8) { gtid "gtid" 0, errno "errno" 8 }
    PayloadCpuNotIdle "ghost_msg_payload_cpu_not_idle" (16, 8) { cpu "cpu" 0, next_gtid "next_gtid" 8 }
    PayloadCpuTick "ghost_msg_payload_cpu_tick" (8, 4) { cpu "cpu" 0, is_agent "is_agent" 4 }
    PayloadTimer "ghost_msg_payload_timer" (24, 8) { cpu "cpu" 0, r#type "type" 8, cookie "cookie" 16 }
    PayloadCpuAvailable "ghost_msg_payload_cpu_available" (4, 4) { cpu "cpu" 0 }
    PayloadCpuBusy "ghost_msg_payload_cpu_busy" (4, 4) { cpu "cpu" 0 }
    PayloadAgentBlocked "ghost_msg_payload_agent_blocked" (4, 4) { cpu "cpu" 0 }
    PayloadAgentWakeup "ghost_msg_payload_agent_wakeup" (4, 4) { cpu "cpu" 0 }
}
