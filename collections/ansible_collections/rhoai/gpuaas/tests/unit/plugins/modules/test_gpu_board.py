# -*- coding: utf-8 -*-
"""gpu_board as Ansible runs it."""

from __future__ import annotations

from ansible_collections.rhoai.gpuaas.tests.unit.plugins import objects as o
from ansible_collections.rhoai.gpuaas.tests.unit.plugins.fake_cluster import FakeCluster


def cluster() -> FakeCluster:
    c = FakeCluster()
    c.add(*o.baseline())
    return c


def test_board_returns_data_lines_and_changes_nothing(run_module) -> None:
    c = cluster()
    result, failed = run_module("gpu_board", {"namespace": o.NS, "title": "Step 2", "explain": "devstral-2"},
                                cluster=c, check=True)
    assert not failed and result["changed"] is False and c.writes == []
    assert result["board"][0] == "Step 2" and (result["used"], result["nominal"]) == (5, 5)
    assert [m["name"] for m in result["models"]] == ["devstral-2", "mistral-3-bf16", "mistral-3-int4"]
    assert result["explanation"][1].startswith("GPUs: 4 + 1 + 4 = 9 > 5")


def test_expect_met_returns_at_once(run_module) -> None:
    result, failed = run_module("gpu_board", {"namespace": o.NS, "expect": {"mistral-3-bf16": "on", "devstral-2": "PENDING"}},
                                cluster=cluster())
    assert not failed and [m["name"] for m in result["models"]] == ["mistral-3-bf16", "devstral-2"]


def test_expect_off_for_a_running_model_fails_at_once_with_the_board(run_module) -> None:
    result, failed = run_module("gpu_board", {"namespace": o.NS, "expect": {"mistral-3-bf16": "OFF"}, "wait_timeout": 60},
                                cluster=cluster())
    # Refused before any wait, with why waiting cannot help (a wait that ran out would say "Timed out after 60s").
    assert failed and result["msg"] == ("Not as expected: mistral-3-bf16 is ON, expected OFF: only a start or stop "
                                        "changes that (stop annotation not set)")
    assert result["board"]


def test_expect_must_be_a_dict(run_module) -> None:
    result, failed = run_module("gpu_board", {"namespace": o.NS, "expect": "ON"})
    assert failed and "expect" in result["msg"]


def test_a_wait_timeout_of_zero_or_less_names_the_option(run_module) -> None:
    c = cluster()
    result, failed = run_module("gpu_board", {"namespace": o.NS, "expect": {"devstral-2": "ON"}, "wait_timeout": -1},
                                cluster=c)
    assert failed and result["msg"] == "wait_timeout must be > 0, got -1" and c.writes == []
