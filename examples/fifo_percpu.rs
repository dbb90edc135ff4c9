//! A per-CPU FIFO agent: one agent per CPU, each with its own queue and run queue, committing only its own
//! CPU with local transactions checked against its agent barrier. New tasks arrive on CPU 0's queue (the
//! default) and are spread round-robin by re-associating them with the chosen CPU's queue.
//!
//! Run it on the simulated kernel: `cargo run --release --example fifo_percpu` (see also `demo`).
#![allow(dead_code)]

use ghost_shm::abi::{GhostSwInfo, Gtid, Message, TxnOutcome};
use ghost_shm::agent::{AgentError, AgentQueue, Backend, Enclave};
use ghost_shm::sim::{Agent, AgentStats};
use ghost_shm::status::Barrier;
use std::collections::{BTreeMap, VecDeque};

struct Task {
    /// The task's barrier as far as we know (the task barrier of our transactions).
    seqnum: u32,
    /// Seqnum of the last message of this task (0: none yet).
    last_msg: u32,
    runnable: bool,
    cpu: usize,
    sw: Option<GhostSwInfo>,
    /// The CPU index it was committed to (its `running` slot), until a message says it left.
    on: Option<usize>,
}

struct PerCpu<M: ghost_shm::shm::SharedMem> {
    cpu: u32,
    queue: AgentQueue<M>,
    runq: VecDeque<Gtid>,
    running: Option<Gtid>,
}

/// One FIFO agent per CPU (driven from one process here).
pub struct PerCpuFifo<M: ghost_shm::shm::SharedMem> {
    cpus: Vec<PerCpu<M>>,
    tasks: BTreeMap<Gtid, Task>,
    next: usize,
    stats: AgentStats,
}

impl<M: ghost_shm::shm::SharedMem> PerCpuFifo<M> {
    /// Attaches: a queue per CPU (waking that CPU's agent), CPU 0's as default; existing tasks are discovered
    /// through the status words and spread over the CPUs (§4.4).
    pub fn start<B: Backend<Region = M>>(enclave: &Enclave<B>, slots: u32) -> Result<Self, AgentError> {
        let mut cpus = Vec::new();
        for cpu in enclave.cpus().iter() {
            let queue = enclave.create_queue(slots)?;
            enclave.config_queue_wakeup(&queue, Some(cpu as u32))?;
            cpus.push(PerCpu { cpu: cpu as u32, queue, runq: VecDeque::new(), running: None });
        }
        if cpus.is_empty() {
            return Err(AgentError::Invalid("enclave without CPUs"));
        }
        enclave.set_default_queue(&cpus[0].queue)?;
        let mut me = PerCpuFifo { cpus, tasks: BTreeMap::new(), next: 0, stats: AgentStats::default() };
        for found in enclave.discover_all() {
            let (sw, snap) = found?;
            let c = me.next_allowed(enclave, snap.gtid);
            match enclave.associate(&me.cpus[c].queue, snap.gtid, snap.barrier.0) {
                Ok(st) if st.brand_new => {}
                Ok(_) => {
                    let runnable = snap.runnable() && !snap.on_cpu();
                    me.tasks.insert(
                        snap.gtid,
                        Task { seqnum: snap.barrier.0, last_msg: 0, runnable, cpu: c, sw: Some(sw), on: None },
                    );
                    if runnable {
                        me.cpus[c].runq.push_back(snap.gtid);
                    }
                }
                // Raced by a message (it went to CPU 0's queue: TASK_* for an unknown task creates it there),
                // or gone.
                Err(_) => {
                    if snap.can_free() {
                        let _ = enclave.free_status_word(sw);
                    }
                }
            }
        }
        Ok(me)
    }

    fn next_cpu(&mut self) -> usize {
        self.next = (self.next + 1) % self.cpus.len();
        self.next
    }

    /// Moves `g` from CPU index `from` to one its affinity allows: its run-queue entry at once, its messages
    /// too if the association is not stale (else they keep arriving at `from`, which is harmless: run-queue
    /// placement follows `Task::cpu`).
    fn migrate<B: Backend<Region = M>>(&mut self, enclave: &Enclave<B>, g: Gtid, from: usize, barrier: u32) {
        let c = self.next_allowed(enclave, g);
        let _ = enclave.associate(&self.cpus[c].queue, g, barrier);
        if let Some(t) = self.tasks.get_mut(&g) {
            t.cpu = c;
        }
        if let Some(i) = self.cpus[from].runq.iter().position(|&x| x == g) {
            self.cpus[from].runq.remove(i);
            self.cpus[c].runq.push_back(g);
        }
    }

    /// The next CPU (round robin) that `g` may run on, as far as the kernel says (`task_affinity`).
    fn next_allowed<B: Backend<Region = M>>(&mut self, enclave: &Enclave<B>, g: Gtid) -> usize {
        let allowed = enclave.backend().task_affinity(g);
        for _ in 0..self.cpus.len() {
            let c = self.next_cpu();
            if allowed.as_ref().is_none_or(|a| a.contains(self.cpus[c].cpu as usize)) {
                return c;
            }
        }
        self.next_cpu()
    }

    fn handle<B: Backend<Region = M>>(&mut self, enclave: &Enclave<B>, here: usize, seqnum: u32, m: Message) {
        self.stats.messages += 1;
        let Some(g) = m.gtid() else { return };
        let t = self.tasks.entry(g).or_insert(Task {
            seqnum: 0,
            last_msg: 0,
            runnable: false,
            cpu: here,
            sw: None,
            on: None,
        });
        // Messages of a task carry strictly increasing seqnums. (A task taken over through discovery starts
        // from its status word's barrier, which a message already in the queue may repeat: not a violation.)
        if t.last_msg != 0 && !Barrier(seqnum).is_newer_than(Barrier(t.last_msg)) {
            self.stats.seqnum_violations += 1;
        }
        t.last_msg = seqnum;
        if t.seqnum == 0 || Barrier(seqnum).is_newer_than(Barrier(t.seqnum)) {
            t.seqnum = seqnum;
        }
        let owner = t.cpu;
        match m {
            Message::TaskNew(p) => {
                t.sw = Some(p.sw_info);
                t.runnable = p.runnable != 0;
                // Place it: move its messages to the chosen CPU's queue (needs the barrier we just saw).
                let c = self.next_allowed(enclave, g);
                let t = self.tasks.get_mut(&g).unwrap();
                if enclave.associate(&self.cpus[c].queue, g, seqnum).is_ok() {
                    t.cpu = c;
                }
                if t.runnable {
                    let c = t.cpu;
                    self.cpus[c].runq.push_back(g);
                }
            }
            Message::TaskWakeup(_) | Message::TaskYield(_) | Message::TaskPreempt(_) => {
                t.runnable = true;
                if let Some(c) = t.on.take().filter(|&c| self.cpus[c].running == Some(g)) {
                    self.cpus[c].running = None;
                }
                if !self.cpus[owner].runq.contains(&g) {
                    self.cpus[owner].runq.push_back(g);
                }
            }
            Message::TaskBlocked(_) => {
                t.runnable = false;
                if let Some(c) = t.on.take().filter(|&c| self.cpus[c].running == Some(g)) {
                    self.cpus[c].running = None;
                }
            }
            // Its CPU is no longer allowed: move it (and its messages) to one that is.
            Message::TaskAffinityChanged(_) => {
                let cpu = self.cpus[owner].cpu as usize;
                if enclave.backend().task_affinity(g).is_some_and(|a| !a.contains(cpu)) {
                    self.migrate(enclave, g, owner, seqnum);
                }
            }
            // Dead, or it left the enclave: forget it.
            Message::TaskDead(_) | Message::TaskDeparted(_) => {
                let sw = t.sw;
                let on = t.on;
                self.tasks.remove(&g);
                if let Some(c) = on.filter(|&c| self.cpus[c].running == Some(g)) {
                    self.cpus[c].running = None;
                }
                if let Some(sw) = sw {
                    let _ = enclave.free_status_word(sw);
                }
            }
            _ => {}
        }
    }
}

impl<B: Backend> Agent<B> for PerCpuFifo<B::Region> {
    fn step(&mut self, enclave: &Enclave<B>) -> Result<(), AgentError> {
        for i in 0..self.cpus.len() {
            // The agent barrier is read *before* draining: a message that arrives afterwards bumps it and the
            // local commit fails with AGENT_STALE instead of acting on stale state.
            let cpu = self.cpus[i].cpu;
            let agent_barrier = enclave.agent_barrier(cpu)?;
            let mut msgs = Vec::new();
            self.cpus[i].queue.consumer().drain(|d| msgs.push((d.seqnum, d.message)))?;
            self.stats.overflows_seen += self.cpus[i].queue.consumer().new_overflows() as u64;
            for (seqnum, m) in msgs {
                self.handle(enclave, i, seqnum, m);
            }
            if self.cpus[i].running.is_some() {
                continue;
            }
            let Some(g) = self.cpus[i].runq.pop_front() else { continue };
            let Some(t) = self.tasks.get(&g).filter(|t| t.runnable && t.cpu == i) else { continue };
            let mut txn = enclave.txn(cpu)?;
            let Ok(open) = txn.open() else {
                self.cpus[i].runq.push_front(g);
                continue;
            };
            let pending = open.target(g).task_barrier(t.seqnum).agent_barrier(agent_barrier).commit();
            enclave.commit(cpu, &[cpu])?;
            match pending.poll() {
                Ok(Some(o)) if o.is_success() => {
                    self.cpus[i].running = Some(g);
                    if let Some(t) = self.tasks.get_mut(&g) {
                        t.on = Some(i);
                    }
                }
                Ok(Some(o)) if o.outcome == TxnOutcome::TargetNotFound => {}
                // Not allowed here (its affinity changed): run it elsewhere.
                Ok(Some(o)) if o.outcome == TxnOutcome::NotPermitted => {
                    self.cpus[i].runq.push_front(g);
                    let seqnum = self.tasks.get(&g).map_or(0, |t| t.seqnum);
                    self.migrate(enclave, g, i, seqnum);
                }
                _ => self.cpus[i].runq.push_front(g),
            }
        }
        Ok(())
    }

    fn stats(&self) -> AgentStats {
        self.stats
    }
}

fn main() {
    use ghost_shm::sim::{self, Config};
    let cfg = Config::default();
    let report = sim::run(&cfg, |e| PerCpuFifo::start(e, cfg.queue_slots));
    println!("{report}");
}
