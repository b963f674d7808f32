# -*- coding: utf-8 -*-
# Copyright: rhoai.gpuaas contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one waiter of the collection: list + watch until a predicate holds.

Public API (stable; other modules build on it):

``Source(name, list_fn, watch_fn)``
    One kind to observe. ``list_fn() -> (items, resource_version)``;
    ``watch_fn(resource_version, timeout_seconds) -> iterable of {"type", "object"}``.
    Inject fakes in unit tests; ``api_source(client, name, api_version, kind, ...)`` builds
    one from ``k8s_client.Client``.
``wait_for(sources, done, failed=None, summary=None, timeout=300, description=...)``
    ``done(state) -> bool`` and ``failed(state) -> Optional[str]`` receive the FULL current
    state ``{source name: [object dict, ...]}`` (sorted by namespace/name) after every
    change, once every source has been listed. Returns ``WaitResult(state, elapsed)``.
    Raises ``WaitFailed`` at once when ``failed`` returns a reason, ``WaitTimeout`` when
    the single deadline passes, ``WaitApiError`` on a non-retriable API error. All three
    are ``WaitError`` with ``.last_state`` (``summary(state)``, JSON-able) and ``.elapsed``.
``generation_observed(obj)``, ``get_condition(obj, type, require_current=True)``,
``condition_status(obj, type, require_current=True)``, ``condition_true(obj, type)``:
    read conditions only when the controller has seen the current ``metadata.generation``.

Design. Each source runs its own list/watch loop in a daemon thread and pushes changes into
one queue; the calling thread owns the state and evaluates the predicates. Threads were
chosen over sequential polling because a state spanning kinds (predictor pods AND their
Kueue workloads) can change in either kind at any moment: a single blocking watch on one
kind would miss the other until its own timeout. Only the calling thread touches the
state, so there is no locking beyond the queue.

Per source: list, watch from the list's resourceVersion, reconnect from the last seen
resourceVersion when the server ends the watch, re-list on 410 Gone (events were lost, so
the list replaces the kind's state), and retry connection errors, 429 and 5xx with capped
exponential backoff. Nothing outlives the one deadline of ``wait_for``: watches are
requested with a server-side timeout no longer than the remaining time.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from ansible_collections.rhoai.gpuaas.plugins.module_utils.errors import GpuaasError
from ansible_collections.rhoai.gpuaas.plugins.module_utils.k8s_client import error_message, is_retriable

State = Dict[str, List[Dict[str, Any]]]
ListFn = Callable[[], Tuple[List[Dict[str, Any]], str]]
WatchFn = Callable[[str, int], Iterable[Dict[str, Any]]]

# Longest single watch request; the API server's own default is 30-60 min, far too long
# for noticing that the deadline moved on.
MAX_WATCH_SECONDS = 60
# A watch that ends faster than this without events is treated like an error (backoff),
# so a misbehaving server or a fake cannot make the loop spin.
MIN_WATCH_SECONDS = 1.0


class WaitError(GpuaasError):
    """A wait did not reach its goal; ``last_state`` tells what was seen last.

    As a GpuaasError its result is the last state (when the summary is a dict), so a module
    failing on it returns the conditions, pods and Workloads it saw.
    """

    def __init__(self, message: str, last_state: Any = None, elapsed: float = 0.0) -> None:
        super().__init__(message, **(last_state if isinstance(last_state, dict) else {"last_state": last_state}))
        self.message = message
        self.last_state = last_state
        self.elapsed = elapsed


class WaitTimeout(WaitError):
    """The deadline passed before ``done`` held."""


class WaitFailed(WaitError):
    """``failed`` reported a terminal state; waiting longer cannot help."""


class WaitApiError(WaitError):
    """The API answered with a non-retriable error (e.g. 403, 404); ``cause`` has it."""

    def __init__(self, message: str, cause: BaseException, last_state: Any = None, elapsed: float = 0.0) -> None:
        super().__init__(message, last_state, elapsed)
        self.cause = cause


class Source:
    """One kind to list and watch (see module docstring)."""

    def __init__(self, name: str, list_fn: ListFn, watch_fn: WatchFn) -> None:
        self.name = name
        self.list_fn = list_fn
        self.watch_fn = watch_fn


class WaitResult:
    """What ``wait_for`` returns: the state that satisfied ``done``."""

    def __init__(self, state: State, elapsed: float) -> None:
        self.state = state
        self.elapsed = elapsed


def api_source(
    client: Any,
    name: str,
    api_version: str,
    kind: str,
    namespace: Optional[str] = None,
    label_selector: Optional[str] = None,
    field_selector: Optional[str] = None,
) -> Source:
    """A Source over the API through ``k8s_client.Client``."""

    def list_fn() -> Tuple[List[Dict[str, Any]], str]:
        return client.list(api_version, kind, namespace, label_selector, field_selector)

    def watch_fn(resource_version: str, timeout: int) -> Iterable[Dict[str, Any]]:
        return client.watch(
            api_version, kind, resource_version, timeout, namespace, label_selector, field_selector
        )

    return Source(name, list_fn, watch_fn)


# ---------------------------------------------------------------- conditions


def generation_observed(obj: Dict[str, Any]) -> bool:
    """True when ``status.observedGeneration`` is absent or >= ``metadata.generation``.

    Absent means the kind does not report it; then there is nothing better to trust.
    """
    generation = (obj.get("metadata") or {}).get("generation")
    observed = (obj.get("status") or {}).get("observedGeneration")
    if generation is None or observed is None:
        return True
    return int(observed) >= int(generation)


def get_condition(obj: Dict[str, Any], cond_type: str, require_current: bool = True) -> Optional[Dict[str, Any]]:
    """The condition of that type, or None if absent or (``require_current``) stale.

    A condition carrying its own ``observedGeneration`` (Kueue, metav1.Condition) is judged
    by it; otherwise by the object's ``status.observedGeneration``.
    """
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") != cond_type:
            continue
        if not require_current:
            return cond
        generation = (obj.get("metadata") or {}).get("generation")
        cond_gen = cond.get("observedGeneration")
        if cond_gen is not None and generation is not None:
            return cond if int(cond_gen) >= int(generation) else None
        return cond if generation_observed(obj) else None
    return None


def condition_status(obj: Dict[str, Any], cond_type: str, require_current: bool = True) -> Optional[str]:
    """"True" / "False" / "Unknown", or None when absent or stale."""
    cond = get_condition(obj, cond_type, require_current)
    return None if cond is None else str(cond.get("status"))


def condition_true(obj: Dict[str, Any], cond_type: str, require_current: bool = True) -> bool:
    """The condition is present, current and True."""
    return condition_status(obj, cond_type, require_current) == "True"


def conditions_summary(obj: Dict[str, Any]) -> List[Dict[str, Any]]:
    """Conditions reduced to type/status/reason/message for results and error messages."""
    return [
        {k: c.get(k) for k in ("type", "status", "reason", "message") if c.get(k) is not None}
        for c in (obj.get("status") or {}).get("conditions") or []
    ]


# ---------------------------------------------------------------- waiting


def _key(obj: Dict[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    return meta.get("uid") or "{0}/{1}".format(meta.get("namespace", ""), meta.get("name", ""))


def _sort_key(obj: Dict[str, Any]) -> Tuple[str, str]:
    meta = obj.get("metadata") or {}
    return (meta.get("namespace") or "", meta.get("name") or "")


class _Backoff:
    def __init__(self, initial: float, maximum: float) -> None:
        self.initial = initial
        self.maximum = maximum
        self.current = initial

    def next(self) -> float:
        delay = self.current
        self.current = min(self.current * 2, self.maximum)
        return delay

    def reset(self) -> None:
        self.current = self.initial


def _run_source(
    source: Source,
    out: "queue.Queue[Tuple[Any, ...]]",
    stop: threading.Event,
    deadline: float,
    clock: Callable[[], float],
    backoff: _Backoff,
) -> None:
    """List/watch loop of one source; reports ("reset"|"event"|"retry"|"error", ...)."""
    resource_version: Optional[str] = None
    while not stop.is_set():
        try:
            if resource_version is None:
                items, resource_version = source.list_fn()
                out.put(("reset", source.name, items))
            remaining = deadline - clock()
            if remaining <= 0:
                return
            timeout = max(1, min(MAX_WATCH_SECONDS, int(remaining) + 1))
            started = clock()
            seen = False
            for event in source.watch_fn(resource_version or "", timeout):
                if stop.is_set():
                    return
                obj = event.get("object") or {}
                new_rv = (obj.get("metadata") or {}).get("resourceVersion")
                if new_rv:
                    resource_version = new_rv
                if event.get("type") in ("ADDED", "MODIFIED", "DELETED"):
                    out.put(("event", source.name, event["type"], obj))
                seen = True
            if seen or clock() - started >= MIN_WATCH_SECONDS:
                backoff.reset()
            else:
                stop.wait(backoff.next())
        except Exception as exc:  # classified below; anything else ends this source
            if getattr(exc, "status", None) == 410:
                resource_version = None  # events lost: re-list
                continue
            if is_retriable(exc):
                out.put(("retry", source.name, "{0}: {1}".format(type(exc).__name__, _one_line(exc))))
                stop.wait(backoff.next())
                continue
            out.put(("error", source.name, exc))
            return


def _one_line(exc: BaseException) -> str:
    """An error in one short line: for an API answer its status and the Status message, which names the
    verb, resource and user of a 403 (its reason alone says only "Forbidden"); else the innermost reason."""
    return " ".join(error_message(exc).split())[:300]


def wait_for(
    sources: Sequence[Source],
    done: Callable[[State], bool],
    failed: Optional[Callable[[State], Optional[str]]] = None,
    summary: Optional[Callable[[State], Any]] = None,
    timeout: float = 300.0,
    description: str = "the expected state",
    backoff_initial: float = 0.5,
    backoff_max: float = 8.0,
    clock: Callable[[], float] = time.monotonic,
) -> WaitResult:
    """Wait until ``done(state)``; see the module docstring for the contract."""
    started = clock()
    deadline = started + float(timeout)
    names = [s.name for s in sources]
    if len(set(names)) != len(names):
        raise ValueError("source names must be unique: {0}".format(names))
    objects: Dict[str, Dict[str, Dict[str, Any]]] = {n: {} for n in names}
    listed: set = set()
    last_retry: Optional[str] = None
    stop = threading.Event()
    out: "queue.Queue[Tuple[Any, ...]]" = queue.Queue()

    def snapshot() -> State:
        return {n: sorted(objects[n].values(), key=_sort_key) for n in names}

    def describe(state: State) -> Any:
        return summary(state) if summary else {n: len(v) for n, v in state.items()}

    for source in sources:
        threading.Thread(
            target=_run_source,
            args=(source, out, stop, deadline, clock, _Backoff(backoff_initial, backoff_max)),
            name="k8s-wait-" + source.name,
            daemon=True,
        ).start()

    try:
        while True:
            remaining = deadline - clock()
            if remaining <= 0:
                break
            try:
                msg = out.get(timeout=remaining)
            except queue.Empty:
                break
            batch = [msg]
            while True:
                try:
                    batch.append(out.get_nowait())
                except queue.Empty:
                    break
            for item in batch:
                kind, name = item[0], item[1]
                if kind == "reset":
                    objects[name] = {_key(o): o for o in item[2]}
                    listed.add(name)
                elif kind == "event":
                    obj = item[3]
                    if item[2] == "DELETED":
                        objects[name].pop(_key(obj), None)
                    else:
                        objects[name][_key(obj)] = obj
                elif kind == "retry":
                    last_retry = "{0}: {1}".format(name, item[2])
                elif kind == "error":
                    state = snapshot()
                    raise WaitApiError(
                        "API error while waiting for {0} ({1}): {2}".format(description, name, _one_line(item[2])),
                        item[2],
                        describe(state),
                        clock() - started,
                    )
            if len(listed) < len(names):
                continue
            state = snapshot()
            reason = failed(state) if failed else None
            if reason:
                raise WaitFailed(
                    "{0} (while waiting for {1})".format(reason, description),
                    describe(state),
                    clock() - started,
                )
            if done(state):
                return WaitResult(state, clock() - started)
    finally:
        stop.set()

    state = snapshot()
    last = describe(state)
    message = "Timed out after {0:g}s waiting for {1}; last state: {2}".format(
        float(timeout), description, json.dumps(last, sort_keys=True, default=str)
    )
    if len(listed) < len(names):
        message += "; never listed: {0}".format(", ".join(n for n in names if n not in listed))
    if last_retry:
        message += "; last API error: {0}".format(last_retry)
    raise WaitTimeout(message, last, clock() - started)
