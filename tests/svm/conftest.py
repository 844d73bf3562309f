"""These tests run inside the SVM host only (tests/test_svm_host.py boots it and runs
them there): kvm_amd must be loaded, as on a user's AMD host."""

from pathlib import Path

import pytest


@pytest.fixture(scope="session", autouse=True)
def _inside_the_svm_host():
    assert Path("/sys/module/kvm_amd").is_dir(), \
        "tests/svm run inside the SVM host: use tests/test_svm_host.py (kvmhole svmhost)"
