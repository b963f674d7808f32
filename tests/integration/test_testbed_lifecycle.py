"""`up` is idempotent and repairs a crashed testbed; `status` tells the truth."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import testbed
from processes import pid_of

UP = [sys.executable, str(testbed.HERE / "testbed.py")]
NAMES = [c.name for c in testbed.components()]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*UP, *args], capture_output=True, text=True, timeout=180)


def test_up_twice_starts_nothing_new() -> None:
    before = {name: pid_of(testbed.RUN, name) for name in NAMES}
    result = run("up")
    assert result.returncode == 0, result.stderr
    after = {name: pid_of(testbed.RUN, name) for name in NAMES}
    assert after == before
    assert result.stdout.count("already running") == len(before)


def test_up_restarts_crashed_components_and_status_reports_them() -> None:
    victims = ["kueue", "cloud-sim"]
    old = {name: pid_of(testbed.RUN, name) for name in victims}
    for pid in old.values():
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while any(pid_of(testbed.RUN, n) for n in victims) and time.monotonic() < deadline:
        time.sleep(0.1)
    status = run("status")
    assert status.returncode == 1
    for name in victims:
        assert any(line.startswith(name) and line.endswith("DOWN") for line in status.stdout.splitlines())
    result = run("up")
    assert result.returncode == 0, result.stderr
    for name in victims:
        assert f"{name}: started" in result.stdout
        assert pid_of(testbed.RUN, name) not in (None, old[name])
    assert run("status").returncode == 0


def test_up_refuses_a_port_held_by_a_foreign_process() -> None:
    """A second testbed (another TESTBED_STATE) must not silently mix with this one."""
    os.kill(pid_of(testbed.RUN, "kserve"), signal.SIGKILL)
    deadline = time.monotonic() + 10
    while pid_of(testbed.RUN, "kserve") and time.monotonic() < deadline:
        time.sleep(0.1)
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        while True:  # the killed process's listener goes a moment after its pid
            try:
                squatter.bind(("127.0.0.1", testbed.PORTS["kserve_webhook"]))
                break
            except OSError:
                assert time.monotonic() < deadline, "kserve's port was not released"
                time.sleep(0.1)
        squatter.listen()
        refused = run("up")
    assert refused.returncode == 1
    assert f"127.0.0.1:{testbed.PORTS['kserve_webhook']}, kserve's port, is taken" in refused.stderr
    assert run("up").returncode == 0
