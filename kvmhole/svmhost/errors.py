"""The SVM host's one failure type: a line saying what is missing or what went wrong."""

from kvmhole.errors import KvmholeError


class SvmHostError(KvmholeError):
    """The SVM host could not be prepared, booted, or did not finish in time."""
