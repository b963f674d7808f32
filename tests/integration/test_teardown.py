"""The teardown role rerun after a partial provision or a hand cleanup: GPUs cost money, so the MachineSets
that exist still go to 0 and a missing one is named, not an error."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from _machinesets import NAMESPACE, create_machineset, delete_machinesets, get_machineset, nodes_of, unique_name
from _poll import wait_for
from conftest import BIN, ROOT, ansible_env

pytestmark = pytest.mark.integration


def test_teardown_scales_what_exists_to_zero_and_names_what_does_not(
        k8s: client.ApiClient, kubeconfig: str, tmp_path: Path) -> None:
    present, absent = unique_name("td-g6-4xlarge"), unique_name("td-gone")
    create_machineset(k8s, present, "g6.4xlarge", replicas=1)
    try:
        wait_for(f"a Node of {present}", lambda: nodes_of(k8s, present), timeout=120)
        entries = [{"name": name, "instance_type": "g6.4xlarge", "gpus": 1, "availability_zone": "us-east-1a"}
                   for name in (absent, present)]
        play = tmp_path / "teardown.yml"
        play.write_text(yaml.safe_dump([{"hosts": "localhost", "gather_facts": False,
                                         "roles": [{"role": "rhoai.gpuaas.teardown"}]}]))
        extra = tmp_path / "vars.json"
        extra.write_text(json.dumps({"teardown_kubeconfig": kubeconfig, "teardown_models": [],
                                     "teardown_machinesets": entries, "teardown_name_from_infrastructure": False,
                                     "teardown_wait_timeout": 120}))
        env = ansible_env(None)
        env.pop("ANSIBLE_STDOUT_CALLBACK")
        run = subprocess.run([str(BIN / "ansible-playbook"), "-i", "inventories/local", str(play),
                              "-e", f"@{extra}"], capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
        assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
        assert f"Not scaled, no such MachineSet in {NAMESPACE}: {absent}" in run.stdout, run.stdout[-4000:]
        assert get_machineset(k8s, present)["spec"]["replicas"] == 0
        assert nodes_of(k8s, present) == []  # the role waited for the node to go
    finally:
        delete_machinesets(k8s, [present])
