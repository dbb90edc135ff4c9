//! C ABI over the kernel side of `ghost-shm`: the queue [`Producer`], the status-word [`Writer`] and its
//! per-task [`Word`]s, and the transaction claim / validate / complete of [`CpuData`].
//!
//! This crate is compiled for `x86_64-unknown-none` into one relocatable object that a C kernel module links
//! (`kmod/`, built by `ffi/kernel/build-object.sh`). The header `include/ghost_shm_kernel.h` is generated from
//! this file by cbindgen. The object must not reference anything of `core`'s precompiled code (it cannot be
//! linked into the kernel): CI checks that its undefined symbols are a subset of an allow-list (`memcpy`,
//! `memset`, `memmove`, `memcmp`, the kernel's return/indirect-call thunks and the `ghk_hook_*` functions the C
//! shim defines), so no panic path, no allocation and no formatting machinery is reachable from the entry points.
//!
//! # Storage
//!
//! The C side owns all memory: it embeds the opaque `Ghk*` storage structs (arrays of `u64` sized by the
//! `GHK_*_WORDS` constants, checked at compile time against the Rust types) and passes pointers to them.
//! The handles are not movable once initialised only in the sense that the C side must not copy them
//! (they are plain data, but a [`Word`] refers to its [`Writer`] by address).
//!
//! # Locking
//!
//! Every function that writes shared memory must be called with the caller's enclave lock held, taken with
//! interrupts disabled (`raw_spin_lock_irqsave`): the crate's internal spin locks (queue lock, allocation
//! book) are then never contended and never taken from an interrupt that interrupted their holder.
//! The transaction functions take no lock at all (claims are atomic compare-exchanges) and call the
//! `ghk_hook_*` functions, which may sleep in `ghk_hook_latch`.
#![no_std]
#![deny(missing_docs)]
#![warn(clippy::undocumented_unsafe_blocks)]
#![deny(clippy::panic, clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

// On the host (unit tests, clippy, docs) std supplies the panic handler; on bare metal this crate does.
#[cfg(not(target_os = "none"))]
extern crate std;

use core::mem::{align_of, size_of, MaybeUninit};

use ghost_shm::abi::{
    GhostSwInfo, Gtid, Message, PayloadTaskBlocked, PayloadTaskDead, PayloadTaskNew, PayloadTaskPreempt,
    PayloadTaskWakeup, PayloadTaskYield, SwFlags,
};
use ghost_shm::queue::{ProduceError, Producer};
use ghost_shm::shm::RawRegion;
use ghost_shm::status::{Word, Writer};
use ghost_shm::txn::{ClaimError, CommitPoint, CpuData, KernelView, TaskInfo, TxnSnapshot};

/// The one place that names the shared-memory backend: `RawRegion<'static>`, because the module keeps every
/// region mapped for as long as its handle lives (the contract of every entry point that takes a base pointer).
pub type Region = RawRegion<'static>;

/// Bitmap words of the status-word bookkeeping: 64 · 64 = 4096 words (the full ABI's 65534 would need 16 KiB of
/// bookkeeping built on the small kernel stack).
const SW_MAP_WORDS: usize = 64;

type Queue = Producer<Region>;
type SwWriter = Writer<Region, SW_MAP_WORDS>;
type TaskWord = Word<'static, Region, SW_MAP_WORDS>;
type Txns = CpuData<Region>;

/// Status words per region in the module: 4094, so that the region is exactly 128 KiB (64-byte header +
/// 32 bytes a word), as the ABI's 65534 words make exactly 2 MiB.
pub const GHK_SW_CAPACITY: u32 = 4094;
/// Bytes of the module's status-word region (64 + 32 · [`GHK_SW_CAPACITY`]).
pub const GHK_SW_REGION_BYTES: usize = 131072;

/// `u64` words of a [`GhkQueue`].
pub const GHK_QUEUE_WORDS: usize = 8;
/// `u64` words of a [`GhkSwRegion`].
pub const GHK_SW_WORDS: usize = 136;
/// `u64` words of a [`GhkTaskWord`].
pub const GHK_WORD_WORDS: usize = 4;
/// `u64` words of a [`GhkCpuData`].
pub const GHK_CPU_DATA_WORDS: usize = 132;

/// Storage of a queue producer (opaque).
#[repr(C)]
pub struct GhkQueue {
    opaque: [u64; GHK_QUEUE_WORDS],
}

/// Storage of a status-word region writer (opaque).
#[repr(C)]
pub struct GhkSwRegion {
    opaque: [u64; GHK_SW_WORDS],
}

/// Storage of one task's status-word handle (opaque).
#[repr(C)]
pub struct GhkTaskWord {
    opaque: [u64; GHK_WORD_WORDS],
}

/// Storage of the `cpu_data` (transactions) region handle (opaque).
#[repr(C)]
pub struct GhkCpuData {
    opaque: [u64; GHK_CPU_DATA_WORDS],
}

// The storage holds the Rust types: big enough and aligned enough (u64 storage is 8-aligned).
const _: () = {
    assert!(size_of::<Queue>() <= size_of::<GhkQueue>() && align_of::<Queue>() <= 8);
    assert!(size_of::<SwWriter>() <= size_of::<GhkSwRegion>() && align_of::<SwWriter>() <= 8);
    assert!(size_of::<TaskWord>() <= size_of::<GhkTaskWord>() && align_of::<TaskWord>() <= 8);
    assert!(size_of::<Txns>() <= size_of::<GhkCpuData>() && align_of::<Txns>() <= 8);
    assert!(GHK_SW_REGION_BYTES == 64 + 32 * GHK_SW_CAPACITY as usize);
    assert!(GHK_SW_CAPACITY <= 64 * SW_MAP_WORDS as u32);
};

/// What became of a message the kernel side wanted to send.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GhkProduce {
    /// In the ring and published.
    Produced = 0,
    /// Dropped because the ring was full or its agent-written tail corrupt; the ring's overflow count moved.
    Overflow = 1,
    /// The task has no queue (no default queue set): dropped, the barrier still moved.
    NoQueue = 2,
    /// Nothing to send (e.g. a wake-up of a task that is already runnable).
    Skipped = 3,
    /// The message was refused as too long (cannot happen for the fixed ABI payloads).
    TooLong = 4,
}

/// Why a task left its CPU (the `sched_switch` tracepoint's view).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GhkSwitchOut {
    /// It went to sleep: TASK_BLOCKED, RUNNABLE cleared.
    Blocked = 0,
    /// It was preempted while runnable: TASK_PREEMPT.
    Preempt = 1,
    /// It gave up the CPU voluntarily while runnable: TASK_YIELD.
    Yield = 2,
}

/// What the module knows about a task, for transaction validation (C mirror of [`TaskInfo`]).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct GhkTaskInfo {
    /// The task is an agent.
    pub is_agent: bool,
    /// The task left the enclave.
    pub departed: bool,
    /// The task is dead.
    pub dead: bool,
    /// The task is queued on a runqueue (running counts).
    pub runnable: bool,
    /// The task is being forced off its CPU.
    pub forced_off: bool,
    /// Its status word's barrier.
    pub barrier: u32,
    /// The CPU it runs on, or −1.
    pub on_cpu: i32,
    /// Its enclave.
    pub enclave: u64,
}

extern "C" {
    /// The task with this gtid: fills `out`, returns true; false if the module does not know it.
    fn ghk_hook_lookup(ctx: *mut core::ffi::c_void, gtid: i64, out: *mut GhkTaskInfo) -> bool;
    /// Whether `cpu` is online.
    fn ghk_hook_cpu_online(ctx: *mut core::ffi::c_void, cpu: u32) -> bool;
    /// The enclave of `cpu`, or −1.
    fn ghk_hook_cpu_enclave(ctx: *mut core::ffi::c_void, cpu: u32) -> i64;
    /// Whether `cpu` has an agent.
    fn ghk_hook_agent_present(ctx: *mut core::ffi::c_void, cpu: u32) -> bool;
    /// The agent barrier of `cpu`.
    fn ghk_hook_agent_barrier(ctx: *mut core::ffi::c_void, cpu: u32) -> u32;
    /// CLOCK_MONOTONIC in ns.
    fn ghk_hook_now_ns(ctx: *mut core::ffi::c_void) -> i64;
    /// The success action of a validated transaction: place `gtid` on `cpu`. Returns a sequence number.
    fn ghk_hook_latch(ctx: *mut core::ffi::c_void, cpu: u32, gtid: i64, already_on_cpu: bool) -> u64;
}

// ---- helpers ------------------------------------------------------------------------------------------------------

/// A region over `len` bytes at `base`, or `None` (null, misaligned, too large).
///
/// # Safety
/// `base..base + len` stays valid for atomic accesses for as long as any handle built on the region is used.
unsafe fn region(base: *mut u8, len: usize) -> Option<Region> {
    // SAFETY: the caller's contract is `RawRegion::new`'s.
    unsafe { RawRegion::new(base, len) }.ok()
}

/// # Safety
/// `q` was initialised by [`ghk_queue_init`] (or is null).
unsafe fn queue<'a>(q: *const GhkQueue) -> Option<&'a Queue> {
    // SAFETY: an initialised GhkQueue holds a Queue at its start (size and alignment asserted above).
    unsafe { q.cast::<Queue>().as_ref() }
}

/// # Safety
/// `w` was initialised by [`ghk_task_new`] and not consumed by [`ghk_task_dead`].
unsafe fn word<'a>(w: *mut GhkTaskWord) -> &'a mut TaskWord {
    // SAFETY: an initialised GhkTaskWord holds a TaskWord; the caller serialises access (enclave lock).
    unsafe { &mut *w.cast::<TaskWord>() }
}

fn produce(q: Option<&Queue>, msg: &Message, seq: u32) -> GhkProduce {
    match q {
        None => GhkProduce::NoQueue,
        Some(q) => match q.produce(msg, seq) {
            Ok(()) => GhkProduce::Produced,
            Err(ProduceError::Full) | Err(ProduceError::CorruptTail { .. }) => GhkProduce::Overflow,
            Err(ProduceError::TooLong(_)) => GhkProduce::TooLong,
        },
    }
}

const EINVAL: i32 = 22;
const ENOMEM: i32 = 12;

// ---- queue --------------------------------------------------------------------------------------------------------

/// `GHOST_IOC_CREATE_QUEUE`: initialises a queue of `nelems` slots over `len` bytes at `base` (zeroed, page
/// aligned, exactly `PAGE_ALIGN(76 + 8 · nelems)` bytes) into `out`. Returns 0 or `-EINVAL`.
///
/// # Safety
/// `base..base + len` stays mapped and valid for atomic accesses while `out` is used; `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn ghk_queue_init(out: *mut GhkQueue, base: *mut u8, len: usize, nelems: u32) -> i32 {
    // SAFETY: the caller's contract.
    let Some(r) = (unsafe { region(base, len) }) else { return -EINVAL };
    match Producer::init(r, nelems) {
        Ok(p) => {
            // SAFETY: `out` is writable and large/aligned enough (asserted above).
            unsafe { out.cast::<MaybeUninit<Queue>>().write(MaybeUninit::new(p)) };
            0
        }
        Err(_) => -EINVAL,
    }
}

/// Messages the queue dropped so far (the producer's own count, mirrored in the ring's `overflow`).
///
/// # Safety
/// `q` was initialised by [`ghk_queue_init`]; the enclave lock is held.
#[no_mangle]
pub unsafe extern "C" fn ghk_queue_overflow(q: *const GhkQueue) -> u32 {
    // SAFETY: the caller's contract.
    unsafe { queue(q) }.map_or(0, |q| q.overflow_count())
}

// ---- status words -------------------------------------------------------------------------------------------------

/// Creates a status-word region of [`GHK_SW_CAPACITY`] words over `len` bytes at `base` (header, every word
/// zeroed) into `out`. Returns 0 or `-EINVAL`.
///
/// # Safety
/// As for [`ghk_queue_init`]; additionally `out` is never moved while task words built on it live.
#[no_mangle]
pub unsafe extern "C" fn ghk_sw_init(out: *mut GhkSwRegion, base: *mut u8, len: usize, id: u32, numa_node: u32) -> i32 {
    // SAFETY: the caller's contract.
    let Some(r) = (unsafe { region(base, len) }) else { return -EINVAL };
    match SwWriter::with_capacity(r, id, numa_node, GHK_SW_CAPACITY) {
        Ok(w) => {
            // SAFETY: `out` is writable and large/aligned enough (asserted above).
            unsafe { out.cast::<MaybeUninit<SwWriter>>().write(MaybeUninit::new(w)) };
            0
        }
        Err(_) => -EINVAL,
    }
}

/// `GHOST_IOC_SW_FREE {id, index}` (untrusted values): 0, `-ENOENT`, `-EINVAL` (not CANFREE) or `-EALREADY`.
///
/// # Safety
/// `w` was initialised by [`ghk_sw_init`]; the enclave lock is held.
#[no_mangle]
pub unsafe extern "C" fn ghk_sw_free(w: *const GhkSwRegion, id: u32, index: u32) -> i32 {
    // SAFETY: an initialised GhkSwRegion holds a SwWriter.
    let Some(w) = (unsafe { w.cast::<SwWriter>().as_ref() }) else { return -EINVAL };
    match w.free(id, index) {
        Ok(()) => 0,
        Err(e) => -e.errno(),
    }
}

/// Free words left in the region.
///
/// # Safety
/// As for [`ghk_sw_free`].
#[no_mangle]
pub unsafe extern "C" fn ghk_sw_available(w: *const GhkSwRegion) -> u32 {
    // SAFETY: an initialised GhkSwRegion holds a SwWriter.
    unsafe { w.cast::<SwWriter>().as_ref() }.map_or(0, |w| w.available())
}

/// A task enters the enclave: allocates and initialises its status word into `out` (flags RUNNABLE and/or
/// ONCPU as given), then bumps the barrier and produces TASK_NEW into `q` (null: no queue). Returns a
/// [`GhkProduce`] value, or `-ENOMEM` when the region is full (nothing written to `out`).
///
/// # Safety
/// `w` was initialised by [`ghk_sw_init`] and outlives `out`'s word; `q` is null or initialised; `out` is
/// writable; the enclave lock is held.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn ghk_task_new(
    w: *const GhkSwRegion,
    out: *mut GhkTaskWord,
    q: *const GhkQueue,
    gtid: i64,
    parent_gtid: i64,
    runnable: bool,
    on_cpu: bool,
    runtime: u64,
    nice: i32,
) -> i32 {
    // SAFETY: the caller's contract: the writer lives (at a fixed address) longer than every word built on it.
    let Some(w) = (unsafe { w.cast::<SwWriter>().as_ref() }) else { return -EINVAL };
    let Ok(a) = w.alloc() else { return -ENOMEM };
    let mut flags = SwFlags::empty();
    if runnable {
        flags |= SwFlags::TASK_RUNNABLE;
    }
    if on_cpu {
        flags |= SwFlags::TASK_ONCPU;
    }
    let sw_info = a.info();
    let mut word = a.init(Gtid(gtid), flags);
    word.set_runtime(runtime);
    let msg = Message::TaskNew(PayloadTaskNew {
        gtid: gtid as u64,
        parent_gtid: parent_gtid as u64,
        runtime,
        runnable: runnable as u16,
        nice,
        sw_info,
        ..Default::default()
    });
    // SAFETY: the caller's contract.
    let q = unsafe { queue(q) };
    let r = word.bump_barrier_then(|seq| produce(q, &msg, seq));
    // SAFETY: `out` is writable and large/aligned enough (asserted above).
    unsafe { out.cast::<MaybeUninit<TaskWord>>().write(MaybeUninit::new(word)) };
    r as i32
}

/// The task was woken: sets RUNNABLE, bumps the barrier and produces TASK_WAKEUP. [`GhkProduce::Skipped`]
/// (nothing written) if the word already says RUNNABLE.
///
/// # Safety
/// `w` is a live task word; `q` is null or initialised; the enclave lock is held.
#[no_mangle]
pub unsafe extern "C" fn ghk_task_wakeup(
    w: *mut GhkTaskWord,
    q: *const GhkQueue,
    last_ran_cpu: i32,
    wake_up_cpu: i32,
    waker_cpu: i32,
) -> i32 {
    // SAFETY: the caller's contract.
    let word = unsafe { word(w) };
    if word.flags().contains(SwFlags::TASK_RUNNABLE) {
        return GhkProduce::Skipped as i32;
    }
    word.set_flags(SwFlags::TASK_RUNNABLE);
    let msg = Message::TaskWakeup(PayloadTaskWakeup {
        gtid: word.gtid().0 as u64,
        last_ran_cpu,
        wake_up_cpu,
        waker_cpu,
        ..Default::default()
    });
    // SAFETY: the caller's contract.
    let q = unsafe { queue(q) };
    word.bump_barrier_then(|seq| produce(q, &msg, seq)) as i32
}

/// The task starts running on a CPU at `now_ns`: ONCPU and RUNNABLE set, switch time recorded. No message.
///
/// # Safety
/// As for [`ghk_task_wakeup`].
#[no_mangle]
pub unsafe extern "C" fn ghk_task_switch_in(w: *mut GhkTaskWord, now_ns: i64) {
    // SAFETY: the caller's contract.
    let word = unsafe { word(w) };
    word.set_flags(SwFlags::TASK_ONCPU | SwFlags::TASK_RUNNABLE);
    word.switched_in(now_ns);
}

/// The task left its CPU (`why`: blocked, preempted, yielded) with `runtime` ns consumed in total: ONCPU (and
/// RUNNABLE when blocked) cleared, runtime stored, barrier bumped, TASK_BLOCKED / TASK_PREEMPT / TASK_YIELD
/// produced.
///
/// # Safety
/// As for [`ghk_task_wakeup`].
#[no_mangle]
pub unsafe extern "C" fn ghk_task_switch_out(
    w: *mut GhkTaskWord,
    q: *const GhkQueue,
    why: GhkSwitchOut,
    runtime: u64,
    cpu: i32,
    cpu_seqnum: u64,
) -> i32 {
    // SAFETY: the caller's contract.
    let word = unsafe { word(w) };
    let gtid = word.gtid().0 as u64;
    word.set_runtime(runtime);
    word.switched_out();
    let msg = match why {
        GhkSwitchOut::Blocked => {
            word.clear_flags(SwFlags::TASK_ONCPU | SwFlags::TASK_RUNNABLE);
            Message::TaskBlocked(PayloadTaskBlocked { gtid, runtime, cpu_seqnum, cpu, ..Default::default() })
        }
        GhkSwitchOut::Preempt => {
            word.clear_flags(SwFlags::TASK_ONCPU);
            Message::TaskPreempt(PayloadTaskPreempt { gtid, runtime, cpu_seqnum, cpu, ..Default::default() })
        }
        GhkSwitchOut::Yield => {
            word.clear_flags(SwFlags::TASK_ONCPU);
            Message::TaskYield(PayloadTaskYield { gtid, runtime, cpu_seqnum, cpu, ..Default::default() })
        }
    };
    // SAFETY: the caller's contract.
    let q = unsafe { queue(q) };
    word.bump_barrier_then(|seq| produce(q, &msg, seq)) as i32
}

/// The task died: consumes the word (CANFREE set, barrier bumped) and produces TASK_DEAD. The agent frees
/// the word with `GHOST_IOC_SW_FREE`. After this call `w` holds no word.
///
/// # Safety
/// `w` is a live task word, given up by the caller; `q` is null or initialised; the enclave lock is held.
#[no_mangle]
pub unsafe extern "C" fn ghk_task_dead(w: *mut GhkTaskWord, q: *const GhkQueue, cpu: i32) -> i32 {
    // SAFETY: the caller gives the word up; it is never used again.
    let word: TaskWord = unsafe { w.cast::<TaskWord>().read() };
    let gtid = word.gtid().0 as u64;
    // SAFETY: the caller's contract.
    let q = unsafe { queue(q) };
    let msg = Message::TaskDead(PayloadTaskDead { gtid, cpu, _pad: 0 });
    // The agent frees the word after TASK_DEAD (SW_FREE); the kernel keeps no handle to it.
    let (_retired, r) = word.die_then(|seq| produce(q, &msg, seq));
    r as i32
}

/// The word's barrier (the seqnum of the task's last message).
///
/// # Safety
/// As for [`ghk_task_wakeup`].
#[no_mangle]
pub unsafe extern "C" fn ghk_task_barrier(w: *mut GhkTaskWord) -> u32 {
    // SAFETY: the caller's contract.
    unsafe { word(w) }.barrier().0
}

/// Whether the word says RUNNABLE (set by TASK_NEW/TASK_WAKEUP, cleared with TASK_BLOCKED): the runnable state
/// that goes with the barrier, for transaction validation.
///
/// # Safety
/// As for [`ghk_task_wakeup`].
#[no_mangle]
pub unsafe extern "C" fn ghk_task_runnable(w: *mut GhkTaskWord) -> bool {
    // SAFETY: the caller's contract.
    unsafe { word(w) }.flags().contains(SwFlags::TASK_RUNNABLE)
}

/// Where a status word is (`struct ghost_sw_info`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GhkSwInfo {
    /// Region id.
    pub id: u32,
    /// Index in the region.
    pub index: u32,
}

/// Where the word is: `{id, index}` for `GHOST_IOC_SW_GET_INFO`.
///
/// # Safety
/// As for [`ghk_task_wakeup`].
#[no_mangle]
pub unsafe extern "C" fn ghk_task_sw_info(w: *mut GhkTaskWord) -> GhkSwInfo {
    // SAFETY: the caller's contract.
    let GhostSwInfo { id, index } = unsafe { word(w) }.info();
    GhkSwInfo { id, index }
}

/// `GHOST_IOC_ASSOC_QUEUE`'s barrier check: whether `seen` (the agent's last barrier) is stale.
///
/// # Safety
/// As for [`ghk_task_wakeup`].
#[no_mangle]
pub unsafe extern "C" fn ghk_task_is_stale(w: *mut GhkTaskWord, seen: u32) -> bool {
    // SAFETY: the caller's contract.
    unsafe { word(w) }.is_stale(seen)
}

// ---- transactions -------------------------------------------------------------------------------------------------

/// Claim refused: the transaction is not READY (or already claimed): nothing written.
pub const GHK_TXN_NOT_CLAIMED: i32 = 1;
/// Claim refused: a CPU id outside the region.
pub const GHK_TXN_BAD_CPU: i32 = 2;

/// The `cpu_data` region of `ncpus` CPUs (one 4096-byte page each) over `len` bytes at `base` into `out`;
/// initialises every CPU's transaction (version, cpu, state COMPLETE). Returns 0 or `-EINVAL`.
///
/// # Safety
/// As for [`ghk_queue_init`].
#[no_mangle]
pub unsafe extern "C" fn ghk_txn_init(out: *mut GhkCpuData, base: *mut u8, len: usize, ncpus: u32) -> i32 {
    // SAFETY: the caller's contract.
    let Some(r) = (unsafe { region(base, len) }) else { return -EINVAL };
    let Ok(c) = Txns::new(r, ncpus) else { return -EINVAL };
    for cpu in 0..ncpus {
        if c.init_txn(cpu).is_err() {
            return -EINVAL;
        }
    }
    // SAFETY: `out` is writable and large/aligned enough (asserted above).
    unsafe { out.cast::<MaybeUninit<Txns>>().write(MaybeUninit::new(c)) };
    0
}

/// The module's answers, through the `ghk_hook_*` functions of the C shim.
struct HookView(*mut core::ffi::c_void);

impl KernelView for HookView {
    fn lookup(&self, gtid: Gtid) -> Option<TaskInfo> {
        let mut t = GhkTaskInfo::default();
        // SAFETY: the hook fills `t` (a valid, writable local) and reads nothing else of ours.
        if !unsafe { ghk_hook_lookup(self.0, gtid.0, &mut t) } {
            return None;
        }
        Some(TaskInfo {
            is_agent: t.is_agent,
            departed: t.departed,
            dead: t.dead,
            barrier: t.barrier,
            runnable: t.runnable,
            enclave: t.enclave,
            on_cpu: u32::try_from(t.on_cpu).ok(),
            forced_off: t.forced_off,
        })
    }
    fn cpu_online(&self, cpu: u32) -> bool {
        // SAFETY: a plain query of the C shim.
        unsafe { ghk_hook_cpu_online(self.0, cpu) }
    }
    fn cpu_enclave(&self, cpu: u32) -> Option<u64> {
        // SAFETY: a plain query of the C shim.
        u64::try_from(unsafe { ghk_hook_cpu_enclave(self.0, cpu) }).ok()
    }
    fn agent_present(&self, cpu: u32) -> bool {
        // SAFETY: a plain query of the C shim.
        unsafe { ghk_hook_agent_present(self.0, cpu) }
    }
    fn idle_running(&self, _cpu: u32) -> bool {
        // The module cannot latch the idle task: an IDLE target is validated as if idle were not running.
        false
    }
    fn sync_commit_permitted(&self, _caller: u32, _target: u32, _gtid: Gtid) -> bool {
        // Only a process holding the enclave's ctl device open reaches the commit ioctls.
        true
    }
    fn ghost_busy(&self, _cpu: u32) -> bool {
        false
    }
    fn higher_class_running(&self, _cpu: u32) -> bool {
        false
    }
    fn agent_barrier(&self, cpu: u32) -> u32 {
        // SAFETY: a plain query of the C shim.
        unsafe { ghk_hook_agent_barrier(self.0, cpu) }
    }
    fn now_ns(&self) -> i64 {
        // SAFETY: a plain query of the C shim.
        unsafe { ghk_hook_now_ns(self.0) }
    }
    fn latch(&self, cpu: u32, txn: &TxnSnapshot, already_on_cpu: bool) -> u64 {
        // SAFETY: the C shim's action (it may sleep: no lock of ours is held here).
        unsafe { ghk_hook_latch(self.0, cpu, txn.gtid.0, already_on_cpu) }
    }
    fn bump_agent_barrier(&self, _cpu: u32) {
        // The module has no agent status words (agents are ordinary threads): nothing to bump.
    }
}

/// `GHOST_IOC_COMMIT_TXN` for one CPU: claims `target`'s transaction for the calling CPU `claimer`, validates
/// the one snapshot it reads (§5.4, answers from the `ghk_hook_*` functions, `ctx` passed through), then
/// completes it: `ghk_hook_latch` on success, and the outcome published into `state`. Returns the outcome's raw
/// value (negative, `GHOST_TXN_COMPLETE` = `INT_MIN` on success), or [`GHK_TXN_NOT_CLAIMED`] /
/// [`GHK_TXN_BAD_CPU`] when nothing was claimed.
///
/// # Safety
/// `c` was initialised by [`ghk_txn_init`]. No lock is needed (claims are atomic).
#[no_mangle]
pub unsafe extern "C" fn ghk_txn_commit(
    c: *const GhkCpuData,
    claimer: u32,
    target: u32,
    ctx: *mut core::ffi::c_void,
) -> i32 {
    // SAFETY: an initialised GhkCpuData holds a Txns.
    let Some(c) = (unsafe { c.cast::<Txns>().as_ref() }) else { return GHK_TXN_BAD_CPU };
    match c.claim(claimer, target, CommitPoint::Ioctl) {
        Ok(claimed) => claimed.commit(&HookView(ctx)).outcome.raw(),
        Err(ClaimError::BadCpu(_)) => GHK_TXN_BAD_CPU,
        Err(_) => GHK_TXN_NOT_CLAIMED,
    }
}

/// `GHOST_IOC_SYNC_GROUP_TXN`: commits the transactions of the CPUs in `members` (`nwords` `u64`s, a
/// kernel-private copy of the agent's mask) all or none. Returns 1 when all committed, 0 when the group failed,
/// `-EINVAL` for a malformed group.
///
/// # Safety
/// `c` was initialised by [`ghk_txn_init`]; `members..members + nwords` is writable.
#[no_mangle]
pub unsafe extern "C" fn ghk_txn_group(
    c: *const GhkCpuData,
    caller: u32,
    members: *mut u64,
    nwords: usize,
    ctx: *mut core::ffi::c_void,
) -> i32 {
    // SAFETY: an initialised GhkCpuData holds a Txns.
    let Some(c) = (unsafe { c.cast::<Txns>().as_ref() }) else { return -EINVAL };
    if members.is_null() {
        return -EINVAL;
    }
    // SAFETY: the caller's contract.
    let members = unsafe { core::slice::from_raw_parts_mut(members, nwords) };
    match c.commit_group(caller, members, &HookView(ctx), |_| {}) {
        Ok(g) => (g.failure.is_none() && g.committed) as i32,
        Err(_) => -EINVAL,
    }
}

/// The kernel object links without `core`'s precompiled code, so a panic cannot even be reached: CI checks that
/// no `core::panicking` symbol is referenced. This handler only satisfies the compiler.
#[cfg(target_os = "none")]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo<'_>) -> ! {
    loop {
        core::hint::spin_loop();
    }
}

#[cfg(test)]
mod tests;
