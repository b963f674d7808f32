# -*- coding: utf-8 -*-
# Copyright: rhoai.gpuaas contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""GPU MachineSets on AWS, made from a worker MachineSet of the cluster (pure functions).

An OpenShift administrator adds GPU nodes by copying a worker MachineSet: its AWS
providerSpec already holds what only the installer knows (the RHCOS AMI, the zone's private
subnet, the security groups, the IAM instance profile, the user-data and credentials
secrets, the cluster's tags), so only the instance type, the root volume, the GPU label and
taint and the names change. ``plan`` decides, per entry of the role's table, the MachineSet
name, its availability zone (discovered from a worker MachineSet, never assumed), whether it
exists, and the object to create; ``gpu_machineset`` builds that object.

Field names are those of ``AWSMachineProviderConfig`` (openshift/api machine/v1beta1) as the
installer writes them (openshift/installer pkg/asset/machines/aws).
"""

from __future__ import annotations

import copy
import re
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ansible_collections.rhoai.gpuaas.plugins.module_utils.errors import GpuaasError

Obj = Dict[str, Any]

AWS_PROVIDER_KIND = "AWSMachineProviderConfig"
MACHINESET_LABEL = "machine.openshift.io/cluster-api-machineset"
ROLE_LABEL = "machine.openshift.io/cluster-api-machine-role"
GPU_NODE_ROLE_LABEL = "node-role.kubernetes.io/gpu"
# Read by the cluster autoscaler to scale from zero; machine-api-provider-aws's MachineSet
# controller (pkg/actuators/machineset) writes the same three from EC2 DescribeInstanceTypes.
VCPU_ANNOTATION = "machine.openshift.io/vCPU"
MEMORY_ANNOTATION = "machine.openshift.io/memoryMb"
GPU_ANNOTATION = "machine.openshift.io/GPU"
# Server-owned metadata that must not be copied into a new object.
SERVER_FIELDS = ("uid", "resourceVersion", "creationTimestamp", "generation", "managedFields", "selfLink",
                 "deletionTimestamp", "deletionGracePeriodSeconds", "ownerReferences", "finalizers")

# AWS's published figures: (vCPUs, memory MiB as EC2 DescribeInstanceTypes reports it, GPUs).
INSTANCE_FIGURES: Dict[str, Tuple[int, int, int]] = {
    "g6.xlarge": (4, 16384, 1),
    "g6.2xlarge": (8, 32768, 1),
    "g6.4xlarge": (16, 65536, 1),
    "g6.8xlarge": (32, 131072, 1),
    "g6.16xlarge": (64, 262144, 1),
    "g6.12xlarge": (48, 196608, 4),
    "g6.24xlarge": (96, 393216, 4),
    "g6.48xlarge": (192, 786432, 8),
    "g6e.xlarge": (4, 32768, 1),
    "g6e.2xlarge": (8, 65536, 1),
    "g6e.4xlarge": (16, 131072, 1),
    "g6e.8xlarge": (32, 262144, 1),
    "g6e.16xlarge": (64, 524288, 1),
    "g6e.12xlarge": (48, 393216, 4),
    "g6e.24xlarge": (96, 786432, 4),
    "g6e.48xlarge": (192, 1572864, 8),
    "g5.xlarge": (4, 16384, 1),
    "g5.2xlarge": (8, 32768, 1),
    "g5.4xlarge": (16, 65536, 1),
    "g5.8xlarge": (32, 131072, 1),
    "g5.16xlarge": (64, 262144, 1),
    "g5.12xlarge": (48, 196608, 4),
    "g5.24xlarge": (96, 393216, 4),
    "g5.48xlarge": (192, 786432, 8),
    "p4d.24xlarge": (96, 1179648, 8),
    "p5.48xlarge": (192, 2097152, 8),
}
# An object name that is also a label value (the Machines' cluster-api-machineset label).
LABEL_VALUE = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,61}[a-z0-9])?$")
VOLUME_TYPES = ("gp2", "gp3", "io1", "io2", "st1", "sc1", "standard")


class MachineSetTemplateError(GpuaasError):
    """The GPU MachineSets cannot be planned; the message names the variable or object to fix."""


def provider_value(machineset: Obj) -> Obj:
    """``spec.template.spec.providerSpec.value`` (empty when absent)."""
    spec = ((machineset.get("spec") or {}).get("template") or {}).get("spec") or {}
    return (spec.get("providerSpec") or {}).get("value") or {}


def zone_of(machineset: Obj) -> str:
    return (provider_value(machineset).get("placement") or {}).get("availabilityZone") or ""


def _template_labels(machineset: Obj) -> Obj:
    return (((machineset.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("labels") or {}


def _node_labels(machineset: Obj) -> Obj:
    spec = ((machineset.get("spec") or {}).get("template") or {}).get("spec") or {}
    return (spec.get("metadata") or {}).get("labels") or {}


def worker_machinesets(machinesets: Sequence[Obj]) -> List[Obj]:
    """The plain worker MachineSets: role worker, no taints, not a GPU MachineSet, not being deleted.

    GPU MachineSets made by this role keep the worker role label (their nodes are workers too),
    so the GPU node label and the taints tell them apart.
    """
    out = []
    for ms in machinesets:
        spec = ((ms.get("spec") or {}).get("template") or {}).get("spec") or {}
        if (_template_labels(ms).get(ROLE_LABEL) == "worker" and not spec.get("taints")
                and GPU_NODE_ROLE_LABEL not in _node_labels(ms)
                and not (ms.get("metadata") or {}).get("deletionTimestamp")):
            out.append(ms)
    return sorted(out, key=lambda m: (zone_of(m), m["metadata"]["name"]))


def _names(machinesets: Sequence[Obj]) -> str:
    return ", ".join(m["metadata"]["name"] for m in machinesets) or "none"


def _zones(machinesets: Sequence[Obj]) -> str:
    return ", ".join(sorted({zone_of(m) for m in machinesets if zone_of(m)})) or "none"


def choose_source(machinesets: Sequence[Obj], zone: Optional[str], source: Optional[str],
                  infrastructure_name: str = "") -> Obj:
    """The worker MachineSet to copy, in ``zone`` (or in the first zone that has one when None).

    ``source`` names it explicitly. Among several workers of a zone, the installer's own
    ``<infrastructureName>-worker-<zone>`` is taken; otherwise the choice must be named.
    """
    workers = worker_machinesets(machinesets)
    if source:
        found = [m for m in machinesets if m["metadata"]["name"] == source]
        if not found:
            raise MachineSetTemplateError(
                "gpu_nodes_source_machineset: MachineSet '{0}' does not exist; worker MachineSets: {1}".format(
                    source, _names(workers)))
        if zone and zone_of(found[0]) != zone:
            raise MachineSetTemplateError(
                "availability zone {0} differs from the zone of gpu_nodes_source_machineset '{1}' ({2}): its subnet "
                "belongs to {2}. Leave availability_zone unset or name a worker MachineSet of {0}".format(
                    zone, source, zone_of(found[0]) or "unset"))
        return found[0]
    if not workers:
        raise MachineSetTemplateError(
            "no worker MachineSet to copy (MachineSets with role worker, untainted, not GPU): found {0}. "
            "Name one with gpu_nodes_source_machineset".format(_names(machinesets)))
    if zone is None:
        zone = zone_of(workers[0])
    in_zone = [m for m in workers if zone_of(m) == zone]
    if not in_zone:
        raise MachineSetTemplateError(
            "availability zone {0} has no worker MachineSet to copy; zones with one: {1}. Set availability_zone "
            "to one of them (or leave it unset to use {2})".format(zone, _zones(workers), zone_of(workers[0])))
    if len(in_zone) == 1:
        return in_zone[0]
    installer = "{0}-worker-{1}".format(infrastructure_name, zone)
    for ms in in_zone:
        if ms["metadata"]["name"] == installer:
            return ms
    raise MachineSetTemplateError(
        "several worker MachineSets in {0} ({1}); name the one to copy with gpu_nodes_source_machineset".format(
            zone, _names(in_zone)))


def machineset_name(entry: Obj, zone: str, infrastructure_name: str, pattern: str) -> str:
    """The entry's name, or with an infrastructure name the pattern's ``<infra>-<name>-<az>``."""
    if not infrastructure_name:
        return entry["name"]
    return (pattern.replace("<infra>", infrastructure_name).replace("<name>", entry["name"])
            .replace("<az>", zone).replace("<instance_type>", entry["instance_type"].replace(".", "-")))


def _check_source(source: Obj) -> None:
    value = provider_value(source)
    name = source["metadata"]["name"]
    if value.get("kind") != AWS_PROVIDER_KIND:
        raise MachineSetTemplateError(
            "worker MachineSet '{0}' has providerSpec kind {1!r}, not {2}: only AWS GPU MachineSets can be made "
            "from it".format(name, value.get("kind"), AWS_PROVIDER_KIND))
    missing = [f for f in ("ami", "subnet", "placement") if not value.get(f)]
    if not zone_of(source):
        missing.append("placement.availabilityZone")
    if missing:
        raise MachineSetTemplateError(
            "worker MachineSet '{0}' lacks providerSpec.value {1}: its copies could not boot".format(
                name, ", ".join(missing)))


def _root_volume(value: Obj, size: Optional[int], volume_type: str) -> None:
    """Resize the root volume (the block device without a deviceName) or add one."""
    devices = value.setdefault("blockDevices", [])
    root = next((d for d in devices if not d.get("deviceName")), None)
    if root is None:
        root = {}
        devices.insert(0, root)
    ebs = root.setdefault("ebs", {})
    ebs["volumeType"] = volume_type
    if size is not None:
        ebs["volumeSize"] = int(size)


def gpu_machineset(source: Obj, name: str, entry: Obj, gpu_resource: str = "nvidia.com/gpu",
                   root_volume_type: str = "gp3") -> Obj:
    """A GPU MachineSet named ``name``: ``source``'s providerSpec with the entry's instance and volume.

    Created with 0 replicas: scaling belongs to machineset_scale. The selector and the Machine
    labels follow the new name, the node gets the GPU role label and the GPU taint, and the
    autoscaler annotations describe the instance type.
    """
    _check_source(source)
    ms = copy.deepcopy(source)
    ms.pop("status", None)
    meta = ms["metadata"]
    for field in SERVER_FIELDS:
        meta.pop(field, None)
    meta["name"] = name
    # The worker's annotations describe the worker's instance type: start afresh.
    meta["annotations"] = instance_annotations(entry)
    spec = ms["spec"]
    spec["replicas"] = 0
    match = spec.setdefault("selector", {}).setdefault("matchLabels", {})
    match[MACHINESET_LABEL] = name
    template = spec.setdefault("template", {})
    template.setdefault("metadata", {}).setdefault("labels", {}).update(match)
    machine = template.setdefault("spec", {})
    machine.setdefault("metadata", {}).setdefault("labels", {})[GPU_NODE_ROLE_LABEL] = ""
    taint = {"key": gpu_resource, "value": "true", "effect": "NoSchedule"}
    taints = [t for t in machine.get("taints") or []
              if (t.get("key"), t.get("effect")) != (taint["key"], taint["effect"])]
    machine["taints"] = taints + [taint]
    value = machine["providerSpec"]["value"]
    value["instanceType"] = entry["instance_type"]
    _root_volume(value, entry.get("root_volume_size"), root_volume_type)
    return ms


def instance_annotations(entry: Obj) -> Dict[str, str]:
    """vCPU, memory and GPU annotations from AWS's figures (only the GPU count for an unknown type).

    Raises when the table's ``gpus`` contradicts the instance type: the nodes would never
    publish that many GPUs and every wait would time out.
    """
    gpus = int(entry["gpus"])
    figures = INSTANCE_FIGURES.get(entry["instance_type"])
    if figures is None:
        return {GPU_ANNOTATION: str(gpus)}
    vcpu, memory_mib, aws_gpus = figures
    if aws_gpus != gpus:
        raise MachineSetTemplateError(
            "gpu_nodes_machinesets entry '{0}': instance type {1} has {2} GPU(s) (AWS), but gpus is {3}".format(
                entry["name"], entry["instance_type"], aws_gpus, gpus))
    return {GPU_ANNOTATION: str(gpus), VCPU_ANNOTATION: str(vcpu), MEMORY_ANNOTATION: str(memory_mib)}


def _check_entry(entry: Obj) -> None:
    for key in ("name", "instance_type", "gpus"):
        if entry.get(key) in (None, ""):
            raise MachineSetTemplateError("gpu_nodes_machinesets entry {0!r} lacks '{1}'".format(
                entry.get("name", entry), key))
    for key in ("replicas", "gpus"):
        # A negative count would otherwise fail only at the scale, after the MachineSet was created.
        if entry.get(key) is not None and not str(entry[key]).isdigit():
            raise MachineSetTemplateError("gpu_nodes_machinesets entry '{0}': {1} must be 0 or more, got {2!r}".format(
                entry["name"], key, entry[key]))
    size = entry.get("root_volume_size")
    if size is not None and (not str(size).isdigit() or int(size) < 8):
        raise MachineSetTemplateError(
            "gpu_nodes_machinesets entry '{0}': root_volume_size must be a number of GiB (at least 8), got {1!r}"
            .format(entry["name"], size))


def plan(machinesets: Sequence[Obj], entries: Sequence[Obj], infrastructure_name: str = "",
         name_pattern: str = "<infra>-<name>-<az>", source: str = "", default_zone: str = "",
         create: bool = False, gpu_resource: str = "nvidia.com/gpu", root_volume_type: str = "gp3") -> List[Obj]:
    """Each entry with its real ``name``, ``availability_zone``, ``exists``, ``source`` and ``definition``.

    The zone is the entry's ``availability_zone``, else ``default_zone``, else the zone of the
    worker MachineSet chosen to copy. A worker MachineSet is needed when the zone is unknown
    or a MachineSet must be created (``definition`` is then the object to create, else None).
    An existing MachineSet is never rebuilt, so its replicas and any later edit stay.
    """
    if root_volume_type not in VOLUME_TYPES:
        raise MachineSetTemplateError("gpu_nodes_root_volume_type must be one of {0}, got {1!r}".format(
            ", ".join(VOLUME_TYPES), root_volume_type))
    existing = {m["metadata"]["name"] for m in machinesets}
    out = []
    for entry in entries:
        _check_entry(entry)
        zone = entry.get("availability_zone") or default_zone or None
        template = None
        if zone is None:
            template = choose_source(machinesets, None, source or None, infrastructure_name)
            zone = zone_of(template)
        name = machineset_name(entry, zone, infrastructure_name, name_pattern)
        if not LABEL_VALUE.match(name):
            raise MachineSetTemplateError(
                "MachineSet name '{0}' (gpu_nodes_machinesets entry '{1}') is not a valid name and label value (at most "
                "63 lower-case letters, digits, '-', '.'): shorten the entry's name or gpu_nodes_name_pattern".format(
                    name, entry["name"]))
        if any(r["name"] == name for r in out):
            raise MachineSetTemplateError("two gpu_nodes_machinesets entries resolve to MachineSet '{0}'".format(name))
        exists = name in existing
        if create and not exists and template is None:
            template = choose_source(machinesets, zone, source or None, infrastructure_name)
        definition = None
        if create and not exists:
            definition = gpu_machineset(template, name, entry, gpu_resource, root_volume_type)
        resolved = dict(entry)
        resolved.update({"name": name, "availability_zone": zone, "exists": exists, "definition": definition,
                         "source": template["metadata"]["name"] if template else None})
        out.append(resolved)
    return out
