#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: rhoai.gpuaas contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: gpu_handover
short_description: Hand a model's GPUs to a queued model - stop one, see Kueue admit the other, undo on failure
version_added: 0.2.0
description:
  - Turns O(outgoing) off with the annotation C(serving.kserve.io/stop=true) and waits, on one
    set of watches with one deadline, until its pods and Kueue Workloads are gone and Kueue
    has admitted O(incoming) (and, with O(wait_for=ready), until O(incoming) is Ready).
  - B(Preflight), before anything changes - O(outgoing) holds GPUs; O(incoming) is on and
    Kueue has refused it (C(QuotaReserved=False)) only for lack of unused quota in the flavor
    O(outgoing) frees; the GPUs free after the stop suffice for O(incoming) in that flavor;
    and Kueue is acting (a dry-run Workload must pass its webhooks within 5 seconds). Any
    failed check fails the task at once, names the check and changes nothing.
  - B(Restore) - when the wait fails (timeout, or a state that cannot reach the goal such as a
    container that keeps crashing), O(outgoing) is turned back on first, then O(incoming) off,
    each step attempted even if the other fails, and the task fails with the reason, the
    steps taken and the board. The restore waits at most O(restore_timeout) seconds for
    O(outgoing) to be admitted again.
  - B(One at a time) - a C(coordination.k8s.io/v1) Lease named O(lock) in O(namespace) is held
    for the whole run; a second run waits up to O(lock_wait) seconds, then fails naming the holder.
    A holder that dies releases it after 30 seconds.
  - B(Converges) - re-run after an interruption, it does not stop O(outgoing) again; it resumes
    the wait. When O(outgoing) is off and O(incoming) admitted, it changes nothing.
author:
  - rhoai.gpuaas maintainers (!UNKNOWN)
options:
  namespace:
    description: Namespace of both InferenceServices.
    type: str
    required: true
  outgoing:
    description: The InferenceService that gives its GPUs up (turned off).
    type: str
    required: true
  incoming:
    description: The InferenceService waiting for them; it must be on and queued by Kueue.
    type: str
    required: true
  resident:
    description: Models that keep their GPUs; shown on the board, never changed.
    type: list
    elements: str
    default: []
  cluster_queues:
    description:
      - ClusterQueue(s) to show and whose usage must count the admission before the task
        returns. Default - the one behind the models' LocalQueue.
    type: list
    elements: str
    aliases: [cluster_queue]
  wait_for:
    description:
      - V(admitted) - Kueue admitted O(incoming) and the ClusterQueue's usage counts it (the
        handover proper; loading the model can take minutes more).
      - V(ready) - O(incoming) is also Ready. A container that keeps crashing (for example
        vLLM out of GPU memory) then fails the handover and restores O(outgoing), so the GPUs
        do not sit idle.
    type: str
    choices: [admitted, ready]
    default: admitted
  ready_timeout:
    description: With O(wait_for=ready), seconds after the admission for O(incoming) to be Ready (pulling the image, loading the weights).
    type: int
    default: 1800
  preflight:
    description: Run the checks above before stopping O(outgoing). Turn off only to hand over whatever Kueue says.
    type: bool
    default: true
  restore:
    description: On failure, turn O(outgoing) back on and O(incoming) off.
    type: bool
    default: true
  restore_timeout:
    description: Seconds the restore waits for O(outgoing) to be admitted again (0 - do not wait).
    type: int
    default: 20
  lock:
    description: Name of the Lease that serialises handovers in O(namespace); empty - no lock.
    type: str
    default: rhoai-gpuaas-handover
  lock_identity:
    description: Holder identity written into the Lease. Default - C(user@host/pid).
    type: str
  lock_wait:
    description: Seconds to wait for a Lease another run holds before failing with its holder's name.
    type: int
    default: 0
  gpu_resource:
    description: Extended resource name of the GPUs.
    type: str
    default: nvidia.com/gpu
  wait_timeout:
    description:
      - Seconds from the stop until O(incoming) must be admitted. When it is not (for example
        because Kueue's controller is not acting), the task gives up after this plus
        O(restore_timeout) and a few seconds of API calls.
    type: int
    default: 300
    aliases: [timeout]
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - rhoai.gpuaas.kueue
  - rhoai.gpuaas.attributes
attributes:
  check_mode:
    support: full
    description: Runs the preflight (the Kueue probe is a dry run anyway) and sends the stop with C(dryRun=All); no wait, no Lease.
  diff_mode:
    support: none
    description: The timeline and the board tell what changed.
requirements:
  - "python >= 3.9"
  - "kubernetes >= 24.2.0"
seealso:
  - module: rhoai.gpuaas.gpu_board
  - module: rhoai.gpuaas.isvc_replicas
"""

EXAMPLES = r"""
- name: Step 3, hand mistral-3-bf16's GPUs to devstral-2
  rhoai.gpuaas.gpu_handover:
    namespace: private-ai
    outgoing: mistral-3-bf16
    incoming: devstral-2
    resident: [mistral-3-int4]
    wait_timeout: 120
  register: handover

- name: Print the board and the timeline
  ansible.builtin.debug:
    msg: "{{ handover.board + ['admitted ' ~ handover.timeline.incoming_admitted ~ 's after the stop'] }}"

- name: Two AAP jobs may overlap; wait up to a minute for the other one
  rhoai.gpuaas.gpu_handover:
    namespace: private-ai
    outgoing: devstral-2
    incoming: mistral-3-bf16
    lock_wait: 60
"""

RETURN = r"""
preflight:
  description: The checks made before the stop, C({check, ok, message}) each.
  returned: always
  type: list
  elements: dict
  sample: [{"check": "pending for quota alone", "ok": true, "message": "Kueue lacks unused quota in nvidia-l4-4gpu, which mistral-3-bf16 frees"}]
timeline:
  description:
    - Seconds after the stop was written when each step was seen - C(stop_written),
      C(outgoing_pods_gone), C(outgoing_released), C(incoming_admitted), C(incoming_ungated),
      C(incoming_bound), C(usage_counted), C(incoming_ready).
  returned: always
  type: dict
  sample: {"stop_written": 0.0, "outgoing_released": 0.12, "incoming_admitted": 1.1, "usage_counted": 1.1}
board:
  description: The GPU board at the end (as M(rhoai.gpuaas.gpu_board) renders it).
  returned: always
  type: list
  elements: str
outgoing:
  description: The outgoing model at the end, as in M(rhoai.gpuaas.gpu_board)'s RV(rhoai.gpuaas.gpu_board#module:models).
  returned: always
  type: dict
incoming:
  description: The incoming model at the end.
  returned: always
  type: dict
used:
  description: GPUs in use at the end.
  returned: always
  type: int
nominal:
  description: GPUs of nominal quota.
  returned: always
  type: int
already_done:
  description: O(outgoing) was already off and O(incoming) admitted; nothing was changed.
  returned: when true
  type: bool
restored:
  description: After a failed wait, why, each restore step C({model, action, ok, error}) and whether O(outgoing) was admitted again.
  returned: on failure after the stop
  type: dict
lock:
  description: The Lease held (C(name), C(identity)) and, if it was lost while held, why.
  returned: when a lock was used and the handover succeeded
  type: dict
elapsed:
  description: Seconds spent.
  returned: always
  type: float
"""

from ansible_collections.rhoai.gpuaas.plugins.module_utils.gpu_view import GPU
from ansible_collections.rhoai.gpuaas.plugins.module_utils.handover import hand_over
from ansible_collections.rhoai.gpuaas.plugins.module_utils.k8s_client import auth_argument_spec, connect, new_module
from ansible_collections.rhoai.gpuaas.plugins.module_utils.runner import run_module


def main() -> None:
    argument_spec = auth_argument_spec(
        namespace=dict(type="str", required=True),
        outgoing=dict(type="str", required=True),
        incoming=dict(type="str", required=True),
        resident=dict(type="list", elements="str", default=[]),
        cluster_queues=dict(type="list", elements="str", aliases=["cluster_queue"]),
        wait_for=dict(type="str", default="admitted", choices=["admitted", "ready"]),
        ready_timeout=dict(type="int", default=1800),
        preflight=dict(type="bool", default=True),
        restore=dict(type="bool", default=True),
        restore_timeout=dict(type="int", default=20),
        lock=dict(type="str", default="rhoai-gpuaas-handover"),
        lock_identity=dict(type="str"),
        lock_wait=dict(type="int", default=0),
        gpu_resource=dict(type="str", default=GPU),
        wait_timeout=dict(type="int", default=300, aliases=["timeout"]),
        kueue_api_version=dict(type="str", default="auto", aliases=["api_version"]),
    )
    module = new_module(argument_spec, supports_check_mode=True)
    run_module(module, lambda m: hand_over(connect(m), m.params, m.check_mode))


if __name__ == "__main__":
    main()
