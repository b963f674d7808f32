"""rhoai.gpuaas.minio_upload against the testbed's S3 store, run through `ansible` like a user would."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from _s3_helpers import (MiB, bucket_exists, client, closed_port, kill_when, module_args, purge, run_raw, sha256_file,
                         snapshot, unique_bucket, uploads, write_random)

pytestmark = pytest.mark.integration
PART = 5 * MiB


@pytest.fixture
def s3(s3_env: dict[str, str]) -> Any:
    return client(s3_env)


@pytest.fixture
def bucket(s3: Any) -> Iterator[str]:
    name = unique_bucket()
    s3.create_bucket(Bucket=name)
    yield name
    purge(s3, name)


@pytest.fixture
def cache_env(tmp_path: Path) -> dict[str, str]:
    """A private resume journal per test (the module keeps it under $XDG_CACHE_HOME)."""
    return {"XDG_CACHE_HOME": str(tmp_path / "xdg-cache")}


@pytest.fixture
def model(tmp_path: Path) -> Path:
    """Two shards larger than the 5 MiB part size, and small JSON files."""
    root = tmp_path / "model"
    write_random(root / "model-00001-of-00002.safetensors", 3 * PART + 123)
    write_random(root / "model-00002-of-00002.safetensors", PART + 7)
    (root / "config.json").write_text(json.dumps({"architectures": ["MistralForCausalLM"]}))
    (root / "tokenizer" / "tokenizer.json").parent.mkdir()
    (root / "tokenizer" / "tokenizer.json").write_text('{"version": "1.0"}')
    return root


def expected_keys(root: Path, prefix: str) -> dict[str, Path]:
    return {prefix + str(p.relative_to(root)): p for p in sorted(root.rglob("*")) if p.is_file()}


def assert_mirrors(s3: Any, bucket: str, root: Path, prefix: str) -> dict[str, dict[str, Any]]:
    remote = snapshot(s3, bucket, prefix)
    local = expected_keys(root, prefix)
    assert sorted(remote) == sorted(local)
    for key, path in local.items():
        assert remote[key]["size"] == path.stat().st_size, key
        assert remote[key]["sha256"] == sha256_file(path), key
    return remote


def test_multipart_upload_then_idempotent_rerun(run_module: Callable[..., dict], s3_env: dict, s3: Any, bucket: str,
                                               model: Path, cache_env: dict) -> None:
    args = module_args(s3_env, src=str(model), bucket=bucket, prefix="mistral", part_size="5MiB", concurrency=4)
    first = run_module("minio_upload", args, extra_env=cache_env)
    assert first["changed"] is True
    assert (first["uploaded"], first["unchanged"], first["deleted"]) == (4, 0, 0)
    assert first["bytes"] == sum(p.stat().st_size for p in model.rglob("*") if p.is_file())
    assert first["mb_per_s"] > 0 and first["seconds"] > 0
    assert {f["key"]: f["action"] for f in first["files"]} == {k: "upload" for k in expected_keys(model, "mistral/")}
    before = assert_mirrors(s3, bucket, model, "mistral/")
    assert before["mistral/model-00001-of-00002.safetensors"]["etag"].strip('"').endswith("-4")
    assert not before["mistral/config.json"]["etag"].strip('"').count("-")

    second = run_module("minio_upload", args, extra_env=cache_env)
    assert second["changed"] is False
    assert (second["uploaded"], second["unchanged"], second["bytes"]) == (0, 4, 0)
    assert snapshot(s3, bucket, "mistral/") == before  # same ETag and LastModified: nothing was PUT


def test_only_the_changed_file_is_uploaded(run_module: Callable[..., dict], s3_env: dict, s3: Any, bucket: str,
                                           model: Path, cache_env: dict) -> None:
    args = module_args(s3_env, src=str(model), bucket=bucket, prefix="m", part_size="5MiB")
    run_module("minio_upload", args, extra_env=cache_env)
    before = snapshot(s3, bucket, "m/")
    (model / "config.json").write_text(json.dumps({"architectures": ["Changed"]}))
    result = run_module("minio_upload", args, extra_env=cache_env)
    assert result["changed"] is True and result["uploaded"] == 1 and result["unchanged"] == 3
    after = assert_mirrors(s3, bucket, model, "m/")
    changed = {key for key in after if after[key] != before[key]}
    assert changed == {"m/config.json"}


def test_check_mode_and_diff_report_the_plan_without_writing(run_module: Callable[..., dict], s3_env: dict, s3: Any,
                                                             bucket: str, model: Path) -> None:
    s3.put_object(Bucket=bucket, Key="m/old.bin", Body=b"old")
    args = module_args(s3_env, src=str(model), bucket=bucket, prefix="m", delete=True)
    result = run_module("minio_upload", args, check=True, diff=True)
    assert result["changed"] is True and result["uploaded"] == 4 and result["deleted"] == 1
    assert list(snapshot(s3, bucket)) == ["m/old.bin"]
    diff = result["diff"]
    assert "m/old.bin size=3" in diff["before"]
    assert "m/config.json size=" in diff["after"] and "m/old.bin" not in diff["after"]


def test_delete_removes_only_extra_keys_under_prefix(run_module: Callable[..., dict], s3_env: dict, s3: Any,
                                                     bucket: str, model: Path, cache_env: dict) -> None:
    s3.put_object(Bucket=bucket, Key="m/stale.safetensors", Body=b"stale")
    s3.put_object(Bucket=bucket, Key="other/keep.json", Body=b"{}")
    result = run_module("minio_upload", module_args(s3_env, src=str(model), bucket=bucket, prefix="m", delete=True),
                        extra_env=cache_env)
    assert result["deleted"] == 1
    assert {"key": "m/stale.safetensors", "action": "delete", "size": 5, "reason": "absent from source"} in result["files"]
    assert_mirrors(s3, bucket, model, "m/")
    assert "other/keep.json" in snapshot(s3, bucket, "other/")


def test_interrupted_upload_is_resumed_and_verified(run_module: Callable[..., dict], s3_env: dict, s3: Any,
                                                    bucket: str, tmp_path: Path, cache_env: dict) -> None:
    root = tmp_path / "big"
    write_random(root / "shard.bin", 48 * PART + 11)
    (root / "config.json").write_text("{}")
    args = module_args(s3_env, src=str(root), bucket=bucket, prefix="big", part_size="5MiB", concurrency=1)

    def two_parts_held() -> bool:
        pending = uploads(s3, bucket)
        return bool(pending) and len(s3.list_parts(Bucket=bucket, Key=pending[0]["Key"],
                                                   UploadId=pending[0]["UploadId"]).get("Parts", [])) >= 2

    assert kill_when("minio_upload", args, two_parts_held, **cache_env), "the upload finished before it could be killed"
    assert "big/shard.bin" not in snapshot(s3, bucket, "big/")  # an unfinished object is never visible
    assert len(uploads(s3, bucket)) == 1

    result = run_module("minio_upload", args, extra_env=cache_env)
    shard = next(f for f in result["files"] if f["key"] == "big/shard.bin")
    assert shard["reason"] == "resumed" and result["resumed"] == 1
    assert result["reused_bytes"] >= 2 * PART
    assert result["bytes"] <= (root / "shard.bin").stat().st_size - 2 * PART + 2
    assert_mirrors(s3, bucket, root, "big/")
    assert uploads(s3, bucket) == []


def test_missing_bucket_fails_naming_create_bucket(run_module: Callable[..., dict], s3_env: dict, s3: Any,
                                                    model: Path) -> None:
    name = unique_bucket()
    result = run_module("minio_upload", module_args(s3_env, src=str(model), bucket=name), expect_fail=True)
    assert f"bucket {name} does not exist" in result["msg"] and "create_bucket: true" in result["msg"]
    assert not bucket_exists(s3, name)


def test_create_bucket(run_module: Callable[..., dict], s3_env: dict, s3: Any, model: Path) -> None:
    name = unique_bucket()
    try:
        result = run_module("minio_upload", module_args(s3_env, src=str(model), bucket=name, create_bucket=True))
        assert result["bucket_created"] is True and result["uploaded"] == 4
    finally:
        purge(s3, name)


def rejects_bad_credentials(s3_env: dict) -> bool:
    bad = client(s3_env, AWS_SECRET_ACCESS_KEY="wrong-" + s3_env["AWS_SECRET_ACCESS_KEY"])
    try:
        bad.list_buckets()
        return False
    except bad.exceptions.ClientError:
        return True


@pytest.mark.parametrize("field,fix", [("secret_key", "check secret_key"), ("access_key", "check access_key")])
def test_bad_credentials_name_the_parameter(run_module: Callable[..., dict], s3_env: dict, s3: Any, bucket: str,
                                            model: Path, field: str, fix: str) -> None:
    if not rejects_bad_credentials(s3_env):
        pytest.skip("this S3 server does not check credentials")
    args = module_args(s3_env, src=str(model), bucket=bucket)
    args[field] = "WRONG" + args[field][::-1]
    result = run_module("minio_upload", args, expect_fail=True)
    assert fix in result["msg"] or "access denied" in result["msg"], result["msg"]
    assert snapshot(s3, bucket) == {}


def test_unreachable_endpoint_names_endpoint_url(run_module: Callable[..., dict], s3_env: dict, model: Path) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    result = run_module("minio_upload", module_args(s3_env, src=str(model), bucket="any", endpoint_url=url), expect_fail=True)
    assert f"cannot connect to endpoint_url {url}" in result["msg"] and "check endpoint_url" in result["msg"]


def test_missing_source_fails_before_touching_s3(run_module: Callable[..., dict], s3_env: dict, s3: Any, bucket: str,
                                                 tmp_path: Path) -> None:
    result = run_module("minio_upload", module_args(s3_env, src=str(tmp_path / "nope"), bucket=bucket, delete=True),
                        expect_fail=True)
    assert "does not exist: set src" in result["msg"]
    assert snapshot(s3, bucket) == {}


def test_secrets_never_in_result_or_verbose_output(run_module: Callable[..., dict], s3_env: dict, bucket: str,
                                                  model: Path, cache_env: dict) -> None:
    secret = s3_env["AWS_SECRET_ACCESS_KEY"]
    result = run_module("minio_upload", module_args(s3_env, src=str(model), bucket=bucket, prefix="p"), extra_env=cache_env)
    assert secret not in json.dumps(result)
    # credentials from the data-connection variables instead of parameters, verbose, success and failure
    env = {**cache_env, **s3_env}
    ok = run_raw("minio_upload", {"src": str(model), "bucket": bucket, "prefix": "p"}, "-vvv", **env)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert '"changed": false' in ok.stdout
    bad = run_raw("minio_upload", {"src": str(model), "bucket": unique_bucket(), "prefix": "p"}, "-vvv", **env)
    assert bad.returncode != 0 and "create_bucket" in bad.stdout + bad.stderr
    for proc in (ok, bad):
        assert secret not in proc.stdout + proc.stderr


def test_hf_snapshot_from_offline_cache(run_module: Callable[..., dict], s3_env: dict, s3: Any, bucket: str,
                                        tmp_path: Path, cache_env: dict) -> None:
    commit = "0123456789abcdef0123456789abcdef01234567"
    storage = tmp_path / "hf" / "models--org--tiny"
    (storage / "refs").mkdir(parents=True)
    (storage / "refs" / "main").write_text(commit)
    snapshot_dir = storage / "snapshots" / commit
    snapshot_dir.mkdir(parents=True)
    (storage / "blobs").mkdir()
    for name, content in (("config.json", b"{}"), ("model.safetensors", b"w" * 1000), ("README.md", b"# tiny")):
        blob = storage / "blobs" / hashlib.sha256(content).hexdigest()
        blob.write_bytes(content)
        (snapshot_dir / name).symlink_to(blob)
    args = module_args(s3_env, hf_repo="org/tiny", hf_cache_dir=str(tmp_path / "hf"), bucket=bucket, prefix="tiny",
                       exclude=["*.md"])
    result = run_module("minio_upload", args, extra_env={**cache_env, "HF_HUB_OFFLINE": "1"})
    assert sorted(f["key"] for f in result["files"]) == ["tiny/config.json", "tiny/model.safetensors"]
    assert snapshot(s3, bucket, "tiny/")["tiny/model.safetensors"]["sha256"] == hashlib.sha256(b"w" * 1000).hexdigest()


def test_progress_file(run_module: Callable[..., dict], s3_env: dict, bucket: str, model: Path, tmp_path: Path,
                       cache_env: dict) -> None:
    path = tmp_path / "progress.json"
    run_module("minio_upload", module_args(s3_env, src=str(model), bucket=bucket, part_size="5MiB",
                                           progress_file=str(path)), extra_env=cache_env)
    progress = json.loads(path.read_text())
    assert progress["phase"] == "done"
    assert progress["bytes_done"] == progress["bytes_total"] > 0
    assert progress["files_done"] == progress["files_total"] == 4


def test_tls_is_verified_against_ca_bundle(run_module: Callable[..., dict], s3_env: dict, s3: Any, bucket: str,
                                           model: Path) -> None:
    """The testbed's HTTPS endpoint is signed by the testbed CA: unknown to the system store."""
    https = module_args(s3_env, src=str(model), bucket=bucket, endpoint_url=s3_env["AWS_S3_ENDPOINT_HTTPS"])
    refused = run_module("minio_upload", https, expect_fail=True)
    assert "ca_bundle" in refused["msg"] and "validate_certs" in refused["msg"], refused["msg"]
    assert snapshot(s3, bucket) == {}

    wrong_ca = run_module("minio_upload", {**https, "ca_bundle": certifi_bundle()}, expect_fail=True)
    assert "ca_bundle" in wrong_ca["msg"], wrong_ca["msg"]
    assert snapshot(s3, bucket) == {}

    trusted = run_module("minio_upload", {**https, "ca_bundle": s3_env["AWS_CA_BUNDLE_TESTBED"]})
    assert trusted["uploaded"] == 4 and len(snapshot(s3, bucket)) == 4


def certifi_bundle() -> str:
    """A real CA bundle that does not contain the testbed's CA."""
    import certifi
    return certifi.where()
