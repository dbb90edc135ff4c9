#!/usr/bin/env bash
# The kernel side inside a real Linux kernel, tested under qemu (TCG).
#
# On a Debian bookworm machine (root): installs what is missing with apt (qemu-system-x86, linux-image-amd64,
# linux-headers-amd64, busybox-static; the kernel version is derived from what apt installed), builds the
# Rust object + kmod/ghost_shm.ko and the static agent, packs a busybox initramfs, boots it with
# `qemu-system-x86_64 -accel tcg -smp 2`, and inside the VM:
#   insmod -> agent `test` (placement policy + workload; it checks seqnums, barriers, produced == consumed +
#   overflow, placements seen by sched_getcpu(), stale transactions refused, mmap rules) -> agent `fifo` (the
#   examples' centralized FIFO policy on the framework, through uapi::UapiBackend: messages without seqnum
#   violations, every thread dispatched and placed on a worker CPU, every task gone at the end) -> the C FIFO
#   agent (kmod/agent-c/fifo.c on ffi/agent's C ABI; the same checks) -> hostile agent
#   (garbage everywhere, unmap/close midway), once killed with SIGKILL midway and once to completion ->
#   rmmod.
# On the host it then fails unless: the agents printed RESULT PASS, RESULT_FIFO PASS and RESULT_C_FIFO PASS with exit 0, the hostile runs happened, the
# guest's kernel log has no BUG / WARNING / Oops / general protection / lockdep report / RCU stall / soft lockup,
# and rmmod succeeded.
#
#   bash scripts/qemu-test.sh            (about 4 min on a fresh machine, ~1 min once installed)
# Environment: QEMU_TEST_THREADS (4), QEMU_TEST_SECONDS (3), QEMU_TEST_TIMEOUT (300 s for the boot),
#              QEMU_TEST_OUT (target/qemu-test: serial log, initramfs).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="${QEMU_TEST_OUT:-$root/target/qemu-test}"
threads="${QEMU_TEST_THREADS:-4}"
seconds="${QEMU_TEST_SECONDS:-3}"
boot_timeout="${QEMU_TEST_TIMEOUT:-300}"
step() { printf '\n--- qemu-test: %s (%ss)\n' "$*" "$SECONDS"; }
die() { echo "qemu-test: FAILED: $*" >&2; exit 1; }

step "packages"
need=()
command -v qemu-system-x86_64 >/dev/null 2>&1 || need+=(qemu-system-x86)
dpkg-query -W -f='${Status}' linux-image-amd64 2>/dev/null | grep -q 'ok installed' || need+=(linux-image-amd64)
dpkg-query -W -f='${Status}' linux-headers-amd64 2>/dev/null | grep -q 'ok installed' || need+=(linux-headers-amd64)
[ -x /bin/busybox ] && dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'ok installed' \
  || need+=(busybox-static)
for t in cpio gzip; do command -v "$t" >/dev/null 2>&1 || need+=("$t"); done
command -v make >/dev/null 2>&1 && command -v gcc >/dev/null 2>&1 || need+=(build-essential)
if [ "${#need[@]}" -gt 0 ]; then
  echo "installing: ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# The kernel the metapackage points at (e.g. linux-image-6.1.0-57-amd64): never hard-coded.
kpkg="$(dpkg-query -W -f='${Depends}' linux-image-amd64 | tr ',' '\n' | grep -o 'linux-image-[^ ]*' | head -n 1)"
kver="${kpkg#linux-image-}"
vmlinuz="/boot/vmlinuz-$kver"
kbuild="/lib/modules/$kver/build"
[ -f "$vmlinuz" ] || die "no $vmlinuz (linux-image-amd64 -> $kpkg)"
[ -d "$kbuild" ] || die "no $kbuild (linux-headers-amd64 must match $kver)"
echo "kernel $kver ($(dpkg-query -W -f='${Version}' linux-image-amd64)), $(qemu-system-x86_64 --version | head -n 1)"
if command -v rustup >/dev/null 2>&1; then
  rustup target list --installed | grep -qx x86_64-unknown-none || rustup target add x86_64-unknown-none
  rustup target list --installed | grep -qx x86_64-unknown-linux-musl || rustup target add x86_64-unknown-linux-musl
fi

step "module (Rust object + C shim)"
bash "$root/kmod/build.sh" "$kbuild"
ko="$root/target/kmod/ghost_shm.ko"
modinfo -F vermagic "$ko" | grep -q "^$kver " || die "module vermagic $(modinfo -F vermagic "$ko") is not $kver"

step "agent (static, musl)"
(cd "$root" && cargo build --quiet --release --target x86_64-unknown-linux-musl -p ghost-shm-kmod-agent)
agent="$root/target/x86_64-unknown-linux-musl/release/ghost-shm-kmod-agent"
file -b "$agent" 2>/dev/null | grep -q 'static' || ldd "$agent" 2>&1 | grep -q 'not a dynamic' \
  || die "$agent is not statically linked"

step "C agent (ffi/agent + kmod/agent-c/fifo.c, static)"
cagent="$root/target/c-agent/ghost-shm-c-fifo"
bash "$root/ffi/agent/build.sh" "$cagent"

step "initramfs"
rm -rf "$out/rootfs"; mkdir -p "$out/rootfs"/{bin,dev,proc,sys,tmp}
cp /bin/busybox "$out/rootfs/bin/busybox"
for a in sh mount insmod rmmod lsmod dmesg poweroff cat grep echo sleep kill sync uname; do
  ln -s busybox "$out/rootfs/bin/$a"
done
cp "$ko" "$out/rootfs/ghost_shm.ko"
cp "$agent" "$out/rootfs/bin/agent"
cp "$cagent" "$out/rootfs/bin/cagent"
cat >"$out/rootfs/init" <<EOF
#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
echo "GUEST kernel \$(uname -r) cpus \$(grep -c ^processor /proc/cpuinfo)"
echo QEMU_TEST_MODULE_LOAD > /dev/kmsg
insmod /ghost_shm.ko; echo "INSMOD_RC=\$?"
/bin/agent test --threads $threads --seconds $seconds; echo "AGENT_TEST_RC=\$?"
/bin/agent fifo --threads $threads --seconds $seconds; echo "AGENT_FIFO_RC=\$?"
/bin/cagent --threads $threads --seconds $seconds; echo "AGENT_C_FIFO_RC=\$?"
/bin/agent stats
grep -E '^(overflow|txn_failed) ' /proc/ghost_shm/stats | sed 's/^/PRE_HOSTILE_STAT /'
/bin/agent hostile --seconds 60 & hp=\$!
sleep 4; kill -9 \$hp; wait \$hp; echo "HOSTILE_KILLED_RC=\$?"
/bin/agent hostile --seconds 3; echo "HOSTILE_RC=\$?"
grep -E '^(overflow|txn_failed|txn_not_claimed|groups_failed) ' /proc/ghost_shm/stats | sed 's/^/HOSTILE_STAT /'
/bin/agent test --threads 2 --seconds 2; echo "AGENT_RETEST_RC=\$?"
sleep 1
rmmod ghost_shm; echo "RMMOD_RC=\$?"
echo "DMESG_BEGIN"; dmesg; echo "DMESG_END"
sync; poweroff -f
EOF
chmod +x "$out/rootfs/init"
(cd "$out/rootfs" && find . | cpio -o -H newc --quiet | gzip -1 >"$out/initramfs.cpio.gz")

step "boot (qemu TCG, -smp 2)"
log="$out/serial.log"
t0=$SECONDS
timeout "$boot_timeout" qemu-system-x86_64 -accel tcg -smp 2 -m 512 -kernel "$vmlinuz" \
  -initrd "$out/initramfs.cpio.gz" -append 'console=ttyS0 panic=-1 loglevel=4' \
  -nographic -no-reboot -monitor none -serial stdio </dev/null >"$log" 2>&1 || true
echo "boot to poweroff: $((SECONDS - t0)) s; serial log: $log"
tr -d '\r' <"$log" | grep -E '^(GUEST|CHECK|BENCH|STATS|RESULT|FIFO_COUNTER|HOSTILE|PRE_HOSTILE_STAT|INSMOD_RC|AGENT_|RMMOD_RC|ghost-shm-kmod-agent)' || true

step "verdict"
clean="$(tr -d '\r' <"$log")"
fail=0
expect() { grep -qx "$1" <<<"$clean" || { echo "qemu-test: missing '$1'" >&2; fail=1; }; }
expect "INSMOD_RC=0"
expect "RESULT PASS"
expect "AGENT_TEST_RC=0"
expect "RESULT_FIFO PASS"
expect "AGENT_FIFO_RC=0"
expect "RESULT_C_FIFO PASS"
expect "AGENT_C_FIFO_RC=0"
expect "HOSTILE_KILLED_RC=137"
expect "HOSTILE_RC=0"
expect "AGENT_RETEST_RC=0"
expect "RMMOD_RC=0"
expect "DMESG_END"
# The hostile agent must have reached the module's refusals: garbage tails counted as overflow, garbage
# transactions failed (else it tested nothing).
for k in overflow txn_failed; do
  before="$(sed -n "s/^PRE_HOSTILE_STAT $k //p" <<<"$clean")"
  after="$(sed -n "s/^HOSTILE_STAT $k //p" <<<"$clean")"
  [ "${after:-0}" -gt "${before:-0}" ] || { echo "qemu-test: the hostile agent caused no $k ($before -> $after)" >&2; fail=1; }
done
kmsg="$(sed -n '/^DMESG_BEGIN$/,/^DMESG_END$/p' <<<"$clean" | sed -n '/QEMU_TEST_MODULE_LOAD/,$p')"
[ -n "$kmsg" ] || { echo "qemu-test: no kernel log after the module load" >&2; fail=1; }
bad="$(grep -E 'BUG|WARNING|Oops|general protection|lockdep|possible circular locking|INFO: rcu|soft lockup|hung_task|Call Trace|kernel panic' <<<"$kmsg" || true)"
if [ -n "$bad" ]; then
  echo "qemu-test: kernel log reports:" >&2
  echo "$bad" | head -n 40 >&2
  fail=1
fi
[ "$fail" = 0 ] || die "see $log"
echo "qemu-test: PASS"
