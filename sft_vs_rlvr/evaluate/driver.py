"""Evaluation: every model of an experiment on the test split, in the template it trained with.

Models: the base, each finished arm (sft, rlvr, and sft_rlvr when it was run) and, with the
`checkpoints` setting, every intermediate checkpoint the arms' manifests list (named <arm>_step<N>).
Same for every model (DESIGN.md, contract rule 4): the prepared test rows, the same token budget
(max_response_length) and stop rule (EOS), full precision on CPU or bf16 on GPU (never 8-bit), and
both graders (grading.py) on every response. The prompt template is read from the tokenizer saved
with each trained model, so evaluation cannot drift from training; the base model gets the shared one.

Decoding: greedy (the headline accuracy) and, with `samples` > 0, n sampled completions per problem
at `temperature` for pass@k and maj@k (passk.py); checkpoints are evaluated greedy only.
Engines (eval_engines.py): vLLM on GPU machines, transformers elsewhere.

Resumable and idempotent: completions are appended, one batch at a time, to
eval/.partial/<name>.<decoding>.jsonl; a killed evaluation continues from there. A model already
evaluated with the same weights and settings is reused (--force redoes it). Results and samples are
written atomically, samples first, so a results file always has its complete samples file beside it.
Checkpoints that are training states (DeepSpeed's format on GPUs) are turned into model folders in
eval/.scratch/ with DeepSpeed's own converter and removed after use.

Outputs per model (docs/FORMATS.md): eval/<name>_results.json, eval/<name>_samples.jsonl, and
eval/index.json listing what was evaluated, reused or skipped (with the reason).

Usage: python -m sft_vs_rlvr.evaluate.driver --experiment-dir DIR [--models base,sft,rlvr,sft_rlvr] [--force]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from sft_vs_rlvr import atomic, contract, prompts, runs, stats
from sft_vs_rlvr import settings as settings_mod
from sft_vs_rlvr.errors import UserError, cli
from sft_vs_rlvr.evaluate import engines as eval_engines
from sft_vs_rlvr.evaluate import grading, ood, passk
from sft_vs_rlvr.evaluate.fingerprints import state_fingerprint, weight_files, weights_fingerprint
from sft_vs_rlvr.tiny import model as tiny_model

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja",
                   "tokenizer.model", "generation_config.json", "config.json")


@dataclass(frozen=True)
class ModelSpec:
    name: str                       # base, sft, rlvr, sft_rlvr, or <arm>_step<N>
    path: str                       # model folder (or Hub id for the base), or a checkpoint folder
    arm: str | None = None
    step: int | None = None
    examples_seen: int | None = None
    kind: str = "hf_model"          # hf_model or training_state
    final_model: str | None = None  # the arm's final folder: config and tokenizer for its checkpoints


def spec_fingerprint(spec: ModelSpec) -> str:
    """The weights' fingerprint; for a checkpoint that is a training state (no plain weights), the state's."""
    folder = Path(spec.path)
    if spec.step is None or weight_files(folder):
        return weights_fingerprint(spec.path)
    return state_fingerprint(folder)


# ----------------------------------------------------------------------------------------------
# Which models


def models_to_evaluate(settings: settings_mod.Settings, exp_dir: Path, wanted: list[str], log=print
                       ) -> tuple[list[ModelSpec], list[dict[str, str]]]:
    """The models to evaluate, in order, and the checkpoints skipped (with the reason)."""
    finals: list[ModelSpec] = []
    checkpoints: list[ModelSpec] = []
    skipped: list[dict[str, str]] = []
    finished = 0
    for arm in contract.ARMS:
        folder = runs.final_model_folder(exp_dir / arm)
        if folder is None:
            if arm in wanted and arm != "sft_rlvr":
                log(f"eval: no finished {arm} run in {exp_dir / arm}; skipping it "
                    f"(PROFILE={settings.profile} {contract.HOW_TO_PRODUCE[arm]} trains it)")
            continue
        finished += 1
        final, manifest = str(folder), runs.read_manifest(exp_dir / arm)
        if arm in wanted:
            finals.append(ModelSpec(arm, final, arm=arm))
        if not settings.eval["checkpoints"] or arm not in wanted:
            continue
        for entry in manifest.get("checkpoints", []):
            name, folder = f"{arm}_step{entry['step']}", exp_dir / arm / entry["path"]
            if not folder.is_dir():
                skipped.append({"name": name, "reason": f"listed in {arm}/manifest.json but {folder} is missing"})
                log(f"eval: skipping {name}: {skipped[-1]['reason']}")
                continue
            checkpoints.append(ModelSpec(name, str(folder), arm, entry["step"], entry.get("examples_seen"),
                                         entry.get("kind", "hf_model"), final))
    if not finished:
        raise UserError(f"no trained model in {exp_dir}: run ./experiment_sft_llama8b.sh and "
                        "./experiment_rlvr_llama8b.sh first")
    base = []
    if "base" in wanted:
        shared = settings.shared
        path = (str(tiny_model.ensure(shared["chat_template"], shared["instruction"], log=log))
                if shared["base_model"] == tiny_model.TINY_MODEL_NAME else shared["base_model"])
        base = [ModelSpec("base", path)]
    return base + finals + checkpoints, skipped


@contextlib.contextmanager
def loadable(spec: ModelSpec, scratch: Path) -> Iterator[str]:
    """A folder transformers/vLLM can load for `spec`; checkpoints are completed in a scratch folder."""
    folder = Path(spec.path)
    if spec.step is None or _complete(folder):
        yield spec.path
        return
    target = scratch / spec.name
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    try:
        if weight_files(folder):
            for weights in weight_files(folder):
                (target / weights.name).symlink_to(weights.resolve())  # e.g. accelerate's CPU state: weights as is
        elif (folder / "zero_to_fp32.py").is_file():
            _deepspeed_to_model(folder, target)
        else:
            raise UserError(f"{folder} holds neither weights nor a DeepSpeed state; it cannot be evaluated")
        final = Path(spec.final_model or "")
        for name in TOKENIZER_FILES:  # config and tokenizer from the arm's final model (a state has neither)
            if (final / name).is_file() and not (target / name).exists():
                shutil.copy2(final / name, target / name)
        yield str(target)
    finally:
        shutil.rmtree(target, ignore_errors=True)


def _complete(folder: Path) -> bool:
    return (folder / "config.json").is_file() and (folder / "tokenizer_config.json").is_file() and bool(
        weight_files(folder))


def _deepspeed_to_model(state: Path, target: Path) -> None:
    """DeepSpeed's own zero_to_fp32.py, which it copies into every state, run where deepspeed is installed."""
    from sft_vs_rlvr.launch import open_instruct

    python = open_instruct.python() if open_instruct.python().is_file() else Path(sys.executable)
    result = subprocess.run([str(python), str(state / "zero_to_fp32.py"), str(state), str(target),
                             "--safe_serialization"], capture_output=True, text=True)
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        raise UserError(f"DeepSpeed could not convert {state} into a model folder ({tail[0]}); "
                        "is deepspeed installed in open-instruct's environment (make setup-gpu)?")


# ----------------------------------------------------------------------------------------------
# One model


def decodings(settings: settings_mod.Settings, spec: ModelSpec) -> list[eval_engines.Decoding]:
    shared, options = settings.shared, settings.eval
    out = [eval_engines.greedy(shared["max_response_length"], shared["seed"])]
    if options["samples"] > 0 and spec.step is None:
        out.append(eval_engines.sampled(options["samples"], options["temperature"], options["top_p"],
                                        shared["max_response_length"], shared["seed"]))
    return out


def test_rows(settings: settings_mod.Settings, exp_dir: Path) -> list[dict[str, Any]]:
    rows = atomic.read_jsonl(exp_dir / "data" / "test.jsonl")
    if settings.eval["limit"]:
        rows = rows[: settings.eval["limit"]]
    for row in rows:  # a gold answer a grader cannot score would grade every response wrong, silently
        try:
            grading.check_ground_truth(str(row["ground_truth"]))
        except grading.GoldAnswerError:
            raise UserError(f"{exp_dir / 'data' / 'test.jsonl'}: row {row['id']} has ground truth "
                            f"{row['ground_truth']!r}, not a number; the data source is broken (start --fresh)") from None
    return rows


def prompt_texts(spec: ModelSpec, tokenizer, settings: settings_mod.Settings, rows, log=print) -> tuple[list[str], str]:
    shared_template = prompts.template_text(settings.shared["chat_template"])
    if spec.name == "base":
        template, source = shared_template, "shared"
    else:
        template, source = tokenizer.chat_template, "tokenizer"
        if not template:
            raise UserError(f"{spec.path} has no chat template in its tokenizer; it was not saved by this pipeline")
        if template != shared_template:
            log(f"eval: note: {spec.name}'s saved template differs from the shared "
                f"'{settings.shared['chat_template']}' text; using the saved one (it is what the model trained with)")
    texts = [prompts.render(template, row["messages"], tokenizer.eos_token, add_generation_prompt=True) for row in rows]
    return texts, source


class Partial:
    """Completions appended one batch at a time; a resumed run reads back every complete line."""

    def __init__(self, path: Path, key: dict[str, Any]):
        self.path, self.key = path, key
        self.done: dict[int, list[dict[str, Any]]] = {}
        if path.is_file():
            lines = path.read_text(encoding="utf-8").split("\n")
            header = _json_or_none(lines[0])
            if header != {"key": key}:
                path.rename(path.with_suffix(f".stale-{int(time.time())}"))  # other weights or settings: kept aside
            else:
                for line in lines[1:]:
                    record = _json_or_none(line)  # a line cut by a kill or a full disk is not complete
                    if record is not None:
                        self.done[record["index"]] = record["completions"]
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            self._append([{"key": key}])

    def add(self, batch: list[tuple[int, list[eval_engines.Completion]]]) -> None:
        records = [{"index": i, "completions": [c.__dict__ for c in completions]} for i, completions in batch]
        self._append(records)
        for record in records:
            self.done[record["index"]] = record["completions"]

    def _append(self, records: list[dict[str, Any]]) -> None:
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write("".join(json.dumps(r) + "\n" for r in records))  # one write per batch
            handle.flush()


def _json_or_none(line: str) -> Any:
    try:
        return json.loads(line) if line.strip() else None
    except json.JSONDecodeError:
        return None


def generate_all(spec: ModelSpec, model_path: str, fingerprint: str, settings: settings_mod.Settings, exp_dir: Path,
                 engine_name: str, log=print, rows: list[dict[str, Any]] | None = None, label: str | None = None
                 ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Every decoding's completions for one model (resuming from .partial/), graded; plus run facts.

    rows/label: another problem set (out-of-distribution), evaluated greedy only, its partial files named by label.
    """
    from tqdm import tqdm

    label = label or spec.name
    kinds = ("greedy",) if rows is not None else ("greedy", "sampled")
    rows = rows if rows is not None else test_rows(settings, exp_dir)
    engine = eval_engines.make(engine_name, model_path, settings.eval["batch_size"], settings.shared["seed"])
    texts, template_source = prompt_texts(spec, engine.tokenizer, settings, rows, log=log)
    completions: dict[str, dict[int, list[dict[str, Any]]]] = {}
    facts: dict[str, Any] = {"engine": engine.name, "device": engine.device, "dtype": engine.dtype,
                             "template_source": template_source, "fingerprint": fingerprint, "timing": {}}
    chosen = [d for d in decodings(settings, spec) if d.kind in kinds]
    for decoding in chosen:
        key = {"fingerprint": fingerprint, "decoding": decoding.as_dict(), "n_rows": len(rows),
               "settings": settings.fingerprint("shared") + settings.fingerprint("eval")}
        partial = Partial(exp_dir / "eval" / ".partial" / f"{label}.{decoding.kind}.jsonl", key)
        if partial.done:
            log(f"eval: {label} {decoding.kind}: resuming, {len(partial.done)} of {len(rows)} problems done")
        bar = tqdm(total=len(rows), initial=len(partial.done), unit="problem", desc=f"{label} {decoding.kind}",
                   file=sys.stderr, disable=None)
        started, tokens = time.perf_counter(), 0

        def on_batch(batch, partial=partial, bar=bar):
            nonlocal tokens
            partial.add(batch)
            tokens += sum(c.tokens for _, cs in batch for c in cs)
            bar.update(len(batch))
            bar.set_postfix(tokens_per_s=f"{tokens / max(time.perf_counter() - started, 1e-9):.0f}")

        engine.generate(texts, decoding, partial.done.keys(), on_batch)
        bar.close()
        wall = time.perf_counter() - started
        facts["timing"][decoding.kind] = {"wall_seconds": wall, "new_tokens": tokens,
                                          "tokens_per_second": tokens / wall if wall > 0 and tokens else None}
        completions[decoding.kind] = partial.done
    samples = [_sample(row, text, index, completions) for index, (row, text) in enumerate(zip(rows, texts))]
    facts["decodings"] = {d.kind: d.as_dict() for d in chosen}
    return samples, facts


def _graded(completion: dict[str, Any], gold: str) -> dict[str, Any]:
    robust = grading.robust_grade(completion["text"], gold)
    verifier = grading.verifier_grade(completion["text"], gold)
    return {"response": completion["text"], "extracted": robust.extracted, "correct": robust.correct,
            "verifier_extracted": verifier.extracted, "verifier_correct": verifier.correct,
            "truncated": completion["truncated"], "response_tokens": completion["tokens"]}


def _sample(row, text, index, completions) -> dict[str, Any]:
    gold = str(row["ground_truth"])
    record = {"id": row["id"], "prompt": text, "gold": gold, **_graded(completions["greedy"][index][0], gold)}
    if "sampled" in completions:
        record["samples"] = [_graded(c, gold) for c in completions["sampled"][index]]
    return record


def summarize(spec: ModelSpec, samples: list[dict[str, Any]], settings: settings_mod.Settings, exp_dir: Path,
              facts: dict[str, Any]) -> dict[str, Any]:
    n = len(samples)
    graders = {}
    for grader, key in (("robust", "correct"), ("verifier", "verifier_correct")):
        correct = sum(s[key] for s in samples)
        low, high = stats.wilson_interval(correct, n)
        graders[grader] = {"correct": correct, "accuracy": correct / n, "ci95": [low, high]}
    tokens = sum(s["response_tokens"] for s in samples)
    greedy_timing = facts["timing"].get("greedy", {})
    results = {
        "format": contract.EVAL_RESULTS.id, "version": contract.EVAL_RESULTS.version,
        "experiment_id": exp_dir.name, "model_name": spec.name,
        "model": {"path": spec.path, "fingerprint": facts["fingerprint"], "template_source": facts["template_source"]},
        "checkpoint": ({"arm": spec.arm, "step": spec.step, "examples_seen": spec.examples_seen, "kind": spec.kind}
                       if spec.step is not None else None),
        "settings_fingerprints": {"shared": settings.fingerprint("shared"), "eval": settings.fingerprint("eval")},
        "split": "test", "n": n,
        "decoding": facts["decodings"]["greedy"], "decodings": facts["decodings"],
        "engine": facts["engine"], "device": facts["device"], "dtype": facts["dtype"],
        "graders": graders, "headline_grader": "robust", "accuracy": graders["robust"]["accuracy"],
        "counts": {
            "n": n, "truncated": sum(s["truncated"] for s in samples),
            "no_answer": sum(s["extracted"] is None for s in samples),
            "grader_disagreements": sum(s["correct"] != s["verifier_correct"] for s in samples),
        },
        "mean_response_tokens": tokens / n if n else 0.0,
        "tokens_per_second": greedy_timing.get("tokens_per_second"),
        "wall_seconds": sum(t["wall_seconds"] for t in facts["timing"].values()),
        "timing": facts["timing"],
        "samples_file": f"{spec.name}_samples.jsonl", "created_at": runs.utc_now(),
    }
    if samples and "samples" in samples[0]:
        results["sampled"] = _sampled_summary(samples)
    return results


def _sampled_summary(samples: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"n_per_problem": len(samples[0]["samples"])}
    flat = [c for s in samples for c in s["samples"]]
    for grader, key in (("robust", "correct"), ("verifier", "verifier_correct")):
        per_problem = [([c[key] for c in s["samples"]], [grading.parse_number(c["extracted"] or "") for c in s["samples"]])
                       for s in samples]
        out[grader] = {"mean_accuracy": sum(c[key] for c in flat) / len(flat), **passk.curves(per_problem)}
    out["counts"] = {"completions": len(flat), "truncated": sum(c["truncated"] for c in flat),
                     "no_answer": sum(c["extracted"] is None for c in flat)}
    out["mean_response_tokens"] = sum(c["response_tokens"] for c in flat) / len(flat)
    out["distinct_answers_mean"] = sum(len({c["extracted"] for c in s["samples"] if c["extracted"] is not None})
                                       for s in samples) / len(samples)
    return out


def _is_current(results_path: Path, spec: ModelSpec, fingerprint: str | None, settings: settings_mod.Settings,
                log=print) -> bool:
    if not results_path.is_file():
        return False
    try:
        old = json.loads(results_path.read_text())
    except json.JSONDecodeError:
        log(f"eval: {results_path} is not valid JSON; evaluating {spec.name} again")
        return False
    reasons = []
    if (old.get("format"), old.get("version")) != (contract.EVAL_RESULTS.id, contract.EVAL_RESULTS.version):
        reasons.append(f"it is format {old.get('format')} version {old.get('version')}")
    elif old["model"]["fingerprint"] != fingerprint:
        reasons.append("the weights changed")
    elif old.get("settings_fingerprints") != {"shared": settings.fingerprint("shared"), "eval": settings.fingerprint("eval")}:
        reasons.append("the settings changed")
    elif not (results_path.parent / old["samples_file"]).is_file():
        reasons.append("its samples file is missing")
    if reasons:
        log(f"eval: {spec.name}: earlier results are not current ({reasons[0]}); evaluating again")
    return not reasons


def run(exp_dir: Path, wanted: list[str], force: bool, log=print) -> dict[str, Path]:
    owner = json.loads((exp_dir / "experiment.json").read_text())
    settings = settings_mod.load(owner["profile"])
    runs.claim_experiment(settings, exp_dir)
    test_rows(settings, exp_dir)  # a broken test split is refused before any model is loaded
    ood.check_names(settings.eval["ood_sets"])
    specs, skipped = models_to_evaluate(settings, exp_dir, wanted, log=log)
    engine_name = eval_engines.choose(settings.eval["engine"])
    # Hashing an 8B model's weights reads 16 GB: once per model, shared by every stage below.
    fingerprints = {spec.name: spec_fingerprint(spec) for spec in specs}
    out_dir = exp_dir / "eval"
    written: dict[str, Path] = {}
    index: list[dict[str, Any]] = []
    for spec in specs:
        results_path = out_dir / f"{spec.name}_results.json"
        fingerprint = fingerprints[spec.name]
        if not force and _is_current(results_path, spec, fingerprint, settings, log=log):
            log(f"eval: {spec.name}: already evaluated with these weights and settings ({results_path}); "
                "skipping (--force redoes it)")
            written[spec.name] = results_path
            index.append({"name": spec.name, "status": "reused", "results": results_path.name})
            continue
        log(f"eval: {spec.name}: {spec.path} ({engine_name})")
        try:
            with loadable(spec, out_dir / ".scratch") as model_path:
                samples, facts = generate_all(spec, model_path, fingerprint, settings, exp_dir, engine_name, log=log)
            results = summarize(spec, samples, settings, exp_dir, facts)
            atomic.write_jsonl(out_dir / results["samples_file"], samples)
            atomic.write_json(results_path, results)
        except OSError as error:  # a full disk, a quota: nothing half-written, finished batches kept
            raise UserError(f"writing the evaluation of {spec.name} failed ({error.strerror or error}); free disk "
                            f"space and rerun: it resumes from the batches kept in {out_dir / '.partial'}") from None
        for partial in (out_dir / ".partial").glob(f"{spec.name}.*.jsonl"):
            partial.unlink()
        written[spec.name] = results_path
        index.append({"name": spec.name, "status": "evaluated", "results": results_path.name})
        sampled = results.get("sampled")
        log(f"eval: {spec.name}: accuracy {results['accuracy']:.3f} (robust), "
            f"{results['graders']['verifier']['accuracy']:.3f} (verifier) on {results['n']} problems"
            + (f"; pass@{sampled['n_per_problem']} {sampled['robust']['pass@k'][str(sampled['n_per_problem'])]:.3f}"
               if sampled else "")
            + (f"; {results['tokens_per_second']:.0f} tokens/s" if results["tokens_per_second"] else ""))
    for set_name in settings.eval["ood_sets"]:
        index += out_of_distribution(set_name, [s for s in specs if s.step is None], fingerprints, settings, exp_dir,
                                     engine_name, force, log=log)
    if settings.eval["reference"]:
        index += reference_protocol([s for s in specs if s.step is None], fingerprints, settings, exp_dir, force,
                                    log=log)
    index += [{"name": s["name"], "status": "skipped", "reason": s["reason"]} for s in skipped]
    atomic.write_json(out_dir / "index.json", {"format": contract.EVAL_INDEX.id, "version": contract.EVAL_INDEX.version, "engine": engine_name,
                                               "models": index, "written_at": runs.utc_now()})
    shutil.rmtree(out_dir / ".scratch", ignore_errors=True)
    return written


def out_of_distribution(set_name: str, specs: list[ModelSpec], fingerprints: dict[str, str],
                        settings: settings_mod.Settings, exp_dir: Path, engine_name: str, force: bool,
                        log=print) -> list[dict[str, Any]]:
    """Greedy accuracy of the base and final models on one out-of-distribution set (ood.py), in eval/ood/<set>/."""
    data_dir = exp_dir / "data" / "ood"
    rows = atomic.read_jsonl(ood.prepare(set_name, settings.shared, data_dir))
    if settings.eval["limit"]:
        rows = rows[: settings.eval["limit"]]
    out_dir, index = exp_dir / "eval" / "ood" / set_name, []
    for spec in specs:
        results_path, fingerprint = out_dir / f"{spec.name}_results.json", fingerprints[spec.name]
        name = f"{spec.name}@{set_name}"
        if not force and _is_current(results_path, spec, fingerprint, settings, log=log):
            index.append({"name": name, "status": "reused", "results": str(results_path.relative_to(exp_dir / "eval"))})
            continue
        log(f"eval: {name}: {len(rows)} problems of {set_name}")
        with loadable(spec, exp_dir / "eval" / ".scratch") as model_path:
            samples, facts = generate_all(spec, model_path, fingerprint, settings, exp_dir, engine_name, log=log,
                                          rows=rows, label=name)
        results = summarize(spec, samples, settings, exp_dir, facts)
        results["dataset"] = ood.manifest(data_dir, set_name)
        atomic.write_jsonl(out_dir / results["samples_file"], samples)
        atomic.write_json(results_path, results)
        for partial in (exp_dir / "eval" / ".partial").glob(f"{name}.*.jsonl"):
            partial.unlink()
        index.append({"name": name, "status": "evaluated", "results": str(results_path.relative_to(exp_dir / "eval"))})
        log(f"eval: {name}: accuracy {results['accuracy']:.3f} (robust) on {results['n']} problems")
    return index


def reference_protocol(specs: list[ModelSpec], fingerprints: dict[str, str], settings: settings_mod.Settings,
                       exp_dir: Path, force: bool, log=print) -> list[dict[str, Any]]:
    """lm-eval's 8-shot gsm8k_cot on the base and each final model (reference_eval.py), reused when current."""
    from sft_vs_rlvr.evaluate import reference as reference_eval

    options, out_dir, index = settings.eval, exp_dir / "eval", []
    limit = options["reference_limit"] or None
    for spec in specs:
        path = out_dir / f"{spec.name}_reference_results.json"
        old = json.loads(path.read_text()) if path.is_file() else {}
        if (not force and old.get("version") == 1 and old.get("limit") == limit
                and old.get("model", {}).get("fingerprint") == fingerprints[spec.name]
                and old.get("lm_eval_version") == reference_eval.lm_eval_version()):
            log(f"eval: {spec.name}: reference protocol already run ({path}); skipping (--force redoes it)")
            index.append({"name": f"{spec.name} (reference)", "status": "reused", "results": path.name})
            continue
        log(f"eval: {spec.name}: reference protocol, lm-eval gsm8k_cot 8-shot"
            + (f" on the first {limit} problems" if limit else ""))
        results = reference_eval.run_reference(spec.path, exp_dir / "data" / "test.jsonl", out_dir, spec.name,
                                               limit=limit, batch_size=options["batch_size"],
                                               max_length=options["reference_max_length"] or None,
                                               instruction=settings.shared["instruction"],
                                               fingerprint=fingerprints[spec.name], log=log)
        index.append({"name": f"{spec.name} (reference)", "status": "evaluated", "results": path.name})
        metrics = results.get("metrics", {})
        log(f"eval: {spec.name}: reference " + ", ".join(f"{f} {m['exact_match']:.3f}" for f, m in metrics.items()))
    return index


@cli
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sft_vs_rlvr.evaluate.driver", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiment-dir", required=True)
    parser.add_argument("--models", default="base,sft,rlvr,sft_rlvr",
                        help="comma-separated subset of base,sft,rlvr,sft_rlvr (their checkpoints follow the arms)")
    parser.add_argument("--force", action="store_true", help="evaluate again even when results are current")
    args = parser.parse_args(argv)
    wanted = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = set(wanted) - set(contract.MODELS)
    if unknown:
        raise UserError(f"unknown model name(s) {', '.join(sorted(unknown))}; choose from base, sft, rlvr, sft_rlvr")
    exp_dir = Path(args.experiment_dir)
    if not (exp_dir / "experiment.json").is_file():
        raise UserError(f"{exp_dir} is not an experiment folder; run the training launchers first")
    run(exp_dir, wanted, args.force)
    return 0


if __name__ == "__main__":
    sys.exit(main())
