//! # ghost-shm
//!
//! The lock-free, `no_std` core of the [ghOSt] kernel ↔ agent shared-memory protocols, byte-compatible with
//! ghOSt ABI 91 (`GHOST_VERSION` = [`abi::GHOST_VERSION`]).
//!
//! A kernel module and a user-space agent link the *identical* data-structure code:
//!
//! | module | kernel side (producer, trusts nothing) | agent side (consumer) |
//! |---|---|---|
//! | [`abi`] | `repr(C)` layouts, constants, typed messages | same |
//! | [`queue`] | [`queue::Producer`], queue routing | [`queue::Consumer`] |
//! | [`topology`] | [`topology::CpuSet`], topology model | same, plus the sysfs reader (`std`) |
//!
//! ## Guarantees
//! - **`no_std`, no allocation** in the core (everything outside the `std` feature). It builds for
//!   `x86_64-unknown-none` and `aarch64-unknown-none` with `--no-default-features`, uses no floating point.
//! - **Shared memory is hostile.** Every access to a shared region goes through [`shm::SharedMem`], i.e. through
//!   atomics, never through `&T`/`&mut [u8]` that the other side could change underneath. Kernel-side code reads
//!   every agent-writable field exactly once, validates the copy and answers bad values with a typed error: it
//!   never panics, never loops unboundedly and never touches memory outside its region, whatever the agent
//!   writes, concurrently or not. Agent-side code bounds-checks everything the kernel wrote as well.
//! - **Memory model.** Every protocol is written once, generic over [`shm::SharedMem`]; the production backend
//!   ([`shm::RawRegion`]) uses `core::sync::atomic`, and the loom backend (`cfg(loom)`) runs the *same* code
//!   under the loom model checker. Every Release/Acquire names its pair in a comment.
//!
//! ## Threat model
//! The kernel trusts nothing an agent can write: the queue `tail`, every transaction field, a writable queue
//! header. A hostile agent may write any value at any time. The kernel side must then still never read or
//! write outside its regions, never panic, never loop unboundedly, never hand out overlapping ring slots, and it
//! must report the corruption. The agent side trusts the kernel but still bounds-checks, so a buggy kernel
//! produces an error, not undefined behaviour.
//!
//! The crate assumes a little-endian target, as ghOSt does (x86_64, aarch64).
//!
//! [ghOSt]: https://dl.acm.org/doi/10.1145/3477132.3483542
#![no_std]
#![deny(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

#[cfg(target_endian = "big")]
compile_error!("ghOSt ABI 91 is little-endian only");

#[cfg(any(feature = "std", test, loom))]
extern crate std;

pub mod abi;
pub mod queue;
#[cfg(feature = "std")]
pub mod region;
pub mod shm;
pub mod status;
pub(crate) mod sync;
pub mod topology;
pub mod txn;
#[cfg(feature = "std")]
pub mod wake;
