//! Futex wakeups for queues (`std`): the producer's [`Notify`] hook and the agent's blocking wait, built on the
//! core's no-lost-wakeup [`Doorbell`] handshake.
//!
//! The doorbell word may live in any futex-capable region — a [`MappedRegion`] shared between processes or an
//! [`OwnedRegion`] inside one — and uses shared (non-private) futexes, so it works across processes.
//!
//! ```
//! use ghost_shm::abi::{self, Message, PayloadCpuTick};
//! use ghost_shm::queue::{Consumer, Producer};
//! use ghost_shm::shm::OwnedRegion;
//! use ghost_shm::wake::FutexDoorbell;
//! use std::{sync::Arc, time::Duration};
//!
//! let ring = Arc::new(OwnedRegion::new(abi::queue_mapsize(64)));
//! let bell = Arc::new(OwnedRegion::new(64));
//! let producer = Producer::init(ring.clone(), 64).unwrap().with_notify(FutexDoorbell::new(bell.clone(), 0).unwrap());
//! let mut consumer = Consumer::attach(ring).unwrap();
//! let waiter = FutexDoorbell::new(bell, 0).unwrap();
//!
//! let t = std::thread::spawn(move || producer.produce(&Message::CpuTick(PayloadCpuTick { cpu: 0, is_agent: 0 }), 1));
//! assert!(waiter.wait_for(&mut consumer, Some(Duration::from_secs(10))).unwrap());
//! assert_eq!(consumer.pop().unwrap().unwrap().seqnum, 1);
//! t.join().unwrap().unwrap();
//! ```

use crate::queue::{ConsumeError, Consumer, Doorbell, Notify, DOORBELL_WAITING};
#[cfg(doc)]
use crate::region::MappedRegion;
use crate::shm::{OwnedRegion, SharedMem};
use core::sync::atomic::AtomicU32;
use rustix::thread::futex;
use std::time::{Duration, Instant};

/// Memory whose `u32` words can be used as futexes.
pub trait FutexWord: SharedMem {
    /// The word at `off` as an atomic; `None` if out of bounds or unaligned.
    fn futex_word(&self, off: usize) -> Option<&AtomicU32>;
}

impl FutexWord for crate::region::MappedRegion {
    fn futex_word(&self, off: usize) -> Option<&AtomicU32> {
        self.atomic_u32(off)
    }
}

impl FutexWord for OwnedRegion {
    fn futex_word(&self, off: usize) -> Option<&AtomicU32> {
        self.atomic_u32(off)
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
#[derive(Debug)]
pub struct FutexDoorbell<M: FutexWord> {
    bell: Doorbell<M>,
}

impl<M: FutexWord> FutexDoorbell<M> {
    /// A doorbell on the `u32` at `off` of `mem`; `None` if out of bounds or unaligned.
    pub fn new(mem: M, off: usize) -> Option<Self> {
        mem.futex_word(off)?;
        Some(FutexDoorbell { bell: Doorbell::new(mem, off)? })
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
