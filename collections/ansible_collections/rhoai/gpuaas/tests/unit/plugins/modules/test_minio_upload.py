# -*- coding: utf-8 -*-
"""rhoai.gpuaas.minio_upload as Ansible runs it: argument handling, check mode, diff and error mapping.

``main()`` runs with real AnsibleModule argument parsing; only the S3 client is the in-memory
fake, which checks every body's checksum. The result is read from what the module prints.
"""

from __future__ import annotations

import json
import os

import pytest

from ansible_collections.rhoai.gpuaas.plugins.module_utils import s3_transfer
from ansible_collections.rhoai.gpuaas.plugins.modules import minio_upload
from ansible_collections.rhoai.gpuaas.tests.unit.plugins.s3_fake import FakeS3, client_error

testing = pytest.importorskip("ansible.module_utils.testing")  # ansible-core >= 2.19
SECRET = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY"


@pytest.fixture
def fake(monkeypatch):
    fake = FakeS3(bucket="models")
    made = []

    def make_client(target, concurrency):
        made.append((target, concurrency))
        return fake
    monkeypatch.setattr(s3_transfer, "make_client", make_client)
    fake.made = made
    return fake


@pytest.fixture
def src(tmp_path):
    root = tmp_path / "model"
    root.mkdir()
    (root / "config.json").write_text('{"architectures": ["MistralForCausalLM"]}')
    (root / "model.safetensors").write_bytes(os.urandom(6 * 1024 * 1024))
    return root


def run(capsys, args, check=False, diff=False):
    args = dict(args)
    if check:
        args["_ansible_check_mode"] = True
    if diff:
        args["_ansible_diff"] = True
    with testing.patch_module_args(args):
        with pytest.raises(SystemExit):
            minio_upload.main()
    return json.loads(capsys.readouterr().out)


def base(src, tmp_path, **extra):
    args = {"src": str(src), "bucket": "models", "prefix": "mistral", "endpoint_url": "http://127.0.0.1:9",
            "access_key": "AKIDEXAMPLE", "secret_key": SECRET, "part_size": "5MiB", "state_dir": str(tmp_path / "state")}
    args.update(extra)
    return args


def test_upload_then_nothing_to_do(capsys, fake, src, tmp_path):
    first = run(capsys, base(src, tmp_path))
    assert first["changed"] is True and first["uploaded"] == 2
    assert (first["bucket"], first["prefix"], first["state_dir"]) == ("models", "mistral/", str(tmp_path / "state"))
    assert first["elapsed"] >= 0 and "seconds" not in first
    assert fake.objects[("models", "mistral/model.safetensors")]["body"] == (src / "model.safetensors").read_bytes()
    target, concurrency = fake.made[0]
    assert (target.endpoint_url, target.access_key, target.secret_key, concurrency) == (
        "http://127.0.0.1:9", "AKIDEXAMPLE", SECRET, 8)
    second = run(capsys, base(src, tmp_path))
    assert (second["changed"], second["uploaded"], second["unchanged"]) == (False, 0, 2)


def test_credentials_come_from_the_data_connection_variables(capsys, fake, src, tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_S3_ENDPOINT", "http://minio.example:9000")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKENV")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    args = base(src, tmp_path)
    for name in ("endpoint_url", "access_key", "secret_key"):
        del args[name]
    result = run(capsys, args)
    assert result["uploaded"] == 2
    target = fake.made[0][0]
    assert (target.endpoint_url, target.access_key, target.secret_key) == ("http://minio.example:9000", "AKENV", SECRET)
    assert SECRET not in json.dumps(result)


def test_check_mode_and_diff_write_nothing(capsys, fake, src, tmp_path):
    fake.put("mistral/old.bin", b"old")
    result = run(capsys, base(src, tmp_path, delete=True), check=True, diff=True)
    assert (result["changed"], result["uploaded"], result["deleted"]) == (True, 2, 1)
    assert fake.writes() == [] and list(fake.objects) == [("models", "mistral/old.bin")]
    assert "mistral/old.bin size=3" in result["diff"]["before"]
    assert "mistral/config.json size=" in result["diff"]["after"]
    assert not (tmp_path / "state").exists()   # check mode keeps no digests either


@pytest.mark.parametrize("args,message", [
    ({"concurrency": "eight"}, "concurrency"),
    ({"compare": "mtime"}, "compare"),
    ({"request_checksum": "sha1"}, "request_checksum"),
    ({"create_bucket": "perhaps"}, "create_bucket"),
    ({"hf_repo": "org/name"}, "mutually exclusive: src|hf_repo"),
    ({"bucket": None}, "bucket"),
    ({"concurrency": -1}, "concurrency must be between 1 and 256, got -1"),
    ({"part_size": "1MiB"}, "part_size must be between 5MiB and 5GiB"),
    ({"bucket": "Models_2"}, "fix bucket"),
    ({"prefix": "a//b"}, "fix prefix"),
    ({"endpoint_url": "minio:9000"}, "fix endpoint_url"),
])
def test_bad_arguments_fail_naming_the_option_before_any_call(capsys, fake, src, tmp_path, args, message):
    merged = base(src, tmp_path, **args)
    merged = {k: v for k, v in merged.items() if v is not None}
    result = run(capsys, merged)
    assert result["failed"] is True
    assert message in result["msg"], result["msg"]
    assert "exception" not in result and "Traceback" not in json.dumps(result)
    assert fake.calls == [] and fake.made == []


def test_a_missing_source_fails_before_any_call(capsys, fake, tmp_path):
    result = run(capsys, base(tmp_path / "nope", tmp_path, delete=True))
    assert result["failed"] is True and "does not exist: set src" in result["msg"]
    assert fake.calls == []


def test_server_errors_become_one_line_naming_the_option(capsys, fake, src, tmp_path):
    fake.buckets.clear()
    result = run(capsys, base(src, tmp_path))
    assert result["failed"] is True
    assert result["msg"] == ("listing s3://models/mistral/: bucket models does not exist at http://127.0.0.1:9: "
                             "create it or set create_bucket: true")
    assert "elapsed" in result and fake.writes() == []


def test_secrets_in_a_server_message_are_masked(capsys, fake, src, tmp_path):
    def refuse(**kwargs):
        raise client_error("InternalError", 500, "ListObjectsV2", "cannot sign for AKIDEXAMPLE with " + SECRET)
    fake.fail["list_objects_v2"] = refuse
    result = run(capsys, base(src, tmp_path))
    assert result["failed"] is True and "S3 error InternalError (HTTP 500)" in result["msg"]
    assert SECRET not in json.dumps(result) and "AKIDEXAMPLE" not in result["msg"]


def test_without_boto3_the_module_says_what_to_install(capsys, fake, src, tmp_path, monkeypatch):
    from ansible_collections.rhoai.gpuaas.plugins.module_utils import s3_upload
    monkeypatch.setattr(s3_upload, "HAS_BOTO3", False)
    result = run(capsys, base(src, tmp_path))
    assert result["failed"] is True and "boto3" in result["msg"] and fake.calls == []
