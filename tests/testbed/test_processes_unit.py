"""The process helpers `up` and `down` rely on, against real child processes."""
from __future__ import annotations

import socket
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "testbed"))

import testbed  # noqa: E402
from processes import Component, pid_of, runs_as_configured, start, started_ticks, stop  # noqa: E402

# A child that listens on a port from a second thread, as Go servers do, and ignores SIGTERM
# for a moment so that `stop` has to wait.
SERVER = """
import signal, socket, sys, threading, time
signal.signal(signal.SIGTERM, lambda *_: (time.sleep(0.5), sys.exit(0)))
sock = socket.socket(); sock.bind(("127.0.0.1", 0)); sock.listen()
print(sock.getsockname()[1], flush=True)
threading.Thread(target=lambda: [sock.accept() for _ in iter(int, 1)], daemon=True).start()
time.sleep(60)
"""


def _port_from_log(log: Path) -> int:
    deadline = time.monotonic() + 10
    while not log.read_text().strip():
        assert time.monotonic() < deadline, "the child never printed its port"
        time.sleep(0.05)
    return int(log.read_text().split()[0])


def test_stop_returns_only_once_the_port_is_free(tmp_path: Path) -> None:
    comp = Component("srv", [sys.executable, "-c", SERVER], lambda: True)
    start(tmp_path / "run", tmp_path / "logs", comp)
    port = _port_from_log(tmp_path / "logs" / "srv.log")
    assert pid_of(tmp_path / "run", "srv") is not None
    assert stop(tmp_path / "run", "srv") is True
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0, "stop returned while the port still listened"
    assert pid_of(tmp_path / "run", "srv") is None
    assert stop(tmp_path / "run", "srv") is False


def test_started_ticks_orders_processes(tmp_path: Path) -> None:
    sleeper = Component("a", [sys.executable, "-c", "import time; time.sleep(30)"], lambda: True)
    older = start(tmp_path / "run", tmp_path / "logs", sleeper)
    time.sleep(0.1)  # clock ticks are 10 ms
    newer = start(tmp_path / "run", tmp_path / "logs", Component("b", sleeper.argv, lambda: True))
    try:
        assert started_ticks(older) < started_ticks(newer)
    finally:
        for name in ("a", "b"):
            stop(tmp_path / "run", name)


def test_started_ticks_of_a_gone_process_raises() -> None:
    with pytest.raises(FileNotFoundError):
        started_ticks(2 ** 22 + 7)


def test_runs_as_configured_tells_a_changed_command_line(tmp_path: Path) -> None:
    comp = Component("a", [sys.executable, "-c", "import time; time.sleep(30)"], lambda: True)
    assert not runs_as_configured(tmp_path / "run", comp)  # never started
    start(tmp_path / "run", tmp_path / "logs", comp)
    try:
        assert runs_as_configured(tmp_path / "run", comp)
        changed = Component("a", [*comp.argv, "--new-flag"], lambda: True)
        assert not runs_as_configured(tmp_path / "run", changed)
    finally:
        stop(tmp_path / "run", "a")


def test_no_two_testbeds_share_a_port() -> None:
    """Slots 0-99 (one per checkout) never share a port: the named ones, SeaweedFS's gRPC ports (+10000),
    vllm_sim's endpoint range. (Offsets of 100 once put kserve's metrics on another checkout's kwok.)"""
    owner: dict[int, tuple[int, str]] = {}
    for slot in range(100):
        ports = testbed.PORTS if slot == testbed.SLOT else (
            dict(testbed._BASE_PORTS) if slot == 0 else testbed._slot_ports(slot))
        used = {name: port for name, port in ports.items() if name != "vllm_endpoints"}
        used.update({f"{name}_grpc": port + 10000 for name, port in ports.items() if name.startswith("weed_")})
        used.update({f"vllm_{i}": ports["vllm_endpoints"] + i for i in range(testbed.VLLM_ENDPOINT_PORTS)})
        for name, port in used.items():
            assert port not in owner, f"slot {slot} {name} and slot {owner[port][0]} {owner[port][1]} share {port}"
            assert 1024 < port < 65536
            owner[port] = (slot, name)
