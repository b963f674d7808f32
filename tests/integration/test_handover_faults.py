"""Do no harm: step 3 under faults. Each test asserts what a user would check - which models are on,
that no GPU sits idle while a model waits once things recover, and what the failure said.

The demo is deployed once for the module (provision + deploy playbooks); each test starts from
step 2 (mistral-3-bf16 and -int4 on, devstral-2 on and pending) and the module fixture tears the
demo down at the end, so its pods hold no GPU node other tests need.
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any, Callable, Iterator

import pytest
from kubernetes import client, dynamic, watch

import testbed
from _poll import wait_for
from conftest import BIN, ROOT, ansible_env, run_playbook as playbook
from processes import pid_of, start, stop, wait_healthy

sys.path.insert(0, str(ROOT / "collections"))
from ansible_collections.rhoai.gpuaas.plugins.module_utils import gpu_view, isvc  # noqa: E402
from ansible_collections.rhoai.gpuaas.plugins.module_utils.k8s_client import Client  # noqa: E402

NS, CQ, KUEUE = "private-ai", "rhoai-main-queue", "kueue.x-k8s.io/v1beta2"
OUT, INC, RES = "mistral-3-bf16", "devstral-2", "mistral-3-int4"
MODELS = [OUT, RES, INC]
ADMIT_TIMEOUT = 20
# step 3's message when it gave up on the admission deadline it was given
GAVE_UP = f"Timed out after {ADMIT_TIMEOUT}s waiting for {OUT} to release its GPUs and {INC} to be admitted"


def step3(*extra: str) -> subprocess.Popen:
    env = ansible_env(None)
    env.pop("ANSIBLE_STDOUT_CALLBACK")
    return subprocess.Popen([str(BIN / "ansible-playbook"), "-i", "inventories/local", "playbooks/handover.yml",
                             "-e", "handover_step=3", "-e", f"handover_admit_timeout={ADMIT_TIMEOUT}", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT,
                            start_new_session=True)


def ok(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


@pytest.fixture(scope="module")
def demo(k8s: client.ApiClient) -> Iterator[Client]:
    ok(playbook("provision.yml"))
    ok(playbook("upload_model.yml"))
    ok(playbook("deploy.yml", "-e", "serving_enforce_state=true"))
    yield Client(dynamic.DynamicClient(k8s), testbed.API)
    ok(playbook("teardown.yml"))


def set_stopped(c: Client, name: str, stopped: bool) -> None:
    c.patch(isvc.API_VERSION, isvc.KIND, name, NS, isvc.stop_patch(stopped))


def states(c: Client) -> dict[str, str]:
    view = gpu_view.read_view(c, KUEUE, NS, [CQ], MODELS)
    return {m["name"]: m["state"] for m in view["models"]}


def annotations(c: Client) -> dict[str, bool]:
    return {n: isvc.is_stopped(c.get(isvc.API_VERSION, isvc.KIND, n, NS)) for n in (OUT, INC)}


@pytest.fixture
def at_step2(demo: Client) -> Client:
    """mistral-3-bf16 and -int4 ON, devstral-2 on and PENDING: the state step 3 starts from."""
    set_stopped(demo, INC, True)
    set_stopped(demo, OUT, False)
    gpu_view.await_states(demo, KUEUE, NS, [CQ], MODELS, {OUT: "ON", RES: "ON", INC: "OFF"}, 240)
    set_stopped(demo, INC, False)
    # PENDING with Kueue's verdict (QuotaReserved=False), not only a gated pod Kueue has not looked at yet
    wait_for("Kueue's verdict on devstral-2", lambda: gpu_view.find_model(
        gpu_view.read_view(demo, KUEUE, NS, [CQ], MODELS), INC).get("pending"), timeout=60)
    return demo


def when_stop_is_written(k8s: client.ApiClient, action: Callable[[], None]) -> threading.Thread:
    """Run ``action`` the moment mistral-3-bf16's stop annotation appears (i.e. during step 3)."""
    res = dynamic.DynamicClient(k8s).resources.get(api_version=isvc.API_VERSION, kind=isvc.KIND)

    def run() -> None:
        w = watch.Watch()
        for ev in w.stream(res.get, namespace=NS, field_selector="metadata.name=" + OUT, timeout_seconds=300,
                           serialize=False):
            if isvc.is_stopped(ev["raw_object"]):
                action()
                w.stop()
                return
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    time.sleep(0.5)
    return thread


def component(name: str) -> Any:
    return next(c for c in testbed.components() if c.name == name)


@pytest.fixture
def repair() -> Iterator[None]:
    """Whatever a test froze or killed runs again afterwards, and the testbed settles."""
    yield
    pid = pid_of(testbed.RUN, "kueue")
    if pid:
        os.kill(pid, signal.SIGCONT)
    assert testbed.up(argparse.Namespace()) == 0


def recovered(c: Client, timeout: float = 240) -> dict[str, str]:
    """After the fault: the restored state stands and every GPU is used again (none idle while a model waits)."""
    gpu_view.await_states(c, KUEUE, NS, [CQ], MODELS, {OUT: "ON", RES: "ON", INC: "OFF"}, timeout)
    view = gpu_view.read_view(c, KUEUE, NS, [CQ], MODELS)
    assert view["used"] == view["nominal"] == 5, gpu_view.render(view)
    return states(c)


def test_kueue_frozen_before_step3_refuses_at_once_and_changes_nothing(at_step2: Client, repair: None) -> None:
    os.kill(pid_of(testbed.RUN, "kueue"), signal.SIGSTOP)
    proc = step3()
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode != 0
    assert "Handover refused before any change (Kueue is acting)" in out, out[-3000:]
    assert "did not answer a dry-run Workload within" in out, out[-3000:]  # the probe's own bound, no admission wait
    assert annotations(at_step2) == {OUT: False, INC: False}  # nothing changed: bf16 still on, devstral still queued
    os.kill(pid_of(testbed.RUN, "kueue"), signal.SIGCONT)
    assert states(at_step2)[OUT] == "ON"


@pytest.mark.parametrize("fault", ["frozen", "killed"])
def test_kueue_lost_during_step3_gives_up_within_the_bound_and_restores_the_outgoing_model(
        k8s: client.ApiClient, at_step2: Client, repair: None, fault: str) -> None:
    pid = pid_of(testbed.RUN, "kueue")
    sig = signal.SIGSTOP if fault == "frozen" else signal.SIGKILL
    watcher = when_stop_is_written(k8s, lambda: os.kill(pid, sig))
    proc = step3()
    out, _ = proc.communicate(timeout=600)
    watcher.join(timeout=5)
    assert proc.returncode != 0, out[-3000:]
    assert "was not admitted in time, so mistral-3-bf16 was turned back on and devstral-2 off" in out, out[-3000:]
    assert "Step 3 FAILED, mistral-3-bf16 turned back on" in out
    # never both off: the outgoing model is on again (its intent), the incoming one off
    assert annotations(at_step2) == {OUT: False, INC: True}
    # bounded: it gave up on the admission deadline it was given
    assert GAVE_UP in out, out[-3000:]
    if fault == "frozen":
        os.kill(pid, signal.SIGCONT)
    else:
        assert testbed.up(argparse.Namespace()) == 0
    assert recovered(at_step2)[OUT] == "ON"


def test_kserve_down_before_step3_fails_on_the_write_and_changes_nothing(at_step2: Client, repair: None) -> None:
    stop(testbed.RUN, "kserve")
    try:
        proc = step3()
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode != 0
        assert "Kubernetes API error" in out and "failed calling webhook" in out, out[-3000:]
        assert annotations(at_step2) == {OUT: False, INC: False}
    finally:
        start(testbed.RUN, testbed.LOGS, component("kserve"))
        wait_healthy(component("kserve"), time.monotonic() + 120, testbed.RUN)


def test_kserve_killed_during_step3_gives_up_within_the_bound_and_a_rerun_converges(
        k8s: client.ApiClient, at_step2: Client, repair: None) -> None:
    """KServe dies right after the stop is written: nothing deletes the outgoing model's pod, so its GPUs are
    never released (and never idle: its pod keeps running). Step 3 gives up in time, says what it could not
    restore (KServe's webhook is down too), and once KServe is back a rerun finishes the handover."""
    pid = pid_of(testbed.RUN, "kserve")
    watcher = when_stop_is_written(k8s, lambda: os.kill(pid, signal.SIGKILL))
    proc = step3()
    out, _ = proc.communicate(timeout=600)
    watcher.join(timeout=5)
    assert proc.returncode != 0, out[-3000:]
    assert "was not admitted in time" in out and "Step 3 FAILED" in out, out[-3000:]
    assert GAVE_UP in out, out[-3000:]
    assert states(at_step2)[OUT] != "OFF" or annotations(at_step2)[INC] is False  # never both off
    assert testbed.up(argparse.Namespace()) == 0  # KServe back
    again = playbook("handover.yml", "-e", "handover_step=3", "-e", "handover_lock_wait=60")
    ok(again)
    wait_for("a handover that converged: devstral-2 ON, or the outgoing model ON again",
             lambda: states(at_step2)[INC] == "ON" or states(at_step2)[OUT] == "ON", timeout=120)


def test_apiserver_restart_during_step3_is_survived(at_step2: Client, restart_apiserver: Callable[..., Any]) -> None:
    proc = step3("-e", "handover_admit_timeout=180")
    outage = restart_apiserver(down_for=3.0, during=lambda: proc.poll() is None)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-3000:]
    assert "Handover done in" in out
    assert outage.seen_during is True, "the apiserver came back before step 3 was running"
    assert states(at_step2)[INC] == "ON" and states(at_step2)[OUT] == "OFF"


def test_interrupted_step3_converges_when_run_again(k8s: client.ApiClient, at_step2: Client) -> None:
    holder: dict[str, subprocess.Popen] = {}
    watcher = when_stop_is_written(k8s, lambda: os.killpg(holder["proc"].pid, signal.SIGKILL))
    holder["proc"] = step3()
    holder["proc"].communicate(timeout=300)
    watcher.join(timeout=5)
    assert holder["proc"].returncode != 0
    assert annotations(at_step2)[OUT] is True  # it was interrupted after the stop
    # a killed run leaves its Lease behind: the next run waits it out (it expires after 30 s)
    again = playbook("handover.yml", "-e", "handover_step=3", "-e", "handover_lock_wait=60")
    ok(again)
    # either the admission came after the rerun started (it waited), or before (nothing left to do)
    assert "Handover done in" in again.stdout or "nothing to hand over" in again.stdout, again.stdout[-3000:]
    wait_for("devstral-2 ON and mistral-3-bf16 OFF",
             lambda: states(at_step2) == {OUT: "OFF", RES: "ON", INC: "ON"}, timeout=60)


def test_two_handovers_at_once_one_hands_over_the_other_names_the_holder_or_finds_it_done(at_step2: Client) -> None:
    runs = [step3(), step3()]
    outs = [r.communicate(timeout=600)[0] for r in runs]
    did = [o for r, o in zip(runs, outs) if r.returncode == 0 and "Handover done in" in o]
    assert len(did) == 1, [o[-2000:] for o in outs]
    other = next(o for o in outs if o is not did[0])
    assert ("Another handover is running: Lease private-ai/rhoai-gpuaas-handover is held by" in other
            or "nothing to hand over" in other), other[-3000:]
    assert states(at_step2) == {OUT: "OFF", RES: "ON", INC: "ON"}
