//! C ABI over ghost-shm's agent side: an agent written in C attaches to an enclave through the crate's
//! [`UapiBackend`] (a ghOSt kernel's ghostfs enclave or the kernel module's devices), creates and reads its
//! queues (the crate's `Consumer`), reads status words (the crate's `Reader`), and commits transactions (the
//! crate's `AgentTxn` + `GHOST_IOC_COMMIT_TXN`). Header: `include/ghost_shm_agent.h` (cbindgen; regenerate with
//! `bash ffi/agent/build.sh --header`, CI fails on drift).
//!
//! Every function returns a [`GsaStatus`] (0 = success, negative = what went wrong, in the crate's
//! [`AgentError`] terms) and never panics; a null or unknown handle, queue or CPU is an error, not undefined
//! behaviour (except a pointer that is neither null nor valid: C cannot tell).

use ghost_shm::abi::{GhostSwInfo, Gtid, Message, TxnOutcome};
use ghost_shm::agent::{AgentError, AgentQueue, Backend, Enclave};
use ghost_shm::region::{MappedRegion, ReadWrite};
use ghost_shm::topology::CpuSet;
use ghost_shm::uapi::ghostfs::Ghostfs;
use ghost_shm::uapi::{ModuleFiles, UapiBackend};
use std::sync::{Arc, Mutex};

/// What a call did: `GSA_STATUS_OK` (0) or why it failed (negative).
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GsaStatus {
    /// Success.
    Ok = 0,
    /// A barrier was stale (`ESTALE`): drain the queue, re-read the status word, retry.
    Stale = -1,
    /// No such task, queue or status word.
    NotFound = -2,
    /// A malformed request (or the kernel refused it with `EINVAL`).
    Invalid = -3,
    /// The kernel is out of resources.
    NoSpace = -4,
    /// The enclave is gone: exit.
    Gone = -5,
    /// A region's layout does not match what this agent expects.
    Region = -6,
    /// The enclave speaks another ABI.
    Abi = -7,
    /// A CPU outside the enclave's `cpu_data`.
    BadCpu = -8,
    /// A queue reported corruption.
    Queue = -9,
    /// A status word could not be read consistently.
    StatusWord = -10,
    /// The enclave could not be opened (missing files, permissions).
    Open = -11,
    /// A null pointer argument.
    Null = -12,
}

impl From<AgentError> for GsaStatus {
    fn from(e: AgentError) -> Self {
        match e {
            AgentError::AbiMismatch { .. } => GsaStatus::Abi,
            AgentError::Stale => GsaStatus::Stale,
            AgentError::NotFound => GsaStatus::NotFound,
            AgentError::Invalid(_) => GsaStatus::Invalid,
            AgentError::NoSpace => GsaStatus::NoSpace,
            AgentError::Gone => GsaStatus::Gone,
            AgentError::Region(_) => GsaStatus::Region,
            AgentError::Queue(_) => GsaStatus::Queue,
            AgentError::StatusWord(_) => GsaStatus::StatusWord,
            AgentError::BadCpu(_) => GsaStatus::BadCpu,
        }
    }
}

/// `MSG_TASK_DEAD`: a task exited (free its status word).
pub const GSA_MSG_TASK_DEAD: u16 = 64;
/// `MSG_TASK_BLOCKED`.
pub const GSA_MSG_TASK_BLOCKED: u16 = 65;
/// `MSG_TASK_WAKEUP`.
pub const GSA_MSG_TASK_WAKEUP: u16 = 66;
/// `MSG_TASK_NEW` (with `runnable`, `sw_id`, `sw_index`).
pub const GSA_MSG_TASK_NEW: u16 = 67;
/// `MSG_TASK_PREEMPT`.
pub const GSA_MSG_TASK_PREEMPT: u16 = 68;
/// `MSG_TASK_YIELD`.
pub const GSA_MSG_TASK_YIELD: u16 = 69;
/// `MSG_TASK_DEPARTED`: a task left (free its status word).
pub const GSA_MSG_TASK_DEPARTED: u16 = 70;

/// The kernel's verdict on a transaction ([`gsa_run`]).
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GsaTxnOutcome {
    /// `GHOST_TXN_COMPLETE`: committed.
    Complete = 0,
    /// `GHOST_TXN_TARGET_STALE`: a newer message of the task is in flight: drain, retry with its seqnum.
    TargetStale = 1,
    /// `GHOST_TXN_TARGET_NOT_FOUND`: the task is gone.
    TargetNotFound = 2,
    /// `GHOST_TXN_AGENT_STALE`: the agent's queue got a message: drain, retry.
    AgentStale = 3,
    /// Any other refusal (invalid target, no agent, not permitted, ...).
    Other = 4,
    /// `GHOST_TXN_TARGET_ONCPU`: the task runs on a CPU right now.
    TargetOnCpu = 5,
    /// `GHOST_TXN_TARGET_NOT_RUNNABLE`: the task is not runnable (a message saying so is on its way).
    TargetNotRunnable = 6,
    /// `GHOST_TXN_CPU_UNAVAIL`: a higher scheduling class holds the CPU.
    CpuUnavail = 7,
}

impl From<TxnOutcome> for GsaTxnOutcome {
    fn from(o: TxnOutcome) -> Self {
        match o {
            TxnOutcome::Complete => GsaTxnOutcome::Complete,
            TxnOutcome::TargetStale => GsaTxnOutcome::TargetStale,
            TxnOutcome::TargetNotFound => GsaTxnOutcome::TargetNotFound,
            TxnOutcome::AgentStale => GsaTxnOutcome::AgentStale,
            TxnOutcome::TargetOnCpu => GsaTxnOutcome::TargetOnCpu,
            TxnOutcome::TargetNotRunnable => GsaTxnOutcome::TargetNotRunnable,
            TxnOutcome::CpuUnavail => GsaTxnOutcome::CpuUnavail,
            _ => GsaTxnOutcome::Other,
        }
    }
}

/// An agent's handle on its enclave (opaque to C). Every call takes it shared, so several threads may use one
/// handle at once (workload threads joining with [`gsa_add_thread`] while the agent reads its queue).
pub struct GsaAgent {
    enclave: Enclave<UapiBackend>,
    queues: Mutex<Vec<AgentQueue<Arc<MappedRegion<ReadWrite>>>>>,
}

impl GsaAgent {
    fn queues(&self) -> std::sync::MutexGuard<'_, Vec<AgentQueue<Arc<MappedRegion<ReadWrite>>>>> {
        self.queues.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// One message, decoded. Fields a message type does not have are 0.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GsaMessage {
    /// `MSG_*` type (e.g. 67 = `MSG_TASK_NEW`).
    pub msg_type: u16,
    /// The source's barrier when the message was produced: the task barrier a transaction must carry.
    pub seqnum: u32,
    /// The task (task messages), else 0.
    pub gtid: i64,
    /// The CPU of a CPU message, else -1.
    pub cpu: i32,
    /// `TASK_NEW`: whether the task is runnable.
    pub runnable: bool,
    /// `TASK_NEW`: where its status word is.
    pub sw_id: u32,
    /// `TASK_NEW`: where its status word is.
    pub sw_index: u32,
}

/// Opens the kernel module's enclave (`/dev/ghost_shm`, every CPU). `agent_cpu` (or -1: none) is reserved for
/// the agent: it is not a worker CPU. On success `*out` owns the handle (free it with [`gsa_close`]).
///
/// # Safety
/// `out` is null or valid for a write of one pointer.
#[no_mangle]
pub unsafe extern "C" fn gsa_open_module(agent_cpu: i32, out: *mut *mut GsaAgent) -> GsaStatus {
    match UapiBackend::module(&ModuleFiles::default()) {
        Ok(b) => {
            // SAFETY: forwarded from our caller's contract.
            unsafe { finish_open(b, agent_cpu, out) }
        }
        Err(_) => GsaStatus::Open,
    }
}

/// Opens ghostfs's `enclave_<id>` on a ghOSt kernel (status-word region 0 on NUMA node `node`), reserving
/// `agent_cpu` (or -1) as with [`gsa_open_module`].
///
/// # Safety
/// `out` is null or valid for a write of one pointer.
#[no_mangle]
pub unsafe extern "C" fn gsa_open_ghostfs(
    enclave_id: u64,
    node: u32,
    agent_cpu: i32,
    out: *mut *mut GsaAgent,
) -> GsaStatus {
    match UapiBackend::ghostfs(&Ghostfs::system().enclave(enclave_id), node) {
        Ok(b) => {
            // SAFETY: forwarded from our caller's contract.
            unsafe { finish_open(b, agent_cpu, out) }
        }
        Err(ghost_shm::uapi::OpenError::AbiMismatch { .. }) => GsaStatus::Abi,
        Err(_) => GsaStatus::Open,
    }
}

/// # Safety
/// `out` is null or valid for a write of one pointer.
unsafe fn finish_open(b: UapiBackend, agent_cpu: i32, out: *mut *mut GsaAgent) -> GsaStatus {
    if out.is_null() {
        return GsaStatus::Null;
    }
    let b = match u32::try_from(agent_cpu) {
        Ok(c) if c < b.ncpus() => match CpuSet::from_cpus([c as usize]) {
            Ok(set) => b.with_agent_cpus(&set),
            Err(_) => return GsaStatus::BadCpu,
        },
        Ok(_) => return GsaStatus::BadCpu,
        Err(_) => b,
    };
    match Enclave::attach(b) {
        Ok(enclave) => {
            let h = Box::into_raw(Box::new(GsaAgent { enclave, queues: Mutex::new(Vec::new()) }));
            // SAFETY: `out` is non-null and valid for a write (our caller's contract).
            unsafe { out.write(h) };
            GsaStatus::Ok
        }
        Err(e) => e.into(),
    }
}

/// Closes a handle (null: nothing). Its queues and mappings go with it.
///
/// # Safety
/// `a` is null or a handle from `gsa_open_*` not closed yet; it is not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn gsa_close(a: *mut GsaAgent) {
    if !a.is_null() {
        // SAFETY: a live handle from Box::into_raw, given back once (our caller's contract).
        drop(unsafe { Box::from_raw(a) });
    }
}

/// # Safety
/// `a` is null or a live handle (not being closed).
unsafe fn agent<'a>(a: *mut GsaAgent) -> Option<&'a GsaAgent> {
    // SAFETY: null or a live handle (our caller's contract); only shared references are ever made from it (a
    // `GsaAgent` is `Sync`: its mutable state is behind a mutex).
    unsafe { a.as_ref() }
}

/// Number of CPU slots in `cpu_data` (0 for a null handle).
///
/// # Safety
/// `a` is null or a live handle.
#[no_mangle]
pub unsafe extern "C" fn gsa_ncpus(a: *mut GsaAgent) -> u32 {
    // SAFETY: forwarded.
    unsafe { agent(a) }.map_or(0, |a| a.enclave.backend().ncpus())
}

/// Whether `cpu` is a worker CPU of the enclave (runs its tasks; not the reserved agent CPU).
///
/// # Safety
/// `a` is null or a live handle.
#[no_mangle]
pub unsafe extern "C" fn gsa_is_worker_cpu(a: *mut GsaAgent, cpu: u32) -> bool {
    // SAFETY: forwarded.
    unsafe { agent(a) }.is_some_and(|a| a.enclave.cpus().contains(cpu as usize))
}

fn status(r: Result<(), AgentError>) -> GsaStatus {
    r.map_or_else(GsaStatus::from, |()| GsaStatus::Ok)
}

/// Makes the calling thread the agent of `cpu` (messages to queue `queue`, or -1: the default queue); on the
/// module: pins it to `cpu`.
///
/// # Safety
/// `a` is null or a live handle.
#[no_mangle]
pub unsafe extern "C" fn gsa_become_agent(a: *mut GsaAgent, cpu: u32, queue: i32) -> GsaStatus {
    // SAFETY: forwarded.
    let Some(a) = (unsafe { agent(a) }) else { return GsaStatus::Null };
    let q = match u32::try_from(queue) {
        Ok(i) => match a.queues().get(i as usize) {
            Some(q) => Some(q.id()),
            None => return GsaStatus::NotFound,
        },
        Err(_) => None,
    };
    status(a.enclave.backend().become_agent(cpu, q, 100).map_err(|e| e.agent_error()))
}

/// Moves thread `tid` of this process into the enclave (0: the calling thread).
///
/// # Safety
/// `a` is null or a live handle.
#[no_mangle]
pub unsafe extern "C" fn gsa_add_thread(a: *mut GsaAgent, tid: u32) -> GsaStatus {
    // SAFETY: forwarded.
    let Some(a) = (unsafe { agent(a) }) else { return GsaStatus::Null };
    match a.enclave.backend().add_thread((tid != 0).then_some(tid)) {
        Ok(()) => GsaStatus::Ok,
        Err(_) => GsaStatus::Open,
    }
}

/// Advertises the agent (ghOSt's `agent_online`; nothing on the module).
///
/// # Safety
/// `a` is null or a live handle.
#[no_mangle]
pub unsafe extern "C" fn gsa_advertise(a: *mut GsaAgent) -> GsaStatus {
    // SAFETY: forwarded.
    let Some(a) = (unsafe { agent(a) }) else { return GsaStatus::Null };
    match a.enclave.backend().advertise() {
        Ok(()) => GsaStatus::Ok,
        Err(_) => GsaStatus::Open,
    }
}

/// Creates a queue of `nelems` slots (a power of two, 1..=65536); `*id` is its number for the other calls.
///
/// # Safety
/// `a` is null or a live handle; `id` is null or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn gsa_create_queue(a: *mut GsaAgent, nelems: u32, id: *mut u32) -> GsaStatus {
    // SAFETY: forwarded.
    let Some(a) = (unsafe { agent(a) }) else { return GsaStatus::Null };
    if id.is_null() {
        return GsaStatus::Null;
    }
    match a.enclave.create_queue(nelems) {
        Ok(q) => {
            let mut queues = a.queues();
            queues.push(q);
            // SAFETY: non-null and valid for a write (our caller's contract).
            unsafe { id.write(queues.len() as u32 - 1) };
            GsaStatus::Ok
        }
        Err(e) => e.into(),
    }
}

/// Makes queue `id` the enclave's default queue.
///
/// # Safety
/// `a` is null or a live handle.
#[no_mangle]
pub unsafe extern "C" fn gsa_set_default_queue(a: *mut GsaAgent, id: u32) -> GsaStatus {
    // SAFETY: forwarded.
    let Some(a) = (unsafe { agent(a) }) else { return GsaStatus::Null };
    let queues = a.queues();
    let Some(q) = queues.get(id as usize) else { return GsaStatus::NotFound };
    status(a.enclave.set_default_queue(q))
}

/// Wakes the agent of `cpu` (-1: nobody, the agent polls) when queue `id` gets a message.
///
/// # Safety
/// `a` is null or a live handle.
#[no_mangle]
pub unsafe extern "C" fn gsa_config_queue_wakeup(a: *mut GsaAgent, id: u32, cpu: i32) -> GsaStatus {
    // SAFETY: forwarded.
    let Some(a) = (unsafe { agent(a) }) else { return GsaStatus::Null };
    let queues = a.queues();
    let Some(q) = queues.get(id as usize) else { return GsaStatus::NotFound };
    status(a.enclave.config_queue_wakeup(q, u32::try_from(cpu).ok()))
}

/// Reads the next message of queue `id` into `*msg`: 1 if there was one, 0 if the queue is empty, or a negative
/// [`GsaStatus`]. Messages the ring lost to an overflow are counted by the crate, not returned.
///
/// # Safety
/// `a` is null or a live handle; `msg` is null or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn gsa_queue_read(a: *mut GsaAgent, id: u32, msg: *mut GsaMessage) -> i32 {
    // SAFETY: forwarded.
    let Some(a) = (unsafe { agent(a) }) else { return GsaStatus::Null as i32 };
    if msg.is_null() {
        return GsaStatus::Null as i32;
    }
    let mut queues = a.queues();
    let Some(q) = queues.get_mut(id as usize) else { return GsaStatus::NotFound as i32 };
    // `pop`: read, then hand the slot back to the producer at once (a C agent has no batch boundary to wait for).
    match q.consumer().pop() {
        Ok(None) => 0,
        Ok(Some(d)) => {
            let m = &d.message;
            let mut out = GsaMessage {
                msg_type: m.msg_type() as u16,
                seqnum: d.seqnum,
                gtid: m.gtid().map_or(0, |g| g.0),
                cpu: m.cpu().unwrap_or(-1),
                ..Default::default()
            };
            if let Message::TaskNew(p) = m {
                out.runnable = p.runnable != 0;
                out.sw_id = p.sw_info.id;
                out.sw_index = p.sw_info.index;
            }
            // SAFETY: non-null and valid for a write (our caller's contract).
            unsafe { msg.write(out) };
            1
        }
        Err(_) => GsaStatus::Queue as i32,
    }
}

/// Messages queue `id` lost to overflows since the last call (all since its creation on the first call); 0 for
/// a null handle or an unknown queue.
///
/// # Safety
/// `a` is null or a live handle.
#[no_mangle]
pub unsafe extern "C" fn gsa_queue_overflows(a: *mut GsaAgent, id: u32) -> u32 {
    // SAFETY: forwarded.
    let Some(a) = (unsafe { agent(a) }) else { return 0 };
    a.queues().get_mut(id as usize).map_or(0, |q| q.consumer().new_overflows())
}

/// The barrier of the status word at (`sw_id`, `sw_index`) into `*barrier`.
///
/// # Safety
/// `a` is null or a live handle; `barrier` is null or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn gsa_task_barrier(a: *mut GsaAgent, sw_id: u32, sw_index: u32, barrier: *mut u32) -> GsaStatus {
    // SAFETY: forwarded.
    let Some(a) = (unsafe { agent(a) }) else { return GsaStatus::Null };
    if barrier.is_null() {
        return GsaStatus::Null;
    }
    match a.enclave.status_word(GhostSwInfo { id: sw_id, index: sw_index }) {
        Ok(s) => {
            // SAFETY: non-null and valid for a write (our caller's contract).
            unsafe { barrier.write(s.barrier.0) };
            GsaStatus::Ok
        }
        Err(e) => e.into(),
    }
}

/// Frees the status word of a dead or departed task (`GHOST_IOC_SW_FREE`).
///
/// # Safety
/// `a` is null or a live handle.
#[no_mangle]
pub unsafe extern "C" fn gsa_free_status_word(a: *mut GsaAgent, sw_id: u32, sw_index: u32) -> GsaStatus {
    // SAFETY: forwarded.
    let Some(a) = (unsafe { agent(a) }) else { return GsaStatus::Null };
    status(a.enclave.free_status_word(GhostSwInfo { id: sw_id, index: sw_index }))
}

/// Runs task `gtid` on `cpu`: opens `cpu`'s transaction, fills the target and `task_barrier` (the seqnum of the
/// task's latest message), commits it with `GHOST_IOC_COMMIT_TXN` from `caller_cpu`, and writes the kernel's
/// verdict (a [`GsaTxnOutcome`]) to `*outcome`.
///
/// # Safety
/// `a` is null or a live handle; `outcome` is null or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn gsa_run(
    a: *mut GsaAgent,
    caller_cpu: u32,
    cpu: u32,
    gtid: i64,
    task_barrier: u32,
    outcome: *mut i32,
) -> GsaStatus {
    // SAFETY: forwarded.
    let Some(a) = (unsafe { agent(a) }) else { return GsaStatus::Null };
    if outcome.is_null() {
        return GsaStatus::Null;
    }
    let mut txn = match a.enclave.txn(cpu) {
        Ok(t) => t,
        Err(e) => return e.into(),
    };
    let Ok(open) = txn.open() else { return GsaStatus::Invalid };
    let pending = open.target(Gtid(gtid)).task_barrier(task_barrier).commit();
    if let Err(e) = a.enclave.backend().commit(caller_cpu, &[cpu]) {
        return e.into();
    }
    match pending.poll() {
        Ok(Some(o)) => {
            // SAFETY: non-null and valid for a write (our caller's contract).
            unsafe { outcome.write(GsaTxnOutcome::from(o.outcome) as i32) };
            GsaStatus::Ok
        }
        // Not claimed by the kernel (the module commits inline: should not happen) or a corrupt state.
        Ok(None) | Err(_) => GsaStatus::Region,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_and_missing_are_errors_not_crashes() {
        let mut h: *mut GsaAgent = std::ptr::null_mut();
        // SAFETY: `h` is a valid out pointer; null handles are part of the contract.
        unsafe {
            // No module on the build machine: the open fails and writes nothing.
            assert_eq!(gsa_open_module(-1, &mut h), GsaStatus::Open);
            assert!(h.is_null());
            assert_eq!(gsa_open_ghostfs(1, 0, -1, &mut h), GsaStatus::Open);
            assert_eq!(gsa_ncpus(h), 0);
            assert!(!gsa_is_worker_cpu(h, 0));
            let mut id = 0;
            assert_eq!(gsa_create_queue(h, 64, &mut id), GsaStatus::Null);
            let mut m = GsaMessage::default();
            assert_eq!(gsa_queue_read(h, 0, &mut m), GsaStatus::Null as i32);
            let mut o = 0;
            assert_eq!(gsa_run(h, 0, 0, 1, 1, &mut o), GsaStatus::Null);
            assert_eq!(gsa_become_agent(h, 0, -1), GsaStatus::Null);
            gsa_close(h);
        }
    }

    #[test]
    fn a_handle_is_shareable_between_threads() {
        fn sync<T: Sync + Send>() {}
        sync::<GsaAgent>();
    }

    #[test]
    fn message_types_are_the_abi_ones() {
        use ghost_shm::abi;
        assert_eq!(
            [
                GSA_MSG_TASK_DEAD,
                GSA_MSG_TASK_BLOCKED,
                GSA_MSG_TASK_WAKEUP,
                GSA_MSG_TASK_NEW,
                GSA_MSG_TASK_PREEMPT,
                GSA_MSG_TASK_YIELD,
                GSA_MSG_TASK_DEPARTED
            ],
            [
                abi::MSG_TASK_DEAD,
                abi::MSG_TASK_BLOCKED,
                abi::MSG_TASK_WAKEUP,
                abi::MSG_TASK_NEW,
                abi::MSG_TASK_PREEMPT,
                abi::MSG_TASK_YIELD,
                abi::MSG_TASK_DEPARTED
            ]
        );
        assert_eq!(GsaTxnOutcome::from(TxnOutcome::Complete), GsaTxnOutcome::Complete);
        assert_eq!(GsaTxnOutcome::from(TxnOutcome::TargetStale), GsaTxnOutcome::TargetStale);
        assert_eq!(GsaTxnOutcome::from(TxnOutcome::CpuUnavail), GsaTxnOutcome::CpuUnavail);
        assert_eq!(GsaTxnOutcome::from(TxnOutcome::InvalidTarget), GsaTxnOutcome::Other);
    }

    #[test]
    fn agent_errors_map_to_statuses() {
        assert_eq!(GsaStatus::from(AgentError::Stale), GsaStatus::Stale);
        assert_eq!(GsaStatus::from(AgentError::BadCpu(3)), GsaStatus::BadCpu);
        assert_eq!(GsaStatus::from(AgentError::Gone), GsaStatus::Gone);
        assert_eq!(GsaStatus::from(AgentError::AbiMismatch { enclave: 90, ours: 91 }), GsaStatus::Abi);
    }
}
