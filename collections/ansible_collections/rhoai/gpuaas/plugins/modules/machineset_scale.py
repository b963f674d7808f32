#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: rhoai.gpuaas contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: machineset_scale
short_description: Scale OpenShift MachineSets and wait until their GPU nodes are usable
version_added: 0.1.0
description:
  - Sets C(spec.replicas) of one MachineSet (O(name)) or of every MachineSet matching
    O(label_selectors), through the C(scale) subresource, like C(oc scale machineset).
  - With O(wait=true) it then waits, with one deadline, until the MachineSets are really
    usable. Scaling up, that means the MachineSet status reports the requested
    C(readyReplicas) and C(availableReplicas) for the current generation, every Machine is
    in phase C(Running), and the Node of every Machine is Ready and publishes the expected
    number of GPUs in C(status.allocatable) (the NVIDIA device plugin does that last).
    Scaling to 0, it waits until the Machines and their Nodes are gone.
  - Absent status counters are read as 0 (the API omits zero values), so scaling to 0
    does not hang waiting for C(readyReplicas) to appear.
  - A Machine in phase C(Failed) (for example AWS C(InsufficientInstanceCapacity)) or a
    MachineSet C(status.errorReason) fails the task at once with the reason, instead of
    waiting for the timeout, because the MachineSet never replaces a failed Machine.
  - Errors in the arguments (a missing MachineSet, a negative O(replicas) or O(min_gpus_per_node), both or
    neither of O(name) and O(label_selectors)) are reported before anything is changed.
author:
  - rhoai.gpuaas maintainers (!UNKNOWN)
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - rhoai.gpuaas.wait
  - rhoai.gpuaas.attributes
attributes:
  check_mode:
    support: full
    description: The scale is sent with C(dryRun=All) (the API server validates it, nothing is stored); it does not wait.
  diff_mode:
    support: full
    description: Shows C(replicas) of each MachineSet before and after.
options:
  name:
    description:
      - Name of the MachineSet to scale.
      - Mutually exclusive with O(label_selectors); one of them is required.
    type: str
  label_selectors:
    description:
      - Label selectors (C(key=value), C(key!=value), C(key in (a,b)), ...) choosing the
        MachineSets to scale; all selectors must match. Every matching MachineSet gets
        O(replicas).
      - Mutually exclusive with O(name).
    type: list
    elements: str
  namespace:
    description: Namespace of the MachineSets.
    type: str
    default: openshift-machine-api
  replicas:
    description: Number of Machines wanted in each selected MachineSet.
    type: int
    required: true
  wait_timeout:
    description: Seconds to wait in total, for all selected MachineSets together.
    type: int
    default: 900
    aliases: [timeout]
  gpu_resource:
    description: Extended resource a ready Node must publish in C(status.allocatable).
    type: str
    default: nvidia.com/gpu
  min_gpus_per_node:
    description:
      - GPUs (O(gpu_resource)) each Node must have allocatable before it counts as ready.
      - When unset, the Node's C(nvidia.com/gpu.count) label from GPU feature discovery is
        used, else the MachineSet's C(machine.openshift.io/GPU) annotation, else no GPUs
        are required (CPU MachineSets).
    type: int
  node_selector:
    description:
      - Label selectors every Node must also match to count as ready, for example
        C(nvidia.com/gpu.present=true) to wait for GPU feature discovery.
      - Ignored when O(replicas=0).
    type: list
    elements: str
    default: []
notes:
  - Nodes are found through C(Machine.status.nodeRef) or the Node annotation
    C(machine.openshift.io/machine); Node names do not have to resemble Machine names.
seealso:
  - name: OpenShift Machine API
    description: MachineSets, Machines and their phases.
    link: https://docs.openshift.com/container-platform/latest/machine_management/index.html
"""

EXAMPLES = r"""
- name: Boot one 4-GPU L4 node and wait until its 4 GPUs are allocatable
  rhoai.gpuaas.machineset_scale:
    name: gpu-cluster-g6-12xlarge-us-east-1a
    replicas: 1
    wait_timeout: 1200

- name: Scale every GPU MachineSet of the cluster to zero and wait until the nodes are gone
  rhoai.gpuaas.machineset_scale:
    label_selectors:
      - machine.openshift.io/cluster-api-machine-role=gpu
    replicas: 0

- name: Scale without waiting, with explicit credentials (as injected by AAP)
  rhoai.gpuaas.machineset_scale:
    host: "{{ k8s_host }}"
    api_key: "{{ k8s_token }}"
    name: gpu-cluster-g6-4xlarge-us-east-1a
    replicas: 2
    wait: false

- name: Require the GPU operator's labels and at least one GPU per node
  rhoai.gpuaas.machineset_scale:
    name: gpu-cluster-g6-4xlarge-us-east-1a
    replicas: 1
    min_gpus_per_node: 1
    node_selector:
      - nvidia.com/gpu.present=true
  register: scaled

- name: Show the nodes that came up
  ansible.builtin.debug:
    msg: "{{ scaled.machinesets | map(attribute='nodes') | flatten | map(attribute='name') }}"
"""

RETURN = r"""
machinesets:
  description: One entry per selected MachineSet, in name order.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: MachineSet name.
      type: str
      sample: gpu-cluster-g6-12xlarge-us-east-1a
    replicas_before:
      description: C(spec.replicas) before the module ran.
      type: int
      sample: 0
    replicas_after:
      description: C(spec.replicas) after the module ran, as the API server answered (in check mode, its dry-run answer).
      type: int
      sample: 1
    machines:
      description: The MachineSet's Machines when the module finished.
      type: list
      elements: dict
      sample: [{"name": "gpu-cluster-g6-12xlarge-us-east-1a-x7k2p", "phase": "Running"}]
    nodes:
      description: Their Nodes, whether Ready and how many GPUs are allocatable.
      type: list
      elements: dict
      sample: [{"name": "ip-10-0-140-12.ec2.internal", "ready": true, "gpus": 4}]
    waiting_for:
      description: What was not ready yet (empty when ready; useful after a timeout or with O(wait=false)).
      type: list
      elements: str
      sample: []
    ready:
      description: Whether the MachineSet stands at its C(spec.replicas) with usable GPU nodes.
      type: bool
    failure:
      description: Why it cannot get there (a Failed Machine, the MachineSet's C(errorReason)), else null.
      type: str
elapsed:
  description: Seconds spent, including the wait.
  returned: always
  type: float
  sample: 41.2
"""

from ansible_collections.rhoai.gpuaas.plugins.module_utils.k8s_client import auth_argument_spec, connect, new_module
from ansible_collections.rhoai.gpuaas.plugins.module_utils.machinesets import scale_machinesets
from ansible_collections.rhoai.gpuaas.plugins.module_utils.runner import run_module


def main() -> None:
    argument_spec = auth_argument_spec(
        name=dict(type="str"),
        label_selectors=dict(type="list", elements="str"),
        namespace=dict(type="str", default="openshift-machine-api"),
        replicas=dict(type="int", required=True),
        wait=dict(type="bool", default=True),
        wait_timeout=dict(type="int", default=900, aliases=["timeout"]),
        gpu_resource=dict(type="str", default="nvidia.com/gpu"),
        min_gpus_per_node=dict(type="int"),
        node_selector=dict(type="list", elements="str", default=[]),
    )
    module = new_module(
        argument_spec,
        supports_check_mode=True,
        mutually_exclusive=[("name", "label_selectors")],
        required_one_of=[("name", "label_selectors")],
    )
    run_module(module, lambda m: scale_machinesets(connect(m), m.params, m.check_mode, m._diff))


if __name__ == "__main__":
    main()
