"""The package's shape: no import cycles, every module on the map, light modules stay light, one contract."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "sft_vs_rlvr"


def modules() -> dict[str, Path]:
    """Dotted module name (without the package prefix for __init__) -> file."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(REPO).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def imported_modules(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """Package modules `name` imports anywhere in its body (function-level, lazy imports included)."""
    targets = set()
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            candidates = [f"{module}.{alias.name}" for alias in node.names] + [module]
        else:
            continue
        for candidate in candidates:
            if candidate in known and candidate != name:
                targets.add(candidate)
                break
    return targets


def import_graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imported_modules(name, path, known) for name, path in known.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), or a module importing itself."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []
    counter = [0]
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for vertex in graph:
        if vertex not in index:
            visit(vertex)
    return found


def test_no_import_cycles_lazy_imports_included():
    assert cycles(import_graph()) == []


def test_the_cycle_finder_finds_a_lazy_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_every_module_is_named_on_the_architecture_page():
    page = (REPO / "docs" / "ARCHITECTURE.md").read_text()
    named = set(re.findall(r"`([a-z0-9_.]+)`", page))
    missing = [name for name in modules() if "." in name
               and name.removeprefix("sft_vs_rlvr.") not in named
               and not name.endswith(("tiny", "launch", "evaluate", "report", "weights"))]
    assert missing == []


def test_subpackage_inits_and_the_contract_import_nothing_heavy():
    for init in PACKAGE.rglob("__init__.py"):
        tree = ast.parse(init.read_text())
        assert not [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))], init
    # Modules that run in open-instruct's environment or in the system python before any environment exists.
    standard_library_only = ("contract", "errors", "cache")
    for name in standard_library_only:
        tree = ast.parse((PACKAGE / f"{name}.py").read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and not node.level:
                assert node.module.split(".")[0] in sys.stdlib_module_names | {"__future__"}, (name, node.module)
            if isinstance(node, ast.Import):
                assert all(a.name.split(".")[0] in sys.stdlib_module_names for a in node.names), name


def test_the_contract_is_defined_once():
    """The arm list and the format ids appear as literals only in contract.py."""
    arms = re.compile(r"""\(\s*["']sft["'],\s*["']rlvr["'],\s*["']sft_rlvr["']\s*\)""")
    format_id = re.compile(r"""["']sft-vs-rlvr/[a-z-]+["']""")
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "contract.py":
            continue
        text = path.read_text()
        if arms.search(text) or format_id.search(text):
            offenders.append(str(path.relative_to(REPO)))
    assert offenders == []


@pytest.mark.parametrize("document", ["experiment_sft_llama8b.sh", "experiment_rlvr_llama8b.sh",
                                      "evaluate_comparison.sh", "analyze_results.py", "Makefile", "README.md",
                                      "docs/FORMATS.md", "docs/ARCHITECTURE.md", "scripts", "benchmarks"])
def test_every_python_m_path_names_a_module_that_exists(document):
    paths = [REPO / document] if (REPO / document).is_file() else sorted(
        p for p in (REPO / document).rglob("*") if p.suffix in (".py", ".sh", ".md"))
    known = set(modules())
    for path in paths:
        for name in re.findall(r"python3? -m (sft_vs_rlvr(?:\.\w+)*)", path.read_text()):
            assert name in known, f"{path.relative_to(REPO)}: python -m {name} names no module"
