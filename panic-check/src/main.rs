//! Link-time proof that the kernel side of `ghost-shm` has no reachable panic.
//!
//! This bare-metal binary (`x86_64-unknown-none`, `panic = "abort"`, fat LTO, `opt-level = 3`) drives every
//! kernel-side operation through `#[no_mangle] extern "C"` entry points over [`RawRegion`]s built from raw
//! pointers, with every argument read by `_start` with `read_volatile` from statics: the optimiser knows nothing
//! about the regions, their contents, the lengths, CPU counts, ids, indices or the answers of the
//! [`KernelView`]. The `#[panic_handler]` calls [`ghost_shm_panic_check_reachable_panic`], which is declared
//! here and defined nowhere. If any panic (an explicit `panic!`, `unwrap`, an index or slice out of bounds, a
//! division by zero, `unreachable!`, an arithmetic overflow check where enabled…) is reachable from an entry
//! point after optimisation, the handler is live and the link fails with
//! `undefined symbol: ghost_shm_panic_check_reachable_panic`. If the binary links, no path from these entry
//! points can panic, whatever the agent writes into shared memory.
//!
//! The binary is only linked, never run: the statics stand for whatever a kernel shim would pass in.
//!
//! Build and check: `bash panic-check/run.sh` (from the repository root).
#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

use core::mem::MaybeUninit;
use core::panic::PanicInfo;
use core::ptr::{addr_of, addr_of_mut, read_volatile, write_volatile};

use ghost_shm::abi::{
    CommitFlags, GhostSwInfo, Gtid, Message, PayloadCpuTick, PayloadTaskDead, PayloadTaskNew, PayloadTaskWakeup,
    RunFlags, SwFlags, TxnOutcome,
};
use ghost_shm::queue::{associate, Doorbell, Notify, Producer, QueueId, Routing, TaskQueue};
use ghost_shm::shm::{RawRegion, SharedMemRead};

/// The regions behind the entry points: memory the C caller owns and keeps mapped for as long as any handle
/// built on it is used (the contract of every `gsc_*` function that takes a base pointer), hence `'static`
/// from Rust's point of view.
pub type Region = RawRegion<'static>;
use ghost_shm::status::{AgentBarrier, Allocated, Retired, Word, Writer};
use ghost_shm::txn::{validate, ClaimedTxn, CommitPoint, CommitResult, CpuData, KernelView, TaskInfo, TxnSnapshot};

extern "C" {
    /// Defined nowhere. The panic handler calls it, so the binary links only if no panic is reachable.
    fn ghost_shm_panic_check_reachable_panic() -> !;
}

#[panic_handler]
fn panic(_info: &PanicInfo<'_>) -> ! {
    // SAFETY: the function does not exist; calling it is the whole point (a reachable panic fails the link).
    unsafe { ghost_shm_panic_check_reachable_panic() }
}

// ---- opaque inputs and a sink -------------------------------------------------------------------------------------

/// Integer inputs, read with `read_volatile` so that nothing is known at compile time.
static mut IN: [u64; 64] = [0; 64];
/// Pointer inputs (regions, handles), read with `read_volatile`.
static mut PTR: [*mut u8; 32] = [core::ptr::null_mut(); 32];
/// Results, written with `write_volatile` so that no computation is dead.
static mut OUT: [u64; 64] = [0; 64];

fn arg(k: usize) -> u64 {
    // SAFETY: `k` is a constant index below 64 at every call site (checked by the array access); the static is
    // only read through this raw pointer, never referenced.
    unsafe { read_volatile(addr_of!(IN[k])) }
}

fn ptr<T>(k: usize) -> *mut T {
    // SAFETY: as in `arg`.
    unsafe { read_volatile(addr_of!(PTR[k])) as *mut T }
}

fn sink(k: usize, v: u64) {
    // SAFETY: as in `arg`; written only through this raw pointer.
    unsafe { write_volatile(addr_of_mut!(OUT[k % 64]), v) }
}

/// Wakes the agent after a publish (a kernel would call `wake_up_process`); here a volatile store.
pub struct KernelWake;

impl Notify for KernelWake {
    fn notify(&self) {
        sink(63, 1);
    }
}

/// A [`KernelView`] whose every answer is read with `read_volatile` from a table the caller owns.
#[repr(C)]
pub struct ViewTable {
    /// Bit 0 task found, 1 online, 2 enclave known, 3 agent present, 4 idle running, 5 permitted, 6 ghost busy,
    /// 7 higher class running.
    pub bits: u32,
    /// The task, if found.
    pub task: TaskInfo,
    /// The CPU's enclave.
    pub enclave: u64,
    /// The agent barrier.
    pub agent_barrier: u32,
    /// The clock.
    pub now: i64,
    /// The runqueue's cpu_seqnum after a latch.
    pub seqnum: u64,
}

/// The view over a [`ViewTable`].
pub struct View(*const ViewTable);

impl View {
    fn table(&self) -> ViewTable {
        // SAFETY: the embedder passes a valid, aligned table (this binary is only linked, never run).
        unsafe { read_volatile(self.0) }
    }
    fn bit(&self, b: u32) -> bool {
        self.table().bits & (1 << b) != 0
    }
}

impl KernelView for View {
    fn lookup(&self, _gtid: Gtid) -> Option<TaskInfo> {
        let t = self.table();
        (t.bits & 1 != 0).then_some(t.task)
    }
    fn cpu_online(&self, _cpu: u32) -> bool {
        self.bit(1)
    }
    fn cpu_enclave(&self, _cpu: u32) -> Option<u64> {
        self.bit(2).then(|| self.table().enclave)
    }
    fn agent_present(&self, _cpu: u32) -> bool {
        self.bit(3)
    }
    fn idle_running(&self, _cpu: u32) -> bool {
        self.bit(4)
    }
    fn sync_commit_permitted(&self, _caller: u32, _target: u32, _gtid: Gtid) -> bool {
        self.bit(5)
    }
    fn ghost_busy(&self, _cpu: u32) -> bool {
        self.bit(6)
    }
    fn higher_class_running(&self, _cpu: u32) -> bool {
        self.bit(7)
    }
    fn agent_barrier(&self, _cpu: u32) -> u32 {
        self.table().agent_barrier
    }
    fn now_ns(&self) -> i64 {
        self.table().now
    }
    fn latch(&self, cpu: u32, txn: &TxnSnapshot, already_on_cpu: bool) -> u64 {
        sink(62, cpu as u64 ^ txn.gtid.0 as u64 ^ already_on_cpu as u64);
        self.table().seqnum
    }
    fn bump_agent_barrier(&self, cpu: u32) {
        sink(61, cpu as u64);
    }
}

/// A region over `len` bytes at `base`; `None` for a null or misaligned pointer.
///
/// # Safety
/// `base..base + len` is valid for atomic accesses while the region is used.
unsafe fn region(base: *mut u8, len: usize) -> Option<Region> {
    // SAFETY: the caller's contract is `RawRegion::new`'s.
    unsafe { RawRegion::new(base, len) }.ok()
}

/// A message of kind `kind % 4` with opaque fields.
fn message(kind: u32, gtid: u64, cpu: i32) -> Message {
    match kind % 4 {
        0 => Message::TaskNew(PayloadTaskNew { gtid, runnable: 1, ..Default::default() }),
        1 => Message::CpuTick(PayloadCpuTick { cpu, is_agent: 0 }),
        2 => Message::TaskWakeup(PayloadTaskWakeup { gtid, waker_cpu: cpu, ..Default::default() }),
        _ => Message::TaskDead(PayloadTaskDead { gtid, cpu, _pad: 0 }),
    }
}

/// The queue producer every other entry point uses.
pub type Q = Producer<Region, KernelWake>;

// ---- queue --------------------------------------------------------------------------------------------------------

/// `GHOST_IOC_CREATE_QUEUE`: initialises a queue of `nelems` slots over `len` bytes at `base` into `out`.
/// Returns 0, or a negative error.
///
/// # Safety
/// `base..base + len` is a mapping valid for atomic accesses for as long as `out` is used; `out` is writable.
#[no_mangle]
#[inline(never)]
pub unsafe extern "C" fn gsc_queue_init(base: *mut u8, len: usize, nelems: u32, out: *mut MaybeUninit<Q>) -> i32 {
    // SAFETY: the caller's contract.
    let Some(r) = (unsafe { region(base, len) }) else { return -1 };
    match Producer::init(r, nelems) {
        Ok(p) => {
            // SAFETY: `out` is writable (caller).
            unsafe { (*out).write(p.with_notify(KernelWake)) };
            0
        }
        Err(_) => -2,
    }
}

/// Produces one message (the agent may have written anything into the ring, tail included).
#[no_mangle]
#[inline(never)]
pub extern "C" fn gsc_queue_produce(p: &Q, kind: u32, seqnum: u32, gtid: u64, cpu: i32) -> i32 {
    match p.produce(&message(kind, gtid, cpu), seqnum) {
        Ok(()) => 0,
        Err(e) => -(e.code() as i32),
    }
}

/// Produces `n` messages as one batch (one head publish).
#[no_mangle]
#[inline(never)]
pub extern "C" fn gsc_queue_batch(p: &Q, n: u32, seqnum: u32, gtid: u64, cpu: i32) -> u32 {
    let mut b = p.batch();
    let mut ok = 0u32;
    for i in 0..n {
        if b.push(&message(i, gtid, cpu), seqnum.wrapping_add(i)).is_ok() {
            ok = ok.wrapping_add(1);
        }
    }
    let pending = b.pending_slots();
    b.publish();
    ok ^ pending ^ p.overflow_count() ^ p.nelems()
}

/// The single-producer fast path of a CPU that owns the queue exclusively: `produce_mut`, then a `batch_mut`
/// of `n` messages (no lock).
#[no_mangle]
#[inline(never)]
pub extern "C" fn gsc_queue_produce_mut(p: &mut Q, n: u32, seqnum: u32, gtid: u64, cpu: i32) -> u32 {
    let first = p.produce_mut(&message(seqnum, gtid, cpu), seqnum).is_ok() as u32;
    let mut b = p.batch_mut();
    let mut ok = first;
    for i in 0..n {
        if b.push(&message(i, gtid, cpu), seqnum.wrapping_add(i)).is_ok() {
            ok = ok.wrapping_add(1);
        }
    }
    let pending = b.pending_slots();
    b.publish();
    ok ^ pending
}

/// Produces a raw message of any type and any payload length (too long ones are refused).
///
/// # Safety
/// `payload..payload + len` is readable.
#[no_mangle]
#[inline(never)]
pub unsafe extern "C" fn gsc_queue_produce_raw(p: &Q, ty: u16, seqnum: u32, payload: *const u8, len: usize) -> i32 {
    // SAFETY: the caller's contract.
    let bytes = unsafe { core::slice::from_raw_parts(payload, len) };
    match p.produce_raw(ty, seqnum, bytes) {
        Ok(()) => 0,
        Err(e) => -(e.code() as i32),
    }
}

/// The producer's side of the doorbell handshake, on the `u32` at an untrusted offset.
///
/// # Safety
/// `base..base + len` is valid for atomic accesses, and nothing accesses the word at `off` with an atomic of
/// another width while the doorbell is used.
#[no_mangle]
#[inline(never)]
pub unsafe extern "C" fn gsc_queue_doorbell(base: *mut u8, len: usize, off: usize) -> i32 {
    // SAFETY: the caller's contract.
    let Some(r) = (unsafe { region(base, len) }) else { return -1 };
    // SAFETY: the caller's contract (no access of another width to the doorbell word).
    match unsafe { Doorbell::new(r, off) } {
        Some(d) => d.ring() as i32 ^ d.offset() as i32 ^ d.memory().len() as i32,
        None => -2,
    }
}

/// Default-queue routing and `GHOST_IOC_ASSOC_QUEUE` with an untrusted caller barrier.
#[no_mangle]
#[inline(never)]
pub extern "C" fn gsc_queue_route(
    routing: &Routing,
    task: &TaskQueue,
    current: u32,
    caller: u32,
    q: u32,
    brand_new: bool,
) -> i64 {
    routing.set_default(QueueId(q.wrapping_add(1)));
    let r = match associate(task, current, caller, QueueId(q), brand_new) {
        Ok(s) => s.to_raw() as i64,
        Err(_) => -1,
    };
    let routed = routing.route(task).map_or(-1, |q| q.0 as i64);
    if caller == 0 {
        task.clear();
    }
    r ^ routed ^ routing.default_queue().map_or(-1, |q| q.0 as i64)
}

/// [`ProduceError`](ghost_shm::queue::ProduceError) as a small code.
type ProduceErrorCode = u8;

pub trait Code {
    fn code(self) -> ProduceErrorCode;
}

// `as` on a non-C-like enum is not allowed, so map explicitly.
impl Code for ghost_shm::queue::ProduceError {
    fn code(self) -> ProduceErrorCode {
        match self {
            ghost_shm::queue::ProduceError::Full => 1,
            ghost_shm::queue::ProduceError::CorruptTail { .. } => 2,
            ghost_shm::queue::ProduceError::TooLong(_) => 3,
        }
    }
}

// ---- status words -------------------------------------------------------------------------------------------------

/// The ABI writer (65534 words, 16 KiB of private bookkeeping).
pub type W = Writer<Region>;
/// A small writer (64 words of bookkeeping), as tests and models use.
pub type WSmall = Writer<Region, 1>;

/// Creates an ABI status-word region (`Writer::new`) into `out`.
///
/// # Safety
/// As for [`gsc_queue_init`].
#[no_mangle]
#[inline(never)]
pub unsafe extern "C" fn gsc_status_new(
    base: *mut u8,
    len: usize,
    id: u32,
    numa: u32,
    out: *mut MaybeUninit<W>,
) -> i32 {
    // SAFETY: the caller's contract.
    let Some(r) = (unsafe { region(base, len) }) else { return -1 };
    match W::new(r, id, numa) {
        Ok(w) => {
            // SAFETY: `out` is writable (caller).
            unsafe { (*out).write(w) };
            0
        }
        Err(_) => -2,
    }
}

/// Creates a region of any capacity over a small bookkeeping (`Writer::with_capacity`) into `out`.
///
/// # Safety
/// As for [`gsc_queue_init`].
#[no_mangle]
#[inline(never)]
pub unsafe extern "C" fn gsc_status_with_capacity(
    base: *mut u8,
    len: usize,
    id: u32,
    numa: u32,
    capacity: u32,
    out: *mut MaybeUninit<WSmall>,
) -> i32 {
    // SAFETY: the caller's contract.
    let Some(r) = (unsafe { region(base, len) }) else { return -1 };
    match WSmall::with_capacity(r, id, numa, capacity) {
        Ok(w) => {
            // SAFETY: `out` is writable (caller).
            unsafe { (*out).write(w) };
            (w_small_probe(unsafe_ref(out))) as i32
        }
        Err(_) => -2,
    }
}

fn unsafe_ref<'a, T>(p: *mut MaybeUninit<T>) -> &'a T {
    // SAFETY: only called right after `(*p).write(..)`, so the value is initialised; `p` is valid (caller).
    unsafe { (*p).assume_init_ref() }
}

/// Allocation, initialisation and frees on the small writer (a different `N` instantiates other code).
fn w_small_probe(w: &WSmall) -> u32 {
    let mut acc = w.available() ^ w.capacity() ^ w.id() ^ w.numa_node();
    if let Ok(a) = w.alloc() {
        acc ^= a.index();
        let info = a.info();
        let word = a.init(Gtid(arg(20) as i64), SwFlags::from_bits_retain(arg(21) as u32));
        let retired = word.retire();
        acc ^= w.free_info(info).is_ok() as u32;
        acc ^= w.reclaim(retired).is_ok() as u32;
    }
    acc ^ w.free(arg(22) as u32, arg(23) as u32).is_ok() as u32
}

/// Allocates a word (`ENOMEM` → −1) into `out`.
///
/// # Safety
/// `out` is writable.
#[no_mangle]
#[inline(never)]
pub unsafe extern "C" fn gsc_status_alloc<'w>(w: &'w W, out: *mut MaybeUninit<Allocated<'w, Region>>) -> i32 {
    match w.alloc() {
        Ok(a) => {
            let i = a.index() as i32;
            // SAFETY: `out` is writable (caller).
            unsafe { (*out).write(a) };
            i
        }
        Err(e) => -e.errno(),
    }
}

/// Initialises an allocated word for `gtid` (consumes `*a`) into `out`.
///
/// # Safety
/// `a` holds an `Allocated` the caller gives up; `out` is writable.
#[no_mangle]
#[inline(never)]
pub unsafe extern "C" fn gsc_status_init<'w>(
    a: *mut Allocated<'w, Region>,
    gtid: i64,
    flags: u32,
    out: *mut MaybeUninit<Word<'w, Region>>,
) {
    // SAFETY: the caller gives up `*a`.
    let a = unsafe { a.read() };
    let info = a.info();
    sink(0, info.index as u64 ^ info.id as u64);
    // SAFETY: `out` is writable (caller).
    unsafe { (*out).write(a.init(Gtid(gtid), SwFlags::from_bits_retain(flags))) };
}

/// Gives back an allocated, never initialised word.
///
/// # Safety
/// `a` holds an `Allocated` the caller gives up.
#[no_mangle]
#[inline(never)]
pub unsafe extern "C" fn gsc_status_release(a: *mut Allocated<'_, Region>) {
    // SAFETY: the caller gives up `*a`.
    unsafe { a.read() }.release();
}

/// Every per-word update: flags, switch in/out, runtime, barrier bumps (one with a message), publish, stale.
#[no_mangle]
#[inline(never)]
pub extern "C" fn gsc_status_update(
    word: &mut Word<'_, Region>,
    q: &Q,
    set: u32,
    clear: u32,
    now: i64,
    runtime: u64,
    seen: u32,
    barrier: u32,
) -> u64 {
    word.update_flags(SwFlags::from_bits_retain(set), SwFlags::from_bits_retain(clear));
    word.set_flags(SwFlags::from_bits_retain(set >> 1));
    word.clear_flags(SwFlags::from_bits_retain(clear >> 1));
    word.switched_in(now);
    word.set_runtime(runtime);
    let gtid = word.gtid().0 as u64;
    let r = word.bump_barrier_then(|seq| gsc_queue_produce(q, 2, seq, gtid, 0));
    let b = word.bump_barrier();
    word.switched_out();
    let stale = word.is_stale(seen);
    word.publish_barrier(ghost_shm::status::Barrier(barrier));
    let info: GhostSwInfo = word.info();
    r as u64 ^ b.0 as u64 ^ stale as u64 ^ word.flags().bits() as u64 ^ word.barrier().0 as u64 ^ info.index as u64
}

/// Ends a word: `how % 3` = depart (with TASK_DEPARTED), die (TASK_DEAD), retire (agent exit). Consumes `*word`.
///
/// # Safety
/// `word` holds a `Word` the caller gives up; `out` is writable.
#[no_mangle]
#[inline(never)]
pub unsafe extern "C" fn gsc_status_end(
    word: *mut Word<'_, Region>,
    q: &Q,
    how: u32,
    out: *mut MaybeUninit<Retired>,
) {
    // SAFETY: the caller gives up `*word`.
    let word = unsafe { word.read() };
    let gtid = word.gtid().0 as u64;
    let retired = match how % 3 {
        0 => {
            let (r, e) = word.depart_then(|seq| gsc_queue_produce(q, 0, seq, gtid, 1));
            sink(1, e as u64);
            r
        }
        1 => {
            let (r, e) = word.die_then(|seq| gsc_queue_produce(q, 3, seq, gtid, 1));
            sink(1, e as u64);
            r
        }
        _ => word.retire(),
    };
    sink(2, retired.index() as u64 ^ retired.info().id as u64);
    // SAFETY: `out` is writable (caller).
    unsafe { (*out).write(retired) };
}

/// `GHOST_IOC_SW_FREE {id, index}` with hostile values; returns 0 or the negative errno.
#[no_mangle]
#[inline(never)]
pub extern "C" fn gsc_status_free(w: &W, id: u32, index: u32) -> i32 {
    let r = match w.free(id, index) {
        Ok(()) => 0,
        Err(e) => -e.errno(),
    };
    let r2 = match w.free_info(GhostSwInfo { id: index, index: id }) {
        Ok(()) => 0,
        Err(e) => -e.errno(),
    };
    r ^ r2 ^ w.available() as i32
}

/// The kernel frees an undelivered task's word itself (consumes `*retired`).
///
/// # Safety
/// `retired` holds a `Retired` the caller gives up.
#[no_mangle]
#[inline(never)]
pub unsafe extern "C" fn gsc_status_reclaim(w: &W, retired: *mut Retired) -> i32 {
    // SAFETY: the caller gives up `*retired`.
    match w.reclaim(unsafe { retired.read() }) {
        Ok(()) => 0,
        Err(e) => -e.errno(),
    }
}

/// The agent barrier: locked bump with a message, lockless wake, publish, the stale check of a commit.
#[no_mangle]
#[inline(never)]
pub extern "C" fn gsc_agent_barrier(ab: &AgentBarrier, word: &mut Word<'_, Region>, q: &Q, seen: u32) -> u64 {
    let a = ab.bump_locked();
    let b = ab.wake();
    let c = ab.publish(word);
    let d = ab.bump_then(word, |seq| gsc_queue_produce(q, 1, seq, 0, 3));
    let stale = ab.is_stale(word, seen);
    a.0 as u64 ^ b.0 as u64 ^ c.0 as u64 ^ d as u64 ^ stale as u64 ^ ab.current().0 as u64
}

// ---- transactions -------------------------------------------------------------------------------------------------

/// The cpu_data region.
pub type C = CpuData<Region>;

/// The `cpu_data` region of `ncpus` CPUs at `stride` bytes per CPU (`stride` 0: the ABI page) into `out`.
///
/// # Safety
/// As for [`gsc_queue_init`].
#[no_mangle]
#[inline(never)]
pub unsafe extern "C" fn gsc_txn_region(
    base: *mut u8,
    len: usize,
    ncpus: u32,
    stride: usize,
    out: *mut MaybeUninit<C>,
) -> i32 {
    // SAFETY: the caller's contract.
    let Some(r) = (unsafe { region(base, len) }) else { return -1 };
    let c = if stride == 0 { CpuData::new(r, ncpus) } else { CpuData::with_stride(r, ncpus, stride) };
    match c {
        Ok(c) => {
            // SAFETY: `out` is writable (caller).
            unsafe { (*out).write(c) };
            0
        }
        Err(_) => -2,
    }
}

/// Adds a CPU: initialises its transaction; also the kernel's read-only probes of a transaction.
#[no_mangle]
#[inline(never)]
pub extern "C" fn gsc_txn_init(c: &C, cpu: u32) -> i64 {
    let r = c.init_txn(cpu).is_ok() as i64;
    let ready = match c.ready(cpu) {
        Ok(Some(f)) => f.bits() as i64,
        Ok(None) => -1,
        Err(_) => -2,
    };
    let state = c.state(cpu).map_or(-3, |s| s.raw() as i64);
    let owner = c.sync_group_owner(cpu).map_or(-4, |o| o as i64);
    let off = c.txn_offset(cpu).map_or(-5, |o| o as i64);
    r ^ ready ^ state ^ owner ^ off ^ c.ncpus() as i64 ^ c.stride() as i64
}

fn result_code(r: &CommitResult) -> i64 {
    r.outcome.raw() as i64
        ^ r.cpu as i64
        ^ r.agent_barrier_bumped as i64
        ^ r.commit_time
        ^ r.cpu_seqnum.map_or(-1, |s| s as i64)
}

/// Claim at commit point `at` (raw `where`: −1, 0, 1; anything else is refused), validate, then commit, or
/// fail with the kernel-chosen `fail_raw` outcome when `fail_raw` is one; the agent may have written anything.
#[no_mangle]
#[inline(never)]
pub extern "C" fn gsc_txn_commit(c: &C, claimer: u32, target: u32, at: i32, fail_raw: i32, view: &ViewTable) -> i64 {
    let Some(at) = CommitPoint::from_raw(at) else { return -100 };
    let view = View(view);
    let claimed: ClaimedTxn<'_, Region> = match c.claim(claimer, target, at) {
        Ok(t) => t,
        Err(_) => return -101,
    };
    let s = claimed.snapshot();
    let mut acc = s.state as i64 ^ s.agent_barrier as i64 ^ s.unused as i64;
    acc ^= claimed.claimer() as i64 ^ claimed.target() as i64 ^ claimed.commit_point().raw() as i64;
    acc ^= claimed.validate(&view).map_or_else(|o| o.raw() as i64, |v| v.already_on_cpu as i64);
    match TxnOutcome::from_raw(fail_raw) {
        Some(outcome) => match claimed.fail(outcome, &view) {
            Ok(r) => acc ^ result_code(&r),
            // A success is refused: the claim comes back and must still be finished.
            Err(claimed) => acc ^ result_code(&claimed.commit(&view)),
        },
        None => acc ^ result_code(&claimed.commit(&view)),
    }
}

/// Validation alone, of a snapshot made of opaque values (the order of §5.4).
#[no_mangle]
#[inline(never)]
pub extern "C" fn gsc_txn_validate(snap: &TxnSnapshot, claimer: u32, target: u32, at: i32, view: &ViewTable) -> i64 {
    let at = CommitPoint::from_raw(at).unwrap_or(CommitPoint::Ioctl);
    let s = TxnSnapshot {
        run_flags: RunFlags::from_bits_retain(snap.run_flags.bits()),
        commit_flags: CommitFlags::from_bits_retain(snap.commit_flags.bits()),
        ..*snap
    };
    match validate(&s, claimer, target, at, &View(view)) {
        Ok(v) => v.already_on_cpu as i64,
        Err(o) => o.raw() as i64,
    }
}

/// `GHOST_IOC_SYNC_GROUP_TXN`: the member bitmap (`nwords` `u64`s, copied from the caller) is hostile.
///
/// # Safety
/// `members..members + nwords` is a writable, kernel-private copy.
#[no_mangle]
#[inline(never)]
pub unsafe extern "C" fn gsc_txn_group(c: &C, caller: u32, members: *mut u64, nwords: usize, view: &ViewTable) -> i64 {
    // SAFETY: the caller's contract.
    let members = unsafe { core::slice::from_raw_parts_mut(members, nwords) };
    let mut reported = 0i64;
    match c.commit_group(caller, members, &View(view), |r| reported ^= result_code(r)) {
        Ok(g) => {
            reported
                ^ g.committed as i64
                ^ g.members as i64
                ^ g.claimed as i64
                ^ match g.failure {
                    Some(ghost_shm::txn::GroupFailure::Claim { cpu, state }) => cpu as i64 ^ state.raw() as i64,
                    Some(ghost_shm::txn::GroupFailure::Commit { cpu, outcome }) => cpu as i64 ^ outcome.raw() as i64,
                    None => 0,
                }
        }
        Err(_) => -1,
    }
}

// ---- the entry ----------------------------------------------------------------------------------------------------

/// Calls every entry point with opaque inputs, so that all of them are linked.
///
/// # Safety
/// Never run: the statics stand for whatever a kernel shim would pass in.
#[no_mangle]
pub unsafe extern "C" fn _start() -> ! {
    let a32 = |k| arg(k) as u32;
    // Queue.
    let q: *mut Q = ptr(0);
    // SAFETY: (for every call below) the binary is only linked; the pointers stand for valid arguments.
    unsafe {
        sink(3, gsc_queue_init(ptr(1), arg(0) as usize, a32(1), q.cast()) as u64);
        let q = &*q;
        sink(4, gsc_queue_produce(q, a32(2), a32(3), arg(4), a32(5) as i32) as u64);
        sink(5, gsc_queue_batch(q, a32(6), a32(3), arg(4), a32(5) as i32) as u64);
        sink(21, gsc_queue_produce_mut(&mut *ptr::<Q>(20), a32(6), a32(3), arg(4), a32(5) as i32) as u64);
        sink(6, gsc_queue_produce_raw(q, a32(7) as u16, a32(3), ptr(2), arg(8) as usize) as u64);
        sink(7, gsc_queue_doorbell(ptr(3), arg(9) as usize, arg(10) as usize) as u64);
        sink(8, gsc_queue_route(&*ptr(4), &*ptr(5), a32(11), a32(12), a32(13), arg(14) != 0) as u64);

        // Status words.
        let w: *mut W = ptr(6);
        sink(9, gsc_status_new(ptr(7), arg(15) as usize, a32(16), a32(17), w.cast()) as u64);
        sink(10, gsc_status_with_capacity(ptr(8), arg(18) as usize, a32(16), a32(17), a32(19), ptr(9)) as u64);
        let w = &*w;
        let alloc: *mut Allocated<'_, Region> = ptr(10);
        sink(11, gsc_status_alloc(w, alloc.cast()) as u64);
        let word: *mut Word<'_, Region> = ptr(11);
        gsc_status_init(alloc, arg(24) as i64, a32(25), word.cast());
        gsc_status_release(ptr(12));
        sink(12, gsc_status_update(&mut *word, q, a32(26), a32(27), arg(28) as i64, arg(29), a32(30), a32(31)));
        sink(13, gsc_agent_barrier(&*ptr(13), &mut *word, q, a32(32)));
        let retired: *mut Retired = ptr(14);
        gsc_status_end(word, q, a32(33), retired.cast());
        sink(14, gsc_status_free(w, a32(34), a32(35)) as u64);
        sink(15, gsc_status_reclaim(w, retired) as u64);

        // Transactions.
        let c: *mut C = ptr(15);
        sink(16, gsc_txn_region(ptr(16), arg(36) as usize, a32(37), arg(38) as usize, c.cast()) as u64);
        let c = &*c;
        let view: &ViewTable = &*ptr(17);
        sink(17, gsc_txn_init(c, a32(39)) as u64);
        sink(18, gsc_txn_commit(c, a32(40), a32(41), a32(42) as i32, a32(43) as i32, view) as u64);
        sink(19, gsc_txn_validate(&*ptr(18), a32(40), a32(41), a32(42) as i32, view) as u64);
        sink(20, gsc_txn_group(c, a32(44), ptr(19), arg(45) as usize, view) as u64);
    }
    #[allow(clippy::empty_loop)]
    loop {}
}
