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
  - Errors in the arguments (a missing MachineSet, a negative O(replicas), both or neither
    of O(name) and O(label_selectors)) are reported before anything is changed.
author:
  - rhoai.gpuaas maintainers (!UNKNOWN)
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
attributes:
  check_mode:
    support: full
    description: Reports what would change; it does not wait in check mode.
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
  wait:
    description: Wait until the MachineSets are ready (or, for 0, until their Machines and Nodes are gone).
    type: bool
    default: true
  wait_timeout:
    description: Seconds to wait in total, for all selected MachineSets together.
    type: int
    default: 900
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
  - The module is in the action group C(rhoai.gpuaas.k8s), so connection options can be set
    once with C(module_defaults).
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
      description: C(spec.replicas) after the module ran (in check mode, what it would be).
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
elapsed:
  description: Seconds spent, including the wait.
  returned: always
  type: float
  sample: 41.2
"""

import time
import traceback
from typing import Any, Dict, List

from ansible_collections.rhoai.gpuaas.plugins.module_utils.k8s_client import (
    K8sError,
    auth_argument_spec,
    connect,
    error_message,
    new_module,
)
from ansible_collections.rhoai.gpuaas.plugins.module_utils.k8s_wait import (
    WaitError,
    api_source,
    wait_for,
)
from ansible_collections.rhoai.gpuaas.plugins.module_utils import machinesets as ms_lib


def _result_entry(before: int, after: int, evaluation: Dict[str, Any]) -> Dict[str, Any]:
    return {
        "name": evaluation["name"],
        "replicas_before": before,
        "replicas_after": after,
        "machines": evaluation["machines"],
        "nodes": evaluation["nodes"],
        "waiting_for": evaluation["waiting_for"],
    }


class Scaler:
    """One run of the module: validate, scale, wait, report."""

    def __init__(self, module: Any) -> None:
        self.module = module
        self.params = module.params
        self.started = time.monotonic()
        self.client: Any = None
        self.selected: List[Dict[str, Any]] = []
        self.before: Dict[str, int] = {}
        self.previous_nodes: Dict[str, frozenset] = {}

    def fail(self, msg: str, **extra: Any) -> None:
        self.module.fail_json(msg=msg, elapsed=round(time.monotonic() - self.started, 1), **extra)

    def evaluate_all(self, machinesets: List[Dict[str, Any]], machines: List[Dict[str, Any]],
                     nodes: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
        by_uid = {m["metadata"]["uid"]: m for m in machinesets}
        entries = []
        for ms in self.selected:
            current = by_uid.get(ms["metadata"]["uid"])
            entry = ms_lib.evaluate(current or ms, machines, nodes, self.params["gpu_resource"],
                                    self.params["min_gpus_per_node"], self.previous_nodes[ms["metadata"]["name"]])
            if current is None:
                entry.update(ready=False, failure="MachineSet {0} was deleted".format(ms["metadata"]["name"]))
            entries.append(entry)
        return entries

    def sources(self) -> List[Any]:
        p = self.params
        ns = p["namespace"]
        if p["name"]:
            ms_source = api_source(self.client, "machinesets", ms_lib.API_VERSION, "MachineSet", ns,
                                   field_selector="metadata.name={0}".format(p["name"]))
        else:
            ms_source = api_source(self.client, "machinesets", ms_lib.API_VERSION, "MachineSet", ns,
                                   label_selector=ms_lib.join_selectors(p["label_selectors"]))
        node_selector = ms_lib.join_selectors(p["node_selector"]) if p["replicas"] > 0 else None
        return [
            ms_source,
            api_source(self.client, "machines", ms_lib.API_VERSION, "Machine", ns),
            api_source(self.client, "nodes", "v1", "Node", label_selector=node_selector),
        ]

    def snapshot(self) -> List[Dict[str, Any]]:
        """Current evaluation from one list of each kind (no waiting)."""
        state = {s.name: s.list_fn()[0] for s in self.sources()}
        return self.evaluate_all(state["machinesets"], state["machines"], state["nodes"])

    def run(self) -> None:
        p = self.params
        if p["replicas"] < 0:
            self.fail("replicas must be 0 or more, got {0}".format(p["replicas"]))
        if p["label_selectors"] is not None and not ms_lib.join_selectors(p["label_selectors"]):
            self.fail("label_selectors is empty: it would select every MachineSet in namespace '{0}'; "
                      "give at least one selector".format(p["namespace"]))
        if p["wait"] and p["wait_timeout"] < 1:
            self.fail("wait_timeout must be at least 1 second, got {0}".format(p["wait_timeout"]))
        try:
            self.client = connect(self.module)
            self.selected = ms_lib.select(self.client, p["namespace"], p["name"], p["label_selectors"])
            machines = self.client.list(ms_lib.API_VERSION, "Machine", p["namespace"])[0]
            nodes = self.client.list("v1", "Node")[0]
        except K8sError as exc:
            self.fail(str(exc))
        except Exception as exc:  # discovery or API errors: report, never a traceback
            if type(exc).__name__ == "ResourceNotFoundError":
                self.fail("The cluster does not serve {0} MachineSet: is this OpenShift with the Machine API? "
                          "({1})".format(ms_lib.API_VERSION, exc))
            self.fail("Reading MachineSets in namespace '{0}' failed: {1}".format(p["namespace"], error_message(exc)),
                      exception=traceback.format_exc())

        for ms in self.selected:
            name = ms["metadata"]["name"]
            self.before[name] = ms_lib.spec_replicas(ms)
            self.previous_nodes[name] = ms_lib.nodes_of(ms, machines, nodes)
        to_scale = [ms for ms in self.selected if self.before[ms["metadata"]["name"]] != p["replicas"]]
        changed = bool(to_scale)

        if not self.module.check_mode:
            for ms in to_scale:
                try:
                    ms_lib.scale(self.client, ms, p["replicas"])
                except Exception as exc:
                    self.fail("Scaling MachineSet '{0}' failed: {1}".format(ms["metadata"]["name"], error_message(exc)),
                              changed=ms is not to_scale[0])

        entries = self.wait_or_snapshot(changed)
        result: Dict[str, Any] = {
            "changed": changed,
            "machinesets": [_result_entry(self.before[e["name"]], p["replicas"], e) for e in entries],
            "elapsed": round(time.monotonic() - self.started, 1),
        }
        if self.module._diff:
            result["diff"] = {
                "before": {"machinesets": {n: {"replicas": r} for n, r in self.before.items()}},
                "after": {"machinesets": {n: {"replicas": p["replicas"]} for n in self.before}},
            }
        self.module.exit_json(**result)

    def wait_or_snapshot(self, changed: bool) -> List[Dict[str, Any]]:
        p = self.params
        try:
            if not p["wait"] or self.module.check_mode:
                return self.snapshot()
            outcome = wait_for(
                self.sources(),
                done=lambda s: all(e["ready"] for e in self.evaluate_all(s["machinesets"], s["machines"], s["nodes"])),
                failed=lambda s: next((e["failure"] for e in self.evaluate_all(s["machinesets"], s["machines"], s["nodes"])
                                       if e["failure"]), None),
                summary=lambda s: [_result_entry(self.before[e["name"]], p["replicas"], e)
                                   for e in self.evaluate_all(s["machinesets"], s["machines"], s["nodes"])],
                timeout=p["wait_timeout"],
                description="{0} MachineSet(s) to have {1} ready replicas".format(len(self.selected), p["replicas"]),
            )
        except WaitError as exc:
            self.fail(exc.message, changed=changed, machinesets=exc.last_state)
        except K8sError as exc:
            self.fail(str(exc), changed=changed)
        state = outcome.state
        return self.evaluate_all(state["machinesets"], state["machines"], state["nodes"])


def main() -> None:
    argument_spec = auth_argument_spec(
        name=dict(type="str"),
        label_selectors=dict(type="list", elements="str"),
        namespace=dict(type="str", default="openshift-machine-api"),
        replicas=dict(type="int", required=True),
        wait=dict(type="bool", default=True),
        wait_timeout=dict(type="int", default=900),
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
    Scaler(module).run()


if __name__ == "__main__":
    main()
