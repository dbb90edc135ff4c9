//! Agent side: open, fill, publish, abort, and read the outcome of a transaction; sync-group ownership.
//!
//! The handles follow the state machine, so the borrow checker rejects reopening an uncommitted transaction:
//! [`AgentTxn::open`] borrows the handle mutably for as long as the [`OpenTxn`] and then the [`PendingTxn`]
//! live, and refuses (with [`Busy`]) while the shared `state` says the previous transaction is not final.

use super::{pack_flags, BadCpu, CpuData, Slot, NO_OWNER, PUBLISH_READY, W32, W64};
use crate::abi::{CommitFlags, Gtid, RunFlags, TxnOutcome, TxnState, GHOST_TXN_ABORTED, GHOST_TXN_READY};
use crate::shm::SharedMem;
use core::sync::atomic::Ordering;

/// Why a transaction cannot be opened now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Busy {
    /// The previous transaction is not final yet: READY or claimed by a CPU.
    Pending(TxnState),
    /// Another sync group owns the transaction (its `sync_group_owner`).
    Owned(i32),
}

impl core::fmt::Display for Busy {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Busy::Pending(s) => write!(f, "transaction not committed yet ({s:?})"),
            Busy::Owned(o) => write!(f, "transaction owned by sync group {o}"),
        }
    }
}

/// The `state` word holds a value the kernel never writes: a negative value that is no final state, or a
/// claim by a CPU outside the region. The raw value is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Corrupt(pub i32);

impl core::fmt::Display for Corrupt {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "corrupt transaction state {:#x}", self.0)
    }
}

/// Why [`PendingTxn::wait`] returned without an outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitError {
    /// No final state within the spin budget; the transaction is still pending.
    TimedOut,
    /// The state word is corrupt.
    Corrupt(Corrupt),
}

/// Why sync-group ownership could not be taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnError {
    /// Owner ids are non-negative (−1 means "not owned").
    InvalidOwner(i32),
    /// Another owner holds the transaction.
    OwnedBy(i32),
}

/// The final state of a transaction, as the agent reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// The final state.
    pub outcome: TxnOutcome,
    /// `commit_time`: CLOCK_MONOTONIC ns when the kernel finished it (for [`TxnOutcome::Aborted`], whatever
    /// the previous transaction left there: aborts do not write it).
    pub commit_time: i64,
    /// `cpu_seqnum` of the target runqueue, on success only.
    pub cpu_seqnum: Option<u64>,
}

impl Outcome {
    /// Whether the commit succeeded.
    pub fn is_success(&self) -> bool {
        self.outcome.is_success()
    }
}

/// The agent's handle on one CPU's transaction (from [`CpuData::agent`]).
///
/// Several handles for the same CPU can exist; the protocol (like ghOSt's) relies on the agent to let one
/// thread at a time use a transaction. Sync groups use [`try_own`](AgentTxn::try_own) first.
///
/// A handle cannot reopen while its transaction is open or pending:
///
/// ```compile_fail
/// # use ghost_shm::{shm::OwnedRegion, txn::CpuData};
/// let cpu_data = CpuData::new(OwnedRegion::new(4096), 1).unwrap();
/// cpu_data.init_txn(0).unwrap();
/// let mut txn = cpu_data.agent(0).unwrap();
/// let pending = txn.open().unwrap().commit();
/// let again = txn.open(); // error: `txn` is still borrowed by `pending`
/// let _ = pending.poll();
/// ```
///
/// Once the pending transaction is gone, `open` checks the shared state instead:
///
/// ```
/// # use ghost_shm::{abi::TxnState, shm::OwnedRegion, txn::{Busy, CpuData}};
/// let cpu_data = CpuData::new(OwnedRegion::new(4096), 1).unwrap();
/// cpu_data.init_txn(0).unwrap();
/// let mut txn = cpu_data.agent(0).unwrap();
/// let pending = txn.open().unwrap().commit();
/// let _ = pending.poll();
/// drop(pending);
/// assert_eq!(txn.open().unwrap_err(), Busy::Pending(TxnState::Ready));
/// ```
#[derive(Debug)]
pub struct AgentTxn<'r, M: SharedMem> {
    region: &'r CpuData<M>,
    cpu: u32,
    slot: Slot,
    owner: Option<i32>,
}

impl<M: SharedMem> CpuData<M> {
    /// The agent's handle on `cpu`'s transaction.
    pub fn agent(&self, cpu: u32) -> Result<AgentTxn<'_, M>, BadCpu> {
        Ok(AgentTxn { region: self, cpu, slot: self.slot(cpu)?, owner: None })
    }
}

/// Reads the outcome after an Acquire load (or CAS) saw the final state `raw` (< 0).
fn read_outcome<M: SharedMem>(region: &CpuData<M>, slot: Slot, raw: i32) -> Result<Outcome, Corrupt> {
    let outcome = TxnOutcome::from_raw(raw).ok_or(Corrupt(raw))?;
    // Relaxed: ordered after the caller's Acquire of the final state, which pairs with the kernel's Release
    // store of it; the kernel stored these two before that Release.
    let commit_time = region.load64(slot, W64::CommitTime, Ordering::Relaxed) as i64;
    let cpu_seqnum =
        if outcome.is_success() { Some(region.load64(slot, W64::CpuSeqnum, Ordering::Relaxed)) } else { None };
    Ok(Outcome { outcome, commit_time, cpu_seqnum })
}

/// Decodes a state word seen by the agent: `Ok(None)` while READY or claimed by a CPU of the region.
fn decode<M: SharedMem>(region: &CpuData<M>, slot: Slot, raw: i32) -> Result<Option<Outcome>, Corrupt> {
    if raw < 0 {
        read_outcome(region, slot, raw).map(Some)
    } else if raw == GHOST_TXN_READY || (raw as u32) < region.ncpus {
        Ok(None)
    } else {
        Err(Corrupt(raw))
    }
}

impl<'r, M: SharedMem> AgentTxn<'r, M> {
    /// The CPU whose transaction this is.
    pub fn cpu(&self) -> u32 {
        self.cpu
    }

    /// The sync-group owner id this handle took with [`try_own`](AgentTxn::try_own), if any (the kernel
    /// may since have released it after a successful group commit).
    pub fn owner(&self) -> Option<i32> {
        self.owner
    }

    /// Takes sync-group ownership: CAS `sync_group_owner` −1 → `owner` (Acquire: pairs with the kernel's
    /// Release of −1 after a successful group, or with the previous owner's Release in
    /// [`disown`](AgentTxn::disown), like taking a lock). Succeeds also if `owner` already holds it. Do this
    /// before [`open`](AgentTxn::open).
    pub fn try_own(&mut self, owner: i32) -> Result<(), OwnError> {
        if owner < 0 {
            return Err(OwnError::InvalidOwner(owner));
        }
        match self.region.cas32(
            self.slot,
            W32::Owner,
            NO_OWNER as u32,
            owner as u32,
            // Acquire, not AcqRel: taking ownership publishes nothing. The kernel never reads the owner, and
            // whoever reads this handle's id (another owner's `open`/`try_own`) only learns that it is taken.
            Ordering::Acquire,
            // Acquire on failure too: `Err(cur == owner)` below is a success (another handle of the same owner
            // took it, e.g. after the previous owner's release) and acquires like one, through the release
            // sequence that the other handle's CAS continues.
            Ordering::Acquire,
        ) {
            Ok(_) => {
                self.owner = Some(owner);
                Ok(())
            }
            Err(cur) if cur as i32 == owner => {
                self.owner = Some(owner);
                Ok(())
            }
            Err(cur) => Err(OwnError::OwnedBy(cur as i32)),
        }
    }

    /// [`try_own`](AgentTxn::try_own), retried up to `max_spins` more times while another owner holds it.
    pub fn own(&mut self, owner: i32, max_spins: u32) -> Result<(), OwnError> {
        let mut spins = 0;
        loop {
            match self.try_own(owner) {
                Err(OwnError::OwnedBy(_)) if spins < max_spins => {
                    spins += 1;
                    self.region.mem.spin_hint();
                }
                r => return r,
            }
        }
    }

    /// Releases sync-group ownership taken by this handle: CAS `owner` → −1 (Release, pairing with the next
    /// owner's Acquire CAS). Returns whether it was still held (false when the kernel already released it
    /// after a successful group commit, or nothing was owned).
    pub fn disown(&mut self) -> bool {
        match self.owner.take() {
            Some(o) => {
                self.region.cas32(
                    self.slot,
                    W32::Owner,
                    o as u32,
                    NO_OWNER as u32,
                    Ordering::Release,
                    Ordering::Relaxed,
                ) == Ok(o as u32)
            }
            None => false,
        }
    }

    /// The current state (Relaxed: an observation. Everything that reads what a state publishes, such as
    /// [`last_outcome`](AgentTxn::last_outcome), [`open`](AgentTxn::open) and `abort`, loads the state again
    /// with Acquire).
    pub fn state(&self) -> TxnState {
        // Relaxed: read-read coherence makes every later Acquire load of the state (in `last_outcome`, `open`,
        // `abort`) read this store or a later one, and every store of the state is a Release store or an RMW in
        // the release sequence of one; so that load synchronises by itself and nothing needs this one to.
        TxnState::from_raw(self.region.load32(self.slot, W32::State, Ordering::Relaxed) as i32)
    }

    /// The outcome of the last transaction if it is final, `Ok(None)` while it is READY or claimed.
    pub fn last_outcome(&self) -> Result<Option<Outcome>, Corrupt> {
        // Acquire: pairs with the kernel's Release store of the final state.
        let raw = self.region.load32(self.slot, W32::State, Ordering::Acquire) as i32;
        decode(self.region, self.slot, raw)
    }

    /// Opens a new transaction, which is only possible once the previous one is final (`state` < 0) and no
    /// other sync group owns it (`sync_group_owner` is −1 or this handle's owner).
    pub fn open(&mut self) -> Result<OpenTxn<'_, 'r, M>, Busy> {
        // Acquire: pairs with the kernel's Release of −1 (group success) and other owners' Release.
        let owner = self.region.load32(self.slot, W32::Owner, Ordering::Acquire) as i32;
        if owner != NO_OWNER && Some(owner) != self.owner {
            return Err(Busy::Owned(owner));
        }
        // Acquire: pairs with the kernel's Release of the final state (and `init_txn`'s), so the kernel's reads
        // of the previous transaction happen before the stores that fill the next one. Without it, the kernel's
        // snapshot loads could read the next transaction's fields (load buffering: C++ allows it, ARMv8 does
        // not forbid it). loom does not model load buffering, so this ordering survives the ordering mutants;
        // allow-listed in scripts/ordering-mutants.sh by this argument.
        let raw = self.region.load32(self.slot, W32::State, Ordering::Acquire) as i32;
        if raw >= 0 {
            return Err(Busy::Pending(TxnState::from_raw(raw)));
        }
        Ok(OpenTxn {
            txn: self,
            gtid: Gtid::NULL,
            agent_barrier: 0,
            task_barrier: 0,
            run_flags: RunFlags::empty(),
            commit_flags: CommitFlags::empty(),
        })
    }
}

/// An open transaction being filled; nothing is visible to the kernel until [`commit`](OpenTxn::commit).
/// Dropping it leaves the previous (final) transaction in place.
#[must_use = "an open transaction does nothing until committed"]
#[derive(Debug)]
pub struct OpenTxn<'t, 'r, M: SharedMem> {
    txn: &'t mut AgentTxn<'r, M>,
    gtid: Gtid,
    agent_barrier: u32,
    task_barrier: u32,
    run_flags: RunFlags,
    commit_flags: CommitFlags,
}

impl<'t, 'r, M: SharedMem> OpenTxn<'t, 'r, M> {
    /// The task (or special gtid) to run; default [`Gtid::NULL`].
    pub fn target(mut self, gtid: Gtid) -> Self {
        self.gtid = gtid;
        self
    }

    /// The agent barrier the agent has seen; default 0.
    pub fn agent_barrier(mut self, barrier: u32) -> Self {
        self.agent_barrier = barrier;
        self
    }

    /// The task barrier: the seqnum of the last consumed message of the target; default 0.
    pub fn task_barrier(mut self, barrier: u32) -> Self {
        self.task_barrier = barrier;
        self
    }

    /// Run flags; default empty.
    pub fn run_flags(mut self, flags: RunFlags) -> Self {
        self.run_flags = flags;
        self
    }

    /// Commit flags; default empty (greedy).
    pub fn commit_flags(mut self, flags: CommitFlags) -> Self {
        self.commit_flags = flags;
        self
    }

    /// Whether the kernel will accept the flags for this target (§2.5/§2.6); [`commit`](OpenTxn::commit)
    /// publishes them either way, and the kernel answers invalid ones with `INVALID_FLAGS`.
    pub fn flags_valid(&self) -> bool {
        super::run_flags_valid(self.gtid, self.run_flags) && super::commit_flags_valid(self.commit_flags)
    }

    /// Publishes the transaction: Relaxed stores of the fields, then `state` = READY with Release (pairs with
    /// the kernel's Acquire claim CAS in `CpuData::claim`, so the kernel's snapshot sees these fields).
    pub fn commit(self) -> PendingTxn<'t, 'r, M> {
        let (r, s) = (self.txn.region, self.txn.slot);
        r.store64(s, W64::Gtid, self.gtid.0 as u64, Ordering::Relaxed);
        r.store32(s, W32::AgentBarrier, self.agent_barrier, Ordering::Relaxed);
        r.store32(s, W32::TaskBarrier, self.task_barrier, Ordering::Relaxed);
        r.store32(s, W32::Flags, pack_flags(self.run_flags.bits(), self.commit_flags.bits(), 0), Ordering::Relaxed);
        // Release (PUBLISH_READY): pairs with the Acquire claim CAS / ready check in `CpuData::claim`.
        r.store32(s, W32::State, GHOST_TXN_READY as u32, PUBLISH_READY);
        PendingTxn { txn: self.txn }
    }
}

/// A published transaction: READY or claimed, until the kernel writes its final state.
#[must_use = "a pending transaction's outcome should be read (poll, wait) or the transaction aborted"]
#[derive(Debug)]
pub struct PendingTxn<'t, 'r, M: SharedMem> {
    txn: &'t mut AgentTxn<'r, M>,
}

/// What [`PendingTxn::abort`] achieved.
#[derive(Debug)]
pub enum AbortResult<'t, 'r, M: SharedMem> {
    /// The abort won: the state is ABORTED (and this handle's sync-group ownership was released).
    Aborted,
    /// Too late: the kernel already finished it with this outcome.
    Committed(Outcome),
    /// Too late: a kernel CPU has claimed it; its outcome follows.
    Claimed(PendingTxn<'t, 'r, M>),
}

impl<'t, 'r, M: SharedMem> PendingTxn<'t, 'r, M> {
    /// The CPU whose transaction this is.
    pub fn cpu(&self) -> u32 {
        self.txn.cpu
    }

    /// The current state (Acquire, pairing with the kernel's Release of the final state).
    pub fn state(&self) -> TxnState {
        self.txn.state()
    }

    /// The outcome if the kernel has finished the transaction, `Ok(None)` while READY or claimed.
    pub fn poll(&self) -> Result<Option<Outcome>, Corrupt> {
        self.txn.last_outcome()
    }

    /// Polls up to `max_spins + 1` times, with [`POLL_BACKOFF`](crate::shm::POLL_BACKOFF) spin hints of the
    /// backend in between.
    pub fn wait(&self, max_spins: u32) -> Result<Outcome, WaitError> {
        let mut spins = 0;
        loop {
            match self.poll() {
                Ok(Some(o)) => return Ok(o),
                Ok(None) if spins < max_spins => {
                    spins += 1;
                    for _ in 0..crate::shm::POLL_BACKOFF {
                        self.txn.region.mem.spin_hint();
                    }
                }
                Ok(None) => return Err(WaitError::TimedOut),
                Err(c) => return Err(WaitError::Corrupt(c)),
            }
        }
    }

    /// Aborts the transaction if no kernel CPU has claimed it: CAS READY → ABORTED (Relaxed on success,
    /// Acquire on failure, pairing with the kernel's Release of a final state). If the abort wins and this
    /// handle owns the sync group, ownership is released (§5.1).
    pub fn abort(self) -> Result<AbortResult<'t, 'r, M>, Corrupt> {
        let (r, s) = (self.txn.region, self.txn.slot);
        match r.cas32(
            s,
            W32::State,
            GHOST_TXN_READY as u32,
            GHOST_TXN_ABORTED as u32,
            // Relaxed on success: ABORTED publishes nothing new. The kernel that reads it claims nothing and
            // reads no field; and as an RMW this CAS continues the release sequence of our READY store, so an
            // agent thread that acquires ABORTED still synchronises with everything written before READY.
            Ordering::Relaxed,
            // Acquire on failure: pairs with the kernel's Release of the final state, whose outcome fields
            // `decode` reads next.
            Ordering::Acquire,
        ) {
            Ok(_) => {
                self.txn.disown();
                Ok(AbortResult::Aborted)
            }
            Err(cur) => match decode(r, s, cur as i32)? {
                Some(o) => Ok(AbortResult::Committed(o)),
                None => Ok(AbortResult::Claimed(self)),
            },
        }
    }
}
