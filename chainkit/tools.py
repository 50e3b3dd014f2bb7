"""Tools: an LLM prompted to do exactly one task, declared by a `ToolSpec`.

Calling a tool renders its prompt (sandboxed Jinja2), asks a backend, validates the answer against the
output model and returns a `ToolResult`. Structured output uses the backend's constrained decoding
when it has one; otherwise the answer is parsed and, on a validation error, re-asked with that error,
bounded by `max_attempts` and `reask_token_budget`. Only the latest failed answer is carried into a
re-ask, so the context grows by one exchange at most (never with every failure). Transport errors are
retried inside the backend and are never shown to the model.
"""

from __future__ import annotations

import dataclasses
import json
import re
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from chainkit import tracing
from chainkit._bounded_schema import bounded_schema, describe_fields
from chainkit.backends import resolve_backend
from chainkit.backends.base import (
    Backend,
    Completion,
    CompletionRequest,
    Message,
    ModelSettings,
    Usage,
    request_gate,
)
from chainkit.errors import BudgetExceeded, DefinitionError, ToolError, ToolOutputError, UsageError
from chainkit.prompts import Template, build_messages
from chainkit.tokens import count_messages, counter_for, fit_by_trimming

OutputT = TypeVar("OutputT")

# How much of a failed answer is quoted back in a re-ask: enough to fix it, bounded so a runaway answer
# cannot blow up the next prompt.
_REASK_QUOTE_CHARS = 2000
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")


@dataclass(slots=True)
class Attempt:
    """One request to the backend and what came back."""

    number: int
    messages: list[Message]
    text: str
    usage: Usage
    latency_s: float
    error: str | None = None  # why the answer was rejected; None when it was accepted
    constrained: bool = False  # the backend enforced the output schema while decoding
    finish_reason: str | None = None  # "length" means the answer ran out of max_tokens


@dataclass(slots=True)
class ToolResult(Generic[OutputT]):
    output: OutputT
    tool: str
    model: str
    attempts: list[Attempt]
    usage: Usage
    latency_s: float
    messages: list[Message]  # exactly what was sent in the accepted attempt
    trimmed: dict[str, int] = field(default_factory=dict)  # items dropped per trimmable field
    cost_usd: float | None = None  # over all attempts; None when the backend's prices are unknown

    @property
    def text(self) -> str:
        return self.attempts[-1].text


class ToolSpec(BaseModel):
    """The declaration of a tool. Pure data apart from the input and output model classes."""

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True, extra="forbid")

    name: str
    description: str = ""
    input: type[BaseModel]
    output: type[BaseModel] | None = None  # None: the answer is plain text
    system: str | None = None
    user: str
    settings: ModelSettings = Field(default_factory=ModelSettings)
    model: str | None = None  # model string override (see chainkit.backends)
    max_attempts: int = Field(3, ge=1, le=20)
    reask_token_budget: int | None = Field(None, ge=1)
    prompt_budget: int | None = Field(None, ge=1)
    trimmable: tuple[str, ...] = ()
    # The YAML definition this spec was loaded from, if any: dumping writes it back as it was written.
    definition: Any = Field(None, exclude=True, repr=False)

    _system: Template | None = PrivateAttr(None)
    _user: Template = PrivateAttr()

    @model_validator(mode="after")
    def _check(self) -> ToolSpec:
        if not _NAME.match(self.name):
            raise DefinitionError(f"tool name {self.name!r} must be an identifier (letters, digits, _ . -)")
        fields = self.input.model_fields
        self._system = Template(self.system, owner=self.name, role="system") if self.system else None
        self._user = Template(self.user, owner=self.name, role="user")
        known = set(fields) | {"input"}
        for role, template in (("system", self._system), ("user", self._user)):
            if template is None:
                continue
            unknown = sorted(template.variables - known)
            if unknown:
                raise DefinitionError(
                    f"{role} template uses {', '.join(unknown)}, which the input model "
                    f"{self.input.__name__} does not have (fields: {', '.join(fields) or 'none'})",
                    path=f"tools.{self.name}.{role}",
                )
        for name in self.trimmable:
            if name not in fields:
                raise DefinitionError(
                    f"trimmable field {name!r} is not an input field (fields: {', '.join(fields)})",
                    path=f"tools.{self.name}.trimmable",
                )
        return self


class Tool(Generic[OutputT]):
    """A callable tool. `await tool(input)` -> `ToolResult`; `tool.run_sync(input)` from scripts."""

    def __init__(self, spec: ToolSpec, *, backend: Backend | str | None = None) -> None:
        self.spec = spec
        self._backend = backend
        output = spec.output
        self._instructions = ""
        self._schema_cache: dict[int | None, dict[str, Any]] = {}
        if output is not None:
            self._instructions = (
                "Reply with one JSON object and nothing else (no prose, no code fence). Its fields:\n"
                + describe_fields(output)
            )

    @property
    def name(self) -> str:
        return self.spec.name

    def __repr__(self) -> str:
        return f"<Tool {self.spec.name}>"

    @property
    def backend(self) -> Backend:
        return resolve_backend(self._backend or self.spec.model)

    # -- calling -------------------------------------------------------------------------------------

    async def __call__(self, input: BaseModel | Mapping[str, Any] | None = None, /, **kwargs: Any) -> ToolResult[OutputT]:
        result: ToolResult[OutputT] | None = None
        async for item in self._run(input, kwargs, streaming=False):
            result = item  # type: ignore[assignment]
        assert result is not None
        return result

    async def stream(
        self, input: BaseModel | Mapping[str, Any] | None = None, /, **kwargs: Any
    ) -> AsyncIterator[str | ToolResult[OutputT]]:
        """Yield text deltas of the first attempt as they arrive, then the `ToolResult`.

        For structured tools the deltas are the raw JSON text; a re-ask (if the first answer fails
        validation) runs without streaming.
        """
        async for item in self._run(input, kwargs, streaming=True):
            yield item

    def run_sync(self, input: BaseModel | Mapping[str, Any] | None = None, /, **kwargs: Any) -> ToolResult[OutputT]:
        from chainkit._sync import run_sync

        return run_sync(self(input, **kwargs))

    # -- machinery -----------------------------------------------------------------------------------

    def validate_input(self, input: BaseModel | Mapping[str, Any] | None, kwargs: Mapping[str, Any]) -> BaseModel:
        model = self.spec.input
        if isinstance(input, model) and not kwargs:
            return input
        if isinstance(input, BaseModel):
            data = input.model_dump()
        else:
            data = dict(input or {})
        data.update(kwargs)
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            raise ToolError(f"invalid input: {_validation_text(exc)}", tool=self.spec.name) from exc

    def render(self, data: BaseModel, backend: Backend | None = None) -> tuple[list[Message], dict[str, int]]:
        """The messages this tool sends for `data`, trimmed to the prompt budget."""
        spec = self.spec
        values = {name: getattr(data, name) for name in spec.input.model_fields}
        values["input"] = data
        budget = spec.prompt_budget
        if budget is None:
            return self._messages(values), {}
        counter = counter_for(backend)

        def measure(trial: dict[str, Any]) -> int:
            return count_messages(self._messages(trial), counter)

        values, tokens, dropped = fit_by_trimming(values, spec.trimmable, measure, budget)
        if tokens > budget:
            trimmed = f" after trimming {', '.join(spec.trimmable)}" if spec.trimmable else ""
            raise BudgetExceeded(
                f"prompt needs {tokens} tokens{trimmed}, budget is {budget}",
                tool=spec.name,
                tokens=tokens,
                budget=budget,
            )
        return self._messages(values), dropped

    def _messages(self, values: Mapping[str, Any]) -> list[Message]:
        spec = self.spec
        system = spec._system.render(values) if spec._system is not None else None
        if self._instructions:
            system = f"{system}\n\n{self._instructions}" if system else self._instructions
        return build_messages(system, spec._user.render(values))

    def output_schema(self, max_tokens: int | None) -> dict[str, Any]:
        schema = self._schema_cache.get(max_tokens)
        if schema is None:
            assert self.spec.output is not None
            schema = self._schema_cache[max_tokens] = bounded_schema(self.spec.output, max_tokens=max_tokens)
        return schema

    async def _run(
        self, input: BaseModel | Mapping[str, Any] | None, kwargs: Mapping[str, Any], *, streaming: bool
    ) -> AsyncIterator[str | ToolResult[OutputT]]:
        spec = self.spec
        started = time.perf_counter()
        data = self.validate_input(input, kwargs)
        backend = self.backend
        if backend.is_real and not request_gate.allowed:
            raise UsageError(
                f"tool {spec.name!r} tried to call the real backend {backend.name!r} while model requests are "
                "blocked (chainkit.testing.block_model_requests); give the tool a FakeBackend"
            )
        messages, dropped = self.render(data, backend)
        settings = spec.settings
        # The schema goes with every structured request: a backend enforces it where it can (and an
        # OpenAI-compatible one picks json_schema / json_object / prompt-only per server); the answer is
        # validated here either way.
        schema = self.output_schema(settings.max_tokens) if spec.output is not None else None

        attempts: list[Attempt] = []
        usage = Usage()
        conversation = messages
        for number in range(1, spec.max_attempts + 1):
            request = CompletionRequest(
                messages=conversation, settings=settings, json_schema=schema, schema_name=spec.name, tool=spec.name
            )
            call_started = time.perf_counter()
            if streaming and number == 1:
                completion = None
                async with backend.limit:
                    async for item in backend.stream(request):
                        if isinstance(item, Completion):
                            completion = item
                        else:
                            yield item
                if completion is None:
                    raise ToolError("the backend's stream ended without a completion", tool=spec.name)
            else:
                async with backend.limit:
                    completion = await backend.complete(request)
            latency = time.perf_counter() - call_started
            usage = usage + completion.usage
            attempt = Attempt(number, conversation, completion.text, completion.usage, latency,
                              constrained=completion.constrained, finish_reason=completion.finish_reason)
            attempts.append(attempt)
            try:
                output = self._parse(completion.text)
            except _Rejected as rejected:
                attempt.error = rejected.reason
            self._trace(attempt, completion, backend)
            if attempt.error is None:
                yield ToolResult(
                    output=output,
                    tool=spec.name,
                    model=completion.model or backend.name,
                    attempts=attempts,
                    usage=usage,
                    latency_s=time.perf_counter() - started,
                    messages=conversation,
                    trimmed=dropped,
                    cost_usd=usage.cost(backend.capabilities.price_per_million),
                )
                return
            if spec.reask_token_budget is not None and usage.total_tokens >= spec.reask_token_budget:
                break
            if completion.finish_reason == "length":
                # The answer ran out of max_tokens (typically a small model looping inside a string).
                # Quoting it back would only cost tokens; ask afresh for a shorter answer, sampled
                # differently so the same loop is not decoded again.
                settings = _resampled(settings, number)
                conversation = _asking_for_brevity(messages)
            else:
                conversation = [*messages, *_reask_messages(completion.text, attempt.error)]

        last_error = attempts[-1].error
        reason = (
            f"token budget {spec.reask_token_budget} spent ({usage.total_tokens} tokens)"
            if len(attempts) < spec.max_attempts
            else f"{len(attempts)} attempt(s)"
        )
        raise ToolOutputError(
            f"no valid output after {reason}; last error: {last_error}", tool=spec.name, attempts=attempts
        )

    def _parse(self, text: str) -> Any:
        output = self.spec.output
        if output is None:
            return text.strip()
        try:
            data = json.loads(extract_json(text), strict=False)  # strict=False: raw newlines in strings
        except json.JSONDecodeError as exc:
            raise _Rejected(
                f"the answer is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
            ) from None
        try:
            return output.model_validate(data)
        except ValidationError as exc:
            raise _Rejected(_validation_text(exc)) from None

    def _trace(self, attempt: Attempt, completion: Completion, backend: Backend) -> None:
        if not tracing.tracing_enabled():
            return
        tracing.emit(
            "llm_call",
            {
                "tool": self.spec.name,
                "attempt": attempt.number,
                "model": completion.model or backend.name,
                "messages": attempt.messages,
                "response": attempt.text,
                "prompt_tokens": completion.usage.prompt_tokens,
                "completion_tokens": completion.usage.completion_tokens,
                "cached_tokens": completion.usage.cached_tokens,
                "latency_s": attempt.latency_s,
                "cost_usd": completion.usage.cost(backend.capabilities.price_per_million),
                "constrained": completion.constrained,
                "error": attempt.error,
            },
        )


class _Rejected(Exception):
    def __init__(self, reason: str) -> None:
        self.reason = reason


_FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)```", re.DOTALL)


def extract_json(text: str) -> str:
    """The JSON part of an answer: inside a code fence if there is one, else from the first brace or
    bracket to the matching last one."""
    fenced = _FENCE.search(text)
    if fenced:
        return fenced.group(1).strip()
    stripped = text.strip()
    if stripped[:1] in "{[":
        return stripped
    starts = [i for i in (stripped.find("{"), stripped.find("[")) if i >= 0]
    if not starts:
        return stripped
    start = min(starts)
    end = stripped.rfind("}" if stripped[start] == "{" else "]")
    return stripped[start : end + 1] if end > start else stripped[start:]


def _validation_text(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(p) for p in error["loc"]) or "(root)"
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)


_TRUNCATED_NOTE = "(Your previous answer was too long and was cut off. Keep every field brief this time.)"


def _asking_for_brevity(messages: list[Message]) -> list[Message]:
    last = messages[-1]
    return [*messages[:-1], {**last, "content": f"{last['content']}\n\n{_TRUNCATED_NOTE}"}]


def _resampled(settings: ModelSettings, attempt: int) -> ModelSettings:
    """Different sampling for a retry: another seed, a little more temperature."""
    temperature = settings.temperature if settings.temperature is not None else 0.7
    return dataclasses.replace(
        settings,
        seed=(settings.seed or 0) + 1009 * attempt,
        temperature=round(min(1.0, temperature + 0.3), 3),
    )


def _reask_messages(answer: str, error: str) -> list[Message]:
    quoted = answer if len(answer) <= _REASK_QUOTE_CHARS else answer[:_REASK_QUOTE_CHARS] + " ...[cut]"
    return [
        {"role": "assistant", "content": quoted},
        {
            "role": "user",
            "content": f"That answer was rejected: {error}\nReply again with only the corrected JSON object.",
        },
    ]


def tool(
    name: str,
    *,
    input: type[BaseModel],
    output: type[BaseModel] | None = None,
    user: str,
    system: str | None = None,
    backend: Backend | str | None = None,
    **options: Any,
) -> Tool[Any]:
    """Shorthand: build a ToolSpec and a Tool in one call."""
    spec = ToolSpec(name=name, input=input, output=output, user=user, system=system, **options)
    return Tool(spec, backend=backend)
