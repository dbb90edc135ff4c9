//! Transactions: the per-CPU `ghost_txn` in the `cpu_data` region, agent side and kernel side (ABI 91, §1.8,
//! §5 of `ghost-abi.md`).
//!
//! An agent asks the kernel to run a task on a CPU by filling that CPU's transaction and publishing it as
//! `READY`; a kernel CPU *claims* it (compare-exchange `READY` → its own CPU id), validates a one-time copy of
//! it, performs the commit and publishes the final state (a negative [`TxnOutcome`](crate::abi::TxnOutcome)).
//! Several transactions can be committed atomically as a *sync group* ([`CpuData::commit_group`]).
//!
//! ## Layout
//!
//! The `cpu_data` mapping holds one 4096-byte page ([`CPU_DATA_SIZE`]) per possible
//! CPU, in CPU order; the transaction is at offset 0 of its CPU's page:
//!
//! ```text
//!  offset  0       4       8       12              16              20      22  23  24
//!         +-------+-------+-------+---------------+---------------+-------+---+---+
//!         |version|  cpu  | state | agent_barrier | task_barrier  |run_fl.|cf |unu|
//!         |  K    |  K    | A + K |      A        |      A        |   A   | A | - |
//!         +-------+-------+-------+---------------+---------------+-------+---+---+
//!      24 |             gtid (A)          |      commit_time (K)          |
//!      40 |          cpu_seqnum (K)       |sync_group_owner (A/K)| pad (12 bytes)  | 64
//!         +-------------------------------+-----------------------+-----------------+
//!         then the rest of the 4096-byte page (unused)
//!     A = written by the agent, K = written by the kernel; cf = commit_flags, unu = unused
//! ```
//!
//! Every word of a transaction is accessed atomically: `state` and `sync_group_owner` as `u32` atomics;
//! `run_flags`, `commit_flags` and `unused` as the *one* `u32` word at offset 20 (composed with
//! `to_ne_bytes`/`from_ne_bytes`); `gtid`, `commit_time`, `cpu_seqnum` as `u64` atomics. A hostile agent may
//! write any of them at any time, so in a `LoomRegion` (`cfg(loom)`) all of them are control words
//! (see `loom_region`).
//!
//! ## Protocol
//!
//! | step | agent ([`AgentTxn`]) | kernel ([`CpuData`]) |
//! |---|---|---|
//! | init | | [`CpuData::init_txn`]: zero, `cpu`, version 0, owner −1, `state` = COMPLETE (Release) |
//! | group | [`AgentTxn::try_own`]: CAS `owner` −1 → id (AcqRel) | |
//! | open | [`AgentTxn::open`]: Acquire `state` < 0, else [`Busy`] | |
//! | fill | [`OpenTxn`] setters, Relaxed stores at [`OpenTxn::commit`] | |
//! | publish | Release `state` = READY → [`PendingTxn`] | |
//! | claim | | [`CpuData::claim`]: Acquire CAS READY → claimer (honours `COMMIT_AT_*`) |
//! | read once | | [`TxnSnapshot`]: every agent-written word loaded exactly once |
//! | validate | | [`validate`] against a [`KernelView`], order of §5.4, first failure wins |
//! | complete | | `commit_time`, `cpu_seqnum` (success), then Release `state` = outcome |
//! | outcome | [`PendingTxn::poll`]/[`wait`](PendingTxn::wait): Acquire `state` < 0, then the rest | |
//! | abort | [`PendingTxn::abort`]: CAS READY → ABORTED (Release) | |
//! | group commit | | [`CpuData::commit_group`]: claim all, commit after the caller, poison after a failure |
//! | release | [`AgentTxn::disown`] after a failed group | Release `owner` = −1 for all after a successful one |
//!
//! Orderings and their pairs:
//! - the agent's Release store of READY pairs with the kernel's Acquire claim CAS (and the Acquire ready
//!   check): the kernel's snapshot sees every field the agent filled;
//! - the kernel's Release store of the final state pairs with the agent's Acquire load in `poll` (and in
//!   `open`): the agent sees `commit_time`/`cpu_seqnum`, and its next fill cannot be read by the previous claim;
//! - the init's Release store of COMPLETE pairs with the agent's Acquire load in `open`;
//! - the kernel's Release store of `sync_group_owner` = −1 pairs with the agent's Acquire of the owner
//!   (`try_own`'s CAS, `open`'s check): an agent that sees its group released sees the members' final states.
//!
//! ## Threat model
//!
//! The kernel side trusts nothing in the region: it reads every agent-writable word exactly once after the
//! claim ([`TxnSnapshot`]), validates that copy and bases every decision on it; CPU ids (claimer, target,
//! sync-group members) are bounds-checked against the region's CPU count; there is no unbounded loop and no
//! panic on any value. A txn is only ever claimed by a successful compare-exchange from READY, and a sync
//! group claims each member at most once. Whatever an agent writes, at whatever time, the result is one of
//! the defined [`TxnOutcome`](crate::abi::TxnOutcome)s. An agent that re-publishes READY over a claimed
//! transaction has published a new one: it can be claimed again, from its own snapshot, and each claimer
//! finishes only what it claimed (the last final state written wins, as in ghOSt). The agent side trusts the
//! kernel but still reports impossible states ([`Corrupt`]).
//!
//! ## Example
//!
//! ```
//! use ghost_shm::abi::{Gtid, RunFlags, TxnOutcome};
//! use ghost_shm::shm::OwnedRegion;
//! use ghost_shm::txn::{sim::SimView, CommitPoint, CpuData};
//!
//! // Two CPUs, production page stride (4096 bytes per CPU).
//! let cpu_data = CpuData::new(OwnedRegion::new(2 * 4096), 2).unwrap();
//! cpu_data.init_txn(0).unwrap();
//! cpu_data.init_txn(1).unwrap();
//!
//! // A simulated kernel: both CPUs online with an agent, one runnable task.
//! let mut view = SimView::new(2);
//! let task = Gtid(1 << 41 | 1);
//! view.add_task(task, SimView::runnable_task(3));
//!
//! // Agent: run `task` on CPU 1.
//! let mut txn = cpu_data.agent(1).unwrap();
//! let pending = txn.open().unwrap().target(task).task_barrier(3).run_flags(RunFlags::RTLA_ON_PREEMPT).commit();
//!
//! // Kernel, CPU 1 at a greedy commit point.
//! let claimed = cpu_data.claim(1, 1, CommitPoint::Greedy).unwrap();
//! let result = claimed.commit(&view);
//! assert_eq!(result.outcome, TxnOutcome::Complete);
//!
//! // Agent: the outcome.
//! let outcome = pending.poll().unwrap().unwrap();
//! assert_eq!(outcome.outcome, TxnOutcome::Complete);
//! assert_eq!(outcome.cpu_seqnum, Some(1));
//! assert!(txn.open().is_ok()); // committed, so it can be reopened
//! ```
//!
//! ## Model checking
//!
//! `tests/loom_txn.rs` runs this code under loom:
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test --release --test loom_txn`. The mutation
//! `--cfg ghost_shm_weaken` weakens the agent's Release of READY, the kernel's Release of the final state and
//! its Release of `sync_group_owner` after a successful group to Relaxed; the models that depend on them then
//! fail (they are named `weaken_*` and marked `should_panic` under that cfg, so this passes only if loom catches
//! every weakened ordering):
//! `RUSTFLAGS="--cfg loom --cfg ghost_shm_weaken" LOOM_MAX_PREEMPTIONS=2 cargo test --release --test loom_txn --
//! weaken_`.

mod agent;
mod group;
mod kernel;
#[cfg(any(feature = "std", test))]
pub mod sim;
#[cfg(test)]
mod tests;

pub use agent::{AbortResult, AgentTxn, Busy, Corrupt, OpenTxn, Outcome, OwnError, PendingTxn, WaitError};
pub use group::{GroupError, GroupFailure, GroupResult};
pub use kernel::{
    commit_flags_valid, run_flags_valid, validate, ClaimError, ClaimedTxn, CommitPoint, CommitResult, KernelView,
    TaskInfo, TxnSnapshot, Validated, COMMIT_FLAGS_ALLOWED, RUN_FLAGS_ALLOWED,
};

use crate::abi::{GhostTxn, CPU_DATA_SIZE};
use crate::shm::SharedMem;
use core::mem::{offset_of, size_of};
use core::sync::atomic::Ordering;

// ---- layout -----------------------------------------------------------------------------------------------------

/// Byte offset of `version` in a transaction.
pub const VERSION_OFFSET: usize = 0;
/// Byte offset of `cpu`.
pub const CPU_OFFSET: usize = 4;
/// Byte offset of `state`.
pub const STATE_OFFSET: usize = 8;
/// Byte offset of `agent_barrier`.
pub const AGENT_BARRIER_OFFSET: usize = 12;
/// Byte offset of `task_barrier`.
pub const TASK_BARRIER_OFFSET: usize = 16;
/// Byte offset of the `u32` word holding `run_flags` (bytes 20–21), `commit_flags` (22) and `unused` (23).
pub const FLAGS_OFFSET: usize = 20;
/// Byte offset of `gtid`.
pub const GTID_OFFSET: usize = 24;
/// Byte offset of `commit_time`.
pub const COMMIT_TIME_OFFSET: usize = 32;
/// Byte offset of `cpu_seqnum`.
pub const CPU_SEQNUM_OFFSET: usize = 40;
/// Byte offset of `u.sync_group_owner`.
pub const SYNC_GROUP_OWNER_OFFSET: usize = 48;
/// Byte offset of the 12 padding bytes at the end of a transaction.
pub const PAD_OFFSET: usize = 52;
/// Size of a transaction.
pub const TXN_SIZE: usize = 64;
/// `sync_group_owner` of a transaction that no sync group owns.
pub const NO_OWNER: i32 = -1;

static_assertions::const_assert_eq!(offset_of!(GhostTxn, version), VERSION_OFFSET);
static_assertions::const_assert_eq!(offset_of!(GhostTxn, cpu), CPU_OFFSET);
static_assertions::const_assert_eq!(offset_of!(GhostTxn, state), STATE_OFFSET);
static_assertions::const_assert_eq!(offset_of!(GhostTxn, agent_barrier), AGENT_BARRIER_OFFSET);
static_assertions::const_assert_eq!(offset_of!(GhostTxn, task_barrier), TASK_BARRIER_OFFSET);
static_assertions::const_assert_eq!(offset_of!(GhostTxn, run_flags), FLAGS_OFFSET);
static_assertions::const_assert_eq!(offset_of!(GhostTxn, commit_flags), FLAGS_OFFSET + 2);
static_assertions::const_assert_eq!(offset_of!(GhostTxn, unused), FLAGS_OFFSET + 3);
static_assertions::const_assert_eq!(offset_of!(GhostTxn, gtid), GTID_OFFSET);
static_assertions::const_assert_eq!(offset_of!(GhostTxn, commit_time), COMMIT_TIME_OFFSET);
static_assertions::const_assert_eq!(offset_of!(GhostTxn, cpu_seqnum), CPU_SEQNUM_OFFSET);
static_assertions::const_assert_eq!(offset_of!(GhostTxn, sync_group_owner), SYNC_GROUP_OWNER_OFFSET);
static_assertions::const_assert_eq!(offset_of!(GhostTxn, _pad), PAD_OFFSET);
static_assertions::const_assert_eq!(size_of::<GhostTxn>(), TXN_SIZE);
static_assertions::const_assert_eq!(CPU_DATA_SIZE % TXN_SIZE, 0);

/// The `u32` words of a transaction (byte offsets within it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
enum W32 {
    Version = VERSION_OFFSET,
    Cpu = CPU_OFFSET,
    State = STATE_OFFSET,
    AgentBarrier = AGENT_BARRIER_OFFSET,
    TaskBarrier = TASK_BARRIER_OFFSET,
    Flags = FLAGS_OFFSET,
    Owner = SYNC_GROUP_OWNER_OFFSET,
    Pad0 = PAD_OFFSET,
    Pad1 = PAD_OFFSET + 4,
    Pad2 = PAD_OFFSET + 8,
}

/// The `u64` words of a transaction (byte offsets within it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
enum W64 {
    Gtid = GTID_OFFSET,
    CommitTime = COMMIT_TIME_OFFSET,
    CpuSeqnum = CPU_SEQNUM_OFFSET,
}

/// Packs `run_flags`, `commit_flags` and `unused` into the `u32` word at [`FLAGS_OFFSET`] (memory order).
pub const fn pack_flags(run_flags: u16, commit_flags: u8, unused: u8) -> u32 {
    let r = run_flags.to_ne_bytes();
    u32::from_ne_bytes([r[0], r[1], commit_flags, unused])
}

/// Splits the word at [`FLAGS_OFFSET`] into `(run_flags, commit_flags, unused)`.
pub const fn unpack_flags(word: u32) -> (u16, u8, u8) {
    let b = word.to_ne_bytes();
    (u16::from_ne_bytes([b[0], b[1]]), b[2], b[3])
}

// ---- orderings that the `ghost_shm_weaken` mutation weakens -----------------------------------------------------

/// The agent's publication of READY. Pairs with the kernel's Acquire claim CAS / ready check.
#[cfg(not(ghost_shm_weaken))]
const PUBLISH_READY: Ordering = Ordering::Release;
/// Mutation for the loom models: Relaxed instead of Release (must make `tests/loom_txn.rs` fail).
#[cfg(ghost_shm_weaken)]
const PUBLISH_READY: Ordering = Ordering::Relaxed;

/// The kernel's publication of the final state. Pairs with the agent's Acquire load of `state`.
#[cfg(not(ghost_shm_weaken))]
const PUBLISH_FINAL: Ordering = Ordering::Release;
/// Mutation for the loom models: Relaxed instead of Release (must make `tests/loom_txn.rs` fail).
#[cfg(ghost_shm_weaken)]
const PUBLISH_FINAL: Ordering = Ordering::Relaxed;

/// The kernel's release of `sync_group_owner` after a successful group. Pairs with the agent's Acquire of it.
#[cfg(not(ghost_shm_weaken))]
const PUBLISH_OWNER: Ordering = Ordering::Release;
/// Mutation for the loom models: Relaxed instead of Release (must make `tests/loom_txn.rs` fail).
#[cfg(ghost_shm_weaken)]
const PUBLISH_OWNER: Ordering = Ordering::Relaxed;

// ---- the region -------------------------------------------------------------------------------------------------

/// Why a region cannot hold the transactions of `ncpus` CPUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayoutError {
    /// `ncpus` is 0, or not below `GHOST_TXN_READY` (`i32::MAX`, CPU ids must be claim states).
    BadCpuCount,
    /// The page stride is not a non-zero multiple of 64.
    BadStride,
    /// The region is shorter than `ncpus × stride` bytes.
    TooSmall,
}

impl core::fmt::Display for LayoutError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            LayoutError::BadCpuCount => "CPU count is 0 or not below i32::MAX",
            LayoutError::BadStride => "page stride is not a non-zero multiple of 64",
            LayoutError::TooSmall => "region is shorter than ncpus * stride",
        })
    }
}

/// A CPU id that is not below the region's CPU count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadCpu(pub u32);

impl core::fmt::Display for BadCpu {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "CPU {} is outside the cpu_data region", self.0)
    }
}

/// Base offset of the transaction of an in-range CPU.
///
/// INVARIANT: only built by [`CpuData::slot`], so `self.0 + TXN_SIZE <= mem.len()` and `self.0 % 64 == 0`
/// for the region that built it (slots never leave this module's private API).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Slot(usize);

/// The `cpu_data` region: the transactions of `ncpus` CPUs, one per `stride` bytes (4096 in production).
///
/// Both sides use it: the agent through [`agent`](CpuData::agent) handles, the kernel through
/// [`init_txn`](CpuData::init_txn), [`claim`](CpuData::claim) and [`commit_group`](CpuData::commit_group).
#[derive(Debug)]
pub struct CpuData<M: SharedMem> {
    mem: M,
    ncpus: u32,
    stride: usize,
    /// Kernel-private, one bit per CPU: a claim of that CPU's transaction is in flight. Guards against a
    /// hostile agent re-publishing READY over a claimed transaction: it is never claimed twice.
    held: [crate::sync::AtomicU64; HELD_WORDS],
}

/// Words of the kernel-private claim bitmap: 8192 CPUs (the common `kernel_max`); 64 under loom.
#[cfg(not(loom))]
const HELD_WORDS: usize = 128;
#[cfg(loom)]
const HELD_WORDS: usize = 1;

/// The most CPUs a [`CpuData`] can describe.
pub const MAX_CPUS: u32 = (HELD_WORDS * 64) as u32;

impl<M: SharedMem> CpuData<M> {
    /// The `cpu_data` region of `ncpus` CPUs over `mem`, one [`CPU_DATA_SIZE`] page per CPU.
    pub fn new(mem: M, ncpus: u32) -> Result<Self, LayoutError> {
        Self::with_stride(mem, ncpus, CPU_DATA_SIZE)
    }

    /// Like [`new`](CpuData::new) with `stride` bytes per CPU (a non-zero multiple of 64): small regions for
    /// model checking and fuzzing. The ABI's stride is [`CPU_DATA_SIZE`].
    pub fn with_stride(mem: M, ncpus: u32, stride: usize) -> Result<Self, LayoutError> {
        if ncpus == 0 || ncpus > MAX_CPUS {
            return Err(LayoutError::BadCpuCount);
        }
        if stride == 0 || stride % TXN_SIZE != 0 {
            return Err(LayoutError::BadStride);
        }
        match (ncpus as usize).checked_mul(stride) {
            Some(need) if need <= mem.len() => {
                Ok(CpuData { mem, ncpus, stride, held: core::array::from_fn(|_| crate::sync::AtomicU64::new(0)) })
            }
            _ => Err(LayoutError::TooSmall),
        }
    }

    /// The number of CPUs (valid CPU ids are `0..ncpus`).
    pub fn ncpus(&self) -> u32 {
        self.ncpus
    }

    /// The page stride in bytes.
    pub fn stride(&self) -> usize {
        self.stride
    }

    /// The underlying region.
    pub fn mem(&self) -> &M {
        &self.mem
    }

    /// Byte offset of `cpu`'s transaction in the region.
    pub fn txn_offset(&self, cpu: u32) -> Result<usize, BadCpu> {
        self.slot(cpu).map(|s| s.0)
    }

    fn slot(&self, cpu: u32) -> Result<Slot, BadCpu> {
        if cpu < self.ncpus {
            // INVARIANT: cpu < ncpus and ncpus * stride <= len (checked in `with_stride`), stride >= 64 and a
            // multiple of 64, so cpu * stride + 64 <= len and the offset is 64-aligned.
            Ok(Slot((cpu as usize).wrapping_mul(self.stride)))
        } else {
            Err(BadCpu(cpu))
        }
    }

    #[inline(always)]
    fn load32(&self, s: Slot, w: W32, order: Ordering) -> u32 {
        // SAFETY: `s.0 + 64 <= len` and `s.0 % 64 == 0` (Slot invariant); `w` is a 4-aligned offset below 64.
        unsafe { self.mem.load_u32(s.0.wrapping_add(w as usize), order) }
    }

    #[inline(always)]
    fn store32(&self, s: Slot, w: W32, val: u32, order: Ordering) {
        // SAFETY: as in `load32`.
        unsafe { self.mem.store_u32(s.0.wrapping_add(w as usize), val, order) }
    }

    #[inline(always)]
    fn cas32(&self, s: Slot, w: W32, current: u32, new: u32, ok: Ordering, fail: Ordering) -> Result<u32, u32> {
        // SAFETY: as in `load32`.
        unsafe { self.mem.compare_exchange_u32(s.0.wrapping_add(w as usize), current, new, ok, fail) }
    }

    #[inline(always)]
    fn load64(&self, s: Slot, w: W64, order: Ordering) -> u64 {
        // SAFETY: `s.0 + 64 <= len` and `s.0 % 64 == 0` (Slot invariant); `w` is an 8-aligned offset, w + 8 <= 48.
        unsafe { self.mem.load_u64(s.0.wrapping_add(w as usize), order) }
    }

    #[inline(always)]
    fn store64(&self, s: Slot, w: W64, val: u64, order: Ordering) {
        // SAFETY: as in `load64`.
        unsafe { self.mem.store_u64(s.0.wrapping_add(w as usize), val, order) }
    }

    /// Kernel: initialises `cpu`'s transaction as when the CPU is added to an enclave (§1.8): every word
    /// zeroed, then `cpu`, `version` = 0, `sync_group_owner` = −1 and, last, `state` = COMPLETE (Release,
    /// pairing with the Acquire load of `state` in [`AgentTxn::open`]).
    pub fn init_txn(&self, cpu: u32) -> Result<(), BadCpu> {
        let s = self.slot(cpu)?;
        for w in [W32::Version, W32::AgentBarrier, W32::TaskBarrier, W32::Flags, W32::Pad0, W32::Pad1, W32::Pad2] {
            self.store32(s, w, 0, Ordering::Relaxed);
        }
        for w in [W64::Gtid, W64::CommitTime, W64::CpuSeqnum] {
            self.store64(s, w, 0, Ordering::Relaxed);
        }
        self.store32(s, W32::Cpu, cpu, Ordering::Relaxed);
        self.store32(s, W32::Owner, NO_OWNER as u32, Ordering::Relaxed);
        // Release: pairs with the Acquire load of `state` in `AgentTxn::open`, which then sees the zeroed fields.
        self.store32(s, W32::State, crate::abi::GHOST_TXN_COMPLETE as u32, Ordering::Release);
        Ok(())
    }

    /// The decoded `state` of `cpu`'s transaction (Relaxed: an observation; [`read_raw`](CpuData::read_raw)
    /// and the agent's and kernel's handles load the state again with Acquire before reading what it
    /// publishes).
    pub fn state(&self, cpu: u32) -> Result<crate::abi::TxnState, BadCpu> {
        let s = self.slot(cpu)?;
        // Relaxed: as in `AgentTxn::state`, a later Acquire load of the state reads this store or a later one
        // (coherence), each a Release store or in the release sequence of one, and synchronises by itself.
        Ok(crate::abi::TxnState::from_raw(self.load32(s, W32::State, Ordering::Relaxed) as i32))
    }

    /// The current `sync_group_owner` of `cpu`'s transaction (Acquire, pairing with the kernel's Release of −1
    /// after a successful group and the agent's ownership CAS).
    pub fn sync_group_owner(&self, cpu: u32) -> Result<i32, BadCpu> {
        let s = self.slot(cpu)?;
        Ok(self.load32(s, W32::Owner, Ordering::Acquire) as i32)
    }

    /// A field-by-field copy of `cpu`'s transaction for inspection (tests, tools, debugging). Each word is
    /// loaded once, Relaxed after an Acquire load of `state`; the copy is not atomic as a whole.
    pub fn read_raw(&self, cpu: u32) -> Result<GhostTxn, BadCpu> {
        let s = self.slot(cpu)?;
        let state = self.load32(s, W32::State, Ordering::Acquire) as i32;
        let (run_flags, commit_flags, unused) = unpack_flags(self.load32(s, W32::Flags, Ordering::Relaxed));
        let mut pad = [0u8; 12];
        for (i, w) in [W32::Pad0, W32::Pad1, W32::Pad2].into_iter().enumerate() {
            pad[i * 4..i * 4 + 4].copy_from_slice(&self.load32(s, w, Ordering::Relaxed).to_ne_bytes());
        }
        Ok(GhostTxn {
            version: self.load32(s, W32::Version, Ordering::Relaxed) as i32,
            cpu: self.load32(s, W32::Cpu, Ordering::Relaxed) as i32,
            state,
            agent_barrier: self.load32(s, W32::AgentBarrier, Ordering::Relaxed),
            task_barrier: self.load32(s, W32::TaskBarrier, Ordering::Relaxed),
            run_flags,
            commit_flags,
            unused,
            gtid: self.load64(s, W64::Gtid, Ordering::Relaxed) as i64,
            commit_time: self.load64(s, W64::CommitTime, Ordering::Relaxed) as i64,
            cpu_seqnum: self.load64(s, W64::CpuSeqnum, Ordering::Relaxed),
            sync_group_owner: self.load32(s, W32::Owner, Ordering::Relaxed) as i32,
            _pad: pad,
        })
    }

    /// Overwrites every word of `cpu`'s transaction from `txn`, Relaxed, `state` last with Release: what a
    /// (possibly hostile) agent could write. For tests, fuzzing and simulations.
    pub fn write_raw(&self, cpu: u32, txn: &GhostTxn) -> Result<(), BadCpu> {
        let s = self.slot(cpu)?;
        self.store32(s, W32::Version, txn.version as u32, Ordering::Relaxed);
        self.store32(s, W32::Cpu, txn.cpu as u32, Ordering::Relaxed);
        self.store32(s, W32::AgentBarrier, txn.agent_barrier, Ordering::Relaxed);
        self.store32(s, W32::TaskBarrier, txn.task_barrier, Ordering::Relaxed);
        self.store32(s, W32::Flags, pack_flags(txn.run_flags, txn.commit_flags, txn.unused), Ordering::Relaxed);
        self.store64(s, W64::Gtid, txn.gtid as u64, Ordering::Relaxed);
        self.store64(s, W64::CommitTime, txn.commit_time as u64, Ordering::Relaxed);
        self.store64(s, W64::CpuSeqnum, txn.cpu_seqnum, Ordering::Relaxed);
        self.store32(s, W32::Owner, txn.sync_group_owner as u32, Ordering::Relaxed);
        for (i, w) in [W32::Pad0, W32::Pad1, W32::Pad2].into_iter().enumerate() {
            let p = &txn._pad[i * 4..i * 4 + 4];
            self.store32(s, w, u32::from_ne_bytes([p[0], p[1], p[2], p[3]]), Ordering::Relaxed);
        }
        // Release: pairs with the Acquire claim CAS, like the agent's publication of READY.
        self.store32(s, W32::State, txn.state as u32, Ordering::Release);
        Ok(())
    }
}

/// The byte offsets of the `u32` and `u64` control words of the transactions of `ncpus` CPUs at `stride`:
/// every word of every transaction (a hostile agent may write any of them at any time).
#[cfg(loom)]
pub fn loom_control_words(ncpus: u32, stride: usize) -> (std::vec::Vec<usize>, std::vec::Vec<usize>) {
    let mut a32 = std::vec::Vec::new();
    let mut a64 = std::vec::Vec::new();
    for cpu in 0..ncpus as usize {
        let base = cpu * stride;
        for w in [0, 4, 8, 12, 16, 20, 48, 52, 56, 60] {
            a32.push(base + w);
        }
        for w in [24, 32, 40] {
            a64.push(base + w);
        }
    }
    (a32, a64)
}

/// A [`LoomRegion`](crate::shm::LoomRegion) for the transactions of `ncpus` CPUs at `stride` (a multiple of
/// 64; use 64 to keep models small) with every transaction word a control word.
#[cfg(loom)]
pub fn loom_region(ncpus: u32, stride: usize) -> crate::shm::LoomRegion {
    let (a32, a64) = loom_control_words(ncpus, stride);
    crate::shm::LoomRegion::new(ncpus as usize * stride, &a32, &a64)
}
