# The cffi modules (the binding over <linux/kvm.h> and the C fast path) are
# compiled when the package is installed; cffi_modules is a setup() keyword, so
# it cannot live in pyproject.toml alone.
from setuptools import setup

setup(
    cffi_modules=[
        "kvmhole/kvm/_build.py:ffibuilder",
        "kvmhole/vmm/_fastpath_build.py:ffibuilder",
    ]
)
