//! Test target `loom_txn`: the loom models of `tests/loom_txn.rs` (see there), which exist only under
//! `--cfg loom`. Without it this target holds one ignored test whose reason says how to run them, instead of
//! reporting "0 passed" without a word.
#[cfg(not(loom))]
#[test]
#[ignore = "loom model, needs --cfg loom: RUSTFLAGS=\"--cfg loom\" LOOM_MAX_PREEMPTIONS=2 cargo test --release --test loom_txn"]
fn loom_models_need_cfg_loom() {}

#[cfg(loom)]
#[path = "../loom_txn.rs"]
mod model;
