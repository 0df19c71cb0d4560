"""Parse a command line with open-instruct's own parser, without running anything.

`python -m sft_vs_rlvr.launch.oi_parse {finetune,grpo_fast} -- ARGS...` builds the entrypoint's parser exactly as
its `__main__` block does at the pinned tag (v0.3.0) and parses ARGS into its argument dataclasses, so their
`__post_init__` checks run too. It prints one JSON object, {"ok": true, "values": {field: value, ...}}, or
exits 2 with one line: "error: open-instruct <entry> parser rejected the command: <reason>".

It runs inside open-instruct's environment (the CPU one from scripts/setup_open_instruct_cpu.sh, or the GPU
one from `make setup-gpu`) with this repository and the checkout importable, e.g.
PYTHONPATH=<repo>:<checkout>. Standard library only at import; open_instruct is imported in main().
This complements sft_vs_rlvr.launch.oi_flags (a static manifest check, no open-instruct needed).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import dataclasses
import functools
import importlib
import importlib.abc
import importlib.machinery
import json
import os
import sys
import types

from sft_vs_rlvr.errors import UserError, cli


class _StubModule(types.ModuleType):
    """Any attribute is a do-nothing class, tolerant of the dataclass surgery vllm_utils does at import."""

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        fields = collections.defaultdict(lambda: types.SimpleNamespace(type=None))
        value = type(name, (), {"__init__": lambda self, *a, **k: None, "__module__": self.__name__,
                                "__annotations__": {}, "__dataclass_fields__": fields})
        setattr(self, name, value)
        return value


class _StubFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def __init__(self, top_level: str):
        self.top_level = top_level

    def find_spec(self, name, path, target=None):
        if name.split(".")[0] == self.top_level:
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        return None

    def create_module(self, spec):
        module = _StubModule(spec.name)
        module.__path__ = []
        return module

    def exec_module(self, module):
        pass


def stub_vllm_if_missing() -> None:
    """grpo_fast.py imports vllm at module level (directly and via data_loader/vllm_utils), but parsing
    never calls it, and vllm has only CUDA builds (which also pin another torch). Where `import vllm` fails,
    as on a CPU machine, every vllm.* import gets an empty stub; where vllm is installed it is used as is."""
    try:
        import vllm  # noqa: F401
    except ImportError:
        sys.meta_path.insert(0, _StubFinder("vllm"))


def build_parser(entry: str):
    """The parser of open_instruct/<entry>.py's `__main__` at v0.3.0 (finetune.py:1034, grpo_fast.py:2392-2402).

    The script is imported as a module, so its `__main__` block (and main()) never runs; at import it only
    sets NCCL_CUMEM_ENABLE and imports its dependencies."""
    try:
        script = importlib.import_module(f"open_instruct.{entry}")
    except ModuleNotFoundError as missing:
        raise UserError(f"cannot import open_instruct.{entry} ({missing}); run this with open-instruct's python "
                        "and PYTHONPATH=<repo>:<open-instruct checkout>") from None
    from open_instruct.dataset_transformation import TokenizerConfig
    from open_instruct.utils import ArgumentParserPlus

    if entry == "finetune":
        return ArgumentParserPlus((script.FlatArguments, TokenizerConfig))
    from open_instruct import data_loader, grpo_utils
    from open_instruct.environments.tools.utils import EnvsConfig
    from open_instruct.model_utils import ModelConfig

    parser = ArgumentParserPlus((grpo_utils.GRPOExperimentConfig, TokenizerConfig, ModelConfig,
                                 data_loader.StreamingDataLoaderConfig, data_loader.VLLMConfig, EnvsConfig))
    parser.set_defaults(exp_name="grpo", warmup_ratio=0.0, max_grad_norm=1.0, per_device_train_batch_size=1)
    return parser


class _Rejected(Exception):
    pass


@functools.cache
def _parser(entry: str):
    parser = build_parser(entry)

    def error(message):  # argparse would print the usage and exit; we want the reason only
        raise _Rejected(message)

    parser.error = error
    return parser


def verdict(entry: str, arguments: list[str]) -> dict:
    """{"ok": True, "values": {field: value}} over all the entrypoint's argument dataclasses, or
    {"ok": False, "error": "open-instruct <entry> parser rejected the command: <reason>"}."""
    try:
        # look_for_args_file=False: the real script would also read open_instruct/<entry>.args; v0.3.0 has none.
        objects = _parser(entry).parse_args_into_dataclasses(args=arguments, look_for_args_file=False)
    except (_Rejected, ValueError, TypeError, AssertionError) as exc:  # argparse, unknown flags, __post_init__
        reason = " ".join(str(exc).split())
        if not isinstance(exc, _Rejected):
            reason = f"{type(exc).__name__}: {reason}"
        return {"ok": False, "error": f"open-instruct {entry} parser rejected the command: {reason}"}
    values = {}
    for obj in objects:
        values.update({f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)})
    return {"ok": True, "values": values}


@contextlib.contextmanager
def _stdout_to_stderr():
    """deepspeed and others print at import; stdout carries the JSON only (file descriptor 1, and sys.stdout where
    a caller has replaced it)."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


@cli
def main(argv: list[str] | None = None) -> int:
    """`python -m sft_vs_rlvr.launch.oi_parse {finetune,grpo_fast} -- ARGS...`: open-instruct's verdict on ARGS.

    `python -m sft_vs_rlvr.launch.oi_parse --batch` reads one JSON line ["finetune"|"grpo_fast", [ARGS...]] per command
    from stdin and prints one verdict line per command, ok or not (exit 0); it pays the imports once.
    """
    argv = sys.argv[1:] if argv is None else argv
    batch = argv == ["--batch"]
    if not batch:
        parser = argparse.ArgumentParser(prog="python -m sft_vs_rlvr.launch.oi_parse", description=main.__doc__,
                                         formatter_class=argparse.RawDescriptionHelpFormatter)
        parser.add_argument("entry", choices=["finetune", "grpo_fast"])
        parser.add_argument("arguments", nargs=argparse.REMAINDER, help="after --: the entrypoint's arguments")
        args = parser.parse_args(argv)
        commands = [(args.entry, args.arguments[1:] if args.arguments[:1] == ["--"] else args.arguments)]
    else:
        commands = [json.loads(line) for line in sys.stdin if line.strip()]
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # litellm would fetch a price list at import
    stub_vllm_if_missing()
    for entry, arguments in commands:
        with _stdout_to_stderr():
            result = verdict(entry, arguments)
        if not batch and not result["ok"]:
            raise UserError(result["error"])
        print(json.dumps(result, default=str, sort_keys=True), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
