//! Smoke test on a real ghOSt kernel (ABI 91), through `uapi::UapiBackend`: creates an enclave on one CPU,
//! moves a spinning thread in, schedules it with the per-CPU FIFO policy of `examples/fifo_percpu.rs` (the
//! simulator's policy file, unchanged) from an agent process, checks the thread ran on that CPU in
//! `SCHED_GHOST`, destroys the enclave and checks the thread is back in CFS.
//!
//! Without `/sys/fs/ghost` (any kernel but ghOSt's: CI, qemu's Debian kernel) it prints why it is skipped and
//! checks that detection says "absent" consistently. On a ghOSt machine, as root (CAP_SYS_NICE for `become
//! agent`), with a CPU to spare:
//!
//! ```sh
//! sudo -E cargo test --release --test ghost_kernel -- --nocapture --test-threads 1   # GHOST_SMOKE_CPU=<cpu>
//! ```
//!
//! The agent runs in a child process (this test binary again, `agent_process` with `GHOST_SMOKE_AGENT` set):
//! `destroy` SIGKILLs an enclave's agents, which must not take the test down with them.

#![cfg(not(miri))] // ghostfs, processes, mmap: not supported by Miri

#[path = "../examples/fifo_percpu.rs"]
mod fifo_percpu;

use ghost_shm::agent::Enclave;
use ghost_shm::framework::Options;
use ghost_shm::queue::QueueId;
use ghost_shm::topology::CpuSet;
use ghost_shm::uapi::ghostfs::{Ghostfs, Tunable};
use ghost_shm::uapi::UapiBackend;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const AGENT_ENV: &str = "GHOST_SMOKE_AGENT";
const SCHED_GHOST: i32 = 18;

fn sched_policy(tid: i32) -> i32 {
    std::fs::read_to_string(format!("/proc/self/task/{tid}/sched"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("policy"))
                .and_then(|l| l.split(':').nth(1))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(-1)
}

fn gettid() -> i32 {
    rustix::thread::gettid().as_raw_nonzero().get()
}

#[test]
fn smoke_on_a_ghost_kernel() {
    if std::env::var_os(AGENT_ENV).is_some() {
        return; // the agent child runs `agent_process` only
    }
    let fs = Ghostfs::system();
    if !fs.is_present() {
        println!(
            "ghost_kernel: SKIPPED: {} does not exist (not a ghOSt kernel); on a ghOSt machine run, as root: \
             cargo test --release --test ghost_kernel -- --nocapture --test-threads 1",
            fs.root().display()
        );
        // Detection agrees with itself: no version file, no enclave, no way to create one.
        assert!(fs.versions().is_err());
        assert!(fs.enclaves().is_err());
        assert!(fs.create_enclave(1).is_err());
        return;
    }
    fs.check_abi().expect("the kernel does not speak ABI 91");
    let cpu: usize = std::env::var("GHOST_SMOKE_CPU").ok().and_then(|c| c.parse().ok()).unwrap_or_else(|| {
        let online = std::fs::read_to_string("/sys/devices/system/cpu/online").expect("online CPUs");
        <CpuSet>::parse_list(online.trim()).expect("online CPU list").last().expect("a CPU")
    });
    let enclave = fs.create_any_enclave(64).expect("create an enclave");
    let mut set = CpuSet::new();
    set.insert(cpu).unwrap();
    let mut tries = 0;
    while let Err(e) = enclave.set_cpus(&set) {
        tries += 1;
        assert!(tries < 10 && e.errno() == Some(rustix::io::Errno::BUSY), "cpulist {cpu}: {e}");
        std::thread::sleep(Duration::from_millis(50));
    }
    enclave.set_tunable(Tunable::DeliverTicks, 1).expect("deliver_ticks");
    println!("ghost_kernel: enclave {} on CPU {cpu}", enclave.id());

    // The spinner: moves itself in, then counts its loops on `cpu`.
    let (stop, on_cpu, tid_slot) =
        (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let (s, c, t, e) = (stop.clone(), on_cpu.clone(), tid_slot.clone(), enclave.clone());
    let spinner = std::thread::spawn(move || {
        t.store(gettid() as u64, Ordering::Release);
        e.add_task(ghost_shm::abi::Gtid(0)).expect("move the spinner in");
        while !s.load(Ordering::Relaxed) {
            if rustix::thread::sched_getcpu() == cpu {
                c.fetch_add(1, Ordering::Relaxed);
            }
            std::hint::spin_loop();
        }
    });
    while tid_slot.load(Ordering::Acquire) == 0 {
        std::thread::yield_now();
    }
    let tid = tid_slot.load(Ordering::Acquire) as i32;

    // The agent process.
    let mut agent = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "agent_process", "--nocapture"])
        .env(AGENT_ENV, format!("{}:{cpu}", enclave.id()))
        .spawn()
        .expect("start the agent process");
    let start = Instant::now();
    while on_cpu.load(Ordering::Relaxed) < 1_000_000 && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let ran = on_cpu.load(Ordering::Relaxed);
    let policy_in = sched_policy(tid);
    let status = enclave.status().expect("enclave status");
    // Destroy: the agent is SIGKILLed, the spinner goes back to CFS.
    let ctl = enclave.open_ctl().expect("ctl");
    enclave.command(&ctl, ghost_shm::uapi::ghostfs::CtlCommand::Destroy).expect("destroy");
    // An agent that never became one (and so was not killed by destroy) must not hang the test.
    let _ = agent.kill();
    let agent_status = agent.wait().expect("agent exit");
    let policy_out = sched_policy(tid);
    stop.store(true, Ordering::Relaxed);
    spinner.join().unwrap();
    println!(
        "ghost_kernel: spinner ran {ran} loops on CPU {cpu}, policy {policy_in} (in) {policy_out} (after destroy); \
         enclave {status:?}; agent {agent_status}"
    );
    assert!(ran >= 1_000_000, "the spinner did not run on CPU {cpu} under the agent");
    assert_eq!(policy_in, SCHED_GHOST);
    assert_ne!(policy_out, SCHED_GHOST);
    assert!(status.active, "the agent never advertised itself through agent_online");
    assert!(!enclave.path().exists() || enclave.status().is_err(), "the enclave survived destroy");
}

/// The agent, in its own process: attach, start the per-CPU FIFO, a thread becomes the agent of the CPU and
/// schedules until `destroy` kills the process; the main thread advertises it.
#[test]
fn agent_process() {
    let Some(spec) = std::env::var(AGENT_ENV).ok() else { return };
    let (id, cpu) = spec.split_once(':').expect("id:cpu");
    let (id, cpu): (u64, u32) = (id.parse().unwrap(), cpu.parse().unwrap());
    let enclave_dir = Ghostfs::system().enclave(id);
    let backend = UapiBackend::ghostfs(&enclave_dir, 0).expect("attach");
    let enclave = Enclave::attach(backend).expect("enclave");
    let mut agent =
        fifo_percpu::PerCpuFifo::start_with(&enclave, Options::default().queue_slots(1024)).expect("start the agent");
    let (attached, wait_attached) = std::sync::mpsc::channel();
    std::thread::scope(|s| {
        let enclave = &enclave;
        s.spawn(move || {
            // Every file is open: become the agent of `cpu` on the runtime's (first and only) queue. From here
            // on this thread may open no ghostfs file (EDEADLK).
            enclave.backend().become_agent(cpu, Some(QueueId(0)), 100).expect("become agent");
            attached.send(()).unwrap();
            loop {
                if let Err(e) = agent.step(enclave) {
                    eprintln!("ghost_kernel agent: {e}");
                    std::process::exit(1);
                }
                std::thread::sleep(Duration::from_micros(200));
            }
        });
        // A thread that is no agent advertises the process through agent_online, once scheduling has started.
        wait_attached.recv().expect("the agent thread attached");
        enclave.backend().advertise().expect("agent_online");
    });
}
