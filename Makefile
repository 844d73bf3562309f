# `make demo` and `make test` set everything up on a fresh Debian 12 machine (as root)
# and are safe to run again: each step does only what is missing.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
# Debian's own Python: python3-bpfcc is built for it, and a venv on it is usable by
# every user (one on a pyenv Python under /root is not).
SYSTEM_PY := /usr/bin/python3
BCC_SRC := /usr/lib/python3/dist-packages/bcc

.PHONY: setup host venv-python demo test test-all lint clean

setup: host venv-python $(VENV)/.installed

host:
	@scripts/setup-host.sh

# A venv made on another Python is made again.
venv-python:
	@if [ -f $(VENV)/pyvenv.cfg ] && \
		! grep -qx 'home = $(patsubst %/,%,$(dir $(SYSTEM_PY)))' $(VENV)/pyvenv.cfg; then \
		echo "rebuilding $(VENV) on $(SYSTEM_PY)"; rm -rf $(VENV); fi

# The venv is rebuilt when the package definition or the cffi binding changes.
$(VENV)/.installed: pyproject.toml setup.py kvmhole/kvm/_build.py kvmhole/vmm/_fastpath_build.py
	test -x $(PY) || $(SYSTEM_PY) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,bench]'
	@# bcc comes from Debian (python3-bpfcc) only; PyPI's "bcc" is another project.
	ln -sfn $(BCC_SRC) "$$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/bcc"
	touch $@

# Ends in the live view on a terminal; without one, top prints one snapshot table.
demo: setup
	$(VENV)/bin/kvmhole demo
	$(VENV)/bin/kvmhole top --demo

# The hardware path runs on Debian's default kernel series; its checks on the other
# series (one more SVM-host boot per suite, several minutes) run in test-all.
test: setup
	$(VENV)/bin/ruff check kvmhole tests dashboards
	$(VENV)/bin/pytest -q -m "not other_series"

test-all: setup
	$(VENV)/bin/ruff check kvmhole tests dashboards
	$(VENV)/bin/pytest -q

lint: setup
	$(VENV)/bin/ruff check kvmhole tests dashboards

clean:
	rm -rf $(VENV) build *.egg-info kvmhole/kvm/_kvm_cffi* kvmhole/vmm/_fastpath*.so kvmhole/vmm/_fastpath.c
