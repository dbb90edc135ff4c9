//! Sysfs fixture machines: one compact description per machine (`tests/data/topologies/<name>.topo`), written out
//! as a sysfs tree (`<dir>/devices/system/{cpu,node}`) at test time so the real sysfs reader reads real files.
//!
//! Shared by `tests/topology.rs` and `examples/topology.rs` (`--write-fixture NAME DIR`, `--fixture NAME`). This
//! code does not use the crate: the tree it writes is independent input for the reader under test.
//!
//! # Description format (`ghost-shm-topology 1`)
//!
//! One `key value...` per line; `#` starts a comment line. Lists (`0-7,16-23`) are written to the tree verbatim,
//! as the kernel printed them. A *vector* is one value per element, space separated, `v*n` repeating `v` n times;
//! a vector of exactly one value applies to every element.
//!
//! | key | value | files written |
//! |---|---|---|
//! | `kernel_max`, `possible`, `present`, `online` | number / list | `cpu/<key>`; `cpu/offline` = possible − online |
//! | `smt.active`, `smt.control` | word | `cpu/smt/active`, `cpu/smt/control` |
//! | `nul-terminated` | `topology`, `node` | those list and mask files end in `\n\0` instead of `\n` |
//! | `node.online`, `node.possible`, `node.has_cpu` | list | `node/online`, ... |
//! | `node N LIST distance D...` | | `node/nodeN/{cpulist,cpumap,distance}` |
//! | `cpu.physical_package_id`, `cpu.die_id`, `cpu.cluster_id`, `cpu.core_id` | vector over online CPUs | `cpu/cpuN/topology/<name>` |
//! | `cpu.cpu_capacity` | vector over online CPUs | `cpu/cpuN/cpu_capacity` |
//! | `topology.{core,cluster,die,package}_cpus` | groups (lists) partitioning the online CPUs | `cpu/cpuN/topology/<name>{,_list}` |
//! | `cache.indexK.shared` | groups partitioning the online CPUs | `cpu/cpuN/cache/indexK/shared_cpu_{list,map}` |
//! | `cache.indexK.{level,type,size,id}` | vector over that index's groups | `cpu/cpuN/cache/indexK/<name>` |
//!
//! As the kernel does: `cpuN/` exists for every present CPU, `cpuN/online` for every present CPU but 0 (`1` or
//! `0`), `topology/`, `cache/` and `cpu_capacity` only for online CPUs; `thread_siblings{,_list}` repeat
//! `core_cpus`, `core_siblings{,_list}` repeat `package_cpus`; hex masks are 32-bit chunks, most significant
//! first, padded to `nr_cpu_ids` (= last possible CPU + 1) bits.
#![allow(dead_code)] // each user needs a different part

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The fixture machines: name and description.
pub const FIXTURES: [(&str, &str); 5] = [
    ("amd-epyc9654-2s96c384t", include_str!("../data/topologies/amd-epyc9654-2s96c384t.topo")),
    ("arm-kunpeng920-2s128c", include_str!("../data/topologies/arm-kunpeng920-2s128c.topo")),
    ("intel-i7-1370p-hybrid", include_str!("../data/topologies/intel-i7-1370p-hybrid.topo")),
    ("intel-xeon4108-2s16c32t", include_str!("../data/topologies/intel-xeon4108-2s16c32t.topo")),
    ("vm-2c", include_str!("../data/topologies/vm-2c.topo")),
];

/// The description of fixture `name`.
pub fn description(name: &str) -> Result<&'static str, String> {
    FIXTURES.iter().find(|(n, _)| *n == name).map(|(_, d)| *d).ok_or_else(|| {
        let names: Vec<&str> = FIXTURES.iter().map(|(n, _)| *n).collect();
        format!("no fixture machine {name:?} (there are: {})", names.join(", "))
    })
}

/// A fixture tree in a fresh temporary directory, removed on drop.
pub struct TempTree(PathBuf);

impl TempTree {
    /// Writes fixture `name` into a new temporary directory.
    pub fn fixture(name: &str) -> Result<TempTree, String> {
        Self::from_description(name, description(name)?)
    }

    /// Writes `desc` into a new temporary directory (`label` names it).
    pub fn from_description(label: &str, desc: &str) -> Result<TempTree, String> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("ghost-shm-fixture-{}-{n}-{label}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let tree = TempTree(dir);
        write_tree(desc, &tree.0)?;
        Ok(tree)
    }

    /// The sysfs root (the directory holding `devices/`).
    pub fn root(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempTree {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Parses a kernel cpulist (`a` or `a-b` joined by commas; empty = empty set).
pub fn parse_list(list: &str) -> Result<BTreeSet<u32>, String> {
    let mut set = BTreeSet::new();
    if list.is_empty() {
        return Ok(set);
    }
    for range in list.split(',') {
        let num = |s: &str| s.parse::<u32>().map_err(|_| format!("bad cpulist {list:?}"));
        let (a, b) = match range.split_once('-') {
            Some((a, b)) => (num(a)?, num(b)?),
            None => (num(range)?, num(range)?),
        };
        if a > b || b >= 1 << 16 {
            return Err(format!("bad cpulist {list:?}"));
        }
        set.extend(a..=b);
    }
    Ok(set)
}

/// The kernel's `%*pb` hex mask of `set`, `width` bits wide.
fn hex_mask(set: &BTreeSet<u32>, width: u32) -> String {
    let chunks = width.div_ceil(32).max(1);
    let mut out = String::new();
    for c in (0..chunks).rev() {
        let word = set.iter().filter(|&&b| b / 32 == c).fold(0u32, |w, &b| w | 1 << (b % 32));
        if c == chunks - 1 {
            let bits = width - 32 * c;
            let digits = bits.div_ceil(4).max(1) as usize;
            write!(out, "{word:0digits$x}").unwrap();
        } else {
            write!(out, ",{word:08x}").unwrap();
        }
    }
    out
}

/// Expands a vector (`v`, `v*n`) to exactly `len` values (one value applies to all).
fn vector(key: &str, text: &str, len: usize) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for item in text.split_ascii_whitespace() {
        match item.rsplit_once('*') {
            Some((v, n)) => {
                let n: usize = n.parse().map_err(|_| format!("{key}: bad repeat {item:?}"))?;
                if n > 1 << 16 {
                    return Err(format!("{key}: bad repeat {item:?}"));
                }
                out.extend(std::iter::repeat_n(v.to_string(), n));
            }
            None => out.push(item.to_string()),
        }
    }
    match out.len() {
        1 => Ok(vec![out.pop().unwrap(); len]),
        n if n == len => Ok(out),
        n => Err(format!("{key}: {n} values for {len} elements")),
    }
}

/// Groups (cpulists) that must partition `online`; returns the lists in their order and each CPU's group index.
fn groups(key: &str, text: &str, online: &BTreeSet<u32>) -> Result<(Vec<String>, BTreeMap<u32, usize>), String> {
    let lists: Vec<String> = text.split_ascii_whitespace().map(str::to_string).collect();
    let mut of = BTreeMap::new();
    for (i, l) in lists.iter().enumerate() {
        for c in parse_list(l)? {
            if !online.contains(&c) || of.insert(c, i).is_some() {
                return Err(format!("{key}: CPU {c} is offline or in two groups"));
            }
        }
    }
    if of.len() != online.len() {
        return Err(format!("{key}: the groups do not cover the online CPUs"));
    }
    Ok((lists, of))
}

/// Writes the sysfs tree that `desc` describes under `root` (which must not already hold a `devices/`).
pub fn write_tree(desc: &str, root: &Path) -> Result<(), String> {
    let mut kv: BTreeMap<String, String> = BTreeMap::new();
    let mut nodes: Vec<(u32, String, String)> = Vec::new();
    let mut version = None;
    for (n, line) in desc.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = line.split_once(' ').unwrap_or((line, ""));
        let value = value.trim();
        if key == "ghost-shm-topology" {
            version = Some(value.to_string());
        } else if key == "node" {
            let mut w = value.split_ascii_whitespace();
            let (Some(id), Some(list), Some("distance")) = (w.next(), w.next(), w.next()) else {
                return Err(format!("line {}: expected `node N LIST distance D...`", n + 1));
            };
            let id = id.parse().map_err(|_| format!("line {}: bad node id {id:?}", n + 1))?;
            nodes.push((id, list.to_string(), w.collect::<Vec<_>>().join(" ")));
        } else if kv.insert(key.to_string(), value.to_string()).is_some() {
            return Err(format!("line {}: {key} given twice", n + 1));
        }
    }
    if version.as_deref() != Some("1") {
        return Err("not a `ghost-shm-topology 1` description".into());
    }
    let need = |k: &str, v: Option<String>| v.ok_or_else(|| format!("missing `{k}`"));
    let possible_text = need("possible", kv.remove("possible"))?;
    let online_text = need("online", kv.remove("online"))?;
    let present_text = need("present", kv.remove("present"))?;
    let possible = parse_list(&possible_text)?;
    let online = parse_list(&online_text)?;
    let present = parse_list(&present_text)?;
    if !online.is_subset(&present) || !present.is_subset(&possible) || online.is_empty() {
        return Err("need online ⊆ present ⊆ possible, online not empty".into());
    }
    let width = possible.last().map_or(1, |&l| l + 1);
    let nul = kv.remove("nul-terminated").unwrap_or_default();
    let nul: BTreeSet<&str> = nul.split_ascii_whitespace().collect();
    if let Some(f) = nul.iter().find(|f| !matches!(**f, "topology" | "node")) {
        return Err(format!("nul-terminated: unknown family {f:?}"));
    }
    let end = |family: &str| if nul.contains(family) { "\n\0" } else { "\n" };

    let sys = root.join("devices/system");
    if sys.exists() {
        return Err(format!("{} exists already", sys.display()));
    }
    let made = std::cell::RefCell::new(BTreeSet::new()); // directories created so far
    let put = |rel: String, content: String| -> Result<(), String> {
        let p = sys.join(rel);
        let dir = p.parent().unwrap();
        if made.borrow_mut().insert(dir.to_path_buf()) {
            fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        fs::write(&p, content).map_err(|e| format!("{}: {e}", p.display()))
    };

    // cpu/: machine-wide files.
    let offline: BTreeSet<u32> = possible.difference(&online).copied().collect();
    put("cpu/kernel_max".into(), format!("{}\n", need("kernel_max", kv.remove("kernel_max"))?))?;
    put("cpu/possible".into(), format!("{possible_text}\n"))?;
    put("cpu/present".into(), format!("{present_text}\n"))?;
    put("cpu/online".into(), format!("{online_text}\n"))?;
    put("cpu/offline".into(), format!("{}\n", format_list(&offline)))?;
    put("cpu/smt/active".into(), format!("{}\n", need("smt.active", kv.remove("smt.active"))?))?;
    put("cpu/smt/control".into(), format!("{}\n", need("smt.control", kv.remove("smt.control"))?))?;

    // cpu/cpuN/: presence, online flag, ids, capacity.
    let on: Vec<u32> = online.iter().copied().collect();
    for &c in &present {
        if c != 0 {
            put(format!("cpu/cpu{c}/online"), format!("{}\n", u8::from(online.contains(&c))))?;
        }
    }
    for id in ["physical_package_id", "die_id", "cluster_id", "core_id", "cpu_capacity"] {
        let key = format!("cpu.{id}");
        let Some(text) = kv.remove(&key) else { continue };
        let dir = if id == "cpu_capacity" { "" } else { "topology/" };
        for (c, v) in on.iter().zip(vector(&key, &text, on.len())?) {
            put(format!("cpu/cpu{c}/{dir}{id}"), format!("{v}\n"))?;
        }
    }
    for (name, aliases) in [
        ("core_cpus", &["core_cpus", "thread_siblings"][..]),
        ("cluster_cpus", &["cluster_cpus"]),
        ("die_cpus", &["die_cpus"]),
        ("package_cpus", &["package_cpus", "core_siblings"]),
    ] {
        let key = format!("topology.{name}");
        let (lists, of) = groups(&key, &need(&key, kv.remove(&key))?, &online)?;
        for &c in &on {
            let list = &lists[of[&c]];
            let mask = hex_mask(&parse_list(list)?, width);
            for file in aliases {
                put(format!("cpu/cpu{c}/topology/{file}_list"), format!("{list}{}", end("topology")))?;
                put(format!("cpu/cpu{c}/topology/{file}"), format!("{mask}{}", end("topology")))?;
            }
        }
    }

    // cpu/cpuN/cache/indexK/.
    let indexes: Vec<String> =
        kv.keys().filter_map(|k| k.strip_prefix("cache.")?.strip_suffix(".shared")).map(str::to_string).collect();
    for index in indexes {
        if !index.strip_prefix("index").is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())) {
            return Err(format!("cache.{index}: not an indexK"));
        }
        let key = format!("cache.{index}.shared");
        let (lists, of) = groups(&key, &kv.remove(&key).unwrap(), &online)?;
        for &c in &on {
            let list = &lists[of[&c]];
            put(format!("cpu/cpu{c}/cache/{index}/shared_cpu_list"), format!("{list}\n"))?;
            put(
                format!("cpu/cpu{c}/cache/{index}/shared_cpu_map"),
                format!("{}\n", hex_mask(&parse_list(list)?, width)),
            )?;
        }
        for attr in ["level", "type", "size", "id"] {
            let key = format!("cache.{index}.{attr}");
            let Some(text) = kv.remove(&key) else {
                if attr == "id" {
                    continue; // many ARM systems have no cache ids
                }
                return Err(format!("missing `{key}`"));
            };
            let values = vector(&key, &text, lists.len())?;
            for &c in &on {
                put(format!("cpu/cpu{c}/cache/{index}/{attr}"), format!("{}\n", values[of[&c]]))?;
            }
        }
    }

    // node/.
    for k in ["online", "possible", "has_cpu"] {
        let key = format!("node.{k}");
        put(format!("node/{k}"), format!("{}{}", need(&key, kv.remove(&key))?, end("node")))?;
    }
    for (id, list, distance) in &nodes {
        let set = parse_list(list)?;
        put(format!("node/node{id}/cpulist"), format!("{list}{}", end("node")))?;
        put(format!("node/node{id}/cpumap"), format!("{}{}", hex_mask(&set, width), end("node")))?;
        put(format!("node/node{id}/distance"), format!("{distance}\n"))?;
    }

    if let Some(k) = kv.keys().next() {
        return Err(format!("unknown key `{k}`"));
    }
    Ok(())
}

/// The kernel's `%*pbl` list of `set`.
fn format_list(set: &BTreeSet<u32>) -> String {
    let mut out = String::new();
    let mut it = set.iter().copied().peekable();
    while let Some(a) = it.next() {
        let mut b = a;
        while it.peek() == Some(&(b + 1)) {
            b = it.next().unwrap();
        }
        let sep = if out.is_empty() { "" } else { "," };
        if a == b {
            write!(out, "{sep}{a}").unwrap();
        } else {
            write!(out, "{sep}{a}-{b}").unwrap();
        }
    }
    out
}
