"""Evaluation: base, SFT and RLVR models on the test split, each in the template it trained with.

Same for every model (DESIGN.md, contract rule 4): the prepared test rows, greedy decoding, the
same token budget (max_response_length) and stop rule (EOS), full precision on CPU or bf16 on
GPU (never 8-bit), and both graders (grading.py). The prompt template is read from the
tokenizer saved with each trained model, so evaluation cannot drift from training; the base
model gets the shared template from the settings.

Engine: transformers batched generation (left padding, length-sorted batches, inference_mode).
Outputs per model (docs/FORMATS.md): eval/<name>_results.json and eval/<name>_samples.jsonl.
A model already evaluated with the same weights and settings is reused unless --force.

Usage: python -m sft_vs_rlvr.evaluation --experiment-dir DIR [--models base,sft,rlvr,sft_rlvr] [--force]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any

from . import atomic, grading, prompts, runs, settings as settings_mod, stats, tiny_model
from .errors import UserError, cli

RESULTS_FORMAT = "sft-vs-rlvr/eval-results"
RESULTS_VERSION = 1
ARMS = ("sft", "rlvr", "sft_rlvr")  # sft_rlvr: GRPO started from the SFT model (INIT_FROM=sft), when run
HOW_TO_TRAIN = {"sft": "./experiment_sft_llama8b.sh", "rlvr": "./experiment_rlvr_llama8b.sh",
                "sft_rlvr": "INIT_FROM=sft ./experiment_rlvr_llama8b.sh"}


def weights_fingerprint(model_path: str) -> str:
    """sha256 over the weight files of a local folder; a Hub id stands for itself."""
    folder = Path(model_path)
    if not folder.is_dir():
        return f"hub:{model_path}"
    digest = hashlib.sha256()
    files = sorted(list(folder.glob("*.safetensors")) + list(folder.glob("pytorch_model*.bin")))
    if not files:
        raise UserError(f"{folder} has no weights (*.safetensors or pytorch_model*.bin); retrain or fix the path")
    for path in files:
        digest.update(path.name.encode())
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def models_to_evaluate(settings: settings_mod.Settings, exp_dir: Path, wanted: list[str], log=print) -> dict[str, str]:
    """name -> model path for the base and every completed arm; refuses when no arm has finished."""
    found: dict[str, str] = {}
    for arm in ARMS:
        manifest = runs.read_manifest(exp_dir / arm)
        if manifest and manifest["status"] == "completed" and manifest.get("final_model"):
            found[arm] = str(exp_dir / arm / manifest["final_model"])
        elif arm in wanted:
            log(f"eval: no finished {arm} run in {exp_dir / arm}; skipping it "
                f"(PROFILE={settings.profile} {HOW_TO_TRAIN[arm]} trains it)")
    if not found:
        raise UserError(f"no trained model in {exp_dir}: run ./experiment_sft_llama8b.sh and "
                        "./experiment_rlvr_llama8b.sh first")
    if settings.shared["base_model"] == tiny_model.TINY_MODEL_NAME:
        shared = settings.shared
        found["base"] = str(tiny_model.ensure(shared["seed"], shared["chat_template"], shared["instruction"], log=log))
    else:
        found["base"] = settings.shared["base_model"]
    return {name: found[name] for name in ("base", *ARMS) if name in found and name in wanted}


def _load(model_path: str):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_path, padding_side="left")
        model = AutoModelForCausalLM.from_pretrained(model_path, dtype=dtype).to(device).eval()
    except OSError as error:
        raise UserError(f"cannot load model or tokenizer from {model_path} ({error}); check the folder") from None
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer, device, str(dtype).replace("torch.", "")


def generate_greedy(model, tokenizer, texts: list[str], max_new_tokens: int, batch_size: int, device: str):
    """Greedy completions in the input order: (text, token count, truncated) per prompt."""
    import torch

    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # similar lengths share a batch: less padding
    out: list[tuple[str, int, bool] | None] = [None] * len(texts)
    eos = tokenizer.eos_token_id
    for start in range(0, len(order), batch_size):
        chunk = order[start:start + batch_size]
        encoded = tokenizer([texts[i] for i in chunk], return_tensors="pt", padding=True,
                            add_special_tokens=False).to(device)
        with torch.inference_mode():
            generated = model.generate(**encoded, max_new_tokens=max_new_tokens, do_sample=False,
                                       eos_token_id=eos, pad_token_id=tokenizer.pad_token_id)
        new_tokens = generated[:, encoded["input_ids"].shape[1]:].tolist()
        for i, tokens in zip(chunk, new_tokens):
            stopped = eos in tokens
            kept = tokens[: tokens.index(eos)] if stopped else [t for t in tokens if t != tokenizer.pad_token_id]
            text = tokenizer.decode(kept, skip_special_tokens=True)
            out[i] = (text, len(kept) + (1 if stopped else 0), not stopped)
    return out


def evaluate_model(name: str, model_path: str, settings: settings_mod.Settings, exp_dir: Path,
                   log=print) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    shared, options = settings.shared, settings.eval
    rows = atomic.read_jsonl(exp_dir / "data" / "test.jsonl")
    if options["limit"]:
        rows = rows[: options["limit"]]
    model, tokenizer, device, dtype = _load(model_path)
    shared_template = prompts.template_text(shared["chat_template"])
    if name == "base":
        template, source = shared_template, "shared"
    else:
        template, source = tokenizer.chat_template, "tokenizer"
        if not template:
            raise UserError(f"{model_path} has no chat template in its tokenizer; it was not saved by this pipeline")
        if template != shared_template:
            log(f"eval: warning: {name}'s saved template differs from the shared '{shared['chat_template']}' text; "
                "using the saved one (it is what the model trained with)")
    texts = [prompts.render(template, row["messages"], tokenizer.eos_token, add_generation_prompt=True) for row in rows]
    started = time.perf_counter()
    outputs = generate_greedy(model, tokenizer, texts, shared["max_response_length"], options["batch_size"], device)
    wall = time.perf_counter() - started
    samples = []
    for row, text, (response, n_tokens, truncated) in zip(rows, texts, outputs):
        robust = grading.robust_grade(response, row["ground_truth"])
        verifier = grading.verifier_grade(response, row["ground_truth"])
        samples.append({
            "id": row["id"], "prompt": text, "response": response, "gold": row["ground_truth"],
            "extracted": robust.extracted, "correct": robust.correct,
            "verifier_extracted": verifier.extracted, "verifier_correct": verifier.correct,
            "truncated": truncated, "response_tokens": n_tokens,
        })
    results = summarize(name, model_path, samples, settings, exp_dir, device=device, dtype=dtype, wall=wall,
                        template_source=source)
    return results, samples


def summarize(name: str, model_path: str, samples: list[dict], settings: settings_mod.Settings, exp_dir: Path,
              *, device: str, dtype: str, wall: float, template_source: str) -> dict[str, Any]:
    n = len(samples)
    graders = {}
    for grader, key in (("robust", "correct"), ("verifier", "verifier_correct")):
        correct = sum(s[key] for s in samples)
        low, high = stats.wilson_interval(correct, n)
        graders[grader] = {"correct": correct, "accuracy": correct / n, "ci95": [low, high]}
    tokens = sum(s["response_tokens"] for s in samples)
    return {
        "format": RESULTS_FORMAT, "version": RESULTS_VERSION,
        "experiment_id": exp_dir.name, "model_name": name,
        "model": {"path": model_path, "fingerprint": weights_fingerprint(model_path), "template_source": template_source},
        "settings_fingerprints": {"shared": settings.fingerprint("shared"), "eval": settings.fingerprint("eval")},
        "split": "test", "n": n,
        "decoding": {"strategy": "greedy", "max_new_tokens": settings.shared["max_response_length"], "stop": "eos"},
        "engine": "transformers", "device": device, "dtype": dtype,
        "graders": graders, "headline_grader": "robust", "accuracy": graders["robust"]["accuracy"],
        "counts": {
            "n": n, "truncated": sum(s["truncated"] for s in samples),
            "no_answer": sum(s["extracted"] is None for s in samples),
            "grader_disagreements": sum(s["correct"] != s["verifier_correct"] for s in samples),
        },
        "mean_response_tokens": tokens / n if n else 0.0,
        "tokens_per_second": tokens / wall if wall > 0 else None, "wall_seconds": wall,
        "samples_file": f"{name}_samples.jsonl", "created_at": runs.utc_now(),
    }


def _is_current(results_path: Path, model_path: str, settings: settings_mod.Settings) -> bool:
    if not results_path.is_file():
        return False
    old = json.loads(results_path.read_text())
    return (old.get("format") == RESULTS_FORMAT and old.get("version") == RESULTS_VERSION
            and old["model"]["fingerprint"] == weights_fingerprint(model_path)
            and old.get("settings_fingerprints") == {"shared": settings.fingerprint("shared"),
                                                     "eval": settings.fingerprint("eval")}
            and (results_path.parent / old["samples_file"]).is_file())


def run(exp_dir: Path, wanted: list[str], force: bool, log=print) -> dict[str, Path]:
    owner = json.loads((exp_dir / "experiment.json").read_text())
    settings = settings_mod.load(owner["profile"])
    runs.claim_experiment(settings, exp_dir)
    models = models_to_evaluate(settings, exp_dir, wanted, log=log)
    out_dir = exp_dir / "eval"
    written = {}
    for name, path in models.items():
        results_path = out_dir / f"{name}_results.json"
        if not force and _is_current(results_path, path, settings):
            log(f"eval: {name}: already evaluated with these weights and settings ({results_path}); skipping (--force redoes it)")
            written[name] = results_path
            continue
        log(f"eval: {name}: {path}")
        results, samples = evaluate_model(name, path, settings, exp_dir, log=log)
        # Samples first, results last: a results file always has its complete samples file beside it.
        atomic.write_jsonl(out_dir / results["samples_file"], samples)
        atomic.write_json(results_path, results)
        written[name] = results_path
        log(f"eval: {name}: accuracy {results['accuracy']:.3f} (robust), {results['graders']['verifier']['accuracy']:.3f} "
            f"(verifier) on {results['n']} problems, {results['tokens_per_second'] or 0:.0f} tokens/s")
    return written


@cli
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sft_vs_rlvr.evaluation", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiment-dir", required=True)
    parser.add_argument("--models", default="base,sft,rlvr,sft_rlvr",
                        help="comma-separated subset of base,sft,rlvr,sft_rlvr")
    parser.add_argument("--force", action="store_true", help="evaluate again even when results are current")
    args = parser.parse_args(argv)
    wanted = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = set(wanted) - {"base", *ARMS}
    if unknown:
        raise UserError(f"unknown model name(s) {', '.join(sorted(unknown))}; choose from base, sft, rlvr, sft_rlvr")
    exp_dir = Path(args.experiment_dir)
    if not (exp_dir / "experiment.json").is_file():
        raise UserError(f"{exp_dir} is not an experiment folder; run the training launchers first")
    run(exp_dir, wanted, args.force)
    return 0


if __name__ == "__main__":
    sys.exit(main())
