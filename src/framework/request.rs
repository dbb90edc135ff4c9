//! Run requests: what a policy asks the kernel to run where, with the ABI's options, and typed outcomes.

use crate::abi::{CommitFlags, Gtid, RunFlags, TxnOutcome};
use crate::txn::Busy;

/// What to run on the CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// This task.
    Task(Gtid),
    /// The idle task (`GHOST_IDLE_GTID`): the CPU idles even if ghOSt tasks are runnable, e.g. to keep a
    /// sibling hyperthread quiet. The task that ran there is preempted (`TASK_PREEMPT`).
    Idle,
    /// Nothing (`GHOST_NULL_GTID`, "unschedule"): the ghOSt task running there is forced off the CPU
    /// (`TASK_PREEMPT`) and the CPU goes to whatever the kernel picks next (another class, or idle).
    Unschedule,
}

impl Target {
    /// The gtid that goes into the transaction.
    pub fn gtid(self) -> Gtid {
        match self {
            Target::Task(g) => g,
            Target::Idle => Gtid::IDLE,
            Target::Unschedule => Gtid::NULL,
        }
    }
}

/// When the kernel commits the transaction (the `COMMIT_AT_*` bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CommitAt {
    /// In the commit call itself, by the calling CPU (`COMMIT_AT_TXN_COMMIT`; the default, as in
    /// ghost-userspace's `RunRequest`).
    #[default]
    Now,
    /// By the target CPU in its scheduler (`COMMIT_AT_SCHEDULE`), e.g. at its next tick or reschedule.
    Schedule,
    /// Greedy (no bit): at whichever commit point comes first, the caller's ioctl only for its own CPU.
    Greedy,
}

/// A decision for one CPU, built fluently: `RunRequest::task(cpu, g).allow_task_on_cpu()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunRequest {
    /// The CPU the decision is for.
    pub cpu: u32,
    /// What to run there.
    pub target: Target,
    /// The task barrier to commit with; `None`: the framework fills in the task's latest seqnum.
    pub task_barrier: Option<u32>,
    /// Run flags (`RTLA_ON_*`, `SEND_TASK_ON_CPU`, `DO_NOT_PREEMPT`, …).
    pub run_flags: RunFlags,
    /// Commit flags besides the commit point (`ALLOW_TASK_ONCPU`, `ELIDE_AGENT_BARRIER_INC`, …).
    pub commit_flags: CommitFlags,
    /// The commit point.
    pub commit_at: CommitAt,
    /// Report a stale refusal to the policy ([`Policy::run_failed`](super::Policy::run_failed)) instead of
    /// letting the framework retry it with the newer barrier.
    pub see_stale: bool,
}

impl RunRequest {
    fn new(cpu: u32, target: Target) -> Self {
        RunRequest {
            cpu,
            target,
            task_barrier: None,
            run_flags: RunFlags::empty(),
            commit_flags: CommitFlags::empty(),
            commit_at: CommitAt::Now,
            see_stale: false,
        }
    }
    /// Run task `g` on `cpu` (preempting whatever ghOSt task runs there).
    pub fn task(cpu: u32, g: Gtid) -> Self {
        RunRequest::new(cpu, Target::Task(g))
    }
    /// Run the idle task on `cpu`.
    pub fn idle(cpu: u32) -> Self {
        RunRequest::new(cpu, Target::Idle)
    }
    /// Take the ghOSt task on `cpu` off it and run nothing.
    pub fn unschedule(cpu: u32) -> Self {
        RunRequest::new(cpu, Target::Unschedule)
    }
    /// Commit with this task barrier instead of the task's latest seqnum.
    pub fn task_barrier(mut self, b: u32) -> Self {
        self.task_barrier = Some(b);
        self
    }
    /// Adds run flags.
    pub fn run_flags(mut self, f: RunFlags) -> Self {
        self.run_flags |= f;
        self
    }
    /// Adds commit flags (the commit point is set with [`commit_at`](RunRequest::commit_at)).
    pub fn commit_flags(mut self, f: CommitFlags) -> Self {
        self.commit_flags |= f.difference(CommitFlags::COMMIT_AT_SCHEDULE | CommitFlags::COMMIT_AT_TXN_COMMIT);
        self
    }
    /// `ALLOW_TASK_ONCPU`: succeed (refreshing the run flags) if the task already runs on that CPU.
    pub fn allow_task_on_cpu(self) -> Self {
        self.commit_flags(CommitFlags::ALLOW_TASK_ONCPU)
    }
    /// The commit point.
    pub fn commit_at(mut self, at: CommitAt) -> Self {
        self.commit_at = at;
        self
    }
    /// See stale refusals instead of having them retried.
    pub fn see_stale(mut self) -> Self {
        self.see_stale = true;
        self
    }
    /// The commit flags that go into the transaction.
    pub fn txn_commit_flags(&self) -> CommitFlags {
        self.commit_flags
            | match self.commit_at {
                CommitAt::Now => CommitFlags::COMMIT_AT_TXN_COMMIT,
                CommitAt::Schedule => CommitFlags::COMMIT_AT_SCHEDULE,
                CommitAt::Greedy => CommitFlags::empty(),
            }
    }
    /// The task it runs, if any.
    pub fn gtid(&self) -> Option<Gtid> {
        match self.target {
            Target::Task(g) => Some(g),
            _ => None,
        }
    }
}

/// Why a run request did not take effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunError {
    /// The kernel refused it with this final state (e.g. `TargetStale`, `TargetNotRunnable`, `CpuUnavail`,
    /// `Poisoned` for a member of a failed sync group).
    Refused(TxnOutcome),
    /// The CPU's previous transaction is not final yet, or another sync group owns it.
    Busy(Busy),
    /// The kernel wrote a value into the transaction that is no state; the transaction is lost.
    Corrupt,
    /// No outcome came within the spin budget (a commit point later than the ioctl): it may still commit;
    /// the task's next message says.
    Pending,
}

impl RunError {
    /// `TARGET_STALE` or `AGENT_STALE`: newer messages were in flight.
    pub fn is_stale(&self) -> bool {
        matches!(self, RunError::Refused(TxnOutcome::TargetStale | TxnOutcome::AgentStale))
    }
}

/// A request that failed, handed to [`Policy::run_failed`](super::Policy::run_failed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failure {
    /// The request.
    pub request: RunRequest,
    /// Why.
    pub error: RunError,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_sets_the_abi_fields() {
        let r = RunRequest::task(3, Gtid(9)).allow_task_on_cpu().run_flags(RunFlags::SEND_TASK_ON_CPU);
        assert_eq!(r.txn_commit_flags(), CommitFlags::ALLOW_TASK_ONCPU | CommitFlags::COMMIT_AT_TXN_COMMIT);
        assert_eq!((r.cpu, r.gtid(), r.target.gtid()), (3, Some(Gtid(9)), Gtid(9)));
        let r = RunRequest::idle(1).commit_at(CommitAt::Schedule).commit_flags(CommitFlags::COMMIT_AT_TXN_COMMIT);
        assert_eq!(r.txn_commit_flags(), CommitFlags::COMMIT_AT_SCHEDULE, "the commit point is set only by commit_at");
        assert_eq!((r.target.gtid(), r.gtid()), (Gtid::IDLE, None));
        assert_eq!(RunRequest::unschedule(0).commit_at(CommitAt::Greedy).txn_commit_flags(), CommitFlags::empty());
        assert_eq!(RunRequest::unschedule(0).target.gtid(), Gtid::NULL);
        assert!(RunError::Refused(TxnOutcome::AgentStale).is_stale());
        assert!(!RunError::Refused(TxnOutcome::TargetOnCpu).is_stale());
    }
}
