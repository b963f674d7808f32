"""The AAP configuration-as-code (aap/config/, infra.aap_configuration format) and the execution environment.

`config_problems(cfg)` checks aap/config/*.yml against what infra.aap_configuration and the AAP
controller accept (field sets in tests/data/aap_configuration_fields.yml, with the version and source
they were read from) and against this repository: unknown variables and keys, survey and workflow node
fields, credential injectors that reference undefined inputs, credentials whose inputs their type does
not define, survey and extra variables that the roles of the template's playbook never read, playbooks and
inventory paths that do not exist, and the persistent volume of the upload job (container group, PVC,
paths passed as extra vars). Misspellings are put into a copy of the configuration and must be named.
The execution environment's build context is generated with ansible-builder (no container engine).
No cluster and no AAP are needed.
"""
from __future__ import annotations

import copy
import functools
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import jinja2
import jinja2.meta
import pytest
import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "aap" / "config"
ROLES = ROOT / "collections" / "ansible_collections" / "rhoai" / "gpuaas" / "roles"
FIELDS = yaml.safe_load((ROOT / "tests" / "data" / "aap_configuration_fields.yml").read_text())
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
# Where the upload keeps what must survive the job pod (issue 11); the roles are to read these names.
STORAGE_VARS = ("gpuaas_upload_state_dir", "gpuaas_hf_cache_dir")
def load_config(directory: Path = CONFIG) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for path in sorted(directory.glob("*.yml")):
        data = yaml.safe_load(path.read_text()) or {}
        for key, value in data.items():
            assert key not in merged, f"{key} is defined twice in aap/config"
            merged[key] = value
    return merged


CFG = load_config()
TEMPLATES = CFG.get("controller_templates", [])
WORKFLOWS = CFG.get("controller_workflows", [])


def _roles_of(playbook: Path, seen: set[Path] | None = None) -> list[str]:
    """Role names (last FQCN part) a playbook runs, following import_playbook."""
    seen = seen or set()
    if playbook in seen or not playbook.is_file():
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


def _playbooks_of(playbook: Path) -> list[Path]:
    out = [playbook]
    for play in yaml.safe_load(playbook.read_text()) or []:
        imported = play.get("ansible.builtin.import_playbook") or play.get("import_playbook")
        if imported:
            out += _playbooks_of((playbook.parent / imported).resolve())
    return out


@functools.lru_cache(maxsize=None)
def _options(role: str) -> dict[str, dict[str, Any]]:
    spec = yaml.safe_load((ROLES / role / "meta" / "argument_specs.yml").read_text())
    return spec["argument_specs"]["main"]["options"]


def _options_of_template(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    options: dict[str, dict[str, Any]] = {}
    for role in _roles_of(ROOT / template["playbook"]):
        options.update(_options(role))
    return options


@functools.lru_cache(maxsize=None)
def _text_read_by(playbook: Path) -> str:
    """The playbook's files and those of the roles it runs (not their argument specs)."""
    files = [p for role in _roles_of(playbook) for p in (ROLES / role).rglob("*")
             if p.is_file() and p.suffix in (".yml", ".yaml", ".j2") and p.parent.name != "meta"]
    return "\n".join(p.read_text() for p in files + _playbooks_of(playbook))


def _read_by(template: dict[str, Any], var: str) -> bool:
    """Whether a role the template's playbook runs (or the playbook itself) reads `var`."""
    if var in _options_of_template(template):
        return True
    return bool(re.search(rf"\b{re.escape(var)}\b", _text_read_by(ROOT / template["playbook"])))


def _unknown(keys: Any, allowed: list[str], where: str, source: str) -> list[str]:
    if not isinstance(keys, dict):
        return [f"{where}: expected a mapping, got {keys!r}"]
    return [f"{where}: unknown key {key!r} ({source} reads {', '.join(sorted(allowed))})"
            for key in keys if key not in allowed]


def _survey_problems(owner: str, spec: dict[str, Any]) -> list[str]:
    fields = FIELDS["survey_spec"]
    problems = _unknown(spec, fields["keys"], f"{owner} survey_spec", "AAP's survey spec")
    for index, question in enumerate(spec.get("spec") or []):
        where = f"{owner} survey question {index} ({question.get('variable', '?')})"
        problems += _unknown(question, fields["question_keys"], where, "AAP's survey question")
        problems += [f"{where}: lacks {key!r}, which AAP requires" for key in fields["question_required"]
                     if key not in question]
        if question.get("type") not in fields["question_types"]:
            problems.append(f"{where}: type {question.get('type')!r} is not one of {fields['question_types']}")
    return problems


def _workflow_node_problems(workflow: dict[str, Any]) -> list[str]:
    fields = FIELDS["workflow_nodes"]
    problems = []
    for node in workflow.get("workflow_nodes") or []:
        where = f"{workflow['name']} node {node.get('identifier', '?')}"
        problems += _unknown(node, fields["keys"], where, "workflow_job_template workflow_nodes")
        ujt = node.get("unified_job_template") or {}
        problems += _unknown(ujt, fields["unified_job_template_keys"], f"{where} unified_job_template",
                             "workflow_job_template workflow_nodes")
        if ujt.get("type") not in fields["unified_job_template_types"]:
            problems.append(f"{where}: unified_job_template type {ujt.get('type')!r} is not one of "
                            f"{fields['unified_job_template_types']}")
        related = node.get("related") or {}
        problems += _unknown(related, fields["related_keys"], f"{where} related", "workflow_job_template workflow_nodes")
        for link in ("success_nodes", "failure_nodes", "always_nodes"):
            for target in related.get(link) or []:
                problems += _unknown(target, fields["link_keys"], f"{where} related.{link}",
                                     "workflow_job_template workflow_nodes")
    return problems


def key_problems(cfg: dict[str, Any]) -> list[str]:
    """Variables and keys infra.aap_configuration or AAP do not know (they would be ignored or refused)."""
    problems = []
    variables = FIELDS["variables"]
    for var, items in cfg.items():
        if var not in variables:
            problems.append(f"aap/config: unknown variable {var!r}: no infra.aap_configuration role reads it "
                            f"(known here: {', '.join(sorted(variables))})")
            continue
        spec = variables[var]
        source = f"infra.aap_configuration {spec['role']}"
        for item in items or []:
            where = f"{var} {item.get('name', '?')!r}"
            problems += _unknown(item, spec["keys"], where, source)
            for key, allowed in (spec.get("nested") or {}).items():
                if key in item:
                    problems += _unknown(item[key], allowed, f"{where} {key}", source)
            if item.get("survey_spec"):
                problems += _survey_problems(where, item["survey_spec"])
            if var == "controller_workflows":
                problems += _workflow_node_problems(item)
    ctype = FIELDS["credential_type"]
    for item in cfg.get("controller_credential_types", []):
        where = f"credential type {item['name']!r}"
        if item.get("kind") not in ctype["kinds"]:
            problems.append(f"{where}: kind {item.get('kind')!r} must be one of {ctype['kinds']} for a custom type")
        problems += _unknown(item.get("inputs") or {}, ctype["inputs_keys"], f"{where} inputs", "AAP")
        for field in (item.get("inputs") or {}).get("fields") or []:
            problems += _unknown(field, ctype["field_keys"], f"{where} input {field.get('id', '?')!r}", "AAP")
            problems += [f"{where} input {field.get('id', '?')!r}: lacks {key!r}" for key in ctype["field_required"]
                         if key not in field]
            if field.get("type", "string") not in ctype["field_types"]:
                problems.append(f"{where} input {field.get('id')!r}: type {field.get('type')!r} is not one of "
                                f"{ctype['field_types']}")
        problems += _unknown(item.get("injectors") or {}, ctype["injector_keys"], f"{where} injectors", "AAP")
    return problems


def _type_fields(cfg: dict[str, Any], type_name: str) -> tuple[list[str], list[str]] | None:
    for item in cfg.get("controller_credential_types", []):
        if item["name"] == type_name:
            inputs = item.get("inputs") or {}
            return [f["id"] for f in inputs.get("fields") or [] if "id" in f], inputs.get("required") or []
    builtin = FIELDS["builtin_credential_types"].get(type_name)
    return (builtin["fields"], builtin["required"]) if builtin else None


def _strip_raw(text: str) -> str:
    return re.sub(r"\{%-?\s*(end)?raw\s*-?%\}", "", text)


def credential_problems(cfg: dict[str, Any]) -> list[str]:
    """Injectors that name undefined inputs; credentials whose inputs their type does not define."""
    problems = []
    env = jinja2.Environment()
    for item in cfg.get("controller_credential_types", []):
        defined = {f["id"] for f in (item.get("inputs") or {}).get("fields") or [] if "id" in f}
        for required in (item.get("inputs") or {}).get("required") or []:
            if required not in defined:
                problems.append(f"credential type {item['name']!r}: required input {required!r} is not a field")
        for kind, entries in (item.get("injectors") or {}).items():
            for target, template in (entries or {}).items():
                used = jinja2.meta.find_undeclared_variables(env.parse(_strip_raw(str(template))))
                for name in sorted(used - defined - {"tower"}):
                    problems.append(f"credential type {item['name']!r}: injector {kind}.{target} references "
                                    f"undefined input {name!r} (inputs: {', '.join(sorted(defined))})")
    for cred in cfg.get("controller_credentials", []):
        fields = _type_fields(cfg, cred["credential_type"])
        where = f"credential {cred['name']!r}"
        if fields is None:
            problems.append(f"{where}: credential type {cred['credential_type']!r} is neither defined in aap/config "
                            "nor a managed type listed in tests/data/aap_configuration_fields.yml")
            continue
        ids, required = fields
        inputs = cred.get("inputs") or {}
        problems += [f"{where}: input {key!r} is not an input of {cred['credential_type']!r} "
                     f"({', '.join(sorted(ids))})" for key in inputs if key not in ids]
        problems += [f"{where}: lacks required input {key!r}" for key in required if key not in inputs]
        if cred["credential_type"] == "OpenShift or Kubernetes API Bearer Token" and inputs.get("verify_ssl") \
                and not inputs.get("ssl_ca_cert"):
            problems.append(f"{where}: verify_ssl without ssl_ca_cert: AAP then injects K8S_AUTH_VERIFY_SSL=False "
                            "(awx-plugins kubernetes_bearer_token), so the jobs would not verify the API")
    return problems


def reference_problems(cfg: dict[str, Any], root: Path = ROOT) -> list[str]:
    """Names that point at nothing: playbooks, inventory files, projects, credentials, groups, templates."""
    problems = []
    names = {var: {i["name"] for i in cfg.get(var, [])} for var in FIELDS["variables"]}
    for template in cfg.get("controller_templates", []):
        where = f"template {template['name']!r}"
        playbook = root / template.get("playbook", "")
        if not playbook.is_file():
            problems.append(f"{where}: playbook {template.get('playbook')} does not exist in the project")
        elif not _roles_of(playbook):
            problems.append(f"{where}: {template['playbook']} runs no role")
        for key, var in (("project", "controller_projects"), ("inventory", "controller_inventories"),
                         ("execution_environment", "controller_execution_environments")):
            if key in template and template[key] not in names[var]:
                problems.append(f"{where}: {key} {template[key]!r} is not defined in aap/config ({var})")
        for key, var in (("credentials", "controller_credentials"), ("instance_groups", "controller_instance_groups")):
            for name in template.get(key) or []:
                if name not in names[var]:
                    problems.append(f"{where}: {key} {name!r} is not defined in aap/config ({var})")
    for source in cfg.get("controller_inventory_sources", []):
        where = f"inventory source {source['name']!r}"
        if source.get("source") == "scm" and not (root / source.get("source_path", "")).is_file():
            problems.append(f"{where}: source_path {source.get('source_path')} does not exist in the project")
        if source.get("source_project") and source["source_project"] not in names["controller_projects"]:
            problems.append(f"{where}: source_project {source['source_project']!r} is not defined")
        if source.get("inventory") not in names["controller_inventories"]:
            problems.append(f"{where}: inventory {source.get('inventory')!r} is not defined")
    for project in cfg.get("controller_projects", []):
        env = project.get("default_environment")
        if env and env not in names["controller_execution_environments"]:
            problems.append(f"project {project['name']!r}: default_environment {env!r} is not defined")
    templates = names["controller_templates"]
    for workflow in cfg.get("controller_workflows", []):
        nodes = workflow.get("workflow_nodes") or []
        identifiers = [n.get("identifier") for n in nodes]
        if len(identifiers) != len(set(identifiers)):
            problems.append(f"workflow {workflow['name']!r}: duplicate node identifiers")
        for node in nodes:
            ujt = node.get("unified_job_template") or {}
            if ujt.get("type") == "job_template" and ujt.get("name") not in templates:
                problems.append(f"workflow {workflow['name']!r} node {node.get('identifier')}: no template "
                                f"{ujt.get('name')!r}")
            for link in ("success_nodes", "failure_nodes", "always_nodes"):
                for target in (node.get("related") or {}).get(link) or []:
                    if target.get("identifier") not in identifiers:
                        problems.append(f"workflow {workflow['name']!r} node {node.get('identifier')}: "
                                        f"{link} names unknown node {target.get('identifier')!r}")
    return problems


def variable_problems(cfg: dict[str, Any]) -> list[str]:
    """Survey variables, extra vars and credential extra vars the template's roles never read."""
    problems = []
    injected = {c["name"]: (next((t for t in cfg.get("controller_credential_types", [])
                                  if t["name"] == c["credential_type"]), {}).get("injectors") or {}).get("extra_vars", {})
                for c in cfg.get("controller_credentials", [])}
    for template in cfg.get("controller_templates", []):
        if not (ROOT / template.get("playbook", "")).is_file():
            continue
        where = f"template {template['name']!r}"
        survey = [q.get("variable") for q in (template.get("survey_spec") or {}).get("spec") or []]
        sources = [("survey variable", v) for v in survey if v]
        sources += [("extra var", v) for v in template.get("extra_vars") or {}]
        sources += [(f"extra var injected by credential {c!r}", v) for c in template.get("credentials") or []
                    for v in injected.get(c, {})]
        for what, var in sources:
            if not _read_by(template, var):
                problems.append(f"{where}: {what} {var!r} is never read by {template['playbook']} or the roles it "
                                f"runs ({', '.join(_roles_of(ROOT / template['playbook']))})")
        options = _options_of_template(template)
        for var, value in (template.get("extra_vars") or {}).items():
            if options.get(var, {}).get("choices") and str(value) not in {str(c) for c in options[var]["choices"]}:
                problems.append(f"{where}: extra var {var}={value!r} is not one of {options[var]['choices']}")
    return problems


def _pod_spec(group: dict[str, Any]) -> dict[str, Any]:
    return yaml.safe_load(group.get("pod_spec_override") or "") or {}


def storage_problems(cfg: dict[str, Any], root: Path = ROOT) -> list[str]:
    """The upload's resume records and Hugging Face cache must live on a persistent volume (issue 11)."""
    problems = []
    groups = {g["name"]: g for g in cfg.get("controller_instance_groups", [])}
    claims = {}
    for path in sorted((root / "aap" / "manifests").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == "PersistentVolumeClaim":
                claims[doc["metadata"]["name"]] = doc["metadata"].get("namespace")
    for template in cfg.get("controller_templates", []):
        where = f"template {template['name']!r}"
        runs_upload = "model_store" in _roles_of(root / template.get("playbook", "_"))
        paths = {v: (template.get("extra_vars") or {}).get(v) for v in STORAGE_VARS}
        if runs_upload and not all(paths.values()):
            problems.append(f"{where} uploads models but does not pass {', '.join(v for v, p in paths.items() if not p)}"
                            " as extra vars: resume records and the Hugging Face cache would die with the job pod")
        if not any(paths.values()):
            continue
        mounts = []
        for name in template.get("instance_groups") or []:
            group = groups.get(name, {})
            if not group.get("is_container_group"):
                problems.append(f"{where}: instance group {name!r} is not a container group")
                continue
            spec = _pod_spec(group)
            volumes = {v["name"]: (v.get("persistentVolumeClaim") or {}).get("claimName")
                       for v in (spec.get("spec") or {}).get("volumes") or []}
            namespace = (spec.get("metadata") or {}).get("namespace")
            for container in (spec.get("spec") or {}).get("containers") or []:
                if container.get("name") != "worker":
                    continue
                for mount in container.get("volumeMounts") or []:
                    claim = volumes.get(mount.get("name"))
                    if claim and claim in claims and claims[claim] == namespace:
                        mounts.append(mount["mountPath"].rstrip("/"))
                    elif claim:
                        problems.append(f"{where}: instance group {name!r} mounts claim {claim!r}, which aap/manifests "
                                        f"does not define in namespace {namespace!r}")
        if not mounts:
            problems.append(f"{where}: passes {', '.join(v for v, p in paths.items() if p)} but runs on no container "
                            "group that mounts a PersistentVolumeClaim of aap/manifests")
        for var, value in paths.items():
            if value and not any(str(value).startswith(m + "/") for m in mounts):
                problems.append(f"{where}: {var}={value} is not on a persistent volume mount ({mounts})")
        if mounts and not template.get("prevent_instance_group_fallback"):
            problems.append(f"{where}: set prevent_instance_group_fallback, or AAP may run it without the volume")
    return problems


def config_problems(cfg: dict[str, Any], root: Path = ROOT) -> list[str]:
    return (key_problems(cfg) + credential_problems(cfg) + reference_problems(cfg, root) + variable_problems(cfg)
            + storage_problems(cfg, root))


def test_config_has_no_problems() -> None:
    assert config_problems(CFG) == []


def test_config_has_templates_and_a_workflow() -> None:
    assert TEMPLATES, "aap/config defines no controller_templates"
    assert WORKFLOWS, "aap/config defines no controller_workflows"
    names = [t["name"] for t in TEMPLATES]
    assert len(names) == len(set(names)), "duplicate template names"


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


def test_handover_templates_cover_each_step() -> None:
    steps = {str((t.get("extra_vars") or {}).get("handover_step")) for t in TEMPLATES
             if t["playbook"] == "playbooks/handover.yml"}
    assert {"1", "2", "3"} <= steps


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


# --- misspellings and broken references put into a copy of the configuration ---

def _template(cfg: dict[str, Any], playbook: str, step: str | None = None) -> dict[str, Any]:
    return next(t for t in cfg["controller_templates"] if t["playbook"] == playbook
                and (step is None or (t.get("extra_vars") or {}).get("handover_step") == step))


def _rename(item: dict[str, Any], old: str, new: str) -> None:
    item[new] = item.pop(old)


def _s3_type(cfg: dict[str, Any]) -> dict[str, Any]:
    return next(t for t in cfg["controller_credential_types"] if t["name"] == "RHOAI GPUaaS S3")


def _credential(cfg: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in cfg["controller_credentials"] if c["name"] == name)


def _group(cfg: dict[str, Any]) -> dict[str, Any]:
    return cfg["controller_instance_groups"][0]


def _remount(cfg: dict[str, Any]) -> None:
    _group(cfg)["pod_spec_override"] = _group(cfg)["pod_spec_override"].replace("/var/lib/rhoai-gpuaas", "/scratch")


MUTATIONS: dict[str, tuple[Callable[[dict[str, Any]], Any], str]] = {
    "template_playbok": (lambda c: _rename(_template(c, "playbooks/deploy.yml"), "playbook", "playbok"),
                         "unknown key 'playbok'"),
    "template_survey_enabeld": (lambda c: _rename(_template(c, "playbooks/provision.yml"), "survey_enabled",
                                                  "survey_enabeld"), "unknown key 'survey_enabeld'"),
    "template_extra_vars_typo": (lambda c: _rename(_template(c, "playbooks/handover.yml", "1"), "extra_vars",
                                                   "extra_var"), "unknown key 'extra_var'"),
    "survey_question_variabel": (lambda c: _rename(_template(c, "playbooks/teardown.yml")["survey_spec"]["spec"][0],
                                                   "variable", "variabel"), "unknown key 'variabel'"),
    "survey_type_integr": (lambda c: _template(c, "playbooks/provision.yml")["survey_spec"]["spec"][0].update(
        type="integr"), "type 'integr' is not one of"),
    "survey_variable_not_read": (lambda c: _template(c, "playbooks/provision.yml")["survey_spec"]["spec"][0].update(
        variable="gpu_nodes_wait_timout"), "survey variable 'gpu_nodes_wait_timout' is never read"),
    "extra_var_handover_stepp": (lambda c: _rename(_template(c, "playbooks/handover.yml", "2")["extra_vars"],
                                                   "handover_step", "handover_stepp"),
                                 "extra var 'handover_stepp' is never read"),
    "extra_var_bad_choice": (lambda c: _template(c, "playbooks/handover.yml", "3")["extra_vars"].update(
        handover_step="4"), "handover_step='4' is not one of"),
    "credential_input_acess_key": (lambda c: _rename(_credential(c, "RHOAI demo S3")["inputs"], "access_key",
                                                     "acess_key"), "input 'acess_key' is not an input"),
    "credential_field_id_typo": (lambda c: _s3_type(c)["inputs"]["fields"][0].update(id="acess_key"),
                                 "references undefined input 'access_key'"),
    "injector_secert_key": (lambda c: _s3_type(c)["injectors"]["extra_vars"].update(
        gpuaas_s3_secret_key="{% raw %}{{ secert_key }}{% endraw %}"), "undefined input 'secert_key'"),
    "injector_extra_var_not_read": (lambda c: _rename(_s3_type(c)["injectors"]["extra_vars"], "gpuaas_s3_access_key",
                                                      "gpuaas_s3_acess_key"),
                                    "credential 'RHOAI demo S3' 'gpuaas_s3_acess_key' is never read"),
    "credential_type_kind": (lambda c: _s3_type(c).update(kind="clod"), "kind 'clod' must be one of"),
    "input_field_secert": (lambda c: _rename(_s3_type(c)["inputs"]["fields"][1], "secret", "secert"),
                           "unknown key 'secert'"),
    "bearer_token_host_typo": (lambda c: _rename(_credential(c, "RHOAI demo cluster")["inputs"], "host", "hots"),
                               "input 'hots' is not an input"),
    "bearer_token_without_ca": (lambda c: _credential(c, "RHOAI demo cluster")["inputs"].pop("ssl_ca_cert"),
                                "verify_ssl without ssl_ca_cert"),
    "playbook_missing": (lambda c: _template(c, "playbooks/teardown.yml").update(playbook="playbooks/tear_down.yml"),
                         "playbook playbooks/tear_down.yml does not exist"),
    "inventory_source_path": (lambda c: c["controller_inventory_sources"][0].update(
        source_path="inventories/demo_aws/hosts.yml"), "source_path inventories/demo_aws/hosts.yml does not exist"),
    "inventory_source_pth": (lambda c: _rename(c["controller_inventory_sources"][0], "source_path", "source_pth"),
                             "unknown key 'source_pth'"),
    "project_scm_ulr": (lambda c: _rename(c["controller_projects"][0], "scm_url", "scm_ulr"), "unknown key 'scm_ulr'"),
    "ee_imgae": (lambda c: _rename(c["controller_execution_environments"][0], "image", "imgae"), "unknown key 'imgae'"),
    "variable_controller_template": (lambda c: c.update(controller_template=c.pop("controller_templates")),
                                     "unknown variable 'controller_template'"),
    "workflow_success_node": (lambda c: _rename(c["controller_workflows"][0]["workflow_nodes"][0]["related"],
                                                "success_nodes", "success_node"), "unknown key 'success_node'"),
    "workflow_template_name": (lambda c: c["controller_workflows"][0]["workflow_nodes"][0]["unified_job_template"]
                               .update(name="GPUaaS 1 Provision GPU node"), "no template 'GPUaaS 1 Provision GPU node'"),
    "workflow_ujt_type": (lambda c: c["controller_workflows"][0]["workflow_nodes"][0]["unified_job_template"]
                          .update(type="jobtemplate"), "type 'jobtemplate' is not one of"),
    "group_pod_spec_overide": (lambda c: _rename(_group(c), "pod_spec_override", "pod_spec_overide"),
                               "unknown key 'pod_spec_overide'"),
    "state_dir_not_on_volume": (_remount, "gpuaas_upload_state_dir=/var/lib/rhoai-gpuaas/upload-state is not on"),
    "upload_without_state_dir": (lambda c: _template(c, "playbooks/upload_model.yml")["extra_vars"].pop(
        "gpuaas_upload_state_dir"), "does not pass gpuaas_upload_state_dir"),
    "upload_without_group": (lambda c: _template(c, "playbooks/upload_model.yml").pop("instance_groups"),
                             "runs on no container group"),
    "group_not_defined": (lambda c: _template(c, "playbooks/upload_model.yml").update(instance_groups=["jobs"]),
                          "instance_groups 'jobs' is not defined"),
}


@pytest.mark.parametrize("case", sorted(MUTATIONS))
def test_mistake_is_named(case: str) -> None:
    cfg = copy.deepcopy(CFG)
    change, message = MUTATIONS[case]
    change(cfg)
    problems = config_problems(cfg)
    assert any(message in p for p in problems), f"{case}: no problem mentions {message!r}: {problems}"


def test_claim_outside_the_pods_namespace_is_named(tmp_path: Path) -> None:
    """The PVC must be created where the container group starts its pods."""
    (tmp_path / "aap" / "manifests").mkdir(parents=True)
    pvc = next(yaml.safe_load_all((ROOT / "aap" / "manifests" / "rhoai-gpuaas-cache-pvc.yaml").read_text()))
    pvc["metadata"]["namespace"] = "aap"
    (tmp_path / "aap" / "manifests" / "pvc.yaml").write_text(yaml.safe_dump(pvc))
    for name in ("playbooks", "collections", "inventories"):
        (tmp_path / name).symlink_to(ROOT / name)
    problems = storage_problems(copy.deepcopy(CFG), tmp_path)
    assert any("does not define in namespace 'rhoai-gpuaas-jobs'" in p for p in problems), problems


# --- the execution environment (issue 11 item 8) ---

@pytest.fixture(scope="module")
def ee_context(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`ansible-builder create`: the Containerfile and build context, generated without a container engine."""
    context = tmp_path_factory.mktemp("ee")
    builder = Path(sys.executable).parent / "ansible-builder"
    subprocess.run([str(builder), "create", "-f", str(ROOT / "aap" / "execution-environment.yml"), "-c", str(context),
                    "--output-filename", "Containerfile"], check=True, capture_output=True, text=True)
    return context


def _stages(containerfile: str) -> tuple[dict[str, str], dict[str, list[str]]]:
    """Global ARG defaults, and each stage's lines by stage name."""
    args: dict[str, str] = {}
    stages: dict[str, list[str]] = {}
    current = None
    for line in containerfile.splitlines():
        if m := re.match(r"FROM \S+ AS (\w+)", line):
            current = m.group(1)
            stages[current] = []
        elif current is None and (m := re.match(r'ARG (\w+)="(.*)"', line)):
            args[m.group(1)] = m.group(2)
        elif current:
            stages[current].append(line)
    return args, stages


def test_ee_uses_microdnf_and_the_base_images_ansible(ee_context: Path) -> None:
    containerfile = (ee_context / "Containerfile").read_text()
    args, stages = _stages(containerfile)
    assert args["PKGMGR"] == "/usr/bin/microdnf", "ansible-builder would call /usr/bin/dnf, which ee-minimal lacks"
    assert "ee-minimal-rhel9" in args["EE_BASE_IMAGE"]
    assert "ANSIBLE_INSTALL_REFS" not in containerfile, "a second ansible-core/ansible-runner would be pip-installed"
    for line in containerfile.splitlines():
        assert not re.search(r"pip install.*\bansible(-core|-runner)?\b", line), line
    requirements = (ee_context / "_build" / "requirements.txt").read_text().splitlines()
    names = {Requirement(r).name.lower() for r in requirements if r.strip() and not r.startswith("#")}
    assert not names & {"ansible", "ansible-core", "ansible-runner"}, names
    # The final image checks that the base image's ansible and the libraries share one interpreter.
    assert any("import ansible, ansible_runner, kubernetes, boto3, huggingface_hub" in l for l in stages["final"])


def test_ee_assemble_step_runs_microdnf(ee_context: Path) -> None:
    """The builder stage passes PKGMGR to the assemble script, whose own selection then picks microdnf."""
    args, stages = _stages((ee_context / "Containerfile").read_text())
    builder = stages["builder"]
    assert "ARG PKGMGR" in builder and builder.index("ARG PKGMGR") < builder.index("RUN /output/scripts/assemble")
    final = stages["final"]
    assert "ARG PKGMGR" in final
    assert final.index("ARG PKGMGR") < next(i for i, l in enumerate(final) if "install-from-bindep" in l)
    script = (ee_context / "_build" / "scripts" / "assemble").read_text()
    start = script.index('PKGMGR="${PKGMGR:-}"')
    end = script.index("mkdir -p /output/bindep")
    selection = script[start:end] + 'echo "$PKGMGR|$PKGMGR_OPTS"\n'
    out = subprocess.run(["bash", "-c", selection], env={"PKGMGR": args["PKGMGR"], "PATH": "/usr/bin:/bin"},
                         capture_output=True, text=True, check=True).stdout.strip()
    assert out == "/usr/bin/microdnf|--nodocs --setopt install_weak_deps=0"


def test_ee_python_requirements_admit_the_tested_versions() -> None:
    """The EE may install the versions `make test` runs the modules with (requirements-dev.txt)."""
    tested = {}
    for line in (ROOT / "requirements-dev.txt").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            req = Requirement(line.split("#")[0].strip())
            tested[req.name.lower().replace("_", "-")] = next(iter(req.specifier)).version
    for line in (ROOT / "aap" / "requirements.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            req = Requirement(line)
            name = req.name.lower().replace("_", "-")
            assert name in tested, f"aap/requirements.txt: {name} is not tested (not pinned in requirements-dev.txt)"
            assert req.specifier.contains(tested[name]), f"aap/requirements.txt {line} excludes tested {tested[name]}"
