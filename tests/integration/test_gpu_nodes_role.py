"""The gpu_nodes role through playbooks/provision.yml: GPU MachineSets made from the testbed's worker
MachineSet (as the installer leaves it on AWS), booted by the cloud simulator into GPU nodes."""
from __future__ import annotations

import contextlib
import json
import subprocess
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from kubernetes import client

from _machinesets import GROUP, NAMESPACE, VERSION, delete_machineset, get_machineset, nodes_of, scale
from conftest import BIN, ROOT, ansible_env

pytestmark = pytest.mark.integration

INFRA = "testbed-x7k2p"
WORKER = INFRA + "-worker-us-east-1a"
COPIED = ("ami", "subnet", "securityGroups", "iamInstanceProfile", "userDataSecret", "credentialsSecret", "tags",
          "placement", "metadataServiceOptions", "deviceIndex", "apiVersion", "kind")


def provider(ms: dict[str, Any]) -> dict[str, Any]:
    return ms["spec"]["template"]["spec"]["providerSpec"]["value"]


def machinesets(k8s: client.ApiClient) -> dict[str, dict[str, Any]]:
    items = client.CustomObjectsApi(k8s).list_namespaced_custom_object(GROUP, VERSION, NAMESPACE, "machinesets")
    return {m["metadata"]["name"]: m for m in items["items"]}


@pytest.fixture
def provision(k8s: client.ApiClient, tmp_path: Path) -> Iterator[Callable[..., dict[str, Any]]]:
    """Run provision.yml on the local inventory with a GPU table of unique names; returns the JSON
    callback's output. The GPU MachineSets the runs made are scaled to 0 and deleted afterwards."""
    suffix = uuid.uuid4().hex[:5]
    table = [
        {"name": f"gpu-g6-12xlarge-{suffix}", "replicas": 1, "instance_type": "g6.12xlarge", "gpus": 4,
         "root_volume_size": 200},
        {"name": f"gpu-g6-4xlarge-{suffix}", "replicas": 1, "instance_type": "g6.4xlarge", "gpus": 1,
         "root_volume_size": 500},
    ]
    before = set(machinesets(k8s))

    def run(*args: str, expect_fail: bool = False, **extra: Any) -> dict[str, Any]:
        extra_vars = tmp_path / f"vars-{uuid.uuid4().hex[:6]}.json"
        extra_vars.write_text(json.dumps({"gpuaas_machinesets": table, "gpu_nodes_create_machinesets": True,
                                          "gpu_nodes_name_from_infrastructure": True,
                                          "gpu_nodes_wait_timeout": 240, **extra}))
        proc = subprocess.run([str(BIN / "ansible-playbook"), "-i", "inventories/local", "playbooks/provision.yml",
                               "-e", f"@{extra_vars}", *args], capture_output=True, text=True,
                              env=ansible_env(None), cwd=ROOT, timeout=900)
        try:
            out = json.loads(proc.stdout)
        except ValueError:
            raise AssertionError(f"no JSON from ansible-playbook:\n{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}") from None
        assert (proc.returncode != 0) == expect_fail, json.dumps(out.get("stats"), indent=1) + proc.stdout[-4000:]
        out["_table"] = table
        return out
    try:
        yield run
    finally:
        for name in sorted(set(machinesets(k8s)) - before):
            with contextlib.suppress(client.ApiException):
                scale(k8s, name, 0)
            delete_machineset(k8s, name)


def task_results(out: dict[str, Any], name: str) -> list[dict[str, Any]]:
    """The per-item results of the task called `name` (empty when it did not run)."""
    found = []
    for play in out["plays"]:
        for task in play["tasks"]:
            if task["task"]["name"].split(" : ", 1)[-1] == name:  # "<role> : <task>"
                result = task["hosts"]["localhost"]
                found.extend(result["results"] if "results" in result else [result])
    return found


def changed(out: dict[str, Any]) -> int:
    return out["stats"]["localhost"]["changed"]


def test_check_mode_writes_nothing(k8s: client.ApiClient, provision: Callable[..., dict[str, Any]]) -> None:
    before = machinesets(k8s)
    out = provision("--check", "--diff")
    created = task_results(out, "Create the missing GPU MachineSets from the worker MachineSet")
    assert [r["item"]["name"] for r in created] == [f"{INFRA}-{e['name']}-us-east-1a" for e in out["_table"]]
    assert all(r["changed"] for r in created)
    # Server-side dry run: the API server answered with the object it would store.
    assert [r["result"]["spec"]["replicas"] for r in created] == [0, 0]
    assert all(r.get("skipped") for r in task_results(out, "Scale the GPU MachineSets"))
    after = machinesets(k8s)
    assert set(after) == set(before)
    assert {n: m["metadata"]["resourceVersion"] for n, m in after.items() if not n.startswith(INFRA + "-gpu")} == \
        {n: m["metadata"]["resourceVersion"] for n, m in before.items() if not n.startswith(INFRA + "-gpu")}


def test_gpu_machinesets_from_the_worker_boot_gpu_nodes_and_a_second_run_changes_nothing(
        k8s: client.ApiClient, provision: Callable[..., dict[str, Any]]) -> None:
    worker = get_machineset(k8s, WORKER)
    out = provision()
    table = out["_table"]
    names = [f"{INFRA}-{e['name']}-us-east-1a" for e in table]
    assert [r["item"]["source"] for r in task_results(out, "Create the missing GPU MachineSets from the worker "
                                                            "MachineSet")] == [WORKER, WORKER]

    for entry, name, volume, figures in zip(table, names, (200, 500), (("48", "196608"), ("16", "65536"))):
        ms = get_machineset(k8s, name)
        value = provider(ms)
        for field in COPIED:
            assert value[field] == provider(worker)[field], field
        assert value["instanceType"] == entry["instance_type"]
        assert value["blockDevices"] == [{"ebs": {"encrypted": True, "iops": 0, "kmsKey": {"arn": ""},
                                                  "volumeSize": volume, "volumeType": "gp3"}}]
        assert ms["metadata"]["labels"] == {"machine.openshift.io/cluster-api-cluster": INFRA}
        assert ms["metadata"]["annotations"] == {"machine.openshift.io/GPU": str(entry["gpus"]),
                                                 "machine.openshift.io/vCPU": figures[0],
                                                 "machine.openshift.io/memoryMb": figures[1]}
        assert ms["spec"]["selector"]["matchLabels"] == {"machine.openshift.io/cluster-api-cluster": INFRA,
                                                         "machine.openshift.io/cluster-api-machineset": name}
        assert ms["spec"]["template"]["spec"]["taints"] == [
            {"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}]
        assert ms["spec"]["replicas"] == 1 and ms["status"].get("readyReplicas") == 1

        (node,) = nodes_of(k8s, name)
        labels = node.metadata.labels
        assert any(c.type == "Ready" and c.status == "True" for c in node.status.conditions)
        assert node.status.allocatable["nvidia.com/gpu"] == str(entry["gpus"])
        assert labels["node-role.kubernetes.io/gpu"] == ""
        assert labels["node.kubernetes.io/instance-type"] == entry["instance_type"]
        assert labels["topology.kubernetes.io/zone"] == "us-east-1a"
        assert node.status.capacity["ephemeral-storage"] == f"{volume}Gi"
        assert [(t.key, t.value, t.effect) for t in node.spec.taints] == [("nvidia.com/gpu", "true", "NoSchedule")]
    generations = {n: get_machineset(k8s, n)["metadata"]["generation"] for n in names}
    assert get_machineset(k8s, WORKER)["metadata"]["generation"] == worker["metadata"]["generation"]

    again = provision()
    assert changed(again) == 0, json.dumps(again["stats"])
    assert task_results(again, "Create the missing GPU MachineSets from the worker MachineSet") == []
    assert {n: get_machineset(k8s, n)["metadata"]["generation"] for n in names} == generations


def test_a_zone_without_a_worker_machineset_fails_naming_the_zones(
        k8s: client.ApiClient, provision: Callable[..., dict[str, Any]]) -> None:
    before = set(machinesets(k8s))
    out = provision(expect_fail=True, gpu_nodes_default_availability_zone="us-east-1c")
    (failed,) = task_results(out, "Resolve the GPU MachineSets (names, zones, and the objects to create)")
    assert ("availability zone us-east-1c has no worker MachineSet to copy; zones with one: us-east-1a"
            in failed["msg"]), failed["msg"]
    assert set(machinesets(k8s)) == before


def test_up_creates_what_the_installer_leaves_once_and_never_overwrites_it(k8s: client.ApiClient) -> None:
    import install  # testbed/, on sys.path through conftest
    import testbed

    custom = client.CustomObjectsApi(k8s)
    infra = custom.get_cluster_custom_object("config.openshift.io", "v1", "infrastructures", "cluster")
    assert (infra["status"]["infrastructureName"], infra["status"]["platformStatus"]) == (
        INFRA, {"type": "AWS", "aws": {"region": "us-east-1"}})
    worker = get_machineset(k8s, WORKER)
    assert worker["spec"]["replicas"] == 0 and provider(worker)["ami"]["id"].startswith("ami-")
    assert install.ensure_openshift_objects(k8s, testbed.API) == []
    assert get_machineset(k8s, WORKER)["metadata"]["resourceVersion"] == worker["metadata"]["resourceVersion"]

    custom.delete_cluster_custom_object("config.openshift.io", "v1", "infrastructures", "cluster")
    assert install.ensure_openshift_objects(k8s, testbed.API) == ["Infrastructure cluster"]
    again = custom.get_cluster_custom_object("config.openshift.io", "v1", "infrastructures", "cluster")
    assert again["status"]["infrastructureName"] == INFRA and again["status"]["apiServerURL"] == testbed.API
