"""The supervisor of ``extractor serve``'s children: real child processes, killed and restarted."""

from __future__ import annotations

import logging
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from extractor.errors import ModelUnavailableError
from extractor.local.process import terminate
from extractor.local.supervisor import Supervisor


class Child:
    """A supervised child running ``argv``; the starts listed in ``failing`` (0 is the first) raise."""

    def __init__(self, argv: list[str], failing: frozenset[int] = frozenset()) -> None:
        self.argv = argv
        self.failing = failing
        self.starts = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path: Path | None = Path("/tmp/child.log")

    def start(self) -> str:
        attempt, self.starts = self.starts, self.starts + 1
        if attempt in self.failing:
            raise ModelUnavailableError("the child did not come up")
        self.proc = subprocess.Popen(self.argv)
        return "started"

    def stop(self) -> None:
        if self.proc is not None:
            terminate(self.proc, grace_s=2)

    def exit_code(self) -> int | None:
        return self.proc.poll() if self.proc is not None else None


def _until(check: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


@pytest.fixture
def supervisor() -> Iterator[Supervisor]:
    supervisor = Supervisor(poll_s=0.05, backoff_s=0.2, max_restarts=3, window_s=60)
    yield supervisor
    supervisor.close()


def test_a_killed_child_is_reported_at_once_then_restarted(supervisor: Supervisor) -> None:
    child = Child(["sleep", "60"])
    child.start()
    supervisor.watch("model", "bundled model server", child)
    assert child.proc is not None
    first = child.proc.pid
    assert supervisor.problem("model") is None

    child.proc.send_signal(signal.SIGKILL)
    _until(lambda: supervisor.problem("model") is not None, timeout_s=1.0)

    assert supervisor.problem("model") == (
        "the bundled model server was killed by SIGKILL and is being restarted; retry in a few seconds"
    )
    _until(lambda: supervisor.problem("model") is None)
    assert child.proc.pid != first
    assert child.exit_code() is None


def test_a_failed_restart_is_tried_again(supervisor: Supervisor) -> None:
    child = Child(["sleep", "60"], failing=frozenset({1}))
    child.start()
    supervisor.watch("redis", "bundled Redis server", child)
    assert child.proc is not None

    child.proc.kill()
    _until(lambda: child.starts == 3 and supervisor.problem("redis") is None)

    assert child.exit_code() is None


def test_a_crash_loop_stops_with_one_error_line(supervisor: Supervisor, caplog: pytest.LogCaptureFixture) -> None:
    child = Child(["sh", "-c", "exit 3"])
    child.start()
    with caplog.at_level(logging.WARNING, logger="extractor"):
        supervisor.watch("model", "bundled model server", child)
        _until(lambda: "no longer restarted" in (supervisor.problem("model") or ""))
        time.sleep(0.5)  # time for more tries, were there any

    assert child.starts == 1 + 3
    problem = supervisor.problem("model") or ""
    assert problem.startswith("the bundled model server exited with code 3 and failed 3 restarts within 60 s")
    assert "/tmp/child.log" in problem
    errors = [record for record in caplog.records if record.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "stays down" in errors[0].getMessage()


def test_close_stops_the_children_and_restarts_nothing() -> None:
    supervisor = Supervisor(poll_s=0.05, backoff_s=0.05)
    children = [Child(["sleep", "60"]) for _ in range(2)]
    for index, child in enumerate(children):
        child.start()
        supervisor.watch(f"child{index}", "child", child)

    supervisor.close()

    assert [child.exit_code() for child in children] == [-signal.SIGTERM, -signal.SIGTERM]
    time.sleep(0.2)
    assert [child.starts for child in children] == [1, 1]


def test_an_unknown_name_has_no_problem() -> None:
    assert Supervisor().problem("model") is None


def test_a_thread_arms_the_parent_death_signal_only_inside_outliving_children() -> None:
    from extractor.local import process

    armed: list[bool] = []

    def spawner() -> None:
        with process.outliving_children():
            armed.append(process._preexec() is not None)
        armed.append(process._preexec() is not None)

    thread = threading.Thread(target=spawner)
    thread.start()
    thread.join()

    assert armed == [True, False]
