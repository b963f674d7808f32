"""Fixtures for tests against the running testbed (`make testbed-up`).

Modules are run the way users run them: through `ansible` with the collection on its path,
so argument validation, check mode, diff and no_log are exercised as they really are.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from kubernetes import client, config

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "testbed"))

import testbed  # noqa: E402
from _poll import wait_for  # noqa: E402
from processes import start, stop, wait_healthy  # noqa: E402

BIN = Path(sys.executable).parent
MANAGED = {"kueue.openshift.io/managed": "true"}
TEST_LABEL = "rhoai-gpuaas/test"
GPU_TAINT = {"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def kubeconfig() -> str:
    path = testbed.KUBECONFIG
    if not path.exists():
        pytest.fail("the testbed is not up: run `make testbed-up`")
    return str(path)


@pytest.fixture(scope="session")
def k8s(kubeconfig: str) -> client.ApiClient:
    return config.new_client_from_config(kubeconfig)


@pytest.fixture(scope="session")
def s3_env() -> dict[str, str]:
    return dict(line.split("=", 1) for line in (testbed.STATE / "s3.env").read_text().split())


def ansible_env(kubeconfig: str | None) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "ANSIBLE_COLLECTIONS_PATH": str(ROOT / "collections"),
        "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json",
        "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
        "ANSIBLE_NOCOLOR": "1",
        "PATH": f"{BIN}:{env.get('PATH', '')}",
    })
    if kubeconfig:
        env["K8S_AUTH_KUBECONFIG"] = kubeconfig
    return env


def run_ansible_module(name: str, args: dict[str, Any], kubeconfig: str | None, check: bool = False,
                       diff: bool = False, expect_fail: bool = False, extra_env: dict[str, str] | None = None,
                       timeout: float = 900) -> dict[str, Any]:
    """Run `rhoai.gpuaas.<name>` ad hoc on localhost and return its result dict."""
    cmd = [str(BIN / "ansible"), "localhost", "-i", "localhost,", "-c", "local",
           "-e", f"ansible_python_interpreter={sys.executable}",
           "-m", f"rhoai.gpuaas.{name}", "-a", json.dumps(args)]
    if check:
        cmd.append("--check")
    if diff:
        cmd.append("--diff")
    env = ansible_env(kubeconfig)
    env.update(extra_env or {})
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout, cwd=ROOT)
    try:
        out = json.loads(proc.stdout)
        result = out["plays"][0]["tasks"][0]["hosts"]["localhost"]
    except (ValueError, KeyError, IndexError) as err:
        raise AssertionError(f"no JSON result from ansible ({err}):\n{proc.stdout}\n{proc.stderr}") from None
    result["_stdout"] = proc.stdout
    failed = bool(result.get("failed"))
    assert failed == expect_fail, f"module {'succeeded' if expect_fail else 'failed'}: {json.dumps(result, indent=1)}"
    return result


@pytest.fixture
def run_module(kubeconfig: str) -> Callable[..., dict[str, Any]]:
    def run(name: str, args: dict[str, Any], check: bool = False, diff: bool = False,
            expect_fail: bool = False, **kw: Any) -> dict[str, Any]:
        return run_ansible_module(name, args, kubeconfig, check=check, diff=diff, expect_fail=expect_fail, **kw)
    return run


@pytest.fixture(scope="session", autouse=True)
def no_leftovers(k8s: client.ApiClient) -> None:
    """Remove what an interrupted earlier run left behind: its pods would hold the GPU nodes."""
    core = client.CoreV1Api(k8s)
    stale = [n.metadata.name for n in core.list_namespace(label_selector=TEST_LABEL).items]
    for name in stale:
        with contextlib.suppress(client.ApiException):
            core.delete_namespace(name)
    if stale:
        wait_for(f"namespaces left by an earlier run to go: {stale}",
                 lambda: not core.list_namespace(label_selector=TEST_LABEL).items, timeout=120)


@pytest.fixture
def namespace(k8s: client.ApiClient) -> Iterator[str]:
    """A fresh namespace managed by Kueue, deleted afterwards."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    core = client.CoreV1Api(k8s)
    core.create_namespace({"metadata": {"name": name, "labels": {**MANAGED, TEST_LABEL: "true"}}})
    # Pods are refused until kube-controller-manager gave the namespace its ServiceAccount; a
    # ReplicaSet refused then retries with a growing back-off, long after the account exists.
    wait_for(f"ServiceAccount `default` in namespace {name}", lambda: core.list_namespaced_service_account(
        name, field_selector="metadata.name=default").items)
    yield name
    core.delete_namespace(name)
    # Its pods must be gone before the next test: they hold the shared GPU nodes.
    wait_for(f"namespace {name} deleted",
             lambda: not core.list_namespace(field_selector=f"metadata.name={name}").items, timeout=120)


def kwok_gpu_node(name: str, instance_type: str, gpus: int) -> dict[str, Any]:
    """A fake L4 node as the GPU operator would leave it (labels, taint, allocatable)."""
    capacity = {"cpu": str(12 * gpus), "memory": f"{48 * gpus}Gi", "pods": "110", "nvidia.com/gpu": str(gpus),
                "ephemeral-storage": "500Gi"}
    return {
        "metadata": {"name": name, "annotations": {"kwok.x-k8s.io/node": "fake"},
                     "labels": {"type": "kwok", "kubernetes.io/hostname": name,
                                "node.kubernetes.io/instance-type": instance_type,
                                "node-role.kubernetes.io/gpu": "", "nvidia.com/gpu.present": "true",
                                "nvidia.com/gpu.product": "NVIDIA-L4", "nvidia.com/gpu.count": str(gpus),
                                "nvidia.com/gpu.memory": "23034"}},
        "spec": {"taints": [GPU_TAINT]},
        "status": {"capacity": capacity, "allocatable": capacity},
    }


@pytest.fixture(scope="session")
def gpu_nodes(k8s: client.ApiClient) -> list[str]:
    """One g6.12xlarge (4 L4) and one g6.4xlarge (1 L4) kwok node, Ready, for the whole session."""
    core = client.CoreV1Api(k8s)
    nodes = [("it-g6-12xlarge", "g6.12xlarge", 4), ("it-g6-4xlarge", "g6.4xlarge", 1)]
    for name, itype, gpus in nodes:
        with contextlib.suppress(client.ApiException):
            core.create_node(kwok_gpu_node(name, itype, gpus))
    deadline = time.monotonic() + 60
    for name, _, _ in nodes:
        while not any(c.type == "Ready" and c.status == "True"
                      for c in (core.read_node(name).status.conditions or [])):
            assert time.monotonic() < deadline, f"kwok did not mark {name} Ready"
            time.sleep(0.5)
    return [n for n, _, _ in nodes]


@pytest.fixture
def cloud_config() -> Callable[..., contextlib.AbstractContextManager]:
    """Set the cloud simulator's knobs for the duration of a `with` block."""
    path = testbed.STATE / "cloud.json"

    @contextlib.contextmanager
    def knobs(**values: Any) -> Iterator[None]:
        before = path.read_text()
        path.write_text(json.dumps({**json.loads(before), **values}))
        try:
            yield
        finally:
            path.write_text(before)
    return knobs


@pytest.fixture
def restart_apiserver() -> Callable[..., threading.Thread]:
    """Restart kube-apiserver in the background: down after `after` s, for `down_for` s."""
    threads: list[threading.Thread] = []

    def restart(after: float = 2.0, down_for: float = 3.0) -> threading.Thread:
        comp = next(c for c in testbed.components() if c.name == "kube-apiserver")

        def run() -> None:
            time.sleep(after)
            stop(testbed.RUN, comp.name)
            time.sleep(down_for)
            start(testbed.RUN, testbed.LOGS, comp)
            wait_healthy(comp, time.monotonic() + 60, testbed.RUN)
        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        threads.append(thread)
        return thread
    yield restart
    for thread in threads:
        thread.join(timeout=90)
    # The other controllers' watches back off for up to a minute after the outage; repair the
    # testbed as `make testbed-up` does (restart them, pass a canary) so later tests see it whole.
    if threads:
        assert testbed.up(argparse.Namespace()) == 0, "the testbed did not settle after the apiserver restart"
