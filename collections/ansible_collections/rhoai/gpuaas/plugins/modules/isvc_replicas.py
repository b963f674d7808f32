#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: rhoai.gpuaas contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: isvc_replicas
short_description: Start, stop or resize a KServe InferenceService so that its GPUs really come and go
version_added: 0.1.0
description:
  - Turns an InferenceService (raw deployment mode, as in Red Hat OpenShift AI 3.0) on or off,
    or sets its replica count, and waits until the predictor pods and their Kueue Workloads
    reach the requested state.
  - The default strategy V(auto) stops with the annotation C(serving.kserve.io/stop=true) -
    KServe then deletes the predictor Deployment, the pod goes away and Kueue returns its
    GPU quota at once. Patching C(minReplicas) to 0 (strategy V(min_replicas), the approach
    of the original demo) frees no GPU under KServe's default C(hpa) autoscaler class,
    because KServe clamps the HPA minimum to 1.
  - Runs preflight checks before changing anything - the InferenceService exists, the
    replica count is valid and, when waiting for V(admitted) or V(ready), every resource the
    predictor requests is covered by the ClusterQueue behind its LocalQueue (otherwise Kueue
    never admits the pod).
author:
  - rhoai.gpuaas maintainers (!UNKNOWN)
options:
  name:
    description: Name of the InferenceService.
    type: str
    required: true
  namespace:
    description: Namespace of the InferenceService.
    type: str
    required: true
  replicas:
    description:
      - Number of predictor replicas; V(0) stops the model, more than 0 starts it with that
        many replicas (C(minReplicas) and C(maxReplicas) are both set to it, except for
        V(deployment_scale) which scales the Deployment).
      - Exactly one of O(replicas) and O(state) is required.
    type: int
  state:
    description:
      - V(stopped) is O(replicas=0); V(started) starts the model with the replica counts
        already in the InferenceService.
    type: str
    choices: [started, stopped]
  strategy:
    description:
      - How to change the replica count.
      - V(auto) - same as V(stop_annotation); chosen because it is the one mechanism that
        frees the GPU whatever the autoscaler class, and what the RHOAI dashboard does.
      - V(stop_annotation) - off sets C(serving.kserve.io/stop=true); on sets it to C(false)
        and, with O(replicas), sets C(minReplicas)=C(maxReplicas)=O(replicas).
      - V(autoscaler_none) - sets C(serving.kserve.io/autoscalerClass=none) and
        C(minReplicas)=C(maxReplicas)=N; KServe then sets the Deployment's replicas to N.
      - V(deployment_scale) - scales Deployment C(<name>-predictor) through its scale
        subresource (the HPA reports C(ScalingDisabled) at 0).
      - V(min_replicas) - patches C(spec.predictor.minReplicas) only. Warns, because under the
        default C(hpa) class C(minReplicas=0) keeps one pod and its GPUs.
      - Starting always lifts a C(serving.kserve.io/stop=true) annotation.
    type: str
    choices: [auto, stop_annotation, autoscaler_none, deployment_scale, min_replicas]
    default: auto
  wait_for:
    description:
      - What O(wait) waits for.
      - V(stopped) - no predictor pod and none of their Kueue Workloads is left (GPUs freed).
      - V(queued) - the predictor pods exist and Kueue has a Workload for each (admitted or not).
      - V(pending) - ... and Kueue has assessed and refused each (C(QuotaReserved=False)); the
        result carries Kueue's reason (RV(pending_reason), RV(pending)).
      - V(admitted) - every predictor pod's Workload is admitted (the GPUs are granted; the
        model may still be loading). Fails at once when Kueue can never admit it.
      - V(ready) - the InferenceService is C(Ready=True), not C(Stopped), and the expected
        number of predictor pods is Ready. Fails at once when a container keeps crashing
        (for example vLLM running out of GPU memory), with the container's last words.
      - Default - V(stopped) when turning off, V(admitted) when turning on (the GPU handover
        is settled then; model loading can take much longer, use V(ready) for it).
    type: str
    choices: [stopped, queued, pending, admitted, ready]
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - rhoai.gpuaas.wait
  - rhoai.gpuaas.kueue
  - rhoai.gpuaas.attributes
attributes:
  check_mode:
    support: full
    description:
      - Every write is sent with C(dryRun=All), so admission webhooks are consulted; nothing is
        stored and nothing is waited for.
  diff_mode:
    support: full
    description: The changed annotations, replica fields or Deployment replicas, before and as the server answered.
requirements:
  - "python >= 3.9"
  - "kubernetes >= 24.2.0"
notes:
  - Use C(spec.predictor.deploymentStrategy.type=Recreate) on Kueue-managed InferenceServices,
    otherwise a rollout's new pod is gated while the old one holds the quota.
seealso:
  - module: rhoai.gpuaas.kueue_wait
"""

EXAMPLES = r"""
- name: Stop mistral-3-bf16 and wait until its 4 GPUs are back in the quota
  rhoai.gpuaas.isvc_replicas:
    name: mistral-3-bf16
    namespace: private-ai
    state: stopped

- name: Start devstral-2 and wait until Kueue admits it
  rhoai.gpuaas.isvc_replicas:
    name: devstral-2
    namespace: private-ai
    state: started
    wait_for: admitted
    wait_timeout: 300
  register: devstral

- name: Start it without waiting; Kueue may keep it pending
  rhoai.gpuaas.isvc_replicas:
    name: devstral-2
    namespace: private-ai
    replicas: 1
    wait_for: queued

- name: Scale the predictor Deployment directly
  rhoai.gpuaas.isvc_replicas:
    name: mistral-3-int4
    namespace: private-ai
    replicas: 0
    strategy: deployment_scale
"""

RETURN = r"""
isvc:
  description: The InferenceService after the change.
  returned: success or when the InferenceService exists
  type: dict
  contains:
    name:
      description: Name.
      type: str
    conditions:
      description: Conditions (type, status, reason, message), e.g. Ready, PredictorReady, Stopped.
      type: list
      elements: dict
    stopped:
      description: Whether the stop annotation is C(true).
      type: bool
    min_replicas:
      description: C(spec.predictor.minReplicas).
      type: int
    max_replicas:
      description: C(spec.predictor.maxReplicas).
      type: int
    autoscaler_class:
      description: Autoscaler class (C(hpa) when not annotated).
      type: str
pods:
  description: Predictor pods C({name, phase, gated, node, ready, terminating, restarts, trouble}).
  returned: always
  type: list
  elements: dict
workloads:
  description: Kueue Workloads of the predictor pods, as returned by M(rhoai.gpuaas.kueue_wait).
  returned: always
  type: list
  elements: dict
pending_reason:
  description: Kueue's message for a pending Workload of the predictor, else null.
  returned: always
  type: str
  sample: "couldn't assign flavors to pod set main: insufficient unused quota for nvidia.com/gpu in flavor nvidia-l4-4gpu, 4 more needed"
pending:
  description: RV(pending_reason) parsed (flavors, resource, more_needed, reasons), else null.
  returned: always
  type: dict
strategy:
  description: Strategy applied.
  returned: always
  type: str
wait_for:
  description: The goal waited for (or that would have been waited for, with O(wait=false)).
  returned: always
  type: str
elapsed:
  description: Seconds spent, including the wait.
  returned: always
  type: float
"""

from ansible_collections.rhoai.gpuaas.plugins.module_utils import isvc as kserve
from ansible_collections.rhoai.gpuaas.plugins.module_utils.isvc_service import WAIT_GOALS, apply_replicas
from ansible_collections.rhoai.gpuaas.plugins.module_utils.k8s_client import auth_argument_spec, connect, new_module
from ansible_collections.rhoai.gpuaas.plugins.module_utils.runner import run_module


def main() -> None:
    argument_spec = auth_argument_spec(
        name=dict(type="str", required=True),
        namespace=dict(type="str", required=True),
        replicas=dict(type="int"),
        state=dict(type="str", choices=["started", "stopped"]),
        strategy=dict(type="str", default="auto", choices=list(kserve.STRATEGIES)),
        wait=dict(type="bool", default=True),
        wait_for=dict(type="str", choices=list(WAIT_GOALS)),
        wait_timeout=dict(type="int", default=600, aliases=["timeout"]),
        kueue_api_version=dict(type="str", default="auto", aliases=["api_version"]),
    )
    module = new_module(
        argument_spec,
        supports_check_mode=True,
        mutually_exclusive=[("replicas", "state")],
        required_one_of=[("replicas", "state")],
    )
    run_module(module, lambda m: apply_replicas(connect(m), m.params, m.check_mode, m._diff, m.warn))


if __name__ == "__main__":
    main()
