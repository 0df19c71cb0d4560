"""Two graders, applied side by side to every response.

- `verifier_grade`: exactly what open-instruct's GSM8KVerifier scores at the pinned tag v0.3.0
  (open_instruct/ground_truth_utils.py:199-221): drop thousands commas between digits, take the
  last number (sign kept), compare as lower-cased strings. This is the RL reward, so evaluation
  agrees with what RLVR optimised. It says "72.0" != "72".
- `robust_grade`: the answer span the format asks for when present (the GSM8K line `#### N`,
  `\\boxed{N}`, `<answer>N</answer>`, "The answer is N"), else the last number; numbers compared
  as exact fractions ("72.0" == "72", "1,000" == "1000", "$5" == "5", "3/4" == "0.75"; a Unicode minus
  sign counts as "-"). The LaTeX number forms a math model writes are read first: `\\frac{3}{4}` (also
  dfrac, tfrac) as 3/4, `12\\,500` and `12{,}500` as 12500.
  Math-Verify was measured on tests/test_grading_parity.py's table and left out: it would fix 6 robust
  verdicts and break 11 (it reads `12\\,500` as 512, ignores `####`, cannot parse `+5` or full-width
  digits); GSM8K answers are numbers, and the forms above cover what it fixed.

A ground truth a grader cannot score as a number raises GoldAnswerError (a ValueError), never a silent 0:
robust_grade refuses one that is not a number ("seventy", "", "N/A"); verifier_grade refuses any label that
is not a plain number as open-instruct compares it (sign, digits, optional decimal point: "1,000", "3/4",
"$5", " 72" are refused), because GSM8KVerifier compares the label as a string with the response's last
number and would score such a label 0. `check_ground_truth` applies both checks up front.
tests/test_grading_parity.py checks verifier_grade against the real GSM8KVerifier at the pinned tag.

Command line, to audit the graders on any file of {"response", "ground_truth"} lines:
  python -m sft_vs_rlvr.evaluate.grading --input FILE [--output FILE]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import asdict, dataclass
from fractions import Fraction

from sft_vs_rlvr.errors import UserError, cli

_NUMBER = r"[-+]?(?:\d[\d,]*(?:\.\d+)?|\.\d+)(?:\s*/\s*\d+)?"
_SPAN_PATTERNS = [
    re.compile(r"####\s*\$?\s*(" + _NUMBER + ")"),
    re.compile(r"\\boxed\{\s*\$?\s*(" + _NUMBER + r")\s*\}"),
    re.compile(r"<answer>\s*\$?\s*(" + _NUMBER + r")[^<]*</answer>", re.S),
    re.compile(r"answer is:?\s*\$?\s*(" + _NUMBER + ")", re.I),
]


_LATEX_FRACTION = re.compile(r"\\[dt]?frac\{\s*(-?\d[\d,]*(?:\.\d+)?)\s*\}\{\s*(\d[\d,]*(?:\.\d+)?)\s*\}")
_LATEX_THOUSANDS = re.compile(r"(\d)(?:\\,|\{,\})(?=\d{3})")
_VERIFIER_NUMBER = r"[-+]?(?:\d*\.\d+|\d+)"  # ground_truth_utils.py:218 at v0.3.0
_UNICODE_MINUS = "\u2212"


class GoldAnswerError(ValueError):
    """A ground truth the grader cannot score as a number; str(error) names it and why."""


@dataclass(frozen=True)
class Grade:
    extracted: str | None
    correct: bool


def open_instruct_gsm8k(response: str, label: str) -> Grade:
    """GSM8KVerifier.__call__ of open-instruct v0.3.0 (ground_truth_utils.py:214-221), line for line, any label.

    extracted is None where the response has no number (open-instruct then compares the whole response).
    """
    text = re.sub(r"(\d),(\d)", r"\1\2", response)
    numbers = re.findall(_VERIFIER_NUMBER, text)
    extracted = numbers[-1] if numbers else text
    return Grade(extracted=numbers[-1] if numbers else None,
                 correct=str(extracted).lower() == str(label).lower())


def verifier_grade(response: str, ground_truth: str) -> Grade:
    """open-instruct v0.3.0 GSM8KVerifier, reproduced: score 1 iff last number == label (as strings).

    Raises GoldAnswerError for a label that is not a plain number, which open-instruct would score 0 silently.
    """
    label = str(ground_truth)
    if not re.fullmatch(_VERIFIER_NUMBER, label):
        raise GoldAnswerError(f"ground truth {label!r} is not a plain number (like 1000 or -2.5): open-instruct's "
                              "GSM8KVerifier compares it as a string with the response's last number")
    return open_instruct_gsm8k(response, label)


def parse_number(text: str) -> Fraction | None:
    """'1,000' -> 1000, '$72.50' -> 145/2, '3/4' -> 3/4, '+5' -> 5; None when it is not a number."""
    cleaned = (text.strip().replace(_UNICODE_MINUS, "-").replace("$", "").replace(",", "").replace(" ", "")
               .rstrip("."))
    if not cleaned:
        return None
    try:
        if "/" in cleaned:
            numerator, denominator = cleaned.split("/", 1)
            return Fraction(numerator) / Fraction(denominator)
        return Fraction(cleaned)
    except (ValueError, ZeroDivisionError):
        return None


def extract_answer(response: str) -> str | None:
    """The answer span the format asks for; else the last number in the response."""
    for pattern in _SPAN_PATTERNS:
        matches = pattern.findall(response)
        if matches:
            return matches[-1].strip()
    numbers = re.findall(_NUMBER, response)
    return numbers[-1].strip() if numbers else None


def robust_grade(response: str, ground_truth: str) -> Grade:
    """Raises GoldAnswerError for a ground truth that is not a number."""
    gold = parse_number(str(ground_truth))
    if gold is None:
        raise GoldAnswerError(f"ground truth {ground_truth!r} is not a number")
    text = _LATEX_FRACTION.sub(r"\1/\2", response.replace(_UNICODE_MINUS, "-"))
    extracted = extract_answer(_LATEX_THOUSANDS.sub(r"\1", text))
    value = parse_number(extracted) if extracted is not None else None
    return Grade(extracted=extracted, correct=value is not None and value == gold)


def check_ground_truth(ground_truth: str) -> None:
    """Raise GoldAnswerError where either grader would refuse this ground truth (before any generation)."""
    robust_grade("", ground_truth)
    verifier_grade("", ground_truth)


@cli
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sft_vs_rlvr.evaluate.grading", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", required=True, help='JSONL of {"response", "ground_truth"} lines')
    parser.add_argument("--output", default="-", help="JSONL written here (default: standard output)")
    args = parser.parse_args(argv)
    out_lines = []
    try:
        handle = open(args.input, "rb")
    except OSError as error:
        raise UserError(f"cannot read {args.input}: {error.strerror}; pass an existing JSONL file") from None
    with handle:
        for number, raw in enumerate(handle, 1):
            if not raw.strip():
                continue
            try:
                row = json.loads(raw.decode("utf-8"))
                response, gold = row["response"], str(row["ground_truth"])
                if not isinstance(response, str):
                    raise TypeError("response is not a string")
            except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError):
                raise UserError(f"{args.input}:{number}: expected a JSON object with 'response' (a string) and "
                                "'ground_truth'") from None
            try:
                robust = robust_grade(response, gold)
                verifier = verifier_grade(response, gold)
            except GoldAnswerError as error:
                raise UserError(f"{args.input}:{number}: {error}; ground truths must be plain numbers") from None
            out_lines.append(json.dumps({
                "line": number, "ground_truth": gold,
                "robust": asdict(robust), "verifier": asdict(verifier),
                "disagree": robust.correct != verifier.correct,
            }, sort_keys=True))
    text = "".join(line + "\n" for line in out_lines)
    if args.output == "-":
        sys.stdout.write(text)
    else:
        from sft_vs_rlvr.atomic import write_text
        write_text(args.output, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
