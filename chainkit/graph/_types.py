"""Static typing of references: walk a field path through pydantic models, check assignability."""

from __future__ import annotations

import types
import typing
from typing import Any, Literal, Union

from pydantic import BaseModel

_UNION_TYPES = (Union, types.UnionType)


class PathError(Exception):
    pass


def strip_optional(tp: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(tp)
    if origin in _UNION_TYPES:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        optional = len(args) != len(typing.get_args(tp))
        if len(args) == 1:
            return args[0], optional
        return Union[tuple(args)], optional  # type: ignore[return-value]  # noqa: UP007
    if typing.get_origin(tp) is typing.Annotated:
        return strip_optional(typing.get_args(tp)[0])
    return tp, False


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def type_name(tp: Any) -> str:
    if tp is Any:
        return "Any"
    if isinstance(tp, type):
        return tp.__name__
    return str(tp).replace("typing.", "")


def walk(tp: Any, path: tuple[str | int, ...], *, what: str) -> Any:
    """The type at `path` inside `tp`; raises PathError naming the first bad step."""
    seen: list[str] = [what]
    for step in path:
        inner, optional = strip_optional(tp)
        if inner is Any:
            return Any
        origin = typing.get_origin(inner)
        if isinstance(step, int):
            if origin in (list, tuple, typing.Sequence) or inner in (list, tuple):
                args = typing.get_args(inner)
                tp = args[0] if args else Any
            else:
                raise PathError(f"{'.'.join(seen)} is {type_name(inner)}, not a list (cannot take item {step})")
        elif _is_model(inner):
            fields = inner.model_fields
            if step not in fields:
                raise PathError(
                    f"{'.'.join(seen)} ({inner.__name__}) has no field {step!r} "
                    f"(fields: {', '.join(fields) or 'none'})"
                )
            tp = fields[step].annotation
        elif origin is dict or inner is dict:
            args = typing.get_args(inner)
            tp = args[1] if args else Any
        elif origin in _UNION_TYPES:
            return Any  # a union of several types: checked at run time
        else:
            raise PathError(f"{'.'.join(seen)} is {type_name(inner)}, which has no field {step!r}")
        if optional:
            tp = tp | None
        seen.append(str(step))
    return tp


_NUMERIC = {bool: 0, int: 1, float: 2}


def assignable(src: Any, dst: Any) -> bool:
    """Can a value of static type `src` be validated into `dst`? Lenient where types are open."""
    if dst is Any or src is Any or dst is object:
        return True
    src, _ = strip_optional(src)  # an absent value is reported at run time by validation
    dst, dst_optional = strip_optional(dst)
    if src is type(None):
        return dst_optional
    if src is Any or dst is Any or src == dst:
        return True
    dst_origin, src_origin = typing.get_origin(dst), typing.get_origin(src)
    if dst_origin in _UNION_TYPES:
        return any(assignable(src, d) for d in typing.get_args(dst))
    if src_origin in _UNION_TYPES:
        return all(assignable(s, dst) for s in typing.get_args(src) if s is not type(None))
    if src_origin is Literal:
        return all(assignable(type(v), dst) for v in typing.get_args(src))
    if dst_origin is Literal:
        return isinstance(src, type) and any(isinstance(v, src) for v in typing.get_args(dst))
    if isinstance(src, type) and isinstance(dst, type):
        if src in _NUMERIC and dst in _NUMERIC:
            return _NUMERIC[src] <= _NUMERIC[dst] and not (src is not bool and dst is bool)
        if _is_model(dst):
            if _is_model(src):
                if issubclass(src, dst):
                    return True
                # structurally compatible: every required field of dst exists in src with a fitting type
                src_fields = src.model_fields
                for name, info in dst.model_fields.items():
                    if name in src_fields:
                        if not assignable(src_fields[name].annotation, info.annotation):
                            return False
                    elif info.is_required():
                        return False
                return True
            return src is dict
        if dst is dict and _is_model(src):
            return True
        if dst is str:
            return issubclass(src, str)
        return issubclass(src, dst)
    if dst_origin is not None or src_origin is not None:
        if dst_origin in (list, tuple) and src_origin in (list, tuple):
            d_args, s_args = typing.get_args(dst), typing.get_args(src)
            if not d_args or not s_args:
                return True
            return assignable(s_args[0], d_args[0])
        if dst_origin is dict and (src_origin is dict or _is_model(src)):
            return True
        if dst_origin in (list, tuple) and src in (list, tuple):
            return True
        if dst in (list, tuple) and src_origin in (list, tuple):
            return True
        if dst is dict and src_origin is dict:
            return True
        return dst_origin is None and src_origin is None
    return True
