//! The ghOSt UAPI (`std`, Linux): the ABI 91 ioctls on an enclave's `ctl` file, typed, and the mappings of the
//! regions they hand out.
//!
//! One layer serves two kernels: a real ghOSt kernel, whose enclave `ctl` lives in ghostfs
//! (`/sys/fs/ghost/enclave_<id>/ctl`, see [`ghostfs`]), and this crate's Linux kernel module (`kmod/`), whose
//! misc device speaks the same ioctls with the same numbers and argument structs. Only how the enclave is found
//! and configured differs; everything here is shared. [`UapiBackend`] puts it under the agent framework: the
//! [`agent::Backend`](crate::agent::Backend) of a real kernel, next to the simulator's.
//!
//! Every ioctl number and argument struct comes from [`crate::abi`] (`GHOST_IOC_*`, `GhostIoc*`), where each is
//! checked at compile time and in `tests/abi_layout.rs` against the values measured from the ABI 91 header.
//! Every failure is a [`UapiError`] carrying the operation and the `errno`, with the reading the reference agent
//! gives it ([`UapiError::is_transient`] for `EBUSY` during a hand-off, [`UapiError::agent_error`] for the rest).

pub mod backend;
pub mod ghostfs;

pub use backend::{ModuleFiles, OpenError, UapiBackend};

use crate::abi::{
    GhostAgentWakeup, GhostIocAssocQueue, GhostIocCommitTxn, GhostIocConfigQueueWakeup, GhostIocCreateQueue,
    GhostIocGetCpuTime, GhostIocRun, GhostIocSetDefaultQueue, GhostIocSwGetInfo, GhostIocTimerfdSettime, GhostMsgSrc,
    GhostSwInfo, Gtid, RunFlags, TimerfdGhost, GHOST_AGENT, GHOST_IOC_ASSOC_QUEUE, GHOST_IOC_COMMIT_TXN,
    GHOST_IOC_CONFIG_QUEUE_WAKEUP, GHOST_IOC_CREATE_QUEUE, GHOST_IOC_GET_CPU_TIME, GHOST_IOC_RUN,
    GHOST_IOC_SET_DEFAULT_QUEUE, GHOST_IOC_SW_FREE, GHOST_IOC_SW_GET_INFO, GHOST_IOC_SYNC_GROUP_TXN,
    GHOST_IOC_TIMERFD_SETTIME, GHOST_TASK,
};
use crate::agent::AgentError;
use crate::queue::AssocStatus;
use crate::region::{MapError, MappedRegion, ReadWrite};
use crate::topology::CpuSet;
use rustix::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use rustix::io::Errno;
use std::path::Path;

/// A failed UAPI call: which operation, and the `errno` the kernel answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UapiError {
    /// The operation (`"GHOST_IOC_CREATE_QUEUE"`, `"open ctl"`, `"mmap queue"`, ...).
    pub op: &'static str,
    /// The error number.
    pub errno: Errno,
}

impl UapiError {
    fn new(op: &'static str) -> impl FnOnce(Errno) -> UapiError {
        move |errno| UapiError { op, errno }
    }

    /// Whether the reference agent retries this: `EBUSY` (a CPU still held by the previous agent or enclave
    /// during a hand-off), `EAGAIN`, `EINTR`.
    pub fn is_transient(&self) -> bool {
        matches!(self.errno, Errno::BUSY | Errno::AGAIN | Errno::INTR)
    }

    /// What an agent should do about it, as an [`AgentError`]: `ESTALE` → [`AgentError::Stale`] (drain, re-read,
    /// retry), `ENOENT`/`ESRCH` → [`AgentError::NotFound`], `ENODEV`/`ENXIO` → [`AgentError::Gone`] (the
    /// enclave is being destroyed), `ENOMEM`/`ENOSPC` → [`AgentError::NoSpace`], anything else
    /// [`AgentError::Invalid`] naming the operation.
    pub fn agent_error(&self) -> AgentError {
        match self.errno {
            Errno::STALE => AgentError::Stale,
            Errno::NOENT | Errno::SRCH => AgentError::NotFound,
            Errno::NODEV | Errno::NXIO => AgentError::Gone,
            Errno::NOMEM | Errno::NOSPC => AgentError::NoSpace,
            _ => AgentError::Invalid(self.op),
        }
    }
}

impl core::fmt::Display for UapiError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}: {}", self.op, self.errno)
    }
}

impl std::error::Error for UapiError {}

impl From<UapiError> for AgentError {
    fn from(e: UapiError) -> AgentError {
        e.agent_error()
    }
}

/// One ghOSt ioctl: its number and its argument, which the kernel reads and may write back.
struct Call<'a, T> {
    nr: u32,
    arg: &'a mut T,
}

// SAFETY: every `Call` is built by `Ctl::call` with a `GHOST_IOC_*` number and the `GhostIoc*` struct that number
// encodes (checked against the ABI 91 header); the kernel reads and writes only that struct, which lives for the
// call. The return value is passed through.
unsafe impl<T> rustix::ioctl::Ioctl for Call<'_, T> {
    type Output = rustix::ioctl::IoctlOutput;
    const IS_MUTATING: bool = true;
    fn opcode(&self) -> rustix::ioctl::Opcode {
        self.nr as rustix::ioctl::Opcode
    }
    fn as_ptr(&mut self) -> *mut core::ffi::c_void {
        (self.arg as *mut T).cast()
    }
    unsafe fn output_from_ptr(
        out: rustix::ioctl::IoctlOutput,
        _: *mut core::ffi::c_void,
    ) -> rustix::io::Result<rustix::ioctl::IoctlOutput> {
        Ok(out)
    }
}

/// A queue the kernel created (`GHOST_IOC_CREATE_QUEUE`): its fd and the size of its mapping.
#[derive(Debug)]
pub struct QueueFd {
    fd: OwnedFd,
    mapsize: usize,
}

impl QueueFd {
    /// The queue's file descriptor (for `ASSOC_QUEUE`, `SET_DEFAULT_QUEUE`, `become agent <cpu> <qfd>`).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// The size of its mapping, as the kernel returned it.
    pub fn mapsize(&self) -> usize {
        self.mapsize
    }

    /// Maps the queue read-write (`MAP_SHARED`, offset 0, exactly `mapsize` bytes: the kernel's rules).
    pub fn map(&self) -> Result<MappedRegion<ReadWrite>, MapError> {
        // SAFETY: a `QueueFd` only comes from `Ctl::create_queue` on a kernel ctl (checked by `Ctl::open`, or
        // vouched for by the caller of `Ctl::from_fd`/`open_unverified`): the kernel's anonymous inode of a
        // fixed-size vmalloc region, which no process can shrink, so the mapping cannot fault under us.
        unsafe { MappedRegion::map_fd_trusted(self.fd.as_fd(), self.mapsize) }
    }
}

/// `GHOST_IOC_RUN`'s request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunRequest {
    /// Block the calling agent on its own CPU until something for it happens (`gtid` 0): `ESTALE` if
    /// `agent_barrier` is not current (drain the queue and retry).
    Block {
        /// The caller's agent barrier as last read.
        agent_barrier: u32,
        /// The caller's CPU.
        cpu: u32,
        /// Only `RTLA_ON_IDLE` is allowed.
        run_flags: RunFlags,
    },
    /// Ping the agent of `cpu` (`gtid` −1; agents of the same process only).
    Ping {
        /// The CPU whose agent to wake.
        cpu: u32,
    },
}

/// A ghOSt timer armed with `GHOST_IOC_TIMERFD_SETTIME`: on expiry the kernel posts `CPU_TIMER_EXPIRED`
/// with `type_` and `cookie` to `cpu`'s agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GhostTimer {
    /// The CPU whose agent gets the message (an agent of this process).
    pub cpu: u32,
    /// `timerfd_ghost.type`, echoed in the message.
    pub type_: u64,
    /// `timerfd_ghost.cookie`, echoed in the message.
    pub cookie: u64,
}

/// An enclave's control file, the target of every ghOSt ioctl: ghostfs's `enclave_<id>/ctl` on a ghOSt
/// kernel, the module's misc device under qemu. Opened read-write (the kernel refuses ioctls on a read-only
/// fd with `EACCES`).
#[derive(Debug)]
pub struct Ctl {
    fd: OwnedFd,
}

/// ghostfs's superblock magic (`GHOST_SUPER_MAGIC`), as `fstatfs` reports it for every ghostfs file.
pub const GHOSTFS_MAGIC: u64 = 0xBAD1_DEA2;

/// Whether `fd` is a file the kernel provides, with a size no process can change and ioctls of the kernel's
/// own: a character device (the module's misc devices; only a process with `CAP_MKNOD` can create one) or a
/// ghostfs file. A regular file or a FUSE file is neither: a peer could truncate it under a mapping, or answer
/// an ioctl with any number.
pub fn is_kernel_file(fd: BorrowedFd<'_>) -> bool {
    let device = rustix::fs::fstat(fd)
        .is_ok_and(|st| rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::CharacterDevice);
    device || rustix::fs::fstatfs(fd).is_ok_and(|fs| fs.f_type as u64 == GHOSTFS_MAGIC)
}

fn open_rw(path: &Path) -> Result<OwnedFd, UapiError> {
    rustix::fs::open(path, rustix::fs::OFlags::RDWR | rustix::fs::OFlags::CLOEXEC, rustix::fs::Mode::empty())
        .map_err(UapiError::new("open ctl"))
}

impl Ctl {
    /// Opens `path` read-write. It must be a ghostfs `ctl` or the module's device ([`is_kernel_file`]): a
    /// `GHOST_IOC_CREATE_QUEUE` on it returns a new descriptor this process then owns, which only the kernel
    /// can promise. Anything else is refused with `ENOTTY` (op `"open ctl: not ghostfs or a device"`).
    pub fn open(path: &Path) -> Result<Ctl, UapiError> {
        let fd = open_rw(path)?;
        if !is_kernel_file(fd.as_fd()) {
            return Err(UapiError { op: "open ctl: not ghostfs or a device", errno: Errno::NOTTY });
        }
        Ok(Ctl { fd })
    }

    /// Opens `path` read-write without checking what it is (tests over a fake tree).
    ///
    /// # Safety
    /// As for [`from_fd`](Ctl::from_fd).
    pub unsafe fn open_unverified(path: &Path) -> Result<Ctl, UapiError> {
        Ok(Ctl { fd: open_rw(path)? })
    }

    /// Wraps an open control file.
    ///
    /// # Safety
    /// A non-negative return of `GHOST_IOC_CREATE_QUEUE` on `fd` must be a new descriptor that nothing else in
    /// this process owns, and a queue fd whose size never changes (as the kernel's ghostfs `ctl` and the
    /// module's device guarantee; a plain file answers every ghOSt ioctl with `ENOTTY`, which also qualifies).
    pub unsafe fn from_fd(fd: OwnedFd) -> Ctl {
        Ctl { fd }
    }

    /// The control file's descriptor (for the text commands of ghostfs's `ctl`).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    fn call<T>(&self, op: &'static str, nr: u32, arg: &mut T) -> Result<i32, UapiError> {
        // SAFETY: see `Call`: `nr` is the ioctl whose argument struct `T` is (each caller passes the pair
        // defined together in `abi`).
        unsafe { rustix::ioctl::ioctl(&self.fd, Call { nr, arg }) }.map_err(UapiError::new(op))
    }

    /// `GHOST_IOC_SW_GET_INFO` for the agent of `cpu`: where its status word is.
    pub fn agent_status_word(&self, cpu: u32) -> Result<GhostSwInfo, UapiError> {
        self.sw_get_info(GHOST_AGENT, cpu as u64)
    }

    /// `GHOST_IOC_SW_GET_INFO` for a task (`Gtid(0)`: the caller).
    pub fn task_status_word(&self, gtid: Gtid) -> Result<GhostSwInfo, UapiError> {
        self.sw_get_info(GHOST_TASK, gtid.0 as u64)
    }

    fn sw_get_info(&self, ty: u32, arg: u64) -> Result<GhostSwInfo, UapiError> {
        let mut a =
            GhostIocSwGetInfo { request: GhostMsgSrc { r#type: ty, arg, ..Default::default() }, ..Default::default() };
        self.call("GHOST_IOC_SW_GET_INFO", GHOST_IOC_SW_GET_INFO, &mut a)?;
        Ok(a.response)
    }

    /// `GHOST_IOC_SW_FREE`: frees a status word the kernel marked `CANFREE`.
    pub fn free_status_word(&self, info: GhostSwInfo) -> Result<(), UapiError> {
        let mut a = info;
        self.call("GHOST_IOC_SW_FREE", GHOST_IOC_SW_FREE, &mut a).map(drop)
    }

    /// `GHOST_IOC_CREATE_QUEUE`: a queue of `elems` slots (a power of two, 1..=65536) on NUMA node `node`.
    pub fn create_queue(&self, elems: u32, node: u32) -> Result<QueueFd, UapiError> {
        let bad = UapiError { op: "GHOST_IOC_CREATE_QUEUE", errno: Errno::INVAL };
        let mut a = GhostIocCreateQueue {
            elems: i32::try_from(elems).map_err(|_| bad)?,
            node: i32::try_from(node).map_err(|_| bad)?,
            ..Default::default()
        };
        let fd = self.call("GHOST_IOC_CREATE_QUEUE", GHOST_IOC_CREATE_QUEUE, &mut a)?;
        if fd < 0 {
            return Err(bad);
        }
        // SAFETY: a non-negative return of CREATE_QUEUE is a new descriptor that this process now owns (checked
        // by `Ctl::open` or vouched for by the caller of `from_fd` / `open_unverified`).
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let mapsize = usize::try_from(a.mapsize).map_err(|_| bad)?;
        Ok(QueueFd { fd, mapsize })
    }

    /// `GHOST_IOC_ASSOC_QUEUE`: route `gtid`'s messages to `queue`; `barrier` is the task's barrier as the
    /// agent last saw it (`ESTALE` → [`AgentError::Stale`] if a message is in flight).
    pub fn associate_queue(&self, queue: BorrowedFd<'_>, gtid: Gtid, barrier: u32) -> Result<AssocStatus, UapiError> {
        let mut a = GhostIocAssocQueue {
            fd: queue.as_raw_fd(),
            src: GhostMsgSrc { r#type: GHOST_TASK, arg: gtid.0 as u64, ..Default::default() },
            barrier,
            ..Default::default()
        };
        let bits = self.call("GHOST_IOC_ASSOC_QUEUE", GHOST_IOC_ASSOC_QUEUE, &mut a)?;
        Ok(AssocStatus::from_raw(bits))
    }

    /// `GHOST_IOC_SET_DEFAULT_QUEUE`: where messages of tasks without an association go.
    pub fn set_default_queue(&self, queue: BorrowedFd<'_>) -> Result<(), UapiError> {
        let mut a = GhostIocSetDefaultQueue { fd: queue.as_raw_fd() };
        self.call("GHOST_IOC_SET_DEFAULT_QUEUE", GHOST_IOC_SET_DEFAULT_QUEUE, &mut a).map(drop)
    }

    /// `GHOST_IOC_CONFIG_QUEUE_WAKEUP`: wake the agents of `cpus` (at most 2; empty: nobody, the agent polls)
    /// when a message is produced into `queue`.
    pub fn config_queue_wakeup(&self, queue: BorrowedFd<'_>, cpus: &[u32]) -> Result<(), UapiError> {
        let op = "GHOST_IOC_CONFIG_QUEUE_WAKEUP";
        if cpus.len() > 2 {
            return Err(UapiError { op, errno: Errno::INVAL });
        }
        let mut w = [GhostAgentWakeup::default(); 2];
        for (slot, &cpu) in w.iter_mut().zip(cpus) {
            slot.cpu = i32::try_from(cpu).map_err(|_| UapiError { op, errno: Errno::INVAL })?;
        }
        let mut a = GhostIocConfigQueueWakeup {
            qfd: queue.as_raw_fd(),
            w: w.as_mut_ptr() as u64,
            ninfo: cpus.len() as i32,
            ..Default::default()
        };
        // `w` outlives the call; the kernel reads `ninfo` entries of it.
        self.call(op, GHOST_IOC_CONFIG_QUEUE_WAKEUP, &mut a).map(drop)
    }

    /// `GHOST_IOC_GET_CPU_TIME`: a task's CPU time in ns.
    pub fn cpu_time(&self, gtid: Gtid) -> Result<u64, UapiError> {
        let mut a = GhostIocGetCpuTime { gtid: gtid.0, runtime: 0 };
        self.call("GHOST_IOC_GET_CPU_TIME", GHOST_IOC_GET_CPU_TIME, &mut a)?;
        Ok(a.runtime)
    }

    /// `GHOST_IOC_COMMIT_TXN` for the READY transactions of `cpus`; each outcome is in its transaction's
    /// `state`.
    pub fn commit(&self, cpus: &CpuSet) -> Result<(), UapiError> {
        self.commit_mask("GHOST_IOC_COMMIT_TXN", GHOST_IOC_COMMIT_TXN, cpus).map(drop)
    }

    /// `GHOST_IOC_SYNC_GROUP_TXN`: all of `cpus` or none; `true` if every member committed (the kernel then
    /// released every `sync_group_owner`; on `false` the agent releases them).
    pub fn sync_group_commit(&self, cpus: &CpuSet) -> Result<bool, UapiError> {
        self.commit_mask("GHOST_IOC_SYNC_GROUP_TXN", GHOST_IOC_SYNC_GROUP_TXN, cpus).map(|r| r == 1)
    }

    fn commit_mask(&self, op: &'static str, nr: u32, cpus: &CpuSet) -> Result<i32, UapiError> {
        let mask = cpus.as_bytes();
        let mut a = GhostIocCommitTxn {
            mask_ptr: mask.as_ptr() as u64,
            mask_len: u32::try_from(mask.len()).map_err(|_| UapiError { op, errno: Errno::INVAL })?,
            flags: 0,
        };
        // `mask` outlives the call; the kernel reads `mask_len` bytes of it.
        self.call(op, nr, &mut a)
    }

    /// `GHOST_IOC_RUN`: block the calling agent, or ping another agent of this process.
    pub fn run(&self, req: RunRequest) -> Result<(), UapiError> {
        let op = "GHOST_IOC_RUN";
        let cpu = |c: u32| i32::try_from(c).map_err(|_| UapiError { op, errno: Errno::INVAL });
        let mut a = match req {
            RunRequest::Block { agent_barrier, cpu: c, run_flags } => GhostIocRun {
                gtid: 0,
                agent_barrier,
                run_cpu: cpu(c)?,
                run_flags: i32::from(run_flags.bits()),
                ..Default::default()
            },
            RunRequest::Ping { cpu: c } => GhostIocRun { gtid: Gtid::AGENT.0, run_cpu: cpu(c)?, ..Default::default() },
        };
        self.call(op, GHOST_IOC_RUN, &mut a).map(drop)
    }

    /// `GHOST_IOC_TIMERFD_SETTIME`: arms `timerfd` (from `timerfd_create`) like `timerfd_settime(2)` with
    /// `flags` and `value`, and makes its expiry a `CPU_TIMER_EXPIRED` message for `timer.cpu`'s agent
    /// (`timer: None` arms a plain timer).
    pub fn timerfd_settime(
        &self,
        timerfd: BorrowedFd<'_>,
        flags: i32,
        value: &rustix::time::Itimerspec,
        timer: Option<GhostTimer>,
    ) -> Result<(), UapiError> {
        let op = "GHOST_IOC_TIMERFD_SETTIME";
        let ghost = match timer {
            Some(t) => TimerfdGhost {
                cpu: i32::try_from(t.cpu).map_err(|_| UapiError { op, errno: Errno::INVAL })?,
                flags: crate::abi::TIMERFD_GHOST_ENABLED,
                r#type: t.type_,
                cookie: t.cookie,
            },
            None => TimerfdGhost::default(),
        };
        let mut a = GhostIocTimerfdSettime {
            timerfd: timerfd.as_raw_fd(),
            flags,
            in_tmr: value as *const rustix::time::Itimerspec as u64,
            out_tmr: 0,
            timerfd_ghost: ghost,
        };
        // `value` outlives the call; the kernel reads one itimerspec from it and writes none (out_tmr = NULL).
        self.call(op, GHOST_IOC_TIMERFD_SETTIME, &mut a).map(drop)
    }
}

// Files, memfds and ioctls: not under Miri (isolation refuses the system calls).
#[cfg(all(test, not(miri)))]
mod tests;
