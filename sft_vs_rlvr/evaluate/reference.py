"""Reference evaluation: lm-evaluation-harness's own `gsm8k_cot`, reported apart from the main evaluation.

The main evaluation (evaluation.py) scores every model in the template it trained with. This one
answers a different question: where do our models stand against published numbers? So it runs
the protocol those numbers use, through lm-eval itself (nothing rewritten): task `gsm8k_cot`,
8-shot chain of thought with the fixed Wei et al. exemplars written in the task's YAML (sampler
`first_n` over inline samples, not drawn from train), prompt "Q: ...\\nA:", greedy decoding, stop
at "Q:" / EOS, lm-eval's max_gen_toks (256 for the hf model), its answer filters (strict-match:
"The answer is N."; flexible-extract: the last number) and its exact_match metric with stderr.

No chat template and no multi-turn few-shot: published base-model numbers (e.g. Llama-3.1-8B
56.6, anchors.md 1.1) are plain few-shot text, and the same text goes to every model so the
reference numbers compare across base, SFT and RLVR.

Offline: the task normally downloads openai/gsm8k; here it reads the project's prepared test rows.
Each row becomes {"id", "question", "answer"} (question = the user turn without the shared
instruction suffix, answer = the GSM8K solution ending in "#### N"), written with a YAML that
`include`s lm-eval's installed gsm8k-cot.yaml and changes only the data source, in a temporary
folder (the datasets cache goes there too, so nothing is left behind).

Outputs: <out_dir>/<name>_reference_samples.jsonl (one row per problem) and
<out_dir>/<name>_reference_results.json (written last, atomically).

Usage: python -m sft_vs_rlvr.evaluate.reference --model DIR --test-file FILE --out-dir DIR --name NAME
       [--limit N] [--batch-size B] [--device cpu|cuda] [--max-length TOKENS]
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sft_vs_rlvr import atomic, contract, runs
from sft_vs_rlvr import settings as settings_mod
from sft_vs_rlvr.errors import UserError, cli
from sft_vs_rlvr.evaluate.fingerprints import weights_fingerprint

TASK = "gsm8k_cot"
TASK_YAML = ("gsm8k", "gsm8k-cot.yaml")  # under lm_eval/tasks/ in lm-eval 0.4.x
NUM_FEWSHOT = 8
FILTERS = ("strict-match", "flexible-extract")
METRIC = "exact_match"
ENGINES = ("hf",)  # "vllm" goes in model_spec() only
HF_MAX_GEN_TOKS = 256  # lm-eval's HFLM.max_gen_toks; gsm8k_cot sets no max_gen_toks of its own


def lm_eval_version() -> str | None:
    try:
        return importlib.metadata.version("lm_eval")
    except importlib.metadata.PackageNotFoundError:
        return None


def _require_lm_eval() -> None:
    if lm_eval_version() is None:
        raise UserError("lm-eval is not installed; install the pinned version "
                        "(pip install -r requirements.txt -c requirements.lock)")


def task_yaml_path() -> Path:
    """lm-eval's installed gsm8k_cot config (the file, so its hash pins the protocol)."""
    import lm_eval.tasks

    path = Path(lm_eval.tasks.__file__).parent.joinpath(*TASK_YAML)
    if path.is_file():
        return path
    from lm_eval.tasks import TaskManager  # slower (indexes every task); only if the file moved

    entry = TaskManager().task_index.get(TASK)
    if entry is None or not getattr(entry, "yaml_path", None):
        raise UserError(f"lm-eval {lm_eval_version()} has no {TASK} task; install the pinned lm-eval version")
    return Path(entry.yaml_path)


def model_spec(engine: str, model_path: str, device: str, max_length: int | None) -> tuple[str, dict[str, Any]]:
    """lm-eval model name and model_args: the one place a backend is chosen (vLLM goes here later)."""
    if engine != "hf":
        raise UserError(f"unknown reference engine {engine!r}; only {', '.join(ENGINES)} is supported for now")
    args: dict[str, Any] = {"pretrained": model_path, "dtype": "float32" if device == "cpu" else "bfloat16"}
    if max_length:
        args["max_length"] = max_length
    return "hf", args


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def shared_instruction(test_rows_file: Path) -> str:
    """The instruction appended to each question: from the data manifest beside the rows, else the settings."""
    manifest = test_rows_file.parent / "manifest.json"
    if manifest.is_file():
        source = json.loads(manifest.read_text()).get("source") or {}
        if isinstance(source.get("instruction"), str):
            return source["instruction"]
    profile = os.environ.get("PROFILE") or settings_mod.known_profiles()[0]  # [shared] is the same in every profile
    return settings_mod.load(profile).shared["instruction"]


def gsm8k_docs(rows: list[dict[str, Any]], instruction: str, where: str = "rows") -> list[dict[str, Any]]:
    """Prepared test rows -> lm-eval's GSM8K docs {"id", "question", "answer"}."""
    suffix = f"\n\n{instruction}" if instruction else ""
    docs = []
    for index, row in enumerate(rows):
        try:
            content, solution = row["messages"][0]["content"], row["solution"]
        except (KeyError, IndexError, TypeError):
            raise UserError(f"{where} row {index + 1} is not a prepared test row (needs messages and solution); "
                            "pass the test.jsonl written by data preparation") from None
        if not content.endswith(suffix):
            raise UserError(f"{where} row {index + 1}: the question does not end with the shared instruction; "
                            "the rows were prepared with other settings (use that experiment's data folder)")
        if "####" not in solution:
            raise UserError(f"{where} row {index + 1}: solution has no '#### N' answer line; not GSM8K-format data")
        docs.append({"id": row.get("id", str(index)), "question": content[: len(content) - len(suffix)],
                     "answer": solution})
    return docs


def write_task(folder: Path, docs: list[dict[str, Any]]) -> Path:
    """A task folder: test.jsonl plus a YAML that includes lm-eval's gsm8k-cot.yaml, data source changed only."""
    data = folder / "test.jsonl"
    atomic.write_jsonl(data, docs)
    config = {
        "include": str(task_yaml_path()),
        "task": TASK,
        "dataset_path": "json",
        "dataset_name": None,
        "dataset_kwargs": {"data_files": {"test": str(data)}, "cache_dir": str(folder / "datasets_cache")},
    }
    # JSON is valid YAML; lm-eval's loader resolves `include` and lets these keys win.
    atomic.write_text(folder / f"{TASK}.yaml", json.dumps(config, indent=2) + "\n")
    return folder


def _check_context(model_dir: Path, max_length: int | None) -> None:
    """Refuse a context lm-eval would reject (its generate_until asserts max_length > max_gen_toks).

    A longer but still short context runs: lm-eval cuts prompts from the left, and the results count them."""
    config = json.loads((model_dir / "config.json").read_text())
    positions = max_length or config.get("max_position_embeddings") or config.get("n_positions")
    if positions and positions <= HF_MAX_GEN_TOKS:
        raise UserError(f"{model_dir} has a {positions}-token context, too short for {TASK}'s {NUM_FEWSHOT}-shot prompt "
                        f"plus {HF_MAX_GEN_TOKS} generated tokens; pass --max-length 2048 (positions past the trained "
                        "context are extrapolated: fine for the tiny plumbing model, not for a real one)")


def _check_protocol(config: dict[str, Any]) -> dict[str, Any]:
    """The effective task config must still be the published protocol; a changed lm-eval is caught here."""
    fewshot = config.get("fewshot_config") or {}
    samples = fewshot.get("samples") or []
    problems = []
    if config.get("num_fewshot") != NUM_FEWSHOT:
        problems.append(f"num_fewshot {config.get('num_fewshot')}")
    if fewshot.get("sampler") != "first_n" or len(samples) != NUM_FEWSHOT:
        problems.append(f"few-shot sampler {fewshot.get('sampler')!r} with {len(samples)} inline exemplars")
    if (config.get("generation_kwargs") or {}).get("do_sample") not in (False, None):
        problems.append("sampling enabled")
    if problems:
        raise UserError(f"lm-eval {lm_eval_version()}'s {TASK} is not the 8-shot fixed-exemplar greedy protocol "
                        f"({'; '.join(problems)}); install the pinned lm-eval version")
    blob = json.dumps(samples, sort_keys=True, ensure_ascii=False).encode()
    return {"sampler": "first_n", "exemplars": len(samples), "exemplars_sha256": hashlib.sha256(blob).hexdigest()}


def _context(arguments: Any) -> str:
    # lm-eval 0.4.x logs either [[context, gen_kwargs]] or {"gen_args_0": {"arg_0": context, "arg_1": gen_kwargs}}.
    if isinstance(arguments, dict):
        return next(iter(arguments.values()))["arg_0"]
    return arguments[0][0]


def merge_samples(logged: list[dict[str, Any]], tokenizer=None, max_ctx_tokens: int | None = None,
                  max_gen_toks: int | None = None) -> list[dict[str, Any]]:
    """lm-eval logs one entry per (doc, filter); join them into one row per doc, in doc order."""
    by_doc: dict[int, dict[str, Any]] = {}
    for entry in logged:
        doc_id = entry["doc_id"]
        row = by_doc.get(doc_id)
        if row is None:
            context = _context(entry["arguments"])
            response = entry["resps"][0][0]
            row = by_doc[doc_id] = {
                "doc_id": doc_id, "id": entry["doc"].get("id"), "prompt": context, "response": response,
                "target": entry["target"], "filtered": {}, "correct": {},
                "doc_hash": entry.get("doc_hash"), "prompt_hash": entry.get("prompt_hash"),
            }
            if tokenizer is not None:
                # Encoded as lm-eval's hf model does (the tokenizer's default special tokens: BOS for Llama).
                row["prompt_tokens"] = len(tokenizer(context)["input_ids"])
                row["response_tokens"] = len(tokenizer(response, add_special_tokens=False)["input_ids"])
                row["context_truncated"] = bool(max_ctx_tokens and row["prompt_tokens"] > max_ctx_tokens)
                row["hit_max_gen_toks"] = bool(max_gen_toks and row["response_tokens"] >= max_gen_toks)
        name = entry["filter"]
        row["filtered"][name] = entry["filtered_resps"][0] if entry["filtered_resps"] else None
        row["correct"][name] = bool(entry[METRIC])
    return [by_doc[k] for k in sorted(by_doc)]


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=str))


def run_reference(model_path: str, test_rows_file: Path, out_dir: Path, name: str, limit: int | None = None,
                  batch_size: int = 16, device: str | None = None, *, engine: str = "hf",
                  max_length: int | None = None, instruction: str | None = None, fingerprint: str | None = None,
                  log=print) -> dict[str, Any]:
    """Run lm-eval's gsm8k_cot on `model_path` over the prepared test rows; write samples then results."""
    model_dir, test_rows_file, out_dir = Path(model_path), Path(test_rows_file), Path(out_dir)
    hub_id = not model_dir.exists() and model_path.count("/") == 1 and not model_path.startswith((".", "/"))
    if not hub_id and not (model_dir / "config.json").is_file():  # a Hub id (the llama8b base) loads as is
        raise UserError(f"model folder {model_dir} not found (no config.json); pass a saved model folder to --model")
    if not test_rows_file.is_file():
        raise UserError(f"test rows file {test_rows_file} not found; run data preparation first (it writes data/test.jsonl)")
    rows = atomic.read_jsonl(test_rows_file)
    if not rows:
        raise UserError(f"test rows file {test_rows_file} is empty; prepare the data again")
    if limit is not None and limit < 1:
        raise UserError(f"--limit must be at least 1 (got {limit})")
    if batch_size < 1:
        raise UserError(f"--batch-size must be at least 1 (got {batch_size})")
    if not name or "/" in name or name.startswith("."):
        raise UserError(f"bad --name {name!r}; use a plain name such as base, sft or rlvr")
    if instruction is None:
        instruction = shared_instruction(test_rows_file)
    docs = gsm8k_docs(rows, instruction, where=str(test_rows_file))
    _require_lm_eval()
    device = device or default_device()
    model, model_args = model_spec(engine, str(model_dir), device, max_length)
    _check_context(model_dir, max_length)

    import lm_eval
    from lm_eval.tasks import TaskManager

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="reference-eval-") as scratch:
        task_dir = write_task(Path(scratch), docs)
        manager = TaskManager(include_path=str(task_dir), include_defaults=False)
        task = manager.load([TASK])["tasks"][TASK]  # reads the rows now, while the folder exists
        protocol = _check_protocol(task.dump_config())  # before the model runs, not after
        log(f"reference: {name}: lm-eval {lm_eval_version()} {TASK} ({NUM_FEWSHOT}-shot) on "
            f"{min(limit or len(docs), len(docs))} of {len(docs)} problems, {model} on {device}")
        output = lm_eval.simple_evaluate(
            model=model, model_args=model_args, tasks=[task], task_manager=manager, limit=limit,
            batch_size=batch_size, device=device, log_samples=True,
            apply_chat_template=False, fewshot_as_multiturn=False,
        )
    wall = time.perf_counter() - started
    if output is None:  # only non-zero ranks get None; this module runs one process
        raise RuntimeError("lm-eval returned no results")

    task_config = dict(output["configs"][TASK])
    # The temporary folder is gone: record where the rows and the config really came from.
    task_config["dataset_kwargs"] = {"data_files": {"test": str(test_rows_file)}, "note": "rows converted to GSM8K docs"}
    task_config["metadata"] = dict(task_config.get("metadata") or {}) | {
        "config_source": "lm_eval/tasks/" + "/".join(TASK_YAML) + " (included; only the data source replaced)"}
    scores = output["results"][TASK]
    metrics = {f: {METRIC: scores.get(f"{METRIC},{f}"), f"{METRIC}_stderr": scores.get(f"{METRIC}_stderr,{f}")}
               for f in FILTERS}
    lm_max_length = output.get("max_length")
    max_gen_toks = (task_config.get("generation_kwargs") or {}).get("max_gen_toks") or HF_MAX_GEN_TOKS

    tokenizer = _tokenizer(str(model_dir))
    samples = merge_samples(output["samples"][TASK], tokenizer,
                            max_ctx_tokens=(lm_max_length - max_gen_toks) if lm_max_length else None,
                            max_gen_toks=max_gen_toks)
    yaml_path = task_yaml_path()
    results = {
        "format": contract.REFERENCE_RESULTS.id, "version": contract.REFERENCE_RESULTS.version,
        "model_name": name, "model": {"path": str(model_dir), "fingerprint": fingerprint or _fingerprint(str(model_dir))},
        "lm_eval_version": lm_eval_version(),
        "task": {
            "name": TASK, "version": output["versions"].get(TASK), "num_fewshot": output["n-shot"].get(TASK),
            "config_file": "lm_eval/tasks/" + "/".join(TASK_YAML),
            "config_sha256": hashlib.sha256(yaml_path.read_bytes()).hexdigest(),
            "data_source": {"file": str(test_rows_file), "rows": len(docs),
                            "file_sha256": hashlib.sha256(test_rows_file.read_bytes()).hexdigest()},
            **protocol,
        },
        "protocol": {
            "chat_template": False, "fewshot_as_multiturn": False, "decoding": "greedy",
            "until": (task_config.get("generation_kwargs") or {}).get("until"),
            "max_gen_toks": max_gen_toks, "max_length": lm_max_length,
        },
        "engine": engine, "model_args": _jsonable(model_args), "device": device, "dtype": model_args["dtype"],
        "batch_size": batch_size, "limit": limit,
        "n": len(samples), "num_fewshot": NUM_FEWSHOT,
        "metrics": metrics,
        "counts": {
            "n": len(samples),
            "no_answer": {f: sum(s["filtered"].get(f) == "[invalid]" for s in samples) for f in FILTERS},
            "context_truncated": sum(s.get("context_truncated", False) for s in samples),
            "hit_max_gen_toks": sum(s.get("hit_max_gen_toks", False) for s in samples),
        },
        "lm_eval": _jsonable({key: output.get(key) for key in (
            "results", "versions", "n-shot", "n-samples", "higher_is_better", "config",
            "transformers_version", "tokenizer_pad_token", "tokenizer_eos_token", "tokenizer_bos_token",
            "eot_token_id", "max_length")} | {"task_config": task_config}),
        "wall_seconds": wall,
        "samples_file": f"{name}_reference_samples.jsonl", "created_at": runs.utc_now(),
    }
    # Samples first, results last: a results file always has its complete samples file beside it.
    atomic.write_jsonl(out_dir / results["samples_file"], samples)
    atomic.write_json(out_dir / f"{name}_reference_results.json", results)
    if results["counts"]["context_truncated"]:
        log(f"reference: warning: {results['counts']['context_truncated']} prompts were longer than the model's "
            f"context ({lm_max_length} tokens minus {max_gen_toks} to generate) and were cut from the left by lm-eval")
    log(f"reference: {name}: {TASK} exact_match strict-match {metrics['strict-match'][METRIC]:.3f}, "
        f"flexible-extract {metrics['flexible-extract'][METRIC]:.3f} on {len(samples)} problems ({wall:.0f} s)")
    return results


def _tokenizer(model_path: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_path)


def _fingerprint(model_path: str) -> str | None:
    try:
        return weights_fingerprint(model_path)
    except UserError:
        return None


@cli
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sft_vs_rlvr.evaluate.reference", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="saved model folder (config.json, weights, tokenizer)")
    parser.add_argument("--test-file", required=True, help="prepared test rows (an experiment's data/test.jsonl)")
    parser.add_argument("--out-dir", required=True)
    parser.add_argument("--name", required=True, help="model name used in the output file names (base, sft, rlvr, ...)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N problems")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--max-length", type=int, default=None,
                        help="context length lm-eval assumes (default: the model's); the tiny model needs ~2048, "
                             "past its trained 256 positions, since 8 exemplars alone are ~1,350 of its tokens")
    parser.add_argument("--engine", default="hf", choices=ENGINES)
    args = parser.parse_args(argv)
    run_reference(args.model, Path(args.test_file), Path(args.out_dir), args.name, args.limit, args.batch_size,
                  args.device, engine=args.engine, max_length=args.max_length)
    return 0


if __name__ == "__main__":
    sys.exit(main())
