"""The upload as the demo's inventory runs it: what lands in S3 is what vLLM will load, and nothing more."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

import _s3_helpers as s3h
from conftest import ROOT, run_playbook

MODEL = "mistral-3-bf16"


@pytest.fixture
def bucket(s3_env: dict[str, str]) -> Iterator[tuple[Any, str]]:
    s3, name = s3h.client(s3_env), s3h.unique_bucket()
    try:
        yield s3, name
    finally:
        s3h.purge(s3, name)


def test_the_demo_upload_leaves_out_mistrals_consolidated_copy(bucket: tuple[Any, str], tmp_path: Path) -> None:
    """Mistral's repository holds the weights twice; the demo uploads the sharded files vLLM loads."""
    s3, name = bucket
    cache = Path(os.environ.get("TESTBED_STATE", ROOT / ".testbed")) / "hf-cache"
    repo = cache / "models--mistralai--Mistral-Small-24B-Instruct-2501"
    snapshot = repo / "snapshots" / (repo / "refs" / "main").read_text().strip()
    source = sorted(p.name for p in snapshot.iterdir())
    assert "consolidated.safetensors" in source, "the stand-in (make model) must hold both copies, as the repository does"

    models = yaml.safe_load((ROOT / "inventories" / "local" / "group_vars" / "all" / "demo.yml").read_text())["gpuaas_models"]
    demo = next(m for m in models if m["name"] == MODEL)
    demo["storage_uri"] = f"s3://{name}/mistral-small-24b/"
    extra = tmp_path / "one-model.json"
    extra.write_text(json.dumps({"gpuaas_models": [demo]}))
    run = run_playbook("upload_model.yml", "-e", f"@{extra}", timeout=600)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]

    uploaded = sorted(key.rsplit("/", 1)[-1] for key in s3h.snapshot(s3, name, "mistral-small-24b/"))
    assert uploaded == [f for f in source if f != "consolidated.safetensors"]
    index = json.loads((snapshot / "model.safetensors.index.json").read_text())
    assert set(index["weight_map"].values()) <= set(uploaded), "every shard the index names is uploaded"
