//! Kernel-private synchronisation primitives (not in shared memory).
//!
//! Under `cfg(loom)` these are loom's types so that the models explore every interleaving of the kernel-private
//! state too; otherwise they are `core` atomics and a `spin` mutex (the ghOSt kernel serializes producers of a
//! queue with a per-queue spinlock).

#[cfg(loom)]
#[allow(unused_imports)]
pub(crate) use loom::sync::atomic::{AtomicU32, AtomicU64, Ordering};

#[cfg(not(loom))]
#[allow(unused_imports)]
pub(crate) use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// The guard of a [`Lock`].
#[cfg(not(loom))]
pub(crate) type LockGuard<'a, T> = spin::MutexGuard<'a, T>;
/// The guard of a [`Lock`].
#[cfg(loom)]
pub(crate) type LockGuard<'a, T> = loom::sync::MutexGuard<'a, T>;

/// A mutual-exclusion lock: `spin::Mutex` in production, `loom::sync::Mutex` under loom.
pub(crate) struct Lock<T> {
    #[cfg(not(loom))]
    inner: spin::Mutex<T>,
    #[cfg(loom)]
    inner: loom::sync::Mutex<T>,
}

impl<T> Lock<T> {
    pub(crate) fn new(value: T) -> Self {
        Lock {
            #[cfg(not(loom))]
            inner: spin::Mutex::new(value),
            #[cfg(loom)]
            inner: loom::sync::Mutex::new(value),
        }
    }

    #[cfg(not(loom))]
    pub(crate) fn lock(&self) -> LockGuard<'_, T> {
        self.inner.lock()
    }

    /// Exclusive access without locking (the `&mut` proves nobody else holds it).
    #[cfg(not(loom))]
    pub(crate) fn get_mut(&mut self) -> &mut T {
        self.inner.get_mut()
    }

    /// Exclusive access without locking (the `&mut` proves nobody else holds it).
    #[cfg(loom)]
    pub(crate) fn get_mut(&mut self) -> &mut T {
        // Poisoned only if a model thread panicked, which already fails the model.
        self.inner.get_mut().unwrap()
    }

    #[cfg(loom)]
    pub(crate) fn lock(&self) -> LockGuard<'_, T> {
        // A loom mutex is poisoned only if a model thread panicked, which already fails the model.
        self.inner.lock().unwrap()
    }
}
