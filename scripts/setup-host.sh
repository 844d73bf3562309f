#!/usr/bin/env bash
# Install what kvmhole needs on a Debian 12 host, as root, idempotently:
# Debian packages (only the missing ones) and the tracefs/debugfs mounts the
# probes read (securityfs too, so kvmhole doctor can tell the lockdown mode).
# Everything Python goes into .venv (see the Makefile).
set -euo pipefail

# Debian 12's two kernel series, by their metapackages (never a release: the archive moves
# them, and kvmhole/kernel/release.py reads whichever release is installed). Headers: bcc
# and the SVM host (6.12's headers pull its image in too; nothing boots it here). Sources,
# gcc-12, patch and xz-utils: kvmhole kernel build (the patched kvm modules). acpica-tools:
# iasl compiles the DSDT of `kvmhole run linux` (and reads tables back in its tests). dkms:
# the SVM-host test installs the port with it (--no-install-recommends: it adds itself and
# kmod, dpkg-dev and lsb-release where they are missing).
PACKAGES=(gcc binutils make python3 python3-venv python3-bpfcc bpfcc-tools
          linux-headers-amd64 linux-headers-6.12-amd64 qemu-system-x86 prometheus tmux
          busybox-static linux-source-6.1 linux-source-6.12 gcc-12 patch xz-utils
          acpica-tools dkms)

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

# A series' headers and source must be the same Debian version (the module build refuses
# anything else). Installed at different times, the archive may have moved in between:
# then both are brought to what the archive has now.
in_step=(linux-headers-amd64:linux-source-6.1 linux-headers-6.12-amd64:linux-source-6.12)
for pair in "${in_step[@]}"; do
    headers=${pair%%:*} source=${pair##*:}
    hv=$(dpkg-query -W -f='${Version}' "$headers" 2>/dev/null || true)
    sv=$(dpkg-query -W -f='${Version}' "$source" 2>/dev/null || true)
    if [ "$hv" != "$sv" ]; then
        echo "setup-host: $headers $hv and $source $sv differ: installing the archive's current pair"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "$headers" "$source" >/dev/null
    fi
done

mountpoint -q /sys/kernel/tracing || mount -t tracefs nodev /sys/kernel/tracing
mountpoint -q /sys/kernel/debug || mount -t debugfs nodev /sys/kernel/debug
mountpoint -q /sys/kernel/security || mount -t securityfs nodev /sys/kernel/security || true  # lockdown mode, for kvmhole doctor
