#!/usr/bin/env bash
# Multi-producer scaling of the queue: 1, 2, 4, 8, 15 producer threads into one queue, one consumer thread.
# Meant for a machine with at least 16 cores (one consumer + up to 15 producers); on smaller machines counts
# above the core count are skipped. Prints criterion's results and the machine description for BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== machine"
nproc
lscpu 2>/dev/null | grep -E 'Model name|Socket|Core|Thread|NUMA node\(s\)|L3' || true
echo "== mpsc scaling (criterion, time per message; throughput = 1 / time)"
GHOST_SHM_MAX_PRODUCERS="${GHOST_SHM_MAX_PRODUCERS:-15}" cargo bench -p ghost-shm-benches --bench queue -- mpsc 2>&1 | grep -E '^mpsc|time:|thrpt:'
