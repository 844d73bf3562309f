#!/bin/busybox sh
# /init of the SVM host's initramfs (busybox). It mounts this machine's own root,
# read-only over virtio-9p under a tmpfs overlay, as the SVM host's root; loads
# kvm_amd; runs the job that kvmhole wrote into the writable `out` share; powers off.
# The kernel command line carries the two host paths it needs:
#   kvmhole.out=DIR    the writable share, mounted at the same path inside
#   kvmhole.image=DIR  the unpacked kernel image (its lib/modules)
#   kvmhole.kvm=stock  load the stock kvm_amd (anything else: the job loads its own)
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
ip link set lo up  # the job's servers (kvmhole export) listen on 127.0.0.1

arg() { sed -n "s/.*kvmhole\.$1=\([^ ]*\).*/\1/p" /proc/cmdline; }
OUT=$(arg out)
IMAGE=$(arg image)
KVM=$(arg kvm)
NEW=/newroot

# Anything that goes wrong before the job runs ends up in OUT/setup-error (once the
# share is mounted) and on the console, then the machine powers off at once.
fail() {
	echo "kvmhole-svmhost: $*" >/dev/console
	[ -d "$NEW$OUT" ] && echo "$*" >"$NEW$OUT/setup-error"
	poweroff -f
}

for m in $(cat /modules/order); do
	insmod "/modules/$m.ko" || fail "insmod $m failed"
done

mkdir -p /lower /upper $NEW
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144,cache=loose,ro hostroot /lower \
	|| fail "mounting the host's root over 9p failed"
mount -t tmpfs -o mode=0755 tmpfs /upper
mkdir -p /upper/data /upper/work
mount -t overlay overlay -o lowerdir=/lower,upperdir=/upper/data,workdir=/upper/work $NEW \
	|| fail "the overlay root failed"
mount -t proc proc $NEW/proc
mount -t sysfs sys $NEW/sys
mount -t devtmpfs dev $NEW/dev
mkdir -p $NEW/dev/pts $NEW/dev/shm
mount -t devpts devpts $NEW/dev/pts
mount -t tmpfs tmpfs $NEW/dev/shm
mount -t tmpfs tmpfs $NEW/run  # a fresh registry and pid files, as after a boot
# /tmp is left as the overlay has it: a job's directory (a checkout, its venv) may be there.
mount -t tracefs nodev $NEW/sys/kernel/tracing
mount -t debugfs nodev $NEW/sys/kernel/debug
mount -t securityfs nodev $NEW/sys/kernel/security
mkdir -p "$NEW$OUT"
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 out "$NEW$OUT" \
	|| fail "mounting the out share failed"

# The host's /lib/modules/VER holds only the headers' build/source links: add the
# image's modules beside them.
VERSION=$(uname -r)
MODULES=$NEW/lib/modules/$VERSION
mkdir -p "$MODULES/kernel"
mount --bind "$NEW$IMAGE/lib/modules/$VERSION/kernel" "$MODULES/kernel"
cp "$NEW$IMAGE/lib/modules/$VERSION"/modules.* "$MODULES/"

if [ "$KVM" = stock ]; then
	chroot $NEW /bin/busybox modprobe kvm_amd || fail "kvm_amd would not load: no SVM in the vCPU?"
	[ -c $NEW/dev/kvm ] || fail "/dev/kvm did not appear after loading kvm_amd"
fi

echo "kvmhole-svmhost: running the job" >/dev/console
chroot $NEW /bin/sh "$OUT/job.sh" >"$NEW$OUT/stdout" 2>"$NEW$OUT/stderr"
echo $? >"$NEW$OUT/status"
sync
poweroff -f
