# -*- coding: utf-8 -*-
# Copyright: rhoai.gpuaas contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: isvc_manifest
short_description: The InferenceService of one row of the models table, as the RHOAI dashboard writes it
version_added: 0.2.0
description:
  - Raw deployment (C(serving.kserve.io/deploymentMode)), the LocalQueue label, the hardware profile
    annotations, C(deploymentStrategy Recreate), the GPU toleration, requests and limits, the data
    connection for C(s3://) weights, the model's C(args) and C(env).
  - C(--tensor-parallel-size) follows the model's GPUs when it has more than one and its C(args) do not set it.
  - The stop annotation is written only when the plan entry says so (C(set_state)); afterwards the handover owns it.
author:
  - rhoai.gpuaas maintainers (!UNKNOWN)
positional: settings, plan_entry
options:
  _input:
    description: One row of the models table.
    type: dict
    required: true
  settings:
    description:
      - C(namespace), C(local_queue), C(deployment_mode), C(runtime), C(connection), C(gpu_resource),
        C(hardware_profile_namespace).
    type: dict
    required: true
  plan_entry:
    description: The model's entry of P(rhoai.gpuaas.serving_plan#filter).
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Apply a model
  kubernetes.core.k8s:
    definition: "{{ model | rhoai.gpuaas.isvc_manifest(settings, plan | selectattr('name', 'equalto', model.name) | first) }}"
"""

RETURN = r"""
_value:
  description: The InferenceService object.
  type: dict
"""

from typing import Any, Callable, Dict

from ansible_collections.rhoai.gpuaas.plugins.module_utils.serving import isvc_manifest


class FilterModule:
    def filters(self) -> Dict[str, Callable[..., Any]]:
        return {"isvc_manifest": isvc_manifest}
