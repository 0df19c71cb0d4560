"""The tiny base model's build into an empty cache (the first `make demo` on a machine), on a shortened warm-up:
the build's steps are the real ones, only fewer of them, so the test is quick. The other tests share the one
model the committed recipe builds (conftest.tiny_base)."""

from __future__ import annotations

import json

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from sft_vs_rlvr import settings as settings_mod
from sft_vs_rlvr.tiny import model as tiny_model


@pytest.fixture
def short_recipe(monkeypatch, tmp_path):
    monkeypatch.setenv("SFT_VS_RLVR_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(tiny_model, "RECIPE", {**tiny_model.RECIPE, "warmup_steps": 2})
    shared = settings_mod.load("tiny").shared
    return shared["chat_template"], shared["instruction"]


def test_first_use_builds_a_complete_model_folder_and_later_uses_reuse_it(short_recipe, tmp_path):
    messages = []
    built = tiny_model.ensure(*short_recipe, log=messages.append)
    assert built.parent == tmp_path / "cache" / "models" and built.name.startswith(tiny_model.TINY_MODEL_NAME)
    assert any("building" in m for m in messages)
    assert [p.name for p in built.parent.iterdir()] == [built.name]  # no scratch folder left beside it
    recipe = json.loads((built / "tiny_recipe.json").read_text())
    assert recipe["warmup_steps"] == 2 and recipe["seed"] == tiny_model.BASE_SEED and recipe["torch_threads"] >= 1

    tokenizer = AutoTokenizer.from_pretrained(built)
    model = AutoModelForCausalLM.from_pretrained(built)
    assert tokenizer.chat_template  # (padding side is not saved by transformers 5; the engines pad by hand)
    assert tokenizer.eos_token == tiny_model.EOS and tokenizer.pad_token == tiny_model.PAD
    assert model.config.vocab_size == len(tokenizer) and model.generation_config.do_sample is False
    digits = tokenizer.tokenize("1234")
    assert len(digits) == 4  # digits one by one, as arithmetic needs

    stamp = (built / "config.json").stat().st_mtime_ns
    again = []
    assert tiny_model.ensure(*short_recipe, log=again.append) == built and again == []
    assert (built / "config.json").stat().st_mtime_ns == stamp


def test_another_recipe_is_another_folder(short_recipe, monkeypatch):
    first = tiny_model.model_dir(*short_recipe)
    monkeypatch.setattr(tiny_model, "RECIPE", {**tiny_model.RECIPE, "warmup_steps": 3})
    assert tiny_model.model_dir(*short_recipe) != first
    assert tiny_model.model_dir(short_recipe[0], short_recipe[1] + " Be brief.") != first
