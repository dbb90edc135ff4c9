#!/usr/bin/env bash
# The long fuzz campaign of VERIFICATION.md: every target until it has run RUNS inputs (default 10^7) or
# MAX_SECONDS (default 3 h) passed, JOBS targets at a time (default 2), slowest first, inputs of at most
# MAX_LEN bytes (default 1024: up to a few hundred kernel/agent steps for the adversary schedules). Each
# target works on a copy of fuzz/corpus/<target> under WORK, writes crash artifacts to WORK/artifacts/<target>/,
# and prints one summary line per target: executions, seconds, exec/s, exit status. Needs nightly and
# cargo-fuzz. SANITIZER (default address) is passed to `cargo fuzz build -s`; TRACE_COMPARES=0 builds without
# comparison tracing (`--no-trace-compares`: faster, coarser guidance); each variant builds into its own
# target directory.
#
#   scripts/fuzz-campaign.sh                 # all targets
#   scripts/fuzz-campaign.sh decode cpulist  # some
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
RUNS=${RUNS:-10000000}
MAX_SECONDS=${MAX_SECONDS:-10800}
JOBS=${JOBS:-2}
MAX_LEN=${MAX_LEN:-1024}
WORK=${WORK:-/tmp/ghost-shm-fuzz-campaign}
SANITIZER=${SANITIZER:-address}
TRACE_COMPARES=${TRACE_COMPARES:-1}
variant=""
[ "$SANITIZER" = address ] || variant="-$SANITIZER"
build_flags=(-s "$SANITIZER")
if [ "$TRACE_COMPARES" = 0 ]; then
  variant="$variant-notc"
  build_flags+=(--no-trace-compares)
fi
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/tmp/target-verify-fuzz$variant}
cargo +nightly fuzz build "${build_flags[@]}" >/dev/null
BIN="$CARGO_TARGET_DIR/x86_64-unknown-linux-gnu/release"
# Slowest first (measured rates), so the long ones start while both workers are free.
ALL="adversary_queue adversary_status adversary_txn hexmask queue_model txn_group status_alloc queue_consumer
  txn_validate cpulist queue_producer status_reader decode"
TARGETS=${*:-$ALL}
mkdir -p "$WORK"
one() {
  local t=$1
  mkdir -p "$WORK/corpus/$t" "$WORK/artifacts/$t"
  cp -rn "corpus/$t/." "$WORK/corpus/$t/" 2>/dev/null || true
  local start end rc=0
  start=$(date +%s)
  "$BIN/$t" "$WORK/corpus/$t" -runs="$RUNS" -max_total_time="$MAX_SECONDS" -rss_limit_mb=4096 -max_len="$MAX_LEN" \
    -artifact_prefix="$WORK/artifacts/$t/" -print_final_stats=1 >"$WORK/$t.log" 2>&1 || rc=$?
  end=$(date +%s)
  local execs
  execs=$(grep -E '^stat::number_of_executed_units' "$WORK/$t.log" | awk '{print $2}')
  echo "$t sanitizer=$SANITIZER trace_compares=$TRACE_COMPARES execs=${execs:-?} seconds=$((end - start)) exec/s=$(( ${execs:-0} / (end - start > 0 ? end - start : 1) )) rc=$rc crashes=$(ls "$WORK/artifacts/$t" | wc -l)"
}
export -f one
export RUNS MAX_SECONDS MAX_LEN WORK BIN SANITIZER TRACE_COMPARES
printf '%s\n' $TARGETS | xargs -P "$JOBS" -I{} bash -c 'one {}'
