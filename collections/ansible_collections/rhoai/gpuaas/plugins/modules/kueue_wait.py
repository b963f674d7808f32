#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: rhoai.gpuaas contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: kueue_wait
short_description: Wait for Kueue Workloads to be pending, admitted, finished, evicted or gone
version_added: 0.1.0
description:
  - Waits until the Kueue Workloads of an InferenceService's predictor pods, of the pods
    matching a label selector, or one named Workload reach O(state).
  - Uses one list-then-watch loop per kind (pods and Workloads) with a single deadline;
    survives watch expiry (HTTP 410), API server restarts and throttling.
  - Reports each Workload's state, Kueue's pending reason split into flavors and the
    missing resource, the ClusterQueue and flavor per resource once admitted, and the
    usage of the ClusterQueue.
  - With O(wait=false) it reads the current state once and returns it with RV(reached),
    without failing.
  - Fails at once on states that cannot reach O(state) - a stopped InferenceService waited
    on for V(pending) or V(admitted), a Workload whose LocalQueue or ClusterQueue does not
    exist, a resource the ClusterQueue does not cover, a Deployment whose pods are refused.
author:
  - rhoai.gpuaas maintainers (!UNKNOWN)
options:
  isvc:
    description:
      - Name of an InferenceService; its predictor pods (label
        C(serving.kserve.io/inferenceservice=<isvc>), C(component=predictor)) are followed.
      - Exactly one of O(isvc), O(pod_selector) and O(workload) is required.
    type: str
  pod_selector:
    description:
      - Label selector of the pods whose Workloads are followed, for example C(app=llm).
    type: str
  workload:
    description:
      - Name of one Workload.
    type: str
  namespace:
    description:
      - Namespace of the pods or the Workload.
    type: str
    required: true
  state:
    description:
      - V(pending) - Kueue evaluated every Workload and did not admit it (C(QuotaReserved=False));
        the result then carries the parsed reason.
      - V(admitted) - every Workload is admitted. Fails at once when a Workload can never be
        admitted (a requested resource the ClusterQueue does not cover, a missing queue).
      - V(finished) / V(evicted) - every Workload has that condition.
      - V(absent) - no Workload is left (the pods and their Workloads are gone).
      - For pod targets every pod must have its Workload, and at least one pod must exist
        (except for V(absent)).
    type: str
    choices: [pending, admitted, finished, evicted, absent]
    default: admitted
  cluster_queue:
    description:
      - ClusterQueue whose usage is returned in RV(cluster_queue_usage). Defaults to the
        one that admitted the Workloads, or the one behind their LocalQueue.
      - When set with O(state=admitted), the wait also lasts until this ClusterQueue's reported
        usage counts the admitted Workloads (Kueue updates it a moment after the admission), so
        the usage returned is never older than the admission.
    type: str
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - rhoai.gpuaas.wait
  - rhoai.gpuaas.kueue
  - rhoai.gpuaas.attributes
attributes:
  check_mode:
    support: full
    description: Read-only; check mode behaves like a normal run.
  diff_mode:
    support: none
    description: Read-only; nothing to compare.
requirements:
  - "python >= 3.9"
  - "kubernetes >= 24.2.0"
seealso:
  - module: rhoai.gpuaas.isvc_replicas
"""

EXAMPLES = r"""
- name: Expect devstral-2 to be held back by Kueue
  rhoai.gpuaas.kueue_wait:
    isvc: devstral-2
    namespace: private-ai
    state: pending
    wait_timeout: 120
  register: queued

- name: Show why
  ansible.builtin.debug:
    msg: "{{ queued.workloads[0].pending.resource }}: {{ queued.workloads[0].pending.more_needed }} more needed"

- name: Wait until Kueue admits it (after another model released its GPUs)
  rhoai.gpuaas.kueue_wait:
    isvc: devstral-2
    namespace: private-ai
    state: admitted
    wait_timeout: 300
    cluster_queue: rhoai-main-queue

- name: Wait for the Workloads of some pods to disappear
  rhoai.gpuaas.kueue_wait:
    pod_selector: app=batch-llm
    namespace: private-ai
    state: absent
    kueue_api_version: v1beta1
"""

RETURN = r"""
workloads:
  description: The Workloads followed, in their final (or last seen) state.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Workload name (C(pod-<pod>-<hash>) for pods).
      type: str
    namespace:
      description: Namespace.
      type: str
    state:
      description: One of pending, quota_reserved, admitted, evicted, finished.
      type: str
    message:
      description: Kueue's message explaining the state.
      type: str
    pending:
      description:
        - Parsed pending message when the state is pending, else null.
        - C(flavors) lists C({name, reason}) per flavor tried, C(resource) the first
          resource short of quota or not covered, C(more_needed) Kueue's "N more needed"
          (null when the request exceeds the flavor's maximum capacity), C(reasons) every
          reason verbatim.
      type: dict
      sample: {"flavors": [{"name": "nvidia-l4-1gpu", "reason": "doesn't match node affinity"},
               {"name": "nvidia-l4-4gpu", "reason": "insufficient unused quota for nvidia.com/gpu, 4 more needed"}],
               "resource": "nvidia.com/gpu", "more_needed": "4", "reasons": []}
    queue_name:
      description: LocalQueue of the Workload.
      type: str
    cluster_queue:
      description: ClusterQueue that admitted it (null until admitted).
      type: str
    flavors:
      description: Flavor assigned per resource once admitted.
      type: dict
      sample: {"nvidia.com/gpu": "nvidia-l4-4gpu", "cpu": "nvidia-l4-4gpu"}
    pod:
      description: Name of the owning Pod, if any.
      type: str
pods:
  description: Pods followed (pod targets only), C({name, phase, gated, node, ready, terminating}).
  returned: when isvc or pod_selector is used
  type: list
  elements: dict
cluster_queue_usage:
  description: Per flavor and resource, C(used) (status.flavorsUsage) and C(nominal) quota.
  returned: when a ClusterQueue is known
  type: dict
  sample: {"nvidia-l4-4gpu": {"nvidia.com/gpu": {"used": "4", "nominal": "4"}}}
cluster_queue:
  description: Name of the ClusterQueue reported in RV(cluster_queue_usage).
  returned: when a ClusterQueue is known
  type: str
reached:
  description: Whether O(state) was reached (always true on success when O(wait=true)).
  returned: always
  type: bool
api_version:
  description: Kueue API version used.
  returned: always
  type: str
  sample: kueue.x-k8s.io/v1beta2
elapsed:
  description: Seconds waited.
  returned: always
  type: float
"""

from ansible_collections.rhoai.gpuaas.plugins.module_utils.k8s_client import auth_argument_spec, connect, new_module
from ansible_collections.rhoai.gpuaas.plugins.module_utils.kueue_service import STATES, follow
from ansible_collections.rhoai.gpuaas.plugins.module_utils.runner import run_module


def main() -> None:
    argument_spec = auth_argument_spec(
        isvc=dict(type="str"),
        pod_selector=dict(type="str"),
        workload=dict(type="str"),
        namespace=dict(type="str", required=True),
        state=dict(type="str", default="admitted", choices=list(STATES)),
        wait=dict(type="bool", default=True),
        wait_timeout=dict(type="int", default=600, aliases=["timeout"]),
        cluster_queue=dict(type="str"),
        kueue_api_version=dict(type="str", default="auto", aliases=["api_version"]),
    )
    module = new_module(
        argument_spec,
        supports_check_mode=True,
        mutually_exclusive=[("isvc", "pod_selector", "workload")],
        required_one_of=[("isvc", "pod_selector", "workload")],
    )
    run_module(module, lambda m: follow(connect(m), m.params, m.warn))


if __name__ == "__main__":
    main()
