"""Unit tests of the cloud simulator's pure logic (no cluster needed)."""
from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "testbed"))

import instance_types_sim as it  # noqa: E402


def machine(name: str, created: str = "2026-01-01T00:00:00Z", **status: object) -> dict:
    return {"metadata": {"name": name, "namespace": "ns", "creationTimestamp": created,
                         "labels": {"set": "a"}},
            "status": dict(status)}


READY = {"status": {"conditions": [{"type": "Ready", "status": "True"}]}}
NOT_READY = {"status": {"conditions": [{"type": "Ready", "status": "False"}]}}


@pytest.mark.parametrize("name,vcpu,mem,gpus,product", [
    ("g6.xlarge", 4, 16, 1, "NVIDIA-L4"),
    ("g6.4xlarge", 16, 64, 1, "NVIDIA-L4"),
    ("g6.12xlarge", 48, 192, 4, "NVIDIA-L4"),
    ("g6.48xlarge", 192, 768, 8, "NVIDIA-L4"),
    ("g5.12xlarge", 48, 192, 4, "NVIDIA-A10G"),
    ("p4d.24xlarge", 96, 1152, 8, "NVIDIA-A100-SXM4-40GB"),
    ("p5.48xlarge", 192, 2048, 8, "NVIDIA-H100-80GB-HBM3"),
    ("m6i.xlarge", 4, 16, 0, ""),
])
def test_instance_table_matches_aws(name: str, vcpu: int, mem: int, gpus: int, product: str) -> None:
    t = it.INSTANCE_TYPES[name]
    assert (t.vcpu, t.memory_gib, t.gpus, t.gpu_product) == (vcpu, mem, gpus, product)


def test_gpu_node_resources_and_labels() -> None:
    t = it.INSTANCE_TYPES["g6.12xlarge"]
    capacity, allocatable = it.node_resources(t)
    assert capacity == {"cpu": "48", "memory": f"{192 * 1024 * 1024}Ki", "pods": "110",
                        "ephemeral-storage": "120Gi", "nvidia.com/gpu": "4"}
    assert allocatable["nvidia.com/gpu"] == "4"
    assert allocatable["cpu"] == "47500m"
    labels = it.node_labels("g6.12xlarge", t, "ip-10-0-130-7.ec2.internal", "us-east-1", "us-east-1a",
                            {"node-role.kubernetes.io/gpu": ""})
    assert labels["nvidia.com/gpu.count"] == "4"
    assert labels["nvidia.com/gpu.memory"] == "23034"
    assert labels["nvidia.com/gpu.present"] == "true"
    assert labels["node.kubernetes.io/instance-type"] == labels["beta.kubernetes.io/instance-type"] == "g6.12xlarge"
    assert labels["node-role.kubernetes.io/gpu"] == "" and labels["type"] == "kwok"


def test_cpu_node_has_no_gpu() -> None:
    t = it.INSTANCE_TYPES["m6i.xlarge"]
    capacity, allocatable = it.node_resources(t)
    assert "nvidia.com/gpu" not in capacity and "nvidia.com/gpu" not in allocatable
    labels = it.node_labels("m6i.xlarge", t, "h", "us-east-1", "us-east-1a", {})
    assert not any(k.startswith("nvidia.com/") for k in labels)


def test_names() -> None:
    rng = random.Random(1)
    name = it.machine_name("gpu-l4-4x", rng)
    assert name.startswith("gpu-l4-4x-") and len(name) == len("gpu-l4-4x-") + 5
    assert name[-5:].isalnum() and name[-5:] == name[-5:].lower()
    assert it.node_name("10.0.130.7", "us-east-1") == "ip-10-0-130-7.ec2.internal"
    assert it.node_name("10.0.130.7", "eu-west-1") == "ip-10-0-130-7.eu-west-1.compute.internal"
    assert it.pick_ip(rng, []) .startswith("10.0.")


def test_pick_ip_avoids_taken() -> None:
    rng = random.Random(3)
    first = it.pick_ip(random.Random(3), [])
    assert it.pick_ip(rng, [first]) != first


def test_config_defaults_and_validation() -> None:
    assert it.parse_config("") == it.SimConfig(3.0, frozenset())
    cfg = it.parse_config('{"boot_delay_seconds": 0.5, "unavailable_instance_types": ["g6.12xlarge"]}')
    assert cfg.boot_delay_seconds == 0.5 and cfg.unavailable_instance_types == {"g6.12xlarge"}
    for bad in ('[]', '{"boot_delay_seconds": -1}', '{"unavailable_instance_types": "g6"}'):
        with pytest.raises(ValueError):
            it.parse_config(bad)


def test_capacity_error_reads_like_aws() -> None:
    reason, message = it.capacity_error("g6.12xlarge", "us-east-1a")
    assert reason == "CreateError"
    assert message.startswith("InsufficientInstanceCapacity: We currently do not have sufficient "
                              "g6.12xlarge capacity in the Availability Zone you requested")


def test_selector_string() -> None:
    assert it.selector_string(None) == ""
    sel = {"matchLabels": {"b": "2", "a": "1"},
           "matchExpressions": [{"key": "c", "operator": "In", "values": ["y", "x"]},
                                {"key": "d", "operator": "DoesNotExist"},
                                {"key": "e", "operator": "Exists"},
                                {"key": "f", "operator": "NotIn", "values": ["z"]}]}
    assert it.selector_string(sel) == "a=1,b=2,c in (x,y),!d,e,f notin (z)"
    with pytest.raises(ValueError):
        it.selector_string({"matchExpressions": [{"key": "a", "operator": "Gt"}]})


def test_deletion_order_policies() -> None:
    ms = [machine("old", "2026-01-01T00:00:00Z", nodeRef={"name": "n1"}),
          machine("mid", "2026-01-02T00:00:00Z", nodeRef={"name": "n2"}),
          machine("new", "2026-01-03T00:00:00Z", nodeRef={"name": "n3"})]
    rng = random.Random(0)
    assert [m["metadata"]["name"] for m in it.deletion_order(ms, "Newest", rng)] == ["new", "mid", "old"]
    assert [m["metadata"]["name"] for m in it.deletion_order(ms, "Oldest", rng)] == ["old", "mid", "new"]
    assert sorted(m["metadata"]["name"] for m in it.deletion_order(ms, None, rng)) == ["mid", "new", "old"]
    with pytest.raises(ValueError):
        it.deletion_order(ms, "Largest", rng)


def test_deletion_order_prefers_broken_and_marked_machines() -> None:
    marked = machine("marked", "2026-01-01T00:00:00Z", nodeRef={"name": "n"})
    marked["metadata"]["annotations"] = {it.DELETE_MACHINE_ANNOTATION: "true"}
    failed = machine("failed", "2026-01-01T00:00:00Z", phase="Failed", errorReason="CreateError")
    booting = machine("booting", "2026-01-01T00:00:00Z", phase="Provisioning")
    running = machine("running", "2026-01-05T00:00:00Z", nodeRef={"name": "n"}, phase="Running")
    order = it.deletion_order([running, booting, failed, marked], "Newest", random.Random(0))
    assert [m["metadata"]["name"] for m in order] == ["marked", "failed", "booting", "running"]


def test_machineset_status_omits_zero_counters() -> None:
    ms = {"metadata": {"generation": 4},
          "spec": {"replicas": 0, "selector": {"matchLabels": {"set": "a"}},
                   "template": {"metadata": {"labels": {"set": "a"}}}}}
    assert it.machineset_status(ms, [], {}) == {"observedGeneration": 4, "labelSelector": "set=a"}


def test_machineset_status_counts_ready_nodes_and_skips_deleting() -> None:
    ms = {"metadata": {"generation": 2},
          "spec": {"replicas": 3, "selector": {"matchLabels": {"set": "a"}},
                   "template": {"metadata": {"labels": {"set": "a"}}}}}
    gone = machine("gone")
    gone["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    unlabelled = machine("plain")
    unlabelled["metadata"]["labels"] = {}
    machines = [machine("up"), machine("booting"), unlabelled, gone]
    status = it.machineset_status(ms, machines, {"up": READY, "booting": NOT_READY, "gone": READY})
    assert status == {"replicas": 3, "fullyLabeledReplicas": 2, "readyReplicas": 1,
                      "availableReplicas": 1, "observedGeneration": 2, "labelSelector": "set=a"}


def test_status_patch_clears_counters_that_became_zero() -> None:
    current = {"replicas": 1, "readyReplicas": 1, "observedGeneration": 1, "labelSelector": "set=a"}
    wanted = {"observedGeneration": 2, "labelSelector": "set=a"}
    assert it.status_patch(current, wanted, it.MACHINESET_STATUS_KEYS) == {
        "replicas": None, "readyReplicas": None, "observedGeneration": 2}
    assert it.status_patch(wanted, wanted, it.MACHINESET_STATUS_KEYS) == {}


def test_node_ready_and_times() -> None:
    assert it.is_node_ready(READY) and not it.is_node_ready(NOT_READY) and not it.is_node_ready(None)
    assert it.parse_time("2026-01-01T00:00:05Z").second == 5
    assert it.placement({"spec": {}}) == ("us-east-1", "us-east-1a")
    assert it.placement({"spec": {"providerSpec": {"value": {"placement": {
        "region": "eu-west-1", "availabilityZone": "eu-west-1b"}}}}}) == ("eu-west-1", "eu-west-1b")


def aws_machine(**value: object) -> dict:
    """A Machine as a GPU MachineSet made from the installer's worker template stamps it."""
    provider = {"apiVersion": "machine.openshift.io/v1beta1", "kind": "AWSMachineProviderConfig",
                "ami": {"id": "ami-0fbc8be8796dc1df5"}, "instanceType": "g6.12xlarge",
                "blockDevices": [{"ebs": {"encrypted": True, "iops": 0, "kmsKey": {"arn": ""},
                                          "volumeSize": 500, "volumeType": "gp3"}}],
                "securityGroups": [{"filters": [{"name": "tag:Name", "values": ["testbed-x7k2p-node"]}]}],
                "subnet": {"filters": [{"name": "tag:Name", "values": ["testbed-x7k2p-subnet-private-us-east-1a"]}]},
                "placement": {"availabilityZone": "us-east-1a", "region": "us-east-1"},
                "metadataServiceOptions": {}, "iamInstanceProfile": {"id": "testbed-x7k2p-worker-profile"},
                "userDataSecret": {"name": "worker-user-data"}, "credentialsSecret": {"name": "aws-cloud-credentials"},
                "tags": [{"name": "kubernetes.io/cluster/testbed-x7k2p", "value": "owned"}]}
    provider.update(value)
    return {"metadata": {"name": "gpu-a-x1y2z", "labels": {it.CLUSTER_ID_LABEL: "testbed-x7k2p"}},
            "spec": {"providerSpec": {"value": provider}}}


def test_a_full_aws_provider_spec_launches_with_its_root_volume_as_ephemeral_storage() -> None:
    m = aws_machine()
    assert it.launch_error(m) is None
    assert it.placement(m) == ("us-east-1", "us-east-1a")
    capacity, allocatable = it.node_resources(it.INSTANCE_TYPES["g6.12xlarge"], it.root_volume_gib(m))
    assert (capacity["ephemeral-storage"], allocatable["ephemeral-storage"]) == ("500Gi", "490Gi")
    named = aws_machine(blockDevices=[{"deviceName": "/dev/xvdb", "ebs": {"volumeSize": 50}}])
    assert it.root_volume_gib(named) == it.ROOT_VOLUME_GIB


@pytest.mark.parametrize("change, message", [
    ({"ami": {}}, "gpu-a-x1y2z: reconciler failed to Create machine: failed to launch instance: error getting AMI: "
                  "AMI ID or AMI filters need to be specified"),
    ({"securityGroups": []}, "failed to launch instance: error getting security groups IDs: no security group found"),
])
def test_the_actuators_refusals(change: dict, message: str) -> None:
    reason, text = it.launch_error(aws_machine(**change))
    assert reason == "InvalidConfiguration" and text.endswith(message)


def test_a_machine_without_the_cluster_label_is_refused() -> None:
    m = aws_machine()
    m["metadata"]["labels"] = {}
    assert it.launch_error(m) == ("InvalidConfiguration", 'gpu-a-x1y2z: reconciler failed to Create machine: gpu-a-x1y2z: '
                                  'failed validating machine provider spec: gpu-a-x1y2z: missing '
                                  '"machine.openshift.io/cluster-api-cluster" label')


def test_the_simulator_and_the_gpu_machineset_filter_agree_on_aws_figures() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "collections"))
    from ansible_collections.rhoai.gpuaas.plugins.module_utils.machineset_template import INSTANCE_FIGURES

    shared = sorted(set(INSTANCE_FIGURES) & set(it.INSTANCE_TYPES))
    assert {"g6.4xlarge", "g6.12xlarge"} <= set(shared)
    for name in shared:
        t = it.INSTANCE_TYPES[name]
        assert INSTANCE_FIGURES[name] == (t.vcpu, t.memory_gib * 1024, t.gpus), name
