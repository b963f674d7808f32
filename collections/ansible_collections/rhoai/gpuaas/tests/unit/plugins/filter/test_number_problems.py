# -*- coding: utf-8 -*-
"""number_problems: the roles' range check names the variable and its value."""

from __future__ import annotations

from ansible_collections.rhoai.gpuaas.plugins.filter.number_problems import FilterModule, number_problems


def test_timeouts_must_be_positive_and_counts_not_negative() -> None:
    given = {"t_ok": 30, "t_zero": 0, "t_negative": "-1", "t_text": "soon", "t_string": "20"}
    assert number_problems(given) == ["t_zero must be > 0, got 0", "t_negative must be > 0, got -1",
                                      "t_text must be > 0, got soon"]
    assert number_problems({"lock_wait": 0, "replicas": -1}, 0) == ["replicas must be 0 or more, got -1"]
    assert number_problems({"part": 4}, 5) == ["part must be at least 5, got 4"]


def test_the_filter_is_registered_under_its_name() -> None:
    assert FilterModule().filters()["number_problems"] is number_problems
