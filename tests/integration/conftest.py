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
import yaml
from kubernetes import client, config

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "testbed"))

import testbed  # noqa: E402
import _kueue_objects as ko  # noqa: E402
from _labels import TEST_LABEL  # noqa: E402
from _machinesets import delete_machineset  # noqa: E402
from _poll import wait_for  # noqa: E402
from processes import start, stop, wait_healthy  # noqa: E402

BIN = Path(sys.executable).parent
MANAGED = {"kueue.openshift.io/managed": "true"}
GPU_TAINT = {"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}
MACHINESETS = ("machine.openshift.io", "v1beta1", "openshift-machine-api", "machinesets")
CLUSTER_QUEUES = ("kueue.x-k8s.io", "v1beta2", "clusterqueues")
FLAVORS = ("kueue.x-k8s.io", "v1beta2", "resourceflavors")


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


def service_account_kubeconfig(k8s: client.ApiClient, admin_kubeconfig: str, namespace: str, name: str,
                               path: Path) -> str:
    """Write a kubeconfig that authenticates as ServiceAccount namespace/name, nothing else; return its path.

    The token comes from the TokenRequest API (an hour, like `oc create token`), the cluster and its CA from
    the admin kubeconfig: a client using it has exactly the RBAC bound to that account.
    """
    token = client.CoreV1Api(k8s).create_namespaced_service_account_token(
        name, namespace, {"spec": {"expirationSeconds": 3600}}).status.token
    cluster = yaml.safe_load(Path(admin_kubeconfig).read_text())["clusters"][0]["cluster"]
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": name,
        "clusters": [{"name": "testbed", "cluster": cluster}],
        "users": [{"name": name, "user": {"token": token}}],
        "contexts": [{"name": name, "context": {"cluster": "testbed", "user": name}}]}))
    return str(path)


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



def run_playbook(name: str, *extra: str, timeout: float = 900) -> subprocess.CompletedProcess:
    """`ansible-playbook -i inventories/local playbooks/<name>` as a user runs it (default output), as admin."""
    env = ansible_env(None)
    env.pop("ANSIBLE_STDOUT_CALLBACK")
    return subprocess.run([str(BIN / "ansible-playbook"), "-i", "inventories/local", f"playbooks/{name}", *extra],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=timeout)

def run_ansible_module(name: str, args: dict[str, Any], kubeconfig: str | None, check: bool = False,
                       diff: bool = False, expect_fail: bool = False, extra_env: dict[str, str] | None = None,
                       timeout: float = 900, on_start: Callable[[int], Any] | None = None) -> dict[str, Any]:
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
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                          cwd=ROOT) as popen:
        if on_start:
            on_start(popen.pid)
        try:
            stdout, stderr = popen.communicate(timeout=timeout)
        except BaseException:
            popen.kill()
            raise
    proc = subprocess.CompletedProcess(cmd, popen.returncode, stdout, stderr)
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
def testbed_whole(kubeconfig: str) -> None:
    """Start from a whole, settled testbed, as `make testbed-up` leaves it.

    Every test that breaks the testbed repairs it in its own teardown; this catches a run
    whose teardown could not run (SIGKILL, a second Ctrl-C): a component left stopped, or
    controllers whose watches still back off after a kube-apiserver restart.
    """
    assert testbed.up(argparse.Namespace()) == 0, "the testbed could not be repaired; see `make testbed-up`"


@pytest.fixture(scope="session", autouse=True)
def no_leftovers(k8s: client.ApiClient, testbed_whole: None) -> None:
    """Remove what an interrupted earlier run left behind: its pods would hold the GPU nodes.

    Everything the tests create carries the label TEST_LABEL: namespaces (with their pods),
    kwok GPU nodes, MachineSets (whose Machines and Nodes the cloud simulator then removes)
    and ClusterQueues.
    """
    core = client.CoreV1Api(k8s)
    stale = [n.metadata.name for n in core.list_namespace(label_selector=TEST_LABEL).items]
    for name in stale:
        with contextlib.suppress(client.ApiException):
            core.delete_namespace(name)
    custom = client.CustomObjectsApi(k8s)
    machinesets = custom.list_namespaced_custom_object(*MACHINESETS, label_selector=TEST_LABEL)["items"]
    for ms in machinesets:
        delete_machineset(k8s, ms["metadata"]["name"])
    for cq in custom.list_cluster_custom_object(*CLUSTER_QUEUES, label_selector=TEST_LABEL)["items"]:
        with contextlib.suppress(client.ApiException):
            custom.delete_cluster_custom_object(*CLUSTER_QUEUES, cq["metadata"]["name"])
    delete_test_nodes(core)
    in_use = ko.flavors_in_use(k8s)
    for flavor in custom.list_cluster_custom_object(*FLAVORS, label_selector=TEST_LABEL)["items"]:
        if flavor["metadata"]["name"] not in in_use:
            with contextlib.suppress(client.ApiException):
                custom.delete_cluster_custom_object(*FLAVORS, flavor["metadata"]["name"])
    if stale:
        wait_for(f"namespaces left by an earlier run to go: {stale}",
                 lambda: not core.list_namespace(label_selector=TEST_LABEL).items, timeout=120)


@contextlib.contextmanager
def new_namespace(k8s: client.ApiClient, labels: dict[str, str]) -> Iterator[str]:
    """A fresh namespace with `labels`, ready for pods, deleted afterwards with its pods."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    core = client.CoreV1Api(k8s)
    core.create_namespace({"metadata": {"name": name, "labels": {**labels, TEST_LABEL: "true"}}})
    try:
        # Pods are refused until kube-controller-manager gave the namespace its ServiceAccount; a
        # ReplicaSet refused then retries with a growing back-off, long after the account exists.
        wait_for(f"ServiceAccount `default` in namespace {name}", lambda: core.list_namespaced_service_account(
            name, field_selector="metadata.name=default").items)
        yield name
    finally:
        core.delete_namespace(name)
        # Its pods must be gone before the next test: they hold the shared GPU nodes.
        wait_for(f"namespace {name} deleted",
                 lambda: not core.list_namespace(field_selector=f"metadata.name={name}").items, timeout=120)


@pytest.fixture
def namespace(k8s: client.ApiClient) -> Iterator[str]:
    """A fresh namespace managed by Kueue (as RHOAI labels a project), deleted afterwards."""
    with new_namespace(k8s, MANAGED) as name:
        yield name


def kwok_gpu_node(name: str, instance_type: str, gpus: int) -> dict[str, Any]:
    """A fake L4 node as the GPU operator would leave it (labels, taint, allocatable).

    Labelled TEST_LABEL so that no run leaves it behind for the demo's pods to land on.
    """
    capacity = {"cpu": str(12 * gpus), "memory": f"{48 * gpus}Gi", "pods": "110", "nvidia.com/gpu": str(gpus),
                "ephemeral-storage": "500Gi"}
    return {
        "metadata": {"name": name, "annotations": {"kwok.x-k8s.io/node": "fake"},
                     "labels": {TEST_LABEL: "true", "type": "kwok", "kubernetes.io/hostname": name,
                                "node.kubernetes.io/instance-type": instance_type,
                                "node-role.kubernetes.io/gpu": "", "nvidia.com/gpu.present": "true",
                                "nvidia.com/gpu.product": "NVIDIA-L4", "nvidia.com/gpu.count": str(gpus),
                                "nvidia.com/gpu.memory": "23034"}},
        "spec": {"taints": [GPU_TAINT]},
        "status": {"capacity": capacity, "allocatable": capacity},
    }


def delete_test_nodes(core: client.CoreV1Api) -> None:
    """Delete the kwok nodes the tests made, and wait until they are gone."""
    for node in core.list_node(label_selector=TEST_LABEL).items:
        with contextlib.suppress(client.ApiException):
            core.delete_node(node.metadata.name)
    wait_for("the test GPU nodes to go", lambda: not core.list_node(label_selector=TEST_LABEL).items, timeout=60)


@pytest.fixture(scope="session")
def gpu_nodes(k8s: client.ApiClient) -> Iterator[list[str]]:
    """One g6.12xlarge (4 L4) and one g6.4xlarge (1 L4) kwok node, Ready, for the session; deleted after it."""
    core = client.CoreV1Api(k8s)
    nodes = [("it-g6-12xlarge", "g6.12xlarge", 4), ("it-g6-4xlarge", "g6.4xlarge", 1)]
    try:
        for name, itype, gpus in nodes:
            core.create_node(kwok_gpu_node(name, itype, gpus))
        for name, _, _ in nodes:
            wait_for(f"kwok to mark {name} Ready", lambda name=name: any(
                c.type == "Ready" and c.status == "True" for c in (core.read_node(name).status.conditions or [])))
        yield [n for n, _, _ in nodes]
    finally:
        delete_test_nodes(core)


@pytest.fixture(scope="session")
def kueue_flavors(k8s: client.ApiClient) -> Iterator[list[str]]:
    """The demo's ResourceFlavors for the session (shared by every test's ClusterQueue)."""
    with ko.flavors(k8s) as names:
        yield names


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


class Outage(threading.Thread):
    """kube-apiserver stopped for `down_for` s; `during()` is called the moment it is down."""

    def __init__(self, down_for: float, during: Callable[[], Any]) -> None:
        super().__init__(daemon=True)
        self.down_for = down_for
        self.during = during
        self.seen_during: Any = None
        self.comp = next(c for c in testbed.components() if c.name == "kube-apiserver")

    def run(self) -> None:
        stop(testbed.RUN, self.comp.name)
        try:
            self.seen_during = self.during()
            time.sleep(self.down_for)
        finally:
            start(testbed.RUN, testbed.LOGS, self.comp)
            wait_healthy(self.comp, time.monotonic() + 60, testbed.RUN)


@pytest.fixture
def restart_apiserver() -> Iterator[Callable[..., Outage]]:
    """Stop kube-apiserver for `down_for` s in the background; the testbed is repaired afterwards.

    `during` runs while the API is down; its answer is `Outage.seen_during` (e.g. whether the
    module under test was still waiting when the outage began).
    """
    outages: list[Outage] = []

    def restart(down_for: float = 4.0, during: Callable[[], Any] = lambda: None) -> Outage:
        outage = Outage(down_for, during)
        outages.append(outage)
        outage.start()
        return outage
    try:
        yield restart
    finally:
        for outage in outages:
            outage.join(timeout=120)
        # The other controllers' watches back off for up to a minute after the outage; repair the
        # testbed as `make testbed-up` does (restart them, pass a canary) so later tests see it whole.
        if outages:
            assert testbed.up(argparse.Namespace()) == 0, "the testbed did not settle after the apiserver restart"


class RunningModule:
    """An `ansible` ad hoc run of one module in the background (see `start_module`)."""

    def __init__(self, name: str, args: dict[str, Any], kubeconfig: str) -> None:
        self.name = name
        self.result: dict[str, Any] | None = None
        self.error: BaseException | None = None
        self.pids: list[int] = []
        self.thread = threading.Thread(target=self._run, args=(args, kubeconfig), daemon=True)
        self.thread.start()

    def _run(self, args: dict[str, Any], kubeconfig: str) -> None:
        try:
            self.result = run_ansible_module(self.name, args, kubeconfig, on_start=self.pids.append)
        except BaseException as exc:  # re-raised by wait()
            self.error = exc

    def running(self) -> bool:
        """The module's own process (AnsiballZ_<name>.py, a child of our ansible) is alive."""
        if not self.pids:
            return False
        return any(f"AnsiballZ_{self.name}.py" in _cmdline(pid) for pid in _descendants(self.pids[0]))

    def watching(self) -> bool:
        """The module holds two or more connections to kube-apiserver at once: its waiter's watches.

        Before that it reads the objects one request at a time over one kept-alive connection; an
        outage then fails the module at once, which is not what a test of the waiter wants.
        """
        return self.running() and _apiserver_connections(_descendants(self.pids[0])) >= 2

    def wait(self, timeout: float = 600) -> dict[str, Any]:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), f"{self.name} still running after {timeout}s"
        if self.error:
            raise self.error
        assert self.result is not None
        return self.result


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _apiserver_connections(pids: list[int]) -> int:
    """Established TCP connections of these processes to the testbed's kube-apiserver."""
    inodes = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    target = os.readlink(fd)
                    if target.startswith("socket:["):
                        inodes.add(target[8:-1])
    port = f"{testbed.PORTS['apiserver']:04X}"
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if fields[2].endswith(":" + port) and fields[3] == "01" and fields[9] in inodes:
                    count += 1
    return count


def _descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            with contextlib.suppress(OSError):
                children = [int(c) for c in (task / "children").read_text().split()]
                found += children
                todo += children
    return found


@pytest.fixture
def start_module(kubeconfig: str) -> Iterator[Callable[..., RunningModule]]:
    """Start a module in the background; `.running()` tells when its process is up, `.wait()` its result."""
    runs: list[RunningModule] = []

    def begin(name: str, args: dict[str, Any]) -> RunningModule:
        run = RunningModule(name, args, kubeconfig)
        runs.append(run)
        return run
    yield begin
    for run in runs:
        run.thread.join(timeout=600)
