#!/usr/bin/env python3
"""Generate a small stand-in model directory for the local testbed.

It looks like a Hugging Face safetensors checkpoint (config.json, tokenizer.json,
generation_config.json, model-0000N-of-0000M.safetensors shards with a valid safetensors
header followed by random bytes, model.safetensors.index.json) but holds no real weights.
The bytes are deterministic for a given --seed and --size, so re-running it leaves the files
byte-identical and a second upload transfers nothing.

By default config.json and model.safetensors.index.json declare the real model's shape and weight
size (--declare mistral-small-24b: Mistral-Small-24B-Instruct-2501 in BF16, 47,144,806,400 bytes),
so the testbed's simulated GPU runtime (testbed/vllm_sim.py) sizes it as the real one while the
files stay small; --declare files describes the small files themselves. A declared Mistral model
also gets consolidated.safetensors, as Mistral's repositories hold it: the same weights again in
Mistral's own format, which vLLM does not read from a directory that has the sharded ones and which
the demo's upload leaves out (`exclude` in the models table).

    python playbooks/files/make_model.py --out .testbed/model [--size 64MiB] [--shards 3] [--seed 42]
                                         [--declare mistral-small-24b|files]
    python playbooks/files/make_model.py --hf-cache .testbed/hf-cache --repo mistralai/Mistral-Small-24B-Instruct-2501

With --hf-cache the model is written as a Hugging Face hub cache holds a download
(models--<org>--<name>/snapshots/<revision>/ and refs/main), so the upload reads it by its repository
name with HF_HUB_OFFLINE=1: the local inventory names the same repository as the real one.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import struct
import sys
import tempfile
from pathlib import Path

UNITS = {"": 1, "B": 1, "K": 1024, "KB": 1024, "KIB": 1024, "M": 1024**2, "MB": 1024**2, "MIB": 1024**2,
         "G": 1024**3, "GB": 1024**3, "GIB": 1024**3}
CHUNK = 1 << 20
# mistralai/Mistral-Small-24B-Instruct-2501: its config.json, and its index's total_size
# (23,572,403,200 BF16 parameters x 2 bytes).
DECLARED = {
    "mistral-small-24b": (47_144_806_400, {
        "architectures": ["MistralForCausalLM"], "model_type": "mistral", "hidden_size": 5120,
        "intermediate_size": 32768, "num_hidden_layers": 40, "num_attention_heads": 32, "num_key_value_heads": 8,
        "head_dim": 128, "max_position_embeddings": 32768, "vocab_size": 131072, "rope_theta": 100000000.0,
        "rms_norm_eps": 1e-05, "sliding_window": None, "hidden_act": "silu", "tie_word_embeddings": False,
        "bos_token_id": 1, "eos_token_id": 2, "torch_dtype": "bfloat16"}),
}


def parse_size(text: str) -> int:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", text)
    if not m or m.group(2).upper() not in UNITS:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (examples: 64MiB, 1G, 1048576)")
    return int(float(m.group(1)) * UNITS[m.group(2).upper()])


def safetensors_header(name: str, nbytes: int) -> bytes:
    """A valid safetensors header describing one U8 tensor of `nbytes` bytes, padded to 8 bytes."""
    meta = {"__metadata__": {"format": "pt", "stand_in": "true"},
            name: {"dtype": "U8", "shape": [nbytes], "data_offsets": [0, nbytes]}}
    raw = json.dumps(meta, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw


def write_atomic(path: Path, write) -> None:
    """Write through a temporary file so an interrupted run never leaves a half file behind."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def shard_chunks(seed: int, index: int, header: bytes, nbytes: int):
    """The shard's bytes, chunk by chunk; each shard has its own seeded generator."""
    rng = random.Random(f"{seed}-{index}")
    yield header
    left = nbytes
    while left:
        n = min(CHUNK, left)
        yield rng.randbytes(n)
        left -= n


def same_content(path: Path, chunks) -> bool:
    if not path.exists():
        return False
    with path.open("rb") as f:
        for chunk in chunks:
            if f.read(len(chunk)) != chunk:
                return False
        return f.read(1) == b""



def write_shard(path: Path, tensor: str, nbytes: int, seed: int, index: int) -> int:
    """Write one safetensors file of seeded bytes; its size. Identical files are not rewritten, so their
    mtime (and the upload's skip check) stay put."""
    header = safetensors_header(tensor, nbytes)
    if not same_content(path, shard_chunks(seed, index, header, nbytes)):
        write_atomic(path, lambda f: [f.write(c) for c in shard_chunks(seed, index, header, nbytes)])
    return len(header) + nbytes

def digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def make_model(out: Path, size: int, shards: int, seed: int, name: str,
               declare: str = "mistral-small-24b") -> list[tuple[str, int]]:
    out.mkdir(parents=True, exist_ok=True)
    config = {"architectures": ["MistralForCausalLM"], "model_type": "mistral", "hidden_size": 512,
              "num_hidden_layers": 2, "num_attention_heads": 8, "vocab_size": 1024, "torch_dtype": "bfloat16"}
    declared_size = None
    if declare in DECLARED:
        declared_size, config = DECLARED[declare]
    small = {
        "config.json": {**config, "_name_or_path": name, "_stand_in": True},
        "generation_config.json": {"bos_token_id": 1, "eos_token_id": 2, "max_new_tokens": 256},
        "tokenizer.json": {"version": "1.0", "model": {"type": "BPE", "vocab": {f"tok{i}": i for i in range(1024)},
                                                       "merges": []}, "added_tokens": []},
    }
    per_shard = max(size // shards, 1)
    weight_map, files = {}, []
    for i in range(1, shards + 1):
        fname = f"model-{i:05d}-of-{shards:05d}.safetensors"
        tensor = f"model.layers.{i - 1}.weight"
        nbytes = per_shard if i < shards else max(size - per_shard * (shards - 1), 1)
        weight_map[tensor] = fname
        files.append((fname, write_shard(out / fname, tensor, nbytes, seed, i)))
    if declare in DECLARED:
        consolidated = "consolidated.safetensors"
        files.append((consolidated, write_shard(out / consolidated, "consolidated", size, seed, 0)))
    total = declared_size if declared_size is not None else sum(s for _, s in files)
    small["model.safetensors.index.json"] = {"metadata": {"total_size": total}, "weight_map": weight_map}
    for fname, content in small.items():
        data = (json.dumps(content, indent=2, sort_keys=True) + "\n").encode()
        path = out / fname
        if not path.exists() or path.read_bytes() != data:
            write_atomic(path, lambda f, d=data: f.write(d))
        files.append((fname, len(data)))
    return files


def hf_cache_snapshot(cache: Path, repo: str, files: list[tuple[str, int]], tmp: Path) -> Path:
    """Move a generated model into the hub cache layout; the revision is a digest of its files."""
    revision = hashlib.sha1("".join(f"{n}:{digest(tmp / n)}" for n, _ in sorted(files)).encode()).hexdigest()
    repo_dir = cache / ("models--" + repo.replace("/", "--"))
    snapshot = repo_dir / "snapshots" / revision
    if not snapshot.exists():
        snapshot.parent.mkdir(parents=True, exist_ok=True)
        tmp.rename(snapshot)
    (repo_dir / "refs").mkdir(parents=True, exist_ok=True)
    (repo_dir / "refs" / "main").write_text(revision)
    return snapshot


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--out", type=Path, help="output directory (created if missing)")
    where.add_argument("--hf-cache", type=Path, help="a Hugging Face hub cache directory to put the model into")
    p.add_argument("--repo", default="mistralai/Mistral-Small-24B-Instruct-2501",
                   help="with --hf-cache, the repository the model is filed under")
    p.add_argument("--size", type=parse_size, default=parse_size("64MiB"), help="total size of the shards (default 64MiB)")
    p.add_argument("--shards", type=int, default=3, choices=range(1, 33), metavar="N", help="number of shards (default 3)")
    p.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    p.add_argument("--name", default="stand-in/mistral-3", help="model name written into config.json")
    p.add_argument("--declare", default="mistral-small-24b", choices=[*DECLARED, "files"],
                   help="whose shape and weight size config.json and the index declare: a real model's "
                        "(default mistral-small-24b) or the small files' own")
    p.add_argument("--verbose", "-v", action="store_true", help="print the sha256 of every file")
    args = p.parse_args(argv)
    if args.hf_cache:
        staging = args.hf_cache / ".staging"
        files = make_model(staging, args.size, args.shards, args.seed, args.name, args.declare)
        args.out = hf_cache_snapshot(args.hf_cache, args.repo, files, staging)
        if staging.exists():  # the same snapshot existed already
            for fname, _ in files:
                (staging / fname).unlink()
            staging.rmdir()
    else:
        files = make_model(args.out, args.size, args.shards, args.seed, args.name, args.declare)
    total = sum(s for _, s in files)
    declared = f", declaring {args.declare}" if args.declare in DECLARED else ""
    print(f"{args.out}: {len(files)} files, {total / 1048576:.1f} MiB (seed {args.seed}{declared})")
    if args.verbose:
        for fname, _ in files:
            print(f"  {digest(args.out / fname)}  {fname}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
