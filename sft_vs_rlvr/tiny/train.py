"""The tiny profile's trainers: TRL's SFTTrainer and GRPOTrainer, on the GPU where there is one, else the CPU.

The CPU stand-in for open-instruct's finetune.py and grpo_fast.py: same prepared data, same
prompt template (carried by the base model's tokenizer), seed, lengths and W&B project and group
(set by the stage runner through WANDB_* variables). Writes into --output-dir:
  model/                     the final Hugging Face model folder (with tokenizer and chat template)
  checkpoints/checkpoint-N/  intermediate model snapshots (weights only, for the learning curves)
  checkpoints.json           [{"step", "path", "examples_seen"}]
  training_device.json       {"device": "cuda" or "cpu", "gpus": 1 or 0, "name": ...}: what trained, which
                             the manifest records and the report's budget bills (GPU-hours only for a GPU)

The tiny model trains in float32 on either device (TRL's bf16 default is turned off), so a GPU run and a
CPU run of the miniature differ only by kernel rounding.

Usage: python -m sft_vs_rlvr.tiny.train {sft,rlvr} --model DIR --train-file FILE --output-dir DIR [options]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

from sft_vs_rlvr import atomic, generation
from sft_vs_rlvr.errors import UserError, cli
from sft_vs_rlvr.evaluate import grading


def training_device(cuda_available: bool | None = None) -> dict:
    """The device the trainers use: the first GPU when CUDA is available, else the CPU."""
    import torch

    if cuda_available is None:
        cuda_available = torch.cuda.is_available()
    if cuda_available:
        return {"device": "cuda", "gpus": 1, "name": torch.cuda.get_device_name(0)}
    return {"device": "cpu", "gpus": 0, "name": "cpu"}


def _common_config(args, total_steps: int, device: dict) -> dict:
    save_steps = max(1, math.ceil(total_steps / args.checkpoints)) if args.checkpoints > 0 else total_steps
    return dict(
        output_dir=str(Path(args.output_dir) / "checkpoints"),
        seed=args.seed, data_seed=args.seed,
        learning_rate=args.learning_rate, num_train_epochs=args.epochs,
        lr_scheduler_type="linear", warmup_steps=args.warmup_ratio,  # a float < 1 is a ratio (transformers 5)
        per_device_train_batch_size=args.per_device_batch_size,
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        logging_steps=1, report_to=["wandb"] if os.environ.get("WANDB_MODE") != "disabled" else [],
        run_name=os.environ.get("WANDB_NAME"),
        save_strategy="steps" if args.checkpoints > 0 else "no", save_steps=save_steps, save_only_model=True,
        # float32 on both devices: TRL defaults to bf16, which fails on CPU (cpu-feasibility §3)
        use_cpu=device["device"] == "cpu", bf16=False, fp16=False,
        gradient_checkpointing=False,  # a 1M-parameter model needs no activation saving
        dataloader_num_workers=0, disable_tqdm=True,
    )


def _model_and_tokenizer(args):
    """The starting model and its tokenizer, with the generation contract applied (generation.py): BOS first in
    the template when --add-bos (as open-instruct's --add_bos), and the stop strings as extra EOS ids, which
    TRL's GRPOTrainer both stops on and masks after (it reads model.generation_config.eos_token_id)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(args.model)
    contract = generation.Contract(tuple(args.stop_string), args.add_bos)
    generation.check_tokenizer(tokenizer, contract, args.model)
    tokenizer.chat_template = generation.prompt_template(tokenizer.chat_template, contract.add_bos)
    model = AutoModelForCausalLM.from_pretrained(args.model)
    stop_ids = generation.single_token_ids(tokenizer, contract.stop_strings, args.model)
    model.generation_config.eos_token_id = [tokenizer.eos_token_id, *stop_ids]
    return model, tokenizer


def _train_sft(args, device: dict) -> tuple[object, int]:
    from datasets import Dataset, disable_progress_bars

    disable_progress_bars()
    from trl import SFTConfig, SFTTrainer

    rows = atomic.read_jsonl(args.train_file)
    # Prompt-completion rows: loss on the assistant turn only, as open-instruct's SFT masks user turns.
    data = Dataset.from_list([{"prompt": r["messages"][:-1], "completion": r["messages"][-1:]} for r in rows])
    per_step = args.per_device_batch_size * args.gradient_accumulation_steps
    total = math.ceil(len(rows) / per_step) * args.epochs
    config = SFTConfig(max_length=args.max_seq_length, completion_only_loss=True, packing=False,
                       **_common_config(args, total, device))
    model, tokenizer = _model_and_tokenizer(args)
    trainer = SFTTrainer(model=model, processing_class=tokenizer, args=config, train_dataset=data)
    trainer.train()
    return trainer, per_step


def gsm8k_reward(completions, ground_truth, **_) -> list[float]:
    """The RL reward: open-instruct's GSM8K verifier (grading.verifier_grade), 1.0 or 0.0."""
    texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
    return [float(grading.verifier_grade(text, gold).correct) for text, gold in zip(texts, ground_truth)]


def _train_rlvr(args, device: dict) -> tuple[object, int]:
    from datasets import Dataset, disable_progress_bars

    disable_progress_bars()
    from trl import GRPOConfig, GRPOTrainer

    rows = atomic.read_jsonl(args.train_file)
    data = Dataset.from_list([{"prompt": r["messages"], "ground_truth": r["ground_truth"]} for r in rows])
    completions_per_step = args.prompts_per_step * args.samples_per_prompt
    total = math.ceil(len(rows) / args.prompts_per_step) * args.epochs
    config = GRPOConfig(
        num_generations=args.samples_per_prompt, max_completion_length=args.max_response_length,
        temperature=args.temperature, beta=args.beta, steps_per_generation=1,
        **{**_common_config(args, total, device), "per_device_train_batch_size": completions_per_step,
           "gradient_accumulation_steps": 1},
    )
    model, tokenizer = _model_and_tokenizer(args)
    trainer = GRPOTrainer(model=model, processing_class=tokenizer, reward_funcs=[gsm8k_reward], args=config,
                          train_dataset=data)
    trainer.train()
    return trainer, args.prompts_per_step


def _index_checkpoints(output_dir: Path, examples_per_step: int) -> list[dict]:
    entries = []
    for folder in sorted((output_dir / "checkpoints").glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1])):
        step = int(folder.name.split("-")[1])
        entries.append({"step": step, "path": str(folder.relative_to(output_dir)),
                        "examples_seen": step * examples_per_step})
    return entries


@cli
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sft_vs_rlvr.tiny.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("arm", choices=["sft", "rlvr"])
    parser.add_argument("--model", required=True, help="base model folder")
    parser.add_argument("--train-file", required=True)
    parser.add_argument("--output-dir", required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--learning-rate", type=float, required=True)
    parser.add_argument("--epochs", type=int, required=True)
    parser.add_argument("--checkpoints", type=int, default=0, help="intermediate snapshots to keep")
    parser.add_argument("--warmup-ratio", type=float, default=0.0)
    parser.add_argument("--per-device-batch-size", type=int, default=16, help="SFT: sequences per step")
    parser.add_argument("--gradient-accumulation-steps", type=int, default=1)
    parser.add_argument("--max-seq-length", type=int, default=256, help="SFT: prompt + target tokens")
    parser.add_argument("--prompts-per-step", type=int, default=16, help="RLVR: prompts per optimizer step")
    parser.add_argument("--samples-per-prompt", type=int, default=8, help="RLVR: completions per prompt (group)")
    parser.add_argument("--max-response-length", type=int, default=64, help="RLVR: generated tokens")
    parser.add_argument("--beta", type=float, default=0.0, help="RLVR: KL coefficient")
    parser.add_argument("--temperature", type=float, default=1.0, help="RLVR: sampling temperature")
    parser.add_argument("--stop-string", action="append", default=[],
                        help="the generation contract's stop strings (repeat); the tiny trainer needs single tokens")
    parser.add_argument("--add-bos", action="store_true", help="the generation contract: BOS first in every prompt")
    args = parser.parse_args(argv)
    for path in (args.model, args.train_file):
        if not Path(path).exists():
            raise UserError(f"{path} does not exist; run the stage through its launcher, which prepares it")
    output_dir = Path(args.output_dir)
    if (output_dir / "model").exists():
        raise UserError(f"{output_dir / 'model'} exists already; use a new output folder (or --fresh)")

    import torch
    torch.manual_seed(args.seed)
    device = training_device()
    print(f"training on {device['name']} ({device['device']})")
    atomic.write_json(output_dir / "training_device.json", device)
    trainer, examples_per_step = (_train_sft if args.arm == "sft" else _train_rlvr)(args, device)
    trainer.save_model(str(output_dir / "model"))
    trainer.processing_class.save_pretrained(str(output_dir / "model"))
    atomic.write_json(output_dir / "checkpoints.json", _index_checkpoints(output_dir, examples_per_step))
    print(json.dumps({"final_model": str(output_dir / "model"), "steps": trainer.state.global_step}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
