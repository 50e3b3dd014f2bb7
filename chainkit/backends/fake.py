"""A deterministic, scripted backend for tests and offline demos. It never touches the network.

    FakeBackend()                              schema-valid JSON made from the request's schema
    FakeBackend(["first", {"score": 3}])       answers consumed in order (str, dict, model, Exception)
    FakeBackend(lambda request: "...")         a function of the request
    FakeBackend({"grade": [...], "teach": f})  per tool name, each a list or a function

Every request is recorded in `.requests`. By default the fake claims constrained decoding (so tools send it
their output schema and unscripted answers are schema-valid); `json_schema=False` makes it behave like a
server without it, to exercise parsing and re-asks.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from pydantic import BaseModel

from chainkit.backends.base import Backend, Capabilities, Completion, CompletionRequest, Usage
from chainkit.errors import UsageError

Answer = str | dict | list | BaseModel | Exception | Completion
Script = list[Answer] | Callable[[CompletionRequest], Answer]


class FakeBackend(Backend):
    is_real = False

    def __init__(
        self,
        answers: Script | Mapping[str, Script] | None = None,
        *,
        json_schema: bool = True,
        latency_s: float = 0.0,
        name: str = "fake",
        max_in_flight: int = 64,
        tokenizer: Callable[[str], int] | None = None,
    ) -> None:
        super().__init__()
        self.name = name
        self.requests: list[CompletionRequest] = []
        self._latency_s = latency_s
        self._capabilities = Capabilities(
            json_schema=json_schema, streaming=True, logprobs=False, max_in_flight=max_in_flight, tokenizer=tokenizer,
            price_per_million=(0.0, 0.0),
        )
        self._scripts: dict[str | None, Script | None]
        if isinstance(answers, Mapping):
            self._scripts = {tool: _as_script(script) for tool, script in answers.items()}
        else:
            self._scripts = {None: _as_script(answers)}

    @property
    def capabilities(self) -> Capabilities:
        return self._capabilities

    def _next_answer(self, request: CompletionRequest) -> Answer:
        if None in self._scripts:
            script = self._scripts[None]
        elif request.tool in self._scripts:
            script = self._scripts[request.tool]
        else:
            raise UsageError(
                f"FakeBackend has no script for tool {request.tool!r} (scripted tools: {sorted(self._scripts)})"
            )
        if script is None:
            if request.json_schema is not None and self._capabilities.json_schema:
                return example_from_schema(request.json_schema)
            return "fake answer"
        if callable(script):
            return script(request)
        if not script:
            raise UsageError(f"FakeBackend ran out of scripted answers (tool {request.tool!r})")
        return script.pop(0)

    async def complete(self, request: CompletionRequest) -> Completion:
        self.requests.append(request)
        if self._latency_s:
            await asyncio.sleep(self._latency_s)
        answer = self._next_answer(request)
        if isinstance(answer, Exception):
            raise answer
        if isinstance(answer, Completion):
            return answer
        if isinstance(answer, BaseModel):
            text = answer.model_dump_json()
        elif isinstance(answer, dict | list):
            text = json.dumps(answer, ensure_ascii=False)
        else:
            text = str(answer)
        prompt_chars = sum(len(str(m.get("content", ""))) for m in request.messages)
        # Token figures are character-based estimates: the fake has no tokenizer to be exact with.
        usage = Usage(prompt_tokens=prompt_chars // 4 + 1, completion_tokens=len(text) // 4 + 1)
        return Completion(
            text=text,
            usage=usage,
            model=self.name,
            finish_reason="stop",
            constrained=self._capabilities.json_schema and request.json_schema is not None,
        )

    async def stream(self, request: CompletionRequest) -> AsyncIterator[str | Completion]:
        completion = await self.complete(request)
        text = completion.text
        for start in range(0, len(text), 8):
            yield text[start : start + 8]
            await asyncio.sleep(0)
        yield completion


def _as_script(script: Any) -> Script | None:
    if script is None or callable(script):
        return script
    if isinstance(script, list | tuple):
        return list(script)
    return [script]


def example_from_schema(schema: dict[str, Any]) -> Any:
    """A deterministic value that satisfies `schema` (the subset pydantic emits)."""
    defs = schema.get("$defs", {})

    def make(node: dict[str, Any], depth: int = 0) -> Any:
        if "$ref" in node:
            return make(defs[node["$ref"].rsplit("/", 1)[-1]], depth + 1)
        if "const" in node:
            return node["const"]
        if "enum" in node:
            return node["enum"][0]
        if "default" in node:
            return node["default"]
        for combinator in ("anyOf", "oneOf", "allOf"):
            if combinator in node:
                options = [o for o in node[combinator] if o.get("type") != "null"] or node[combinator]
                return make(options[0], depth + 1)
        kind = node.get("type")
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), "null")
        if kind == "object" or "properties" in node:
            props = node.get("properties", {})
            required = node.get("required", list(props))
            return {name: make(sub, depth + 1) for name, sub in props.items() if name in required}
        if kind == "array":
            count = max(1, node.get("minItems", 1)) if depth < 6 else node.get("minItems", 0)
            return [make(node.get("items", {}), depth + 1) for _ in range(count)]
        if kind == "string":
            text = "fake"
            min_length = node.get("minLength", 0)
            if len(text) < min_length:
                text = text + "x" * (min_length - len(text))
            if "maxLength" in node:
                text = text[: node["maxLength"]]
            return text
        if kind in ("integer", "number"):
            low = node.get("minimum", node.get("exclusiveMinimum", -1) + 1 if "exclusiveMinimum" in node else 0)
            high = node.get("maximum")
            value = low
            if high is not None and value > high:
                value = high
            return int(value) if kind == "integer" else float(value)
        if kind == "boolean":
            return False
        if kind == "null":
            return None
        return "fake"

    return make(schema)
