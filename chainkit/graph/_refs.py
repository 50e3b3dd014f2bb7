"""References: `${input.x}`, `${nodes.grade.output.score}`, `${memory.profile.level}`, `${item}`.

A reference names a root and a path of fields:

    input.<path>                  the graph's input
    nodes.<node>.output.<path>    a node's output (the whole output when the path is empty)
    memory.<memory>.<path>        a document memory, read once per run (staged writes visible)
    item.<path> / index           the current list item / its position, inside a map node
    loop.iteration / loop.previous.<path>   inside a looping node: 0-based count, previous output
    output.<path>                 a looping node's own output, in its `until` condition only

`${ref ?? literal}` gives a default, used when the referenced node was skipped (and, for memory,
when the document does not exist). A string that is exactly one reference resolves to the raw
value; a string with text around references is interpolated (every reference rendered as text).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

ROOTS = frozenset({"input", "nodes", "memory", "item", "index", "loop", "output"})
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_REF_IN_TEXT = re.compile(r"\$\{([^{}]*)\}")

NO_DEFAULT: Any = object()


class RefSyntaxError(ValueError):
    """A malformed reference; the validator turns it into a DefinitionError with a location."""


@dataclass(frozen=True, slots=True)
class Ref:
    root: str
    # node name (nodes) or memory name (memory); None for other roots
    target: str | None
    path: tuple[str | int, ...]
    default: Any = field(default=NO_DEFAULT, compare=False)
    text: str = field(default="", compare=False)

    @property
    def has_default(self) -> bool:
        return self.default is not NO_DEFAULT

    def __str__(self) -> str:
        return "${" + self.text + "}"


def _parse_literal(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        if len(text) >= 2 and text[0] == text[-1] == "'":
            return text[1:-1]
        lowered = {"True": True, "False": False, "None": None}
        if text in lowered:
            return lowered[text]
        raise RefSyntaxError(f"default {text!r} is not a literal (number, 'text', true/false/null, [], {{}})") from None


def parse_ref(body: str) -> Ref:
    """Parse the inside of `${...}`."""
    text = body.strip()
    default = NO_DEFAULT
    if "??" in text:
        text, _, literal = text.partition("??")
        text = text.strip()
        default = _parse_literal(literal.strip())
    if not text:
        raise RefSyntaxError("empty reference")
    parts: list[str | int] = []
    for raw in text.split("."):
        raw = raw.strip()
        if raw.isdigit():
            parts.append(int(raw))
        elif _NAME.fullmatch(raw) and not raw.startswith("_"):  # no dunder/private access
            parts.append(raw)
        else:
            raise RefSyntaxError(f"bad segment {raw!r} in reference ${{{text}}}")
    root = parts[0]
    if root not in ROOTS:
        raise RefSyntaxError(f"reference ${{{text}}} must start with one of: {', '.join(sorted(ROOTS))}")
    target: str | None = None
    rest = parts[1:]
    if root == "nodes":
        if len(rest) < 2 or not isinstance(rest[0], str) or rest[1] != "output":
            raise RefSyntaxError(f"reference ${{{text}}} must look like nodes.<node>.output[.field...]")
        target, rest = rest[0], rest[2:]
    elif root == "memory":
        if not rest or not isinstance(rest[0], str):
            raise RefSyntaxError(f"reference ${{{text}}} must look like memory.<memory>[.field...]")
        target, rest = rest[0], rest[1:]
    elif root == "index" and rest:
        raise RefSyntaxError("${index} has no fields")
    elif root == "loop":
        if not rest or rest[0] not in ("iteration", "previous") or (rest[0] == "iteration" and len(rest) > 1):
            raise RefSyntaxError(f"reference ${{{text}}} must be loop.iteration or loop.previous[.field...]")
    return Ref(str(root), target, tuple(rest), default, body.strip())


@dataclass(frozen=True, slots=True)
class Template:
    """A string with references: either one whole reference or text with references inside."""

    parts: tuple[str | Ref, ...]

    @property
    def refs(self) -> list[Ref]:
        return [p for p in self.parts if isinstance(p, Ref)]

    @property
    def single(self) -> Ref | None:
        return self.parts[0] if len(self.parts) == 1 and isinstance(self.parts[0], Ref) else None


def parse_template(text: str) -> Template | None:
    """None when `text` holds no reference (it is then a plain literal)."""
    if "${" not in text:
        return None
    parts: list[str | Ref] = []
    pos = 0
    for match in _REF_IN_TEXT.finditer(text):
        if match.start() > pos:
            parts.append(text[pos : match.start()])
        parts.append(parse_ref(match.group(1)))
        pos = match.end()
    if pos < len(text):
        parts.append(text[pos:])
    if not any(isinstance(p, Ref) for p in parts):
        raise RefSyntaxError(f"unterminated reference in {text!r}")
    leftover = "".join(p for p in parts if isinstance(p, str))
    if "${" in leftover:
        raise RefSyntaxError(f"unterminated or nested reference in {text!r}")
    return Template(tuple(parts))


def iter_refs(value: Any) -> list[Ref]:
    """Every reference inside a literal structure (strings, lists, dicts)."""
    found: list[Ref] = []

    def walk(v: Any) -> None:
        if isinstance(v, str):
            template = parse_template(v)
            if template is not None:
                found.extend(template.refs)
        elif isinstance(v, Mapping):
            for item in v.values():
                walk(item)
        elif isinstance(v, (list, tuple)):
            for item in v:
                walk(item)

    walk(value)
    return found


# ---- runtime -------------------------------------------------------------------------------------


class Skipped(Exception):
    """Raised while resolving a reference to a skipped node that has no default."""

    def __init__(self, node: str) -> None:
        self.node = node


class MissingValue(LookupError):
    """A path step found no such field/key/index."""


def follow(value: Any, path: tuple[str | int, ...]) -> Any:
    for step in path:
        if value is None:
            return None  # an absent optional object: the field reads as None
        if isinstance(step, int):
            try:
                value = value[step]
            except (IndexError, KeyError, TypeError):
                raise MissingValue(f"no item {step}") from None
        elif isinstance(value, BaseModel):
            try:
                value = getattr(value, step)
            except AttributeError:
                raise MissingValue(f"no field {step!r}") from None
        elif isinstance(value, Mapping):
            if step not in value:
                raise MissingValue(f"no key {step!r}")
            value = value[step]
        else:
            try:
                value = getattr(value, step)
            except AttributeError:
                raise MissingValue(f"no field {step!r}") from None
    return value


def as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, BaseModel):
        return value.model_dump_json()
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(_plain(value), ensure_ascii=False)
    return str(value)


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


# A resolver maps a Ref to its value in the current run context (raises Skipped / MissingValue).
Resolver = Callable[[Ref], Any]
Getter = Callable[[Resolver], Any]


def compile_value(value: Any) -> Getter:
    """Compile a literal-with-references into a function of a resolver, done once at build time."""
    if isinstance(value, str):
        template = parse_template(value)
        if template is None:
            return lambda resolve: value
        single = template.single
        if single is not None:
            return lambda resolve: resolve(single)
        parts = template.parts

        def interpolate(resolve: Resolver) -> str:
            return "".join(p if isinstance(p, str) else as_text(resolve(p)) for p in parts)

        return interpolate
    if isinstance(value, Mapping):
        items = [(k, compile_value(v)) for k, v in value.items()]
        if not any(_has_refs(v) for v in value.values()):
            return lambda resolve: dict(value)
        return lambda resolve: {k: g(resolve) for k, g in items}
    if isinstance(value, (list, tuple)):
        getters = [compile_value(v) for v in value]
        if not _has_refs(value):
            return lambda resolve: list(value)
        return lambda resolve: [g(resolve) for g in getters]
    return lambda resolve: value


def _has_refs(value: Any) -> bool:
    return bool(iter_refs(value))


def compile_mapping(mapping: Mapping[str, Any]) -> Callable[[Resolver], dict[str, Any]]:
    items = tuple((k, compile_value(v)) for k, v in mapping.items())

    def build(resolve: Resolver) -> dict[str, Any]:
        return {k: g(resolve) for k, g in items}

    return build
