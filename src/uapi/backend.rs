//! [`UapiBackend`]: the agent framework's [`Backend`] over the ghOSt UAPI, on a real ghOSt kernel (ghostfs) or
//! on this crate's kernel module (its device files).
//!
//! One UAPI layer, two kernels: every ioctl goes through [`Ctl`], every region is a [`MappedRegion`] (status
//! words [`ReadOnly`], queues and `cpu_data` [`ReadWrite`]). Only how the enclave is found and configured
//! differs:
//!
//! | step | ghOSt kernel ([`UapiBackend::ghostfs`]) | kernel module ([`UapiBackend::module`]) |
//! |---|---|---|
//! | control file | `enclave_<id>/ctl` | `/dev/ghost_shm` |
//! | ABI check | `enclave_<id>/abi_version` | the module is built from this crate: ABI 91 |
//! | CPUs | `cpulist` | every CPU (`cpus` in `/proc/ghost_shm/stats`) |
//! | status words | `create sw_region 0 <node>`, `sw_regions/sw_0` (size from `fstat`) | `/dev/ghost_shm_sw` (size from the stats) |
//! | `cpu_data` | `cpu_data` (size from `fstat`) | `/dev/ghost_shm_cpu_data` (size from the stats) |
//! | [`become_agent`](UapiBackend::become_agent) | `become agent <cpu> <qfd>` (retried on `EBUSY`) | pins the caller to `cpu` |
//! | [`advertise`](UapiBackend::advertise) | holds `agent_online` open | nothing to advertise |
//! | [`add_thread`](UapiBackend::add_thread) | the thread's gtid into `tasks` | its tid into `/proc/ghost_shm/tasks` |
//!
//! The module's semantics differ from ghOSt's (a committed transaction *places* the task, CFS runs it; no agent
//! status words; queue wake-ups wake nobody: agents poll); see the README.
//!
//! A policy written for the simulator runs here unchanged (this is what the qemu test's `fifo` agent does, with
//! `examples/fifo_centralized.rs`); without the module the example only reports why it cannot attach:
//!
//! ```
//! use ghost_shm::agent::{Backend, Enclave};
//! use ghost_shm::framework::{Centralized, Ctx, Options, Policy, RunQueue, Task};
//! use ghost_shm::topology::CpuSet;
//! use ghost_shm::uapi::{ModuleFiles, UapiBackend};
//!
//! #[derive(Default)]
//! struct Fifo(RunQueue);
//! impl Policy for Fifo {
//!     fn name(&self) -> &'static str {
//!         "fifo"
//!     }
//!     fn task_runnable(&mut self, _: &mut Ctx<'_>, task: &Task) {
//!         self.0.push_back(task.gtid);
//!     }
//!     fn schedule(&mut self, ctx: &mut Ctx<'_>) {
//!         for cpu in ctx.idle_cpus() {
//!             if !self.0.is_empty() {
//!                 ctx.run_next(cpu, &mut self.0);
//!             }
//!         }
//!     }
//! }
//!
//! match UapiBackend::module(&ModuleFiles::default()) {
//!     Ok(backend) => {
//!         // The last CPU is the agent's: it leaves the worker CPUs, and the agent thread is pinned there.
//!         let agent_cpu = backend.ncpus() - 1;
//!         let backend = backend.with_agent_cpus(&CpuSet::from_cpus([agent_cpu as usize]).unwrap());
//!         backend.become_agent(agent_cpu, None, 1).unwrap();
//!         let enclave = Enclave::attach(backend).unwrap();
//!         let mut agent = Centralized::start(&enclave, Fifo::default(), Options::default()).unwrap();
//!         for _ in 0..10 {
//!             agent.step(&enclave).unwrap();
//!         }
//!     }
//!     Err(e) => println!("no ghost-shm module here: {e}"),
//! }
//! ```

use super::ghostfs::{gtid_of, CtlCommand, EnclaveDir, GhostfsError};
use super::{Ctl, QueueFd, UapiError};
use crate::abi::{GhostSwInfo, Gtid, CPU_DATA_SIZE, GHOST_VERSION};
use crate::agent::{AgentError, Backend};
use crate::queue::{AssocStatus, QueueId};
use crate::region::{MapError, MappedRegion, ReadOnly, ReadWrite};
use crate::topology::{CpuSet, DEFAULT_WORDS};
use rustix::fd::{AsFd, AsRawFd, OwnedFd};
use rustix::io::Errno;
use std::format;
use std::path::{Path, PathBuf};
use std::string::{String, ToString};
use std::sync::{Arc, Mutex};
use std::vec::Vec;

/// Why a [`UapiBackend`] could not be set up.
#[derive(Debug)]
pub enum OpenError {
    /// A ghostfs file could not be read or written.
    Ghostfs(GhostfsError),
    /// A system call on the control file or a region file failed.
    Uapi(UapiError),
    /// A region could not be mapped.
    Map {
        /// Which region (`"status words"`, `"cpu_data"`).
        region: &'static str,
        /// Why.
        error: MapError,
    },
    /// The enclave speaks another ABI.
    AbiMismatch {
        /// The enclave's ABI.
        enclave: u32,
    },
    /// The module's stats file lacks a value or has a malformed one.
    Stats(String),
    /// A region file is neither a ghostfs file nor a character device ([`super::is_kernel_file`]): a peer could
    /// truncate it under the mapping, so it is not mapped.
    NotKernelFile {
        /// Which region (`"status words"`, `"cpu_data"`).
        region: &'static str,
    },
}

impl core::fmt::Display for OpenError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            OpenError::Ghostfs(e) => e.fmt(f),
            OpenError::Uapi(e) => e.fmt(f),
            OpenError::Map { region, error } => write!(f, "mapping {region}: {error}"),
            OpenError::AbiMismatch { enclave } => {
                write!(f, "the enclave runs ghOSt ABI {enclave}, this agent speaks ABI {GHOST_VERSION}")
            }
            OpenError::Stats(why) => write!(f, "module stats: {why}"),
            OpenError::NotKernelFile { region } => {
                write!(f, "{region}: neither a ghostfs file nor a device (a file a peer could truncate is not mapped)")
            }
        }
    }
}

impl std::error::Error for OpenError {}

impl From<GhostfsError> for OpenError {
    fn from(e: GhostfsError) -> Self {
        OpenError::Ghostfs(e)
    }
}

impl From<UapiError> for OpenError {
    fn from(e: UapiError) -> Self {
        OpenError::Uapi(e)
    }
}

/// The kernel module's files (defaults: where the module puts them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleFiles {
    /// The control device (ioctls): `/dev/ghost_shm`.
    pub ctl: PathBuf,
    /// The status words (mapped read-only): `/dev/ghost_shm_sw`.
    pub status_words: PathBuf,
    /// The transactions: `/dev/ghost_shm_cpu_data`.
    pub cpu_data: PathBuf,
    /// Where a tid is written to join the enclave: `/proc/ghost_shm/tasks`.
    pub tasks: PathBuf,
    /// The counters and sizes: `/proc/ghost_shm/stats`.
    pub stats: PathBuf,
}

impl Default for ModuleFiles {
    fn default() -> Self {
        ModuleFiles {
            ctl: "/dev/ghost_shm".into(),
            status_words: "/dev/ghost_shm_sw".into(),
            cpu_data: "/dev/ghost_shm_cpu_data".into(),
            tasks: "/proc/ghost_shm/tasks".into(),
            stats: "/proc/ghost_shm/stats".into(),
        }
    }
}

impl ModuleFiles {
    /// The same file names under `root` (a fake tree in tests).
    pub fn under(root: &Path) -> ModuleFiles {
        let d = ModuleFiles::default();
        let re = |p: &Path| root.join(p.strip_prefix("/").unwrap_or(p));
        ModuleFiles {
            ctl: re(&d.ctl),
            status_words: re(&d.status_words),
            cpu_data: re(&d.cpu_data),
            tasks: re(&d.tasks),
            stats: re(&d.stats),
        }
    }
}

/// The sizes the module reports in its stats file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModuleLayout {
    /// `cpus`: CPU ids (`nr_cpu_ids`), every one in the module's single enclave.
    pub cpus: u32,
    /// `sw_region_bytes`: the status-word region's size.
    pub sw_region_bytes: usize,
    /// `cpu_data_bytes`: the transactions' size (4096 per CPU).
    pub cpu_data_bytes: usize,
}

/// Parses the module's stats (`key value` lines; other lines are ignored) for the sizes an agent maps.
pub fn parse_module_layout(text: &str) -> Result<ModuleLayout, OpenError> {
    let get = |key: &str| -> Result<u64, OpenError> {
        let line = text
            .lines()
            .find_map(|l| l.strip_prefix(key).and_then(|rest| rest.strip_prefix(' ')))
            .ok_or_else(|| OpenError::Stats(format!("no '{key}' line")))?;
        line.trim().parse().map_err(|_| OpenError::Stats(format!("'{key}' is {:?}, not a number", line.trim())))
    };
    let cpus = get("cpus")?;
    let layout = ModuleLayout {
        cpus: u32::try_from(cpus).map_err(|_| OpenError::Stats(format!("cpus {cpus} out of range")))?,
        sw_region_bytes: get("sw_region_bytes")? as usize,
        cpu_data_bytes: get("cpu_data_bytes")? as usize,
    };
    if layout.cpus == 0 || layout.cpus as usize > CpuSet::<DEFAULT_WORDS>::CAPACITY {
        return Err(OpenError::Stats(format!("cpus {} out of range", layout.cpus)));
    }
    if layout.cpu_data_bytes != layout.cpus as usize * CPU_DATA_SIZE {
        return Err(OpenError::Stats(format!(
            "cpu_data_bytes {} is not {} CPUs × {CPU_DATA_SIZE}",
            layout.cpu_data_bytes, layout.cpus
        )));
    }
    Ok(layout)
}

#[derive(Debug)]
enum Kernel {
    Ghostfs { enclave: EnclaveDir, online: Mutex<Option<OwnedFd>> },
    Module { tasks: PathBuf },
}

/// An [`agent::Backend`](Backend) over the ghOSt UAPI: a real ghOSt kernel's enclave or this crate's kernel
/// module. Queues it creates live as long as it does (their ids index its list).
#[derive(Debug)]
pub struct UapiBackend {
    ctl: Ctl,
    kernel: Kernel,
    enclave_cpus: CpuSet,
    agent_cpus: CpuSet,
    ncpus: u32,
    status: Arc<MappedRegion<ReadOnly>>,
    cpu_data: Arc<MappedRegion<ReadWrite>>,
    queues: Mutex<Vec<QueueFd>>,
}

fn open_ro(path: &Path, op: &'static str) -> Result<OwnedFd, UapiError> {
    rustix::fs::open(path, rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC, rustix::fs::Mode::empty())
        .map_err(|errno| UapiError { op, errno })
}

fn open_rw(path: &Path, op: &'static str) -> Result<OwnedFd, UapiError> {
    rustix::fs::open(path, rustix::fs::OFlags::RDWR | rustix::fs::OFlags::CLOEXEC, rustix::fs::Mode::empty())
        .map_err(|errno| UapiError { op, errno })
}

fn file_size(fd: &OwnedFd, op: &'static str) -> Result<usize, UapiError> {
    let st = rustix::fs::fstat(fd).map_err(|errno| UapiError { op, errno })?;
    usize::try_from(st.st_size).map_err(|_| UapiError { op, errno: Errno::OVERFLOW })
}

impl UapiBackend {
    /// Attaches to a ghOSt kernel's enclave: checks `abi_version`, reads `cpulist`, opens `ctl`, creates the
    /// status-word region 0 on NUMA node `node` (one that exists is fine), maps `sw_regions/sw_0` read-only and
    /// `cpu_data` read-write, each with the size the kernel gives it. Open every file before
    /// [`become_agent`](UapiBackend::become_agent): afterwards ghostfs refuses an agent (`EDEADLK`).
    pub fn ghostfs(enclave: &EnclaveDir, node: u32) -> Result<UapiBackend, OpenError> {
        Self::attach_ghostfs(enclave, node, true)
    }

    /// [`ghostfs`](UapiBackend::ghostfs) without checking that the files are ghostfs's (tests over a fake
    /// tree).
    ///
    /// # Safety
    /// Nobody shrinks `sw_regions/sw_0` or `cpu_data` while they are mapped, and the enclave's `ctl` meets
    /// [`Ctl::from_fd`]'s contract.
    pub unsafe fn ghostfs_unverified(enclave: &EnclaveDir, node: u32) -> Result<UapiBackend, OpenError> {
        Self::attach_ghostfs(enclave, node, false)
    }

    fn attach_ghostfs(enclave: &EnclaveDir, node: u32, verify: bool) -> Result<UapiBackend, OpenError> {
        let abi = enclave.abi_version()?;
        if abi != GHOST_VERSION {
            return Err(OpenError::AbiMismatch { enclave: abi });
        }
        let enclave_cpus = enclave.cpus()?;
        let ctl = if verify {
            enclave.open_ctl()?
        } else {
            // SAFETY: the caller's contract (`ghostfs_unverified`).
            unsafe { Ctl::open_unverified(&enclave.path().join("ctl")) }?
        };
        match enclave.command(&ctl, CtlCommand::CreateSwRegion { id: 0, node }) {
            Err(e) if e.errno() == Some(Errno::EXIST) => {}
            other => other?,
        }
        let sw = open_ro(&enclave.sw_region_path(0), "open sw_regions/sw_0")?;
        let sw_len = file_size(&sw, "fstat sw_regions/sw_0")?;
        let cd = open_rw(&enclave.cpu_data_path(), "open cpu_data")?;
        let cd_len = file_size(&cd, "fstat cpu_data")?;
        let kernel = Kernel::Ghostfs { enclave: enclave.clone(), online: Mutex::new(None) };
        Self::finish(ctl, kernel, enclave_cpus, sw, sw_len, cd, cd_len, verify)
    }

    /// Attaches to the kernel module's enclave (every CPU) through its files: sizes from its stats file,
    /// status words mapped read-only, `cpu_data` read-write. The control and region files must be devices
    /// ([`super::is_kernel_file`]).
    pub fn module(files: &ModuleFiles) -> Result<UapiBackend, OpenError> {
        Self::attach_module(files, true)
    }

    /// [`module`](UapiBackend::module) without checking that the files are devices (tests over a fake tree).
    ///
    /// # Safety
    /// Nobody shrinks the status-word or `cpu_data` file while they are mapped, and `files.ctl` meets
    /// [`Ctl::from_fd`]'s contract.
    pub unsafe fn module_unverified(files: &ModuleFiles) -> Result<UapiBackend, OpenError> {
        Self::attach_module(files, false)
    }

    fn attach_module(files: &ModuleFiles, verify: bool) -> Result<UapiBackend, OpenError> {
        let text = std::fs::read_to_string(&files.stats).map_err(|e| {
            OpenError::Uapi(UapiError { op: "read module stats", errno: Errno::from_io_error(&e).unwrap_or(Errno::IO) })
        })?;
        let layout = parse_module_layout(&text)?;
        let ctl = if verify {
            Ctl::open(&files.ctl)?
        } else {
            // SAFETY: the caller's contract (`module_unverified`).
            unsafe { Ctl::open_unverified(&files.ctl) }?
        };
        let enclave_cpus = CpuSet::from_cpus(0..layout.cpus as usize)
            .map_err(|_| OpenError::Stats(format!("cpus {} out of range", layout.cpus)))?;
        let sw = open_ro(&files.status_words, "open module status words")?;
        let cd = open_rw(&files.cpu_data, "open module cpu_data")?;
        let kernel = Kernel::Module { tasks: files.tasks.clone() };
        Self::finish(ctl, kernel, enclave_cpus, sw, layout.sw_region_bytes, cd, layout.cpu_data_bytes, verify)
    }

    #[allow(clippy::too_many_arguments)] // the two attach paths' findings, passed on once
    fn finish(
        ctl: Ctl,
        kernel: Kernel,
        enclave_cpus: CpuSet,
        sw: OwnedFd,
        sw_len: usize,
        cd: OwnedFd,
        cd_len: usize,
        verify: bool,
    ) -> Result<UapiBackend, OpenError> {
        for (fd, region) in [(&sw, "status words"), (&cd, "cpu_data")] {
            if verify && !super::is_kernel_file(fd.as_fd()) {
                return Err(OpenError::NotKernelFile { region });
            }
        }
        if cd_len == 0 || cd_len % CPU_DATA_SIZE != 0 {
            return Err(OpenError::Map { region: "cpu_data", error: MapError::BadLength(cd_len) });
        }
        let ncpus = u32::try_from(cd_len / CPU_DATA_SIZE)
            .map_err(|_| OpenError::Map { region: "cpu_data", error: MapError::BadLength(cd_len) })?;
        // SAFETY: both files are the kernel's fixed-size regions, checked above (`is_kernel_file`) or vouched for
        // by the caller of the `*_unverified` constructors: ghostfs's `sw_regions/sw_0` and `cpu_data` are
        // vmalloc areas of the size `fstat` reports, and the module's devices refuse a mapping of any other
        // length than the one its stats report; no process can shrink them under the mapping.
        let status = unsafe { MappedRegion::<ReadOnly>::map_fd_trusted(sw.as_fd(), sw_len) }
            .map_err(|error| OpenError::Map { region: "status words", error })?;
        // SAFETY: as above.
        let cpu_data = unsafe { MappedRegion::<ReadWrite>::map_fd_trusted(cd.as_fd(), cd_len) }
            .map_err(|error| OpenError::Map { region: "cpu_data", error })?;
        Ok(UapiBackend {
            ctl,
            kernel,
            enclave_cpus,
            agent_cpus: CpuSet::new(),
            ncpus,
            status: Arc::new(status),
            cpu_data: Arc::new(cpu_data),
            queues: Mutex::new(Vec::new()),
        })
    }

    /// Reserves `cpus` of the enclave for agents (a centralized agent's CPU): they leave
    /// [`Backend::cpus`] and appear in [`Backend::agent_cpus`]. CPUs outside the enclave are ignored.
    pub fn with_agent_cpus(mut self, cpus: &CpuSet) -> UapiBackend {
        self.agent_cpus = *cpus & self.enclave_cpus;
        self
    }

    /// The control file (for the ioctls the [`Backend`] trait does not cover: `GHOST_IOC_RUN`,
    /// `GHOST_IOC_TIMERFD_SETTIME`, `GHOST_IOC_GET_CPU_TIME`).
    pub fn ctl(&self) -> &Ctl {
        &self.ctl
    }

    /// Whether this backend drives a ghOSt kernel (ghostfs) rather than the kernel module.
    pub fn is_ghostfs(&self) -> bool {
        matches!(self.kernel, Kernel::Ghostfs { .. })
    }

    /// The fd of a queue this backend created.
    fn with_queue<T>(&self, q: QueueId, f: impl FnOnce(&QueueFd) -> Result<T, UapiError>) -> Result<T, AgentError> {
        let queues = self.queues.lock().unwrap_or_else(|p| p.into_inner());
        let qfd = queues.get(q.0 as usize).ok_or(AgentError::NotFound)?;
        Ok(f(qfd)?)
    }

    /// Makes the calling thread the agent of `cpu`, its messages going to `queue` (`None`: the default
    /// queue). ghOSt: `become agent <cpu> <qfd>` on `ctl`, retried while the previous agent still holds the
    /// CPU (`EBUSY`, up to `tries` times, 10 ms apart). Module: the thread is pinned to `cpu` (the module has
    /// no agent class; an agent just stays out of the enclave).
    pub fn become_agent(&self, cpu: u32, queue: Option<QueueId>, tries: u32) -> Result<(), UapiError> {
        match &self.kernel {
            Kernel::Ghostfs { enclave, .. } => {
                let qfd = match queue {
                    None => None,
                    Some(q) => {
                        let queues = self.queues.lock().unwrap_or_else(|p| p.into_inner());
                        let qfd =
                            queues.get(q.0 as usize).ok_or(UapiError { op: "become agent", errno: Errno::BADF })?;
                        Some(qfd.fd().as_raw_fd())
                    }
                };
                let mut left = tries.max(1);
                loop {
                    match enclave.command(&self.ctl, CtlCommand::BecomeAgent { cpu, queue: qfd }) {
                        Ok(()) => return Ok(()),
                        Err(e) => {
                            let err = UapiError { op: "become agent", errno: e.errno().unwrap_or(Errno::INVAL) };
                            left -= 1;
                            if !err.is_transient() || left == 0 {
                                return Err(err);
                            }
                            std::thread::sleep(std::time::Duration::from_millis(10));
                        }
                    }
                }
            }
            Kernel::Module { .. } => {
                let op = "sched_setaffinity";
                let mut set = rustix::thread::CpuSet::new();
                if cpu as usize >= rustix::thread::CpuSet::MAX_CPU {
                    return Err(UapiError { op, errno: Errno::INVAL });
                }
                set.set(cpu as usize);
                rustix::thread::sched_setaffinity(None, &set).map_err(|errno| UapiError { op, errno })
            }
        }
    }

    /// Advertises this process as the enclave's agent (ghOSt: opens `agent_online` and holds it until
    /// [`retire`](UapiBackend::retire) or drop; `EBUSY` if another agent holds it). Call it when scheduling
    /// has started. The module has no `agent_online`: nothing to do.
    pub fn advertise(&self) -> Result<(), GhostfsError> {
        if let Kernel::Ghostfs { enclave, online } = &self.kernel {
            let fd = enclave.advertise()?;
            *online.lock().unwrap_or_else(|p| p.into_inner()) = Some(fd);
        }
        Ok(())
    }

    /// Stops advertising (closes `agent_online`): the first step of an exit, which lets a successor start.
    pub fn retire(&self) {
        if let Kernel::Ghostfs { online, .. } = &self.kernel {
            online.lock().unwrap_or_else(|p| p.into_inner()).take();
        }
    }

    /// Moves thread `tid` of this process into the enclave (`None`: the calling thread). ghOSt: its gtid (from
    /// `/proc/<pid>/task/<tid>/ghost/gtid`; `0` for the caller) into `tasks`. Module: its tid into
    /// `/proc/ghost_shm/tasks`.
    pub fn add_thread(&self, tid: Option<u32>) -> Result<(), GhostfsError> {
        match &self.kernel {
            Kernel::Ghostfs { enclave, .. } => {
                let gtid = match tid {
                    None => Gtid(0),
                    Some(tid) => gtid_of(std::process::id(), tid)?,
                };
                enclave.add_task(gtid)
            }
            Kernel::Module { tasks } => {
                let text = tid.unwrap_or(0).to_string();
                std::fs::write(tasks, text).map_err(|e| GhostfsError::Os {
                    op: "write",
                    path: tasks.clone(),
                    errno: Errno::from_io_error(&e).unwrap_or(Errno::IO),
                })
            }
        }
    }

    /// Destroys the enclave (ghOSt: `destroy` on `ctl`: agents are killed, tasks go back to CFS). The module's
    /// single enclave lives as long as the module: `Ok(false)`.
    pub fn destroy(&self) -> Result<bool, GhostfsError> {
        match &self.kernel {
            Kernel::Ghostfs { enclave, .. } => enclave.command(&self.ctl, CtlCommand::Destroy).map(|()| true),
            Kernel::Module { .. } => Ok(false),
        }
    }

    fn mask(&self, op: &'static str, cpus: &[u32]) -> Result<CpuSet, AgentError> {
        let mut set = CpuSet::new();
        for &c in cpus {
            if c >= self.ncpus {
                return Err(AgentError::BadCpu(c));
            }
            set.insert(c as usize).map_err(|_| AgentError::Invalid(op))?;
        }
        Ok(set)
    }
}

impl Backend for UapiBackend {
    type Region = Arc<MappedRegion<ReadWrite>>;
    type StatusRegion = Arc<MappedRegion<ReadOnly>>;

    fn abi_version(&self) -> u32 {
        // Checked at construction (ghostfs's `abi_version`; the module is built from this crate).
        GHOST_VERSION
    }
    fn cpus(&self) -> CpuSet {
        self.enclave_cpus - self.agent_cpus
    }
    fn ncpus(&self) -> u32 {
        self.ncpus
    }
    fn status_region(&self) -> Self::StatusRegion {
        self.status.clone()
    }
    fn cpu_data(&self) -> Self::Region {
        self.cpu_data.clone()
    }
    fn create_queue(&self, nelems: u32) -> Result<(QueueId, Self::Region), AgentError> {
        let qfd = self.ctl.create_queue(nelems, 0)?;
        let region = qfd.map().map_err(|_: MapError| AgentError::Region("the queue's mapping was refused"))?;
        let mut queues = self.queues.lock().unwrap_or_else(|p| p.into_inner());
        let id = QueueId(u32::try_from(queues.len()).map_err(|_| AgentError::NoSpace)?);
        queues.push(qfd);
        Ok((id, Arc::new(region)))
    }
    fn set_default_queue(&self, queue: QueueId) -> Result<(), AgentError> {
        self.with_queue(queue, |q| self.ctl.set_default_queue(q.fd()))
    }
    fn associate_queue(&self, queue: QueueId, gtid: Gtid, barrier: u32) -> Result<AssocStatus, AgentError> {
        self.with_queue(queue, |q| self.ctl.associate_queue(q.fd(), gtid, barrier))
    }
    fn config_queue_wakeup(&self, queue: QueueId, cpu: Option<u32>) -> Result<(), AgentError> {
        let cpus: Vec<u32> = cpu.into_iter().collect();
        self.with_queue(queue, |q| self.ctl.config_queue_wakeup(q.fd(), &cpus))
    }
    fn commit(&self, _caller: u32, cpus: &[u32]) -> Result<(), AgentError> {
        // The kernel knows the caller: the calling thread.
        let set = self.mask("GHOST_IOC_COMMIT_TXN", cpus)?;
        Ok(self.ctl.commit(&set)?)
    }
    fn sync_group_commit(&self, _caller: u32, cpus: &[u32]) -> Result<bool, AgentError> {
        let set = self.mask("GHOST_IOC_SYNC_GROUP_TXN", cpus)?;
        Ok(self.ctl.sync_group_commit(&set)?)
    }
    fn free_status_word(&self, info: GhostSwInfo) -> Result<(), AgentError> {
        Ok(self.ctl.free_status_word(info)?)
    }
    fn agent_status_word(&self, cpu: u32) -> Result<GhostSwInfo, AgentError> {
        Ok(self.ctl.agent_status_word(cpu)?)
    }
    fn agent_cpus(&self) -> CpuSet {
        self.agent_cpus
    }
}

impl Drop for UapiBackend {
    fn drop(&mut self) {
        // Stop advertising first (the reference agent's PrepareToExit), then the queues and mappings go.
        self.retire();
    }
}
