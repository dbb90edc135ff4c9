//! ghostfs: how a ghOSt kernel exposes enclaves as files (`/sys/fs/ghost`), and their text formats.
//!
//! ```text
//! /sys/fs/ghost/version          supported ABIs, one per line          → Ghostfs::versions
//! /sys/fs/ghost/ctl              "create <id> <abi>"                    → Ghostfs::create_enclave
//! /sys/fs/ghost/enclave_<id>/
//!     abi_version  cpulist  status  tasks  agent_online  ctl  cpu_data  sw_regions/sw_<n>
//!     deliver_ticks  deliver_cpu_availability  runnable_timeout  ...   → EnclaveDir
//! /proc/<pid>/task/<tid>/ghost/gtid                                     → gtid_of
//! ```
//!
//! Only the text formats and the file names live here; the ioctls on `ctl` are [`super::Ctl`]'s. The formats
//! are those the kernel writes and parses (`"%u\n"` version lines, the list format of `cpulist`, `status`'s
//! `key value` lines; tunables through `kstrtoint` with base 0), and every parser answers malformed text with a
//! [`GhostfsError::Format`] naming the file, never a panic. A fake tree in a temporary directory exercises all of
//! it (`src/uapi/tests.rs`); `tests/ghost_kernel.rs` runs against the real one when `/sys/fs/ghost` exists.

use super::{Ctl, UapiError};
use crate::abi::{Gtid, GHOST_VERSION};
use crate::topology::CpuSet;
use rustix::fd::OwnedFd;
use rustix::io::Errno;
use std::format;
use std::path::{Path, PathBuf};
use std::string::{String, ToString};
use std::vec::Vec;

/// Where a ghOSt kernel mounts ghostfs.
pub const GHOSTFS_ROOT: &str = "/sys/fs/ghost";

/// Why a ghostfs operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GhostfsError {
    /// A system call on a ghostfs file failed.
    Os {
        /// What was done (`"read"`, `"write"`, `"open"`).
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The error number.
        errno: Errno,
    },
    /// A file's text is not in the kernel's format.
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// The kernel does not support this crate's ABI.
    AbiUnsupported {
        /// The ABIs it lists in `version`.
        supported: Vec<u32>,
    },
    /// An ioctl on the enclave's `ctl` failed.
    Uapi(UapiError),
}

impl core::fmt::Display for GhostfsError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            GhostfsError::Os { op, path, errno } => write!(f, "{op} {}: {errno}", path.display()),
            GhostfsError::Format { path, what } => write!(f, "{}: {what}", path.display()),
            GhostfsError::AbiUnsupported { supported } => {
                write!(f, "the kernel supports ghOSt ABIs {supported:?}, this crate speaks ABI {GHOST_VERSION}")
            }
            GhostfsError::Uapi(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for GhostfsError {}

impl From<UapiError> for GhostfsError {
    fn from(e: UapiError) -> Self {
        GhostfsError::Uapi(e)
    }
}

impl GhostfsError {
    /// The `errno` of a failed system call, if that is what this is.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            GhostfsError::Os { errno, .. } => Some(*errno),
            GhostfsError::Uapi(e) => Some(e.errno),
            _ => None,
        }
    }
}

fn os<'p>(op: &'static str, path: &'p Path) -> impl FnOnce(std::io::Error) -> GhostfsError + 'p {
    move |e| GhostfsError::Os { op, path: path.to_path_buf(), errno: Errno::from_io_error(&e).unwrap_or(Errno::IO) }
}

fn malformed(path: &Path, what: impl Into<String>) -> GhostfsError {
    GhostfsError::Format { path: path.to_path_buf(), what: what.into() }
}

fn read(path: &Path) -> Result<String, GhostfsError> {
    std::fs::read_to_string(path).map_err(os("read", path))
}

/// One `write(2)` of `text` to `path` (ghostfs acts on each write as one command or value).
fn write(path: &Path, text: &str) -> Result<(), GhostfsError> {
    use std::io::Write;
    // O_TRUNC as `echo value > file` does: kernfs ignores it; a plain file (a test tree) then holds just `text`.
    let mut f = std::fs::OpenOptions::new().write(true).truncate(true).open(path).map_err(os("open", path))?;
    let n = f.write(text.as_bytes()).map_err(os("write", path))?;
    if n != text.len() {
        return Err(malformed(path, format!("short write: {n} of {} bytes", text.len())));
    }
    Ok(())
}

/// Parses a decimal number the way the kernel prints it (`"%u"`, `"%lu"`, surrounding white space allowed).
fn number<T: core::str::FromStr>(path: &Path, text: &str, what: &str) -> Result<T, GhostfsError> {
    text.trim().parse().map_err(|_| malformed(path, format!("{what}: {:?} is not a number", text.trim())))
}

/// The text of `version`: one supported ABI per line.
pub fn parse_versions(path: &Path, text: &str) -> Result<Vec<u32>, GhostfsError> {
    let v: Vec<u32> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| number(path, l, "ABI version"))
        .collect::<Result<_, _>>()?;
    if v.is_empty() {
        return Err(malformed(path, "lists no ABI version"));
    }
    Ok(v)
}

/// An enclave's `status` file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnclaveStatus {
    /// ghostfs's `version` line: the enclave's ABI.
    pub abi: u32,
    /// `active yes|no`: an agent advertises itself through `agent_online`.
    pub active: bool,
    /// `nr_tasks`: tasks in the enclave.
    pub nr_tasks: u64,
    /// `ephemeral <tgid>`: the enclave dies with that thread group.
    pub ephemeral: Option<u32>,
}

/// The text of `status`: `version N`, `active yes|no`, `nr_tasks N`, optionally `ephemeral TGID`; unknown keys
/// are ignored (newer kernels may add some), a missing or malformed required one is an error.
pub fn parse_status(path: &Path, text: &str) -> Result<EnclaveStatus, GhostfsError> {
    let (mut abi, mut active, mut nr_tasks, mut ephemeral) = (None, None, None, None);
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let (key, value) =
            line.split_once(' ').ok_or_else(|| malformed(path, format!("line {line:?} is not 'key value'")))?;
        match key {
            "version" => abi = Some(number(path, value, "version")?),
            "active" => {
                active = Some(match value.trim() {
                    "yes" => true,
                    "no" => false,
                    v => return Err(malformed(path, format!("active: {v:?} is neither yes nor no"))),
                })
            }
            "nr_tasks" => nr_tasks = Some(number(path, value, "nr_tasks")?),
            "ephemeral" => ephemeral = Some(number(path, value, "ephemeral")?),
            _ => {}
        }
    }
    Ok(EnclaveStatus {
        abi: abi.ok_or_else(|| malformed(path, "no 'version' line"))?,
        active: active.ok_or_else(|| malformed(path, "no 'active' line"))?,
        nr_tasks: nr_tasks.ok_or_else(|| malformed(path, "no 'nr_tasks' line"))?,
        ephemeral,
    })
}

/// The text of `/proc/<pid>/task/<tid>/ghost/gtid`: `"%ld\n"`, a positive gtid.
pub fn parse_gtid(path: &Path, text: &str) -> Result<Gtid, GhostfsError> {
    let g: i64 = number(path, text, "gtid")?;
    if g <= 0 {
        return Err(malformed(path, format!("gtid {g} is not positive")));
    }
    Ok(Gtid(g))
}

/// The gtid of thread `tid` of process `pid` (from procfs; only a ghOSt kernel has the file).
pub fn gtid_of(pid: u32, tid: u32) -> Result<Gtid, GhostfsError> {
    let path = PathBuf::from(format!("/proc/{pid}/task/{tid}/ghost/gtid"));
    parse_gtid(&path, &read(&path)?)
}

/// A text command of an enclave's `ctl` file (one `write(2)` each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CtlCommand {
    /// `destroy`: agents are killed, tasks go back to CFS, the directory goes away.
    Destroy,
    /// `create sw_region <id> <node>`: a status-word region (`EEXIST` if it exists: fine).
    CreateSwRegion {
        /// Region id (`sw_regions/sw_<id>`).
        id: u32,
        /// Its NUMA node.
        node: u32,
    },
    /// `become agent <cpu> <qfd>`: the calling thread becomes `cpu`'s agent, its messages going to `queue` (a
    /// queue fd of this process; `None`: the enclave's default queue). `EBUSY`: the old agent is still there,
    /// retry.
    BecomeAgent {
        /// The CPU.
        cpu: u32,
        /// The queue fd, as a number in this process.
        queue: Option<i32>,
    },
    /// `discover tasks`: the kernel re-sends `TASK_NEW` for every task (after an agent upgrade).
    DiscoverTasks,
    /// `disable my bpf_prog_load`.
    DisableBpfProgLoad,
}

impl core::fmt::Display for CtlCommand {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            CtlCommand::Destroy => f.write_str("destroy"),
            CtlCommand::CreateSwRegion { id, node } => write!(f, "create sw_region {id} {node}"),
            CtlCommand::BecomeAgent { cpu, queue } => write!(f, "become agent {cpu} {}", queue.unwrap_or(-1)),
            CtlCommand::DiscoverTasks => f.write_str("discover tasks"),
            CtlCommand::DisableBpfProgLoad => f.write_str("disable my bpf_prog_load"),
        }
    }
}

/// An enclave setting that is one integer in its own file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tunable {
    /// `commit_at_tick`: commit greedy transactions from the tick.
    CommitAtTick,
    /// `deliver_agent_runnability`: `CPU_AGENT_BLOCKED` / `CPU_AGENT_WAKEUP` messages.
    DeliverAgentRunnability,
    /// `deliver_cpu_availability`: `CPU_AVAILABLE` / `CPU_BUSY` messages.
    DeliverCpuAvailability,
    /// `deliver_ticks`: `CPU_TICK` messages.
    DeliverTicks,
    /// `live_dangerously`: agents may open enclave files.
    LiveDangerously,
    /// `runnable_timeout`, in ms: a task runnable but unscheduled longer than this destroys the enclave.
    RunnableTimeoutMs,
    /// `switchto_disabled`.
    SwitchtoDisabled,
    /// `wake_on_waker_cpu`.
    WakeOnWakerCpu,
}

impl Tunable {
    /// The file's name.
    pub fn file_name(self) -> &'static str {
        match self {
            Tunable::CommitAtTick => "commit_at_tick",
            Tunable::DeliverAgentRunnability => "deliver_agent_runnability",
            Tunable::DeliverCpuAvailability => "deliver_cpu_availability",
            Tunable::DeliverTicks => "deliver_ticks",
            Tunable::LiveDangerously => "live_dangerously",
            Tunable::RunnableTimeoutMs => "runnable_timeout",
            Tunable::SwitchtoDisabled => "switchto_disabled",
            Tunable::WakeOnWakerCpu => "wake_on_waker_cpu",
        }
    }
}

/// A ghostfs mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ghostfs {
    root: PathBuf,
}

impl Ghostfs {
    /// ghostfs at [`GHOSTFS_ROOT`].
    pub fn system() -> Ghostfs {
        Ghostfs::at(GHOSTFS_ROOT)
    }

    /// ghostfs (or a tree laid out like it) at `root`.
    pub fn at(root: impl Into<PathBuf>) -> Ghostfs {
        Ghostfs { root: root.into() }
    }

    /// The mount point.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whether a ghOSt kernel's ghostfs is there (its `version` file exists).
    pub fn is_present(&self) -> bool {
        self.root.join("version").exists()
    }

    /// The ABIs the kernel supports.
    pub fn versions(&self) -> Result<Vec<u32>, GhostfsError> {
        let path = self.root.join("version");
        parse_versions(&path, &read(&path)?)
    }

    /// Checks that the kernel supports this crate's ABI ([`GHOST_VERSION`]).
    pub fn check_abi(&self) -> Result<(), GhostfsError> {
        let supported = self.versions()?;
        if supported.contains(&GHOST_VERSION) {
            Ok(())
        } else {
            Err(GhostfsError::AbiUnsupported { supported })
        }
    }

    /// The enclave directory `enclave_<id>` (it need not exist).
    pub fn enclave(&self, id: u64) -> EnclaveDir {
        EnclaveDir { dir: self.root.join(format!("enclave_{id}")), id }
    }

    /// The ids of the existing enclaves, ascending.
    pub fn enclaves(&self) -> Result<Vec<u64>, GhostfsError> {
        let mut ids: Vec<u64> = std::fs::read_dir(&self.root)
            .map_err(os("read_dir", &self.root))?
            .filter_map(|e| e.ok()?.file_name().to_str()?.strip_prefix("enclave_")?.parse().ok())
            .collect();
        ids.sort_unstable();
        Ok(ids)
    }

    /// Creates enclave `id` at this crate's ABI (`create <id> 91` to the top-level `ctl`); `EEXIST` if the id is
    /// taken.
    pub fn create_enclave(&self, id: u64) -> Result<EnclaveDir, GhostfsError> {
        write(&self.root.join("ctl"), &format!("create {id} {GHOST_VERSION}"))?;
        Ok(self.enclave(id))
    }

    /// Creates an enclave at the first free id from 1 (as the reference agent does), trying at most `tries`
    /// ids.
    pub fn create_any_enclave(&self, tries: u64) -> Result<EnclaveDir, GhostfsError> {
        let mut last = None;
        for id in 1..=tries.max(1) {
            match self.create_enclave(id) {
                Err(e) if e.errno() == Some(Errno::EXIST) => last = Some(e),
                other => return other,
            }
        }
        Err(last.unwrap_or_else(|| malformed(&self.root.join("ctl"), "no enclave id tried")))
    }
}

/// An enclave's directory, `enclave_<id>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnclaveDir {
    dir: PathBuf,
    id: u64,
}

impl EnclaveDir {
    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The enclave id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// `abi_version`.
    pub fn abi_version(&self) -> Result<u32, GhostfsError> {
        let path = self.dir.join("abi_version");
        number(&path, &read(&path)?, "abi_version")
    }

    /// `status`.
    pub fn status(&self) -> Result<EnclaveStatus, GhostfsError> {
        let path = self.dir.join("status");
        parse_status(&path, &read(&path)?)
    }

    /// The enclave's CPUs (`cpulist`).
    pub fn cpus(&self) -> Result<CpuSet, GhostfsError> {
        let path = self.dir.join("cpulist");
        let text = read(&path)?;
        CpuSet::parse_list(text.trim()).map_err(|e| malformed(&path, format!("cpulist {:?}: {e:?}", text.trim())))
    }

    /// Sets the enclave's CPUs (`cpulist`; `EBUSY` while another enclave still holds one: retry).
    pub fn set_cpus(&self, cpus: &CpuSet) -> Result<(), GhostfsError> {
        write(&self.dir.join("cpulist"), &cpus.to_string())
    }

    /// A tunable's value.
    pub fn tunable(&self, t: Tunable) -> Result<i64, GhostfsError> {
        let path = self.dir.join(t.file_name());
        number(&path, &read(&path)?, t.file_name())
    }

    /// Sets a tunable.
    pub fn set_tunable(&self, t: Tunable, value: i64) -> Result<(), GhostfsError> {
        write(&self.dir.join(t.file_name()), &value.to_string())
    }

    /// Opens the enclave's `ctl` read-write: the target of the ioctls and of [`command`](EnclaveDir::command).
    pub fn open_ctl(&self) -> Result<Ctl, GhostfsError> {
        Ok(Ctl::open(&self.dir.join("ctl"))?)
    }

    /// Sends a text command on an open `ctl` (one `write(2)`).
    pub fn command(&self, ctl: &Ctl, cmd: CtlCommand) -> Result<(), GhostfsError> {
        let text = cmd.to_string();
        let path = self.dir.join("ctl");
        let n = rustix::io::write(ctl.fd(), text.as_bytes()).map_err(|errno| GhostfsError::Os {
            op: "write",
            path: path.clone(),
            errno,
        })?;
        if n != text.len() {
            return Err(malformed(&path, format!("short write of {text:?}")));
        }
        Ok(())
    }

    /// Moves a task into the enclave (`tasks`; `Gtid(0)`: the caller). A task already there is fine.
    pub fn add_task(&self, gtid: Gtid) -> Result<(), GhostfsError> {
        match write(&self.dir.join("tasks"), &gtid.0.to_string()) {
            Err(e) if e.errno() == Some(Errno::ALREADY) => Ok(()),
            other => other,
        }
    }

    /// Whether an agent advertises itself (`agent_online` reads 1).
    pub fn agent_online(&self) -> Result<bool, GhostfsError> {
        let path = self.dir.join("agent_online");
        match number::<u32>(&path, &read(&path)?, "agent_online")? {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(malformed(&path, format!("agent_online is {v}, not 0 or 1"))),
        }
    }

    /// Advertises this agent (opens `agent_online` for writing, which sets it to 1 until the returned fd is
    /// closed; `EBUSY` while another agent holds it). Hold the fd for as long as the agent schedules; closing it
    /// first on exit lets a successor take over.
    pub fn advertise(&self) -> Result<OwnedFd, GhostfsError> {
        let path = self.dir.join("agent_online");
        let f = std::fs::OpenOptions::new().read(true).write(true).open(&path).map_err(os("open", &path))?;
        Ok(OwnedFd::from(f))
    }

    /// `cpu_data` (the transactions; map it read-write, 4096 bytes per possible CPU).
    pub fn cpu_data_path(&self) -> PathBuf {
        self.dir.join("cpu_data")
    }

    /// `sw_regions/sw_<id>` (a status-word region; map it read-only, 2 MiB).
    pub fn sw_region_path(&self, id: u32) -> PathBuf {
        self.dir.join("sw_regions").join(format!("sw_{id}"))
    }
}
