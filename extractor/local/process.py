"""Child-process plumbing shared by the bundled redis-server and the bundled model server.

Children run in their own session, so a Ctrl-C at the terminal reaches only us and we stop them in order
(the app drains while Redis is still up). On Linux they also get ``PR_SET_PDEATHSIG``: if we die without
running our shutdown (SIGKILL, OOM killer) the kernel sends them SIGTERM, so no server outlives its parent.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

__all__ = ["describe_exit", "die_with_parent", "free_port", "outliving_children", "spawn", "terminate", "wait_until"]

logger = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
_POLL_INTERVAL_S = 0.1
_LONG_LIVED_THREADS: set[int] = set()


def describe_exit(code: int) -> str:
    """``exited with code 1`` or ``was killed by SIGSEGV``, from a ``Popen.returncode``."""
    if code >= 0:
        return f"exited with code {code}"
    try:
        return f"was killed by {signal.Signals(-code).name}"
    except ValueError:
        return f"was killed by signal {-code}"


@contextlib.contextmanager
def outliving_children() -> Iterator[None]:
    """Within the block, the calling thread counts as one that lives as long as the children it spawns (a
    supervisor's thread), so they get the parent-death signal too; see ``_preexec`` for why that needs saying.

    The mark ends with the block: a thread id is reused once its thread is gone, and a short-lived thread that
    inherited the mark would take its children down with it.
    """
    ident = threading.get_ident()
    _LONG_LIVED_THREADS.add(ident)
    try:
        yield
    finally:
        _LONG_LIVED_THREADS.discard(ident)


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port the kernel considers free on ``host`` right now (another process may take it later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def die_with_parent() -> None:
    """Ask the kernel to SIGTERM this process when its parent thread exits (runs in the child, before exec)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")


def _preexec() -> Callable[[], None] | None:
    """``die_with_parent`` where it is safe to use, else nothing.

    The death signal fires when the *thread* that forked exits, not the process, so it is only armed when
    spawning from the main thread or a thread inside ``outliving_children``; a child started from a short-lived
    worker thread would be killed with it.
    """
    thread = threading.current_thread()
    long_lived = thread is threading.main_thread() or threading.get_ident() in _LONG_LIVED_THREADS
    if sys.platform.startswith("linux") and long_lived:
        return die_with_parent
    return None


def spawn(
    argv: Sequence[str],
    log_path: Path,
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    pass_fds: Sequence[int] = (),
) -> subprocess.Popen[bytes]:
    """Start ``argv`` as a child in its own session, stdout and stderr appended to ``log_path``.

    ``env`` defaults to ours; output is unbuffered either way so the log is current when a start fails.
    ``pass_fds`` stay open in the child (for example a lock it should hold for as long as it runs).
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        return subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            start_new_session=True,
            pass_fds=tuple(pass_fds),
            preexec_fn=_preexec(),  # only prctl: safe even with threads running
            env={**(os.environ if env is None else env), "PYTHONUNBUFFERED": "1"},
        )


def terminate(proc: subprocess.Popen[bytes], grace_s: float = 10.0) -> None:
    """SIGTERM ``proc``, wait up to ``grace_s``, then SIGKILL; returns once it has been reaped."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        logger.warning("pid %d ignored SIGTERM for %.0fs, sending SIGKILL", proc.pid, grace_s)
        proc.kill()
        proc.wait()


def wait_until(
    ready: Callable[[], bool],
    proc: subprocess.Popen[bytes],
    *,
    timeout_s: float,
    what: str,
    log_path: Path,
    error: Callable[[str], Exception],
) -> None:
    """Poll ``ready()`` until true; raise ``error(message)`` naming ``log_path`` if ``proc`` exits or time runs out."""
    deadline = time.monotonic() + timeout_s
    while not ready():
        code = proc.poll()
        if code is not None:
            raise error(f"{what} {describe_exit(code)} during start; see {log_path}")
        if time.monotonic() >= deadline:
            raise error(f"{what} did not become ready within {timeout_s:.0f}s; see {log_path}")
        time.sleep(_POLL_INTERVAL_S)


class ChildService:
    """A child server used as a context manager: ``with X(...) as x:`` starts it and always stops it."""

    def start(self) -> str:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
