"""`up` is idempotent and repairs a crashed testbed; `status` tells the truth."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from typing import Iterator

import pytest
from kubernetes import client
from kubernetes.dynamic import DynamicClient

import testbed
from _poll import wait_for
from conftest import MANAGED, TEST_LABEL
from processes import pid_of

UP = [sys.executable, str(testbed.HERE / "testbed.py")]
NAMES = [c.name for c in testbed.components()]


@pytest.fixture(autouse=True)
def restored_testbed() -> Iterator[None]:
    """These tests kill components: put the testbed back whatever happens (failure, Ctrl-C)."""
    try:
        yield
    finally:
        repaired = run("up")
        assert repaired.returncode == 0, "the testbed could not be restored:\n" + repaired.stdout + repaired.stderr


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


def test_up_after_an_apiserver_crash_restarts_its_clients_and_a_new_namespace_works_at_once(
        k8s: client.ApiClient) -> None:
    """Without the restart, Kueue's webhook refused pods in new namespaces for up to a minute."""
    os.kill(pid_of(testbed.RUN, "kube-apiserver"), signal.SIGKILL)
    wait_for("kube-apiserver gone", lambda: not pid_of(testbed.RUN, "kube-apiserver"), timeout=10)
    time.sleep(20)  # an outage long enough for the clients' reconnect back-off to grow past 10 s
    result = run("up")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "kube-apiserver: started" in result.stdout
    for comp in testbed.components():
        if comp.api_client:
            assert f"{comp.name}: restarting, kube-apiserver restarted after it" in result.stdout
    assert "settled: a canary passed every controller" in result.stdout

    core = client.CoreV1Api(k8s)
    name = f"t-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": name, "labels": {**MANAGED, TEST_LABEL: "true"}}})
    try:
        pod = {"metadata": {"name": "p", "labels": {"kueue.x-k8s.io/queue-name": "default"}},
               "spec": {"containers": [{"name": "c", "image": "registry.invalid/pause:1",
                                        "resources": {"requests": {"cpu": "10m"}}}]}}
        wait_for("kube-controller-manager to give the namespace its ServiceAccount",
                 lambda: core.list_namespaced_service_account(name).items, timeout=10)
        core.create_namespaced_pod(name, pod)  # Kueue's webhook knows the namespace
        workloads = DynamicClient(k8s).resources.get(api_version="kueue.x-k8s.io/v1beta2", kind="Workload")
        wait_for("Kueue to make the pod's Workload", lambda: workloads.get(namespace=name).items, timeout=10)
    finally:
        core.delete_namespace(name)
