#!/usr/bin/env bash
# The C ABI of ghost-shm's agent side (ffi/agent) and the C FIFO agent that links it (kmod/agent-c/fifo.c).
#
#   bash ffi/agent/build.sh --header          regenerate include/ghost_shm_agent.h with cbindgen
#   bash ffi/agent/build.sh --check-header    fail if the committed header differs from cbindgen's
#   bash ffi/agent/build.sh [OUT]             build the static library (x86_64-unknown-linux-gnu) and the C agent,
#                                             statically linked with gcc (default OUT: target/c-agent/ghost-shm-c-fifo)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
header="$root/include/ghost_shm_agent.h"
# shellcheck source=../header.sh
. "$here/../header.sh"
ffi_header_mode ffi/agent "$here" ghost-shm-agent-ffi "$header" ffi/agent/build.sh "$@"

out="${1:-$root/target/c-agent/ghost-shm-c-fifo}"
# glibc, statically linked (the qemu guest has no shared libraries). Not musl-gcc: Debian's libgcc_eh, which a
# static musl-gcc link pulls in through crtbeginT.o, is built against glibc and needs its _dl_find_object.
target=x86_64-unknown-linux-gnu
(cd "$root" && cargo build --quiet --release --target "$target" -p ghost-shm-agent-ffi)
lib="$root/target/$target/release/libghost_shm_agent.a"
mkdir -p "$(dirname "$out")"
gcc -static -O2 -std=c11 -Wall -Wextra -Werror -I "$root/include" "$root/kmod/agent-c/fifo.c" "$lib" \
  -lpthread -ldl -lm -s -o "$out" \
  2> >(grep -v -e 'requires at runtime the shared libraries' -e 'in function .std::' >&2)
# (Those two linker warnings concern std's getaddrinfo/getpwuid_r, which the agent never calls.)
echo "ffi/agent: OK: $out ($(stat -c %s "$out") bytes, static)"
