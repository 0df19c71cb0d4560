"""The RL pilot (sft_vs_rlvr/launch/pilot.py) on the tiny profile: it refuses a starting model with no learning
signal (an untrained model), passes the tiny base, reuses a finished pilot of the same model and settings and
redoes one of other settings; a threshold outside 0 to 1 is refused before anything runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import set_setting

from sft_vs_rlvr import data_prep
from sft_vs_rlvr import settings as settings_mod
from sft_vs_rlvr.errors import UserError
from sft_vs_rlvr.launch import pilot

PILOT_PROMPTS = 16  # fewer than the tiny setting, to keep the test quick; the threshold is the setting's


def set_rlvr(config_dir: Path, key: str, value: str) -> None:
    set_setting(config_dir / "rlvr.toml", "tiny", key, value)


@pytest.fixture
def prepared(config_dir, tmp_path, monkeypatch, tiny_base):
    monkeypatch.setenv("CONFIG_DIR", str(config_dir))
    set_rlvr(config_dir, "pilot_prompts", str(PILOT_PROMPTS))
    shared = settings_mod.load("tiny", config_dir).shared
    data_prep.prepare(shared, tmp_path / "data", log=lambda _: None)
    return config_dir, tmp_path / "data", tiny_base


def untrained_copy(base: Path, target: Path) -> Path:
    """The tiny base's architecture and tokenizer with freshly initialised weights: no learning signal."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(base)).save_pretrained(target)
    AutoTokenizer.from_pretrained(base).save_pretrained(target)
    return target


def run_main(run_dir: Path, data: Path, model: Path, capsys) -> tuple[int | None, str, str]:
    argv = ["--run-dir", str(run_dir), "--data-dir", str(data), "--model", str(model), "--profile", "tiny"]
    try:
        code = pilot.main(argv)
    except SystemExit as stop:
        code = stop.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.slow
def test_an_untrained_model_is_refused_with_its_numbers_and_force_launches_anyway(prepared, tmp_path, capsys,
                                                                                  monkeypatch):
    config_dir, data, base = prepared
    untrained = untrained_copy(base, tmp_path / "untrained")
    monkeypatch.delenv("FORCE", raising=False)
    code, _, err = run_main(tmp_path / "rlvr", data, untrained, capsys)
    record = json.loads((tmp_path / "rlvr" / "pilot.json").read_text())
    threshold = settings_mod.load("tiny", config_dir).rlvr["pilot_min_informative_groups"]
    assert record["prompts"] == PILOT_PROMPTS and record["informative_groups"] < threshold and not record["passed"]
    assert code not in (0, None)
    lines = [line for line in err.splitlines() if "too little signal" in line]
    assert len(lines) == 1 and f"{record['informative_groups']:.0%}" in lines[0] and "FORCE=1" in lines[0]
    monkeypatch.setenv("FORCE", "1")
    code, _, err = run_main(tmp_path / "rlvr", data, untrained, capsys)
    assert code == 0 and "pilot: reusing" in err and "FORCE=1, launching anyway" in err


@pytest.mark.slow
def test_the_tiny_base_passes_is_reused_and_other_settings_run_it_again(prepared, tmp_path, capsys):
    config_dir, data, base = prepared
    code, out, err = run_main(tmp_path / "rlvr", data, base, capsys)
    record = json.loads((tmp_path / "rlvr" / "pilot.json").read_text())
    assert code == 0 and record["passed"] and record["informative_groups"] >= record["threshold"][
        "min_informative_groups"]
    assert record["samples"] == PILOT_PROMPTS * settings_mod.load("tiny", config_dir).rlvr["samples_per_prompt"]
    assert out.strip() == pilot.describe(record) and len(record["examples"]) == pilot.EXAMPLES
    code, _, err = run_main(tmp_path / "rlvr", data, base, capsys)
    assert code == 0 and "pilot: reusing" in err
    set_rlvr(config_dir, "temperature", "0.9")
    code, _, err = run_main(tmp_path / "rlvr", data, base, capsys)
    assert "other settings; running it again" in err
    assert json.loads((tmp_path / "rlvr" / "pilot.json").read_text())["decoding"]["temperature"] == 0.9


@pytest.mark.parametrize("value", ["1.5", "-0.1"])
def test_a_threshold_outside_zero_to_one_is_refused_in_one_line(config_dir, value):
    set_rlvr(config_dir, "pilot_min_informative_groups", value)
    with pytest.raises(UserError) as refused:
        settings_mod.load("tiny", config_dir)
    message = str(refused.value)
    assert "pilot_min_informative_groups" in message and "\n" not in message
