# -*- coding: utf-8 -*-
# Copyright: rhoai.gpuaas contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: number_problems
short_description: The role variables whose numbers are out of range, one sentence each naming the variable
version_added: 0.2.0
description:
  - Role argument specs check types, not ranges. A role checks its counts and timeouts with this filter first,
    so that a negative timeout fails the play before anything is read or changed, naming the role variable
    (not the option of the module it would have reached, after other tasks had changed the cluster).
author:
  - rhoai.gpuaas maintainers (!UNKNOWN)
positional: minimum
options:
  _input:
    description: Variable name to value.
    type: dict
    required: true
  minimum:
    description: The smallest value allowed (V(1) for timeouts, V(0) for counts).
    type: int
    default: 1
"""

EXAMPLES = r"""
- name: Check the timeouts before anything is changed
  ansible.builtin.assert:
    that: problems | length == 0
    fail_msg: "{{ problems | join('; ') }}"
  vars:
    problems: "{{ {'teardown_wait_timeout': teardown_wait_timeout} | rhoai.gpuaas.number_problems }}"
"""

RETURN = r"""
_value:
  description: One sentence per variable out of range, for example C(teardown_wait_timeout must be > 0, got -1); empty when all are fine.
  type: list
  elements: str
"""

from typing import Any, Callable, Dict, List


def number_problems(numbers: Dict[str, Any], minimum: int = 1) -> List[str]:
    """``<name> must be > 0, got <value>`` (or ``0 or more``, ``at least N``) for each value below ``minimum``."""
    bound = {0: "0 or more", 1: "> 0"}.get(minimum, "at least {0}".format(minimum))
    found = []
    for name, value in numbers.items():
        try:
            ok = int(str(value)) >= minimum
        except ValueError:
            ok = False
        if not ok:
            found.append("{0} must be {1}, got {2}".format(name, bound, value))
    return found


class FilterModule:
    def filters(self) -> Dict[str, Callable[..., Any]]:
        return {"number_problems": number_problems}
