# -*- coding: utf-8 -*-
"""InferenceService strategy planning (pure) and state helpers."""

from __future__ import annotations

import pytest

from ansible_collections.rhoai.gpuaas.plugins.module_utils.isvc import (
    AUTOSCALER_CLASS_ANNOTATION,
    STOP_ANNOTATION,
    PlanError,
    expected_replicas,
    isvc_condition,
    isvc_summary,
    plan_change,
    pod_ready,
    predictor_pod_spec,
    predictor_selector,
)


def isvc(annotations=None, min_replicas=1, max_replicas=1, conditions=()):
    predictor = {"model": {"resources": {"limits": {"nvidia.com/gpu": "4"}, "requests": {"cpu": "4"}}}}
    if min_replicas is not None:
        predictor["minReplicas"] = min_replicas
    if max_replicas is not None:
        predictor["maxReplicas"] = max_replicas
    return {
        "metadata": {"name": "llm", "namespace": "ns", "generation": 3,
                     "annotations": dict({"serving.kserve.io/deploymentMode": "RawDeployment"}, **(annotations or {}))},
        "spec": {"predictor": predictor},
        "status": {"observedGeneration": 1, "conditions": list(conditions)},
    }


def deployment(replicas=1):
    return {"metadata": {"name": "llm-predictor"}, "spec": {"replicas": replicas,
            "template": {"spec": {"containers": [{"name": "kserve-container", "resources": {"limits": {"nvidia.com/gpu": "4"}}}]}}}}


class TestStopAnnotation:
    @pytest.mark.parametrize("strategy", ["auto", "stop_annotation"])
    def test_off_sets_stop_and_keeps_replicas(self, strategy):
        plan = plan_change(isvc(), strategy, on=False)
        assert plan.isvc_patch == {"metadata": {"annotations": {STOP_ANNOTATION: "true"}}}
        assert plan.before == {"metadata": {"annotations": {STOP_ANNOTATION: None}}}
        assert plan.after == {"metadata": {"annotations": {STOP_ANNOTATION: "true"}}}
        assert plan.changed and not plan.warnings

    def test_off_twice_is_idempotent(self):
        assert not plan_change(isvc({STOP_ANNOTATION: "true"}), "auto", on=False).changed

    def test_on_lifts_stop(self):
        plan = plan_change(isvc({STOP_ANNOTATION: "true"}), "auto", on=True)
        assert plan.isvc_patch == {"metadata": {"annotations": {STOP_ANNOTATION: "false"}}}

    def test_on_when_running_is_no_change(self):
        assert not plan_change(isvc(), "auto", on=True).changed
        assert not plan_change(isvc({STOP_ANNOTATION: "false"}), "auto", on=True).changed

    def test_on_with_replicas_sets_min_and_max(self):
        plan = plan_change(isvc({STOP_ANNOTATION: "true"}, max_replicas=None), "auto", on=True, replicas=2)
        assert plan.isvc_patch == {"metadata": {"annotations": {STOP_ANNOTATION: "false"}},
                                   "spec": {"predictor": {"minReplicas": 2, "maxReplicas": 2}}}
        assert plan.before["spec"]["predictor"] == {"minReplicas": 1, "maxReplicas": None}


class TestAutoscalerNone:
    def test_off(self):
        plan = plan_change(isvc(), "autoscaler_none", on=False)
        assert plan.isvc_patch == {"metadata": {"annotations": {AUTOSCALER_CLASS_ANNOTATION: "none"}},
                                   "spec": {"predictor": {"minReplicas": 0, "maxReplicas": 0}}}

    def test_on_defaults_to_one_replica(self):
        plan = plan_change(isvc({AUTOSCALER_CLASS_ANNOTATION: "none"}, 0, 0), "autoscaler_none", on=True)
        assert plan.isvc_patch == {"spec": {"predictor": {"minReplicas": 1, "maxReplicas": 1}}}

    def test_idempotent(self):
        assert not plan_change(isvc({AUTOSCALER_CLASS_ANNOTATION: "none"}, 0, 0), "autoscaler_none", on=False).changed
        # the API omits maxReplicas 0 (omitempty)
        assert not plan_change(isvc({AUTOSCALER_CLASS_ANNOTATION: "none"}, 0, None), "autoscaler_none", on=False).changed


class TestDeploymentScale:
    def test_off_scales_to_zero(self):
        plan = plan_change(isvc(), "deployment_scale", on=False, deployment=deployment(1))
        assert plan.isvc_patch is None
        assert plan.deployment_replicas == 0
        assert plan.before == {"deployment": {"name": "llm-predictor", "replicas": 1}}
        assert plan.after == {"deployment": {"name": "llm-predictor", "replicas": 0}}

    def test_off_without_deployment_is_no_change(self):
        assert not plan_change(isvc({STOP_ANNOTATION: "true"}), "deployment_scale", on=False).changed

    def test_on_from_stopped_lifts_stop_then_scales(self):
        plan = plan_change(isvc({STOP_ANNOTATION: "true"}), "deployment_scale", on=True, replicas=1)
        assert plan.isvc_patch == {"metadata": {"annotations": {STOP_ANNOTATION: "false"}}}
        assert plan.deployment_replicas == 1

    def test_on_without_deployment_and_not_stopped_fails(self):
        with pytest.raises(PlanError, match="llm-predictor does not exist"):
            plan_change(isvc(), "deployment_scale", on=True)

    def test_warns_under_autoscaler_none(self):
        plan = plan_change(isvc({AUTOSCALER_CLASS_ANNOTATION: "none"}), "deployment_scale", on=False, deployment=deployment(1))
        assert any("autoscaler_none" in w for w in plan.warnings)

    def test_idempotent(self):
        assert not plan_change(isvc(), "deployment_scale", on=False, deployment=deployment(0)).changed


class TestMinReplicas:
    def test_off_warns_that_no_gpu_is_freed(self):
        plan = plan_change(isvc(), "min_replicas", on=False)
        assert plan.isvc_patch == {"spec": {"predictor": {"minReplicas": 0}}}
        assert len(plan.warnings) == 1 and "frees NO GPU" in plan.warnings[0]

    def test_no_warning_under_autoscaler_none(self):
        assert not plan_change(isvc({AUTOSCALER_CLASS_ANNOTATION: "none"}), "min_replicas", on=False).warnings

    def test_on_raises_max_only_when_needed(self):
        plan = plan_change(isvc(min_replicas=0, max_replicas=1), "min_replicas", on=True, replicas=3)
        assert plan.isvc_patch == {"spec": {"predictor": {"minReplicas": 3, "maxReplicas": 3}}}
        plan = plan_change(isvc(min_replicas=0, max_replicas=0), "min_replicas", on=True, replicas=3)
        assert plan.isvc_patch == {"spec": {"predictor": {"minReplicas": 3}}}


class TestValidation:
    def test_unknown_strategy(self):
        with pytest.raises(PlanError, match="unknown strategy"):
            plan_change(isvc(), "scale_to_zero", on=False)

    def test_negative_replicas(self):
        with pytest.raises(PlanError, match=">= 0"):
            plan_change(isvc(), "auto", on=True, replicas=-1)

    def test_serverless_mode_warns(self):
        obj = isvc({"serving.kserve.io/deploymentMode": "Serverless"})
        assert any("Serverless" in w for w in plan_change(obj, "auto", on=False).warnings)


class TestState:
    def test_expected_replicas(self):
        assert expected_replicas(isvc(min_replicas=0)) == 1  # hpa clamps to 1
        assert expected_replicas(isvc(min_replicas=None)) == 1
        assert expected_replicas(isvc(min_replicas=2)) == 2
        assert expected_replicas(isvc(), 3) == 3

    def test_conditions_ignore_observed_generation(self):
        # Raw mode copies the Deployment's observedGeneration: 1 vs ISVC generation 3 here.
        obj = isvc(conditions=[{"type": "Ready", "status": "True"}, {"type": "Stopped", "status": "False"}])
        assert isvc_condition(obj, "Ready") == "True"
        assert isvc_condition(obj, "PredictorReady") is None

    def test_summary(self):
        obj = isvc({STOP_ANNOTATION: "true"}, conditions=[{"type": "Stopped", "status": "True", "reason": "Stopped"}])
        summary = isvc_summary(obj)
        assert summary["stopped"] is True
        assert summary["min_replicas"] == 1 and summary["autoscaler_class"] == "hpa"
        assert summary["conditions"] == [{"type": "Stopped", "status": "True", "reason": "Stopped"}]

    def test_selector(self):
        assert predictor_selector("llm") == "serving.kserve.io/inferenceservice=llm,component=predictor"

    def test_pod_ready(self):
        ready = {"metadata": {}, "status": {"conditions": [{"type": "Ready", "status": "True"}]}}
        assert pod_ready(ready)
        assert not pod_ready({"metadata": {"deletionTimestamp": "x"}, "status": ready["status"]})

    def test_pod_spec_sources(self):
        pod = {"spec": {"containers": [{"name": "from-pod"}]}}
        assert predictor_pod_spec(isvc(), [pod], deployment()) == pod["spec"]
        assert predictor_pod_spec(isvc(), [], deployment())["containers"][0]["name"] == "kserve-container"
        spec = predictor_pod_spec(isvc(), [], None)
        assert spec["containers"] == [{"resources": {"limits": {"nvidia.com/gpu": "4"}, "requests": {"cpu": "4"}}}]


class TestMessages:
    """What a user reads when a plan cannot be made or may not do what they think."""

    def test_unknown_strategy_names_the_choices(self):
        with pytest.raises(PlanError) as err:
            plan_change(isvc(), "scale_to_zero", on=False)
        assert str(err.value) == ("unknown strategy 'scale_to_zero'; use one of auto, stop_annotation, "
                                  "autoscaler_none, deployment_scale, min_replicas")

    def test_negative_replicas_names_the_value(self):
        with pytest.raises(PlanError) as err:
            plan_change(isvc(), "auto", on=True, replicas=-2)
        assert str(err.value) == "replicas must be >= 0, got -2"

    @pytest.mark.parametrize("strategy", ["auto", "autoscaler_none", "min_replicas"])
    def test_zero_replicas_is_valid(self, strategy):
        assert plan_change(isvc(), strategy, on=False, replicas=0).changed

    def test_serverless_warning(self):
        plan = plan_change(isvc({"serving.kserve.io/deploymentMode": "Serverless"}), "auto", on=False)
        assert plan.warnings == [
            "InferenceService deploymentMode is 'Serverless'; these strategies are designed for raw deployments "
            "(RawDeployment/Standard) as used by RHOAI 3.0."]

    @pytest.mark.parametrize("mode", ["RawDeployment", "Standard"])
    def test_raw_modes_do_not_warn(self, mode):
        assert plan_change(isvc({"serving.kserve.io/deploymentMode": mode}), "auto", on=False).warnings == []

    def test_min_replicas_warning(self):
        plan = plan_change(isvc({AUTOSCALER_CLASS_ANNOTATION: "external"}), "min_replicas", on=False)
        assert plan.warnings == [
            "strategy min_replicas: under the autoscaler class 'external' KServe clamps the HPA minimum to 1 and "
            "does not manage Deployment replicas, so minReplicas 0 frees NO GPU (the pod keeps running). Use "
            "strategy auto (stop annotation)."]
        # starting is fine under any class
        assert plan_change(isvc(min_replicas=0), "min_replicas", on=True).warnings == []

    def test_missing_deployment_error(self):
        with pytest.raises(PlanError) as err:
            plan_change(isvc(), "deployment_scale", on=True)
        assert str(err.value) == ("Deployment llm-predictor does not exist (is the InferenceService in raw "
                                  "deployment mode and reconciled by KServe?)")

    def test_deployment_scale_warnings(self):
        none = plan_change(isvc({AUTOSCALER_CLASS_ANNOTATION: "none"}), "deployment_scale", on=True,
                           deployment=deployment(0))
        assert none.warnings == [
            "strategy deployment_scale: the InferenceService has autoscalerClass none, so KServe resets the "
            "Deployment to minReplicas on its next reconcile; use strategy autoscaler_none."]
        start = plan_change(isvc(), "deployment_scale", on=True, deployment=deployment(0))
        assert start.warnings == [
            "strategy deployment_scale: the HPA llm-predictor may change the replica count between minReplicas "
            "and maxReplicas."]
        # stopping leaves nothing for the HPA to change
        assert plan_change(isvc(), "deployment_scale", on=False, deployment=deployment(1)).warnings == []


class TestReplicaCounts:
    def test_autoscaler_none_on_with_replicas(self):
        plan = plan_change(isvc({AUTOSCALER_CLASS_ANNOTATION: "none"}, 0, 0), "autoscaler_none", on=True, replicas=2)
        assert plan.isvc_patch == {"spec": {"predictor": {"minReplicas": 2, "maxReplicas": 2}}}

    def test_deployment_scale_on_with_replicas(self):
        plan = plan_change(isvc(), "deployment_scale", on=True, replicas=2, deployment=deployment(0))
        assert plan.deployment_replicas == 2
        assert plan.after == {"deployment": {"name": "llm-predictor", "replicas": 2}}

    def test_deployment_without_replicas_runs_one(self):
        """The API defaults an unset Deployment spec.replicas to 1."""
        dep = deployment()
        del dep["spec"]["replicas"]
        assert not plan_change(isvc(), "deployment_scale", on=True, replicas=1, deployment=dep).changed
        plan = plan_change(isvc(), "deployment_scale", on=False, deployment=dep)
        assert plan.before == {"deployment": {"name": "llm-predictor", "replicas": 1}}

    def test_deployment_scale_from_stopped_has_no_replicas_before(self):
        plan = plan_change(isvc({STOP_ANNOTATION: "true"}, min_replicas=2, max_replicas=2), "deployment_scale",
                           on=True)
        assert plan.before == {"metadata": {"annotations": {STOP_ANNOTATION: "true"}},
                               "deployment": {"name": "llm-predictor", "replicas": None}}
        assert plan.after == {"metadata": {"annotations": {STOP_ANNOTATION: "false"}},
                              "deployment": {"name": "llm-predictor", "replicas": 2}}

    def test_min_replicas_on_uses_the_isvc_minimum(self):
        plan = plan_change(isvc(min_replicas=0, max_replicas=4), "min_replicas", on=True)
        assert plan.isvc_patch == {"spec": {"predictor": {"minReplicas": 1}}}

    def test_min_replicas_keeps_a_max_equal_to_the_count(self):
        plan = plan_change(isvc(min_replicas=0, max_replicas=3), "min_replicas", on=True, replicas=3)
        assert plan.isvc_patch == {"spec": {"predictor": {"minReplicas": 3}}}

    def test_min_replicas_off_keeps_max(self):
        plan = plan_change(isvc(min_replicas=2, max_replicas=4), "min_replicas", on=False)
        assert plan.isvc_patch == {"spec": {"predictor": {"minReplicas": 0}}}

    def test_diff_shows_the_annotation_value_it_replaces(self):
        plan = plan_change(isvc({STOP_ANNOTATION: "false"}), "auto", on=False)
        assert plan.before == {"metadata": {"annotations": {STOP_ANNOTATION: "false"}}}
        assert plan.after == {"metadata": {"annotations": {STOP_ANNOTATION: "true"}}}

    @pytest.mark.parametrize("value,stopped", [("true", True), ("True", True), ("TRUE", True), ("false", False),
                                               ("", False), ("yes", False)])
    def test_stop_annotation_values(self, value, stopped):
        plan = plan_change(isvc({STOP_ANNOTATION: value}), "auto", on=False)
        assert plan.changed is not stopped
        assert isvc_summary(isvc({STOP_ANNOTATION: value}))["stopped"] is stopped


class TestSummaryAndPods:
    def test_summary_has_every_field(self):
        obj = isvc({STOP_ANNOTATION: "true", AUTOSCALER_CLASS_ANNOTATION: "none"}, min_replicas=0, max_replicas=2,
                   conditions=[{"type": "Ready", "status": "False", "reason": "Stopped", "message": "stopped",
                                "lastTransitionTime": "2026-01-01T00:00:00Z"}])
        assert isvc_summary(obj) == {
            "name": "llm", "namespace": "ns",
            "conditions": [{"type": "Ready", "status": "False", "reason": "Stopped", "message": "stopped"}],
            "stopped": True, "min_replicas": 0, "max_replicas": 2, "autoscaler_class": "none",
            "generation": 3, "observed_generation": 1,
        }

    def test_summary_of_a_bare_object(self):
        assert isvc_summary({}) == {
            "name": None, "namespace": None, "conditions": [], "stopped": False, "min_replicas": None,
            "max_replicas": None, "autoscaler_class": "hpa", "generation": None, "observed_generation": None}

    def test_pod_without_ready_condition_is_not_ready(self):
        assert not pod_ready({"metadata": {}, "status": {"conditions": [{"type": "PodScheduled", "status": "True"}]}})
        assert not pod_ready({"metadata": {}, "status": {"conditions": [{"type": "Ready", "status": "False"}]}})
        assert not pod_ready({})

    def test_pod_spec_from_the_isvc_copies_containers_and_init_containers(self):
        obj = isvc()
        obj["spec"]["predictor"]["containers"] = [{"name": "sidecar", "resources": {"limits": {"cpu": "1"}}}]
        obj["spec"]["predictor"]["initContainers"] = [{"name": "init", "resources": {"limits": {"memory": "1Gi"}}}]
        spec = predictor_pod_spec(obj, [], None)
        assert spec == {
            "containers": [{"name": "sidecar", "resources": {"limits": {"cpu": "1"}}},
                           {"resources": {"limits": {"nvidia.com/gpu": "4"}, "requests": {"cpu": "4"}}}],
            "initContainers": [{"name": "init", "resources": {"limits": {"memory": "1Gi"}}}],
        }
        # a copy: what a caller does with it never changes the InferenceService it came from
        spec["containers"][0]["resources"]["limits"]["cpu"] = "99"
        spec["initContainers"][0]["resources"]["limits"]["memory"] = "99Gi"
        assert obj["spec"]["predictor"]["containers"][0]["resources"]["limits"]["cpu"] == "1"
        assert obj["spec"]["predictor"]["initContainers"][0]["resources"]["limits"]["memory"] == "1Gi"
