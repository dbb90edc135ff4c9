#!/usr/bin/env bash
# Ordering mutants: is every atomic ordering of the protocols earned?
#
# Enumerates every ordering site of src/queue, src/status and src/txn from the source (an `Ordering::X` /
# bare `X` argument or constant, X in Release/Acquire/AcqRel/SeqCst, and every fence, including `mem.fence(..)`
# calls through the SharedMem backend), weakens each one at a time in a scratch copy of the tree, runs the
# loom models on it and prints killed/survived per mutant:
#
#   access  Release → Relaxed, Acquire → Relaxed, AcqRel → Acquire and → Release
#   fence   SeqCst → AcqRel and removed, AcqRel → Acquire, → Release and removed, Acquire/Release → removed
#
# A mutant is KILLED when a loom model fails on it (or the run times out: a lost wake-up spins forever),
# SURVIVED when all pass. A survivor is EXPLAINED when the allow-list below names it; every allow-listed site
# carries a comment with the argument (the script checks that a comment containing "mutant" sits within the
# 12 lines above the site). The worktree itself is never modified: the mutants live in a scratch copy
# (ORDMUT_DIR, default target/ordering-mutants) with its own target directory, so runs build incrementally
# (one mutant: one rebuild of this crate, ~10–20 s, plus the models).
#
#   scripts/ordering-mutants.sh                     # every mutant; exit 1 on an unexplained survivor
#   scripts/ordering-mutants.sh --list              # the sites and mutants, nothing run
#   scripts/ordering-mutants.sh --file txn/kernel   # mutants of files whose path contains txn/kernel
#   scripts/ordering-mutants.sh --site 'queue/producer.rs:drop:Release#1'   # one site (repeatable; a
#                                                   # mutant id "SITE=>NEW" selects one mutant)
#   scripts/ordering-mutants.sh --time-limit 1200   # start no mutant after 1200 s (the rest: NOT RUN)
#   scripts/ordering-mutants.sh --tests 'loom*'     # run these test targets for every mutant (default: the
#                                                   # tests/loom*.rs files that use the mutated module, e.g.
#                                                   # ghost_shm::queue for src/queue; loom_status uses both
#                                                   # status and queue)
#
# Site ids are FILE:SCOPE:ORDERING#N (SCOPE: the enclosing fn or const, N: the N-th such ordering in it), so
# they survive unrelated edits. Environment: LOOM_MAX_PREEMPTIONS (default 2), MUTANT_TIMEOUT (seconds per
# mutant run, default 600), ORDMUT_DIR.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
command -v python3 >/dev/null 2>&1 || { echo "ordering-mutants: needs python3 (apt-get install python3)" >&2; exit 2; }
exec python3 - "$repo" "$@" <<'PY'
import os, re, subprocess, sys, time, shutil

# ---- survivors whose survival is explained by a comment at the site ------------------------------------------
# mutant id (or site id: every mutant of it) -> where the argument is. Keep this list short: an ordering whose
# survival has an airtight argument is better weakened in the source than allow-listed.
ALLOW = {
    # The state load of AgentTxn::open orders the kernel's snapshot loads of the previous transaction before
    # the stores of the next one: load buffering, which loom does not model; see the comment there.
    "txn/agent.rs:open:Acquire#2=>Relaxed": "load buffering, not modelled by loom (comment in AgentTxn::open)",
}

repo = sys.argv[1]
args = sys.argv[2:]
DIRS = ["src/queue", "src/status", "src/txn"]
ORDS = ("Release", "Acquire", "AcqRel", "SeqCst")

def usage(msg=None):
    if msg:
        print(f"ordering-mutants: {msg}", file=sys.stderr)
    print("usage: ordering-mutants.sh [--list] [--file SUBSTR]... [--site ID]... [--time-limit SECONDS] "
          "[--tests GLOB]", file=sys.stderr if msg else sys.stdout)
    sys.exit(2 if msg else 0)

opt_list, files_sel, sites_sel, time_limit, tests = False, [], [], None, None
i = 0
while i < len(args):
    a = args[i]
    def val():
        global i
        if i + 1 >= len(args):
            usage(f"{a} needs a value")
        i += 1
        return args[i]
    if a == "--list":
        opt_list = True
    elif a == "--file":
        files_sel.append(val())
    elif a == "--site":
        sites_sel.append(val())
    elif a == "--time-limit":
        v = val()
        if not v.isdigit():
            usage(f"--time-limit wants whole seconds, got {v!r}")
        time_limit = int(v)
    elif a == "--tests":
        tests = val()
    elif a in ("-h", "--help"):
        usage()
    else:
        usage(f"unknown argument {a!r}")
    i += 1

# ---- enumeration --------------------------------------------------------------------------------------------
FENCE = re.compile(r"(?:[A-Za-z_][\w.]*\.|(?:[A-Za-z_]\w*::)*)?\bfence\(\s*(?:Ordering::)?(\w+)\s*\)")
SCOPE_FN = re.compile(r"\bfn\s+(\w+)")
SCOPE_CONST = re.compile(r"^\s*(?:pub(?:\([^)]*\))?\s+)?const\s+(\w+)\s*:")

def code_part(line):
    """The line without its `//` comment (string literals with // do not occur at ordering sites)."""
    j = line.find("//")
    return line if j < 0 else line[:j]

def bare_imports(text):
    """Ordering names a file imports bare (`use ...Ordering::{self, Release}`)."""
    names = set()
    for m in re.finditer(r"use\s+[\w:]*Ordering::\{([^}]*)\}", text):
        names |= {n.strip() for n in m.group(1).split(",")}
    for m in re.finditer(r"use\s+[\w:]*Ordering::(\w+)\s*;", text):
        names.add(m.group(1))
    return names & set(ORDS)

def sites_of(rel):
    text = open(os.path.join(repo, rel)).read()
    lines = text.split("\n")
    bare = bare_imports(text)
    tok = re.compile(r"(?<![\w:])(Ordering::)?(" + "|".join(ORDS) + r")\b")
    out, counts, scope = [], {}, "<top>"
    for n, line in enumerate(lines):
        code = code_part(line)
        m = SCOPE_FN.search(code)
        if m:
            scope = m.group(1)
        m = SCOPE_CONST.search(code)
        if m:
            scope = m.group(1)
        if re.match(r"\s*(pub(\(\w+\))?\s+)?use\b", code) or code.lstrip().startswith("#"):
            continue
        fences = [(f.start(), f.end(), f.group(1)) for f in FENCE.finditer(code)]
        for t in tok.finditer(code):
            if t.group(1) is None and t.group(2) not in bare:
                continue
            order = t.group(2)
            fence = next((f for f in fences if f[0] <= t.start() < f[1]), None)
            key = (scope, order)
            counts[key] = counts.get(key, 0) + 1
            sid = f"{rel[4:]}:{scope}:{order}#{counts[key]}"
            if fence:
                muts = {"SeqCst": ["AcqRel", "removed"], "AcqRel": ["Acquire", "Release", "removed"],
                        "Acquire": ["removed"], "Release": ["removed"]}[order]
                kind = "fence"
            elif order == "SeqCst":
                print(f"ordering-mutants: {sid} ({rel}:{n+1}): SeqCst access, not mutated (make it an explicit "
                      "fence or a Release/Acquire access)", file=sys.stderr)
                continue
            else:
                muts = {"Release": ["Relaxed"], "Acquire": ["Relaxed"], "AcqRel": ["Acquire", "Release"]}[order]
                kind = "access"
            for new in muts:
                out.append(dict(id=f"{sid}=>{new}", site=sid, file=rel, line=n, col=t.start(), end=t.end(),
                                prefixed=t.group(1) is not None, order=order, new=new, kind=kind, fence=fence))
    return out

def rs_files():
    for d in DIRS:
        for root, _, names in os.walk(os.path.join(repo, d)):
            for name in sorted(names):
                if name.endswith(".rs") and name != "tests.rs":
                    yield os.path.relpath(os.path.join(root, name), repo)

mutants = [m for f in sorted(rs_files()) for m in sites_of(f)]
sel = mutants
if files_sel:
    sel = [m for m in sel if any(s in m["file"] for s in files_sel)]
if sites_sel:
    sel = [m for m in sel if m["id"] in sites_sel or m["site"] in sites_sel]
    unknown = [s for s in sites_sel if not any(s in (m["id"], m["site"]) for m in mutants)]
    if unknown:
        usage(f"no such site or mutant: {', '.join(unknown)} (see --list)")

if not sel:
    usage(f"no mutant matches --file {' '.join(files_sel)}")

def allowed(m):
    return ALLOW.get(m["id"]) or ALLOW.get(m["site"])

def comment_near(m):
    lines = open(os.path.join(repo, m["file"])).read().split("\n")
    return any("//" in l and "mutant" in l[l.find("//"):].lower() for l in lines[max(0, m["line"] - 12):m["line"] + 1])

if opt_list:
    nsites = len({m["site"] for m in sel})
    for m in sel:
        note = f"   [allow-listed: {allowed(m)}]" if allowed(m) else ""
        print(f"{m['id']:<60} {m['file']}:{m['line']+1}{note}")
    print(f"{len(sel)} mutants at {nsites} sites")
    sys.exit(0)

# ---- the scratch tree ---------------------------------------------------------------------------------------
work = os.environ.get("ORDMUT_DIR") or os.path.join(repo, "target", "ordering-mutants")
tree, target = os.path.join(work, "tree"), os.path.join(work, "target")
os.makedirs(work, exist_ok=True)
files = subprocess.run(["git", "-C", repo, "ls-files", "-co", "--exclude-standard", "-z"], check=True,
                       capture_output=True).stdout.decode().split("\0")
if os.path.isdir(tree):
    shutil.rmtree(tree)
for f in filter(None, files):
    src, dst = os.path.join(repo, f), os.path.join(tree, f)
    if os.path.isfile(src):
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        # A fresh mtime (copyfile, not copy2): cargo must never take the previous mutant's build for this one.
        shutil.copyfile(src, dst)
        shutil.copymode(src, dst)

env = dict(os.environ, RUSTFLAGS="--cfg loom", CARGO_TARGET_DIR=target, CARGO_TERM_COLOR="never",
           LOOM_MAX_PREEMPTIONS=os.environ.get("LOOM_MAX_PREEMPTIONS", "2"))
env.pop("LOOM_LOG", None)
per_mutant = int(os.environ.get("MUTANT_TIMEOUT", "600"))

def loom_targets():
    """module name -> the tests/loom*.rs targets that use it (`ghost_shm::module`)."""
    out = {}
    for name in sorted(os.listdir(os.path.join(repo, "tests"))):
        if name.startswith("loom") and name.endswith(".rs"):
            text = open(os.path.join(repo, "tests", name)).read()
            for mod in ("queue", "status", "txn"):
                if re.search(r"ghost_shm::(\{[^}]*\b)?" + mod + r"\b", text):
                    out.setdefault(mod, []).append(name[:-3])
    return out

TARGETS = loom_targets()

def targets_for(m):
    if tests:
        return [tests]
    return TARGETS.get(m["file"].split("/")[1], []) or ["loom*"]

def run_models(targets=("loom*",)):
    """(status, detail): status in pass / fail / build-error / timeout."""
    cmd = ["cargo", "test", "--release"] + [a for t in targets for a in ("--test", t)] + ["--", "--test-threads=1"]
    try:
        p = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True, timeout=per_mutant)
    except subprocess.TimeoutExpired:
        return "timeout", f"over {per_mutant}s"
    out = p.stdout + p.stderr
    if p.returncode == 0:
        return "pass", ""
    if "error: could not compile" in out or re.search(r"^error(\[E\d+\])?:", out, re.M) and "test result" not in out:
        return "build-error", next((l for l in out.splitlines() if l.startswith("error")), "")
    failed = re.findall(r"^    (\S+)$", out.split("failures:")[-1], re.M) if "failures:" in out else []
    return "fail", ",".join(failed) or "a model failed"

def mutate(m):
    path = os.path.join(tree, m["file"])
    lines = open(os.path.join(repo, m["file"])).read().split("\n")
    line = lines[m["line"]]
    if m["new"] == "removed":
        s, e, _ = m["fence"]
        line = line[:s] + "()" + line[e:]
    else:
        # A bare name (`use ...Ordering::{Release}`) becomes a full path: the file may not import the new one.
        prefix = "Ordering::" if m["prefixed"] else "core::sync::atomic::Ordering::"
        line = line[:m["col"]] + prefix + m["new"] + line[m["end"]:]
    lines[m["line"]] = line
    open(path, "w").write("\n".join(lines))

def restore(m):
    # copyfile: a fresh mtime, so that the next build does not reuse this mutant's artifacts.
    shutil.copyfile(os.path.join(repo, m["file"]), os.path.join(tree, m["file"]))

t0 = time.time()
print(f"ordering-mutants: {len(sel)} mutants at {len({m['site'] for m in sel})} sites; scratch tree {tree}",
      flush=True)
status, detail = run_models([tests or "loom*"])
if status != "pass":
    print(f"ordering-mutants: the unmutated models do not pass ({status}: {detail}); nothing to measure",
          file=sys.stderr)
    sys.exit(1)
print(f"baseline: the models pass ({time.time() - t0:.0f}s)", flush=True)

results = []
for m in sel:
    if time_limit is not None and time.time() - t0 > time_limit:
        results.append((m, "not-run", "time limit"))
        continue
    t1 = time.time()
    mutate(m)
    try:
        status, detail = run_models(targets_for(m))
    finally:
        restore(m)
    verdict = {"pass": "SURVIVED", "fail": "KILLED", "timeout": "KILLED", "build-error": "BUILD-ERROR"}[status]
    if verdict == "SURVIVED" and allowed(m):
        verdict = "EXPLAINED"
    if status == "timeout":
        detail = "timeout " + detail
    if verdict == "EXPLAINED":
        detail = allowed(m) + ("" if comment_near(m) else "  !! no 'mutant' comment at the site")
    results.append((m, verdict, detail))
    print(f"{verdict:<11} {m['id']:<58} {time.time() - t1:5.0f}s  {detail}", flush=True)

count = {}
for _, v, _ in results:
    count[v] = count.get(v, 0) + 1
print()
print("summary: " + ", ".join(f"{count.get(k, 0)} {k.lower()}" for k in
      ("KILLED", "EXPLAINED", "SURVIVED", "BUILD-ERROR", "not-run")) +
      f" of {len(results)} mutants at {len({m['site'] for m in sel})} sites; {time.time() - t0:.0f}s")
bad = [(m, v) for m, v, d in results if v in ("SURVIVED", "BUILD-ERROR") or (v == "EXPLAINED" and "!!" in d)]
stale = [(m, v) for m, v, _ in results if allowed(m) and v == "KILLED"]
for m, v in bad:
    print(f"UNEXPLAINED {m['id']} ({m['file']}:{m['line'] + 1}): {v.lower()}")
for m, _ in stale:
    print(f"note: allow-listed {m['id']} is now killed: drop it from the allow-list")
known = {m["id"] for m in mutants} | {m["site"] for m in mutants}
for k in ALLOW:
    if k not in known:
        print(f"note: allow-list entry {k} names no site any more")
sys.exit(1 if bad else 0)
PY
