"""A machine's configuration, checked and worked out before any VM exists: the guest,
its PCI shape and functions, the memory map, the hole strategy, and what the guest
reads at start (kvmhole's guests: their parameters; Linux: kernel, initrd, command
line and ACPI tables, all from the same map and PCI shape).

Everything a user can get wrong is a ConfigError from here, before the first ioctl.
"""

from dataclasses import dataclass, field

from kvmhole import guests
from kvmhole.errors import ConfigError
from kvmhole.guests import protocol
from kvmhole.vmm import strategies
from kvmhole.vmm.boot import linux
from kvmhole.vmm.memmap import PAGE, Q35_ECAM_BASE, Q35_ECAM_SIZE, build_memory_map
from kvmhole.vmm.pci import BUS_SIZE, PciShape, host_bridge, parse_device
from kvmhole.vmm.registry import MAX_NAME, host_pid

DEFAULT_PAGES = {"ecam-scan": 8192, "mixed": 64}
DEFAULT_PAUSE_US = 10_000
DEFAULT_RAM = 64 << 20
LINUX_RAM = 256 << 20  # Debian's kernel decompresses at 16 MiB into ~60 MiB
MAX_BUSES = 256


@dataclass
class MachineConfig:
    guest: str = "ecam-scan"
    hole: str = "auto"
    hole_base: int = Q35_ECAM_BASE
    hole_size: int = Q35_ECAM_SIZE
    ram_size: int | None = None  # default: DEFAULT_RAM, LINUX_RAM for Linux
    pages: int | None = None
    passes: int = 1  # ecam-scan: scans of the same pages
    type1_pages: int = 0  # ecam-scan: then absent-function reads by type-1 port I/O
    devices: list[str] = field(default_factory=list)  # extra present functions
    name: str | None = None
    timeout: float | None = None
    scan_ram: bool = False  # ecam-scan reads RAM pages instead (the loop-cost baseline)
    pause_us: int = DEFAULT_PAUSE_US
    c_fastpath: bool = False  # serve hole reads in a C loop: Python's cost on the hot path
    buses: int | None = None  # the ECAM window in buses (instead of hole_size)
    type1: bool | None = None  # answer 0xCF8/0xCFC too (default: yes, except for Linux)
    kernel: str | None = None  # Linux: bzImage (default: the SVM host's Debian kernel)
    initrd: str | None = None  # Linux: initramfs (default: busybox, reports, powers off)
    append: str = ""  # Linux: added to the command line


class Blueprint:
    """The checked machine. Resolving hole="auto" or "native" asks KVM what the kernel
    supports; any other strategy needs no KVM here."""

    def __init__(self, config: MachineConfig):
        self.config = config
        self.guest = guests.get(config.guest)
        self.functions = [host_bridge(), *(parse_device(spec) for spec in config.devices)]
        boots_linux = self.guest.boots_linux
        ram = config.ram_size or (LINUX_RAM if boots_linux else DEFAULT_RAM)
        self.map = build_memory_map(ram, config.hole_base, self._ecam_size(),
                                    [f.bdf for f in self.functions])
        type1 = config.type1 if config.type1 is not None else not boots_linux
        self.pci = PciShape(self.map.ecam.start, -(-self.map.ecam.size // BUS_SIZE), type1)
        self.linux = linux.resolve(config.kernel, config.initrd, config.append, self.map,
                                   self.pci) if boots_linux else None
        if not boots_linux and (config.kernel or config.initrd or config.append):
            raise ConfigError("--kernel, --initrd and --append are for the linux guest")
        if config.type1_pages and not type1:
            raise ConfigError("--type1-pages needs the type-1 ports: drop --no-type1")
        self.pages = config.pages if config.pages is not None else DEFAULT_PAGES.get(
            config.guest, 0)
        self._check_pages()
        self.strategy = strategies.resolve(config.hole)
        self.name = config.name or f"{config.guest}-{host_pid()}"
        if len(self.name) > MAX_NAME:
            raise ConfigError(f"the guest name is {len(self.name)} characters long; at most "
                              f"{MAX_NAME}")
        self.params = {} if boots_linux else self._params()

    def _ecam_size(self) -> int:
        """The window: --buses whole buses, or --hole-size bytes."""
        if self.config.buses is None:
            if self.guest.boots_linux and self.config.hole_size % BUS_SIZE:
                raise ConfigError("Linux's MCFG describes whole buses: give --buses, or a "
                                  "--hole-size that is a multiple of 1 MiB")
            return self.config.hole_size
        if not 1 <= self.config.buses <= MAX_BUSES:
            raise ConfigError(f"--buses must be between 1 and {MAX_BUSES}")
        return self.config.buses * BUS_SIZE

    def _check_pages(self) -> None:
        if self.config.pages is not None and self.config.guest not in DEFAULT_PAGES:
            raise ConfigError(f"--pages is for {' and '.join(DEFAULT_PAGES)}; "
                              f"{self.config.guest} makes a fixed set of accesses")
        if self.pages < 0:
            raise ConfigError("--pages must not be negative")
        if self.config.passes < 1:
            raise ConfigError("--passes must be at least 1")
        if self.config.guest != "ecam-scan":
            return
        limit = self._scan_area() if self.config.scan_ram else self.map.hole_pages
        if not 0 < self.pages <= limit:
            where = "scratch RAM" if self.config.scan_ram else "this hole"
            raise ConfigError(f"--pages must be between 1 and {limit}, the pages {where} has")
        if not 0 <= self.config.type1_pages <= self.map.hole_pages:
            raise ConfigError(f"--type1-pages must be between 0 and {self.map.hole_pages}, "
                              "the absent functions this hole has")

    def _scan_area(self) -> int:
        """Pages a scanning guest may read from scan_base: scratch RAM or the whole window
        (hole and present functions alike); one more lies outside it and faults."""
        if self.config.scan_ram:
            return (self.map.ram.size - protocol.SCRATCH_ADDR) // PAGE
        return self.map.ecam.size // PAGE

    def _params(self) -> dict:
        """struct kh_params, field by field: what the guest reads before it starts."""
        device = self.functions[0]
        last_hole = self.map.hole_runs[-1]
        scan_base = protocol.SCRATCH_ADDR if self.config.scan_ram else self.map.ecam.start
        return {
            "ecam_base": self.map.ecam.start,
            "ecam_size": self.map.ecam.size,
            "scan_base": scan_base,
            "scan_limit": self._scan_area(),
            "pages": self.pages,
            "pause_us": self.config.pause_us,
            "hole_addr": self._two_hole_pages(),
            "hole_last": last_hole.end - PAGE,
            "device_addr": self.map.ecam.start + device.bdf.ecam_offset,
            "device_id": device.id_dword,
            "passes": self.config.passes,
            "type1_pages": self.config.type1_pages,
        }

    def _two_hole_pages(self) -> int:
        """hole-rw reads and writes across two consecutive hole pages: the first run that
        has two (a run of one page ends at a present function)."""
        for run in self.map.hole_runs:
            if run.size >= 2 * PAGE:
                return run.start
        if self.config.guest == "hole-rw":
            raise ConfigError("hole-rw needs two consecutive absent functions in the window")
        return self.map.hole_runs[0].start

    @property
    def scans_ram(self) -> bool:
        """ecam-scan over RAM pages made to read all-ones: the loop-cost baseline."""
        return self.config.scan_ram and self.config.guest == "ecam-scan"
