//! The agent API (`std`): an [`Enclave`] handle over a [`Backend`] (the simulated kernel today, a real ghOSt
//! kernel's ioctls tomorrow), in the domain's words.
//!
//! | ghOSt | here |
//! |---|---|
//! | `GHOST_IOC_CREATE_QUEUE` + mmap | [`Enclave::create_queue`] → [`AgentQueue`] (a [`Consumer`]) |
//! | `GHOST_IOC_SET_DEFAULT_QUEUE` | [`Enclave::set_default_queue`] |
//! | `GHOST_IOC_ASSOC_QUEUE` | [`Enclave::associate`] |
//! | `GHOST_IOC_CONFIG_QUEUE_WAKEUP` | [`Enclave::config_queue_wakeup`] |
//! | status-word region (read-only) | [`Enclave::status_words`], [`Enclave::discover`] |
//! | `cpu_data` transactions | [`Enclave::txn`], [`Enclave::commit`], [`Enclave::group_commit`] |
//! | `GHOST_IOC_SW_FREE` | [`Enclave::free_status_word`] |
//! | `enclave_N/cpulist`, sysfs | [`Enclave::cpus`], [`Enclave::topology`] |
//!
//! Errors are [`AgentError`]s that say what to do: [`AgentError::Stale`] means "drain your queue, re-read the
//! status word, retry".
//!
//! ## Writing an agent
//!
//! Most agents are best written as a [`Policy`](crate::framework::Policy) on the
//! [`framework`](crate::framework), which runs this loop, the task table, discovery and the retries for you.
//! By hand, the loop is always:
//!
//! 1. drain messages from the queue(s) and update the task table (`seqnum` = the task's barrier after it);
//! 2. pick tasks for idle CPUs; open each CPU's transaction, fill it (target gtid, the task's last `seqnum` as
//!    task barrier), commit it, and submit ([`Enclave::commit`]);
//! 3. read the outcomes: `TargetStale` / `AgentStale` mean newer messages are in flight: go back to 1.

use crate::abi::{GhostSwInfo, Gtid, GHOST_VERSION};
use crate::queue::{AssocStatus, ConsumeError, Consumer, QueueError, QueueId};
use crate::shm::{SharedMem, SharedMemRead};
use crate::status::{AttachError, Discovery, ReadError, Reader, Snapshot};
use crate::topology::sysfs::OwnedTopology;
use crate::topology::CpuSet;
use crate::txn::{AgentTxn, BadCpu, CpuData, LayoutError};

/// Why an agent operation failed, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentError {
    /// The enclave speaks another ABI: this agent cannot run there (rebuild against that ABI).
    AbiMismatch {
        /// The enclave's ABI.
        enclave: u32,
        /// This crate's ABI.
        ours: u32,
    },
    /// The barrier passed is not current (`ESTALE`): drain the queue, re-read the status word, retry.
    Stale,
    /// No such task, queue or word (`ENOENT`): forget it.
    NotFound,
    /// The request is malformed (`EINVAL`), e.g. a bad queue size or a word that is not `CANFREE` yet.
    Invalid(&'static str),
    /// The kernel (or simulator) has no room (`ENOMEM`).
    NoSpace,
    /// The enclave is gone (`ENODEV`): exit.
    Gone,
    /// A region could not be attached: the kernel and this agent disagree about a layout.
    Region(&'static str),
    /// A queue reported corruption.
    Queue(ConsumeError),
    /// A status word could not be read.
    StatusWord(ReadError),
    /// A CPU outside the enclave's `cpu_data`.
    BadCpu(u32),
}

impl core::fmt::Display for AgentError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            AgentError::AbiMismatch { enclave, ours } => {
                write!(f, "enclave runs ABI {enclave}, this agent was built for ABI {ours}")
            }
            AgentError::Stale => f.write_str("stale barrier: drain the queue, re-read the status word and retry"),
            AgentError::NotFound => f.write_str("no such task, queue or status word"),
            AgentError::Invalid(why) => write!(f, "invalid request: {why}"),
            AgentError::NoSpace => f.write_str("out of kernel resources"),
            AgentError::Gone => f.write_str("the enclave is gone"),
            AgentError::Region(why) => write!(f, "cannot attach region: {why}"),
            AgentError::Queue(e) => write!(f, "queue: {e}"),
            AgentError::StatusWord(e) => write!(f, "status word: {e:?}"),
            AgentError::BadCpu(c) => write!(f, "CPU {c} is not in the enclave's cpu_data"),
        }
    }
}

impl std::error::Error for AgentError {}

impl From<ConsumeError> for AgentError {
    fn from(e: ConsumeError) -> Self {
        AgentError::Queue(e)
    }
}

impl From<ReadError> for AgentError {
    fn from(e: ReadError) -> Self {
        AgentError::StatusWord(e)
    }
}

impl From<BadCpu> for AgentError {
    fn from(e: BadCpu) -> Self {
        AgentError::BadCpu(e.0)
    }
}

/// What an enclave offers an agent: the kernel side of the ghostfs files and ioctls.
pub trait Backend {
    /// The regions it maps for the agent to write: queues and `cpu_data`.
    type Region: SharedMem;
    /// The status-word regions, which the agent only reads (a ghOSt kernel maps them `PROT_READ`).
    type StatusRegion: SharedMemRead;
    /// The enclave's ABI (`enclave_N/abi_version`).
    fn abi_version(&self) -> u32;
    /// The enclave's CPUs.
    fn cpus(&self) -> CpuSet;
    /// Number of CPU slots in `cpu_data` (possible CPUs).
    fn ncpus(&self) -> u32;
    /// The status-word region (the agent only reads it).
    fn status_region(&self) -> Self::StatusRegion;
    /// Every status-word region (ghOSt's `sw_regions/sw_<id>`, 65,534 words each), the first being
    /// [`status_region`](Backend::status_region). The default: that one region.
    fn status_regions(&self) -> std::vec::Vec<Self::StatusRegion> {
        std::vec![self.status_region()]
    }
    /// The `cpu_data` region.
    fn cpu_data(&self) -> Self::Region;
    /// `GHOST_IOC_CREATE_QUEUE`: a queue of `nelems` slots and its mapping.
    fn create_queue(&self, nelems: u32) -> Result<(QueueId, Self::Region), AgentError>;
    /// `GHOST_IOC_SET_DEFAULT_QUEUE`.
    fn set_default_queue(&self, queue: QueueId) -> Result<(), AgentError>;
    /// `GHOST_IOC_ASSOC_QUEUE` for a task.
    fn associate_queue(&self, queue: QueueId, gtid: Gtid, barrier: u32) -> Result<AssocStatus, AgentError>;
    /// `GHOST_IOC_CONFIG_QUEUE_WAKEUP`: wake the agent of `cpu` (or nobody: polling) for this queue.
    fn config_queue_wakeup(&self, queue: QueueId, cpu: Option<u32>) -> Result<(), AgentError>;
    /// `GHOST_IOC_COMMIT_TXN` from the agent on `caller` for the READY transactions of `cpus`. `caller` is the
    /// CPU the calling agent thread runs on (the kernel commits a transaction of that CPU last, and blocks
    /// the caller if it commits a task onto its own CPU).
    fn commit(&self, caller: u32, cpus: &[u32]) -> Result<(), AgentError>;
    /// `GHOST_IOC_SYNC_GROUP_TXN`: all-or-nothing; `Ok(true)` if every member committed.
    fn sync_group_commit(&self, caller: u32, cpus: &[u32]) -> Result<bool, AgentError>;
    /// `GHOST_IOC_SW_FREE`.
    fn free_status_word(&self, info: GhostSwInfo) -> Result<(), AgentError>;
    /// The machine's topology restricted to the enclave's CPUs, for placement decisions. The default reads
    /// the real sysfs (right for an agent on a ghOSt kernel); a simulator without a model returns `None`.
    fn topology(&self) -> Option<OwnedTopology> {
        let mut t = OwnedTopology::from_sysfs("/sys").ok()?;
        t.intersect(&self.cpus());
        Some(t)
    }
    /// `sched_getaffinity`: the CPUs `gtid` may run on, if the backend knows (`None`: unknown, try any; a
    /// commit outside the affinity fails). Read it again after `TASK_AFFINITY_CHANGED`.
    fn task_affinity(&self, gtid: Gtid) -> Option<CpuSet> {
        let _ = gtid;
        None
    }
    /// `GHOST_IOC_SW_GET_INFO(GHOST_AGENT, cpu)`: where the status word of `cpu`'s agent is (its barrier is
    /// the agent barrier a local commit must pass).
    fn agent_status_word(&self, cpu: u32) -> Result<GhostSwInfo, AgentError>;
    /// The enclave's clock in ns: `CLOCK_MONOTONIC`, the clock of the kernel's `commit_time`s and status-word
    /// `switch_time`s (the default); a simulator returns its virtual time.
    fn now(&self) -> u64 {
        let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
        (t.tv_sec as u64).saturating_mul(1_000_000_000).saturating_add(t.tv_nsec as u64)
    }
    /// CPUs of the enclave reserved for agents: they run no ghOSt task, so they are not in
    /// [`cpus`](Backend::cpus). A centralized (global) agent spins on one of them. Default: none (every
    /// enclave CPU runs tasks, as with per-CPU agents, whose agent shares its CPU with the tasks).
    fn agent_cpus(&self) -> CpuSet {
        CpuSet::new()
    }
}

/// A queue the agent created: its id (for association) and its consumer.
#[derive(Debug)]
pub struct AgentQueue<M: SharedMem> {
    id: QueueId,
    consumer: Consumer<M>,
}

impl<M: SharedMem> AgentQueue<M> {
    /// The queue's id.
    pub fn id(&self) -> QueueId {
        self.id
    }
    /// Its consumer: read messages with [`Consumer::drain`] or [`Consumer::read`].
    pub fn consumer(&mut self) -> &mut Consumer<M> {
        &mut self.consumer
    }
}

/// An agent's handle on its enclave.
#[derive(Debug)]
pub struct Enclave<B: Backend> {
    backend: B,
    status: Reader<B::StatusRegion>,
    /// The status-word regions after the first.
    more_status: std::vec::Vec<Reader<B::StatusRegion>>,
    cpu_data: CpuData<B::Region>,
    cpus: CpuSet,
}

impl<B: Backend> Enclave<B> {
    /// Attaches to an enclave: checks its ABI, attaches the status-word and `cpu_data` regions.
    pub fn attach(backend: B) -> Result<Self, AgentError> {
        let abi = backend.abi_version();
        if abi != GHOST_VERSION {
            return Err(AgentError::AbiMismatch { enclave: abi, ours: GHOST_VERSION });
        }
        let status = Reader::attach(backend.status_region()).map_err(|e: AttachError| {
            let _ = e;
            AgentError::Region("status-word region header does not match its mapping")
        })?;
        let mut more_status = std::vec::Vec::new();
        for region in backend.status_regions().into_iter().skip(1) {
            more_status.push(Reader::attach(region).map_err(|_: AttachError| {
                AgentError::Region("status-word region header does not match its mapping")
            })?);
        }
        let cpu_data = CpuData::new(backend.cpu_data(), backend.ncpus())
            .map_err(|_: LayoutError| AgentError::Region("cpu_data is not one page per CPU"))?;
        let cpus = backend.cpus();
        Ok(Enclave { backend, status, more_status, cpu_data, cpus })
    }

    /// The backend.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// The enclave's *worker* CPUs: those ghOSt tasks run on, the targets of transactions. CPUs reserved for
    /// a global agent are not among them (see [`agent_cpus`](Enclave::agent_cpus)).
    pub fn cpus(&self) -> &CpuSet {
        &self.cpus
    }

    /// The enclave's CPUs reserved for agents (a global agent's CPU): they run no ghOSt task and are not in
    /// [`cpus`](Enclave::cpus). Empty when every CPU runs tasks (per-CPU agents share their CPU with them).
    pub fn agent_cpus(&self) -> CpuSet {
        self.backend.agent_cpus()
    }

    /// The enclave's clock in ns (`CLOCK_MONOTONIC` on a real kernel, virtual time in the simulator): the
    /// time base of transaction `commit_time`s.
    pub fn now(&self) -> u64 {
        self.backend.now()
    }

    /// The topology of the enclave's CPUs (SMT siblings, LLCs, NUMA nodes), if the backend knows it.
    pub fn topology(&self) -> Option<OwnedTopology> {
        self.backend.topology()
    }

    /// Creates a queue of `nelems` slots (a power of two in 1..=65536) and attaches a consumer to it.
    pub fn create_queue(&self, nelems: u32) -> Result<AgentQueue<B::Region>, AgentError> {
        let (id, region) = self.backend.create_queue(nelems)?;
        let consumer = Consumer::attach(region).map_err(|e: QueueError| {
            let _ = e;
            AgentError::Region("queue header does not match its mapping")
        })?;
        Ok(AgentQueue { id, consumer })
    }

    /// Makes `queue` the enclave's default queue (messages of unassociated tasks go there).
    pub fn set_default_queue(&self, queue: &AgentQueue<B::Region>) -> Result<(), AgentError> {
        self.backend.set_default_queue(queue.id)
    }

    /// Routes `gtid`'s messages to `queue`, if `barrier` is the task's current barrier (else
    /// [`AgentError::Stale`]).
    pub fn associate(
        &self,
        queue: &AgentQueue<B::Region>,
        gtid: Gtid,
        barrier: u32,
    ) -> Result<AssocStatus, AgentError> {
        self.backend.associate_queue(queue.id, gtid, barrier)
    }

    /// Wake the agent on `cpu` when `queue` gets a message (`None`: the agent polls).
    pub fn config_queue_wakeup(&self, queue: &AgentQueue<B::Region>, cpu: Option<u32>) -> Result<(), AgentError> {
        self.backend.config_queue_wakeup(queue.id, cpu)
    }

    /// The status-word table.
    pub fn status_words(&self) -> &Reader<B::StatusRegion> {
        &self.status
    }

    /// A consistent snapshot of the status word at `info` (from `TASK_NEW`'s `sw_info`), in whichever
    /// status-word region `info.id` names.
    pub fn status_word(&self, info: GhostSwInfo) -> Result<Snapshot, AgentError> {
        let reader = self.status_regions().find(|r| r.id() == info.id).ok_or(AgentError::NotFound)?;
        Ok(reader.snapshot(info.index)?)
    }

    /// Every status-word region, the first being [`status_words`](Enclave::status_words).
    pub fn status_regions(&self) -> impl Iterator<Item = &Reader<B::StatusRegion>> {
        core::iter::once(&self.status).chain(self.more_status.iter())
    }

    /// Every in-use, non-agent status word of the *first* status-word region: the tasks of a running enclave,
    /// for an agent that takes over after a crash or an upgrade (ghOSt's task discovery). Yields
    /// `(index, snapshot)`. An enclave with more tasks than
    /// one region holds has several: use [`discover_all`](Enclave::discover_all).
    pub fn discover(&self) -> Discovery<'_, B::StatusRegion> {
        self.status.discover()
    }

    /// Every in-use, non-agent status word of every status-word region (ghOSt's task discovery). Yields
    /// `(where, snapshot)`.
    pub fn discover_all(&self) -> impl Iterator<Item = Result<(GhostSwInfo, Snapshot), ReadError>> + '_ {
        self.status_regions().flat_map(|r| {
            let id = r.id();
            r.discover().map(move |found| found.map(|(index, snap)| (GhostSwInfo { id, index }, snap)))
        })
    }

    /// Frees a status word whose `CANFREE` is set (after `TASK_DEAD` / `TASK_DEPARTED`).
    pub fn free_status_word(&self, info: GhostSwInfo) -> Result<(), AgentError> {
        self.backend.free_status_word(info)
    }

    /// The current agent barrier of `cpu` (from its agent's status word): pass it to a local commit.
    pub fn agent_barrier(&self, cpu: u32) -> Result<u32, AgentError> {
        let info = self.backend.agent_status_word(cpu)?;
        Ok(self.status_word(info)?.barrier.0)
    }

    /// The transaction of `cpu`.
    pub fn txn(&self, cpu: u32) -> Result<AgentTxn<'_, B::Region>, AgentError> {
        Ok(self.cpu_data.agent(cpu)?)
    }

    /// The `cpu_data` region (e.g. for [`CpuData::state`]).
    pub fn cpu_data(&self) -> &CpuData<B::Region> {
        &self.cpu_data
    }

    /// Submits the READY transactions of `cpus` from the agent on `caller` (`GHOST_IOC_COMMIT_TXN`); read
    /// each outcome from its [`crate::txn::PendingTxn`].
    pub fn commit(&self, caller: u32, cpus: &[u32]) -> Result<(), AgentError> {
        self.backend.commit(caller, cpus)
    }

    /// Commits the READY transactions of `cpus` all-or-nothing (`GHOST_IOC_SYNC_GROUP_TXN`).
    pub fn group_commit(&self, caller: u32, cpus: &[u32]) -> Result<bool, AgentError> {
        self.backend.sync_group_commit(caller, cpus)
    }
}
