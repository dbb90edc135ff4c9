//! Topology against the fixture machines of `tests/data/topologies` (their `EXPECTED.json`), synthetic sysfs
//! trees, this machine's real `/sys`, and one real run of `examples/topology.rs`.
#![cfg(feature = "std")]
#![cfg(not(miri))] // reads sysfs fixture trees and runs an example: needs the file system and processes

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use ghost_shm::topology::sysfs::{self, OwnedTopology, SysfsError};
use ghost_shm::topology::{report, CpuSet, Level, ParseErrorKind, Topology};
use serde_json::Value;

const MACHINES: [&str; 5] =
    ["amd-epyc9654-2s96c384t", "arm-kunpeng920-2s128c", "intel-i7-1370p-hybrid", "intel-xeon4108-2s16c32t", "vm-2c"];

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/topologies")
}

fn expected() -> serde_json::Map<String, Value> {
    let text = fs::read_to_string(fixtures().join("EXPECTED.json")).expect("EXPECTED.json");
    match serde_json::from_str(&text).expect("EXPECTED.json is JSON") {
        Value::Object(m) => m,
        other => panic!("EXPECTED.json is not an object: {other}"),
    }
}

fn machine(name: &str) -> OwnedTopology {
    Topology::from_sysfs(fixtures().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn set(s: &str) -> CpuSet {
    s.parse().unwrap_or_else(|e| panic!("{s:?}: {e}"))
}

fn strs(v: &Value) -> Vec<&str> {
    v.as_array().expect("array").iter().map(|s| s.as_str().expect("string")).collect()
}

/// The leading number of a cpulist: its first CPU (kernel lists are ascending).
fn first_of(list: &str) -> u32 {
    list.split([',', '-']).next().unwrap().parse().unwrap()
}

/// Expected groups as sets, in the order a report prints them (by first CPU).
fn expected_groups(v: &Value) -> Vec<CpuSet> {
    let mut g = strs(v);
    g.sort_by_key(|s| first_of(s));
    g.into_iter().map(set).collect()
}

fn expected_nodes(v: &Value) -> BTreeMap<u32, CpuSet> {
    v.as_object().expect("nodes object").iter().map(|(id, l)| (id.parse().unwrap(), set(l.as_str().unwrap()))).collect()
}

/// The report text an `EXPECTED.json` entry calls for, built from its strings, not through our formatter.
fn expected_report(m: &Value) -> String {
    let line = |key: &str| {
        let mut g = strs(&m[key]);
        g.sort_by_key(|s| first_of(s));
        g.join(" | ")
    };
    let mut nodes: Vec<(u32, &str)> =
        m["nodes"].as_object().unwrap().iter().map(|(id, l)| (id.parse().unwrap(), l.as_str().unwrap())).collect();
    nodes.sort();
    let nodes: String = nodes.iter().map(|(id, l)| format!(" {id}:{l}")).collect();
    format!(
        "online {}\npackages {}\nsmt {}\nl3 {}\nnodes{nodes}\n",
        m["online"].as_str().unwrap(),
        line("packages"),
        line("smt"),
        line("l3")
    )
}

/// Invariants every topology must satisfy.
fn check_invariants(name: &str, t: &OwnedTopology) {
    let online = *t.online();
    assert!(!online.is_empty(), "{name}: no online CPU");
    assert!(
        online.is_subset(t.present()) && t.present().is_subset(t.possible()),
        "{name}: online ⊆ present ⊆ possible"
    );
    for level in [Level::Core, Level::L2, Level::Cluster, Level::Llc, Level::Die, Level::Node, Level::Package] {
        let groups: Vec<CpuSet> = t.groups(level).collect();
        let mut seen = CpuSet::new();
        let mut last_first = None;
        for g in &groups {
            assert!(!g.is_empty(), "{name} {level:?}: empty group");
            assert!(seen.is_disjoint(g), "{name} {level:?}: groups overlap at {}", seen & *g);
            assert!(g.first() > last_first, "{name} {level:?}: groups not ordered by first CPU");
            last_first = g.first();
            seen |= *g;
            for c in g {
                assert_eq!(t.group_of(c, level), *g, "{name} {level:?}: group_of({c})");
            }
        }
        assert_eq!(seen, online, "{name} {level:?}: groups cover online CPUs");
        // Never separate SMT siblings.
        for core in t.groups(Level::Core) {
            assert_eq!(groups.iter().filter(|g| !g.is_disjoint(&core)).count(), 1, "{name} {level:?}: core {core}");
        }
    }
    let firsts = t.first_cpu_of_each_core(&online);
    assert_eq!(firsts.count(), t.groups(Level::Core).count(), "{name}: one CPU per core");
    for c in &online {
        assert_eq!((t.siblings_of(c) & firsts).count(), 1, "{name}: core of {c}");
        assert!(t.siblings_of(c).contains(c) && t.same_llc_as(c).is_superset(&t.siblings_of(c)));
    }
    let text = report(t).to_string();
    let lines: Vec<&str> = text.lines().collect();
    let heads: Vec<&str> = lines.iter().map(|l| l.split(' ').next().unwrap()).collect();
    assert_eq!(heads, ["online", "packages", "smt", "l3", "nodes"], "{name}: {text}");
}

#[test]
fn fixtures_match_expected_through_the_library() {
    let exp = expected();
    let mut names: Vec<&str> = exp.keys().map(String::as_str).collect();
    names.sort();
    assert_eq!(names, MACHINES, "fixture list");
    for name in MACHINES {
        let m = &exp[name];
        let t = machine(name);
        assert_eq!(*t.online(), set(m["online"].as_str().unwrap()), "{name}: online");
        assert_eq!(t.groups(Level::Package).collect::<Vec<_>>(), expected_groups(&m["packages"]), "{name}: packages");
        assert_eq!(t.groups(Level::Core).collect::<Vec<_>>(), expected_groups(&m["smt"]), "{name}: smt");
        assert_eq!(t.groups(Level::Llc).collect::<Vec<_>>(), expected_groups(&m["l3"]), "{name}: l3");
        let mut nodes: BTreeMap<u32, CpuSet> = BTreeMap::new();
        for c in t.online() {
            let n = t.node_of(c).unwrap_or_else(|| panic!("{name}: CPU {c} has no node"));
            nodes.entry(n).or_default().insert(c).unwrap();
        }
        assert_eq!(nodes, expected_nodes(&m["nodes"]), "{name}: nodes");
        for c in t.online() {
            assert_eq!(t.same_node_as(c), nodes[&t.node_of(c).unwrap()], "{name}: same_node_as({c})");
            assert_eq!(t.cpu(c).unwrap().llc_level, 3, "{name}: every fixture CPU has an L3");
        }
        check_invariants(name, &t);
    }
}

#[test]
fn fixtures_match_expected_through_report() {
    let exp = expected();
    for name in MACHINES {
        assert_eq!(report(&machine(name)).to_string(), expected_report(&exp[name]), "{name}");
    }
}

#[test]
fn fixture_details() {
    // Possible > present, core ids repeating per socket.
    let x = machine("intel-xeon4108-2s16c32t");
    assert_eq!((x.possible().to_string(), x.present().to_string()), ("0-111".into(), "0-31".into()));
    assert_eq!(x.records().len(), 112);
    assert_eq!((x.cpu(0).unwrap().core_id, x.cpu(8).unwrap().core_id), (0, 0));
    assert_eq!(x.siblings_of(8).to_string(), "8,24");
    assert_eq!(x.siblings_of(40), CpuSet::new(), "offline CPU");
    assert_eq!(x.first_cpu_of_each_core(x.online()).to_string(), "0-15");
    let parts: Vec<String> = x.partition(&set("0-3,16-19,8,24,31"), Level::Node).map(|s| s.to_string()).collect();
    assert_eq!(parts, ["0-3,16-19", "8,24,31"]);

    // Hybrid: E-core clusters share an L2; P-cores have SMT.
    let h = machine("intel-i7-1370p-hybrid");
    assert_eq!(h.same_l2_as(13).to_string(), "12-15");
    assert_eq!(h.same_l2_as(1).to_string(), "0-1");
    assert_eq!(h.group_of(17, Level::Cluster).to_string(), "16-19");
    assert_eq!(h.siblings_of(13).to_string(), "13");
    assert_eq!(h.cpu(12).unwrap().capacity, None);
    let l2: Vec<String> = h.groups(Level::L2).map(|s| s.to_string()).collect();
    assert_eq!(l2, ["0-1", "2-3", "4-5", "6-7", "8-9", "10-11", "12-15", "16-19"]);

    // ARM: large package ids, die -1, no cache ids, NUL-terminated lists, capacity.
    let a = machine("arm-kunpeng920-2s128c");
    let c = a.cpu(100).unwrap();
    assert_eq!((c.package, c.die, c.capacity, c.node), (8442, -1, Some(1024), Some(3)));
    assert_eq!(a.cpu(0).unwrap().package, 36);
    assert_eq!(a.group_of(33, Level::Cluster).to_string(), "32-35");
    assert_eq!(a.same_llc_as(33).to_string(), "32-63");
    assert_eq!(a.siblings_of(33).to_string(), "33");

    // 384 CPUs, 24 CCDs.
    let e = machine("amd-epyc9654-2s96c384t");
    assert_eq!(e.groups(Level::Llc).count(), 24);
    assert!(e.groups(Level::Llc).all(|g| g.count() == 16));
    assert_eq!(e.cpu(8).unwrap().core_id, 32, "sparse core ids");
    assert_eq!(e.first_cpu_of_each_core(e.online()).to_string(), "0-191");
    let enclave = set("0-3,192-195,100,292");
    let parts: Vec<String> = e.partition(&enclave, Level::Package).map(|s| s.to_string()).collect();
    assert_eq!(parts, ["0-3,192-195", "100,292"]);

    let v = machine("vm-2c");
    assert_eq!(v.cpu(1).unwrap().capacity, Some(1024));
    assert_eq!(v.groups(Level::Core).count(), 2);
}

#[test]
fn intersect_with_allowed_cpus() {
    let mut x = machine("intel-xeon4108-2s16c32t");
    x.intersect(&set("0,16,1,9-10"));
    assert_eq!(
        report(&x).to_string(),
        "online 0-1,9-10,16\npackages 0-1,16 | 9-10\nsmt 0,16 | 1 | 9 | 10\nl3 0-1,16 | 9-10\nnodes 0:0-1,16 1:9-10\n"
    );
}

/// A throw-away sysfs tree.
struct Tree(PathBuf);

impl Tree {
    fn new(name: &str) -> Tree {
        let p = std::env::temp_dir().join(format!("ghost-shm-topology-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).unwrap();
        Tree(p)
    }

    fn file(&self, rel: &str, content: &str) -> &Self {
        let p = self.0.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, content).unwrap();
        self
    }

    /// A CPU with a topology directory: package, core key list, and an LLC list at `cache/index<idx>`.
    fn cpu(&self, cpu: u32, package: i32, siblings: &str, llc: Option<(&str, &str)>) -> &Self {
        let d = format!("devices/system/cpu/cpu{cpu}");
        self.file(&format!("{d}/topology/physical_package_id"), &format!("{package}\n"));
        self.file(&format!("{d}/topology/core_id"), &format!("{cpu}\n"));
        self.file(&format!("{d}/topology/thread_siblings_list"), &format!("{siblings}\n"));
        if let Some((index, list)) = llc {
            self.file(&format!("{d}/cache/{index}/level"), "3\n");
            self.file(&format!("{d}/cache/{index}/type"), "Unified\n");
            self.file(&format!("{d}/cache/{index}/shared_cpu_list"), &format!("{list}\n"));
        }
        self
    }

    fn read(&self) -> Result<OwnedTopology, SysfsError> {
        Topology::from_sysfs(&self.0)
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

#[test]
fn sparse_offline_and_containers() {
    // CPUs 0, 2, 5 online; 1 present but offline (no topology/); possible 0-7; no node/ directory; CPU 5 has no
    // cache directory; lists end in NUL; the L3 lives at index0 and a level-1 cache at index3.
    let t = Tree::new("sparse");
    t.file("devices/system/cpu/online", "0,2,5\n\0")
        .file("devices/system/cpu/present", "0-2,5\n")
        .file("devices/system/cpu/possible", "0-7\n")
        .file("devices/system/cpu/cpu1/online", "0\n")
        .cpu(0, 0, "0", Some(("index0", "0,2")))
        .cpu(2, 0, "2\0", Some(("index0", "0,2\n\0")))
        .file("devices/system/cpu/cpu2/cache/index3/level", "1\n")
        .file("devices/system/cpu/cpu2/cache/index3/type", "Data\n")
        .file("devices/system/cpu/cpu2/cache/index3/shared_cpu_list", "2\n")
        .cpu(5, 1, "5", None)
        .file("devices/system/cpu/cpu5/cpu_capacity", "512\n");
    let topo = t.read().unwrap();
    assert_eq!(topo.online().to_string(), "0,2,5");
    assert_eq!(topo.present().to_string(), "0-2,5");
    assert_eq!(topo.possible().to_string(), "0-7");
    assert_eq!(topo.cpu(1), None);
    assert_eq!(topo.cpu(2).unwrap().llc_level, 3);
    assert_eq!(topo.cpu(5).unwrap().capacity, Some(512));
    assert_eq!(topo.node_of(0), None);
    // Without node and cache information the package stands in for both.
    assert_eq!(report(&topo).to_string(), "online 0,2,5\npackages 0,2 | 5\nsmt 0 | 2 | 5\nl3 0,2 | 5\nnodes\n");
    assert_eq!(topo.groups(Level::Node).map(|s| s.to_string()).collect::<Vec<_>>(), ["0,2", "5"]);
    check_invariants("sparse", &topo);
}

#[test]
fn online_cpu_without_topology_is_dropped_and_files_are_optional() {
    // No online/present/possible files: derived from the cpuN directories. CPU 3 has a directory but no
    // topology/, CPU 1 lists sibling 0; cpu10 is a directory with topology.
    let t = Tree::new("derived");
    t.file("devices/system/cpu/kernel_max", "8191\n")
        .cpu(0, 0, "0-1", None)
        .cpu(1, 0, "0-1", None)
        .cpu(10, 0, "10", None)
        .file("devices/system/cpu/cpu3/uevent", "")
        .file("devices/system/cpu/cpufreq/x", "")
        .file("devices/system/node/node4/cpulist", "0-1,10\n")
        .file("devices/system/node/possible", "0-4\n");
    let topo = t.read().unwrap();
    assert_eq!(topo.online().to_string(), "0-1,10");
    assert_eq!(topo.present().to_string(), "0-1,3,10");
    assert_eq!(topo.siblings_of(1).to_string(), "0-1");
    assert_eq!(report(&topo).to_string().lines().last(), Some("nodes 4:0-1,10"));

    // Online says 0-2 but CPU 2 went offline between the reads (its topology/ is gone).
    let t = Tree::new("raced");
    t.file("devices/system/cpu/online", "0-2\n").cpu(0, 0, "0", None).cpu(1, 0, "1", None);
    t.file("devices/system/cpu/cpu2/uevent", "");
    assert_eq!(t.read().unwrap().online().to_string(), "0-1");
    // Online naming a CPU with no directory at all is a malformed tree, not a smaller machine.
    t.file("devices/system/cpu/online", "0-3\n");
    assert!(matches!(t.read(), Err(SysfsError::Malformed { .. })), "{:?}", t.read());
}

#[test]
fn typed_errors() {
    let t = Tree::new("errors");
    assert!(matches!(t.read(), Err(SysfsError::NoCpuDir { .. })));

    t.file("devices/system/cpu/online", "0-1\n");
    match t.read() {
        Err(SysfsError::Malformed { path, why }) => assert!(path.ends_with("online") && why.contains("CPU 0"), "{why}"),
        other => panic!("{other:?}"),
    }
    t.file("devices/system/cpu/cpu0/uevent", "").file("devices/system/cpu/cpu1/uevent", "");
    match t.read() {
        Err(SysfsError::NoOnlineCpus { path }) => assert!(path.ends_with("online")),
        other => panic!("{other:?}"),
    }

    t.file("devices/system/cpu/online", "0-x\n");
    match t.read() {
        Err(SysfsError::Parse { path, error }) => {
            assert!(path.ends_with("devices/system/cpu/online"));
            assert_eq!((error.offset, error.kind), (2, ParseErrorKind::UnexpectedChar(b'x')));
        }
        other => panic!("{other:?}"),
    }

    t.file("devices/system/cpu/online", "0\n").cpu(0, 0, "0", None);
    t.file("devices/system/cpu/cpu0/topology/core_id", "zero\n");
    match t.read() {
        Err(e @ SysfsError::BadValue { .. }) => assert!(e.to_string().contains("core_id"), "{e}"),
        other => panic!("{other:?}"),
    }
    t.file("devices/system/cpu/cpu0/topology/core_id", "4294967296\n");
    assert!(matches!(t.read(), Err(SysfsError::BadValue { .. })));
    t.file("devices/system/cpu/cpu0/topology/core_id", "0\n");
    assert!(t.read().is_ok());

    t.file("devices/system/cpu/online", "0,9000\n");
    match t.read() {
        Err(SysfsError::Parse { error, .. }) => {
            assert_eq!(error.kind, ParseErrorKind::OutOfRange { id: 9000, nr_ids: 8192 })
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn allowed_cpus_from_status_files() {
    let t = Tree::new("status");
    t.file("status", "Name:\tx\nCpus_allowed:\tf\nCpus_allowed_list:\t0-2,4\nMems_allowed_list:\t0\n");
    assert_eq!(sysfs::allowed_cpus_from(&t.0.join("status")).unwrap().to_string(), "0-2,4");
    t.file("status", "Name:\tx\n");
    assert!(matches!(sysfs::allowed_cpus_from(&t.0.join("status")), Err(SysfsError::BadValue { .. })));
    t.file("status", "Name:\tx\nCpus_allowed_list:\t0-y\n");
    match sysfs::allowed_cpus_from(&t.0.join("status")) {
        Err(SysfsError::Parse { error, .. }) => assert_eq!(error.offset, 8 + 18 + 3),
        other => panic!("{other:?}"),
    }
}

#[test]
fn this_machine() {
    if !Path::new("/sys/devices/system/cpu").is_dir() {
        eprintln!("no /sys/devices/system/cpu here; skipped");
        return;
    }
    let t = Topology::from_sysfs("/sys").expect("reading /sys must not fail");
    check_invariants("/sys", &t);
    let listed = fs::read("/sys/devices/system/cpu/online").map(|b| CpuSet::parse_list(b).unwrap()).ok();
    if let Some(listed) = listed {
        assert!(t.online().is_subset(&listed));
    }
    if let Ok(allowed) = sysfs::allowed_cpus() {
        assert!(!allowed.is_empty());
        let mut mine = t.clone();
        mine.intersect(&allowed);
        assert!(!mine.online().is_empty(), "we run on some online CPU");
    }
}

fn run_example(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO"))
        .args(["run", "--quiet", "--example", "topology", "--manifest-path"])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
        .arg("--")
        .args(args)
        .output()
        .expect("cargo runs");
    assert!(out.status.success(), "example {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn example_prints_expected_reports() {
    let exp = expected();
    for name in MACHINES {
        let root = fixtures().join(name);
        assert_eq!(run_example(&["--sysfs-root", root.to_str().unwrap()]), expected_report(&exp[name]), "{name}");
    }
    if Path::new("/sys/devices/system/cpu").is_dir() {
        let real = run_example(&[]);
        assert_eq!(real, report(&Topology::from_sysfs("/sys").unwrap()).to_string());
    }
}
