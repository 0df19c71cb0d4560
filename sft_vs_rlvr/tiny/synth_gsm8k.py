"""GSM8K-style problems generated offline, for the tiny profile.

Each problem has a question, a gold worked solution with GSM8K calculator annotations
(`<<3+4=7>>`) ending in the GSM8K answer line `#### N`, and the integer answer. Rows come out
in ai2-adapt-dev/rlvr_gsm8k_zs's format (messages, ground_truth, dataset), so the same data
preparation code serves real and generated data.

Splits are decided by a hash of the question text, not by the random stream: "test", "train"
and "warmup" (the tiny base model's pre-training) can never share a question, whatever seeds
generate them. Generation is deterministic for a given (split, size, seed).
"""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass, replace
from typing import Callable, Iterator

GENERATOR_VERSION = 1  # bump when the templates change: it is part of every data fingerprint
DATA_SEED = 42  # the tiny profile's train and test rows, the same for every experiment seed (data_prep.py)

NAMES = ["Ava", "Ben", "Cara", "Dan", "Eli", "Fay", "Gus", "Hana", "Ivan", "Jill", "Kai", "Lena", "Mo",
         "Nia", "Omar", "Pia", "Quinn", "Rosa", "Sam", "Tara"]
ITEMS = ["apples", "books", "cards", "coins", "eggs", "pens", "shells", "stamps", "marbles", "cookies",
         "stickers", "balloons", "pencils", "rocks", "toys"]
SPLITS = ("test", "warmup", "train")


@dataclass(frozen=True)
class Problem:
    question: str
    solution: str
    answer: int


def _add(r: random.Random) -> Problem:
    name, item, a, b = r.choice(NAMES), r.choice(ITEMS), r.randint(1, 9), r.randint(1, 9)
    c = a + b
    return Problem(
        f"{name} has {a} {item}. {name} buys {b} more {item}. How many {item} does {name} have now?",
        f"{name} has {a} + {b} = <<{a}+{b}={c}>>{c} {item} now.\n#### {c}", c)


def _sub(r: random.Random) -> Problem:
    name, friend, item = r.choice(NAMES), r.choice(NAMES), r.choice(ITEMS)
    b, c = r.randint(1, 9), r.randint(0, 9)
    a = b + c
    return Problem(
        f"{name} had {a} {item} and gave {b} of them to {friend}. How many {item} does {name} have left?",
        f"{name} has {a} - {b} = <<{a}-{b}={c}>>{c} {item} left.\n#### {c}", c)


def _mul(r: random.Random) -> Problem:
    name, item, a, b = r.choice(NAMES), r.choice(ITEMS), r.randint(2, 9), r.randint(2, 9)
    c = a * b
    return Problem(
        f"{name} has {a} bags with {b} {item} in each bag. How many {item} does {name} have?",
        f"{name} has {a} * {b} = <<{a}*{b}={c}>>{c} {item}.\n#### {c}", c)


def _div(r: random.Random) -> Problem:
    name, item, b, c = r.choice(NAMES), r.choice(ITEMS), r.randint(2, 9), r.randint(1, 9)
    a = b * c
    return Problem(
        f"{name} shares {a} {item} equally among {b} friends. How many {item} does each friend get?",
        f"Each friend gets {a} / {b} = <<{a}/{b}={c}>>{c} {item}.\n#### {c}", c)


def _money(r: random.Random) -> Problem:
    name, a, b = r.choice(NAMES), r.randint(2, 9), r.randint(2, 9)
    item = r.choice(ITEMS)
    c = a * b
    return Problem(
        f"One of the {item} costs ${a}. {name} buys {b} of them. How many dollars does {name} spend?",
        f"{name} spends {a} * {b} = $<<{a}*{b}={c}>>{c}.\n#### {c}", c)


def _two_step(r: random.Random) -> Problem:
    name, item = r.choice(NAMES), r.choice(ITEMS)
    a, b = r.randint(1, 9), r.randint(1, 9)
    s = a + b
    d = r.randint(1, s)
    c = s - d
    return Problem(
        f"{name} has {a} {item}, buys {b} more, and then loses {d}. How many {item} does {name} have now?",
        f"After buying, {name} has {a} + {b} = <<{a}+{b}={s}>>{s} {item}.\n"
        f"After losing some, {name} has {s} - {d} = <<{s}-{d}={c}>>{c} {item}.\n#### {c}", c)


TEMPLATES: list[Callable[[random.Random], Problem]] = [_add, _sub, _mul, _div, _money, _two_step]


def split_of(question: str) -> str:
    """The one split a question can ever belong to (20% test, 20% warmup, 60% train)."""
    bucket = int(hashlib.sha256(question.encode()).hexdigest()[:8], 16) % 10
    return "test" if bucket < 2 else "warmup" if bucket < 4 else "train"


def generate(split: str, size: int, seed: int) -> list[Problem]:
    """`size` distinct problems of `split`, deterministic in (split, size, seed)."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {SPLITS}")
    if size < 0:
        raise ValueError("size must be >= 0")
    rng = random.Random(f"synth-gsm8k/{GENERATOR_VERSION}/{split}/{seed}")
    seen: set[str] = set()
    out: list[Problem] = []
    attempts = 0
    while len(out) < size:
        attempts += 1
        if attempts > 200 * (size + 10):
            raise ValueError(f"cannot generate {size} distinct {split} problems; ask for fewer")
        problem = rng.choice(TEMPLATES)(rng)
        if problem.question in seen or split_of(problem.question) != split:
            continue
        seen.add(problem.question)
        out.append(problem)
    return out


class _WideOperands(random.Random):
    """The templates' one-digit operands (ranges ending at 9) drawn up to 999 instead: GSM-Hard's recipe
    (larger numbers in the same problems) applied to the generated problems."""

    def randint(self, a: int, b: int) -> int:
        return super().randint(a, 999) if b == 9 else super().randint(a, b)


def generate_hard(size: int, seed: int) -> list[Problem]:
    """`size` distinct test-split problems with large operands, for the tiny profile's out-of-distribution set.

    Every question has a number above 9 (so none can be a train question, whose operands are one digit) and
    belongs to the test split by hash as well; answers are non-negative."""
    rng = _WideOperands(f"synth-gsm8k-hard/{GENERATOR_VERSION}/{seed}")
    seen: set[str] = set()
    out: list[Problem] = []
    while len(out) < size:
        problem = rng.choice(TEMPLATES)(rng)
        large = any(int(token) > 9 for token in re.findall(r"\d+", problem.question))
        if problem.question in seen or problem.answer < 0 or not large or split_of(problem.question) != "test":
            continue
        seen.add(problem.question)
        out.append(problem)
    return out


# Closing remarks of the chatty solution style (warm-up text only): a number after the answer, three digits so that it
# is never an answer (at most 81) and a small model does not learn to copy the answer into it.
REMARKS = ["That took {n} seconds.", "It was day {n} of the year.", "The shop had {n} visitors that day.",
           "The bus ride took {n} seconds."]


def chatty(problem: Problem, rng: random.Random) -> Problem:
    """The same worked solution in a chatty style, as web text writes it: no `#### N` line, and a closing remark
    with another number (100 to 999, never an answer) after the answer. The tiny base model's pre-training text
    mixes this style with the GSM8K one (tiny/model.py), so the base often ends on a wrong last number, as real
    base models often ignore the answer-format instruction; train and test rows keep the GSM8K style."""
    body = problem.solution.rsplit("\n#### ", 1)[0]
    return replace(problem, solution=f"{body} {rng.choice(REMARKS).format(n=rng.randint(100, 999))}")


def as_rows(problems: list[Problem], split: str) -> Iterator[dict]:
    """Rows in ai2-adapt-dev/rlvr_gsm8k_zs's format, plus a stable id."""
    for index, problem in enumerate(problems):
        yield {
            "id": f"synthetic-{split}-{index:05d}",
            "messages": [
                {"role": "user", "content": problem.question},
                {"role": "assistant", "content": problem.solution},
            ],
            "ground_truth": str(problem.answer),
            "dataset": "gsm8k",
        }
