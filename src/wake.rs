//! Futex wakeups for queues (`std`): the producer's [`Notify`] hook and the agent's blocking wait, built on the
//! core's no-lost-wakeup [`Doorbell`] handshake.
//!
//! The doorbell word lives in a region of its own — a fresh [`OwnedRegion`] for threads of one process
//! ([`FutexDoorbell::in_process`]) or a sealed memfd page shared between processes ([`FutexDoorbell::create`],
//! [`FutexDoorbell::map_fd`]) — so no other protocol touches it at another width, and it uses shared
//! (non-private) futexes, so it works across processes.
//!
//! ```
//! use ghost_shm::abi::{self, Message, PayloadCpuTick};
//! use ghost_shm::queue::{Consumer, Producer};
//! use ghost_shm::shm::OwnedRegion;
//! use ghost_shm::wake::FutexDoorbell;
//! use std::{sync::Arc, time::Duration};
//!
//! let ring = Arc::new(OwnedRegion::new(abi::queue_mapsize(64)));
//! let waiter = FutexDoorbell::in_process();
//! let producer = Producer::init(ring.clone(), 64).unwrap().with_notify(waiter.clone());
//! let mut consumer = Consumer::attach(ring).unwrap();
//!
//! let t = std::thread::spawn(move || producer.produce(&Message::CpuTick(PayloadCpuTick { cpu: 0, is_agent: 0 }), 1));
//! assert!(waiter.wait_for(&mut consumer, Some(Duration::from_secs(10))).unwrap());
//! assert_eq!(consumer.pop().unwrap().unwrap().seqnum, 1);
//! t.join().unwrap().unwrap();
//! ```

use crate::queue::{ConsumeError, Consumer, Doorbell, Notify, DOORBELL_WAITING};
use crate::region::{MapError, MappedRegion, ReadWrite};
use crate::shm::{OwnedRegion, SharedMem};
use core::sync::atomic::AtomicU32;
use rustix::fd::BorrowedFd;
use rustix::thread::futex;
use std::time::{Duration, Instant};

/// Memory whose `u32` words can be used as futexes: a writable [`MappedRegion`] or an [`OwnedRegion`] (or a
/// reference or `Arc` to one). Sealed: the atomic it hands out is crate-private, and only [`FutexDoorbell`]
/// asks for one, for its own doorbell word.
pub trait FutexWord: SharedMem + sealed::Sealed {
    /// The word at `off` as an atomic; `None` if out of bounds or unaligned.
    #[doc(hidden)]
    fn futex_word(&self, off: usize) -> Option<&AtomicU32>;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for crate::region::MappedRegion<crate::region::ReadWrite> {}
    impl Sealed for crate::shm::OwnedRegion {}
    impl<T: Sealed + ?Sized> Sealed for &T {}
    impl<T: Sealed + ?Sized> Sealed for std::sync::Arc<T> {}
}

impl FutexWord for crate::region::MappedRegion<crate::region::ReadWrite> {
    fn futex_word(&self, off: usize) -> Option<&AtomicU32> {
        self.futex_atomic(off)
    }
}

impl FutexWord for OwnedRegion {
    fn futex_word(&self, off: usize) -> Option<&AtomicU32> {
        self.futex_atomic(off)
    }
}

impl<T: FutexWord + ?Sized> FutexWord for &T {
    fn futex_word(&self, off: usize) -> Option<&AtomicU32> {
        (**self).futex_word(off)
    }
}

impl<T: FutexWord + ?Sized> FutexWord for std::sync::Arc<T> {
    fn futex_word(&self, off: usize) -> Option<&AtomicU32> {
        (**self).futex_word(off)
    }
}

/// A [`Doorbell`] whose sleeping side blocks in `futex_wait` and whose ringing side calls `futex_wake`.
#[derive(Debug, Clone)]
pub struct FutexDoorbell<M: FutexWord> {
    bell: Doorbell<M>,
}

impl FutexDoorbell<std::sync::Arc<OwnedRegion>> {
    /// A doorbell in a word of its own (a fresh 64-byte heap region) for threads of one process; clones share
    /// it.
    pub fn in_process() -> Self {
        let mem = std::sync::Arc::new(OwnedRegion::new(64));
        // SAFETY: the region is fresh and private to this doorbell and its clones, which access word 0 only
        // as a 4-byte doorbell.
        unsafe { Self::new(mem, 0) }.expect("word 0 of a 64-byte region is in bounds and aligned")
    }
}

impl FutexDoorbell<MappedRegion<ReadWrite>> {
    /// A doorbell in a page of its own: a fresh sealed memfd, whose [`fd`](FutexDoorbell::fd) another process
    /// maps with [`map_fd`](FutexDoorbell::map_fd).
    pub fn create(name: &str) -> Result<Self, MapError> {
        Self::mapped(MappedRegion::create(name, crate::abi::PAGE_SIZE)?)
    }

    /// The other side of [`create`](FutexDoorbell::create): maps the doorbell page from `fd` (a sealed memfd of
    /// one page, see [`MappedRegion::map_fd`]).
    pub fn map_fd(fd: BorrowedFd<'_>) -> Result<Self, MapError> {
        Self::mapped(MappedRegion::map_fd(fd, crate::abi::PAGE_SIZE)?)
    }

    fn mapped(page: MappedRegion<ReadWrite>) -> Result<Self, MapError> {
        // SAFETY: the mapping is new and owned by this doorbell: nothing else in this process can reach it, and
        // the doorbell accesses word 0 only at 4 bytes. (Another process is a hostile peer, not a Rust access.)
        Ok(unsafe { Self::new(page, 0) }.expect("word 0 of a page is in bounds and aligned"))
    }

    /// The doorbell page's file descriptor (to pass to another process).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.bell.memory().fd()
    }
}

impl<M: FutexWord> FutexDoorbell<M> {
    /// A doorbell on the `u32` at `off` of `mem`; `None` if out of bounds or unaligned.
    ///
    /// # Safety
    /// As for [`Doorbell::new`]: nothing else accesses that word with an atomic of another width while the
    /// doorbell is used. [`in_process`](FutexDoorbell::in_process) and [`create`](FutexDoorbell::create) are
    /// safe because they allocate the word themselves.
    pub unsafe fn new(mem: M, off: usize) -> Option<Self> {
        mem.futex_word(off)?;
        // SAFETY: the caller's contract is Doorbell::new's.
        Some(FutexDoorbell { bell: unsafe { Doorbell::new(mem, off) }? })
    }

    fn word(&self) -> Option<&AtomicU32> {
        self.bell.memory().futex_word(self.bell.offset())
    }

    /// Blocks until `pending()` is true or `timeout` passes; returns the last `pending()`. Cannot miss a wakeup
    /// of a producer that publishes and then rings (see [`Doorbell`]).
    pub fn wait_until(&self, mut pending: impl FnMut() -> bool, timeout: Option<Duration>) -> bool {
        if pending() {
            return true;
        }
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            self.bell.prepare_wait();
            if pending() {
                self.bell.cancel_wait();
                return true;
            }
            while self.bell.is_waiting() {
                let left = match deadline {
                    Some(d) => match d.checked_duration_since(Instant::now()) {
                        Some(l) if !l.is_zero() => Some(l),
                        _ => {
                            self.bell.cancel_wait();
                            return pending();
                        }
                    },
                    None => None,
                };
                let ts = left.map(|l| rustix::time::Timespec {
                    tv_sec: l.as_secs().min(i64::MAX as u64) as i64,
                    tv_nsec: l.subsec_nanos() as _,
                });
                if let Some(w) = self.word() {
                    // Returns at once if the word is no longer WAITING (the producer rang), on a wake, a signal
                    // or the timeout; every case re-checks the word.
                    let _ = futex::wait(w, futex::Flags::empty(), DOORBELL_WAITING, ts.as_ref());
                }
            }
            if pending() {
                return true;
            }
        }
    }

    /// Blocks until `consumer` has a message (or padding) pending, or `timeout` passes. Everything read so far is
    /// released first (see [`Consumer::drain_lazy`]). A ring error is returned so the caller can act on it.
    pub fn wait_for<Q: SharedMem>(
        &self,
        consumer: &mut Consumer<Q>,
        timeout: Option<Duration>,
    ) -> Result<bool, ConsumeError> {
        consumer.release();
        let mut err = None;
        let got = self.wait_until(
            || match consumer.has_pending() {
                Ok(p) => p,
                Err(e) => {
                    err = Some(e);
                    true
                }
            },
            timeout,
        );
        match err {
            Some(e) => Err(e),
            None => Ok(got),
        }
    }
}

impl<M: FutexWord> Notify for FutexDoorbell<M> {
    fn notify(&self) {
        if self.bell.ring() {
            if let Some(w) = self.word() {
                let _ = futex::wake(w, futex::Flags::empty(), 1);
            }
        }
    }
}
