# -*- coding: utf-8 -*-
"""The shared waiter against a fake list/watch source (no cluster)."""

from __future__ import annotations

import datetime
import json
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
    """Shaped like kubernetes' ApiException without a body: ``status`` and the HTTP ``reason``."""

    def __init__(self, status: int, reason: str = "Forbidden") -> None:
        super().__init__("({0})\nReason: {1}\nHTTP response headers: {{}}".format(status, reason))
        self.status = status
        self.reason = reason


class FakeApi:
    """One kind: a store with a resourceVersion, a scripted watch stream and failures."""

    END = object()

    def __init__(self, *objs: Dict[str, Any]) -> None:
        self.rv = 1
        self.items: Dict[str, Dict[str, Any]] = {}
        self.events: "queue.Queue[Any]" = queue.Queue()
        self.list_calls = 0
        self.watch_calls: List[str] = []
        self.watch_timeouts: List[int] = []
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
        # what the API server would refuse: a watch must start from a version it handed out,
        # and timeoutSeconds is a positive integer
        assert isinstance(resource_version, str) and 1 <= int(resource_version) <= self.rv, resource_version
        assert isinstance(timeout, int) and timeout >= 1, timeout
        self.watch_calls.append(resource_version)
        self.watch_timeouts.append(timeout)
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
    assert [o["metadata"]["name"] for o in result.state["a"]] == ["x"]
    assert result.state["a"][0]["metadata"]["resourceVersion"] == "2"  # the listed object, no event needed


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
    assert str(err.value) == "x is broken (while waiting for the expected state)"
    assert err.value.last_state == ["Broken"]
    assert api.list_calls == 1  # failed at once: no retry, no re-list


def test_timeout_carries_last_state():
    api = FakeApi(obj("x"))
    with pytest.raises(WaitTimeout) as err:
        wait_for([api.source("a")], all_ready, timeout=0.5, description="x ready",
                 summary=lambda s: {o["metadata"]["name"]: condition_status(o, "Ready") for o in s["a"]})
    assert err.value.last_state == {"x": "False"}
    assert str(err.value) == 'Timed out after 0.5s waiting for x ready; last state: {"x": "False"}'


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


def test_backoff_doubles_up_to_its_cap_and_resets():
    backoff = k8s_wait._Backoff(0.5, 3.0)
    assert [backoff.next() for attempt in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    backoff.reset()
    assert backoff.next() == 0.5


def test_timeout_names_the_sources_never_listed_and_the_last_api_error():
    api = FakeApi()
    api.list_errors = [ConnectionRefusedError("refused")] * 1000
    other = FakeApi(obj("x"))
    with pytest.raises(WaitTimeout) as err:
        wait_for([other.source("b"), api.source("a")], lambda s: True, timeout=0.5, **FAST)
    assert str(err.value) == ('Timed out after 0.5s waiting for the expected state; last state: {"a": 0, "b": 1}; '
                              "never listed: a; last API error: a: ConnectionRefusedError: refused")
    assert api.list_calls >= 2  # it kept trying


def test_non_retriable_error_stops_at_once():
    api = FakeApi()
    api.list_errors = [FakeApiError(403)]
    with pytest.raises(WaitApiError) as err:
        wait_for([api.source("a")], lambda s: True, timeout=5)
    assert err.value.cause.status == 403
    assert str(err.value) == "API error while waiting for the expected state (a): HTTP 403: Forbidden"
    assert api.list_calls == 1


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


class ManualClock:
    """A monotonic clock that moves only when a test says so."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("timeout,first_watch", [(2.5, 3), (0.2, 1), (1000, k8s_wait.MAX_WATCH_SECONDS)])
def test_a_watch_is_asked_for_no_longer_than_the_time_left(timeout, first_watch):
    clock = ManualClock()
    api = FakeApi(obj("x"))
    asked: List[int] = []

    def watch(resource_version: str, seconds: int):
        asked.append(seconds)
        clock.now += timeout  # the whole wait passes during this watch
        yield {"type": "MODIFIED", "object": api.items["x"]}

    with pytest.raises(WaitTimeout):
        wait_for([Source("a", api.list_fn, watch)], all_ready, timeout=timeout, clock=clock, **FAST)
    assert asked == [first_watch]


def test_a_reconnect_asks_only_for_the_time_left():
    clock = ManualClock()
    api = FakeApi(obj("x"))
    asked: List[int] = []

    steps = [1.2, 1.0, 5.0]

    def watch(resource_version: str, seconds: int):
        asked.append(seconds)
        clock.now += steps.pop(0)
        yield {"type": "MODIFIED", "object": api.items["x"]}

    with pytest.raises(WaitTimeout):
        wait_for([Source("a", api.list_fn, watch)], all_ready, timeout=2.5, clock=clock, **FAST)
    # 2.5 s left, then 1.3 s, then 0.3 s (rounded up to the API's minimum of 1); none after the deadline
    assert asked == [3, 2, 1]


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


class RecordingClient:
    """k8s_client.Client's list and watch, recording what they are asked for."""

    def __init__(self) -> None:
        self.calls: List[Any] = []

    def list(self, api_version, kind, namespace=None, label_selector=None, field_selector=None):
        self.calls.append(("list", api_version, kind, namespace, label_selector, field_selector))
        return [obj("x", "True")], "5"

    def watch(self, api_version, kind, resource_version, timeout, namespace=None, label_selector=None,
              field_selector=None):
        self.calls.append(("watch", api_version, kind, resource_version, timeout, namespace, label_selector,
                           field_selector))
        return iter(())


def test_api_source_passes_kind_namespace_and_selectors_to_list_and_watch():
    api = RecordingClient()
    source = k8s_wait.api_source(api, "pods", "v1", "Pod", "ns", "app=x", "spec.nodeName=n1")
    assert source.name == "pods"
    assert source.list_fn() == ([obj("x", "True")], "5")
    assert list(source.watch_fn("5", 7)) == []
    assert api.calls == [("list", "v1", "Pod", "ns", "app=x", "spec.nodeName=n1"),
                         ("watch", "v1", "Pod", "5", 7, "ns", "app=x", "spec.nodeName=n1")]


def test_conditions_summary_keeps_what_users_read():
    o = {"status": {"conditions": [
        {"type": "Ready", "status": "False", "reason": "Waiting", "message": "m", "lastTransitionTime": "t"},
        {"type": "Stopped", "status": "True"}]}}
    assert k8s_wait.conditions_summary(o) == [{"type": "Ready", "status": "False", "reason": "Waiting", "message": "m"},
                                              {"type": "Stopped", "status": "True"}]
    assert k8s_wait.conditions_summary({}) == []


def test_errors_carry_the_last_state_as_the_module_result():
    err = WaitTimeout("late", {"pods": [], "workloads": [1]}, 2.5)
    assert (err.msg, err.message, err.result, err.last_state, err.elapsed) == (
        "late", "late", {"pods": [], "workloads": [1]}, {"pods": [], "workloads": [1]}, 2.5)
    listed = WaitFailed("broken", [1, 2])
    assert listed.result == {"last_state": [1, 2]} and listed.elapsed == 0.0
    cause = FakeApiError(403)
    api = WaitApiError("forbidden", cause, {"a": 1}, 1.0)
    assert (api.cause, api.result, api.elapsed) == (cause, {"a": 1}, 1.0)


def test_api_error_message_is_one_line_from_the_reason():
    class Reason(Exception):
        reason = "Forbidden:\n  pods is forbidden"
    api = FakeApi()
    api.list_errors = [Reason("ignored")]
    with pytest.raises(WaitApiError) as err:
        wait_for([api.source("a")], lambda s: True, timeout=5, description="pods")
    assert str(err.value) == "API error while waiting for pods (a): Forbidden: pods is forbidden"


def test_long_api_errors_are_cut():
    api = FakeApi()
    api.list_errors = [FakeApiError(403)]
    api.list_errors[0].reason = "x" * 400
    with pytest.raises(WaitApiError) as err:
        wait_for([api.source("a")], lambda s: True, timeout=5, description="d")
    assert str(err.value) == "API error while waiting for d (a): " + ("HTTP 403: " + "x" * 400)[:300]


def test_a_refused_watch_names_the_verb_resource_and_user_in_one_line():
    """kubernetes' own ApiException of a 403: its reason says only "Forbidden"; the Status message says what
    the identity may not do, and the headers stay out."""
    from kubernetes.client.exceptions import ApiException

    message = ('workloads.kueue.x-k8s.io is forbidden: User "system:serviceaccount:jobs:gpuaas-handover" cannot '
               'watch resource "workloads" in API group "kueue.x-k8s.io" in the namespace "private-ai"')
    refused = ApiException(status=403, reason="Forbidden")
    refused.headers = {"Audit-Id": "0b1c", "Content-Type": "application/json"}
    refused.body = json.dumps({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message,
                               "reason": "Forbidden", "code": 403})
    api = FakeApi()
    api.list_errors = [refused]
    with pytest.raises(WaitApiError) as err:
        wait_for([api.source("workloads")], lambda s: True, timeout=5, description="the models")
    assert str(err.value) == "API error while waiting for the models (workloads): HTTP 403: " + message
    assert err.value.cause is refused


def test_bookmarks_move_the_version_and_objects_without_uid_are_keyed_by_name():
    seen: List[str] = []
    calls = {"watch": 0}

    def list_fn():
        return [{"metadata": {"name": "p", "namespace": "ns", "resourceVersion": "3"}}], "3"

    def watch_fn(resource_version, timeout):
        seen.append(resource_version)
        calls["watch"] += 1
        if calls["watch"] == 1:
            yield {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "9"}}}
            return
        yield {"type": "DELETED", "object": {"metadata": {"name": "p", "namespace": "ns", "resourceVersion": "10"}}}

    result = wait_for([Source("a", list_fn, watch_fn)], lambda s: not s["a"], timeout=5, **FAST)
    assert result.state == {"a": []}
    assert seen[:2] == ["3", "9"]  # the bookmark's version, and no object made of it


def test_state_is_sorted_and_keyed_by_uid_else_namespace_and_name():
    listed = [{"metadata": {"name": "b", "namespace": "ns2"}}, {"metadata": {"name": "a", "namespace": "ns2"}},
              {"metadata": {"name": "b", "namespace": "ns1"}}, {"metadata": {"name": "c"}},
              {"metadata": {"name": "x", "namespace": "ns1", "uid": "u1"}},
              {"metadata": {"name": "x", "namespace": "ns1", "uid": "u2"}}]

    def watch(resource_version, timeout):
        return iter(())

    result = wait_for([Source("a", lambda: (listed, "1"), watch)], lambda s: True, timeout=5, **FAST)
    assert [(o["metadata"].get("namespace"), o["metadata"]["name"], o["metadata"].get("uid"))
            for o in result.state["a"]] == [
        (None, "c", None), ("ns1", "b", None), ("ns1", "x", "u1"), ("ns1", "x", "u2"), ("ns2", "a", None),
        ("ns2", "b", None)]


def test_elapsed_and_the_default_timeout_follow_the_clock():
    clock = ManualClock()
    api = FakeApi(obj("x", "True"))
    assert wait_for([api.source("a")], all_ready, clock=clock).elapsed == 0.0

    def late_list():
        clock.now += 1000  # the whole default timeout passes during the list
        return api.list_fn()

    with pytest.raises(WaitTimeout) as err:
        wait_for([Source("a", late_list, api.watch_fn)], lambda s: False, clock=clock, **FAST)
    assert str(err.value).startswith("Timed out after 300s waiting for the expected state; ")
    assert err.value.elapsed == 1000.0

    def slow_list(source_api):
        def list_fn():
            clock.now += 7  # the list took 7 s
            return source_api.list_fn()
        return list_fn

    api.list_errors = [FakeApiError(403)]
    with pytest.raises(WaitApiError) as err:
        wait_for([Source("a", slow_list(api), api.watch_fn)], all_ready, timeout=50, clock=clock)
    assert err.value.elapsed == 7.0
    assert err.value.result == {"a": 0}  # the state so far, as the failed task returns it
    failing = FakeApi(obj("x", "Broken"))
    with pytest.raises(WaitFailed) as err:
        wait_for([Source("a", slow_list(failing), failing.watch_fn)], all_ready, failed=lambda s: "broken",
                 timeout=50, clock=clock)
    assert err.value.elapsed == 7.0


def test_duplicate_source_names_are_named():
    api = FakeApi()
    with pytest.raises(ValueError) as err:
        wait_for([api.source("a"), api.source("a")], lambda s: True, timeout=1)
    assert str(err.value) == "source names must be unique: ['a', 'a']"


def test_a_watch_that_ends_at_once_without_events_backs_off():
    clock = ManualClock()  # never moves: every watch "ends at once"
    idle_calls: List[str] = []

    def idle_watch(resource_version, timeout):
        idle_calls.append(resource_version)
        return iter(())

    idle = FakeApi()
    busy = FakeApi(obj("x"))
    later(0.3, busy.put, obj("x", "True"))
    result = wait_for([Source("idle", idle.list_fn, idle_watch), busy.source("a")], all_ready, timeout=5,
                      clock=clock, backoff_initial=1000, backoff_max=1000)
    assert condition_true(result.state["a"][0], "Ready")
    assert idle_calls == ["1"]  # one watch, then a back-off longer than the whole wait; no busy loop


def test_a_watch_that_delivered_events_reconnects_at_once():
    clock = ManualClock()
    api = FakeApi(obj("x"))
    calls: List[str] = []

    def watch(resource_version, timeout):
        calls.append(resource_version)
        ready = len(calls) > 1
        yield {"type": "MODIFIED", "object": dict(obj("x", "True" if ready else "False"),
                                                  metadata=dict(obj("x")["metadata"], resourceVersion=str(len(calls) + 2)))}

    result = wait_for([Source("a", api.list_fn, watch)], all_ready, timeout=5, clock=clock,
                      backoff_initial=1000, backoff_max=1000)
    assert condition_true(result.state["a"][0], "Ready")
    assert calls[:2] == ["2", "3"]


class TestMoreConditions:
    def test_observed_generation_without_generation_is_trusted(self):
        o = {"metadata": {}, "status": {"observedGeneration": 4, "conditions": [{"type": "Ready", "status": "True"}]}}
        assert generation_observed(o) and condition_true(o, "Ready")

    def test_the_condition_is_found_among_others(self):
        o = {"metadata": {}, "status": {"conditions": [{"type": "PodScheduled", "status": "True"},
                                                       {"type": "Ready", "status": "False"}]}}
        assert condition_status(o, "Ready") == "False"

    def test_stale_conditions_on_request(self):
        stale = obj("x", "True", generation=2, observed=1)
        assert not condition_true(stale, "Ready")
        assert condition_true(stale, "Ready", require_current=False)
        assert condition_status(stale, "Ready") is None


def test_the_timeout_names_every_source_never_listed():
    refused = [ConnectionRefusedError("refused")] * 1000
    a, c = FakeApi(), FakeApi()
    a.list_errors, c.list_errors = list(refused), list(refused)
    with pytest.raises(WaitTimeout) as err:
        wait_for([a.source("a"), FakeApi(obj("x")).source("b"), c.source("c")], lambda s: True, timeout=0.5, **FAST)
    assert '; last state: {"a": 0, "b": 1, "c": 0}; never listed: a, c; last API error: ' in str(err.value)


def test_the_timeout_message_shows_a_summary_that_is_not_plain_json():
    api = FakeApi(obj("x"))
    since = datetime.datetime(2026, 12, 2, 17, 0)  # the kubernetes client's timestamps are datetimes
    with pytest.raises(WaitTimeout) as err:
        wait_for([api.source("a")], all_ready, summary=lambda s: {"pods": ["x"], "since": since}, timeout=0.2, **FAST)
    assert str(err.value) == ('Timed out after 0.2s waiting for the expected state; '
                              'last state: {"pods": ["x"], "since": "2026-12-02 17:00:00"}')


def test_a_watch_that_ends_at_once_is_opened_again_after_the_back_off():
    clock = ManualClock()  # never moves: the watch "ends at once"
    api = FakeApi(obj("x"))
    api.events.put(FakeApi.END)  # the first watch ends without an event
    later(0.3, api.put, obj("x", "True"))
    result = wait_for([api.source("a")], all_ready, timeout=5, clock=clock, **FAST)
    assert condition_true(result.state["a"][0], "Ready")
    assert len(api.watch_calls) >= 2


def test_watches_still_open_after_the_wait_do_not_keep_the_module_alive():
    release = threading.Event()

    def blocking_watch(resource_version, timeout):
        release.wait(10)  # a server that holds the watch open
        return iter(())

    api = FakeApi(obj("x", "True"))
    before = set(threading.enumerate())
    try:
        wait_for([Source("a", api.list_fn, blocking_watch)], all_ready, timeout=5)
        left = [t for t in threading.enumerate() if t not in before and t.is_alive()]
        assert left and all(t.daemon for t in left)
    finally:
        release.set()
