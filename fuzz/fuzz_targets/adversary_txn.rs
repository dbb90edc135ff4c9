//! The kernel side of the `cpu_data` transactions under a hostile agent: a schedule of kernel operations (init,
//! ready checks, claims at every commit point, commits and kernel-chosen failures of claims held across steps,
//! sync-group commits with arbitrary member bitmaps) interleaved with agent stores of any value to any word of
//! any transaction — `state`, `agent_barrier`, `task_barrier`, `run_flags`/`commit_flags`, `gtid`,
//! `sync_group_owner`, and the kernel's own words too — between a claim and its commit, and *during* the
//! kernel's validation: the `KernelView`, whose answers come from the input, applies the next agent store at
//! every callback.
//!
//! The region sits between guard bytes and the kernel side accesses it only through a logging backend
//! (`adversary/common.rs`). After every step the target asserts that
//! - every access lies inside the transaction of a CPU the operation concerns (bad CPU ids, bad bitmaps and
//!   refused claims touch nothing, or only the words a claim decision reads);
//! - a transaction is claimed only by a successful compare-exchange from READY, and never twice: each
//!   successful claim follows an agent publication of READY since the previous one (the kernel never writes
//!   READY), and no claim succeeds (or even tries the CAS) while an earlier claim of the same transaction is
//!   in flight, whatever the agent re-publishes (`AlreadyClaimed`); a sync group claims each member at most
//!   once, in CPU order, and never touches a member it could not claim;
//! - a claim reads every word of the transaction exactly once (at a kernel commit point the flags word before
//!   the CAS, as the admission decision, and never again), and a claim at a kernel commit point yields a snapshot
//!   whose `COMMIT_AT_*` bits that point admits, even when the agent stores between every two kernel accesses
//!   (`Claim { racing }`);
//! - after the claim, the snapshot loads every word exactly once, and commit/fail read nothing: the outcome is
//!   `validate` of the values read (first failure wins; `Poisoned` after a group failure), never influenced by
//!   the agent's later stores; the agent-barrier bump and latch calls follow from that copy alone;
//! - the finish stores `commit_time`, `cpu_seqnum` (success only, the latch's value) and then exactly one final
//!   state, a defined `TxnOutcome`; a group releases `sync_group_owner` only after committing every member.
#![no_main]

#[path = "adversary/common.rs"]
mod common;

#[path = "shared.rs"]
mod shared;

use arbitrary::Arbitrary;
use common::{agent_store32, agent_store64, take, Ev, Guarded, Spy};
use ghost_shm::abi::{CommitFlags, Gtid, RunFlags, TxnOutcome, TxnState, GHOST_TXN_READY};
use ghost_shm::shm::RawRegion;
use ghost_shm::txn::{
    commit_flags_valid, pack_flags, unpack_flags, validate, ClaimError, ClaimedTxn, CommitPoint, CommitResult, CpuData,
    GroupError, KernelView, TaskInfo, TxnSnapshot, AGENT_BARRIER_OFFSET, CPU_OFFSET, FLAGS_OFFSET, GTID_OFFSET,
    STATE_OFFSET, SYNC_GROUP_OWNER_OFFSET, TASK_BARRIER_OFFSET, VERSION_OFFSET,
};
use libfuzzer_sys::fuzz_target;
use shared::{CpuIn, TaskIn};
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;

const MAX_CPUS: usize = 8;
const READY: u32 = GHOST_TXN_READY as u32;
const GTID_BASE: i64 = 1 << 41;
const COMMIT_TIME_OFFSET: usize = 32;
const CPU_SEQNUM_OFFSET: usize = 40;

/// One agent store: `field` selects the word of `cpu`'s transaction.
#[derive(Arbitrary, Debug, Clone, Copy)]
struct AgentWrite {
    cpu: u8,
    field: u8,
    value: u64,
}

/// A transaction the agent fills and publishes (mostly plausible values, so validation goes deep).
#[derive(Arbitrary, Debug, Clone, Copy)]
struct TxnIn {
    gtid: u8,
    task_barrier: u8,
    agent_barrier: u8,
    run_flags: u16,
    commit_flags: u8,
    /// Bit 0: wrong version, 1: wrong cpu, 2: arbitrary flags.
    odd: u8,
}

#[derive(Arbitrary, Debug)]
enum Step {
    Init {
        cpu: u8,
    },
    Publish {
        cpu: u8,
        txn: TxnIn,
    },
    /// `Publish` on every CPU (sync groups need several READY members).
    PublishAll {
        txn: TxnIn,
    },
    Write(AgentWrite),
    Ready {
        cpu: u8,
    },
    Claim {
        claimer: u8,
        target: u8,
        at: i8,
        /// Apply one agent store from `during` after *every* kernel access of the claim (between its ready
        /// check, its read of the flags word, its CAS and each snapshot load): a racing agent flipping
        /// `commit_flags` between two reads must not get a transaction committed at a point its flags refuse.
        racing: bool,
    },
    Commit {
        slot: u8,
    },
    Fail {
        slot: u8,
        outcome: u8,
    },
    Group {
        caller: u8,
        members: Vec<u64>,
        hostile: bool,
    },
}

#[derive(Arbitrary, Debug)]
struct Input {
    ncpus: u8,
    stride: u8,
    cpus: [CpuIn; MAX_CPUS],
    tasks: [TaskIn; 4],
    permitted: bool,
    /// Make every CPU online with an agent in enclave 1 and every task a runnable, off-CPU task of enclave 1
    /// (barriers stay arbitrary), so that commits, and whole sync groups, succeed often.
    friendly: bool,
    /// Agent stores applied one per `KernelView` callback.
    during: Vec<AgentWrite>,
    steps: Vec<Step>,
}

struct Layout {
    ncpus: u32,
    stride: usize,
}

impl Layout {
    fn slot(&self, cpu: u32) -> usize {
        cpu as usize * self.stride
    }
}

/// The agent's store: `field` picks one of the 13 words of `cpu`'s transaction (even the kernel's). Returns the
/// CPU whose `state` it wrote, if it did.
fn agent_write(raw: &RawRegion, l: &Layout, w: AgentWrite, ready: &mut [bool; MAX_CPUS]) -> Option<u32> {
    let cpu = w.cpu as u32 % l.ncpus;
    let s = l.slot(cpu);
    let v32 = w.value as u32;
    match w.field % 13 {
        0 => {
            // state: READY (publish) most of the time, else anything.
            let v = if w.value & 1 == 0 { READY } else { (w.value >> 1) as u32 };
            agent_store32(raw, s + STATE_OFFSET, v);
            ready[cpu as usize] = v == READY;
            return Some(cpu);
        }
        1 => agent_store32(raw, s + AGENT_BARRIER_OFFSET, v32),
        2 => agent_store32(raw, s + TASK_BARRIER_OFFSET, v32),
        3 => agent_store32(raw, s + FLAGS_OFFSET, v32),
        4 => agent_store64(raw, s + GTID_OFFSET, w.value),
        5 => agent_store64(raw, s + GTID_OFFSET, (GTID_BASE + (w.value % 6) as i64) as u64),
        6 => agent_store32(raw, s + SYNC_GROUP_OWNER_OFFSET, v32),
        7 => agent_store32(raw, s + VERSION_OFFSET, v32),
        8 => agent_store32(raw, s + CPU_OFFSET, v32),
        9 => agent_store64(raw, s + COMMIT_TIME_OFFSET, w.value),
        10 => agent_store64(raw, s + CPU_SEQNUM_OFFSET, w.value),
        11 => agent_store32(raw, s + 52 + 4 * (w.value as usize % 3), v32),
        _ => agent_store32(raw, s + FLAGS_OFFSET, pack_flags(v32 as u16 & 0x1ee7, (w.value >> 32) as u8 & 0x1f, 0)),
    }
    None
}

/// The agent fills `cpu`'s transaction from `txn` and publishes it (READY last).
fn publish(raw: &RawRegion, l: &Layout, cpu: u32, txn: TxnIn, ready: &mut [bool; MAX_CPUS]) {
    let s = l.slot(cpu);
    let gtid = match txn.gtid % 8 {
        0 => 0,
        1 => -1,
        2 => -2,
        3 => -3 - txn.gtid as i64,
        k => GTID_BASE + (k - 4) as i64,
    };
    let (rf, cf) = if txn.odd & 4 != 0 {
        (txn.run_flags, txn.commit_flags)
    } else {
        // Valid flags for most targets: no NEED_CPU_NOT_IDLE, no COMMIT_AT_TXN_COMMIT, not both
        // ELIDE_AGENT_BARRIER_INC and INC_AGENT_BARRIER_ON_FAILURE.
        let cf = txn.commit_flags & 0x1d;
        (txn.run_flags & 0x1ee7 & !0x80, if cf & 0x18 == 0x18 { cf & !0x10 } else { cf })
    };
    agent_store32(raw, s + VERSION_OFFSET, (txn.odd & 1) as u32);
    agent_store32(raw, s + CPU_OFFSET, cpu ^ ((txn.odd >> 1) & 1) as u32);
    agent_store32(raw, s + AGENT_BARRIER_OFFSET, txn.agent_barrier as u32);
    agent_store32(raw, s + TASK_BARRIER_OFFSET, txn.task_barrier as u32);
    agent_store32(raw, s + FLAGS_OFFSET, pack_flags(rf, cf, 0));
    agent_store64(raw, s + GTID_OFFSET, gtid as u64);
    agent_store32(raw, s + STATE_OFFSET, READY);
    ready[cpu as usize] = true;
}

/// The kernel's answers (from the input) and, when `hostile`, one agent store per callback.
struct View<'a> {
    l: &'a Layout,
    cpus: &'a [CpuIn; MAX_CPUS],
    tasks: &'a [TaskIn; 4],
    permitted: bool,
    hostile: Option<(RawRegion<'a>, &'a RefCell<VecDeque<AgentWrite>>, &'a RefCell<[bool; MAX_CPUS]>)>,
    /// CPUs whose `state` the agent wrote during a callback (since the last reset).
    touched: RefCell<[bool; MAX_CPUS]>,
    now: Cell<i64>,
    seqnum: Cell<u64>,
    latches: RefCell<Vec<(u32, u64)>>,
    bumps: RefCell<Vec<u32>>,
}

impl View<'_> {
    fn cpu(&self, cpu: u32) -> &CpuIn {
        assert!(cpu < self.l.ncpus, "KernelView asked about CPU {cpu} outside the region");
        if let Some((raw, during, ready)) = &self.hostile {
            if let Some(w) = during.borrow_mut().pop_front() {
                if let Some(c) = agent_write(raw, self.l, w, &mut ready.borrow_mut()) {
                    self.touched.borrow_mut()[c as usize] = true;
                }
            }
        }
        &self.cpus[cpu as usize]
    }
}

impl KernelView for View<'_> {
    fn lookup(&self, gtid: Gtid) -> Option<TaskInfo> {
        let k = gtid.0.checked_sub(GTID_BASE).filter(|k| (0..4).contains(k))?;
        let t = self.tasks[k as usize];
        Some(TaskInfo {
            is_agent: t.is_agent,
            departed: t.departed,
            dead: t.dead,
            barrier: t.barrier as u32,
            runnable: t.runnable,
            enclave: t.enclave as u64,
            on_cpu: t.on_cpu.map(|c| c as u32 % 10),
            forced_off: t.forced_off,
        })
    }
    fn cpu_online(&self, cpu: u32) -> bool {
        self.cpu(cpu).online
    }
    fn cpu_enclave(&self, cpu: u32) -> Option<u64> {
        self.cpu(cpu).enclave.map(u64::from)
    }
    fn agent_present(&self, cpu: u32) -> bool {
        self.cpu(cpu).agent
    }
    fn idle_running(&self, cpu: u32) -> bool {
        self.cpu(cpu).idle
    }
    fn sync_commit_permitted(&self, caller: u32, target: u32, _gtid: Gtid) -> bool {
        self.cpu(caller);
        self.cpu(target);
        self.permitted
    }
    fn ghost_busy(&self, cpu: u32) -> bool {
        self.cpu(cpu).ghost_busy
    }
    fn higher_class_running(&self, cpu: u32) -> bool {
        self.cpu(cpu).higher
    }
    fn agent_barrier(&self, cpu: u32) -> u32 {
        self.cpu(cpu).agent_barrier as u32
    }
    fn now_ns(&self) -> i64 {
        let t = self.now.get();
        self.now.set(t + 1);
        t
    }
    fn latch(&self, cpu: u32, _txn: &TxnSnapshot, _already_on_cpu: bool) -> u64 {
        self.cpu(cpu);
        let s = self.seqnum.get() + 1;
        self.seqnum.set(s);
        self.latches.borrow_mut().push((cpu, s));
        s
    }
    fn bump_agent_barrier(&self, cpu: u32) {
        self.cpu(cpu);
        self.bumps.borrow_mut().push(cpu);
    }
}

/// The snapshot a claim read at slot `s`: each of its seven words loaded exactly once, nothing else.
fn snapshot_from(loads: &[Ev], s: usize) -> TxnSnapshot {
    let one = |off: usize| -> u64 {
        let v: Vec<u64> = loads
            .iter()
            .filter(|e| e.off() == s + off)
            .map(|e| match *e {
                Ev::Load32(_, v) => v as u64,
                Ev::Load64(_, v) => v,
                other => panic!("snapshot access {other:?}"),
            })
            .collect();
        assert_eq!(v.len(), 1, "word {off} loaded {} times by the snapshot: {loads:?}", v.len());
        v[0]
    };
    assert_eq!(loads.len(), 7, "snapshot loads: {loads:?}");
    let (rf, cf, unused) = unpack_flags(one(FLAGS_OFFSET) as u32);
    TxnSnapshot {
        state: one(STATE_OFFSET) as u32 as i32,
        version: one(VERSION_OFFSET) as u32 as i32,
        cpu: one(CPU_OFFSET) as u32 as i32,
        agent_barrier: one(AGENT_BARRIER_OFFSET) as u32,
        task_barrier: one(TASK_BARRIER_OFFSET) as u32,
        run_flags: RunFlags::from_bits_retain(rf),
        commit_flags: CommitFlags::from_bits_retain(cf),
        unused,
        gtid: Gtid(one(GTID_OFFSET) as i64),
    }
}

/// Whether a failure with this snapshot bumps the agent barrier.
fn bump_on_failure(s: &TxnSnapshot) -> bool {
    commit_flags_valid(s.commit_flags) && s.commit_flags.contains(CommitFlags::INC_AGENT_BARRIER_ON_FAILURE)
}

/// Removes and returns the entries of `list` that match.
fn take_cpu<T>(list: &RefCell<Vec<T>>, f: impl Fn(&T) -> bool) -> Vec<T> {
    let mut l = list.borrow_mut();
    let (mine, rest): (Vec<T>, Vec<T>) = l.drain(..).partition(|x| f(x));
    *l = rest;
    mine
}

/// Checks the finish of a claimed transaction at slot `s` (`ev`: its accesses) against the expected outcome;
/// the view's recorded actions are consumed.
fn check_finish(ev: &[Ev], s: usize, cpu: u32, want: TxnOutcome, bump: bool, r: &CommitResult, view: &View) {
    assert!(ev.iter().all(|e| !e.reads()), "the kernel re-read the transaction after the claim: {ev:?}");
    assert_eq!((r.cpu, r.outcome, r.agent_barrier_bumped), (cpu, want, bump), "commit result");
    let success = want == TxnOutcome::Complete;
    // The view's actions for this CPU (a group finishes several CPUs; each action names its CPU).
    let latches: Vec<u64> = take_cpu(&view.latches, |&(c, _)| c == cpu).into_iter().map(|(_, s)| s).collect();
    let bumps = take_cpu(&view.bumps, |&c| c == cpu);
    assert_eq!(latches.len(), success as usize, "latch calls");
    assert_eq!(bumps.len(), bump as usize, "agent-barrier bumps");
    let mut want_ev = vec![Ev::Store64(s + COMMIT_TIME_OFFSET, r.commit_time as u64)];
    if success {
        assert_eq!(r.cpu_seqnum, Some(latches[0]));
        want_ev.push(Ev::Store64(s + CPU_SEQNUM_OFFSET, latches[0]));
    } else {
        assert_eq!(r.cpu_seqnum, None);
    }
    want_ev.push(Ev::Store32(s + STATE_OFFSET, want.raw() as u32));
    assert_eq!(ev, &want_ev[..], "finish stores");
}

/// The expected outcome and bump of a claim with snapshot `snap`.
fn expect(snap: &TxnSnapshot, claimer: u32, target: u32, at: CommitPoint, quiet: &View) -> (TxnOutcome, bool) {
    match validate(snap, claimer, target, at, quiet) {
        Ok(v) => (
            TxnOutcome::Complete,
            !v.already_on_cpu && !snap.commit_flags.contains(CommitFlags::ELIDE_AGENT_BARRIER_INC),
        ),
        Err(o) => (o, bump_on_failure(snap)),
    }
}

struct Held<'r, 'a> {
    txn: ClaimedTxn<'r, Spy<'a>>,
    slot: usize,
}

fuzz_target!(|input: Input| {
    let mut input = input;
    if input.friendly {
        for c in &mut input.cpus {
            (c.online, c.enclave, c.agent, c.higher, c.ghost_busy) = (true, Some(1), true, false, false);
        }
        for t in &mut input.tasks {
            (t.is_agent, t.departed, t.dead, t.runnable, t.enclave, t.on_cpu) = (false, false, false, true, 1, None);
        }
        input.permitted = true;
    }
    let ncpus = 1 + input.ncpus as u32 % MAX_CPUS as u32;
    let stride = 64 * (1 + input.stride as usize % 4);
    let extra = 64 * ((input.stride as usize / 4) % 2);
    let l = Layout { ncpus, stride };
    let len = ncpus as usize * stride + extra;
    let g = Guarded::new(len);
    let raw = g.region();
    let log = RefCell::new(Vec::new());
    let during = RefCell::new(input.during.iter().copied().take(64).collect::<VecDeque<_>>());
    let ready = RefCell::new([false; MAX_CPUS]);
    let mk = |hostile: bool| View {
        l: &l,
        cpus: &input.cpus,
        tasks: &input.tasks,
        permitted: input.permitted,
        hostile: hostile.then_some((raw, &during, &ready)),
        touched: RefCell::new([false; MAX_CPUS]),
        now: Cell::new(1000),
        seqnum: Cell::new(0),
        latches: RefCell::new(Vec::new()),
        bumps: RefCell::new(Vec::new()),
    };
    let view = mk(true);
    let quiet = mk(false);
    {
        // Agent stores between the kernel's accesses, during `Claim { racing: true }` only.
        let racing = Cell::new(false);
        let between = || {
            if racing.get() {
                if let Some(w) = during.borrow_mut().pop_front() {
                    agent_write(&raw, &l, w, &mut ready.borrow_mut());
                }
            }
        };
        let cd = CpuData::with_stride(Spy::with_between(raw, &log, &between), ncpus, stride).unwrap();
        let mut held: Vec<Held<'_, '_>> = Vec::new();
        let in_slot = |e: &Ev, cpu: u32| e.off() >= l.slot(cpu) && e.off() + e.width() <= l.slot(cpu) + 64;

        for step in input.steps.iter().take(200) {
            match *step {
                Step::Init { cpu } => {
                    let cpu = cpu as u32 % (ncpus + 1);
                    let r = cd.init_txn(cpu);
                    let ev = take(&log);
                    if cpu < ncpus {
                        r.unwrap();
                        assert!(ev.iter().all(|e| e.writes() && !e.reads() && in_slot(e, cpu)), "init: {ev:?}");
                        let last = ev.last().unwrap();
                        assert_eq!(*last, Ev::Store32(l.slot(cpu) + STATE_OFFSET, TxnOutcome::Complete.raw() as u32));
                        ready.borrow_mut()[cpu as usize] = false;
                    } else {
                        assert!(r.is_err() && ev.is_empty());
                    }
                }
                Step::Publish { cpu, txn } => publish(&raw, &l, cpu as u32 % ncpus, txn, &mut ready.borrow_mut()),
                Step::PublishAll { txn } => {
                    for cpu in 0..ncpus {
                        publish(&raw, &l, cpu, txn, &mut ready.borrow_mut());
                    }
                }
                Step::Write(w) => {
                    agent_write(&raw, &l, w, &mut ready.borrow_mut());
                }
                Step::Ready { cpu } => {
                    let cpu = cpu as u32 % (ncpus + 1);
                    let r = cd.ready(cpu);
                    let ev = take(&log);
                    assert!(ev.iter().all(|e| !e.writes() && in_slot(e, cpu)), "ready: {ev:?}");
                    assert_eq!(r.is_err(), cpu >= ncpus);
                }
                Step::Claim { claimer, target, at, racing: race } => {
                    let (claimer, target) = (claimer as u32 % (ncpus + 1), target as u32 % (ncpus + 1));
                    let at = CommitPoint::from_raw(at as i32 % 2).unwrap_or(CommitPoint::Ioctl);
                    let in_flight = held.iter().any(|h| h.txn.target() == target);
                    // READY as the agent last published it before the claim (a racing store may re-publish).
                    let was_ready = ready.borrow()[target.min(ncpus - 1) as usize];
                    racing.set(race);
                    let r = cd.claim(claimer, target, at);
                    racing.set(false);
                    let ev = take(&log);
                    match r {
                        Err(ClaimError::BadCpu(c)) => {
                            assert!(c >= ncpus && (c == target || c == claimer) && ev.is_empty(), "{c}: {ev:?}");
                        }
                        Err(ClaimError::NotLocal) => {
                            assert!(at != CommitPoint::Ioctl && claimer != target && ev.is_empty())
                        }
                        Err(e) => {
                            assert!(ev.iter().all(|e| !e.writes() && in_slot(e, target)), "refused claim: {ev:?}");
                            match e {
                                ClaimError::NotReady(st) => assert_ne!(st, TxnState::Ready),
                                ClaimError::AlreadyClaimed => {
                                    assert!(in_flight, "AlreadyClaimed with no claim in flight")
                                }
                                _ => {}
                            }
                            if in_flight {
                                assert!(!ev.iter().any(|e| matches!(e, Ev::Cas32 { .. })), "CAS on a held transaction");
                            }
                        }
                        Ok(txn) => {
                            assert!(!in_flight, "transaction of CPU {target} claimed while a claim of it is in flight");
                            let s = l.slot(target);
                            let cas =
                                ev.iter().position(|e| matches!(e, Ev::Cas32 { .. })).expect("claimed without CAS");
                            assert_eq!(
                                ev[cas],
                                Ev::Cas32 { off: s + STATE_OFFSET, current: READY, new: claimer, ok: true }
                            );
                            assert!(ev[..cas].iter().all(|e| matches!(e, Ev::Load32(..)) && in_slot(e, target)));
                            let republished = std::mem::replace(&mut ready.borrow_mut()[target as usize], false);
                            assert!(
                                was_ready || republished || race,
                                "transaction of CPU {target} claimed twice without a new READY"
                            );
                            assert!(ev[cas + 1..].iter().all(|e| in_slot(e, target)));
                            // Every word read once in the whole claim: at a kernel commit point the flags word
                            // before the CAS (the admission decision) and not in the snapshot after it.
                            let mut loads: Vec<Ev> = ev[cas + 1..].to_vec();
                            if at == CommitPoint::Ioctl {
                                assert_eq!(cas, 0, "the ioctl claims without reading first: {ev:?}");
                            } else {
                                assert_eq!(cas, 2, "ready check and flags word, then the CAS: {ev:?}");
                                assert_eq!(ev[0].off(), s + STATE_OFFSET);
                                assert_eq!(ev[1].off(), s + FLAGS_OFFSET);
                                loads.push(ev[1]);
                            }
                            let snap = snapshot_from(&loads, s);
                            assert_eq!(*txn.snapshot(), snap, "snapshot");
                            assert!(
                                at.admits(snap.commit_flags),
                                "claimed at {at:?} with commit flags {:?} that name another point",
                                snap.commit_flags
                            );
                            held.push(Held { txn, slot: s });
                        }
                    }
                }
                Step::Commit { slot } | Step::Fail { slot, .. } => {
                    if held.is_empty() {
                        continue;
                    }
                    let h = held.swap_remove(slot as usize % held.len());
                    let (snap, claimer, target, at) =
                        (*h.txn.snapshot(), h.txn.claimer(), h.txn.target(), h.txn.commit_point());
                    let fail = match *step {
                        Step::Fail { outcome, .. } => Some(TxnOutcome::ALL[outcome as usize % 16]),
                        _ => None,
                    };
                    let mut txn = Some(h.txn);
                    let mut failed = None;
                    if let Some(o) = fail {
                        match txn.take().map(|t| t.fail(o, &view)) {
                            Some(Ok(r)) => {
                                assert!(!o.is_success());
                                failed = Some((o, r));
                            }
                            Some(Err(back)) => {
                                // A success is refused and the claim comes back untouched.
                                assert!(o.is_success() && take(&log).is_empty());
                                txn = Some(back);
                            }
                            None => unreachable!(),
                        }
                    }
                    let (want, bump, r) = match (txn, failed) {
                        (Some(txn), _) => {
                            let (want, bump) = expect(&snap, claimer, target, at, &quiet);
                            (want, bump, txn.commit(&view))
                        }
                        (None, Some((o, r))) => (o, bump_on_failure(&snap), r),
                        (None, None) => unreachable!(),
                    };
                    check_finish(&take(&log), h.slot, target, want, bump, &r, &view);
                }
                Step::Group { caller, ref members, hostile } => {
                    let caller = caller as u32 % (ncpus + 1);
                    let mut bits: Vec<u64> = members.iter().copied().take(3).collect();
                    if !hostile {
                        bits.truncate(1);
                        if let Some(w) = bits.first_mut() {
                            *w &= (1u64 << ncpus) - 1;
                        }
                    }
                    let orig = bits.clone();
                    let bit = |b: &[u64], c: u32| b.get(c as usize / 64).is_some_and(|w| w >> (c % 64) & 1 == 1);
                    let all: Vec<u32> = (0..64 * orig.len() as u32).filter(|&c| bit(&orig, c)).collect();
                    let mut reports = Vec::new();
                    // Phase 1 claims before any callback: it sees the READY publications made before the call.
                    let ready_before = *ready.borrow();
                    *view.touched.borrow_mut() = [false; MAX_CPUS];
                    let r = cd.commit_group(caller, &mut bits, &view, |r| reports.push(*r));
                    let ev = take(&log);
                    let r = match r {
                        Err(e) => {
                            assert!(ev.is_empty() && reports.is_empty(), "refused group touched the region");
                            match e {
                                GroupError::CallerOutOfRange(c) => assert!(c == caller && c >= ncpus),
                                GroupError::CpuOutOfRange(c) => {
                                    assert!(caller < ncpus && all.iter().find(|&&x| x >= ncpus) == Some(&c))
                                }
                                GroupError::Empty => assert!(caller < ncpus && all.is_empty()),
                            }
                            assert_eq!(bits, orig);
                            continue;
                        }
                        Ok(r) => r,
                    };
                    assert!(caller < ncpus && !all.is_empty() && all.iter().all(|&c| c < ncpus));
                    // Phase 1: one claim CAS per member, in CPU order.
                    let mut claimed = Vec::new();
                    let mut failure = false;
                    for (k, &cpu) in all.iter().enumerate() {
                        // A member whose transaction a claim still holds is not CASed: its state is only read.
                        if held.iter().any(|h| h.txn.target() == cpu) {
                            assert!(
                                matches!(ev[k], Ev::Load32(o, _) if o == l.slot(cpu) + STATE_OFFSET),
                                "{:?}",
                                ev[k]
                            );
                            failure = true;
                            continue;
                        }
                        let Ev::Cas32 { off, current: READY, new, ok } = ev[k] else {
                            panic!("claim {k}: {:?}", ev[k])
                        };
                        assert_eq!((off, new), (l.slot(cpu) + STATE_OFFSET, caller));
                        if ok {
                            assert!(ready_before[cpu as usize], "group claimed CPU {cpu} twice without a new READY");
                            if !view.touched.borrow()[cpu as usize] {
                                ready.borrow_mut()[cpu as usize] = false;
                            }
                            claimed.push(cpu);
                        } else {
                            failure = true;
                        }
                    }
                    assert_eq!(r.members as usize, all.len());
                    assert_eq!(r.claimed as usize, claimed.len());
                    assert_eq!(bits.iter().map(|w| w.count_ones()).sum::<u32>() as usize, claimed.len());
                    assert!(claimed.iter().all(|&c| bit(&bits, c)), "claimed members kept in the bitmap");
                    // Phase 2: after the caller, the caller last; each member's accesses stay in its own slot.
                    let mut order: Vec<u32> = claimed.iter().copied().filter(|&c| c > caller).collect();
                    order.extend(claimed.iter().copied().filter(|&c| c <= caller));
                    let mut rest = &ev[all.len()..];
                    assert_eq!(reports.len(), order.len(), "one report per claimed member");
                    for (cpu, rep) in order.iter().zip(&reports) {
                        let s = l.slot(*cpu);
                        // The member's accesses end with its final state store.
                        let n = 1 + rest
                            .iter()
                            .position(|e| matches!(*e, Ev::Store32(o, _) if o == s + STATE_OFFSET))
                            .unwrap_or_else(|| panic!("no final state for CPU {cpu}: {rest:?}"));
                        let (mine, tail) = rest.split_at(n);
                        assert!(mine.iter().all(|e| in_slot(e, *cpu)), "member {cpu} accesses {mine:?}");
                        rest = tail;
                        let loads = mine.iter().take_while(|e| e.reads()).count();
                        let snap = snapshot_from(&mine[..loads], s);
                        let (want, bump) = if failure {
                            (TxnOutcome::Poisoned, bump_on_failure(&snap))
                        } else {
                            expect(&snap, caller, *cpu, CommitPoint::Ioctl, &quiet)
                        };
                        check_finish(&mine[loads..], s, *cpu, want, bump, rep, &view);
                        failure |= want != TxnOutcome::Complete;
                    }
                    // Phase 3: owners released only after a full success.
                    assert_eq!(r.committed, !failure);
                    let want_rest: Vec<Ev> = if failure {
                        vec![]
                    } else {
                        claimed.iter().map(|&c| Ev::Store32(l.slot(c) + SYNC_GROUP_OWNER_OFFSET, u32::MAX)).collect()
                    };
                    assert_eq!(rest, &want_rest[..], "owner release");
                }
            }
            assert!(take(&log).is_empty(), "unchecked accesses");
            assert!(view.latches.borrow().is_empty() && view.bumps.borrow().is_empty(), "unchecked view actions");
            g.check();
        }
        // Finish what is still claimed, as the kernel must.
        for h in held {
            let _ = h.txn.fail(TxnOutcome::NoAgent, &view);
        }
    }
    g.check();
});
