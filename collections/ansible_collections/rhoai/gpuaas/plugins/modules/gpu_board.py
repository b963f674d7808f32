#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: rhoai.gpuaas contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: gpu_board
short_description: Show who holds the GPUs - quota per flavor and the state of each model
version_added: 0.2.0
description:
  - Reads the ClusterQueues, the InferenceServices of a namespace, their predictor pods and
    those pods' Kueue Workloads, and returns the whole picture as data and as a board to print.
  - Per ClusterQueue and flavor, the nominal and used GPUs come from the ClusterQueue's own
    spec and status (never a hard-coded total).
  - Each model gets a state - V(ON) (Ready, nothing waiting for quota), V(STARTING) (admitted,
    not Ready yet), V(PENDING) (Kueue holds it back; Kueue's message and its parsed form are
    returned), V(FAILING) (admitted, but a container cannot start or keeps crashing; its last
    words are returned), V(OFF) (stop annotation set), V(ABSENT) (no such InferenceService) -
    with its GPUs, the flavor it was admitted to, its Workloads and pods.
  - One list per kind; Workloads are selected by their pods' uids, so unrelated Workloads in
    the namespace cost nothing.
author:
  - rhoai.gpuaas maintainers (!UNKNOWN)
options:
  namespace:
    description: Namespace of the InferenceServices.
    type: str
    required: true
  models:
    description:
      - InferenceServices to show, in this order. Default - every InferenceService of O(namespace), by name.
      - A name that does not exist is shown as V(ABSENT).
    type: list
    elements: str
  cluster_queues:
    description:
      - ClusterQueues to show. Default - the ones behind the models' LocalQueues (their
        C(kueue.x-k8s.io/queue-name) label, else Kueue's default LocalQueue C(default)).
    type: list
    elements: str
    aliases: [cluster_queue]
  gpu_resource:
    description: Extended resource name of the GPUs.
    type: str
    default: nvidia.com/gpu
  title:
    description: First line of RV(board).
    type: str
  expect:
    description:
      - States some models must be in, for example V(mistral-3-bf16) V(ON) and V(devstral-2) V(OFF) (see EXAMPLES).
      - With O(wait=true) the module watches until they all are, and fails at once when one
        cannot get there by waiting (an V(OFF) model expected V(ON), a model whose container
        keeps crashing, a Workload Kueue can never admit); with O(wait=false) it fails at once
        when they are not.
      - Without it the module only reads.
    type: dict
  explain:
    description:
      - A model whose wait to explain in numbers in RV(explanation) - Kueue's reason, the GPUs
        of the models that are on plus its own against the quota, and the usage per flavor.
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
  - module: rhoai.gpuaas.kueue_wait
"""

EXAMPLES = r"""
- name: Read the GPU board
  rhoai.gpuaas.gpu_board:
    namespace: private-ai
    models: [mistral-3-bf16, mistral-3-int4, devstral-2]
    title: "Step 1: baseline"
  register: gpus

- name: Print it
  ansible.builtin.debug:
    msg: "{{ gpus.board }}"

- name: The baseline uses every GPU and devstral-2 is off
  ansible.builtin.assert:
    that:
      - gpus.used == gpus.nominal
      - (gpus.models | selectattr('name', 'equalto', 'devstral-2') | first).state == 'OFF'

- name: Wait until the baseline stands (fails at once if a model is off or crashing)
  rhoai.gpuaas.gpu_board:
    namespace: private-ai
    expect:
      mistral-3-bf16: "ON"
      mistral-3-int4: "ON"
      devstral-2: "OFF"
    wait_timeout: 300

- name: Why is devstral-2 waiting
  rhoai.gpuaas.gpu_board:
    namespace: private-ai
    explain: devstral-2
  register: why
"""

RETURN = r"""
board:
  description: The board as lines of text - a bar per flavor, then a line per model.
  returned: always
  type: list
  elements: str
  sample:
    - "ClusterQueue rhoai-main-queue (live usage of nvidia.com/gpu)"
    - "  nvidia-l4-1gpu  █░░░  1/1  mistral-3-int4"
    - "  nvidia-l4-4gpu  ████  4/4  mistral-3-bf16"
    - "  GPUs in use: 5/5"
    - "  mistral-3-bf16  4 GPU   ON       nvidia-l4-4gpu"
explanation:
  description: With O(explain), why that model waits, in numbers.
  returned: when O(explain) is set
  type: list
  elements: str
cluster_queues:
  description: Per ClusterQueue its GPU flavors (C(name), C(nominal), C(used), C(models)), totals and workload counts.
  returned: always
  type: list
  elements: dict
flavors:
  description: Every GPU flavor of every ClusterQueue shown, with C(cluster_queue) added.
  returned: always
  type: list
  elements: dict
  sample: [{"name": "nvidia-l4-4gpu", "nominal": 4, "used": 4, "models": ["mistral-3-bf16"], "cluster_queue": "rhoai-main-queue"}]
used:
  description: GPUs in use over the ClusterQueues shown (from their status).
  returned: always
  type: int
nominal:
  description: GPUs of nominal quota over the ClusterQueues shown.
  returned: always
  type: int
models:
  description: One entry per model.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: InferenceService name.
      type: str
    state:
      description: ON, STARTING, PENDING, FAILING, OFF or ABSENT.
      type: str
    gpus:
      description: GPUs its predictor requests.
      type: int
    flavor:
      description: Flavor it was admitted to (null unless admitted).
      type: str
    ready:
      description: The InferenceService's Ready condition is True.
      type: bool
    admitted:
      description: Every Workload of its pods is admitted.
      type: bool
    message:
      description: Kueue's pending message (PENDING) or the container's trouble (FAILING), else empty.
      type: str
    pending:
      description: Kueue's pending message parsed (flavors, resource, more_needed, reasons), else null.
      type: dict
    workloads:
      description: Its Workloads, as M(rhoai.gpuaas.kueue_wait) returns them.
      type: list
      elements: dict
    pods:
      description: Its predictor pods C({name, phase, gated, node, ready, terminating, restarts, trouble}).
      type: list
      elements: dict
gpu_resource:
  description: The GPU resource name counted.
  returned: always
  type: str
elapsed:
  description: Seconds spent.
  returned: always
  type: float
"""

from ansible_collections.rhoai.gpuaas.plugins.module_utils.gpu_view import GPU, board
from ansible_collections.rhoai.gpuaas.plugins.module_utils.k8s_client import auth_argument_spec, connect, new_module
from ansible_collections.rhoai.gpuaas.plugins.module_utils.runner import run_module


def main() -> None:
    argument_spec = auth_argument_spec(
        namespace=dict(type="str", required=True),
        models=dict(type="list", elements="str"),
        cluster_queues=dict(type="list", elements="str", aliases=["cluster_queue"]),
        gpu_resource=dict(type="str", default=GPU),
        title=dict(type="str"),
        explain=dict(type="str"),
        expect=dict(type="dict"),
        wait=dict(type="bool", default=True),
        wait_timeout=dict(type="int", default=600, aliases=["timeout"]),
        kueue_api_version=dict(type="str", default="auto", aliases=["api_version"]),
    )
    module = new_module(argument_spec, supports_check_mode=True)
    run_module(module, lambda m: board(connect(m), m.params))


if __name__ == "__main__":
    main()
