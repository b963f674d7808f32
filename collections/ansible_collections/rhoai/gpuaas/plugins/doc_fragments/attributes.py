# -*- coding: utf-8 -*-
# Copyright: rhoai.gpuaas contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # Attributes every Kubernetes module of the collection shares.
    DOCUMENTATION = r"""
options: {}
attributes:
  action_group:
    description: Use C(group/rhoai.gpuaas.k8s) in C(module_defaults) to set the connection options once.
    support: full
    membership:
      - rhoai.gpuaas.k8s
"""
