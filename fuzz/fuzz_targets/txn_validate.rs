//! Kernel claim + validation + completion of one transaction over arbitrary txn bytes and an arbitrary
//! task/CPU state, compared with a plain reference implementation of §5.2/§5.4 written here, separately from
//! the crate. While the kernel validates, a hostile agent overwrites the transaction at every kernel callback:
//! the result must still be the reference's on the bytes as they were at the claim (read once).
#![no_main]
#[path = "shared.rs"]
mod shared;

use arbitrary::Arbitrary;
use ghost_shm::abi::{GhostTxn, Gtid, TxnOutcome, TxnState};
use ghost_shm::shm::OwnedRegion;
use ghost_shm::txn::sim::SimView;
use ghost_shm::txn::{validate, ClaimError, CommitPoint, CpuData, KernelView, TaskInfo, TxnSnapshot};
use libfuzzer_sys::fuzz_target;
use shared::{CpuIn, TaskIn};
use std::cell::RefCell;

const NCPUS: u32 = 4;
const READY: i32 = i32::MAX;

#[derive(Arbitrary, Debug)]
struct Input {
    txn: [u8; 64],
    /// Bits: 0 force READY, 1 force version 0, 2 force cpu = target, 3 gtid = the task's, 4 small flags.
    shape: u8,
    claimer: u8,
    target: u8,
    at: i8,
    cpus: [CpuIn; 4],
    task: TaskIn,
    task_gtid: u16,
    permitted: bool,
    scribbles: Vec<[u8; 64]>,
}

fn txn_from(b: &[u8; 64]) -> GhostTxn {
    let r32 = |o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
    let r64 = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap());
    let mut pad = [0u8; 12];
    pad.copy_from_slice(&b[52..64]);
    GhostTxn {
        version: r32(0) as i32,
        cpu: r32(4) as i32,
        state: r32(8) as i32,
        agent_barrier: r32(12),
        task_barrier: r32(16),
        run_flags: u16::from_le_bytes([b[20], b[21]]),
        commit_flags: b[22],
        unused: b[23],
        gtid: r64(24) as i64,
        commit_time: r64(32) as i64,
        cpu_seqnum: r64(40),
        sync_group_owner: r32(48) as i32,
        _pad: pad,
    }
}

// ---- the reference ----------------------------------------------------------------------------------------------

enum RefClaim {
    BadCpu(u32),
    NotLocal,
    NotReady(i32),
    WrongPoint,
    Claimed,
}

fn ref_claim(t: &GhostTxn, claimer: u32, target: u32, at: i32) -> RefClaim {
    if target >= NCPUS {
        return RefClaim::BadCpu(target);
    }
    if claimer >= NCPUS {
        return RefClaim::BadCpu(claimer);
    }
    if at >= 0 && claimer != target {
        return RefClaim::NotLocal;
    }
    if t.state != READY {
        return RefClaim::NotReady(t.state);
    }
    let bits = (t.commit_flags & 3) as i32;
    if at >= 0 && bits != 0 && bits != at {
        return RefClaim::WrongPoint;
    }
    RefClaim::Claimed
}

/// (final state, agent barrier bumped)
struct World<'a> {
    cpus: &'a [CpuIn; 4],
    task: TaskIn,
    task_gtid: i64,
    permitted: bool,
}

fn ref_commit(t: &GhostTxn, claimer: u32, target: u32, at: i32, w: &World) -> (i32, bool) {
    let rf = t.run_flags;
    let cf = t.commit_flags;
    let g = t.gtid;
    let commit_ok = cf & !0x1f == 0 && cf & 3 != 3 && cf & 0x18 != 0x18;
    let fail = |s: i32| (s, commit_ok && cf & 0x10 != 0);
    if t.state != claimer as i32 {
        return fail(i32::MIN + 12);
    }
    if t.version != 0 {
        return fail(i32::MIN + 14);
    }
    if t.cpu != target as i32 {
        return fail(i32::MIN + 12);
    }
    let run_ok =
        rf & !0x1ee7 == 0 && !(rf & 0x20 != 0 && g < 0) && !(rf & 0x80 != 0 && g != -2) && !(g == -1 && rf != 0);
    if !run_ok || !commit_ok {
        return fail(i32::MIN + 9);
    }
    let cpu = &w.cpus[target as usize];
    if !cpu.online {
        return fail(i32::MIN + 7);
    }
    let allow = cf & 4 != 0;
    let mut already = false;
    if g > 0 {
        if g != w.task_gtid {
            return fail(i32::MIN + 4);
        }
        let k = &w.task;
        if k.is_agent {
            return fail(i32::MIN + 10);
        }
        let Some(enc) = cpu.enclave else { return fail(i32::MIN + 10) };
        if k.departed || k.dead || k.barrier as u32 != t.task_barrier {
            return fail(i32::MIN + 3);
        }
        if !k.runnable {
            return fail(i32::MIN + 5);
        }
        if k.enclave != enc {
            return fail(i32::MIN + 11);
        }
        if let Some(c) = k.on_cpu {
            if !allow || c as u32 != target {
                return fail(i32::MIN + 2);
            }
            if k.forced_off {
                return fail(i32::MIN + 3);
            }
            already = true;
        }
    } else if g < -2 {
        return fail(i32::MIN + 10);
    } else if g == -2 && cpu.idle {
        if !allow {
            return fail(i32::MIN + 2);
        }
        already = true;
    }
    if !cpu.agent {
        return fail(i32::MIN + 13);
    }
    if at == -1 && !w.permitted {
        return fail(i32::MIN + 11);
    }
    if rf & 0x1000 != 0 && cpu.ghost_busy {
        return fail(i32::MIN + 6);
    }
    if g != -1 && cpu.higher {
        return fail(i32::MIN + 8);
    }
    if at == -1 && claimer == target && g != -1 && cpu.agent_barrier as u32 != t.agent_barrier {
        return fail(i32::MIN + 6);
    }
    (i32::MIN, !already && cf & 8 == 0)
}

// ---- a hostile agent writing during the kernel's callbacks ----------------------------------------------------

struct Hostile<'a> {
    inner: SimView,
    cd: &'a CpuData<OwnedRegion>,
    scribbles: RefCell<Vec<GhostTxn>>,
    latches: RefCell<u32>,
    bumps: RefCell<u32>,
}

impl Hostile<'_> {
    fn scribble(&self, cpu: u32) {
        if let Some(t) = self.scribbles.borrow_mut().pop() {
            self.cd.write_raw(cpu, &t).unwrap();
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
        self.scribble(cpu);
        self.inner.cpu_enclave(cpu)
    }
    fn agent_present(&self, cpu: u32) -> bool {
        self.scribble(cpu);
        self.inner.agent_present(cpu)
    }
    fn idle_running(&self, cpu: u32) -> bool {
        self.scribble(cpu);
        self.inner.idle_running(cpu)
    }
    fn sync_commit_permitted(&self, caller: u32, target: u32, gtid: Gtid) -> bool {
        self.scribble(target);
        self.inner.sync_commit_permitted(caller, target, gtid)
    }
    fn ghost_busy(&self, cpu: u32) -> bool {
        self.scribble(cpu);
        self.inner.ghost_busy(cpu)
    }
    fn higher_class_running(&self, cpu: u32) -> bool {
        self.scribble(cpu);
        self.inner.higher_class_running(cpu)
    }
    fn agent_barrier(&self, cpu: u32) -> u32 {
        self.scribble(cpu);
        self.inner.agent_barrier(cpu)
    }
    fn now_ns(&self) -> i64 {
        self.inner.now_ns()
    }
    fn latch(&self, cpu: u32, txn: &TxnSnapshot, already_on_cpu: bool) -> u64 {
        self.scribble(cpu);
        *self.latches.borrow_mut() += 1;
        self.inner.latch(cpu, txn, already_on_cpu)
    }
    fn bump_agent_barrier(&self, cpu: u32) {
        self.scribble(cpu);
        *self.bumps.borrow_mut() += 1;
        self.inner.bump_agent_barrier(cpu)
    }
}

fuzz_target!(|inp: Input| {
    let cd = CpuData::with_stride(OwnedRegion::new(NCPUS as usize * 64), NCPUS, 64).unwrap();
    for c in 0..NCPUS {
        cd.init_txn(c).unwrap();
    }
    let claimer = inp.claimer as u32 % 6;
    let target = inp.target as u32 % 6;
    let task_gtid = ((inp.task_gtid as i64) << 41) | 1;

    let mut t = txn_from(&inp.txn);
    if inp.shape & 1 != 0 {
        t.state = READY;
    }
    if inp.shape & 2 != 0 {
        t.version = 0;
    }
    if inp.shape & 4 != 0 {
        t.cpu = target as i32;
    }
    if inp.shape & 8 != 0 {
        t.gtid = task_gtid;
    }
    if inp.shape & 16 != 0 {
        t.run_flags &= 0x1ee7;
        t.commit_flags &= 0x1f;
    }
    let at = CommitPoint::from_raw(inp.at as i32 % 2).unwrap_or(CommitPoint::Ioctl);
    if target < NCPUS {
        cd.write_raw(target, &t).unwrap();
    }

    let mut sim = SimView::new(NCPUS);
    for (i, c) in inp.cpus.iter().enumerate() {
        let s = &mut sim.cpus[i];
        s.online = c.online;
        s.enclave = c.enclave.map(u64::from);
        s.agent = c.agent;
        s.idle_running = c.idle;
        s.ghost_busy = c.ghost_busy;
        s.higher_class = c.higher;
        s.agent_barrier.set(c.agent_barrier as u32);
    }
    let k = inp.task;
    sim.add_task(
        Gtid(task_gtid),
        TaskInfo {
            is_agent: k.is_agent,
            departed: k.departed,
            dead: k.dead,
            barrier: k.barrier as u32,
            runnable: k.runnable,
            enclave: k.enclave as u64,
            on_cpu: k.on_cpu.map(|c| c as u32 % 6),
            forced_off: k.forced_off,
        },
    );
    sim.permitted = inp.permitted;
    let mut task = inp.task;
    task.on_cpu = task.on_cpu.map(|c| (c as u32 % 6) as u8);
    let world = World { cpus: &inp.cpus, task, task_gtid, permitted: inp.permitted };

    let before = (0..NCPUS).map(|c| cd.read_raw(c).unwrap()).collect::<Vec<_>>();
    let claim = cd.claim(claimer, target, at);
    match (ref_claim(&t, claimer, target, at.raw()), claim) {
        (RefClaim::BadCpu(c), Err(ClaimError::BadCpu(d))) => assert_eq!(c, d),
        (RefClaim::NotLocal, Err(ClaimError::NotLocal)) => {}
        (RefClaim::NotReady(s), Err(ClaimError::NotReady(st))) => assert_eq!(TxnState::from_raw(s), st),
        (RefClaim::WrongPoint, Err(ClaimError::WrongCommitPoint(f))) => assert_eq!(f.bits(), t.commit_flags),
        (RefClaim::Claimed, Ok(c)) => {
            let mut claimed = t;
            claimed.state = claimer as i32;
            assert_eq!(*c.snapshot(), TxnSnapshot::from_txn(&claimed), "snapshot is the claimed txn");
            let (want, want_bump) = ref_commit(&claimed, claimer, target, at.raw(), &world);
            // The pure validator agrees before any hostile write.
            let pure = validate(c.snapshot(), claimer, target, at, &sim).map(|_| i32::MIN).unwrap_or_else(|o| o.raw());
            assert_eq!(pure, want);
            let view = Hostile {
                inner: sim.clone(),
                cd: &cd,
                scribbles: RefCell::new(inp.scribbles.iter().map(txn_from).collect()),
                latches: RefCell::new(0),
                bumps: RefCell::new(0),
            };
            let r = c.commit(&view);
            assert_eq!(r.outcome.raw(), want, "outcome for {claimed:?}");
            assert_eq!(r.agent_barrier_bumped, want_bump);
            assert_eq!(*view.bumps.borrow(), want_bump as u32);
            let success = want == i32::MIN;
            assert_eq!(*view.latches.borrow(), success as u32);
            assert_eq!(r.cpu_seqnum.is_some(), success);
            let after = cd.read_raw(target).unwrap();
            assert_eq!(after.state, want, "final state written last");
            assert_eq!(after.commit_time, r.commit_time);
            if let Some(s) = r.cpu_seqnum {
                assert_eq!(after.cpu_seqnum, s);
            }
            let outcome = cd.agent(target).unwrap().last_outcome().unwrap().unwrap();
            assert_eq!(outcome.outcome, TxnOutcome::from_raw(want).unwrap());
            // Other CPUs untouched.
            for c in (0..NCPUS).filter(|&c| c != target) {
                assert_eq!(cd.read_raw(c).unwrap(), before[c as usize]);
            }
            return;
        }
        (_, got) => panic!("claim mismatch: got {got:?} for {t:?} claimer {claimer} target {target} at {at:?}"),
    }
    // Refused claims touch nothing.
    for c in 0..NCPUS {
        assert_eq!(cd.read_raw(c).unwrap(), before[c as usize]);
    }
});
