//! Shared-memory regions in memfds or files, mapped with `mmap` (`std`).
//!
//! A [`MappedRegion`] is what a real agent gets from the ghOSt kernel (queue, status-word and `cpu_data`
//! mappings) and what the simulated kernel creates for its agents: a `MAP_SHARED` mapping of exactly the
//! region's size (§1.1), never executable, unmapped on drop. It implements [`SharedMem`], so every protocol of
//! the crate runs on it unchanged, across threads and processes.
//!
//! ```
//! use ghost_shm::region::{Access, MappedRegion};
//! use ghost_shm::shm::SharedMem;
//! let r = MappedRegion::create("demo", 4096).unwrap();
//! // Another process would receive the fd (inheritance, SCM_RIGHTS) and map it the same way:
//! let again = MappedRegion::map_fd(r.fd(), 4096, Access::ReadOnly).unwrap();
//! assert_eq!(again.len(), 4096);
//! assert!(!again.is_writable());
//! assert!(MappedRegion::map_fd(r.fd(), 8192, Access::ReadWrite).is_err()); // wrong size: typed error
//! ```

use crate::shm::{RawRegion, SharedMem};
use core::sync::atomic::AtomicU32;
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::{MemfdFlags, SealFlags};
use rustix::mm::{MapFlags, ProtFlags};
use std::path::Path;

/// How a region is mapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// `PROT_READ`: status words, for the agent.
    ReadOnly,
    /// `PROT_READ | PROT_WRITE`: queues and `cpu_data`.
    ReadWrite,
}

/// Why a region could not be created or mapped.
#[derive(Debug)]
pub enum MapError {
    /// A system call failed.
    Os {
        /// What was being done.
        op: &'static str,
        /// The error.
        errno: rustix::io::Errno,
    },
    /// The file's size is not the region's size (a truncated or foreign file); nothing was mapped.
    SizeMismatch {
        /// Size the region must have.
        expected: usize,
        /// Size of the file.
        actual: u64,
    },
    /// A region of 0 bytes, or one not a multiple of the page size.
    BadLength(usize),
}

impl core::fmt::Display for MapError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            MapError::Os { op, errno } => write!(f, "{op}: {errno}"),
            MapError::SizeMismatch { expected, actual } => {
                write!(f, "region file has {actual} bytes, expected exactly {expected}")
            }
            MapError::BadLength(n) => write!(f, "region length {n} is not a positive multiple of 4096"),
        }
    }
}

impl std::error::Error for MapError {}

fn os(op: &'static str) -> impl FnOnce(rustix::io::Errno) -> MapError {
    move |errno| MapError::Os { op, errno }
}

/// A `MAP_SHARED` mapping of a memfd or file, unmapped on drop.
#[derive(Debug)]
pub struct MappedRegion {
    raw: RawRegion,
    fd: OwnedFd,
    access: Access,
}

impl MappedRegion {
    /// Creates a zero-filled memfd of `len` bytes (a multiple of 4096), sealed against shrinking and growing
    /// (so no other process can truncate it under a mapping), and maps it read-write.
    pub fn create(name: &str, len: usize) -> Result<Self, MapError> {
        if len == 0 || len % crate::abi::PAGE_SIZE != 0 {
            return Err(MapError::BadLength(len));
        }
        let fd = rustix::fs::memfd_create(name, MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING)
            .map_err(os("memfd_create"))?;
        rustix::fs::ftruncate(&fd, len as u64).map_err(os("ftruncate"))?;
        rustix::fs::fcntl_add_seals(&fd, SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL)
            .map_err(os("F_ADD_SEALS"))?;
        Self::map(fd, len, Access::ReadWrite)
    }

    /// Maps an existing region from a file descriptor (duplicated; the caller keeps its own). The file must be
    /// exactly `len` bytes: a shorter (truncated) file would fault on access, so it is refused before mapping.
    pub fn map_fd(fd: BorrowedFd<'_>, len: usize, access: Access) -> Result<Self, MapError> {
        let fd = fd.try_clone_to_owned().map_err(|e| MapError::Os {
            op: "dup",
            errno: rustix::io::Errno::from_io_error(&e).unwrap_or(rustix::io::Errno::BADF),
        })?;
        Self::map(fd, len, access)
    }

    /// Opens and maps a region file (e.g. a ghostfs `cpu_data` or `sw_regions/sw_<id>` file).
    pub fn open(path: &Path, len: usize, access: Access) -> Result<Self, MapError> {
        let flags = match access {
            Access::ReadOnly => rustix::fs::OFlags::RDONLY,
            Access::ReadWrite => rustix::fs::OFlags::RDWR,
        } | rustix::fs::OFlags::CLOEXEC;
        let fd = rustix::fs::open(path, flags, rustix::fs::Mode::empty()).map_err(os("open"))?;
        Self::map(fd, len, access)
    }

    fn map(fd: OwnedFd, len: usize, access: Access) -> Result<Self, MapError> {
        if len == 0 || len % crate::abi::PAGE_SIZE != 0 {
            return Err(MapError::BadLength(len));
        }
        let st = rustix::fs::fstat(&fd).map_err(os("fstat"))?;
        if st.st_size as u64 != len as u64 {
            return Err(MapError::SizeMismatch { expected: len, actual: st.st_size as u64 });
        }
        let prot = match access {
            Access::ReadOnly => ProtFlags::READ,
            Access::ReadWrite => ProtFlags::READ | ProtFlags::WRITE,
        };
        // SAFETY: a fresh mapping chosen by the kernel (null hint) of a file we checked is `len` bytes long;
        // it aliases no Rust object.
        let ptr = unsafe { rustix::mm::mmap(core::ptr::null_mut(), len, prot, MapFlags::SHARED, &fd, 0) }
            .map_err(os("mmap"))?;
        // SAFETY: the mapping is page-aligned, `len` bytes long, and stays mapped until `Drop` (which takes
        // `&mut self`, so no RawRegion copy handed out through `&self` outlives it... except `raw()`, whose
        // contract says so). It is only accessed through atomics.
        let raw = match unsafe { RawRegion::new(ptr.cast(), len) } {
            Ok(raw) => raw,
            Err(_) => {
                // SAFETY: unmapping what we just mapped; nothing refers to it.
                let _ = unsafe { rustix::mm::munmap(ptr, len) };
                return Err(MapError::BadLength(len));
            }
        };
        Ok(MappedRegion { raw, fd, access })
    }

    /// The file descriptor (to pass to another process).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Whether the mapping is writable.
    pub fn is_writable(&self) -> bool {
        self.access == Access::ReadWrite
    }

    /// The mapping as a [`RawRegion`].
    ///
    /// # Safety
    /// The returned value (and its copies) must not be used after `self` is dropped, and must not be
    /// written through if the region is read-only.
    pub unsafe fn raw(&self) -> RawRegion {
        self.raw
    }

    /// The `u32` at `off` as an atomic, e.g. for a futex; `None` if out of bounds or unaligned.
    pub fn atomic_u32(&self, off: usize) -> Option<&AtomicU32> {
        if off % 4 != 0 || off.checked_add(4)? > self.raw.len() {
            return None;
        }
        // SAFETY: in bounds and 4-aligned (checked above; the mapping is page-aligned); the mapping lives as
        // long as `&self`, and shared memory is only accessed atomically.
        Some(unsafe { &*(self.raw.as_ptr().add(off) as *const AtomicU32) })
    }
}

impl Drop for MappedRegion {
    fn drop(&mut self) {
        // SAFETY: unmapping our own mapping; `&mut self` means no borrow of it is alive, and RawRegion copies
        // obtained through the unsafe `raw()` are bound by its contract not to outlive `self`.
        let _ = unsafe { rustix::mm::munmap(self.raw.as_ptr().cast(), self.raw.len()) };
    }
}

// SharedMem: forwards to the RawRegion over the mapping this value keeps alive. On a read-only mapping a store
// faults (SIGSEGV) instead of corrupting memory; the typed constructors of the agent API only build writers on
// writable mappings.
crate::shm::forward_shared_mem!([] MappedRegion, s => s.raw);
