#!/usr/bin/env bash
# Builds ghost-shm's kernel side (this crate, ghost-shm itself and its no_std dependencies) into ONE relocatable
# object for a Linux kernel module, and checks it.
#
#   bash ffi/kernel/build-object.sh [OUT.o]     (default: target/kmod/ghost_shm_kernel.o)
#   bash ffi/kernel/build-object.sh --header    regenerate include/ghost_shm_kernel.h with cbindgen
#   bash ffi/kernel/build-object.sh --check-header   fail if the committed header differs from cbindgen's
#
# How (see ../shared/kernel-module-qemu.md for why each flag is needed):
#  * target x86_64-unknown-none (soft-float, no SSE, no red zone), code model kernel, static relocations,
#    -Z plt=yes (no GOT relocations: the module loader rejects them), return thunks and retpolines as the
#    Debian 6.1 kernel is built (RETPOLINE, RETHUNK); RUSTC_BOOTSTRAP=1 enables these -Z flags on stable rustc;
#    codegen-units=1, no LTO (LTO brings core's bitcode back with GOT calls).
#  * the staticlib archive holds one member per crate; core/compiler_builtins/alloc are precompiled (PIC, no
#    thunks) and must not be linked: only the members built here are taken, linked with `ld -r --gc-sections`
#    keeping the `ghk_*` entry points as roots (so unreferenced code, e.g. Display impls, is dropped).
#  * the check: every undefined symbol of the result must be on the allow-list below. A reachable panic, a
#    formatting call or anything else from core shows up as an undefined `_R…core…` symbol and fails the build.
#    This subsumes panic-check/ for the code that goes into the module (it checks exactly that object).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
header="$root/include/ghost_shm_kernel.h"
# shellcheck source=../header.sh
. "$here/../header.sh"
ffi_header_mode build-object "$here" ghost-shm-kernel-ffi "$header" ffi/kernel/build-object.sh "$@"

out="${1:-$root/target/kmod/ghost_shm_kernel.o}"
target=x86_64-unknown-none
export CARGO_TARGET_DIR="${KMOD_TARGET_DIR:-$root/target/kmod}"
export RUSTC_BOOTSTRAP=1
export RUSTFLAGS="-C relocation-model=static -C code-model=kernel -Z plt=yes -Z function-return=thunk-extern \
 -Z retpoline-external-thunk -C unsafe-allow-abi-mismatch=retpoline-external-thunk,retpoline"
export CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1 CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_PANIC=abort
export CARGO_PROFILE_RELEASE_DEBUG=0 CARGO_PROFILE_RELEASE_OVERFLOW_CHECKS=false

(cd "$root" && cargo build --quiet --release --target "$target" -p ghost-shm-kernel-ffi)
lib="$CARGO_TARGET_DIR/$target/release/libghost_shm_kernel.a"

work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
(cd "$work" && ar x "$lib")
members=()
for m in "$work"/*.o; do
  case "$(basename "$m")" in
    core-*|compiler_builtins-*|alloc-*|rustc_std_workspace_core-*) ;;  # precompiled: never linked
    *.rcgu.o) members+=("$m") ;;   # a crate compiled here (one codegen unit each)
    *) ;;                          # compiler-rt's C objects (part of compiler_builtins)
  esac
done
roots=()
for s in $(nm --defined-only "${members[@]}" 2>/dev/null | awk '$2=="T" && $3 ~ /^ghk_/ {print $3}' | sort -u); do
  roots+=(-u "$s")
done
[ "${#roots[@]}" -gt 0 ] || { echo "build-object: FAILED: no ghk_* entry point in $lib" >&2; exit 1; }
mkdir -p "$(dirname "$out")"
ld -r --gc-sections "${roots[@]}" -o "$out.tmp" "${members[@]}"
# ld -r leaves the symbols only removed sections referenced in the table as undefined (modpost would reject
# them): drop the undefined symbols no relocation refers to (local symbols stay, objtool needs them).
readelf -rW "$out.tmp" | awk 'NF >= 5 && $1 ~ /^[0-9a-f]+$/ {print $5}' | sed 's/@.*//' | sort -u >"$work/referenced"
nm -u "$out.tmp" | awk '{print $2}' | sort -u >"$work/undefined"
comm -23 "$work/undefined" "$work/referenced" >"$work/unreferenced"
objcopy --strip-symbols="$work/unreferenced" "$out.tmp" "$out"
rm -f "$out.tmp"

# ---- the allow-list check ------------------------------------------------------------------------------------
allowed='^(memcpy|memset|memmove|memcmp|__x86_return_thunk|__x86_indirect_thunk_r[a-z0-9]+|ghk_hook_[a-z_]+)$'
bad="$(nm -u "$out" | awk '{print $2}' | grep -Ev "$allowed" || true)"
if [ -n "$bad" ]; then
  echo "build-object: FAILED: $out references symbols outside the allow-list (core code cannot be linked into" >&2
  echo "the kernel; a core::panicking symbol means a panic is reachable):" >&2
  echo "$bad" | sed 's/^/  /' >&2
  exit 1
fi
# No GOT-relative relocation may remain (the module loader rejects them).
if readelf -rW "$out" | grep -q 'GOTPC'; then
  echo "build-object: FAILED: GOT relocations in $out" >&2
  exit 1
fi
n=$(nm --defined-only "$out" | awk '$2=="T" && $3 ~ /^ghk_/' | wc -l)
echo "build-object: OK: $out ($n ghk_* entry points; undefined: $(nm -u "$out" | awk '{print $2}' | tr '\n' ' '))"
