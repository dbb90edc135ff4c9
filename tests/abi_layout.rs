//! The crate's layouts and constants, computed from the Rust types, equal the measured ABI 91 files
//! (`tests/data/abi91-*.txt`, copied from the ABI reference), both through the library and through the
//! `abi_layout` example's output.
#![cfg_attr(miri, allow(dead_code, unused_imports))] // the example-running test is not built under Miri

use ghost_shm::abi;
use std::collections::BTreeSet;
use std::process::Command;

fn lines(text: &str) -> BTreeSet<String> {
    text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(String::from).collect()
}

fn diff(ours: &BTreeSet<String>, theirs: &BTreeSet<String>) -> String {
    let mut s = String::new();
    for l in theirs.difference(ours) {
        s += &format!("missing: {l}\n");
    }
    for l in ours.difference(theirs) {
        s += &format!("extra:   {l}\n");
    }
    s
}

fn library_layout() -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    abi::for_each_layout_line(|l| {
        out.insert(l.to_string());
    });
    out
}

fn library_consts() -> BTreeSet<String> {
    abi::CONSTS.iter().map(|(n, v)| format!("{n} {v}")).collect()
}

#[test]
fn layout_matches_abi91() {
    let want = lines(include_str!("data/abi91-layout.txt"));
    let d = diff(&library_layout(), &want);
    assert!(d.is_empty(), "layout drift:\n{d}");
}

#[test]
fn consts_match_abi91() {
    let want = lines(include_str!("data/abi91-consts.txt"));
    let d = diff(&library_consts(), &want);
    assert!(d.is_empty(), "constant drift:\n{d}");
}

fn run_example(args: &[&str]) -> String {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["run", "--quiet", "--example", "abi_layout", "--"])
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run the abi_layout example");
    assert!(out.status.success(), "example failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[cfg(not(miri))] // runs `cargo run --example`: no processes under Miri
#[test]
fn example_output_matches_abi91() {
    let want = lines(include_str!("data/abi91-layout.txt"));
    let d = diff(&lines(&run_example(&[])), &want);
    assert!(d.is_empty(), "example layout drift:\n{d}");
    let want = lines(include_str!("data/abi91-consts.txt"));
    let d = diff(&lines(&run_example(&["--consts"])), &want);
    assert!(d.is_empty(), "example constant drift:\n{d}");
}
