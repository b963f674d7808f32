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
