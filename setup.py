# The cffi modules (the binding over <linux/kvm.h> and the C fast path) are
# compiled when the package is installed; cffi_modules is a setup() keyword, so
# it cannot live in pyproject.toml alone.
#
# The BPF programs live in bpf/ at the top of the tree (C beside the other C, not
# inside the Python package); a built package carries them as kvmhole/bpf/*.c,
# where kvmhole.probes.bpf looks first.
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class build_py_with_bpf(build_py):
    def run(self):
        super().run()
        target = Path(self.build_lib) / "kvmhole" / "bpf"
        target.mkdir(parents=True, exist_ok=True)
        for source in Path("bpf").glob("*.bpf.c"):
            self.copy_file(str(source), str(target / source.name))


setup(
    cffi_modules=[
        "kvmhole/kvm/_build.py:ffibuilder",
        "kvmhole/vmm/_fastpath_build.py:ffibuilder",
    ],
    cmdclass={"build_py": build_py_with_bpf},
)
