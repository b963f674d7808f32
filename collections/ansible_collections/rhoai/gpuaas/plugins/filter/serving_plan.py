# -*- coding: utf-8 -*-
# Copyright: rhoai.gpuaas contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: serving_plan
short_description: Decide which models are on and whether their state is written this run
version_added: 0.2.0
description:
  - The inventory's C(state) applies to a model whose InferenceService does not exist yet, or to every
    model with O(enforce); otherwise the live C(serving.kserve.io/stop) annotation is kept (the handover owns it).
  - When every model of the table exists and is stopped (what a teardown leaves) and O(restore_after_teardown)
    is true, the inventory's states apply again.
author:
  - rhoai.gpuaas maintainers (!UNKNOWN)
positional: models, enforce, restore_after_teardown
options:
  _input:
    description: The live InferenceServices (C(resources) of M(kubernetes.core.k8s_info)).
    type: list
    elements: dict
    required: true
  models:
    description: The models table.
    type: list
    elements: dict
    required: true
  enforce:
    description: Apply the inventory's state to every model.
    type: bool
    required: true
  restore_after_teardown:
    description: Apply the inventory's states again when every model is stopped.
    type: bool
    required: true
"""

EXAMPLES = r"""
- name: Decide the models' states
  ansible.builtin.set_fact:
    plan: "{{ live.resources | rhoai.gpuaas.serving_plan(models, false, true) }}"
"""

RETURN = r"""
_value:
  description: One C({name, exists, on, set_state}) per model, in the table's order.
  type: list
  elements: dict
"""

from typing import Any, Callable, Dict

from ansible_collections.rhoai.gpuaas.plugins.module_utils.serving import plan_states


class FilterModule:
    def filters(self) -> Dict[str, Callable[..., Any]]:
        return {"serving_plan": plan_states}
