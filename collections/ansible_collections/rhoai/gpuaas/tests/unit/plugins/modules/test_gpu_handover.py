# -*- coding: utf-8 -*-
"""gpu_handover as Ansible runs it (the behaviour is in test_handover.py)."""

from __future__ import annotations

from ansible_collections.rhoai.gpuaas.tests.unit.plugins import objects as o
from ansible_collections.rhoai.gpuaas.tests.unit.plugins.fake_cluster import FakeCluster

ARGS = {"namespace": o.NS, "outgoing": "mistral-3-bf16", "incoming": "devstral-2", "lock": ""}


def test_required_options(run_module) -> None:
    result, failed = run_module("gpu_handover", {"namespace": o.NS})
    assert failed and "missing required arguments: incoming, outgoing" in result["msg"]


def test_check_mode_is_a_dry_run_with_the_preflight(run_module) -> None:
    c = FakeCluster()
    c.add(*o.baseline())
    result, failed = run_module("gpu_handover", ARGS, cluster=c, check=True)
    assert not failed and result["changed"] is True
    assert all(w["dry_run"] for w in c.writes) and len(result["preflight"]) == 5


def test_refused_preflight_fails_naming_the_check(run_module) -> None:
    c = FakeCluster()
    c.add(*o.baseline())
    c.update(o.isvc("devstral-2", stopped=True))
    result, failed = run_module("gpu_handover", dict(ARGS, wait_timeout=30), cluster=c)
    assert failed and "(incoming is queued)" in result["msg"] and not [w for w in c.writes if not w["dry_run"]]
    assert [c["check"] for c in result["preflight"] if not c["ok"]] == ["incoming is queued"]


def test_negative_restore_timeout_is_refused(run_module) -> None:
    result, failed = run_module("gpu_handover", dict(ARGS, restore_timeout=-5), cluster=FakeCluster())
    assert failed and result["msg"] == "restore_timeout must be >= 0, got -5"
