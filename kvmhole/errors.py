"""The one exception family the CLI turns into a single line on stderr."""


class KvmholeError(Exception):
    """A failure with a message meant for the user (no traceback)."""


class ConfigError(KvmholeError):
    """Bad input: caught before any ioctl is made."""


class GuestError(KvmholeError):
    """The guest did something the VMM cannot continue from."""
