"""What a handled exit asks the run loop to do next."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Resume:
    """Enter the guest again."""


@dataclass(frozen=True)
class Pause:
    """The guest asked to wait this long (PORT_SLEEP), then go on."""

    seconds: float


@dataclass(frozen=True)
class Finish:
    """The guest is done (reported on PORT_DONE, or powered off), with this status."""

    status: int


@dataclass(frozen=True)
class Fail:
    """The guest cannot go on: the run ends with a GuestError saying why."""

    reason: str


Action = Resume | Pause | Finish | Fail
RESUME = Resume()
