//! `fifo`: a framework policy on the module, through the crate's UAPI backend. The policy is the examples'
//! centralized FIFO (`examples/fifo_centralized.rs`, compiled here from that very file): the code the simulator
//! runs, unchanged, over `uapi::UapiBackend::module` instead of `sim::SimBackend`.
//!
//! The agent reserves the last CPU (it pins itself there: the module's "become agent"); its workload threads,
//! spawned after that, inherit that CPU and join the enclave. The FIFO commits "run T on CPU 0" whenever CPU 0
//! is idle in its view; the module enforces a commit as placement ({target} becomes the thread's allowed CPUs),
//! so every thread that was dispatched ends on CPU 0, which a thread left alone (still on the agent's CPU)
//! would not.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ghost_shm::agent::{Backend, Enclave};
use ghost_shm::framework::Options;
use ghost_shm::topology::CpuSet;
use ghost_shm::uapi::{ModuleFiles, UapiBackend};

use crate::fifo_policy::CentralizedFifo;
use crate::sys;

/// What a workload thread saw at the end.
struct Seen {
    tid: i32,
    affinity: Vec<usize>,
    rounds: u64,
}

fn worker(backend: &UapiBackend, stop: &AtomicBool, i: usize) -> Result<Seen, String> {
    backend.add_thread(None).map_err(|e| format!("join: {e}"))?;
    let mut rounds = 0u64;
    // Relaxed: the flag only says "stop"; it publishes no data (the threads are joined afterwards).
    while !stop.load(Ordering::Relaxed) {
        let until = Instant::now() + Duration::from_micros(400 + 200 * (i as u64 % 3));
        while Instant::now() < until {
            std::hint::spin_loop();
        }
        if rounds % 4 == 3 {
            std::thread::yield_now();
        } else {
            std::thread::sleep(Duration::from_micros(300));
        }
        rounds += 1;
    }
    Ok(Seen { tid: sys::gettid(), affinity: sys::affinity(), rounds })
}

/// Runs the FIFO agent with `nthreads` workload threads for `seconds`, then checks; `Err` if a check failed.
pub fn run(nthreads: usize, seconds: f64) -> Result<(), String> {
    let backend = UapiBackend::module(&ModuleFiles::default()).map_err(|e| e.to_string())?;
    let ncpus = backend.ncpus();
    if ncpus < 2 {
        return Err(format!("the centralized FIFO agent needs 2 CPUs (one of its own), the module has {ncpus}"));
    }
    let agent_cpu = ncpus - 1;
    let reserved = CpuSet::from_cpus([agent_cpu as usize]).map_err(|_| "agent CPU out of range".to_string())?;
    let backend = backend.with_agent_cpus(&reserved);
    backend.become_agent(agent_cpu, None, 1).map_err(|e| e.to_string())?;
    let enclave = Enclave::attach(backend).map_err(|e| format!("attach: {e}"))?;
    let workers_cpus = *enclave.cpus();
    let mut agent = CentralizedFifo::start_with(&enclave, Options::default().queue_slots(4096).agent_cpu(agent_cpu))
        .map_err(|e| format!("start: {e}"))?;
    enclave.backend().advertise().map_err(|e| e.to_string())?;
    let stats_before = sys::stats().map_err(|e| format!("{}: {e}", sys::STATS))?;

    let stop = AtomicBool::new(false);
    let start = Instant::now();
    let (seen, steps, drained) = std::thread::scope(|s| -> Result<_, String> {
        let handles: Vec<_> = (0..nthreads)
            .map(|i| {
                let (b, stop) = (enclave.backend(), &stop);
                s.spawn(move || worker(b, stop, i))
            })
            .collect();
        let mut steps = 0u64;
        let mut deadline: Option<Instant> = None;
        let drained = loop {
            agent.step(&enclave).map_err(|e| format!("step: {e}"))?;
            steps += 1;
            if start.elapsed().as_secs_f64() >= seconds {
                stop.store(true, Ordering::Relaxed); // see the loop: publishes nothing
            }
            if handles.iter().all(|h| h.is_finished()) {
                // Every TASK_DEAD consumed and its status word freed: the table is empty.
                if agent.tasks().is_empty() {
                    break true;
                }
                if Instant::now() > *deadline.get_or_insert_with(|| Instant::now() + Duration::from_secs(5)) {
                    break false;
                }
            }
            std::thread::sleep(Duration::from_micros(100));
        };
        let seen = handles
            .into_iter()
            .map(|h| h.join().map_err(|_| "workload thread panicked".to_string()).and_then(|r| r))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((seen, steps, drained))
    })?;

    let counters = agent.counters();
    let counter = |k: &str| counters.iter().find(|(n, _)| *n == k).map_or(0, |(_, v)| *v);
    for (name, value) in &counters {
        println!("FIFO_COUNTER {name} {value}");
    }
    let counts = agent.agent_counts();
    let st = sys::stats().map_err(|e| format!("{}: {e}", sys::STATS))?;
    let d = |k: &str| sys::stat(&st, k).unwrap_or(-1) - sys::stat(&stats_before, k).unwrap_or(0);
    let mut failed = 0;
    let mut check = |name: &str, ok: bool, detail: String| {
        println!("CHECK fifo_{name} {} {detail}", if ok { "PASS" } else { "FAIL" });
        failed += u32::from(!ok);
    };
    check(
        "messages",
        counts.messages > 0 && counts.seqnum_violations == 0 && counts.overflows_seen == 0,
        format!(
            "{} consumed, {} seqnum violations, {} overflows",
            counts.messages, counts.seqnum_violations, counts.overflows_seen
        ),
    );
    check(
        "dispatched",
        counter("dispatched") >= nthreads as u64 && counter("committed") >= nthreads as u64,
        format!(
            "{} dispatched, {} committed ({} stale retried, {} failed) onto worker CPUs {workers_cpus}; module txn_complete +{}",
            counter("dispatched"),
            counter("committed"),
            counter("stale_retried"),
            counter("run_failed"),
            d("txn_complete")
        ),
    );
    let misplaced: Vec<String> = seen
        .iter()
        .filter(|w| !(w.affinity.len() == 1 && workers_cpus.contains(w.affinity[0])))
        .map(|w| format!("tid {} affinity {:?} after {} rounds", w.tid, w.affinity, w.rounds))
        .collect();
    check(
        "placed",
        misplaced.is_empty() && seen.len() == nthreads,
        format!(
            "{} threads each placed on one worker CPU of {workers_cpus} (spawned on agent CPU {agent_cpu}) {misplaced:?}",
            seen.len()
        ),
    );
    check(
        "tasks_gone",
        drained,
        format!(
            "{} tasks left in the table after every thread exited; {} status words freed",
            agent.tasks().len(),
            counter("status_words_freed")
        ),
    );
    println!("BENCH fifo {steps} agent steps in {:.2} s", start.elapsed().as_secs_f64());
    enclave.backend().retire();
    if failed == 0 {
        println!("RESULT_FIFO PASS");
        Ok(())
    } else {
        println!("RESULT_FIFO FAIL");
        Err(format!("{failed} fifo check(s) failed"))
    }
}
