#!/usr/bin/env python3
"""Extract every CLI flag of open-instruct's finetune.py and grpo_fast.py at one revision.

Static analysis only (stdlib: ast, json, subprocess, argparse); nothing from open-instruct is imported or executed.

For each entrypoint the script
  1. finds the ``ArgumentParserPlus(...)`` call (preferring one under ``if __name__ == "__main__":``, else inside
     ``main``/any function) and the dataclasses handed to it, in order;
  2. resolves every dataclass across modules of the repository (``from x import Y``, ``import x as y``,
     ``mod.Y`` attribute references, simple re-export aliases ``Y = Z``);
  3. collects fields the way ``dataclasses`` does: C3 MRO of the class, walked from the most basic class to the
     class itself, taking annotated class-body assignments of every ``@dataclass``-decorated class, a re-declared
     field keeping its first position but taking the new definition; ``ClassVar``/``InitVar``/``KW_ONLY`` entries and
     ``field(init=False)`` fields are skipped (HfArgumentParser skips ``init=False`` fields);
  4. applies ``<parser>.set_defaults(...)`` found in the same block as the parser construction.

Usage:
  extract_oi_flags.py --git-dir /path/to/repo.git --rev v0.3.0 [--output-dir DIR] [--label v0.3.0]
  extract_oi_flags.py --tree /path/to/open-instruct [--output-dir DIR]

With --output-dir, writes DIR/<entrypoint>_<label>.json (label defaults to --rev as given, or the tree's short SHA /
"tree"); otherwise prints one JSON object {entrypoint_path: document} to stdout. Output is deterministic: keys are
sorted, flags are listed in the order argparse registers them (parser dataclasses in order, fields in dataclass
order), lists derived from sets are sorted.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import subprocess
import sys

ENTRYPOINTS = {
    "finetune": "open_instruct/finetune.py",
    "grpo_fast": "open_instruct/grpo_fast.py",
}
HELP_MAX = 300
PARSER_CLASS_NAME = "ArgumentParserPlus"
BOOL_ANNOTATIONS = {"bool", "Optional[bool]", "typing.Optional[bool]", "bool | None", "None | bool"}
ENUM_BASE_NAMES = {"Enum", "StrEnum", "IntEnum", "enum.Enum", "enum.StrEnum", "enum.IntEnum"}


# ---------------------------------------------------------------------------------------------------------------------
# Source access
# ---------------------------------------------------------------------------------------------------------------------


class Source:
    """Read files of one open-instruct revision, from a bare git dir or a checked-out tree."""

    def __init__(self, git_dir: str | None = None, rev: str | None = None, tree: str | None = None):
        self.git_dir = git_dir
        self.rev = rev
        self.tree = tree
        self._cache: dict[str, str | None] = {}
        self._files: set[str] | None = None
        if git_dir:
            self.commit = self._git("rev-parse", "--verify", f"{rev}^{{commit}}").strip()
            listing = self._git("ls-tree", "-r", "--name-only", self.commit)
            self._files = set(listing.splitlines())
        else:
            self.commit = self._tree_commit()

    def _git(self, *args: str) -> str:
        cmd = ["git", "--git-dir", self.git_dir, *args]
        res = subprocess.run(cmd, check=True, capture_output=True, text=True)
        return res.stdout

    def _tree_commit(self) -> str | None:
        # Only trust git if the tree itself is the work-tree root (not a directory inside some other repository).
        try:
            top = subprocess.run(
                ["git", "-C", self.tree, "rev-parse", "--show-toplevel"], check=True, capture_output=True, text=True
            ).stdout.strip()
            if os.path.realpath(top) != os.path.realpath(self.tree):
                return None
            res = subprocess.run(
                ["git", "-C", self.tree, "rev-parse", "HEAD"], check=True, capture_output=True, text=True
            )
            return res.stdout.strip() or None
        except (OSError, subprocess.CalledProcessError):
            return None

    def exists(self, path: str) -> bool:
        if self._files is not None:
            return path in self._files
        return os.path.isfile(os.path.join(self.tree, path))

    def read(self, path: str) -> str | None:
        if path in self._cache:
            return self._cache[path]
        text = None
        if self.exists(path):
            if self.git_dir:
                text = self._git("show", f"{self.commit}:{path}")
            else:
                with open(os.path.join(self.tree, path), encoding="utf-8") as fh:
                    text = fh.read()
        self._cache[path] = text
        return text


# ---------------------------------------------------------------------------------------------------------------------
# Module model
# ---------------------------------------------------------------------------------------------------------------------


def unparse(node: ast.AST | None) -> str | None:
    return None if node is None else ast.unparse(node)


def dotted(node: ast.AST) -> str | None:
    """'a.b.c' for Name/Attribute chains, else None."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


def iter_toplevel(body: list[ast.stmt]):
    """Top-level statements, descending into if/try/with blocks (conditional imports and definitions)."""
    for stmt in body:
        yield stmt
        if isinstance(stmt, ast.If):
            yield from iter_toplevel(stmt.body)
            yield from iter_toplevel(stmt.orelse)
        elif isinstance(stmt, ast.Try) or (hasattr(ast, "TryStar") and isinstance(stmt, getattr(ast, "TryStar"))):
            yield from iter_toplevel(stmt.body)
            for handler in stmt.handlers:
                yield from iter_toplevel(handler.body)
            yield from iter_toplevel(stmt.orelse)
            yield from iter_toplevel(stmt.finalbody)
        elif isinstance(stmt, ast.With):
            yield from iter_toplevel(stmt.body)


class Module:
    def __init__(self, path: str, modname: str, text: str):
        self.path = path
        self.modname = modname
        self.is_package = path.endswith("__init__.py")
        self.tree = ast.parse(text, filename=path)
        self.classes: dict[str, ast.ClassDef] = {}
        # local name -> ("module", modname) | ("from", modname, attr) | ("alias", expr)
        self.bindings: dict[str, tuple] = {}
        for stmt in iter_toplevel(self.tree.body):
            if isinstance(stmt, ast.ClassDef):
                self.classes.setdefault(stmt.name, stmt)
            elif isinstance(stmt, ast.Import):
                for alias in stmt.names:
                    if alias.asname:
                        self.bindings.setdefault(alias.asname, ("module", alias.name))
                    else:
                        top = alias.name.split(".")[0]
                        self.bindings.setdefault(top, ("module", top))
            elif isinstance(stmt, ast.ImportFrom):
                base = self._absolute(stmt.module, stmt.level)
                for alias in stmt.names:
                    if alias.name == "*":
                        continue
                    self.bindings.setdefault(alias.asname or alias.name, ("from", base, alias.name))
            elif isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
                if dotted(stmt.value) is not None:
                    self.bindings.setdefault(stmt.targets[0].id, ("alias", stmt.value))

    def _absolute(self, module: str | None, level: int) -> str:
        if level == 0:
            return module or ""
        pkg_parts = self.modname.split(".")
        if not self.is_package:
            pkg_parts = pkg_parts[:-1]
        if level > 1:
            pkg_parts = pkg_parts[: len(pkg_parts) - (level - 1)]
        return ".".join(pkg_parts + ([module] if module else []))


class Resolver:
    def __init__(self, src: Source):
        self.src = src
        self.modules: dict[str, Module | None] = {}

    def module_path(self, modname: str) -> str | None:
        base = modname.replace(".", "/")
        for cand in (base + ".py", base + "/__init__.py"):
            if self.src.exists(cand):
                return cand
        return None

    def module(self, modname: str) -> Module | None:
        if modname not in self.modules:
            path = self.module_path(modname)
            text = self.src.read(path) if path else None
            self.modules[modname] = Module(path, modname, text) if text is not None else None
        return self.modules[modname]

    def module_for_path(self, path: str) -> Module:
        modname = path[: -len(".py")].replace("/", ".")
        if modname.endswith(".__init__"):
            modname = modname[: -len(".__init__")]
        mod = self.module(modname)
        if mod is None:
            raise SystemExit(f"error: {path} not found at this revision")
        return mod

    def resolve_name(self, mod: Module, name: str, depth: int = 0):
        """Resolve a bare name in mod -> ("class", Module, ClassDef) | ("module", modname) | ("external", text)."""
        if depth > 20:
            return ("external", name)
        if name in mod.classes:
            return ("class", mod, mod.classes[name])
        binding = mod.bindings.get(name)
        if binding is None:
            return ("external", name)
        if binding[0] == "module":
            return ("module", binding[1])
        if binding[0] == "from":
            _, base, attr = binding
            sub = self.module(f"{base}.{attr}" if base else attr)
            target = self.module(base) if base else None
            if target is not None and (attr in target.classes or attr in target.bindings):
                return self.resolve_name(target, attr, depth + 1)
            if sub is not None:
                return ("module", sub.modname)
            return ("external", f"{base}.{attr}")
        if binding[0] == "alias":
            return self.resolve_expr(mod, binding[1], depth + 1)
        return ("external", name)

    def resolve_expr(self, mod: Module, node: ast.AST, depth: int = 0):
        text = dotted(node)
        if text is None:
            return ("external", unparse(node))
        parts = text.split(".")
        res = self.resolve_name(mod, parts[0], depth)
        for attr in parts[1:]:
            if res[0] == "module":
                target = self.module(res[1])
                if target is None:
                    return ("external", text)
                if attr in target.classes or attr in target.bindings:
                    res = self.resolve_name(target, attr, depth + 1)
                elif self.module(f"{res[1]}.{attr}") is not None:
                    res = ("module", f"{res[1]}.{attr}")
                else:
                    return ("external", text)
            else:
                return ("external", text)
        return res


# ---------------------------------------------------------------------------------------------------------------------
# Dataclass analysis
# ---------------------------------------------------------------------------------------------------------------------


def is_dataclass_decorated(cls: ast.ClassDef) -> bool:
    for dec in cls.decorator_list:
        target = dec.func if isinstance(dec, ast.Call) else dec
        if dotted(target) in ("dataclass", "dataclasses.dataclass"):
            return True
    return False


def annotation_is(node: ast.AST, names: set[str]) -> bool:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        try:
            node = ast.parse(node.value, mode="eval").body
        except SyntaxError:
            return False
    if isinstance(node, ast.Subscript):
        node = node.value
    return dotted(node) in names


def is_field_call(node: ast.AST) -> bool:
    return isinstance(node, ast.Call) and dotted(node.func) in ("field", "dataclasses.field")


def literal_or_source(node: ast.AST):
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return unparse(node)


def factory_default(node: ast.AST) -> str:
    if isinstance(node, ast.Lambda):
        return unparse(node.body)
    simple = {"list": "[]", "dict": "{}", "set": "set()", "tuple": "()", "str": "''", "int": "0", "float": "0.0"}
    name = dotted(node)
    if name in simple:
        return simple[name]
    return f"{unparse(node)}()"


class Klass:
    """A resolved class: where it lives and its AST."""

    def __init__(self, mod: Module, node: ast.ClassDef):
        self.mod = mod
        self.node = node
        self.key = f"{mod.path}:{node.name}"

    @property
    def name(self) -> str:
        return self.node.name


class Analyzer:
    def __init__(self, src: Source):
        self.src = src
        self.res = Resolver(src)
        self.warnings: set[str] = set()

    # --- class hierarchy -----------------------------------------------------------------------------------------
    def bases(self, k: Klass) -> list[Klass | str]:
        out: list[Klass | str] = []
        for base in k.node.bases:
            r = self.res.resolve_expr(k.mod, base)
            if r[0] == "class":
                out.append(Klass(r[1], r[2]))
            else:
                text = unparse(base)
                if text not in ("object",) and text not in ENUM_BASE_NAMES and text not in ("str", "int"):
                    self.warnings.add(
                        f"{k.mod.path}:{k.node.lineno}: base {text!r} of {k.name} is outside the repository; "
                        "its fields (if it is a dataclass) are not included"
                    )
                out.append(f"external:{text}")
        return out

    def mro(self, k: Klass, _stack: tuple = ()) -> list[Klass | str]:
        """C3 linearization; external bases are opaque leaves."""
        if k.key in _stack:
            raise SystemExit(f"error: inheritance cycle at {k.key}")
        seqs = []
        bases = self.bases(k)
        for b in bases:
            seqs.append(self.mro(b, _stack + (k.key,)) if isinstance(b, Klass) else [b])
        seqs.append(list(bases))
        result: list[Klass | str] = [k]

        def key(x):
            return x.key if isinstance(x, Klass) else x

        seqs = [list(s) for s in seqs if s]
        while seqs:
            for seq in seqs:
                head = seq[0]
                if not any(key(head) in [key(x) for x in s[1:]] for s in seqs):
                    break
            else:
                raise SystemExit(f"error: inconsistent MRO for {k.key}")
            result.append(head)
            seqs = [[x for x in s if key(x) != key(head)] for s in seqs]
            seqs = [s for s in seqs if s]
        return result

    # --- fields --------------------------------------------------------------------------------------------------
    def own_fields(self, k: Klass) -> list[dict]:
        fields = []
        body = k.node.body
        for i, stmt in enumerate(body):
            if not isinstance(stmt, ast.AnnAssign) or not isinstance(stmt.target, ast.Name):
                continue
            name = stmt.target.id
            ann = stmt.annotation
            if annotation_is(ann, {"ClassVar", "typing.ClassVar", "InitVar", "dataclasses.InitVar"}):
                continue
            if annotation_is(ann, {"KW_ONLY", "dataclasses.KW_ONLY"}):
                continue
            default = None
            required = True
            help_text = None
            meta_choices = None
            meta_aliases = None
            init = True
            value = stmt.value
            if value is not None and is_field_call(value):
                kw = {k_.arg: k_.value for k_ in value.keywords if k_.arg}
                if "init" in kw and isinstance(kw["init"], ast.Constant) and kw["init"].value is False:
                    init = False
                if "default" in kw:
                    default, required = unparse(kw["default"]), False
                elif "default_factory" in kw:
                    default, required = factory_default(kw["default_factory"]), False
                meta = kw.get("metadata")
                if isinstance(meta, ast.Dict):
                    for mk, mv in zip(meta.keys, meta.values):
                        if isinstance(mk, ast.Constant) and mk.value == "help":
                            h = literal_or_source(mv)
                            help_text = h if isinstance(h, str) else unparse(mv)
                        elif isinstance(mk, ast.Constant) and mk.value == "choices":
                            # HfArgumentParser passes field.metadata to add_argument, so these are enforced
                            c = literal_or_source(mv)
                            meta_choices = list(c) if isinstance(c, (list, tuple)) else c
                        elif isinstance(mk, ast.Constant) and mk.value == "aliases":
                            a = literal_or_source(mv)
                            meta_aliases = [a] if isinstance(a, str) else (list(a) if isinstance(a, (list, tuple)) else a)
            elif value is not None:
                default, required = unparse(value), False
            if not init:
                continue
            if help_text is None and i + 1 < len(body):
                nxt = body[i + 1]
                if isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant):
                    if isinstance(nxt.value.value, str):
                        help_text = nxt.value.value
            fields.append(
                {
                    "name": name,
                    "annotation": ann,
                    "type": unparse(ann),
                    "default": default,
                    "required": required,
                    "help": help_text,
                    "meta_choices": meta_choices,
                    "meta_aliases": meta_aliases,
                    "dataclass": k.name,
                    "klass": k,
                    "defined_in": f"{k.mod.path}:{stmt.lineno}",
                }
            )
        return fields

    def dataclass_fields(self, k: Klass) -> list[dict]:
        if not is_dataclass_decorated(k.node):
            self.warnings.add(f"{k.mod.path}:{k.node.lineno}: {k.name} handed to the parser is not @dataclass")
        order: list[str] = []
        by_name: dict[str, dict] = {}
        for c in reversed(self.mro(k)):
            if not isinstance(c, Klass) or not is_dataclass_decorated(c.node):
                continue
            for f in self.own_fields(c):
                if f["name"] not in by_name:
                    order.append(f["name"])
                by_name[f["name"]] = f
        # A field re-declared with init=False in a subclass removes it from the parser: handled because
        # own_fields() drops init=False entries only for its own class; re-check here.
        for c in reversed(self.mro(k)):
            if isinstance(c, Klass) and is_dataclass_decorated(c.node):
                for stmt in c.node.body:
                    if (
                        isinstance(stmt, ast.AnnAssign)
                        and isinstance(stmt.target, ast.Name)
                        and stmt.value is not None
                        and is_field_call(stmt.value)
                        and any(
                            kw.arg == "init" and isinstance(kw.value, ast.Constant) and kw.value.value is False
                            for kw in stmt.value.keywords
                        )
                    ):
                        by_name.pop(stmt.target.id, None)
                    elif (
                        isinstance(stmt, ast.AnnAssign)
                        and isinstance(stmt.target, ast.Name)
                        and stmt.target.id in by_name
                        and by_name[stmt.target.id]["klass"].key != c.key
                        and annotation_is(stmt.annotation, {"ClassVar", "typing.ClassVar"})
                    ):
                        by_name.pop(stmt.target.id, None)
        return [by_name[n] for n in order if n in by_name]

    # --- annotation types defined outside the repository ---------------------------------------------------------
    KNOWN_TYPE_NAMES = {
        "str", "int", "float", "bool", "bytes", "list", "dict", "tuple", "set", "None", "object",
        "Any", "Optional", "Union", "Literal", "List", "Dict", "Tuple", "Set",
        "typing.Any", "typing.Optional", "typing.Union", "typing.Literal",
    }

    def check_annotation_types(self, f: dict) -> None:
        """Warn when a field's type comes from outside the repo (e.g. an olmo_core Enum whose values argparse
        would enforce as choices but which this static extractor cannot list)."""
        ann = f["annotation"]
        nodes = [ann]
        while nodes:
            node = nodes.pop()
            name = dotted(node)
            if name is not None:
                if name not in self.KNOWN_TYPE_NAMES:
                    r = self.res.resolve_expr(f["klass"].mod, node)
                    if r[0] != "class":
                        binding = f["klass"].mod.bindings.get(name.split(".")[0])
                        origin = f" (imported from {binding[1]})" if binding and binding[0] == "from" else ""
                        self.warnings.add(
                            f"{f['defined_in']}: type {name!r} of field {f['name']!r} is defined outside the "
                            f"repository{origin}; if it is an Enum, HfArgumentParser enforces its values as "
                            "choices, which are not listed here"
                        )
                continue
            nodes.extend(ast.iter_child_nodes(node))

    # --- choices -------------------------------------------------------------------------------------------------
    def choices(self, k: Klass, ann: ast.AST):
        node = ann
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            try:
                node = ast.parse(node.value, mode="eval").body
            except SyntaxError:
                return None
        # strip Optional[X] / X | None (HfArgumentParser does the same before looking for Literal/Enum)
        if isinstance(node, ast.Subscript) and dotted(node.value) in ("Optional", "typing.Optional"):
            node = node.slice
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
            parts = [node.left, node.right]
            non_none = [p for p in parts if not (isinstance(p, ast.Constant) and p.value is None)]
            if len(non_none) == 1:
                node = non_none[0]
        if isinstance(node, ast.Subscript) and dotted(node.value) in ("Literal", "typing.Literal"):
            elts = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
            return [literal_or_source(e) for e in elts]
        r = self.res.resolve_expr(k.mod, node) if dotted(node) else ("external", None)
        if r[0] == "class":
            enum_cls = Klass(r[1], r[2])
            mro_names = [(c.name if isinstance(c, Klass) else c.split(":", 1)[1]) for c in self.mro(enum_cls)]
            if any(n in ENUM_BASE_NAMES for n in mro_names):
                is_str_enum = any(n in ("StrEnum", "enum.StrEnum") or n == "str" for n in mro_names)
                values, counter = [], 0
                for stmt in enum_cls.node.body:
                    if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
                        member = stmt.targets[0].id
                        if member.startswith("_"):
                            continue
                        if isinstance(stmt.value, ast.Call) and dotted(stmt.value.func) in ("auto", "enum.auto"):
                            counter += 1
                            values.append(member.lower() if is_str_enum else counter)
                        else:
                            values.append(literal_or_source(stmt.value))
                return values
        return None


# ---------------------------------------------------------------------------------------------------------------------
# Entrypoint analysis
# ---------------------------------------------------------------------------------------------------------------------


def is_main_guard(node: ast.AST) -> bool:
    if not isinstance(node, ast.If) or not isinstance(node.test, ast.Compare):
        return False
    t = node.test
    sides = [t.left, *t.comparators]
    return any(isinstance(s, ast.Name) and s.id == "__name__" for s in sides) and any(
        isinstance(s, ast.Constant) and s.value == "__main__" for s in sides
    )


def find_parser_sites(tree: ast.Module):
    """Yield (priority, block_node, call, var_name). Lower priority = preferred."""
    sites = []

    def visit(node, block, priority):
        for child in ast.iter_child_nodes(node):
            child_block, child_prio = block, priority
            if is_main_guard(child):
                child_block, child_prio = child, 0
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                child_block = child
                child_prio = min(priority, 1 if child.name == "main" else 2)
            if isinstance(child, (ast.Assign, ast.AnnAssign)):
                value = child.value
                if isinstance(value, ast.Call) and (dotted(value.func) or "").split(".")[-1] == PARSER_CLASS_NAME:
                    targets = child.targets if isinstance(child, ast.Assign) else [child.target]
                    var = targets[0].id if isinstance(targets[0], ast.Name) else None
                    sites.append((priority, block, value, var))
            visit(child, child_block, child_prio)

    visit(tree, tree, 3)
    sites.sort(key=lambda s: (s[0], s[2].lineno))
    return sites


def extract(src: Source, entry_path: str) -> dict:
    an = Analyzer(src)
    mod = an.res.module_for_path(entry_path)
    sites = find_parser_sites(mod.tree)
    if not sites:
        raise SystemExit(f"error: no {PARSER_CLASS_NAME}(...) call in {entry_path}")
    _, block, call, var = sites[0]
    if len(sites) > 1:
        an.warnings.add(
            f"{entry_path}: {len(sites)} {PARSER_CLASS_NAME} calls; used the one at line {call.lineno}"
        )
    if not call.args:
        raise SystemExit(f"error: {entry_path}:{call.lineno}: {PARSER_CLASS_NAME}() without dataclasses")
    arg0 = call.args[0]
    dc_nodes = list(arg0.elts) if isinstance(arg0, (ast.Tuple, ast.List)) else [arg0]
    parser_classes: list[Klass] = []
    for node in dc_nodes:
        r = an.res.resolve_expr(mod, node)
        if r[0] != "class":
            raise SystemExit(f"error: cannot resolve dataclass {unparse(node)} in {entry_path}")
        parser_classes.append(Klass(r[1], r[2]))

    # parser.set_defaults(...) in the same block
    set_defaults: dict[str, str] = {}
    set_defaults_lines = []
    if var:
        for node in ast.walk(block):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "set_defaults"
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == var
            ):
                set_defaults_lines.append(node.lineno)
                for kw in node.keywords:
                    if kw.arg is None:
                        an.warnings.add(f"{entry_path}:{node.lineno}: set_defaults(**...) not expanded")
                    else:
                        set_defaults[kw.arg] = unparse(kw.value)

    flags = []
    seen: dict[str, str] = {}
    for pk in parser_classes:
        for f in an.dataclass_fields(pk):
            if f["name"] in seen:
                an.warnings.add(
                    f"field {f['name']!r} defined by both {seen[f['name']]} and {pk.name}: argparse would raise "
                    "a conflicting-option error"
                )
            seen[f["name"]] = pk.name
            entry = {
                "name": f["name"],
                "flag": f"--{f['name']}",
                "type": f["type"],
                "default": f["default"],
                "required": f["required"],
                "dataclass": f["dataclass"],
                "parser_dataclass": pk.name,
                "defined_in": f["defined_in"],
                "help": " ".join((f["help"] or "").split())[:HELP_MAX],
            }
            if f["type"] in BOOL_ANNOTATIONS and f["default"] == "True":
                entry["also_accepts"] = [f"--no_{f['name']}"]
            an.check_annotation_types(f)
            ch = an.choices(f["klass"], f["annotation"])
            if ch is None:
                ch = f["meta_choices"]
            if ch is not None:
                entry["choices"] = ch
            if f["meta_aliases"]:
                entry["aliases"] = f["meta_aliases"]
            if f["name"] in set_defaults:
                entry["effective_default"] = set_defaults[f["name"]]
                entry["effective_default_source"] = (
                    f"parser.set_defaults in {entry_path}:{','.join(map(str, sorted(set_defaults_lines)))}"
                )
            flags.append(entry)
    for key in sorted(set(set_defaults) - set(seen)):
        an.warnings.add(f"{entry_path}: set_defaults key {key!r} matches no field")

    return {
        "entrypoint": entry_path,
        "repo_revision": src.commit or "unknown",
        "parser_call": f"{entry_path}:{call.lineno}",
        "parser_dataclasses_in_order": [f"{k.mod.path}:{k.name}" for k in parser_classes],
        "set_defaults": set_defaults,
        "flag_count": len(flags),
        "notes": [
            "generated by extract_oi_flags.py (static ast analysis, nothing imported)",
            "default/type are ast.unparse() source text of the dataclass default (default_factory: lambda body, "
            "list -> [], dict -> {}); required=true means no default (HfArgumentParser makes the flag required)",
            "effective_default applies parser.set_defaults(...) from the entrypoint",
            "also_accepts lists the --no_<name> complement HfArgumentParser adds for bool fields whose dataclass "
            "default is True (decided from the dataclass default, not from set_defaults)",
            "choices: Literal[...] values or Enum member values (Optional stripped, as HfArgumentParser does), "
            "else field(metadata={'choices': [...]}) (HfArgumentParser forwards metadata to add_argument)",
            "recent transformers HfArgumentParser also registers a dashed alias (--foo-bar for --foo_bar, "
            "--no-foo-bar for --no_foo_bar); only the underscore spellings are listed here",
            "help: metadata['help'] if present, else the string literal right after the field (docstring style), "
            f"whitespace collapsed, truncated to {HELP_MAX} chars",
            "fields with init=False, ClassVar, InitVar and KW_ONLY are excluded",
        ],
        "warnings": sorted(an.warnings),
        "flags": flags,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--git-dir", help="bare (or normal) git dir of open-instruct; requires --rev")
    g.add_argument("--tree", help="checked-out open-instruct tree")
    ap.add_argument("--rev", help="revision (tag, branch, sha) for --git-dir")
    ap.add_argument("--entrypoint", choices=["all", *ENTRYPOINTS], default="all")
    ap.add_argument("--output-dir", help="write <entrypoint>_<label>.json here instead of stdout")
    ap.add_argument("--label", help="label for output file names (default: --rev as given, or short SHA)")
    args = ap.parse_args(argv)
    if args.git_dir and not args.rev:
        ap.error("--git-dir requires --rev")
    if args.tree and args.rev:
        ap.error("--rev only applies to --git-dir")

    src = Source(git_dir=args.git_dir, rev=args.rev, tree=args.tree)
    names = list(ENTRYPOINTS) if args.entrypoint == "all" else [args.entrypoint]
    docs = {name: extract(src, ENTRYPOINTS[name]) for name in names}

    if args.output_dir:
        label = args.label or args.rev or (src.commit[:7] if src.commit else "tree")
        label = label.replace("/", "_")
        os.makedirs(args.output_dir, exist_ok=True)
        for name, doc in docs.items():
            out = os.path.join(args.output_dir, f"{name}_{label}.json")
            with open(out, "w", encoding="utf-8") as fh:
                json.dump(doc, fh, indent=1, sort_keys=True, ensure_ascii=False)
                fh.write("\n")
            print(f"{out}: {doc['flag_count']} flags, {len(doc['warnings'])} warnings", file=sys.stderr)
    else:
        json.dump({ENTRYPOINTS[n]: d for n, d in docs.items()}, sys.stdout, indent=1, sort_keys=True,
                  ensure_ascii=False)
        sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
