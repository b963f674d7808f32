# -*- coding: utf-8 -*-
# Copyright: rhoai.gpuaas contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One handover at a time: a coordination.k8s.io Lease held while the GPUs change hands.

Two AAP jobs running step 3 at once would each stop a model and wait for the other's; the
Lease makes the second wait for the first, or fail naming who holds it. The Lease is renewed
in the background while held, and expires on its own if the holder dies, so a killed run
never blocks the next one for longer than ``duration`` seconds.
"""

from __future__ import annotations

import datetime
import getpass
import os
import socket
import threading
import time
from typing import Any, Callable, Dict, Optional

from ansible_collections.rhoai.gpuaas.plugins.module_utils.errors import GpuaasError
from ansible_collections.rhoai.gpuaas.plugins.module_utils.k8s_client import error_message

API_VERSION = "coordination.k8s.io/v1"
KIND = "Lease"
CONFLICT = 409


class LeaseHeld(GpuaasError):
    """Another run holds the Lease."""


def default_identity() -> str:
    """user@host/pid: enough to find the other run (an AAP job's pod name is its host)."""
    try:
        user = getpass.getuser()
    except Exception:  # no passwd entry in some containers
        user = str(os.getuid())
    return "{0}@{1}/{2}".format(user, socket.gethostname(), os.getpid())


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _stamp(when: datetime.datetime) -> str:
    """MicroTime as the API writes it."""
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse(stamp: Optional[str]) -> Optional[datetime.datetime]:
    if not stamp:
        return None
    text = stamp.rstrip("Z")
    for fmt in ("%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%dT%H:%M:%S"):
        try:
            return datetime.datetime.strptime(text, fmt).replace(tzinfo=datetime.timezone.utc)
        except ValueError:
            continue
    return None


def holder(lease: Optional[Dict[str, Any]], now: Optional[datetime.datetime] = None) -> Optional[str]:
    """Who holds the Lease now, or None when it is free or expired."""
    spec = (lease or {}).get("spec") or {}
    identity = spec.get("holderIdentity")
    if not identity:
        return None
    renewed = _parse(spec.get("renewTime")) or _parse(spec.get("acquireTime"))
    duration = int(spec.get("leaseDurationSeconds") or 0)
    if renewed is None or renewed + datetime.timedelta(seconds=duration) < (now or _now()):
        return None
    return identity


class Lease:
    """Acquire, renew in the background, release. Use as a context manager."""

    def __init__(self, client: Any, namespace: str, name: str, identity: str, duration: int = 30,
                 wait: float = 0.0, sleep: Callable[[float], None] = time.sleep) -> None:
        self.client = client
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.duration = duration
        self.wait = wait
        self.sleep = sleep
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self.lost: Optional[str] = None

    def _body(self, resource_version: Optional[str] = None) -> Dict[str, Any]:
        now = _stamp(_now())
        meta: Dict[str, Any] = {"name": self.name, "namespace": self.namespace,
                                "labels": {"app.kubernetes.io/managed-by": "rhoai.gpuaas"}}
        if resource_version:
            meta["resourceVersion"] = resource_version
        return {"apiVersion": API_VERSION, "kind": KIND, "metadata": meta,
                "spec": {"holderIdentity": self.identity, "leaseDurationSeconds": self.duration,
                         "acquireTime": now, "renewTime": now}}

    def try_acquire(self) -> Optional[str]:
        """Take the Lease if free; returns the other holder when it is not."""
        current = self.client.get(API_VERSION, KIND, self.name, self.namespace)
        try:
            if current is None:
                self.client.create(self._body())
                return None
            other = holder(current)
            if other and other != self.identity:
                return other
            # Expired or ours: take it over, guarded by resourceVersion against a racing run.
            self.client.replace(self._body(current["metadata"]["resourceVersion"]))
            return None
        except Exception as exc:
            if getattr(exc, "status", None) == CONFLICT:
                fresh = self.client.get(API_VERSION, KIND, self.name, self.namespace)
                return holder(fresh) or "another run (it took the Lease at the same moment)"
            raise

    def acquire(self) -> None:
        deadline = time.monotonic() + self.wait
        while True:
            other = self.try_acquire()
            if other is None:
                break
            if time.monotonic() >= deadline:
                raise LeaseHeld(
                    "Another handover is running: Lease {0}/{1} is held by {2}. Wait for it to finish, or re-run "
                    "with a longer lock wait; a holder that died releases it after {3}s.".format(
                        self.namespace, self.name, other, self.duration), lock_holder=other)
            self.sleep(min(1.0, max(deadline - time.monotonic(), 0.05)))
        self._thread = threading.Thread(target=self._renew, name="lease-renew", daemon=True)
        self._thread.start()

    def _renew(self) -> None:
        while not self._stop.wait(self.duration / 3.0):
            try:
                current = self.client.get(API_VERSION, KIND, self.name, self.namespace)
                if current is None or (current.get("spec") or {}).get("holderIdentity") != self.identity:
                    self.lost = "the Lease was taken by {0}".format(holder(current))
                    return
                self.client.patch(API_VERSION, KIND, self.name, self.namespace,
                                  {"spec": {"renewTime": _stamp(_now())}})
            except Exception as exc:  # keep trying: the Lease lasts `duration` seconds
                self.lost = "renewing the Lease failed: {0}".format(error_message(exc))

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        try:
            current = self.client.get(API_VERSION, KIND, self.name, self.namespace)
            if current is not None and (current.get("spec") or {}).get("holderIdentity") == self.identity:
                self.client.patch(API_VERSION, KIND, self.name, self.namespace,
                                  {"spec": {"holderIdentity": None, "renewTime": None, "acquireTime": None}})
        except Exception:  # an unreleased Lease expires by itself
            pass

    def __enter__(self) -> "Lease":
        self.acquire()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.release()
