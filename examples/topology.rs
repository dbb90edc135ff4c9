//! Prints the machine's topology summary ([`ghost_shm::topology::report`]):
//!
//! ```text
//! cargo run --example topology -- [--sysfs-root DIR] [--allowed]
//! ```
//!
//! `--sysfs-root` defaults to `/sys`; `--allowed` keeps only the CPUs this process may run on. Needs the `std`
//! feature (the sysfs reader).
use std::process::ExitCode;

#[cfg(feature = "std")]
use ghost_shm::topology::{report, sysfs, Topology};

#[cfg(not(feature = "std"))]
fn main() -> ExitCode {
    eprintln!("the topology example needs the `std` feature");
    ExitCode::FAILURE
}

#[cfg(feature = "std")]
const USAGE: &str = "usage: topology [--sysfs-root DIR] [--allowed]";

#[cfg(feature = "std")]
fn main() -> ExitCode {
    let mut root = String::from("/sys");
    let mut allowed = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--sysfs-root" => match args.next() {
                Some(dir) => root = dir,
                None => {
                    eprintln!("--sysfs-root needs a directory\n{USAGE}");
                    return ExitCode::from(2);
                }
            },
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
