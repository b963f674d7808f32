"""SIMULATED: what vLLM does at start-up with a model on the GPUs a pod was given (no cluster here).

The rules of the simulated GPU runtime (vllm_sim.py), as pure functions so unit tests can check each
one. They follow vLLM v0.11.0, the release of the RHAIIS 3.2 line that Red Hat OpenShift AI 3.0's
vLLM runtime is built from (odh-model-controller records v0.10.1.1 for RHOAI 2.25 and v0.11.2 for
3.2; RHAIIS 3.0 itself was vLLM 0.8.4). Each rule names the vLLM file it was read from; exception
texts are reproduced as vLLM, PyTorch 2.8 (vLLM 0.11.0's pin), NCCL 2.27.3 (PyTorch 2.8's pin) and
transformers word them. The log lines around them (timestamps, frames, pids) are a simulated
rendering, shaped like a real vLLM 0.11 log; line numbers outside vLLM are approximate.

Memory model, per GPU (figures in testbed/README.md):
  total      = the node's `nvidia.com/gpu.memory` (MiB), as CUDA reports it
  requested  = total x --gpu-memory-utilization              (v1/worker/gpu_worker.py)
  weights    = total_size / (tensor x pipeline parallel size)
  load OOM   : weights + CUDA_CONTEXT > total                  (PyTorch's caching allocator)
  KV memory  = requested - weights - NON_KV_OVERHEAD          (gpu_worker.determine_available_memory)
  KV needed  = layers/PP x ceil(max_model_len / 16) x 2 x 16 x KV heads/TP x head_dim x dtype bytes
                                                               (v1/kv_cache_interface.py)
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

VLLM_VERSION = "0.11.0"
MiB, GiB = 1 << 20, 1 << 30

# -- calibrated and documented constants (testbed/README.md, "vLLM on GPUs") ------------------------
# Memory the CUDA context and libraries hold before PyTorch allocates the weights.
CUDA_CONTEXT_BYTES = 512 * MiB
# Non-KV memory beyond the weights that vLLM's profiling run finds (activation peak of a
# max_num_batched_tokens forward pass and the sampler, cuBLAS/NCCL buffers). Calibrated so that the
# demo's known outcomes hold on an L4: any value in (2.07, 6.44] GiB keeps all of them.
NON_KV_OVERHEAD_BYTES = 3 * GiB
# Shared memory that tensor parallelism needs in /dev/shm (NCCL's SHM transport between the ranks on
# one node, plus vLLM's own broadcast queues): the testbed's threshold, the figure of issue 8.
SHM_NEEDED_BYTES = 1 * GiB
# CRI-O's DefaultShmSize: /dev/shm of a container that mounts nothing there.
DEFAULT_SHM_BYTES = 64 * MiB
# vLLM's KV cache block size on CUDA when --block-size is not given (platforms/cuda.py).
BLOCK_SIZE = 16
# The size NCCL asks for one SHM transport segment (seen in NCCL logs; misc/shmutils.cc prints it).
NCCL_SHM_SEGMENT_BYTES = 9637888
# executor/ray_utils.py: PG_WAIT_TIMEOUT, how long vLLM waits for Ray to place its GPU bundles.
PLACEMENT_GROUP_TIMEOUT_S = 1800

# Simulated durations of a start, in real seconds (vllm_sim.py multiplies them by its time_scale).
CONFIG_CHECK_S = 10.0      # Python imports, argument parsing, engine config
NCCL_INIT_S = 25.0         # engine core and workers up, distributed init
MODEL_INIT_S = 30.0        # parameters allocated on the GPU
LOAD_BYTES_PER_S = 1 * GiB  # reading the weights from /mnt/models
PROFILE_S = 15.0           # torch.compile and the profiling run
READY_AFTER_PROFILE_S = 20.0  # CUDA graphs, then the API server answers

DTYPE_BYTES = {"bfloat16": 2, "float16": 2, "half": 2, "float32": 4, "float": 4,
               "fp8": 1, "fp8_e4m3": 1, "fp8_e5m2": 1, "fp8_inc": 1}
# config/cache.py CacheDType; config/model.py's --dtype choices.
KV_CACHE_DTYPES = ("auto", "bfloat16", "fp8", "fp8_e4m3", "fp8_e5m2", "fp8_inc")
DTYPES = ("auto", "half", "float16", "bfloat16", "float", "float32")
# config/model.py _get_and_verify_max_len: the keys that bound the model's length.
MAX_LEN_KEYS = ("max_position_embeddings", "n_positions", "max_seq_len", "seq_length",
                "max_sequence_length", "max_seq_length", "seq_len")
PROG = "api_server.py"


class ArgError(ValueError):
    """vLLM's argument parser refused the command line (argparse exits with status 2)."""


@dataclass
class VllmArgs:
    """The engine arguments the rules read; vLLM's defaults otherwise."""

    model: str = "facebook/opt-125m"
    served_model_name: list[str] = field(default_factory=list)
    tensor_parallel_size: int = 1
    pipeline_parallel_size: int = 1
    gpu_memory_utilization: float = 0.9
    max_model_len: int | None = None
    kv_cache_dtype: str = "auto"
    dtype: str = "auto"

    @property
    def world_size(self) -> int:
        return self.tensor_parallel_size * self.pipeline_parallel_size

    def served_names(self) -> list[str]:
        return self.served_model_name or [self.model]


def human_readable_int(value: str) -> int:
    """--max-model-len accepts 1k (1000) and 1K (1024) as well as plain numbers (engine/arg_utils.py)."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([kKmMgG])", value.strip())
    if not m:
        return int(value)
    number, suffix = m.groups()
    if suffix.islower():
        return int(float(number) * {"k": 10**3, "m": 10**6, "g": 10**9}[suffix])
    if "." in number:
        raise ValueError(f"Decimals are not allowed with binary suffixes like {suffix}. "
                         f"Did you mean to use {number}{suffix.lower()} instead?")
    return int(number) * {"K": 2**10, "M": 2**20, "G": 2**30}[suffix]


_OPTIONS: dict[str, tuple[str, Any]] = {
    "--model": ("model", str),
    "--tensor-parallel-size": ("tensor_parallel_size", int), "-tp": ("tensor_parallel_size", int),
    "--pipeline-parallel-size": ("pipeline_parallel_size", int), "-pp": ("pipeline_parallel_size", int),
    "--gpu-memory-utilization": ("gpu_memory_utilization", float),
    "--max-model-len": ("max_model_len", human_readable_int),
    "--kv-cache-dtype": ("kv_cache_dtype", KV_CACHE_DTYPES),
    "--dtype": ("dtype", DTYPES),
}
_TYPE_NAMES = {int: "int", float: "float", human_readable_int: "human_readable_int", str: "str"}


def parse_args(argv: Sequence[str]) -> VllmArgs:
    """Read the options the rules need from vLLM's command line; other options are left alone.

    Accepts `--opt=value` and `--opt value`, `--served-model-name` with one or more names, and the
    positional model of `vllm serve`. Bad values raise ArgError with argparse's wording.
    """
    args = VllmArgs()
    items = list(argv)
    i = 0
    while i < len(items):
        token = items[i]
        name, eq, inline = token.partition("=")
        if name == "--served-model-name":
            values = [inline] if eq else []
            while not eq and i + 1 < len(items) and not items[i + 1].startswith("-"):
                i += 1
                values.append(items[i])
            if not values:
                raise ArgError(f"{PROG}: error: argument --served-model-name: expected at least one argument")
            args.served_model_name = values
        elif name in _OPTIONS:
            if eq:
                raw = inline
            elif i + 1 < len(items):
                i += 1
                raw = items[i]
            else:
                raise ArgError(f"{PROG}: error: argument {_flag(name)}: expected one argument")
            attr, kind = _OPTIONS[name]
            setattr(args, attr, _convert(name, raw, kind))
        elif token in ("serve",) and i == 0:
            pass
        elif not token.startswith("-") and i > 0 and items[i - 1] == "serve":
            args.model = token
        i += 1
    return args


def _flag(name: str) -> str:
    aliases = {"--tensor-parallel-size": "--tensor-parallel-size/-tp", "-tp": "--tensor-parallel-size/-tp",
               "--pipeline-parallel-size": "--pipeline-parallel-size/-pp", "-pp": "--pipeline-parallel-size/-pp"}
    return aliases.get(name, name)


def _convert(name: str, raw: str, kind: Any) -> Any:
    if isinstance(kind, tuple):
        if raw not in kind:
            choices = ", ".join(f"'{c}'" for c in kind)
            raise ArgError(f"{PROG}: error: argument {_flag(name)}: invalid choice: '{raw}' (choose from {choices})")
        return raw
    try:
        return kind(raw)
    except ValueError as exc:
        if kind is human_readable_int and "Decimals" in str(exc):
            raise ArgError(f"{PROG}: error: argument {_flag(name)}: {exc}") from None
        raise ArgError(f"{PROG}: error: argument {_flag(name)}: invalid {_TYPE_NAMES[kind]} value: '{raw}'") from None


@dataclass(frozen=True)
class ModelShape:
    """What config.json and the weights say about a model."""

    total_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    derived_max_len: int
    max_len_key: str
    torch_dtype: str = "bfloat16"
    hidden_size: int = 0
    intermediate_size: int = 0
    vocab_size: int = 0

    @classmethod
    def from_config(cls, config: Mapping[str, Any], total_size: int) -> "ModelShape":
        cfg = dict(config.get("text_config") or config)
        heads = int(cfg.get("num_attention_heads") or 1)
        hidden = int(cfg.get("hidden_size") or 0)
        present = {k: int(cfg[k]) for k in MAX_LEN_KEYS if cfg.get(k)}
        key = min(present, key=present.get) if present else "default"
        return cls(total_size=int(total_size), num_hidden_layers=int(cfg.get("num_hidden_layers") or 1),
                   num_attention_heads=heads,
                   num_key_value_heads=int(cfg.get("num_key_value_heads") or heads),
                   head_dim=int(cfg.get("head_dim") or (hidden // heads if hidden else 128)),
                   derived_max_len=present[key] if present else 2048, max_len_key=key,
                   torch_dtype=str(cfg.get("torch_dtype") or cfg.get("dtype") or "bfloat16"),
                   hidden_size=hidden, intermediate_size=int(cfg.get("intermediate_size") or 0),
                   vocab_size=int(cfg.get("vocab_size") or 0))


@dataclass(frozen=True)
class Placement:
    """What the pod was given: GPUs (count and memory), /dev/shm, its environment and identity."""

    gpus: int
    gpu_memory_mib: int
    shm_bytes: int = DEFAULT_SHM_BYTES
    env: Mapping[str, str] = field(default_factory=dict)
    pod_ip: str = "10.128.2.15"
    hostname: str = "predictor"


@dataclass
class Verdict:
    """How this start ends: `ready` after `seconds`, or `exit` with `log` and `exit_code`."""

    outcome: str          # "ready" | "exit"
    rule: str             # which rule decided (tests and the sim's own log name it)
    seconds: float        # simulated real seconds from container start
    log: list[str] = field(default_factory=list)
    exit_code: int = 1
    max_model_len: int = 0
    kv_cache_bytes: int = 0
    kv_cache_tokens: int = 0

    @property
    def message(self) -> str:
        """The exception line that ends vLLM's own report (the root cause)."""
        return self.log[-1] if self.log else ""


# ---- memory arithmetic -------------------------------------------------------------------------

def model_dtype(args: VllmArgs, shape: ModelShape) -> str:
    """--dtype auto is the config's torch_dtype, float32 checkpoints run in bfloat16 (config/model.py)."""
    if args.dtype != "auto":
        return {"half": "float16", "float": "float32"}.get(args.dtype, args.dtype)
    return "bfloat16" if shape.torch_dtype in ("float32", "float") else shape.torch_dtype


def kv_dtype_bytes(args: VllmArgs, shape: ModelShape) -> int:
    if args.kv_cache_dtype == "auto":
        return DTYPE_BYTES.get(model_dtype(args, shape), 2)
    return DTYPE_BYTES[args.kv_cache_dtype]


def kv_block_bytes(args: VllmArgs, shape: ModelShape) -> int:
    """Bytes of one 16-token block across this GPU's layers: 2 x block x KV heads x head_dim x dtype."""
    kv_heads = max(1, shape.num_key_value_heads // args.tensor_parallel_size)
    layers = math.ceil(shape.num_hidden_layers / args.pipeline_parallel_size)
    return layers * 2 * BLOCK_SIZE * kv_heads * shape.head_dim * kv_dtype_bytes(args, shape)


def kv_needed_bytes(args: VllmArgs, shape: ModelShape, max_len: int) -> int:
    """FullAttentionSpec.max_memory_usage_bytes summed over the layers."""
    return math.ceil(max_len / BLOCK_SIZE) * kv_block_bytes(args, shape)


def estimate_max_model_len(args: VllmArgs, shape: ModelShape, max_len: int, available: int) -> int:
    """The longest length whose KV cache fits `available`, found by binary search as vLLM does."""
    if kv_needed_bytes(args, shape, 1) > available:
        return 0
    lo, hi, best = 1, max_len, 1
    while lo <= hi:
        mid = (lo + hi) // 2
        if kv_needed_bytes(args, shape, mid) <= available:
            best, lo = mid, mid + 1
        else:
            hi = mid - 1
    return best


def weights_per_gpu(args: VllmArgs, shape: ModelShape) -> int:
    return math.ceil(shape.total_size / args.world_size)


def available_kv_bytes(args: VllmArgs, shape: ModelShape, place: Placement) -> int:
    requested = place.gpu_memory_mib * MiB * args.gpu_memory_utilization
    return int(requested - weights_per_gpu(args, shape) - NON_KV_OVERHEAD_BYTES)


def torch_size(nbytes: float) -> str:
    """PyTorch's format_size (c10/cuda/CUDACachingAllocator.cpp): bytes, KiB, MiB or GiB, 2 decimals."""
    if nbytes <= 1024:
        return f"{int(nbytes)} bytes"
    if nbytes <= MiB:
        return f"{nbytes / 1024:.2f} KiB"
    if nbytes <= GiB:
        return f"{nbytes / MiB:.2f} MiB"
    return f"{nbytes / GiB:.2f} GiB"


def allocation_order(args: VllmArgs, shape: ModelShape) -> list[int]:
    """The per-GPU parameter tensors in the order vLLM allocates them at model init.

    Embedding, then per layer qkv, o, gate_up, down, then lm_head, each split by tensor parallelism;
    scaled to the checkpoint's real total_size (quantized weights are smaller than this layout).
    """
    tp, dt = args.tensor_parallel_size, DTYPE_BYTES.get(model_dtype(args, shape), 2)
    h, inter, vocab = shape.hidden_size, shape.intermediate_size, shape.vocab_size
    layers = math.ceil(shape.num_hidden_layers / args.pipeline_parallel_size)
    if not (h and inter and vocab):
        chunks = layers + 2
        return [weights_per_gpu(args, shape) // chunks] * chunks
    q = shape.num_attention_heads * shape.head_dim
    kv = 2 * shape.num_key_value_heads * shape.head_dim
    per_layer = [(q + kv) * h * dt // tp, q * h * dt // tp, 2 * inter * h * dt // tp, inter * h * dt // tp]
    embed = vocab * h * dt // tp
    layout = [embed] + per_layer * layers + [embed]
    scale = weights_per_gpu(args, shape) / sum(layout)
    return [int(t * scale) for t in layout]


# ---- the log, rendered ---------------------------------------------------------------------------

SITE = "/opt/app-root/lib64/python3.12/site-packages"
ENGINE_PID, WORKER_PID = 272, 431


class _Log:
    """Builds a vLLM 0.11-shaped log: `(Process pid=N) LEVEL MM-DD HH:MM:SS [file:line] message`."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, who: str, level: str, where: str, text: str) -> None:
        for line in text.split("\n"):
            self.lines.append(f"({who}) {level} 01-01 00:00:00 [{where}] {line}")

    def raw(self, who: str, text: str) -> None:
        for line in text.split("\n"):
            self.lines.append(f"({who}) {line}" if who else line)

    def traceback(self, who: str, frames: Sequence[tuple[str, int, str, str]], exc: str,
                  level: str = "", where: str = "") -> None:
        body = ["Traceback (most recent call last):"]
        for path, line, func, code in frames:
            body.append(f'  File "{path}", line {line}, in {func}')
            if code:
                body.append(f"    {code}")
        body.extend(exc.split("\n"))
        for text in body:
            if level:
                self.add(who, level, where, text)
            else:
                self.raw(who, text)


def _v(path: str) -> str:
    return f"{SITE}/vllm/{path}"


API = "APIServer pid=1"
ENGINE = f"EngineCore_DP0 pid={ENGINE_PID}"

_API_FRAMES = [
    ("<frozen runpy>", 198, "_run_module_as_main", ""),
    ("<frozen runpy>", 88, "_run_code", ""),
    (_v("entrypoints/openai/api_server.py"), 1953, "<module>", "uvloop.run(run_server(args))"),
    (f"{SITE}/uvloop/__init__.py", 109, "run", "return __asyncio.run("),
    ("/usr/lib64/python3.12/asyncio/runners.py", 195, "run", "return runner.run(main)"),
    ("/usr/lib64/python3.12/asyncio/runners.py", 118, "run", "return self._loop.run_until_complete(task)"),
    ("uvloop/loop.pyx", 1518, "uvloop.loop.Loop.run_until_complete", ""),
    (f"{SITE}/uvloop/__init__.py", 61, "wrapper", "return await main"),
    (_v("entrypoints/openai/api_server.py"), 1884, "run_server",
     "await run_server_worker(listen_address, sock, args, **uvicorn_kwargs)"),
    (_v("entrypoints/openai/api_server.py"), 1902, "run_server_worker", "async with build_async_engine_client("),
    ("/usr/lib64/python3.12/contextlib.py", 210, "__aenter__", "return await anext(self.gen)"),
    (_v("entrypoints/openai/api_server.py"), 180, "build_async_engine_client",
     "async with build_async_engine_client_from_engine_args("),
    ("/usr/lib64/python3.12/contextlib.py", 210, "__aenter__", "return await anext(self.gen)"),
]
_ENGINE_CLIENT_FRAMES = [
    (_v("entrypoints/openai/api_server.py"), 225, "build_async_engine_client_from_engine_args",
     "async_llm = AsyncLLM.from_vllm_config("),
    (_v("utils/__init__.py"), 1572, "inner", "return fn(*args, **kwargs)"),
    (_v("v1/engine/async_llm.py"), 207, "from_vllm_config", "return cls("),
    (_v("v1/engine/async_llm.py"), 134, "__init__", "self.engine_core = EngineCoreClient.make_async_mp_client("),
    (_v("v1/engine/core_client.py"), 102, "make_async_mp_client", "return AsyncMPClient(*client_args)"),
    (_v("v1/engine/core_client.py"), 769, "__init__", "super().__init__("),
    (_v("v1/engine/core_client.py"), 448, "__init__", "with launch_core_engines(vllm_config, executor_class,"),
    ("/usr/lib64/python3.12/contextlib.py", 144, "__exit__", "next(self.gen)"),
    (_v("v1/engine/utils.py"), 732, "launch_core_engines", "wait_for_engine_startup("),
    (_v("v1/engine/utils.py"), 785, "wait_for_engine_startup", 'raise RuntimeError("Engine core initialization failed. "'),
]
_CONFIG_FRAMES = [
    (_v("entrypoints/openai/api_server.py"), 212, "build_async_engine_client_from_engine_args",
     "vllm_config = engine_args.create_engine_config(usage_context=usage_context)"),
]
_ENGINE_FRAMES = [
    (_v("v1/engine/core.py"), 699, "run_engine_core", "engine_core = EngineCoreProc(*args, **kwargs)"),
    (_v("v1/engine/core.py"), 498, "__init__", "super().__init__(vllm_config, executor_class, log_stats,"),
]
_EXECUTOR_FRAME = (_v("v1/engine/core.py"), 83, "__init__", "self.model_executor = executor_class(vllm_config)")
_KV_FRAMES = [
    (_v("v1/engine/core.py"), 92, "__init__", "self._initialize_kv_caches(vllm_config)"),
    (_v("v1/engine/core.py"), 199, "_initialize_kv_caches",
     "kv_cache_configs = get_kv_cache_configs(vllm_config, kv_cache_specs,"),
    (_v("v1/core/kv_cache_utils.py"), 1243, "get_kv_cache_configs",
     "check_enough_kv_cache_memory(vllm_config, kv_cache_spec_one_worker,"),
]


def _engine_failure(log: _Log, frames: Sequence[tuple[str, int, str, str]], exc: str) -> None:
    """The engine core's report of `exc` and the API server's that follows it (v1/engine/core.py:708)."""
    log.add(ENGINE, "ERROR", "core.py:708", "EngineCore failed to start.")
    log.traceback(ENGINE, list(_ENGINE_FRAMES) + list(frames), exc, "ERROR", "core.py:708")
    log.raw(ENGINE, "Process EngineCore_DP0:")
    log.traceback(ENGINE, [("/usr/lib64/python3.12/multiprocessing/process.py", 314, "_bootstrap", "self.run()"),
                           ("/usr/lib64/python3.12/multiprocessing/process.py", 108, "run",
                            "self._target(*self._args, **self._kwargs)"),
                           (_v("v1/engine/core.py"), 712, "run_engine_core", "raise e")]
                  + list(_ENGINE_FRAMES) + list(frames), exc)
    log.traceback(API, _API_FRAMES + _ENGINE_CLIENT_FRAMES,
                  "RuntimeError: Engine core initialization failed. See root cause above. "
                  "Failed core proc(s): {'EngineCore_DP0': 1}")


def _startup(log: _Log, args: VllmArgs, argv: Sequence[str]) -> None:
    log.add(API, "INFO", "api_server.py:1839", f"vLLM API server version {VLLM_VERSION}")
    log.add(API, "INFO", "utils.py:233", f"non-default args: {{'model': {args.model!r}, 'argv': {list(argv)!r}}}")


def pydantic_error(model: str, message: str) -> str:
    """A ValueError raised in a pydantic config dataclass's __post_init__, as pydantic 2.11 wraps it."""
    return (f"pydantic_core._pydantic_core.ValidationError: 1 validation error for {model}\n"
            f"  Value error, {message} [type=value_error, input_value=ArgsKwargs((), {{...}}), "
            "input_type=ArgsKwargs]\n"
            "    For further information visit https://errors.pydantic.dev/2.11/v/value_error")


# ---- the rules -------------------------------------------------------------------------------------

def judge(argv: Sequence[str], shape: ModelShape | None, place: Placement, model_dir: str = "/mnt/models",
          has_weights: bool = True) -> Verdict:
    """Decide how a vLLM start with command line `argv` ends on `place`; the first failing rule wins.

    `shape` is None when the model directory has no config.json.
    """
    log = _Log()
    try:
        args = parse_args(argv)
    except ArgError as exc:
        log.raw("", f"usage: {PROG} [-h] [--model MODEL] ... (simulated usage line)")
        log.raw("", str(exc))
        return Verdict("exit", "arguments", 2.0, log.lines, exit_code=2)
    _startup(log, args, argv)
    config_fail = lambda rule, exc, frames=(): Verdict(  # noqa: E731
        "exit", rule, CONFIG_CHECK_S, _api_failure(log, frames, exc))

    # config/device.py (DeviceConfig): no GPU visible in the container, no platform detected.
    if place.gpus < 1:
        return config_fail("no-gpu", "RuntimeError: Failed to infer device type, please set the environment "
                           "variable `VLLM_LOGGING_LEVEL=DEBUG` to turn on verbose logging to help debug the issue.")
    # transformers_utils/config.py maybe_override_with_speculators -> transformers' get_config_dict.
    if shape is None:
        return config_fail("no-config", f"OSError: {model_dir} does not appear to have a file named config.json. "
                           f"Checkout 'https://huggingface.co/{model_dir}/tree/None' for available files.")
    # config/model.py _get_and_verify_max_len.
    max_len = args.max_model_len or shape.derived_max_len
    if args.max_model_len and args.max_model_len > shape.derived_max_len and \
            place.env.get("VLLM_ALLOW_LONG_MAX_MODEL_LEN", "0") not in ("1", "true", "True"):
        msg = (f"User-specified max_model_len ({args.max_model_len}) is greater than the derived max_model_len "
               f"({shape.max_len_key}={float(shape.derived_max_len)} or model_max_length=None in model's "
               "config.json). To allow overriding this maximum, set the env var VLLM_ALLOW_LONG_MAX_MODEL_LEN=1. "
               "VLLM_ALLOW_LONG_MAX_MODEL_LEN must be used with extreme caution. If the model uses relative "
               "position encoding (RoPE), positions exceeding derived_max_model_len lead to nan. If the model uses "
               "absolute position encoding, positions exceeding derived_max_model_len will cause a CUDA array "
               "out-of-bounds error.")
        return config_fail("max-model-len-above-derived", pydantic_error("ModelConfig", msg))
    log.add(API, "INFO", "model.py:1510", f"Using max model len {max_len}")
    # config/model.py verify_with_parallel_config (called from VllmConfig.__post_init__).
    if shape.num_attention_heads % args.tensor_parallel_size:
        return config_fail("heads-not-divisible", pydantic_error(
            "VllmConfig", f"Total number of attention heads ({shape.num_attention_heads}) must be divisible by "
                          f"tensor parallel size ({args.tensor_parallel_size})."))

    # config/parallel.py: more ranks than local GPUs selects Ray; executor/ray_utils.py then waits
    # PG_WAIT_TIMEOUT for a placement group this single pod can never provide.
    if args.world_size > place.gpus:
        return _placement_group_timeout(log, args, place)
    # NCCL's SHM transport between the ranks (misc/shmutils.cc) fails in a too small /dev/shm.
    if args.world_size > 1 and place.shm_bytes < SHM_NEEDED_BYTES:
        return _nccl_shm_failure(log, place)
    # model_executor/model_loader/default_loader.py: no *.safetensors (nor *.bin) files.
    if not has_weights:
        return _worker_failure(log, args, MODEL_INIT_S,
                               f"RuntimeError: Cannot find any model weights with `{model_dir}`", "no-weights")
    # PyTorch's caching allocator runs out while vLLM allocates the parameters.
    total = place.gpu_memory_mib * MiB
    if weights_per_gpu(args, shape) + CUDA_CONTEXT_BYTES > total:
        return _worker_failure(log, args, MODEL_INIT_S, _torch_oom(args, shape, place), "cuda-oom")

    load_s = MODEL_INIT_S + weights_per_gpu(args, shape) / LOAD_BYTES_PER_S
    kv_s = load_s + PROFILE_S
    log.add(ENGINE, "INFO", "gpu_model_runner.py:2653",
            f"Model loading took {weights_per_gpu(args, shape) / GiB:.4f} GiB and {load_s - MODEL_INIT_S:.6f} seconds")
    available = available_kv_bytes(args, shape, place)
    # v1/core/kv_cache_utils.py check_enough_kv_cache_memory.
    if available <= 0:
        exc = ("ValueError: No available memory for the cache blocks. Try increasing `gpu_memory_utilization` "
               "when initializing the engine.")
        _engine_failure(log, _KV_FRAMES, exc)
        return Verdict("exit", "no-kv-memory", kv_s, log.lines)
    log.add(ENGINE, "INFO", "gpu_worker.py:298", f"Available KV cache memory: {available / GiB:.2f} GiB")
    needed = kv_needed_bytes(args, shape, max_len)
    if needed > available:
        estimated = estimate_max_model_len(args, shape, max_len, available)
        estimated_msg = (f"Based on the available memory, the estimated maximum model length is {estimated}."
                         if estimated > 0 else "")
        exc = (f"ValueError: To serve at least one request with the models's max seq len ({max_len}), "
               f"({needed / GiB:.2f} GiB KV cache is needed, which is larger than the available KV cache memory "
               f"({available / GiB:.2f} GiB). {estimated_msg} Try increasing `gpu_memory_utilization` or "
               "decreasing `max_model_len` when initializing the engine.")
        _engine_failure(log, _KV_FRAMES, exc)
        return Verdict("exit", "max-model-len", kv_s, log.lines)
    blocks = available // kv_block_bytes(args, shape)
    tokens = blocks * BLOCK_SIZE
    log.add(ENGINE, "INFO", "kv_cache_utils.py:1087", f"GPU KV cache size: {tokens:,} tokens")
    log.add(ENGINE, "INFO", "kv_cache_utils.py:1091",
            f"Maximum concurrency for {max_len:,} tokens per request: {tokens / max_len:.2f}x")
    log.add(API, "INFO", "api_server.py:1971", "Starting vLLM API server 0 on http://0.0.0.0:8080")
    log.raw("", "INFO:     Application startup complete.")
    return Verdict("ready", "fits", kv_s + READY_AFTER_PROFILE_S, log.lines, exit_code=0, max_model_len=max_len,
                   kv_cache_bytes=available, kv_cache_tokens=tokens)


def _api_failure(log: _Log, frames: Sequence[tuple[str, int, str, str]], exc: str) -> list[str]:
    """An error raised in the API server process while it builds the engine config."""
    log.traceback(API, _API_FRAMES + list(frames or _CONFIG_FRAMES), exc)
    return log.lines


def _worker_failure(log: _Log, args: VllmArgs, seconds: float, exc: str, rule: str) -> Verdict:
    """An error while loading the model: in the engine core itself (one rank) or in a worker process."""
    load_frames = [(_v("v1/worker/gpu_worker.py"), 234, "load_model", "self.model_runner.load_model(eep_scale_up=eep_scale_up)"),
                   (_v("v1/worker/gpu_model_runner.py"), 2602, "load_model", "self.model = model_loader.load_model("),
                   (_v("model_executor/model_loader/base_loader.py"), 45, "load_model", "model = initialize_model(")]
    if args.world_size == 1:
        _engine_failure(log, [_EXECUTOR_FRAME,
                              (_v("v1/executor/abstract.py"), 101, "__init__", "self._init_executor()"),
                              (_v("executor/uniproc_executor.py"), 55, "_init_executor",
                               'self.collective_rpc("load_model")')] + load_frames, exc)
    else:
        worker = f"Worker_TP0 pid={WORKER_PID}"
        log.add(worker, "ERROR", "multiproc_executor.py:597", "WorkerProc failed to start.")
        log.traceback(worker, load_frames, exc, "ERROR", "multiproc_executor.py:597")
        _engine_failure(log, [_EXECUTOR_FRAME, (_v("v1/executor/multiproc_executor.py"), 106, "_init_executor",
                                                "self.workers = WorkerProc.wait_for_ready(unready_workers)"),
                              (_v("v1/executor/multiproc_executor.py"), 509, "wait_for_ready", "raise e from None")],
                        "Exception: WorkerProc initialization failed due to an exception in a background process. "
                        "See stack trace for root cause.")
    return Verdict("exit", rule, seconds, log.lines)


def _torch_oom(args: VllmArgs, shape: ModelShape, place: Placement) -> str:
    """torch.OutOfMemoryError at the parameter that no longer fits (PyTorch 2.8's message)."""
    total = place.gpu_memory_mib * MiB
    room = total - CUDA_CONTEXT_BYTES
    allocated = 0
    tried = 0
    for size in allocation_order(args, shape):
        if allocated + size > room:
            tried = size
            break
        allocated += size
    free = total - CUDA_CONTEXT_BYTES - allocated
    return (f"torch.OutOfMemoryError: CUDA out of memory. Tried to allocate {torch_size(tried)}. GPU 0 has a total "
            f"capacity of {torch_size(total)} of which {torch_size(free)} is free. Including non-PyTorch memory, "
            f"this process has {torch_size(total - free)} memory in use. Of the allocated memory "
            f"{torch_size(allocated)} is allocated by PyTorch, and 0 bytes is reserved by PyTorch but unallocated. "
            "If reserved but unallocated memory is large try setting PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True "
            "to avoid fragmentation.  See documentation for Memory Management  "
            "(https://pytorch.org/docs/stable/notes/cuda.html#environment-variables)")


def _placement_group_timeout(log: _Log, args: VllmArgs, place: Placement) -> Verdict:
    specs = [{"GPU": 1.0} for _ in range(args.world_size)]
    specs[0][f"node:{place.pod_ip}"] = 0.001
    log.add(ENGINE, "WARNING", "ray_utils.py:352", "The number of required GPUs exceeds the total number of "
            "available GPUs in the placement group.")
    waited, interval = 0, 10
    while waited + interval < PLACEMENT_GROUP_TIMEOUT_S:
        waited += interval
        log.add(ENGINE, "INFO", "ray_utils.py:238", f"Waiting for creating a placement group of specs for {waited} "
                f"seconds. specs={specs}. Check `ray status` and `ray list nodes` to see if you have enough "
                "resources, and make sure the IP addresses used by ray cluster are the same as VLLM_HOST_IP "
                "environment variable specified in each node if you are running on a multi-node.")
        interval *= 2
    exc = (f"ValueError: Cannot provide a placement group of placement_group_specs={specs} within "
           f"{PLACEMENT_GROUP_TIMEOUT_S} seconds. See `ray status` and `ray list nodes` to make sure the cluster "
           "has enough resources.")
    _engine_failure(log, [_EXECUTOR_FRAME,
                          (_v("v1/executor/ray_distributed_executor.py"), 48, "_init_executor",
                           "super()._init_executor()"),
                          (_v("executor/ray_distributed_executor.py"), 108, "_init_executor",
                           "initialize_ray_cluster(self.parallel_config)"),
                          (_v("executor/ray_utils.py"), 377, "initialize_ray_cluster",
                           "_wait_until_pg_ready(current_placement_group)"),
                          (_v("executor/ray_utils.py"), 252, "_wait_until_pg_ready", "raise ValueError(")], exc)
    return Verdict("exit", "tensor-parallel-above-gpus", NCCL_INIT_S + PLACEMENT_GROUP_TIMEOUT_S, log.lines)


def _nccl_shm_failure(log: _Log, place: Placement) -> Verdict:
    """vLLM's pynccl wrapper raises NCCL's ncclSystemError text; NCCL's WARN lines only with NCCL_DEBUG."""
    worker = f"Worker_TP0 pid={WORKER_PID}"
    if place.env.get("NCCL_DEBUG", "").upper() in ("WARN", "INFO", "TRACE"):
        path = "/dev/shm/nccl-Dq3vTk"
        who = f"{place.hostname}:{WORKER_PID}:{WORKER_PID + 37} [0]"
        log.raw(worker, "")
        log.raw(worker, f"{who} misc/shmutils.cc:87 NCCL WARN Error: failed to extend {path} to "
                        f"{NCCL_SHM_SEGMENT_BYTES + 4} bytes, error: No space left on device (28)")
        log.raw(worker, "")
        log.raw(worker, f"{who} misc/shmutils.cc:128 NCCL WARN Error while creating shared memory segment {path} "
                        f"(size {NCCL_SHM_SEGMENT_BYTES}), error: No space left on device (28)")
    frames = [(_v("v1/worker/gpu_worker.py"), 188, "init_device", "init_worker_distributed_environment(self.vllm_config,"),
              (_v("distributed/parallel_state.py"), 1180, "initialize_model_parallel", "_TP = init_model_parallel_group("),
              (_v("distributed/device_communicators/pynccl.py"), 139, "__init__", "self.all_reduce(data)"),
              (_v("distributed/device_communicators/pynccl_wrapper.py"), 291, "NCCL_CHECK",
               'raise RuntimeError(f"NCCL error: {error_str}")')]
    log.add(worker, "ERROR", "multiproc_executor.py:597", "WorkerProc failed to start.")
    log.traceback(worker, frames, "RuntimeError: NCCL error: unhandled system error (run with NCCL_DEBUG=INFO for details)",
                  "ERROR", "multiproc_executor.py:597")
    _engine_failure(log, [_EXECUTOR_FRAME, (_v("v1/executor/multiproc_executor.py"), 106, "_init_executor",
                                            "self.workers = WorkerProc.wait_for_ready(unready_workers)"),
                          (_v("v1/executor/multiproc_executor.py"), 509, "wait_for_ready", "raise e from None")],
                    "Exception: WorkerProc initialization failed due to an exception in a background process. "
                    "See stack trace for root cause.")
    return Verdict("exit", "nccl-shm", NCCL_INIT_S, log.lines)


def root_cause(log: Sequence[str]) -> str:
    """The first exception line of a rendered log: what `oc logs` readers look for."""
    for line in log:
        text = line.split("] ", 1)[-1] if "] " in line and line.startswith("(") else line
        text = re.sub(r"^\([^)]*\) ", "", text)
        if re.match(r"^[A-Za-z_.]*(Error|Exception)\b[:]? ", text) or text.startswith("pydantic_core."):
            return text
    return ""
