//! Reading the [`Topology`] from sysfs (`std` only).
//!
//! The root is injectable: [`read_topology`] reads `<root>/devices/system/cpu/...` and
//! `<root>/devices/system/node/...`, so `root` is `/sys` on a live machine and a fixture directory in tests.
//!
//! What is read, per online CPU `N` (`cpu/online`; CPUs without a `cpuN/topology/` directory are offline, or
//! went offline while we read, and are dropped):
//! - `topology/physical_package_id`, `die_id`, `cluster_id`, `core_id` (each optional, `-1` if absent),
//! - `topology/core_cpus_list` (or the older `thread_siblings_list`): the SMT core key is its lowest CPU,
//! - `cache/index*/`: the L2 is the level-2 unified (else data) cache, the last-level cache the highest-level
//!   unified (else data) one, found by their `level` and `type` files, never by the index name; the key is the
//!   lowest CPU of `shared_cpu_list` (or `shared_cpu_map`). Missing cache directories or `id` files are normal,
//! - `cpu_capacity` where present,
//! - `node/nodeM/cpulist` (or `cpumap`) for every online node `M` (the directory may be missing, e.g. in
//!   containers: nodes are then unknown).
//!
//! `cpu/present` and `cpu/possible` default to the `cpuN/` directories and the present CPUs when missing.
//! Files are read to their end (never sized by `st_size`, which sysfs reports as 4096 or 0), at most 1 MiB; a
//! list or number ends at the first `\n` or `\0`. A missing `devices/system/cpu` directory, an unreadable
//! or malformed file, no online CPU at all, or a tree that contradicts itself is an error ([`SysfsError`]):
//! an online CPU without a `cpuN` directory, a CPU without `physical_package_id` where others have one, node
//! cpulists that overlap or name an impossible CPU, an empty cpulist for a node in `node/has_cpu`.
//!
//! ```no_run
//! use ghost_shm::topology::{sysfs, Level, Topology};
//! let mut topo = Topology::from_sysfs("/sys")?;
//! topo.intersect(&sysfs::allowed_cpus()?);
//! for llc in topo.groups(Level::Llc) {
//!     println!("LLC {llc}");
//! }
//! # Ok::<(), sysfs::SysfsError>(())
//! ```

use core::cmp::Reverse;
use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::vec::Vec;

use super::parse::until_end;
use super::{CpuInfo, CpuSet, ParseError, ParseErrorKind, Topology, TopologyError};

/// A topology read from sysfs, owning its records.
pub type OwnedTopology = Topology<Vec<CpuInfo>>;

/// The most bytes read from one file.
const READ_LIMIT: u64 = 1 << 20;

/// Why sysfs could not be read.
#[derive(Debug)]
pub enum SysfsError {
    /// `<root>/devices/system/cpu` is not a directory.
    NoCpuDir {
        /// The directory.
        path: PathBuf,
    },
    /// Reading a file or directory failed (other than with "not found").
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        error: io::Error,
    },
    /// A cpulist or mask file did not parse.
    Parse {
        /// The file.
        path: PathBuf,
        /// Where and why.
        error: ParseError,
    },
    /// A number file held something else, or a number out of range.
    BadValue {
        /// The file.
        path: PathBuf,
    },
    /// No CPU is online (or none of the online ones has a `topology/` directory).
    NoOnlineCpus {
        /// The `online` file.
        path: PathBuf,
    },
    /// The records did not make a topology.
    Topology(TopologyError),
    /// The tree contradicts itself (e.g. a CPU without `physical_package_id` where others have one, node
    /// cpulists that overlap, an online CPU without a `cpuN` directory): refused rather than read into a
    /// machine that does not exist.
    Malformed {
        /// The file or directory at fault.
        path: PathBuf,
        /// What is wrong.
        why: std::string::String,
    },
}

impl fmt::Display for SysfsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoCpuDir { path } => write!(f, "{}: not a directory", path.display()),
            Self::Io { path, error } => write!(f, "{}: {error}", path.display()),
            Self::Parse { path, error } => write!(f, "{}: {error}", path.display()),
            Self::BadValue { path } => write!(f, "{}: not a valid number", path.display()),
            Self::NoOnlineCpus { path } => write!(f, "{}: no online CPU with a topology directory", path.display()),
            Self::Topology(e) => e.fmt(f),
            Self::Malformed { path, why } => write!(f, "{}: malformed topology: {why}", path.display()),
        }
    }
}

impl std::error::Error for SysfsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io { error, .. } => Some(error),
            Self::Parse { error, .. } => Some(error),
            Self::Topology(e) => Some(e),
            _ => None,
        }
    }
}

fn io_err(path: &Path, error: io::Error) -> SysfsError {
    SysfsError::Io { path: path.to_path_buf(), error }
}

/// A file's bytes, or `None` if it does not exist.
fn read_file(path: &Path) -> Result<Option<Vec<u8>>, SysfsError> {
    let f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(path, e)),
    };
    let mut buf = Vec::new();
    // `Take` reads until end of file, whatever `st_size` says.
    f.take(READ_LIMIT).read_to_end(&mut buf).map_err(|e| io_err(path, e))?;
    Ok(Some(buf))
}

fn read_list(path: &Path) -> Result<Option<CpuSet>, SysfsError> {
    match read_file(path)? {
        None => Ok(None),
        Some(b) => CpuSet::parse_list(&b).map(Some).map_err(|error| SysfsError::Parse { path: path.into(), error }),
    }
}

fn read_mask(path: &Path) -> Result<Option<CpuSet>, SysfsError> {
    match read_file(path)? {
        None => Ok(None),
        Some(b) => CpuSet::parse_hex_mask(&b).map(Some).map_err(|error| SysfsError::Parse { path: path.into(), error }),
    }
}

/// `dir/list`, else `dir/mask`.
fn read_list_or_mask(dir: &Path, list: &str, mask: &str) -> Result<Option<CpuSet>, SysfsError> {
    match read_list(&dir.join(list))? {
        Some(s) => Ok(Some(s)),
        None => read_mask(&dir.join(mask)),
    }
}

/// A file's first line (up to `\n` or `\0`), trimmed.
fn read_text(path: &Path) -> Result<Option<Vec<u8>>, SysfsError> {
    Ok(read_file(path)?.map(|b| until_end(&b).trim_ascii().to_vec()))
}

fn read_int<T: TryFrom<i64>>(path: &Path) -> Result<Option<T>, SysfsError> {
    let Some(text) = read_text(path)? else { return Ok(None) };
    let bad = || SysfsError::BadValue { path: path.into() };
    let n: i64 = core::str::from_utf8(&text).ok().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
    T::try_from(n).map(Some).map_err(|_| bad())
}

/// The numeric suffix of `name` after `prefix` (`cpu12` → 12), if it is all digits.
fn numbered(name: &std::ffi::OsStr, prefix: &str) -> Option<u64> {
    let digits = name.to_str()?.strip_prefix(prefix)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The `cpuN` directories: (all of them, those with a `topology/` directory).
fn scan_cpu_dirs(cpu_dir: &Path) -> Result<(CpuSet, CpuSet), SysfsError> {
    let (mut dirs, mut with_topology) = (CpuSet::new(), CpuSet::new());
    for e in fs::read_dir(cpu_dir).map_err(|e| io_err(cpu_dir, e))? {
        let e = e.map_err(|e| io_err(cpu_dir, e))?;
        let Some(n) = numbered(&e.file_name(), "cpu") else { continue };
        let path = e.path();
        let too_big = |id: u64| SysfsError::Parse {
            path: path.clone(),
            error: ParseError {
                offset: 3,
                kind: ParseErrorKind::OutOfRange { id: id as usize, nr_ids: CpuSet::<128>::CAPACITY },
            },
        };
        let n = usize::try_from(n).map_err(|_| too_big(n))?;
        if dirs.insert(n).is_err() {
            return Err(too_big(n as u64));
        }
        if path.join("topology").is_dir() {
            // `n` fits: it just went into `dirs`.
            let _ = with_topology.insert(n);
        }
    }
    Ok((dirs, with_topology))
}

/// Lowest CPU of `set`, or `cpu` if lower or the set is unknown or empty.
fn key(set: Option<CpuSet>, cpu: usize) -> u32 {
    set.and_then(|s| s.first()).map_or(cpu, |f| f.min(cpu)) as u32
}

struct Caches {
    l2: Option<u32>,
    llc: Option<u32>,
    llc_level: u8,
}

/// Picks the L2 and the last-level cache among `cpuN/cache/index*`.
fn read_caches(dir: &Path, cpu: usize) -> Result<Caches, SysfsError> {
    let mut out = Caches { l2: None, llc: None, llc_level: 0 };
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(io_err(dir, e)),
    };
    // Best so far, ranked by (level, type rank, lower key), whatever order the directory lists them in.
    let mut l2_best: Option<(u8, Reverse<u32>)> = None;
    let mut llc_best: Option<(u8, u8, Reverse<u32>)> = None;
    for e in entries {
        let e = e.map_err(|e| io_err(dir, e))?;
        if numbered(&e.file_name(), "index").is_none() {
            continue;
        }
        let p = e.path();
        let Some(level) = read_int::<u8>(&p.join("level"))? else { continue };
        let rank = match read_text(&p.join("type"))?.as_deref() {
            Some(b"Instruction") => continue,
            Some(b"Unified") => 2,
            // Data, or an unknown/missing type: usable, but a unified cache of the same level wins.
            _ => 1,
        };
        let k = Reverse(key(read_list_or_mask(&p, "shared_cpu_list", "shared_cpu_map")?, cpu));
        if level == 2 && l2_best.is_none_or(|best| (rank, k) > best) {
            l2_best = Some((rank, k));
        }
        if llc_best.is_none_or(|best| (level, rank, k) > best) {
            llc_best = Some((level, rank, k));
        }
    }
    out.l2 = l2_best.map(|(_, k)| k.0);
    if let Some((level, _, k)) = llc_best {
        (out.llc, out.llc_level) = (Some(k.0), level);
    }
    Ok(out)
}

/// A CPU's record, and whether its `topology/physical_package_id` exists.
fn read_cpu(cpu_dir: &Path, cpu: usize) -> Result<(CpuInfo, bool), SysfsError> {
    let t = cpu_dir.join("topology");
    let mut info = CpuInfo::unknown(cpu as u32);
    let package = read_int(&t.join("physical_package_id"))?;
    info.package = package.unwrap_or(-1);
    info.die = read_int(&t.join("die_id"))?.unwrap_or(-1);
    info.cluster = read_int(&t.join("cluster_id"))?.unwrap_or(-1);
    info.core_id = read_int(&t.join("core_id"))?.unwrap_or(-1);
    let siblings = match read_list_or_mask(&t, "core_cpus_list", "core_cpus")? {
        Some(s) => Some(s),
        None => read_list_or_mask(&t, "thread_siblings_list", "thread_siblings")?,
    };
    info.core = key(siblings, cpu);
    let caches = read_caches(&cpu_dir.join("cache"), cpu)?;
    (info.l2, info.llc, info.llc_level) = (caches.l2, caches.llc, caches.llc_level);
    info.capacity = read_int(&cpu_dir.join("cpu_capacity"))?;
    Ok((info, package.is_some()))
}

/// Sets each record's node from `<root>/devices/system/node/node*/cpulist`. Refuses node cpulists that
/// overlap, that name a CPU beyond `possible`, or that are empty for a node `node/has_cpu` says has CPUs
/// (a memory-only node, not in `has_cpu`, legitimately has an empty list).
fn read_nodes(root: &Path, cpus: &mut [CpuInfo]) -> Result<(), SysfsError> {
    let dir = root.join("devices/system/node");
    let entries = match fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err(&dir, e)),
    };
    let has_cpu = read_list(&dir.join("has_cpu"))?;
    let mut seen = CpuSet::new();
    for e in entries {
        let e = e.map_err(|e| io_err(&dir, e))?;
        let Some(id) = numbered(&e.file_name(), "node").and_then(|n| u32::try_from(n).ok()) else { continue };
        let Some(set) = read_list_or_mask(&e.path(), "cpulist", "cpumap")? else { continue };
        let malformed = |why: std::string::String| SysfsError::Malformed { path: e.path().join("cpulist"), why };
        if set.is_empty() && has_cpu.is_some_and(|h| h.contains(id as usize)) {
            return Err(malformed(std::format!("node {id} is in node/has_cpu but its cpulist is empty")));
        }
        if let Some(c) = (set & seen).first() {
            return Err(malformed(std::format!("CPU {c} is also in another node's cpulist")));
        }
        seen |= set;
        for c in set.iter() {
            let Some(r) = cpus.get_mut(c) else {
                return Err(malformed(std::format!("CPU {c} is not a possible CPU")));
            };
            r.node = Some(id);
        }
    }
    Ok(())
}

/// Reads the topology under `root` (`/sys` on a live machine); see the [module docs](self).
pub fn read_topology(root: impl AsRef<Path>) -> Result<OwnedTopology, SysfsError> {
    let root = root.as_ref();
    let cpu_dir = root.join("devices/system/cpu");
    if !cpu_dir.is_dir() {
        return Err(SysfsError::NoCpuDir { path: cpu_dir });
    }
    let online_file = cpu_dir.join("online");
    let online = read_list(&online_file)?;
    let present = read_list(&cpu_dir.join("present"))?;
    let possible = read_list(&cpu_dir.join("possible"))?;
    let (dirs, with_topology) =
        if online.is_none() || present.is_none() { scan_cpu_dirs(&cpu_dir)? } else { (CpuSet::new(), CpuSet::new()) };
    let online = online.unwrap_or(with_topology);
    let present = present.unwrap_or(dirs) | online;
    let possible = possible.unwrap_or(present) | present;

    let len = possible.last().map_or(0, |l| l + 1);
    let mut cpus: Vec<CpuInfo> = (0..len).map(|c| CpuInfo::unknown(c as u32)).collect();
    let mut online_now = online;
    // Online CPUs with and without `topology/physical_package_id` (the first of each).
    let (mut with_package, mut without_package) = (None, None);
    for cpu in online.iter() {
        let dir = cpu_dir.join(std::format!("cpu{cpu}"));
        if !dir.is_dir() {
            return Err(SysfsError::Malformed {
                path: online_file.clone(),
                why: std::format!("online CPU {cpu} has no {} directory", dir.display()),
            });
        }
        if !dir.join("topology").is_dir() {
            // It went offline while we read.
            online_now.remove(cpu);
            continue;
        }
        let (info, has_package) = read_cpu(&dir, cpu)?;
        cpus[cpu] = info;
        if has_package {
            with_package.get_or_insert(cpu);
        } else {
            without_package.get_or_insert(cpu);
        }
    }
    if let (Some(a), Some(b)) = (with_package, without_package) {
        return Err(SysfsError::Malformed {
            path: cpu_dir.join(std::format!("cpu{b}/topology/physical_package_id")),
            why: std::format!("missing, while CPU {a} has one (it would become a package of its own)"),
        });
    }
    if online_now.is_empty() {
        return Err(SysfsError::NoOnlineCpus { path: online_file });
    }
    read_nodes(root, &mut cpus)?;
    Topology::new(cpus, online_now)
        .map(|t| t.with_present(present).with_possible(possible))
        .map_err(SysfsError::Topology)
}

impl Topology<Vec<CpuInfo>> {
    /// Reads the topology under `root` (`/sys` on a live machine); see [`read_topology`].
    pub fn from_sysfs(root: impl AsRef<Path>) -> Result<Self, SysfsError> {
        read_topology(root)
    }
}

/// The CPUs the calling thread may run on, from `/proc/thread-self/status` (no syscall wrapper needed).
pub fn allowed_cpus() -> Result<CpuSet, SysfsError> {
    allowed_cpus_from(Path::new("/proc/thread-self/status"))
}

/// The `Cpus_allowed_list` of a `/proc/<pid>/status`-format file.
pub fn allowed_cpus_from(status: &Path) -> Result<CpuSet, SysfsError> {
    let text =
        read_file(status)?.ok_or_else(|| io_err(status, io::Error::new(io::ErrorKind::NotFound, "no such file")))?;
    const KEY: &[u8] = b"Cpus_allowed_list:";
    let mut at = 0;
    for line in text.split(|&b| b == b'\n') {
        if let Some(rest) = line.strip_prefix(KEY) {
            let start = at + KEY.len();
            return CpuSet::parse_list(rest).map_err(|mut error| {
                error.offset += start;
                SysfsError::Parse { path: status.into(), error }
            });
        }
        at += line.len() + 1;
    }
    Err(SysfsError::BadValue { path: status.into() })
}
