# -*- coding: utf-8 -*-
"""Planning: sources, keys, include/exclude, Hugging Face cache layout and per-file decisions."""

from __future__ import annotations

import hashlib
import os

import pytest

from ansible_collections.rhoai.gpuaas.plugins.module_utils.s3_plan import (
    SKIP,
    UPLOAD,
    LocalFile,
    RemoteObject,
    SourceError,
    decide,
    decide_by_time,
    diff_text,
    is_selected,
    local_files,
    normalize_prefix,
    resolve_hf_snapshot,
    to_delete,
)
from ansible_collections.rhoai.gpuaas.plugins.module_utils.s3_state import FileIdentity

MD5 = hashlib.md5(b"x").hexdigest()
SHA = hashlib.sha256(b"x").hexdigest()
LOCAL = LocalFile(path="/p", key="m/a", identity=FileIdentity(size=1, mtime_ns=0, ctime_ns=0, inode=1, device=1))


@pytest.fixture
def tree(tmp_path):
    for rel in ("config.json", "model-1.safetensors", "sub/model-2.safetensors", "README.md", ".cache/huggingface/x.lock"):
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(rel)
    return tmp_path


@pytest.mark.parametrize("prefix,expected", [("", ""), (None, ""), ("/", ""), ("m", "m/"), ("/a/b/", "a/b/"), ("a/b", "a/b/")])
def test_normalize_prefix(prefix, expected):
    assert normalize_prefix(prefix) == expected


@pytest.mark.parametrize("rel,include,exclude,selected", [
    ("sub/model-2.safetensors", ["*.safetensors"], [], True),   # * crosses directories
    ("config.json", ["*.safetensors"], [], False),
    ("config.json", [], [], True),
    ("README.md", [], ["*.md"], False),
    (".cache/huggingface/x.lock", [], [".cache/*"], False),
    ("model-1.safetensors", ["*.safetensors"], ["model-1*"], False),  # exclude wins
])
def test_is_selected(rel, include, exclude, selected):
    assert is_selected(rel, include, exclude) is selected


def test_directory_keys_are_relative_posix_paths_under_prefix(tree):
    files = local_files(str(tree), "m/", [], [".cache/*"])
    assert [f.key for f in files] == ["m/README.md", "m/config.json", "m/model-1.safetensors", "m/sub/model-2.safetensors"]
    for file in files:
        stat = os.stat(file.path)
        assert file.identity == FileIdentity(stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino, stat.st_dev)
        assert (file.size, file.mtime_ns) == (len(file.key) - 2, stat.st_mtime_ns)  # each file holds its own name


def test_a_key_longer_than_s3_allows_names_prefix(tree):
    with pytest.raises(SourceError, match="longer than the 1024 bytes S3 allows: shorten prefix"):
        local_files(str(tree), "p" * 1010 + "/", [], [])


def test_hf_repo_without_huggingface_hub_says_what_to_install(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "huggingface_hub", None)
    with pytest.raises(SourceError, match="pip install huggingface_hub"):
        resolve_hf_snapshot("org/name", "main", None, None, [], [])


def test_single_file_key_is_its_name(tree):
    files = local_files(str(tree / "sub" / "model-2.safetensors"), "p/", [], [])
    assert [f.key for f in files] == ["p/model-2.safetensors"]


def test_missing_src_names_the_parameter(tmp_path):
    with pytest.raises(SourceError, match=r"src .*/nope does not exist: set src"):
        local_files(str(tmp_path / "nope"), "", [], [])


def test_no_match_is_an_error_not_an_empty_upload(tree):
    with pytest.raises(SourceError, match=r"no files matching include=\['\*.gguf'\].*check src, include and exclude"):
        local_files(str(tree), "", ["*.gguf"], [])


def test_file_symlinks_are_followed(tmp_path):
    (tmp_path / "blob").write_text("payload")
    (tmp_path / "snap").mkdir()
    (tmp_path / "snap" / "w.bin").symlink_to(tmp_path / "blob")
    files = local_files(str(tmp_path / "snap"), "", [], [])
    assert [(f.key, f.size) for f in files] == [("w.bin", 7)]


def make_hf_cache(root, repo="org/name", commit="0123456789abcdef0123456789abcdef01234567"):
    """The layout huggingface_hub writes: blobs, snapshots/<commit>/ symlinks, refs/main."""
    storage = root / ("models--" + repo.replace("/", "--"))
    (storage / "refs").mkdir(parents=True)
    (storage / "refs" / "main").write_text(commit)
    (storage / "blobs").mkdir()
    snapshot = storage / "snapshots" / commit
    (snapshot / "sub").mkdir(parents=True)
    for rel, content in (("config.json", "{}"), ("model.safetensors", "weights"), ("sub/tok.json", "[]")):
        blob = storage / "blobs" / hashlib.sha1(content.encode()).hexdigest()
        blob.write_text(content)
        (snapshot / rel).symlink_to(blob)
    return snapshot


def test_hf_cache_layout_resolves_offline(tmp_path, monkeypatch):
    pytest.importorskip("huggingface_hub")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    snapshot = make_hf_cache(tmp_path)
    root = resolve_hf_snapshot("org/name", "main", str(tmp_path), None, [], [])
    assert root == str(snapshot)
    files = local_files(root, "m/", ["*.json"], [], param="hf_repo")
    assert [f.key for f in files] == ["m/config.json", "m/sub/tok.json"]


def test_hf_commit_revision_resolves_offline(tmp_path, monkeypatch):
    pytest.importorskip("huggingface_hub")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    snapshot = make_hf_cache(tmp_path)
    assert resolve_hf_snapshot("org/name", snapshot.name, str(tmp_path), None, [], []) == str(snapshot)


def test_hf_missing_offline_says_what_to_fix(tmp_path, monkeypatch):
    pytest.importorskip("huggingface_hub")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    make_hf_cache(tmp_path)
    with pytest.raises(SourceError, match=r"hf_repo org/other@main could not be resolved.*HF_HUB_OFFLINE is set"):
        resolve_hf_snapshot("org/other", "main", str(tmp_path), None, [], [])


def remote(size=1, etag=MD5):
    return RemoteObject(key="m/a", size=size, etag='"%s"' % etag)


@pytest.mark.parametrize("obj,local_etag,local_sha,remote_sha,verify,expected", [
    (None, None, None, None, True, (UPLOAD, "new")),
    (remote(size=2), None, None, None, True, (UPLOAD, "size")),
    (remote(), MD5, SHA, SHA, True, (SKIP, "same")),
    (remote(), MD5, None, None, False, (SKIP, "same")),             # no verify: ETag alone decides
    (remote(), "0" * 32, SHA, SHA, True, (UPLOAD, "content")),       # md5 ETag must match even if metadata claims so
    (remote(), MD5, SHA, None, True, (UPLOAD, "sha256")),           # uploaded by another tool: add the metadata
    (remote(), MD5, SHA, "f" * 64, True, (UPLOAD, "sha256")),
    (remote(etag="kms-opaque"), MD5, SHA, SHA, True, (SKIP, "same")),   # non-md5 ETag: sha256 metadata decides
    (remote(etag="kms-opaque"), MD5, SHA, None, False, (UPLOAD, "content")),
])
def test_decide(obj, local_etag, local_sha, remote_sha, verify, expected):
    assert decide(LOCAL, obj, local_etag, local_sha, remote_sha, verify) == expected


def stamped(size=1, mtime_s=100):
    identity = FileIdentity(size=size, mtime_ns=mtime_s * 10**9 + 5, ctime_ns=0, inode=1, device=1)
    return LocalFile(path="/p", key="m/a", identity=identity)


@pytest.mark.parametrize("local,obj,expected", [
    (stamped(), None, (UPLOAD, "new")),
    (stamped(size=2), RemoteObject("m/a", 1, MD5, last_modified=200.0), (UPLOAD, "size")),
    (stamped(mtime_s=100), RemoteObject("m/a", 1, MD5, last_modified=100.9), (SKIP, "same")),   # same second
    (stamped(mtime_s=100), RemoteObject("m/a", 1, "0" * 32, last_modified=300.0), (SKIP, "same")),  # content unseen
    (stamped(mtime_s=101), RemoteObject("m/a", 1, MD5, last_modified=100.0), (UPLOAD, "newer")),
])
def test_decide_by_time(local, obj, expected):
    assert decide_by_time(local, obj) == expected


def test_decide_with_sse_kms_ignores_md5_shaped_etag():
    assert decide(LOCAL, remote(), "0" * 32, SHA, SHA, True, trust_etag=False) == (SKIP, "same")


def test_to_delete_lists_remote_keys_absent_locally():
    objs = {k: RemoteObject(key=k, size=1, etag=MD5) for k in ("m/a", "m/b", "m/c")}
    assert [o.key for o in to_delete({"m/a", "m/x"}, objs)] == ["m/b", "m/c"]


def test_diff_lists_affected_keys_only():
    objs = {"m/a": RemoteObject(key="m/a", size=1, etag=MD5), "m/old": RemoteObject(key="m/old", size=3, etag=MD5)}
    entries = [
        {"key": "m/a", "action": UPLOAD, "size": 2, "reason": "size"},
        {"key": "m/b", "action": UPLOAD, "size": 5, "reason": "new"},
        {"key": "m/s", "action": SKIP, "size": 5, "reason": "same"},
        {"key": "m/old", "action": "delete", "size": 3},
    ]
    diff = diff_text(entries, objs)
    assert diff["before"] == "m/a size=1 etag=%s\nm/old size=3 etag=%s\n" % (MD5, MD5)
    assert diff["after"] == "m/a size=2 (size)\nm/b size=5 (new)\n"
