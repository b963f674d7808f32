# -*- coding: utf-8 -*-
"""What minio_upload keeps between runs: resume records and the digest cache, and when it trusts them."""

from __future__ import annotations

import os
import time

import pytest

from ansible_collections.rhoai.gpuaas.plugins.module_utils.s3_state import (
    CachedDigest,
    DigestCache,
    FileIdentity,
    Journal,
    default_state_dir,
    matches_fingerprint,
)

SETTLE_NS = 50 * 10**6


def settled(path):
    """Wait until the wall clock is SETTLE_NS past the file's ctime; return the time to say the read began."""
    ctime = os.stat(path).st_ctime_ns
    while time.time_ns() <= ctime + SETTLE_NS:
        time.sleep(0.01)
    return time.time_ns()


@pytest.fixture
def blob(tmp_path):
    path = tmp_path / "w.bin"
    path.write_bytes(b"weights-v1")
    return path


def test_default_state_dir_follows_xdg_cache_home(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_state_dir() == str(tmp_path / "rhoai.gpuaas" / "minio_upload")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_state_dir() == str(tmp_path / "home" / ".cache" / "rhoai.gpuaas" / "minio_upload")


def test_journal_roundtrip_and_fingerprint(tmp_path):
    journal = Journal(str(tmp_path), "http://s3", "bkt")
    journal.record("k", "id/with+odd=chars", {"sha256": "ab", "size": 3, "mtime_ns": 1, "part_size": 5, "checksum": "crc32"})
    record = journal.load("k", "id/with+odd=chars")
    assert matches_fingerprint(record, "ab", 3, "crc32")
    assert not matches_fingerprint(record, "ab", 3, "md5")     # parts carry another checksum
    assert not matches_fingerprint(record, "ab", 4, "crc32")
    assert not matches_fingerprint(record, "cd", 3, "crc32")
    assert not matches_fingerprint(record, None, 3, "crc32")
    assert not matches_fingerprint(None, "ab", 3, "crc32")
    assert Journal(str(tmp_path), "http://other", "bkt").load("k", "id/with+odd=chars") is None
    journal.forget("k", "id/with+odd=chars")
    assert journal.load("k", "id/with+odd=chars") is None


def test_records_without_a_checksum_are_content_md5_uploads(tmp_path):
    assert matches_fingerprint({"sha256": "ab", "size": 3}, "ab", 3, "md5")
    assert not matches_fingerprint({"sha256": "ab", "size": 3}, "ab", 3, "crc32")


def test_cache_hit_needs_every_field_of_the_identity(tmp_path, blob):
    cache = DigestCache(str(tmp_path / "state"), settle_ns=SETTLE_NS)
    identity = FileIdentity.of(str(blob))
    assert cache.lookup(str(blob), identity) is None
    assert cache.store(str(blob), identity, CachedDigest("sha", {0: "etag0"}), settled(blob))
    hit = cache.lookup(str(blob), identity)
    assert (hit.sha256, hit.etags, hit.crc32s) == ("sha", {0: "etag0"}, {})
    for field in ("size", "mtime_ns", "ctime_ns", "inode", "device"):
        other = FileIdentity(**dict(identity.as_dict(), **{field: getattr(identity, field) + 1}))
        assert cache.lookup(str(blob), other) is None, field


def test_an_edit_that_puts_the_mtime_back_misses_the_cache(tmp_path, blob):
    cache = DigestCache(str(tmp_path / "state"), settle_ns=SETTLE_NS)
    identity = FileIdentity.of(str(blob))
    assert cache.store(str(blob), identity, CachedDigest("sha", {0: "etag0"}), settled(blob))
    before = os.stat(blob)
    blob.write_bytes(b"weights-v2")
    os.utime(blob, ns=(before.st_atime_ns, before.st_mtime_ns))
    now = FileIdentity.of(str(blob))
    assert (now.size, now.mtime_ns, now.inode) == (identity.size, identity.mtime_ns, identity.inode)
    assert cache.lookup(str(blob), now) is None


def test_a_file_replaced_by_a_rename_misses_the_cache(tmp_path, blob):
    cache = DigestCache(str(tmp_path / "state"), settle_ns=SETTLE_NS)
    identity = FileIdentity.of(str(blob))
    assert cache.store(str(blob), identity, CachedDigest("sha", {0: "etag0"}), settled(blob))
    new = tmp_path / "new.bin"
    new.write_bytes(b"weights-v1")
    os.utime(new, ns=(identity.mtime_ns, identity.mtime_ns))
    os.replace(new, blob)
    assert cache.lookup(str(blob), FileIdentity.of(str(blob))) is None


def test_a_fresh_file_is_not_kept(tmp_path, blob):
    """Changed less than settle_ns before the read: a later write may leave its timestamps as they are."""
    cache = DigestCache(str(tmp_path / "state"), settle_ns=10 * 10**9)
    identity = FileIdentity.of(str(blob))
    assert not cache.store(str(blob), identity, CachedDigest("sha", {0: "etag0"}), time.time_ns())
    assert cache.lookup(str(blob), identity) is None


def test_a_file_changed_while_read_is_not_kept(tmp_path, blob):
    cache = DigestCache(str(tmp_path / "state"), settle_ns=SETTLE_NS)
    identity = FileIdentity.of(str(blob))
    started = settled(blob)
    blob.write_bytes(b"weights-v2-longer")
    assert not cache.store(str(blob), identity, CachedDigest("sha", {0: "etag0"}), started)
    assert cache.lookup(str(blob), FileIdentity.of(str(blob))) is None


def test_layouts_accumulate_for_the_same_content(tmp_path, blob):
    cache = DigestCache(str(tmp_path / "state"), settle_ns=SETTLE_NS)
    identity = FileIdentity.of(str(blob))
    started = settled(blob)
    cache.store(str(blob), identity, CachedDigest("sha", {0: "whole"}, {0: ["crc-whole"]}), started)
    cache.store(str(blob), identity, CachedDigest("sha", {8: "parts-8"}, {8: ["crc1", "crc2"]}), started)
    both = cache.lookup(str(blob), identity)
    assert (both.etags, both.crc32s) == ({0: "whole", 8: "parts-8"}, {0: ["crc-whole"], 8: ["crc1", "crc2"]})
    cache.store(str(blob), identity, CachedDigest("other-sha", {16: "parts-16"}), started)   # other content: forget the rest
    other = cache.lookup(str(blob), identity)
    assert (other.sha256, other.etags, other.crc32s) == ("other-sha", {16: "parts-16"}, {})


def test_an_unreadable_entry_is_a_miss(tmp_path, blob):
    cache = DigestCache(str(tmp_path / "state"), settle_ns=SETTLE_NS)
    identity = FileIdentity.of(str(blob))
    cache.store(str(blob), identity, CachedDigest("sha", {0: "etag0"}), settled(blob))
    (entry,) = (tmp_path / "state" / "digests").iterdir()
    entry.write_text("{not json")
    assert cache.lookup(str(blob), identity) is None
    entry.write_text('{"path": "%s", "identity": %s, "etags": {}}' % (blob, str(identity.as_dict()).replace("'", '"')))
    assert cache.lookup(str(blob), identity) is None   # no sha256


def test_a_read_only_state_dir_only_costs_the_cache(tmp_path, blob):
    (tmp_path / "state").write_text("a file where the directory should be")
    cache = DigestCache(str(tmp_path / "state"), settle_ns=SETTLE_NS)
    identity = FileIdentity.of(str(blob))
    assert not cache.store(str(blob), identity, CachedDigest("sha", {0: "etag0"}), settled(blob))
