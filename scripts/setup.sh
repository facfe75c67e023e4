#!/usr/bin/env bash
# Everything lab needs on a fresh Debian machine: host tools, npm dependencies, the build.
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

# debian-archive-keyring: debootstrap checks Debian images with it, also on an Ubuntu host.
# python3: the relay that delays a link where the kernel has no netem (lib/network/link-relay.py).
HOST_PACKAGES=(systemd-container debootstrap debian-archive-keyring btrfs-progs nftables iproute2 procps util-linux tar tcpdump python3)
# vm machines: qemu, with iPXE as its network cards' boot ROM (without its GUI and firmware recommends),
# and qemu-img to look at a vm's disk before anything is made;
# controller stages: Ansible from the host, over SSH (without the recommends of either).
VM_PACKAGES=(qemu-system-x86 qemu-utils ipxe-qemu ansible openssh-client)
# Only for the tests: the HTML report is rendered in a real browser. The nightly, which runs no
# test of lab itself, skips it (Ubuntu ships Chromium as a snap only).
TEST_PACKAGES=(chromium)
if [ -n "${LAB_SETUP_SKIP_TEST_TOOLS:-}" ]; then TEST_PACKAGES=(); fi
missing=()
missing_vm=()
for package in "${HOST_PACKAGES[@]}" "${TEST_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
for package in "${VM_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing_vm+=("$package")
done
if [ "${#missing[@]}" -gt 0 ] || [ "${#missing_vm[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]} ${missing_vm[*]}"
  apt-get update -q
  if [ "${#missing[@]}" -gt 0 ]; then DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"; fi
  if [ "${#missing_vm[@]}" -gt 0 ]; then DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing_vm[@]}"; fi
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
npm run --silent build
