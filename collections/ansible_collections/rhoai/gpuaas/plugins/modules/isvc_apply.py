#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: rhoai.gpuaas contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: isvc_apply
short_description: Create an InferenceService, or merge-patch it only when that really changes it
version_added: 0.2.0
description:
  - Creates the InferenceService of O(definition) when it does not exist. Otherwise sends O(definition)'s labels,
    annotations and spec as a JSON merge patch, first as a server-side dry run - admission webhooks included - and
    writes it only when the dry run's labels, annotations or spec differ from the live ones.
  - A merge patch leaves what it does not mention alone, so an annotation another tool owns (the stop annotation
    the handover or the RHOAI dashboard set) is kept; and the status, which KServe keeps rewriting, never makes a
    run report a change, so a second run reports none.
author:
  - rhoai.gpuaas maintainers (!UNKNOWN)
options:
  definition:
    description:
      - The InferenceService (C(metadata.name), C(metadata.namespace), labels, annotations, C(spec)), for example
        the output of the filter P(rhoai.gpuaas.isvc_manifest#filter).
    type: dict
    required: true
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - rhoai.gpuaas.attributes
attributes:
  check_mode:
    support: full
    description: The create or patch is sent with C(dryRun=All).
  diff_mode:
    support: full
    description: Labels, annotations and spec before, and as the server answered.
requirements:
  - "python >= 3.9"
  - "kubernetes >= 24.2.0"
seealso:
  - module: rhoai.gpuaas.isvc_replicas
"""

EXAMPLES = r"""
- name: Create or update a model's InferenceService
  rhoai.gpuaas.isvc_apply:
    definition: "{{ model | rhoai.gpuaas.isvc_manifest(settings, plan_entry) }}"
"""

RETURN = r"""
method:
  description: C(create), C(patch) or C(none).
  returned: always
  type: str
isvc:
  description: The InferenceService after the write (name, conditions, stopped, replicas), as in M(rhoai.gpuaas.isvc_replicas).
  returned: always
  type: dict
elapsed:
  description: Seconds spent.
  returned: always
  type: float
"""

from ansible_collections.rhoai.gpuaas.plugins.module_utils.isvc_service import merge_definition
from ansible_collections.rhoai.gpuaas.plugins.module_utils.k8s_client import auth_argument_spec, connect, new_module
from ansible_collections.rhoai.gpuaas.plugins.module_utils.runner import run_module


def main() -> None:
    module = new_module(auth_argument_spec(definition=dict(type="dict", required=True)), supports_check_mode=True)
    run_module(module, lambda m: merge_definition(connect(m), m.params["definition"], m.check_mode, m._diff))


if __name__ == "__main__":
    main()
