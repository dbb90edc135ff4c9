//! Shared-memory regions in memfds or files, mapped with `mmap` (`std`).
//!
//! A [`MappedRegion`] is what a real agent gets from the ghOSt kernel (queue, status-word and `cpu_data`
//! mappings) and what a process shares with another: a `MAP_SHARED` mapping of exactly the region's size, never
//! executable, unmapped on drop. Its capability is in its type: a `MappedRegion<ReadWrite>` implements
//! [`SharedMem`](crate::shm::SharedMem) (every protocol of the crate runs on it), a `MappedRegion<ReadOnly>` only [`SharedMemRead`]
//! (a status-word [`Reader`](crate::status::Reader) runs on it; a writer does not compile).
//!
//! A mapping faults (`SIGBUS`) if its file shrinks underneath it, so a file that a peer could truncate is
//! refused: [`MappedRegion::map_fd`] and [`MappedRegion::open`] map only memfds sealed against shrinking
//! (`F_SEAL_SHRINK`, which [`MappedRegion::create`] sets). Files that the kernel provides and no peer can
//! truncate (ghostfs's `cpu_data`, `sw_regions/sw_<id>`) are mapped with the `unsafe`
//! [`MappedRegion::map_fd_trusted`] / [`MappedRegion::open_trusted`], whose caller vouches for that.
//!
//! ```
//! use ghost_shm::region::{MapError, MappedRegion, ReadOnly, ReadWrite};
//! use ghost_shm::shm::SharedMemRead;
//! let r = MappedRegion::create("demo", 4096).unwrap();
//! // Another process would receive the fd (inheritance, SCM_RIGHTS) and map it the same way:
//! let again = MappedRegion::<ReadOnly>::map_fd(r.fd(), 4096).unwrap();
//! assert_eq!(again.len(), 4096);
//! assert!(!again.is_writable());
//! assert!(matches!(MappedRegion::<ReadWrite>::map_fd(r.fd(), 8192), Err(MapError::SizeMismatch { .. })));
//! ```
//!
//! A read-only mapping offers no store:
//!
//! ```compile_fail,E0599
//! use ghost_shm::region::{MappedRegion, ReadOnly};
//! use ghost_shm::shm::SharedMem;
//! let r = MappedRegion::create("demo", 4096).unwrap();
//! let ro = MappedRegion::<ReadOnly>::map_fd(r.fd(), 4096).unwrap();
//! unsafe { ro.store_u32(0, 1, core::sync::atomic::Ordering::Relaxed) };
//! ```
//!
//! and no protocol that writes can be built on one:
//!
//! ```compile_fail,E0277
//! use ghost_shm::region::{MappedRegion, ReadOnly};
//! let r = MappedRegion::create("sw", 4096).unwrap();
//! let ro = MappedRegion::<ReadOnly>::map_fd(r.fd(), 4096).unwrap();
//! let _ = ghost_shm::status::Writer::<_, 1>::with_capacity(&ro, 0, 0, 16);
//! ```

use crate::shm::{RawRegion, ReadOnlyRegion, SharedMemRead};
use core::marker::PhantomData;
use core::sync::atomic::AtomicU32;
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::{MemfdFlags, SealFlags};
use rustix::mm::{MapFlags, ProtFlags};
use std::path::Path;

/// How a region is mapped: [`ReadOnly`] or [`ReadWrite`] (sealed: no other implementations).
pub trait Access: sealed::Sealed + core::fmt::Debug + Send + Sync + 'static {
    /// Whether the mapping is writable.
    const WRITABLE: bool;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::ReadOnly {}
    impl Sealed for super::ReadWrite {}
}

/// `PROT_READ`: status words, as ghOSt maps them for agents. Only [`SharedMemRead`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadOnly {}

/// `PROT_READ | PROT_WRITE`: queues and `cpu_data`. [`SharedMem`](crate::shm::SharedMem).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadWrite {}

impl Access for ReadOnly {
    const WRITABLE: bool = false;
}

impl Access for ReadWrite {
    const WRITABLE: bool = true;
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
    /// The file is not sealed against shrinking (`F_SEAL_SHRINK`), so a peer could truncate it under the
    /// mapping and make every access fault; nothing was mapped. Use a sealed memfd, or the `unsafe`
    /// `*_trusted` constructors for a file no peer can shrink.
    NotSealed,
}

impl core::fmt::Display for MapError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            MapError::Os { op, errno } => write!(f, "{op}: {errno}"),
            MapError::SizeMismatch { expected, actual } => {
                write!(f, "region file has {actual} bytes, expected exactly {expected}")
            }
            MapError::BadLength(n) => write!(f, "region length {n} is not a positive multiple of 4096"),
            MapError::NotSealed => f.write_str("region file is not a memfd sealed against shrinking (F_SEAL_SHRINK)"),
        }
    }
}

impl std::error::Error for MapError {}

fn os(op: &'static str) -> impl FnOnce(rustix::io::Errno) -> MapError {
    move |errno| MapError::Os { op, errno }
}

/// A `MAP_SHARED` mapping of a memfd or file, unmapped on drop, with the capability `A` ([`ReadOnly`] or
/// [`ReadWrite`]).
#[derive(Debug)]
pub struct MappedRegion<A: Access = ReadWrite> {
    // Private: the `'static` is a lie told only to ourselves; every region handed out borrows `self`.
    raw: RawRegion<'static>,
    fd: OwnedFd,
    _access: PhantomData<A>,
}

impl MappedRegion<ReadWrite> {
    /// Creates a zero-filled memfd of `len` bytes (a multiple of 4096), sealed against shrinking and growing
    /// (so no other process can truncate it under a mapping), and maps it read-write.
    pub fn create(name: &str, len: usize) -> Result<Self, MapError> {
        let fd = new_memfd(name, len)?;
        rustix::fs::fcntl_add_seals(&fd, SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL)
            .map_err(os("F_ADD_SEALS"))?;
        Self::map(fd, len)
    }

    /// Like [`create`](MappedRegion::create), for a region its receivers may only read (status words, as
    /// ghOSt hands them to agents): after this mapping is made, the memfd is sealed with `F_SEAL_FUTURE_WRITE`,
    /// so a process that receives the fd can map it read-only and nothing else (a writable `mmap` or a
    /// `write(2)` fails with `EPERM`). The returned mapping stays writable for its creator.
    pub fn create_for_readers(name: &str, len: usize) -> Result<Self, MapError> {
        let fd = new_memfd(name, len)?;
        rustix::fs::fcntl_add_seals(&fd, SealFlags::SHRINK | SealFlags::GROW).map_err(os("F_ADD_SEALS"))?;
        let region = Self::map(fd, len)?;
        rustix::fs::fcntl_add_seals(&region.fd, SealFlags::FUTURE_WRITE | SealFlags::SEAL)
            .map_err(os("F_ADD_SEALS"))?;
        Ok(region)
    }

    /// The mapping as a [`RawRegion`] borrowing `self` (it cannot outlive the mapping).
    pub fn raw(&self) -> RawRegion<'_> {
        self.raw
    }
}

fn new_memfd(name: &str, len: usize) -> Result<OwnedFd, MapError> {
    if len == 0 || len % crate::abi::PAGE_SIZE != 0 {
        return Err(MapError::BadLength(len));
    }
    let fd =
        rustix::fs::memfd_create(name, MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING).map_err(os("memfd_create"))?;
    rustix::fs::ftruncate(&fd, len as u64).map_err(os("ftruncate"))?;
    Ok(fd)
}

/// Refuses a file that a peer could shrink under a mapping: it must carry `F_SEAL_SHRINK` (only memfds and
/// other sealable shmem files can; `F_GET_SEALS` fails with `EINVAL` on the rest).
fn check_sealed(fd: &OwnedFd) -> Result<(), MapError> {
    match rustix::fs::fcntl_get_seals(fd) {
        Ok(seals) if seals.contains(SealFlags::SHRINK) => Ok(()),
        Ok(_) | Err(rustix::io::Errno::INVAL) => Err(MapError::NotSealed),
        Err(errno) => Err(MapError::Os { op: "F_GET_SEALS", errno }),
    }
}

impl<A: Access> MappedRegion<A> {
    /// Maps an existing region from a file descriptor (duplicated; the caller keeps its own). The file must be
    /// a memfd sealed against shrinking (else [`MapError::NotSealed`]: a peer could truncate it and make the
    /// next access fault) and exactly `len` bytes long.
    pub fn map_fd(fd: BorrowedFd<'_>, len: usize) -> Result<Self, MapError> {
        let fd = dup(fd)?;
        check_sealed(&fd)?;
        Self::map(fd, len)
    }

    /// Maps an existing region from a file descriptor without requiring a seal (a ghostfs file, say).
    ///
    /// # Safety
    /// Nobody may shrink the file while the mapping exists (an access past the new end raises `SIGBUS`). Files
    /// the kernel provides with a fixed size (ghostfs's `cpu_data` and `sw_regions/sw_<id>`) satisfy this; a
    /// file a peer process can `ftruncate` does not. A file that is not a regular file and reports no size (a
    /// character device, an anonymous inode) is mapped at `len`: its driver must refuse a `mmap` of any length
    /// but the region's (ghOSt's queue fds and the kernel module's devices do).
    pub unsafe fn map_fd_trusted(fd: BorrowedFd<'_>, len: usize) -> Result<Self, MapError> {
        Self::map(dup(fd)?, len)
    }

    /// Opens and maps a region file, which must be a sealed memfd (e.g. `/proc/<pid>/fd/<n>`); see
    /// [`map_fd`](MappedRegion::map_fd).
    pub fn open(path: &Path, len: usize) -> Result<Self, MapError> {
        let fd = open_file::<A>(path)?;
        check_sealed(&fd)?;
        Self::map(fd, len)
    }

    /// Opens and maps a region file without requiring a seal (e.g. a ghostfs `cpu_data` or
    /// `sw_regions/sw_<id>` file).
    ///
    /// # Safety
    /// Both conditions of [`map_fd_trusted`](MappedRegion::map_fd_trusted) (nobody shrinks the file while it is
    /// mapped; a size-less kernel file really is `len` bytes).
    pub unsafe fn open_trusted(path: &Path, len: usize) -> Result<Self, MapError> {
        Self::map(open_file::<A>(path)?, len)
    }

    fn map(fd: OwnedFd, len: usize) -> Result<Self, MapError> {
        if len == 0 || len % crate::abi::PAGE_SIZE != 0 {
            return Err(MapError::BadLength(len));
        }
        let st = rustix::fs::fstat(&fd).map_err(os("fstat"))?;
        // A kernel object that is not a regular file (a character device such as the kernel module's
        // `/dev/ghost_shm_*`, the anonymous inode of a ghOSt queue fd) has no size: its driver's `mmap` checks the
        // length itself. Only the `*_trusted` constructors get here with one (`check_sealed` refuses them).
        let regular = rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::RegularFile;
        let sized = regular || st.st_size != 0;
        if sized && st.st_size as u64 != len as u64 {
            return Err(MapError::SizeMismatch { expected: len, actual: st.st_size as u64 });
        }
        let prot = if A::WRITABLE { ProtFlags::READ | ProtFlags::WRITE } else { ProtFlags::READ };
        // SAFETY: a fresh mapping chosen by the kernel (null hint) of a file that is `len` bytes long (checked
        // above, or, for a size-less kernel file, vouched for by the caller of a `*_trusted` constructor);
        // it aliases no Rust object.
        let ptr = unsafe { rustix::mm::mmap(core::ptr::null_mut(), len, prot, MapFlags::SHARED, &fd, 0) }
            .map_err(os("mmap"))?;
        // SAFETY: the mapping is page-aligned, `len` bytes long, and stays mapped until `Drop`; `raw` is private
        // and every region handed out borrows `self`, so none outlives the mapping. Its file cannot shrink
        // under it (sealed, or vouched for by the caller of a `*_trusted` constructor). It is only accessed
        // through atomics, and stores only through `MappedRegion<ReadWrite>` (mapped writable).
        let raw = match unsafe { RawRegion::new(ptr.cast(), len) } {
            Ok(raw) => raw,
            Err(_) => {
                // SAFETY: unmapping what we just mapped; nothing refers to it.
                let _ = unsafe { rustix::mm::munmap(ptr, len) };
                return Err(MapError::BadLength(len));
            }
        };
        Ok(MappedRegion { raw, fd, _access: PhantomData })
    }

    /// The file descriptor (to pass to another process).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Whether the mapping is writable (`A` is [`ReadWrite`]).
    pub fn is_writable(&self) -> bool {
        A::WRITABLE
    }

    /// The mapping with only the read capability, borrowing `self`.
    pub fn read_only(&self) -> ReadOnlyRegion<'_> {
        self.raw.read_only()
    }
}

fn dup(fd: BorrowedFd<'_>) -> Result<OwnedFd, MapError> {
    fd.try_clone_to_owned().map_err(|e| MapError::Os {
        op: "dup",
        errno: rustix::io::Errno::from_io_error(&e).unwrap_or(rustix::io::Errno::BADF),
    })
}

fn open_file<A: Access>(path: &Path) -> Result<OwnedFd, MapError> {
    let flags = if A::WRITABLE { rustix::fs::OFlags::RDWR } else { rustix::fs::OFlags::RDONLY };
    rustix::fs::open(path, flags | rustix::fs::OFlags::CLOEXEC, rustix::fs::Mode::empty()).map_err(os("open"))
}

impl MappedRegion<ReadWrite> {
    /// The doorbell word at `off` as an atomic for a futex (see [`crate::wake`]): crate-private, so that only a
    /// doorbell, which accesses its word at this width alone, ever gets one.
    pub(crate) fn futex_atomic(&self, off: usize) -> Option<&AtomicU32> {
        if off % 4 != 0 || off.checked_add(4)? > self.raw.len() {
            return None;
        }
        // SAFETY: in bounds and 4-aligned (checked above; the mapping is page-aligned); the mapping lives as
        // long as `&self`, and shared memory is only accessed atomically.
        Some(unsafe { &*(self.raw.as_ptr().add(off) as *const AtomicU32) })
    }
}

impl<A: Access> Drop for MappedRegion<A> {
    fn drop(&mut self) {
        // SAFETY: unmapping our own mapping; `&mut self` means no borrow of it (and so no region or protocol
        // handle built on one) is alive.
        let _ = unsafe { rustix::mm::munmap(self.raw.as_ptr().cast(), self.raw.len()) };
    }
}

// Loads for any mapping: all Relaxed (SharedMemRead), so allowed on a PROT_READ mapping.
crate::shm::forward_shared_mem!(read [A: Access] MappedRegion<A>, s => s.raw);
// Stores only on a mapping made writable.
// SAFETY: as in the macro: forwarded to the RawRegion over the writable mapping this value keeps alive.
crate::shm::forward_shared_mem!(write_only [] MappedRegion<ReadWrite>, s => s.raw);
