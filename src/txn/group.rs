//! Sync-group commit (§5.5, `GHOST_IOC_SYNC_GROUP_TXN`): all members commit, or the group reports failure.
//!
//! Members are a CPU bitmap of `u64` words, bit `c % 64` of word `c / 64` for CPU `c` (the layout of a Linux
//! cpumask on a 64-bit little-endian machine), which the kernel copied from the caller:
//!
//! 1. claim every member (ioctl commit point); a member that cannot be claimed fails the group and is
//!    removed from the bitmap, so it is never touched again;
//! 2. in CPU order starting after the caller (the caller's own transaction last): validate and commit each
//!    claimed member until one fails; every member after the first failure is finished as `POISONED`;
//! 3. on success only, `sync_group_owner` = −1 (Release) for every member; on failure the agent keeps
//!    ownership and releases it after inspecting the outcomes.
//!
//! Members that committed before a failure keep `COMPLETE` (the kernel forces them off through its
//! rendezvous, which it drives from [`GroupResult`] and the per-member [`CommitResult`]s).

use super::{BadCpu, CommitPoint, CommitResult, CpuData, KernelView, NO_OWNER, PUBLISH_OWNER, W32};
use crate::abi::{TxnOutcome, TxnState};
use crate::shm::SharedMem;

/// A group the kernel refused before touching any transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupError {
    /// The calling CPU is outside the region.
    CallerOutOfRange(u32),
    /// The bitmap names a CPU outside the region (the lowest such CPU).
    CpuOutOfRange(u32),
    /// The bitmap is empty.
    Empty,
}

impl core::fmt::Display for GroupError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            GroupError::CallerOutOfRange(c) => write!(f, "calling CPU {c} is outside the cpu_data region"),
            GroupError::CpuOutOfRange(c) => write!(f, "member CPU {c} is outside the cpu_data region"),
            GroupError::Empty => f.write_str("empty sync group"),
        }
    }
}

/// The first failure of a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupFailure {
    /// A member's transaction could not be claimed (it was not READY); it was left untouched.
    Claim {
        /// The member CPU.
        cpu: u32,
        /// Its state at the claim.
        state: TxnState,
    },
    /// A member's commit failed with this outcome.
    Commit {
        /// The member CPU.
        cpu: u32,
        /// Its final state.
        outcome: TxnOutcome,
    },
}

/// The result of a sync-group commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupResult {
    /// Every member committed (`GHOST_IOC_SYNC_GROUP_TXN` returns 1); owners were released.
    pub committed: bool,
    /// Members in the bitmap.
    pub members: u32,
    /// Members claimed (and finished: `COMPLETE`, a failure or `POISONED`).
    pub claimed: u32,
    /// The first failure, if any.
    pub failure: Option<GroupFailure>,
}

/// The lowest set bit in `from..end` of `words`.
fn next_set(words: &[u64], from: u32, end: u32) -> Option<u32> {
    let mut i = from;
    while i < end {
        let w = (i / 64) as usize;
        let word = *words.get(w)? >> (i % 64);
        if word != 0 {
            let c = i.wrapping_add(word.trailing_zeros()); // i < end and the bit is in i's word
            return (c < end).then_some(c);
        }
        // `end` <= ncpus < i32::MAX, so this does not overflow.
        i = (w as u32).wrapping_add(1).wrapping_mul(64);
    }
    None
}

/// Set bits of `0..n` in the order `start..n`, then `0..start`.
pub(super) struct Wrap {
    start: u32,
    n: u32,
    pos: u32,
    wrapped: bool,
}

impl Wrap {
    pub(super) fn new(start: u32, n: u32) -> Wrap {
        Wrap { start, n, pos: start, wrapped: false }
    }

    pub(super) fn next(&mut self, words: &[u64]) -> Option<u32> {
        if !self.wrapped {
            if let Some(c) = next_set(words, self.pos, self.n) {
                self.pos = c.wrapping_add(1); // c < ncpus <= MAX_CPUS: cannot wrap
                return Some(c);
            }
            self.wrapped = true;
            self.pos = 0;
        }
        let c = next_set(words, self.pos, self.start)?;
        self.pos = c.wrapping_add(1); // c < ncpus <= MAX_CPUS: cannot wrap
        Some(c)
    }
}

fn clear(words: &mut [u64], cpu: u32) {
    if let Some(w) = words.get_mut((cpu / 64) as usize) {
        *w &= !(1u64 << (cpu % 64));
    }
}

impl<M: SharedMem> CpuData<M> {
    /// Commits the transactions of the CPUs in `members` as one sync group on behalf of the agent calling
    /// from CPU `caller` (§5.5). On return `members` holds the members that were claimed (and finished).
    /// `report` sees each finished member's [`CommitResult`], in commit order.
    ///
    /// The bitmap is checked first (every bit below the CPU count, at least one bit): a bad bitmap is refused
    /// without touching any transaction. Work is bounded by the CPU count; every member is claimed at most
    /// once and validated from its read-once snapshot.
    pub fn commit_group<V: KernelView + ?Sized>(
        &self,
        caller: u32,
        members: &mut [u64],
        view: &V,
        mut report: impl FnMut(&CommitResult),
    ) -> Result<GroupResult, GroupError> {
        if caller >= self.ncpus {
            return Err(GroupError::CallerOutOfRange(caller));
        }
        let n = self.ncpus;
        let mut any = false;
        for (i, &w) in members.iter().enumerate() {
            // Saturating: a bitmap of absurd length (hostile) cannot make these wrap.
            let base = (i as u64).saturating_mul(64);
            let valid = if base.saturating_add(64) <= n as u64 {
                u64::MAX
            } else if base >= n as u64 {
                0
            } else {
                // 0 < n - base < 64 here.
                1u64.wrapping_shl((n as u64).wrapping_sub(base) as u32).wrapping_sub(1)
            };
            let bad = w & !valid;
            if bad != 0 {
                return Err(GroupError::CpuOutOfRange(base.saturating_add(bad.trailing_zeros() as u64) as u32));
            }
            any |= w != 0;
        }
        if !any {
            return Err(GroupError::Empty);
        }

        // Phase 1: claim all members, in CPU order. The counters are bounded by ncpus (each CPU is visited
        // once), so the wrapping increments below never wrap.
        let (mut count, mut claimed, mut failure) = (0u32, 0u32, None);
        let mut it = Wrap::new(0, n);
        while let Some(cpu) = it.next(members) {
            count = count.wrapping_add(1);
            let slot = match self.slot(cpu) {
                Ok(s) => s,
                Err(BadCpu(c)) => return Err(GroupError::CpuOutOfRange(c)), // unreachable: bits checked above
            };
            // The ioctl claims whatever the commit flags say (where = -1).
            match self.cas_claim(slot, caller, cpu) {
                Ok(()) => claimed = claimed.wrapping_add(1),
                Err(state) => {
                    clear(members, cpu);
                    failure = failure.or(Some(GroupFailure::Claim { cpu, state }));
                }
            }
        }

        // Phase 2: commit in order starting after the caller, the caller last; poison after a failure.
        let mut it = Wrap::new(caller.wrapping_add(1) % n, n); // caller < n
        while let Some(cpu) = it.next(members) {
            let Ok(slot) = self.slot(cpu) else { continue };
            let txn = self.claimed(slot, caller, cpu, CommitPoint::Ioctl, None);
            let result = if failure.is_none() {
                let r = txn.commit(view);
                if !r.outcome.is_success() {
                    failure = Some(GroupFailure::Commit { cpu, outcome: r.outcome });
                }
                r
            } else {
                match txn.fail(TxnOutcome::Poisoned, view) {
                    Ok(r) => r,
                    Err(_) => continue, // unreachable: Poisoned is a failure
                }
            };
            report(&result);
        }

        // Phase 3: on success, release every member's sync_group_owner.
        let committed = failure.is_none();
        if committed {
            let mut it = Wrap::new(0, n);
            while let Some(cpu) = it.next(members) {
                if let Ok(slot) = self.slot(cpu) {
                    // Release (PUBLISH_OWNER): pairs with the agent's Acquire of the owner (`AgentTxn::try_own`,
                    // `open`, `CpuData::sync_group_owner`): an agent seeing −1 sees every member's final state.
                    self.store32(slot, W32::Owner, NO_OWNER as u32, PUBLISH_OWNER);
                }
            }
        }
        Ok(GroupResult { committed, members: count, claimed, failure })
    }
}
