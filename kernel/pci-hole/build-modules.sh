#!/bin/sh
# Build kvm.ko, kvm-amd.ko and kvm-intel.ko with the KVM_MEM_PCI_HOLE port for one
# installed Debian kernel, from Debian's linux-source-<series> and the kernel's own
# Kbuild. DKMS runs it (dkms.conf's MAKE) and so does `kvmhole kernel build`, which adds
# its cache and the vermagic/CRC checks against the stock modules.
#
#   build-modules.sh [--patch-only] [--source TARBALL] [--headers DIR] [--tree DIR] KERNELVER
#
# KERNELVER is the kernel's `uname -r` (6.1.0-N-amd64 or 6.12.M+debN-amd64 forms); its
# series picks patches/<series>/ beside this script. Only arch/x86/kvm, virt/kvm and
# the files the patches touch are extracted into TREE (default ./tree); the patches
# apply with no fuzz; Kbuild runs from the headers (default /lib/modules/KERNELVER/build)
# with the tree's copies of the patched headers first on the include path. The modules
# end up in TREE/arch/x86/kvm/. A source of another version than the headers would
# build with the same vermagic and silently differ, so it is refused.
set -eu

fail() { echo "build-modules: error: $*" >&2; exit 1; }

here=$(cd "$(dirname "$0")" && pwd)
patch_only=; source=; headers=; tree=./tree
while [ $# -gt 1 ]; do
	case $1 in
	--patch-only) patch_only=1; shift ;;
	--source) source=$2; shift 2 ;;
	--headers) headers=$2; shift 2 ;;
	--tree) tree=$2; shift 2 ;;
	*) fail "unknown option $1" ;;
	esac
done
[ $# -eq 1 ] || fail "usage: build-modules.sh [--patch-only] [--source TARBALL] [--headers DIR] [--tree DIR] KERNELVER"
kernelver=$1
series=$(echo "$kernelver" | sed -n 's/^\([0-9]*\.[0-9]*\)\..*/\1/p')
patches=$here/patches/$series
headers=${headers:-/lib/modules/$kernelver/build}
source=${source:-/usr/src/linux-source-$series.tar.xz}
ls "$patches"/*.patch >/dev/null 2>&1 || fail "no patch series for Linux $series in $patches"
[ -f "$headers/Makefile" ] || fail "no kernel headers in $headers: apt-get install linux-headers-$kernelver"
[ -f "$source" ] || fail "$source is missing: apt-get install linux-source-$series"

makefile_version() {  # VERSION.PATCHLEVEL.SUBLEVEL from a kernel Makefile on stdin
	sed -n 's/^\(VERSION\|PATCHLEVEL\|SUBLEVEL\) = \([0-9]*\)$/\2/p' | head -3 | paste -sd.
}
# The headers' Makefile includes the -common half, whose Makefile has the version.
common=$(sed -n 's/^include \(.*\)/\1/p' "$headers/Makefile" | head -1)
want=$(makefile_version <"${common:-$headers/Makefile}")
top=$(tar -tf "$source" 2>/dev/null | head -1 | cut -d/ -f1) || true
have=$(tar --occurrence=1 -xOf "$source" "$top/Makefile" | makefile_version)
[ "$have" = "$want" ] || fail "$source is Linux $have but the headers of $kernelver are $want: refusing a mismatched source"
# Same version, but Debian's revision (its patches) must match too: ask dpkg.
owner=$(dpkg-query -S "$source" 2>/dev/null | cut -d: -f1) || true
[ "$owner" = "linux-source-$series" ] || fail "$source was not installed by linux-source-$series, so its Debian version cannot be checked against the headers: refusing it"
version_of() { dpkg-query -W -f '${Version}' "$1" 2>/dev/null || true; }
source_version=$(version_of "linux-source-$series")
headers_version=$(version_of "linux-headers-$kernelver")
[ "$source_version" = "$headers_version" ] || fail "linux-source-$series ${source_version:-(not installed)} does not match linux-headers-$kernelver ${headers_version:-(not installed)}: refusing a mismatched source"

# Every file the series touches; tar fails on a file whose directory it already took.
touched=$(sed -n 's|^+++ b/\([^[:space:]]*\).*|\1|p' "$patches"/*.patch | sort -u \
	| grep -v -e '^arch/x86/kvm/' -e '^virt/kvm/' || true)
rm -rf "$tree"
mkdir -p "$tree"
echo "extracting arch/x86/kvm, virt/kvm and the patched files from $source"
# shellcheck disable=SC2086  # one word per path
tar -xf "$source" -C "$tree" --strip-components=1 "$top/arch/x86/kvm/" "$top/virt/kvm/" \
	$(for f in $touched; do echo "$top/$f"; done)
for p in "$patches"/*.patch; do
	echo "applying $(basename "$p")"
	patch -p1 -F0 --batch --forward --no-backup-if-mismatch -d "$tree" -i "$p" \
		|| fail "$(basename "$p") does not apply to linux-source-$series $source_version"
done
[ -z "$patch_only" ] || exit 0

# KVM's Makefile finds virt/kvm and its private headers through $(srctree), which is
# the headers package here: point both at the tree.
kvm_makefile=$tree/arch/x86/kvm/Makefile
for fix in 's|$(srctree)/virt/kvm/Makefile.kvm|$(src)/../../../virt/kvm/Makefile.kvm|' \
	's|-I $(srctree)/arch/x86/kvm|-I $(src)|'; do
	before=$(cksum <"$kvm_makefile")
	sed -i "$fix" "$kvm_makefile"
	[ "$(cksum <"$kvm_makefile")" != "$before" ] || fail "$kvm_makefile: '$fix' changed nothing; the build needs updating"
done
# Each module says it is the port, in its modinfo version and so in
# /sys/module/*/version (Debian's stock KVM modules have none): that is also what lets
# DKMS install them over the stock ones, which it refuses when versions are equal.
version=$(sed -n 's/^PACKAGE_VERSION="\(.*\)"$/\1/p' "$here/dkms.conf")-pci-hole
for module in kvm kvm-amd kvm-intel; do
	printf '%s\n' "/* Written by build-modules.sh: this module is the KVM_MEM_PCI_HOLE port. */" \
		"#include <linux/module.h>" "MODULE_VERSION(\"$version\");" \
		>"$tree/arch/x86/kvm/pci-hole-$module.c"
	echo "$module-y += pci-hole-$module.o" >>"$kvm_makefile"
done

# The include roots of the patched headers, in the kernel's order, ahead of the package's.
root_of() {  # the longest include root a file is under
	case $1 in
	arch/x86/include/uapi/*) echo arch/x86/include/uapi ;;
	include/uapi/*) echo include/uapi ;;
	arch/x86/include/*) echo arch/x86/include ;;
	include/*) echo include ;;
	esac
}
tree=$(cd "$tree" && pwd)
roots=$(for f in $touched; do root_of "$f"; done)
includes=
for dir in arch/x86/include include arch/x86/include/uapi include/uapi; do
	if echo "$roots" | grep -qx "$dir"; then includes="$includes -I$tree/$dir"; fi
done
cc=$(sed -n 's/^CONFIG_CC_VERSION_TEXT="\([^ ]*\) .*/\1/p' "$headers/.config")
command -v "$cc" >/dev/null || fail "$cc is missing (the compiler $kernelver was built with)"
jobs=$(nproc 2>/dev/null || echo 1)
exec make -C "$headers" M="$tree/arch/x86/kvm" CC="$cc" -j"$jobs" \
	NOSTDINC_FLAGS="-nostdinc$includes" modules
