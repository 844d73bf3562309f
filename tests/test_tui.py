"""kvmhole top: Textual's Pilot for the interaction, snapshots of the screens, then the
real command on real guests: under tmux, without a terminal, without root.

The Pilot and snapshot tests use synthetic snapshots (tests/tui_synthetic.py), fed
either by the app's own poll worker or straight through TopApp.apply_snapshot.
"""

import asyncio
import io
import itertools
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
from rich.console import Console
from textual.widgets import Sparkline, Static

from kvmhole.tui.app import TopApp
from kvmhole.tui.help import HelpScreen
from kvmhole.tui.table import GuestTable
from kvmhole.vmm import registry
from tests.conftest import KVMHOLE, kvmhole, wait_for, wait_registered
from tests.tui_synthetic import SyntheticSource

SIZE = (120, 36)


def pilot_test(scenario):
    """Run `async def scenario(app, pilot, source)` inside app.run_test() (no pytest-asyncio)."""

    def test():
        async def main():
            source = SyntheticSource()
            app = TopApp(None)
            async with app.run_test(size=SIZE) as pilot:
                await feed(app, pilot, source, 3)
                await scenario(app, pilot, source)

        asyncio.run(main())

    # not functools.wraps: pytest would read the scenario's arguments as fixtures
    test.__name__, test.__doc__ = scenario.__name__, scenario.__doc__
    return test


async def feed(app, pilot, source, n: int = 1) -> None:
    for _ in range(n):
        app.apply_snapshot(source())
    await pilot.pause()


def names(app) -> list[str]:
    table = app.query_one(GuestTable)
    return [str(table.get_cell(row.key, "name")) for row in table.ordered_rows]


def cell(app, pid: int, column: str) -> str:
    return str(app.query_one(GuestTable).get_cell(str(pid), column))


def text(app, selector: str) -> str:
    """What a Static shows, as plain text (rich renderables included)."""
    console = Console(width=SIZE[0], file=io.StringIO())
    console.print(app.query_one(selector, Static).content)
    return console.file.getvalue()


def test_polls_in_a_worker_and_shows_every_guest():
    async def main():
        source = SyntheticSource()
        app = TopApp(source, interval=0.05)
        async with app.run_test(size=SIZE) as pilot:
            while source.calls < 3:
                await pilot.pause(0.05)
            await pilot.pause()
            assert names(app) == ["demo-alias", "demo-dense", "demo-exit", "web-1"]
            assert [cell(app, 4101, c) for c in ("pid", "vmm", "strategy", "share")] == [
                "4101", "kvmhole", "alias", "100.0%"]
            assert cell(app, 4103, "kernel") == "0" and cell(app, 4103, "share") == "0.0%"
            assert cell(app, 4103, "exits").endswith("k")
            assert "4 guests · probes emulated" in text(app, "#status")

    asyncio.run(main())


@pilot_test
async def test_sort_keys_and_reverse(app, pilot, source):
    await pilot.press("down", "down")  # demo-exit selected
    await pilot.press("s", "s", "s", "s")  # name -> pid -> VMM -> strategy -> in-kernel/s
    assert "sort in-kernel/s ↓" in text(app, "#status")
    assert names(app) == ["demo-alias", "demo-dense", "web-1", "demo-exit"]
    assert app.query_one(GuestTable).selected_pid == 4103  # the cursor follows its guest
    await pilot.press("r")
    assert names(app) == ["demo-exit", "web-1", "demo-dense", "demo-alias"]
    await pilot.press("s")  # hole exits/s, largest first
    assert names(app)[0] == "demo-exit"
    await feed(app, pilot, source)  # the order holds as rates change
    assert names(app)[0] == "demo-exit"


@pilot_test
async def test_filter(app, pilot, source):
    await pilot.press("slash", *"alias")
    assert names(app) == ["demo-alias", "web-1"]  # strategy matches too
    assert "2 of 4 guests" in text(app, "#status")
    await pilot.press("enter")  # keep the filter, back to the table
    await feed(app, pilot, source)
    assert names(app) == ["demo-alias", "web-1"]
    await pilot.press("slash", "backspace", "backspace", "backspace", "backspace", "backspace",
                      *"4103")
    assert names(app) == ["demo-exit"]
    await pilot.press("[")  # matches nothing (and is no markup): the detail pane empties
    assert names(app) == [] and "no guest selected" in text(app, "#detail-title")
    assert text(app, "#reasons").strip() == "" and text(app, "#label-kernel").strip() == ""
    await pilot.press("escape")  # clears it
    assert len(names(app)) == 4 and "filter" not in text(app, "#status")


@pilot_test
async def test_select_shows_detail(app, pilot, source):
    assert "demo-alias" in text(app, "#detail-title")
    await pilot.press("down", "down")
    assert "demo-exit" in text(app, "#detail-title") and "kvmhole/exit" in text(
        app, "#detail-title")
    assert len(app.query_one("#spark-exits", Sparkline).data) == 3  # one point per poll
    assert "hole exits/s 1." in text(app, "#label-exits")
    reasons = text(app, "#reasons")
    assert "MMIO" in reasons and "IO" in reasons
    latency = text(app, "#latency")
    assert "8.2 µs" in latency and "█" in latency
    await feed(app, pilot, source)
    assert len(app.query_one("#spark-exits", Sparkline).data) == 4


@pilot_test
async def test_pause_freezes_the_screen(app, pilot, source):
    await pilot.press("p")
    frozen = cell(app, 4101, "kernel"), text(app, "#label-kernel")
    await feed(app, pilot, source, 2)
    assert (cell(app, 4101, "kernel"), text(app, "#label-kernel")) == frozen
    assert "PAUSED" in text(app, "#status")
    await pilot.press("down")  # selecting while paused shows the frozen data
    assert len(app.query_one("#spark-kernel", Sparkline).data) == 3
    await pilot.press("space")
    assert cell(app, 4101, "kernel") != frozen[0]
    assert len(app.query_one("#spark-kernel", Sparkline).data) == 5  # nothing was lost
    assert "PAUSED" not in text(app, "#status")


@pilot_test
async def test_help_screen(app, pilot, source):
    await pilot.press("question_mark")
    assert isinstance(app.screen, HelpScreen)
    assert "time saved" in str(app.screen.query_one(Static).content)
    await pilot.press("escape")
    assert not isinstance(app.screen, HelpScreen)


@pilot_test
async def test_guests_come_and_go(app, pilot, source):
    await pilot.press("down", "down")  # demo-exit selected
    source.end(4103)
    await feed(app, pilot, source)
    assert cell(app, 4103, "name") == "demo-exit (exited)"  # shown once...
    assert "exited" in text(app, "#detail-title")
    await feed(app, pilot, source)
    assert "demo-exit" not in names(app)  # ...then gone
    assert app.query_one(GuestTable).selected_pid in (4102, 4104)
    assert app.history.points(4103, until=float("inf")) == []
    source.guests.append(source.guests[0].__class__(4105, "late", "dense", 10.0, 0.0, 1.0))
    await feed(app, pilot, source)
    assert names(app) == ["demo-alias", "demo-dense", "late", "web-1"]


def test_quit_keys():
    async def main(key: str) -> bool:
        app = TopApp(SyntheticSource(), interval=0.05)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause(0.1)
            await pilot.press(key)
            await pilot.pause()
            return app.is_running

    assert asyncio.run(main("q")) is False
    assert asyncio.run(main("ctrl+c")) is False


def fed(polls: int = 8):
    """snap_compare's run_before: the same synthetic history every time."""

    async def run_before(pilot) -> None:
        source = SyntheticSource()
        for _ in range(polls):
            pilot.app.apply_snapshot(source())
        await pilot.pause()

    return run_before


def test_snapshot_main_screen(snap_compare):
    assert snap_compare(TopApp(None), terminal_size=SIZE, run_before=fed())


def test_snapshot_detail_of_the_exit_guest(snap_compare):
    assert snap_compare(TopApp(None), terminal_size=SIZE, run_before=fed(),
                        press=["down", "down"])


def test_snapshot_help(snap_compare):
    assert snap_compare(TopApp(None), terminal_size=SIZE, run_before=fed(),
                        press=["question_mark"])


# --- the real thing: kvmhole top on real guests and real probes ---------------------------

def start_guest(strategy: str) -> subprocess.Popen:
    """An endless `mixed` guest, returned once it has registered (so it is running)."""
    guest = subprocess.Popen([*KVMHOLE, "run", "mixed", "--hole", strategy, "--name",
                              f"t-{strategy}"], stdout=subprocess.DEVNULL)
    wait_registered(guest)
    return guest


def rows(screen: str) -> dict[str, list[str]]:
    """Guest rows of the table by guest name: [name, pid, VMM, strategy, kernel/s, exits/s...]."""
    found = {}
    for line in screen.splitlines():
        fields = line.split()
        if len(fields) >= 9 and fields[1].isdigit():
            found[fields[0]] = fields
    return found


def test_not_a_terminal_prints_one_table(run_dir):
    guests = [start_guest("alias"), start_guest("exit")]
    try:
        # rates over one interval: long enough that a loaded host runs both guests in it
        done = kvmhole("top", "--interval", "2", *(f"--pid={g.pid}" for g in guests))
    finally:
        for guest in guests:
            guest.terminate()
            guest.wait(timeout=30)
    table = rows(done.stdout)
    assert set(table) == {"t-alias", "t-exit"}, done.stdout  # -p: no other guest
    alias, exit_ = table["t-alias"], table["t-exit"]
    assert alias[1:4] == [str(guests[0].pid), "kvmhole", "alias"]
    assert exit_[1:4] == [str(guests[1].pid), "kvmhole", "exit"]
    assert alias[4] != "0" and alias[5] == "0" and alias[7] == "100.0%"
    assert exit_[4] == "0" and exit_[5] != "0" and exit_[7] == "0.0%"


_SESSIONS = itertools.count()


class Tmux:
    """A private tmux server (its own socket) running one command at a fixed size."""

    def __init__(self, *command: str, size=(160, 45), status: Path | None = None):
        """status: have a shell run the command and write its exit code to this file
        (tmux itself sometimes never reaps a pane's process, leaving its status unknown)."""
        # a socket of its own: a server killed by the previous test may still be going
        # down and hold the session name "top" (new-session then fails under load)
        self.socket = f"kvmhole-test-{os.getpid()}-{next(_SESSIONS)}"
        if status is not None:
            command = ("sh", "-c", f'"$@"; echo $? > {status}', "sh", *command)
        self.tmux("new-session", "-d", "-s", "top", "-x", str(size[0]), "-y", str(size[1]),
                  "-e", f"KVMHOLE_RUN_DIR={registry.registry_dir()}", *command,
                  ";", "set-option", "-t", "top", "remain-on-exit", "on")

    def tmux(self, *args: str) -> str:
        # An explicit env: pytest's readline exported COLUMNS=80 LINES=24 into this
        # process's C environment (not os.environ), which would pin Textual at 80x24.
        env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
        return subprocess.run(["tmux", "-L", self.socket, "-f", "/dev/null", *args], env=env,
                              check=True, capture_output=True, text=True, timeout=30).stdout

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "top")

    def pane(self, what: str) -> str:
        return self.tmux("display-message", "-p", "-t", "top", what).strip()

    def wait_for(self, check, timeout: float = 300):  # top loads its probes first
        try:
            return wait_for("the screen to show it", lambda: check(self.screen()), timeout)
        except AssertionError:
            raise AssertionError(f"the screen never showed it:\n{self.screen()}") from None

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True)


def demo_rows_live(screen: str):
    """The three demo rows once the alias guest shows kernel reads and the exit guest exits
    (and the footer is drawn: Textual composes it a frame after the table)."""
    if "q Quit" not in screen:
        return None
    table = rows(screen)
    demo = {name: row for name, row in table.items() if name.startswith("demo-")}
    if set(demo) != {"demo-alias", "demo-dense", "demo-exit"}:
        return None
    if demo["demo-alias"][4] == "0" or demo["demo-exit"][5] == "0":
        return None  # the first poll can come before the guests' first batch
    return demo


def gone(pids: list[int], timeout: float = 30) -> bool:
    def all_gone() -> bool:
        return not any(psutil.pid_exists(p) and psutil.Process(p).status() !=
                       psutil.STATUS_ZOMBIE for p in pids)
    try:
        return wait_for(f"pids {pids} to end", all_gone, timeout, every=0.1)
    except AssertionError:
        return False


def test_live_demo_under_tmux(run_dir, tmp_path):
    status = tmp_path / "status"
    session = Tmux(*KVMHOLE, "top", "--demo", "--interval", "0.5", status=status)
    try:
        demo = session.wait_for(demo_rows_live)
        assert [demo[n][3] for n in ("demo-alias", "demo-dense", "demo-exit")] == [
            "alias", "dense", "exit"]
        assert demo["demo-alias"][5] == "0" and demo["demo-alias"][7] == "100.0%"
        assert demo["demo-exit"][4] == "0" and demo["demo-exit"][7] == "0.0%"
        screen = session.screen()
        assert "probes emulated" in screen and "q Quit" in screen
        pids = [int(row[1]) for row in demo.values()]
        assert set(registry.entries()) == set(pids)
        session.tmux("send-keys", "-t", "top", "q")
        wait_for("top to exit", lambda: status.exists() and status.read_text().strip(),
                 timeout=30, every=0.1)
        assert status.read_text().strip() == "0", session.screen()
        assert "Traceback" not in session.screen()
        assert gone(pids, timeout=0) and registry.entries() == {}
    finally:
        session.close()


def test_demo_guests_stop_when_top_is_killed(run_dir):
    session = Tmux(*KVMHOLE, "top", "--demo", "--interval", "0.5")
    try:
        pids = [int(row[1]) for row in session.wait_for(demo_rows_live).values()]
        os.kill(int(session.pane("#{pane_pid}")), signal.SIGKILL)  # no cleanup of its own
        assert gone(pids), "the demo guests outlived kvmhole top"
        # each marked its own registry entry exited, although SIGTERM came once per dying
        # thread
        entries = [json.loads(p.read_text()) for p in run_dir.glob("*.json")]
        assert len(entries) == 3 and all("exited" in e for e in entries), entries
    finally:
        session.close()


CRASHING_TOP = """
from kvmhole.cli.top import _run_app
from kvmhole.tui.app import TopApp


class Broken(TopApp):
    def on_mount(self):
        raise RuntimeError("the view broke")


_run_app(Broken(None))
"""


def test_a_crashed_tui_exits_non_zero(run_dir, tmp_path):
    status = tmp_path / "status"
    session = Tmux(sys.executable, "-c", CRASHING_TOP, status=status)
    try:
        session.wait_for(lambda _: status.exists() and status.read_text().strip())
        assert "the view broke" in session.screen()
        assert status.read_text().strip() == "1"
    finally:
        session.close()
