# -*- coding: utf-8 -*-
"""The upload engine against an in-memory S3 fake: skip, upload, resume, abort, delete, errors."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
from types import SimpleNamespace

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError, SSLError

from ansible_collections.rhoai.gpuaas.plugins.module_utils.s3_etag import multipart_etag
from ansible_collections.rhoai.gpuaas.plugins.module_utils.s3_plan import local_files
from ansible_collections.rhoai.gpuaas.plugins.module_utils.s3_transfer import (
    Journal,
    Options,
    Progress,
    S3UploadError,
    Target,
    Uploader,
    client_config,
    explain_error,
    matches_fingerprint,
    redact,
)

PART = 1024
WRITES = {"put_object", "create_multipart_upload", "upload_part", "complete_multipart_upload", "abort_multipart_upload",
          "delete_objects", "create_bucket"}


def client_error(code, status, op="Op"):
    return ClientError({"Error": {"Code": code, "Message": code + " message"}, "ResponseMetadata": {"HTTPStatusCode": status}}, op)


class FakeS3:
    """Enough of S3's semantics for the engine: md5 ETags, multipart ETags, metadata, pagination."""

    def __init__(self, bucket="bkt"):
        self.buckets = {bucket}
        self.objects = {}
        self.uploads = {}
        self.calls = []
        self.fail = {}
        self._ids = itertools.count(1)
        self.meta = SimpleNamespace(region_name="us-east-1")

    def _record(self, name, **kwargs):
        self.calls.append((name, kwargs.get("Key"), kwargs.get("PartNumber")))
        hook = self.fail.get(name)
        if hook is not None:
            hook(**kwargs)
        if kwargs.get("Bucket") not in self.buckets and name != "create_bucket":
            raise client_error("NoSuchBucket", 404, name)

    def writes(self):
        return [call for call in self.calls if call[0] in WRITES]

    def list_objects_v2(self, Bucket, Prefix="", ContinuationToken=None):
        self._record("list_objects_v2", Bucket=Bucket)
        keys = sorted(k for (b, k) in self.objects if b == Bucket and k.startswith(Prefix))
        start = int(ContinuationToken or 0)
        page = keys[start:start + 2]
        contents = [{"Key": k, "Size": len(self.objects[(Bucket, k)]["body"]), "ETag": '"%s"' % self.objects[(Bucket, k)]["etag"]}
                    for k in page]
        more = start + 2 < len(keys)
        return {"Contents": contents, "IsTruncated": more, "NextContinuationToken": str(start + 2) if more else None}

    def head_bucket(self, Bucket):
        if Bucket not in self.buckets:
            raise client_error("404", 404, "HeadBucket")

    def create_bucket(self, Bucket, **kwargs):
        self._record("create_bucket", Bucket=Bucket)
        self.buckets.add(Bucket)

    def head_object(self, Bucket, Key, PartNumber=None):
        self._record("head_object", Bucket=Bucket, Key=Key, PartNumber=PartNumber)
        obj = self.objects.get((Bucket, Key))
        if obj is None:
            raise client_error("404", 404, "HeadObject")
        length = len(obj["body"]) if not PartNumber else obj["parts"][PartNumber - 1]
        return {"ContentLength": length, "ETag": '"%s"' % obj["etag"], "Metadata": dict(obj["metadata"])}

    def put_object(self, Bucket, Key, Body, ContentMD5, Metadata, **extra):
        self._record("put_object", Bucket=Bucket, Key=Key)
        assert hashlib.md5(Body).digest() == __import__("base64").b64decode(ContentMD5)
        etag = hashlib.md5(Body).hexdigest()
        self.objects[(Bucket, Key)] = {"body": Body, "etag": etag, "metadata": Metadata, "parts": [len(Body)], "extra": extra}
        return {"ETag": '"%s"' % etag}

    def create_multipart_upload(self, Bucket, Key, Metadata, **extra):
        self._record("create_multipart_upload", Bucket=Bucket, Key=Key)
        upload_id = "u%d" % next(self._ids)
        self.uploads[upload_id] = {"Bucket": Bucket, "Key": Key, "Metadata": Metadata, "parts": {}, "Initiated": upload_id}
        return {"UploadId": upload_id}

    def upload_part(self, Bucket, Key, UploadId, PartNumber, Body, ContentMD5):
        self._record("upload_part", Bucket=Bucket, Key=Key, PartNumber=PartNumber)
        etag = hashlib.md5(Body).hexdigest()
        self.uploads[UploadId]["parts"][PartNumber] = Body
        return {"ETag": '"%s"' % etag}

    def list_multipart_uploads(self, Bucket, Prefix="", **kwargs):
        self._record("list_multipart_uploads", Bucket=Bucket)
        return {"Uploads": [{"Key": u["Key"], "UploadId": uid, "Initiated": u["Initiated"]} for uid, u in sorted(self.uploads.items())
                            if u["Bucket"] == Bucket and u["Key"].startswith(Prefix)], "IsTruncated": False}

    def list_parts(self, Bucket, Key, UploadId, **kwargs):
        self._record("list_parts", Bucket=Bucket, Key=Key)
        parts = self.uploads[UploadId]["parts"]
        return {"Parts": [{"PartNumber": n, "Size": len(b), "ETag": '"%s"' % hashlib.md5(b).hexdigest()} for n, b in sorted(parts.items())],
                "IsTruncated": False}

    def complete_multipart_upload(self, Bucket, Key, UploadId, MultipartUpload):
        self._record("complete_multipart_upload", Bucket=Bucket, Key=Key)
        upload = self.uploads.pop(UploadId)
        bodies = [upload["parts"][p["PartNumber"]] for p in MultipartUpload["Parts"]]
        etag = multipart_etag([hashlib.md5(b).digest() for b in bodies])
        self.objects[(Bucket, Key)] = {"body": b"".join(bodies), "etag": etag, "metadata": upload["Metadata"],
                                       "parts": [len(b) for b in bodies]}
        return {"ETag": '"%s"' % etag}

    def abort_multipart_upload(self, Bucket, Key, UploadId):
        self._record("abort_multipart_upload", Bucket=Bucket, Key=Key)
        self.uploads.pop(UploadId)

    def delete_objects(self, Bucket, Delete):
        self._record("delete_objects", Bucket=Bucket)
        for item in Delete["Objects"]:
            self.objects.pop((Bucket, item["Key"]), None)
        return {}


@pytest.fixture
def src(tmp_path):
    root = tmp_path / "src"
    (root / "sub").mkdir(parents=True)
    (root / "big.bin").write_bytes(os.urandom(5 * PART + 100))   # 6 parts
    (root / "sub" / "small.json").write_bytes(b'{"a": 1}')
    return root


@pytest.fixture
def env(tmp_path, src):
    fake = FakeS3()

    def run(check=False, delete=False, verify=True, fake_client=None, **opts):
        opts.setdefault("part_size", PART)
        options = Options(concurrency=3, verify=verify, delete=delete, check_mode=check,
                          state_dir=str(tmp_path / "state"), **opts)
        uploader = Uploader(Target(bucket="bkt", prefix="m/"), options, client=fake_client or fake)
        return uploader.run(local_files(str(src), "m/", [], []))
    return SimpleNamespace(fake=fake, run=run, src=src, state=tmp_path / "state")


def test_first_run_uploads_with_sha256_metadata(env):
    result = env.run()
    assert (result["uploaded"], result["unchanged"], result["changed"]) == (2, 0, True)
    big = env.fake.objects[("bkt", "m/big.bin")]
    data = (env.src / "big.bin").read_bytes()
    assert big["body"] == data
    assert big["metadata"] == {"sha256": hashlib.sha256(data).hexdigest(), "part-size": str(PART)}
    assert big["etag"].endswith("-6")
    assert env.fake.objects[("bkt", "m/sub/small.json")]["metadata"] == {"sha256": hashlib.sha256(b'{"a": 1}').hexdigest()}
    assert "ServerSideEncryption" not in env.fake.objects[("bkt", "m/sub/small.json")]["extra"]
    assert result["bytes"] == len(data) + 8
    assert not os.listdir(env.state)  # journal cleaned after completion


def test_second_run_is_unchanged_without_writes(env):
    env.run()
    env.fake.calls.clear()
    result = env.run()
    assert (result["changed"], result["uploaded"], result["unchanged"], result["bytes"]) == (False, 0, 2, 0)
    assert env.fake.writes() == []


def test_only_the_changed_file_is_uploaded(env):
    env.run()
    env.fake.calls.clear()
    (env.src / "sub" / "small.json").write_bytes(b'{"a": 2}')
    result = env.run()
    assert [(f["key"], f["action"], f["reason"]) for f in result["files"]] == [
        ("m/big.bin", "skip", "same"), ("m/sub/small.json", "upload", "content")]
    assert {call[1] for call in env.fake.writes()} == {"m/sub/small.json"}


def test_skip_uses_the_remote_layout_not_ours(env):
    env.run()
    env.fake.calls.clear()
    result = env.run(part_size=4 * PART)  # a different part size must not cause a re-upload
    assert result["changed"] is False


def test_layout_from_head_part_number_for_foreign_objects(env):
    env.run()
    del env.fake.objects[("bkt", "m/big.bin")]["metadata"]["part-size"]
    env.fake.calls.clear()
    assert env.run(verify=False)["changed"] is False
    assert ("head_object", "m/big.bin", 1) in env.fake.calls


def test_verify_reuploads_objects_without_sha256(env):
    env.run()
    env.fake.objects[("bkt", "m/sub/small.json")]["metadata"] = {}
    result = env.run()
    assert [f["reason"] for f in result["files"]] == ["same", "sha256"]
    assert env.run(verify=False)["changed"] is False


def test_check_mode_plans_without_writing(env):
    result = env.run(check=True)
    assert (result["changed"], result["uploaded"], result["bytes"]) == (True, 2, 5 * PART + 108)
    assert env.fake.writes() == []


def test_delete_removes_extra_keys_under_prefix_only(env):
    env.fake.objects[("bkt", "m/stale.bin")] = {"body": b"x", "etag": hashlib.md5(b"x").hexdigest(), "metadata": {}, "parts": [1]}
    env.fake.objects[("bkt", "other/keep.bin")] = {"body": b"x", "etag": hashlib.md5(b"x").hexdigest(), "metadata": {}, "parts": [1]}
    check = env.run(delete=True, check=True)
    assert check["deleted"] == 1 and ("bkt", "m/stale.bin") in env.fake.objects
    result = env.run(delete=True)
    assert result["deleted"] == 1
    assert {"key": "m/stale.bin", "action": "delete", "size": 1, "reason": "absent from source"} in result["files"]
    assert ("bkt", "m/stale.bin") not in env.fake.objects and ("bkt", "other/keep.bin") in env.fake.objects


def interrupt_after(fake, parts):
    seen = itertools.count(1)

    def hook(**kwargs):
        if next(seen) > parts:
            raise client_error("InternalError", 500, "UploadPart")
    fake.fail["upload_part"] = hook


def test_interrupted_upload_resumes_reusing_held_parts(env):
    interrupt_after(env.fake, 3)
    with pytest.raises(S3UploadError, match="uploading part"):
        env.run()
    assert ("bkt", "m/big.bin") not in env.fake.objects          # never visible half-done
    held = len(next(iter(env.fake.uploads.values()))["parts"])
    assert held >= 3
    env.fake.fail.clear()
    env.fake.calls.clear()
    result = env.run()
    big = next(f for f in result["files"] if f["key"] == "m/big.bin")
    assert big["reason"] == "resumed" and result["resumed"] == 1
    assert result["reused_bytes"] == held * PART
    sent_parts = [call[2] for call in env.fake.calls if call[0] == "upload_part"]
    assert len(sent_parts) == 6 - held
    data = (env.src / "big.bin").read_bytes()
    assert env.fake.objects[("bkt", "m/big.bin")]["body"] == data
    assert env.fake.objects[("bkt", "m/big.bin")]["metadata"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert env.fake.uploads == {}


def test_upload_of_other_content_is_aborted_not_resumed(env):
    interrupt_after(env.fake, 2)
    with pytest.raises(S3UploadError):
        env.run()
    env.fake.fail.clear()
    (env.src / "big.bin").write_bytes(os.urandom(5 * PART + 100))
    result = env.run()
    assert result["resumed"] == 0 and result["aborted_uploads"] == 1
    data = (env.src / "big.bin").read_bytes()
    assert env.fake.objects[("bkt", "m/big.bin")]["metadata"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert env.fake.uploads == {}


def test_unknown_uploads_under_prefix_are_aborted(env):
    env.fake.create_multipart_upload(Bucket="bkt", Key="m/ghost.bin", Metadata={})
    result = env.run()
    assert result["aborted_uploads"] == 1 and env.fake.uploads == {}


def test_missing_bucket_says_create_bucket(env):
    env.fake.buckets.clear()
    with pytest.raises(S3UploadError, match="bucket bkt does not exist.*set create_bucket: true"):
        env.run()
    assert env.fake.writes() == []


def test_create_bucket_only_outside_check_mode(env):
    env.fake.buckets.clear()
    check = env.run(check=True, create_bucket=True)
    assert check["bucket_created"] is True and env.fake.writes() == []
    result = env.run(create_bucket=True)
    assert result["bucket_created"] is True and "bkt" in env.fake.buckets and result["uploaded"] == 2


def test_sse_headers_only_when_requested(env):
    env.run(sse="AES256")
    assert env.fake.objects[("bkt", "m/sub/small.json")]["extra"] == {"ServerSideEncryption": "AES256"}


def test_progress_file_is_json_with_totals(env, tmp_path):
    path = tmp_path / "progress.json"
    env.run(progress_file=str(path))
    progress = json.loads(path.read_text())
    assert progress["phase"] == "done"
    assert progress["bytes_done"] == progress["bytes_total"] == 5 * PART + 108
    assert (progress["files_done"], progress["files_total"], progress["current"]) == (2, 2, [])
    assert not [name for name in os.listdir(tmp_path) if ".tmp." in name]


def test_progress_eta_and_rate():
    progress = Progress(None)
    progress.planned(100)
    progress.advance(50, sent=True)
    snap = progress.snapshot()
    assert snap["bytes_done"] == 50 and snap["eta_seconds"] is not None and snap["mb_per_s"] >= 0


def test_journal_roundtrip_and_fingerprint(tmp_path):
    journal = Journal(str(tmp_path), "http://s3", "bkt")
    journal.record("k", "id/with+odd=chars", {"sha256": "ab", "size": 3, "mtime_ns": 1, "part_size": 5})
    record = journal.load("k", "id/with+odd=chars")
    assert matches_fingerprint(record, "ab", 3)
    assert not matches_fingerprint(record, "ab", 4)
    assert not matches_fingerprint(record, "cd", 3)
    assert not matches_fingerprint(None, "ab", 3)
    assert Journal(str(tmp_path), "http://other", "bkt").load("k", "id/with+odd=chars") is None
    journal.forget("k", "id/with+odd=chars")
    assert journal.load("k", "id/with+odd=chars") is None


TARGET = Target(bucket="bkt", prefix="m/", endpoint_url="http://127.0.0.1:9", access_key="AKIDSECRET", secret_key="s3cr3t")


@pytest.mark.parametrize("exc,pattern", [
    (client_error("InvalidAccessKeyId", 403), r"check access_key \(or AWS_ACCESS_KEY_ID\)"),
    (client_error("SignatureDoesNotMatch", 403), r"check secret_key \(or AWS_SECRET_ACCESS_KEY\)"),
    (client_error("NoSuchBucket", 404), r"bucket bkt does not exist at http://127.0.0.1:9: .*set create_bucket: true"),
    (client_error("AccessDenied", 403), r"access denied to s3://bkt/m/"),
    (client_error("403", 403), r"access denied"),
    (client_error("AuthorizationHeaderMalformed", 400), r"set region"),
    (client_error("BadDigest", 400), r"file changed during the upload"),
    (client_error("SlowDown", 503), r"S3 error SlowDown \(HTTP 503\)"),
    (EndpointConnectionError(endpoint_url="http://127.0.0.1:9/bkt"), r"cannot connect to endpoint_url http://127.0.0.1:9 .*check endpoint_url"),
    (SSLError(endpoint_url="https://x", error="CERTIFICATE_VERIFY_FAILED"), r"set ca_bundle .* or validate_certs: false"),
    (NoCredentialsError(), r"set access_key and secret_key"),
])
def test_explain_error_names_the_fix(exc, pattern):
    assert __import__("re").search(pattern, explain_error(exc, TARGET, "listing"))


def test_redact_masks_secrets():
    assert redact("key AKIDSECRET secret s3cr3t", TARGET.secrets()) == "key ******** secret ********"


def test_client_config_defaults():
    config = client_config(TARGET, 8)
    assert config.max_pool_connections >= 8
    assert config.retries["mode"] == "standard"
    assert config.s3["addressing_style"] == "path"
    assert client_config(Target(bucket="b"), 8).s3["addressing_style"] == "auto"
    assert client_config(Target(bucket="b", endpoint_url="http://x", addressing_style="virtual"), 8).s3["addressing_style"] == "virtual"
