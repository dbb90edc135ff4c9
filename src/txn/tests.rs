use super::sim::SimView;
use super::*;
use crate::abi::{CommitFlags, GhostTxn, Gtid, RunFlags, TxnOutcome, TxnState, GHOST_TXN_COMPLETE, GHOST_TXN_READY};
use crate::shm::OwnedRegion;
use std::vec::Vec;

const TASK: Gtid = Gtid((5 << 41) | 3);

fn region(ncpus: u32) -> CpuData<OwnedRegion> {
    let cd = CpuData::with_stride(OwnedRegion::new(ncpus as usize * 64), ncpus, 64).unwrap();
    for c in 0..ncpus {
        cd.init_txn(c).unwrap();
    }
    cd
}

fn view(ncpus: u32) -> SimView {
    let mut v = SimView::new(ncpus);
    v.add_task(TASK, SimView::runnable_task(7));
    v
}

/// Publishes `txn` on `cpu` as a (possibly hostile) agent would, state READY.
fn publish(cd: &CpuData<OwnedRegion>, cpu: u32, f: impl FnOnce(&mut GhostTxn)) {
    let mut t = cd.read_raw(cpu).unwrap();
    t.state = GHOST_TXN_READY;
    f(&mut t);
    cd.write_raw(cpu, &t).unwrap();
}

#[test]
fn layout_errors() {
    assert_eq!(CpuData::new(OwnedRegion::new(4096), 0).unwrap_err(), LayoutError::BadCpuCount);
    assert_eq!(CpuData::new(OwnedRegion::new(4096), 2).unwrap_err(), LayoutError::TooSmall);
    assert_eq!(CpuData::with_stride(OwnedRegion::new(4096), 1, 0).unwrap_err(), LayoutError::BadStride);
    assert_eq!(CpuData::with_stride(OwnedRegion::new(4096), 1, 96).unwrap_err(), LayoutError::BadStride);
    assert_eq!(CpuData::with_stride(OwnedRegion::new(64), i32::MAX as u32, 64).unwrap_err(), LayoutError::BadCpuCount);
    assert_eq!(
        CpuData::with_stride(OwnedRegion::new(64), MAX_CPUS, usize::MAX & !63).unwrap_err(),
        LayoutError::TooSmall
    );
    assert_eq!(CpuData::with_stride(OwnedRegion::new(64), MAX_CPUS + 1, 64).unwrap_err(), LayoutError::BadCpuCount);
    let cd = CpuData::new(OwnedRegion::new(2 * 4096), 2).unwrap();
    assert_eq!(cd.txn_offset(1), Ok(4096));
    assert_eq!(cd.txn_offset(2), Err(BadCpu(2)));
    assert_eq!(cd.agent(2).unwrap_err(), BadCpu(2));
    assert_eq!(cd.init_txn(2), Err(BadCpu(2)));
}

#[test]
// Reads/writes the region as u32 words over u64 fields: mixed-size atomics, which miri's weak-memory model
// does not support (it aborts). The protocol itself accesses every word at one size.
#[cfg_attr(miri, ignore)]
fn init_writes_abi_bytes() {
    let cd = CpuData::new(OwnedRegion::new(2 * 4096), 2).unwrap();
    cd.mem().fill_from(&[0xAA; 2 * 4096]);
    cd.init_txn(1).unwrap();
    let b = cd.mem().to_bytes();
    let t = &b[4096..4096 + 64];
    assert_eq!(&t[0..4], &0i32.to_le_bytes()); // version
    assert_eq!(&t[4..8], &1i32.to_le_bytes()); // cpu
    assert_eq!(&t[8..12], &GHOST_TXN_COMPLETE.to_le_bytes()); // state
    assert!(t[12..48].iter().all(|&x| x == 0));
    assert_eq!(&t[48..52], &(-1i32).to_le_bytes()); // owner
    assert!(t[52..64].iter().all(|&x| x == 0));
    assert!(b[..4096].iter().all(|&x| x == 0xAA), "CPU 0 untouched");
    assert_eq!(cd.state(1), Ok(TxnState::Committed(TxnOutcome::Complete)));
}

#[test]
// Reads/writes the region as u32 words over u64 fields: mixed-size atomics, which miri's weak-memory model
// does not support (it aborts). The protocol itself accesses every word at one size.
#[cfg_attr(miri, ignore)]
fn commit_writes_abi_bytes() {
    let cd = region(1);
    let mut a = cd.agent(0).unwrap();
    let _p = a
        .open()
        .unwrap()
        .target(Gtid(0x0102_0304_0506_0708))
        .agent_barrier(0x11223344)
        .task_barrier(0x55667788)
        .run_flags(RunFlags::RTLA_ON_PREEMPT | RunFlags::DO_NOT_PREEMPT)
        .commit_flags(CommitFlags::ALLOW_TASK_ONCPU)
        .commit();
    let b = cd.mem().to_bytes();
    assert_eq!(&b[8..12], &GHOST_TXN_READY.to_le_bytes());
    assert_eq!(&b[12..16], &0x11223344u32.to_le_bytes());
    assert_eq!(&b[16..20], &0x55667788u32.to_le_bytes());
    assert_eq!(&b[20..24], &[0x01, 0x10, 0x04, 0x00]);
    assert_eq!(&b[24..32], &0x0102_0304_0506_0708i64.to_le_bytes());
    assert_eq!(pack_flags(0x1001, 4, 9), u32::from_le_bytes([0x01, 0x10, 0x04, 9]));
    assert_eq!(unpack_flags(pack_flags(0xBEEF, 0x12, 0x34)), (0xBEEF, 0x12, 0x34));
}

#[test]
fn commit_fields_via_copy() {
    // Same as `commit_writes_abi_bytes` through single-size accesses (runs under miri too).
    use zerocopy::IntoBytes;
    let cd = region(1);
    let mut a = cd.agent(0).unwrap();
    let _p = a
        .open()
        .unwrap()
        .target(Gtid(-2))
        .agent_barrier(3)
        .task_barrier(4)
        .run_flags(RunFlags::NEED_CPU_NOT_IDLE)
        .commit_flags(CommitFlags::COMMIT_AT_SCHEDULE)
        .commit();
    let t = cd.read_raw(0).unwrap();
    assert_eq!((t.state, t.gtid, t.agent_barrier, t.task_barrier), (GHOST_TXN_READY, -2, 3, 4));
    assert_eq!((t.run_flags, t.commit_flags, t.unused, t.sync_group_owner, t.cpu), (0x80, 1, 0, -1, 0));
    assert_eq!(&t.as_bytes()[20..24], &[0x80, 0, 1, 0]);
    let s = cd.claim(0, 0, CommitPoint::Schedule).unwrap();
    let mut expect = TxnSnapshot::from_txn(&t);
    expect.state = 0;
    assert_eq!(*s.snapshot(), expect);
    let _ = s.fail(TxnOutcome::NoAgent, &view(1));
}

#[test]
fn round_trip_and_reopen() {
    let cd = region(2);
    let v = view(2);
    let mut a = cd.agent(1).unwrap();
    let p = a.open().unwrap().target(TASK).task_barrier(7).commit();
    assert_eq!(p.state(), TxnState::Ready);
    assert_eq!(p.poll(), Ok(None));
    assert_eq!(p.wait(3), Err(WaitError::TimedOut));
    let c = cd.claim(1, 1, CommitPoint::Schedule).unwrap();
    assert_eq!(c.snapshot().gtid, TASK);
    assert_eq!(c.snapshot().task_barrier, 7);
    assert_eq!(p.state(), TxnState::Claimed(1));
    assert_eq!(p.poll(), Ok(None));
    let r = c.commit(&v);
    assert_eq!(r.outcome, TxnOutcome::Complete);
    assert!(r.agent_barrier_bumped);
    assert_eq!(v.cpus[1].agent_barrier.get(), 1);
    assert_eq!(v.cpus[1].latched.get(), Some(TASK));
    let o = p.wait(0).unwrap();
    assert_eq!(o, Outcome { outcome: TxnOutcome::Complete, commit_time: 1000, cpu_seqnum: Some(1) });
    assert!(o.is_success());
    // Reopen; the previous outcome's cpu_seqnum is not reported for a failure.
    let p = a.open().unwrap().target(Gtid(999)).commit();
    cd.claim(0, 1, CommitPoint::Ioctl).unwrap().commit(&v);
    let o = p.poll().unwrap().unwrap();
    assert_eq!(o.outcome, TxnOutcome::TargetNotFound);
    assert_eq!(o.cpu_seqnum, None);
    assert_eq!(a.last_outcome().unwrap(), Some(o));
}

#[test]
fn open_refuses_pending() {
    let cd = region(1);
    let mut a = cd.agent(0).unwrap();
    let p = a.open().unwrap().commit();
    drop(p); // forgotten, still READY
    assert_eq!(a.open().unwrap_err(), Busy::Pending(TxnState::Ready));
    let c = cd.claim(0, 0, CommitPoint::Ioctl).unwrap();
    assert_eq!(a.open().unwrap_err(), Busy::Pending(TxnState::Claimed(0)));
    let _ = c.fail(TxnOutcome::NoAgent, &view(1)).unwrap();
    assert!(a.open().is_ok());
    // A dropped OpenTxn publishes nothing.
    drop(a.open().unwrap().target(TASK));
    assert_eq!(cd.read_raw(0).unwrap().gtid, 0);
}

#[test]
fn abort_paths() {
    let cd = region(1);
    let v = view(1);
    let mut a = cd.agent(0).unwrap();
    let p = a.open().unwrap().commit();
    assert!(matches!(p.abort(), Ok(AbortResult::Aborted)));
    assert_eq!(cd.state(0), Ok(TxnState::Committed(TxnOutcome::Aborted)));
    assert_eq!(
        cd.claim(0, 0, CommitPoint::Ioctl).unwrap_err(),
        ClaimError::NotReady(TxnState::Committed(TxnOutcome::Aborted))
    );

    let p = a.open().unwrap().commit();
    let c = cd.claim(0, 0, CommitPoint::Ioctl).unwrap();
    let p = match p.abort() {
        Ok(AbortResult::Claimed(p)) => p,
        other => panic!("{other:?}"),
    };
    c.commit(&v);
    assert!(matches!(p.abort(), Ok(AbortResult::Committed(o)) if o.outcome == TxnOutcome::Complete));
}

#[test]
fn commit_points() {
    let cd = region(2);
    let v = view(2);
    let cases = [
        (CommitFlags::empty(), [true, true, true]),
        (CommitFlags::COMMIT_AT_SCHEDULE, [true, false, true]),
        (CommitFlags::COMMIT_AT_TXN_COMMIT, [true, false, false]),
        (CommitFlags::COMMIT_AT_SCHEDULE | CommitFlags::COMMIT_AT_TXN_COMMIT, [true, false, false]),
    ];
    for (flags, expect) in cases {
        for (i, at) in [CommitPoint::Ioctl, CommitPoint::Greedy, CommitPoint::Schedule].into_iter().enumerate() {
            assert_eq!(CommitPoint::from_raw(at.raw()), Some(at));
            publish(&cd, 0, |t| t.commit_flags = flags.bits());
            assert_eq!(cd.ready(0), Ok(Some(flags)));
            match cd.claim(0, 0, at) {
                Ok(c) => {
                    assert!(expect[i], "{flags:?} at {at:?}");
                    let _ = c.fail(TxnOutcome::Poisoned, &v);
                }
                Err(e) => {
                    assert!(!expect[i], "{flags:?} at {at:?}");
                    assert_eq!(e, ClaimError::WrongCommitPoint(flags));
                    assert_eq!(cd.state(0), Ok(TxnState::Ready));
                }
            }
        }
    }
    assert_eq!(CommitPoint::from_raw(2), None);
    publish(&cd, 1, |_| {});
    assert_eq!(cd.claim(0, 1, CommitPoint::Greedy).unwrap_err(), ClaimError::NotLocal);
    assert_eq!(cd.claim(2, 1, CommitPoint::Ioctl).unwrap_err(), ClaimError::BadCpu(2));
    assert_eq!(cd.claim(0, 7, CommitPoint::Ioctl).unwrap_err(), ClaimError::BadCpu(7));
    let c = cd.claim(0, 1, CommitPoint::Ioctl).unwrap();
    // Never claimed twice.
    assert_eq!(cd.claim(1, 1, CommitPoint::Ioctl).unwrap_err(), ClaimError::NotReady(TxnState::Claimed(0)));
    assert_eq!(cd.claim(1, 1, CommitPoint::Greedy).unwrap_err(), ClaimError::NotReady(TxnState::Claimed(0)));
    assert_eq!(cd.ready(1), Ok(None));
    let c = c.fail(TxnOutcome::Complete, &v).unwrap_err(); // success needs validation
    assert_eq!(c.commit(&v).outcome, TxnOutcome::Complete);
}

#[test]
fn flag_rules() {
    let all = RunFlags::all();
    assert_eq!(all.bits(), 0x1ee7);
    assert!(run_flags_valid(TASK, all - RunFlags::NEED_CPU_NOT_IDLE));
    assert!(!run_flags_valid(TASK, all));
    assert!(run_flags_valid(Gtid::IDLE, RunFlags::NEED_CPU_NOT_IDLE));
    for bit in [0x8u16, 0x10, 0x100, 0x2000, 0x8000] {
        assert!(!run_flags_valid(TASK, RunFlags::from_bits_retain(bit)), "{bit:#x}");
    }
    assert!(run_flags_valid(Gtid::NULL, RunFlags::RTLA_ON_IDLE));
    assert!(!run_flags_valid(Gtid::IDLE, RunFlags::RTLA_ON_IDLE));
    assert!(!run_flags_valid(Gtid(-7), RunFlags::RTLA_ON_IDLE));
    assert!(run_flags_valid(Gtid::AGENT, RunFlags::empty()));
    assert!(!run_flags_valid(Gtid::AGENT, RunFlags::RTLA_ON_PREEMPT));
    assert!(commit_flags_valid(CommitFlags::COMMIT_AT_SCHEDULE | CommitFlags::ALLOW_TASK_ONCPU));
    assert!(!commit_flags_valid(CommitFlags::COMMIT_AT_SCHEDULE | CommitFlags::COMMIT_AT_TXN_COMMIT));
    assert!(!commit_flags_valid(CommitFlags::ELIDE_AGENT_BARRIER_INC | CommitFlags::INC_AGENT_BARRIER_ON_FAILURE));
    assert!(!commit_flags_valid(CommitFlags::from_bits_retain(0x20)));
    assert!(commit_flags_valid(
        CommitFlags::all() - CommitFlags::COMMIT_AT_SCHEDULE - CommitFlags::ELIDE_AGENT_BARRIER_INC
    ));
}

/// Commits a txn on CPU 1 claimed by `claimer` via the ioctl, after `f` adjusts it; returns the result.
fn run(v: &SimView, claimer: u32, f: impl FnOnce(&mut GhostTxn)) -> CommitResult {
    let cd = region(2);
    publish(&cd, 1, |t| {
        t.gtid = TASK.0;
        t.task_barrier = 7;
        f(t)
    });
    let r = cd.claim(claimer, 1, CommitPoint::Ioctl).unwrap().commit(v);
    assert_eq!(cd.state(1), Ok(TxnState::Committed(r.outcome)));
    r
}

#[test]
fn validation_order() {
    use TxnOutcome::*;
    let v = view(2);
    assert_eq!(run(&v, 0, |_| {}).outcome, Complete);
    // Each failure, and precedence over the next.
    assert_eq!(run(&v, 0, |t| t.version = 1).outcome, UnsupportedVersion);
    assert_eq!(run(&v, 0, |t| (t.version, t.cpu) = (1, 0)).outcome, UnsupportedVersion);
    assert_eq!(run(&v, 0, |t| (t.cpu, t.run_flags) = (0, 0x8)).outcome, InvalidCpu);
    assert_eq!(run(&v, 0, |t| (t.run_flags, t.gtid) = (0x8, 0)).outcome, InvalidFlags);
    assert_eq!(run(&v, 0, |t| t.commit_flags = 0x3).outcome, InvalidFlags);
    let mut off = view(2);
    off.cpus[1].online = false;
    off.cpus[1].agent = false;
    assert_eq!(run(&off, 0, |t| t.gtid = 12345).outcome, CpuOffline);
    assert_eq!(run(&v, 0, |t| t.gtid = 12345).outcome, TargetNotFound);
    let mut w = view(2);
    w.add_task(TASK, TaskInfo { is_agent: true, barrier: 1, ..SimView::runnable_task(7) });
    assert_eq!(run(&w, 0, |_| {}).outcome, InvalidTarget);
    let mut w = view(2);
    w.cpus[1].enclave = None;
    assert_eq!(run(&w, 0, |_| {}).outcome, InvalidTarget);
    assert_eq!(run(&w, 0, |t| t.gtid = 0).outcome, Complete, "no enclave check for special gtids");
    for stale in [
        TaskInfo { departed: true, ..SimView::runnable_task(7) },
        TaskInfo { dead: true, ..SimView::runnable_task(7) },
        TaskInfo { runnable: false, ..SimView::runnable_task(8) },
    ] {
        let mut w = view(2);
        w.add_task(TASK, stale);
        assert_eq!(run(&w, 0, |_| {}).outcome, TargetStale);
    }
    let mut w = view(2);
    w.add_task(TASK, TaskInfo { runnable: false, enclave: 9, ..SimView::runnable_task(7) });
    assert_eq!(run(&w, 0, |_| {}).outcome, TargetNotRunnable);
    w.add_task(TASK, TaskInfo { enclave: 9, on_cpu: Some(0), ..SimView::runnable_task(7) });
    assert_eq!(run(&w, 0, |_| {}).outcome, NotPermitted);
    // On a CPU.
    w.add_task(TASK, TaskInfo { on_cpu: Some(0), ..SimView::runnable_task(7) });
    assert_eq!(run(&w, 0, |_| {}).outcome, TargetOnCpu);
    assert_eq!(run(&w, 0, |t| t.commit_flags = ALLOW_TASK_ONCPU_BIT).outcome, TargetOnCpu, "other CPU");
    w.add_task(TASK, TaskInfo { on_cpu: Some(1), ..SimView::runnable_task(7) });
    assert_eq!(run(&w, 0, |_| {}).outcome, TargetOnCpu);
    let r = run(&w, 0, |t| t.commit_flags = ALLOW_TASK_ONCPU_BIT);
    assert_eq!((r.outcome, r.agent_barrier_bumped), (Complete, false));
    w.add_task(TASK, TaskInfo { on_cpu: Some(1), forced_off: true, ..SimView::runnable_task(7) });
    assert_eq!(run(&w, 0, |t| t.commit_flags = ALLOW_TASK_ONCPU_BIT).outcome, TargetStale);
    // Special gtids.
    assert_eq!(run(&v, 0, |t| t.gtid = -3).outcome, InvalidTarget);
    assert_eq!(run(&v, 0, |t| t.gtid = i64::MIN).outcome, InvalidTarget);
    let mut w = view(2);
    w.cpus[1].idle_running = true;
    assert_eq!(run(&w, 0, |t| t.gtid = -2).outcome, TargetOnCpu);
    assert_eq!(run(&w, 0, |t| (t.gtid, t.commit_flags) = (-2, ALLOW_TASK_ONCPU_BIT)).outcome, Complete);
    assert_eq!(run(&w, 0, |t| t.gtid = 0).outcome, Complete);
    // 8–11.
    let mut w = view(2);
    w.cpus[1].agent = false;
    w.permitted = false;
    assert_eq!(run(&w, 0, |_| {}).outcome, NoAgent);
    w.cpus[1].agent = true;
    w.cpus[1].ghost_busy = true;
    assert_eq!(run(&w, 0, |t| t.run_flags = 0x1000).outcome, NotPermitted);
    w.permitted = true;
    w.cpus[1].higher_class = true;
    assert_eq!(run(&w, 0, |t| t.run_flags = 0x1000).outcome, AgentStale);
    assert_eq!(run(&w, 0, |_| {}).outcome, CpuUnavail);
    assert_eq!(run(&w, 0, |t| t.gtid = -1).outcome, Complete, "ping ignores higher classes");
    // 12: only for the local ioctl commit, not for a ping.
    let w = view(2);
    w.cpus[1].agent_barrier.set(5);
    assert_eq!(run(&w, 1, |t| t.agent_barrier = 4).outcome, AgentStale);
    assert_eq!(run(&w, 1, |t| t.agent_barrier = 5).outcome, Complete);
    assert_eq!(run(&w, 0, |t| t.agent_barrier = 4).outcome, Complete);
    assert_eq!(run(&w, 1, |t| (t.agent_barrier, t.gtid) = (4, -1)).outcome, Complete);
}

const ALLOW_TASK_ONCPU_BIT: u8 = crate::abi::ALLOW_TASK_ONCPU;

#[test]
fn commit_point_skips_sync_checks() {
    let mut v = view(1);
    v.permitted = false;
    v.cpus[0].agent_barrier.set(3);
    let cd = region(1);
    publish(&cd, 0, |t| (t.gtid, t.task_barrier) = (TASK.0, 7));
    let c = cd.claim(0, 0, CommitPoint::Greedy).unwrap();
    assert_eq!(c.commit_point(), CommitPoint::Greedy);
    assert_eq!(c.commit(&v).outcome, TxnOutcome::Complete);
}

#[test]
fn agent_barrier_bumps() {
    let v = view(2);
    let b = |flags: u8, gtid: i64| {
        let r = run(&v, 0, |t| (t.commit_flags, t.gtid) = (flags, gtid));
        (r.outcome.is_success(), r.agent_barrier_bumped)
    };
    assert_eq!(b(0, TASK.0), (true, true));
    assert_eq!(b(0x8, TASK.0), (true, false));
    assert_eq!(b(0x10, TASK.0), (true, true));
    assert_eq!(b(0, 999), (false, false));
    assert_eq!(b(0x10, 999), (false, true));
    assert_eq!(b(0x18, TASK.0), (false, false), "invalid commit flags are not acted on");
    assert_eq!(b(0x13, TASK.0), (false, false));
    assert_eq!(v.cpus[1].agent_barrier.get(), 3);
}

#[test]
fn hostile_writes_after_claim() {
    let cd = region(2);
    let v = view(2);
    publish(&cd, 1, |t| (t.gtid, t.task_barrier) = (TASK.0, 7));
    let c = cd.claim(0, 1, CommitPoint::Ioctl).unwrap();
    // The agent scribbles over everything after the claim; the kernel commits its snapshot.
    cd.write_raw(1, &GhostTxn { state: 1, gtid: -9, version: 3, run_flags: 0xffff, ..Default::default() }).unwrap();
    assert_eq!(cd.claim(1, 1, CommitPoint::Ioctl).unwrap_err(), ClaimError::NotReady(TxnState::Claimed(1)));
    let r = c.commit(&v);
    assert_eq!(r.outcome, TxnOutcome::Complete);
    assert_eq!(v.cpus[1].latched.get(), Some(TASK));
    assert_eq!(cd.state(1), Ok(TxnState::Committed(TxnOutcome::Complete)));

    // Re-publishing READY over a claimed transaction does not get it claimed twice: the kernel's private hold
    // refuses every other claim until the first one is finished, which commits from its own snapshot.
    cd.init_txn(1).unwrap();
    publish(&cd, 1, |t| (t.gtid, t.task_barrier) = (TASK.0, 7));
    let first = cd.claim(0, 1, CommitPoint::Ioctl).unwrap();
    publish(&cd, 1, |t| t.gtid = -5);
    assert_eq!(cd.claim(1, 1, CommitPoint::Ioctl).unwrap_err(), ClaimError::AlreadyClaimed);
    assert_eq!(cd.claim(1, 1, CommitPoint::Greedy).unwrap_err(), ClaimError::AlreadyClaimed);
    let mut group = mask(&[1]);
    let g = cd.commit_group(0, &mut group, &v, |_| ()).unwrap();
    assert!(!g.committed && g.claimed == 0, "a sync group cannot claim it either");
    assert_eq!(first.snapshot().gtid, TASK);
    assert_eq!(first.commit(&v).outcome, TxnOutcome::Complete, "committed from its own snapshot");
    // Finished: the next publication is claimable again.
    publish(&cd, 1, |t| t.gtid = -5);
    let second = cd.claim(1, 1, CommitPoint::Ioctl).unwrap();
    assert_eq!(second.snapshot().gtid, Gtid(-5));
    assert_eq!(second.commit(&v).outcome, TxnOutcome::InvalidTarget);
    // An abandoned claim (dropped unfinished) releases its hold too.
    publish(&cd, 1, |t| t.gtid = TASK.0);
    drop(cd.claim(0, 1, CommitPoint::Ioctl).unwrap());
    cd.write_raw(1, &GhostTxn { state: GHOST_TXN_READY, cpu: 1, ..Default::default() }).unwrap();
    assert!(cd.claim(0, 1, CommitPoint::Ioctl).is_ok());

    // State overwritten between the claim and the snapshot is INVALID_CPU.
    let mut s = TxnSnapshot::from_txn(&cd.read_raw(1).unwrap());
    s.state = 5;
    assert_eq!(validate(&s, 0, 1, CommitPoint::Ioctl, &v), Err(TxnOutcome::InvalidCpu));
}

#[test]
fn corrupt_states_are_reported() {
    let cd = region(2);
    let mut a = cd.agent(0).unwrap();
    for (raw, ok) in [(i32::MIN + 16, false), (-1, false), (2, false), (1, true), (GHOST_TXN_READY, true)] {
        let p = a.open();
        drop(p);
        let mut t = cd.read_raw(0).unwrap();
        t.state = raw;
        cd.write_raw(0, &t).unwrap();
        assert_eq!(a.last_outcome().is_ok(), ok, "{raw}");
        if !ok {
            assert_eq!(a.last_outcome(), Err(Corrupt(raw)));
        }
        t.state = GHOST_TXN_COMPLETE;
        cd.write_raw(0, &t).unwrap();
    }
}

#[test]
fn ownership() {
    let cd = region(1);
    let mut a = cd.agent(0).unwrap();
    let mut b = cd.agent(0).unwrap();
    assert_eq!(a.try_own(-1), Err(OwnError::InvalidOwner(-1)));
    a.try_own(3).unwrap();
    a.try_own(3).unwrap();
    assert_eq!(a.owner(), Some(3));
    assert_eq!(cd.sync_group_owner(0), Ok(3));
    assert_eq!(b.own(4, 10), Err(OwnError::OwnedBy(3)));
    assert_eq!(b.open().unwrap_err(), Busy::Owned(3));
    let p = a.open().unwrap().commit();
    assert!(matches!(p.abort(), Ok(AbortResult::Aborted)));
    assert_eq!(cd.sync_group_owner(0), Ok(-1), "a winning abort releases ownership");
    assert_eq!(a.owner(), None);
    b.own(4, 0).unwrap();
    assert!(b.disown());
    assert!(!b.disown());
}

fn mask(cpus: &[u32]) -> [u64; 2] {
    let mut m = [0u64; 2];
    for &c in cpus {
        m[(c / 64) as usize] |= 1 << (c % 64);
    }
    m
}

/// Opens and commits `cpus` as a group owned by `owner`, with per-CPU gtid.
fn group_prepare(cd: &CpuData<OwnedRegion>, owner: i32, cpus: &[(u32, Gtid)]) {
    for &(c, g) in cpus {
        let mut a = cd.agent(c).unwrap();
        a.try_own(owner).unwrap();
        let _ = a.open().unwrap().target(g).task_barrier(7).commit();
    }
}

#[test]
fn group_success_releases_owners() {
    let cd = region(4);
    let v = view(4);
    group_prepare(&cd, 2, &[(0, Gtid::NULL), (2, Gtid::NULL), (3, TASK)]);
    let mut m = mask(&[0, 2, 3]);
    let mut order = Vec::new();
    let r = cd.commit_group(2, &mut m, &v, |r| order.push((r.cpu, r.outcome))).unwrap();
    assert_eq!(r, GroupResult { committed: true, members: 3, claimed: 3, failure: None });
    assert_eq!(order, [(3, TxnOutcome::Complete), (0, TxnOutcome::Complete), (2, TxnOutcome::Complete)]);
    for c in [0, 2, 3] {
        assert_eq!(cd.sync_group_owner(c), Ok(-1));
        assert_eq!(cd.state(c), Ok(TxnState::Committed(TxnOutcome::Complete)));
    }
    assert_eq!(cd.read_raw(1).unwrap().state, GHOST_TXN_COMPLETE, "non-member untouched");
}

#[test]
fn group_failure_poisons_the_rest_and_keeps_owners() {
    let cd = region(4);
    let v = view(4);
    // Caller 1; order 2, 3, 0, 1. CPU 3 fails; 0 and 1 are poisoned; 2 completed.
    group_prepare(&cd, 1, &[(0, Gtid::NULL), (1, Gtid::NULL), (2, Gtid::NULL), (3, Gtid(4242))]);
    let mut m = mask(&[0, 1, 2, 3]);
    let mut order = Vec::new();
    let r = cd.commit_group(1, &mut m, &v, |r| order.push((r.cpu, r.outcome))).unwrap();
    assert!(!r.committed);
    assert_eq!(r.failure, Some(GroupFailure::Commit { cpu: 3, outcome: TxnOutcome::TargetNotFound }));
    use TxnOutcome::*;
    assert_eq!(order, [(2, Complete), (3, TargetNotFound), (0, Poisoned), (1, Poisoned)]);
    for c in 0..4 {
        assert_eq!(cd.sync_group_owner(c), Ok(1), "owners kept on failure");
    }
    // The agent releases them itself.
    for c in 0..4 {
        let mut a = cd.agent(c).unwrap();
        a.try_own(1).unwrap();
        assert!(a.disown());
    }
}

#[test]
fn group_claim_failure_leaves_member_untouched() {
    let cd = region(3);
    let v = view(3);
    group_prepare(&cd, 0, &[(0, Gtid::NULL), (2, Gtid::NULL)]);
    let before = cd.read_raw(1).unwrap(); // COMPLETE: not READY
    let mut m = mask(&[0, 1, 2]);
    let r = cd.commit_group(0, &mut m, &v, |_| {}).unwrap();
    assert_eq!(
        r,
        GroupResult {
            committed: false,
            members: 3,
            claimed: 2,
            failure: Some(GroupFailure::Claim { cpu: 1, state: TxnState::Committed(TxnOutcome::Complete) })
        }
    );
    assert_eq!(m, mask(&[0, 2]), "unclaimed member dropped");
    assert_eq!(cd.read_raw(1).unwrap(), before);
    assert_eq!(cd.state(2), Ok(TxnState::Committed(TxnOutcome::Poisoned)));
    assert_eq!(cd.state(0), Ok(TxnState::Committed(TxnOutcome::Poisoned)));
}

#[test]
fn group_rejects_bad_masks() {
    let cd = region(3);
    let v = view(3);
    assert_eq!(cd.commit_group(3, &mut [1], &v, |_| {}), Err(GroupError::CallerOutOfRange(3)));
    assert_eq!(cd.commit_group(0, &mut [0, 0], &v, |_| {}), Err(GroupError::Empty));
    assert_eq!(cd.commit_group(0, &mut [], &v, |_| {}), Err(GroupError::Empty));
    assert_eq!(cd.commit_group(0, &mut [0b1001], &v, |_| {}), Err(GroupError::CpuOutOfRange(3)));
    assert_eq!(cd.commit_group(0, &mut [1, 4], &v, |_| {}), Err(GroupError::CpuOutOfRange(66)));
    // Nothing touched.
    for c in 0..3 {
        assert_eq!(cd.state(c), Ok(TxnState::Committed(TxnOutcome::Complete)));
    }
}

#[test]
fn group_over_word_boundary() {
    let cd = region(70);
    let v = view(70);
    let members = [(1, Gtid::NULL), (63, Gtid::NULL), (64, Gtid::NULL), (69, Gtid::NULL)];
    group_prepare(&cd, 64, &members);
    let mut m = mask(&[1, 63, 64, 69]);
    let mut order = Vec::new();
    let r = cd.commit_group(64, &mut m, &v, |r| order.push(r.cpu)).unwrap();
    assert!(r.committed);
    assert_eq!(order, [69, 1, 63, 64]);
}

#[test]
fn wrap_iteration() {
    let words = mask(&[0, 5, 64, 100]);
    for (start, expect) in [(65, [100, 0, 5, 64]), (0, [0, 5, 64, 100]), (100, [100, 0, 5, 64]), (6, [64, 100, 0, 5])] {
        let mut it = super::group::Wrap::new(start, 101);
        let mut seen = Vec::new();
        while let Some(c) = it.next(&words) {
            seen.push(c);
        }
        assert_eq!(seen, expect, "start {start}");
    }
    let mut it = super::group::Wrap::new(0, 3);
    assert_eq!(it.next(&[]), None);
}

#[test]
fn threads_round_trip() {
    let cd = region(2);
    let n = if cfg!(miri) { 20 } else { 2000 };
    std::thread::scope(|s| {
        s.spawn(|| {
            let v = view(2);
            let mut done = 0;
            while done < n {
                match cd.claim(1, 1, CommitPoint::Greedy) {
                    Ok(c) => {
                        assert_eq!(c.snapshot().task_barrier, done as u32 + 7);
                        assert_eq!(c.snapshot().gtid, TASK);
                        let _ = c.commit(&v);
                        done += 1;
                    }
                    Err(ClaimError::NotReady(_)) => std::thread::yield_now(),
                    Err(e) => panic!("{e}"),
                }
            }
        });
        let mut a = cd.agent(1).unwrap();
        for i in 0..n {
            let p = a.open().unwrap().target(TASK).task_barrier(i as u32 + 7).commit();
            let o = loop {
                match p.wait(100) {
                    Ok(o) => break o,
                    Err(WaitError::TimedOut) => std::thread::yield_now(),
                    Err(e) => panic!("{e:?}"),
                }
            };
            // The kernel's view has barrier 7 only: the first commit succeeds, the rest are stale.
            let expect = if i == 0 { TxnOutcome::Complete } else { TxnOutcome::TargetStale };
            assert_eq!(o.outcome, expect);
        }
    });
}

/// A hostile agent racing the kernel's claim: every load of `cpu` 0's flags word returns what the word holds
/// and then has the agent overwrite it with `then` (as if it stored right after the kernel's read).
struct FlipFlags {
    inner: OwnedRegion,
    then: u32,
    flags_loads: core::sync::atomic::AtomicU32,
}

impl FlipFlags {
    fn after_load(&self, off: usize) {
        if off == FLAGS_OFFSET {
            self.flags_loads.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
            // SAFETY: the flags word is 4-aligned and in bounds.
            unsafe { self.inner.store_u32(off, self.then, core::sync::atomic::Ordering::Relaxed) };
        }
    }
}

// SAFETY: forwards every access to `OwnedRegion` (same contract); loads of the flags word also store into it,
// an aligned in-bounds word.
unsafe impl crate::shm::SharedMemRead for FlipFlags {
    fn len(&self) -> usize {
        crate::shm::SharedMemRead::len(&self.inner)
    }
    unsafe fn load_u32_relaxed(&self, off: usize) -> u32 {
        // SAFETY: same contract, forwarded.
        let v = unsafe { self.inner.load_u32_relaxed(off) };
        self.after_load(off);
        v
    }
    unsafe fn load_u64_relaxed(&self, off: usize) -> u64 {
        // SAFETY: same contract, forwarded.
        unsafe { self.inner.load_u64_relaxed(off) }
    }
    unsafe fn read_data(&self, off: usize) -> u32 {
        // SAFETY: same contract, forwarded.
        unsafe { self.inner.read_data(off) }
    }
}

// SAFETY: as above.
unsafe impl crate::shm::SharedMem for FlipFlags {
    unsafe fn load_u32(&self, off: usize, order: core::sync::atomic::Ordering) -> u32 {
        // SAFETY: same contract, forwarded.
        let v = unsafe { self.inner.load_u32(off, order) };
        self.after_load(off);
        v
    }
    unsafe fn store_u32(&self, off: usize, val: u32, order: core::sync::atomic::Ordering) {
        // SAFETY: same contract, forwarded.
        unsafe { self.inner.store_u32(off, val, order) }
    }
    unsafe fn compare_exchange_u32(
        &self,
        off: usize,
        c: u32,
        n: u32,
        s: core::sync::atomic::Ordering,
        f: core::sync::atomic::Ordering,
    ) -> Result<u32, u32> {
        // SAFETY: same contract, forwarded.
        unsafe { self.inner.compare_exchange_u32(off, c, n, s, f) }
    }
    unsafe fn fetch_add_u32(&self, off: usize, val: u32, order: core::sync::atomic::Ordering) -> u32 {
        // SAFETY: same contract, forwarded.
        unsafe { self.inner.fetch_add_u32(off, val, order) }
    }
    unsafe fn load_u64(&self, off: usize, order: core::sync::atomic::Ordering) -> u64 {
        // SAFETY: same contract, forwarded.
        unsafe { self.inner.load_u64(off, order) }
    }
    unsafe fn store_u64(&self, off: usize, val: u64, order: core::sync::atomic::Ordering) {
        // SAFETY: same contract, forwarded.
        unsafe { self.inner.store_u64(off, val, order) }
    }
    unsafe fn write_data(&self, off: usize, val: u32) {
        // SAFETY: same contract, forwarded.
        unsafe { self.inner.write_data(off, val) }
    }
}

/// Regression (issue: double fetch in the claim): the admission decision at a kernel commit point and the
/// snapshot used to read `commit_flags` separately, so an agent flipping them in between got a
/// `COMMIT_AT_TXN_COMMIT` transaction committed at a greedy commit point. Now the claim reads the flags word
/// once and the snapshot keeps that value.
#[test]
fn a_claim_reads_commit_flags_once() {
    let plain = pack_flags(0, 0, 0);
    let at_txn_commit = pack_flags(0, crate::abi::COMMIT_AT_TXN_COMMIT, 0);
    for at in [CommitPoint::Greedy, CommitPoint::Schedule, CommitPoint::Ioctl] {
        let cd = CpuData::with_stride(
            FlipFlags { inner: OwnedRegion::new(64), then: at_txn_commit, flags_loads: 0.into() },
            1,
            64,
        )
        .unwrap();
        cd.init_txn(0).unwrap();
        let mut t = cd.read_raw(0).unwrap();
        (t.state, t.cpu, t.gtid, t.task_barrier) = (GHOST_TXN_READY, 0, TASK.0, 7);
        cd.write_raw(0, &t).unwrap();
        // SAFETY: the flags word of CPU 0's transaction.
        unsafe { cd.mem().inner.store_u32(FLAGS_OFFSET, plain, core::sync::atomic::Ordering::Release) };
        cd.mem().flags_loads.store(0, core::sync::atomic::Ordering::Relaxed);
        let claimed = cd.claim(0, 0, at).unwrap();
        assert_eq!(cd.mem().flags_loads.load(core::sync::atomic::Ordering::Relaxed), 1, "flags word reads at {at:?}");
        assert!(at.admits(claimed.snapshot().commit_flags), "{at:?} committed {:?}", claimed.snapshot().commit_flags);
        assert_eq!(claimed.snapshot().commit_flags, CommitFlags::empty(), "the value admission was decided on");
        let r = claimed.commit(&view(1));
        assert_eq!(r.outcome, TxnOutcome::Complete);
    }
}
