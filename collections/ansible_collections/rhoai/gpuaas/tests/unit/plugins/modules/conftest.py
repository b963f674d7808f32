# -*- coding: utf-8 -*-
"""Run a module's ``main()`` the way Ansible does (argument spec, check mode, diff), against a FakeCluster."""

from __future__ import annotations

import importlib
import json
from typing import Any, Callable, Dict, Tuple

import pytest

from ansible.module_utils.testing import patch_module_args

from ansible_collections.rhoai.gpuaas.tests.unit.plugins.fake_cluster import FakeCluster


class Exited(Exception):
    def __init__(self, result: Dict[str, Any]) -> None:
        super().__init__(json.dumps(result, default=str))
        self.result = result


@pytest.fixture
def run_module(monkeypatch: pytest.MonkeyPatch) -> Callable[..., Tuple[Dict[str, Any], bool]]:
    """``run_module(name, args, cluster=None, check=False, diff=False) -> (result, failed)``."""
    from ansible.module_utils import basic

    def exit_json(self: Any, **kw: Any) -> None:
        raise Exited(dict(kw, failed=False))

    def fail_json(self: Any, msg: str, **kw: Any) -> None:
        raise Exited(dict(kw, msg=msg, failed=True))
    monkeypatch.setattr(basic.AnsibleModule, "exit_json", exit_json)
    monkeypatch.setattr(basic.AnsibleModule, "fail_json", fail_json)

    def run(name: str, args: Dict[str, Any], cluster: Any = None, check: bool = False,
            diff: bool = False) -> Tuple[Dict[str, Any], bool]:
        """``cluster``: a FakeCluster, or an exception ``connect`` raises (None: must not connect)."""
        module = importlib.import_module("ansible_collections.rhoai.gpuaas.plugins.modules." + name)
        connected = []

        def connect(m: Any) -> FakeCluster:
            connected.append(m)
            assert cluster is not None, "the module connected although it should have failed before"
            if isinstance(cluster, Exception):
                raise cluster
            return cluster
        if hasattr(module, "connect"):
            monkeypatch.setattr(module, "connect", connect)
        full = dict(args, _ansible_check_mode=check, _ansible_diff=diff)
        with patch_module_args(full):
            with pytest.raises(Exited) as ended:
                module.main()
        return ended.value.result, ended.value.result["failed"]
    return run
