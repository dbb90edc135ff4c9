#!/usr/bin/env bash
# Panic-freedom link check of ghost-shm's kernel side (see src/main.rs).
#
# Builds the bare-metal binary (x86_64-unknown-none, release: panic=abort, fat LTO, opt-level 3) whose panic
# handler calls a function defined nowhere. Exit 0: it links, and every `gsc_*` entry point is in it, so no panic
# is reachable from them. Exit 1: a panic is reachable (the panic sites are listed when objdump and python3 are
# available) or the build failed.
#
# Needs: `rustup target add x86_64-unknown-none` (stable). Environment:
#   CARGO_TARGET_DIR       build directory (default panic-check/target)
#   PANIC_CHECK_PROFILE    cargo profile (default release; release-overflow also enables integer-overflow checks,
#                          as the Linux kernel builds Rust: stricter than CI, see VERIFICATION.md)
set -euo pipefail
cd "$(dirname "$0")"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
profile="${PANIC_CHECK_PROFILE:-release}"
target=x86_64-unknown-none
bin="$CARGO_TARGET_DIR/$target/$profile/ghost-shm-panic-check"
log="$(mktemp)"
trap 'rm -f "$log" "$log.dis"' EXIT

if command -v rustup >/dev/null 2>&1 && ! rustup target list --installed | grep -qx "$target"; then
  echo "panic-check: target $target is missing: rustup target add $target" >&2
  exit 1
fi

echo "panic-check: cargo build --profile $profile (target $target)"
if ! cargo build --profile "$profile" 2>"$log"; then
  if grep -q "undefined symbol: ghost_shm_panic_check_reachable_panic" "$log"; then
    echo "panic-check: FAILED: a panic is reachable from the kernel-side entry points" >&2
    if command -v objdump >/dev/null 2>&1 && command -v python3 >/dev/null 2>&1; then
      # Link again with the symbol allowed to stay undefined, then list every call into core's panic machinery.
      cargo rustc --profile "$profile" -- -C link-arg=--warn-unresolved-symbols >/dev/null 2>&1 || true
      if [ -f "$bin" ]; then
        objdump -d -l --inlines -C --no-show-raw-insn "$bin" >"$log.dis"
        python3 locate.py "$log.dis" >&2
      fi
    else
      echo "panic-check: install objdump and python3 to list the panic sites" >&2
    fi
  else
    cat "$log" >&2
    echo "panic-check: FAILED: build error" >&2
  fi
  exit 1
fi

# The check would pass vacuously if the entry points were dead code: every one must be in the binary.
if command -v nm >/dev/null 2>&1; then
  missing=0
  for f in $(grep -o 'extern "C" fn gsc_[a-z_0-9]*' src/main.rs | sed 's/.* fn //'); do
    if ! nm "$bin" | grep -q " T $f\$"; then
      echo "panic-check: entry point $f is missing from the binary" >&2
      missing=1
    fi
  done
  [ "$missing" = 0 ] || exit 1
  n=$(nm "$bin" | grep -c ' T gsc_')
  echo "panic-check: OK: linked without a panic handler reference; $n entry points present"
else
  echo "panic-check: OK: linked without a panic handler reference (nm missing: entry points not verified)"
fi
