#!/usr/bin/env bash
# Builds kmod/ghost_shm.ko against installed kernel headers: the Rust object (ffi/kernel/build-object.sh, which
# also checks its undefined symbols), then kbuild in a scratch copy of kmod/ (the source tree stays clean).
#
#   bash kmod/build.sh [KERNEL_BUILD_DIR]   (default: /lib/modules/$(uname -r)/build, or the only one installed)
# Output: target/kmod/ghost_shm.ko
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
kdir="${1:-}"
if [ -z "$kdir" ]; then
  if [ -d "/lib/modules/$(uname -r)/build" ]; then
    kdir="/lib/modules/$(uname -r)/build"
  else
    kdir="$(ls -d /lib/modules/*/build 2>/dev/null | head -n 1 || true)"
  fi
fi
[ -n "$kdir" ] && [ -d "$kdir" ] || { echo "kmod/build.sh: no kernel headers (apt-get install linux-headers-amd64)" >&2; exit 1; }

bash "$root/ffi/kernel/build-object.sh" "$root/target/kmod/ghost_shm_kernel.o"
b="$root/target/kmod/build"
rm -rf "$b"; mkdir -p "$b/include"
cp "$root/kmod/Kbuild" "$root/kmod/ghost_shm_kmod.c" "$b/"
cp "$root/include/ghost_shm_kernel.h" "$b/include/"
cp "$root/target/kmod/ghost_shm_kernel.o" "$b/ghost_shm_kernel_rs.o_shipped"
touch "$b/.ghost_shm_kernel_rs.o.cmd"   # modpost (6.1) wants a .cmd file for every object, shipped ones too
# Optional: ORC unwind data and return/retpoline site tables for the Rust code (kbuild skips shipped objects).
objtool="$kdir/tools/objtool/objtool"
if [ -x "$objtool" ]; then
  "$objtool" --hacks=jump_label --hacks=noinstr --orc --retpoline --rethunk --sls --static-call --uaccess --link \
    --module "$b/ghost_shm_kernel_rs.o_shipped"
fi
make -s -C "$kdir" M="$b" modules
cp "$b/ghost_shm.ko" "$root/target/kmod/ghost_shm.ko"
echo "kmod/build.sh: OK: target/kmod/ghost_shm.ko ($(stat -c %s "$root/target/kmod/ghost_shm.ko") bytes, kernel $(basename "$(dirname "$kdir")"))"
