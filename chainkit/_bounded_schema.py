"""JSON Schemas for constrained decoding, with the bounds small models need.

Under a grammar, a small model that has started a string or a list may never choose to end it: it
loops until `max_tokens`, and the truncated JSON does not parse. Measured on SmolLM2-135M (issue 6):
4-7 of 10 answers valid with plain pydantic schemas, 10 of 10 once every string had a `maxLength`,
every array a `maxItems`, and small integer ranges were written as `enum`. `bounded_schema` adds those
bounds: declared pydantic constraints win; the rest are derived from the tool's token budget so that
a maximal answer still fits in `max_tokens`.

`describe_fields` tells the model the fields in words. The raw JSON Schema is never put into the
prompt: small models copy its keywords ("type", "properties") into their answers.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from pydantic import BaseModel

#: Budget when the tool sets no max_tokens (the local backend's default answer length).
DEFAULT_MAX_TOKENS = 512
#: Characters per token assumed when turning the token budget into string lengths. English prose
#: averages about 4 with BPE vocabularies, but a looping small model writes "1.1.1.1..." or runs of
#: punctuation at one token per character; only the worst case guarantees that a maximal answer
#: closes its JSON before `max_tokens` (measured: a 3-characters-per-token bound let SmolLM2 fill a
#: list of ids with "1.1.1..." past 800 tokens).
CHARS_PER_TOKEN = 1
#: Tokens of JSON syntax per field (quotes, key, colon, comma), reserved before strings get the rest.
TOKENS_PER_FIELD = 6
#: Share of max_tokens a maximal answer may fill (whitespace and enum values need the rest).
SAFETY = 0.9
#: Lists without a declared maximum get this many items at most.
DEFAULT_MAX_ITEMS = 8
#: Bounds on the derived string length.
MIN_STRING_LENGTH = 8
MAX_STRING_LENGTH = 2000
#: Integer ranges with at most this many values become an `enum`.
MAX_ENUM_SPAN = 32

_NESTED = ("properties", "items", "prefixItems", "anyOf", "oneOf", "allOf", "additionalProperties")


def bounded_schema(model: type[BaseModel], *, max_tokens: int | None = None) -> dict[str, Any]:
    """The JSON Schema to send to a constrained backend for `model`, with every string, list and
    small integer range bounded (see the module docstring)."""
    schema = copy.deepcopy(model.model_json_schema())
    defs: dict[str, Any] = schema.get("$defs", {})
    budget = max_tokens if max_tokens and max_tokens > 0 else DEFAULT_MAX_TOKENS

    # Pass 1: bound arrays and integer ranges (needed first: list sizes multiply the string count).
    for node in _all_nodes(schema):
        _bound_array(node, budget)
        _integer_range_to_enum(node)

    # Pass 2: how many free strings can a maximal answer hold (weighted by list sizes), and how
    # many fields; share the remaining token budget among the free strings.
    fields, free_strings, fixed_chars = _measure(schema, defs, 1, ())
    spare_tokens = int(budget * SAFETY) - TOKENS_PER_FIELD * fields - fixed_chars // CHARS_PER_TOKEN
    if free_strings:
        length = spare_tokens * CHARS_PER_TOKEN // free_strings
        length = max(MIN_STRING_LENGTH, min(MAX_STRING_LENGTH, length))
        for node in _all_nodes(schema):
            if _is_free_string(node):
                node["maxLength"] = max(length, int(node.get("minLength", 0)))

    # Pass 3: declared lengths win over derived ones, but the decoder must still be able to close the
    # JSON within the budget. If a maximal answer under the declared lengths cannot, shorten them all
    # in proportion -- for decoding only: the output model keeps its declared bounds, and a shorter
    # answer still passes them. (Measured: a declared 120-character note under max_tokens=80 let
    # SmolLM2 loop "1. 1. 1." until the budget ran out, on every re-ask.)
    fields, _, chars = _measure(schema, defs, 1, ())
    room = int(budget * SAFETY) - TOKENS_PER_FIELD * fields
    if chars and chars / CHARS_PER_TOKEN > room:
        factor = max(room, 0) * CHARS_PER_TOKEN / chars
        for node in _all_nodes(schema):
            if _is_string(node) and "maxLength" in node:
                shorter = max(MIN_STRING_LENGTH, int(node["maxLength"] * factor))
                node["maxLength"] = max(int(node.get("minLength", 0)), min(int(node["maxLength"]), shorter))
    return schema


def _all_nodes(schema: dict[str, Any]) -> list[dict[str, Any]]:
    """Every sub-schema (root, $defs and everything nested), each once."""
    out: list[dict[str, Any]] = []
    stack: list[Any] = [schema]
    seen: set[int] = set()
    while stack:
        node = stack.pop()
        if not isinstance(node, dict) or id(node) in seen:
            continue
        seen.add(id(node))
        out.append(node)
        for key in _NESTED:
            child = node.get(key)
            if isinstance(child, dict):
                stack.extend(child.values() if key == "properties" else [child])
            elif isinstance(child, list):
                stack.extend(child)
        stack.extend((node.get("$defs") or {}).values())
    return out


def _is_string(node: dict[str, Any]) -> bool:
    return node.get("type") == "string" and "enum" not in node and "const" not in node


def _is_free_string(node: dict[str, Any]) -> bool:
    return _is_string(node) and "maxLength" not in node


def _bound_array(node: dict[str, Any], budget: int) -> None:
    if node.get("type") != "array" or "maxItems" in node:
        return
    # A list may not promise more items than a tenth of the budget allows (about 10 tokens each).
    limit = max(1, min(DEFAULT_MAX_ITEMS, budget // 10))
    node["maxItems"] = max(limit, int(node.get("minItems", 0)))


def _integer_range_to_enum(node: dict[str, Any]) -> None:
    if node.get("type") != "integer" or "enum" in node:
        return
    low = node.get("minimum")
    if low is None and "exclusiveMinimum" in node:
        low = node["exclusiveMinimum"] + 1
    high = node.get("maximum")
    if high is None and "exclusiveMaximum" in node:
        high = node["exclusiveMaximum"] - 1
    if low is None or high is None:
        return
    low, high = int(-(-low // 1)), int(high // 1)  # ceil / floor: float bounds on an integer
    if high < low or high - low + 1 > MAX_ENUM_SPAN:
        return
    for key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"):
        node.pop(key, None)
    node["enum"] = list(range(low, high + 1))


def _measure(node: Any, defs: dict[str, Any], weight: int, path: tuple[str, ...]) -> tuple[int, int, int]:
    """(fields, free strings, characters of bounded strings) of a maximal answer, each times `weight`."""
    if not isinstance(node, dict):
        return 0, 0, 0
    ref = node.get("$ref")
    if isinstance(ref, str):
        name = ref.rsplit("/", 1)[-1]
        if name in path or name not in defs:  # a recursive model: count one level
            return 0, 0, 0
        return _measure(defs[name], defs, weight, (*path, name))
    fields = strings = chars = 0
    if _is_string(node):
        if "maxLength" in node:
            chars += weight * int(node["maxLength"])
        else:
            strings += weight
    for key in ("anyOf", "oneOf"):
        # Alternatives: the biggest one decides.
        options = [_measure(option, defs, weight, path) for option in node.get(key) or ()]
        if options:
            best = max(options, key=lambda m: m[1] * 100 + m[2] + m[0])
            fields, strings, chars = fields + best[0], strings + best[1], chars + best[2]
    for part in node.get("allOf") or ():
        f, s, c = _measure(part, defs, weight, path)
        fields, strings, chars = fields + f, strings + s, chars + c
    for child in (node.get("properties") or {}).values():
        f, s, c = _measure(child, defs, weight, path)
        fields, strings, chars = fields + weight + f, strings + s, chars + c
    if node.get("type") == "array":
        items = node.get("items")
        count = int(node.get("maxItems", DEFAULT_MAX_ITEMS))
        if isinstance(items, dict):
            f, s, c = _measure(items, defs, weight * count, path)
            fields, strings, chars = fields + weight * count + f, strings + s, chars + c
    extra = node.get("additionalProperties")
    if isinstance(extra, dict):
        f, s, c = _measure(extra, defs, weight * DEFAULT_MAX_ITEMS, path)
        fields, strings, chars = fields + weight * DEFAULT_MAX_ITEMS + f, strings + s, chars + c
    return fields, strings, chars


# -- fields in words ---------------------------------------------------------------------------------


def describe_fields(model: type[BaseModel]) -> str:
    """The output fields described in words, for the prompt (never the raw JSON Schema).

    One line per field, nested models indented below their field:

        - question (text, at most 200 characters): the question to ask
        - options (list of exactly 4 texts)
        - answer_index (whole number, one of 0, 1, 2, 3): position of the right option
    """
    schema = model.model_json_schema()
    defs = schema.get("$defs", {})
    lines: list[str] = []
    root_name = _ref_name(schema)  # a self-referencing model's schema is a $ref to its own $defs entry
    _describe_object(_deref(schema, defs), defs, 0, lines, (root_name,) if root_name else ())
    return "\n".join(lines)


def _describe_object(
    node: dict[str, Any], defs: dict[str, Any], depth: int, lines: list[str], path: tuple[str, ...]
) -> None:
    required = set(node.get("required") or ())
    for name, child in (node.get("properties") or {}).items():
        resolved, nested, optional_null = _resolve(child, defs)
        words = _words(resolved, defs)
        if optional_null:
            words += ", or null"
        if nested is not None and nested[0] in path:  # a recursive model: point back instead of looping
            words = words.replace("with the fields below each", f"each with the same fields as {nested[0]}")
            words = words.replace("with the fields below", f"with the same fields as {nested[0]}")
        if name not in required:
            words += ", optional"
        description = child.get("description") or resolved.get("description")
        line = f"{'  ' * depth}- {name} ({words})"
        if description:
            line += f": {description}"
        lines.append(line)
        if nested is not None and nested[0] not in path:
            _describe_object(nested[1], defs, depth + 1, lines, (*path, nested[0]))


def _resolve(
    node: dict[str, Any], defs: dict[str, Any]
) -> tuple[dict[str, Any], tuple[str, dict[str, Any]] | None, bool]:
    """(the schema to describe, the nested object to list below it, whether null is allowed)."""
    optional_null = False
    options = node.get("anyOf") or node.get("oneOf")
    if options:
        non_null = [option for option in options if option.get("type") != "null"]
        optional_null = len(non_null) < len(options)
        if len(non_null) == 1:
            node = {**non_null[0], **{k: v for k, v in node.items() if k not in ("anyOf", "oneOf")}}
    node = _deref(node, defs)
    target = node
    if node.get("type") == "array" and isinstance(node.get("items"), dict):
        target = _deref(node["items"], defs)
    nested = None
    if target.get("type") == "object" and target.get("properties"):
        name = _ref_name(node) or _ref_name(node.get("items") or {}) or target.get("title", "object")
        nested = (name, target)
    return node, nested, optional_null


def _ref_name(node: Any) -> str | None:
    ref = node.get("$ref") if isinstance(node, dict) else None
    return ref.rsplit("/", 1)[-1] if isinstance(ref, str) else None


def _deref(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    name = _ref_name(node)
    if name is None or name not in defs:
        return node
    merged = {**defs[name], **{k: v for k, v in node.items() if k != "$ref"}}
    merged["$ref"] = node["$ref"]  # kept so callers can tell which model this is
    return merged


def _words(node: dict[str, Any], defs: dict[str, Any]) -> str:
    if "const" in node:
        return f"exactly {json.dumps(node['const'])}"
    if "enum" in node:
        return "one of " + ", ".join(json.dumps(value) for value in node["enum"])
    options = node.get("anyOf") or node.get("oneOf")
    if options:
        return " or ".join(_words(_deref(option, defs), defs) for option in options)
    kind = node.get("type")
    if kind == "string":
        return "text" + _length_words(node.get("minLength"), node.get("maxLength"), "characters")
    if kind == "integer":
        return "whole number" + _range_words(node)
    if kind == "number":
        return "number" + _range_words(node)
    if kind == "boolean":
        return "true or false"
    if kind == "null":
        return "null"
    if kind == "array":
        items = node.get("items")
        item_words = _words(_deref(items, defs), defs) if isinstance(items, dict) else "values"
        count = _count_words(node.get("minItems"), node.get("maxItems"))
        return f"list of {count}{_plural(item_words)}"
    if kind == "object" or node.get("properties"):
        if node.get("properties"):
            return "object with the fields below"
        return "object"
    return "any JSON value"


def _plural(words: str) -> str:
    head, sep, tail = words.partition(",")
    if head.startswith(("one of", "exactly", "true or false")):
        return f"values that are each {words}"
    if head.endswith("text"):
        head = head[:-4] + "texts"
    elif head.endswith("number"):
        head += "s"
    elif head.startswith("object"):
        head = "objects" + head[6:].replace("fields below", "fields below each")
    elif head.startswith("list of"):
        head = "lists" + head[4:]
    return head + sep + tail.replace(" at most", " each at most", 1)


def _count_words(low: Any, high: Any) -> str:
    if low is not None and high is not None and low == high:
        return f"exactly {low} "
    if low and high is not None:
        return f"{low} to {high} "
    if high is not None:
        return f"at most {high} "
    if low:
        return f"at least {low} "
    return ""


def _length_words(low: Any, high: Any, unit: str) -> str:
    if low and high is not None:
        return f", {low} to {high} {unit}"
    if high is not None:
        return f", at most {high} {unit}"
    if low:
        return f", at least {low} {unit}"
    return ""


def _range_words(node: dict[str, Any]) -> str:
    low = node.get("minimum", node.get("exclusiveMinimum"))
    high = node.get("maximum", node.get("exclusiveMaximum"))
    low_word = "above" if "exclusiveMinimum" in node else "at least"
    high_word = "below" if "exclusiveMaximum" in node else "at most"
    if (
        low is not None
        and high is not None
        and "exclusiveMinimum" not in node
        and "exclusiveMaximum" not in node
    ):
        return f" from {low} to {high}"
    parts = []
    if low is not None:
        parts.append(f"{low_word} {low}")
    if high is not None:
        parts.append(f"{high_word} {high}")
    return (", " + " and ".join(parts)) if parts else ""
