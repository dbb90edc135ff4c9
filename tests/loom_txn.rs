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
//!
//! `scripts/ordering-mutants.sh` weakens every ordering of the protocols one at a time and checks that some
//! model here fails on each (VERIFICATION.md, "Ordering mutants").
#![cfg(loom)]

use ghost_shm::abi::{
    CommitFlags, GhostTxn, Gtid, RunFlags, TxnOutcome, TxnState, GHOST_TXN_COMPLETE, GHOST_TXN_READY,
};
use ghost_shm::shm::LoomRegion;
use ghost_shm::txn::{self, sim::SimView, AbortResult, Busy, ClaimError, CommitPoint, CpuData, GroupFailure, Outcome};
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
    loom::model(|| commit_vs_claim_snapshot(CommitPoint::Greedy));
}

/// The model of [`weaken_commit_vs_claim_snapshot`] with the claim at `at`: the agent publishes a transaction
/// while the kernel claims it; a claim that wins sees exactly the agent's fields and its outcome reaches the
/// agent, one that loses leaves the transaction READY.
fn commit_vs_claim_snapshot(at: CommitPoint) {
    let cd = region(1);
    let k = {
        let cd = cd.clone();
        thread::spawn(move || match cd.claim(0, 0, at) {
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

/// A transaction region that still holds an earlier enclave's words (a pending transaction, an owner,
/// outcome fields), not yet initialised: `init_txn` runs concurrently with the readers of these models.
fn leftover_region(ncpus: u32) -> Arc<CpuData<LoomRegion>> {
    let cd = CpuData::with_stride(txn::loom_region(ncpus, STRIDE), ncpus, STRIDE).unwrap();
    let mut junk = cd.read_raw(0).unwrap();
    (junk.state, junk.cpu, junk.gtid, junk.commit_time, junk.cpu_seqnum, junk.sync_group_owner) =
        (GHOST_TXN_READY, 7, 77, 999, 5, 3);
    cd.write_raw(0, &junk).unwrap();
    Arc::new(cd)
}

/// A transaction slot initialised while the agent reads it: once the agent sees the initialised state it sees
/// the zeroed outcome fields and the released owner, never the leftovers (fails if `init_txn`'s Release of the
/// state or the agent's Acquire in `last_outcome` is weakened).
#[test]
fn slot_initialised_while_agent_reads() {
    loom::model(|| {
        let cd = leftover_region(1);
        let k = {
            let cd = cd.clone();
            thread::spawn(move || cd.init_txn(0).unwrap())
        };
        let mut a = cd.agent(0).unwrap();
        loop {
            if let Some(o) = a.last_outcome().unwrap() {
                assert_eq!(o, Outcome { outcome: TxnOutcome::Complete, commit_time: 0, cpu_seqnum: Some(0) });
                break;
            }
            thread::yield_now();
        }
        assert!(a.open().is_ok());
        k.join().unwrap();
    });
}

/// As above, through `CpuData::read_raw` (tools, tests): a copy that shows the initialised state shows every
/// other word initialised too (fails if `init_txn`'s Release or `read_raw`'s Acquire is weakened).
#[test]
fn slot_initialised_while_inspected() {
    loom::model(|| {
        let cd = leftover_region(1);
        let k = {
            let cd = cd.clone();
            thread::spawn(move || cd.init_txn(0).unwrap())
        };
        loop {
            let t = cd.read_raw(0).unwrap();
            if t.state != GHOST_TXN_READY {
                let fields = (t.state, t.cpu, t.gtid, t.commit_time, t.cpu_seqnum, t.sync_group_owner);
                assert_eq!(fields, (GHOST_TXN_COMPLETE, 0, 0, 0, 0, -1), "half-initialised slot");
                break;
            }
            thread::yield_now();
        }
        k.join().unwrap();
    });
}

/// An abort that loses the race to a claim reports the commit the kernel made: its real commit time and
/// seqnum, which differ from the zeros of an unpublished outcome (fails if the abort CAS's failure Acquire,
/// or the kernel's Release of the final state, is weakened).
#[test]
fn abort_losing_to_claim_reports_the_commit() {
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
                cd.claim(0, 0, CommitPoint::Ioctl).ok().map(|c| c.commit(&v))
            })
        };
        let seen = match p.abort().unwrap() {
            AbortResult::Aborted => None,
            AbortResult::Committed(o) => Some(o),
            AbortResult::Claimed(p) => Some(wait(&p)),
        };
        let kernel = k.join().unwrap();
        match (seen, kernel) {
            (None, None) => {}
            (Some(o), Some(r)) => {
                assert_eq!(o, Outcome { outcome: r.outcome, commit_time: r.commit_time, cpu_seqnum: r.cpu_seqnum });
                assert_eq!((o.commit_time, o.cpu_seqnum), (1234, Some(42)));
            }
            (seen, kernel) => panic!("abort saw {seen:?}, the kernel committed {kernel:?}"),
        }
    });
}

/// Commit-point flags: a transaction that asks to be committed in the target's scheduler
/// (`COMMIT_AT_SCHEDULE`) is never claimed at the greedy point, and `ready` reports its flags, whatever the
/// interleaving (fails if the Acquire load of the state in `claim`'s commit-point check or in `ready` is
/// weakened: the kernel then decides on the flags of the previous transaction).
#[test]
fn commit_point_flags_come_with_ready() {
    loom::model(|| {
        let cd = region(1);
        let k = {
            let cd = cd.clone();
            thread::spawn(move || {
                if let Some(f) = cd.ready(0).unwrap() {
                    assert_eq!(f, CommitFlags::COMMIT_AT_SCHEDULE, "READY seen with stale commit flags");
                }
                match cd.claim(0, 0, CommitPoint::Greedy) {
                    Ok(c) => panic!("claimed at the greedy point: {:?}", c.snapshot()),
                    Err(ClaimError::NotReady(_)) => {}
                    Err(ClaimError::WrongCommitPoint(f)) => assert_eq!(f, CommitFlags::COMMIT_AT_SCHEDULE),
                    Err(e) => panic!("{e}"),
                }
            })
        };
        let mut a = cd.agent(0).unwrap();
        let p = a.open().unwrap().target(TASK).commit_flags(CommitFlags::COMMIT_AT_SCHEDULE).commit();
        k.join().unwrap();
        assert_eq!(p.state(), TxnState::Ready);
    });
}

/// The kernel side of a claim at the ioctl commit point (no earlier load of the state): its snapshot is exactly
/// what the agent filled before READY (fails if the claim CAS's Acquire is weakened).
#[test]
fn ioctl_claim_snapshot() {
    loom::model(|| commit_vs_claim_snapshot(CommitPoint::Ioctl));
}

/// A (possibly hostile) agent that writes the whole transaction with `write_raw`: the kernel's ioctl claim
/// snapshots exactly the words written before the state (fails if `write_raw`'s Release is weakened).
#[test]
fn raw_write_vs_ioctl_claim_snapshot() {
    loom::model(|| {
        let cd = region(1);
        let k = {
            let cd = cd.clone();
            thread::spawn(move || match cd.claim(0, 0, CommitPoint::Ioctl) {
                Ok(c) => {
                    let s = *c.snapshot();
                    assert_eq!((s.gtid, s.agent_barrier, s.task_barrier, s.version), (TASK, 11, 22, 0));
                    let _ = c.fail(TxnOutcome::NoAgent, &SimView::new(1));
                }
                Err(ClaimError::NotReady(_)) => {}
                Err(e) => panic!("{e}"),
            })
        };
        let txn = GhostTxn {
            state: GHOST_TXN_READY,
            gtid: TASK.0,
            agent_barrier: 11,
            task_barrier: 22,
            sync_group_owner: -1,
            ..cd.read_raw(0).unwrap()
        };
        cd.write_raw(0, &txn).unwrap();
        k.join().unwrap();
    });
}

/// One agent thread's sync group commits; another agent thread, which does not own the transaction, opens it
/// as soon as the group's owner is released: the owner's release publishes the final state, so `open` never
/// reports the transaction still pending (fails if `open`'s Acquire load of the owner is weakened).
#[test]
fn open_after_group_release_sees_the_final_state() {
    loom::model(|| {
        let cd = region(1);
        let mut a = cd.agent(0).unwrap();
        a.try_own(1).unwrap();
        let _p = a.open().unwrap().commit();
        let k = {
            let cd = cd.clone();
            thread::spawn(move || cd.commit_group(0, &mut [0b1], &SimView::new(1), |_| {}).unwrap())
        };
        let mut b = cd.agent(0).unwrap();
        loop {
            match b.open() {
                Err(Busy::Owned(_)) => thread::yield_now(),
                r => {
                    assert!(r.is_ok(), "owner released, state not final: {:?}", r.err());
                    break;
                }
            }
        }
        assert!(k.join().unwrap().committed);
    });
}

/// As above, but the other agent thread takes ownership first (`try_own`): once it owns the transaction it
/// can open it (fails if the Acquire of the ownership CAS is weakened).
#[test]
fn own_after_group_release_sees_the_final_state() {
    loom::model(|| {
        let cd = region(1);
        let mut a = cd.agent(0).unwrap();
        a.try_own(1).unwrap();
        let _p = a.open().unwrap().commit();
        let k = {
            let cd = cd.clone();
            thread::spawn(move || cd.commit_group(0, &mut [0b1], &SimView::new(1), |_| {}).unwrap())
        };
        let mut b = cd.agent(0).unwrap();
        while b.try_own(2).is_err() {
            thread::yield_now();
        }
        assert!(b.open().is_ok(), "owned after the group's release, but the state is not final");
        assert!(k.join().unwrap().committed);
    });
}

/// Sync-group ownership handed from one agent thread to another (`disown`, then `try_own`) orders what the
/// first owner did before the hand-over before what the next owner does (fails if the Release of `disown`
/// or the Acquire of `try_own` is weakened).
#[test]
fn ownership_hands_over_between_agent_threads() {
    loom::model(|| {
        let cd = region(1);
        let data = Arc::new(loom::sync::atomic::AtomicU32::new(0));
        let mut a = cd.agent(0).unwrap();
        a.try_own(1).unwrap();
        let other = {
            let (cd, data) = (cd.clone(), data.clone());
            thread::spawn(move || {
                let mut b = cd.agent(0).unwrap();
                while b.try_own(2).is_err() {
                    thread::yield_now();
                }
                assert_eq!(data.load(core::sync::atomic::Ordering::Relaxed), 5, "the previous owner's write is lost");
                assert!(b.disown());
            })
        };
        data.store(5, core::sync::atomic::Ordering::Relaxed);
        assert!(a.disown());
        other.join().unwrap();
    });
}

/// A hostile agent re-publishes READY while two kernel CPUs claim one transaction at the ioctl commit point:
/// claims are serialised, so when both succeed, the final state is the outcome of the one that claimed second
/// (the first one's final state cannot land over the second claim). Fails if the hold bit's Acquire
/// (`cas_claim`) or Release (`release_hold`) is weakened.
#[test]
fn one_claim_in_flight_whatever_the_agent_writes() {
    use loom::sync::atomic::AtomicU32;
    use std::sync::atomic::Ordering::Relaxed;
    loom::model(|| {
        let cd = region(2);
        let mut a = cd.agent(0).unwrap();
        let _p = a.open().unwrap().commit();
        // The order in which the claims succeeded (a Relaxed RMW: it orders nothing else).
        let order = Arc::new(AtomicU32::new(0));
        let kernel = |claimer: u32, outcome: TxnOutcome| {
            let (cd, order) = (cd.clone(), order.clone());
            thread::spawn(move || {
                let c = cd.claim(claimer, 0, CommitPoint::Ioctl).ok()?;
                let nth = order.fetch_add(1, Relaxed);
                c.fail(outcome, &SimView::new(2)).unwrap();
                Some(nth)
            })
        };
        let k0 = kernel(0, TxnOutcome::NoAgent);
        let k1 = kernel(1, TxnOutcome::CpuOffline);
        let again = GhostTxn { state: GHOST_TXN_READY, ..cd.read_raw(0).unwrap() };
        cd.write_raw(0, &again).unwrap();
        let (n0, n1) = (k0.join().unwrap(), k1.join().unwrap());
        if let (Some(n0), Some(n1)) = (n0, n1) {
            let last = if n0 > n1 { TxnOutcome::NoAgent } else { TxnOutcome::CpuOffline };
            assert_eq!(cd.state(0).unwrap(), TxnState::Committed(last), "an earlier claim's outcome landed last");
        }
    });
}

/// Two handles of one sync group (owner id 2) take over from a previous owner (id 1): the handle whose
/// `try_own` finds its own id already there (taken by the other handle) also sees what the previous owner did
/// before `disown` (fails if the failure ordering of the ownership CAS is weakened).
#[test]
fn same_owner_handles_see_the_previous_owner() {
    use std::sync::atomic::Ordering::Relaxed;
    loom::model(|| {
        let cd = region(1);
        let data = Arc::new(loom::sync::atomic::AtomicU32::new(0));
        let mut a = cd.agent(0).unwrap();
        a.try_own(1).unwrap();
        let group = |check: bool| {
            let (cd, data) = (cd.clone(), data.clone());
            thread::spawn(move || {
                let mut b = cd.agent(0).unwrap();
                if !check {
                    // One attempt: the other handle spins.
                    let _ = b.try_own(2);
                    return;
                }
                while b.try_own(2).is_err() {
                    thread::yield_now();
                }
                assert_eq!(data.load(Relaxed), 5, "owned, but the previous owner's write is lost");
            })
        };
        let (g0, g1) = (group(false), group(true));
        data.store(5, Relaxed);
        assert!(a.disown());
        g0.join().unwrap();
        g1.join().unwrap();
    });
}
