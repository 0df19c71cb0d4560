"""The run's budget before any GPU time: what it trains on, what it writes, what it costs, whether it fits.

`--plan` on either launcher prints this; the launchers also take their ZeRO stage and SFT micro-batch
from here, so the memory estimate that --plan shows is the one a launch is checked against.

Arithmetic (every assumption comes from configs/plan.toml and is printed beside the result):
  SFT   FLOPs = 8 x parameters x tokens trained   (forward 2, backward 4, recomputation 2: gradient
        checkpointing); attention FLOPs are left out (under 10% at 1,024 tokens)
  RLVR  learner FLOPs = 12 x parameters x (prompt + response tokens of every sample)   (policy 8 as
        above, reference forward 2, old-policy forward 2); generation time = generated tokens / vLLM
        throughput; with async_steps 1 generation overlaps training, so the longer of the two counts
  time  = FLOPs / (GPUs x peak bf16 x MFU) + checkpoint writes + weight syncs + start-up
Memory per GPU (bytes, P parameters, N ranks sharing the ZeRO partition):
  weights 2P (ZeRO-3: 2P/N), gradients 2P (ZeRO-2/3: 2P/N), AdamW fp32 master + m + v 12P/N,
  GRPO reference model 2P (ZeRO-3: 2P/N) and, at ZeRO-3, the whole model gathered for the weight
  sync to vLLM (2P), activations of one micro-batch with checkpointing,
  logits (none with Liger's fused cross-entropy), ZeRO-3 live parameters, a fixed overhead.
The lowest ZeRO stage that fits with the configured headroom is chosen (stage 2 communicates less);
for SFT, the largest micro-batch that fits and divides the effective batch. A layout that fits at no
stage is refused before launch unless FORCE=1.

Command line:
  python -m sft_vs_rlvr.launch.plan show   --profile P [--stage sft|rlvr|eval|all]   the plan, on stdout
  python -m sft_vs_rlvr.launch.plan export --profile P                           `export` lines for a launcher
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sft_vs_rlvr import prompts
from sft_vs_rlvr import settings as settings_mod
from sft_vs_rlvr.errors import UserError, cli
from sft_vs_rlvr.launch import layouts

GIB = 2**30
SFT_ZERO_CONFIGS = {2: "stage2_no_offloading_accelerate.conf", 3: "stage3_no_offloading_accelerate.conf"}
RL_EVAL_ROWS = 256         # the launcher's --dataset_mixer_eval_list test.jsonl 256
RL_STATES_KEPT = 1         # the launcher's --keep_last_n_checkpoints for GRPO training states


# ----------------------------------------------------------------------------------------------
# Inputs: assumptions, hardware, model shape, data


def load_assumptions(config_dir: Path) -> dict[str, Any]:
    path = config_dir / "plan.toml"
    if not path.is_file():
        raise UserError(f"{path} is missing; restore it from git")
    with path.open("rb") as handle:
        return tomllib.load(handle)


@dataclass(frozen=True)
class Hardware:
    gpu_name: str
    memory_gib: float
    peak_tflops: float
    source: str


def _visible_gpu() -> tuple[str, float] | None:
    if not shutil.which("nvidia-smi"):
        return None
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    rows = [line.rsplit(",", 1) for line in out.splitlines() if "," in line]
    if not rows:
        return None
    # The smallest card decides what fits.
    name, mib = min(((n.strip(), float(m)) for n, m in rows), key=lambda r: r[1])
    return name, mib / 1024


def hardware(assumptions: dict[str, Any]) -> Hardware:
    hw = assumptions["hardware"]
    name, memory, source = hw["gpu_name"], float(hw["gpu_memory_gib"]), "configs/plan.toml (no GPU visible)"
    visible = _visible_gpu()
    if visible:
        name, memory, source = visible[0], visible[1], "nvidia-smi"
    if os.environ.get("GPU_MEMORY_GIB"):
        try:
            memory, source = float(os.environ["GPU_MEMORY_GIB"]), "GPU_MEMORY_GIB"
        except ValueError:
            raise UserError(f"GPU_MEMORY_GIB={os.environ['GPU_MEMORY_GIB']!r} is not a number of GiB, e.g. 80") from None
    peak = next((v for k, v in assumptions["peak_bf16_tflops"].items() if k.lower() in name.lower()), None)
    if peak is None:
        raise UserError(f"no bf16 peak known for GPU '{name}'; add it under [peak_bf16_tflops] in configs/plan.toml")
    return Hardware(name, memory, float(peak), source)


@dataclass(frozen=True)
class ModelShape:
    parameters: float
    num_hidden_layers: int
    hidden_size: int
    intermediate_size: int
    vocab_size: int
    kv_size: int
    source: str


def shape_from_config(config: dict[str, Any], source: str) -> ModelShape:
    """Parameter count of a Llama-style config (embeddings, attention with grouped KV, gated MLP, norms)."""
    h, layers, inter, vocab = (config["hidden_size"], config["num_hidden_layers"], config["intermediate_size"],
                               config["vocab_size"])
    heads = config["num_attention_heads"]
    kv = config.get("num_key_value_heads", heads) * config.get("head_dim", h // heads)
    per_layer = 2 * h * h + 2 * h * kv + 3 * h * inter + 2 * h
    embeddings = vocab * h * (1 if config.get("tie_word_embeddings") else 2)
    return ModelShape(float(embeddings + layers * per_layer + h), layers, h, inter, vocab, kv, source)


def model_shape(settings: settings_mod.Settings, assumptions: dict[str, Any]) -> ModelShape:
    base = settings.shared["base_model"]
    folder = _local_model_folder(settings)
    if folder is not None and (folder / "config.json").is_file():
        return shape_from_config(json.loads((folder / "config.json").read_text()), f"{folder.name}/config.json")
    known = assumptions.get("models", {}).get(base)
    if known is None:
        raise UserError(f"--plan does not know the shape of '{base}'; add [models.\"{base}\"] to configs/plan.toml "
                        "(parameters, num_hidden_layers, hidden_size, intermediate_size, vocab_size, kv_size)")
    return ModelShape(float(known["parameters"]), known["num_hidden_layers"], known["hidden_size"],
                      known["intermediate_size"], known["vocab_size"], known["kv_size"], "configs/plan.toml")


def _local_model_folder(settings: settings_mod.Settings) -> Path | None:
    if settings.profile == "tiny":
        from sft_vs_rlvr.tiny import model as tiny_model
        shared = settings.shared
        path = tiny_model.model_dir(shared["chat_template"], shared["instruction"])
        return path if (path / "config.json").is_file() else None
    path = Path(settings.shared["base_model"])
    return path if path.is_dir() else None


@dataclass
class DataStats:
    train_rows: int
    sft_tokens_per_epoch: float      # tokens of every SFT sequence (prompt + target + EOS), capped at max length
    rl_prompt_tokens_mean: float
    source: str
    counted_with: str


def _tokenizer(settings: settings_mod.Settings):
    """The base model's tokenizer when it is on this machine (no download), else None."""
    folder = _local_model_folder(settings)
    try:
        from transformers import AutoTokenizer
        if folder is not None:
            return AutoTokenizer.from_pretrained(folder)
        return AutoTokenizer.from_pretrained(settings.shared["base_model"], local_files_only=True)
    except Exception:  # noqa: BLE001 - any failure means "not available offline"; the plan then estimates
        return None


def data_stats(settings: settings_mod.Settings, data_dir: Path | None, assumptions: dict[str, Any]) -> DataStats:
    shared, lengths = settings.shared, assumptions["lengths"]
    max_seq = shared["max_prompt_length"] + shared["max_response_length"]
    rows = _prepared_rows(data_dir)
    source = f"prepared data in {data_dir}" if rows else None
    if rows is None and shared["dataset"] == "synthetic-gsm8k" or rows is None and Path(shared["dataset"]).is_dir():
        from sft_vs_rlvr import data_prep
        rows = data_prep.build(shared)["sft_train.jsonl"]
        source = f"{shared['dataset']} (built in memory, not written)"
    if rows is None:
        template_chars = 40  # "<|user|>\n", "\n<|assistant|>\n", EOS
        question = lengths["gsm8k_question_chars"] + len(shared["instruction"]) + 2
        sft = (question + lengths["gsm8k_solution_chars"] + template_chars) / lengths["chars_per_token"]
        prompt = (question + template_chars) / lengths["chars_per_token"]
        return DataStats(shared["train_size"], min(sft, max_seq) * shared["train_size"], min(prompt, max_seq),
                         "GSM8K means from configs/plan.toml (data not prepared yet; rerun --plan after the "
                         "first launch for exact counts)", f"{lengths['chars_per_token']} characters per token")
    template = prompts.template_text(shared["chat_template"])
    tokenizer = _tokenizer(settings)
    eos = tokenizer.eos_token if tokenizer is not None else "</s>"

    def count(text: str) -> float:
        if tokenizer is not None:
            return len(tokenizer(text, add_special_tokens=False)["input_ids"])
        return len(text) / lengths["chars_per_token"]

    sft_tokens, prompt_tokens = 0.0, 0.0
    for row in rows:
        sft_tokens += min(count(prompts.render(template, row["messages"], eos, add_generation_prompt=False)), max_seq)
        prompt_tokens += count(prompts.render(template, row["messages"][:1], eos, add_generation_prompt=True))
    counted = ("the base model's tokenizer" if tokenizer is not None
               else f"{lengths['chars_per_token']} characters per token (tokenizer not on this machine)")
    return DataStats(len(rows), sft_tokens, prompt_tokens / len(rows), source, counted)


def _prepared_rows(data_dir: Path | None) -> list[dict[str, Any]] | None:
    if data_dir is None or not (data_dir / "sft_train.jsonl").is_file():
        return None
    from sft_vs_rlvr import atomic
    return list(atomic.read_jsonl(data_dir / "sft_train.jsonl"))


# ----------------------------------------------------------------------------------------------
# Memory


def sft_memory(shape: ModelShape, stage: int, ranks: int, micro_tokens: int, liger: bool,
               assumptions: dict[str, Any]) -> dict[str, float]:
    """Bytes per GPU of finetune.py under DeepSpeed ZeRO `stage` over `ranks` processes."""
    p, mem = shape.parameters, assumptions["memory"]
    return {
        "weights": 2 * p / (ranks if stage >= 3 else 1),
        "gradients": 2 * p / (ranks if stage >= 2 else 1),
        "optimizer": 12 * p / ranks,
        "activations": _activations(shape, micro_tokens),
        "logits": 0.0 if liger else 10.0 * micro_tokens * shape.vocab_size,  # bf16 logits, fp32 copy and grad
        "zero3_live": 2 * mem["zero3_live_parameters"] if stage >= 3 else 0.0,
        "overhead": mem["overhead_gib"] * GIB,
    }


def rl_learner_memory(shape: ModelShape, stage: int, learners: int, pack_length: int,
                      assumptions: dict[str, Any], reference: bool = True) -> dict[str, float]:
    """Bytes per learner GPU of grpo_fast: the policy as in SFT, plus the reference model when one is loaded
    (--load_ref_policy, which the launcher sets only for beta > 0)."""
    parts = sft_memory(shape, stage, learners, pack_length, liger=True, assumptions=assumptions)
    parts["reference"] = 2 * shape.parameters / (learners if stage >= 3 else 1) if reference else 0.0
    parts["logits"] = 12.0 * pack_length * shape.vocab_size  # log-probabilities in fp32, not fused
    # --gather_whole_model (default true) gathers every ZeRO-3 shard at once to send weights to vLLM.
    parts["weight_sync_gather"] = 2 * shape.parameters if stage >= 3 else 0.0
    return parts


def _activations(shape: ModelShape, tokens: int) -> float:
    # Gradient checkpointing keeps each layer's input (bf16) and recomputes one layer at a time.
    checkpoints = shape.num_hidden_layers * tokens * shape.hidden_size * 2
    one_layer = tokens * (4 * shape.hidden_size + 3 * shape.intermediate_size) * 2 * 2
    return float(checkpoints + one_layer)


def fits(parts: dict[str, float], card_gib: float, headroom: float) -> bool:
    return sum(parts.values()) * (1 + headroom) <= card_gib * GIB


# ----------------------------------------------------------------------------------------------
# The plan


@dataclass
class Choice:
    stage: int
    per_device_batch_size: int
    gradient_accumulation_steps: int
    memory: dict[str, float]
    fits: bool


@dataclass
class Plan:
    settings: settings_mod.Settings
    layout: layouts.Layout
    hardware: Hardware | None
    shape: ModelShape | None
    data: DataStats
    sft: Choice
    rlvr: Choice | None
    assumptions: dict[str, Any] = field(default_factory=dict)  # configs/plan.toml, as read by build()
    figures: dict[str, dict[str, Any]] = field(default_factory=dict)


def choose_sft(settings, layout: layouts.Layout, shape: ModelShape | None, hw: Hardware | None,
               assumptions: dict[str, Any]) -> Choice:
    max_seq = settings.shared["max_prompt_length"] + settings.shared["max_response_length"]
    per_rank = settings.sft["effective_batch_size"] // layout.sft_processes
    batches = [b for b in range(min(per_rank, settings.sft["max_per_device_batch_size"]), 0, -1) if per_rank % b == 0]
    if shape is None or hw is None:  # CPU profile: no memory question
        return Choice(0, batches[0], per_rank // batches[0], {}, True)
    headroom = assumptions["memory"]["headroom"]
    tried = []
    for stage in (2, 3):
        for batch in batches:
            parts = sft_memory(shape, stage, layout.sft_processes, batch * max_seq, True, assumptions)
            if fits(parts, hw.memory_gib, headroom):
                return Choice(stage, batch, per_rank // batch, parts, True)
            tried.append((stage, batch, parts))
    stage, batch, parts = tried[-1]  # the smallest footprint: ZeRO-3, one sequence per micro-batch
    return Choice(stage, batch, per_rank // batch, parts, False)


def choose_rlvr(settings, layout: layouts.Layout, shape: ModelShape, hw: Hardware,
                assumptions: dict[str, Any]) -> Choice:
    pack = settings.shared["max_prompt_length"] + settings.shared["max_response_length"]
    learners = layout.rlvr_learners_per_node * layout.nodes
    headroom = assumptions["memory"]["headroom"]
    parts = {}
    for stage in (2, 3):
        parts = rl_learner_memory(shape, stage, learners, pack, assumptions,
                                  reference=settings.rlvr["beta"] > 0)
        if fits(parts, hw.memory_gib, headroom):
            return Choice(stage, 1, 1, parts, True)
    return Choice(3, 1, 1, parts, False)


def vllm_engine(shape: ModelShape, hw: Hardware, settings, assumptions: dict[str, Any],
                utilisation: float = 0.9) -> dict[str, float]:
    """What one vLLM engine (tensor parallel 1) holds on its card; the KV cache gets what is left."""
    claimed = utilisation * hw.memory_gib * GIB
    weights = 2 * shape.parameters
    kv_per_token = 2 * shape.num_hidden_layers * shape.kv_size * 2
    free = claimed - weights - assumptions["memory"]["overhead_gib"] * GIB
    sequence = settings.shared["max_prompt_length"] + settings.shared["max_response_length"]
    return {"claimed": claimed, "weights": weights, "kv_cache": max(free, 0.0),
            "kv_tokens": max(free, 0.0) / kv_per_token, "sequences": max(free, 0.0) / kv_per_token / sequence}


def build(settings: settings_mod.Settings, data_dir: Path | None = None, with_data: bool = True,
          gpus_per_node: int | None = None) -> Plan:
    """The plan; with_data=False skips counting tokens (the launchers only need the memory choices)."""
    assumptions = load_assumptions(settings.config_dir)
    layout = layouts.resolve(settings, gpus_per_node)
    gpu = settings.profile != "tiny"
    hw = hardware(assumptions) if gpu else None
    shape = model_shape(settings, assumptions) if gpu or _local_model_folder(settings) else None
    data = (data_stats(settings, data_dir, assumptions) if with_data
            else DataStats(settings.shared["train_size"], 0.0, 0.0, "not counted", "-"))
    sft = choose_sft(settings, layout, shape if gpu else None, hw, assumptions)
    rlvr = choose_rlvr(settings, layout, shape, hw, assumptions) if gpu else None
    plan = Plan(settings, layout, hw, shape, data, sft, rlvr, assumptions)
    plan.figures = {"sft": _sft_figures(plan, assumptions), "rlvr": _rlvr_figures(plan, assumptions)}
    return plan


def _sft_figures(plan: Plan, a: dict[str, Any]) -> dict[str, Any]:
    s, layout, shape = plan.settings, plan.layout, plan.shape
    epochs = s.sft["epochs"]
    tokens = plan.data.sft_tokens_per_epoch * epochs
    steps = layout.sft_steps
    checkpoints = steps // layout.sft_checkpoint_every
    out: dict[str, Any] = {"prompts": plan.data.train_rows, "epochs": epochs, "optimizer_steps": steps,
                           "effective_batch": s.sft["effective_batch_size"], "tokens_trained": tokens,
                           "samples_generated": 0, "checkpoints": checkpoints}
    if shape is None:
        return out
    p = shape.parameters
    # finetune.py writes a DeepSpeed state (bf16 weights 2P + fp32 master, Adam m and v 12P) at every snapshot
    # step; launch/snapshots.py turns each into a bf16 model folder (2P) and removes all but the newest state.
    state_bytes, snapshot_bytes = 14 * p, 2 * p
    out.update(checkpoint_bytes=state_bytes, snapshot_bytes=snapshot_bytes, final_model_bytes=2 * p,
               # peak: the newest complete state, the next one being written, the snapshots and the final model
               disk_bytes=2 * state_bytes + checkpoints * snapshot_bytes + 2 * p,
               disk_bytes_end=checkpoints * snapshot_bytes + 2 * p,
               disk_bytes_without_snapshots=checkpoints * state_bytes + 2 * p,
               flops=8 * p * tokens)
    if plan.hardware is None:
        return out
    gpus = layout.gpus_per_node * layout.nodes
    hw, disk = a["hardware"], a["hardware"]["disk_write_gib_per_s"] * GIB
    compute = out["flops"] / (gpus * plan.hardware.peak_tflops * 1e12 * a["throughput"]["sft_mfu"])
    # finetune.py's own writes stop training; the conversions (read, write, verify 2P each) run beside it.
    writing = (checkpoints * state_bytes + 2 * p) / disk
    converting = checkpoints * 3 * snapshot_bytes / disk
    wall = compute + writing + hw["startup_minutes"] * 60
    out.update(seconds_compute=compute, seconds_writing=writing, seconds_converting=converting, seconds_wall=wall,
               gpus=gpus, gpu_hours=wall / 3600 * gpus, cost=wall / 3600 * gpus * hw["price_per_gpu_hour"])
    return out


def snapshots_that_fit(free_bytes: float, figures: dict[str, Any]) -> int:
    """How many SFT snapshots a disk with `free_bytes` holds at the run's peak (two states, the final model)."""
    room = free_bytes - 2 * figures["checkpoint_bytes"] - figures["final_model_bytes"]
    return max(0, int(room // figures["snapshot_bytes"]))


def _rlvr_figures(plan: Plan, a: dict[str, Any]) -> dict[str, Any]:
    s, layout, shape = plan.settings, plan.layout, plan.shape
    samples = layout.rlvr_total_episodes
    response = s.shared["max_response_length"] * a["lengths"]["rl_response_fill"]
    out: dict[str, Any] = {
        "prompts": plan.data.train_rows, "epochs": s.rlvr["epochs"], "optimizer_steps": layout.rlvr_steps,
        "prompts_per_step": s.rlvr["prompts_per_step"], "samples_per_prompt": s.rlvr["samples_per_prompt"],
        "samples_generated": samples, "response_tokens_mean": response,
        "tokens_generated": samples * response,
        "tokens_trained": samples * (plan.data.rl_prompt_tokens_mean + response),
        "checkpoints": layout.rlvr_steps // layout.rlvr_save_every,
        "evaluations": max(0, (layout.rlvr_steps - 1) // layout.rlvr_eval_every),
    }
    if shape is None or plan.hardware is None or plan.rlvr is None:
        return out
    p = shape.parameters
    snapshots = out["checkpoints"]
    # DeepSpeed state 14P, plus the reference policy 2P when one is loaded; the latest state only
    state_bytes = (16 if s.rlvr["beta"] > 0 else 14) * p
    out.update(checkpoint_bytes=2 * p, state_bytes=state_bytes,
               disk_bytes=snapshots * 2 * p + RL_STATES_KEPT * state_bytes + 2 * p)
    for case, fill in (("expected", a["lengths"]["rl_response_fill"]), ("worst", 1.0)):
        out[case] = _rl_time(plan, a, s.shared["max_response_length"] * fill, snapshots, state_bytes)
    # The pilot before RL (launch/pilot.py): one vLLM engine on one card, plus loading the model.
    per_engine = vllm_rate(plan.hardware, a)
    pilot_tokens = s.rlvr["pilot_prompts"] * s.rlvr["samples_per_prompt"] * response
    out["pilot"] = {"tokens": pilot_tokens, "seconds": pilot_tokens / per_engine
                    + a["throughput"]["eval_model_load_minutes"] * 60}
    out.update({k: out["expected"][k] for k in ("seconds_wall", "gpu_hours", "cost", "flops")})
    return out


def _rl_time(plan: Plan, a: dict[str, Any], response: float, snapshots: int, state_bytes: float) -> dict[str, float]:
    layout, hw, t = plan.layout, plan.hardware, a["throughput"]
    p = plan.shape.parameters
    samples = layout.rlvr_total_episodes
    engines = layout.rlvr_vllm_engines
    learners = layout.rlvr_learners_per_node * layout.nodes
    per_engine = vllm_rate(hw, a)
    generation = samples * response / (engines * per_engine)
    # per token: forward + backward 6P, old-policy log-probs 2P, generation 2P, reference forward 2P if loaded
    flops = (12 if plan.settings.rlvr["beta"] > 0 else 10) * p * samples * (plan.data.rl_prompt_tokens_mean + response)
    training = flops / (learners * hw.peak_tflops * 1e12 * t["rl_learner_mfu"])
    steps = max(1, layout.rlvr_steps)
    overlapped = max(generation, training) + min(generation, training) / steps
    evaluation = max(0, (steps - 1) // layout.rlvr_eval_every) * RL_EVAL_ROWS * response / (engines * per_engine)
    writing = snapshots * (2 * p + state_bytes) / (a["hardware"]["disk_write_gib_per_s"] * GIB)
    sync = steps * t["weight_sync_seconds_per_step"]
    wall = overlapped + evaluation + writing + sync + a["hardware"]["startup_minutes"] * 60
    gpus = layout.gpus_per_node * layout.nodes
    return {"seconds_generation": generation, "seconds_training": training, "seconds_evaluation": evaluation,
            "seconds_writing": writing, "seconds_weight_sync": sync, "seconds_wall": wall, "flops": flops,
            "gpus": gpus, "gpu_hours": wall / 3600 * gpus,
            "cost": wall / 3600 * gpus * a["hardware"]["price_per_gpu_hour"]}


# Sizes of the out-of-distribution sets (anchors.md section 4), for planning before they are downloaded.
OOD_SIZES = {"gsm8k-platinum": 1209, "gsm-hard": 1319, "svamp": 300, "gsm-plus": 10552}
REFERENCE_PROMPT_TOKENS = 1000   # lm-eval gsm8k_cot: 8 exemplars and the question, measured on Llama 3's tokenizer
REFERENCE_MAX_NEW_TOKENS = 256   # lm-eval's max_gen_toks for the hf and vllm models


def vllm_rate(hw: Hardware, a: dict[str, Any]) -> float:
    """Generated tokens per second of one vLLM engine on this card: decoding is bound by memory bandwidth, so the
    A100 figure scales by bandwidth (peak FLOPs would overstate an H100 or H200 by 1.6x to 2x)."""
    bandwidths = a.get("memory_bandwidth_tb_s", {})
    card = next((v for k, v in bandwidths.items() if k in hw.gpu_name), None)
    if card is None or "A100" not in bandwidths:
        raise UserError(f"no memory bandwidth known for GPU '{hw.gpu_name}'; add it under [memory_bandwidth_tb_s] "
                        "in configs/plan.toml")
    return a["throughput"]["vllm_tokens_per_second_a100"] * card / bandwidths["A100"]


def eval_engine(settings: settings_mod.Settings) -> str:
    """The engine the GPU box will use: auto means vLLM there (evaluate/engines.py refuses auto without it)."""
    return "transformers" if settings.eval["engine"] == "transformers" else "vllm"


def eval_figures(plan: Plan, a: dict[str, Any], gpus: int) -> dict[str, dict[str, float]]:
    """Everything ./evaluate_comparison.sh will run, with `gpus` GPUs: one replica per GPU for a model that fits a
    card (problems split evenly, so generation scales with the GPUs), models one after another."""
    s, hw, t = plan.settings, plan.hardware, a["throughput"]
    engine = eval_engine(s)
    problems = s.eval["limit"] or s.shared["test_size"]
    response = s.shared["max_response_length"] * a["lengths"]["rl_response_fill"]
    rate = vllm_rate(hw, a) if engine == "vllm" else t["transformers_tokens_per_second"]
    finals = 3  # base, SFT, RLVR (a fourth with the third arm)
    checkpoints = plan.figures["sft"]["checkpoints"] + plan.figures["rlvr"]["checkpoints"] if s.eval["checkpoints"] else 0
    load = t["eval_model_load_minutes"] * 60
    rows = {
        "greedy, final models": (finals * problems * response, finals),
        f"sampled ({s.eval['samples']} per problem), final models": (finals * problems * s.eval["samples"] * response, 0),
        "greedy, checkpoints": (checkpoints * problems * response, checkpoints),
        "out-of-distribution sets, greedy": (finals * sum(OOD_SIZES.get(n, 200) for n in s.eval["ood_sets"]) * response, 0),
    }
    out = {}
    for case, (tokens, loads) in rows.items():
        wall = tokens / (rate * gpus) + loads * load
        if case == "greedy, checkpoints" and checkpoints:
            # one checkpoint per GPU side by side (evaluate/driver.py): loads overlap too
            wall = math.ceil(checkpoints / gpus) * (load + problems * response / rate)
        out[case] = {"tokens": tokens, "seconds_wall": wall, "engine": engine}
    if s.eval["reference"]:
        limit = min(s.eval["reference_limit"] or s.shared["test_size"], s.shared["test_size"])
        # lm-eval's reference run is one process (the transformers backend): prompts are read fast, answers
        # generated at the engine's rate of one card, about 150 tokens before its "Q:" stop.
        tokens = finals * limit * 150
        reference_rate = t["transformers_tokens_per_second"]
        out["reference protocol (lm-eval 8-shot, ~1,000-token prompts)"] = {
            "tokens": tokens, "seconds_wall": tokens / reference_rate + finals * load, "engine": "transformers"}
    total = sum(r["seconds_wall"] for r in out.values())
    out["total"] = {"tokens": sum(r["tokens"] for r in out.values()), "seconds_wall": total, "engine": engine}
    for row in out.values():
        row.update(gpu_hours=row["seconds_wall"] / 3600 * gpus,
                   cost=row["seconds_wall"] / 3600 * gpus * a["hardware"]["price_per_gpu_hour"])
    return out


# ----------------------------------------------------------------------------------------------
# Output


def _gib(value: float) -> str:
    return f"{value / GIB:,.1f} GiB"


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.2f} h" if seconds >= 3600 else f"{seconds / 60:.0f} min"


def _memory_lines(title: str, choice: Choice, hw: Hardware, headroom: float) -> list[str]:
    total = sum(choice.memory.values())
    verdict = "fits" if choice.fits else "DOES NOT FIT"
    parts = ", ".join(f"{k} {v / GIB:.1f}" for k, v in choice.memory.items() if v)
    return [f"  {title}: {_gib(total)} of {hw.memory_gib:.0f} GiB per GPU at ZeRO-{choice.stage} -> {verdict} "
            f"with {headroom:.0%} headroom", f"    ({parts}; GiB)"]


def render(plan: Plan, stages: tuple[str, ...] = ("sft", "rlvr")) -> str:
    a = plan.assumptions
    s, layout, hw = plan.settings, plan.layout, plan.hardware
    lines = [f"Plan for profile {s.profile}: {s.shared['base_model']} on {s.shared['dataset']}, seed {s.shared['seed']}"]
    if hw is not None:
        lines.append(f"  hardware: {layout.gpus_per_node} x {hw.gpu_name} ({hw.memory_gib:.0f} GiB, "
                     f"{hw.peak_tflops:.0f} TFLOP/s bf16) per node x {layout.nodes} node(s); from {hw.source}")
    if plan.shape is not None:
        lines.append(f"  model: {plan.shape.parameters / 1e9:.3g} B parameters ({plan.shape.source})")
    lines.append(f"  tokens: {plan.data.source}; counted with {plan.data.counted_with}")
    if "sft" in stages:
        f, c = plan.figures["sft"], plan.sft
        lines += ["", "SFT (open-instruct finetune.py)" if hw else "SFT (TRL, CPU)",
                  f"  prompts {f['prompts']:,} x {f['epochs']} epochs; effective batch {f['effective_batch']} = "
                  f"{layout.sft_processes} processes x {c.per_device_batch_size} per device x "
                  f"{c.gradient_accumulation_steps} accumulation; {f['optimizer_steps']:,} optimizer steps",
                  f"  tokens trained {f['tokens_trained']:,.0f}; samples generated 0; checkpoints {f['checkpoints']}"]
        if "checkpoint_bytes" in f:
            lines.append(f"  disk: {f['checkpoints']} snapshots x {_gib(f['snapshot_bytes'])} (model folders) + final "
                         f"model {_gib(f['final_model_bytes'])} = {_gib(f['disk_bytes_end'])} at the end; "
                         f"{_gib(f['disk_bytes'])} at the peak, while the newest training state "
                         f"({_gib(f['checkpoint_bytes'])}, kept for resuming) and the next one both exist "
                         f"(keeping every state would take {_gib(f['disk_bytes_without_snapshots'])})")
            free = _free_disk(s)
            if free is not None:
                lines.append(f"  disk free under {s.output_root}: {_gib(free)}, room for "
                             f"{snapshots_that_fit(free, f)} snapshots at the peak (this run takes "
                             f"{f['checkpoints']}; fewer: lower `checkpoints` in configs/sft.toml)")
        if hw is not None:
            lines += _memory_lines("memory", c, hw, a["memory"]["headroom"])
            lines.append(f"  time: compute {_hours(f['seconds_compute'])} ({f['flops']:.2e} FLOP at "
                         f"{a['throughput']['sft_mfu']:.0%} MFU) + finetune.py's state writes "
                         f"{_hours(f['seconds_writing'])} + start-up {a['hardware']['startup_minutes']:.0f} min = "
                         f"{_hours(f['seconds_wall'])}; snapshot conversions {_hours(f['seconds_converting'])}, beside "
                         "training on the CPU")
            lines.append(f"  cost: {f['gpu_hours']:.1f} GPU-hours x {a['hardware']['price_per_gpu_hour']} USD = "
                         f"{f['cost']:,.0f} USD")
    if "rlvr" in stages:
        f = plan.figures["rlvr"]
        lines += ["", "RLVR (open-instruct grpo_fast.py)" if hw else "RLVR (TRL GRPO, CPU)",
                  f"  prompts {f['prompts']:,} x {f['epochs']} epoch(s); {f['prompts_per_step']} prompts x "
                  f"{f['samples_per_prompt']} samples per step; {f['optimizer_steps']:,} optimizer steps",
                  f"  samples generated {f['samples_generated']:,}; tokens generated {f['tokens_generated']:,.0f} "
                  f"(mean response {f['response_tokens_mean']:.0f} tokens, assumed); tokens trained "
                  f"{f['tokens_trained']:,.0f}; snapshots {f['checkpoints']}; in-loop evaluations {f['evaluations']}"]
        if hw is not None and plan.rlvr is not None:
            e, w = f["expected"], f["worst"]
            engine = vllm_engine(plan.shape, hw, s, a)
            lines.append(f"  disk: {f['checkpoints']} HF snapshots x {_gib(f['checkpoint_bytes'])} + latest training "
                         f"state {_gib(f['state_bytes'])} + final model = {_gib(f['disk_bytes'])}")
            lines += _memory_lines(f"memory, {layout.rlvr_learners_per_node} learners per node", plan.rlvr, hw,
                                   a["memory"]["headroom"])
            lines.append(f"  memory, vLLM engine: claims {_gib(engine['claimed'])} (utilisation 0.9); weights "
                         f"{_gib(engine['weights'])}; KV cache {_gib(engine['kv_cache'])} = "
                         f"{engine['kv_tokens']:,.0f} tokens ({engine['sequences']:,.0f} full-length sequences)")
            lines.append(f"  time: generation {_hours(e['seconds_generation'])} ({layout.rlvr_vllm_engines} engine(s) at "
                         f"{vllm_rate(hw, a):,.0f} tokens/s each, from {a['throughput']['vllm_tokens_per_second_a100']:,.0f} on an A100 "
                         "scaled by memory bandwidth), "
                         f"training {_hours(e['seconds_training'])} ({e['flops']:.2e} FLOP at "
                         f"{a['throughput']['rl_learner_mfu']:.0%} MFU), overlapped; + weight syncs "
                         f"{_hours(e['seconds_weight_sync'])} + evaluation {_hours(e['seconds_evaluation'])} + "
                         f"writes {_hours(e['seconds_writing'])} + start-up = {_hours(e['seconds_wall'])}")
            lines.append(f"  pilot before RL: {s.rlvr['pilot_prompts']} prompts x {s.rlvr['samples_per_prompt']} samples, "
                         f"{f['pilot']['tokens']:,.0f} tokens, {_hours(f['pilot']['seconds'])} on one GPU (refused "
                         f"below {s.rlvr['pilot_min_informative_groups']:.0%} informative groups)")
            lines.append(f"  worst case (every response {s.shared['max_response_length']} tokens): "
                         f"{_hours(w['seconds_wall'])}")
            lines.append(f"  cost: {e['gpu_hours']:.1f} GPU-hours x {a['hardware']['price_per_gpu_hour']} USD = "
                         f"{e['cost']:,.0f} USD (worst case {w['cost']:,.0f} USD)")
    if "eval" in stages and hw is not None and plan.shape is not None:
        engine = eval_engine(s)
        lines += ["", f"Evaluation ({engine}; {s.eval['limit'] or s.shared['test_size']:,} test problems, mean response "
                      f"{s.shared['max_response_length'] * a['lengths']['rl_response_fill']:.0f} tokens assumed, "
                      f"{s.eval['samples']} samples per problem at temperature {s.eval['temperature']})"]
        for gpus in sorted({1, layout.gpus_per_node}):
            for case, f in eval_figures(plan, a, gpus).items():
                lines.append(f"  {gpus} x {hw.gpu_name}, {case}: {f['tokens']:,.0f} tokens, {_hours(f['seconds_wall'])}"
                             + (f", {f['gpu_hours']:.1f} GPU-hours, {f['cost']:,.0f} USD" if case == "total" else ""))
        lines.append(f"  (base, SFT and RLVR; checkpoints: every snapshot of both arms; one replica per GPU; loading "
                     f"{a['throughput']['eval_model_load_minutes']:.0f} min per model and replica set)")
    if hw is not None:
        lines += ["", "Assumptions (configs/plan.toml): " + "; ".join(
            [f"{k} {v}" for k, v in a["throughput"].items()]
            + [f"{k} {v}" for k, v in a["lengths"].items() if k != "chars_per_token" or "characters" in plan.data.counted_with]
            + [f"{k} {v}" for k, v in a["hardware"].items() if k not in ("gpu_name", "gpu_memory_gib")]),
            "Estimates, not measurements: compare them with the first run's W&B throughput and adjust the file."]
    return "\n".join(lines) + "\n"


def _free_disk(settings: settings_mod.Settings) -> float | None:
    """Free bytes on the file system the run folders go to (its nearest existing parent)."""
    folder = settings.output_root
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        return float(shutil.disk_usage(folder).free)
    except OSError:
        return None


def refusals(plan: Plan, stages: tuple[str, ...]) -> list[str]:
    """Why the layout cannot run on these cards (empty when it can)."""
    if plan.hardware is None:
        return []
    a = plan.assumptions
    hw, headroom, problems = plan.hardware, a["memory"]["headroom"], []
    if "sft" in stages and not plan.sft.fits:
        problems.append(f"SFT needs {_gib(sum(plan.sft.memory.values()))} per GPU even at ZeRO-3 with one sequence "
                        f"per micro-batch; the {hw.memory_gib:.0f} GiB cards leave {headroom:.0%} headroom only "
                        "below that")
    if "rlvr" in stages and plan.rlvr is not None:
        if not plan.rlvr.fits:
            problems.append(f"each of the {plan.layout.rlvr_learners_per_node} GRPO learners per node needs "
                            f"{_gib(sum(plan.rlvr.memory.values()))} even at ZeRO-3, more than "
                            f"{hw.memory_gib:.0f} GiB cards hold with {headroom:.0%} headroom")
        engine = vllm_engine(plan.shape, hw, plan.settings, a)
        if engine["sequences"] < 1:
            problems.append(f"a vLLM engine cannot hold the {_gib(engine['weights'])} of weights and one sequence's "
                            f"KV cache in {_gib(engine['claimed'])}")
    return problems


def describe(plan: Plan) -> str:
    """One line for the launcher's log: how the layout splits the work."""
    layout, s, c = plan.layout, plan.settings, plan.sft
    text = (f"layout: {layout.gpus_per_node} GPU(s) x {layout.nodes} node(s); SFT {layout.sft_processes} processes x "
            f"{c.per_device_batch_size} per device x {c.gradient_accumulation_steps} accumulation = effective batch "
            f"{s.sft['effective_batch_size']}")
    if plan.rlvr is None:
        return text
    return (text + f", ZeRO-{c.stage}; GRPO {layout.rlvr_learners_per_node} learners + "
            f"{layout.rlvr_vllm_engines // layout.nodes} vLLM engine(s) per node, ZeRO-{plan.rlvr.stage}")


def shell_exports(plan: Plan) -> str:
    values = {
        "SFT_PER_DEVICE_BATCH_SIZE": plan.sft.per_device_batch_size,
        "SFT_GRADIENT_ACCUMULATION_STEPS": plan.sft.gradient_accumulation_steps,
        "SFT_DEEPSPEED_STAGE": plan.sft.stage,
        "SFT_DEEPSPEED_CONFIG": SFT_ZERO_CONFIGS.get(plan.sft.stage, ""),
        "RLVR_DEEPSPEED_STAGE": plan.rlvr.stage if plan.rlvr else 0,
        # grpo_fast loads a reference model whenever load_ref_policy is true, whatever beta is; beta 0 needs none
        "RLVR_LOAD_REF_POLICY": "true" if plan.settings.rlvr["beta"] > 0 else "false",
    }
    return "".join(f"export {k}={shlex.quote(str(v))}\n" for k, v in values.items())


@cli
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sft_vs_rlvr.launch.plan", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["show", "export"])
    parser.add_argument("--profile", default=os.environ.get("PROFILE", "llama8b"))
    parser.add_argument("--stage", choices=["sft", "rlvr", "eval", "all"], default="all")
    parser.add_argument("--data-dir", default=os.environ.get("DATA_DIR") or None,
                        help="prepared data to count tokens in (default: the current experiment's, when prepared)")
    args = parser.parse_args(argv)
    settings = settings_mod.load(args.profile)
    stages = ("sft", "rlvr", "eval") if args.stage == "all" else (args.stage,)
    data_dir = Path(args.data_dir) if args.data_dir else _current_data_dir(settings)
    gpus = None
    if stages == ("eval",) and settings.profile != "tiny" and not os.environ.get("NUM_GPUS") and not layouts.visible_gpus():
        # the evaluation estimate does not depend on the training layout; any valid one will do
        gpus = min(int(k) for k in layouts.load_table(settings))
    plan = build(settings, data_dir, with_data=args.command == "show", gpus_per_node=gpus)
    if args.command == "show":
        sys.stdout.write(render(plan, stages))
        for problem in refusals(plan, stages):
            print(f"warning: {problem}; a launch would be refused (FORCE=1 overrides)", file=sys.stdout)
        return 0
    problems = refusals(plan, stages)
    if problems and os.environ.get("FORCE") != "1":
        raise UserError(f"{problems[0]}; use more GPUs (NUM_GPUS, NUM_NODES) or larger cards, or FORCE=1 if you "
                        "know the estimate is wrong (see --plan)")
    for problem in problems:
        print(f"warning: FORCE=1: launching although {problem}", file=sys.stderr)
    print(describe(plan), file=sys.stderr)
    sys.stdout.write(layouts.shell_exports(plan.layout) + shell_exports(plan))
    return 0


def _current_data_dir(settings: settings_mod.Settings) -> Path | None:
    from sft_vs_rlvr import runs
    return settings.output_root / runs.experiment_id(settings) / "data"


if __name__ == "__main__":
    sys.exit(main())
