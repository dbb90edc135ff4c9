//! Kernel side: ready check, claim, read-once snapshot, validation (§5.4) and completion.
//!
//! ```text
//!   claim ──► ClaimedTxn { snapshot } ──► validate(view) ──Ok──► view.latch → Complete
//!   (Acquire CAS READY → claimer)                        └─Err─► first failing TxnOutcome
//!   finish: [view.bump_agent_barrier] → commit_time → [cpu_seqnum] → Release state = outcome
//! ```

use super::{unpack_flags, BadCpu, CpuData, Slot, PUBLISH_FINAL, W32, W64};
use crate::abi::{
    CommitFlags, GhostTxn, Gtid, RunFlags, TxnOutcome, TxnState, COMMIT_AT_FLAGS, GHOST_TXN_READY, GHOST_TXN_VERSION,
};
use crate::shm::SharedMem;
use core::sync::atomic::Ordering;

/// The run flags a transaction may carry (§2.5: all ten defined bits).
pub const RUN_FLAGS_ALLOWED: RunFlags = RunFlags::all();
/// The commit flags a transaction may carry (§2.6: all five defined bits).
pub const COMMIT_FLAGS_ALLOWED: CommitFlags = CommitFlags::all();

/// §2.5: `run_flags` ⊆ [`RUN_FLAGS_ALLOWED`]; `RTLA_ON_IDLE` not with a negative gtid (allowed with NULL);
/// `NEED_CPU_NOT_IDLE` only with the IDLE gtid; the AGENT gtid requires no run flags at all.
pub fn run_flags_valid(gtid: Gtid, run_flags: RunFlags) -> bool {
    let bits = run_flags.bits();
    if bits & !RUN_FLAGS_ALLOWED.bits() != 0 {
        return false;
    }
    if run_flags.contains(RunFlags::RTLA_ON_IDLE) && gtid.0 < 0 {
        return false;
    }
    if run_flags.contains(RunFlags::NEED_CPU_NOT_IDLE) && gtid != Gtid::IDLE {
        return false;
    }
    !(gtid == Gtid::AGENT && bits != 0)
}

/// §2.6: `commit_flags` ⊆ [`COMMIT_FLAGS_ALLOWED`]; at most one `COMMIT_AT_*` bit; not both
/// `ELIDE_AGENT_BARRIER_INC` and `INC_AGENT_BARRIER_ON_FAILURE`.
pub fn commit_flags_valid(commit_flags: CommitFlags) -> bool {
    let bits = commit_flags.bits();
    bits & !COMMIT_FLAGS_ALLOWED.bits() == 0
        && bits & COMMIT_AT_FLAGS != COMMIT_AT_FLAGS
        && !commit_flags.contains(CommitFlags::ELIDE_AGENT_BARRIER_INC | CommitFlags::INC_AGENT_BARRIER_ON_FAILURE)
}

/// Where the kernel commits (the `where` argument of the claim, §5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CommitPoint {
    /// The explicit commit ioctls (`where` = −1), on the calling CPU for any target; ignores `COMMIT_AT_*`.
    Ioctl,
    /// A greedy commit point of the target CPU (`where` = 0): only transactions without a `COMMIT_AT_*` bit.
    Greedy,
    /// The target CPU's scheduler (`where` = 1 = `COMMIT_AT_SCHEDULE`): greedy or `COMMIT_AT_SCHEDULE`
    /// transactions.
    Schedule,
}

impl CommitPoint {
    /// The kernel's `where` value: −1, 0, 1.
    pub const fn raw(self) -> i32 {
        match self {
            CommitPoint::Ioctl => -1,
            CommitPoint::Greedy => 0,
            CommitPoint::Schedule => 1,
        }
    }

    /// Decodes a `where` value.
    pub const fn from_raw(v: i32) -> Option<CommitPoint> {
        match v {
            -1 => Some(CommitPoint::Ioctl),
            0 => Some(CommitPoint::Greedy),
            1 => Some(CommitPoint::Schedule),
            _ => None,
        }
    }

    /// Whether a transaction with `commit_flags` may be claimed here (§5.2): always at the ioctl; at a
    /// kernel commit point only if its `COMMIT_AT_*` bits are zero or equal to `where`.
    pub const fn admits(self, commit_flags: CommitFlags) -> bool {
        let at = (commit_flags.bits() & COMMIT_AT_FLAGS) as i32;
        match self {
            CommitPoint::Ioctl => true,
            _ => at == 0 || at == self.raw(),
        }
    }
}

/// What the kernel knows about a task, for validation (§5.4 step 7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TaskInfo {
    /// The task is an agent.
    pub is_agent: bool,
    /// The task departed and the agent has not acknowledged `TASK_DEPARTED`, or it is no longer in ghOSt.
    pub departed: bool,
    /// The task is dead.
    pub dead: bool,
    /// Its status word's barrier.
    pub barrier: u32,
    /// It is queued (on a runqueue; a running task is queued too).
    pub runnable: bool,
    /// Its enclave.
    pub enclave: u64,
    /// The CPU it is running on, if it is running.
    pub on_cpu: Option<u32>,
    /// It is running and already being forced off its CPU (must_resched and need_resched).
    pub forced_off: bool,
}

/// The kernel's answers about tasks and CPUs, and the kernel actions of a commit.
///
/// Validation ([`validate`]) asks the questions in the order of §5.4; [`ClaimedTxn::commit`] and
/// [`CpuData::commit_group`] then call the actions, all before the final state is published. Every CPU id
/// passed in is below the region's CPU count.
pub trait KernelView {
    /// The task with this gtid (> 0), if any.
    fn lookup(&self, gtid: Gtid) -> Option<TaskInfo>;
    /// Whether `cpu` is online.
    fn cpu_online(&self, cpu: u32) -> bool;
    /// The enclave `cpu` belongs to, if any.
    fn cpu_enclave(&self, cpu: u32) -> Option<u64>;
    /// Whether `cpu` has an agent.
    fn agent_present(&self, cpu: u32) -> bool;
    /// Whether the idle task is current on `cpu`.
    fn idle_running(&self, cpu: u32) -> bool;
    /// §5.4 step 9, for synchronous (ioctl) commits: whether the task calling the ioctl on `caller` may
    /// commit `gtid` on `target` (it is an agent of the target's enclave, or a non-agent pinging an agent of
    /// its own process).
    fn sync_commit_permitted(&self, caller: u32, target: u32, gtid: Gtid) -> bool;
    /// Whether a ghOSt task is current or latched on `cpu` (for `DO_NOT_PREEMPT`).
    fn ghost_busy(&self, cpu: u32) -> bool;
    /// Whether a higher-priority (non-ghOSt, non-idle) class is running on `cpu`.
    fn higher_class_running(&self, cpu: u32) -> bool;
    /// The agent barrier of `cpu`, re-synchronised for a local blocking commit (the kernel publishes
    /// `blocked_in_run` with a full barrier before answering; it resets it if the commit fails).
    fn agent_barrier(&self, cpu: u32) -> u32;
    /// The current time, CLOCK_MONOTONIC ns (`commit_time`).
    fn now_ns(&self) -> i64;
    /// The success actions for a validated transaction on `cpu` (§5.4 "Success actions": latch the task,
    /// ping the agent, force the current task off, IPI, sync-group rendezvous); `already_on_cpu` when the
    /// target already runs there (`ALLOW_TASK_ONCPU`: only refresh run flags). Returns the runqueue's new
    /// `cpu_seqnum`.
    fn latch(&self, cpu: u32, txn: &TxnSnapshot, already_on_cpu: bool) -> u64;
    /// Increments the agent barrier of `cpu`.
    fn bump_agent_barrier(&self, cpu: u32);
}

/// A one-time copy of every agent-writable word of a claimed transaction: the kernel validates and commits
/// this copy, never the shared memory again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnSnapshot {
    /// `state` (the claimer's CPU id, unless the agent overwrote it after the claim).
    pub state: i32,
    /// `version`.
    pub version: i32,
    /// `cpu`.
    pub cpu: i32,
    /// `agent_barrier`.
    pub agent_barrier: u32,
    /// `task_barrier`.
    pub task_barrier: u32,
    /// `run_flags`, unknown bits retained.
    pub run_flags: RunFlags,
    /// `commit_flags`, unknown bits retained.
    pub commit_flags: CommitFlags,
    /// `unused`.
    pub unused: u8,
    /// `gtid`.
    pub gtid: Gtid,
}

impl TxnSnapshot {
    /// The snapshot of a transaction copy.
    pub fn from_txn(txn: &GhostTxn) -> TxnSnapshot {
        TxnSnapshot {
            state: txn.state,
            version: txn.version,
            cpu: txn.cpu,
            agent_barrier: txn.agent_barrier,
            task_barrier: txn.task_barrier,
            run_flags: RunFlags::from_bits_retain(txn.run_flags),
            commit_flags: CommitFlags::from_bits_retain(txn.commit_flags),
            unused: txn.unused,
            gtid: Gtid(txn.gtid),
        }
    }
}

/// A successful validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validated {
    /// The target already runs on the target CPU (`ALLOW_TASK_ONCPU`): no reschedule, no barrier bump.
    pub already_on_cpu: bool,
}

/// Validates a snapshot claimed by `claimer` for `target` at `at`, in the order of §5.4; the first failing
/// check's outcome is returned. Pure apart from the `view` queries (it calls no [`KernelView`] action).
pub fn validate<V: KernelView + ?Sized>(
    snap: &TxnSnapshot,
    claimer: u32,
    target: u32,
    at: CommitPoint,
    view: &V,
) -> Result<Validated, TxnOutcome> {
    // 1–3: the claim, the version, the CPU.
    if snap.state != claimer as i32 {
        return Err(TxnOutcome::InvalidCpu);
    }
    if snap.version != GHOST_TXN_VERSION {
        return Err(TxnOutcome::UnsupportedVersion);
    }
    if snap.cpu != target as i32 {
        return Err(TxnOutcome::InvalidCpu);
    }
    // 4–5: flags.
    if !run_flags_valid(snap.gtid, snap.run_flags) || !commit_flags_valid(snap.commit_flags) {
        return Err(TxnOutcome::InvalidFlags);
    }
    // 6.
    if !view.cpu_online(target) {
        return Err(TxnOutcome::CpuOffline);
    }
    // 7: the target.
    let allow_oncpu = snap.commit_flags.contains(CommitFlags::ALLOW_TASK_ONCPU);
    let mut already_on_cpu = false;
    if snap.gtid.0 > 0 {
        let task = view.lookup(snap.gtid).ok_or(TxnOutcome::TargetNotFound)?;
        if task.is_agent {
            return Err(TxnOutcome::InvalidTarget);
        }
        let enclave = view.cpu_enclave(target).ok_or(TxnOutcome::InvalidTarget)?;
        if task.departed || task.dead || task.barrier != snap.task_barrier {
            return Err(TxnOutcome::TargetStale);
        }
        if !task.runnable {
            return Err(TxnOutcome::TargetNotRunnable);
        }
        if task.enclave != enclave {
            return Err(TxnOutcome::NotPermitted);
        }
        if let Some(cpu) = task.on_cpu {
            if !(allow_oncpu && cpu == target) {
                return Err(TxnOutcome::TargetOnCpu);
            }
            if task.forced_off {
                return Err(TxnOutcome::TargetStale);
            }
            already_on_cpu = true;
        }
    } else if snap.gtid.0 < Gtid::IDLE.0 {
        return Err(TxnOutcome::InvalidTarget);
    } else if snap.gtid == Gtid::IDLE && view.idle_running(target) {
        if !allow_oncpu {
            return Err(TxnOutcome::TargetOnCpu);
        }
        already_on_cpu = true;
    }
    // 8.
    if !view.agent_present(target) {
        return Err(TxnOutcome::NoAgent);
    }
    // 9: synchronous commits only.
    if at == CommitPoint::Ioctl && !view.sync_commit_permitted(claimer, target, snap.gtid) {
        return Err(TxnOutcome::NotPermitted);
    }
    // 10.
    if snap.run_flags.contains(RunFlags::DO_NOT_PREEMPT) && view.ghost_busy(target) {
        return Err(TxnOutcome::AgentStale);
    }
    // 11.
    if snap.gtid != Gtid::AGENT && view.higher_class_running(target) {
        return Err(TxnOutcome::CpuUnavail);
    }
    // 12: local blocking commit.
    if at == CommitPoint::Ioctl
        && claimer == target
        && snap.gtid != Gtid::AGENT
        && view.agent_barrier(target) != snap.agent_barrier
    {
        return Err(TxnOutcome::AgentStale);
    }
    Ok(Validated { already_on_cpu })
}

/// Whether a failed transaction bumps the target's agent barrier: its (one) snapshot carries valid commit
/// flags that include `INC_AGENT_BARRIER_ON_FAILURE`. Invalid commit flags are never acted on.
fn bump_on_failure(snap: &TxnSnapshot) -> bool {
    commit_flags_valid(snap.commit_flags) && snap.commit_flags.contains(CommitFlags::INC_AGENT_BARRIER_ON_FAILURE)
}

/// Why a transaction was not claimed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimError {
    /// The claimer or target CPU is outside the region.
    BadCpu(u32),
    /// A kernel commit point (greedy, schedule) runs on the target CPU itself; the claimer differs.
    NotLocal,
    /// The transaction is not READY.
    NotReady(TxnState),
    /// The transaction shows READY but a claim of it is still in flight (the agent re-published READY over a
    /// claimed transaction): it is not claimed twice.
    AlreadyClaimed,
    /// Its `COMMIT_AT_*` bits ask for another commit point.
    WrongCommitPoint(CommitFlags),
}

impl From<BadCpu> for ClaimError {
    fn from(e: BadCpu) -> Self {
        ClaimError::BadCpu(e.0)
    }
}

impl core::fmt::Display for ClaimError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ClaimError::BadCpu(c) => write!(f, "CPU {c} is outside the cpu_data region"),
            ClaimError::NotLocal => f.write_str("kernel commit points claim only their own CPU's transaction"),
            ClaimError::NotReady(s) => write!(f, "transaction not ready ({s:?})"),
            ClaimError::AlreadyClaimed => f.write_str("transaction re-published while a claim is in flight"),
            ClaimError::WrongCommitPoint(c) => write!(f, "transaction asks for another commit point ({c:?})"),
        }
    }
}

/// What a finished commit did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitResult {
    /// The target CPU (whose transaction it was).
    pub cpu: u32,
    /// The final state written.
    pub outcome: TxnOutcome,
    /// Whether [`KernelView::bump_agent_barrier`] was called for the target CPU.
    pub agent_barrier_bumped: bool,
    /// `commit_time` written.
    pub commit_time: i64,
    /// `cpu_seqnum` written (success only).
    pub cpu_seqnum: Option<u64>,
}

/// A transaction this CPU has claimed, with its read-once [`TxnSnapshot`]. It must be finished
/// ([`commit`](ClaimedTxn::commit) or [`fail`](ClaimedTxn::fail)) by the claiming CPU: until then the agent
/// sees it claimed.
#[must_use = "a claimed transaction must be finished (commit or fail), or its agent waits forever"]
#[derive(Debug)]
pub struct ClaimedTxn<'r, M: SharedMem> {
    region: &'r CpuData<M>,
    slot: Slot,
    claimer: u32,
    target: u32,
    at: CommitPoint,
    snap: TxnSnapshot,
}

impl<M: SharedMem> CpuData<M> {
    /// Ready check (§5.2): the commit flags of `target`'s transaction if it is READY (Acquire load of
    /// `state`, pairing with the agent's Release of READY), else `None`. A hint: only a claim is binding.
    pub fn ready(&self, target: u32) -> Result<Option<CommitFlags>, BadCpu> {
        let s = self.slot(target)?;
        if self.load32(s, W32::State, Ordering::Acquire) as i32 != GHOST_TXN_READY {
            return Ok(None);
        }
        let (_, commit_flags, _) = unpack_flags(self.load32(s, W32::Flags, Ordering::Relaxed));
        Ok(Some(CommitFlags::from_bits_retain(commit_flags)))
    }

    /// Claims `target`'s transaction for CPU `claimer` at commit point `at` (§5.2), then takes its snapshot.
    ///
    /// At [`CommitPoint::Ioctl`] this is one Acquire CAS READY → `claimer`; at a kernel commit point
    /// (`claimer` must be `target`) an Acquire load of READY and one load of the flags word come first, and a
    /// transaction whose `COMMIT_AT_*` bits name another point is left alone. That one load of the flags word
    /// *is* the snapshot's `run_flags`/`commit_flags`/`unused` (the snapshot does not read the word again), so
    /// the admission decision and everything after it see the same commit flags, whatever the agent writes in
    /// between.
    pub fn claim(&self, claimer: u32, target: u32, at: CommitPoint) -> Result<ClaimedTxn<'_, M>, ClaimError> {
        let slot = self.slot(target)?;
        self.slot(claimer)?;
        let flags = self.claim_slot(slot, claimer, target, at)?;
        Ok(self.claimed(slot, claimer, target, at, flags))
    }

    /// The claim proper. `slot` is `target`'s, `claimer` is in range. At a kernel commit point, returns the
    /// flags word it read to decide admission (to be the snapshot's, via [`claimed`](CpuData::claimed)).
    pub(super) fn claim_slot(
        &self,
        slot: Slot,
        claimer: u32,
        target: u32,
        at: CommitPoint,
    ) -> Result<Option<u32>, ClaimError> {
        let mut flags_word = None;
        if at != CommitPoint::Ioctl {
            if claimer != target {
                return Err(ClaimError::NotLocal);
            }
            // Acquire: pairs with the agent's Release of READY (the commit flags read next are its).
            let raw = self.load32(slot, W32::State, Ordering::Acquire) as i32;
            if raw != GHOST_TXN_READY {
                return Err(ClaimError::NotReady(TxnState::from_raw(raw)));
            }
            // The flags word's only read (Relaxed, ordered after the Acquire load above).
            let word = self.load32(slot, W32::Flags, Ordering::Relaxed);
            let (_, commit_flags, _) = unpack_flags(word);
            let commit_flags = CommitFlags::from_bits_retain(commit_flags);
            if !at.admits(commit_flags) {
                return Err(ClaimError::WrongCommitPoint(commit_flags));
            }
            flags_word = Some(word);
        }
        self.cas_claim(slot, claimer, target).map_err(|s| match s {
            // READY but held: the agent re-published READY over a claim still in flight.
            TxnState::Ready => ClaimError::AlreadyClaimed,
            s => ClaimError::NotReady(s),
        })?;
        Ok(flags_word)
    }

    /// The claim: takes the kernel-private hold on `target`, then CAS READY → `claimer`; the state found
    /// otherwise (READY if the hold was taken by a claim still in flight).
    pub(super) fn cas_claim(&self, slot: Slot, claimer: u32, target: u32) -> Result<(), TxnState> {
        let bit = 1u64 << (target % 64);
        // `target < ncpus <= MAX_CPUS` (slot() succeeded), so the word exists.
        let Some(held) = self.held.get(target as usize / 64) else {
            return Err(TxnState::Invalid(target as i32));
        };
        // Acquire: pairs with the Release clear in `ClaimedTxn`'s Drop (the previous claim is finished, its final
        // state store happens before our claim CAS, so it cannot land over our claim even if a hostile agent
        // re-published READY meanwhile); at most one claim of a CPU's transaction is in flight, whatever the
        // agent writes into `state`. Not AcqRel: nothing before a claim needs publishing to the next claimer.
        if held.fetch_or(bit, Ordering::Acquire) & bit != 0 {
            return Err(TxnState::from_raw(self.load32(slot, W32::State, Ordering::Relaxed) as i32));
        }
        // Acquire: pairs with the agent's Release store of READY in `OpenTxn::commit`, so the snapshot taken
        // next sees every field the agent filled before publishing.
        match self.cas32(slot, W32::State, GHOST_TXN_READY as u32, claimer, Ordering::Acquire, Ordering::Relaxed) {
            Ok(_) => Ok(()),
            Err(cur) => {
                self.release_hold(target);
                Err(TxnState::from_raw(cur as i32))
            }
        }
    }

    /// Drops the kernel-private hold on `target`'s transaction.
    pub(super) fn release_hold(&self, target: u32) {
        if let Some(held) = self.held.get(target as usize / 64) {
            // Release: pairs with the AcqRel fetch_or of the next claim; the final state was stored before.
            held.fetch_and(!(1u64 << (target % 64)), Ordering::Release);
        }
    }

    /// Reads the snapshot of a transaction this CPU has just claimed: each word exactly once, Relaxed (ordered
    /// after the claim's Acquire CAS), except the flags word when the claim already read it (`flags`: a kernel
    /// commit point decided admission on that read, and the snapshot keeps it rather than reading again).
    pub(super) fn claimed(
        &self,
        slot: Slot,
        claimer: u32,
        target: u32,
        at: CommitPoint,
        flags: Option<u32>,
    ) -> ClaimedTxn<'_, M> {
        let state = self.load32(slot, W32::State, Ordering::Relaxed) as i32;
        let version = self.load32(slot, W32::Version, Ordering::Relaxed) as i32;
        let cpu = self.load32(slot, W32::Cpu, Ordering::Relaxed) as i32;
        let agent_barrier = self.load32(slot, W32::AgentBarrier, Ordering::Relaxed);
        let task_barrier = self.load32(slot, W32::TaskBarrier, Ordering::Relaxed);
        let flags = match flags {
            Some(word) => word,
            None => self.load32(slot, W32::Flags, Ordering::Relaxed),
        };
        let (run_flags, commit_flags, unused) = unpack_flags(flags);
        let gtid = Gtid(self.load64(slot, W64::Gtid, Ordering::Relaxed) as i64);
        let snap = TxnSnapshot {
            state,
            version,
            cpu,
            agent_barrier,
            task_barrier,
            run_flags: RunFlags::from_bits_retain(run_flags),
            commit_flags: CommitFlags::from_bits_retain(commit_flags),
            unused,
            gtid,
        };
        ClaimedTxn { region: self, slot, claimer, target, at, snap }
    }
}

impl<M: SharedMem> Drop for ClaimedTxn<'_, M> {
    fn drop(&mut self) {
        // After `finish` stored the final state (or if the claim is abandoned): the transaction may be
        // claimed again once the agent re-opens it.
        self.region.release_hold(self.target);
    }
}

impl<M: SharedMem> ClaimedTxn<'_, M> {
    /// The read-once copy of the transaction.
    pub fn snapshot(&self) -> &TxnSnapshot {
        &self.snap
    }

    /// The claiming CPU (which must finish it).
    pub fn claimer(&self) -> u32 {
        self.claimer
    }

    /// The target CPU (whose transaction it is).
    pub fn target(&self) -> u32 {
        self.target
    }

    /// Where it was claimed.
    pub fn commit_point(&self) -> CommitPoint {
        self.at
    }

    /// [`validate`]s the snapshot.
    pub fn validate<V: KernelView + ?Sized>(&self, view: &V) -> Result<Validated, TxnOutcome> {
        validate(&self.snap, self.claimer, self.target, self.at, view)
    }

    /// Validates and finishes: on success the kernel's [`latch`](KernelView::latch) and, unless the target
    /// already ran there or `ELIDE_AGENT_BARRIER_INC` is set, an agent-barrier bump; on failure a bump if
    /// `INC_AGENT_BARRIER_ON_FAILURE` is set (in valid commit flags); then the outcome is published.
    pub fn commit<V: KernelView + ?Sized>(self, view: &V) -> CommitResult {
        match self.validate(view) {
            Ok(v) => {
                let seqnum = view.latch(self.target, &self.snap, v.already_on_cpu);
                let bump = !v.already_on_cpu && !self.snap.commit_flags.contains(CommitFlags::ELIDE_AGENT_BARRIER_INC);
                self.finish(TxnOutcome::Complete, Some(seqnum), bump, view)
            }
            Err(outcome) => {
                let bump = bump_on_failure(&self.snap);
                self.finish(outcome, None, bump, view)
            }
        }
    }

    /// Finishes with a failure chosen by the kernel (e.g. `NO_AGENT` when the agent leaves the CPU, or
    /// `POISONED`), bumping the agent barrier as [`commit`](ClaimedTxn::commit) does on failure. A
    /// success (`Complete`) is refused and the claimed transaction handed back: success needs validation.
    pub fn fail<V: KernelView + ?Sized>(self, outcome: TxnOutcome, view: &V) -> Result<CommitResult, Self> {
        if outcome.is_success() {
            return Err(self);
        }
        let bump = bump_on_failure(&self.snap);
        Ok(self.finish(outcome, None, bump, view))
    }

    /// Publishes the final state: agent-barrier bump (kernel state), `commit_time`, `cpu_seqnum`, then the
    /// state with Release.
    fn finish<V: KernelView + ?Sized>(
        self,
        outcome: TxnOutcome,
        cpu_seqnum: Option<u64>,
        bump: bool,
        view: &V,
    ) -> CommitResult {
        if bump {
            view.bump_agent_barrier(self.target);
        }
        let commit_time = view.now_ns();
        let (r, s) = (self.region, self.slot);
        // Relaxed: published by the Release store of the state below.
        r.store64(s, W64::CommitTime, commit_time as u64, Ordering::Relaxed);
        if let Some(seq) = cpu_seqnum {
            r.store64(s, W64::CpuSeqnum, seq, Ordering::Relaxed);
        }
        // Release (PUBLISH_FINAL): pairs with the agent's Acquire load of `state` in `PendingTxn::poll` /
        // `AgentTxn::open`, which then sees commit_time and cpu_seqnum.
        r.store32(s, W32::State, outcome.raw() as u32, PUBLISH_FINAL);
        CommitResult { cpu: self.target, outcome, agent_barrier_bumped: bump, commit_time, cpu_seqnum }
    }
}
