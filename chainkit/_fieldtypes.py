"""Compile compact field definitions (and JSON Schema) to pydantic models.

Memory definitions and tool definitions describe their records in YAML. Two forms compile here:

Compact fields, a mapping of field name to a type::

    name: str                      required string
    level: int = 1                 default (any YAML literal, validated against the type)
    nickname: str?                 optional, default None
    tags: list[str]                list (nestable: list[list[int]]); dict[str, int] for maps
    mood: enum(calm, curious)      one of these strings
    seen_at: datetime              also: date, float, bool, any
    address: {street: str, zip: str}           nested model
    attempts: [{question: str, correct: bool}]  list of a nested model
    score: {type: float, min: 0, max: 1, description: "..."}   long form

A long form is a mapping whose keys are all long-form keys (`type`, `description`, `default`,
`optional`, `min`, `max`, `min_length`, `max_length`, `pattern`, `examples`) and include `type`;
`type` may itself be a nested mapping, which is how a nested model gets a field named `type`.

Or a JSON Schema object (`compile_json_schema`): properties, required, defaults, descriptions,
enum/const, string/number/array bounds, `$ref` into `$defs`, `anyOf`/`oneOf`, nullable types.

Every problem raises `DefinitionError` with the key path (and the file and position when given).
Compiled models forbid unknown keys, so a stored record or an LLM output with a stray field fails
validation instead of being silently truncated.
"""

from __future__ import annotations

import datetime as _dt
import keyword
import re
from collections.abc import Callable
from typing import Any, Literal, Optional, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, create_model

from chainkit.errors import DefinitionError

Locate = Callable[[str], "tuple[int, int] | None"]

_SCALARS: dict[str, Any] = {
    "str": str,
    "int": int,
    "float": float,
    "bool": bool,
    "datetime": _dt.datetime,
    "date": _dt.date,
    "any": Any,
}
_LONG_FORM_KEYS = frozenset(
    {
        "type",
        "description",
        "default",
        "optional",
        "min",
        "max",
        "min_length",
        "max_length",
        "pattern",
        "examples",
    }
)
_FIELD_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_RESERVED = frozenset(dir(BaseModel))
_NO_DEFAULT: Any = ...


class _Context:
    """Where errors point: the file, and a callback that turns a key path into (line, column)."""

    def __init__(self, file: str | None, locate: Locate | None) -> None:
        self.file = file
        self.locate = locate

    def error(self, message: str, path: str) -> DefinitionError:
        line = column = None
        if self.locate is not None:
            found = self.locate(path)
            if found is not None:
                line, column = found
        return DefinitionError(message, file=self.file, line=line, column=column, path=path)


def model_name_for(name: str) -> str:
    """'learner_profile' -> 'LearnerProfile' (a class name for a compiled model)."""
    parts = re.split(r"[^A-Za-z0-9]+", name)
    text = "".join(p[:1].upper() + p[1:] for p in parts if p)
    if not text or not text[0].isalpha():
        text = "Model" + text
    return text


def _model_config() -> ConfigDict:
    return ConfigDict(extra="forbid", validate_default=True)


def compile_fields(
    name: str,
    fields: dict[str, Any],
    *,
    path: str,
    file: str | None = None,
    locate: Locate | None = None,
    description: str | None = None,
) -> type[BaseModel]:
    """Compile a mapping of compact field definitions into a pydantic model class named after `name`.

    `path` is the key path of `fields` in its definition (e.g. "fields"), used in error messages.
    """
    return _compile_model(model_name_for(name), fields, path, _Context(file, locate), description)


def _compile_model(
    class_name: str, fields: Any, path: str, ctx: _Context, description: str | None = None
) -> type[BaseModel]:
    if not isinstance(fields, dict):
        raise ctx.error(f"expected a mapping of field names to types, got {type(fields).__name__}", path)
    if not fields:
        raise ctx.error("a model needs at least one field", path)
    definitions: dict[str, Any] = {}
    for field_name, spec in fields.items():
        field_path = f"{path}.{field_name}"
        _check_field_name(field_name, field_path, ctx)
        annotation, field_info = _compile_field(class_name, str(field_name), spec, field_path, ctx)
        definitions[str(field_name)] = (annotation, field_info)
    try:
        model = create_model(class_name, __config__=_model_config(), **definitions)  # type: ignore[call-overload]
    except Exception as exc:  # pydantic rejects a combination we let through
        raise ctx.error(f"cannot build model {class_name}: {exc}", path) from exc
    if description:
        model.__doc__ = description
    return model


def _check_field_name(field_name: Any, path: str, ctx: _Context) -> None:
    if not isinstance(field_name, str) or not _FIELD_NAME.match(field_name):
        raise ctx.error(
            f"invalid field name {field_name!r}: use letters, digits and underscores, starting with a letter",
            path,
        )
    if keyword.iskeyword(field_name) or field_name in _RESERVED or field_name.startswith("model_"):
        raise ctx.error(
            f"field name {field_name!r} is reserved (it clashes with a Python or pydantic name)", path
        )


def _is_long_form(spec: dict[str, Any]) -> bool:
    return "type" in spec and set(spec) <= _LONG_FORM_KEYS


def _compile_field(owner: str, field_name: str, spec: Any, path: str, ctx: _Context) -> tuple[Any, Any]:
    """-> (annotation, FieldInfo) for one field."""
    nested_name = owner + model_name_for(field_name)
    if isinstance(spec, dict) and _is_long_form(spec):
        return _compile_long_form(nested_name, spec, path, ctx)
    annotation, default = _compile_type(nested_name, spec, path, ctx)
    return annotation, _field_info(default)


class _ModelDefault:
    """Default of a nested model field: a fresh instance with every field at its default."""

    def __init__(self, model: type[BaseModel]) -> None:
        self.model = model


def _field_info(default: Any, **kwargs: Any) -> Any:
    if default is _NO_DEFAULT:
        return Field(**kwargs)
    if isinstance(default, _ModelDefault):
        return Field(default_factory=default.model, **kwargs)
    if isinstance(default, (list, dict)):
        value = default
        return Field(default_factory=lambda: _copy(value), **kwargs)
    return Field(default=default, **kwargs)


def _copy(value: Any) -> Any:
    if isinstance(value, list):
        return [_copy(v) for v in value]
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    return value


def _compile_long_form(nested_name: str, spec: dict[str, Any], path: str, ctx: _Context) -> tuple[Any, Any]:
    annotation, default = _compile_type(nested_name, spec["type"], f"{path}.type", ctx)
    if "default" in spec:
        if default is not _NO_DEFAULT and not isinstance(default, _ModelDefault):
            raise ctx.error("default given twice (in the type and as 'default')", f"{path}.default")
        default = spec["default"]
    if spec.get("optional"):
        annotation = Optional[annotation]  # noqa: UP045 - built at runtime
        if default is _NO_DEFAULT:
            default = None
    if default is not _NO_DEFAULT and not isinstance(default, _ModelDefault):
        _check_default(annotation, default, f"{path}.default", ctx)
    kwargs: dict[str, Any] = {}
    if "description" in spec:
        if not isinstance(spec["description"], str):
            raise ctx.error("description must be a string", f"{path}.description")
        kwargs["description"] = spec["description"]
    if "examples" in spec:
        if not isinstance(spec["examples"], list):
            raise ctx.error("examples must be a list", f"{path}.examples")
        kwargs["examples"] = spec["examples"]
    base = _base_of(annotation)
    for key in ("min", "max"):
        if key not in spec:
            continue
        bound = spec[key]
        if isinstance(bound, bool) or not isinstance(bound, (int, float)):
            raise ctx.error(f"{key} must be a number", f"{path}.{key}")
        if base in (int, float):
            kwargs["ge" if key == "min" else "le"] = bound
        elif base in (str, list):
            if not isinstance(bound, int) or bound < 0:
                raise ctx.error(
                    f"{key} of a {base.__name__} is a length: a whole number >= 0", f"{path}.{key}"
                )
            kwargs["min_length" if key == "min" else "max_length"] = bound
        else:
            raise ctx.error(f"{key} applies to numbers, strings and lists only", f"{path}.{key}")
    for key in ("min_length", "max_length"):
        if key in spec:
            if base not in (str, list):
                raise ctx.error(f"{key} applies to strings and lists only", f"{path}.{key}")
            if not isinstance(spec[key], int) or isinstance(spec[key], bool) or spec[key] < 0:
                raise ctx.error(f"{key} must be a whole number >= 0", f"{path}.{key}")
            kwargs[key] = spec[key]
    if "pattern" in spec:
        if base is not str:
            raise ctx.error("pattern applies to strings only", f"{path}.pattern")
        try:
            re.compile(spec["pattern"])
        except (re.error, TypeError) as exc:
            raise ctx.error(f"invalid pattern: {exc}", f"{path}.pattern") from exc
        kwargs["pattern"] = spec["pattern"]
    return annotation, _field_info(default, **kwargs)


def _base_of(annotation: Any) -> Any:
    """The underlying type for bounds: Optional[int] -> int, list[str] -> list."""  # noqa: UP045 - built at runtime
    origin = getattr(annotation, "__origin__", None)
    if origin is Union:
        args = [a for a in annotation.__args__ if a is not type(None)]
        return _base_of(args[0]) if len(args) == 1 else None
    if origin is list:
        return list
    return annotation


def _compile_type(nested_name: str, spec: Any, path: str, ctx: _Context) -> tuple[Any, Any]:
    """A type spec -> (annotation, default or _NO_DEFAULT)."""
    if isinstance(spec, dict):
        model = _compile_model(nested_name, spec, path, ctx)
        # A nested model whose fields all have defaults is itself optional to give.
        if all(not info.is_required() for info in model.model_fields.values()):
            return model, _ModelDefault(model)
        return model, _NO_DEFAULT
    if isinstance(spec, list):
        if len(spec) != 1:
            raise ctx.error("a list type holds exactly one element type, e.g. [str] or [{name: str}]", path)
        inner, _ = _compile_type(nested_name + "Item", spec[0], f"{path}[0]", ctx)
        return list[inner], _NO_DEFAULT  # type: ignore[valid-type]
    if not isinstance(spec, str):
        raise ctx.error(f"expected a type (a string like 'str' or a mapping), got {spec!r}", path)
    text = spec.strip()
    default: Any = _NO_DEFAULT
    if "=" in text and not text.startswith("enum(") or re.match(r"^enum\([^)]*\)\s*=", text):
        type_text, default_text = _split_default(text)
        try:
            default = yaml.safe_load(default_text) if default_text.strip() else None
        except yaml.YAMLError as exc:
            raise ctx.error(f"cannot read the default {default_text.strip()!r}: {exc}", path) from exc
        text = type_text
    optional = text.endswith("?")
    if optional:
        text = text[:-1].strip()
    annotation = _parse_type_expr(text, path, ctx)
    if optional:
        annotation = Optional[annotation]  # noqa: UP045 - built at runtime
        if default is _NO_DEFAULT:
            default = None
    if default is not _NO_DEFAULT:
        _check_default(annotation, default, path, ctx)
    return annotation, default


def _split_default(text: str) -> tuple[str, str]:
    if text.startswith("enum("):
        close = text.index(")")
        rest = text[close + 1 :]
        eq = rest.index("=")
        return text[: close + 1] + rest[:eq], rest[eq + 1 :]
    type_text, _, default_text = text.partition("=")
    return type_text.strip(), default_text


def _check_default(annotation: Any, default: Any, path: str, ctx: _Context) -> None:
    from pydantic import TypeAdapter, ValidationError

    try:
        TypeAdapter(annotation).validate_python(default)
    except ValidationError as exc:
        message = exc.errors()[0]["msg"] if exc.errors() else str(exc)
        raise ctx.error(f"default {default!r} does not fit the type: {message}", path) from exc


def _parse_type_expr(text: str, path: str, ctx: _Context) -> Any:
    text = text.strip()
    if text in _SCALARS:
        return _SCALARS[text]
    if text in ("dict", "object"):
        return dict[str, Any]
    if text in ("list",):
        return list[Any]
    match = re.fullmatch(r"list\[(.+)\]", text)
    if match:
        return list[_parse_type_expr(match.group(1), path, ctx)]  # type: ignore[misc]
    match = re.fullmatch(r"dict\[\s*str\s*,(.+)\]", text)
    if match:
        return dict[str, _parse_type_expr(match.group(1), path, ctx)]  # type: ignore[misc]
    match = re.fullmatch(r"enum\((.*)\)", text, flags=re.S)
    if match:
        values = _enum_values(match.group(1), path, ctx)
        return Literal[tuple(values)]  # type: ignore[valid-type]
    if text.endswith("?"):
        return Optional[_parse_type_expr(text[:-1], path, ctx)]  # noqa: UP045 - built at runtime
    known = ", ".join([*_SCALARS, "list[T]", "dict[str, T]", "enum(a, b)", "T?", "T = default"])
    raise ctx.error(f"unknown type {text!r} (known: {known}, or a nested mapping)", path)


def _enum_values(body: str, path: str, ctx: _Context) -> list[str]:
    values = []
    for raw in body.split(","):
        item = raw.strip()
        if len(item) >= 2 and item[0] == item[-1] and item[0] in "\"'":
            item = item[1:-1]
        if not item:
            raise ctx.error("enum values cannot be empty", path)
        values.append(item)
    if not values:
        raise ctx.error("enum() needs at least one value", path)
    if len(set(values)) != len(values):
        raise ctx.error("enum values repeat", path)
    return values


# --- JSON Schema -------------------------------------------------------------------------------

_IGNORED_SCHEMA_KEYS = frozenset({"title", "$schema", "$id", "examples", "$comment", "readOnly", "writeOnly"})


def compile_json_schema(
    name: str,
    schema: dict[str, Any],
    *,
    path: str,
    file: str | None = None,
    locate: Locate | None = None,
) -> type[BaseModel]:
    """Compile a JSON Schema of `type: object` into a pydantic model class."""
    ctx = _Context(file, locate)
    if not isinstance(schema, dict):
        raise ctx.error("a JSON Schema must be a mapping", path)
    defs = {**schema.get("definitions", {}), **schema.get("$defs", {})}
    compiler = _SchemaCompiler(ctx, defs, path)
    annotation, _ = compiler.compile(model_name_for(name), schema, path)
    if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
        raise ctx.error("the top-level schema must be an object with properties", path)
    return annotation


class _SchemaCompiler:
    def __init__(self, ctx: _Context, defs: dict[str, Any], root_path: str) -> None:
        self.ctx = ctx
        self.defs = defs
        self.root_path = root_path
        self.resolved: dict[str, Any] = {}
        self.resolving: set[str] = set()

    def compile(self, class_name: str, schema: Any, path: str) -> tuple[Any, dict[str, Any]]:
        """-> (annotation, Field kwargs such as description/bounds)."""
        ctx = self.ctx
        if schema is True or schema == {}:
            return Any, {}
        if not isinstance(schema, dict):
            raise ctx.error("expected a schema mapping", path)
        kwargs: dict[str, Any] = {}
        if isinstance(schema.get("description"), str):
            kwargs["description"] = schema["description"]
        if "$ref" in schema:
            return self._ref(schema["$ref"], path), kwargs
        if "const" in schema:
            return Literal[schema["const"]], kwargs  # type: ignore[valid-type]
        if "enum" in schema:
            values = schema["enum"]
            if not isinstance(values, list) or not values:
                raise ctx.error("enum must be a non-empty list", f"{path}.enum")
            return Literal[tuple(values)], kwargs  # type: ignore[valid-type]
        for combinator in ("anyOf", "oneOf"):
            if combinator in schema:
                options = schema[combinator]
                if not isinstance(options, list) or not options:
                    raise ctx.error(f"{combinator} must be a non-empty list", f"{path}.{combinator}")
                members = [
                    self.compile(f"{class_name}Option{i}", option, f"{path}.{combinator}[{i}]")[0]
                    for i, option in enumerate(options)
                ]
                return Union[tuple(members)], kwargs  # noqa: UP007
        for unsupported in ("allOf", "not", "if", "patternProperties"):
            if unsupported in schema:
                raise ctx.error(
                    f"JSON Schema keyword {unsupported!r} is not supported", f"{path}.{unsupported}"
                )
        kind = schema.get("type")
        if isinstance(kind, list):
            nullable = "null" in kind
            rest = [k for k in kind if k != "null"]
            if len(rest) != 1:
                members = [self.compile(class_name, {**schema, "type": k}, path)[0] for k in rest]
                annotation: Any = Union[tuple(members)]  # noqa: UP007
            else:
                annotation, extra = self.compile(class_name, {**schema, "type": rest[0]}, path)
                kwargs.update(extra)
            return (Optional[annotation] if nullable else annotation), kwargs  # noqa: UP045 - built at runtime
        if kind == "object" or (kind is None and "properties" in schema):
            return self._object(class_name, schema, path), kwargs
        if kind == "array":
            items = schema.get("items", {})
            inner, _ = self.compile(class_name + "Item", items, f"{path}.items")
            if "minItems" in schema:
                kwargs["min_length"] = schema["minItems"]
            if "maxItems" in schema:
                kwargs["max_length"] = schema["maxItems"]
            return list[inner], kwargs  # type: ignore[valid-type]
        if kind == "string":
            for src, dst in (
                ("minLength", "min_length"),
                ("maxLength", "max_length"),
                ("pattern", "pattern"),
            ):
                if src in schema:
                    kwargs[dst] = schema[src]
            fmt = schema.get("format")
            if fmt == "date-time":
                return _dt.datetime, kwargs
            if fmt == "date":
                return _dt.date, kwargs
            return str, kwargs
        if kind in ("integer", "number"):
            for src, dst in (
                ("minimum", "ge"),
                ("maximum", "le"),
                ("exclusiveMinimum", "gt"),
                ("exclusiveMaximum", "lt"),
            ):
                if src in schema:
                    kwargs[dst] = schema[src]
            return (int if kind == "integer" else float), kwargs
        if kind == "boolean":
            return bool, kwargs
        if kind == "null":
            return type(None), kwargs
        if kind is None:
            return Any, kwargs
        raise ctx.error(f"unknown JSON Schema type {kind!r}", f"{path}.type")

    def _object(self, class_name: str, schema: dict[str, Any], path: str) -> Any:
        properties = schema.get("properties")
        if not properties:
            extra = schema.get("additionalProperties", True)
            value_type = Any if extra in (True, None) else self.compile(class_name + "Value", extra, path)[0]
            return dict[str, value_type]  # type: ignore[valid-type]
        if not isinstance(properties, dict):
            raise self.ctx.error("properties must be a mapping", f"{path}.properties")
        required = set(schema.get("required", []))
        unknown = required - set(properties)
        if unknown:
            raise self.ctx.error(f"required names unknown properties: {sorted(unknown)}", f"{path}.required")
        definitions: dict[str, Any] = {}
        for prop, sub in properties.items():
            prop_path = f"{path}.properties.{prop}"
            _check_field_name(prop, prop_path, self.ctx)
            annotation, kwargs = self.compile(class_name + model_name_for(prop), sub, prop_path)
            if isinstance(sub, dict) and "default" in sub:
                info = _field_info(sub["default"], **kwargs)
            elif prop in required:
                info = Field(**kwargs)
            else:
                annotation = Optional[annotation]  # noqa: UP045 - built at runtime
                info = Field(default=None, **kwargs)
            definitions[prop] = (annotation, info)
        extra_mode = "forbid" if schema.get("additionalProperties") is False else "ignore"
        try:
            model = create_model(  # type: ignore[call-overload]
                class_name, __config__=ConfigDict(extra=extra_mode, validate_default=True), **definitions
            )
        except Exception as exc:
            raise self.ctx.error(f"cannot build model {class_name}: {exc}", path) from exc
        if isinstance(schema.get("description"), str):
            model.__doc__ = schema["description"]
        return model

    def _ref(self, ref: Any, path: str) -> Any:
        match = re.fullmatch(r"#/(?:\$defs|definitions)/(.+)", ref) if isinstance(ref, str) else None
        if not match or match.group(1) not in self.defs:
            raise self.ctx.error(
                f"cannot resolve $ref {ref!r} (only #/$defs/NAME is supported)", f"{path}.$ref"
            )
        key = match.group(1)
        if key in self.resolved:
            return self.resolved[key]
        if key in self.resolving:
            raise self.ctx.error(f"recursive $ref {ref!r} is not supported", f"{path}.$ref")
        self.resolving.add(key)
        annotation, _ = self.compile(model_name_for(key), self.defs[key], f"{self.root_path}.$defs.{key}")
        self.resolving.discard(key)
        self.resolved[key] = annotation
        return annotation


__all__ = ["compile_fields", "compile_json_schema", "model_name_for"]
