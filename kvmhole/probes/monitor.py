"""The monitor: loads the probes, keeps the set of guests, turns BPF maps into Snapshots.

Guests are picked up as they appear: with no pid filter, BPF itself starts
tracking any process that enters KVM_RUN (with the preset's hole ranges until
the registry says better), so a guest that starts and ends between two polls is
still counted. A guest that has exited is reported once more with alive=False,
then its map entries are dropped.
"""

import sys
import threading
import time
from pathlib import Path

from kvmhole.probes import discovery, kvmstats
from kvmhole.probes.bpf import ProbeProgram, RawCounts
from kvmhole.probes.complaints import RegistryComplaints
from kvmhole.probes.plan import probe_plan
from kvmhole.probes.snapshot import GuestStats, ProbeHealth, Rates, Snapshot
from kvmhole.probes.watch import RegistryWatcher
from kvmhole.vmm import registry


class Monitor:
    """Context manager over the loaded probes; poll() gives the snapshot of now."""

    def __init__(self, pids: set[int] | None = None,
                 hole_ranges: dict[int, list[tuple[int, int]]] | None = None,
                 preset: str | None = None, events: bool = False,
                 sizes: dict[str, int] | None = None):
        """sizes: see ProbeProgram."""
        self.pids = set(pids) if pids is not None else None
        self.hole_ranges = {pid: list(r) for pid, r in (hole_ranges or {}).items()}
        self.default_holes = discovery.preset_ranges(preset)
        self.plan = probe_plan()
        self.program = ProbeProgram(self.plan, auto_track=self.pids is None, events=events,
                                    sizes=sizes)
        self.program.set_default_holes(self.default_holes)
        self._identities: dict[int, discovery.Identity] = {}
        self._kvm_stats: dict[int, kvmstats.GuestKvmStats | None] = {}
        self._lock = threading.Lock()  # the registry watcher thread adds identities
        self._previous: dict[int, GuestStats] = {}  # the last poll's stats: rates' base
        self._last_poll = time.time()
        self._refused: set[int] = set()  # guests a full `holes` refused when userspace added them
        for pid in sorted((self.pids or set()) | set(self.hole_ranges)):
            self._track(pid, self.hole_ranges.get(pid, self.default_holes))
        self._warned: set[str] = set()
        self._complaints = RegistryComplaints()  # said after each scan and each poll
        self.watcher: RegistryWatcher | None = None
        self.rescan()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _warn(self, message: str) -> None:
        """Once per message: a bad file is seen again at every scan."""
        if message not in self._warned:
            self._warned.add(message)
            print(f"kvmhole: warning: {message}", file=sys.stderr, flush=True)

    def _warn_file(self, path: Path, reason: str) -> None:
        self._complaints.add(path, reason)

    def _wanted(self, pid: int) -> bool:
        return self.pids is None or pid in self.pids

    def _read_entry(self, path: Path) -> dict | None:
        """The checked entry in `path`; None if there is none or it is invalid (warned)."""
        try:
            return registry.read_entry(path)
        except registry.BadEntry as error:
            self._warn_file(path, str(error))
            return None

    def _registry_file(self, path: Path) -> None:
        """The watcher saw `path` written: adopt it if it is a running VMM's entry."""
        entry = self._read_entry(path)
        if entry is not None and registry.running(entry):
            self._adopt(entry)

    def _adopt(self, entry: dict) -> None:
        """Name a kvmhole guest and give it its exact hole ranges from the registry."""
        pid = entry["pid"]
        if not self._wanted(pid):
            return
        identity = discovery.from_registry(entry)
        holes = self.hole_ranges.get(pid) or identity.holes or self.default_holes
        identity.holes = holes
        with self._lock:
            known = self._identities.get(pid)
            if self.program is None or (known is not None and known.registered):
                return
            # the registry's hole ranges are exactly the absent functions of its window
            ecam = None if pid in self.hole_ranges else entry.get("ecam")
            if not self._track(pid, holes, ecam):
                return  # not counted: reporting it with zeros would be a lie
            self._identities[pid] = self._distinct(pid, identity)
            # now, while the VMM surely runs: a short guest may be gone by the next poll
            self._attach_kvm_stats(pid)

    def _identity(self, pid: int) -> discovery.Identity:
        with self._lock:
            if pid in self._identities:
                return self._identities[pid]
        # Not adopted yet (the watcher is behind, or the guest has already exited):
        # its entry stays readable for registry.GRACE_S after the VMM exits.
        entry = self._read_entry(registry.entry_path(pid))
        start = registry.process_start(pid)
        with self._lock:
            if pid not in self._identities:
                ecam = None
                if entry is not None and start in (None, entry["start"]):
                    identity = discovery.from_registry(entry)
                    identity.holes = self.hole_ranges.get(pid) or identity.holes
                    ecam = None if pid in self.hole_ranges else entry.get("ecam")
                else:  # not a kvmhole VMM, or its pid now belongs to another process
                    identity = discovery.from_process(pid, self.program.comm(pid), start)
                identity.holes = identity.holes or self.hole_ranges.get(pid, self.default_holes)
                self._identities[pid] = self._distinct(pid, identity)
                if start is not None:
                    # identified: its later accesses by its own rules, not provisionally
                    self.program.track(pid, identity.holes, ecam)
                    self._attach_kvm_stats(pid)
            return self._identities[pid]

    def _distinct(self, pid: int, identity: discovery.Identity) -> discovery.Identity:
        """A guest named like another watched guest of its VMM kind is NAME/PID, for
        life, in every view (the exporter's store names guests it still serves after
        the monitor forgot them the same way)."""
        taken = {(i.vmm, i.name) for other, i in self._identities.items() if other != pid}
        if (identity.vmm, identity.name) in taken:
            identity.name = f"{identity.name}/{pid}"
        return identity

    def _alive(self, pid: int) -> bool:
        """Still the process first seen with this pid (a reused pid is another guest)."""
        start = registry.process_start(pid)
        with self._lock:
            known = self._identities.get(pid)
        return start is not None and (known is None or known.start in (None, start))

    def _track(self, pid: int, holes: list[tuple[int, int]],
               ecam: tuple[int, int] | None = None) -> bool:
        """Give BPF the guest's hole ranges. A full `holes` map refuses a new guest: with
        no pid filter BPF counts that itself when the guest enters KVM_RUN (it adds
        guests there); with one only userspace adds guests, so the refusal is counted here."""
        tracked = self.program.track(pid, holes, ecam)
        if not tracked and self.pids is not None:
            self._refused.add(pid)
        return tracked

    def _attach_kvm_stats(self, pid: int) -> None:
        if pid not in self._kvm_stats:
            self._kvm_stats[pid] = kvmstats.attach(pid)

    def poll(self) -> Snapshot:
        """Read the BPF maps now; rates are over the time since the previous poll."""
        now = time.time()
        interval = max(now - self._last_poll, 1e-9)
        raw = self.program.read()
        with self._lock:
            known = list(self._identities)
        alive = {pid: self._alive(pid) for pid in {*raw, *known}}
        for pid in known:  # known guests that have not run yet: zeros
            if self._wanted(pid) and alive[pid]:
                raw.setdefault(pid, RawCounts())
        if self.pids is not None:
            raw = {pid: counts for pid, counts in raw.items() if pid in self.pids}
        # A guest may have exited while the maps were read, after its counts were: read
        # again those of the guests gone now (no event can come after), so the one
        # report with alive=False, after which they are forgotten, has their last counts.
        if gone_now := {pid for pid in raw if not alive[pid]}:
            raw.update(self.program.read(gone_now))
        guests, gone = [], []
        for pid in sorted(raw):
            stats = self._stats(pid, raw[pid], interval)
            stats.alive = alive[pid]
            if stats.kvm_stats is None and not stats.alive:  # the VMM's own last reading
                stats.kvm_stats = kvmstats.kept(self._identity(pid).final_kvm_stats
                                                or self._final_kvm_stats(pid))
            guests.append(stats)
            if not stats.alive:
                gone.append(pid)
        with self._lock:
            self.program.forget(set(gone))  # reported once with alive=False; now forgotten
            for pid in gone:
                self._identities.pop(pid, None)
                self._previous.pop(pid, None)
                if (kvm_stats := self._kvm_stats.pop(pid, None)) is not None:
                    kvm_stats.close()
        self._last_poll = now
        health = ProbeHealth(path=self.plan.path, lost_events=self.program.lost_events(),
                             tracepoints=self.plan.tracepoints,
                             message=self.plan.probe_path.limitation,
                             maps=self.program.map_fill(), map_full=self.program.map_full())
        health.map_full["holes"] += len(self._refused)
        self._warn_full(health)
        self._complaints.say()  # the files the watcher and this poll met
        return Snapshot(ts=now, interval_s=interval, probe=health, guests=guests)

    def _warn_full(self, health: ProbeHealth) -> None:
        """Once per map, when it first refuses a guest (a thread, for vcpus)."""
        for name, refused in health.map_full.items():
            if refused:
                self._warn(f"the BPF map {name} is full ({health.maps[name][1]} entries): "
                           f"{'vCPU threads' if name == 'vcpus' else 'guests'} past it are "
                           "not counted; the probe health's map_full counts them")

    def _final_kvm_stats(self, pid: int) -> dict | None:
        """From the exited VMM's registry entry, if it is this guest's."""
        entry = self._read_entry(registry.entry_path(pid))
        if entry is None or entry["start"] != self._identity(pid).start:
            return None
        return entry.get("kvm_stats")

    def _stats(self, pid: int, raw: RawCounts, interval: float) -> GuestStats:
        who = self._identity(pid)
        stats = GuestStats(pid=pid, name=who.name, vmm=who.vmm, strategy=who.strategy,
                           holes=list(who.holes or []), uuid=who.uuid, **vars(raw))
        with self._lock:
            kvm_stats = self._kvm_stats.get(pid)
        if kvm_stats is not None:
            stats.kvm_stats = kvm_stats.read()
        if not self.plan.probe_path.times_kvm:
            stats.kernel_time = None
        stats.rates = Rates.between(stats, self._previous.get(pid), interval)
        self._previous[pid] = stats
        return stats

    def rescan(self) -> None:
        """(Re)load the guest list without touching the probes or their counts: watch
        the registry directory anew (it may have been removed and created again, which
        ends an inotify watch) and adopt every live entry in it. If the new watch
        fails, the old one stays."""
        fresh = RegistryWatcher(registry.registry_dir(), self._registry_file, self._warn)
        if self.watcher is not None:
            self.watcher.close()
        self.watcher = fresh
        for entry in registry.entries(self._warn_file).values():
            self._adopt(entry)
        self._complaints.say()

    def events(self, callback) -> None:
        """Stream every userspace exit to callback(event) (Monitor(events=True) only)."""
        self.program.open_events(callback)

    def poll_events(self, timeout_ms: int) -> None:
        self.program.poll_events(timeout_ms)

    def close(self) -> None:
        self.watcher.close()
        with self._lock:
            if self.program is not None:
                self.program.close()
                self.program = None
            for kvm_stats in self._kvm_stats.values():
                if kvm_stats is not None:
                    kvm_stats.close()
            self._kvm_stats.clear()
