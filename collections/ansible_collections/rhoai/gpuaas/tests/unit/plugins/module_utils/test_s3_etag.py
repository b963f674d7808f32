# -*- coding: utf-8 -*-
"""ETag arithmetic: single-part md5, multipart md5-of-md5s with the object's own layout."""

from __future__ import annotations

import base64
import hashlib
import os

import pytest

from ansible_collections.rhoai.gpuaas.plugins.module_utils.s3_etag import (
    MAX_PARTS,
    WHOLE,
    MiB,
    composite_crc32,
    crc32_b64,
    hash_range,
    effective_part_size,
    etag_part_count,
    hash_file,
    infer_part_size,
    is_md5_etag,
    multipart_etag,
    normalize_etag,
    parse_size,
    part_count,
    part_ranges,
)


def reference_multipart_etag(data: bytes, part_size: int) -> str:
    """What S3 computes, written the slow obvious way."""
    digests = [hashlib.md5(data[i:i + part_size]).digest() for i in range(0, len(data), part_size)]
    return hashlib.md5(b"".join(digests)).hexdigest() + "-%d" % len(digests)


@pytest.fixture
def blob(tmp_path):
    data = os.urandom(5 * 1024 + 123)
    path = tmp_path / "blob"
    path.write_bytes(data)
    return str(path), data


def test_normalize_strips_quotes_and_case():
    assert normalize_etag('"ABCDEF"') == "abcdef"
    assert normalize_etag(None) == ""


def test_normalize_keeps_every_character_of_an_opaque_etag():
    # Stores with SSE-KMS or their own ETag scheme: two ETags that differ in any letter must stay
    # different, or a changed object would be taken for unchanged.
    assert normalize_etag(' "X1F-X" ') == "x1f-x"
    assert normalize_etag('"ABCX"') != normalize_etag('"ABC"')


@pytest.mark.parametrize("etag,parts", [
    ('"d41d8cd98f00b204e9800998ecf8427e"', 0),
    ('"d41d8cd98f00b204e9800998ecf8427e-12"', 12),
    ("d41d8cd98f00b204e9800998ecf8427e-1", 1),
    ("not-an-md5-3", 0),
    ("", 0),
])
def test_etag_part_count(etag, parts):
    assert etag_part_count(etag) == parts


def test_is_md5_etag_rejects_kms_style():
    assert is_md5_etag('"d41d8cd98f00b204e9800998ecf8427e-2"')
    assert not is_md5_etag('"3f6b2a0c9a1e4d7f"')


def test_single_part_etag_is_plain_md5(blob):
    path, data = blob
    digest = hash_file(path, (WHOLE,))
    assert digest.etag(WHOLE) == hashlib.md5(data).hexdigest()
    assert digest.sha256 == hashlib.sha256(data).hexdigest()
    assert digest.size == len(data)


@pytest.mark.parametrize("part_size,block", [(1024, 4096), (1000, 333), (4096, 4096), (10 ** 6, 64)])
def test_multipart_etag_matches_reference_for_any_block_split(blob, part_size, block):
    path, data = blob
    digest = hash_file(path, (part_size,), block=block)
    assert digest.etag(part_size) == reference_multipart_etag(data, part_size)
    assert digest.sha256 == hashlib.sha256(data).hexdigest()
    assert digest.size == len(data)  # the size the plan and the digest cache record


@pytest.mark.parametrize("parts", [1, 3])
def test_a_size_that_is_an_exact_multiple_has_no_empty_last_part(tmp_path, parts):
    data = os.urandom(parts * 1024)
    path = tmp_path / "exact"
    path.write_bytes(data)
    digest = hash_file(str(path), (1024,), block=1024)
    assert len(digest.part_md5s[1024]) == parts
    assert digest.etag(1024) == reference_multipart_etag(data, 1024)
    assert part_ranges(len(data), 1024) == [(i * 1024, 1024) for i in range(parts)]
    assert part_count(len(data), 1024) == parts


def test_one_read_computes_several_layouts(blob):
    path, data = blob
    digest = hash_file(path, (WHOLE, 1024, 2048), sha256=False)
    assert digest.sha256 is None
    assert digest.etag(1024) == reference_multipart_etag(data, 1024)
    assert digest.etag(2048) == reference_multipart_etag(data, 2048)
    assert digest.etag(WHOLE) == hashlib.md5(data).hexdigest()


def test_single_part_multipart_upload_has_suffix_1(blob):
    path, data = blob
    assert hash_file(path, (len(data) * 2,)).etag(len(data) * 2) == hashlib.md5(hashlib.md5(data).digest()).hexdigest() + "-1"


def test_empty_file(tmp_path):
    path = tmp_path / "empty"
    path.write_bytes(b"")
    digest = hash_file(str(path), (WHOLE,))
    assert digest.etag(WHOLE) == "d41d8cd98f00b204e9800998ecf8427e"
    assert part_ranges(0, MiB) == [(0, 0)]


def test_multipart_etag_of_digests():
    digests = [hashlib.md5(b"a").digest(), hashlib.md5(b"b").digest()]
    assert multipart_etag(digests) == hashlib.md5(b"".join(digests)).hexdigest() + "-2"


def test_part_ranges_cover_file_exactly():
    ranges = part_ranges(10 * MiB + 1, 4 * MiB)
    assert ranges == [(0, 4 * MiB), (4 * MiB, 4 * MiB), (8 * MiB, 2 * MiB + 1)]
    assert part_count(10 * MiB + 1, 4 * MiB) == 3


def test_effective_part_size_respects_part_limit():
    assert effective_part_size(100 * MiB, 8 * MiB) == 8 * MiB
    huge = 8 * MiB * MAX_PARTS + 1
    raised = effective_part_size(huge, 8 * MiB)
    # the smallest whole MiB that fits: one byte over 10,000 x 8 MiB needs 9 MiB parts
    assert raised == 9 * MiB
    ranges = part_ranges(huge, raised)
    assert len(ranges) <= MAX_PARTS and sum(length for _offset, length in ranges) == huge


@pytest.mark.parametrize("wanted,raised", [(8 * MiB, 9 * MiB), (5 * MiB + 1, 6 * MiB)])
def test_effective_part_size_keeps_the_configured_size_at_exactly_10000_parts(wanted, raised):
    # S3 allows 10,000 parts: a file that needs exactly that many is sent with the part_size the
    # user set (part_size takes any byte count from 5 MiB), not a rounded-up one; a byte more
    # and the part size goes up to the next whole MiB.
    assert effective_part_size(wanted * MAX_PARTS, wanted) == wanted
    assert effective_part_size(wanted * MAX_PARTS + 1, wanted) == raised


@pytest.mark.parametrize("size,parts,first,preferred,expected", [
    (100 * MiB, 13, None, (), 8 * MiB),                    # aws cli default
    (100 * MiB, 2, None, (), 64 * MiB),                    # first common size giving 2 parts
    (100 * MiB, 2, 50 * MiB, (), 50 * MiB),                # HEAD PartNumber=1 wins
    (100 * MiB, 4, None, (32 * MiB,), 32 * MiB),           # our configured size first
    (100 * MiB, 7, None, (), 16 * MiB),                    # MinIO mc default: 16 MiB x 7 >= 100 MiB
    (100 * MiB, 3, None, (), 34 * MiB),                    # no tool default: size / parts rounded up to a MiB
    (1000, 3, None, (), 334),                              # tiny objects: exact division
    (3, 3, None, (), 1),                                   # down to 1-byte parts
    (100 * MiB, 13, None, (WHOLE,), 8 * MiB),              # WHOLE (0) as a preference is no part size
    (100 * MiB, 0, None, (), None),
])
def test_infer_part_size(size, parts, first, preferred, expected):
    assert infer_part_size(size, parts, first, preferred) == expected


def test_infer_part_size_ignores_inconsistent_first_part():
    assert infer_part_size(100 * MiB, 13, first_part_size=50 * MiB) == 8 * MiB


@pytest.mark.parametrize("size", [1, 5 * MiB, 100 * MiB])
def test_a_one_part_multipart_object_can_be_compared(size):
    # ETag "...-1": a multipart upload of one part, from uploaders whose multipart threshold is
    # their part size. Any part size that holds the whole object gives the same ETag, so one
    # must be found for the object to be compared with the local file.
    part_size = infer_part_size(size, 1)
    assert part_size is not None and part_count(size, part_size) == 1


@pytest.mark.parametrize("text,size", [("64MiB", 64 * MiB), ("64MB", 64 * MiB), ("64m", 64 * MiB),
                                       ("1G", 1024 * MiB), ("5242880", 5 * MiB), (7, 7), (" 8 KiB ", 8192)])
def test_parse_size(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "12XB", "-5M", "1.5G"])
def test_parse_size_rejects(text):
    with pytest.raises(ValueError, match="is not a size"):
        parse_size(text)


def test_parse_size_error_names_the_units_it_takes():
    with pytest.raises(ValueError) as caught:
        parse_size("12XB")
    assert str(caught.value) == "'12XB' is not a size: use bytes or a number with K, M or G (KiB, MiB, GiB; powers of 1024)"


def test_crc32_is_big_endian_base64():
    # CRC-32 (IEEE) of "123456789" is 0xCBF43926, the check value of the algorithm
    assert crc32_b64(b"123456789") == base64.b64encode(bytes.fromhex("cbf43926")).decode()
    assert crc32_b64(b"") == "AAAAAA=="


def test_composite_crc32_is_the_crc_of_the_part_crcs():
    parts = [crc32_b64(b"a"), crc32_b64(b"b"), crc32_b64(b"c")]
    joined = b"".join(base64.b64decode(p) for p in parts)
    assert composite_crc32(parts) == crc32_b64(joined) + "-3"
    assert composite_crc32(parts) != composite_crc32(list(reversed(parts)))


@pytest.mark.parametrize("part_size,block", [(1024, 4096), (1000, 333), (WHOLE, 700)])
def test_part_crc32s_match_each_part(blob, part_size, block):
    path, data = blob
    digest = hash_file(path, (), sha256=False, crc_layouts=(part_size,), block=block)
    parts = [data] if part_size == WHOLE else [data[i:i + part_size] for i in range(0, len(data), part_size)]
    assert [base64.b64encode(crc).decode() for crc in digest.part_crc32s[part_size]] == [crc32_b64(p) for p in parts]


@pytest.mark.parametrize("block", [333, 2499, 2500, 2501, 1])
def test_hash_range_reads_exactly_the_range(blob, block):
    path, data = blob
    md5, crc = hash_range(path, 1000, 2500, md5=True, crc32=True, block=block)
    assert md5 == hashlib.md5(data[1000:3500]).digest()
    assert base64.b64encode(crc).decode() == crc32_b64(data[1000:3500])
    assert hash_range(path, 0, 10, md5=True, block=block) == (hashlib.md5(data[:10]).digest(), None)


def test_hash_range_for_a_crc32_upload_computes_no_md5(blob):
    # A part re-read for a CRC32 upload: MD5, the costlier hash, is not computed.
    path, data = blob
    crc = base64.b64decode(crc32_b64(data[4096:5120]))
    assert hash_range(path, 4096, 1024, crc32=True) == (None, crc)
    assert hash_range(path, 4096, 1024, md5=False, crc32=True, block=100) == (None, crc)


def test_hash_range_past_the_end_says_the_file_changed(blob):
    path, data = blob
    with pytest.raises(OSError) as caught:
        hash_range(path, len(data) - 10, 13, md5=True)
    assert str(caught.value) == "%s is 3 bytes shorter than expected: it changed while it was read" % path
