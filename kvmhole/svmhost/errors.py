"""The SVM host's failure types: a line saying what is missing or what went wrong."""

from kvmhole.errors import KvmholeError


class SvmHostError(KvmholeError):
    """The SVM host could not be prepared, booted, or did not finish in time."""


class SvmHostTimeout(SvmHostError):
    """The job did not finish and power the SVM host off in time."""
