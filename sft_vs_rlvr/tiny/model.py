"""The tiny profile's "base model": a small Llama built offline, cached outside the repository.

Recipe: a byte-level BPE tokenizer (digits split one by one, as arithmetic needs) trained on
generated problems; a 4-layer Llama; the shared chat template and EOS handling like the real
path's; then a short warm-up (next-token training on *warmup*-split problems, disjoint from
train and test by construction) so the base solves some problems. A random model would give
GRPO all-zero rewards and nothing to learn (cpu-feasibility.md §3). The warm-up text mixes two
solution styles: the GSM8K one (ending in `#### N`) and, for most problems, a chatty one with no
answer line and a closing remark holding another number (synth_gsm8k.chatty), so the base can
often do the arithmetic but usually ends on a wrong last number: both arms have room to improve,
the first gain being the answer format, as with a real base model.

The folder is keyed by a hash of the recipe, built in a temporary folder and renamed into place,
so a half-built model is never used. Cache root: $SFT_VS_RLVR_CACHE, else
$XDG_CACHE_HOME/sft-vs-rlvr, else ~/.cache/sft-vs-rlvr.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import shutil
import tempfile
from pathlib import Path

from sft_vs_rlvr import prompts
from sft_vs_rlvr.cache import cache_root
from sft_vs_rlvr.tiny import synth_gsm8k

TINY_MODEL_NAME = "tiny-llama-gsm"
EOS, PAD = "<|endoftext|>", "<|pad|>"
SPECIAL_TOKENS = [EOS, PAD, "<|system|>", "<|user|>", "<|assistant|>"]

RECIPE = {
    "recipe_version": 2,
    "generator_version": synth_gsm8k.GENERATOR_VERSION,
    "vocab_size": 1024,
    "tokenizer_corpus": 3000,
    "hidden_size": 128,
    "intermediate_size": 256,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 256,
    "warmup_problems": 3000,
    # Share of the warm-up text written in the chatty style (synth_gsm8k.chatty: no '#### N' line, a closing remark
    # with another number), the rest in the GSM8K style. Most of the base's greedy answers then end on a wrong last
    # number, as a real base model often ignores the answer format; RL's first gain is the format (issue 13).
    "warmup_chatty_share": 0.7,
    # 400 x 64 texts (about 8 passes over 3,000 problems), cosine decay: enough for the base to do some of the
    # arithmetic by skill (60 x 32 gave 4.5% greedy, mostly right numbers from wrong working; 280 x 64 left RLVR
    # only +8 points over the base); 160 s on 2 idle cores.
    "warmup_steps": 400,
    "warmup_batch_size": 64,
    "warmup_learning_rate": 3e-3,
    "warmup_lr_warmup_steps": 10,
    # Loss on the assistant turn only: the warm-up goes to solving, not to reproducing the prompt (with the loss on
    # the whole text, RL pushed the base into writing the instruction's "'#### <number>'" back).
    "warmup_loss": "completion",
}


# The base model is the same for every seed of an experiment, as Llama 3.1 8B is on the GPU path: the
# experiment's seed (SEED) governs training and sampling, not which base the arms start from.
BASE_SEED = 42


def model_dir(chat_template: str, instruction: str) -> Path:
    key = json.dumps({"recipe": RECIPE, "seed": BASE_SEED, "template": chat_template, "instruction": instruction},
                     sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return cache_root() / "models" / f"{TINY_MODEL_NAME}-{digest}"


def ensure(chat_template: str, instruction: str, log=print) -> Path:
    """The cached tiny base model folder, built first if absent."""
    target = model_dir(chat_template, instruction)
    if (target / "config.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    log(f"tiny model: building {target.name} (first use; cached in {target.parent})")
    scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        _build(scratch, BASE_SEED, chat_template, instruction, log)
        try:
            os.rename(scratch, target)
        except OSError:
            if not (target / "config.json").is_file():  # lost a race to another builder: theirs is as good
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


def _chat_texts(problems, template: str, instruction: str) -> list[str]:
    return [
        prompts.render(template, [
            {"role": "user", "content": prompts.user_content(p.question, instruction)},
            {"role": "assistant", "content": p.solution},
        ], eos_token=EOS, add_generation_prompt=False)
        for p in problems
    ]


def _build_tokenizer(texts: list[str]):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=RECIPE["vocab_size"], special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS, pad_token=PAD, bos_token=EOS,
                                   additional_special_tokens=SPECIAL_TOKENS[2:])


def _build(out: Path, seed: int, chat_template: str, instruction: str, log) -> None:
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    template = prompts.template_text(chat_template)
    corpus = synth_gsm8k.generate("warmup", RECIPE["warmup_problems"], seed)
    style = random.Random(f"warmup-style/{seed}")
    corpus = [synth_gsm8k.chatty(p, style) if style.random() < RECIPE["warmup_chatty_share"] else p for p in corpus]
    texts = _chat_texts(corpus, template, instruction)
    tokenizer = _build_tokenizer(texts[: RECIPE["tokenizer_corpus"]])
    tokenizer.chat_template = template

    config = LlamaConfig(
        vocab_size=len(tokenizer), tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        **{k: RECIPE[k] for k in ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                                  "num_key_value_heads", "max_position_embeddings")},
    )
    model = LlamaForCausalLM(config)
    tokenizer.padding_side = "right"  # training: positions start at 0 on the left
    _warm_up(model, tokenizer, texts, seed, log)
    tokenizer.padding_side = "left"  # saved for generation: decoder-only models pad on the left
    model.generation_config = GenerationConfig(
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id, do_sample=False,
    )
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    # torch's CPU thread count changes the float rounding of the warm-up, so a base built with 1 thread and one
    # built with 2 differ slightly (their demo numbers by a few points); the folder says which it was.
    (out / "tiny_recipe.json").write_text(json.dumps({**RECIPE, "seed": seed, "torch_threads": torch.get_num_threads()},
                                                     indent=2, sort_keys=True))


def _warm_up(model, tokenizer, texts: list[str], seed: int, log) -> None:
    """Plain next-token training on warm-up problems: the tiny stand-in for pre-training."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    encoded = tokenizer(texts, padding=True, return_tensors="pt")
    ids, mask = encoded["input_ids"], encoded["attention_mask"]
    labels = ids.masked_fill(mask == 0, -100)
    if RECIPE["warmup_loss"] == "completion":  # loss on the assistant turn only (after the <|assistant|> token)
        turn = ids == tokenizer.convert_tokens_to_ids("<|assistant|>")
        labels = labels.masked_fill(turn.cumsum(dim=1) == 0, -100).masked_fill(turn, -100)
    steps, ramp = RECIPE["warmup_steps"], RECIPE["warmup_lr_warmup_steps"]
    optimizer = torch.optim.AdamW(model.parameters(), lr=RECIPE["warmup_learning_rate"])
    # Linear ramp, then cosine decay to 0: a short run ends at a lower loss than at a flat rate.
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: (step + 1) / ramp if step < ramp else
                                                  0.5 * (1 + math.cos(math.pi * (step - ramp) / max(1, steps - ramp))))
    model.train()
    for step in range(steps):
        batch = torch.randint(0, len(texts), (RECIPE["warmup_batch_size"],), generator=generator)
        width = int(mask[batch].sum(dim=1).max())  # right padding: the batch's own longest text, not the corpus's
        loss = model(input_ids=ids[batch, :width], attention_mask=mask[batch, :width],
                     labels=labels[batch, :width]).loss
        loss.backward()
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
        if step % 50 == 0 or step == RECIPE["warmup_steps"] - 1:
            log(f"tiny model: warm-up step {step + 1}/{RECIPE['warmup_steps']} loss {loss.item():.3f}")
    model.eval()


def main(argv: list[str] | None = None) -> int:
    """`python -m sft_vs_rlvr.tiny.model ensure`: print the cached model folder, building it first if absent."""
    import argparse
    import sys

    from sft_vs_rlvr.settings import load

    parser = argparse.ArgumentParser(prog="python -m sft_vs_rlvr.tiny.model", description=main.__doc__)
    parser.add_argument("command", choices=["ensure", "path"])
    parser.add_argument("--profile", default="tiny")
    args = parser.parse_args(argv)
    shared = load(args.profile).shared
    keys = (shared["chat_template"], shared["instruction"])
    if args.command == "path":
        print(model_dir(*keys))
    else:
        print(ensure(*keys, log=lambda message: print(message, file=sys.stderr)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
