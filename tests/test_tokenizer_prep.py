"""The shared tokenizer of the llama8b arms: the base tokenizer with an in-vocabulary pad token.

A Llama-3.1-like tokenizer (no pad token; <|end_of_text|> as EOS; reserved special tokens including
<|finetune_right_pad_id|>) is built here, since the real one needs the gated Hub repo. The check that
open-instruct's own loader then adds nothing is in test_open_instruct_real.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sft_vs_rlvr.errors import UserError
from sft_vs_rlvr.launch import tokenizer_prep

SPECIAL = ["<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>", "<|reserved_special_token_1|>",
           "<|finetune_right_pad_id|>"]


def llama_like_tokenizer(folder: Path, special=SPECIAL) -> Path:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = ["the", "answer", "is", "#", "1", "2", "3", "<unk>"]
    vocab = {w: i for i, w in enumerate(words + list(special))}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<|begin_of_text|>",
                                        eos_token="<|end_of_text|>", unk_token="<unk>",
                                        additional_special_tokens=[t for t in special if t not in SPECIAL[:2]])
    assert tokenizer.pad_token is None
    tokenizer.save_pretrained(folder)
    return folder


def test_pad_is_llamas_reserved_pad_token_and_nothing_is_added(tmp_path):
    from transformers import AutoTokenizer

    base = llama_like_tokenizer(tmp_path / "base")
    size = len(AutoTokenizer.from_pretrained(base))
    out = tokenizer_prep.prepare(str(base), tmp_path / "data" / "tokenizer")
    prepared = AutoTokenizer.from_pretrained(out)
    assert prepared.pad_token == "<|finetune_right_pad_id|>" and len(prepared) == size
    assert prepared.pad_token_id < size and prepared.pad_token_id != prepared.eos_token_id
    assert json.loads((out / tokenizer_prep.MARKER).read_text())["pad_token_id"] == prepared.pad_token_id
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no half-written folder left


def test_second_call_reuses_and_another_model_is_refused(tmp_path):
    base = llama_like_tokenizer(tmp_path / "base")
    out = tokenizer_prep.prepare(str(base), tmp_path / "tok")
    stamp = (out / "tokenizer.json").stat().st_mtime_ns
    assert tokenizer_prep.prepare(str(base), tmp_path / "tok") == out
    assert (out / "tokenizer.json").stat().st_mtime_ns == stamp
    with pytest.raises(UserError, match="holds the tokenizer of"):
        tokenizer_prep.prepare("another/model", tmp_path / "tok")


def test_reserved_token_fallback_and_refusal():
    assert tokenizer_prep.choose_pad({"<|reserved_special_token_3|>": 9, "<|reserved_special_token_1|>": 7}, 0) == \
        "<|reserved_special_token_1|>"
    assert tokenizer_prep.choose_pad({"a": 0, "b": 1}, 1) is None


def test_a_tokenizer_without_any_usable_pad_is_refused(tmp_path):
    base = llama_like_tokenizer(tmp_path / "base", special=SPECIAL[:2])
    with pytest.raises(UserError, match="no pad token and no reserved token"):
        tokenizer_prep.prepare(str(base), tmp_path / "tok")
    assert not (tmp_path / "tok").exists()
