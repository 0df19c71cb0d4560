"""The tokenizer both arms train with: the base model's own, with a pad token the model already has.

open-instruct's tokenizer loader (get_tokenizer_tulu_v2_2, dataset_transformation.py:783-833 at v0.3.0)
adds a new "<pad>" token to a tokenizer that has none. For Llama 3.1 that is id 128256, one past the
embedding matrix. finetune.py then resizes the embeddings (to 128264); grpo_fast.py never resizes, yet
feeds the pad id to the model in warmup_for_weight_sync (grpo_fast.py:542-551) and when it pads
micro-batches: an index out of range on the GPU before the first GRPO step from the base model.

Llama 3.1's tokenizer ships a reserved pad token, <|finetune_right_pad_id|> (id 128004, inside the
embedding matrix). Naming it pad_token makes open-instruct add nothing: both arms keep the base model's
exact shapes (which the weight-level comparison also needs), and pad positions are masked out of every
loss, so nothing learned changes. The prepared tokenizer is written once per experiment to
data/tokenizer/ and passed to both trainers as --tokenizer_name_or_path.

Command line (used by the llama8b launchers):
  python -m sft_vs_rlvr.launch.tokenizer_prep --model MODEL --out DIR      prints DIR when ready
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import tempfile
from pathlib import Path

from sft_vs_rlvr.errors import UserError, cli

PREFERRED_PAD = "<|finetune_right_pad_id|>"
RESERVED = re.compile(r"^<\|reserved_special_token_\d+\|>$")
MARKER = "sft_vs_rlvr_pad.json"


def choose_pad(vocab: dict[str, int], eos_id: int | None) -> str | None:
    """Llama 3.1's dedicated pad token, else its lowest reserved special token, else None."""
    if PREFERRED_PAD in vocab:
        return PREFERRED_PAD
    reserved = sorted((i, t) for t, i in vocab.items() if RESERVED.match(t) and i != eos_id)
    return reserved[0][1] if reserved else None


def prepare(model: str, out: Path) -> Path:
    """Write the base tokenizer with an in-vocabulary pad token to `out` (once; later calls check it)."""
    out = Path(out)
    marker = out / MARKER
    if marker.is_file():
        recorded = json.loads(marker.read_text())
        if recorded.get("model") != model:
            raise UserError(f"{out} holds the tokenizer of {recorded.get('model')}, not {model}; "
                            "start a new experiment with --fresh")
        return out
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model)
    size = len(tokenizer)
    if tokenizer.pad_token_id is None or tokenizer.pad_token_id == tokenizer.eos_token_id:
        pad = choose_pad(tokenizer.get_vocab(), tokenizer.eos_token_id)
        if pad is None:
            raise UserError(f"{model}'s tokenizer has no pad token and no reserved token to use as one; open-instruct "
                            "would add a token past the embedding matrix (see sft_vs_rlvr/launch/tokenizer_prep.py)")
        tokenizer.pad_token = pad
    if len(tokenizer) != size or tokenizer.pad_token_id >= size:
        raise UserError(f"setting the pad token of {model} changed its vocabulary; report this")
    out.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        tokenizer.save_pretrained(building)
        (building / MARKER).write_text(json.dumps({"model": model, "pad_token": tokenizer.pad_token,
                                                   "pad_token_id": tokenizer.pad_token_id, "vocab_size": size}) + "\n")
        building.rename(out)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    return out


@cli
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sft_vs_rlvr.launch.tokenizer_prep", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="the base model (Hub id or folder)")
    parser.add_argument("--out", required=True, help="where the prepared tokenizer goes (the experiment's data/)")
    args = parser.parse_args(argv)
    path = prepare(args.model, Path(args.out))
    recorded = json.loads((path / MARKER).read_text())
    print(f"tokenizer: {path} (pad {recorded['pad_token']} = id {recorded['pad_token_id']}, "
          f"vocabulary {recorded['vocab_size']}, nothing added)", file=sys.stderr)
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
