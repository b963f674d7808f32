# -*- coding: utf-8 -*-
"""minio_upload's options: every bad value fails naming the option, before anything is read or written."""

from __future__ import annotations

import pytest

from ansible_collections.rhoai.gpuaas.plugins.module_utils.s3_etag import MiB
from ansible_collections.rhoai.gpuaas.plugins.module_utils.s3_options import (
    check_bucket,
    check_prefix,
    request_from_params,
    secrets_of,
)
from ansible_collections.rhoai.gpuaas.plugins.module_utils.s3_plan import S3UploadError


def params(**overrides):
    base = {"src": "/data/m", "bucket": "models", "prefix": "", "part_size": "32MiB", "concurrency": 8,
            "endpoint_url": "http://127.0.0.1:9000", "access_key": "AK", "secret_key": "SK", "verify": True,
            "delete": False, "create_bucket": False, "validate_certs": True, "include": [], "exclude": []}
    base.update(overrides)
    return base


@pytest.mark.parametrize("name", ["models", "a1b", "my.bucket-01", "x" * 63, "0abc"])
def test_valid_bucket_names(name):
    assert check_bucket(name) == name


@pytest.mark.parametrize("name", ["ab", "x" * 64, "Models", "my_bucket", "-abc", "abc-", "a..b", "a.-b",
                                  "192.168.1.10", "bucket/with/slash", "my bucket"])
def test_invalid_bucket_names_name_the_option(name):
    with pytest.raises(S3UploadError, match=r"bucket .* is not a valid S3 bucket name .*: fix bucket"):
        check_bucket(name)


@pytest.mark.parametrize("prefix,normalized", [("", ""), ("/", ""), ("models/x", "models/x/"), ("/a/b/", "a/b/"),
                                               ("naïve name", "naïve name/")])
def test_valid_prefixes_are_normalized(prefix, normalized):
    assert check_prefix(prefix) == normalized


@pytest.mark.parametrize("prefix", ["a//b", "a/../b", "./a", "a/.", "tab\there", "nul\x00"])
def test_invalid_prefixes_name_the_option(prefix):
    with pytest.raises(S3UploadError, match="fix prefix"):
        check_prefix(prefix)


@pytest.mark.parametrize("overrides,message", [
    ({"bucket": "Bad_Bucket"}, r"fix bucket"),
    ({"prefix": "a/../b"}, r"fix prefix"),
    ({"part_size": "1MiB"}, r"part_size must be between 5MiB and 5GiB .*fix part_size"),
    ({"part_size": "6GiB"}, r"part_size must be between"),
    ({"part_size": "-5M"}, r"part_size: '-5M' is not a size"),
    ({"part_size": "lots"}, r"part_size: 'lots' is not a size"),
    ({"concurrency": 0}, r"concurrency must be between 1 and 256, got 0: fix concurrency"),
    ({"concurrency": -3}, r"concurrency must be between 1 and 256, got -3"),
    ({"concurrency": 100000}, r"concurrency must be between 1 and 256"),
    ({"endpoint_url": "minio:9000"}, r"endpoint_url 'minio:9000' is not an http:// or https:// URL .*fix endpoint_url"),
    ({"endpoint_url": "ftp://minio"}, r"fix endpoint_url"),
    ({"endpoint_url": "http://"}, r"fix endpoint_url"),
    ({"endpoint_url": "http://minio:99999"}, r"fix endpoint_url"),
    ({"secret_key": None}, r"only one of access_key and secret_key is set: set secret_key"),
    ({"access_key": ""}, r"set access_key \(or AWS_ACCESS_KEY_ID\) too"),
    ({"hf_repo": "not a repo", "src": None}, r"hf_repo 'not a repo' is not a Hugging Face repository id"),
    ({"sse": "AES256", "sse_kms_key_id": "k"}, r"sse_kms_key_id needs sse: aws:kms"),
    ({"ca_bundle": "/nonexistent/ca.pem"}, r"ca_bundle /nonexistent/ca.pem is not a file"),
    ({"progress_file": "/nonexistent/dir/p.json"}, r"the directory of progress_file .* does not exist"),
])
def test_bad_options_name_the_option(overrides, message):
    with pytest.raises(S3UploadError, match=message):
        request_from_params(params(**overrides), check_mode=False)


def test_a_state_dir_that_is_a_file_names_the_option(tmp_path):
    (tmp_path / "f").write_text("")
    with pytest.raises(S3UploadError, match="state_dir .* is not a directory: set state_dir to a directory"):
        request_from_params(params(state_dir=str(tmp_path / "f")), check_mode=False)


def test_a_valid_request(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    request = request_from_params(params(prefix="/m/x/", part_size="64MB", concurrency=4, compare="size_mtime",
                                         request_checksum="md5", include=["*.json"], hf_token="hf"), check_mode=True)
    assert (request.target.bucket, request.target.prefix, request.target.endpoint_url) == ("models", "m/x/", "http://127.0.0.1:9000")
    assert (request.options.part_size, request.options.concurrency, request.options.check_mode) == (64 * MiB, 4, True)
    assert (request.options.compare, request.options.checksum) == ("size_mtime", "md5")
    assert request.options.state_dir == str(tmp_path / "rhoai.gpuaas" / "minio_upload")
    assert (request.source.src, request.source.include, request.source.hf_revision) == ("/data/m", ["*.json"], "main")


def test_no_endpoint_means_aws(tmp_path):
    request = request_from_params(params(endpoint_url=None, state_dir=str(tmp_path)), check_mode=False)
    assert request.target.endpoint_url is None and request.options.state_dir == str(tmp_path)


def test_secrets_of_lists_every_credential():
    assert sorted(secrets_of(params(session_token="ST", hf_token="HF"))) == ["AK", "HF", "SK", "ST"]
    assert secrets_of(params(access_key=None, secret_key=None)) == []
