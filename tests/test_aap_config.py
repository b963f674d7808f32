"""The AAP configuration-as-code (aap/config/, infra.aap_configuration format) matches the repository.

Every job template runs a playbook that exists; every survey and extra variable is a variable of a role
that playbook runs (meta/argument_specs.yml), with a compatible type; the workflow only links templates,
approval nodes and nodes that exist. No cluster and no AAP are needed.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "aap" / "config"
ROLES = ROOT / "collections" / "ansible_collections" / "rhoai" / "gpuaas" / "roles"
BUILTIN_CREDENTIAL_TYPES = {"OpenShift or Kubernetes API Bearer Token", "Amazon Web Services", "Vault", "Machine"}
# survey question type -> argument_specs types it can feed
COMPATIBLE = {
    "integer": {"int", "raw"},
    "float": {"float", "int", "raw"},
    "text": {"str", "path", "raw"},
    "textarea": {"str", "raw"},
    "password": {"str", "raw"},
    "multiplechoice": {"str", "raw", "bool"},
    "multiselect": {"list", "raw"},
}
BOOL_CHOICES = {"true", "false"}


def _load_config() -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for path in sorted(CONFIG.glob("*.yml")):
        data = yaml.safe_load(path.read_text()) or {}
        for key, value in data.items():
            assert key not in merged, f"{key} is defined twice in aap/config"
            merged[key] = value
    return merged


CFG = _load_config()
TEMPLATES = CFG.get("controller_templates", [])
WORKFLOWS = CFG.get("controller_workflows", [])


def _roles_of(playbook: Path, seen: set[Path] | None = None) -> list[str]:
    """Role names (last FQCN part) a playbook runs, following import_playbook."""
    seen = seen or set()
    if playbook in seen:
        return []
    seen.add(playbook)
    roles: list[str] = []
    for play in yaml.safe_load(playbook.read_text()) or []:
        imported = play.get("ansible.builtin.import_playbook") or play.get("import_playbook")
        if imported:
            roles += _roles_of((playbook.parent / imported).resolve(), seen)
            continue
        for entry in play.get("roles", []):
            name = entry if isinstance(entry, str) else entry.get("role") or entry.get("name")
            roles.append(name.split(".")[-1])
        for task in play.get("tasks", []):
            for key in ("ansible.builtin.include_role", "ansible.builtin.import_role"):
                if key in task:
                    roles.append(task[key]["name"].split(".")[-1])
    return roles


def _options(role: str) -> dict[str, dict[str, Any]]:
    spec = yaml.safe_load((ROLES / role / "meta" / "argument_specs.yml").read_text())
    return spec["argument_specs"]["main"]["options"]


def _options_of_template(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    options: dict[str, dict[str, Any]] = {}
    for role in _roles_of(ROOT / template["playbook"]):
        options.update(_options(role))
    return options


def test_config_has_templates_and_a_workflow() -> None:
    assert TEMPLATES, "aap/config defines no controller_templates"
    assert WORKFLOWS, "aap/config defines no controller_workflows"
    names = [t["name"] for t in TEMPLATES]
    assert len(names) == len(set(names)), "duplicate template names"


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda t: t["name"])
def test_template_playbook_exists(template: dict[str, Any]) -> None:
    playbook = ROOT / template["playbook"]
    assert playbook.is_file(), f"{template['name']}: playbook {template['playbook']} does not exist"
    assert _roles_of(playbook), f"{template['name']}: {template['playbook']} runs no role"


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda t: t["name"])
def test_template_references_exist(template: dict[str, Any]) -> None:
    projects = {p["name"] for p in CFG.get("controller_projects", [])}
    inventories = {i["name"] for i in CFG.get("controller_inventories", [])}
    credentials = {c["name"] for c in CFG.get("controller_credentials", [])}
    environments = {e["name"] for e in CFG.get("controller_execution_environments", [])}
    assert template["project"] in projects
    assert template["inventory"] in inventories
    assert set(template.get("credentials", [])) <= credentials
    if "execution_environment" in template:
        assert template["execution_environment"] in environments


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda t: t["name"])
def test_survey_variables_match_argument_specs(template: dict[str, Any]) -> None:
    options = _options_of_template(template)
    spec = template.get("survey_spec") or {}
    assert bool(template.get("survey_enabled")) == bool(spec.get("spec")), \
        f"{template['name']}: survey_enabled does not match survey_spec"
    for question in spec.get("spec", []):
        var, qtype = question["variable"], question["type"]
        assert var in options, f"{template['name']}: survey variable {var} is not in the roles' argument_specs"
        option = options[var]
        otype = option.get("type", "str")
        assert otype in COMPATIBLE[qtype], \
            f"{template['name']}: {var} is {otype} in argument_specs but the survey asks for {qtype}"
        if qtype == "multiplechoice":
            choices = {str(c) for c in question["choices"]}
            if otype == "bool":
                assert choices <= BOOL_CHOICES, f"{template['name']}: {var} is a bool, choices must be true/false"
            if option.get("choices"):
                assert choices <= {str(c) for c in option["choices"]}, f"{template['name']}: {var} choices"
            assert str(question.get("default")) in choices
        if qtype == "integer" and "default" in question:
            assert question.get("min", question["default"]) <= question["default"] <= question.get("max", question["default"])


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda t: t["name"])
def test_extra_vars_match_argument_specs(template: dict[str, Any]) -> None:
    options = _options_of_template(template)
    for var, value in (template.get("extra_vars") or {}).items():
        assert var in options, f"{template['name']}: extra var {var} is not in the roles' argument_specs"
        if options[var].get("choices"):
            assert str(value) in {str(c) for c in options[var]["choices"]}, f"{template['name']}: {var}={value}"


def test_handover_templates_cover_each_step() -> None:
    steps = {str((t.get("extra_vars") or {}).get("handover_step")) for t in TEMPLATES
             if t["playbook"] == "playbooks/handover.yml"}
    assert {"1", "2", "3"} <= steps


def test_credential_types_exist() -> None:
    custom = {c["name"] for c in CFG.get("controller_credential_types", [])}
    for cred in CFG.get("controller_credentials", []):
        assert cred["credential_type"] in custom | BUILTIN_CREDENTIAL_TYPES, cred["name"]


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda w: w["name"])
def test_workflow_nodes_reference_existing_templates(workflow: dict[str, Any]) -> None:
    templates = {t["name"] for t in TEMPLATES}
    nodes = workflow["workflow_nodes"]
    identifiers = [n["identifier"] for n in nodes]
    assert len(identifiers) == len(set(identifiers)), "duplicate node identifiers"
    for node in nodes:
        ujt = node["unified_job_template"]
        if ujt["type"] == "job_template":
            assert ujt["name"] in templates, f"node {node['identifier']}: no template {ujt['name']}"
        else:
            assert ujt["type"] == "workflow_approval", f"node {node['identifier']}: unexpected type {ujt['type']}"
            assert ujt.get("name") and int(ujt.get("timeout", 0)) >= 0
        for rel in ("success_nodes", "failure_nodes", "always_nodes"):
            for target in (node.get("related") or {}).get(rel, []):
                assert target["identifier"] in identifiers, f"node {node['identifier']}: unknown {target['identifier']}"


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda w: w["name"])
def test_workflow_order(workflow: dict[str, Any]) -> None:
    """provision -> upload -> deploy -> step 1 -> approval -> step 2 -> approval -> step 3, one chain."""
    nodes = {n["identifier"]: n for n in workflow["workflow_nodes"]}
    targets = {t["identifier"] for n in nodes.values() for t in (n.get("related") or {}).get("success_nodes", [])}
    roots = [i for i in nodes if i not in targets]
    assert len(roots) == 1, f"expected one start node, got {roots}"
    chain, current = [], roots[0]
    while current:
        node = nodes[current]
        ujt = node["unified_job_template"]
        if ujt["type"] == "workflow_approval":
            chain.append("approval")
        else:
            template = next(t for t in TEMPLATES if t["name"] == ujt["name"])
            step = (template.get("extra_vars") or {}).get("handover_step")
            chain.append(f"step{step}" if step else Path(template["playbook"]).stem)
        nxt = (node.get("related") or {}).get("success_nodes", [])
        assert len(nxt) <= 1
        current = nxt[0]["identifier"] if nxt else None
    assert chain == ["provision", "upload_model", "deploy", "step1", "approval", "step2", "approval", "step3"]
