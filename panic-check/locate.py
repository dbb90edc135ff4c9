#!/usr/bin/env python3
"""Lists the panic sites of a panic-check binary linked with unresolved symbols allowed.

Input: the output of `objdump -d -l --inlines -C --no-show-raw-insn BINARY`. A function "can panic" if it is the
panic handler (`rust_begin_unwind`) or calls a function that can panic. Every call from code outside `core`
(ghost_shm, the harness, inlined into whatever symbol) to a `core` function that can panic is printed with its source location and inlining chain: the innermost line is where
the panic is, the `inlined by` lines say from where it was reached.
"""
import collections
import re
import sys

FUNC = re.compile(r"^[0-9a-f]+ <(.*)>:$")
CALL = re.compile(r"\s(?:call|jmp)q?\s+[0-9a-f]+ <(.*?)(?:[+-]0x[0-9a-f]+)?>")
LOC = re.compile(r"^(inlined by )?\S+:\d+")


def core(name):
    return name.startswith(("core::", "__rustc::", "<core::", "compiler_builtins::"))


def main(path):
    calls = collections.defaultdict(set)
    sites = []
    func, loc = None, []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            m = FUNC.match(line)
            if m:
                func, loc = m.group(1), []
                continue
            if LOC.match(line):
                loc = [line] if not line.startswith("inlined by") else loc + [line]
                continue
            m = CALL.search(line)
            if m and func:
                callee = m.group(1)
                calls[func].add(callee)
                sites.append((func, callee, tuple(loc)))
    panics = {f for f in calls if "rust_begin_unwind" in f}
    panics |= {c for cs in calls.values() for c in cs if "rust_begin_unwind" in c}
    changed = True
    while changed:
        changed = False
        for f, cs in calls.items():
            if f not in panics and cs & panics:
                panics.add(f)
                changed = True
    seen = set()
    n = 0
    for func, callee, loc in sites:
        if callee not in panics or not core(callee) or core(func):
            continue
        # objdump repeats parts of the chain; keep each line once, innermost first.
        chain = list(dict.fromkeys(loc))
        key = (callee, tuple(chain))
        if key in seen:
            continue
        seen.add(key)
        n += 1
        print(f"panic site {n}: call to {callee}")
        for line in chain:
            print(f"    {line}")
    if n == 0:
        print("no panic call site found outside core (inspect the disassembly by hand)")


if __name__ == "__main__":
    main(sys.argv[1])
