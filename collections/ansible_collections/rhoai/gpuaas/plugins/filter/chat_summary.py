# -*- coding: utf-8 -*-
# Copyright: rhoai.gpuaas contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: chat_summary
short_description: One line from an OpenAI chat completion answered to M(ansible.builtin.uri) - who, how fast, first words
version_added: 0.2.0
description:
  - Takes one loop result of M(ansible.builtin.uri) that posted to C(/v1/chat/completions) and returns
    one line - the model, how many seconds it took, and the first words of its answer - or why it did not answer.
author:
  - rhoai.gpuaas maintainers (!UNKNOWN)
positional: words
options:
  _input:
    description: One element of the C(results) of a looped M(ansible.builtin.uri) task.
    type: dict
    required: true
  words:
    description: How many words of the answer to show.
    type: int
    default: 12
"""

EXAMPLES = r"""
- name: Show what each model answered
  ansible.builtin.debug:
    msg: "{{ answers.results | map('rhoai.gpuaas.chat_summary') | list }}"
"""

RETURN = r"""
_value:
  description: One line per answer.
  type: str
"""

from typing import Any, Callable, Dict


def chat_summary(result: Dict[str, Any], words: int = 12) -> str:
    model = result.get("item")
    answer = result.get("json") or {}
    choices = answer.get("choices") or []
    if result.get("failed") or not choices:
        return "{0} did not answer: {1}".format(model, result.get("msg") or result.get("status"))
    text = (choices[0].get("message") or {}).get("content") or choices[0].get("text") or ""
    first = " ".join(text.split()[:words])
    return "{0} answered in {1:.2f}s: {2}{3}".format(
        model, float(result.get("elapsed") or 0), first, " ..." if len(text.split()) > words else "")


class FilterModule:
    def filters(self) -> Dict[str, Callable[..., Any]]:
        return {"chat_summary": chat_summary}
