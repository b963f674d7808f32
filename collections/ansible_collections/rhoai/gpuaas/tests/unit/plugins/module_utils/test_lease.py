# -*- coding: utf-8 -*-
"""One handover at a time: the Lease is taken, renewed, refused to a second run, released, taken over when stale."""

from __future__ import annotations

import datetime
import time

import pytest

from ansible_collections.rhoai.gpuaas.plugins.module_utils import lease as lease_lib
from ansible_collections.rhoai.gpuaas.plugins.module_utils.lease import Lease, LeaseHeld, holder
from ansible_collections.rhoai.gpuaas.tests.unit.plugins.fake_cluster import FakeCluster

NS, NAME = "private-ai", "rhoai-gpuaas-handover"


def stored(cluster: FakeCluster):
    return cluster.find(lease_lib.API_VERSION, lease_lib.KIND, NAME, NS)


def test_acquire_creates_the_lease_and_release_frees_it() -> None:
    cluster = FakeCluster()
    lease = Lease(cluster, NS, NAME, "me", duration=30)
    lease.acquire()
    assert holder(stored(cluster)) == "me" and stored(cluster)["spec"]["leaseDurationSeconds"] == 30
    lease.release()
    assert holder(stored(cluster)) is None


def test_a_second_holder_is_refused_with_the_first_ones_name_and_may_wait() -> None:
    cluster = FakeCluster()
    first = Lease(cluster, NS, NAME, "job-1", duration=30)
    first.acquire()
    sleeps = []
    second = Lease(cluster, NS, NAME, "job-2", wait=0.2, sleep=sleeps.append)
    with pytest.raises(LeaseHeld, match="held by job-1") as err:
        second.acquire()
    assert err.value.result["lock_holder"] == "job-1" and sleeps
    first.release()
    second.acquire()
    assert holder(stored(cluster)) == "job-2"
    second.release()


def test_an_expired_lease_is_taken_over() -> None:
    cluster = FakeCluster()
    old = (datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=120)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    cluster.add({"apiVersion": lease_lib.API_VERSION, "kind": lease_lib.KIND, "metadata": {"name": NAME, "namespace": NS},
                 "spec": {"holderIdentity": "dead-job", "leaseDurationSeconds": 30, "renewTime": old}})
    assert holder(stored(cluster)) is None
    lease = Lease(cluster, NS, NAME, "me")
    lease.acquire()
    assert holder(stored(cluster)) == "me"
    assert cluster.written("replace")[0]["body"]["metadata"]["resourceVersion"]
    lease.release()


def test_a_racing_takeover_answers_409_and_names_the_winner() -> None:
    cluster = FakeCluster()
    cluster.add({"apiVersion": lease_lib.API_VERSION, "kind": lease_lib.KIND, "metadata": {"name": NAME, "namespace": NS},
                 "spec": {"holderIdentity": None}})
    lease = Lease(cluster, NS, NAME, "me")
    real_get = cluster.get
    raced = []

    def get(*args, **kwargs):
        obj = real_get(*args, **kwargs)
        if not raced:  # another run takes it between our read and our write
            raced.append(True)
            Lease(cluster, NS, NAME, "winner").try_acquire()
        return obj
    cluster.get = get
    assert lease.try_acquire() == "winner"


def test_renewal_keeps_the_lease_fresh() -> None:
    cluster = FakeCluster()
    lease = Lease(cluster, NS, NAME, "me", duration=1)
    lease.acquire()
    first = stored(cluster)["spec"]["renewTime"]
    time.sleep(0.8)
    assert stored(cluster)["spec"]["renewTime"] != first and lease.lost is None
    lease.release()


def test_a_renewal_the_identity_may_not_make_is_reported_in_one_line() -> None:
    cluster = FakeCluster()
    lease = Lease(cluster, NS, NAME, "me", duration=1)
    lease.acquire()
    cluster.forbid.add(("patch", "Lease"))
    deadline = time.monotonic() + 5
    while lease.lost is None and time.monotonic() < deadline:
        time.sleep(0.05)
    lease.release()
    assert lease.lost == (
        'renewing the Lease failed: HTTP 403: leases.coordination.k8s.io "rhoai-gpuaas-handover" is forbidden: User '
        '"system:serviceaccount:rhoai-gpuaas-jobs:gpuaas-handover" cannot patch resource "leases" in API group '
        '"coordination.k8s.io" in the namespace "private-ai"')
