# -*- coding: utf-8 -*-
"""The S3 connection: client settings, and errors turned into messages naming the option to fix."""

from __future__ import annotations

import re

import pytest
from botocore.exceptions import EndpointConnectionError, NoCredentialsError, ReadTimeoutError, SSLError

from ansible_collections.rhoai.gpuaas.plugins.module_utils.s3_client import (
    Target,
    client_config,
    explain_error,
    make_client,
    redact,
)
from ansible_collections.rhoai.gpuaas.tests.unit.plugins.s3_fake import client_error

TARGET = Target(bucket="bkt", prefix="m/", endpoint_url="http://127.0.0.1:9", access_key="AKIDSECRET", secret_key="s3cr3t")


@pytest.mark.parametrize("exc,pattern", [
    (client_error("InvalidAccessKeyId", 403), r"check access_key \(or AWS_ACCESS_KEY_ID\)"),
    (client_error("SignatureDoesNotMatch", 403), r"check secret_key \(or AWS_SECRET_ACCESS_KEY\)"),
    (client_error("NoSuchBucket", 404), r"bucket bkt does not exist at http://127.0.0.1:9: .*set create_bucket: true"),
    (client_error("InvalidBucketName", 400), r"refuses the bucket name bkt: check bucket"),
    (client_error("AccessDenied", 403), r"access denied to s3://bkt/m/"),
    (client_error("403", 403), r"access denied"),
    (client_error("AuthorizationHeaderMalformed", 400), r"set region"),
    (client_error("BadDigest", 400), r"file changed during the upload"),
    (client_error("EntityTooSmall", 400), r"raise part_size"),
    (client_error("SlowDown", 503), r"S3 error SlowDown \(HTTP 503\): SlowDown message"),
    (EndpointConnectionError(endpoint_url="http://127.0.0.1:9/bkt"), r"cannot connect to endpoint_url http://127.0.0.1:9 .*check endpoint_url"),
    (ReadTimeoutError(endpoint_url="http://127.0.0.1:9/bkt"), r"endpoint_url http://127.0.0.1:9 accepted .* did not answer in time"),
    (SSLError(endpoint_url="https://x", error="CERTIFICATE_VERIFY_FAILED"), r"set ca_bundle .* or validate_certs: false"),
    (NoCredentialsError(), r"set access_key and secret_key"),
])
def test_explain_error_names_the_fix(exc, pattern):
    message = explain_error(exc, TARGET, "listing")
    assert message.startswith("listing: ")
    assert re.search(pattern, message), message


def test_redact_masks_every_secret_even_inside_a_longer_one():
    assert redact("key AKIDSECRET secret s3cr3t", TARGET.secrets()) == "key ******** secret ********"
    assert redact("abc-abcdef", ["abc", "abcdef"]) == "********-********"


def test_client_config_for_bulk_transfer():
    config = client_config(TARGET, 8)
    assert config.max_pool_connections >= 8
    assert config.retries["mode"] == "standard"
    assert config.s3["payload_signing_enabled"] is False
    assert config.request_checksum_calculation == "when_required"


@pytest.mark.parametrize("endpoint,style,expected", [
    ("http://x", None, "path"), (None, None, "auto"), ("http://x", "virtual", "virtual")])
def test_addressing_style(endpoint, style, expected):
    target = Target(bucket="b", endpoint_url=endpoint, addressing_style=style)
    assert client_config(target, 8).s3["addressing_style"] == expected


def test_make_client_uses_the_target(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("")
    client = make_client(Target(bucket="b", endpoint_url="https://s3.example:9000", region="eu-west-3",
                                access_key="AK", secret_key="SK", ca_bundle=str(ca)), 4)
    assert client.meta.endpoint_url == "https://s3.example:9000"
    assert client.meta.region_name == "eu-west-3"
    credentials = client._request_signer._credentials
    assert (credentials.access_key, credentials.secret_key) == ("AK", "SK")
    assert client.meta.config.max_pool_connections == 8
    insecure = make_client(Target(bucket="b", endpoint_url="http://s3.example", validate_certs=False), 4)
    assert insecure.meta.region_name == "us-east-1"
    assert insecure._endpoint.http_session._verify is False
