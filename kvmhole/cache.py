"""Where kvmhole keeps what it makes or fetches once and reuses: merged kernel header
trees, the probe plan, unpacked SVM-host kernel images, stock kvm modules, module
builds. Root's, machine-wide: every kvmhole command and checkout shares it."""

from pathlib import Path

ROOT = Path("/var/cache/kvmhole")
