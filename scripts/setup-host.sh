#!/usr/bin/env bash
# Install what kvmhole needs on a Debian 12 host, as root, idempotently:
# Debian packages (only the missing ones) and the tracefs/debugfs mounts the
# probes read (securityfs too, so kvmhole doctor can tell the lockdown mode).
# Everything Python goes into .venv (see the Makefile).
set -euo pipefail

# linux-source-6.1, gcc-12, patch and xz-utils: kvmhole kernel build (the patched kvm modules).
PACKAGES=(gcc binutils make python3 python3-venv python3-bpfcc bpfcc-tools
          linux-headers-amd64 qemu-system-x86 prometheus tmux busybox-static
          linux-source-6.1 gcc-12 patch xz-utils)

if [ "$(id -u)" -ne 0 ]; then
    echo "setup-host: run as root (apt-get and mounts need it)" >&2
    exit 1
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
        || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup-host: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

mountpoint -q /sys/kernel/tracing || mount -t tracefs nodev /sys/kernel/tracing
mountpoint -q /sys/kernel/debug || mount -t debugfs nodev /sys/kernel/debug
mountpoint -q /sys/kernel/security || mount -t securityfs nodev /sys/kernel/security || true  # lockdown mode, for kvmhole doctor
