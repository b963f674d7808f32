"""rhoai.gpuaas.minio_upload against the testbed's S3 store, run through `ansible` like a user would.

Bad input (wrong types, missing objects, unreachable endpoints, ...) is in test_bad_inputs.py.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import time
import zlib
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

import testbed
from _poll import wait_for
from _s3_helpers import (MiB, bucket_exists, client, download_sha256, kill_tree, kill_when, module_args,
                         purge, result_of, run_raw, sha256_file, snapshot, start_module, unique_bucket, uploads,
                         wait_settled, write_random)
from processes import pid_of, start, stop, wait_healthy

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
def state(tmp_path: Path) -> str:
    """A private state_dir per test: resume records and digest cache."""
    return str(tmp_path / "state")


@pytest.fixture
def cache_env(tmp_path: Path) -> dict[str, str]:
    """Without state_dir the module keeps its state under $XDG_CACHE_HOME: a private one per test."""
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
    assert first["mb_per_s"] > 0 and first["elapsed"] > 0
    assert first["state_dir"] == str(Path(cache_env["XDG_CACHE_HOME"]) / "rhoai.gpuaas" / "minio_upload")
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
                                                             bucket: str, model: Path, state: str) -> None:
    s3.put_object(Bucket=bucket, Key="m/old.bin", Body=b"old")
    s3.put_object(Bucket=bucket, Key="m/config.json", Body=b"{}")
    before = snapshot(s3, bucket)
    args = module_args(s3_env, src=str(model), bucket=bucket, prefix="m", delete=True, state_dir=state)
    result = run_module("minio_upload", args, check=True, diff=True)
    assert result["changed"] is True and result["uploaded"] == 4 and result["deleted"] == 1
    assert snapshot(s3, bucket) == before  # same keys, ETags and LastModified
    assert not Path(state).exists()
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
                                                    bucket: str, tmp_path: Path, state: str) -> None:
    root = tmp_path / "big"
    write_random(root / "shard.bin", 48 * PART + 11)
    (root / "config.json").write_text("{}")
    args = module_args(s3_env, src=str(root), bucket=bucket, prefix="big", part_size="5MiB", concurrency=1, state_dir=state)

    def two_parts_held() -> bool:
        pending = uploads(s3, bucket)
        return bool(pending) and len(s3.list_parts(Bucket=bucket, Key=pending[0]["Key"],
                                                   UploadId=pending[0]["UploadId"]).get("Parts", [])) >= 2

    assert kill_when("minio_upload", args, two_parts_held), "the upload finished before it could be killed"
    assert len(list(Path(state).glob("*.json"))) == 1  # the resume record is in state_dir
    assert "big/shard.bin" not in snapshot(s3, bucket, "big/")  # an unfinished object is never visible
    assert len(uploads(s3, bucket)) == 1

    result = run_module("minio_upload", args)
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
    args = module_args(s3_env, src=str(model), bucket=name, create_bucket=True)
    try:
        check = run_module("minio_upload", args, check=True)
        assert (check["changed"], check["bucket_created"], check["uploaded"]) == (True, True, 4)
        assert not bucket_exists(s3, name)
        result = run_module("minio_upload", args)
        assert result["bucket_created"] is True and result["uploaded"] == 4
        assert len(snapshot(s3, name)) == 4
    finally:
        purge(s3, name)


def test_check_mode_leaves_a_stale_multipart_upload_alone(run_module: Callable[..., dict], s3_env: dict, s3: Any,
                                                         bucket: str, model: Path, state: str) -> None:
    key = "m/model-00001-of-00002.safetensors"
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=1, Body=os.urandom(PART))
    parts = s3.list_parts(Bucket=bucket, Key=key, UploadId=upload_id)["Parts"]
    args = module_args(s3_env, src=str(model), bucket=bucket, prefix="m", part_size="5MiB", state_dir=state)
    result = run_module("minio_upload", args, check=True)
    assert result["aborted_uploads"] == 1 and result["changed"] is True
    assert [u["UploadId"] for u in uploads(s3, bucket)] == [upload_id]
    assert s3.list_parts(Bucket=bucket, Key=key, UploadId=upload_id)["Parts"] == parts
    assert snapshot(s3, bucket) == {}
    done = run_module("minio_upload", args)  # a real run aborts it: ours would have a journal record
    assert done["aborted_uploads"] == 1 and uploads(s3, bucket) == []


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
    result = run_module("minio_upload", module_args(s3_env, src=str(model), bucket=bucket, part_size="5MiB",
                                                    progress_file=str(path)), extra_env=cache_env)
    assert result["state_dir"] == str(Path(cache_env["XDG_CACHE_HOME"]) / "rhoai.gpuaas" / "minio_upload")
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


def part_crc32s(path: Path, part: int) -> list[bytes]:
    crcs = []
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(part), b""):
            crcs.append((zlib.crc32(block) & 0xFFFFFFFF).to_bytes(4, "big"))
    return crcs


def test_the_server_verifies_and_keeps_the_crc32_of_every_part(run_module: Callable[..., dict], s3_env: dict, s3: Any,
                                                               bucket: str, model: Path, state: str) -> None:
    args = module_args(s3_env, src=str(model), bucket=bucket, prefix="m", part_size="5MiB", state_dir=state)
    result = run_module("minio_upload", args)
    assert result["checksum"] == "crc32"   # SeaweedFS answered every CRC32: no fallback to Content-MD5
    shard = model / "model-00001-of-00002.safetensors"
    head = s3.head_object(Bucket=bucket, Key="m/" + shard.name, ChecksumMode="ENABLED")
    crcs = part_crc32s(shard, PART)
    composite = base64.b64encode((zlib.crc32(b"".join(crcs)) & 0xFFFFFFFF).to_bytes(4, "big")).decode()
    assert head["ChecksumCRC32"].split("-")[0] == composite
    assert_mirrors(s3, bucket, model, "m/")


def test_request_checksum_md5_uploads_the_same_objects(run_module: Callable[..., dict], s3_env: dict, s3: Any,
                                                      bucket: str, model: Path, state: str) -> None:
    args = module_args(s3_env, src=str(model), bucket=bucket, prefix="m", part_size="5MiB", state_dir=state,
                       request_checksum="md5")
    assert run_module("minio_upload", args)["checksum"] == "md5"
    assert_mirrors(s3, bucket, model, "m/")
    crc = run_module("minio_upload", {**args, "request_checksum": "crc32"})
    assert crc["changed"] is False   # the same content, whichever checksum carried it


def test_an_unchanged_rerun_hashes_nothing(run_module: Callable[..., dict], s3_env: dict, s3: Any, bucket: str,
                                           model: Path, state: str) -> None:
    wait_settled(model)
    args = module_args(s3_env, src=str(model), bucket=bucket, prefix="m", part_size="5MiB", state_dir=state)
    first = run_module("minio_upload", args)
    total = sum(p.stat().st_size for p in model.rglob("*") if p.is_file())
    assert first["uploaded"] == 4 and first["hashed_bytes"] == total   # each file read once before it is sent
    assert len(list((Path(state) / "digests").iterdir())) == 4
    second = run_module("minio_upload", args)
    assert (second["changed"], second["unchanged"], second["hashed_bytes"]) == (False, 4, 0)


def test_an_edit_that_puts_the_mtime_back_is_uploaded(run_module: Callable[..., dict], s3_env: dict, s3: Any,
                                                      bucket: str, model: Path, state: str) -> None:
    wait_settled(model)
    args = module_args(s3_env, src=str(model), bucket=bucket, prefix="m", part_size="5MiB", state_dir=state)
    run_module("minio_upload", args)
    shard = model / "model-00002-of-00002.safetensors"
    stat = shard.stat()
    with open(shard, "r+b") as handle:
        handle.seek(PART // 2)
        byte = handle.read(1)
        handle.seek(PART // 2)
        handle.write(bytes([byte[0] ^ 0xFF]))
    os.utime(shard, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert (shard.stat().st_size, shard.stat().st_mtime_ns) == (stat.st_size, stat.st_mtime_ns)
    result = run_module("minio_upload", args)
    assert [(f["key"], f["reason"]) for f in result["files"] if f["action"] == "upload"] == [("m/" + shard.name, "content")]
    assert result["hashed_bytes"] == stat.st_size   # only the edited file was read
    assert_mirrors(s3, bucket, model, "m/")


def test_compare_size_mtime_is_s5cmds_rule(run_module: Callable[..., dict], s3_env: dict, s3: Any, bucket: str,
                                           model: Path, state: str) -> None:
    args = module_args(s3_env, src=str(model), bucket=bucket, prefix="m", part_size="5MiB", state_dir=state,
                       compare="size_mtime")
    run_module("minio_upload", args)
    before = snapshot(s3, bucket, "m/")
    rerun = run_module("minio_upload", args)
    assert (rerun["changed"], rerun["hashed_bytes"]) == (False, 0)
    config = model / "config.json"
    config.write_text(config.read_text().replace("Mistral", "Mixtral"))   # same size, newer
    newer = run_module("minio_upload", args)
    assert [(f["key"], f["reason"]) for f in newer["files"] if f["action"] == "upload"] == [("m/config.json", "newer")]
    after = assert_mirrors(s3, bucket, model, "m/")
    assert {k for k in after if after[k] != before[k]} == {"m/config.json"}


def restore(comp: Any) -> None:
    """Start the component again if it is down, and wait until it answers."""
    if pid_of(testbed.RUN, comp.name) is None:
        start(testbed.RUN, testbed.LOGS, comp)
        wait_healthy(comp, time.monotonic() + 120, testbed.RUN)


@pytest.fixture
def s3_component() -> Iterator[Any]:
    """The testbed's S3 server; whatever a test does to it, it is running again afterwards."""
    comp = next(c for c in testbed.components() if c.name == "s3")
    try:
        yield comp
    finally:
        restore(comp)


def accepts_writes(s3: Any, bucket: str) -> bool:
    try:
        s3.put_object(Bucket=bucket, Key="probe/x", Body=b"x")
        s3.delete_object(Bucket=bucket, Key="probe/x")
        return True
    except Exception:  # noqa: BLE001 - any failure means "not yet"
        return False


def test_s3_server_killed_during_a_multipart_upload_then_resumed(run_module: Callable[..., dict], s3_env: dict,
                                                                 s3: Any, bucket: str, tmp_path: Path, state: str,
                                                                 s3_component: Any) -> None:
    root = tmp_path / "big"
    write_random(root / "model-00001-of-00002.safetensors", 40 * PART + 11)
    write_random(root / "model-00002-of-00002.safetensors", 20 * PART)
    (root / "config.json").write_text('{"architectures": ["MistralForCausalLM"]}')
    args = module_args(s3_env, src=str(root), bucket=bucket, prefix="big", part_size="5MiB", concurrency=2, state_dir=state)

    def parts_held() -> int:
        pending = uploads(s3, bucket)
        return sum(len(s3.list_parts(Bucket=bucket, Key=u["Key"], UploadId=u["UploadId"]).get("Parts", [])) for u in pending)

    proc = start_module("minio_upload", args)
    try:
        wait_for("the upload to hold 3 parts", lambda: parts_held() >= 3 or proc.poll() is not None, timeout=120)
        assert proc.poll() is None, "the upload finished before the server could be killed"
        stop(testbed.RUN, s3_component.name, grace=0)   # SIGKILL: no graceful shutdown
        out, err = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            kill_tree(proc.pid)
            proc.wait()
    restore(s3_component)
    failed = result_of(out, err)
    assert proc.returncode != 0 and failed["failed"] is True
    assert "endpoint_url" in failed["msg"] and "Traceback" not in out + err, failed["msg"]
    assert s3_env["AWS_SECRET_ACCESS_KEY"] not in out + err
    wait_for("the restarted S3 server to accept writes", lambda: accepts_writes(s3, bucket), timeout=120)
    assert "big/model-00001-of-00002.safetensors" not in snapshot(s3, bucket, "big/")

    result = run_module("minio_upload", args)
    assert result["resumed"] >= 1 and result["reused_bytes"] > 0
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        key = "big/" + path.name
        assert download_sha256(s3, bucket, key) == sha256_file(path), key
    assert uploads(s3, bucket) == []
