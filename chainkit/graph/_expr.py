"""Safe condition expressions for `when:` and `until:` (no Python eval, no attribute access).

Grammar (lowest precedence first):

    expr    := or
    or      := and ("or" and)*
    and     := not ("and" not)*
    not     := "not" not | compare
    compare := sum (("=="|"!="|"<"|"<="|">"|">="|"in"|"not in") sum)*     chained like Python
    sum     := term (("+"|"-") term)*
    term    := unary (("*"|"/"|"//"|"%") unary)*
    unary   := "-" unary | primary
    primary := number | 'text' | "text" | true | false | null | ref | call | "(" expr ")" | "[" items "]"
    ref     := ${input.x} | ${nodes.a.output.b ?? 0} | bare dotted name starting with a reference root
    call    := len | min | max | abs | round | lower | upper | str | int | float | bool  "(" args ")"

An expression compiles once, at build time, into nested closures over a reference resolver.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chainkit.graph._refs import ROOTS, Ref, RefSyntaxError, Resolver, parse_ref


class ExprSyntaxError(ValueError):
    pass


class ExprEvalError(ValueError):
    pass


_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<ref>\$\{[^{}]*\})
  | (?P<num>\d+\.\d*|\.\d+|\d+)
  | (?P<str>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
  | (?P<op>==|!=|<=|>=|//|\?\?|[<>+\-*/%(),\[\]])
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.(?:[A-Za-z_][A-Za-z0-9_]*|\d+))*)
    """,
    re.VERBOSE,
)

_FUNCS: dict[str, Callable[..., Any]] = {
    "len": len,
    "min": min,
    "max": max,
    "abs": abs,
    "round": round,
    "lower": lambda s: str(s).lower(),
    "upper": lambda s: str(s).upper(),
    "str": str,
    "int": int,
    "float": float,
    "bool": bool,
}
_CONSTS = {"true": True, "false": False, "null": None, "True": True, "False": False, "None": None}
_COMPARE = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "in": lambda a, b: a in b,
    "not in": lambda a, b: a not in b,
}
_ARITH = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
    "//": operator.floordiv,
    "%": operator.mod,
}

Evaluator = Callable[[Resolver], Any]


@dataclass(slots=True)
class _Node:
    fn: Evaluator
    const: bool  # no references below: may be folded at build time


def _tokenize(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise ExprSyntaxError(f"unexpected {text[pos:pos + 10]!r} at column {pos + 1}")
        pos = match.end()
        kind = match.lastgroup or ""
        if kind != "ws":
            tokens.append((kind, match.group()))
    # "not in" is one operator
    merged: list[tuple[str, str]] = []
    for tok in tokens:
        if merged and merged[-1] == ("name", "not") and tok == ("name", "in"):
            merged[-1] = ("op", "not in")
        else:
            merged.append(tok)
    return merged


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.pos = 0
        self.refs: list[Ref] = []

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        tok = self.peek()
        if tok is None:
            raise ExprSyntaxError("unexpected end of expression")
        self.pos += 1
        return tok

    def accept(self, value: str) -> bool:
        tok = self.peek()
        if tok is not None and tok[1] == value and tok[0] in ("op", "name"):
            self.pos += 1
            return True
        return False

    def expect(self, value: str) -> None:
        if not self.accept(value):
            tok = self.peek()
            raise ExprSyntaxError(f"expected {value!r}, found {tok[1] if tok else 'end'!r}")

    def parse(self) -> _Node:
        node = self.or_()
        if self.peek() is not None:
            raise ExprSyntaxError(f"unexpected {self.peek()[1]!r}")  # type: ignore[index]
        return node

    def or_(self) -> _Node:
        node = self.and_()
        while self.accept("or"):
            left, right = node, self.and_()
            node = _Node(lambda r, a=left.fn, b=right.fn: a(r) or b(r), left.const and right.const)
        return node

    def and_(self) -> _Node:
        node = self.not_()
        while self.accept("and"):
            left, right = node, self.not_()
            node = _Node(lambda r, a=left.fn, b=right.fn: a(r) and b(r), left.const and right.const)
        return node

    def not_(self) -> _Node:
        if self.accept("not"):
            inner = self.not_()
            return _Node(lambda r, a=inner.fn: not a(r), inner.const)
        return self.compare()

    def compare(self) -> _Node:
        first = self.sum_()
        chain: list[tuple[Callable[[Any, Any], Any], _Node]] = []
        while (tok := self.peek()) is not None and tok[0] in ("op", "name") and tok[1] in _COMPARE:
            self.pos += 1
            chain.append((_COMPARE[tok[1]], self.sum_()))
        if not chain:
            return first
        const = first.const and all(n.const for _, n in chain)
        steps = [(op, n.fn) for op, n in chain]
        head = first.fn

        def compare(r: Resolver) -> bool:
            left = head(r)
            for op, fn in steps:
                right = fn(r)
                if not op(left, right):
                    return False
                left = right
            return True

        return _Node(compare, const)

    def _binary(self, sub: Callable[[], _Node], ops: dict[str, Callable[[Any, Any], Any]]) -> _Node:
        node = sub()
        while (tok := self.peek()) is not None and tok[0] == "op" and tok[1] in ops:
            self.pos += 1
            right = sub()
            fn = ops[tok[1]]
            node = _Node(lambda r, a=node.fn, b=right.fn, f=fn: f(a(r), b(r)), node.const and right.const)
        return node

    def sum_(self) -> _Node:
        return self._binary(self.term, {k: _ARITH[k] for k in ("+", "-")})

    def term(self) -> _Node:
        return self._binary(self.unary, {k: _ARITH[k] for k in ("*", "/", "//", "%")})

    def unary(self) -> _Node:
        if self.accept("-"):
            inner = self.unary()
            return _Node(lambda r, a=inner.fn: -a(r), inner.const)
        return self.primary()

    def _ref(self, body: str) -> _Node:
        try:
            ref = parse_ref(body)
        except RefSyntaxError as exc:
            raise ExprSyntaxError(str(exc)) from None
        self.refs.append(ref)
        return _Node(lambda r: r(ref), False)

    def primary(self) -> _Node:
        kind, value = self.take()
        if kind == "num":
            number: Any = float(value) if "." in value else int(value)
            return _Node(lambda r: number, True)
        if kind == "str":
            text = _unquote(value)
            return _Node(lambda r: text, True)
        if kind == "ref":
            body = value[2:-1]
            return self._ref(body)
        if kind == "op" and value == "(":
            inner = self.or_()
            self.expect(")")
            return inner
        if kind == "op" and value == "[":
            items: list[_Node] = []
            if not self.accept("]"):
                items.append(self.or_())
                while self.accept(","):
                    items.append(self.or_())
                self.expect("]")
            fns = [i.fn for i in items]
            return _Node(lambda r: [f(r) for f in fns], all(i.const for i in items))
        if kind == "name":
            if value in _CONSTS:
                constant = _CONSTS[value]
                return _Node(lambda r: constant, True)
            if value in _FUNCS and self.peek() == ("op", "("):
                self.take()
                args: list[_Node] = []
                if not self.accept(")"):
                    args.append(self.or_())
                    while self.accept(","):
                        args.append(self.or_())
                    self.expect(")")
                func = _FUNCS[value]
                arg_fns = [a.fn for a in args]
                return _Node(lambda r: func(*[a(r) for a in arg_fns]), all(a.const for a in args))
            root = value.split(".", 1)[0]
            if root in ROOTS:
                body = value
                if self.accept("??"):
                    default_kind, default_text = self.take()
                    body = f"{value} ?? {default_text}"
                    if default_kind == "op" and default_text == "-":
                        body = f"{value} ?? -{self.take()[1]}"
                return self._ref(body)
            raise ExprSyntaxError(f"unknown name {value!r} (references start with {', '.join(sorted(ROOTS))})")
        raise ExprSyntaxError(f"unexpected {value!r}")


def _unquote(token: str) -> str:
    body = token[1:-1]
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)), body)


@dataclass(frozen=True, slots=True)
class Expression:
    """A compiled expression: `refs` it reads, `evaluate(resolver)`, and its constant value if any."""

    text: str
    refs: tuple[Ref, ...]
    fn: Evaluator
    is_constant: bool

    def evaluate(self, resolve: Resolver) -> Any:
        try:
            return self.fn(resolve)
        except (TypeError, ValueError, ZeroDivisionError, AttributeError) as exc:
            raise ExprEvalError(f"{self.text!r}: {type(exc).__name__}: {exc}") from None

    def constant_value(self) -> Any:
        if not self.is_constant:
            raise ValueError("not constant")
        return self.evaluate(_no_refs)


def _no_refs(ref: Ref) -> Any:
    raise ExprEvalError(f"constant expression read {ref}")


def compile_expression(text: str) -> Expression:
    parser = _Parser(text)
    node = parser.parse()
    return Expression(text, tuple(parser.refs), node.fn, node.const)
