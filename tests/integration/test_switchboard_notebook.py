"""The GPU Switchboard notebook, executed headless against the testbed as a workbench would run it.

The notebook runs in a Jupyter kernel on this venv's Python (nbclient), with its parameters injected
after its `parameters` cell (as papermill does), and talks to the API as a service account that has
exactly the RBAC of notebooks/gpu-switchboard-rbac.yaml. What it printed is checked against what the
cluster holds afterwards: the stop annotation, the ClusterQueue's numbers, Kueue's pending message.
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml
from kubernetes import client

import _kueue_objects as ko
from _poll import wait_for
from conftest import service_account_kubeconfig

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
from jupyter_client import KernelManager  # noqa: E402
from jupyter_client.kernelspec import KernelSpecManager  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "gpu-switchboard.ipynb"
RBAC = ROOT / "notebooks" / "gpu-switchboard-rbac.yaml"
SERVICE_ACCOUNT = "sb-workbench"
FLAVOR_4 = "nvidia-l4-4gpu"


@pytest.fixture
def cq(k8s: client.ApiClient, namespace: str, gpu_nodes: list[str]) -> Iterator[str]:
    with ko.queues(k8s, namespace) as name:
        yield name


@pytest.fixture
def workbench_kubeconfig(k8s: client.ApiClient, namespace: str, kubeconfig: str, tmp_path: Path) -> Iterator[str]:
    """A kubeconfig for a service account bound by the shipped RBAC manifest (names adapted), nothing else."""
    core = client.CoreV1Api(k8s)
    core.create_namespaced_service_account(namespace, {"metadata": {"name": SERVICE_ACCOUNT}})
    cluster_scoped = []
    for doc in yaml.safe_load_all(RBAC.read_text()):
        if doc["kind"] in ("Role", "RoleBinding"):
            doc["metadata"]["namespace"] = namespace
        else:  # cluster-scoped: one per test namespace, removed afterwards
            doc["metadata"]["name"] += "-" + namespace
            cluster_scoped.append(doc)
        if doc["kind"] == "ClusterRoleBinding":
            doc["roleRef"]["name"] += "-" + namespace
        for subject in doc.get("subjects", []):
            subject.update(name=SERVICE_ACCOUNT, namespace=namespace)
        ko.create(k8s, doc)
    yield service_account_kubeconfig(k8s, kubeconfig, namespace, SERVICE_ACCOUNT, tmp_path / "workbench.kubeconfig")
    for doc in cluster_scoped:
        ko.delete(k8s, doc["apiVersion"], doc["kind"], doc["metadata"]["name"])


def run_notebook(tmp_path: Path, **parameters: Any) -> tuple[Any, KernelManager]:
    """Execute the notebook in a kernel on this venv's Python, parameters injected after `parameters`."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    index = next(i for i, cell in enumerate(nb.cells) if "parameters" in cell.metadata.get("tags", []))
    source = "\n".join(f"{name} = {value!r}" for name, value in parameters.items())
    nb.cells.insert(index + 1, nbformat.v4.new_code_cell(source, metadata={"tags": ["injected-parameters"]}))
    kernels = tmp_path / "kernels" / "gpuaas-venv"
    kernels.mkdir(parents=True, exist_ok=True)
    (kernels / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "rhoai.gpuaas venv", "language": "python"}))
    km = KernelManager(kernel_name="gpuaas-venv", kernel_spec_manager=KernelSpecManager(
        kernel_dirs=[str(tmp_path / "kernels")]))
    try:
        nbclient.NotebookClient(nb, km=km, timeout=600,
                                resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    finally:  # nbclient leaves a kernel it was given running
        if km.has_kernel:
            km.shutdown_kernel(now=True)
    return nb, km


def printed(nb: Any, cell_id: str | None = None) -> str:
    """What the code cells (or the one with ``cell_id``) printed."""
    return "".join(out.get("text", "") for cell in nb.cells if cell.cell_type == "code"
                   and (cell_id is None or cell.get("id") == cell_id)
                   for out in cell.get("outputs", []) if out.get("output_type") == "stream")


def model_line(board: str, name: str) -> str:
    return next(line for line in board.splitlines() if line.split()[:1] == [name])


def gpu_quota(cluster_queue: dict) -> dict[str, tuple[int, int]]:
    """flavor -> (used, nominal) GPUs, as the ClusterQueue's spec and status say (absent usage is 0)."""
    used = {f["name"]: int(r["total"]) for f in cluster_queue.get("status", {}).get("flavorsUsage", [])
            for r in f["resources"] if r["name"] == ko.GPU}
    return {f["name"]: (used.get(f["name"], 0), int(r["nominalQuota"]))
            for group in cluster_queue["spec"]["resourceGroups"] for f in group["flavors"]
            for r in f["resources"] if r["name"] == ko.GPU}


def pending_message(k8s: client.ApiClient, namespace: str, model: str) -> str:
    """Kueue's QuotaReserved=False message on the Workload of the model's predictor pod."""
    uids = {p.metadata.uid for p in ko.predictor_pods(k8s, model, namespace)}
    workloads = ko.dynamic(k8s).resources.get(api_version=ko.KUEUE, kind="Workload").get(namespace=namespace).to_dict()
    for workload in workloads["items"]:
        if workload["metadata"].get("labels", {}).get("kueue.x-k8s.io/job-uid") in uids:
            for cond in workload.get("status", {}).get("conditions", []):
                if cond["type"] == "QuotaReserved" and cond["status"] == "False":
                    return cond["message"]
    return ""


def test_switchboard_turns_a_model_on_and_shows_the_cluster_queue_and_kueues_reason(
        k8s: client.ApiClient, namespace: str, cq: str, workbench_kubeconfig: str, tmp_path: Path) -> None:
    ko.create(k8s, ko.inference_service("sb-on", namespace, 4))
    ko.create(k8s, ko.inference_service("sb-off", namespace, 4, stopped=True))
    wait_for("sb-on Ready and counted by the ClusterQueue", lambda: gpu_quota(
        ko.get(k8s, ko.KUEUE, "ClusterQueue", cq))[FLAVOR_4][0] == 4 and any(
        c["type"] == "Ready" and c["status"] == "True"
        for c in ko.isvc(k8s, "sb-on", namespace).get("status", {}).get("conditions", [])), timeout=180)

    nb, km = run_notebook(tmp_path, namespace=namespace, models=["sb-on", "sb-off"], cluster_queues="auto",
                          kubeconfig=workbench_kubeconfig, toggle="sb-off", follow_seconds=300, widgets="auto")

    assert km.kernel_spec.argv[0] == sys.executable
    # The cluster: the toggle wrote the stop annotation of sb-off, and only that.
    assert ko.isvc(k8s, "sb-off", namespace)["metadata"]["annotations"][ko.STOP] == "false"
    assert ko.STOP not in ko.isvc(k8s, "sb-on", namespace)["metadata"]["annotations"]
    assert "sb-off: off -> on (serving.kserve.io/stop: false)" in printed(nb, "toggle")
    # Before the toggle, the board showed it OFF.
    assert model_line(printed(nb, "board"), "sb-off").split()[3] == "OFF"

    # After: the board at its end shows the ClusterQueue's numbers, as the cluster has them now.
    header, board = printed(nb, "live").split("=== ", 1)[1].split("\n", 1)
    assert header == f"GPU Switchboard: namespace {namespace}, sb-off settled as PENDING ==="
    quota = gpu_quota(ko.get(k8s, ko.KUEUE, "ClusterQueue", cq))
    assert quota[FLAVOR_4] == (4, 4) and len(quota) == 2
    for flavor, (used, nominal) in quota.items():
        assert re.search(rf"^\s+{flavor}\s+[█░]+\s+{used}/{nominal}(\s|$)", board, re.M), board
    assert f"GPUs in use: {sum(u for u, _ in quota.values())}/{sum(n for _, n in quota.values())}" in board
    assert model_line(board, "sb-on").split()[3:5] == ["ON", FLAVOR_4]
    # ... and sb-off PENDING with Kueue's own words, then the arithmetic.
    message = pending_message(k8s, namespace, "sb-off")
    assert message and model_line(board, "sb-off").split(None, 4)[3:] == ["PENDING", message]
    assert "GPUs: 4 + 4 = 8 > 5 (sb-on + sb-off vs. the quota)" in board


def test_switchboard_with_widgets_shows_a_button_per_model_and_the_board(
        k8s: client.ApiClient, namespace: str, cq: str, workbench_kubeconfig: str, tmp_path: Path) -> None:
    ko.create(k8s, ko.inference_service("sb-off", namespace, 1, stopped=True))
    nb, _ = run_notebook(tmp_path, namespace=namespace, kubeconfig=workbench_kubeconfig, widgets=True,
                         follow_seconds=5)

    states = [model["state"] for model in
              nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"].values()]
    buttons = {s["description"]: s["button_style"] for s in states if s.get("_model_name") == "ButtonModel"}
    assert buttons == {"sb-off · 1 GPU · OFF": ""}
    boards = ["".join(o.get("text", "") for o in s["outputs"]) for s in states if s.get("_model_name") == "OutputModel"
              and s.get("outputs")]
    assert len(boards) == 1 and f"ClusterQueue {cq} (live usage of nvidia.com/gpu)" in boards[0]
    assert model_line(boards[0], "sb-off").split()[1:4] == ["1", "GPU", "OFF"]
    # Nothing was switched.
    assert ko.isvc(k8s, "sb-off", namespace)["metadata"]["annotations"][ko.STOP] == "true"
