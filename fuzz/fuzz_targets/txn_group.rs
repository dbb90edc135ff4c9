//! Sync-group commits over arbitrary member sets, pre-written (possibly hostile) transactions, kernel state
//! and hostile writes during the kernel's callbacks. Checks: bad bitmaps touch nothing; only READY members
//! are claimed, each at most once, others stay byte-identical; commit order starts after the caller; the group
//! reports success iff every member committed, poisons every member after the first failure, releases the
//! owners on success only; each member's outcome is validation of its claim-time contents.
#![no_main]
use arbitrary::Arbitrary;
use ghost_shm::abi::{GhostTxn, Gtid, TxnOutcome, TxnState};
use ghost_shm::shm::OwnedRegion;
use ghost_shm::txn::sim::SimView;
use ghost_shm::txn::{
    validate, CommitPoint, CommitResult, CpuData, GroupError, GroupFailure, KernelView, TaskInfo, TxnSnapshot,
};
use libfuzzer_sys::fuzz_target;
use std::cell::RefCell;

const READY: i32 = i32::MAX;

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Gt {
    Null,
    Agent,
    Idle,
    Task(u8),
    Raw(i64),
}

#[derive(Arbitrary, Debug, Clone)]
struct Member {
    /// Otherwise a well-formed transaction for an idle-ready CPU that validates (the knobs below are ignored).
    faulty: bool,
    /// Pre-written by a well-behaved agent (READY, owner) or hostile raw words.
    well_formed: bool,
    gtid: Gt,
    task_barrier: u8,
    agent_barrier: u8,
    run_flags: u16,
    commit_flags: u8,
    state: i32,
    version: i32,
    cpu: i32,
    owner: i32,
    // kernel side
    online: bool,
    agent: bool,
    higher: bool,
    idle: bool,
    ghost_busy: bool,
    kernel_agent_barrier: u8,
}

#[derive(Arbitrary, Debug)]
struct Input {
    ncpus: u8,
    caller: u8,
    members: [u64; 2],
    /// Keep only in-range bits (most runs) or use the raw bitmap.
    mask_in_range: bool,
    cpus: Vec<Member>,
    task_barriers: [u8; 4],
    task_runnable: [bool; 4],
    permitted: bool,
    scribbles: Vec<(i32, u32, i64, u16)>,
}

fn gtid(g: Gt) -> i64 {
    match g {
        Gt::Null => 0,
        Gt::Agent => -1,
        Gt::Idle => -2,
        Gt::Task(i) => ((i as i64 % 4 + 1) << 41) | 1,
        Gt::Raw(v) => v,
    }
}

struct Hostile<'a> {
    inner: SimView,
    cd: &'a CpuData<OwnedRegion>,
    scribbles: RefCell<Vec<(i32, u32, i64, u16)>>,
    scribbled: RefCell<Vec<u32>>,
    latched: RefCell<Vec<u32>>,
}

impl Hostile<'_> {
    fn scribble(&self, cpu: u32) {
        if let Some((state, barrier, gtid, flags)) = self.scribbles.borrow_mut().pop() {
            let mut t = self.cd.read_raw(cpu).unwrap();
            t.state = state;
            t.agent_barrier = barrier;
            t.task_barrier = barrier;
            t.gtid = gtid;
            t.run_flags = flags;
            t.commit_flags = flags as u8;
            t.version = (flags >> 12) as i32;
            t.sync_group_owner = state;
            self.cd.write_raw(cpu, &t).unwrap();
            self.scribbled.borrow_mut().push(cpu);
        }
    }
}

impl KernelView for Hostile<'_> {
    fn lookup(&self, gtid: Gtid) -> Option<TaskInfo> {
        self.inner.lookup(gtid)
    }
    fn cpu_online(&self, cpu: u32) -> bool {
        self.scribble(cpu);
        self.inner.cpu_online(cpu)
    }
    fn cpu_enclave(&self, cpu: u32) -> Option<u64> {
        self.inner.cpu_enclave(cpu)
    }
    fn agent_present(&self, cpu: u32) -> bool {
        self.scribble(cpu);
        self.inner.agent_present(cpu)
    }
    fn idle_running(&self, cpu: u32) -> bool {
        self.inner.idle_running(cpu)
    }
    fn sync_commit_permitted(&self, caller: u32, target: u32, gtid: Gtid) -> bool {
        self.inner.sync_commit_permitted(caller, target, gtid)
    }
    fn ghost_busy(&self, cpu: u32) -> bool {
        self.inner.ghost_busy(cpu)
    }
    fn higher_class_running(&self, cpu: u32) -> bool {
        self.scribble(cpu);
        self.inner.higher_class_running(cpu)
    }
    fn agent_barrier(&self, cpu: u32) -> u32 {
        self.inner.agent_barrier(cpu)
    }
    fn now_ns(&self) -> i64 {
        self.inner.now_ns()
    }
    fn latch(&self, cpu: u32, txn: &TxnSnapshot, already_on_cpu: bool) -> u64 {
        self.scribble(cpu);
        self.latched.borrow_mut().push(cpu);
        self.inner.latch(cpu, txn, already_on_cpu)
    }
    fn bump_agent_barrier(&self, cpu: u32) {
        self.scribble(cpu);
        self.inner.bump_agent_barrier(cpu)
    }
}

fn bit(words: &[u64], c: u32) -> bool {
    words.get((c / 64) as usize).is_some_and(|w| w >> (c % 64) & 1 == 1)
}

fuzz_target!(|inp: Input| {
    let n = inp.ncpus as u32 % 70 + 1;
    let caller = inp.caller as u32 % (n + 2); // sometimes out of range
    let cd = CpuData::with_stride(OwnedRegion::new(n as usize * 64), n, 64).unwrap();
    let mut sim = SimView::new(n);
    for i in 0..4 {
        let mut t = SimView::runnable_task(inp.task_barriers[i] as u32);
        t.runnable = inp.task_runnable[i];
        sim.add_task(Gtid(((i as i64 + 1) << 41) | 1), t);
    }
    sim.permitted = inp.permitted;
    for c in 0..n {
        cd.init_txn(c).unwrap();
        let Some(m) = inp.cpus.get(c as usize) else { continue };
        let mut m = m.clone();
        if !m.faulty {
            m.well_formed = true;
            m.gtid = match m.gtid {
                Gt::Agent => Gt::Agent,
                Gt::Idle => Gt::Idle,
                _ => Gt::Null,
            };
            m.run_flags = 0;
            m.commit_flags &= 0x0c;
            (m.online, m.agent, m.higher, m.idle, m.ghost_busy) = (true, true, false, false, false);
            m.agent_barrier = m.kernel_agent_barrier;
        }
        let mut t = cd.read_raw(c).unwrap();
        t.gtid = gtid(m.gtid);
        t.task_barrier = m.task_barrier as u32;
        t.agent_barrier = m.agent_barrier as u32;
        t.run_flags = m.run_flags;
        t.commit_flags = m.commit_flags;
        if m.well_formed {
            t.state = READY;
            t.sync_group_owner = caller as i32;
        } else {
            t.state = m.state;
            t.version = m.version;
            t.cpu = m.cpu;
            t.sync_group_owner = m.owner;
        }
        cd.write_raw(c, &t).unwrap();
        let s = &mut sim.cpus[c as usize];
        s.online = m.online;
        s.agent = m.agent;
        s.higher_class = m.higher;
        s.idle_running = m.idle;
        s.ghost_busy = m.ghost_busy;
        s.agent_barrier.set(m.kernel_agent_barrier as u32);
    }
    let mut members = inp.members;
    if inp.mask_in_range {
        for (i, w) in members.iter_mut().enumerate() {
            let base = i as u32 * 64;
            if base >= n {
                *w = 0;
            } else if n - base < 64 {
                *w &= (1u64 << (n - base)) - 1;
            }
        }
    }
    let orig_members = members;
    let before: Vec<GhostTxn> = (0..n).map(|c| cd.read_raw(c).unwrap()).collect();
    let sim_before = sim.clone();

    let view = Hostile {
        inner: sim,
        cd: &cd,
        scribbles: RefCell::new(inp.scribbles.clone()),
        scribbled: RefCell::new(Vec::new()),
        latched: RefCell::new(Vec::new()),
    };
    let mut reports: Vec<CommitResult> = Vec::new();
    let res = cd.commit_group(caller, &mut members, &view, |r| reports.push(*r));

    // Expected refusal.
    let lowest_out = (0..128u32).find(|&c| c >= n && bit(&orig_members, c));
    let empty = orig_members.iter().all(|&w| w == 0);
    let expect_err = if caller >= n {
        Some(GroupError::CallerOutOfRange(caller))
    } else if let Some(c) = lowest_out {
        Some(GroupError::CpuOutOfRange(c))
    } else if empty {
        Some(GroupError::Empty)
    } else {
        None
    };
    if let Some(e) = expect_err {
        assert_eq!(res, Err(e));
        assert_eq!(members, orig_members);
        assert!(reports.is_empty());
        for c in 0..n {
            assert_eq!(cd.read_raw(c).unwrap(), before[c as usize], "refused group touched CPU {c}");
        }
        return;
    }
    let r = res.expect("valid group");

    // Claims: exactly the READY members, each once; the others and non-members untouched.
    let member_list: Vec<u32> = (0..n).filter(|&c| bit(&orig_members, c)).collect();
    let ready: Vec<u32> = member_list.iter().copied().filter(|&c| before[c as usize].state == READY).collect();
    assert_eq!(r.members as usize, member_list.len());
    assert_eq!(r.claimed as usize, ready.len());
    for c in 0..n {
        assert_eq!(bit(&members, c), ready.contains(&c), "bitmap after the group, CPU {c}");
        if !ready.contains(&c) {
            assert_eq!(cd.read_raw(c).unwrap(), before[c as usize], "unclaimed CPU {c} touched");
        }
    }
    // Commit order: after the caller, wrapping, caller last; each claimed member reported exactly once.
    let order: Vec<u32> = (1..=n).map(|i| (caller + i) % n).filter(|c| ready.contains(c)).collect();
    assert_eq!(reports.iter().map(|x| x.cpu).collect::<Vec<_>>(), order);
    let latched = view.latched.borrow().clone();
    let mut dedup = latched.clone();
    dedup.sort_unstable();
    dedup.dedup();
    assert_eq!(dedup.len(), latched.len(), "a member latched twice");

    // Outcomes: validation of the claim-time contents until the first failure, then POISONED.
    let first_unready = member_list.iter().copied().find(|c| !ready.contains(c));
    let mut failed =
        first_unready.map(|c| GroupFailure::Claim { cpu: c, state: TxnState::from_raw(before[c as usize].state) });
    for rep in &reports {
        let c = rep.cpu;
        let mut t = before[c as usize];
        t.state = caller as i32;
        let want = if failed.is_some() {
            TxnOutcome::Poisoned
        } else {
            let snap = TxnSnapshot::from_txn(&t);
            // Validation asks only about the member's own CPU, which no earlier member changed.
            match validate(&snap, caller, c, CommitPoint::Ioctl, &sim_before) {
                Ok(_) => TxnOutcome::Complete,
                Err(o) => {
                    failed = Some(GroupFailure::Commit { cpu: c, outcome: o });
                    o
                }
            }
        };
        assert_eq!(rep.outcome, want, "member {c}");
        assert_eq!(rep.cpu_seqnum.is_some(), want == TxnOutcome::Complete);
        // Scribbles happen only during the member's own callbacks, before its final stores.
        let after = cd.read_raw(c).unwrap();
        assert_eq!(after.state, want.raw(), "final state of member {c}");
        assert_eq!(after.commit_time, rep.commit_time);
    }
    assert_eq!(r.failure, failed);
    assert_eq!(r.committed, failed.is_none());
    assert_eq!(r.committed, reports.iter().all(|x| x.outcome == TxnOutcome::Complete) && first_unready.is_none());
    assert_eq!(latched.len(), reports.iter().filter(|x| x.outcome == TxnOutcome::Complete).count());

    // Owners: released for every member on success; kept on failure (unless the agent scribbled them).
    let scribbled = view.scribbled.borrow();
    for &c in &member_list {
        let owner = cd.sync_group_owner(c).unwrap();
        if r.committed {
            assert_eq!(owner, -1, "owner of member {c} after success");
        } else if !scribbled.contains(&c) {
            assert_eq!(owner, before[c as usize].sync_group_owner, "owner of member {c} after failure");
        }
    }
});
