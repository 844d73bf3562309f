"""Numbers no command can mean (nan, inf, negative, beyond the kernel's types) and
text that must not reach a terminal raw: a usage error or a sane display."""

import json

import pytest

from tests.conftest import assert_one_line_error, kvmhole
from tests.test_trace import interrupted, start_trace


@pytest.mark.parametrize("args", [
    ("export", "--interval", "nan"), ("export", "--interval", "inf"),
    ("export", "--interval", "-1"), ("trace", "--interval", "nan"),
    ("trace", "--duration", "nan"), ("trace", "--duration", "inf"),
    ("top", "--interval", "1e400"), ("top", "--interval", "3600"),
    ("run", "--timeout", "nan"), ("run", "--timeout", "inf"),
    ("run", "mixed", "--pages", str(2**64)), ("run", "--pages", "-1"),
    ("trace", "-p", str(2**32 + 1)), ("trace", "-p", "0"),
    ("run", "--hole-base", "-0x1000"), ("run", "--hole-base", hex(2**64)),
])
def test_a_number_no_command_can_mean_is_a_usage_error(args):
    done = kvmhole(*args, check=False, timeout=60)
    assert done.returncode == 2, done
    assert "Traceback" not in done.stderr
    assert f"Invalid value for '{args[-2]}'" in done.stderr or "Invalid value" in done.stderr


@pytest.mark.parametrize(("args", "words"), [
    (("trace", "--hole-range", f"{2**32 + 5}:0xb0000000-0xc0000000"), ("bad hole range",)),
    (("trace", "--hole-range", f"5:0xb0000000-{hex(2**65)}"), ("below 2**64",)),
    (("trace", "-p", "4194303"), ("there is no process 4194303",)),
    (("run", "hole-rw", "--pages", "5"), ("--pages is for",)),
    (("run", "--name", "x" * 65), ("at most 64",)),
])
def test_values_that_would_be_cut_or_ignored_are_refused(args, words, run_dir):
    assert_one_line_error(kvmhole(*args, check=False, timeout=60), *words)


def test_escape_sequences_in_a_name_stay_off_the_terminal(run_dir):
    name = "\x1b[2J\x1b]0;owned\x07evil\nname"
    trace = start_trace("--interval", "0.3")
    run = json.loads(kvmhole("run", "ecam-scan", "--pages", "10", "--name", name,
                             "--json").stdout)
    out = interrupted(trace)
    rows = [line for line in out.splitlines() if f"pid {run['pid']}" in line]
    assert rows and all("\x1b" not in row and "\x07" not in row for row in rows)
    assert all(line.startswith(("0", "1", "2")) for line in out.splitlines())  # no split row
    assert "\\x1b[2J\\x1b]0;owned\\x07evil\\nname" in rows[-1]
