#!/usr/bin/env python3
"""Reads criterion's estimates (target/criterion/<group>/<bench>/new/estimates.json) and prints each bench's
mean time and its ratio to a reference bench of the same run, as used in BENCHMARKS.md.

usage: scripts/bench-ratios.py [CRITERION_DIR]
"""
import json, os, sys

root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.environ.get("CARGO_TARGET_DIR", "target"), "criterion")

def mean(group, bench):
    p = os.path.join(root, group, bench, "new", "estimates.json")
    try:
        with open(p) as f:
            e = json.load(f)
        return e["mean"]["point_estimate"], e["mean"]["confidence_interval"]
    except OSError:
        return None, None

# (group, bench, reference bench, what the ratio means)
RATIOS = [
    ("spsc_same_thread", "ghost_one", "heapless", "time/msg, one thread, vs heapless::spsc (goal: ≤ 1.0)"),
    ("spsc_same_thread", "ghost_batch", "heapless", "time/msg, one thread, vs heapless::spsc (goal: ≤ 0.5)"),
    ("spsc_same_thread", "ghost_one", "rtrb", "time/msg, one thread, vs rtrb"),
    ("spsc_same_thread", "ghost_one", "crossbeam_array", "time/msg, one thread, vs crossbeam ArrayQueue"),
    ("spsc_same_thread", "ghost_batch", "rtrb", "time/msg, one thread, vs rtrb"),
    ("spsc", "ghost_one", "heapless", "time/msg vs heapless::spsc (goal: ≤ 1.0, i.e. ≥ 1.0× throughput)"),
    ("spsc", "ghost_batch16", "heapless", "time/msg vs heapless::spsc (goal: ≤ 0.5, i.e. ≥ 2× throughput)"),
    ("spsc", "rtrb", "heapless", "time/msg vs heapless::spsc"),
    ("spsc", "crossbeam_array", "heapless", "time/msg vs heapless::spsc"),
    ("spsc", "ghost_one", "rtrb", "time/msg vs rtrb"),
    ("spsc", "ghost_one", "crossbeam_array", "time/msg vs crossbeam ArrayQueue"),
    ("pingpong", "ghost", "raw_cacheline", "one-way latency vs raw cache-line ping-pong (goal: ≤ 1.3)"),
    ("wake", "ghost_sleeping", "futex_pingpong", "futex-woken delivery vs bare futex ping-pong"),
    ("wake", "ghost_spinning", "raw_cacheline", "spinning delivery vs raw cache-line ping-pong"),
    ("txn", "commit_round_trip", "cache_line_round_trip", "commit round trip vs cache-line round trip (goal: ≤ 3)"),
    ("status", "snapshot", "plain_copy", "snapshot vs plain 32-byte copy"),
]

for group in sorted(os.listdir(root)) if os.path.isdir(root) else []:
    gdir = os.path.join(root, group)
    if not os.path.isdir(gdir) or group == "report":
        continue
    for bench in sorted(os.listdir(gdir)):
        m, ci = mean(group, bench)
        if m is not None:
            print(f"{group}/{bench}: mean {m:.1f} ns  (95% CI {ci['lower_bound']:.1f} .. {ci['upper_bound']:.1f})")
print()
for group, a, b, what in RATIOS:
    ma, _ = mean(group, a)
    mb, _ = mean(group, b)
    if ma is not None and mb is not None:
        print(f"{group}/{a} / {group}/{b} = {ma / mb:.2f}   {what}")
