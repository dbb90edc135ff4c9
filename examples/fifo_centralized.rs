//! A centralized FIFO agent (the ghOSt paper's global-agent model): one agent, on a CPU of its own, consumes a
//! single queue with every task's messages and schedules all other CPUs with remote transactions.
//!
//! Run it on the simulated kernel: `cargo run --release --example fifo_centralized` (see also `demo`).
#![allow(dead_code)]

use ghost_shm::abi::{GhostSwInfo, Gtid, Message};
use ghost_shm::agent::{AgentError, AgentQueue, Backend, Enclave};
use ghost_shm::sim::{Agent, AgentStats};
use ghost_shm::status::Barrier;
use std::collections::{BTreeMap, VecDeque};

#[derive(Debug, Default)]
struct Task {
    /// The task's barrier as far as we know (the task barrier of our transactions).
    seqnum: u32,
    /// Seqnum of the last message of this task (0: none yet).
    last_msg: u32,
    runnable: bool,
    queued: bool,
    sw: Option<GhostSwInfo>,
    /// The kernel reported an affinity for it (checked against each CPU before committing).
    pinned: bool,
}

/// The global FIFO agent.
pub struct CentralizedFifo<M: ghost_shm::shm::SharedMem> {
    queue: AgentQueue<M>,
    tasks: BTreeMap<Gtid, Task>,
    runq: VecDeque<Gtid>,
    running: Vec<Option<Gtid>>,
    /// The enclave's CPUs with `None` in `running` (a step visits only those).
    idle: std::collections::BTreeSet<usize>,
    agent_cpu: u32,
    stats: AgentStats,
}

impl<M: ghost_shm::shm::SharedMem> CentralizedFifo<M> {
    /// Attaches to `enclave`: a queue for everything, set as default; tasks already in the enclave are
    /// discovered through their status words and taken over (§4.4). `agent_cpu` is the CPU the agent runs on.
    pub fn start<B: Backend<Region = M>>(enclave: &Enclave<B>, slots: u32, agent_cpu: u32) -> Result<Self, AgentError> {
        let queue = enclave.create_queue(slots)?;
        enclave.set_default_queue(&queue)?;
        let n = enclave.backend().ncpus() as usize;
        let mut me = CentralizedFifo {
            queue,
            tasks: BTreeMap::new(),
            runq: VecDeque::new(),
            running: vec![None; n],
            idle: enclave.cpus().iter().collect(),
            agent_cpu,
            stats: AgentStats::default(),
        };
        for found in enclave.discover_all() {
            let (sw, mut snap) = found?;
            for _attempt in 0..2 {
                match enclave.associate(&me.queue, snap.gtid, snap.barrier.0) {
                    // A TASK_NEW is still on its way: it will tell us about the task.
                    Ok(st) if st.brand_new => {}
                    Ok(_) => {
                        let runnable = snap.runnable() && !snap.on_cpu();
                        me.tasks.insert(
                            snap.gtid,
                            Task {
                                seqnum: snap.barrier.0,
                                last_msg: 0,
                                runnable,
                                queued: false,
                                sw: Some(sw),
                                pinned: enclave.backend().task_affinity(snap.gtid).is_some(),
                            },
                        );
                        if runnable {
                            me.enqueue(snap.gtid);
                        }
                    }
                    // A message raced the association: re-read the word and retry once.
                    Err(AgentError::Stale) => {
                        snap = enclave.status_word(sw)?;
                        continue;
                    }
                    // The task is gone; free its word if the kernel is done with it.
                    Err(_) => {
                        if snap.can_free() {
                            let _ = enclave.free_status_word(sw);
                        }
                    }
                }
                break;
            }
        }
        Ok(me)
    }

    fn enqueue(&mut self, g: Gtid) {
        if let Some(t) = self.tasks.get_mut(&g) {
            if t.runnable && !t.queued {
                t.queued = true;
                self.runq.push_back(g);
            }
        }
    }

    fn off_cpu(&mut self, g: Gtid, cpu: i32) {
        if let Some(slot) = self.running.get_mut(cpu as usize) {
            if *slot == Some(g) {
                *slot = None;
                self.idle.insert(cpu as usize);
            }
        }
    }

    fn handle<B: Backend<Region = M>>(&mut self, enclave: &Enclave<B>, seqnum: u32, m: Message) {
        self.stats.messages += 1;
        let Some(g) = m.gtid() else { return }; // CPU messages: nothing to do for a FIFO
        let t = self.tasks.entry(g).or_default();
        // Messages of a task carry strictly increasing seqnums. (A task taken over through discovery starts
        // from its status word's barrier, which a message already in the queue may repeat: not a violation.)
        if t.last_msg != 0 && !Barrier(seqnum).is_newer_than(Barrier(t.last_msg)) {
            self.stats.seqnum_violations += 1;
        }
        t.last_msg = seqnum;
        if t.seqnum == 0 || Barrier(seqnum).is_newer_than(Barrier(t.seqnum)) {
            t.seqnum = seqnum;
        }
        match m {
            Message::TaskNew(p) => {
                t.runnable = p.runnable != 0;
                t.sw = Some(p.sw_info);
                t.pinned = enclave.backend().task_affinity(g).is_some();
                self.enqueue(g);
            }
            Message::TaskAffinityChanged(_) => t.pinned = enclave.backend().task_affinity(g).is_some(),
            Message::TaskWakeup(_) => {
                t.runnable = true;
                self.enqueue(g);
            }
            Message::TaskBlocked(p) => {
                t.runnable = false;
                self.off_cpu(g, p.cpu);
            }
            Message::TaskYield(p) => {
                t.runnable = true;
                self.off_cpu(g, p.cpu);
                self.enqueue(g);
            }
            Message::TaskPreempt(p) => {
                t.runnable = true;
                self.off_cpu(g, p.cpu);
                self.enqueue(g);
            }
            Message::TaskDead(p) => {
                let sw = t.sw;
                self.tasks.remove(&g);
                self.off_cpu(g, p.cpu);
                if let Some(sw) = sw {
                    let _ = enclave.free_status_word(sw);
                }
            }
            // It left the enclave: forget it like a dead task.
            Message::TaskDeparted(p) => {
                let sw = t.sw;
                self.tasks.remove(&g);
                self.off_cpu(g, p.cpu);
                if let Some(sw) = sw {
                    let _ = enclave.free_status_word(sw);
                }
            }
            _ => {}
        }
    }
}

impl<B: Backend> Agent<B> for CentralizedFifo<B::Region> {
    fn step(&mut self, enclave: &Enclave<B>) -> Result<(), AgentError> {
        let mut msgs = Vec::new();
        self.queue.consumer().drain(|d| msgs.push((d.seqnum, d.message)))?;
        self.stats.overflows_seen += self.queue.consumer().new_overflows() as u64;
        for (seqnum, m) in msgs {
            self.handle(enclave, seqnum, m);
        }
        // Pair idle CPUs with the longest-waiting runnable tasks.
        let mut picks = Vec::new();
        for &cpu in &self.idle {
            if self.runq.is_empty() {
                break;
            }
            // The longest-waiting task that may run here (its affinity, where the kernel says).
            let mut i = 0;
            while i < self.runq.len() {
                let g = self.runq[i];
                let Some(t) = self.tasks.get_mut(&g) else {
                    self.runq.remove(i);
                    continue;
                };
                if !t.runnable {
                    t.queued = false;
                    self.runq.remove(i);
                    continue;
                }
                if t.pinned && enclave.backend().task_affinity(g).is_some_and(|a| !a.contains(cpu)) {
                    i += 1;
                    continue;
                }
                t.queued = false;
                self.runq.remove(i);
                picks.push((cpu as u32, g, t.seqnum));
                break;
            }
        }
        if picks.is_empty() {
            return Ok(());
        }
        let mut txns = picks.iter().map(|&(cpu, ..)| enclave.txn(cpu)).collect::<Result<Vec<_>, _>>()?;
        let mut pending = Vec::new();
        for (txn, &(_, g, seqnum)) in txns.iter_mut().zip(&picks) {
            if let Ok(open) = txn.open() {
                pending.push((open.target(g).task_barrier(seqnum).commit(), g));
            }
        }
        let cpus: Vec<u32> = pending.iter().map(|(p, _)| p.cpu()).collect();
        enclave.commit(self.agent_cpu, &cpus)?;
        for (p, g) in pending {
            let cpu = p.cpu() as usize;
            match p.poll() {
                Ok(Some(o)) if o.is_success() => {
                    self.running[cpu] = Some(g);
                    self.idle.remove(&cpu);
                }
                // Stale or otherwise refused: newer messages are on their way; keep the task queued.
                _ => {
                    if let Some(t) = self.tasks.get_mut(&g) {
                        if !t.queued && t.runnable {
                            t.queued = true;
                            self.runq.push_front(g);
                        }
                    }
                }
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
    let cfg = Config { agent_cpus: 1, ..Config::default() };
    let agent_cpu = cfg.cpus - 1;
    let report = sim::run(&cfg, |e| CentralizedFifo::start(e, cfg.queue_slots, agent_cpu));
    println!("{report}");
}
