# -*- coding: utf-8 -*-
# Copyright: rhoai.gpuaas contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: serving_problems
short_description: The serving role's preflight - every reason Kueue would never admit a model
version_added: 0.2.0
description:
  - Checks each model's state word, flavor, requested resources against the ClusterQueue's covered
    resources, storage URI scheme, each flavor's quota for every covered resource, and that the models
    that will be on fit each flavor's quota (quantities compared as Kubernetes quantities).
author:
  - rhoai.gpuaas maintainers (!UNKNOWN)
positional: flavors, covered, gpu_resource, cluster_queue, plan
options:
  _input:
    description: The models table.
    type: list
    elements: dict
    required: true
  flavors:
    description: The ResourceFlavors with their C(quota).
    type: list
    elements: dict
    required: true
  covered:
    description: The ClusterQueue's coveredResources.
    type: list
    elements: str
    required: true
  gpu_resource:
    description: Extended resource name of the GPUs.
    type: str
    required: true
  cluster_queue:
    description: ClusterQueue name, for the messages.
    type: str
    required: true
  plan:
    description: The output of P(rhoai.gpuaas.serving_plan#filter).
    type: list
    elements: dict
    required: true
"""

EXAMPLES = r"""
- name: Fail before applying anything when a model can never be admitted
  ansible.builtin.fail:
    msg: "{{ problems | join('; ') }}"
  when: problems | length > 0
  vars:
    problems: "{{ models | rhoai.gpuaas.serving_problems(flavors, covered, 'nvidia.com/gpu', 'rhoai-main-queue', plan) }}"
"""

RETURN = r"""
_value:
  description: One sentence per problem; empty when every model can be admitted.
  type: list
  elements: str
"""

from typing import Any, Callable, Dict

from ansible_collections.rhoai.gpuaas.plugins.module_utils.serving import problems


class FilterModule:
    def filters(self) -> Dict[str, Callable[..., Any]]:
        return {"serving_problems": problems}
