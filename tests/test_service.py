"""deploy/kvmhole-export.service: systemd accepts it, and `kvmhole export` serves a
real guest's exact counts with no more than the unit grants: its capability
bounding set, no new privileges, a read-only system with only the unit's
writable directories, a private /tmp, read-only kernel tunables.

The sandbox is built from the unit's own settings, in a private mount namespace
(systemd does the same with its namespaces when it starts the unit).
"""

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

from tests.conftest import serving, start_stopped, wait_for

CHECKOUT = Path(__file__).resolve().parent.parent
UNIT = CHECKOUT / "deploy" / "kvmhole-export.service"
KVMHOLE_BIN = str(Path(sys.executable).with_name("kvmhole"))
CAPABILITY_BITS = {"CAP_SYS_PTRACE": 19, "CAP_PERFMON": 38, "CAP_BPF": 39}
# what the exporter keeps once its probes are attached (kvmhole/probes/privileges.py)
KEPT = ("CAP_BPF", "CAP_SYS_PTRACE")


def settings() -> dict[str, str]:
    lines = [line for line in UNIT.read_text().splitlines()
             if line.strip() and not line.startswith(("#", "["))]
    return dict(line.split("=", 1) for line in lines)


def unit_with_real_exec_start(directory: Path) -> Path:
    """The unit as installed here: ExecStart runs this checkout's venv."""
    text = UNIT.read_text()
    path = directory / UNIT.name
    path.write_text(text.replace("\nExecStart=kvmhole ", f"\nExecStart={KVMHOLE_BIN} "))
    return path


def test_systemd_accepts_the_unit(tmp_path):
    done = subprocess.run(["systemd-analyze", "verify", str(unit_with_real_exec_start(tmp_path))],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and not done.stderr and not done.stdout, done


def sandbox(unit: dict[str, str]) -> list[str]:
    """A command prefix that runs a command as the unit would (mounts, then setpriv)."""
    assert unit["User"] == "root" and unit["NoNewPrivileges"] == "yes"
    assert unit["ProtectSystem"] == "strict" and unit["PrivateTmp"] == "yes"
    writable = [f"/run/{unit['RuntimeDirectory']}", f"/var/cache/{unit['CacheDirectory']}"]
    caps = ",".join(f"+{cap.removeprefix('CAP_').lower()}"
                    for cap in unit["CapabilityBoundingSet"].split())
    script = "; ".join([
        "set -e", "mount --make-rprivate /",
        *(f"mkdir -p {d}; mount --bind {d} {d}" for d in writable),
        "mount -o remount,bind,ro /",  # ProtectSystem=strict
        # this checkout stands in for /opt/kvmhole: kept visible wherever it was cloned
        f"mount --bind {shlex.quote(str(CHECKOUT))} /mnt",
        "mount -t tmpfs tmpfs /tmp; mount -t tmpfs tmpfs /var/tmp",  # PrivateTmp
        f"mkdir -p {shlex.quote(str(CHECKOUT))}; mount --bind /mnt {shlex.quote(str(CHECKOUT))}; "
        "umount /mnt",
        # ProtectKernelTunables
        *(f"mount -o remount,bind,ro {m}"
          for m in ("/sys", "/sys/kernel/tracing", "/sys/kernel/debug")),
        "mount --bind /proc/sys /proc/sys; mount -o remount,bind,ro /proc/sys",
        f'exec setpriv --no-new-privs --bounding-set -all,{caps} --inh-caps -all -- "$@"'])
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh"]


def metric(text: str, name: str, **labels: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(f"{name}{{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_export_serves_a_guests_counts_with_only_the_units_privileges(tmp_path):
    unit = settings()
    env = {k: v for k, v in os.environ.items() if k != "KVMHOLE_RUN_DIR"}  # the unit's /run/kvmhole
    env.update(dict([unit["Environment"].split("=", 1)]))
    guest = start_stopped(["run", "ecam-scan", "--hole", "alias", "--passes", "3", "--json"], env)
    name = f"ecam-scan-{guest.pid}"
    args = [*unit["ExecStart"].split()[1:], "--listen", "127.0.0.1:0"]
    log = tmp_path / "export.log"
    with log.open("w") as stderr:
        export = subprocess.Popen([*sandbox(unit), KVMHOLE_BIN, *args, "--interval", "0.2",
                                   "-p", str(guest.pid)], stderr=stderr, env=env)
    try:
        address = wait_for("the sandboxed exporter to serve", lambda: serving(export, log), 300)
        status = Path(f"/proc/{export.pid}/status").read_text()
        granted = sum(1 << CAPABILITY_BITS[c] for c in unit["CapabilityBoundingSet"].split())
        kept = sum(1 << CAPABILITY_BITS[c] for c in KEPT)
        assert int(re.search(r"CapBnd:\s+(\w+)", status)[1], 16) == granted
        # attached: CAP_PERFMON dropped (no new privileges: no execve brings it back)
        for field in ("CapPrm", "CapEff"):
            assert int(re.search(rf"{field}:\s+(\w+)", status)[1], 16) == kept, field
        assert "kept only CAP_BPF" in log.read_text()
        assert re.search(r"NoNewPrivs:\s+1", status)
        root = next(line for line in Path(f"/proc/{export.pid}/mountinfo").read_text()
                    .splitlines() if line.split()[4] == "/")
        assert "ro" in root.split()[5].split(","), root

        guest.send_signal(signal.SIGCONT)
        out, _ = guest.communicate(timeout=300)
        run = json.loads(out)
        assert guest.returncode == 0 and run["status"] == "ok"

        last: dict[str, float] = {}

        def final_counts_served() -> bool:
            """KVM's exit count as the guest's own --json says: its final counts."""
            with urllib.request.urlopen(f"http://{address}/metrics", timeout=10) as reply:
                text = reply.read().decode()
            for key, name_, labels in (("exits", "kvmhole_kvm_stat_exits_total", {"stat": "exits"}),
                                       ("mmio", "kvmhole_kvm_stat_exits_total",
                                        {"stat": "mmio_exits"}),
                                       ("kernel", "kvmhole_pci_hole_reads_total",
                                        {"served": "kernel"})):
                last[key] = metric(text, name_, guest=name, **labels)
            return last["exits"] == run["kvm_stats"]["exits"]

        wait_for(f"{name}'s final counts to be served", final_counts_served)
        assert last["kernel"] == run["guest_hole_reads"]
        assert last["mmio"] == run["kvm_stats"]["mmio_exits"]  # CAP_SYS_PTRACE at work
    finally:
        if guest.poll() is None:
            guest.send_signal(signal.SIGCONT)
            guest.kill()
        export.send_signal(signal.SIGTERM)
        assert export.wait(timeout=60) == 0, log.read_text()
