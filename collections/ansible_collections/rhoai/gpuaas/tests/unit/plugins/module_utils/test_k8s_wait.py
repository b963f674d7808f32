# -*- coding: utf-8 -*-
"""The shared waiter against a fake list/watch source (no cluster)."""

from __future__ import annotations

import queue
import threading
import time
from typing import Any, Dict, List

import pytest

from ansible_collections.rhoai.gpuaas.plugins.module_utils import k8s_wait
from ansible_collections.rhoai.gpuaas.plugins.module_utils.k8s_wait import (
    Source,
    WaitApiError,
    WaitFailed,
    WaitTimeout,
    condition_status,
    condition_true,
    generation_observed,
    get_condition,
    wait_for,
)


class FakeApiError(Exception):
    """Shaped like kubernetes' ApiException: only ``status`` matters to the waiter."""

    def __init__(self, status: int) -> None:
        super().__init__("HTTP {0}".format(status))
        self.status = status


class FakeApi:
    """One kind: a store with a resourceVersion, a scripted watch stream and failures."""

    END = object()

    def __init__(self, *objs: Dict[str, Any]) -> None:
        self.rv = 1
        self.items: Dict[str, Dict[str, Any]] = {}
        self.events: "queue.Queue[Any]" = queue.Queue()
        self.list_calls = 0
        self.watch_calls: List[str] = []
        self.list_errors: List[BaseException] = []
        self.lock = threading.Lock()
        for obj in objs:
            self._store(obj)

    def _store(self, obj: Dict[str, Any]) -> Dict[str, Any]:
        self.rv += 1
        obj = dict(obj, metadata=dict(obj["metadata"], resourceVersion=str(self.rv)))
        self.items[obj["metadata"]["name"]] = obj
        return obj

    def put(self, obj: Dict[str, Any], event: str = "MODIFIED") -> None:
        with self.lock:
            self.events.put({"type": event, "object": self._store(obj)})

    def delete(self, name: str, silently: bool = False) -> None:
        with self.lock:
            obj = self.items.pop(name)
            self.rv += 1
            if not silently:
                self.events.put({"type": "DELETED", "object": obj})

    def list_fn(self):
        with self.lock:
            self.list_calls += 1
            if self.list_errors:
                raise self.list_errors.pop(0)
            return list(self.items.values()), str(self.rv)

    def watch_fn(self, resource_version: str, timeout: int):
        self.watch_calls.append(resource_version)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                item = self.events.get(timeout=0.02)
            except queue.Empty:
                continue
            if item is FakeApi.END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def source(self, name: str) -> Source:
        return Source(name, self.list_fn, self.watch_fn)


def obj(name: str, ready: str = "False", generation: int = 1, observed: int = 1) -> Dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "ns", "uid": "uid-" + name, "generation": generation},
        "status": {"observedGeneration": observed, "conditions": [{"type": "Ready", "status": ready}]},
    }


def all_ready(state):
    return bool(state["a"]) and all(condition_true(o, "Ready") for o in state["a"])


FAST = dict(backoff_initial=0.01, backoff_max=0.05)


def later(delay: float, fn, *args, **kwargs) -> None:
    timer = threading.Timer(delay, fn, args, kwargs)
    timer.daemon = True
    timer.start()


def test_done_on_initial_list():
    api = FakeApi(obj("x", "True"))
    result = wait_for([api.source("a")], all_ready, timeout=5)
    assert result.elapsed < 1
    assert [o["metadata"]["name"] for o in result.state["a"]] == ["x"]


def test_done_after_watch_event():
    api = FakeApi(obj("x"))
    later(0.2, api.put, obj("x", "True"))
    result = wait_for([api.source("a")], all_ready, timeout=5)
    assert condition_true(result.state["a"][0], "Ready")
    assert api.watch_calls == ["2"]  # watched from the list's resourceVersion


def test_failed_predicate_fails_at_once_with_reason_and_state():
    api = FakeApi(obj("x"))
    later(0.1, api.put, obj("x", "Broken"))

    def failed(state):
        return "x is broken" if condition_status(state["a"][0], "Ready") == "Broken" else None

    with pytest.raises(WaitFailed) as err:
        wait_for([api.source("a")], all_ready, failed=failed, timeout=5,
                 summary=lambda s: [condition_status(o, "Ready") for o in s["a"]])
    assert "x is broken" in str(err.value)
    assert err.value.last_state == ["Broken"]
    assert err.value.elapsed < 2


def test_timeout_carries_last_state():
    api = FakeApi(obj("x"))
    started = time.monotonic()
    with pytest.raises(WaitTimeout) as err:
        wait_for([api.source("a")], all_ready, timeout=0.5, description="x ready",
                 summary=lambda s: {o["metadata"]["name"]: condition_status(o, "Ready") for o in s["a"]})
    assert 0.45 < time.monotonic() - started < 2
    assert err.value.last_state == {"x": "False"}
    assert "x ready" in str(err.value) and '"x": "False"' in str(err.value)


def test_gone_410_relists_and_drops_objects_deleted_meanwhile():
    api = FakeApi(obj("x", "True"), obj("y"))

    def lose_events_then_410():
        api.delete("y", silently=True)
        api.events.put(FakeApiError(410))

    later(0.1, lose_events_then_410)
    result = wait_for([api.source("a")], all_ready, timeout=5, **FAST)
    assert [o["metadata"]["name"] for o in result.state["a"]] == ["x"]
    assert api.list_calls == 2


def test_reconnects_from_last_resource_version_when_watch_ends():
    api = FakeApi(obj("x"))

    def script():
        api.put(obj("y"), "ADDED")  # rv 3
        api.events.put(FakeApi.END)
        time.sleep(0.2)
        api.put(obj("x", "True"))
        api.put(obj("y", "True"))

    later(0.1, script)
    result = wait_for([api.source("a")], all_ready, timeout=5, **FAST)
    assert len(result.state["a"]) == 2
    assert api.watch_calls[:2] == ["2", "3"]
    assert api.list_calls == 1


@pytest.mark.parametrize("error", [FakeApiError(503), FakeApiError(429), FakeApiError(500), ConnectionRefusedError("refused")])
def test_retries_transient_errors(error):
    api = FakeApi(obj("x", "True"))
    api.list_errors = [error, error]
    result = wait_for([api.source("a")], all_ready, timeout=5, **FAST)
    assert result.state["a"]
    assert api.list_calls == 3


def test_transient_watch_error_then_recovery():
    api = FakeApi(obj("x"))

    def script():
        api.events.put(ConnectionResetError("reset by peer"))
        time.sleep(0.1)
        api.put(obj("x", "True"))

    later(0.1, script)
    result = wait_for([api.source("a")], all_ready, timeout=5, **FAST)
    assert condition_true(result.state["a"][0], "Ready")
    assert api.list_calls == 1  # a reconnect, not a re-list


def test_backoff_is_capped_and_timeout_names_last_api_error():
    api = FakeApi()
    api.list_errors = [ConnectionRefusedError("refused")] * 1000
    with pytest.raises(WaitTimeout) as err:
        wait_for([api.source("a")], lambda s: True, timeout=1, backoff_initial=0.01, backoff_max=0.1)
    assert "never listed: a" in str(err.value)
    assert "refused" in str(err.value)
    assert api.list_calls >= 8  # capped at 0.1 s, so it kept trying


def test_non_retriable_error_stops_at_once():
    api = FakeApi()
    api.list_errors = [FakeApiError(403)]
    with pytest.raises(WaitApiError) as err:
        wait_for([api.source("a")], lambda s: True, timeout=5)
    assert err.value.cause.status == 403
    assert err.value.elapsed < 1


def test_several_kinds_predicates_see_full_state_only_after_all_listed():
    pods = FakeApi(obj("p1"))
    workloads = FakeApi()
    workloads.list_errors = [FakeApiError(503)]
    seen = []

    def done(state):
        seen.append(sorted(state))
        return any(condition_true(w, "Ready") for w in state["workloads"]) and bool(state["pods"])

    later(0.2, workloads.put, obj("w1", "True"), "ADDED")
    result = wait_for([pods.source("pods"), workloads.source("workloads")], done, timeout=5, **FAST)
    assert all(keys == ["pods", "workloads"] for keys in seen)
    assert [o["metadata"]["name"] for o in result.state["workloads"]] == ["w1"]


def test_deleted_event_removes_object():
    api = FakeApi(obj("x"))
    later(0.1, api.delete, "x")
    result = wait_for([api.source("a")], lambda s: not s["a"], timeout=5)
    assert result.state == {"a": []}


def test_duplicate_source_names_rejected():
    api = FakeApi()
    with pytest.raises(ValueError):
        wait_for([api.source("a"), api.source("a")], lambda s: True, timeout=1)


def test_watch_timeout_never_exceeds_the_deadline():
    api = FakeApi(obj("x"))
    with pytest.raises(WaitTimeout):
        wait_for([api.source("a")], all_ready, timeout=0.3)
    assert k8s_wait.MAX_WATCH_SECONDS >= 1
    # the first watch was asked for at most the remaining time (rounded up)
    assert api.watch_calls


class TestConditions:
    def test_stale_generation_is_not_trusted(self):
        stale = obj("x", "True", generation=2, observed=1)
        assert not generation_observed(stale)
        assert get_condition(stale, "Ready") is None
        assert condition_status(stale, "Ready", require_current=False) == "True"

    def test_condition_observed_generation_wins(self):
        o = obj("x", "True", generation=3, observed=1)
        o["status"]["conditions"][0]["observedGeneration"] = 3
        assert condition_true(o, "Ready")
        o["status"]["conditions"][0]["observedGeneration"] = 2
        assert not condition_true(o, "Ready")

    def test_no_generation_reported_is_trusted(self):
        o = {"metadata": {"name": "p"}, "status": {"conditions": [{"type": "Ready", "status": "True"}]}}
        assert condition_true(o, "Ready")
        assert condition_status(o, "Missing") is None
