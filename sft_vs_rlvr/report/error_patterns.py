"""Which problems each model solves, and why answers fail.

Accuracy alone hides whether two models fail on the same problems and whether a failure is a slip of
arithmetic, a run out of tokens or a wrong method; the report needs both to say what RLVR changed.

- solve_sets: two models' verdicts paired by problem id (both / only A / only B / neither), with examples.
- categorize: one failure category per response, checked in the order of CATEGORIES.
- arithmetic_slips: written steps `<expr> = <number>` (GSM8K calculator annotations `<<48/2=24>>` included)
  whose stated result is not the value of the expression, evaluated exactly with fractions.
- failure_categories: the category counts of one model, with examples.
"""

from __future__ import annotations

import ast
import operator
import re
from collections.abc import Callable
from decimal import Decimal
from fractions import Fraction
from typing import Any

CATEGORIES = ("correct", "truncated", "no_answer", "arithmetic_error", "wrong_answer")
CLIP_CHARS = 500
MAX_EXPRESSION_CHARS = 300  # a longer left-hand side is not looked at (bounds the regex work on degenerate text)

_EXTRACTED_KEY = {"correct": "extracted", "verifier_correct": "verifier_extracted"}

# A number as written in a step: optional $, thousands commas (1,234) or plain digits, decimals, optional %.
_NUMBER = r"\$?(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?%?|\$?\.\d+%?"
_OPERAND = rf"(?:\(\s*)*-?\s*(?:{_NUMBER})(?:\s*\))*"
_OPERATOR = r"\s*(?:[-+*/×÷]|[xX](?=\s*[\d$(.]))\s*"
# An expression: at least two operands joined by operators, ending where the left-hand side ends. It may
# not start inside a word, a number or a time ("6:00+48").
_EXPRESSION = re.compile(rf"(?<![\w.,$:]){_OPERAND}(?:{_OPERATOR}{_OPERAND})+\s*$")
# "=" (not "==", "<=", ">=", "!=") and the stated result, which may not go on as an expression ("2*5 + 2*3 =
# 10 + 6 = 16": the first "=" states no single number), a mixed number ("= 1 1/2"), a time ("= 6:48") or
# algebra ("= 5A/5").
_GOES_ON = r"\w|[.,:]\d|[ \t]*[-+*/×÷^xX][ \t]*[\d$(.]|[ \t]+\d+/\d"
_EQUALS = re.compile(rf"(?<![=<>!])=(?!=)[ \t]*(?P<stated>-?[ \t]*(?:{_NUMBER}))(?!{_GOES_ON})")
_NUMBER_TOKEN = re.compile(_NUMBER)
_TIGHT_FRACTION = re.compile(r"(?<![\w.)/])(_\d+/_\d+)(?![\w./(])")  # "1/3" written without spaces, as a unit
_BINARY: dict[type, Callable[[Fraction, Fraction], Fraction]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}
_UNARY: dict[type, Callable[[Fraction], Fraction]] = {ast.USub: operator.neg, ast.UAdd: operator.pos}


def clip(text: str | None, limit: int = CLIP_CHARS) -> str | None:
    """At most `limit` characters, with "…" appended where text was cut."""
    if text is None or len(text) <= limit:
        return text
    return text[:limit] + "…"


def question(prompt: str) -> str:
    """The user's question inside a chat-template prompt (the project template's user turn), else the prompt."""
    start = prompt.find("<|user|>\n")
    if start < 0:
        return prompt
    start += len("<|user|>\n")
    end = prompt.find("\n<|assistant|>", start)
    return prompt[start:] if end < 0 else prompt[start:end]


def solve_sets(rows_a: list[dict[str, Any]], rows_b: list[dict[str, Any]], key: str = "correct",
               examples: int = 3) -> dict[str, Any]:
    """Problems solved by both models, by A only, by B only, by neither (rows paired by id), with examples.

    Examples are the first `examples` ids in sorted order, so the same files give the same examples.
    """
    a, b = _by_id(rows_a, "rows_a"), _by_id(rows_b, "rows_b")
    paired = sorted(a.keys() & b.keys())
    groups: dict[str, list[str]] = {"both": [], "a_only": [], "b_only": [], "neither": []}
    for problem in paired:
        solved_a, solved_b = bool(a[problem][key]), bool(b[problem][key])
        group = "both" if solved_a and solved_b else "a_only" if solved_a else "b_only" if solved_b else "neither"
        groups[group].append(problem)
    return {
        "n_paired": len(paired),
        "unpaired": {"a": len(a.keys() - b.keys()), "b": len(b.keys() - a.keys())},
        "counts": {group: len(ids) for group, ids in groups.items()},
        "examples": {group: [{"id": problem, "gold": a[problem]["gold"],
                              "question": clip(question(a[problem]["prompt"])),
                              "response_a": clip(a[problem]["response"]), "response_b": clip(b[problem]["response"])}
                             for problem in groups[group][:examples]]
                     for group in ("a_only", "b_only", "neither")},
    }


def _by_id(rows: list[dict[str, Any]], name: str) -> dict[str, dict[str, Any]]:
    """Rows keyed by id; a repeated id is refused (pairing would silently pick one)."""
    out: dict[str, dict[str, Any]] = {}
    for row in rows:
        if row["id"] in out:
            raise ValueError(f"{name}: problem id {row['id']!r} appears twice; each problem must appear once")
        out[row["id"]] = row
    return out


def categorize(row: dict[str, Any], key: str = "correct") -> str:
    """The first of CATEGORIES that applies: correct, truncated, no_answer, arithmetic_error, wrong_answer."""
    if row[key]:
        return "correct"
    if row["truncated"]:
        return "truncated"
    if row[_EXTRACTED_KEY[key]] is None:
        return "no_answer"
    if arithmetic_slips(row["response"]):
        return "arithmetic_error"
    return "wrong_answer"


def failure_categories(rows: list[dict[str, Any]], key: str = "correct", examples: int = 2) -> dict[str, Any]:
    """Counts per category (all CATEGORIES present) and the first `examples` failures of each, by sorted id."""
    counts = {category: 0 for category in CATEGORIES}
    found: dict[str, list[dict[str, Any]]] = {category: [] for category in CATEGORIES if category != "correct"}
    for row in sorted(rows, key=lambda r: r["id"]):
        category = categorize(row, key)
        counts[category] += 1
        if category == "correct" or len(found[category]) >= examples:
            continue
        example = {"id": row["id"], "gold": row["gold"], "extracted": row[_EXTRACTED_KEY[key]],
                   "response": clip(row["response"])}
        if category == "arithmetic_error":
            example["slips"] = arithmetic_slips(row["response"])
        found[category].append(example)
    return {"counts": counts, "examples": found}


def arithmetic_slips(text: str) -> list[dict[str, str]]:
    """Steps `<expr> = <number>` whose stated number is not the expression's value: [{expression, stated, correct}].

    The expression is the longest run of numbers ($, thousands commas, decimals, % allowed), + - * / × ÷,
    "x" between numbers, and parentheses that ends at the "=" (within the line, after any earlier "=" or
    "<<", at most MAX_EXPRESSION_CHARS long); it must hold an operator and must not be the tail of a longer
    one ("y - 5 + 3", "8 x 1 1/2"). It is evaluated exactly (fractions, through `ast`, never eval).
    Not a slip:
    - a result within 1e-6 relative of the value, or the value rounded to the stated number of decimals
      ("10/3 = 3.33"; "7/2 = 3" and "= 4" both: a tie may go either way);
    - a result that matches another reading of the expression: % read as /100 or as nothing
      ("0.25 * 100 = 25%"), a fraction written without spaces taken as one number ("25 / 1/3 = 75").
    Skipped: single numbers ("x = 5"), division by zero, clock times ("0900-0130"), a stated result that goes
    on as an expression, mixed number, time or algebra ("= 10 + 6", "= 1 1/2", "= 6:48", "= 5A"), anything
    unparsable. "correct" is the usual reading's value (% as /100), shown as a percentage when the stated one is.
    """
    slips = []
    for match in _EQUALS.finditer(text):
        left = text[text.rfind("\n", 0, match.start()) + 1: match.start()]
        # The left-hand side starts after any earlier "=" or "<<"/">>" on the line, at most MAX_EXPRESSION_CHARS back.
        start = max(left.rfind("="), left.rfind("<"), left.rfind(">")) + 1
        expression = _EXPRESSION.search(left, max(start, len(left) - MAX_EXPRESSION_CHARS))
        if expression is None or _continues_words(left[: expression.start()], expression.group()):
            continue
        written = expression.group().strip()
        while written.startswith("(") and written.count("(") > written.count(")"):
            written = written[1:].lstrip()  # "(5 + 3 = 8)": the bracket opens around the whole step
        values = _values(written)
        stated = match.group("stated")
        if values is None or _matches(values, stated):
            continue
        percent = stated.rstrip().endswith("%")
        slips.append({"expression": written, "stated": stated.replace(" ", ""),
                      "correct": _compact(values[0] * (100 if percent else 1)) + ("%" if percent else "")})
    return slips


def _continues_words(before: str, expression: str) -> bool:
    """Whether the expression is the tail of a longer one ("y - 5 + 3", "2^3 + 1", "8 x 1 1/2")."""
    before = before.rstrip()
    if not before:
        return False
    last = before[-1]
    if last.isdigit():
        return True  # "8 x 1 1/2": the expression's first number is the fraction of a mixed number
    if expression.lstrip().startswith("-"):
        return last.isalnum() or last in ")_"  # "y -5": the minus is a binary one after a word
    return last in "+-*/×÷^)" or (last in "xX" and len(before) > 1 and not before[-2].isalpha())


def _number(token: str) -> tuple[Fraction, bool]:
    """'$1,234.5' -> (2469/2, False); '25%' -> (25, True)."""
    percent = token.endswith("%")
    return Fraction(token.strip("$%").replace(",", "")), percent


def _values(expression: str) -> list[Fraction] | None:
    """The expression's value under each reading (module rules), the usual one first; None if unusable.

    Readings: % as /100 or as nothing (where % occurs); usual precedence, or a fraction written without
    spaces taken as one number ("25 / 1/3" = 75, as GSM8K solutions write it).
    """
    numbers: list[tuple[Fraction, bool]] = []

    def placeholder(found: re.Match[str]) -> str:
        numbers.append(_number(found.group()))
        return f"_{len(numbers) - 1}"

    if re.search(r"(?<![\d.])0\d", expression):
        return None  # "0900-0130": a clock time, not arithmetic
    source = _NUMBER_TOKEN.sub(placeholder, expression)
    source = re.sub(r"[xX×]", "*", source).replace("÷", "/").strip()
    sources = dict.fromkeys([source, _TIGHT_FRACTION.sub(r"(\1)", source)])
    try:
        trees = [ast.parse(text, mode="eval").body for text in sources]
    except SyntaxError:
        return None
    values = []
    for scale in (Fraction(1, 100), Fraction(1)) if any(p for _, p in numbers) else (Fraction(1),):
        scaled = [v * scale if p else v for v, p in numbers]
        for tree in trees:
            try:
                values.append(_evaluate(tree, scaled))
            except ZeroDivisionError:
                continue
            except ValueError:
                return None
    return values or None


def _evaluate(node: ast.AST, numbers: list[Fraction]) -> Fraction:
    """+ - * / on the numbers named _0, _1, ...; any other node raises ValueError."""
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        return _BINARY[type(node.op)](_evaluate(node.left, numbers), _evaluate(node.right, numbers))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_evaluate(node.operand, numbers))
    if isinstance(node, ast.Name) and re.fullmatch(r"_\d+", node.id):
        return numbers[int(node.id[1:])]
    raise ValueError(f"not arithmetic: {ast.dump(node)}")


def _matches(values: list[Fraction], stated: str) -> bool:
    """Whether some reading of the value and of the stated number agree (module rules)."""
    token = stated.replace(" ", "")
    negative = token.startswith("-")
    number, percent = _number(token.lstrip("-"))
    number = -number if negative else number
    decimals = len(token.rstrip("%").split(".")[1]) if "." in token else 0
    half_step = Fraction(1, 2 * 10 ** decimals)  # the value rounded to `decimals` places is within this
    for value in values:
        readings = ((number, half_step), (number / 100, half_step / 100)) if percent else ((number, half_step),)
        for reading, step in readings:
            gap = abs(value - reading)
            if gap <= Fraction(1, 10 ** 6) * max(1, abs(value)) or gap <= step:
                return True
    return False


def _compact(value: Fraction) -> str:
    """An integer as is, otherwise a decimal of at most 6 places without trailing zeros."""
    if value.denominator == 1:
        return str(value.numerator)
    text = f"{Decimal(value.numerator) / Decimal(value.denominator):.6f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text
