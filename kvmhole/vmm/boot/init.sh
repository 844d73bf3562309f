#!/bin/busybox sh
# The init of `kvmhole run linux`'s initramfs: report what the kernel made of the
# machine (lines starting "kvmhole-linux:", which the VMM keeps), then power off.
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
uptime=$(/bin/busybox cut -d' ' -f1 /proc/uptime)
functions=$(/bin/busybox ls /sys/bus/pci/devices | /bin/busybox wc -l)
echo "kvmhole-linux: init after ${uptime} s, ${functions} PCI functions, $(/bin/busybox uname -r)"
/bin/busybox dmesg | /bin/busybox grep -iE 'mmconfig|ecam|PCI: |config space|last bus' |
    while read -r line; do echo "kvmhole-linux: dmesg ${line}"; done
/bin/busybox poweroff -f
