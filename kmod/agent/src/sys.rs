//! The module's files, and the raw `ioctl`/`mmap` calls the agent makes *on purpose with bad arguments* (the
//! hostile mode, the refusal checks). Every well-formed ioctl goes through the crate's `uapi::Ctl`; every ioctl
//! number and argument struct here is the crate's (`ghost_shm::abi`), checked against the ABI 91 header.

use std::ffi::CString;
use std::io;

use ghost_shm::abi;

pub const CTL: &str = "/dev/ghost_shm";
pub const SW: &str = "/dev/ghost_shm_sw";
pub const CPU_DATA: &str = "/dev/ghost_shm_cpu_data";
pub const TASKS: &str = "/proc/ghost_shm/tasks";
pub const STATS: &str = "/proc/ghost_shm/stats";

/// Every ioctl number the module implements (the hostile mode picks among them): the crate's ABI 91 constants.
pub const ALL_IOCTLS: [u32; 8] = [
    abi::GHOST_IOC_SW_GET_INFO,
    abi::GHOST_IOC_SW_FREE,
    abi::GHOST_IOC_CREATE_QUEUE,
    abi::GHOST_IOC_ASSOC_QUEUE,
    abi::GHOST_IOC_SET_DEFAULT_QUEUE,
    abi::GHOST_IOC_CONFIG_QUEUE_WAKEUP,
    abi::GHOST_IOC_COMMIT_TXN,
    abi::GHOST_IOC_SYNC_GROUP_TXN,
];

fn cvt(r: libc::c_long) -> io::Result<libc::c_long> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// `ioctl(fd, cmd, arg)` with any argument (deliberately invalid pointers and commands included).
///
/// # Safety
/// The kernel may write through `arg` as much as `cmd` encodes: `arg` must be an address this process does not
/// otherwise use (e.g. unmapped, or a scratch buffer of at least that size that nothing borrows).
pub unsafe fn ioctl_raw(fd: i32, cmd: u32, arg: usize) -> io::Result<libc::c_long> {
    // SAFETY: the caller's contract; a bad pointer yields EFAULT, never a fault in this process.
    cvt(unsafe { libc::ioctl(fd, cmd as _, arg) } as libc::c_long)
}

/// `ioctl(fd, cmd, &mut arg)` with an argument struct of `ghost_shm::abi` holding deliberately bad values.
///
/// # Safety
/// `T` is at least as large as the argument `cmd` encodes (the kernel writes up to that size into it).
pub unsafe fn ioctl<T>(fd: i32, cmd: u32, arg: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: the caller's contract.
    unsafe { ioctl_raw(fd, cmd, arg as *mut T as usize) }
}

pub fn open(path: &str, flags: i32) -> io::Result<i32> {
    let c = CString::new(path).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: a valid C string.
    let fd = unsafe { libc::open(c.as_ptr(), flags | libc::O_CLOEXEC) };
    cvt(fd as libc::c_long).map(|_| fd)
}

pub fn close(fd: i32) {
    // SAFETY: closing a descriptor this program owns (or a stale one: EBADF, harmless).
    unsafe { libc::close(fd) };
}

/// A mapping, unmapped on drop.
pub struct Mapping {
    pub ptr: *mut u8,
    pub len: usize,
}

impl Mapping {
    pub fn new(fd: i32, len: usize, prot: i32, flags: i32) -> io::Result<Mapping> {
        // SAFETY: a fresh mapping chosen by the kernel; nothing of ours is overwritten.
        let p = unsafe { libc::mmap(std::ptr::null_mut(), len, prot, flags, fd, 0) };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Mapping { ptr: p.cast(), len })
    }

    /// The region over the whole (writable) mapping, borrowing it.
    ///
    /// # Safety
    /// The mapping was made by [`Mapping::new`] with `PROT_READ | PROT_WRITE` and `MAP_SHARED`, and neither its
    /// protection nor `ptr`/`len` changed since.
    pub unsafe fn region(&self) -> Result<ghost_shm::shm::RawRegion<'_>, String> {
        // SAFETY: the mapping is page aligned, `len` bytes, writable (the caller's contract), and stays mapped
        // while `self` (which the returned region borrows) lives.
        unsafe { ghost_shm::shm::RawRegion::new(self.ptr, self.len) }.map_err(|e| format!("mapping: {e}"))
    }

    /// The region over the whole mapping with only the read capability (for `PROT_READ` mappings: the
    /// status words), borrowing it.
    ///
    /// # Safety
    /// The mapping was made by [`Mapping::new`] with at least `PROT_READ`, and neither its protection nor
    /// `ptr`/`len` changed since.
    pub unsafe fn read_only_region(&self) -> Result<ghost_shm::shm::ReadOnlyRegion<'_>, String> {
        // SAFETY: as in `region`; only Relaxed atomic loads go through a ReadOnlyRegion.
        unsafe { ghost_shm::shm::ReadOnlyRegion::new(self.ptr, self.len) }.map_err(|e| format!("mapping: {e}"))
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: our own mapping.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

/// `/proc/ghost_shm/stats` as (key, value) pairs; `queue` lines become `queue<slot>_<field>`.
pub fn stats() -> io::Result<Vec<(String, i64)>> {
    let text = std::fs::read_to_string(STATS)?;
    let mut out = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.first() == Some(&"queue") && f.len() == 8 {
            for k in [2, 4, 6] {
                out.push((format!("queue{}_{}", f[1], f[k]), f[k + 1].parse().unwrap_or(-1)));
            }
        } else if f.len() == 2 {
            out.push((f[0].to_string(), f[1].parse().unwrap_or(-1)));
        }
    }
    Ok(out)
}

pub fn stat(stats: &[(String, i64)], key: &str) -> io::Result<i64> {
    stats
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| *v)
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("no '{key}' in {STATS}")))
}

/// Puts the calling thread into the enclave.
pub fn join_enclave() -> io::Result<()> {
    std::fs::write(TASKS, "0")
}

pub fn gettid() -> i32 {
    // SAFETY: a plain syscall.
    unsafe { libc::gettid() }
}

pub fn sched_getcpu() -> i32 {
    // SAFETY: a plain call.
    unsafe { libc::sched_getcpu() }
}

/// The calling thread's allowed CPUs.
pub fn affinity() -> Vec<usize> {
    // SAFETY: a zeroed cpu_set_t is valid; the kernel fills it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: pointer and size of a local.
    if unsafe { libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut set) } != 0 {
        return Vec::new();
    }
    // SAFETY: reading a filled set.
    (0..libc::CPU_SETSIZE as usize).filter(|&c| unsafe { libc::CPU_ISSET(c, &set) }).collect()
}
