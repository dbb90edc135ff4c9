//! `ghost-shm-kmod-agent`: a user-space agent for the `kmod/` kernel module, built on ghost-shm's agent side
//! (queue [`Consumer`], status-word [`Reader`], [`AgentTxn`](ghost_shm::txn::AgentTxn)) over the module's mmaps
//! and ghOSt ABI 91 ioctls.
//!
//! ```text
//! ghost-shm-kmod-agent test [--threads N] [--seconds S]   placement policy + workload, every check; exit 1 on failure
//! ghost-shm-kmod-agent fifo [--threads N] [--seconds S]   the examples' FIFO policy on the framework through uapi::UapiBackend
//! ghost-shm-kmod-agent hostile [--seconds S]              garbage into every shared field and ioctl (run it, kill it)
//! ghost-shm-kmod-agent stats                              the module's counters
//! ```
//!
//! The policy spreads the enclave's runnable threads over its CPUs: each thread gets a home CPU when it
//! appears, moved to the next CPU every few messages; a move is a transaction ("run gtid on CPU c, task barrier =
//! the seqnum of its latest message") committed with `GHOST_IOC_COMMIT_TXN`. The module enforces a committed
//! transaction as placement (the thread's allowed CPUs become {c}), not as ghOSt's dispatch.

#![warn(clippy::undocumented_unsafe_blocks)]

mod fifo;
/// The examples' centralized FIFO policy, compiled from the very file the simulator runs it from.
#[path = "../../../examples/fifo_centralized.rs"]
mod fifo_policy;
mod hostile;
mod sys;

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::os::fd::AsRawFd;
use std::path::Path;

use ghost_shm::abi::{self, GhostAgentWakeup, GhostIocConfigQueueWakeup, GhostSwInfo, Gtid, Message, TxnOutcome};
use ghost_shm::queue::AssocStatus;
use ghost_shm::queue::Consumer;
use ghost_shm::status::Reader;
use ghost_shm::topology::CpuSet;
use ghost_shm::txn::CpuData;
use ghost_shm::uapi::{Ctl, RunRequest};

use sys::Mapping;

const USAGE: &str =
    "usage: ghost-shm-kmod-agent test [--threads N] [--seconds S] | fifo [--threads N] [--seconds S] | hostile [--seconds S] | stats";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let r = match args.first().map(String::as_str) {
        Some("test") => parse_opts(&args[1..]).and_then(|o| run_test(o.threads, o.seconds)),
        Some("hostile") => parse_opts(&args[1..]).and_then(|o| hostile::run(o.seconds)),
        Some("fifo") => parse_opts(&args[1..]).and_then(|o| fifo::run(o.threads, o.seconds)),
        Some("stats") if args.len() == 1 => {
            std::fs::read_to_string(sys::STATS).map(|s| print!("{s}")).map_err(|e| format!("{}: {e}", sys::STATS))
        }
        _ => Err(USAGE.to_string()),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ghost-shm-kmod-agent: {e}");
            ExitCode::FAILURE
        }
    }
}

struct Opts {
    threads: usize,
    seconds: f64,
}

fn parse_opts(args: &[String]) -> Result<Opts, String> {
    let mut o = Opts { threads: 4, seconds: 3.0 };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let v = it.next().ok_or_else(|| format!("{a} needs a value\n{USAGE}"))?;
        match a.as_str() {
            "--threads" => {
                o.threads = v.parse().ok().filter(|n| (1..=256).contains(n)).ok_or("--threads: 1..=256")?;
            }
            "--seconds" => {
                o.seconds = v.parse().ok().filter(|s: &f64| *s > 0.0 && *s <= 3600.0).ok_or("--seconds: (0, 3600]")?;
            }
            _ => return Err(format!("unknown option {a}\n{USAGE}")),
        }
    }
    Ok(o)
}

/// What a workload thread observed about its own placement.
struct Observed {
    tid: i32,
    /// Its allowed CPU when it is exactly one, else −1.
    pinned: i32,
    samples: u32,
    mismatches: u32,
}

/// A workload thread: enters the enclave, sleeps, wakes, spins and yields until `stop`, then checks that it
/// runs where its affinity (the committed placement) says.
fn workload(stop: Arc<AtomicBool>, i: usize) -> Result<Observed, String> {
    sys::join_enclave().map_err(|e| format!("{}: {e}", sys::TASKS))?;
    let mut round = 0u64;
    // Relaxed: the flag only says "stop"; it publishes no data (the threads are joined afterwards).
    while !stop.load(Ordering::Relaxed) {
        let until = Instant::now() + Duration::from_micros(500 + 300 * (i as u64 % 4));
        while Instant::now() < until {
            std::hint::spin_loop();
        }
        if round % 5 == 4 {
            std::thread::yield_now();
        } else {
            std::thread::sleep(Duration::from_micros(300));
        }
        round += 1;
    }
    let aff = sys::affinity();
    let pinned = if aff.len() == 1 { aff[0] as i32 } else { -1 };
    let (mut samples, mut mismatches) = (0, 0);
    if pinned >= 0 {
        let until = Instant::now() + Duration::from_millis(30);
        while Instant::now() < until {
            samples += 1;
            if sys::sched_getcpu() != pinned {
                mismatches += 1;
            }
        }
    }
    Ok(Observed { tid: sys::gettid(), pinned, samples, mismatches })
}

#[derive(Default)]
struct TaskState {
    sw_index: Option<(u32, u32)>,
    last_seq: u32,
    msgs: u64,
    home: u32,
    last_placed: Option<u32>,
    moved_at: u64,
    runnable: bool,
    dead: bool,
    stale_probed: bool,
}

#[derive(Default)]
struct Tally {
    consumed: u64,
    seq_violations: u64,
    barrier_violations: u64,
    dead_barrier_mismatch: u64,
    sw_free_errors: u64,
    commits: u64,
    complete: u64,
    raced_stale: u64,
    gone: u64,
    unexpected: Vec<String>,
    stale_probes: u64,
    stale_refused: u64,
    sw_info_ok: u64,
    assoc_raced: u64,
    by_queue2: u64,
    groups_ok: u64,
    groups_failed: u64,
    by_type: HashMap<&'static str, u64>,
}

struct Checks {
    failed: u32,
}

impl Checks {
    fn check(&mut self, name: &str, ok: bool, detail: String) {
        println!("CHECK {name} {} {detail}", if ok { "PASS" } else { "FAIL" });
        if !ok {
            self.failed += 1;
        }
    }
}

fn err<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> String + '_ {
    move |e| format!("{what}: {e}")
}

fn run_test(nthreads: usize, seconds: f64) -> Result<(), String> {
    let mut ck = Checks { failed: 0 };
    let st = sys::stats().map_err(err(sys::STATS))?;
    let ncpus = sys::stat(&st, "cpus").map_err(|e| e.to_string())? as u32;
    let sw_bytes = sys::stat(&st, "sw_region_bytes").map_err(|e| e.to_string())? as usize;
    let cpu_bytes = sys::stat(&st, "cpu_data_bytes").map_err(|e| e.to_string())? as usize;

    // Enclave ctl, one queue, default queue, wake-up configuration.
    let ctl = Ctl::open(Path::new(sys::CTL)).map_err(|e| e.to_string())?;
    let q1 = ctl.create_queue(4096, 0).map_err(|e| e.to_string())?;
    let qfd = q1.fd().as_raw_fd();
    let qmap = Mapping::new(qfd, q1.mapsize(), libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED)
        .map_err(err("mmap queue"))?;
    ctl.set_default_queue(q1.fd()).map_err(|e| e.to_string())?;
    ctl.config_queue_wakeup(q1.fd(), &[0]).map_err(|e| e.to_string())?;
    // Three wake-up CPUs: `Ctl` refuses them itself, so the module's own refusal is probed with a raw ioctl.
    let winfo = [GhostAgentWakeup { cpu: 0, prio: 0 }; 3];
    let mut bad = GhostIocConfigQueueWakeup { qfd, w: winfo.as_ptr() as u64, ninfo: 3, ..Default::default() };
    // SAFETY: `bad` is the argument struct of CONFIG_QUEUE_WAKEUP; the module refuses ninfo 3 before reading `w`.
    let e = unsafe { sys::ioctl(ctl.fd().as_raw_fd(), abi::GHOST_IOC_CONFIG_QUEUE_WAKEUP, &mut bad) }
        .err()
        .and_then(|e| e.raw_os_error());
    ck.check("config_queue_wakeup_ninfo3_einval", e == Some(libc::EINVAL), format!("errno {e:?}"));
    // The queue's slot, for the module's per-queue counters.
    let slot = sys::stat(&sys::stats().map_err(err(sys::STATS))?, "default_queue").map_err(|e| e.to_string())?;

    // A second queue, for ASSOC_QUEUE (1024 slots: its line in the stats is told apart by that).
    let q2 = ctl.create_queue(1024, 0).map_err(|e| e.to_string())?;
    // The crate's own mapping (RW, exact size), next to the raw ones this test probes the rules with.
    let qmap2 = q2.map().map_err(err("mmap queue 2"))?;
    let st2 = sys::stats().map_err(err(sys::STATS))?;
    let slot2 = (0..16)
        .find(|i| *i != slot && sys::stat(&st2, &format!("queue{i}_nelems")).ok() == Some(1024))
        .ok_or("the second queue is not in the stats")?;

    // Status words: read-only mapping only. Opened read-write (root may), so that the module's own checks
    // decide, not the VFS's refusal of a writable shared mapping of a read-only descriptor.
    let swrw = sys::open(sys::SW, libc::O_RDWR).map_err(err(sys::SW))?;
    let w = Mapping::new(swrw, sw_bytes, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED);
    let e = w.as_ref().err().and_then(|e| e.raw_os_error());
    ck.check("sw_mmap_write_refused", e == Some(libc::EINVAL), format!("errno {e:?}"));
    drop(w);
    let p = Mapping::new(swrw, sw_bytes, libc::PROT_READ, libc::MAP_PRIVATE);
    let e = p.as_ref().err().and_then(|e| e.raw_os_error());
    ck.check("sw_mmap_private_refused", e == Some(libc::EINVAL), format!("errno {e:?}"));
    drop(p);
    let ro = Mapping::new(swrw, sw_bytes, libc::PROT_READ, libc::MAP_SHARED).map_err(err("mmap sw"))?;
    // SAFETY: our mapping; mprotect only asks (VM_MAYWRITE cleared by the module: EACCES).
    let mp = unsafe { libc::mprotect(ro.ptr.cast(), sw_bytes, libc::PROT_READ | libc::PROT_WRITE) };
    let e = (mp != 0).then(|| std::io::Error::last_os_error().raw_os_error()).flatten();
    ck.check("sw_mprotect_write_refused", e == Some(libc::EACCES), format!("mprotect errno {e:?}"));
    drop(ro);
    sys::close(swrw);
    let swfd = sys::open(sys::SW, libc::O_RDONLY).map_err(err(sys::SW))?;
    let swmap = Mapping::new(swfd, sw_bytes, libc::PROT_READ, libc::MAP_SHARED).map_err(err("mmap sw"))?;
    let x = Mapping::new(qfd, q1.mapsize(), libc::PROT_READ | libc::PROT_EXEC, libc::MAP_SHARED);
    let e = x.as_ref().err().and_then(|e| e.raw_os_error());
    ck.check("queue_mmap_exec_refused", e == Some(libc::EACCES), format!("errno {e:?}"));
    drop(x);
    let short = Mapping::new(qfd, 4096, libc::PROT_READ, libc::MAP_SHARED);
    let e = short.as_ref().err().and_then(|e| e.raw_os_error());
    ck.check("queue_mmap_wrong_size_refused", e == Some(libc::EINVAL), format!("errno {e:?}"));
    drop(short);
    // Not inherited across fork: a child touching the queue mapping dies of SIGSEGV (no threads exist yet).
    let sig = child_touch(qmap.ptr);
    ck.check("mapping_not_inherited", sig == Some(libc::SIGSEGV), format!("child ended by signal {sig:?}"));

    let cdfd = sys::open(sys::CPU_DATA, libc::O_RDWR).map_err(err(sys::CPU_DATA))?;
    let cdmap = Mapping::new(cdfd, cpu_bytes, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED)
        .map_err(err("mmap cpu_data"))?;

    // The handles borrow the mappings; the status words are mapped PROT_READ, so they get a read-only region.
    // SAFETY: `qmap` and `cdmap` were mapped PROT_READ | PROT_WRITE, MAP_SHARED, `swmap` PROT_READ, MAP_SHARED,
    // above, and none of them was touched since.
    let (qr, qr2, swr, cdr) = unsafe { (qmap.region()?, &qmap2, swmap.read_only_region()?, cdmap.region()?) };
    let mut consumer = Consumer::attach(qr).map_err(|e| format!("queue: {e}"))?;
    let mut consumer2 = Consumer::attach(qr2).map_err(|e| format!("queue 2: {e}"))?;
    let reader = Reader::attach(swr).map_err(|e| format!("status words: {e}"))?;
    let txns = CpuData::new(cdr, ncpus).map_err(|e| format!("cpu_data: {e}"))?;

    // Workload.
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..nthreads)
        .map(|i| {
            let stop = stop.clone();
            std::thread::spawn(move || workload(stop, i))
        })
        .collect();

    let mut tasks: HashMap<i64, TaskState> = HashMap::new();
    let mut touched: Vec<i64> = Vec::new();
    let mut assoc_gtid: Option<i64> = None;
    let mut assoc_state = 0u8;
    let mut batches = 0u64;
    let mut t = Tally::default();
    let mut next_home = 0u32;
    let start = Instant::now();
    let run_for = Duration::from_secs_f64(seconds);
    let mut placing = true;
    let mut dead_deadline: Option<Instant> = None;
    let stats_before = sys::stats().map_err(err(sys::STATS))?;
    loop {
        let mut batch: Vec<(u32, Message)> = Vec::new();
        consumer.drain(|d| batch.push((d.seqnum, d.message))).map_err(|e| format!("queue: {e}"))?;
        // After the first queue: a thread's messages move to queue 2 only once its barrier equals the seqnum
        // of its last message consumed here, so every message of queue 1 precedes those of queue 2.
        t.by_queue2 +=
            consumer2.drain(|d| batch.push((d.seqnum, d.message))).map_err(|e| format!("queue 2: {e}"))? as u64;
        for (seq, msg) in batch {
            t.consumed += 1;
            let (gtid, kind, runnable) = match msg {
                Message::TaskNew(p) => (p.gtid as i64, "task_new", p.runnable != 0),
                Message::TaskWakeup(p) => (p.gtid as i64, "task_wakeup", true),
                Message::TaskBlocked(p) => (p.gtid as i64, "task_blocked", false),
                Message::TaskPreempt(p) => (p.gtid as i64, "task_preempt", true),
                Message::TaskYield(p) => (p.gtid as i64, "task_yield", true),
                Message::TaskDead(p) => (p.gtid as i64, "task_dead", false),
                other => {
                    t.unexpected.push(format!("message type {:?}", other.msg_type()));
                    continue;
                }
            };
            *t.by_type.entry(kind).or_default() += 1;
            let ts = tasks.entry(gtid).or_default();
            if let Message::TaskNew(p) = msg {
                ts.sw_index = Some((p.sw_info.id, p.sw_info.index));
                ts.home = next_home % ncpus;
                next_home += 1;
                // SW_GET_INFO says where the word is, as TASK_NEW did.
                match ctl.task_status_word(Gtid(gtid)) {
                    Ok(g) if g == p.sw_info => t.sw_info_ok += 1,
                    r => t.unexpected.push(format!("SW_GET_INFO {r:?} vs TASK_NEW {:?}", p.sw_info)),
                }
                if assoc_gtid.is_none() {
                    assoc_gtid = Some(gtid);
                }
            }
            if ts.msgs > 0 && seq <= ts.last_seq {
                t.seq_violations += 1;
            }
            ts.last_seq = seq;
            ts.msgs += 1;
            let Some((sw_id, sw_index)) = ts.sw_index else {
                t.unexpected.push(format!("{kind} before TASK_NEW for gtid {gtid:#x}"));
                continue;
            };
            // The barrier is published (Release) before the message: it is at least the seqnum.
            let barrier = reader.barrier(sw_index).map_err(|e| format!("status word: {e}"))?.0;
            if barrier < seq {
                t.barrier_violations += 1;
            }
            if kind == "task_dead" {
                ts.dead = true;
                if barrier != seq {
                    t.dead_barrier_mismatch += 1;
                }
                if ctl.free_status_word(GhostSwInfo { id: sw_id, index: sw_index }).is_err() {
                    t.sw_free_errors += 1;
                }
                continue;
            }
            ts.runnable = runnable;
            if !touched.contains(&gtid) {
                touched.push(gtid);
            }
        }
        // The policy, once per batch for every thread it mentioned, with the seqnum of its latest message as the
        // task barrier (a message produced since makes the kernel refuse it as stale: that is the protocol).
        // ASSOC_QUEUE: the first thread moves to queue 2 (a stale barrier first: ESTALE; then its barrier,
        // retried while a newer message races it).
        if let Some(g) = assoc_gtid.filter(|_| placing && assoc_state < 3) {
            if let Some(ts) = tasks.get(&g).filter(|ts| !ts.dead) {
                let stale = assoc_state == 0;
                let barrier = if stale { ts.last_seq.wrapping_sub(1) } else { ts.last_seq };
                let r = ctl.associate_queue(q2.fd(), Gtid(g), barrier);
                let fresh = AssocStatus { already: false, brand_new: false };
                match (assoc_state, r) {
                    (0, Err(e)) if e.errno.raw_os_error() == libc::ESTALE => assoc_state = 1,
                    (1, Ok(s)) if s == fresh => assoc_state = 2,
                    (2, Ok(s)) if s == AssocStatus { already: true, ..fresh } => assoc_state = 3,
                    (1 | 2, Err(e)) if e.errno.raw_os_error() == libc::ESTALE => t.assoc_raced += 1,
                    (st, r) => {
                        t.unexpected.push(format!("ASSOC_QUEUE step {st}: {r:?}"));
                        assoc_state = 3;
                    }
                }
            }
        }
        // SYNC_GROUP_TXN: the touched runnable threads, one per CPU, all or none; every batch until one group
        // committed, then every 16th.
        batches += 1;
        if placing && (t.groups_ok == 0 || batches % 16 == 0) {
            let members: Vec<i64> = touched
                .iter()
                .copied()
                .filter(|g| tasks.get(g).is_some_and(|s| s.runnable && !s.dead))
                .take(ncpus.min(64) as usize)
                .collect();
            if members.len() >= 2 {
                let mut handles: Vec<_> = (0..members.len() as u32).filter_map(|c| txns.agent(c).ok()).collect();
                let mut pend = Vec::new();
                let mut mask = CpuSet::new();
                for (c, (h, g)) in handles.iter_mut().zip(&members).enumerate() {
                    if let Ok(o) = h.open() {
                        pend.push((c as u32, *g, o.target(Gtid(*g)).task_barrier(tasks[g].last_seq).commit()));
                        let _ = mask.insert(c);
                    }
                }
                let r = ctl.sync_group_commit(&mask);
                let outcomes: Vec<_> =
                    pend.iter().map(|(_, _, p)| p.poll().ok().flatten().map(|o| o.outcome)).collect();
                match r {
                    Ok(true) if outcomes.iter().all(|o| *o == Some(TxnOutcome::Complete)) => {
                        t.groups_ok += 1;
                        for (c, g, _) in &pend {
                            if let Some(ts) = tasks.get_mut(g) {
                                ts.home = *c;
                                ts.last_placed = Some(*c);
                            }
                        }
                    }
                    Ok(false) if outcomes.iter().any(|o| o.is_some_and(|o| !o.is_success())) => t.groups_failed += 1,
                    r => t.unexpected.push(format!("SYNC_GROUP_TXN {r:?} outcomes {outcomes:?}")),
                }
            }
        }
        for gtid in touched.drain(..) {
            let Some(ts) = tasks.get_mut(&gtid) else { continue };
            if !placing || !ts.runnable || ts.dead {
                continue;
            }
            let seq = ts.last_seq;
            // A deliberately stale transaction, once per thread: the task barrier one behind.
            if !ts.stale_probed && seq > 1 {
                ts.stale_probed = true;
                t.stale_probes += 1;
                if commit(&ctl, &txns, ts.home, gtid, seq - 1) == Some(TxnOutcome::TargetStale) {
                    t.stale_refused += 1;
                }
            }
            // Spread: move to the next CPU every 8 messages (and place once at first).
            let moved = ts.msgs / 8 != ts.moved_at / 8;
            if moved {
                ts.home = (ts.home + 1) % ncpus;
                ts.moved_at = ts.msgs;
            }
            if ts.last_placed == Some(ts.home) {
                continue;
            }
            t.commits += 1;
            match commit(&ctl, &txns, ts.home, gtid, seq) {
                Some(TxnOutcome::Complete) => {
                    t.complete += 1;
                    ts.last_placed = Some(ts.home);
                }
                // A newer message is already on its way: the kernel refuses, as it must.
                Some(TxnOutcome::TargetStale) => t.raced_stale += 1,
                // The thread exited after this message.
                Some(TxnOutcome::TargetNotFound) => t.gone += 1,
                other => t.unexpected.push(format!("commit outcome {other:?}")),
            }
        }
        if placing && start.elapsed() >= run_for {
            placing = false;
            stop.store(true, Ordering::Relaxed); // see the loop: publishes nothing
        }
        if !placing && workers.iter().all(|w| w.is_finished()) {
            let deadline = *dead_deadline.get_or_insert_with(|| Instant::now() + Duration::from_secs(5));
            let all_dead = tasks.values().filter(|s| s.dead).count() >= nthreads;
            let pending = consumer.has_pending().unwrap_or(true) || consumer2.has_pending().unwrap_or(true);
            if (all_dead && !pending) || Instant::now() > deadline {
                break;
            }
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    let elapsed = start.elapsed().as_secs_f64();
    let observed: Vec<Observed> = workers
        .into_iter()
        .map(|w| w.join().map_err(|_| "workload thread panicked".to_string()).and_then(|r| r))
        .collect::<Result<_, _>>()?;
    let st = sys::stats().map_err(err(sys::STATS))?;
    let get = |k: &str| sys::stat(&st, k).unwrap_or(-1);
    let produced = get(&format!("queue{slot}_produced")) + get(&format!("queue{slot2}_produced"));
    let overflow = get(&format!("queue{slot}_overflow")) + get(&format!("queue{slot2}_overflow"));
    let ring_overflow = consumer.overflow() as i64 + consumer2.overflow() as i64;

    // ---- checks ----------------------------------------------------------------------------------------------
    let dead = tasks.values().filter(|s| s.dead).count();
    ck.check(
        "threads_seen",
        tasks.len() >= nthreads && dead >= nthreads,
        format!("{} tracked, {dead} dead", tasks.len()),
    );
    ck.check("seqnums_strictly_increasing", t.seq_violations == 0, format!("{} violations", t.seq_violations));
    ck.check(
        "barrier_matches_seqnum",
        t.barrier_violations == 0 && t.dead_barrier_mismatch == 0,
        format!("{} barrier<seqnum, {} dead barrier!=seqnum", t.barrier_violations, t.dead_barrier_mismatch),
    );
    let unknown = ctl.task_status_word(Gtid((999_999i64 << 41) | 1)).err().map(|e| e.errno.raw_os_error());
    ck.check(
        "sw_get_info",
        t.sw_info_ok as usize == tasks.len() && unknown == Some(libc::ENOENT),
        format!("{} of {} match TASK_NEW's sw_info; unknown gtid -> errno {unknown:?}", t.sw_info_ok, tasks.len()),
    );
    ck.check(
        "assoc_queue",
        assoc_state == 3 && t.by_queue2 > 0,
        format!(
            "stale barrier ESTALE, then moved, then ALREADY (step {assoc_state}, {} raced); {} messages via queue 2",
            t.assoc_raced, t.by_queue2
        ),
    );
    ck.check(
        "sync_group_txn",
        t.groups_ok > 0,
        format!("{} groups committed, {} refused as a whole", t.groups_ok, t.groups_failed),
    );
    ck.check("sw_free_after_dead", t.sw_free_errors == 0, format!("{} errors", t.sw_free_errors));
    ck.check(
        "produced_eq_consumed_plus_overflow",
        produced >= 0 && produced == t.consumed as i64 + overflow && ring_overflow == overflow,
        format!("produced {produced} consumed {} overflow {overflow} (rings {ring_overflow}), 2 queues", t.consumed),
    );
    ck.check(
        "unexpected_none",
        t.unexpected.is_empty(),
        format!("{:?}", t.unexpected.iter().take(5).collect::<Vec<_>>()),
    );
    ck.check(
        "stale_txns_refused",
        t.stale_probes > 0 && t.stale_refused == t.stale_probes,
        format!("{} of {} deliberately stale txns got TARGET_STALE", t.stale_refused, t.stale_probes),
    );
    // The ioctls the module does not implement (RUN, GET_CPU_TIME, TIMERFD_SETTIME: ghOSt-only) come back
    // through `uapi::Ctl` as typed errors naming the operation, with ENOTTY.
    let unimplemented = [
        ctl.run(RunRequest::Ping { cpu: 0 }).err(),
        ctl.cpu_time(Gtid(0)).err(),
        ctl.timerfd_settime(ctl.fd(), 0, &rustix_zero_itimerspec(), None).err(),
    ];
    let names: Vec<String> = unimplemented.iter().map(|e| format!("{e:?}")).collect();
    ck.check(
        "ghost_only_ioctls_typed_enotty",
        unimplemented
            .iter()
            .zip(["GHOST_IOC_RUN", "GHOST_IOC_GET_CPU_TIME", "GHOST_IOC_TIMERFD_SETTIME"])
            .all(|(e, op)| e.is_some_and(|e| e.op == op && e.errno.raw_os_error() == libc::ENOTTY)),
        format!("{names:?}"),
    );
    let fake = commit(&ctl, &txns, 0, (999_999i64 << 41) | 1, 1);
    ck.check("unknown_gtid_refused", fake == Some(TxnOutcome::TargetNotFound), format!("{fake:?}"));
    ck.check(
        "placements_committed",
        t.complete > 0,
        format!("{} complete of {} commits ({} raced stale, {} gone)", t.complete, t.commits, t.raced_stale, t.gone),
    );
    let mut placement_bad = Vec::new();
    let mut pinned_checked = 0;
    for o in &observed {
        let ts = tasks.iter().find(|(g, _)| (**g >> 41) as i32 == o.tid).map(|(_, s)| s);
        let want = ts.and_then(|s| s.last_placed);
        match want {
            Some(c) => {
                pinned_checked += 1;
                if o.pinned != c as i32 || o.samples == 0 || o.mismatches != 0 {
                    placement_bad.push(format!(
                        "tid {} placed on {c}: affinity {} sched_getcpu mismatches {}/{}",
                        o.tid, o.pinned, o.mismatches, o.samples
                    ));
                }
            }
            None => placement_bad.push(format!("tid {} never placed", o.tid)),
        }
    }
    ck.check(
        "placements_real",
        placement_bad.is_empty() && pinned_checked == nthreads,
        format!("{pinned_checked} threads: sched_getcpu()==target {:?}", placement_bad),
    );
    let d = |k: &str| get(k) - sys::stat(&stats_before, k).unwrap_or(0);
    println!(
        "BENCH messages {} in {elapsed:.2} s = {:.0} msg/s produced from real scheduler events; produce cost {:.0} ns/msg (module's own clock, {} calls); by type {:?}",
        d("produced"),
        d("produced") as f64 / elapsed,
        d("produce_ns") as f64 / d("produce_calls").max(1) as f64,
        d("produce_calls"),
        t.by_type
    );
    println!(
        "STATS txn_complete {} txn_stale {} placements {}",
        get("txn_complete"),
        get("txn_stale"),
        get("placements")
    );
    // The mappings (declared before the handles built on them) are unmapped, and the queue and ctl fds (owned)
    // closed, when this function returns.
    for fd in [swfd, cdfd] {
        sys::close(fd);
    }
    if ck.failed == 0 {
        println!("RESULT PASS");
        Ok(())
    } else {
        println!("RESULT FAIL");
        Err(format!("{} check(s) failed", ck.failed))
    }
}

/// Forks a child that reads the byte at `p` and exits 0; the signal that ended it, if any.
fn child_touch(p: *const u8) -> Option<i32> {
    // SAFETY: called while this process has a single thread; the child only reads and exits.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: in the child: a read of a (possibly unmapped) address, then _exit without unwinding.
        unsafe {
            std::ptr::read_volatile(p);
            libc::_exit(0);
        }
    }
    if pid < 0 {
        return None;
    }
    let mut status = 0;
    // SAFETY: waiting for our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    libc::WIFSIGNALED(status).then(|| libc::WTERMSIG(status))
}

/// A disarmed timer value (`it_value` 0).
fn rustix_zero_itimerspec() -> rustix::time::Itimerspec {
    let zero = rustix::time::Timespec { tv_sec: 0, tv_nsec: 0 };
    rustix::time::Itimerspec { it_interval: zero, it_value: zero }
}

/// Commits "run `gtid` on `cpu`, task barrier `barrier`" on `cpu`'s transaction and returns its outcome
/// (`None` if the transaction could not be opened or read back).
fn commit(
    ctl: &Ctl,
    txns: &CpuData<ghost_shm::shm::RawRegion<'_>>,
    cpu: u32,
    gtid: i64,
    barrier: u32,
) -> Option<TxnOutcome> {
    if cpu >= 1024 {
        return None;
    }
    let mut a = txns.agent(cpu).ok()?;
    let pending = a.open().ok()?.target(Gtid(gtid)).task_barrier(barrier).commit();
    let mut mask = CpuSet::new();
    mask.insert(cpu as usize).ok()?;
    ctl.commit(&mask).ok()?;
    pending.poll().ok().flatten().map(|o| o.outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn options_parse_and_bad_ones_are_refused() {
        let o = parse_opts(&args(&["--threads", "8", "--seconds", "1.5"])).unwrap();
        assert_eq!((o.threads, o.seconds), (8, 1.5));
        for bad in
            [&["--threads"][..], &["--threads", "0"], &["--threads", "x"], &["--seconds", "-1"], &["--what", "1"]]
        {
            assert!(parse_opts(&args(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ioctl_numbers_are_abi_91() {
        // The crate's constants (checked in tests/abi_layout.rs) against the values measured with gcc from
        // ghOSt's ABI 91 uapi header (../shared/abi91-consts.txt), in the order the hostile mode uses.
        assert_eq!(
            sys::ALL_IOCTLS,
            [3222824705, 1074292482, 3222824707, 1075865348, 1074030341, 1075341062, 1074816776, 1074816777]
        );
    }
}
