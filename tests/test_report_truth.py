"""The report tells the truth about learning dynamics and budgets (issue 15).

Real offline W&B runs with open-instruct v0.3.0's keys, simulated group by group so that the reward grpo_fast
logs (over the groups its zero-variance filter keeps) and the true solve rate differ; finetune.py's keys for
SFT; timestamps that cover the stages, so the wall-clock split is measured. Every expected number is computed
here from the simulation's own ground truth or the written rows, never with the code under test.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest_report_helpers import (
    assert_table_numbers_in_json,
    build_full_experiment,
    finetune_rows,
    grpo_fast_rows,
    iso,
    write_offline_run,
    write_v2_eval,
)

from sft_vs_rlvr.errors import UserError
from sft_vs_rlvr.report import analysis as report
from sft_vs_rlvr.report import verdict

START = 1_900_000_000.0  # the training loops' start (seconds since the epoch)
SFT_STARTUP, RL_STARTUP = 200.0, 300.0
SFT_TAIL, RL_TAIL = 60.0, 120.0
PILOT = {"passed": True, "informative_groups": 0.41, "mean_reward": 0.12, "stop_rate": 0.93, "truncation_rate": 0.07,
         "mean_response_tokens": 171.5, "groups_all_correct": 0.02, "groups_all_wrong": 0.57, "prompts": 256,
         "samples": 2048, "threshold": 0.2, "file": "pilot.json"}


def _replace_run(exp: Path, stage: str, rows: list[dict], started: float, ended: float, checkpoints: list[int],
                 command: list[str], beta: float | None = None, pilot: dict | None = None) -> None:
    """Swap a stage's W&B run for `rows` and set its manifest's times, checkpoints, command and compute."""
    path = exp / stage / "manifest.json"
    manifest = json.loads(path.read_text())
    shutil.rmtree(exp / stage / "wandb")
    run_id = manifest["wandb"]["run_id"]
    write_offline_run(exp / stage / "wandb", rows, run_id=run_id, group=manifest["wandb"]["group"])
    per_step = manifest["checkpoints"][0]["examples_seen"] / manifest["checkpoints"][0]["step"]
    manifest.update(started_at=iso(started), ended_at=iso(ended), command=command, command_line=" ".join(command),
                    checkpoints=[{"step": s, "examples_seen": s * per_step, "path": f"ckpt/{s}"} for s in checkpoints],
                    compute={"device": "cuda", "gpus": 4, "source": "NUM_GPUS"}, pilot=pilot)
    if beta is not None:
        manifest["settings"]["rlvr"]["beta"] = beta
    path.write_text(json.dumps(manifest))


@pytest.fixture(scope="module")
def oi(tmp_path_factory):
    """An experiment whose SFT run has finetune.py's keys and whose RL run has grpo_fast v0.3.0's."""
    built = build_full_experiment(tmp_path_factory.mktemp("oi"))
    exp = built["dir"]
    sft_start, rl_start = START, START + 10_000
    sft = finetune_rows(30, sft_start)
    _replace_run(exp, "sft", sft, sft_start - SFT_STARTUP, sft[-1]["_timestamp"] + SFT_TAIL, [10, 20, 30],
                 ["accelerate", "launch", "open_instruct/finetune.py", "--checkpointing_steps", "10"])
    rl, truth = grpo_fast_rows(40, rl_start, np.random.default_rng(3))
    _replace_run(exp, "rlvr", rl, rl_start - RL_STARTUP, rl[-1]["_timestamp"] + RL_TAIL, [10, 20, 30, 40],
                 ["python", "open_instruct/grpo_fast.py", "--num_learners_per_node", "2", "--vllm_num_engines", "2"],
                 beta=0.0, pilot=PILOT)
    md = report.build_report(exp)
    built.update(report=json.loads((md.parent / "report.json").read_text()), md=md.read_text(), sft_rows=sft,
                 rl_rows=rl, truth=truth)
    return built


def test_the_report_shows_the_true_solve_rate_not_the_filtered_reward(oi):
    truth = oi["truth"]
    # The simulation is only a test if the filter biases the logged reward.
    assert np.mean([t["survivor_rate"] - t["solve_rate"] for t in truth]) > 0.15
    metrics = oi["report"]["dynamics"]["rlvr"]["metrics"]
    assert [p[1] for p in metrics["solve_rate"]["points"]] == pytest.approx([t["solve_rate"] for t in truth])
    assert [p[1] for p in metrics["trained_groups"]["points"]] == pytest.approx([t["kept"] / 64 for t in truth])
    assert [p[1] for p in metrics["reward_survivors"]["points"]] == pytest.approx([t["survivor_rate"] for t in truth])
    assert "reward" not in metrics  # the filtered reward is never shown as the reward
    evals = [r for r in oi["rl_rows"] if "eval/pass_at_1" in r]
    assert metrics["eval_pass_at_1"]["points"] == [[r["training_step"], r["eval/pass_at_1"]] for r in evals]
    assert metrics["eval_stop_rate"]["points"] == [[r["training_step"], 0.95] for r in evals]
    assert metrics["entropy"]["key"] == "policy/entropy_avg"
    solve = metrics["solve_rate"]["last"][1]
    assert "| solve_rate | rebuilt from objective/verifiable_correct_rate" in oi["md"]
    assert f"{solve:.4g} @ 40" in oi["md"]


def test_kl_with_beta_zero_is_not_measured(oi):
    dyn = oi["report"]["dynamics"]["rlvr"]
    assert "kl" not in dyn["metrics"]  # grpo_fast logged 0.0 for it: not a measurement
    assert dyn["unavailable"]["kl"].startswith("not measured: beta 0, no reference model")
    assert "| kl | not measured: beta 0, no reference model" in oi["md"]
    assert "cannot be rebuilt for every sample" in dyn["unavailable"]["response_length"]


def test_budgets_add_up_and_are_measured_from_timestamps(oi):
    sft, rl = oi["report"]["budgets"]["sft"], oi["report"]["budgets"]["rlvr"]
    for b in (sft, rl):
        split = b["wall_split"]
        assert split["startup_seconds"] + split["io_seconds"] + split["compute_seconds"] == pytest.approx(
            b["wall_seconds"])
        assert split["source"].startswith("W&B timestamps")
        assert b["gpu_hours_startup"] + b["gpu_hours_io"] + b["gpu_hours_compute"] == pytest.approx(b["gpu_hours"])
    # finetune.py: 10 s steps, 40 s saves after steps 10 and 20 (30 is the last: its save is in the tail)
    assert sft["wall_split"]["startup_seconds"] == pytest.approx(SFT_STARTUP)
    assert sft["wall_split"]["io_seconds"] == pytest.approx(2 * 40 + SFT_TAIL)
    # grpo_fast: 4 snapshots of 20 s inside steps, 3 state saves of 50 s after logging, and the tail
    assert rl["wall_split"]["startup_seconds"] == pytest.approx(RL_STARTUP)
    assert rl["wall_split"]["io_seconds"] == pytest.approx(4 * 20 + 3 * 50 + RL_TAIL)
    assert rl["wall_split"]["source"] == "W&B timestamps and time/* keys"
    last = oi["rl_rows"][-1]
    assert rl["tokens_trained"] == pytest.approx(last["val/num_total_tokens"] / 2)  # 2 learners each add the batch
    assert rl["points_per_compute_gpu_hour"] == pytest.approx(rl["points_over_base"] / rl["gpu_hours_compute"])


def test_budgets_on_fair_axes(oi):
    sft, rl = oi["report"]["budgets"]["sft"], oi["report"]["budgets"]["rlvr"]
    settings = oi["settings"]
    assert sft["sequences_trained"] == sft["prompts_seen"]
    assert rl["sequences_trained"] == rl["prompts_seen"] * settings["rlvr"]["samples_per_prompt"]
    assert rl["tokens_processed"] == pytest.approx(rl["tokens_trained"] + rl["tokens_generated"])
    assert sft["optimizer_updates"] == 30 and rl["optimizer_updates"] == 40
    lrs = [r["learning_rate"] for r in oi["sft_rows"]]  # logged every step: the sum is the plain sum
    assert sft["lr_sum"] == pytest.approx(sum(lrs))
    assert rl["lr_sum"] == pytest.approx(40 * 1e-6)
    curve = oi["report"]["efficiency"]["curves"]["rlvr"]
    final = curve[-1]
    assert final["sequences"] == rl["sequences_trained"] and final["flops"] == rl["flops"]
    assert final["tokens_processed"] == rl["tokens_processed"]


def test_pilot_beside_the_rl_budget(oi):
    assert oi["report"]["budgets"]["rlvr"]["pilot"] == PILOT
    assert "### RL pilot (before the launch)" in oi["md"]
    assert "| RLVR (GRPO) | True | 41.0% | 20.0% | 0.12 | 93.0% |" in oi["md"]


def test_headline_states_what_is_held_equal(oi):
    md = oi["md"]
    headline = md[md.index("## 1. Headline"):md.index("### Still improving?")]
    assert "Not held equal: optimization. Optimizer updates: SFT 30, RLVR (GRPO) 40" in headline
    assert "Data exposure is NOT held equal in this experiment (SFT 2 epochs, RLVR (GRPO) 1 epoch" in headline
    assert "What the 95% intervals cover: which test problems were drawn" in headline


def test_findings_paragraph(oi):
    md, data = oi["md"], oi["report"]
    assert md.index("## Findings") < md.index("## 1. Headline")
    findings = md[md.index("## Findings"):md.index("## 1. Headline")]
    titles = {"base": "base", "sft": "SFT", "rlvr": "RLVR"}
    for claim in data["findings"]["claims"]:
        comparison = next(c for c in data["comparisons"]
                          if (c["a"], c["b"], c["grader"]) == (claim["a"], claim["b"], "robust"))
        lo, hi = comparison["bootstrap_ci95"]
        assert claim["significant"] == (comparison["mcnemar_p"] < 0.05 and (lo > 0 or hi < 0))
        a, b = titles[claim["a"]], titles[claim["b"]]
        if claim["significant"]:
            assert "beats" in findings and f"{a} - {b} = {100 * comparison['difference']:+.1f} pp" in findings
        else:
            assert f"No difference detected between {a} and {b} under the robust grader" in findings
    kinds = {c["kind"] for c in data["findings"]["caveats"]}
    assert {"one_seed", "exposure", "optimization", "multiplicity"} <= kinds
    assert "One seed (42)" in findings and "Optimization is not held equal" in findings


def test_every_number_shown_is_in_report_json(oi):
    assert_table_numbers_in_json(oi["md"], oi["report"])


# ----------------------------------------------------------------------------- still improving?


def _nested_samples(ids: list[str], accuracy: float) -> list[dict]:
    """The first round(accuracy x n) problems right (so a later, better checkpoint solves a superset)."""
    k = round(accuracy * len(ids))
    return [{"id": problem, "prompt": "Q", "response": "#### 7", "gold": "7", "extracted": "7" if i < k else "8",
             "correct": i < k, "verifier_extracted": "7" if i < k else "8", "verifier_correct": i < k,
             "truncated": False, "response_tokens": 10} for i, problem in enumerate(ids)]


def _series_experiment(root: Path, accuracies: list[float], rising_curve: bool) -> dict:
    """rlvr's checkpoints at steps 5, 10, 15 and its final model at the given accuracies on 300 problems,
    and a W&B reward curve that rises or stays flat."""
    built = build_full_experiment(root, n_problems=300)
    exp, ids = built["dir"], built["ids"]
    for (step, examples, _), accuracy in zip(built["checkpoints"]["rlvr"], accuracies):
        write_v2_eval(exp / "eval", f"rlvr_step{step}", _nested_samples(ids, accuracy), "tiny-seed42",
                      checkpoint={"arm": "rlvr", "step": step, "examples_seen": examples, "kind": "hf_model"})
    write_v2_eval(exp / "eval", "rlvr", _nested_samples(ids, accuracies[-1]), "tiny-seed42")
    rng = np.random.default_rng(0)
    rows = [{"train/reward": (0.1 + 0.02 * i if rising_curve else 0.5) + rng.normal(0, 0.01),
             "train/global_step": i + 1} for i in range(30)]
    manifest = json.loads((exp / "rlvr" / "manifest.json").read_text())
    shutil.rmtree(exp / "rlvr" / "wandb")
    write_offline_run(exp / "rlvr" / "wandb", rows, run_id=manifest["wandb"]["run_id"], group="tiny-seed42")
    return json.loads((report.build_report(exp).parent / "report.json").read_text())


@pytest.mark.parametrize("accuracies, rising, expected", [
    ([0.3, 0.45, 0.6, 0.75], True, "still improving"),
    ([0.6, 0.6, 0.6, 0.6], False, "plateau"),
])
@pytest.mark.slow  # runs the report or a subprocess (3-5 s)
def test_verdict_flips_between_rising_and_flat_checkpoints(tmp_path, accuracies, rising, expected):
    data = _series_experiment(tmp_path, accuracies, rising)
    v = data["verdicts"]["rlvr"]
    assert v["verdict"] == expected
    # the window: the final model (240 examples) against the checkpoint nearest two thirds of the way: step 15
    assert (v["accuracy"]["from"], v["accuracy"]["to"]) == ("rlvr_step15", "rlvr")
    assert v["accuracy"]["change"] == pytest.approx(accuracies[-1] - accuracies[2])
    assert [p["accuracy"] for p in v["last_points"]] == pytest.approx(accuracies[-3:])


def test_flat_accuracy_with_a_rising_curve_is_not_called_a_plateau():
    ids = [str(i) for i in range(200)]
    points = [{"label": "base", "examples": 0, "accuracy": 0.5}, {"label": "c1", "examples": 100, "accuracy": 0.5},
              {"label": "c2", "examples": 160, "accuracy": 0.5}, {"label": "final", "examples": 240, "accuracy": 0.5}]
    same = {i: int(i) < 100 for i in ids}
    verdicts = {p["label"]: same for p in points}
    rising = {"key": "train/reward", "points": [[s, 0.1 + 0.01 * s] for s in range(1, 31)]}
    boot = {"n_boot": 1000, "seed": 1, "level": 0.95}
    v = verdict.arm_verdict(points, verdicts, {}, {"solve_rate": rising}, True, boot)
    assert v["verdict"] == "flat accuracy, rising curve" and v["curve"]["rising"]
    assert v["curve"]["change"] == pytest.approx(0.01 * (30 - v["curve"]["from_step"]))
    assert verdict.arm_verdict(points[:1] + points[-1:], verdicts, {}, {}, True, boot)["verdict"] == "unknown"


# ----------------------------------------------------------------------------- pairs and the headline grader


@pytest.mark.slow  # runs the report or a subprocess (3-5 s)
def test_sft_then_rlvr_minus_base_is_compared(tmp_path):
    built = build_full_experiment(tmp_path, models=("base", "sft", "rlvr", "sft_rlvr"),
                                  p_correct={"base": 0.2, "sft": 0.45, "rlvr": 0.6, "sft_rlvr": 0.65})
    data = json.loads((report.build_report(built["dir"]).parent / "report.json").read_text())
    pairs = {(c["a"], c["b"]) for c in data["comparisons"]}
    assert pairs == {("rlvr", "sft"), ("sft", "base"), ("rlvr", "base"), ("sft_rlvr", "sft"), ("sft_rlvr", "rlvr"),
                     ("sft_rlvr", "base")}
    rows = {s["id"]: s["correct"] for s in built["samples"]["sft_rlvr"]}
    base = {s["id"]: s["correct"] for s in built["samples"]["base"]}
    c = next(c for c in data["comparisons"] if (c["a"], c["b"], c["grader"]) == ("sft_rlvr", "base", "robust"))
    assert c["difference"] == pytest.approx(np.mean([rows[i] - base[i] for i in rows]))


def _set_headline(exp: Path, grader: str, names: tuple[str, ...]) -> None:
    for name in names:
        path = exp / "eval" / f"{name}_results.json"
        results = json.loads(path.read_text())
        results["headline_grader"], results["accuracy"] = grader, results["graders"][grader]["accuracy"]
        path.write_text(json.dumps(results))


@pytest.mark.slow  # runs the report or a subprocess (3-5 s)
def test_the_report_follows_the_results_headline_grader(tmp_path):
    built = build_full_experiment(tmp_path)
    _set_headline(built["dir"], "verifier", ("base", "sft", "rlvr"))
    data = json.loads((report.build_report(built["dir"]).parent / "report.json").read_text())
    assert data["headline_grader"] == "verifier" == data["efficiency"]["grader"] == data["errors"]["grader"]
    assert data["findings"]["grader"] == "verifier" and data["findings"]["other_grader"] == "robust"
    sft = np.mean([s["verifier_correct"] for s in built["samples"]["sft"]])
    assert data["budgets"]["sft"]["accuracy"] == pytest.approx(sft)
    _set_headline(built["dir"], "robust", ("sft",))
    with pytest.raises(UserError, match=r"different headline graders.*eval/sft_results\.json says 'robust'"):
        report.build_report(built["dir"])


def test_headline_grader_is_a_setting_the_evaluator_writes(tmp_path):
    import dataclasses

    from sft_vs_rlvr import settings as settings_mod
    from sft_vs_rlvr.evaluate import driver

    settings = settings_mod.load("tiny")
    assert settings.eval["headline_grader"] == "robust"
    chosen = dataclasses.replace(settings, eval={**settings.eval, "headline_grader": "verifier"})
    samples = [{"correct": True, "verifier_correct": False, "extracted": "7", "truncated": False,
                "response_tokens": 5}, {"correct": True, "verifier_correct": True, "extracted": "7",
                                        "truncated": False, "response_tokens": 5}]
    facts = {"timing": {}, "fingerprint": "f", "template_source": "shared", "decodings": {"greedy": {}},
             "engine": "transformers", "device": "cpu", "dtype": "float32", "placement": None, "prompt": None,
             "model_wall_seconds": 0.0}
    results = driver.summarize(driver.ModelSpec("base", "base"), samples, chosen, tmp_path / "exp", facts)
    assert (results["headline_grader"], results["accuracy"]) == ("verifier", 0.5)
    config = tmp_path / "configs"
    shutil.copytree(settings.config_dir, config)
    text = (config / "eval.toml").read_text().replace('headline_grader = "robust"', 'headline_grader = "exact"', 1)
    (config / "eval.toml").write_text(text)
    with pytest.raises(UserError, match="headline_grader.*'exact' is not supported; choose one of robust, verifier"):
        settings_mod.load("tiny", config)
