# -*- coding: utf-8 -*-
# Copyright: rhoai.gpuaas contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # The waiting options shared by the modules that watch the cluster.
    DOCUMENTATION = r"""
options:
  wait:
    description:
      - Whether to wait until the goal is reached (see the module's description for the goal).
      - Waiting lists, then watches, with one deadline; dropped watches are reconnected, and
        states that can never reach the goal fail at once.
    type: bool
    default: true
  wait_timeout:
    description:
      - Seconds to wait in total. On timeout the task fails and reports the last state seen.
    type: int
    default: 600
    aliases: [timeout]
"""
