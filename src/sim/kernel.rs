//! The simulated kernel: kernel-side state driven by the crate's kernel-side protocol code.

use super::{AgentCost, Config, Report, Rng};
use crate::abi::*;
use crate::agent::{AgentError, Backend};
use crate::queue::{associate, AssocError, AssocStatus, Consumer, Producer, QueueId, Routing, TaskQueue};
use crate::shm::OwnedRegion;
use crate::status::{self, AgentBarrier, FreeError, Word, Writer};
use crate::topology::CpuSet;
use crate::txn::{CommitPoint, CommitResult, CpuData, KernelView, TaskInfo, TxnSnapshot};
use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::prelude::rust_2021::*;
use std::sync::{Arc, Mutex, MutexGuard};
use std::vec;
use std::vec::Vec;

type Mem = Arc<OwnedRegion>;

/// Words per status-word region (ghOSt's `sw_regions/sw_<id>`: 65,534 each).
pub(crate) const SW_PER_REGION: u32 = 65_534;

/// The shared regions of the simulated enclave (they outlive the kernel state that borrows the writers).
pub(crate) struct Regions {
    /// Status-word regions, id = index (ghOSt allocates from several `sw_<id>` regions).
    status: Vec<(Mem, Writer<Mem>)>,
    cpu_data_mem: Mem,
    cpu_data: CpuData<Mem>,
    ncpus: u32,
}

impl Regions {
    /// The regions of one enclave of a machine of `ncpus` CPUs (1..=MAX_CPUS) with room for `tasks` tasks
    /// (the caller validated both: see `ConfigError`).
    pub(crate) fn new(ncpus: u32, tasks: u64) -> Regions {
        let ncpus = ncpus.max(1);
        let mut words = tasks + ncpus as u64 + 8;
        let mut status = Vec::new();
        while words > 0 {
            let capacity = words.min(SW_PER_REGION as u64) as u32;
            words -= capacity as u64;
            let mem = Arc::new(OwnedRegion::new(status::region_len(capacity).next_multiple_of(PAGE_SIZE)));
            let id = status.len() as u32;
            let writer = Writer::with_capacity(mem.clone(), id, 0, capacity).expect("status region fits");
            status.push((mem, writer));
        }
        let cpu_data_mem = Arc::new(OwnedRegion::new(CPU_DATA_SIZE * ncpus as usize));
        let cpu_data = CpuData::new(cpu_data_mem.clone(), ncpus).expect("one page per CPU");
        // Every possible CPU's page is initialised, so an agent can address any CPU; commits to CPUs of other
        // enclaves are then refused by validation (INVALID_TARGET / NO_AGENT), not by a busy page.
        for c in 0..ncpus {
            cpu_data.init_txn(c).expect("cpu in range");
        }
        Regions { status, cpu_data_mem, cpu_data, ncpus }
    }

    /// A free status word, from the first region with room at or after `*hint` (which follows it).
    fn alloc(&self, hint: &mut usize) -> Option<status::Allocated<'_, Mem>> {
        let n = self.status.len();
        for i in 0..n {
            let r = (*hint + i) % n;
            if let Ok(a) = self.status[r].1.alloc() {
                *hint = r;
                return Some(a);
            }
        }
        None
    }

    fn writer(&self, id: u32) -> Option<&Writer<Mem>> {
        self.status.get(id as usize).map(|(_, w)| w)
    }
}

const GTID_PID_BASE: u64 = 1000;
/// How soon the agent's loop runs again when tasks wait for idle CPUs but nothing else happens.
const POLL_NS: u64 = 2_000;

pub(crate) fn task_gtid(t: usize) -> Gtid {
    GtidLayout::DEFAULT.compose(GTID_PID_BASE + t as u64, 1).unwrap_or(Gtid(1 + t as i64))
}

fn agent_gtid(cpu: u32) -> Gtid {
    GtidLayout::DEFAULT.compose(10, cpu as u64 + 1).unwrap_or(Gtid::NULL)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ts {
    Pending,
    Runnable,
    Running(u32),
    Blocked,
    Dead,
}

struct Task<'r> {
    enc: usize,
    gtid: Gtid,
    word: Option<Word<'r, Mem>>,
    info: GhostSwInfo,
    route: TaskQueue,
    st: Ts,
    bursts_left: u32,
    burst_left: u64,
    runtime: u64,
    runnable_since: u64,
    last_cpu: i32,
    /// The CPUs it may run on (`None`: any).
    affinity: Option<Box<[u32]>>,
    /// When it arrived (for its response time).
    arrived_at: u64,
}

struct Cpu<'r> {
    /// The enclave the CPU belongs to, if any.
    enc: Option<usize>,
    current: Option<usize>,
    gen: u64,
    started: u64,
    /// The status word of the CPU's agent, in its enclave's region.
    word: Option<Word<'r, Mem>>,
    barrier: AgentBarrier,
    route: TaskQueue,
    seqnum: u64,
    worker: bool,
    /// A higher-class (non-ghOSt) task holds the CPU.
    taken: bool,
    /// The agent latched the idle task here with `NEED_CPU_NOT_IDLE`: tell it when something else runs.
    need_not_idle: bool,
}

struct SimQueue {
    producer: Producer<Mem>,
    region: Mem,
    wake_cpu: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Arrive(usize),
    BurstEnd(u32, u64),
    Wake(usize),
    Tick(u32),
    Poll(usize),
    /// A competing non-ghOSt task takes (or gives back) the CPU.
    Compete(u32),
    /// Enclave `e`'s agent finished the work of its last step.
    Busy(usize),
    /// The agent's timerfd of enclave `e` fires.
    Timer(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Ev {
    t: u64,
    seq: u64,
    kind: Kind,
}

/// Kernel state of one enclave.
struct Enc {
    cfg: Config,
    queues: Vec<SimQueue>,
    routing: Routing,
    agent: bool,
    rng: Rng,
    runnable: usize,
    latencies: Vec<u64>,
    /// Per exited task: (CPU time, response time), ns.
    responses: Vec<(u64, u64)>,
    outcomes: [u64; 16],
    produced: u64,
    dropped: u64,
    arrived: u64,
    completed: u64,
    violations: u64,
    latches_dropped: u64,
    /// The status-word region the next allocation tries first.
    sw_hint: usize,
    /// Where timer messages go.
    first_worker: u32,
    /// Worker CPUs that run nothing and are not taken by a competing task (kept in step with `Cpu`).
    idle_workers: u32,
    /// Task ids of the enclave in arrival order (generated workloads arrive in id order; the next arrival is
    /// queued when one happens, so the event heap holds one arrival per enclave, not every task).
    arrivals: Vec<(u64, usize)>,
    next_arrival: usize,
    /// Agent cost model: the agent is busy until then (virtual ns).
    busy_until: u64,
    /// Cost of the step in progress so far (ns).
    step_cost: u64,
    /// A step is in progress (commits are charged).
    in_step: bool,
    /// A `Busy` event is pending.
    busy_poll: bool,
    /// The wake-up part of the step in progress (ns).
    step_wake: u64,
    /// Messages produced since the agent's last step began (it consumes them in its next step).
    unread: u64,
    /// Virtual time the agent spent working (ns).
    agent_busy_ns: u64,
    timer_count: u64,
    competing_takes: u64,
    departed: u64,
    /// Worker CPUs.
    workers: u32,
    /// Offered load, ‰ of the workers.
    offered_permille: u64,
    /// ghOSt task time on the enclave's CPUs (ns).
    cpu_busy_ns: u64,
    /// When the enclave's last task exited or departed.
    last_done_ns: u64,
    fallback: u64,
    gap_start: Option<u64>,
    longest_gap: u64,
    poll_pending: bool,
    touched: bool,
    hash: u64,
}

struct State<'r> {
    now: u64,
    /// Kernel events processed (all enclaves).
    events_handled: u64,
    events: BinaryHeap<Reverse<Ev>>,
    seq: u64,
    tasks: Vec<Task<'r>>,
    cpus: Vec<Cpu<'r>>,
    encs: Vec<Enc>,
}

/// The simulated kernel of a machine with one or more enclaves.
pub(crate) struct Kernel<'r> {
    r: &'r [Regions],
    st: Mutex<State<'r>>,
}

impl<'r> Kernel<'r> {
    /// A machine of `ncpus` CPUs; enclave `e` owns `cpus[e]` (disjoint) and runs `cfgs[e]`.
    pub(crate) fn new(r: &'r [Regions], ncpus: u32, cpus: &[CpuSet], cfgs: &[Config]) -> Kernel<'r> {
        let mut cpu_vec: Vec<Cpu<'r>> = (0..ncpus)
            .map(|_| Cpu {
                enc: None,
                current: None,
                gen: 0,
                started: 0,
                word: None,
                barrier: AgentBarrier::new(),
                route: TaskQueue::new(),
                seqnum: 0,
                worker: false,
                taken: false,
                need_not_idle: false,
            })
            .collect();
        let mut st = State {
            now: 0,
            events_handled: 0,
            events: BinaryHeap::new(),
            seq: 0,
            tasks: Vec::new(),
            cpus: Vec::new(),
            encs: Vec::new(),
        };
        for (e, (set, cfg)) in cpus.iter().zip(cfgs).enumerate() {
            let members: Vec<usize> = set.iter().filter(|&c| c < ncpus as usize).collect();
            let workers = members.len().saturating_sub(cfg.agent_cpus as usize).max(1);
            for (i, &c) in members.iter().enumerate() {
                let cpu = &mut cpu_vec[c];
                cpu.enc = Some(e);
                cpu.worker = i < workers;
                cpu.word = r[e].alloc(&mut 0).map(|a| a.init(agent_gtid(c as u32), SwFlags::TASK_IS_AGENT));
            }
            let mut rng = Rng::new(cfg.seed);
            let w = cfg.workload;
            let gap = w.arrival_gap_ns(workers as u32);
            let mut t = 0u64;
            let rows = cfg.trace.as_ref().map(|tr| &tr.rows[..]);
            let mut arrivals: Vec<(u64, usize)> = Vec::with_capacity(cfg.task_count() as usize);
            for i in 0..cfg.task_count() as usize {
                let (arrival, bursts, burst, affinity) = match rows {
                    Some(rows) => {
                        let row = &rows[i];
                        // Trace CPUs are worker indices of the enclave: map them to its CPUs.
                        let aff = row
                            .cpus
                            .as_ref()
                            .map(|cs| cs.iter().filter_map(|&c| members.get(c as usize).map(|&m| m as u32)).collect());
                        (row.arrival_ns, 1, row.service_ns.max(1), aff)
                    }
                    None => {
                        t = t.saturating_add(rng.exp(gap));
                        let bursts = rng.range(w.bursts.0 as u64, w.bursts.1 as u64).max(1) as u32;
                        (t, bursts, w.service.sample(&w, &mut rng), None)
                    }
                };
                let id = st.tasks.len();
                st.tasks.push(Task {
                    enc: e,
                    gtid: task_gtid(id),
                    word: None,
                    info: GhostSwInfo::default(),
                    route: TaskQueue::new(),
                    st: Ts::Pending,
                    bursts_left: bursts,
                    burst_left: burst,
                    runtime: 0,
                    runnable_since: 0,
                    last_cpu: -1,
                    affinity,
                    arrived_at: 0,
                });
                arrivals.push((arrival, id));
            }
            // A trace may list arrivals out of order.
            arrivals.sort_unstable();
            if let Some(&(t0, first)) = arrivals.first() {
                st.push(t0, Kind::Arrive(first));
            }
            if let Some(tick) = cfg.tick_ns {
                for &c in members.iter().take(workers) {
                    st.push(tick, Kind::Tick(c as u32));
                }
            }
            if let Some(c) = cfg.competing {
                for &cpu in members.iter().take(workers) {
                    let at = rng.exp(c.mean_free_ns);
                    st.push(at, Kind::Compete(cpu as u32));
                }
            }
            if let Some(p) = cfg.timer_ns {
                st.push(p, Kind::Timer(e));
            }
            st.encs.push(Enc {
                cfg: cfg.clone(),
                queues: Vec::new(),
                routing: Routing::new(),
                agent: false,
                rng,
                runnable: 0,
                latencies: Vec::new(),
                responses: Vec::new(),
                outcomes: [0; 16],
                produced: 0,
                dropped: 0,
                arrived: 0,
                completed: 0,
                violations: 0,
                latches_dropped: 0,
                sw_hint: 0,
                first_worker: members.first().map_or(0, |&c| c as u32),
                idle_workers: workers as u32,
                arrivals,
                next_arrival: 1,
                busy_until: 0,
                step_cost: 0,
                in_step: false,
                busy_poll: false,
                step_wake: 0,
                unread: 0,
                agent_busy_ns: 0,
                timer_count: 0,
                competing_takes: 0,
                departed: 0,
                workers: workers as u32,
                offered_permille: match &cfg.trace {
                    None => w.offered_permille(workers as u32),
                    Some(tr) => {
                        let work: u128 = tr.rows.iter().map(|r| r.service_ns as u128).sum();
                        let span = tr.rows.iter().map(|r| r.arrival_ns).max().unwrap_or(0).max(1) as u128;
                        (work * 1000 / (span * workers as u128)) as u64
                    }
                },
                cpu_busy_ns: 0,
                last_done_ns: 0,
                fallback: 0,
                gap_start: None,
                longest_gap: 0,
                poll_pending: false,
                touched: true,
                hash: 0xcbf2_9ce4_8422_2325,
            });
        }
        st.cpus = cpu_vec;
        Kernel { r, st: Mutex::new(st) }
    }

    fn lock(&self) -> MutexGuard<'_, State<'r>> {
        // Agents never run while the lock is held, so a poisoned lock can only come from a simulator bug; the
        // state is still consistent enough to report, so carry on.
        self.st.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn now(&self) -> u64 {
        self.lock().now
    }

    pub(crate) fn completed(&self) -> u64 {
        self.lock().encs.iter().map(|e| e.completed).sum()
    }

    pub(crate) fn finished(&self) -> bool {
        self.lock().encs.iter().all(|e| e.done())
    }

    /// Whether enclave `e` had an event at the last instant (its agent should run).
    pub(crate) fn take_touched(&self, e: usize) -> bool {
        std::mem::take(&mut self.lock().encs[e].touched)
    }

    pub(crate) fn agent_attached(&self, e: usize, yes: bool) {
        let mut st = self.lock();
        st.encs[e].agent = yes;
        st.hash_event(e, 6, yes as u64, 0);
    }

    /// Deterministic mode, before enclave `e`'s agent steps: `false` if the agent is still busy with its
    /// previous step's work (it runs again when that ends). Otherwise the step begins: the messages produced
    /// since the last step (which it consumes now) and a wake-up, if it was sleeping, are charged.
    pub(crate) fn begin_step(&self, e: usize) -> bool {
        let mut st = self.lock();
        let now = st.now;
        let en = &mut st.encs[e];
        if now < en.busy_until {
            let t = en.busy_until;
            if !en.busy_poll {
                en.busy_poll = true;
                st.push(t, Kind::Busy(e));
            }
            return false;
        }
        let c = en.cfg.agent_cost;
        let wake = if now > en.busy_until { c.wakeup_ns } else { 0 };
        en.step_wake = wake;
        en.step_cost = wake.saturating_add(en.unread.saturating_mul(c.per_message_ns));
        en.unread = 0;
        en.in_step = true;
        true
    }

    /// Deterministic mode, after enclave `e`'s agent stepped: it is busy for the step's cost.
    pub(crate) fn end_step(&self, e: usize) {
        let mut st = self.lock();
        let now = st.now;
        let en = &mut st.encs[e];
        en.in_step = false;
        // The wake-up delays this step's decisions but is the kernel's time, not the agent's: it does not
        // hold back the next step (per-CPU agents wake in parallel).
        let work = en.step_cost.saturating_sub(en.step_wake);
        en.busy_until = now.saturating_add(work);
        en.agent_busy_ns = en.agent_busy_ns.saturating_add(work);
    }

    /// After enclave `e`'s agent ran: if tasks wait for idle CPUs, its loop runs again shortly.
    pub(crate) fn after_step(&self, e: usize) {
        let mut st = self.lock();
        st.update_gap(e);
        if st.starved(e) && !st.encs[e].poll_pending {
            st.encs[e].poll_pending = true;
            let t = st.now + POLL_NS;
            st.push(t, Kind::Poll(e));
        }
    }

    /// Enclave `e`'s agent died: fail its READY transactions with NO_AGENT; the fallback policy takes over.
    pub(crate) fn agent_died(&self, e: usize) {
        let mut st = self.lock();
        st.encs[e].agent = false;
        st.hash_event(e, 7, 0, 0);
        let r = &self.r[e];
        for c in 0..r.ncpus {
            if st.cpus[c as usize].enc != Some(e) {
                continue;
            }
            if let Ok(claimed) = r.cpu_data.claim(c, c, CommitPoint::Ioctl) {
                let view = View::new(&st, r, e);
                let res = claimed.fail(TxnOutcome::NoAgent, &view).ok();
                let acts = view.take();
                if let Some(res) = res {
                    st.record(e, &res);
                }
                st.apply(e, acts, 0);
            }
        }
        st.fallback_dispatch(e);
    }

    /// Processes every event of the next instant (or moves to `until` if it comes first), never moving past
    /// `deadline` (the run's end: an event after it is left unprocessed). `false` when there is nothing left
    /// to do.
    pub(crate) fn advance(&self, until: Option<u64>, deadline: u64) -> bool {
        let mut st = self.lock();
        let next = st.events.peek().map(|e| e.0.t);
        let t = match (next, until) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) => a,
            (None, Some(b)) => b,
            (None, None) => return false,
        };
        let t = t.min(deadline.max(st.now));
        st.now = st.now.max(t);
        while st.events.peek().is_some_and(|e| e.0.t <= t) {
            let Some(Reverse(ev)) = st.events.pop() else { break };
            st.handle(ev.kind, self.r);
        }
        for e in 0..st.encs.len() {
            if st.encs[e].touched {
                if !st.encs[e].agent {
                    st.fallback_dispatch(e);
                }
                st.update_gap(e);
            }
        }
        true
    }

    /// Real-time mode: processes every event due at wall time `now` (ns since the start) on behalf of the
    /// calling CPU thread. Returns `false` once every enclave's tasks are done.
    pub(crate) fn advance_to(&self, now: u64) -> bool {
        let mut st = self.lock();
        st.now = st.now.max(now);
        while st.events.peek().is_some_and(|e| e.0.t <= now) {
            let Some(Reverse(ev)) = st.events.pop() else { break };
            st.handle(ev.kind, self.r);
        }
        for e in 0..st.encs.len() {
            if !st.encs[e].agent {
                st.fallback_dispatch(e);
            }
            st.update_gap(e);
        }
        !st.encs.iter().all(|e| e.done())
    }

    /// Real-time mode: when the next event is due (wall ns since the start).
    pub(crate) fn next_event(&self) -> Option<u64> {
        self.lock().events.peek().map(|e| e.0.t)
    }

    pub(crate) fn fill_report(&self, e: usize, rep: &mut Report) {
        let mut st = self.lock();
        st.update_gap(e);
        let now = st.now;
        let unfinished = st
            .tasks
            .iter()
            .enumerate()
            .filter(|(_, t)| t.enc == e && !matches!(t.st, Ts::Dead | Ts::Pending))
            .map(|(i, _)| i as u32)
            .collect();
        let en = &mut st.encs[e];
        rep.tasks_arrived = en.arrived;
        rep.tasks_completed = en.completed;
        rep.tasks_departed = en.departed;
        rep.tasks_total = en.cfg.task_count();
        rep.virtual_ns = now;
        rep.enclave_ns = if en.done() { en.last_done_ns } else { now };
        rep.worker_cpus = en.workers;
        rep.agent_cpus = en.cfg.agent_cpus;
        rep.offered_load_permille = en.offered_permille;
        rep.cpu_busy_ns = en.cpu_busy_ns;
        rep.agent_busy_ns = en.agent_busy_ns;
        rep.competing_takes = en.competing_takes;
        rep.timer_expiries = en.timer_count;
        rep.agent_cost = en.cfg.agent_cost;
        let mut lat = std::mem::take(&mut en.latencies);
        lat.sort_unstable();
        rep.latencies = lat;
        rep.responses = std::mem::take(&mut en.responses);
        rep.txn_outcomes =
            TxnOutcome::ALL.iter().zip(en.outcomes.iter()).filter(|(_, n)| **n > 0).map(|(o, n)| (*o, *n)).collect();
        rep.messages_produced = en.produced;
        rep.messages_dropped = en.dropped;
        rep.ring_overflows =
            en.queues.iter().map(|q| Consumer::attach(q.region.clone()).map_or(0, |c| c.overflow() as u64)).sum();
        rep.messages_left = en
            .queues
            .iter()
            .map(|q| Consumer::attach(q.region.clone()).map_or(0, |mut c| c.drain(|_| ()).unwrap_or(0) as u64))
            .sum();
        rep.invariant_violations = en.violations;
        rep.latches_dropped = en.latches_dropped;
        rep.fallback_dispatches = en.fallback;
        rep.longest_gap_ns = en.longest_gap;
        rep.trace_hash = en.hash;
        rep.machine_events = st.events_handled;
        rep.unfinished = unfinished;
    }
}

impl Enc {
    /// Every task of the enclave exited or departed.
    fn done(&self) -> bool {
        self.completed + self.departed == self.cfg.task_count()
    }
}

impl<'r> State<'r> {
    fn push(&mut self, t: u64, kind: Kind) {
        self.seq += 1;
        self.events.push(Reverse(Ev { t, seq: self.seq, kind }));
    }

    fn hash_event(&mut self, e: usize, code: u64, a: u64, b: u64) {
        let en = &mut self.encs[e];
        for v in [self.now, code, a, b] {
            en.hash = (en.hash ^ v).wrapping_mul(0x0100_0000_01b3);
            en.hash ^= en.hash >> 29;
        }
    }

    fn set_state(&mut self, t: usize, s: Ts) {
        let e = self.tasks[t].enc;
        let old = self.tasks[t].st;
        if old == Ts::Runnable {
            self.encs[e].runnable -= 1;
        }
        if s == Ts::Runnable {
            self.encs[e].runnable += 1;
            self.tasks[t].runnable_since = self.now;
        }
        self.tasks[t].st = s;
    }

    fn starved(&self, e: usize) -> bool {
        self.encs[e].runnable > 0 && self.encs[e].idle_workers > 0
    }

    fn update_gap(&mut self, e: usize) {
        let starved = self.starved(e);
        let now = self.now;
        let en = &mut self.encs[e];
        if starved {
            en.gap_start.get_or_insert(now);
        } else if let Some(s) = en.gap_start.take() {
            en.longest_gap = en.longest_gap.max(now - s);
        }
    }

    /// Produces `m` with `seqnum` into queue `q` of enclave `e` and wakes its agent.
    fn deliver(&mut self, e: usize, q: Option<QueueId>, seqnum: u32, m: &Message) {
        let en = &mut self.encs[e];
        let Some(sq) = q.and_then(|q| en.queues.get(q.0 as usize)) else { return };
        let wake = sq.wake_cpu;
        match sq.producer.produce(m, seqnum) {
            Ok(()) => {
                en.produced += 1;
                en.unread += 1;
            }
            Err(_) => en.dropped += 1,
        }
        if let Some(c) = wake.and_then(|c| self.cpus.get_mut(c as usize)) {
            // Waking the agent: a lockless agent-barrier increment, published when the agent runs (here: now).
            c.barrier.wake();
            if let Some(w) = c.word.as_mut() {
                c.barrier.publish(w);
            }
        }
    }

    /// Bumps task `t`'s barrier and produces the message `f` builds, with the new barrier as seqnum.
    fn task_msg(&mut self, t: usize, f: impl FnOnce(&Task<'r>) -> Message) {
        let e = self.tasks[t].enc;
        let q = self.encs[e].routing.route(&self.tasks[t].route);
        let task = &mut self.tasks[t];
        let Some(w) = task.word.as_mut() else { return };
        let seq = w.bump_barrier_then(|s| s);
        let m = f(task);
        self.hash_event(e, 1, t as u64, m.msg_type() as u64);
        self.deliver(e, q, seq, &m);
    }

    /// Produces CPU message `m` about `cpu` (seqnum: the CPU agent's barrier, bumped) and wakes the agent.
    fn cpu_msg(&mut self, e: usize, cpu: u32, code: u64, m: Message) {
        let q = self.encs[e].routing.route(&self.cpus[cpu as usize].route);
        let c = &mut self.cpus[cpu as usize];
        if let Some(w) = c.word.as_mut() {
            let seq = c.barrier.bump_then(w, |s| s);
            self.hash_event(e, code, cpu as u64, m.msg_type() as u64);
            self.deliver(e, q, seq, &m);
        }
    }

    /// Adds the cost `f` picks to enclave `e`'s step in progress; returns the step's cost so far (the delay
    /// before what this operation decides takes effect). Free outside a deterministic step.
    fn charge(&mut self, e: usize, f: impl FnOnce(&AgentCost) -> u64) -> u64 {
        let en = &mut self.encs[e];
        if !en.in_step {
            return 0;
        }
        en.step_cost = en.step_cost.saturating_add(f(&en.cfg.agent_cost));
        en.step_cost
    }

    /// Whether task `t` may run on `cpu` (its affinity).
    fn allowed(&self, t: usize, cpu: u32) -> bool {
        self.tasks[t].affinity.as_ref().is_none_or(|a| a.contains(&cpu))
    }

    fn next_seqnum(&mut self, cpu: u32) -> u64 {
        let c = &mut self.cpus[cpu as usize];
        c.seqnum += 1;
        c.seqnum
    }

    /// Accounts the running task's time on `cpu` and takes it off the CPU (no message).
    fn off_cpu(&mut self, cpu: u32) -> Option<usize> {
        let now = self.now;
        let c = &mut self.cpus[cpu as usize];
        let t = c.current.take()?;
        if c.worker && !c.taken {
            if let Some(e) = c.enc {
                self.encs[e].idle_workers += 1;
            }
        }
        c.gen += 1;
        let ran = now.saturating_sub(c.started);
        let task = &mut self.tasks[t];
        self.encs[task.enc].cpu_busy_ns += ran;
        task.burst_left = task.burst_left.saturating_sub(ran);
        task.runtime += ran;
        task.last_cpu = cpu as i32;
        if let Some(w) = task.word.as_mut() {
            w.set_runtime(task.runtime);
        }
        Some(t)
    }

    fn start(&mut self, cpu: u32, t: usize) {
        self.start_after(cpu, t, 0);
    }

    /// Runs task `t` on `cpu`; the switch happens `delay` ns from now (the agent's work before its commit).
    /// Returns the scheduling latency it recorded (`None` if the start was refused as a violation).
    fn start_after(&mut self, cpu: u32, t: usize, delay: u64) -> Option<u64> {
        let e = self.tasks[t].enc;
        if self.tasks[t].st != Ts::Runnable
            || self.cpus[cpu as usize].current.is_some()
            || self.cpus[cpu as usize].enc != Some(e)
        {
            self.encs[e].violations += 1;
            return None;
        }
        let at = self.now.saturating_add(delay);
        let waited = at - self.tasks[t].runnable_since;
        self.encs[e].latencies.push(waited);
        self.set_state(t, Ts::Running(cpu));
        if let Some(w) = self.tasks[t].word.as_mut() {
            w.switched_in(at as i64);
        }
        if self.encs[e].cfg.agent_runnability && self.encs[e].agent {
            // The CPU's agent gives the CPU to the task.
            self.cpu_msg(e, cpu, 9, Message::CpuAgentBlocked(PayloadAgentBlocked { cpu: cpu as i32 }));
        }
        let c = &mut self.cpus[cpu as usize];
        c.current = Some(t);
        if c.worker && !c.taken {
            self.encs[e].idle_workers -= 1;
        }
        c.need_not_idle = false;
        c.gen += 1;
        c.started = at;
        let gen = c.gen;
        let end = at.saturating_add(self.tasks[t].burst_left.max(1));
        self.push(end, Kind::BurstEnd(cpu, gen));
        self.hash_event(e, 2, t as u64, cpu as u64);
        self.update_gap(e);
        Some(waited)
    }

    fn preempt(&mut self, cpu: u32, was_latched: bool) {
        let Some(t) = self.off_cpu(cpu) else { return };
        let seq = self.next_seqnum(cpu);
        self.set_state(t, Ts::Runnable);
        self.task_msg(t, |task| {
            Message::TaskPreempt(PayloadTaskPreempt {
                gtid: task.gtid.0 as u64,
                runtime: task.runtime,
                cpu_seqnum: seq,
                cpu: cpu as i32,
                was_latched: was_latched as u8,
                ..Default::default()
            })
        });
        if let Some(w) = self.tasks[t].word.as_mut() {
            w.switched_out();
        }
    }

    fn handle(&mut self, kind: Kind, r: &'r [Regions]) {
        self.events_handled += 1;
        match kind {
            Kind::Arrive(t) => {
                let e = self.tasks[t].enc;
                self.encs[e].touched = true;
                let en = &mut self.encs[e];
                if let Some(&(at, next)) = en.arrivals.get(en.next_arrival) {
                    en.next_arrival += 1;
                    self.push(at, Kind::Arrive(next));
                }
                let mut hint = self.encs[e].sw_hint;
                let Some(a) = r[e].alloc(&mut hint) else {
                    self.encs[e].violations += 1;
                    return;
                };
                self.encs[e].sw_hint = hint;
                let info = a.info();
                let word = a.init(self.tasks[t].gtid, SwFlags::TASK_RUNNABLE);
                self.tasks[t].word = Some(word);
                self.tasks[t].info = info;
                self.tasks[t].arrived_at = self.now;
                self.encs[e].arrived += 1;
                self.set_state(t, Ts::Runnable);
                self.task_msg(t, |task| {
                    Message::TaskNew(PayloadTaskNew {
                        gtid: task.gtid.0 as u64,
                        runnable: 1,
                        sw_info: task.info,
                        ..Default::default()
                    })
                });
            }
            Kind::BurstEnd(cpu, gen) => {
                if self.cpus[cpu as usize].gen != gen {
                    return;
                }
                let Some(t) = self.off_cpu(cpu) else { return };
                let e = self.tasks[t].enc;
                self.encs[e].touched = true;
                let seq = self.next_seqnum(cpu);
                self.tasks[t].bursts_left -= 1;
                let w = self.encs[e].cfg.workload;
                if self.encs[e].cfg.agent_runnability && self.encs[e].agent {
                    // The CPU needs a decision: its agent wakes up.
                    self.cpu_msg(e, cpu, 14, Message::CpuAgentWakeup(PayloadAgentWakeup { cpu: cpu as i32 }));
                }
                let depart = self.tasks[t].bursts_left == 0
                    && w.depart_permille > 0
                    && self.encs[e].rng.chance(w.depart_permille);
                if depart {
                    // setsched away: CANFREE|MSG_GATED before TASK_DEPARTED becomes visible (depart_then).
                    self.set_state(t, Ts::Dead);
                    self.encs[e].departed += 1;
                    self.encs[e].last_done_ns = self.now;
                    let q = self.encs[e].routing.route(&self.tasks[t].route);
                    if let Some(word) = self.tasks[t].word.take() {
                        let gtid = self.tasks[t].gtid.0 as u64;
                        let (_retired, seqnum) = word.depart_then(|s| s);
                        let m = Message::TaskDeparted(PayloadTaskDeparted {
                            gtid,
                            cpu_seqnum: seq,
                            cpu: cpu as i32,
                            from_switchto: 0,
                            was_current: 1,
                            _pad: [0; 2],
                        });
                        self.hash_event(e, 1, t as u64, MSG_TASK_DEPARTED as u64);
                        self.deliver(e, q, seqnum, &m);
                    }
                } else if self.tasks[t].bursts_left == 0 {
                    // Exit: CANFREE before TASK_DEAD becomes visible (die_then).
                    self.set_state(t, Ts::Dead);
                    self.encs[e].completed += 1;
                    self.encs[e].last_done_ns = self.now;
                    let response = (self.tasks[t].runtime, self.now - self.tasks[t].arrived_at);
                    self.encs[e].responses.push(response);
                    let q = self.encs[e].routing.route(&self.tasks[t].route);
                    if let Some(word) = self.tasks[t].word.take() {
                        let (_retired, seqnum) = word.die_then(|s| s);
                        let m = Message::TaskDead(PayloadTaskDead {
                            gtid: self.tasks[t].gtid.0 as u64,
                            cpu: cpu as i32,
                            _pad: 0,
                        });
                        self.hash_event(e, 1, t as u64, MSG_TASK_DEAD as u64);
                        self.deliver(e, q, seqnum, &m);
                    }
                } else {
                    self.tasks[t].burst_left = w.service.sample(&w, &mut self.encs[e].rng);
                    if w.affinity_permille > 0 && self.encs[e].rng.chance(w.affinity_permille) {
                        // sched_setaffinity: pinned to one worker CPU of the enclave.
                        let workers: Vec<u32> = (0..self.cpus.len() as u32)
                            .filter(|&c| self.cpus[c as usize].enc == Some(e) && self.cpus[c as usize].worker)
                            .collect();
                        let pick = self.encs[e].rng.range(0, workers.len() as u64 - 1) as usize;
                        self.tasks[t].affinity = Some(Box::new([workers[pick]]));
                        self.task_msg(t, |task| {
                            Message::TaskAffinityChanged(PayloadTaskAffinityChanged { gtid: task.gtid.0 as u64 })
                        });
                    }
                    if self.encs[e].rng.chance(w.block_permille) {
                        self.set_state(t, Ts::Blocked);
                        if let Some(word) = self.tasks[t].word.as_mut() {
                            word.clear_flags(SwFlags::TASK_RUNNABLE);
                        }
                        self.task_msg(t, |task| {
                            Message::TaskBlocked(PayloadTaskBlocked {
                                gtid: task.gtid.0 as u64,
                                runtime: task.runtime,
                                cpu_seqnum: seq,
                                cpu: cpu as i32,
                                ..Default::default()
                            })
                        });
                        let wake = self.now.saturating_add(self.encs[e].rng.exp(w.mean_block_ns));
                        self.push(wake, Kind::Wake(t));
                    } else {
                        self.set_state(t, Ts::Runnable);
                        self.task_msg(t, |task| {
                            Message::TaskYield(PayloadTaskYield {
                                gtid: task.gtid.0 as u64,
                                runtime: task.runtime,
                                cpu_seqnum: seq,
                                cpu: cpu as i32,
                                ..Default::default()
                            })
                        });
                    }
                    if let Some(word) = self.tasks[t].word.as_mut() {
                        word.switched_out();
                    }
                }
            }
            Kind::Wake(t) => {
                if self.tasks[t].st != Ts::Blocked {
                    return;
                }
                let e = self.tasks[t].enc;
                self.encs[e].touched = true;
                self.set_state(t, Ts::Runnable);
                if let Some(word) = self.tasks[t].word.as_mut() {
                    word.set_flags(SwFlags::TASK_RUNNABLE);
                }
                self.task_msg(t, |task| {
                    Message::TaskWakeup(PayloadTaskWakeup {
                        gtid: task.gtid.0 as u64,
                        last_ran_cpu: task.last_cpu,
                        wake_up_cpu: task.last_cpu.max(0),
                        waker_cpu: -1,
                        ..Default::default()
                    })
                });
            }
            Kind::Tick(cpu) => {
                let Some(e) = self.cpus[cpu as usize].enc else { return };
                if self.encs[e].done() {
                    return;
                }
                if self.cpus[cpu as usize].current.is_some() {
                    self.encs[e].touched = true;
                    self.cpu_msg(e, cpu, 3, Message::CpuTick(PayloadCpuTick { cpu: cpu as i32, is_agent: 0 }));
                }
                if let Some(tick) = self.encs[e].cfg.tick_ns {
                    let t = self.now.saturating_add(tick);
                    self.push(t, Kind::Tick(cpu));
                }
            }
            Kind::Poll(e) => {
                self.encs[e].poll_pending = false;
                self.encs[e].touched = true;
            }
            Kind::Busy(e) => {
                self.encs[e].busy_poll = false;
                self.encs[e].touched = true;
            }
            Kind::Compete(cpu) => {
                let Some(e) = self.cpus[cpu as usize].enc else { return };
                let Some(comp) = self.encs[e].cfg.competing else { return };
                if self.encs[e].done() {
                    return;
                }
                self.encs[e].touched = true;
                let c = cpu as i32;
                let next = if !self.cpus[cpu as usize].taken {
                    // A higher-class task takes the CPU: whatever ghOSt ran there is preempted.
                    self.cpus[cpu as usize].taken = true;
                    if self.cpus[cpu as usize].current.is_none() {
                        self.encs[e].idle_workers -= 1;
                    }
                    self.encs[e].competing_takes += 1;
                    if std::mem::take(&mut self.cpus[cpu as usize].need_not_idle) {
                        let m = Message::CpuNotIdle(PayloadCpuNotIdle { cpu: c, _pad: 0, next_gtid: 0 });
                        self.cpu_msg(e, cpu, 10, m);
                    }
                    if self.cpus[cpu as usize].current.is_some() {
                        self.preempt(cpu, false);
                    }
                    self.cpu_msg(e, cpu, 11, Message::CpuBusy(PayloadCpuBusy { cpu: c }));
                    self.encs[e].rng.exp(comp.mean_busy_ns)
                } else {
                    self.cpus[cpu as usize].taken = false;
                    if self.cpus[cpu as usize].current.is_none() {
                        self.encs[e].idle_workers += 1;
                    }
                    self.cpu_msg(e, cpu, 12, Message::CpuAvailable(PayloadCpuAvailable { cpu: c }));
                    self.encs[e].rng.exp(comp.mean_free_ns)
                };
                let t = self.now.saturating_add(next);
                self.push(t, Kind::Compete(cpu));
            }
            Kind::Timer(e) => {
                let Some(period) = self.encs[e].cfg.timer_ns else { return };
                if self.encs[e].done() {
                    return;
                }
                self.encs[e].touched = true;
                self.encs[e].timer_count += 1;
                let (cpu, cookie) = (self.encs[e].first_worker, self.encs[e].timer_count);
                let m = Message::CpuTimerExpired(PayloadTimer { cpu: cpu as i32, _pad: 0, r#type: 0, cookie });
                self.cpu_msg(e, cpu, 13, m);
                let t = self.now.saturating_add(period);
                self.push(t, Kind::Timer(e));
            }
        }
    }

    /// The kernel's own FIFO policy while enclave `e` has no agent: its idle CPUs run its longest-waiting
    /// tasks.
    fn fallback_dispatch(&mut self, e: usize) {
        if self.encs[e].runnable == 0 {
            return;
        }
        let idle: Vec<u32> = (0..self.cpus.len() as u32)
            .filter(|&c| {
                let c = &self.cpus[c as usize];
                c.enc == Some(e) && c.worker && !c.taken && c.current.is_none()
            })
            .collect();
        for cpu in idle {
            if self.encs[e].runnable == 0 {
                return;
            }
            let Some(t) = (0..self.tasks.len())
                .filter(|&t| self.tasks[t].enc == e && self.tasks[t].st == Ts::Runnable && self.allowed(t, cpu))
                .min_by_key(|&t| (self.tasks[t].runnable_since, t))
            else {
                continue;
            };
            self.encs[e].fallback += 1;
            self.start(cpu, t);
        }
    }

    fn record(&mut self, e: usize, res: &CommitResult) {
        let i = res.outcome.raw().wrapping_sub(i32::MIN) as usize;
        if let Some(n) = self.encs[e].outcomes.get_mut(i) {
            *n += 1;
        }
        self.hash_event(e, 4, res.cpu as u64, i as u64);
    }

    /// Applies a commit's actions; latched tasks switch in `delay` ns from now (the agent's work so far).
    fn apply(&mut self, e: usize, acts: Actions, delay: u64) {
        for cpu in acts.bumps {
            let c = &mut self.cpus[cpu as usize];
            c.barrier.bump_locked();
            if let Some(w) = c.word.as_mut() {
                c.barrier.publish(w);
            }
        }
        // Tasks latched by this batch, with the runnable-since time their latch consumed and the latency it
        // recorded (removed again, exactly, if a later member drops the latch).
        let mut latched: Vec<(usize, u64, u64)> = Vec::new();
        let mut told: Vec<usize> = Vec::new();
        for l in acts.latches {
            self.cpus[l.cpu as usize].seqnum = self.cpus[l.cpu as usize].seqnum.max(l.seqnum);
            let g = l.snap.gtid;
            if g == Gtid::IDLE && !l.poisoned && l.snap.run_flags.contains(RunFlags::NEED_CPU_NOT_IDLE) {
                // One-shot: CPU_NOT_IDLE when something else displaces the idle task.
                self.cpus[l.cpu as usize].need_not_idle = true;
            }
            if l.already {
                continue;
            }
            if l.poisoned {
                if let Some(t) = task_index(&self.tasks, g).filter(|&t| self.tasks[t].st == Ts::Runnable) {
                    if told.contains(&t) {
                        continue;
                    }
                    told.push(t);
                    let seq = l.seqnum;
                    self.task_msg(t, |task| {
                        Message::TaskPreempt(PayloadTaskPreempt {
                            gtid: task.gtid.0 as u64,
                            runtime: task.runtime,
                            cpu_seqnum: seq,
                            cpu: l.cpu as i32,
                            was_latched: 1,
                            ..Default::default()
                        })
                    });
                }
                continue;
            }
            if g.is_task() {
                let Some(t) = task_index(&self.tasks, g) else {
                    self.encs[e].violations += 1;
                    continue;
                };
                if self.cpus[l.cpu as usize].current == Some(t) {
                    continue;
                }
                // Latched a moment ago by an earlier member of this batch (it never ran): migrating it here
                // drops that latch (§5.4 step 7), leaving the other CPU as the latch left it.
                if let (Ts::Running(other), Some(&(_, since, waited))) =
                    (self.tasks[t].st, latched.iter().find(|(x, _, _)| *x == t))
                {
                    self.off_cpu(other);
                    self.set_state(t, Ts::Runnable);
                    self.tasks[t].runnable_since = since;
                    let lat = &mut self.encs[e].latencies;
                    if let Some(i) = lat.iter().rposition(|&x| x == waited) {
                        lat.remove(i);
                    }
                    self.encs[e].latches_dropped += 1;
                    self.hash_event(e, 8, t as u64, other as u64);
                }
                if self.cpus[l.cpu as usize].current.is_some() {
                    self.preempt(l.cpu, false);
                }
                let since = (self.tasks[t].st == Ts::Runnable).then_some(self.tasks[t].runnable_since);
                if let (Some(since), Some(waited)) = (since, self.start_after(l.cpu, t, delay)) {
                    latched.push((t, since, waited));
                }
                if l.snap.run_flags.contains(RunFlags::SEND_TASK_ON_CPU) {
                    let (now, seq) = (self.now, l.seqnum);
                    self.task_msg(t, |task| {
                        Message::TaskOnCpu(PayloadTaskOnCpu {
                            gtid: task.gtid.0 as u64,
                            commit_time: now,
                            cpu_seqnum: seq,
                            cpu: l.cpu as i32,
                            _pad: 0,
                        })
                    });
                }
            } else if g == Gtid::NULL || g == Gtid::IDLE {
                self.preempt(l.cpu, false);
            } else if g == Gtid::AGENT {
                let c = &mut self.cpus[l.cpu as usize];
                c.barrier.bump_locked();
                if let Some(w) = c.word.as_mut() {
                    c.barrier.publish(w);
                }
            }
        }
    }
}

fn task_index(tasks: &[Task<'_>], g: Gtid) -> Option<usize> {
    let pid = GtidLayout::DEFAULT.pid(g).checked_sub(GTID_PID_BASE)? as usize;
    tasks.get(pid).filter(|t| t.gtid == g).map(|_| pid)
}

struct Latch {
    cpu: u32,
    snap: TxnSnapshot,
    already: bool,
    seqnum: u64,
    /// A member of a failed sync group: the latch is dropped.
    poisoned: bool,
}

#[derive(Default)]
struct Actions {
    latches: Vec<Latch>,
    bumps: Vec<u32>,
}

/// The kernel's answers for validation, read from the state; actions are recorded and applied after the
/// commit returns (the simulation is single-threaded, so nothing observes the difference).
struct View<'s, 'r> {
    st: &'s State<'r>,
    r: &'s Regions,
    /// The enclave whose transactions are being committed.
    e: usize,
    acts: RefCell<Actions>,
}

impl<'s, 'r> View<'s, 'r> {
    fn new(st: &'s State<'r>, r: &'s Regions, e: usize) -> Self {
        View { st, r, e, acts: RefCell::new(Actions::default()) }
    }
    fn take(self) -> Actions {
        self.acts.into_inner()
    }
    /// What an earlier member of this commit latched on `cpu` (the last one wins), if anything.
    fn latched_on(&self, cpu: u32) -> Option<Gtid> {
        self.acts
            .borrow()
            .latches
            .iter()
            .rev()
            .find(|l| l.cpu == cpu && l.snap.gtid != Gtid::AGENT)
            .map(|l| l.snap.gtid)
    }
}

impl KernelView for View<'_, '_> {
    /// A task latched by an earlier member of a sync group is not running (a latch is not a switch): a later
    /// member naming it migrates it, dropping the earlier latch (§5.4 step 7), which [`State::apply`] does.
    fn lookup(&self, gtid: Gtid) -> Option<TaskInfo> {
        let t = task_index(&self.st.tasks, gtid)?;
        let task = &self.st.tasks[t];
        if task.st == Ts::Pending {
            return None;
        }
        let on_cpu = match task.st {
            Ts::Running(c) => Some(c),
            _ => None,
        };
        Some(TaskInfo {
            is_agent: false,
            departed: false,
            dead: task.st == Ts::Dead,
            barrier: task.word.as_ref().map_or(0, |w| w.barrier().0),
            runnable: matches!(task.st, Ts::Runnable | Ts::Running(_)),
            enclave: task.enc as u64,
            on_cpu,
            forced_off: false,
        })
    }
    fn cpu_online(&self, cpu: u32) -> bool {
        cpu < self.r.ncpus
    }
    /// A CPU of another enclave (or an agent's own CPU) has no enclave as far as this one's commits go.
    fn cpu_enclave(&self, cpu: u32) -> Option<u64> {
        self.st.cpus.get(cpu as usize).filter(|c| c.worker && c.enc == Some(self.e)).map(|_| self.e as u64)
    }
    fn agent_present(&self, cpu: u32) -> bool {
        self.st.cpus.get(cpu as usize).is_some_and(|c| c.enc == Some(self.e)) && self.st.encs[self.e].agent
    }
    fn idle_running(&self, cpu: u32) -> bool {
        self.st.cpus.get(cpu as usize).is_some_and(|c| c.current.is_none())
    }
    /// The simulator's agents are agents of the target's enclave; a task may only be committed to a CPU of
    /// its affinity (NOT_PERMITTED otherwise: the kernel refuses to migrate a task off its `cpus_mask`).
    fn sync_commit_permitted(&self, _caller: u32, target: u32, gtid: Gtid) -> bool {
        task_index(&self.st.tasks, gtid).is_none_or(|t| self.st.allowed(t, target))
    }
    /// A ghOSt task is current, or an earlier member of this commit latched one.
    fn ghost_busy(&self, cpu: u32) -> bool {
        match self.latched_on(cpu) {
            Some(g) => g.is_task(),
            None => self.st.cpus.get(cpu as usize).is_some_and(|c| c.current.is_some()),
        }
    }
    fn higher_class_running(&self, cpu: u32) -> bool {
        self.st.cpus.get(cpu as usize).is_some_and(|c| c.taken)
    }
    fn agent_barrier(&self, cpu: u32) -> u32 {
        self.st.cpus.get(cpu as usize).map_or(0, |c| c.barrier.current().0)
    }
    fn now_ns(&self) -> i64 {
        self.st.now as i64
    }
    fn latch(&self, cpu: u32, txn: &TxnSnapshot, already_on_cpu: bool) -> u64 {
        let seqnum = self.st.cpus.get(cpu as usize).map_or(0, |c| c.seqnum) + 1;
        self.acts.borrow_mut().latches.push(Latch {
            cpu,
            snap: *txn,
            already: already_on_cpu,
            seqnum,
            poisoned: false,
        });
        seqnum
    }
    fn bump_agent_barrier(&self, cpu: u32) {
        self.acts.borrow_mut().bumps.push(cpu);
    }
}

/// The agent's view of one simulated enclave: the [`Backend`] an [`Enclave`](crate::agent::Enclave) uses.
pub struct SimBackend<'a, 'r> {
    k: &'a Kernel<'r>,
    e: usize,
}

impl<'a, 'r> SimBackend<'a, 'r> {
    pub(crate) fn new(k: &'a Kernel<'r>, e: usize) -> Self {
        SimBackend { k, e }
    }

    /// The current virtual time (ns).
    pub fn now(&self) -> u64 {
        self.k.now()
    }

    /// Another handle on the same simulated enclave (e.g. to wrap it in a backend of one's own).
    pub fn clone_of(other: &SimBackend<'a, 'r>) -> Self {
        SimBackend { k: other.k, e: other.e }
    }

    /// The enclave's index in the machine.
    pub fn enclave_index(&self) -> usize {
        self.e
    }

    fn r(&self) -> &Regions {
        &self.k.r[self.e]
    }
}

impl core::fmt::Debug for SimBackend<'_, '_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SimBackend").field("enclave", &self.e).finish()
    }
}

impl Backend for SimBackend<'_, '_> {
    type Region = Mem;
    type StatusRegion = Mem;

    fn abi_version(&self) -> u32 {
        GHOST_VERSION
    }
    fn cpus(&self) -> CpuSet {
        let st = self.k.lock();
        CpuSet::from_cpus(st.cpus.iter().enumerate().filter(|(_, c)| c.worker && c.enc == Some(self.e)).map(|(i, _)| i))
            .unwrap_or_default()
    }
    fn ncpus(&self) -> u32 {
        self.r().ncpus
    }
    fn status_region(&self) -> Mem {
        self.r().status[0].0.clone()
    }
    fn status_regions(&self) -> Vec<Mem> {
        self.r().status.iter().map(|(m, _)| m.clone()).collect()
    }
    fn cpu_data(&self) -> Mem {
        self.r().cpu_data_mem.clone()
    }
    fn create_queue(&self, nelems: u32) -> Result<(QueueId, Mem), AgentError> {
        let region = Arc::new(OwnedRegion::new(queue_mapsize(nelems.clamp(1, GHOST_MAX_QUEUE_ELEMS))));
        let producer = Producer::init(region.clone(), nelems)
            .map_err(|_| AgentError::Invalid("queue size must be a power of two in 1..=65536"))?;
        let mut st = self.k.lock();
        let en = &mut st.encs[self.e];
        let id = QueueId(en.queues.len() as u32);
        en.queues.push(SimQueue { producer, region: region.clone(), wake_cpu: None });
        Ok((id, region))
    }
    fn set_default_queue(&self, queue: QueueId) -> Result<(), AgentError> {
        let mut st = self.k.lock();
        if queue.0 as usize >= st.encs[self.e].queues.len() {
            return Err(AgentError::NotFound);
        }
        st.encs[self.e].routing.set_default(queue);
        st.hash_event(self.e, 5, queue.0 as u64, 0);
        Ok(())
    }
    fn associate_queue(&self, queue: QueueId, gtid: Gtid, barrier: u32) -> Result<AssocStatus, AgentError> {
        let st = self.k.lock();
        if queue.0 as usize >= st.encs[self.e].queues.len() {
            return Err(AgentError::NotFound);
        }
        // Tasks of other enclaves are invisible here (ENOENT), as a gtid lookup scoped to the enclave.
        let t = task_index(&st.tasks, gtid).filter(|&t| st.tasks[t].enc == self.e).ok_or(AgentError::NotFound)?;
        let task = &st.tasks[t];
        let Some(w) = task.word.as_ref() else { return Err(AgentError::NotFound) };
        associate(&task.route, w.barrier().0, barrier, queue, false).map_err(|e| match e {
            AssocError::Stale { .. } => AgentError::Stale,
        })
    }
    fn config_queue_wakeup(&self, queue: QueueId, cpu: Option<u32>) -> Result<(), AgentError> {
        let mut st = self.k.lock();
        if cpu.is_some_and(|c| st.cpus.get(c as usize).is_none_or(|c| c.enc != Some(self.e))) {
            return Err(AgentError::Invalid("wake-up CPU outside the enclave"));
        }
        let q = st.encs[self.e].queues.get_mut(queue.0 as usize).ok_or(AgentError::NotFound)?;
        q.wake_cpu = cpu;
        Ok(())
    }
    fn commit(&self, caller: u32, cpus: &[u32]) -> Result<(), AgentError> {
        let r = self.r();
        if caller >= r.ncpus {
            return Err(AgentError::BadCpu(caller));
        }
        if let Some(&bad) = cpus.iter().find(|&&c| c >= r.ncpus) {
            return Err(AgentError::BadCpu(bad));
        }
        let mut st = self.k.lock();
        if !st.encs[self.e].agent {
            return Err(AgentError::Gone);
        }
        for &target in cpus {
            let Ok(claimed) = r.cpu_data.claim(caller, target, CommitPoint::Ioctl) else { continue };
            let delay = st.charge(self.e, |c| c.per_txn_ns);
            let view = View::new(&st, r, self.e);
            let res = claimed.commit(&view);
            let acts = view.take();
            st.record(self.e, &res);
            st.apply(self.e, acts, delay);
        }
        Ok(())
    }
    fn sync_group_commit(&self, caller: u32, cpus: &[u32]) -> Result<bool, AgentError> {
        let r = self.r();
        let mut members = vec![0u64; (r.ncpus as usize).div_ceil(64)];
        for &c in cpus {
            let w = members.get_mut(c as usize / 64).ok_or(AgentError::BadCpu(c))?;
            *w |= 1 << (c % 64);
        }
        let mut st = self.k.lock();
        if !st.encs[self.e].agent {
            return Err(AgentError::Gone);
        }
        let delay = st.charge(self.e, |c| c.per_group_ns + c.per_group_member_ns * cpus.len() as u64);
        let view = View::new(&st, r, self.e);
        let mut results = Vec::new();
        let res = r
            .cpu_data
            .commit_group(caller, &mut members, &view, |c| results.push(*c))
            .map_err(|_| AgentError::Invalid("sync group"))?;
        let mut acts = view.take();
        for c in &results {
            st.record(self.e, c);
        }
        if !res.committed {
            // The group failed: the kernel's rendezvous is poisoned, so no member's latch takes effect. A task
            // the agent saw COMPLETE is told it is runnable again (TASK_PREEMPT, was_latched).
            for l in acts.latches.iter_mut().filter(|l| !l.already) {
                l.poisoned = true;
            }
        }
        st.apply(self.e, acts, delay);
        Ok(res.committed)
    }
    fn free_status_word(&self, info: GhostSwInfo) -> Result<(), AgentError> {
        let _st = self.k.lock();
        let w = self.r().writer(info.id).ok_or(AgentError::NotFound)?;
        w.free(info.id, info.index).map_err(|e| match e {
            FreeError::NotFound => AgentError::NotFound,
            _ => AgentError::Invalid("status word is not CANFREE or not allocated"),
        })
    }
    /// Virtual time.
    fn now(&self) -> u64 {
        self.k.now()
    }
    /// The enclave's CPUs reserved for agents (`Config::agent_cpus`).
    fn agent_cpus(&self) -> CpuSet {
        let st = self.k.lock();
        CpuSet::from_cpus(
            st.cpus.iter().enumerate().filter(|(_, c)| !c.worker && c.enc == Some(self.e)).map(|(i, _)| i),
        )
        .unwrap_or_default()
    }
    /// The simulated machine has no topology model: CPUs are flat.
    fn topology(&self) -> Option<crate::topology::sysfs::OwnedTopology> {
        None
    }
    fn task_affinity(&self, gtid: Gtid) -> Option<CpuSet> {
        let st = self.k.lock();
        let t = task_index(&st.tasks, gtid).filter(|&t| st.tasks[t].enc == self.e)?;
        let cpus = st.tasks[t].affinity.as_ref()?;
        CpuSet::from_cpus(cpus.iter().map(|&c| c as usize)).ok()
    }
    fn agent_status_word(&self, cpu: u32) -> Result<GhostSwInfo, AgentError> {
        let st = self.k.lock();
        st.cpus
            .get(cpu as usize)
            .filter(|c| c.enc == Some(self.e))
            .and_then(|c| c.word.as_ref())
            .map(|w| w.info())
            .ok_or(AgentError::BadCpu(cpu))
    }
}
