use super::ghostfs::{
    parse_gtid, parse_status, parse_versions, CtlCommand, EnclaveStatus, Ghostfs, GhostfsError, Tunable,
};
use super::*;
use std::path::PathBuf;
use std::string::{String, ToString};
use std::{format, vec};

/// A temporary directory laid out like ghostfs (regular files stand in for the kernel's).
struct FakeTree(PathBuf);

impl FakeTree {
    fn new(name: &str) -> FakeTree {
        let dir = std::env::temp_dir().join(format!("ghost-shm-uapi-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("enclave_1/sw_regions")).unwrap();
        std::fs::write(dir.join("version"), "90\n91\n").unwrap();
        std::fs::write(dir.join("ctl"), "").unwrap();
        for (f, text) in [
            ("abi_version", "91\n"),
            ("status", "version 91\nactive no\nnr_tasks 3\n"),
            ("cpulist", "0-3,8\n"),
            ("ctl", "1"),
            ("tasks", ""),
            ("agent_online", "0"),
            ("deliver_ticks", "0\n"),
            ("runnable_timeout", "0\n"),
        ] {
            std::fs::write(dir.join("enclave_1").join(f), text).unwrap();
        }
        FakeTree(dir)
    }
    fn fs(&self) -> Ghostfs {
        Ghostfs::at(&self.0)
    }
    fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.0.join(rel)).unwrap()
    }
}

impl Drop for FakeTree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
#[cfg_attr(miri, ignore)] // files, ioctls and mmap: not under Miri's isolation
fn top_level_versions_and_enclave_creation() {
    let t = FakeTree::new("top");
    let fs = t.fs();
    assert!(fs.is_present());
    assert_eq!(fs.versions().unwrap(), [90, 91]);
    fs.check_abi().unwrap();
    std::fs::write(t.0.join("version"), "84\n90\n").unwrap();
    assert_eq!(fs.check_abi(), Err(GhostfsError::AbiUnsupported { supported: vec![84, 90] }));
    assert_eq!(fs.enclaves().unwrap(), [1]);
    let e = fs.create_enclave(7).unwrap();
    assert_eq!(t.read("ctl"), "create 7 91");
    assert_eq!((e.id(), e.path()), (7, t.0.join("enclave_7").as_path()));
    assert!(!Ghostfs::at(t.0.join("nowhere")).is_present());
    assert!(matches!(Ghostfs::at(t.0.join("nowhere")).versions(), Err(GhostfsError::Os { op: "read", .. })));
}

#[test]
#[cfg_attr(miri, ignore)] // files, ioctls and mmap: not under Miri's isolation
fn enclave_files() {
    let t = FakeTree::new("enclave");
    let e = t.fs().enclave(1);
    assert_eq!(e.abi_version().unwrap(), 91);
    assert_eq!(e.status().unwrap(), EnclaveStatus { abi: 91, active: false, nr_tasks: 3, ephemeral: None });
    assert_eq!(e.cpus().unwrap().to_string(), "0-3,8");
    e.set_cpus(&CpuSet::parse_list("2,4-5").unwrap()).unwrap();
    assert_eq!(t.read("enclave_1/cpulist"), "2,4-5");
    assert_eq!(e.tunable(Tunable::DeliverTicks).unwrap(), 0);
    e.set_tunable(Tunable::DeliverTicks, 1).unwrap();
    assert_eq!(e.tunable(Tunable::DeliverTicks).unwrap(), 1);
    e.set_tunable(Tunable::RunnableTimeoutMs, 5000).unwrap();
    assert_eq!(t.read("enclave_1/runnable_timeout"), "5000");
    e.add_task(Gtid(0)).unwrap();
    assert_eq!(t.read("enclave_1/tasks"), "0");
    assert!(!e.agent_online().unwrap());
    let online = e.advertise().unwrap();
    drop(online);
    assert_eq!(e.sw_region_path(0), t.0.join("enclave_1/sw_regions/sw_0"));
    assert_eq!(e.cpu_data_path(), t.0.join("enclave_1/cpu_data"));
    // Text commands go to the open ctl, one write each.
    // A fake tree's ctl is a plain file: the verified open refuses it (a CREATE_QUEUE answer from it could not
    // be trusted to be a new descriptor).
    let refused = e.open_ctl().unwrap_err();
    assert_eq!(refused.errno(), Some(Errno::NOTTY), "{refused}");
    // SAFETY: a plain file answers every ghOSt ioctl with ENOTTY, never with a descriptor.
    let ctl = unsafe { Ctl::open_unverified(&e.path().join("ctl")) }.unwrap();
    e.command(&ctl, CtlCommand::CreateSwRegion { id: 0, node: 1 }).unwrap();
    e.command(&ctl, CtlCommand::BecomeAgent { cpu: 3, queue: None }).unwrap();
    assert_eq!(t.read("enclave_1/ctl"), "create sw_region 0 1become agent 3 -1");
    // Malformed files are typed errors naming the file.
    std::fs::write(t.0.join("enclave_1/cpulist"), "0-x\n").unwrap();
    assert!(matches!(e.cpus(), Err(GhostfsError::Format { path, .. }) if path.ends_with("cpulist")));
    std::fs::write(t.0.join("enclave_1/agent_online"), "2").unwrap();
    assert!(matches!(e.agent_online(), Err(GhostfsError::Format { .. })));
    std::fs::write(t.0.join("enclave_1/abi_version"), "ninety-one").unwrap();
    assert!(matches!(e.abi_version(), Err(GhostfsError::Format { .. })));
}

#[test]
fn text_formats() {
    let p = std::path::Path::new("f");
    assert_eq!(
        parse_status(p, "version 91\nactive yes\nnr_tasks 12\nephemeral 4242\nfuture_key 1\n").unwrap(),
        EnclaveStatus { abi: 91, active: true, nr_tasks: 12, ephemeral: Some(4242) }
    );
    for bad in ["", "version 91\nactive maybe\nnr_tasks 1\n", "version 91\nnr_tasks 1\n", "active yes", "garbage\n"] {
        assert!(matches!(parse_status(p, bad), Err(GhostfsError::Format { .. })), "{bad:?}");
    }
    assert_eq!(parse_versions(p, "91\n").unwrap(), [91]);
    for bad in ["", "\n", "91\nx\n", "-1\n"] {
        assert!(parse_versions(p, bad).is_err(), "{bad:?}");
    }
    assert_eq!(parse_gtid(p, "2199023255553\n").unwrap(), Gtid(2199023255553));
    for bad in ["0\n", "-5\n", "", "12ab"] {
        assert!(parse_gtid(p, bad).is_err(), "{bad:?}");
    }
    let cmds = [
        (CtlCommand::Destroy, "destroy"),
        (CtlCommand::CreateSwRegion { id: 2, node: 0 }, "create sw_region 2 0"),
        (CtlCommand::BecomeAgent { cpu: 5, queue: Some(9) }, "become agent 5 9"),
        (CtlCommand::DiscoverTasks, "discover tasks"),
        (CtlCommand::DisableBpfProgLoad, "disable my bpf_prog_load"),
    ];
    for (c, text) in cmds {
        assert_eq!(c.to_string(), text);
    }
}

#[test]
fn errors_say_what_to_do() {
    let e = |errno| UapiError { op: "GHOST_IOC_RUN", errno };
    assert_eq!(e(Errno::STALE).agent_error(), AgentError::Stale);
    assert_eq!(e(Errno::NOENT).agent_error(), AgentError::NotFound);
    assert_eq!(e(Errno::SRCH).agent_error(), AgentError::NotFound);
    assert_eq!(e(Errno::NODEV).agent_error(), AgentError::Gone);
    assert_eq!(e(Errno::NOMEM).agent_error(), AgentError::NoSpace);
    assert_eq!(e(Errno::INVAL).agent_error(), AgentError::Invalid("GHOST_IOC_RUN"));
    assert!(e(Errno::BUSY).is_transient() && !e(Errno::INVAL).is_transient());
    assert_eq!(e(Errno::STALE).to_string(), format!("GHOST_IOC_RUN: {}", Errno::STALE));
}

/// Every ioctl on a file that is no ghOSt `ctl` is refused by the kernel (`ENOTTY`), reported with the
/// operation's name; arguments this side can check are refused before the call.
#[test]
#[cfg_attr(miri, ignore)] // files, ioctls and mmap: not under Miri's isolation
fn ioctls_on_a_plain_file_are_typed_errors() {
    let t = FakeTree::new("ioctl");
    // SAFETY: a plain file answers every ghOSt ioctl with ENOTTY, never with a descriptor.
    let ctl = unsafe { Ctl::open_unverified(&t.0.join("enclave_1/ctl")) }.unwrap();
    let notty = |r: Result<(), UapiError>, op: &str| {
        let e = r.unwrap_err();
        assert_eq!((e.op, e.errno), (op, Errno::NOTTY), "{e}");
    };
    let q = MappedRegion::create("not-a-queue", 4096).unwrap();
    notty(ctl.agent_status_word(0).map(drop), "GHOST_IOC_SW_GET_INFO");
    notty(ctl.task_status_word(Gtid(0)).map(drop), "GHOST_IOC_SW_GET_INFO");
    notty(ctl.free_status_word(GhostSwInfo { id: 0, index: 1 }), "GHOST_IOC_SW_FREE");
    notty(ctl.create_queue(64, 0).map(drop), "GHOST_IOC_CREATE_QUEUE");
    notty(ctl.associate_queue(q.fd(), Gtid(5), 1).map(drop), "GHOST_IOC_ASSOC_QUEUE");
    notty(ctl.set_default_queue(q.fd()), "GHOST_IOC_SET_DEFAULT_QUEUE");
    notty(ctl.config_queue_wakeup(q.fd(), &[0]), "GHOST_IOC_CONFIG_QUEUE_WAKEUP");
    notty(ctl.cpu_time(Gtid(5)).map(drop), "GHOST_IOC_GET_CPU_TIME");
    notty(ctl.commit(&CpuSet::parse_list("0-1").unwrap()), "GHOST_IOC_COMMIT_TXN");
    notty(ctl.sync_group_commit(&CpuSet::parse_list("0").unwrap()).map(drop), "GHOST_IOC_SYNC_GROUP_TXN");
    notty(ctl.run(RunRequest::Ping { cpu: 1 }), "GHOST_IOC_RUN");
    notty(ctl.run(RunRequest::Block { agent_barrier: 3, cpu: 1, run_flags: RunFlags::RTLA_ON_IDLE }), "GHOST_IOC_RUN");
    let tfd =
        rustix::time::timerfd_create(rustix::time::TimerfdClockId::Monotonic, rustix::time::TimerfdFlags::CLOEXEC)
            .unwrap();
    let zero = rustix::time::Timespec { tv_sec: 0, tv_nsec: 0 };
    let spec = rustix::time::Itimerspec { it_interval: zero, it_value: zero };
    notty(
        ctl.timerfd_settime(tfd.as_fd(), 0, &spec, Some(GhostTimer { cpu: 0, type_: 1, cookie: 2 })),
        "GHOST_IOC_TIMERFD_SETTIME",
    );
    // Checked here, before any call.
    assert_eq!(ctl.config_queue_wakeup(q.fd(), &[0, 1, 2]).unwrap_err().errno, Errno::INVAL);
    assert_eq!(ctl.create_queue(u32::MAX, 0).unwrap_err().errno, Errno::INVAL);
    assert_eq!(ctl.run(RunRequest::Ping { cpu: u32::MAX }).unwrap_err().errno, Errno::INVAL);
    assert!(matches!(Ctl::open(&t.0.join("missing")), Err(UapiError { op: "open ctl", errno: Errno::NOENT })));
    assert_eq!(Ctl::open(&t.0.join("enclave_1/ctl")).unwrap_err().errno, Errno::NOTTY, "a plain file is no ctl");
}

// ---- UapiBackend on fake trees (regular files stand in for the kernel's; every ioctl on them is ENOTTY) ----

/// A regular file of `len` zero bytes whose first bytes are a status-word region header (as the kernel writes
/// it), so that `Enclave::attach` accepts it.
fn status_file(path: &std::path::Path, len: usize) {
    let f = std::fs::File::create(path).unwrap();
    f.set_len(len as u64).unwrap();
    drop(f);
    // SAFETY: a test-owned regular file nobody else truncates.
    let rw = unsafe { MappedRegion::<ReadWrite>::open_trusted(path, len) }.unwrap();
    let capacity = ((len - 64) / 32) as u32;
    crate::status::Writer::<&MappedRegion<ReadWrite>>::with_capacity(&rw, 0, 0, capacity).unwrap();
}

fn sized_file(path: &std::path::Path, len: u64) {
    std::fs::File::create(path).unwrap().set_len(len).unwrap();
}

/// The module's files under a temporary directory: 2 CPUs, a 128 KiB status-word region.
fn fake_module(name: &str, stats: &str) -> (FakeTree, ModuleFiles) {
    let t = FakeTree::new(name);
    let files = ModuleFiles::under(&t.0);
    std::fs::create_dir_all(files.ctl.parent().unwrap()).unwrap();
    std::fs::create_dir_all(files.stats.parent().unwrap()).unwrap();
    std::fs::write(&files.ctl, "").unwrap();
    std::fs::write(&files.tasks, "").unwrap();
    std::fs::write(&files.stats, stats).unwrap();
    status_file(&files.status_words, 128 << 10);
    sized_file(&files.cpu_data, 2 * 4096);
    (t, files)
}

const MODULE_STATS: &str = "enclave 1\ncpus 2\nsw_region_bytes 131072\ncpu_data_bytes 8192\ntasks 0\nqueue 0 nelems 64 produced 1 overflow 0\n";

#[test]
#[cfg_attr(miri, ignore)] // files, ioctls and mmap: not under Miri's isolation
fn module_backend_attaches_and_maps_errors() {
    use crate::agent::{Backend, Enclave};
    let (t, files) = fake_module("module", MODULE_STATS);
    // Plain files are no module devices: the verified attach refuses them.
    let e = UapiBackend::module(&files).unwrap_err();
    assert!(matches!(e, OpenError::Uapi(UapiError { errno: Errno::NOTTY, .. })), "{e:?}");
    // A device as ctl (/dev/null) but plain region files: the regions are refused, not mapped.
    let e = UapiBackend::module(&ModuleFiles { ctl: "/dev/null".into(), ..files.clone() }).unwrap_err();
    assert!(matches!(e, OpenError::NotKernelFile { region: "status words" }), "{e:?}");
    let b = unverified_module(&files).unwrap().with_agent_cpus(&CpuSet::parse_list("1,7").unwrap());
    assert!(!b.is_ghostfs());
    assert_eq!((b.ncpus(), b.cpus().to_string(), b.agent_cpus().to_string()), (2, "0".into(), "1".into()));
    // Every region has its capability: status words read-only, cpu_data read-write.
    assert!(!b.status_region().is_writable() && b.cpu_data().is_writable());
    b.add_thread(None).unwrap();
    assert_eq!(t.read("proc/ghost_shm/tasks"), "0");
    b.add_thread(Some(42)).unwrap();
    assert_eq!(t.read("proc/ghost_shm/tasks"), "42");
    assert_eq!(b.destroy(), Ok(false));
    b.advertise().unwrap();
    // The whole stack: the agent API attaches over it, and an ioctl the "kernel" refuses is a typed error.
    let e = Enclave::attach(b).unwrap();
    assert_eq!(e.status_words().id(), 0);
    assert_eq!(e.create_queue(64).err(), Some(AgentError::Invalid("GHOST_IOC_CREATE_QUEUE")));
    let b = e.backend();
    assert_eq!(b.set_default_queue(crate::queue::QueueId(3)), Err(AgentError::NotFound));
    assert_eq!(b.commit(1, &[0, 5]), Err(AgentError::BadCpu(5)));
    assert_eq!(b.commit(1, &[0]), Err(AgentError::Invalid("GHOST_IOC_COMMIT_TXN")));
    assert_eq!(b.agent_status_word(0), Err(AgentError::Invalid("GHOST_IOC_SW_GET_INFO")));
}

#[test]
#[cfg_attr(miri, ignore)] // files, ioctls and mmap: not under Miri's isolation
fn module_backend_refuses_bad_stats_and_sizes() {
    let bad = |stats: &str| {
        let (_t, files) = fake_module("module-bad", stats);
        unverified_module(&files).unwrap_err().to_string()
    };
    assert!(bad("sw_region_bytes 131072\ncpu_data_bytes 8192\n").contains("no 'cpus' line"));
    assert!(bad("cpus x\nsw_region_bytes 131072\ncpu_data_bytes 8192\n").contains("not a number"));
    assert!(bad("cpus 0\nsw_region_bytes 131072\ncpu_data_bytes 0\n").contains("out of range"));
    assert!(bad("cpus 3\nsw_region_bytes 131072\ncpu_data_bytes 8192\n").contains("is not 3 CPUs"));
    // The stats and the file disagree: the mapping is refused, not made short.
    let e = bad("cpus 2\nsw_region_bytes 262144\ncpu_data_bytes 8192\n");
    assert!(e.starts_with("mapping status words"), "{e}");
    let (_t, mut files) = fake_module("module-missing", MODULE_STATS);
    files.ctl = files.ctl.with_file_name("nothing");
    let e = unverified_module(&files).unwrap_err();
    assert!(matches!(e, OpenError::Uapi(UapiError { op: "open ctl", errno: Errno::NOENT })), "{e:?}");
}

/// The module backend over a fake tree's plain files.
fn unverified_module(files: &ModuleFiles) -> Result<UapiBackend, OpenError> {
    // SAFETY: the tests never shrink their files while mapped, and the plain ctl file answers every ghOSt ioctl
    // with ENOTTY, never with a descriptor.
    unsafe { UapiBackend::module_unverified(files) }
}

/// The ghostfs backend over a fake tree's plain files.
fn unverified_ghostfs(e: &super::ghostfs::EnclaveDir) -> Result<UapiBackend, OpenError> {
    // SAFETY: as in `unverified_module`.
    unsafe { UapiBackend::ghostfs_unverified(e, 0) }
}

/// `enclave_1` of a fake ghostfs with `cpu_data` for `ncpus` CPUs and `sw_regions/sw_0` (which the kernel
/// would create on `create sw_region 0 0`).
fn fake_ghostfs(name: &str, ncpus: u64) -> FakeTree {
    let t = FakeTree::new(name);
    sized_file(&t.0.join("enclave_1/cpu_data"), ncpus * 4096);
    status_file(&t.0.join("enclave_1/sw_regions/sw_0"), crate::abi::SW_REGION_SIZE);
    t
}

#[test]
#[cfg_attr(miri, ignore)] // files, ioctls and mmap: not under Miri's isolation
fn ghostfs_backend_brings_up_like_the_reference_agent() {
    use crate::agent::{Backend, Enclave};
    let t = fake_ghostfs("gfs", 16);
    let e = t.fs().enclave(1);
    assert!(UapiBackend::ghostfs(&e, 0).is_err(), "plain files are no ghostfs");
    let b = unverified_ghostfs(&e).unwrap();
    assert!(b.is_ghostfs());
    assert_eq!(t.read("enclave_1/ctl"), "create sw_region 0 0");
    assert_eq!((b.ncpus(), b.cpus().to_string()), (16, "0-3,8".into()));
    b.become_agent(2, None, 3).unwrap();
    assert!(t.read("enclave_1/ctl").ends_with("become agent 2 -1"));
    assert_eq!(b.become_agent(2, Some(crate::queue::QueueId(0)), 3).unwrap_err().errno, Errno::BADF);
    b.advertise().unwrap();
    b.retire();
    b.add_thread(None).unwrap();
    assert_eq!(t.read("enclave_1/tasks"), "0");
    let enclave = Enclave::attach(b.with_agent_cpus(&CpuSet::parse_list("8").unwrap())).unwrap();
    assert_eq!(enclave.cpus().to_string(), "0-3");
    assert_eq!(enclave.agent_cpus().to_string(), "8");
    assert_eq!(enclave.backend().destroy(), Ok(true));
    assert!(t.read("enclave_1/ctl").ends_with("destroy"));
}

#[test]
#[cfg_attr(miri, ignore)] // files, ioctls and mmap: not under Miri's isolation
fn ghostfs_backend_refuses_another_abi_and_missing_regions() {
    let t = fake_ghostfs("gfs-abi", 4);
    std::fs::write(t.0.join("enclave_1/abi_version"), "90\n").unwrap();
    assert!(matches!(unverified_ghostfs(&t.fs().enclave(1)), Err(OpenError::AbiMismatch { enclave: 90 })));
    let t = fake_ghostfs("gfs-nosw", 4);
    std::fs::remove_file(t.0.join("enclave_1/sw_regions/sw_0")).unwrap();
    let e = unverified_ghostfs(&t.fs().enclave(1)).unwrap_err();
    assert!(matches!(e, OpenError::Uapi(UapiError { op: "open sw_regions/sw_0", errno: Errno::NOENT })), "{e:?}");
    let t = fake_ghostfs("gfs-cd", 4);
    sized_file(&t.0.join("enclave_1/cpu_data"), 4096 + 100);
    let e = unverified_ghostfs(&t.fs().enclave(1)).unwrap_err();
    assert!(matches!(e, OpenError::Map { region: "cpu_data", error: MapError::BadLength(4196) }), "{e:?}");
    let e = unverified_ghostfs(&t.fs().enclave(9)).unwrap_err();
    assert!(e.to_string().contains("enclave_9/abi_version"), "{e}");
}

#[test]
fn module_stats_give_the_layout() {
    let l = super::backend::parse_module_layout(MODULE_STATS).unwrap();
    assert_eq!((l.cpus, l.sw_region_bytes, l.cpu_data_bytes), (2, 131072, 8192));
    // `cpus` is not the prefix of another key's line (`cpus_x 9` does not count).
    let l = super::backend::parse_module_layout("cpus_x 9\ncpus 1\nsw_region_bytes 4096\ncpu_data_bytes 4096\n");
    assert_eq!(l.unwrap().cpus, 1);
    let e = super::backend::parse_module_layout("cpus 1\ncpu_data_bytes 4096\n").unwrap_err();
    assert!(e.to_string().contains("no 'sw_region_bytes' line"), "{e}");
}
