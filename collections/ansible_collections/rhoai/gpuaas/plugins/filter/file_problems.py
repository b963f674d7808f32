# -*- coding: utf-8 -*-
# Copyright: rhoai.gpuaas contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: file_problems
short_description: The role variables naming a file that does not exist, one sentence each naming the variable
version_added: 0.2.0
description:
  - A role checks its path settings (a kubeconfig) with this filter first, so that a wrong path fails the play
    before anything is read or changed, naming the role variable. An empty value means "not set" and passes.
author:
  - rhoai.gpuaas maintainers (!UNKNOWN)
options:
  _input:
    description: Variable name to path (C(~) is expanded).
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Check the kubeconfig before anything is changed
  ansible.builtin.assert:
    that: problems | length == 0
    fail_msg: "{{ problems | join('; ') }}"
  vars:
    problems: "{{ {'teardown_kubeconfig': teardown_kubeconfig} | rhoai.gpuaas.file_problems }}"
"""

RETURN = r"""
_value:
  description: One sentence per variable, for example C(teardown_kubeconfig /tmp/nope is not a file); empty when all are fine.
  type: list
  elements: str
"""

import os
from typing import Any, Callable, Dict, List


def file_problems(paths: Dict[str, Any]) -> List[str]:
    """``<name> <path> is not a file`` for each set path that is not a file."""
    return ["{0} {1} is not a file".format(name, path) for name, path in paths.items()
            if path and not os.path.isfile(os.path.expanduser(str(path)))]


class FilterModule:
    def filters(self) -> Dict[str, Callable[..., Any]]:
        return {"file_problems": file_problems}
