# -*- coding: utf-8 -*-
# Copyright: rhoai.gpuaas contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: gpu_machineset
short_description: Plan the GPU MachineSets of an AWS cluster from one of its worker MachineSets
version_added: 0.2.0
description:
  - Resolves each entry of the GPU MachineSet table to its real MachineSet name and availability zone, and,
    with O(create), builds the MachineSet to create for each one that does not exist yet.
  - The zone is the entry's C(availability_zone), else O(default_zone), else the zone of the worker MachineSet
    chosen to copy; a zone without a worker MachineSet is an error that names the zones that have one.
  - The worker MachineSet copied is O(source), else the one of the zone with role worker (no taints, no GPU
    label); among several, the installer's C(<infrastructureName>-worker-<zone>).
  - "The new MachineSet keeps the worker's AWS providerSpec (AMI, subnet, security groups, IAM instance
    profile, user-data and credentials secrets, tags, region and zone, metadata service options) and sets
    C(instanceType), the root volume (C(blockDevices) entry without C(deviceName)) size and type,
    C(replicas: 0), the selector and Machine label C(machine.openshift.io/cluster-api-machineset), the node
    label C(node-role.kubernetes.io/gpu), the taint C(<gpu_resource>=true:NoSchedule) and the annotations
    C(machine.openshift.io/GPU), C(machine.openshift.io/vCPU) and C(machine.openshift.io/memoryMb)
    (AWS's figures for known instance types; only the GPU count otherwise)."
  - Fails with a message naming the variable to fix (unknown zone, several candidate workers, a non-AWS
    worker, C(gpus) that contradicts the instance type, an invalid name).
author:
  - rhoai.gpuaas maintainers (!UNKNOWN)
positional: entries
options:
  _input:
    description: The live MachineSets of the namespace (C(resources) of M(kubernetes.core.k8s_info)).
    type: list
    elements: dict
    required: true
  entries:
    description:
      - The GPU MachineSet table; each entry has C(name), C(instance_type), C(gpus) and optionally
        C(availability_zone) and C(root_volume_size) (GiB). Other keys (C(replicas)) are passed through.
    type: list
    elements: dict
    required: true
  infrastructure_name:
    description: The cluster's infrastructure name; empty means each entry's C(name) is the MachineSet name.
    type: str
    default: ""
  name_pattern:
    description: Name pattern used with O(infrastructure_name) (C(<infra>), C(<name>), C(<az>), C(<instance_type>)).
    type: str
    default: "<infra>-<name>-<az>"
  source:
    description: Name of the worker MachineSet to copy; empty means chosen by zone.
    type: str
    default: ""
  default_zone:
    description: Availability zone for entries without one; empty means discovered from the worker MachineSet.
    type: str
    default: ""
  create:
    description: Build the MachineSets that do not exist (C(definition)); otherwise only resolve names and zones.
    type: bool
    default: false
  gpu_resource:
    description: Extended resource name of the GPUs, the key of the taint.
    type: str
    default: nvidia.com/gpu
  root_volume_type:
    description: EBS volume type of the root volume.
    type: str
    default: gp3
"""

EXAMPLES = r"""
- name: Read the MachineSets
  kubernetes.core.k8s_info:
    api_version: machine.openshift.io/v1beta1
    kind: MachineSet
    namespace: openshift-machine-api
  register: live

- name: Plan the GPU MachineSets from the worker MachineSet of their zone
  ansible.builtin.set_fact:
    gpu_plan: >-
      {{ live.resources | rhoai.gpuaas.gpu_machineset(table, infrastructure_name='mycluster-x7k2p', create=true) }}
  vars:
    table:
      - {name: gpu-g6-12xlarge, instance_type: g6.12xlarge, gpus: 4, root_volume_size: 500}
      - {name: gpu-g6-4xlarge, instance_type: g6.4xlarge, gpus: 1, root_volume_size: 200}

- name: Create the missing ones
  kubernetes.core.k8s:
    state: present
    definition: "{{ item.definition }}"
  loop: "{{ gpu_plan | selectattr('definition') }}"
"""

RETURN = r"""
_value:
  description:
    - One dict per entry, in the table's order; the entry's own keys plus C(name) (the real MachineSet name),
      C(availability_zone), C(exists), C(source) (the worker MachineSet copied or consulted for the zone, or
      null) and C(definition) (the MachineSet to create, or null when it exists or O(create) is false).
  type: list
  elements: dict
"""

from typing import Any, Callable, Dict, List

from ansible.errors import AnsibleFilterError

from ansible_collections.rhoai.gpuaas.plugins.module_utils.errors import GpuaasError
from ansible_collections.rhoai.gpuaas.plugins.module_utils.machineset_template import plan


def gpu_machineset(machinesets: List[Dict[str, Any]], entries: List[Dict[str, Any]], **options: Any) -> List[Dict[str, Any]]:
    """The filter: ``plan`` with its error turned into the one Ansible prints as the task's message."""
    try:
        return plan(machinesets, entries, **options)
    except GpuaasError as err:
        raise AnsibleFilterError(err.msg) from None


class FilterModule:
    def filters(self) -> Dict[str, Callable[..., Any]]:
        return {"gpu_machineset": gpu_machineset}
