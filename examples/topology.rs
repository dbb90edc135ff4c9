//! Prints the machine's topology summary ([`ghost_shm::topology::report`]):
//!
//! ```text
//! cargo run --example topology -- [--sysfs-root DIR | --fixture NAME] [--allowed]
//! cargo run --example topology -- --write-fixture NAME DIR
//! ```
//!
//! `--sysfs-root` defaults to `/sys`; `--allowed` keeps only the CPUs this process may run on. Needs the `std`
//! feature (the sysfs reader).
//!
//! The test fixture machines (`tests/data/topologies/<NAME>.topo`: `amd-epyc9654-2s96c384t`,
//! `arm-kunpeng920-2s128c`, `intel-i7-1370p-hybrid`, `intel-xeon4108-2s16c32t`, `vm-2c`) are compact
//! descriptions: `--write-fixture NAME DIR` writes one out as a sysfs tree under `DIR` (which must not hold a
//! `devices/` yet), for `--sysfs-root DIR` here or the demo's `--topology DIR`; `--fixture NAME` reads one
//! through a temporary tree.
use std::process::ExitCode;

#[cfg(feature = "std")]
#[path = "../tests/support/sysfs_fixture.rs"]
mod sysfs_fixture;

#[cfg(feature = "std")]
use ghost_shm::topology::{report, sysfs, Topology};

#[cfg(not(feature = "std"))]
fn main() -> ExitCode {
    eprintln!("the topology example needs the `std` feature");
    ExitCode::FAILURE
}

#[cfg(feature = "std")]
const USAGE: &str =
    "usage: topology [--sysfs-root DIR | --fixture NAME] [--allowed]\n       topology --write-fixture NAME DIR";

#[cfg(feature = "std")]
fn main() -> ExitCode {
    let mut root = None;
    let mut fixture = None;
    let mut allowed = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--sysfs-root" => match args.next() {
                Some(dir) => root = Some(dir),
                None => {
                    eprintln!("--sysfs-root needs a directory\n{USAGE}");
                    return ExitCode::from(2);
                }
            },
            "--fixture" => match args.next() {
                Some(name) => fixture = Some(name),
                None => {
                    eprintln!("--fixture needs a fixture name\n{USAGE}");
                    return ExitCode::from(2);
                }
            },
            "--write-fixture" => {
                let (Some(name), Some(dir), None) = (args.next(), args.next(), args.next()) else {
                    eprintln!("--write-fixture needs a fixture name and a directory, and nothing else\n{USAGE}");
                    return ExitCode::from(2);
                };
                let written = sysfs_fixture::description(&name)
                    .and_then(|desc| sysfs_fixture::write_tree(desc, std::path::Path::new(&dir)));
                return match written {
                    Ok(()) => {
                        println!("wrote fixture {name} to {dir} (read it with --sysfs-root {dir})");
                        ExitCode::SUCCESS
                    }
                    Err(e) => {
                        eprintln!("topology: {e}");
                        ExitCode::FAILURE
                    }
                };
            }
            "--allowed" => allowed = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            other => {
                eprintln!("unknown argument {other:?}\n{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    if root.is_some() && fixture.is_some() {
        eprintln!("--sysfs-root and --fixture exclude each other\n{USAGE}");
        return ExitCode::from(2);
    }
    // A fixture is read from a temporary tree, removed when `temp` drops.
    let temp = match fixture.map(|name| sysfs_fixture::TempTree::fixture(&name)).transpose() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("topology: {e}");
            return ExitCode::FAILURE;
        }
    };
    let root = match &temp {
        Some(t) => t.root().to_path_buf(),
        None => root.unwrap_or_else(|| "/sys".into()).into(),
    };
    let mut topo = match Topology::from_sysfs(&root) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("topology: {e}");
            return ExitCode::FAILURE;
        }
    };
    if allowed {
        match sysfs::allowed_cpus() {
            Ok(set) => topo.intersect(&set),
            Err(e) => {
                eprintln!("topology: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    print!("{}", report(&topo));
    ExitCode::SUCCESS
}
