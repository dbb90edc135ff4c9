//! A malformed sysfs tree is refused with a typed error naming the file, never read into a phantom machine
//! (issue 16). Each case copies a real fixture and breaks one thing.
#![cfg(not(miri))] // file system

use ghost_shm::topology::sysfs::SysfsError;
use ghost_shm::topology::Topology;
use std::fs;
use std::path::{Path, PathBuf};

const FIXTURE: &str = "tests/data/topologies/intel-xeon4108-2s16c32t";

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dst);
        } else {
            fs::copy(e.path(), dst).unwrap();
        }
    }
}

/// A private copy of the fixture, removed on drop.
struct Copy(PathBuf);

impl Copy {
    fn new(name: &str) -> Copy {
        let dir = std::env::temp_dir().join(format!("ghost-shm-malformed-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        copy_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join(FIXTURE), &dir);
        Copy(dir)
    }
    fn path(&self, rel: &str) -> PathBuf {
        self.0.join(rel)
    }
    fn malformed(&self) -> (PathBuf, String) {
        match Topology::from_sysfs(&self.0) {
            Err(SysfsError::Malformed { path, why }) => (path, why),
            other => panic!("expected a malformed tree, got {:?}", other.map(|t| t.online().to_string())),
        }
    }
}

impl Drop for Copy {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

#[test]
fn the_fixture_itself_reads() {
    let c = Copy::new("ok");
    let t = Topology::from_sysfs(&c.0).unwrap();
    assert_eq!(t.online().to_string(), "0-31");
}

#[test]
fn cpu_without_package_id_is_refused() {
    let c = Copy::new("package");
    fs::remove_file(c.path("devices/system/cpu/cpu5/topology/physical_package_id")).unwrap();
    let (path, why) = c.malformed();
    assert!(path.ends_with("cpu5/topology/physical_package_id"), "{path:?}");
    assert!(why.contains("missing"), "{why}");
}

#[test]
fn overlapping_node_cpulists_are_refused() {
    let c = Copy::new("overlap");
    let node0 = fs::read_to_string(c.path("devices/system/node/node0/cpulist")).unwrap();
    let node1 = fs::read_to_string(c.path("devices/system/node/node1/cpulist")).unwrap();
    fs::write(c.path("devices/system/node/node1/cpulist"), format!("{},{}", node1.trim(), node0.trim())).unwrap();
    let (path, why) = c.malformed();
    assert!(path.ends_with("cpulist"), "{path:?}");
    assert!(why.contains("another node"), "{why}");
}

#[test]
fn empty_cpulist_of_a_node_with_cpus_is_refused() {
    let c = Copy::new("empty");
    fs::write(c.path("devices/system/node/node1/cpulist"), "\n").unwrap();
    let (path, why) = c.malformed();
    assert!(path.ends_with("node1/cpulist"), "{path:?}");
    assert!(why.contains("has_cpu"), "{why}");
    // A memory-only node (not in has_cpu) may have an empty list.
    fs::write(c.path("devices/system/node/has_cpu"), "0\n").unwrap();
    fs::write(c.path("devices/system/node/node0/cpulist"), "0-31\n").unwrap();
    assert!(Topology::from_sysfs(&c.0).is_ok());
}

#[test]
fn online_cpu_without_directory_is_refused() {
    let c = Copy::new("online");
    fs::write(c.path("devices/system/cpu/online"), "0-33\n").unwrap();
    let (path, why) = c.malformed();
    assert!(path.ends_with("cpu/online"), "{path:?}");
    assert!(why.contains("CPU 32"), "{why}");
}

#[test]
fn node_naming_an_impossible_cpu_is_refused() {
    let c = Copy::new("impossible");
    fs::write(c.path("devices/system/node/node1/cpulist"), "8-15,24-31,200\n").unwrap();
    let (_, why) = c.malformed();
    assert!(why.contains("CPU 200"), "{why}");
}
