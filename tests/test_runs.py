"""The run-folder machinery: experiment ownership, stage status, manifests, secrets, locks."""

import json
import sys
import textwrap

import pytest

from sft_vs_rlvr import contract, runs, settings
from sft_vs_rlvr.errors import UserError

# A command that behaves like a trainer as far as the run folder is concerned: it prints a line,
# echoes a secret it was given (which must be redacted), and writes a model folder.
FAKE_TRAINER = textwrap.dedent("""
    import os, pathlib, sys
    out = pathlib.Path(sys.argv[1]) / "nested" / "final"
    out.mkdir(parents=True)
    (out / "config.json").write_text("{}")
    (out / "model.safetensors").write_bytes(b"weights")
    print("token is", os.environ.get("HF_TOKEN"))
    sys.exit(int(sys.argv[2]))
""")


def begin(stage="sft", fresh=False):
    return runs.begin_stage(settings.load("tiny"), stage, fresh, log=lambda m: None)


def run(variables, code=0):
    return runs.run_stage(runs.Path(variables["RUN_DIR"]),
                          [sys.executable, "-c", FAKE_TRAINER, variables["RUN_DIR"], str(code)])


def test_begin_creates_experiment_and_data(isolated_env):
    variables = begin()
    exp = runs.Path(variables["EXPERIMENT_DIR"])
    assert variables["EXPERIMENT_ID"] == "tiny-seed42" and variables["STAGE_STATUS"] == "new"
    assert json.loads((exp / "experiment.json").read_text())["profile"] == "tiny"
    assert (exp / "data" / "test.jsonl").is_file()


def test_manifest_after_success_and_secret_redaction(isolated_env, monkeypatch, capsys):
    monkeypatch.setenv("HF_TOKEN", "hf_canary_secret_value")
    variables = begin()
    assert run(variables) == 0
    manifest = json.loads((runs.Path(variables["RUN_DIR"]) / "manifest.json").read_text())
    assert manifest["status"] == "completed" and manifest["exit_status"] == 0
    assert manifest["final_model"] == "nested/final"  # found by contents
    assert manifest["wandb"]["mode"] == "offline" and manifest["wandb"]["group"] == "tiny-seed42"
    assert manifest["settings_fingerprints"]["sft"] == settings.load("tiny").fingerprint("sft")
    assert manifest["started_at"] <= manifest["ended_at"]
    log = (runs.Path(variables["RUN_DIR"]) / "train.log").read_text()
    assert "token is ***" in log and "hf_canary_secret_value" not in log
    assert "hf_canary_secret_value" not in capsys.readouterr().out
    assert begin()["STAGE_STATUS"] == "completed"


def test_failed_stage_is_kept_aside_and_restarted(isolated_env):
    variables = begin()
    assert run(variables, code=3) == 3
    manifest = json.loads((runs.Path(variables["RUN_DIR"]) / "manifest.json").read_text())
    assert manifest["status"] == "failed" and manifest["exit_status"] == 3
    again = begin()
    assert again["STAGE_STATUS"] == "new"
    kept = [p.name for p in runs.Path(variables["EXPERIMENT_DIR"]).iterdir() if p.name.startswith("sft.interrupted-")]
    assert len(kept) == 1
    assert (runs.Path(variables["EXPERIMENT_DIR"]) / kept[0] / "manifest.json").is_file()


def test_running_stage_is_refused_while_its_lock_is_held(isolated_env):
    import fcntl

    variables = begin()
    run_dir = runs.Path(variables["RUN_DIR"])
    run_dir.mkdir()
    (run_dir / "manifest.json").write_text(json.dumps({
        "format": contract.MANIFEST.id, "version": contract.MANIFEST.version, "stage": "sft",
        "status": "running", "started_at": "2026-01-01T00:00:00Z"}))
    with (run_dir / ".lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        with pytest.raises(UserError, match="being written by a running launch"):
            begin()
    assert (run_dir / "manifest.json").is_file()


def test_folder_of_another_experiment_is_refused_and_untouched(isolated_env, config_dir, monkeypatch):
    begin()
    path = config_dir / "experiment.toml"
    path.write_text(path.read_text().replace("test_size = 200", "test_size = 150"))
    monkeypatch.setenv("CONFIG_DIR", str(config_dir))
    marker = isolated_env / "runs" / "tiny-seed42" / "experiment.json"
    before = marker.read_text()
    with pytest.raises(UserError, match=r"belongs to another experiment .*test_size.*--fresh"):
        begin()
    assert marker.read_text() == before


def test_completed_stage_with_changed_arm_settings_is_refused(isolated_env, config_dir, monkeypatch):
    assert run(begin()) == 0
    path = config_dir / "sft.toml"
    path.write_text(path.read_text().replace("epochs = 3", "epochs = 4", 1))
    monkeypatch.setenv("CONFIG_DIR", str(config_dir))
    with pytest.raises(UserError, match="completed with other sft settings"):
        begin()
    # the RL arm's settings did not change: it may still start in this experiment
    assert begin("rlvr")["STAGE_STATUS"] == "new"


def test_fresh_makes_a_new_current_experiment(isolated_env):
    first = begin()
    second = begin(fresh=True)
    assert second["EXPERIMENT_ID"].startswith("tiny-seed42-") and second["EXPERIMENT_ID"] != first["EXPERIMENT_ID"]
    assert begin("rlvr")["EXPERIMENT_ID"] == second["EXPERIMENT_ID"]  # later stages follow the new id
    assert runs.Path(first["EXPERIMENT_DIR"], "experiment.json").is_file()  # the old one is left alone


def test_folder_that_is_not_an_experiment(isolated_env, monkeypatch):
    monkeypatch.setenv("EXPERIMENT_ID", "mine")
    target = isolated_env / "runs" / "mine"
    target.mkdir(parents=True)
    (target / "notes.txt").write_text("keep me")
    with pytest.raises(UserError, match="not an sft-vs-rlvr experiment folder"):
        begin()
    assert (target / "notes.txt").read_text() == "keep me"
    monkeypatch.setenv("EXPERIMENT_ID", "../escape")
    with pytest.raises(UserError, match="not a valid id"):
        begin()


def test_dry_run_writes_nothing(isolated_env):
    variables = runs.begin_stage(settings.load("tiny"), "sft", False, log=lambda m: None, dry_run=True)
    assert variables["STAGE_STATUS"] == "dry-run"
    assert not (isolated_env / "runs").exists()


def test_locate_needs_an_experiment(isolated_env):
    with pytest.raises(UserError, match="no experiment at .*run ./experiment_sft_llama8b.sh"):
        runs.locate(settings.load("tiny"))


def test_llama8b_resumes_an_interrupted_stage_in_place(isolated_env, monkeypatch):
    # The llama8b data source is the Hub; a local GSM8K-format folder stands in for it here.
    monkeypatch.setenv("CONFIG_DIR", str(_config_with_local_data(isolated_env)))
    llama = settings.load("llama8b")
    variables = runs.begin_stage(llama, "sft", False, log=lambda m: None)
    assert runs.run_stage(runs.Path(variables["RUN_DIR"]), [sys.executable, "-c", "raise SystemExit(1)"]) == 1
    again = runs.begin_stage(llama, "sft", False, log=lambda m: None)
    assert again["STAGE_STATUS"] == "resume" and again["RUN_DIR"] == variables["RUN_DIR"]
    assert runs.run_stage(runs.Path(variables["RUN_DIR"]),
                          [sys.executable, "-c", FAKE_TRAINER, variables["RUN_DIR"], "0"]) == 0
    kept = list(runs.Path(variables["RUN_DIR"]).glob("manifest.attempt-*.json"))
    assert len(kept) == 1 and json.loads(kept[0].read_text())["status"] == "failed"


def _config_with_local_data(root):
    import shutil

    from sft_vs_rlvr import atomic
    from sft_vs_rlvr.tiny import synth_gsm8k

    data = root / "gsm8k"
    for split, size in (("train", 30), ("test", 10)):
        atomic.write_jsonl(data / f"{split}.jsonl", [{"question": p.question, "answer": p.solution}
                                                     for p in synth_gsm8k.generate(split, size, 0)])
    configs = root / "configs"
    shutil.copytree(runs.settings_mod.REPO_ROOT / "configs", configs)
    path = configs / "experiment.toml"
    text = path.read_text().replace('dataset = "openai/gsm8k"', f'dataset = "{data}"')
    path.write_text(text.replace("train_size = 7473", "train_size = 30").replace("test_size = 1319", "test_size = 10"))
    return configs


def test_open_instruct_saves_are_indexed_complete_ones_only(tmp_path):
    from sft_vs_rlvr import runs
    from sft_vs_rlvr import settings as settings_mod

    settings = settings_mod.load("llama8b")
    sft = tmp_path / "sft"
    (sft / "output" / "sft" / "step_94").mkdir(parents=True)
    (sft / "output" / "sft" / "step_94" / "COMPLETED").write_text("")
    (sft / "output" / "sft" / "step_188").mkdir()  # interrupted save: no COMPLETED marker
    assert runs.open_instruct_checkpoints(sft, settings) == [
        {"step": 94, "path": "output/sft/step_94", "examples_seen": 94 * 16, "kind": "training_state"}]
    rl = tmp_path / "rlvr"
    snapshot = rl / "output" / "rlvr__42__1700000000_checkpoints" / "step_12"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    assert runs.open_instruct_checkpoints(rl, settings) == [
        {"step": 12, "path": "output/rlvr__42__1700000000_checkpoints/step_12", "examples_seen": 12 * 64,
         "kind": "hf_model"}]


def test_final_model_of_a_resumed_grpo_run_is_the_newest_not_a_snapshot(tmp_path):
    import os
    import time

    from sft_vs_rlvr import runs

    def model(folder):
        folder.mkdir(parents=True)
        (folder / "config.json").write_text("{}")
        (folder / "model.safetensors").write_bytes(b"x")

    model(tmp_path / "output" / "rlvr__42__1700000000")
    model(tmp_path / "output" / "rlvr__42__1700000000_checkpoints" / "step_12")
    model(tmp_path / "state" / "global_step12")
    newest = tmp_path / "output" / "rlvr__42__1700009999"
    model(newest)
    old = time.time() - 3600
    os.utime(tmp_path / "output" / "rlvr__42__1700000000" / "config.json", (old, old))
    assert runs.find_model_folder(tmp_path) == newest


def test_another_seed_is_its_own_experiment_and_seed_folders_finds_each(isolated_env, monkeypatch):
    fresh = begin(fresh=True)  # the current experiment is now tiny-seed42-<time>
    monkeypatch.setenv("SEED", "43")
    other = begin()
    assert other["EXPERIMENT_ID"] == "tiny-seed43"  # not the seed-42 pointer
    assert json.loads(runs.Path(other["EXPERIMENT_DIR"], "experiment.json").read_text())["shared"]["seed"] == 43
    data = [json.loads(runs.Path(v["EXPERIMENT_DIR"], "data", "manifest.json").read_text()) for v in (fresh, other)]
    assert data[0]["fingerprint"] == data[1]["fingerprint"]  # every seed trains and tests on the same rows
    monkeypatch.delenv("SEED")
    assert begin("rlvr")["EXPERIMENT_ID"] == fresh["EXPERIMENT_ID"]  # seed 42 still follows its pointer
    folders = runs.seed_folders(settings.load("tiny"), "42,43")
    assert [f.name for f in folders] == [fresh["EXPERIMENT_ID"], "tiny-seed43"]
    with pytest.raises(UserError, match="no experiment for seed 44 .*SEED=44 ./experiment_sft_llama8b.sh"):
        runs.seed_folders(settings.load("tiny"), "42,44")
    with pytest.raises(UserError, match="give at least two"):
        runs.seed_folders(settings.load("tiny"), "42")
    with pytest.raises(UserError, match="not a comma-separated list"):
        runs.seed_folders(settings.load("tiny"), "42,x")
    monkeypatch.setenv("SEED", "4x")
    with pytest.raises(UserError, match="SEED='4x' is not a whole number"):
        settings.load("tiny")
