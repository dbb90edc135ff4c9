//! loom models of the transaction protocol, on the production code (`ghost_shm::txn`) over a `LoomRegion`
//! whose transaction words are all loom atomics.
//!
//! ```text
//! RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test --release --test loom_txn
//! RUSTFLAGS="--cfg loom --cfg ghost_shm_weaken" LOOM_MAX_PREEMPTIONS=2 cargo test --release --test loom_txn
//! ```
//!
//! The second command weakens the agent's Release of READY, the kernel's Release of the final state and of
//! `sync_group_owner` to Relaxed; the models marked `should_panic` under `ghost_shm_weaken` must then find a
//! stale read.
#![cfg(loom)]

use ghost_shm::abi::{CommitFlags, Gtid, RunFlags, TxnOutcome, TxnState};
use ghost_shm::shm::LoomRegion;
use ghost_shm::txn::{self, sim::SimView, AbortResult, ClaimError, CommitPoint, CpuData, GroupFailure, Outcome};
use loom::sync::Arc;
use loom::thread;

const TASK: Gtid = Gtid((9 << 41) | 1);
const STRIDE: usize = 64;

fn region(ncpus: u32) -> Arc<CpuData<LoomRegion>> {
    let cd = CpuData::with_stride(txn::loom_region(ncpus, STRIDE), ncpus, STRIDE).unwrap();
    for c in 0..ncpus {
        cd.init_txn(c).unwrap();
    }
    Arc::new(cd)
}

fn wait(p: &txn::PendingTxn<'_, '_, LoomRegion>) -> Outcome {
    loop {
        if let Some(o) = p.poll().unwrap() {
            return o;
        }
        thread::yield_now();
    }
}

/// The kernel's snapshot is exactly what the agent filled before READY, never a mix with the previous
/// contents (fails if the agent's Release of READY is weakened).
#[test]
#[cfg_attr(ghost_shm_weaken, should_panic(expected = "assertion"))]
fn weaken_commit_vs_claim_snapshot() {
    loom::model(|| {
        let cd = region(1);
        let k = {
            let cd = cd.clone();
            thread::spawn(move || match cd.claim(0, 0, CommitPoint::Greedy) {
                Ok(c) => {
                    let s = *c.snapshot();
                    assert_eq!(s.state, 0);
                    assert_eq!(s.gtid, TASK);
                    assert_eq!(s.agent_barrier, 11);
                    assert_eq!(s.task_barrier, 22);
                    assert_eq!(s.run_flags, RunFlags::RTLA_ON_BLOCKED);
                    assert_eq!(s.commit_flags, CommitFlags::ALLOW_TASK_ONCPU);
                    assert_eq!((s.version, s.cpu), (0, 0));
                    let _ = c.fail(TxnOutcome::NoAgent, &SimView::new(1));
                    true
                }
                Err(ClaimError::NotReady(_)) => false,
                Err(e) => panic!("{e}"),
            })
        };
        let mut a = cd.agent(0).unwrap();
        let p = a
            .open()
            .unwrap()
            .target(TASK)
            .agent_barrier(11)
            .task_barrier(22)
            .run_flags(RunFlags::RTLA_ON_BLOCKED)
            .commit_flags(CommitFlags::ALLOW_TASK_ONCPU)
            .commit();
        if k.join().unwrap() {
            assert_eq!(p.poll().unwrap().map(|o| o.outcome), Some(TxnOutcome::NoAgent));
        } else {
            assert_eq!(p.state(), TxnState::Ready);
        }
    });
}

/// Abort and claim race: exactly one wins, and the final state says which.
#[test]
fn abort_vs_claim() {
    loom::model(|| {
        let cd = region(1);
        let mut a = cd.agent(0).unwrap();
        let p = a.open().unwrap().commit();
        let k = {
            let cd = cd.clone();
            thread::spawn(move || match cd.claim(0, 0, CommitPoint::Ioctl) {
                Ok(c) => {
                    assert_eq!(c.commit(&SimView::new(1)).outcome, TxnOutcome::Complete);
                    true
                }
                Err(ClaimError::NotReady(s)) => {
                    assert_eq!(s, TxnState::Committed(TxnOutcome::Aborted));
                    false
                }
                Err(e) => panic!("{e}"),
            })
        };
        let aborted = match p.abort().unwrap() {
            AbortResult::Aborted => true,
            AbortResult::Committed(o) => {
                assert_eq!(o.outcome, TxnOutcome::Complete);
                false
            }
            AbortResult::Claimed(p) => {
                assert_eq!(wait(&p).outcome, TxnOutcome::Complete);
                false
            }
        };
        let claimed = k.join().unwrap();
        assert!(aborted != claimed, "aborted {aborted}, claimed {claimed}");
        let expect = if aborted { TxnOutcome::Aborted } else { TxnOutcome::Complete };
        assert_eq!(cd.state(0).unwrap(), TxnState::Committed(expect));
    });
}

/// Once the agent sees the final state, it sees the kernel's commit_time and cpu_seqnum (fails if the
/// kernel's Release of the final state is weakened).
#[test]
#[cfg_attr(ghost_shm_weaken, should_panic(expected = "assertion"))]
fn weaken_outcome_publication() {
    loom::model(|| {
        let cd = region(1);
        let mut a = cd.agent(0).unwrap();
        let p = a.open().unwrap().target(Gtid::AGENT).commit();
        let k = {
            let cd = cd.clone();
            thread::spawn(move || {
                let v = SimView::new(1);
                v.now.set(1234);
                v.cpus[0].cpu_seqnum.set(41);
                cd.claim(0, 0, CommitPoint::Ioctl).unwrap().commit(&v)
            })
        };
        let o = wait(&p);
        assert_eq!(o, Outcome { outcome: TxnOutcome::Complete, commit_time: 1234, cpu_seqnum: Some(42) });
        let r = k.join().unwrap();
        assert!(r.agent_barrier_bumped);
    });
}

/// A 2-CPU sync group whose second-committed member fails: the caller's member is poisoned, the group
/// reports failure, and both owners are kept; the agent sees the outcomes concurrently.
#[test]
fn group_failure_all_or_nothing() {
    loom::model(|| {
        let cd = region(2);
        let mut a0 = cd.agent(0).unwrap();
        let mut a1 = cd.agent(1).unwrap();
        a0.try_own(0).unwrap();
        a1.try_own(0).unwrap();
        let p0 = a0.open().unwrap().commit();
        let p1 = a1.open().unwrap().target(Gtid(4242)).commit();
        let k = {
            let cd = cd.clone();
            thread::spawn(move || {
                let mut members = [0b11u64];
                cd.commit_group(0, &mut members, &SimView::new(2), |_| {}).unwrap()
            })
        };
        assert_eq!(wait(&p0).outcome, TxnOutcome::Poisoned);
        assert_eq!(wait(&p1).outcome, TxnOutcome::TargetNotFound);
        let r = k.join().unwrap();
        assert!(!r.committed);
        assert_eq!(r.failure, Some(GroupFailure::Commit { cpu: 1, outcome: TxnOutcome::TargetNotFound }));
        assert_eq!(cd.sync_group_owner(0).unwrap(), 0);
        assert_eq!(cd.sync_group_owner(1).unwrap(), 0);
        assert!(a0.disown() && a1.disown());
    });
}

/// A successful 2-CPU group releases both owners; an agent that sees an owner released sees that member's
/// final state (fails if the kernel's Release of the owner is weakened).
#[test]
#[cfg_attr(ghost_shm_weaken, should_panic(expected = "assertion"))]
fn weaken_group_success_releases_owners() {
    loom::model(|| {
        let cd = region(2);
        let mut a0 = cd.agent(0).unwrap();
        let mut a1 = cd.agent(1).unwrap();
        a0.try_own(1).unwrap();
        a1.try_own(1).unwrap();
        let _p0 = a0.open().unwrap().commit();
        let _p1 = a1.open().unwrap().commit();
        let k = {
            let cd = cd.clone();
            thread::spawn(move || {
                let mut members = [0b11u64];
                cd.commit_group(1, &mut members, &SimView::new(2), |_| {}).unwrap()
            })
        };
        for c in 0..2 {
            while cd.sync_group_owner(c).unwrap() != -1 {
                thread::yield_now();
            }
            assert_eq!(cd.state(c).unwrap(), TxnState::Committed(TxnOutcome::Complete));
        }
        assert!(k.join().unwrap().committed);
    });
}
