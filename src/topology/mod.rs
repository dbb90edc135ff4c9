//! CPU sets and machine topology: [`CpuSet`], cpulist / hex-mask parsing and formatting, the [`Topology`] model,
//! enclave partitioning, and (with `std`) the [`sysfs`] reader.
//!
//! Everything outside [`sysfs`] is `no_std` and allocates nothing.
//!
//! # CPU sets
//! A [`CpuSet`] is a fixed-capacity bitmap (8192 CPUs by default, a const parameter) with the memory layout of
//! the kernel's `cpumask` / `cpu_set_t`, so it can be handed to `sched_setaffinity(2)` and to ghOSt's commit
//! ioctl as it is.
//!
//! # cpulists
//! [`CpuSet::parse_list`] implements the kernel's `bitmap_parselist` grammar: regions separated by `,` or
//! whitespace (leading and repeated separators are skipped); a region is `A`, `A-B` or `all` (case-insensitive),
//! where `A-B` and `all` may carry a stride `:U/G` ("use `U` ids of every group of `G`", so `0-1023:2/256` is
//! `0-1,256-257,512-513,768-769`); the number `N` stands for the last valid id. The first `\n` or `\0` ends the
//! input (sysfs files end in `\n`, some kernels add a `\0`), and empty input is the empty set. Errors are
//! [`ParseError`]s: a byte offset and a [`ParseErrorKind`] (`A > B`, `G == 0`, `U > G`, an id beyond the valid
//! ids, a number beyond 32 bits, an unexpected character or end, a stride without a range). `Display` on a
//! `CpuSet` prints the canonical list (merged ascending ranges, as the kernel's `%*pbl`).
//!
//! # Hex masks
//! [`CpuSet::parse_hex_mask`] reads `cpumap`-style masks (`%*pb`): 32-bit chunks of hex digits, most
//! significant first, separated by commas; [`CpuSet::hex_mask`] prints them as the kernel does for a mask of a
//! given width.
//!
//! # Topology
//! A [`Topology`] is the set of online (and present, possible) CPUs plus one [`CpuInfo`] record per CPU id,
//! kept in a storage of the caller's choice (`S: AsRef<[CpuInfo]>`: an array or slice in `no_std`, a
//! `Vec<CpuInfo>` from the [`sysfs`] reader), indexed by CPU id and at least as long as the highest online id
//! plus one. A record holds the CPU's package, die, cluster and core ids, a key per shared resource (its SMT
//! core, L2 and last-level cache: CPUs with equal keys share it; by convention the key is the lowest CPU id of
//! the group, which is what the sysfs reader stores), its NUMA node and its capacity. Build one
//! - from sysfs (`std`): [`Topology::from_sysfs`],
//! - from a regular machine description: [`Uniform::fill`], then [`Topology::new`],
//! - or from records you fill in yourself: [`Topology::new`].
//!
//! # Partitioning
//! [`Topology::partition`] splits a set of CPUs along [`Level`] boundaries (NUMA node, LLC, package, …) and
//! never separates SMT siblings: every CPU is placed by the record of its core's key CPU, so all threads of a
//! core land in the same group even when sysfs disagrees with itself. Groups come ordered by their first CPU.
//! [`Topology::siblings_of`], [`Topology::same_llc_as`] and [`Topology::first_cpu_of_each_core`] are the usual
//! helpers.
//!
//! ```
//! use ghost_shm::topology::{CpuInfo, CpuSet, Level, SmtNumbering, Topology, Uniform};
//!
//! // 2 packages × 1 node × 2 LLCs × 2 cores × 2 threads, siblings {c, c + 8}.
//! let desc = Uniform {
//!     packages: 2, nodes_per_package: 1, llcs_per_node: 2, cores_per_llc: 2, threads_per_core: 2,
//!     numbering: SmtNumbering::Split,
//! };
//! let mut storage = [CpuInfo::unknown(0); 16];
//! let online = desc.fill(&mut storage).unwrap();
//! let topo = Topology::new(&storage[..], online).unwrap();
//! assert_eq!(topo.siblings_of(1).to_string(), "1,9");
//! assert_eq!(topo.same_llc_as(1).to_string(), "0-1,8-9");
//!
//! let enclave: CpuSet = "0-5,8-13".parse().unwrap();
//! let mut parts = topo.partition(&enclave, Level::Package);
//! assert_eq!(parts.next().unwrap().to_string(), "0-3,8-11");
//! assert_eq!(parts.next().unwrap().to_string(), "4-5,12-13");
//! assert_eq!(parts.next(), None);
//! assert_eq!(topo.first_cpu_of_each_core(&enclave).to_string(), "0-5");
//! ```

mod cpuset;
mod parse;
mod report;
#[cfg(feature = "std")]
pub mod sysfs;

pub use cpuset::{CpuOutOfRange, CpuSet, IntoIter, Iter, Ranges, DEFAULT_WORDS};
pub use parse::{HexMask, ParseError, ParseErrorKind};
pub use report::{report, Report};

use core::fmt;

/// What is known about one CPU. Ids are what the kernel reports (`-1` or `None`: unknown); keys group CPUs
/// that share a resource (equal key = shared), by convention the lowest CPU id of the group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CpuInfo {
    /// Physical package (socket) id, `topology/physical_package_id`; unique per package, possibly sparse.
    pub package: i32,
    /// Die id within the package, `topology/die_id` (`-1`: unknown).
    pub die: i32,
    /// Cluster id, `topology/cluster_id` (`-1`: unknown; then the cluster is the core).
    pub cluster: i32,
    /// Core id, `topology/core_id`: unique within a package only, possibly sparse.
    pub core_id: i32,
    /// SMT core key: CPUs with equal `core` are hardware threads of one core (sysfs: the lowest CPU of
    /// `core_cpus_list`). A CPU without SMT siblings has its own id here.
    pub core: u32,
    /// L2 cache key (sysfs: the lowest CPU of the level-2 cache's `shared_cpu_list`); `None`: unknown, then the
    /// L2 is taken to be private to the core.
    pub l2: Option<u32>,
    /// Last-level cache key (sysfs: the lowest CPU sharing the highest-level data or unified cache); `None`:
    /// unknown, then the package is taken as the LLC domain.
    pub llc: Option<u32>,
    /// Level of the last-level cache (`0`: unknown).
    pub llc_level: u8,
    /// NUMA node id; `None`: unknown (no `node/` directory, e.g. in some containers), then the package is taken
    /// as the node.
    pub node: Option<u32>,
    /// `cpu_capacity` (1024 = the fastest CPUs), where the kernel reports it.
    pub capacity: Option<u32>,
}

impl CpuInfo {
    /// The record of CPU `cpu` when nothing is known: its own core, no ids, no caches, no node.
    pub const fn unknown(cpu: u32) -> Self {
        Self {
            package: -1,
            die: -1,
            cluster: -1,
            core_id: -1,
            core: cpu,
            l2: None,
            llc: None,
            llc_level: 0,
            node: None,
            capacity: None,
        }
    }
}

/// A level of the topology, for grouping and partitioning.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Level {
    /// A physical core: its SMT siblings.
    Core,
    /// CPUs sharing an L2 cache (the core when unknown).
    L2,
    /// A cluster within a package (the core when unknown).
    Cluster,
    /// CPUs sharing the last-level cache (the package when unknown).
    Llc,
    /// A die within a package.
    Die,
    /// A NUMA node (the package when unknown).
    Node,
    /// A physical package (socket).
    Package,
}

/// A grouping key: a tag per kind of key, so that fallbacks never collide with real keys.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Key(u8, i64);

fn pair(a: i32, b: i32) -> i64 {
    ((a as i64) << 32) | (b as u32 as i64)
}

fn raw_key(c: &CpuInfo, level: Level) -> Key {
    let core = Key(0, c.core as i64);
    let package = Key(6, c.package as i64);
    match level {
        Level::Core => core,
        Level::L2 => c.l2.map_or(core, |k| Key(1, k as i64)),
        Level::Cluster if c.cluster >= 0 => Key(2, pair(c.package, c.cluster)),
        Level::Cluster => core,
        Level::Llc => c.llc.map_or(package, |k| Key(3, k as i64)),
        Level::Die => Key(4, pair(c.package, c.die)),
        Level::Node => c.node.map_or(package, |n| Key(5, n as i64)),
        Level::Package => package,
    }
}

/// Why a [`Topology`] or a [`Uniform`] description was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TopologyError {
    /// An online CPU has no record: the storage is too short.
    MissingRecord {
        /// The CPU.
        cpu: usize,
    },
    /// The online set is empty.
    NoOnlineCpus,
    /// A [`Uniform`] count is 0, or the machine has more CPUs than a [`CpuSet`] holds.
    BadDescription,
    /// The storage is shorter than the machine's number of CPUs.
    StorageTooSmall {
        /// Records needed.
        needed: usize,
        /// Records given.
        len: usize,
    },
}

impl fmt::Display for TopologyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::MissingRecord { cpu } => write!(f, "online CPU {cpu} has no topology record"),
            Self::NoOnlineCpus => f.write_str("no online CPUs"),
            Self::BadDescription => f.write_str("a machine description count is 0 or the machine is too large"),
            Self::StorageTooSmall { needed, len } => {
                write!(f, "{needed} CPU records needed, the storage holds {len}")
            }
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for TopologyError {}

/// The machine's CPUs and, per CPU id, a [`CpuInfo`] record in caller-chosen storage `S`; see the
/// [module docs](self#topology).
///
/// All queries consider online CPUs only ([`intersect`](Self::intersect) narrows them to the CPUs the process
/// may use).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Topology<S> {
    cpus: S,
    online: CpuSet,
    present: CpuSet,
    possible: CpuSet,
}

impl<S: AsRef<[CpuInfo]>> Topology<S> {
    /// A topology of the `online` CPUs with records `cpus` (indexed by CPU id). Present and possible CPUs
    /// default to the online ones. Fails if `online` is empty or has a CPU without a record.
    pub fn new(cpus: S, online: CpuSet) -> Result<Self, TopologyError> {
        let last = online.last().ok_or(TopologyError::NoOnlineCpus)?;
        if last >= cpus.as_ref().len() {
            return Err(TopologyError::MissingRecord { cpu: last });
        }
        Ok(Self { cpus, online, present: online, possible: online })
    }

    /// Sets the present CPUs (the online ones are always included; possible ones grow to include them).
    pub fn with_present(mut self, present: CpuSet) -> Self {
        self.present = present | self.online;
        self.possible |= self.present;
        self
    }

    /// Sets the possible CPUs (the present ones are always included).
    pub fn with_possible(mut self, possible: CpuSet) -> Self {
        self.possible = possible | self.present;
        self
    }

    /// Keeps only the online CPUs that are also in `allowed`, e.g. the process's affinity
    /// (`sched_getaffinity(2)`, or [`sysfs::allowed_cpus`] with `std`). The result may be empty.
    pub fn intersect(&mut self, allowed: &CpuSet) {
        self.online &= allowed;
    }

    /// The online CPUs.
    pub fn online(&self) -> &CpuSet {
        &self.online
    }

    /// The present CPUs (a superset of the online ones).
    pub fn present(&self) -> &CpuSet {
        &self.present
    }

    /// The possible CPUs (a superset of the present ones).
    pub fn possible(&self) -> &CpuSet {
        &self.possible
    }

    /// All records, indexed by CPU id (offline CPUs' records are what the storage holds for them).
    pub fn records(&self) -> &[CpuInfo] {
        self.cpus.as_ref()
    }

    /// The record of an online CPU.
    pub fn cpu(&self, cpu: usize) -> Option<&CpuInfo> {
        if self.online.contains(cpu) {
            self.cpus.as_ref().get(cpu)
        } else {
            None
        }
    }

    /// The NUMA node of an online CPU, where known.
    pub fn node_of(&self, cpu: usize) -> Option<u32> {
        self.cpu(cpu).and_then(|c| c.node)
    }

    /// The grouping key of an online CPU: its core key CPU's record decides, so SMT siblings never differ.
    fn key(&self, cpu: usize, level: Level) -> Key {
        let recs = self.cpus.as_ref();
        // `new` checked that online CPUs have records; an `AsRef` that shrank since gets a key of its own.
        let Some(own) = recs.get(cpu) else { return Key(7, cpu as i64) };
        if level == Level::Core {
            return raw_key(own, level);
        }
        let base = recs.get(own.core as usize).unwrap_or(own);
        raw_key(base, level)
    }

    /// The online CPUs that share `level` with `cpu` (empty if `cpu` is not online).
    pub fn group_of(&self, cpu: usize, level: Level) -> CpuSet {
        let mut g = CpuSet::new();
        if !self.online.contains(cpu) {
            return g;
        }
        let k = self.key(cpu, level);
        for c in self.online.iter().filter(|&c| self.key(c, level) == k) {
            g.words_mut()[c / 64] |= 1 << (c % 64);
        }
        g
    }

    /// `cpu`'s online SMT siblings, `cpu` included (empty if `cpu` is not online).
    pub fn siblings_of(&self, cpu: usize) -> CpuSet {
        self.group_of(cpu, Level::Core)
    }

    /// The online CPUs sharing `cpu`'s L2 cache.
    pub fn same_l2_as(&self, cpu: usize) -> CpuSet {
        self.group_of(cpu, Level::L2)
    }

    /// The online CPUs sharing `cpu`'s last-level cache.
    pub fn same_llc_as(&self, cpu: usize) -> CpuSet {
        self.group_of(cpu, Level::Llc)
    }

    /// The online CPUs on `cpu`'s NUMA node.
    pub fn same_node_as(&self, cpu: usize) -> CpuSet {
        self.group_of(cpu, Level::Node)
    }

    /// The online CPUs in `cpu`'s package.
    pub fn same_package_as(&self, cpu: usize) -> CpuSet {
        self.group_of(cpu, Level::Package)
    }

    /// Of the online CPUs in `set`, the lowest of each core (one hardware thread per core).
    pub fn first_cpu_of_each_core(&self, set: &CpuSet) -> CpuSet {
        let recs = self.cpus.as_ref();
        let mut seen = CpuSet::new();
        let mut out = CpuSet::new();
        for c in (set & &self.online).iter() {
            let Some(core) = recs.get(c).map(|r| r.core) else { continue };
            let first = match seen.insert(core as usize) {
                Ok(new) => new,
                // A key beyond the capacity (not a CPU id): look for a chosen CPU of the same core.
                Err(_) => !out.iter().any(|o| recs.get(o).map(|r| r.core) == Some(core)),
            };
            if first {
                out.words_mut()[c / 64] |= 1 << (c % 64);
            }
        }
        out
    }

    /// The groups of online CPUs at `level`, ordered by their first CPU.
    pub fn groups(&self, level: Level) -> Groups<'_, S> {
        self.partition(&self.online, level)
    }

    /// Splits the online CPUs of `set` along `level` boundaries, never separating SMT siblings: the non-empty
    /// groups `set ∩ online ∩ g` for every group `g` at `level`, ordered by their first CPU.
    pub fn partition(&self, set: &CpuSet, level: Level) -> Groups<'_, S> {
        Groups { topo: self, remaining: set & &self.online, level }
    }
}

/// Iterator over the groups of a partition; see [`Topology::partition`].
#[derive(Clone, Debug)]
pub struct Groups<'a, S> {
    topo: &'a Topology<S>,
    remaining: CpuSet,
    level: Level,
}

impl<S: AsRef<[CpuInfo]>> Iterator for Groups<'_, S> {
    type Item = CpuSet;

    fn next(&mut self) -> Option<CpuSet> {
        let first = self.remaining.first()?;
        let k = self.topo.key(first, self.level);
        let mut g = CpuSet::new();
        for c in self.remaining.iter().filter(|&c| self.topo.key(c, self.level) == k) {
            g.words_mut()[c / 64] |= 1 << (c % 64);
        }
        self.remaining -= g;
        Some(g)
    }
}

/// How the hardware threads of a [`Uniform`] machine are numbered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmtNumbering {
    /// Threads of a core are consecutive: core `k` has CPUs `k*t .. k*t + t - 1` (many laptops, arm64).
    Adjacent,
    /// Thread `i` of core `k` is CPU `i * cores + k`: first every core's first thread, then the second ones
    /// (most x86 servers: siblings `{c, c + cores}`).
    Split,
}

/// A regular machine: `packages` × `nodes_per_package` × `llcs_per_node` × `cores_per_llc` ×
/// `threads_per_core` CPUs, numbered by [`SmtNumbering`], cores numbered package by package. Each core has a
/// private L2. For tests, simulations and `no_std` users without sysfs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Uniform {
    /// Packages (sockets).
    pub packages: u32,
    /// NUMA nodes per package.
    pub nodes_per_package: u32,
    /// Last-level caches per node.
    pub llcs_per_node: u32,
    /// Cores per last-level cache.
    pub cores_per_llc: u32,
    /// Hardware threads per core.
    pub threads_per_core: u32,
    /// How threads are numbered.
    pub numbering: SmtNumbering,
}

impl Uniform {
    /// The number of cores, or `None` if a count is 0 or the machine does not fit a [`CpuSet`].
    fn cores(&self) -> Option<usize> {
        let c = [self.packages, self.nodes_per_package, self.llcs_per_node, self.cores_per_llc]
            .iter()
            .try_fold(1usize, |acc, &n| if n == 0 { None } else { acc.checked_mul(n as usize) })?;
        let cpus = c.checked_mul(self.threads_per_core as usize)?;
        (self.threads_per_core > 0 && cpus <= CpuSet::<DEFAULT_WORDS>::CAPACITY).then_some(c)
    }

    /// The number of CPUs, or `None` if a count is 0 or the machine does not fit a [`CpuSet`].
    pub fn nr_cpus(&self) -> Option<usize> {
        Some(self.cores()? * self.threads_per_core as usize)
    }

    fn cpu_of(&self, cores: usize, core: usize, thread: usize) -> usize {
        match self.numbering {
            SmtNumbering::Adjacent => core * self.threads_per_core as usize + thread,
            SmtNumbering::Split => thread * cores + core,
        }
    }

    /// Fills `storage[..nr_cpus]` with the machine's records and returns its CPUs (`0..nr_cpus`), to pass to
    /// [`Topology::new`]. Records beyond `nr_cpus` are left alone.
    pub fn fill(&self, storage: &mut [CpuInfo]) -> Result<CpuSet, TopologyError> {
        let cores = self.cores().ok_or(TopologyError::BadDescription)?;
        let nr = cores * self.threads_per_core as usize;
        if storage.len() < nr {
            return Err(TopologyError::StorageTooSmall { needed: nr, len: storage.len() });
        }
        let per_llc = self.cores_per_llc as usize;
        let per_node = per_llc * self.llcs_per_node as usize;
        let per_package = per_node * self.nodes_per_package as usize;
        for core in 0..cores {
            // Every value below is < nr <= CAPACITY, so the casts are lossless.
            let leader = self.cpu_of(cores, core, 0) as u32;
            let llc = self.cpu_of(cores, core - core % per_llc, 0) as u32;
            for t in 0..self.threads_per_core as usize {
                storage[self.cpu_of(cores, core, t)] = CpuInfo {
                    package: (core / per_package) as i32,
                    die: 0,
                    cluster: -1,
                    core_id: (core % per_package) as i32,
                    core: leader,
                    l2: Some(leader),
                    llc: Some(llc),
                    llc_level: 3,
                    node: Some((core / per_node) as u32),
                    capacity: None,
                };
            }
        }
        let mut online = CpuSet::new();
        online.insert_range(0..=nr - 1).map_err(|_| TopologyError::BadDescription)?;
        Ok(online)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;
    use std::vec::Vec;

    const XEON: Uniform = Uniform {
        packages: 2,
        nodes_per_package: 1,
        llcs_per_node: 1,
        cores_per_llc: 4,
        threads_per_core: 2,
        numbering: SmtNumbering::Split,
    };

    fn strings(groups: impl Iterator<Item = CpuSet>) -> Vec<std::string::String> {
        groups.map(|g| g.to_string()).collect()
    }

    #[test]
    fn uniform_split_numbering() {
        let mut st = [CpuInfo::unknown(0); 16];
        let online = XEON.fill(&mut st).unwrap();
        assert_eq!(online.to_string(), "0-15");
        let t = Topology::new(&st[..], online).unwrap();
        assert_eq!(t.siblings_of(3).to_string(), "3,11");
        assert_eq!(t.siblings_of(11).to_string(), "3,11");
        assert_eq!(t.same_package_as(12).to_string(), "4-7,12-15");
        assert_eq!(t.same_llc_as(0).to_string(), "0-3,8-11");
        assert_eq!(t.same_node_as(0), t.same_package_as(0));
        assert_eq!(t.same_l2_as(9).to_string(), "1,9");
        assert_eq!(strings(t.groups(Level::Package)), ["0-3,8-11", "4-7,12-15"]);
        assert_eq!(strings(t.groups(Level::Core)).len(), 8);
        assert_eq!(t.first_cpu_of_each_core(t.online()).to_string(), "0-7");
        assert_eq!(t.first_cpu_of_each_core(&"8-9".parse().unwrap()).to_string(), "8-9");
        assert_eq!(t.cpu(9).unwrap().core_id, 1);
        assert_eq!(t.node_of(13), Some(1));
        assert_eq!(t.siblings_of(16), CpuSet::new());
        assert_eq!(t.cpu(16), None);
    }

    #[test]
    fn uniform_adjacent_numbering_and_nodes() {
        let desc = Uniform {
            packages: 1,
            nodes_per_package: 2,
            llcs_per_node: 2,
            cores_per_llc: 2,
            threads_per_core: 2,
            numbering: SmtNumbering::Adjacent,
        };
        assert_eq!(desc.nr_cpus(), Some(16));
        let mut st = [CpuInfo::unknown(0); 20];
        let online = desc.fill(&mut st).unwrap();
        let t = Topology::new(st, online).unwrap();
        assert_eq!(t.siblings_of(5).to_string(), "4-5");
        assert_eq!(strings(t.groups(Level::Llc)), ["0-3", "4-7", "8-11", "12-15"]);
        assert_eq!(strings(t.groups(Level::Node)), ["0-7", "8-15"]);
        assert_eq!(strings(t.groups(Level::Package)), ["0-15"]);
        assert_eq!(strings(t.groups(Level::Die)), ["0-15"]);
        assert_eq!(strings(t.groups(Level::Cluster)), strings(t.groups(Level::Core)));
    }

    #[test]
    fn partition_never_splits_siblings() {
        // Two cores {0,1} and {2,3}; sysfs-style inconsistency: CPU 1 claims another LLC and node than its
        // sibling 0, CPU 2 claims the LLC of core 0.
        let mut st = [CpuInfo::unknown(0); 4];
        for (c, r) in st.iter_mut().enumerate() {
            *r = CpuInfo { package: 0, core: (c & !1) as u32, llc: Some((c & !1) as u32), node: Some(0), ..*r };
        }
        st[1].llc = Some(2);
        st[1].node = Some(7);
        st[2].llc = Some(0);
        let t = Topology::new(&st[..], "0-3".parse().unwrap()).unwrap();
        let all: CpuSet = "0-3".parse().unwrap();
        // Core {2,3} goes by CPU 2's record (LLC 0); core {0,1} by CPU 0's.
        assert_eq!(strings(t.partition(&all, Level::Llc)), ["0-3"]);
        assert_eq!(strings(t.partition(&all, Level::Node)), ["0-3"]);
        assert_eq!(strings(t.partition(&"1,3".parse().unwrap(), Level::Core)), ["1", "3"]);
        for level in [Level::Core, Level::L2, Level::Cluster, Level::Llc, Level::Die, Level::Node, Level::Package] {
            let groups: Vec<CpuSet> = t.partition(&all, level).collect();
            for core in t.groups(Level::Core) {
                assert_eq!(groups.iter().filter(|g| !g.is_disjoint(&core)).count(), 1, "{level:?} {core}");
            }
            let union = groups.iter().fold(CpuSet::new(), |a, g| a | *g);
            assert_eq!(union, all);
            assert_eq!(groups.iter().map(|g| g.count()).sum::<usize>(), 4, "groups are disjoint");
        }
    }

    #[test]
    fn unknowns_fall_back() {
        // Nothing known but the packages: L2 = core, LLC = node = package, cluster = core.
        let mut st = [CpuInfo::unknown(0); 4];
        for (c, r) in st.iter_mut().enumerate() {
            *r = CpuInfo { package: (c / 2) as i32, ..CpuInfo::unknown(c as u32) };
        }
        let t = Topology::new(&st[..], "0-3".parse().unwrap()).unwrap();
        assert_eq!(strings(t.groups(Level::Llc)), ["0-1", "2-3"]);
        assert_eq!(strings(t.groups(Level::Node)), ["0-1", "2-3"]);
        assert_eq!(strings(t.groups(Level::L2)), ["0", "1", "2", "3"]);
        assert_eq!(strings(t.groups(Level::Cluster)), ["0", "1", "2", "3"]);
        // A record whose LLC key equals another package's id must not merge with it.
        st[0].llc = Some(1);
        let t = Topology::new(&st[..], "0-3".parse().unwrap()).unwrap();
        assert_eq!(strings(t.groups(Level::Llc)), ["0", "1", "2-3"]);
    }

    #[test]
    fn intersect_and_sets() {
        let mut st = [CpuInfo::unknown(0); 16];
        let online = XEON.fill(&mut st).unwrap();
        let mut t = Topology::new(&st[..], online).unwrap().with_possible("0-31".parse().unwrap());
        assert_eq!(t.present().to_string(), "0-15");
        assert_eq!(t.possible().to_string(), "0-31");
        t.intersect(&"1-2,9".parse().unwrap());
        assert_eq!(t.online().to_string(), "1-2,9");
        assert_eq!(t.siblings_of(1).to_string(), "1,9");
        assert_eq!(t.siblings_of(2).to_string(), "2");
        assert_eq!(t.siblings_of(10), CpuSet::new());
        assert_eq!(strings(t.groups(Level::Core)), ["1,9", "2"]);
        assert_eq!(t.first_cpu_of_each_core(&CpuSet::<128>::full()).to_string(), "1-2");
        assert_eq!(t.records().len(), 16);
    }

    #[test]
    fn errors() {
        let st = [CpuInfo::unknown(0); 4];
        assert_eq!(Topology::new(&st[..], CpuSet::new()).unwrap_err(), TopologyError::NoOnlineCpus);
        assert_eq!(
            Topology::new(&st[..], "0-4".parse().unwrap()).unwrap_err(),
            TopologyError::MissingRecord { cpu: 4 }
        );
        let mut small = [CpuInfo::unknown(0); 15];
        assert_eq!(XEON.fill(&mut small), Err(TopologyError::StorageTooSmall { needed: 16, len: 15 }));
        let zero = Uniform { threads_per_core: 0, ..XEON };
        assert_eq!(zero.fill(&mut small), Err(TopologyError::BadDescription));
        assert_eq!(Uniform { cores_per_llc: 0, ..XEON }.nr_cpus(), None);
        let huge = Uniform { packages: u32::MAX, cores_per_llc: u32::MAX, ..XEON };
        assert_eq!(huge.nr_cpus(), None);
        assert_eq!(Uniform { packages: 1025, ..XEON }.nr_cpus(), None, "8200 CPUs do not fit");
        assert_eq!(Uniform { packages: 1024, ..XEON }.nr_cpus(), Some(8192));
    }

    #[test]
    fn core_keys_beyond_capacity() {
        let mut st = [CpuInfo::unknown(0); 3];
        st[0].core = 100_000;
        st[1].core = 100_000;
        st[2].core = 2;
        let t = Topology::new(&st[..], "0-2".parse().unwrap()).unwrap();
        assert_eq!(t.first_cpu_of_each_core(t.online()).to_string(), "0,2");
        assert_eq!(t.siblings_of(1).to_string(), "0-1");
    }
}
