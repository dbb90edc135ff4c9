//! # ghost-shm
//!
//! The lock-free, `no_std` core of the [ghOSt] kernel ↔ agent shared-memory protocols, byte-compatible with
//! ghOSt ABI 91 (`GHOST_VERSION` = [`abi::GHOST_VERSION`]).
//!
//! A kernel module and a user-space agent link the *identical* data-structure code:
//!
//! | module | kernel side (trusts nothing) | agent side |
//! |---|---|---|
//! | [`abi`] | `repr(C)` layouts, constants, typed messages | same |
//! | [`shm`] | the [`shm::SharedMem`] backend every protocol runs on | same |
//! | [`queue`] | [`queue::Producer`], routing, `ASSOCIATE_QUEUE` | [`queue::Consumer`], [`queue::Doorbell`] |
//! | [`status`] | [`status::Writer`], [`status::Word`], [`status::AgentBarrier`] | [`status::Reader`], [`status::Barrier`] |
//! | [`txn`] | claim / validate / complete, sync groups ([`txn::KernelView`]) | [`txn::AgentTxn`] open → commit → outcome |
//! | [`topology`] | [`topology::CpuSet`], topology model, partitioning | same, plus the sysfs reader (`std`) |
//!
//! With `std` (default): `region` (memfd/mmap regions), `wake` (futex wakeups), `agent` (the agent API: an
//! `Enclave` handle over a `Backend`), `framework` (write a scheduling policy in a few dozen lines: typed
//! callbacks, task table, discovery, centralized and per-CPU runtimes; its docs are the "write a policy"
//! chapter), and with `sim` (default) the simulated kernel `sim`, which runs agents without a ghOSt kernel.
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
//! ## Write an agent
//!
//! Most agents are a [`framework::Policy`] of a few dozen lines: the [`framework`] module's "write a policy"
//! chapter builds a round robin and explains worker, agent and caller CPUs. This section shows the loop the
//! framework runs for you, by hand.
//!
//! An agent drains its queue, keeps a task table keyed by gtid (each message's `seqnum` is the task's barrier
//! after it), and commits transactions whose task barrier is the last seqnum it saw; a stale decision is
//! refused by the kernel (`TargetStale`) and simply retried after draining again. The complete FIFO agents in
//! `examples/` run on the simulated kernel (`cargo run --release --example demo`). A minimal one:
//!
//! ```
//! # #[cfg(feature = "sim")] {
//! use ghost_shm::abi::{Gtid, Message};
//! use ghost_shm::agent::{AgentError, AgentQueue, Backend, Enclave};
//! use ghost_shm::shm::SharedMem;
//! use ghost_shm::sim::{self, Agent, AgentStats, Config};
//! use std::collections::{BTreeMap, VecDeque};
//!
//! struct Fifo<M: SharedMem> {
//!     queue: AgentQueue<M>,
//!     seqnum: BTreeMap<Gtid, u32>,
//!     runq: VecDeque<Gtid>,
//!     running: Vec<Option<Gtid>>,
//! }
//!
//! impl<B: Backend> Agent<B> for Fifo<B::Region> {
//!     fn step(&mut self, enclave: &Enclave<B>) -> Result<(), AgentError> {
//!         // 1. Drain messages: remember each task's latest seqnum, track who runs where.
//!         let mut msgs = Vec::new();
//!         self.queue.consumer().drain(|d| msgs.push(d))?;
//!         for d in msgs {
//!             let Some(g) = d.message.gtid() else { continue };
//!             self.seqnum.insert(g, d.seqnum);
//!             let off = |running: &mut Vec<Option<Gtid>>| running.iter_mut().filter(|r| **r == Some(g)).for_each(|r| *r = None);
//!             match d.message {
//!                 Message::TaskNew(_) | Message::TaskWakeup(_) => self.runq.push_back(g),
//!                 Message::TaskYield(_) | Message::TaskPreempt(_) => { off(&mut self.running); self.runq.push_back(g) }
//!                 Message::TaskBlocked(_) => off(&mut self.running),
//!                 Message::TaskDead(_) => { off(&mut self.running); self.seqnum.remove(&g); }
//!                 _ => {}
//!             }
//!         }
//!         // 2. One transaction per idle CPU, task barrier = the last seqnum seen.
//!         for cpu in enclave.cpus().iter() {
//!             if self.running[cpu].is_some() { continue }
//!             let Some(g) = self.runq.pop_front() else { break };
//!             let mut txn = enclave.txn(cpu as u32)?;
//!             let Ok(open) = txn.open() else { self.runq.push_front(g); continue };
//!             let pending = open.target(g).task_barrier(self.seqnum[&g]).commit();
//!             enclave.commit(0, &[cpu as u32])?;
//!             // 3. The outcome: on any failure (e.g. TargetStale) retry after the next drain.
//!             match pending.poll() {
//!                 Ok(Some(o)) if o.is_success() => self.running[cpu] = Some(g),
//!                 _ => self.runq.push_front(g),
//!             }
//!         }
//!         Ok(())
//!     }
//!     fn stats(&self) -> AgentStats { AgentStats::default() }
//! }
//!
//! let cfg = Config { cpus: 2, tasks: 50, ..Config::default() };
//! let report = sim::run(&cfg, |enclave| {
//!     let queue = enclave.create_queue(1024)?;
//!     enclave.set_default_queue(&queue)?;
//!     let n = enclave.backend().ncpus() as usize;
//!     Ok(Fifo { queue, seqnum: BTreeMap::new(), runq: VecDeque::new(), running: vec![None; n] })
//! });
//! assert_eq!(report.tasks_completed, 50);
//! assert_eq!(report.invariant_violations, 0);
//! # }
//! ```
//!
//! [ghOSt]: https://dl.acm.org/doi/10.1145/3477132.3483542
#![no_std]
// docs.rs (`--cfg docsrs`, nightly): every feature-gated item shows its feature (doc_cfg badges them itself).
#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

#[cfg(target_endian = "big")]
compile_error!("ghOSt ABI 91 is little-endian only");

#[cfg(any(feature = "std", test, loom))]
extern crate std;

pub mod abi;
#[cfg(feature = "std")]
pub mod agent;
#[cfg(feature = "std")]
pub mod framework;
pub mod queue;
#[cfg(feature = "std")]
pub mod region;
pub mod shm;
#[cfg(feature = "sim")]
pub mod sim;
pub mod status;
pub(crate) mod sync;
pub mod topology;
pub mod txn;
#[cfg(feature = "std")]
pub mod uapi;
#[cfg(feature = "std")]
pub mod wake;
