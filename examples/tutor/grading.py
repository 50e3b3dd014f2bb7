"""Deterministic grading of multiple-choice, numeric and maths-expression answers against their key.

These items are never graded by an LLM: a model that can be talked into "mark my answer correct" must
not be the judge when a key exists. Free-text items go to the `grade_answer` tool with a rubric.

Learner answers are untrusted text. Maths expressions are parsed by sympy only after a whitelist check
(characters, names, length, exponent size), because sympy's parser evaluates Python.
"""

from __future__ import annotations

import keyword
import math
import random
import re
import unicodedata
from collections.abc import Mapping, Sequence
from fractions import Fraction
from typing import Any

from pydantic import BaseModel

from chainkit.errors import UsageError

ItemKind = str  # "mc" | "numeric" | "expression" | "short"
DETERMINISTIC_KINDS = frozenset({"mc", "numeric", "expression"})


class Grade(BaseModel):
    """The verdict on one answer."""

    correct: bool
    score: float  # 0..1
    recognized: bool = True  # False: the answer could not be read (no option / no number / no expression)
    matched: str | None = None  # the option, number or expression the answer was read as
    misconception: str | None = None  # the tag of the distractor that was chosen, if any
    feedback: str = ""


# --- multiple choice ---------------------------------------------------------------------------------

_LETTERS = "abcdefghij"
_LETTER_ANSWER = re.compile(r"^\(?\s*(?:option|answer|choice)?\s*\(?([a-j])\s*[\).:]?\s*$", re.I)


def normalize_text(text: str) -> str:
    """Lower case, accents folded, punctuation and runs of whitespace collapsed."""
    text = unicodedata.normalize("NFKD", text)
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).lower()
    text = re.sub(r"[^\w/.%+\-*^=]+", " ", text)
    text = re.sub(r"\s*([/^*=])\s*", r"\1", text)  # "5 / 6" reads as "5/6"
    return re.sub(r"\s+", " ", text).strip(" .")


def choose_option(answer: str, options: Sequence[str]) -> int | None:
    """The index of the option `answer` names (by letter, by number or by its text), or None when the
    answer names no option or more than one."""
    if not options:
        return None
    raw = answer.strip()
    letter = _LETTER_ANSWER.match(raw)
    if letter:
        index = _LETTERS.index(letter.group(1).lower())
        # A bare single letter that is also an option's whole text (e.g. option "a") is read as text below.
        if index < len(options) and not any(normalize_text(o) == raw.lower() for o in options):
            return index
    wanted = normalize_text(raw)
    exact = [i for i, option in enumerate(options) if normalize_text(option) == wanted]
    if len(exact) == 1:
        return exact[0]
    if raw.isdigit() and 1 <= int(raw) <= len(options) and not any(is_number(o) for o in options):
        return int(raw) - 1
    # "0.5" chooses the option "1/2": the same number written another way.
    value = parse_number(raw) if is_number(raw) else None
    if value is not None:
        same = [i for i, option in enumerate(options) if is_number(option) and parse_number(option) == value]
        if len(same) == 1:
            return same[0]
    # "I think it is 5/6" names one option inside a sentence: accept a unique whole-token occurrence.
    inside = [
        i
        for i, option in enumerate(options)
        if normalize_text(option) and re.search(rf"(?<![\w/]){re.escape(normalize_text(option))}(?![\w/])", wanted)
    ]
    if len(inside) == 1:
        return inside[0]
    return None


_NUMBER_ONLY = re.compile(r"^\s*[-+−]?\d+(?:[.,]\d+)?(?:\s*/\s*\d+(?:[.,]\d+)?)?\s*%?\s*$")


def is_number(text: str) -> bool:
    """True when the whole text is one number ("0.5", "1/2", "50%")."""
    return bool(_NUMBER_ONLY.match(text))


def key_index(options: Sequence[str], key: str) -> int | None:
    """The index of the keyed option; the key may be the option's text or its letter."""
    wanted = normalize_text(key)
    matches = [i for i, option in enumerate(options) if normalize_text(option) == wanted]
    if len(matches) == 1:
        return matches[0]
    if len(key.strip()) == 1 and key.strip().lower() in _LETTERS:
        index = _LETTERS.index(key.strip().lower())
        return index if index < len(options) else None
    return None


def grade_choice(
    answer: str, options: Sequence[str], key: str, distractors: Mapping[str, str | None] | None = None
) -> Grade:
    correct_index = key_index(options, key)
    if correct_index is None:
        raise UsageError(f"grade_choice: key {key!r} is not one of the options {list(options)}")
    chosen = choose_option(answer, options)
    if chosen is None:
        return Grade(
            correct=False, score=0.0, recognized=False,
            feedback="I could not tell which option you chose; answer with its letter or its text.",
        )
    option = options[chosen]
    if chosen == correct_index:
        return Grade(correct=True, score=1.0, matched=option, feedback="Correct.")
    tag = None
    for text, misconception in (distractors or {}).items():
        if normalize_text(text) == normalize_text(option):
            tag = misconception
    return Grade(correct=False, score=0.0, matched=option, misconception=tag, feedback="Not quite.")


# --- numbers -----------------------------------------------------------------------------------------

_VULGAR = {"½": "1/2", "⅓": "1/3", "⅔": "2/3", "¼": "1/4", "¾": "3/4", "⅕": "1/5", "⅛": "1/8"}
_NUMBER = r"[-+−]?\d+(?:[.,]\d+)?"
_MIXED = re.compile(r"(?<![\w/.,])([-+−]?\d+)\s+(\d+)\s*/\s*(\d+)(?![\w/])")
_FRACTION = re.compile(rf"(?<![\w/.,])({_NUMBER})\s*/\s*({_NUMBER})(?![\w/])")
_PLAIN = re.compile(rf"(?<![\w/.,])({_NUMBER})(\s*%)?(?![\w/])")


def _number(text: str) -> Fraction:
    return Fraction(text.replace("−", "-").replace(",", "."))


def parse_number(text: str) -> Fraction | None:
    """A single number in `text` (integer, decimal with . or ",", fraction, mixed number, percent,
    vulgar fraction) as an exact Fraction; None when there is none or more than one."""
    found = numbers_in(text)
    distinct = set(found)
    return found[0] if len(distinct) == 1 else None


def numbers_in(text: str) -> list[Fraction]:
    """Every number written in `text`, in order (a fraction counts as one number)."""
    for glyph, spelled in _VULGAR.items():
        text = text.replace(glyph, f" {spelled} ")
    values: list[Fraction] = []
    taken: list[tuple[int, int]] = []

    def free(span: tuple[int, int]) -> bool:
        return all(span[1] <= a or span[0] >= b for a, b in taken)

    for match in _MIXED.finditer(text):
        whole, top, bottom = match.groups()
        if int(bottom) == 0:
            continue
        sign = -1 if whole.startswith(("-", "−")) else 1
        values.append((match.start(), sign * (abs(_number(whole)) + Fraction(int(top), int(bottom)))))
        taken.append(match.span())
    for match in _FRACTION.finditer(text):
        if not free(match.span()):
            continue
        bottom = _number(match.group(2))
        if bottom == 0:
            continue
        values.append((match.start(), _number(match.group(1)) / bottom))
        taken.append(match.span())
    for match in _PLAIN.finditer(text):
        if not free(match.span()):
            continue
        value = _number(match.group(1))
        if match.group(2):
            value /= 100
        values.append((match.start(), value))
        taken.append(match.span())
    return [value for _, value in sorted(values, key=lambda pair: pair[0])]


def grade_numeric(answer: str, key: str, *, tolerance: float = 0.0) -> Grade:
    """Exact comparison of rationals; `tolerance` (relative) for rounded decimals."""
    expected = parse_number(key)
    if expected is None:
        raise UsageError(f"grade_numeric: the key {key!r} is not a single number")
    given = parse_number(answer)
    if given is None:
        several = len(set(numbers_in(answer))) > 1
        message = "Give one number as your answer." if several else "I could not find a number in your answer."
        return Grade(correct=False, score=0.0, recognized=False, feedback=message)
    if given == expected:
        ok = True
    elif tolerance > 0:
        ok = math.isclose(float(given), float(expected), rel_tol=tolerance, abs_tol=tolerance * 1e-3)
    else:
        ok = False
    matched = str(given)
    return Grade(correct=ok, score=1.0 if ok else 0.0, matched=matched, feedback="Correct." if ok else "Not quite.")


# --- maths expressions -------------------------------------------------------------------------------

_ALLOWED_CHARS = re.compile(r"^[0-9A-Za-z\s+\-*/^().,]*$")
_ALLOWED_NAMES = frozenset({"sqrt", "sin", "cos", "tan", "log", "exp", "pi", "E", "I"})
_MAX_EXPRESSION_CHARS = 200
_MAX_EXPONENT = 64


def parse_expression(text: str) -> Any | None:
    """A sympy expression for `text`, or None when it is not a plain maths expression.

    Implicit multiplication ("2x", "2(x+1)") and ^ for powers are accepted; names are single letters or
    a few known functions. Anything else is refused before sympy sees it.
    """
    import sympy
    from sympy.parsing.sympy_parser import (
        convert_xor,
        implicit_multiplication_application,
        parse_expr,
        standard_transformations,
    )

    text = text.strip().replace("−", "-").replace("×", "*").replace("÷", "/")
    if "=" in text:  # "x = 2x+2" or "y=...": grade the right-hand side
        text = text.rsplit("=", 1)[1].strip()
    if not text or len(text) > _MAX_EXPRESSION_CHARS or not _ALLOWED_CHARS.match(text) or "__" in text:
        return None
    if re.search(r"\.\s*[A-Za-z]", text):  # attribute access, e.g. "(x).n(10**6)"
        return None
    for name in re.findall(r"[A-Za-z]+", text):
        # Known functions, or short runs of lower-case letters that implicit multiplication splits
        # into symbols ("xy" -> x*y). No Python keywords, no other sympy globals.
        if name in _ALLOWED_NAMES:
            continue
        if not (name.islower() and len(name) <= 3) or keyword.iskeyword(name):
            return None
    transformations = (*standard_transformations, implicit_multiplication_application, convert_xor)
    local = {ch: sympy.Symbol(ch) for ch in "abcdfghijklmnopqrstuvwxyz"}  # keep E, I, S... out of reach
    local["e"] = sympy.E
    try:
        unevaluated = parse_expr(text, local_dict=local, transformations=transformations, evaluate=False)
    except Exception:  # noqa: BLE001 - sympy's parser raises KeyError, IndexError... on odd input
        return None  # learner text that sympy cannot read is "not an expression", never a crash
    if not isinstance(unevaluated, sympy.Expr):
        return None
    for power in unevaluated.atoms(sympy.Pow):
        exponent = power.exp
        if exponent.is_number and abs(complex(exponent.evalf())) > _MAX_EXPONENT:
            return None
    try:
        return sympy.sympify(unevaluated)
    except Exception:  # noqa: BLE001 - as above: unreadable, not a crash
        return None


def expressions_equivalent(first: str, second: str, *, samples: int = 6, seed: int = 0) -> bool:
    """True when the two expressions are mathematically equal ("2*(x+1)" and "2x+2").

    sympy's simplify decides most cases; when it cannot reduce the difference to 0, the two are compared
    numerically at random points (a difference that is zero everywhere sampled counts as equal).
    """
    import sympy

    a, b = parse_expression(first), parse_expression(second)
    if a is None or b is None:
        return False
    try:
        difference = sympy.simplify(a - b)
        if difference == 0:
            return True
        symbols = sorted(difference.free_symbols, key=str)
        if not symbols:
            return abs(complex(difference.evalf())) < 1e-9
    except Exception:  # noqa: BLE001 - sympy internals fail on some valid-looking input: not equal
        return False
    rng = random.Random(seed)
    for _ in range(samples):
        point = {s: sympy.Float(rng.uniform(0.5, 3.0)) for s in symbols}
        try:
            value = complex(difference.evalf(subs=point))
        except (TypeError, ValueError):
            return False
        if not math.isfinite(abs(value)) or abs(value) > 1e-9:
            return False
    return True


def grade_expression(answer: str, key: str) -> Grade:
    if parse_expression(key) is None:
        raise UsageError(f"grade_expression: the key {key!r} is not a maths expression")
    if parse_expression(answer) is None:
        return Grade(correct=False, score=0.0, recognized=False,
                     feedback="Write your answer as one maths expression, e.g. 2x + 2.")
    ok = expressions_equivalent(answer, key)
    return Grade(correct=ok, score=1.0 if ok else 0.0, matched=answer.strip(),
                 feedback="Correct." if ok else "Not quite.")


# --- dispatch ----------------------------------------------------------------------------------------


def grade_item(item: Mapping[str, Any] | BaseModel, answer: str) -> Grade:
    """Grade `answer` to a keyed quiz item: {kind, answer, options?, distractors?, tolerance?}."""
    data = item.model_dump() if isinstance(item, BaseModel) else dict(item)
    kind = data.get("kind")
    key = str(data.get("answer", ""))
    if kind == "mc":
        return grade_choice(answer, data.get("options") or [], key, data.get("distractors"))
    if kind == "numeric":
        return grade_numeric(answer, key, tolerance=float(data.get("tolerance") or 0.0))
    if kind == "expression":
        return grade_expression(answer, key)
    if kind == "short":
        raise UsageError("grade_item: free-text ('short') items are graded by the grade_answer tool against a rubric")
    raise UsageError(f"grade_item: unknown item kind {kind!r} (mc, numeric, expression, short)")


__all__ = [
    "DETERMINISTIC_KINDS",
    "Grade",
    "choose_option",
    "expressions_equivalent",
    "grade_choice",
    "grade_expression",
    "grade_item",
    "grade_numeric",
    "is_number",
    "key_index",
    "normalize_text",
    "numbers_in",
    "parse_expression",
    "parse_number",
]
