# -*- coding: utf-8 -*-
# Copyright: rhoai.gpuaas contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The GPU handover in one call: check, stop the outgoing model, watch the incoming one get in.

Do no harm: the outgoing model is stopped only when the handover can succeed (preflight),
the release and the admission are followed on one set of watches with one deadline, and
any failure afterwards puts the outgoing model back (first) and the incoming one off,
every restore step attempted even when an earlier one fails. A Lease keeps two runs from
interleaving. Re-running after an interruption converges: a stopped outgoing model is not
stopped again, the wait simply resumes.
"""

from __future__ import annotations

import time
from typing import Any, Dict, List, Optional

from ansible_collections.rhoai.gpuaas.plugins.module_utils import isvc as kserve
from ansible_collections.rhoai.gpuaas.plugins.module_utils import kueue
from ansible_collections.rhoai.gpuaas.plugins.module_utils.errors import GpuaasError
from ansible_collections.rhoai.gpuaas.plugins.module_utils.gpu_view import find_model, read_view, render
from ansible_collections.rhoai.gpuaas.plugins.module_utils.k8s_client import REQUEST_TIMEOUT, error_message, is_rbac_refusal
from ansible_collections.rhoai.gpuaas.plugins.module_utils.k8s_wait import Source, WaitError, wait_for
from ansible_collections.rhoai.gpuaas.plugins.module_utils.lease import Lease, default_identity
from ansible_collections.rhoai.gpuaas.plugins.module_utils.tracking import Tracker, model_sources

State = Dict[str, List[Dict[str, Any]]]
# Seconds Kueue's webhook gets to answer the dry-run probe: a healthy one answers in milliseconds.
PROBE_SECONDS = 5
ADMITTED = ("ON", "STARTING", "FAILING")


class HandoverError(GpuaasError):
    """The handover failed; ``result`` has the board, the checks and what was restored."""


# ---------------------------------------------------------------- preflight (pure)


def check(name: str, problem: Optional[str], ok: str) -> Dict[str, Any]:
    return {"check": name, "ok": problem is None, "message": problem or ok}


def quota_checks(view: Dict[str, Any], outgoing: str, incoming: str) -> List[Dict[str, Any]]:
    """Would stopping ``outgoing`` let Kueue admit ``incoming``? One entry per check."""
    out, inc = find_model(view, outgoing), find_model(view, incoming)
    checks = []
    problem = None
    if out["state"] not in ADMITTED:
        problem = "{0} is {1}, not admitted: stopping it frees no GPU".format(outgoing, out["state"])
    checks.append(check("outgoing holds GPUs", problem, "{0} holds {1} GPU in {2}".format(outgoing, out["gpus"], out.get("flavor"))))
    if inc["state"] == "OFF":
        problem = "{0} is OFF: turn it on first (step 2), so that Kueue queues it".format(incoming)
    elif inc["state"] == "ABSENT":
        problem = "{0} does not exist".format(incoming)
    elif inc["state"] != "PENDING" or not inc.get("pending"):
        problem = "{0} is {1} with no verdict from Kueue yet (no QuotaReserved=False): nothing to hand over to".format(
            incoming, inc["state"])
    else:
        problem = None
    checks.append(check("incoming is queued", problem, "{0} is pending: {1}".format(incoming, inc.get("message"))))
    if problem or checks[0]["ok"] is False:
        return checks
    terminal = next((w["message"] for w in inc["workloads"]
                     if w["state"] == "pending" and kueue.is_terminal_message(w["message"])), None)
    short = [f for f in inc["pending"]["flavors"]
             if f["name"] == out.get("flavor") and f["reason"].startswith("insufficient unused quota")]
    if terminal:
        problem = "Kueue can never admit {0}, whatever is stopped: {1}".format(incoming, terminal)
    elif not short:
        problem = ("Kueue's reason for {0} names no shortage of unused quota in {1}, the flavor {2} frees: {3}".format(
            incoming, out.get("flavor"), outgoing, inc.get("message")))
    checks.append(check("pending for quota alone", problem,
                        "Kueue lacks unused quota in {0}, which {1} frees".format(out.get("flavor"), outgoing)))
    flavor = next((f for f in view["flavors"] if f["name"] == out.get("flavor")), None)
    problem = None
    if flavor is None:
        problem = "flavor {0} is not in the ClusterQueue's GPU quota".format(out.get("flavor"))
    else:
        free_after = flavor["nominal"] - flavor["used"] + out["gpus"]
        if free_after < inc["gpus"]:
            problem = ("stopping {0} leaves {1} GPU free in {2} (nominal {3}, used {4}, {0} holds {5}); {6} needs {7}".format(
                outgoing, free_after, flavor["name"], flavor["nominal"], flavor["used"], out["gpus"], incoming, inc["gpus"]))
    checks.append(check("freed GPUs suffice", problem, "{0} GPU free in {1} after the stop, {2} needs {3}".format(
        flavor["nominal"] - flavor["used"] + out["gpus"] if flavor else 0, out.get("flavor"), incoming, inc["gpus"])))
    return checks


def probe_workload(kueue_api: str, namespace: str, queue_name: str) -> Dict[str, Any]:
    """A Workload that only exists in a dry run: it passes Kueue's webhooks, nothing is stored."""
    return {
        "apiVersion": kueue_api, "kind": "Workload",
        "metadata": {"generateName": "gpuaas-probe-", "namespace": namespace},
        "spec": {"queueName": queue_name, "podSets": [{
            "name": "main", "count": 1,
            "template": {"spec": {"restartPolicy": "Never", "containers": [{
                "name": "probe", "image": "registry.invalid/probe:1",
                "resources": {"requests": {"cpu": "1m"}}}]}}}]},
    }


def probe_kueue(client: Any, kueue_api: str, namespace: str, queue_name: str) -> Optional[str]:
    """Is Kueue answering? A dry-run create goes through its webhooks; a frozen or dead Kueue fails it."""
    started = time.monotonic()
    try:
        client.create(probe_workload(kueue_api, namespace, queue_name), dry_run=True,
                      request_timeout=(REQUEST_TIMEOUT[0], PROBE_SECONDS))
    except Exception as exc:
        if getattr(exc, "status", None) is None:
            return "Kueue did not answer a dry-run Workload within {0}s ({1}): is its controller running?".format(
                PROBE_SECONDS, type(exc).__name__)
        if is_rbac_refusal(exc):
            # Not Kueue's verdict: the request never reached its webhook.
            return ("this identity may not ask Kueue: the probe is a dry-run create of a Workload in {0}, authorised "
                    "like a real one (grant create on workloads.kueue.x-k8s.io; nothing is stored): {1}".format(
                        namespace, error_message(exc)))
        return "Kueue refused a dry-run Workload after {0:.1f}s: {1}".format(time.monotonic() - started, error_message(exc))
    return None


# ---------------------------------------------------------------- the run


def _prefixed(sources: List[Source], prefix: str) -> List[Source]:
    """Give one model's isvc/deployment/pods sources a prefix; Workloads and ClusterQueues are shared."""
    out = []
    for source in sources:
        if source.name in ("isvc", "deployment", "pods"):
            source.name = prefix + source.name
            out.append(source)
    return out


def _part(state: State, prefix: str) -> State:
    """One model's share of the combined state, under the names a Tracker reads."""
    part = {name: state.get(prefix + name) or [] for name in ("isvc", "deployment", "pods")}
    part["workloads"] = state.get("workloads") or []
    part["clusterqueues"] = state.get("clusterqueues") or []
    return part


class Handover:
    """Step 3 of the demo as one operation (see the module docstring)."""

    def __init__(self, client: Any, params: Dict[str, Any], kueue_api: str, check_mode: bool) -> None:
        self.client = client
        self.p = params
        self.kueue_api = kueue_api
        self.check_mode = check_mode
        self.namespace = params["namespace"]
        self.out, self.inc = params["outgoing"], params["incoming"]
        self.t0 = time.monotonic()
        self.phase = "admitted"  # what the wait was for when it failed
        self.timeline: Dict[str, float] = {}
        self.result: Dict[str, Any] = {"changed": False, "preflight": [], "timeline": self.timeline}

    # ------------------------------------------------------------ reading

    def view(self) -> Dict[str, Any]:
        return read_view(self.client, self.kueue_api, self.namespace, self.p["cluster_queues"],
                         [self.out, self.inc] + list(self.p["resident"] or []), self.p["gpu_resource"])

    def report(self, title: str) -> None:
        """The board as it is now, into the result (never raises: it is the last word)."""
        try:
            view = self.view()
        except Exception as exc:
            self.result["board"] = [title, "  (board unavailable: {0})".format(error_message(exc))]
            return
        self.result.update(board=render(view, title), outgoing=find_model(view, self.out),
                           incoming=find_model(view, self.inc), used=view["used"], nominal=view["nominal"])

    def mark(self, event: str) -> None:
        self.timeline.setdefault(event, round(time.monotonic() - self.t0, 3))

    # ------------------------------------------------------------ writing

    def set_stopped(self, name: str, stopped: bool) -> None:
        self.client.patch(kserve.API_VERSION, kserve.KIND, name, self.namespace, kserve.stop_patch(stopped),
                          dry_run=self.check_mode)

    # ------------------------------------------------------------ waiting

    def wait(self) -> None:
        """The admission within ``wait_timeout``, then (``wait_for=ready``) readiness within ``ready_timeout``."""
        self.phase = "admitted"
        self.wait_phase("admitted", self.p["wait_timeout"])
        if self.p["wait_for"] == "ready":
            self.phase = "ready"
            self.wait_phase("ready", self.p["ready_timeout"])

    def wait_phase(self, goal: str, timeout: float) -> None:
        """Outgoing gone and incoming at ``goal`` (admitted or ready), on one set of watches."""
        out_t = Tracker.for_isvc(self.out)
        in_t = Tracker.for_isvc(self.inc)
        cq = (self.p["cluster_queues"] or [None])[0]
        sources = (_prefixed(model_sources(self.client, self.namespace, None, isvc=self.out), "out.")
                   + _prefixed(model_sources(self.client, self.namespace, None, isvc=self.inc), "in.")
                   + [s for s in model_sources(self.client, self.namespace, self.kueue_api, workload=None,
                                               cluster_queue=cq) if s.name in ("workloads", "clusterqueues")])

        def done(state: State) -> bool:
            out_s, in_s = _part(state, "out."), _part(state, "in.")
            if not out_t.view(out_s)["pods"]:
                self.mark("outgoing_pods_gone")
            released = out_t.reached("stopped", out_s)
            if released:
                self.mark("outgoing_released")
            in_view = in_t.view(in_s)
            if in_view["workloads"] and all(kueue.workload_state(w) == "admitted" for w in in_view["workloads"]):
                self.mark("incoming_admitted")
            if in_view["live"] and not any(kueue.pod_gated(p) for p in in_view["live"]):
                self.mark("incoming_ungated")
            if in_view["live"] and all((p.get("spec") or {}).get("nodeName") for p in in_view["live"]):
                self.mark("incoming_bound")
            admitted = in_t.reached("admitted", in_s)
            if admitted:
                self.mark("usage_counted")
            if admitted and goal == "ready" and in_t.reached("ready", in_s):
                self.mark("incoming_ready")
            return released and admitted and (goal != "ready" or in_t.reached("ready", in_s))

        def dead_end(state: State) -> Optional[str]:
            return in_t.dead_end(goal, _part(state, "in."))

        def summary(state: State) -> Dict[str, Any]:
            return {"outgoing_state": out_t.summary(_part(state, "out.")), "incoming_state": in_t.summary(_part(state, "in."))}

        wait_for(sources, done, dead_end, summary, timeout=max(1.0, timeout),
                 description="{0} to release its GPUs and {1} to be {2}".format(self.out, self.inc, goal))

    # ------------------------------------------------------------ restoring

    def restore(self, why: str) -> None:
        """Outgoing on first, incoming off, each attempted whatever the other did; bounded wait."""
        steps = []
        for name, stopped in ((self.out, False), (self.inc, True)):
            action = "stop" if stopped else "start"
            try:
                self.set_stopped(name, stopped)
                steps.append({"model": name, "action": action, "ok": True})
            except Exception as exc:
                steps.append({"model": name, "action": action, "ok": False, "error": error_message(exc)})
        outcome = "not waited for"
        if steps[0]["ok"] and self.p["restore_timeout"] > 0:
            tracker = Tracker.for_isvc(self.out)
            try:
                wait_for(model_sources(self.client, self.namespace, self.kueue_api, isvc=self.out),
                         lambda s: tracker.reached("admitted", s), None, tracker.summary,
                         timeout=self.p["restore_timeout"],
                         description="{0} to be admitted again".format(self.out))
                outcome = "admitted again"
            except WaitError as exc:
                outcome = "not admitted again within {0}s: {1}".format(self.p["restore_timeout"], exc.msg.split("; last state:")[0])
        self.result["restored"] = {"why": why, "steps": steps, "outgoing": outcome}

    # ------------------------------------------------------------ the step

    def run(self) -> Dict[str, Any]:
        view = self.view()
        out, inc = find_model(view, self.out), find_model(view, self.inc)
        goal = self.p["wait_for"]
        if out["state"] == "ABSENT" or inc["state"] == "ABSENT":
            raise HandoverError("{0} does not exist in namespace {1}".format(
                self.out if out["state"] == "ABSENT" else self.inc, self.namespace))
        if out["state"] == "OFF" and inc["state"] in ADMITTED:
            self.result["already_done"] = True
            if goal == "ready" and not self.check_mode:
                self.wait_phase("ready", self.p["ready_timeout"])
            self.report("{0} is off and {1} is on: nothing to hand over".format(self.out, self.inc))
            return self.result
        if out["state"] != "OFF":
            checks = []
            if self.p["preflight"]:
                # First: a Kueue that does not act explains every other check's odd result.
                queue_name = inc.get("queue_name") or out.get("queue_name") or "default"
                checks.append(check("Kueue is acting", probe_kueue(self.client, self.kueue_api, self.namespace, queue_name),
                                    "Kueue's webhook answered a dry-run Workload"))
            if inc["state"] not in ADMITTED:
                checks += quota_checks(view, self.out, self.inc)
            self.result["preflight"] = checks
            failed = [c for c in checks if not c["ok"]]
            if failed and self.p["preflight"]:
                self.report("Step 3 refused, nothing changed")
                raise HandoverError("Handover refused before any change ({0}): {1}".format(
                    failed[0]["check"], failed[0]["message"]), **self.result)
            self.set_stopped(self.out, True)
            self.t0 = time.monotonic()  # the timeline counts from the accepted stop
            self.result["changed"] = True
            self.mark("stop_written")
        if inc["state"] == "OFF":
            # Both off (an interrupted restore): the goal is still incoming on.
            self.set_stopped(self.inc, False)
            self.result["changed"] = True
        if self.check_mode:
            self.report("Step 3 (check mode): {0} would be stopped".format(self.out))
            return self.result
        try:
            self.wait()
        except GpuaasError as exc:
            why = exc.msg.split("; last state:")[0]
            self.result["last_state"] = exc.result
            if self.p["restore"]:
                self.restore(why)
                self.report("Step 3 FAILED, {0} turned back on".format(self.out))
            else:
                self.report("Step 3 FAILED")
            raise HandoverError("{0} was not {1} in time, so {2}: {3}".format(
                self.inc, self.phase, "{0} was turned back on and {1} off".format(self.out, self.inc)
                if self.p["restore"] else "nothing was restored (restore=false)", why), **self.result)
        self.report("Step 3: {0} off, {1} on".format(self.out, self.inc))
        return self.result


def hand_over(client: Any, params: Dict[str, Any], check_mode: bool) -> Dict[str, Any]:
    """gpu_handover's whole run, under the Lease."""
    if params["outgoing"] == params["incoming"]:
        raise GpuaasError("outgoing and incoming are both {0!r}; name two different models.".format(params["outgoing"]))
    for option in ("wait_timeout", "ready_timeout", "lock_wait", "restore_timeout"):
        positive = option in ("wait_timeout", "ready_timeout")
        if params[option] < 0 or (positive and params[option] == 0):
            raise GpuaasError("{0} must be {1}, got {2}".format(option, "> 0" if positive else ">= 0", params[option]))
    kueue_api = kueue.detect_api_version(client, params["kueue_api_version"])
    handover = Handover(client, params, kueue_api, check_mode)
    if check_mode or not params["lock"]:
        return handover.run()
    lease = Lease(client, params["namespace"], params["lock"], params["lock_identity"] or default_identity(),
                  wait=params["lock_wait"])
    with lease:
        result = handover.run()
    result["lock"] = {"name": params["lock"], "identity": lease.identity, "lost": lease.lost}
    return result
