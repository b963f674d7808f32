# -*- coding: utf-8 -*-
"""GPU MachineSets made from a worker MachineSet (filter gpu_machineset, module_utils machineset_template)."""

from __future__ import annotations

import copy

import pytest

from ansible_collections.rhoai.gpuaas.plugins.module_utils import machineset_template as t

INFRA = "demo-x7k2p"


def worker(zone: str = "us-east-2a", name: str = "", region: str = "us-east-2") -> dict:
    """A worker MachineSet as OpenShift 4.x's installer writes it on AWS, as read back from the API
    (server fields, status, and the annotations machine-api-provider-aws's MachineSet controller adds)."""
    name = name or "{0}-worker-{1}".format(INFRA, zone)
    return {
        "apiVersion": "machine.openshift.io/v1beta1",
        "kind": "MachineSet",
        "metadata": {
            "name": name, "namespace": "openshift-machine-api",
            "uid": "5b1c7f5e-2a7d-4c55-9a7e-0f3f1c2d4e5f", "resourceVersion": "48211", "generation": 3,
            "creationTimestamp": "2025-11-03T09:12:44Z",
            "labels": {"machine.openshift.io/cluster-api-cluster": INFRA},
            "annotations": {"capacity.cluster-autoscaler.kubernetes.io/labels": "kubernetes.io/arch=amd64",
                            "machine.openshift.io/GPU": "0", "machine.openshift.io/memoryMb": "16384",
                            "machine.openshift.io/vCPU": "4"},
            "managedFields": [{"manager": "cluster-bootstrap", "operation": "Apply"}],
        },
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"machine.openshift.io/cluster-api-cluster": INFRA,
                                         "machine.openshift.io/cluster-api-machineset": name}},
            "template": {
                "metadata": {"labels": {"machine.openshift.io/cluster-api-cluster": INFRA,
                                        "machine.openshift.io/cluster-api-machine-role": "worker",
                                        "machine.openshift.io/cluster-api-machine-type": "worker",
                                        "machine.openshift.io/cluster-api-machineset": name}},
                "spec": {
                    "lifecycleHooks": {},
                    "metadata": {},
                    "providerSpec": {"value": {
                        "apiVersion": "machine.openshift.io/v1beta1",
                        "kind": "AWSMachineProviderConfig",
                        "ami": {"id": "ami-0c5d3e3a5b1f6e2a7"},
                        "blockDevices": [{"ebs": {"encrypted": True, "iops": 0, "kmsKey": {"arn": ""},
                                                  "volumeSize": 120, "volumeType": "gp3"}}],
                        "credentialsSecret": {"name": "aws-cloud-credentials"},
                        "deviceIndex": 0,
                        "iamInstanceProfile": {"id": INFRA + "-worker-profile"},
                        "instanceType": "m6i.xlarge",
                        "metadata": {"creationTimestamp": None},
                        "metadataServiceOptions": {"authentication": "Required"},
                        "placement": {"availabilityZone": zone, "region": region},
                        "securityGroups": [
                            {"filters": [{"name": "tag:Name", "values": [INFRA + "-node"]}]},
                            {"filters": [{"name": "tag:Name", "values": [INFRA + "-lb"]}]}],
                        "subnet": {"filters": [{"name": "tag:Name",
                                                "values": ["{0}-subnet-private-{1}".format(INFRA, zone)]}]},
                        "tags": [{"name": "kubernetes.io/cluster/" + INFRA, "value": "owned"},
                                 {"name": "cost-center", "value": "ai-demo"}],
                        "userDataSecret": {"name": "worker-user-data"},
                    }},
                },
            },
        },
        "status": {"replicas": 2, "readyReplicas": 2, "availableReplicas": 2, "fullyLabeledReplicas": 2,
                   "observedGeneration": 3},
    }


BIG = {"name": "gpu-g6-12xlarge", "replicas": 1, "instance_type": "g6.12xlarge", "gpus": 4, "root_volume_size": 200}
SMALL = {"name": "gpu-g6-4xlarge", "replicas": 1, "instance_type": "g6.4xlarge", "gpus": 1, "root_volume_size": 500}
CLUSTER = [worker("us-east-2a"), worker("us-east-2b"), worker("us-east-2c")]


def plan(machinesets=None, entries=(BIG, SMALL), **kw):
    kw.setdefault("infrastructure_name", INFRA)
    kw.setdefault("create", True)
    return t.plan(CLUSTER if machinesets is None else machinesets, list(entries), **kw)


def test_the_gpu_machineset_copies_the_workers_provider_spec_and_sets_the_gpu_fields() -> None:
    source = worker("us-east-2a")
    ms = plan()[0]["definition"]
    value, src = ms["spec"]["template"]["spec"]["providerSpec"]["value"], t.provider_value(source)
    for field in ("ami", "subnet", "securityGroups", "iamInstanceProfile", "userDataSecret", "credentialsSecret",
                  "tags", "placement", "metadataServiceOptions", "deviceIndex", "apiVersion", "kind"):
        assert value[field] == src[field], field
    assert value["instanceType"] == "g6.12xlarge"
    assert value["blockDevices"] == [{"ebs": {"encrypted": True, "iops": 0, "kmsKey": {"arn": ""},
                                              "volumeSize": 200, "volumeType": "gp3"}}]
    assert ms["metadata"] == {
        "name": INFRA + "-gpu-g6-12xlarge-us-east-2a", "namespace": "openshift-machine-api",
        "labels": {"machine.openshift.io/cluster-api-cluster": INFRA},
        "annotations": {"machine.openshift.io/GPU": "4", "machine.openshift.io/vCPU": "48",
                        "machine.openshift.io/memoryMb": "196608"}}
    assert "status" not in ms
    assert ms["spec"]["replicas"] == 0
    name = ms["metadata"]["name"]
    assert ms["spec"]["selector"]["matchLabels"] == {"machine.openshift.io/cluster-api-cluster": INFRA,
                                                     "machine.openshift.io/cluster-api-machineset": name}
    assert ms["spec"]["template"]["metadata"]["labels"] == {
        "machine.openshift.io/cluster-api-cluster": INFRA, "machine.openshift.io/cluster-api-machine-role": "worker",
        "machine.openshift.io/cluster-api-machine-type": "worker", "machine.openshift.io/cluster-api-machineset": name}
    machine = ms["spec"]["template"]["spec"]
    assert machine["metadata"] == {"labels": {"node-role.kubernetes.io/gpu": ""}}
    assert machine["taints"] == [{"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}]
    assert machine["lifecycleHooks"] == {}


def test_the_worker_is_not_modified() -> None:
    cluster = [worker("us-east-2a")]
    before = copy.deepcopy(cluster)
    plan(cluster)
    assert cluster == before


def test_the_small_node_gets_its_own_instance_type_volume_and_figures() -> None:
    ms = plan()[1]["definition"]
    value = ms["spec"]["template"]["spec"]["providerSpec"]["value"]
    assert value["instanceType"] == "g6.4xlarge"
    assert value["blockDevices"][0]["ebs"]["volumeSize"] == 500
    assert ms["metadata"]["annotations"] == {"machine.openshift.io/GPU": "1", "machine.openshift.io/vCPU": "16",
                                             "machine.openshift.io/memoryMb": "65536"}


def test_the_zone_is_discovered_from_the_first_worker_zone_when_none_is_named() -> None:
    shuffled = [worker("us-east-2c"), worker("us-east-2a"), worker("us-east-2b")]
    resolved = plan(shuffled)
    assert [r["availability_zone"] for r in resolved] == ["us-east-2a", "us-east-2a"]
    assert [r["source"] for r in resolved] == [INFRA + "-worker-us-east-2a"] * 2
    assert [r["name"] for r in resolved] == [INFRA + "-gpu-g6-12xlarge-us-east-2a", INFRA + "-gpu-g6-4xlarge-us-east-2a"]


def test_a_named_zone_takes_that_zones_worker_and_subnet() -> None:
    resolved = plan(entries=[dict(BIG, availability_zone="us-east-2b")])[0]
    value = t.provider_value(resolved["definition"])
    assert resolved["name"] == INFRA + "-gpu-g6-12xlarge-us-east-2b"
    assert value["placement"] == {"availabilityZone": "us-east-2b", "region": "us-east-2"}
    assert value["subnet"]["filters"][0]["values"] == [INFRA + "-subnet-private-us-east-2b"]


def test_a_zone_without_a_worker_fails_naming_the_zones_that_exist() -> None:
    with pytest.raises(t.MachineSetTemplateError) as err:
        plan(entries=[dict(BIG, availability_zone="us-east-2d")])
    assert err.value.msg == ("availability zone us-east-2d has no worker MachineSet to copy; zones with one: "
                             "us-east-2a, us-east-2b, us-east-2c. Set availability_zone to one of them (or leave it "
                             "unset to use us-east-2a)")
    with pytest.raises(t.MachineSetTemplateError, match="us-east-2d has no worker"):
        plan(default_zone="us-east-2d")


def test_gpu_and_tainted_machinesets_are_not_worker_templates() -> None:
    gpu = plan([worker("us-east-2b")])[0]["definition"]
    gpu["metadata"]["name"] = "old-gpu-us-east-2a"
    gpu["spec"]["template"]["spec"]["providerSpec"]["value"]["placement"]["availabilityZone"] = "us-east-2a"
    infra = worker("us-east-2a", name=INFRA + "-infra-us-east-2a")
    infra["spec"]["template"]["spec"]["taints"] = [{"key": "node-role.kubernetes.io/infra", "effect": "NoSchedule"}]
    infra_role = worker("us-east-2a", name=INFRA + "-other-us-east-2a")
    infra_role["spec"]["template"]["metadata"]["labels"]["machine.openshift.io/cluster-api-machine-role"] = "infra"
    cluster = [gpu, infra, infra_role, worker("us-east-2b")]
    assert [m["metadata"]["name"] for m in t.worker_machinesets(cluster)] == [INFRA + "-worker-us-east-2b"]
    with pytest.raises(t.MachineSetTemplateError, match="zones with one: us-east-2b"):
        plan(cluster, default_zone="us-east-2a")


def test_an_existing_gpu_machineset_is_left_alone() -> None:
    first = plan()
    live = CLUSTER + [dict(first[0]["definition"], spec=dict(first[0]["definition"]["spec"], replicas=3))]
    again = plan(live)
    assert (again[0]["exists"], again[0]["definition"]) == (True, None)
    assert again[1]["exists"] is False and again[1]["definition"] == first[1]["definition"]


def test_an_existing_machineset_with_a_named_zone_needs_no_worker() -> None:
    gpu = plan()[0]["definition"]
    resolved = plan([gpu], entries=[dict(BIG, availability_zone="us-east-2a")])
    assert resolved[0]["exists"] and resolved[0]["source"] is None


def test_without_create_only_names_and_zones_are_resolved() -> None:
    resolved = plan(create=False)
    assert [r["definition"] for r in resolved] == [None, None]
    assert resolved[0]["availability_zone"] == "us-east-2a"
    named = plan([], entries=[dict(BIG, availability_zone="eu-west-1b")], create=False)
    assert named[0]["name"] == INFRA + "-gpu-g6-12xlarge-eu-west-1b" and named[0]["source"] is None


def test_no_infrastructure_name_means_the_entry_name_is_the_machineset_name() -> None:
    resolved = plan(infrastructure_name="")
    assert [r["name"] for r in resolved] == ["gpu-g6-12xlarge", "gpu-g6-4xlarge"]
    assert resolved[0]["definition"]["spec"]["selector"]["matchLabels"][t.MACHINESET_LABEL] == "gpu-g6-12xlarge"


def test_the_name_pattern_and_passed_through_keys() -> None:
    resolved = plan(entries=[BIG], name_pattern="<infra>-<instance_type>-<az>")[0]
    assert resolved["name"] == INFRA + "-g6-12xlarge-us-east-2a"
    assert resolved["replicas"] == 1 and resolved["gpus"] == 4


def test_source_names_the_worker_to_copy() -> None:
    extra = worker("us-east-2b", name="custom-workers-2b")
    extra["spec"]["template"]["spec"]["providerSpec"]["value"]["ami"] = {"id": "ami-0123456789abcdef0"}
    resolved = plan(CLUSTER + [extra], source="custom-workers-2b")
    assert {r["availability_zone"] for r in resolved} == {"us-east-2b"}
    assert t.provider_value(resolved[0]["definition"])["ami"] == {"id": "ami-0123456789abcdef0"}
    with pytest.raises(t.MachineSetTemplateError, match="its subnet belongs to us-east-2b"):
        plan(CLUSTER + [extra], entries=[dict(BIG, availability_zone="us-east-2a")], source="custom-workers-2b")
    with pytest.raises(t.MachineSetTemplateError, match="'nope' does not exist; worker MachineSets: demo-x7k2p-worker-us-east-2a"):
        plan(source="nope")


def test_several_workers_in_a_zone_prefer_the_installers_or_ask() -> None:
    extra = worker("us-east-2a", name="custom-workers-2a")
    assert plan([extra, worker("us-east-2a")])[0]["source"] == INFRA + "-worker-us-east-2a"
    several = r"several worker MachineSets in us-east-2a \(custom-workers-2a, other-2a\); name the one to copy with gpu_"
    with pytest.raises(t.MachineSetTemplateError, match=several):
        plan([extra, worker("us-east-2a", name="other-2a")])


def test_no_worker_at_all_is_an_error_naming_the_variable() -> None:
    none = "no worker MachineSet to copy .* found none. Name one with gpu_nodes_source_machineset"
    with pytest.raises(t.MachineSetTemplateError, match=none):
        plan([])


def test_a_worker_that_is_not_on_aws_or_lacks_its_network_is_refused() -> None:
    azure = worker()
    t.provider_value(azure)["kind"] = "AzureMachineProviderSpec"
    with pytest.raises(t.MachineSetTemplateError, match="providerSpec kind 'AzureMachineProviderSpec', not AWSMachine"):
        plan([azure])
    bare = worker()
    del t.provider_value(bare)["ami"]
    del t.provider_value(bare)["subnet"]
    with pytest.raises(t.MachineSetTemplateError, match="lacks providerSpec.value ami, subnet"):
        plan([bare])


def test_gpus_that_contradict_the_instance_type_are_refused() -> None:
    with pytest.raises(t.MachineSetTemplateError, match="instance type g6.4xlarge has 1 GPU.*gpus is 4"):
        plan(entries=[dict(SMALL, gpus=4)])


def test_an_unknown_instance_type_gets_only_the_gpu_annotation() -> None:
    ms = plan(entries=[dict(BIG, instance_type="g7.12xlarge")])[0]["definition"]
    assert ms["metadata"]["annotations"] == {"machine.openshift.io/GPU": "4"}


def test_root_volume_without_size_keeps_the_workers_and_a_missing_root_device_is_added() -> None:
    kept = plan(entries=[dict(BIG, root_volume_size=None)])[0]["definition"]
    assert t.provider_value(kept)["blockDevices"][0]["ebs"]["volumeSize"] == 120
    extra_disk = worker()
    t.provider_value(extra_disk)["blockDevices"] = [{"deviceName": "/dev/xvdb", "ebs": {"volumeSize": 50}}]
    ms = plan([extra_disk], entries=[BIG], root_volume_type="io2")[0]["definition"]
    assert t.provider_value(ms)["blockDevices"] == [{"ebs": {"volumeType": "io2", "volumeSize": 200}},
                                                    {"deviceName": "/dev/xvdb", "ebs": {"volumeSize": 50}}]


@pytest.mark.parametrize("entry, message", [
    (dict(BIG, root_volume_size="big"), "root_volume_size must be a number of GiB"),
    (dict(BIG, root_volume_size=4), "root_volume_size must be a number of GiB"),
    ({"name": "x", "gpus": 1}, "lacks 'instance_type'"),
    (dict(BIG, replicas=-1), r"entry 'gpu-g6-12xlarge': replicas must be 0 or more, got -1"),
    (dict(BIG, instance_type="p9.huge", gpus=-2), r"entry 'gpu-g6-12xlarge': gpus must be 0 or more, got -2"),
    (dict(BIG, name="GPU_Big"), "is not a valid name and label value"),
    (dict(BIG, name="g" * 45), "is not a valid name and label value"),
])
def test_bad_entries_are_refused_before_anything_is_built(entry, message) -> None:
    with pytest.raises(t.MachineSetTemplateError, match=message):
        plan(entries=[entry])


def test_two_entries_with_one_name_are_refused() -> None:
    with pytest.raises(t.MachineSetTemplateError, match="two gpu_nodes_machinesets entries resolve to"):
        plan(entries=[BIG, dict(BIG, instance_type="g6.24xlarge")])


def test_a_bad_volume_type_is_refused() -> None:
    with pytest.raises(t.MachineSetTemplateError, match="gpu_nodes_root_volume_type must be one of"):
        plan(root_volume_type="gp9")


def test_the_taint_is_not_doubled_and_other_taints_stay() -> None:
    src = worker()
    src["spec"]["template"]["spec"]["taints"] = [{"key": "nvidia.com/gpu", "value": "x", "effect": "NoSchedule"},
                                                 {"key": "dedicated", "value": "ai", "effect": "NoExecute"}]
    ms = t.gpu_machineset(src, "n", BIG)
    assert ms["spec"]["template"]["spec"]["taints"] == [
        {"key": "dedicated", "value": "ai", "effect": "NoExecute"},
        {"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}]


def test_the_filter_reports_the_message() -> None:
    from ansible.errors import AnsibleFilterError
    from ansible_collections.rhoai.gpuaas.plugins.filter.gpu_machineset import FilterModule

    gpu_filter = FilterModule().filters()["gpu_machineset"]
    assert gpu_filter(CLUSTER, [BIG], infrastructure_name=INFRA, create=True)[0]["definition"]["kind"] == "MachineSet"
    with pytest.raises(AnsibleFilterError, match="zones with one: us-east-2a"):
        gpu_filter(CLUSTER, [dict(BIG, availability_zone="us-west-2a")], create=True)
