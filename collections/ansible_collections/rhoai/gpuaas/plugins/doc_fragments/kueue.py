# -*- coding: utf-8 -*-
# Copyright: rhoai.gpuaas contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # The Kueue API version option shared by every module that reads Kueue objects.
    DOCUMENTATION = r"""
options:
  kueue_api_version:
    description:
      - Kueue API version, V(v1beta1), V(v1beta2) or V(auto) (the newest one the cluster serves).
      - The C(kueue.x-k8s.io/) group prefix is accepted, so a role variable such as
        V(kueue.x-k8s.io/v1beta1) can be passed as it is.
      - RHOAI 3.0 ships the Red Hat build of Kueue 1.2 (upstream 0.14), which serves only V(v1beta1).
    type: str
    default: auto
    aliases: [api_version]
"""
