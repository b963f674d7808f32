"""Pure logic of the cloud simulator: AWS instance types and MachineSet bookkeeping.

Nothing here talks to a cluster, so the rules the simulator applies (what a Node of a
given instance type looks like, which Machines go first on scale down, what the
MachineSet status says) can be unit-tested on their own. The numbers are AWS's published
vCPU/memory/GPU figures; GPU labels mimic what NVIDIA GPU feature discovery puts on nodes.
"""

from __future__ import annotations

import json
import random
import string
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping

GPU_RESOURCE = "nvidia.com/gpu"
MACHINE_ANNOTATION = "machine.openshift.io/machine"
KWOK_ANNOTATION = "kwok.x-k8s.io/node"
DELETE_MACHINE_ANNOTATION = "machine.openshift.io/delete-machine"
MACHINE_FINALIZER = "machine.machine.openshift.io"

# What OpenShift reserves for the system on a worker (kubelet system-reserved), so
# allocatable is a little below capacity, as on a real node.
RESERVED_MILLICPU = 500
RESERVED_MEMORY_MIB = 1024
# The installer's default root volume; the kubelet keeps some of it for itself.
ROOT_VOLUME_GIB = 120
RESERVED_EPHEMERAL_GIB = 10
CLUSTER_ID_LABEL = "machine.openshift.io/cluster-api-cluster"
MAX_PODS = 110
# The MachineSet status fields the simulator owns (and clears when they drop to 0).
MACHINESET_STATUS_KEYS = ("replicas", "fullyLabeledReplicas", "readyReplicas",
                          "availableReplicas", "observedGeneration", "labelSelector")


@dataclass(frozen=True)
class InstanceType:
    """One AWS instance type: what a Node of this type reports."""

    vcpu: int
    memory_gib: int
    gpus: int = 0
    gpu_product: str = ""
    gpu_memory_mib: int = 0


_L4 = ("NVIDIA-L4", 23034)
_A10G = ("NVIDIA-A10G", 23028)
_A100_40 = ("NVIDIA-A100-SXM4-40GB", 40960)
_H100 = ("NVIDIA-H100-80GB-HBM3", 81559)


def _gpu(vcpu: int, memory_gib: int, gpus: int, kind: tuple[str, int]) -> InstanceType:
    return InstanceType(vcpu, memory_gib, gpus, kind[0], kind[1])


INSTANCE_TYPES: dict[str, InstanceType] = {
    "g6.xlarge": _gpu(4, 16, 1, _L4),
    "g6.2xlarge": _gpu(8, 32, 1, _L4),
    "g6.4xlarge": _gpu(16, 64, 1, _L4),
    "g6.8xlarge": _gpu(32, 128, 1, _L4),
    "g6.16xlarge": _gpu(64, 256, 1, _L4),
    "g6.12xlarge": _gpu(48, 192, 4, _L4),
    "g6.24xlarge": _gpu(96, 384, 4, _L4),
    "g6.48xlarge": _gpu(192, 768, 8, _L4),
    "g5.xlarge": _gpu(4, 16, 1, _A10G),
    "g5.2xlarge": _gpu(8, 32, 1, _A10G),
    "g5.4xlarge": _gpu(16, 64, 1, _A10G),
    "g5.8xlarge": _gpu(32, 128, 1, _A10G),
    "g5.16xlarge": _gpu(64, 256, 1, _A10G),
    "g5.12xlarge": _gpu(48, 192, 4, _A10G),
    "g5.24xlarge": _gpu(96, 384, 4, _A10G),
    "g5.48xlarge": _gpu(192, 768, 8, _A10G),
    "p4d.24xlarge": _gpu(96, 1152, 8, _A100_40),
    "p5.48xlarge": _gpu(192, 2048, 8, _H100),
    "m6i.large": InstanceType(2, 8),
    "m6i.xlarge": InstanceType(4, 16),
    "m6i.2xlarge": InstanceType(8, 32),
    "m6i.4xlarge": InstanceType(16, 64),
    "m6i.8xlarge": InstanceType(32, 128),
    "m5.xlarge": InstanceType(4, 16),
    "c6i.2xlarge": InstanceType(8, 16),
}


@dataclass(frozen=True)
class SimConfig:
    """The simulator's knobs, from the JSON file the tests rewrite."""

    boot_delay_seconds: float = 3.0
    unavailable_instance_types: frozenset[str] = frozenset()


def parse_config(text: str) -> SimConfig:
    """Read the knobs; an empty or missing file means defaults."""
    data = json.loads(text) if text.strip() else {}
    if not isinstance(data, dict):
        raise ValueError("cloud config must be a JSON object")
    delay = float(data.get("boot_delay_seconds", 3))
    if delay < 0:
        raise ValueError("boot_delay_seconds must be >= 0")
    types = data.get("unavailable_instance_types") or []
    if not isinstance(types, list):
        raise ValueError("unavailable_instance_types must be a list")
    return SimConfig(delay, frozenset(str(t) for t in types))


def random_suffix(rng: random.Random, length: int = 5) -> str:
    """A name suffix like the one machine-api gives Machines."""
    return "".join(rng.choice(string.ascii_lowercase + string.digits) for _ in range(length))


def machine_name(machineset: str, rng: random.Random) -> str:
    return f"{machineset}-{random_suffix(rng)}"


def node_name(ip: str, region: str) -> str:
    """AWS private DNS name, which OpenShift uses as the Node name.

    Node names deliberately differ from Machine names, as on the real platform, so tools
    must follow Machine.status.nodeRef or the Node's machine annotation.
    """
    host = "ip-" + ip.replace(".", "-")
    return f"{host}.ec2.internal" if region == "us-east-1" else f"{host}.{region}.compute.internal"


def pick_ip(rng: random.Random, taken: Iterable[str]) -> str:
    """A free private address in the worker subnet 10.0.128.0/17."""
    used = set(taken)
    while True:
        ip = f"10.0.{rng.randint(128, 255)}.{rng.randint(4, 254)}"
        if ip not in used:
            return ip


def instance_id(rng: random.Random) -> str:
    return "i-0" + "".join(rng.choice("0123456789abcdef") for _ in range(16))


def provider_value(machine: Mapping[str, Any]) -> Mapping[str, Any]:
    return ((machine.get("spec") or {}).get("providerSpec") or {}).get("value") or {}


def placement(machine: Mapping[str, Any]) -> tuple[str, str]:
    """Region and zone from the AWS providerSpec (us-east-1/us-east-1a when unset)."""
    place = provider_value(machine).get("placement") or {}
    region = place.get("region") or "us-east-1"
    return region, place.get("availabilityZone") or f"{region}a"


def root_volume_gib(machine: Mapping[str, Any]) -> int:
    """Size of the root volume: the providerSpec block device without a deviceName (AWS uses the
    AMI's root device for it), else the installer's default."""
    for device in provider_value(machine).get("blockDevices") or []:
        if not device.get("deviceName"):
            size = (device.get("ebs") or {}).get("volumeSize")
            if size:
                return int(size)
    return ROOT_VOLUME_GIB


def launch_error(machine: Mapping[str, Any]) -> tuple[str, str] | None:
    """The AWS actuator's refusal of a providerSpec before it launches anything, if any.

    Like openshift/machine-api-provider-aws (pkg/actuators/machine reconciler.go create,
    instances.go launchInstance, utils.go validateMachine; actuator.go wraps the message):
    a Machine without the cluster ID label, an AMI given by neither id nor filters, or no
    security group. The machine controller then marks the Machine Failed with the message.
    """
    name = machine["metadata"]["name"]
    prefix = f"{name}: reconciler failed to Create machine: "
    if not (machine["metadata"].get("labels") or {}).get(CLUSTER_ID_LABEL):
        return ("InvalidConfiguration", f'{prefix}{name}: failed validating machine provider spec: '
                                        f'{name}: missing "{CLUSTER_ID_LABEL}" label')
    value = provider_value(machine)
    ami = value.get("ami") or {}
    if not (ami.get("id") or ami.get("filters")):
        return ("InvalidConfiguration", f"{prefix}failed to launch instance: error getting AMI: "
                                        "AMI ID or AMI filters need to be specified")
    if not any(g.get("id") or g.get("filters") for g in value.get("securityGroups") or []):
        return ("InvalidConfiguration", f"{prefix}failed to launch instance: error getting security groups IDs: "
                                        "no security group found")
    return None


def node_resources(itype: InstanceType, root_gib: int = ROOT_VOLUME_GIB) -> tuple[dict[str, str], dict[str, str]]:
    """Capacity and allocatable of a Node of this type with a root volume of `root_gib`."""
    memory_kib = itype.memory_gib * 1024 * 1024
    capacity = {
        "cpu": str(itype.vcpu),
        "memory": f"{memory_kib}Ki",
        "pods": str(MAX_PODS),
        "ephemeral-storage": f"{root_gib}Gi",
    }
    allocatable = {
        "cpu": f"{itype.vcpu * 1000 - RESERVED_MILLICPU}m",
        "memory": f"{memory_kib - RESERVED_MEMORY_MIB * 1024}Ki",
        "pods": str(MAX_PODS),
        "ephemeral-storage": f"{max(root_gib - RESERVED_EPHEMERAL_GIB, 1)}Gi",
    }
    if itype.gpus:
        capacity[GPU_RESOURCE] = allocatable[GPU_RESOURCE] = str(itype.gpus)
    return capacity, allocatable


def node_labels(type_name: str, itype: InstanceType, hostname: str, region: str, zone: str,
                machine_labels: Mapping[str, str]) -> dict[str, str]:
    """Labels the cloud, the kubelet and GPU feature discovery would put on the Node."""
    labels = {
        "kubernetes.io/hostname": hostname,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "node.kubernetes.io/instance-type": type_name,
        "beta.kubernetes.io/instance-type": type_name,
        "topology.kubernetes.io/region": region,
        "topology.kubernetes.io/zone": zone,
        "node-role.kubernetes.io/worker": "",
        "type": "kwok",
    }
    if itype.gpus:
        labels.update({
            "nvidia.com/gpu.present": "true",
            "nvidia.com/gpu.product": itype.gpu_product,
            "nvidia.com/gpu.count": str(itype.gpus),
            "nvidia.com/gpu.memory": str(itype.gpu_memory_mib),
        })
    labels.update(machine_labels)
    return labels


def capacity_error(type_name: str, zone: str) -> tuple[str, str]:
    """errorReason/errorMessage of a Machine whose instance AWS refused to launch."""
    return ("CreateError",
            f"InsufficientInstanceCapacity: We currently do not have sufficient {type_name} "
            f"capacity in the Availability Zone you requested ({zone}). Our system will be "
            "working on provisioning additional capacity.")


def unknown_type_error(type_name: str) -> tuple[str, str]:
    return ("InvalidConfiguration",
            f"InvalidParameterValue: Invalid value '{type_name}' for InstanceType.")


def is_node_ready(node: Mapping[str, Any] | None) -> bool:
    if not node:
        return False
    conditions = (node.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def is_deleting(obj: Mapping[str, Any]) -> bool:
    return bool(obj["metadata"].get("deletionTimestamp"))


def parse_time(value: str) -> datetime:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)


def selector_string(selector: Mapping[str, Any] | None) -> str:
    """A label selector in the string form used by the scale subresource (sorted by key)."""
    selector = selector or {}
    parts: list[tuple[str, str]] = [
        (k, f"{k}={v}") for k, v in (selector.get("matchLabels") or {}).items()]
    for expr in selector.get("matchExpressions") or []:
        key, op = expr["key"], expr["operator"]
        values = ",".join(sorted(expr.get("values") or []))
        text = {"In": f"{key} in ({values})", "NotIn": f"{key} notin ({values})",
                "Exists": key, "DoesNotExist": f"!{key}"}.get(op)
        if text is None:
            raise ValueError(f"unknown selector operator {op!r}")
        parts.append((key, text))
    return ",".join(text for _, text in sorted(parts, key=lambda p: p[0]))


def has_labels(labels: Mapping[str, str] | None, wanted: Mapping[str, str] | None) -> bool:
    labels = labels or {}
    return all(labels.get(k) == v for k, v in (wanted or {}).items())


def deletion_order(machines: list[dict[str, Any]], policy: str | None,
                   rng: random.Random) -> list[dict[str, Any]]:
    """Machines sorted so that the first ones are deleted first on scale down.

    Like machine-api: Machines marked with the delete annotation or in error go first,
    then those without a Node, then by policy (Random, Newest, Oldest).
    """
    def rank(m: dict[str, Any]) -> int:
        status = m.get("status") or {}
        if DELETE_MACHINE_ANNOTATION in (m["metadata"].get("annotations") or {}):
            return 0
        if status.get("errorReason") or status.get("phase") == "Failed":
            return 1
        return 3 if status.get("nodeRef") else 2

    ordered = list(machines)
    policy = policy or "Random"
    if policy == "Random":
        rng.shuffle(ordered)
    elif policy in ("Newest", "Oldest"):
        ordered.sort(key=lambda m: (m["metadata"]["creationTimestamp"], m["metadata"]["name"]),
                     reverse=policy == "Newest")
    else:
        raise ValueError(f"unknown deletePolicy {policy!r}")
    # A stable sort keeps the policy order inside each rank.
    ordered.sort(key=rank)
    return ordered


def machineset_status(machineset: Mapping[str, Any], machines: list[dict[str, Any]],
                      nodes: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The status machine-api would report; `nodes` maps Machine name to its Node.

    Counters that are 0 are left out (omitempty upstream), so readers must treat an
    absent counter as 0.
    """
    spec = machineset.get("spec") or {}
    live = [m for m in machines if not is_deleting(m)]
    template_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels")
    ready = sum(1 for m in live if is_node_ready(nodes.get(m["metadata"]["name"])))
    counters = {
        "replicas": len(live),
        "fullyLabeledReplicas": sum(1 for m in live
                                    if has_labels(m["metadata"].get("labels"), template_labels)),
        "readyReplicas": ready,
        "availableReplicas": ready,
    }
    status: dict[str, Any] = {k: v for k, v in counters.items() if v}
    status["observedGeneration"] = machineset["metadata"].get("generation", 1)
    status["labelSelector"] = selector_string(spec.get("selector"))
    return status


def status_patch(current: Mapping[str, Any] | None, wanted: Mapping[str, Any],
                 managed: Iterable[str]) -> dict[str, Any]:
    """A merge patch turning `current` into `wanted` for the `managed` keys (None deletes)."""
    current = current or {}
    return {k: wanted.get(k) for k in managed if current.get(k) != wanted.get(k)}
