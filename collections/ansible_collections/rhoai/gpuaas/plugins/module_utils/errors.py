# -*- coding: utf-8 -*-
# Copyright: rhoai.gpuaas contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one error type a module reports as its message.

Kept free of imports so the pure module_utils (kueue, isvc, s3_etag) can raise it without
pulling in the Kubernetes client. ``runner.run_module`` turns it into ``fail_json``.
"""

from __future__ import annotations

from typing import Any, Dict


class GpuaasError(Exception):
    """A failure the user can act on.

    ``msg`` is safe to show (no secrets) and names the option or object to fix; ``result``
    holds what was gathered before the failure (e.g. the last state a wait saw), returned
    beside ``msg`` so a failed task still tells where things stand.
    """

    def __init__(self, msg: str, **result: Any) -> None:
        super().__init__(msg)
        self.msg = msg
        self.result: Dict[str, Any] = result
