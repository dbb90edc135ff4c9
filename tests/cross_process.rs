//! Cross-process tests of the std backends: a producer process (the kernel's role) and agent processes
//! exchange messages over memfd-backed regions with futex wakeups. The agent process is killed mid-stream
//! and a new one attaches and takes over.
//!
//! Child processes re-run this test binary with `GHOST_SHM_ROLE` set; `child_process_entry` is their entry
//! point (without the variable it only checks that it is not inside a child).
#![cfg(not(miri))] // processes, memfd/mmap and futexes: not supported by Miri

use ghost_shm::abi::{self, Message, PayloadCpuTick};
use ghost_shm::queue::{Consumer, Producer};
use ghost_shm::region::{MapError, MappedRegion, ReadOnly, ReadWrite};
use ghost_shm::shm::{SharedMem, SharedMemRead};
use ghost_shm::wake::FutexDoorbell;
use rustix::fd::{AsRawFd, BorrowedFd};
use std::process::{Child, Command};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

const ROLE: &str = "GHOST_SHM_ROLE";
const FDS: &str = "GHOST_SHM_FDS";
const NELEMS: u32 = 4096;
const MESSAGES: u32 = if cfg!(debug_assertions) { 300_000 } else { 1_000_000 };

fn seen_len() -> usize {
    (MESSAGES as usize * 4).next_multiple_of(abi::PAGE_SIZE)
}

/// Makes an fd inheritable (memfds are created close-on-exec).
fn inheritable(fd: BorrowedFd<'_>) -> i32 {
    rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::empty()).unwrap();
    fd.as_raw_fd()
}

fn spawn_agent(fds: &str) -> Child {
    spawn_role("agent", fds)
}

fn spawn_role(role: &str, fds: &str) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_process_entry", "--nocapture", "--test-threads=1"])
        .env(ROLE, role)
        .env(FDS, fds)
        .spawn()
        .expect("spawn agent process")
}

/// The agent process: consume until the last message, counting each seqnum in the shared `seen` table
/// before releasing it.
fn agent(fds: &str) {
    let fds: Vec<i32> = fds.split(',').map(|f| f.parse().unwrap()).collect();
    // SAFETY: the parent passed these fds open across exec; they stay open for this process's life.
    let b = |fd| unsafe { BorrowedFd::borrow_raw(fd) };
    let q = MappedRegion::<ReadWrite>::map_fd(b(fds[0]), abi::queue_mapsize(NELEMS)).unwrap();
    let bell = FutexDoorbell::map_fd(b(fds[1])).unwrap();
    let seen = MappedRegion::<ReadWrite>::map_fd(b(fds[2]), seen_len()).unwrap();
    let mut c = Consumer::attach(&q).unwrap();
    loop {
        bell.wait_for(&mut c, Some(Duration::from_secs(1))).unwrap();
        let mut last = false;
        c.drain(|d| {
            // SAFETY: seqnum < MESSAGES, so the 4-byte counter is inside `seen` (seen_len() bytes) and aligned;
            // `seen` holds only these counters.
            unsafe { seen.fetch_add_u32(d.seqnum as usize * 4, 1, Ordering::Relaxed) };
            last |= d.seqnum == MESSAGES - 1;
        })
        .unwrap();
        if last {
            return;
        }
    }
}

const TXNS: u32 = if cfg!(debug_assertions) { 100_000 } else { 1_000_000 };

/// The agent side of the transaction exchange: commit `TXNS` transactions on CPU 0 (a ping of the agent, task
/// barrier = sequence number), each only after the previous one completed, and check every outcome.
fn txn_agent(fds: &str) {
    let fd: i32 = fds.parse().unwrap();
    // SAFETY: the parent passed this fd open across exec; it stays open for this process's life.
    let b = unsafe { BorrowedFd::borrow_raw(fd) };
    let region = MappedRegion::<ReadWrite>::map_fd(b, 2 * abi::CPU_DATA_SIZE).unwrap();
    let cpu_data = ghost_shm::txn::CpuData::new(&region, 2).unwrap();
    let mut txn = cpu_data.agent(0).unwrap();
    for i in 0..TXNS {
        let open = loop {
            match txn.open() {
                Ok(o) => break o,
                Err(_) => std::thread::yield_now(),
            }
        };
        let pending = open.target(abi::Gtid::AGENT).task_barrier(i).commit();
        let outcome = loop {
            if let Some(o) = pending.poll().unwrap() {
                break o;
            }
            std::thread::yield_now();
        };
        assert_eq!(outcome.outcome, abi::TxnOutcome::Complete, "txn {i}");
        assert_eq!(outcome.cpu_seqnum, Some(i as u64 + 1), "txn {i}: lost or duplicated");
    }
}

/// A million transactions between an agent process and the kernel's claim/validate/commit in this process, over
/// a memfd-backed `cpu_data`: every one arrives exactly once, in order, and completes.
#[test]
fn transactions_cross_processes() {
    use ghost_shm::txn::{sim::SimView, CommitPoint, CpuData};
    let region = MappedRegion::create("cpu_data", 2 * abi::CPU_DATA_SIZE).unwrap();
    let cpu_data = CpuData::new(&region, 2).unwrap();
    cpu_data.init_txn(0).unwrap();
    cpu_data.init_txn(1).unwrap();
    let view = SimView::new(2);
    let mut child = spawn_role("txn_agent", &inheritable(region.fd()).to_string());
    let start = Instant::now();
    let mut next = 0u32;
    while next < TXNS {
        assert!(start.elapsed() < Duration::from_secs(300), "agent stalled at txn {next}");
        // The kernel on CPU 1 commits CPU 0's transaction (a remote, ioctl-style commit).
        let Ok(claimed) = cpu_data.claim(1, 0, CommitPoint::Ioctl) else {
            std::thread::yield_now();
            continue;
        };
        assert_eq!(claimed.snapshot().task_barrier, next, "transactions arrive once each, in order");
        assert_eq!(claimed.commit(&view).outcome, abi::TxnOutcome::Complete);
        next += 1;
    }
    assert!(child.wait().unwrap().success(), "the agent process saw a wrong outcome");
    assert_eq!(view.cpus[0].cpu_seqnum.get(), TXNS as u64);
}

#[test]
fn child_process_entry() {
    match std::env::var(ROLE).as_deref() {
        Ok("agent") => {
            agent(&std::env::var(FDS).unwrap());
            std::process::exit(0);
        }
        Ok("txn_agent") => {
            txn_agent(&std::env::var(FDS).unwrap());
            std::process::exit(0);
        }
        Ok(other) => panic!("unknown role {other}"),
        Err(_) => assert!(std::env::var(FDS).is_err()),
    }
}

#[test]
fn messages_survive_an_agent_killed_mid_stream() {
    let q = MappedRegion::create("queue", abi::queue_mapsize(NELEMS)).unwrap();
    let bell = FutexDoorbell::create("bell").unwrap();
    let seen = MappedRegion::create("seen", seen_len()).unwrap();
    let fds = format!("{},{},{}", inheritable(q.fd()), inheritable(bell.fd()), inheritable(seen.fd()));
    let p = Producer::init(&q, NELEMS).unwrap().with_notify(bell);

    let mut a = Some(spawn_agent(&fds));
    let kill_at = MESSAGES / 3;
    let mut b = None;
    let start = Instant::now();
    for seq in 0..MESSAGES {
        if seq == kill_at {
            if let Some(mut first) = a.take() {
                first.kill().unwrap();
                first.wait().unwrap();
            }
            b = Some(spawn_agent(&fds));
        }
        let m = Message::CpuTick(PayloadCpuTick { cpu: (seq % 64) as i32, is_agent: 0 });
        while p.produce(&m, seq).is_err() {
            assert!(start.elapsed() < Duration::from_secs(120), "agents stopped consuming");
            std::thread::yield_now();
        }
    }
    assert!(a.is_none(), "the first agent was killed and reaped");
    let status = b.expect("second agent").wait().unwrap();
    assert!(status.success(), "second agent failed: {status}");

    // Nothing lost: every seqnum was handled at least once. Duplicates only for what the killed agent read but
    // had not released (at most one ring's worth), never afterwards.
    let mut dups = 0;
    for seq in 0..MESSAGES {
        // SAFETY: as in the agent: an aligned counter inside `seen`.
        let n = unsafe { seen.load_u32_relaxed(seq as usize * 4) };
        assert!(n >= 1, "message {seq} lost");
        assert!(n <= 2, "message {seq} handled {n} times");
        if n == 2 {
            assert!(seq < kill_at, "message {seq} duplicated after the hand-over");
            dups += 1;
        }
    }
    assert!(dups <= NELEMS / 2, "{dups} duplicates: more than one ring's worth");
    // The ring is drained and consistent.
    assert!(Consumer::attach(&q).is_ok());
    // SAFETY: 64/68 are the ring's head and tail words.
    let (head, tail) = unsafe { (q.load_u32(64, Ordering::Acquire), q.load_u32(68, Ordering::Acquire)) };
    assert_eq!(head, tail);
    println!("{MESSAGES} messages across processes, {dups} re-delivered after the agent was killed");
}

#[test]
fn bad_regions_are_typed_errors() {
    // Truncated file: refused before mapping (a mapping would fault beyond the end).
    let small = MappedRegion::create("small", abi::PAGE_SIZE).unwrap();
    match MappedRegion::<ReadWrite>::map_fd(small.fd(), abi::queue_mapsize(NELEMS)) {
        Err(MapError::SizeMismatch { expected, actual }) => {
            assert_eq!((expected, actual), (abi::queue_mapsize(NELEMS), abi::PAGE_SIZE as u64))
        }
        other => panic!("expected SizeMismatch, got {other:?}"),
    }
    assert!(matches!(MappedRegion::create("odd", 100), Err(MapError::BadLength(100))));
    // A queue region whose header says another version or size.
    let q = MappedRegion::create("q", abi::queue_mapsize(64)).unwrap();
    Producer::init(&q, 64).unwrap();
    // SAFETY: offset 0 (version) and 8 (nelems) are header words.
    unsafe { q.store_u32(0, 7, Ordering::Relaxed) };
    assert_eq!(Consumer::attach(&q).err(), Some(ghost_shm::queue::QueueError::BadVersion(7)));
    unsafe {
        q.store_u32(0, 0, Ordering::Relaxed);
        q.store_u32(8, 1024, Ordering::Relaxed);
    }
    assert!(matches!(Consumer::attach(&q).err(), Some(ghost_shm::queue::QueueError::LengthMismatch { .. })));
    // Nothing was written by the failed attaches: head and tail are still 0.
    // SAFETY: 64/68 are the ring's head and tail words.
    assert_eq!(unsafe { (q.load_u32(64, Ordering::Relaxed), q.load_u32(68, Ordering::Relaxed)) }, (0, 0));
    // A missing file.
    assert!(matches!(
        MappedRegion::<ReadOnly>::open(std::path::Path::new("/nonexistent/ghost"), 4096),
        Err(MapError::Os { op: "open", .. })
    ));
}

/// Produce/sleep/wake cycles between two threads: each side sleeps on its futex doorbell until the other's
/// message arrives, so every round trip is two sleeps and two wakeups. A lost wakeup would stall a side for
/// the whole (generous) timeout and fail the test.
#[test]
fn futex_ping_pong_loses_no_wakeup() {
    use std::sync::Arc;
    let rounds: u32 = if cfg!(debug_assertions) { 20_000 } else { 200_000 };
    let mk = || Arc::new(MappedRegion::create("pp", abi::queue_mapsize(64)).unwrap());
    let (qa, qb) = (mk(), mk());
    let (wait_a, wait_b) = (FutexDoorbell::in_process(), FutexDoorbell::in_process());
    let pa = Producer::init(qa.clone(), 64).unwrap().with_notify(wait_a.clone());
    let pb = Producer::init(qb.clone(), 64).unwrap().with_notify(wait_b.clone());
    let mut ca = Consumer::attach(qa).unwrap();
    let mut cb = Consumer::attach(qb).unwrap();
    let timeout = Some(Duration::from_secs(20));
    let echo = std::thread::spawn(move || {
        for i in 0..rounds {
            assert!(wait_a.wait_for(&mut ca, timeout).unwrap(), "echo side missed a wakeup at {i}");
            let d = ca.pop().unwrap().unwrap();
            assert_eq!(d.seqnum, i);
            pb.produce(&d.message, i).unwrap();
        }
        pb.overflow_count()
    });
    for i in 0..rounds {
        pa.produce(&Message::CpuTick(PayloadCpuTick { cpu: 1, is_agent: 0 }), i).unwrap();
        assert!(wait_b.wait_for(&mut cb, timeout).unwrap(), "main side missed a wakeup at {i}");
        assert_eq!(cb.pop().unwrap().unwrap().seqnum, i);
    }
    let b_drops = echo.join().unwrap();
    assert_eq!(pa.overflow_count() + b_drops, 0);
}
