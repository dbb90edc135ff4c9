//! Capabilities of mapped regions (issue: soundness): a peer that could shrink the file under a mapping is
//! refused, status words handed to readers are sealed read-only, and a read-only mapping serves the status-word
//! reader. (The compile-time halves, no store on read-only memory and no region outliving its owner, are
//! `compile_fail` doc tests on `region`, `shm::ReadOnlyRegion` and `shm::OwnedRegion::raw`.)
#![cfg(not(miri))] // mmap, memfd

use ghost_shm::abi::{Gtid, SwFlags, PAGE_SIZE};
use ghost_shm::region::{MapError, MappedRegion, ReadOnly, ReadWrite};
use ghost_shm::status::{region_len, Reader, Writer};
use rustix::fs::{MemfdFlags, SealFlags};

fn memfd(len: u64, sealing: bool) -> rustix::fd::OwnedFd {
    let flags = if sealing { MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING } else { MemfdFlags::CLOEXEC };
    let fd = rustix::fs::memfd_create("test", flags).unwrap();
    rustix::fs::ftruncate(&fd, len).unwrap();
    fd
}

#[test]
fn a_file_a_peer_can_shrink_is_refused() {
    use rustix::fd::AsFd;
    // A memfd without F_SEAL_SHRINK: the peer could ftruncate it and make our next access fault (SIGBUS).
    let unsealed = memfd(PAGE_SIZE as u64, true);
    assert!(matches!(MappedRegion::<ReadWrite>::map_fd(unsealed.as_fd(), PAGE_SIZE), Err(MapError::NotSealed)));
    assert!(matches!(MappedRegion::<ReadOnly>::map_fd(unsealed.as_fd(), PAGE_SIZE), Err(MapError::NotSealed)));
    // A memfd that cannot be sealed at all, and a plain file: refused too.
    let unsealable = memfd(PAGE_SIZE as u64, false);
    assert!(matches!(MappedRegion::<ReadWrite>::map_fd(unsealable.as_fd(), PAGE_SIZE), Err(MapError::NotSealed)));
    let dir = std::env::temp_dir().join(format!("ghost-shm-regions-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("plain");
    std::fs::write(&path, vec![0u8; PAGE_SIZE]).unwrap();
    assert!(matches!(MappedRegion::<ReadWrite>::open(&path, PAGE_SIZE), Err(MapError::NotSealed)));
    // The caller may vouch for a file no peer shrinks (ghostfs's regions): the unsafe constructor maps it.
    // SAFETY: this test owns the file and does not shrink it while it is mapped.
    let trusted = unsafe { MappedRegion::<ReadOnly>::open_trusted(&path, PAGE_SIZE) }.unwrap();
    assert!(!trusted.is_writable());
    drop(trusted);
    std::fs::remove_dir_all(&dir).unwrap();
    // Sealed against shrinking: accepted, and the peer's truncation fails instead of faulting us.
    rustix::fs::fcntl_add_seals(&unsealed, SealFlags::SHRINK).unwrap();
    let r = MappedRegion::<ReadWrite>::map_fd(unsealed.as_fd(), PAGE_SIZE).unwrap();
    assert_eq!(rustix::fs::ftruncate(&unsealed, 0), Err(rustix::io::Errno::PERM));
    assert_eq!(ghost_shm::shm::SharedMemRead::len(&r), PAGE_SIZE);
}

#[test]
fn status_words_for_readers_are_sealed_read_only() {
    let len = region_len(16).next_multiple_of(PAGE_SIZE);
    let kernel = MappedRegion::create_for_readers("sw", len).unwrap();
    let w = Writer::<_, 1>::with_capacity(kernel.raw(), 0, 0, 16).unwrap();
    let mut word = w.alloc().unwrap().init(Gtid(42), SwFlags::TASK_RUNNABLE);
    word.bump_barrier(); // the kernel's writes go through its own, writable mapping
                         // The receiver of the fd cannot map it writable (F_SEAL_FUTURE_WRITE) ...
    match MappedRegion::<ReadWrite>::map_fd(kernel.fd(), len) {
        Err(MapError::Os { op: "mmap", errno }) => assert_eq!(errno, rustix::io::Errno::PERM),
        other => panic!("a writable mapping of a reader's region: {other:?}"),
    }
    // ... but can map it read-only and read the words with the status-word reader.
    let ro = MappedRegion::<ReadOnly>::map_fd(kernel.fd(), len).unwrap();
    let reader = Reader::attach(&ro).unwrap();
    let snap = reader.snapshot(word.index()).unwrap();
    assert_eq!((snap.gtid, snap.runnable(), snap.barrier), (Gtid(42), true, word.barrier()));
    // A borrowed read-only view of the same mapping serves too.
    assert_eq!(Reader::attach(ro.read_only()).unwrap().snapshot(word.index()).unwrap(), snap);
}
