#!/usr/bin/env python3
"""Calibrate --plan on your own card in minutes: measured throughput of a Llama-3.1-8B-shaped model.

Random weights (the real ones need a Hub download), bf16, transformers with sdpa attention, on one GPU:
  train     forward + backward with gradient checkpointing (no optimizer step, no communication) at the token
            counts of the SFT arm's packed micro-batches and of larger ones: tokens/s and MFU on 6 N per token
  forward   forward alone (what the RL learners' log-probability passes cost): tokens/s
  generate  transformers' generate(), greedy, batch 64 and 256: tokens/s (the evaluator's fallback engine)
  load      save the model folder, then from_pretrained back onto the GPU: seconds (a lower bound for the
            evaluation's per-model loading; vLLM adds CUDA-graph capture)
  cap       the evaluator's transformers engine on that folder, 16 samples per problem: the memory cap it picks
            and the peak memory it reaches against the card's free memory
  convert   an 8B-shaped ZeRO-2 training state (the bf16 module file finetune.py's states hold) turned into a
            model folder by the snapshot converter: seconds and peak CPU memory

Prints each figure and the configs/plan.toml lines to paste, marked measured with the card and the date.
Nothing is asserted: these are measurements. Needs a GPU with about 40 GiB free and 50 GB of free disk (load,
cap, convert).

Usage: python benchmarks/calibrate_gpu.py [--only train,forward,generate,load,cap,convert] [--scratch DIR]
       python benchmarks/calibrate_gpu.py --smoke     every section on a small model on the CPU (a check of
                                                      this script, not a measurement; tests/test_benchmarks.py)
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from sft_vs_rlvr.launch import plan  # noqa: E402  (after the path, so the checkout's package is the one used)

DEVICE = "cuda"
SHAPE = {"hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32,
         "num_key_value_heads": 8, "vocab_size": 128256, "max_position_embeddings": 4096, "rope_theta": 500000.0,
         "tie_word_embeddings": False}


TRAIN_SIZES = ((768, 768), (2048, 2048), (8192, 2048), (16384, 2048))  # tokens per step, sequence length
SMOKE_SHAPE = {**SHAPE, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
               "num_key_value_heads": 2, "vocab_size": 1024}


def llama8b():
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(**SHAPE, attn_implementation="sdpa", dtype="bfloat16")
    with torch.device(DEVICE):
        model = LlamaForCausalLM(config).to(torch.bfloat16)
    return model


def sync() -> None:
    if DEVICE == "cuda":
        torch.cuda.synchronize()


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    sync()
    started = time.perf_counter()
    for _ in range(repeats):
        fn()
    sync()
    return (time.perf_counter() - started) / repeats


def train_and_forward(model, peak_tflops: float, parameters: float, figures: dict) -> None:
    model.gradient_checkpointing_enable()
    model.config.use_cache = False
    for tokens, sequence in TRAIN_SIZES:
        batch = torch.randint(0, SHAPE["vocab_size"], (tokens // sequence, sequence), device=DEVICE)

        def step():
            model(input_ids=batch, labels=batch).loss.backward()
            model.zero_grad(set_to_none=True)

        seconds = timed(step, 3)
        rate = tokens / seconds
        figures[f"train_{tokens}"] = {"tokens_per_second": rate, "mfu": 6 * parameters * rate / (peak_tflops * 1e12)}
        print(f"train (forward + backward, checkpointing) {tokens} tokens per step: {rate:,.0f} tokens/s, "
              f"MFU {figures[f'train_{tokens}']['mfu']:.2f}", flush=True)
    model.gradient_checkpointing_disable()
    batch = torch.randint(0, SHAPE["vocab_size"], (8, 2048), device=DEVICE)
    with torch.inference_mode():
        seconds = timed(lambda: model(input_ids=batch), 3)
    figures["forward"] = {"tokens_per_second": batch.numel() / seconds}
    print(f"forward alone: {figures['forward']['tokens_per_second']:,.0f} tokens/s", flush=True)


def generate(model, figures: dict) -> None:
    for batch in (64, 256):
        prompts = torch.randint(0, SHAPE["vocab_size"], (batch, 150), device=DEVICE)
        with torch.inference_mode():
            started = time.perf_counter()
            model.generate(input_ids=prompts, attention_mask=torch.ones_like(prompts), max_new_tokens=128,
                           min_new_tokens=128, do_sample=False, pad_token_id=0)
            sync()
        rate = batch * 128 / (time.perf_counter() - started)
        figures[f"generate_{batch}"] = {"tokens_per_second": rate}
        print(f"transformers generate, batch {batch}: {rate:,.0f} tokens/s", flush=True)


def save_and_load(model, folder: Path, figures: dict) -> None:
    from tokenizers import Tokenizer, models
    from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

    started = time.perf_counter()
    model.save_pretrained(folder)
    backend = Tokenizer(models.WordLevel({f"t{i}": i for i in range(SHAPE["vocab_size"] - 2)} | {
        "<eos>": SHAPE["vocab_size"] - 2, "<pad>": SHAPE["vocab_size"] - 1}, unk_token="<pad>"))
    PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<eos>", pad_token="<pad>").save_pretrained(folder)
    figures["save_seconds"] = time.perf_counter() - started
    started = time.perf_counter()
    loaded = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.bfloat16).to(DEVICE)
    sync()
    figures["load_seconds"] = time.perf_counter() - started
    print(f"save {figures['save_seconds']:.0f} s; from_pretrained onto the GPU {figures['load_seconds']:.0f} s",
          flush=True)
    del loaded


def cap(folder: Path, figures: dict) -> None:
    from sft_vs_rlvr.evaluate import engines

    if DEVICE == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    engine = engines.TransformersEngine(str(folder), batch_size=64, max_new_tokens=256, device=DEVICE)
    free_before, total = torch.cuda.mem_get_info() if DEVICE == "cuda" else (0, 0)
    prompts = [[int(t) for t in torch.randint(0, 1000, (150,))] for _ in range(16)]
    decoding = engines.sampled(16, 0.6, 1.0, 256, 42)
    started = time.perf_counter()
    done = {}
    engine.generate(prompts, decoding, (), lambda batch: done.update(batch))
    sync()
    peak = torch.cuda.max_memory_allocated() if DEVICE == "cuda" else 0
    weights = sum(p.numel() * p.element_size() for p in engine.model.parameters())
    figures["cap"] = {"sequences_per_call": engine.cap, "free_gib_after_load": free_before / 2**30,
                      "peak_gib": peak / 2**30, "weights_gib": weights / 2**30, "total_gib": total / 2**30,
                      "seconds": time.perf_counter() - started, "problems": len(done),
                      "tokens": sum(c.tokens for cs in done.values() for c in cs)}
    print(f"transformers engine, 16 problems x 16 samples x up to 256 tokens: {engine.cap} sequences per call; "
          f"peak {peak / 2**30:.1f} GiB of {total / 2**30:.0f} GiB (weights {weights / 2**30:.1f} GiB, free after "
          f"loading {free_before / 2**30:.1f} GiB); {figures['cap']['tokens'] / figures['cap']['seconds']:,.0f} "
          "tokens/s", flush=True)
    del engine
    if DEVICE == "cuda":
        torch.cuda.empty_cache()


def convert(folder: Path, scratch: Path, figures: dict) -> None:
    from safetensors.torch import load_file

    state = scratch / "state" / "step_1"
    (state / "pytorch_model").mkdir(parents=True)
    module = {}
    for path in sorted(folder.glob("model*.safetensors")):
        module.update(load_file(path))
    started = time.perf_counter()
    torch.save({"module": module, "param_shapes": [{k: v.shape for k, v in module.items()}]},
               state / "pytorch_model" / "mp_rank_00_model_states.pt")
    figures["write_module_state_seconds"] = time.perf_counter() - started
    del module
    out = scratch / "snapshot"
    command = [sys.executable, "-m", "sft_vs_rlvr.launch.snapshots", "convert", "--config-from", str(folder),
               "--tokenizer-from", str(folder), "--chat-template", "tulu", "--add-bos", str(state), str(out)]
    started = time.perf_counter()
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    peak_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
    if result.returncode != 0:
        print(f"convert failed: {result.stderr.strip().splitlines()[-1:]}", flush=True)
        return
    figures["convert"] = {"seconds": seconds, "peak_rss_gib": peak_rss,
                          "bytes": sum(p.stat().st_size for p in out.glob("*.safetensors"))}
    print(f"ZeRO-2 state (bf16 module, {figures['convert']['bytes'] / 2**30:.1f} GiB) -> verified model folder: "
          f"{seconds:.0f} s, peak CPU memory {peak_rss:.1f} GiB", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="train,forward,generate,load,cap,convert")
    parser.add_argument("--scratch", default=None, help="folder for the model and state files (deleted after)")
    parser.add_argument("--out", default=None, help="write the figures as JSON here too")
    parser.add_argument("--smoke", action="store_true", help="a small model on the CPU: checks the script only")
    parser.add_argument("--quick", action="store_true", help="train at 768 and 16,384 tokens per step only")
    args = parser.parse_args()
    global TRAIN_SIZES
    if args.quick:
        TRAIN_SIZES = ((768, 768), (16384, 2048))
    wanted = set(args.only.split(","))
    global DEVICE
    if args.smoke:
        DEVICE = "cpu"
        SHAPE.update(SMOKE_SHAPE)
    elif not torch.cuda.is_available():
        print("calibrate_gpu: no GPU visible; run this on the GPU box", file=sys.stderr)
        return 2
    name = torch.cuda.get_device_name(0) if DEVICE == "cuda" else "NVIDIA H200 (smoke run on the CPU)"
    assumptions = plan.load_assumptions(REPO / "configs")
    peak = next((v for k, v in assumptions["peak_bf16_tflops"].items() if k in name), None)
    if peak is None:
        print(f"calibrate_gpu: no bf16 peak known for {name}; add it under [peak_bf16_tflops] in configs/plan.toml",
              file=sys.stderr)
        return 2
    figures: dict = {"gpu": name, "date": dt.date.today().isoformat(), "torch": torch.__version__,
                     "peak_bf16_tflops": peak}
    scratch = Path(args.scratch or tempfile.mkdtemp(prefix="calibrate-"))
    scratch.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    try:
        model = llama8b()
        parameters = sum(p.numel() for p in model.parameters())
        figures["parameters"] = parameters
        print(f"{name}: Llama-3.1-8B-shaped model, {parameters / 1e9:.2f} B parameters, random bf16 weights", flush=True)
        if wanted & {"train", "forward"}:
            train_and_forward(model, peak, parameters, figures)
        if "generate" in wanted:
            generate(model, figures)
        folder = scratch / "model"
        if wanted & {"load", "cap", "convert"}:
            save_and_load(model, folder, figures)
        del model
        if DEVICE == "cuda":
            torch.cuda.empty_cache()
        if "cap" in wanted:
            cap(folder, figures)
        if "convert" in wanted:
            convert(folder, scratch, figures)
    finally:
        if not args.scratch:
            shutil.rmtree(scratch, ignore_errors=True)
    figures["seconds"] = time.perf_counter() - started
    stamp = f"measured: {name}, Llama-3.1-8B shape, {figures['date']}, benchmarks/calibrate_gpu.py"
    print("\nconfigs/plan.toml, measured on this card (the MFU figures leave out the optimizer step and ZeRO "
          "communication):")
    if "train_768" in figures:
        print(f"sft_mfu = {figures['train_768']['mfu']:.2f}  # {stamp}; packed micro-batches of ~768 tokens")
        if "train_16384" in figures:
            print(f"# at 16,384 tokens per step: MFU {figures['train_16384']['mfu']:.2f}")
    if "generate_64" in figures:
        print(f"transformers_tokens_per_second = {figures['generate_64']['tokens_per_second']:.0f}  # {stamp}: "
              "batch 64 (CPU-bound kernel launches: about the same on any card)")
    print(f"calibration: {figures['seconds']:.0f} s")
    if args.out:
        Path(args.out).write_text(json.dumps(figures, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
