"""Prompt templates: a sandboxed Jinja2 environment with StrictUndefined, and message building.

Templates come from definitions a user may not fully trust (YAML files, shared tool libraries), so they
render in Jinja2's sandbox: no attribute access to Python internals, no arbitrary calls. A variable
that is not defined is an error, never a silent empty string.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, meta
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from chainkit.errors import DefinitionError, RenderError


def _tojson(value: Any, indent: int | None = None) -> str:
    if hasattr(value, "model_dump"):
        value = value.model_dump(mode="json")
    return json.dumps(value, ensure_ascii=False, indent=indent, default=str)


def _bullets(items: Iterable[Any]) -> str:
    return "\n".join(f"- {item}" for item in items)


_env = ImmutableSandboxedEnvironment(
    undefined=StrictUndefined,
    autoescape=False,  # prompts are plain text, not HTML
    keep_trailing_newline=False,
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.filters["tojson"] = _tojson
_env.filters["bullets"] = _bullets


class Template:
    """A compiled prompt template. Compile errors name the owner (tool) and the template's role."""

    __slots__ = ("source", "variables", "_template", "_owner", "_role", "_static")

    def __init__(self, source: str, *, owner: str = "?", role: str = "template") -> None:
        self.source = source
        self._owner = owner
        self._role = role
        try:
            parsed = _env.parse(source)
            self._template = _env.from_string(parsed)
        except TemplateSyntaxError as exc:
            raise DefinitionError(
                f"{role} template of {owner!r} does not parse: {exc.message} (template line {exc.lineno})",
                path=f"{owner}.{role}",
            ) from exc
        self.variables: frozenset[str] = frozenset(meta.find_undeclared_variables(parsed))
        # A template without any Jinja syntax renders to itself: skip the engine.
        self._static = not self.variables and "{" not in source

    def render(self, variables: Mapping[str, Any]) -> str:
        if self._static:
            return self.source
        try:
            return self._template.render(variables)
        except UndefinedError as exc:
            raise RenderError(f"{self._role} template: {exc.message}", tool=self._owner) from exc
        except SecurityError as exc:
            raise RenderError(f"{self._role} template tried an unsafe operation: {exc}", tool=self._owner) from exc
        except Exception as exc:  # a filter or value blew up while rendering
            raise RenderError(f"{self._role} template failed: {type(exc).__name__}: {exc}", tool=self._owner) from exc


def build_messages(system: str | None, user: str) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    if system:
        messages.append({"role": "system", "content": system})
    messages.append({"role": "user", "content": user})
    return messages
