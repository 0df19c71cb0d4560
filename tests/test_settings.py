import re
import subprocess
import sys

import pytest

from sft_vs_rlvr import settings
from sft_vs_rlvr.errors import UserError


def test_both_profiles_resolve_with_the_shared_seed():
    for profile in ("tiny", "llama8b"):
        resolved = settings.load(profile)
        assert resolved.shared["seed"] == 42
        assert resolved.shared["chat_template"] == "tulu"


def test_unknown_profile(config_dir):
    with pytest.raises(UserError, match=r"unknown profile 'huge'; choose one of llama8b, tiny"):
        settings.load("huge", config_dir)


def test_misspelt_key_names_the_key_and_suggests_the_fix(config_dir):
    path = config_dir / "sft.toml"
    path.write_text(path.read_text().replace("learning_rate = 3e-3", "learnin_rate = 3e-3", 1))
    with pytest.raises(UserError, match=r"sft.toml \[tiny\]: unknown key 'learnin_rate' \(did you mean 'learning_rate'\?\)"):
        settings.load("tiny", config_dir)


def test_missing_key(config_dir):
    path = config_dir / "experiment.toml"
    path.write_text(re.sub(r"(?m)^seed = 42\n", "", path.read_text()))
    with pytest.raises(UserError, match=r"\[shared\]: missing key 'seed'"):
        settings.load("tiny", config_dir)


def test_wrong_type_and_unsupported_choice(config_dir):
    path = config_dir / "rlvr.toml"
    path.write_text(path.read_text().replace("epochs = 1", 'epochs = "one"', 1))
    with pytest.raises(UserError, match="'epochs' must be int"):
        settings.load("tiny", config_dir)
    path = config_dir / "experiment.toml"
    path.write_text(path.read_text().replace('chat_template = "tulu"', 'chat_template = "chatml"'))
    with pytest.raises(UserError, match="not supported"):
        settings.load("llama8b", config_dir)


def test_fingerprints_change_with_the_part_they_cover(config_dir):
    before = settings.load("tiny", config_dir)
    path = config_dir / "rlvr.toml"
    path.write_text(path.read_text().replace("beta = 0.0\n", "beta = 0.05\n", 1))  # the first: [tiny]
    after = settings.load("tiny", config_dir)
    assert before.fingerprint("rlvr") != after.fingerprint("rlvr")
    assert before.fingerprint("shared") == after.fingerprint("shared")
    assert before.fingerprint("sft") == after.fingerprint("sft")


def test_export_is_shell_safe_and_command_line_errors_are_one_line(config_dir):
    out = subprocess.run([sys.executable, "-m", "sft_vs_rlvr.settings", "export", "--profile", "tiny"],
                         capture_output=True, text=True, check=True).stdout
    values = subprocess.run(["bash", "-c", out + '\nprintf "%s|%s|%s" "$SEED" "$INSTRUCTION" "$SFT_EPOCHS"'],
                            capture_output=True, text=True, check=True).stdout
    loaded = settings.load("tiny")
    assert values == f"42|{loaded.shared['instruction']}|{loaded.sft['epochs']}"
    bad = subprocess.run([sys.executable, "-m", "sft_vs_rlvr.settings", "export", "--profile", "nope"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and bad.stderr.startswith("error: unknown profile")
