"""Evaluation: every model of an experiment on the test split, prompted exactly as it trained.

Models: the base, each finished arm (sft, rlvr, and sft_rlvr when it was run) and, with the
`checkpoints` setting, every intermediate checkpoint the arms' manifests list (named <arm>_step<N>).
Same for every model (DESIGN.md, contract rule 4): the prepared test rows, the same token budget
(max_response_length), the generation contract (generation.py: prompts as the token ids both trainers
build, BOS as they add it, EOS and the contract's stop strings), full precision on CPU or bf16 on GPU
(never 8-bit), and both graders (grading.py) on every response. The prompt template is read from the
tokenizer saved with each trained model, so evaluation cannot drift from training; the base model gets the
shared one. Results record the first prompt's token ids.

Decoding: greedy (the headline accuracy) and, with `samples` > 0, n sampled completions per problem
at `temperature` for pass@k and maj@k (passk.py); checkpoints are evaluated greedy only.
Engines (engines.py): vLLM on GPU machines, transformers on CPUs or when the settings ask for it.
Processes (worker.py): on a GPU machine each model runs in fresh worker processes, one replica per
visible GPU (problems split, results merged in order; tensor parallel only for a model that does not fit a
card), which exit before the next model loads, so GPU memory never carries over; greedy and sampled
decodings of one model share the loaded engine. On a CPU the driver generates in its own process
(--replicas N forces N worker processes anywhere). Before any model loads, every tokenizer is checked
against the contract and every model against the GPUs.

Resumable and idempotent: completions are appended, one batch at a time, to
eval/.partial/<name>.<decoding>.w<i>of<n>.jsonl; a killed evaluation continues from there. A model already
evaluated with the same weights and settings is reused (--force redoes it). Results and samples are
written atomically, samples first, so a results file always has its complete samples file beside it.
Checkpoints that are training states (DeepSpeed's format on GPUs) are turned into model folders in
eval/.scratch/ with DeepSpeed's own converter and removed after use.

Outputs per model (docs/FORMATS.md): eval/<name>_results.json, eval/<name>_samples.jsonl, and
eval/index.json listing what was evaluated, reused or skipped (with the reason).

Usage: python -m sft_vs_rlvr.evaluate.driver --experiment-dir DIR [--models base,sft,rlvr,sft_rlvr] [--force]
                                            [--replicas N]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator

from sft_vs_rlvr import atomic, contract, generation, prompts, runs, stats
from sft_vs_rlvr import settings as settings_mod
from sft_vs_rlvr.errors import UserError, cli
from sft_vs_rlvr.evaluate import engines as eval_engines
from sft_vs_rlvr.evaluate import grading, ood, passk, worker
from sft_vs_rlvr.evaluate.fingerprints import state_fingerprint, weight_files, weights_fingerprint
from sft_vs_rlvr.launch import layouts
from sft_vs_rlvr.launch import plan as plan_mod
from sft_vs_rlvr.tiny import model as tiny_model

GIB = 2 ** 30
# A model this small (the tiny profile's) leaves no GPU memory behind worth a fresh process, and starting one
# costs more than evaluating it: it runs in the driver's process.
SMALL_MODEL_BYTES = 1 * GIB

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
def loadable(spec: ModelSpec, settings: settings_mod.Settings, scratch: Path) -> Iterator[str]:
    """A folder transformers/vLLM can load for `spec`; checkpoints are completed in a scratch folder, removed after."""
    folder = Path(spec.path)
    if spec.step is None or _complete(folder):
        yield spec.path
        return
    target = scratch / spec.name
    shutil.rmtree(target, ignore_errors=True)
    try:
        if weight_files(folder):  # TRL's checkpoints, accelerate's CPU states: weights as they are (no bf16 cast)
            target.mkdir(parents=True)
            for weights in weight_files(folder):
                (target / weights.name).symlink_to(weights.resolve())
        else:  # a DeepSpeed state: the snapshot converter, in open-instruct's environment where deepspeed is
            _convert_state(folder, target, spec, settings)
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


def _convert_state(state: Path, target: Path, spec: ModelSpec, settings: settings_mod.Settings) -> None:
    from sft_vs_rlvr.launch import open_instruct, snapshots

    python = open_instruct.python() if open_instruct.python().is_file() else Path(sys.executable)
    final = spec.final_model or str(state)
    command = snapshots.converter_command(str(python), final, final, settings.shared["chat_template"],
                                          settings.shared["add_bos"])
    result = subprocess.run([*command, str(state), str(target)], capture_output=True, text=True,
                            env={**os.environ, **open_instruct.environment()})
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        raise UserError(f"the training state {state} could not be turned into a model folder ({tail[0]}); is "
                        "deepspeed installed in open-instruct's environment (make setup-gpu)?")


# ----------------------------------------------------------------------------------------------
# One model


def decodings(settings: settings_mod.Settings, spec: ModelSpec) -> list[eval_engines.Decoding]:
    shared, options = settings.shared, settings.eval
    stop = tuple(shared["stop_strings"])
    out = [eval_engines.greedy(shared["max_response_length"], shared["seed"], stop)]
    if options["samples"] > 0 and spec.step is None:
        out.append(eval_engines.sampled(options["samples"], options["temperature"], options["top_p"],
                                        shared["max_response_length"], shared["seed"], stop))
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


def tokenizer_folder(spec: ModelSpec) -> str:
    """Where a model's tokenizer is: its own folder, or for a training state its arm's final model folder."""
    if spec.step is not None and not (Path(spec.path) / "tokenizer_config.json").is_file():
        return spec.final_model or spec.path
    return spec.path


def load_tokenizer(spec: ModelSpec):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(tokenizer_folder(spec))
    except (OSError, ValueError) as error:
        raise UserError(f"cannot load the tokenizer of {spec.name} from {tokenizer_folder(spec)} "
                        f"({str(error).splitlines()[0]}); check the model folder") from None


def prompt_template(spec: ModelSpec, tokenizer, settings: settings_mod.Settings, log=print) -> tuple[str, str]:
    """The template a model trained with: the one saved with its tokenizer, the shared one for the base."""
    shared_template = prompts.template_text(settings.shared["chat_template"])
    if spec.name == "base":
        return shared_template, "shared"
    template = tokenizer.chat_template
    if not template:
        raise UserError(f"{spec.path} has no chat template in its tokenizer; it was not saved by this pipeline")
    add_bos = settings.shared["add_bos"]
    if generation.prompt_template(template, add_bos) != generation.prompt_template(shared_template, add_bos):
        log(f"eval: note: {spec.name}'s saved template differs from the shared "
            f"'{settings.shared['chat_template']}' text; using the saved one (it is what the model trained with)")
    return template, "tokenizer"


def prompt_token_ids(spec: ModelSpec, tokenizer, settings: settings_mod.Settings, rows, log=print
                     ) -> tuple[list[list[int]], list[str], dict[str, Any]]:
    """Every row's prompt as the token ids both trainers build (generation.py), its text, and how they were built."""
    rules = generation.Contract.from_shared(settings.shared)
    generation.check_tokenizer(tokenizer, rules, f"{spec.name} ({tokenizer_folder(spec)})")
    template, source = prompt_template(spec, tokenizer, settings, log=log)
    texts = [generation.prompt_text(tokenizer, template, row["messages"], rules) for row in rows]
    ids = [list(tokenizer(text, add_special_tokens=False)["input_ids"]) for text in texts]
    return ids, texts, {"template_source": source, **rules.as_dict(),
                        "first_prompt_token_ids": ids[0] if ids else []}


@dataclass(frozen=True)
class Placement:
    processes: int              # worker processes for one model; 0 = in this process
    tensor_parallel: int = 1    # GPUs per worker
    devices: tuple[str, ...] = ()  # CUDA_VISIBLE_DEVICES of each worker ("" = leave as is)


def model_bytes(spec: ModelSpec, settings: settings_mod.Settings) -> float | None:
    """bf16 bytes of a model's weights: its weight files, else the plan's shape of a Hub id, else unknown."""
    files = weight_files(Path(spec.path)) if Path(spec.path).is_dir() else []
    if files:
        dtype_scale = 0.5 if any(f.suffix == ".bin" for f in files) else 1.0  # PyTorch .bin states are often fp32
        return sum(f.stat().st_size for f in files) * dtype_scale
    shape = plan_mod.load_assumptions(settings.config_dir).get("models", {}).get(spec.path)
    return 2 * shape["parameters"] if shape else None


def placement(engine: str, size: float | None, gpus: int, gpu_bytes: float, replicas: int | None) -> Placement:
    """One replica per visible GPU for a model that fits a card with room for its KV cache (data parallel);
    tensor parallel over the fewest GPUs that hold it otherwise (vLLM only); in this process on a CPU and for a
    model under SMALL_MODEL_BYTES.
    `replicas` forces that many worker processes (the CPU tests of the split and merge)."""
    if replicas is not None:
        return Placement(replicas, 1, ("",) * replicas)
    if gpus == 0 or (size is not None and size < SMALL_MODEL_BYTES):
        return Placement(0)
    if size is None or size * 1.3 <= gpu_bytes:  # weights plus at least 30% for the cache and activations
        return Placement(gpus, 1, tuple(str(i) for i in range(gpus)))
    if engine != "vllm":
        raise UserError(f"a model of {size / GIB:.0f} GiB does not fit one {gpu_bytes / GIB:.0f} GiB GPU with the "
                        "transformers engine, which cannot split it; set engine = \"vllm\" in configs/eval.toml")
    tp = 2
    while tp <= gpus:
        if size * 1.3 <= tp * gpu_bytes and gpus % tp == 0:
            return Placement(1, tp, (",".join(str(i) for i in range(tp)),))
        tp *= 2
    raise UserError(f"a model of {size / GIB:.0f} GiB does not fit {gpus} GPUs of {gpu_bytes / GIB:.0f} GiB; "
                    "evaluate on a machine with more GPU memory")


def generate_all(spec: ModelSpec, model_path: str, fingerprint: str, settings: settings_mod.Settings, exp_dir: Path,
                 engine_name: str, where: Placement, log=print, rows: list[dict[str, Any]] | None = None,
                 label: str | None = None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Every decoding's completions for one model (resuming from .partial/), graded; plus run facts.

    The engine is loaded once per process for all decodings (worker.py); `where` says how many processes.
    rows/label: another problem set (out-of-distribution), evaluated greedy only, its partial files named by label.
    """
    label = label or spec.name
    kinds = ("greedy",) if rows is not None else ("greedy", "sampled")
    rows = rows if rows is not None else test_rows(settings, exp_dir)
    ids, texts, prompt_facts = prompt_token_ids(spec, load_tokenizer(spec), settings, rows, log=log)
    chosen = [d for d in decodings(settings, spec) if d.kind in kinds]
    keys = {d.kind: {"fingerprint": fingerprint, "decoding": d.as_dict(), "n_rows": len(rows),
                     "settings": settings.fingerprint("shared") + settings.fingerprint("eval")} for d in chosen}
    partial_dir = exp_dir / "eval" / ".partial"
    partial_dir.mkdir(parents=True, exist_ok=True)
    job = {"model_path": model_path, "engine": engine_name, "batch_size": settings.eval["batch_size"],
           "seed": settings.shared["seed"], "max_new_tokens": settings.shared["max_response_length"],
           "tensor_parallel_size": where.tensor_parallel, "prompt_ids": ids,
           "decodings": [{**asdict(d), "stop": list(d.stop)} for d in chosen], "keys": keys,
           "partial_prefix": str(partial_dir / label)}
    started = time.perf_counter()
    timings = _run_workers(job, where, partial_dir, label, log) if where.processes else [worker.run(
        {**job, "shard": [0, 1]}, log=log)]
    wall = time.perf_counter() - started
    completions: dict[str, dict[int, list[dict[str, Any]]]] = {}
    facts: dict[str, Any] = {"engine": timings[0]["engine"], "device": timings[0]["device"],
                             "dtype": timings[0]["dtype"], "template_source": prompt_facts["template_source"],
                             "prompt": prompt_facts, "fingerprint": fingerprint, "timing": {},
                             "placement": {"processes": max(1, where.processes), "tensor_parallel": where.tensor_parallel}}
    for decoding in chosen:
        done = worker.read_partials(partial_dir / label, decoding.kind, keys[decoding.kind])
        missing = [i for i in range(len(rows)) if i not in done]
        if missing:
            raise UserError(f"the evaluation of {label} ({decoding.kind}) is missing {len(missing)} of {len(rows)} "
                            f"problems after its workers finished; rerun ./evaluate_comparison.sh (it resumes)")
        completions[decoding.kind] = done
        seconds = max(t[decoding.kind]["wall_seconds"] for t in timings)  # replicas run side by side
        tokens = sum(t[decoding.kind]["new_tokens"] for t in timings)
        facts["timing"][decoding.kind] = {"wall_seconds": seconds, "new_tokens": tokens,
                                          "tokens_per_second": tokens / seconds if seconds > 0 and tokens else None,
                                          "sequences_per_call": timings[0][decoding.kind]["sequences_per_call"]}
    facts["model_wall_seconds"] = wall  # loading and generation, all decodings
    samples = [_sample(row, text, index, completions) for index, (row, text) in enumerate(zip(rows, texts))]
    facts["decodings"] = {d.kind: d.as_dict() for d in chosen}
    return samples, facts


def _run_workers(job: dict[str, Any], where: Placement, partial_dir: Path, label: str, log) -> list[dict[str, Any]]:
    """One process per replica, each loading the model once; all of them finish before the next model."""
    processes, files = [], []
    for shard in range(where.processes):
        job_file = partial_dir / f"{label}.job{shard}.json"
        timing_file = partial_dir / f"{label}.timing{shard}.json"
        atomic.write_json(job_file, {**job, "shard": [shard, where.processes], "timing_file": str(timing_file)})
        env = dict(os.environ)
        if where.devices[shard]:
            env["CUDA_VISIBLE_DEVICES"] = where.devices[shard]
        log_file = (partial_dir / f"{label}.worker{shard}.log").open("w")
        processes.append((subprocess.Popen([sys.executable, "-m", "sft_vs_rlvr.evaluate.worker", str(job_file)],
                                           env=env, stdout=log_file, stderr=subprocess.STDOUT), log_file))
        files.append((job_file, timing_file, partial_dir / f"{label}.worker{shard}.log"))
    codes = [process.wait() for process, _ in processes]
    for _, handle in processes:
        handle.close()
    for code, (job_file, timing_file, log_path) in zip(codes, files):
        if code != 0:
            tail = log_path.read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
            raise UserError(f"an evaluation worker for {label} failed ({tail[0]}); its log is {log_path}; "
                            "rerun ./evaluate_comparison.sh to resume")
    timings = [json.loads(timing_file.read_text()) for _, timing_file, _ in files]
    for job_file, timing_file, log_path in files:
        for path in (job_file, timing_file, log_path):
            path.unlink(missing_ok=True)
    log(f"eval: {label}: {where.processes} worker process(es)"
        + (f", tensor parallel {where.tensor_parallel}" if where.tensor_parallel > 1 else ""))
    return timings


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
        "placement": facts["placement"], "prompt": facts["prompt"],
        "graders": graders, "headline_grader": settings.eval["headline_grader"],
        "accuracy": graders[settings.eval["headline_grader"]]["accuracy"],
        "counts": {
            "n": n, "truncated": sum(s["truncated"] for s in samples),
            "no_answer": sum(s["extracted"] is None for s in samples),
            "grader_disagreements": sum(s["correct"] != s["verifier_correct"] for s in samples),
        },
        "mean_response_tokens": tokens / n if n else 0.0,
        "tokens_per_second": greedy_timing.get("tokens_per_second"),
        "wall_seconds": facts["model_wall_seconds"],
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


def _gpus(settings: settings_mod.Settings) -> tuple[int, float]:
    """Visible GPUs and the memory of one (nvidia-smi, through the plan's hardware reading); none on a CPU."""
    import torch

    if not torch.cuda.is_available():
        return 0, 0.0
    count = layouts.visible_gpus() or torch.cuda.device_count()
    hardware = plan_mod.hardware(plan_mod.load_assumptions(settings.config_dir))
    return count, hardware.memory_gib * GIB


def run(exp_dir: Path, wanted: list[str], force: bool, log=print, replicas: int | None = None) -> dict[str, Path]:
    owner = json.loads((exp_dir / "experiment.json").read_text())
    settings = settings_mod.load(owner["profile"])
    runs.claim_experiment(settings, exp_dir)
    test_rows(settings, exp_dir)  # a broken test split is refused before any model is loaded
    ood.check_names(settings.eval["ood_sets"])
    specs, skipped = models_to_evaluate(settings, exp_dir, wanted, log=log)
    engine_name = eval_engines.choose(settings.eval["engine"])
    # Before any model loads: every tokenizer can carry the generation contract, every model fits the GPUs.
    rules = generation.Contract.from_shared(settings.shared)
    for spec in specs:
        generation.check_tokenizer(load_tokenizer(spec), rules, f"{spec.name} ({tokenizer_folder(spec)})")
    gpus, gpu_bytes = _gpus(settings)
    placements = {spec.name: placement(engine_name, model_bytes(spec, settings), gpus, gpu_bytes, replicas)
                  for spec in specs}
    # Hashing an 8B model's weights reads 16 GB: once per model, shared by every stage below.
    fingerprints = {spec.name: spec_fingerprint(spec) for spec in specs}
    out_dir = exp_dir / "eval"
    written: dict[str, Path] = {}
    index: list[dict[str, Any]] = []

    def evaluate_one(spec: ModelSpec, where: Placement) -> None:
        results_path = out_dir / f"{spec.name}_results.json"
        fingerprint = fingerprints[spec.name]
        if not force and _is_current(results_path, spec, fingerprint, settings, log=log):
            log(f"eval: {spec.name}: already evaluated with these weights and settings ({results_path}); "
                "skipping (--force redoes it)")
            written[spec.name] = results_path
            index.append({"name": spec.name, "status": "reused", "results": results_path.name})
            return
        log(f"eval: {spec.name}: {spec.path} ({engine_name})")
        try:
            with loadable(spec, settings, out_dir / ".scratch") as model_path:
                samples, facts = generate_all(spec, model_path, fingerprint, settings, exp_dir, engine_name, where,
                                              log=log)
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

    finals = [spec for spec in specs if spec.step is None]
    checkpoints = [spec for spec in specs if spec.step is not None]
    for spec in finals:
        evaluate_one(spec, placements[spec.name])
    # Checkpoints are greedy only and short: with several GPUs, one checkpoint per GPU side by side, so their
    # loading overlaps instead of adding up (one replica each; models that need more than a card go one by one).
    lanes = gpus if replicas is None and gpus > 1 and all(
        placements[c.name].tensor_parallel == 1 for c in checkpoints) else 1
    if lanes == 1:
        for spec in checkpoints:
            evaluate_one(spec, placements[spec.name])
    else:
        from concurrent.futures import ThreadPoolExecutor

        for start in range(0, len(checkpoints), lanes):
            group = checkpoints[start:start + lanes]
            with ThreadPoolExecutor(max_workers=lanes) as pool:
                futures = [pool.submit(evaluate_one, spec, Placement(1, 1, (str(gpu),))) for gpu, spec in enumerate(group)]
                for future in futures:
                    future.result()
    for set_name in settings.eval["ood_sets"]:
        index += out_of_distribution(set_name, [s for s in specs if s.step is None], fingerprints, settings, exp_dir,
                                     engine_name, force, placements, log=log)
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
                        placements: dict[str, Placement], log=print) -> list[dict[str, Any]]:
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
        with loadable(spec, settings, exp_dir / "eval" / ".scratch") as model_path:
            samples, facts = generate_all(spec, model_path, fingerprint, settings, exp_dir, engine_name,
                                          placements[spec.name], log=log, rows=rows, label=name)
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
    parser.add_argument("--replicas", type=int, default=None,
                        help="worker processes per model (default: one per visible GPU, none on a CPU)")
    args = parser.parse_args(argv)
    wanted = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = set(wanted) - set(contract.MODELS)
    if unknown:
        raise UserError(f"unknown model name(s) {', '.join(sorted(unknown))}; choose from base, sft, rlvr, sft_rlvr")
    exp_dir = Path(args.experiment_dir)
    if not (exp_dir / "experiment.json").is_file():
        raise UserError(f"{exp_dir} is not an experiment folder; run the training launchers first")
    if args.replicas is not None and args.replicas < 1:
        raise UserError(f"--replicas must be at least 1 (got {args.replicas})")
    run(exp_dir, wanted, args.force, replicas=args.replicas)
    return 0


if __name__ == "__main__":
    sys.exit(main())
