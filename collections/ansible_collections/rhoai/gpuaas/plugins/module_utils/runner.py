# -*- coding: utf-8 -*-
# Copyright: rhoai.gpuaas contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""How every rhoai.gpuaas module ends: one result shape, one way to fail.

A module's ``main`` builds its AnsibleModule and calls ``run_module(module, body)``; ``body``
does the work (in module_utils) and returns the result dict. ``run_module`` adds ``elapsed``
(seconds, also on failure) and maps errors to ``fail_json``:

- ``GpuaasError`` (and its subclasses: K8sError, KueueError, WaitError, ...): its message,
  plus the partial result it carries;
- an API answer (an exception with an HTTP ``status``: 403, 409, 422, ...): one line
  "Kubernetes API error: HTTP <status>: <message>", never the response headers;
- anything else is a bug and keeps Ansible's traceback.

``redact`` (optional) is applied to every failure message, for modules holding secrets.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Dict, Optional

from ansible_collections.rhoai.gpuaas.plugins.module_utils.errors import GpuaasError

Body = Callable[[Any], Dict[str, Any]]


def api_error_message(exc: BaseException) -> Optional[str]:
    """One line for an exception that is an HTTP answer from the API, else None."""
    status = getattr(exc, "status", None)
    if status is None:
        return None
    # Imported late: k8s_client needs the kubernetes library, which minio_upload does not.
    from ansible_collections.rhoai.gpuaas.plugins.module_utils.k8s_client import error_message

    return "Kubernetes API error: {0}".format(error_message(exc))


def run_module(module: Any, body: Body, redact: Optional[Callable[[str], str]] = None) -> None:
    """Run ``body(module)`` and exit the module with its result or a clear failure."""
    started = time.monotonic()
    clean = redact or (lambda text: text)

    def elapsed() -> float:
        return round(time.monotonic() - started, 3)

    try:
        result = body(module)
    except GpuaasError as exc:
        partial = dict(exc.result)
        partial.setdefault("elapsed", elapsed())
        module.fail_json(msg=clean(exc.msg), **partial)
    except Exception as exc:  # only API answers are mapped; other errors are bugs
        message = api_error_message(exc)
        if message is None:
            raise
        module.fail_json(msg=clean(message), elapsed=elapsed())
    result.setdefault("elapsed", elapsed())
    module.exit_json(**result)
