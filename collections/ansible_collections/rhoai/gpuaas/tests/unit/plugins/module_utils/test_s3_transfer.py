# -*- coding: utf-8 -*-
"""The upload engine against an in-memory S3 fake: skip, upload, resume, abort, delete, errors."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import threading
import time
from types import SimpleNamespace

import pytest

from ansible_collections.rhoai.gpuaas.plugins.module_utils.s3_client import Target
from ansible_collections.rhoai.gpuaas.plugins.module_utils.s3_plan import S3UploadError, local_files
from ansible_collections.rhoai.gpuaas.plugins.module_utils.s3_state import DigestCache
from ansible_collections.rhoai.gpuaas.plugins.module_utils import s3_transfer
from ansible_collections.rhoai.gpuaas.plugins.module_utils.s3_etag import hash_file, hash_range
from ansible_collections.rhoai.gpuaas.plugins.module_utils.s3_transfer import Options, PartReader, Progress, Uploader
from ansible_collections.rhoai.gpuaas.tests.unit.plugins.s3_fake import FakeS3, client_error, crc32, md5_etag

PART = 1024


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

    def run(check=False, delete=False, verify=True, fake_client=None, digests=None, **opts):
        opts.setdefault("part_size", PART)
        opts.setdefault("concurrency", 3)
        options = Options(verify=verify, delete=delete, check_mode=check,
                          state_dir=str(tmp_path / "state"), **opts)
        uploader = Uploader(Target(bucket="bkt", prefix="m/"), options, client=fake_client or fake, digests=digests)
        return uploader.run(local_files(str(src), "m/", [], []))
    return SimpleNamespace(fake=fake, run=run, src=src, state=tmp_path / "state")


def journal_records(state):
    return [name for name in os.listdir(state) if name.endswith(".json")] if state.exists() else []


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
    assert journal_records(env.state) == []  # the resume record goes once the upload is complete


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
    env.fake.put("m/stale.bin", b"x")
    env.fake.put("other/keep.bin", b"x")
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


def test_refused_credentials_are_named_with_create_bucket_too(env):
    """The server refuses every request; the HEAD that looks for the bucket gets a bare 403, the listing the reason."""
    def refuse_listing(**kwargs):
        raise client_error("SignatureDoesNotMatch", 403, "ListObjectsV2")

    def refuse_head(**kwargs):
        raise client_error("403", 403, "HeadBucket")
    env.fake.fail.update(list_objects_v2=refuse_listing, head_bucket=refuse_head)
    with pytest.raises(S3UploadError, match="^listing s3://bkt/m/: the signature does not match: check secret_key"):
        env.run(create_bucket=True)
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


def test_progress_eta_is_the_time_the_rest_takes_at_the_rate_so_far():
    progress = Progress(None)
    progress.planned(100)
    progress.advance(50, sent=True)
    progress.advance(25, sent=False)  # reused bytes count as done, not towards the rate
    snap = progress.snapshot()
    # 25 bytes left at 50 bytes per elapsed: half the elapsed time
    assert snap["eta_seconds"] == pytest.approx(snap["elapsed_seconds"] / 2, abs=0.1)
    assert (snap["bytes_done"], snap["bytes_total"]) == (75, 100)


# ---------------------------------------------------------------- the part layout (issue 14's survivors)


def checksums(fake):
    """Which checksums each body carried, in order."""
    return [sent[1] for sent in fake.sent]


def upload_calls(fake, name):
    return [call for call in fake.calls if call[0] == name]


@pytest.mark.parametrize("size,parts", [(4 * PART, 4), (PART + 1, 2), (2 * PART - 1, 2)])
def test_sizes_at_part_boundaries_make_exactly_the_needed_parts(env, size, parts):
    data = os.urandom(size)
    (env.src / "big.bin").write_bytes(data)
    env.run()
    big = env.fake.objects[("bkt", "m/big.bin")]
    assert big["body"] == data
    assert big["parts"] == [PART] * (parts - 1) + [size - PART * (parts - 1)]
    assert big["etag"] == md5_etag([data[i:i + PART] for i in range(0, size, PART)])
    env.fake.calls.clear()
    assert env.run()["changed"] is False and env.fake.writes() == []


def test_a_file_of_exactly_one_part_is_a_single_put(env):
    (env.src / "big.bin").write_bytes(os.urandom(PART))
    env.run()
    assert ("put_object", "m/big.bin", None) in env.fake.calls
    assert upload_calls(env.fake, "create_multipart_upload") == []


def test_the_configured_part_size_is_used(env):
    data = (env.src / "big.bin").read_bytes()
    env.run(part_size=2 * PART)
    big = env.fake.objects[("bkt", "m/big.bin")]
    assert big["parts"] == [2 * PART, 2 * PART, PART + 100]
    assert big["metadata"]["part-size"] == str(2 * PART)
    assert big["body"] == data


# ---------------------------------------------------------------- request checksums


def test_crc32_is_sent_and_confirmed_instead_of_content_md5(env):
    result = env.run()
    assert result["checksum"] == "crc32"
    assert {sent[0] for sent in env.fake.sent} == {"PutObject", "UploadPart"}
    assert all(sent == {"md5": False, "crc32": True} for sent in checksums(env.fake))


def test_request_checksum_md5_sends_content_md5(env):
    result = env.run(checksum="md5")
    assert result["checksum"] == "md5"
    assert all(sent == {"md5": True, "crc32": False} for sent in checksums(env.fake))
    data = (env.src / "big.bin").read_bytes()
    assert env.fake.objects[("bkt", "m/big.bin")]["body"] == data


def test_a_server_ignoring_crc32_gets_content_md5_from_then_on(env):
    (env.src / "big.bin").unlink()
    (env.src / "tiny.json").write_bytes(b"[]")
    fake = FakeS3(crc=False)
    result = env.run(fake_client=fake, concurrency=1)
    assert result["checksum"] == "md5"
    # the first body went with CRC32 only (checked afterwards by its ETag), the next with Content-MD5
    assert checksums(fake) == [{"md5": False, "crc32": True}, {"md5": True, "crc32": False}]
    for rel in ("tiny.json", "sub/small.json"):
        assert fake.objects[("bkt", "m/" + rel)]["body"] == (env.src / rel).read_bytes()


def test_a_multipart_upload_started_with_crc32_on_a_server_ignoring_it_completes(env):
    (env.src / "sub" / "small.json").unlink()
    fake = FakeS3(crc=False)
    result = env.run(fake_client=fake)
    assert result["checksum"] == "md5" and result["uploaded"] == 1
    assert fake.objects[("bkt", "m/big.bin")]["body"] == (env.src / "big.bin").read_bytes()


@pytest.mark.parametrize("crc", [True, False])
def test_a_store_that_alters_the_data_fails_the_upload(env, crc):
    fake = FakeS3(crc=crc)
    fake.corrupt = True
    with pytest.raises(S3UploadError, match="altered the data"):
        env.run(fake_client=fake)


def test_a_store_ignoring_crc32_that_alters_the_only_body_is_caught_by_its_etag(env):
    (env.src / "big.bin").unlink()
    fake = FakeS3(crc=False)
    fake.corrupt = True
    with pytest.raises(S3UploadError, match="upload of m/sub/small.json returned ETag .* the store altered the data"):
        env.run(fake_client=fake)
    assert checksums(fake) == [{"md5": False, "crc32": True}]


def test_sse_kms_always_uses_content_md5(env):
    result = env.run(sse="aws:kms", verify=False)
    assert result["checksum"] == "md5"
    assert all(sent == {"md5": True, "crc32": False} for sent in checksums(env.fake))


# ---------------------------------------------------------------- resume


@pytest.mark.parametrize("checksum", ["crc32", "md5"])
def test_a_held_part_with_other_bytes_is_sent_again(env, checksum):
    interrupt_after(env.fake, 3)
    with pytest.raises(S3UploadError):
        env.run(concurrency=1, checksum=checksum)
    upload = next(iter(env.fake.uploads.values()))
    assert sorted(upload["parts"]) == [1, 2, 3]
    # part 2 on the server: same size, other bytes (its ETag and CRC32 are those of these bytes)
    upload["parts"][2] = bytes(PART)
    upload["crcs"][2] = crc32(bytes(PART)) if checksum == "crc32" else None
    env.fake.fail.clear()
    env.fake.calls.clear()
    result = env.run(checksum=checksum)
    assert result["resumed"] == 1 and result["reused_bytes"] == 2 * PART
    sent = sorted(call[2] for call in upload_calls(env.fake, "upload_part"))
    assert sent == [2, 4, 5, 6]
    assert env.fake.objects[("bkt", "m/big.bin")]["body"] == (env.src / "big.bin").read_bytes()


def test_a_store_answering_another_whole_object_crc32_fails(env):
    env.fake.misassemble = True
    with pytest.raises(S3UploadError, match="completing m/big.bin: the store answered CRC32 .* it assembled other parts"):
        env.run()


def test_check_mode_leaves_a_stale_multipart_upload_alone(env):
    stale = env.fake.create_multipart_upload(Bucket="bkt", Key="m/big.bin", Metadata={})["UploadId"]
    env.fake.calls.clear()
    result = env.run(check=True)
    assert result["aborted_uploads"] == 1 and result["changed"] is True
    assert list(env.fake.uploads) == [stale]
    assert env.fake.writes() == []


def test_check_mode_with_create_bucket_and_delete_writes_nothing(env):
    env.fake.buckets.clear()
    result = env.run(check=True, create_bucket=True, delete=True)
    assert result["bucket_created"] is True and result["uploaded"] == 2
    assert env.fake.buckets == set() and env.fake.writes() == []


# ---------------------------------------------------------------- digest cache and compare


SETTLE_NS = 50 * 10**6


def wait_settled(root):
    """Until the wall clock is SETTLE_NS past every file's ctime (so the cache may keep their digests)."""
    newest = max(os.stat(p).st_ctime_ns for p in root.rglob("*"))
    while time.time_ns() <= newest + SETTLE_NS:
        time.sleep(0.01)


@pytest.fixture
def cache(env):
    return DigestCache(str(env.state), settle_ns=SETTLE_NS)


def test_check_mode_keeps_no_digests(env, cache):
    wait_settled(env.src)
    env.run(digests=cache)
    kept = sorted((env.state / "digests").iterdir())
    assert len(kept) == 2
    for entry in kept:
        entry.unlink()
    check = env.run(check=True, digests=cache)
    assert check["changed"] is False and check["hashed_bytes"] == 5 * PART + 108  # it hashed both files...
    assert list((env.state / "digests").iterdir()) == []                        # ...and kept nothing


def test_an_unchanged_rerun_reads_no_file(env, cache, monkeypatch):
    wait_settled(env.src)
    first = env.run(digests=cache)
    assert first["uploaded"] == 2 and first["hashed_bytes"] == 5 * PART + 108  # each file once: sha256 and checksums
    env.fake.calls.clear()
    opened = []
    real_open = os.open
    monkeypatch.setattr(os, "open", lambda path, *a, **k: opened.append(path) or real_open(path, *a, **k))
    second = env.run(digests=cache)
    assert (second["changed"], second["unchanged"], second["hashed_bytes"]) == (False, 2, 0)
    assert not [path for path in opened if str(path).startswith(str(env.src))]
    assert env.fake.writes() == []


def test_a_second_upload_of_unchanged_files_elsewhere_reads_them_only_to_send(env, cache, monkeypatch):
    wait_settled(env.src)
    env.run(digests=cache)
    env.fake.objects.clear()   # the same files to an empty bucket: the kept sha256 and CRC32s suffice
    hashed = []
    monkeypatch.setattr(s3_transfer, "hash_file", lambda *a, **k: hashed.append(a) or hash_file(*a, **k))
    monkeypatch.setattr(s3_transfer, "hash_range", lambda *a, **k: hashed.append(a) or hash_range(*a, **k))
    result = env.run(digests=cache)
    assert (result["uploaded"], result["hashed_bytes"], hashed) == (2, 0, [])
    assert env.fake.objects[("bkt", "m/big.bin")]["body"] == (env.src / "big.bin").read_bytes()


def test_md5_mode_reads_each_file_once_before_sending(env):
    result = env.run(checksum="md5")
    assert result["hashed_bytes"] == 5 * PART + 108


def test_without_cache_entries_an_unchanged_rerun_hashes_everything(env, tmp_path):
    env.run()  # the files are fresh: the default settle time keeps their digests out of the cache
    second = env.run()
    assert second["changed"] is False and second["hashed_bytes"] == 5 * PART + 108


def test_an_edit_that_puts_the_mtime_back_is_still_uploaded(env, cache):
    wait_settled(env.src)
    env.run(digests=cache)
    path = env.src / "big.bin"
    before = os.stat(path)
    data = bytearray(path.read_bytes())
    data[7] ^= 0xFF
    path.write_bytes(bytes(data))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert (os.stat(path).st_size, os.stat(path).st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    result = env.run(digests=cache)
    assert [(f["key"], f["action"], f["reason"]) for f in result["files"]] == [
        ("m/big.bin", "upload", "content"), ("m/sub/small.json", "skip", "same")]
    assert env.fake.objects[("bkt", "m/big.bin")]["body"] == bytes(data)


def test_compare_size_mtime_reads_nothing_and_trusts_the_timestamps(env, cache):
    env.run()
    env.fake.calls.clear()
    path = env.src / "big.bin"
    before = os.stat(path)
    path.write_bytes(bytes(before.st_size))  # same size, other content, mtime put back
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    result = env.run(compare="size_mtime")
    assert (result["changed"], result["hashed_bytes"]) == (False, 0)
    assert upload_calls(env.fake, "head_object") == []
    # a file newer than its object is uploaded
    os.utime(path, (time.time() + 10, time.time() + 10))
    result = env.run(compare="size_mtime")
    assert [(f["key"], f["reason"]) for f in result["files"] if f["action"] == "upload"] == [("m/big.bin", "newer")]
    assert env.fake.objects[("bkt", "m/big.bin")]["body"] == bytes(before.st_size)


# ---------------------------------------------------------------- request bodies


def test_part_reader_serves_its_range_and_rewinds_for_a_retry(tmp_path):
    path = tmp_path / "f"
    data = os.urandom(3 * 1024 * 1024 + 5)
    path.write_bytes(data)
    offset, length = 1024 * 1024 + 3, 2 * 1024 * 1024 + 1
    with PartReader(str(path), offset, length) as body:
        assert len(body) == length
        first = body.read(16384)
        assert first == data[offset:offset + len(first)] and len(first) >= 16384   # larger blocks than asked
        assert body.tell() == len(first)
        body.seek(0)
        assert b"".join(iter(lambda: body.read(16384), b"")) == data[offset:offset + length]
        assert body.read(16384) == b""
        body.seek(-5, 2)
        assert body.read() == data[offset + length - 5:offset + length]


def test_part_reader_says_when_the_file_shrank(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"x" * 100)
    with PartReader(str(path), 50, 50) as body:
        path.write_bytes(b"x" * 60)
        with pytest.raises(S3UploadError, match="shrank while it was uploaded"):
            body.read()


def test_a_file_that_shrinks_during_the_upload_fails_it(env, monkeypatch):
    real = s3_transfer.PartReader

    lock = threading.Lock()

    def shrinking(path, offset, length):
        # Only ever shorter, under a lock: parts are read in parallel, and a truncate to a larger
        # size would zero-fill bytes another part already read (a digest mismatch, not a shrink).
        with lock, open(path, "r+b") as handle:
            handle.truncate(min(os.fstat(handle.fileno()).st_size, offset + length - 1))
        return real(path, offset, length)
    monkeypatch.setattr(s3_transfer, "PartReader", shrinking)
    with pytest.raises(S3UploadError, match="shrank while it was uploaded"):
        env.run()
    assert ("bkt", "m/big.bin") not in env.fake.objects
