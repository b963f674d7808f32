#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: rhoai.gpuaas contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: local_queue
short_description: Point a namespace's Kueue LocalQueue at a ClusterQueue, the way Red Hat OpenShift AI 3.0 makes it
version_added: 0.2.0
description:
  - On RHOAI 3.0 with the DataScienceCluster's Kueue component C(Unmanaged), the operator creates the LocalQueue
    C(defaultLocalQueueName) (default C(default)) in every namespace labelled C(kueue.openshift.io/managed=true),
    once, pointing at C(defaultClusterQueueName) (default C(default)), and never updates it; Kueue refuses any
    change of C(spec.clusterQueue).
  - This module first sets the DataScienceCluster's C(defaultClusterQueueName) and C(defaultLocalQueueName) to
    O(cluster_queue) and O(name) (when O(set_dsc_defaults) and Kueue is C(Unmanaged)), so namespaces labelled from
    now on get the right LocalQueue; then makes O(name) in O(namespace) point at O(cluster_queue) - creating it
    when missing, or, when it points elsewhere, replacing it (delete, then create) as long as no Workload queues
    through it. A LocalQueue in use is never deleted - the task fails naming the Workloads instead, before the
    DataScienceCluster is changed.
  - A ClusterQueue O(cluster_queue) or a namespace O(namespace) that does not exist fails the task before
    anything is changed.
  - Every action taken is listed in RV(actions).
  - Without RHOAI (no DataScienceCluster), only the LocalQueue is handled.
author:
  - rhoai.gpuaas maintainers (!UNKNOWN)
options:
  namespace:
    description: Namespace of the LocalQueue.
    type: str
    required: true
  name:
    description: LocalQueue name (the C(kueue.x-k8s.io/queue-name) label of the models).
    type: str
    default: default
  cluster_queue:
    description: ClusterQueue the LocalQueue must point at.
    type: str
    required: true
  replace:
    description: Replace a LocalQueue that points at another ClusterQueue and that no Workload uses.
    type: bool
    default: true
  set_dsc_defaults:
    description: Set the DataScienceCluster's Kueue defaults to O(cluster_queue) and O(name) when Kueue is C(Unmanaged).
    type: bool
    default: true
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - rhoai.gpuaas.kueue
  - rhoai.gpuaas.attributes
attributes:
  check_mode:
    support: full
    description: Every write is sent with C(dryRun=All).
  diff_mode:
    support: full
    description: The DataScienceCluster's defaults and the LocalQueue's ClusterQueue, before and after.
requirements:
  - "python >= 3.9"
  - "kubernetes >= 24.2.0"
seealso:
  - module: rhoai.gpuaas.gpu_board
"""

EXAMPLES = r"""
- name: Make the operator's LocalQueue default point at the demo's ClusterQueue
  rhoai.gpuaas.local_queue:
    namespace: private-ai
    name: default
    cluster_queue: rhoai-main-queue
  register: lq

- name: Say what was done
  ansible.builtin.debug:
    msg: "{{ lq.actions | default(['nothing to do'], true) }}"
"""

RETURN = r"""
actions:
  description: What was done, one sentence each (empty when nothing changed).
  returned: always
  type: list
  elements: str
  sample: ["DataScienceCluster default-dsc: defaultClusterQueueName default -> rhoai-main-queue",
           "LocalQueue private-ai/default replaced: it pointed at ClusterQueue default (the operator's default), now at rhoai-main-queue"]
local_queue:
  description: The LocalQueue as it stands (C(name), C(cluster_queue)).
  returned: always
  type: dict
dsc:
  description: The DataScienceCluster found (C(name), C(management_state)), if any.
  returned: when RHOAI's DataScienceCluster exists
  type: dict
elapsed:
  description: Seconds spent.
  returned: always
  type: float
"""

from ansible_collections.rhoai.gpuaas.plugins.module_utils.k8s_client import auth_argument_spec, connect, new_module
from ansible_collections.rhoai.gpuaas.plugins.module_utils.local_queue import ensure
from ansible_collections.rhoai.gpuaas.plugins.module_utils.runner import run_module


def main() -> None:
    argument_spec = auth_argument_spec(
        namespace=dict(type="str", required=True),
        name=dict(type="str", default="default"),
        cluster_queue=dict(type="str", required=True),
        replace=dict(type="bool", default=True),
        set_dsc_defaults=dict(type="bool", default=True),
        kueue_api_version=dict(type="str", default="auto", aliases=["api_version"]),
    )
    module = new_module(argument_spec, supports_check_mode=True)
    run_module(module, lambda m: ensure(connect(m), m.params, m.check_mode, m._diff, m.warn))


if __name__ == "__main__":
    main()
