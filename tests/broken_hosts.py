"""Real hosts that cannot run the probes, for one command at a time: setpriv drops
root; a private mount namespace hides tracefs or the kernel headers from that
command only."""

import subprocess

NOT_ROOT = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
# a read-only empty /sys/kernel: no tracefs and nowhere to mount one
NO_TRACEFS = "mount -t tmpfs -o ro tmpfs /sys/kernel"
# hide /usr/src and kvmhole's cache (merged header tree and probe plan)
NO_HEADERS = ("mount -t tmpfs tmpfs /usr/src; mkdir -p /var/cache/kvmhole; "
              "mount -t tmpfs tmpfs /var/cache/kvmhole")


def in_namespace(setup: str, *command: str) -> subprocess.CompletedProcess:
    """Run command in a private mount namespace after the shell commands in setup."""
    script = f"set -e; {setup}; exec \"$@\""
    return subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                           script, "sh", *command], capture_output=True, text=True,
                          timeout=120)


def as_nobody(*command: str) -> subprocess.CompletedProcess:
    return subprocess.run([*NOT_ROOT, *command], capture_output=True, text=True, timeout=120)
