"""Sections 2-8 of the report on a full synthetic experiment (sampled completions, checkpoints, manifests
with settings and GPUs, real offline W&B runs). Every expected number is computed here from the per-sample
files, the manifests or the logged rows, with scipy and numpy called directly, never with the code under test.
"""

from __future__ import annotations

import json
from itertools import combinations
from math import comb

import numpy as np
import pytest
from conftest_report_helpers import assert_table_numbers_in_json, build_full_experiment, write_offline_run
from scipy import stats as sps

from sft_vs_rlvr.errors import UserError
from sft_vs_rlvr.report import analysis as report


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    built = build_full_experiment(tmp_path_factory.mktemp("full"))
    md = report.build_report(built["dir"])
    built["report"] = json.loads((md.parent / "report.json").read_text())
    built["md"] = md.read_text()
    return built


def _brute_pass_at_k(flags: list[bool], k: int) -> float:
    subsets = list(combinations(range(len(flags)), k))
    return sum(any(flags[i] for i in subset) for subset in subsets) / len(subsets)


def test_pass_at_k_against_brute_force(full):
    for name, rows in full["samples"].items():
        result = full["report"]["diversity"][name]
        n = len(rows[0]["samples"])
        assert result["n_per_problem"] == n
        for grader, key in (("robust", "correct"), ("verifier", "verifier_correct")):
            for k in (1, 2, 4):
                expected = np.mean([_brute_pass_at_k([c[key] for c in row["samples"]], k) for row in rows])
                assert result["pass_at_k"][grader][str(k)] == pytest.approx(expected, abs=1e-12)
        distinct = np.mean([len({c["extracted"] for c in row["samples"] if c["extracted"] is not None})
                            for row in rows])
        assert result["distinct_answers"]["mean"] == pytest.approx(distinct)
        greedy = [row["response_tokens"] for row in rows]
        assert result["lengths"]["greedy"]["median"] == pytest.approx(float(np.median(greedy)))
        assert result["lengths"]["greedy"]["p90"] == pytest.approx(float(np.percentile(greedy, 90)))


def test_pass_at_k_disagreeing_with_results_file_is_an_error(tmp_path):
    built = build_full_experiment(tmp_path)
    path = built["dir"] / "eval" / "rlvr_results.json"
    results = json.loads(path.read_text())
    results["sampled"]["robust"]["pass@k"]["2"] += 0.01
    path.write_text(json.dumps(results))
    with pytest.raises(report.InconsistentResults, match=r"rlvr_results\.json: sampled\.robust\.pass@k at k=2"):
        report.build_report(built["dir"])
    assert not (built["dir"] / "report").exists()


def test_solve_sets_and_categories_from_samples(full):
    errors = full["report"]["errors"]
    pair = next(p for p in errors["pairs"] if (p["a"], p["b"]) == ("rlvr", "sft"))
    rlvr = {s["id"]: s["correct"] for s in full["samples"]["rlvr"]}
    sft = {s["id"]: s["correct"] for s in full["samples"]["sft"]}
    assert pair["counts"] == {
        "both": sum(rlvr[i] and sft[i] for i in rlvr), "a_only": sum(rlvr[i] and not sft[i] for i in rlvr),
        "b_only": sum(sft[i] and not rlvr[i] for i in rlvr), "neither": sum(not rlvr[i] and not sft[i] for i in rlvr)}
    venn = errors["solved_by"]["counts"]
    assert sum(venn.values()) == len(rlvr)
    everyone = sum(all(full["samples"][m][j]["correct"] for m in ("base", "sft", "rlvr"))
                   for j in range(len(rlvr)) if len({full["samples"][m][j]["id"] for m in ("base", "sft", "rlvr")}) == 1)
    assert venn.get("base + sft + rlvr", 0) == everyone
    for name, rows in full["samples"].items():
        counts = errors["categories"][name]["counts"]
        assert counts["correct"] == sum(r["correct"] for r in rows)
        assert counts["truncated"] == sum(r["truncated"] and not r["correct"] for r in rows)
        assert sum(counts.values()) == len(rows)


def test_budgets_from_manifests_and_wandb(full):
    budgets = full["report"]["budgets"]
    settings = full["settings"]
    for stage, (start, end) in full["times"].items():
        b = budgets[stage]
        seconds = (np.datetime64(end.rstrip("Z")) - np.datetime64(start.rstrip("Z"))) / np.timedelta64(1, "s")
        assert b["wall_seconds"] == seconds
        assert b["gpus"] == 4 and b["gpu_hours"] == pytest.approx(seconds / 3600 * 4)
        assert b["tokens_trained"] == full["logged"][stage][-1]["train/num_tokens"]
        assert b["cost_usd"] == pytest.approx(b["gpu_hours"] * b["price_per_gpu_hour"])
        assert b["prompts_seen"] == 240 * settings[stage]["epochs"]  # a completed stage: rows x epochs
    rlvr = budgets["rlvr"]
    assert rlvr["samples_generated"] == pytest.approx(rlvr["prompts_seen"] * settings["rlvr"]["samples_per_prompt"])
    base = np.mean([s["correct"] for s in full["samples"]["base"]])
    for stage in ("sft", "rlvr"):
        gain = 100 * (np.mean([s["correct"] for s in full["samples"][stage]]) - base)
        assert budgets[stage]["points_per_gpu_hour"] == pytest.approx(gain / budgets[stage]["gpu_hours"])
    assert budgets["sft"]["samples_generated"] == 0


@pytest.mark.slow  # runs the report or a subprocess (3-5 s)
def test_stage_that_stopped_early_counts_what_its_run_logged(tmp_path):
    built = build_full_experiment(tmp_path)
    path = built["dir"] / "sft" / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["status"] = "failed"
    path.write_text(json.dumps(manifest))
    data = json.loads((report.build_report(built["dir"]).parent / "report.json").read_text())
    step, examples, _ = built["checkpoints"]["sft"][0]
    last_step = built["logged"]["sft"][-1]["train/global_step"]
    assert data["budgets"]["sft"]["prompts_seen"] == pytest.approx(examples / step * last_step)


def test_sample_efficiency_examples_to_target(full):
    eff = full["report"]["efficiency"]
    finals = {name: np.mean([s["correct"] for s in rows]) for name, rows in full["samples"].items()}
    target = (finals["base"] + max(finals["sft"], finals["rlvr"])) / 2
    assert eff["target"] == pytest.approx(target)
    for arm in ("sft", "rlvr"):
        points = [(0, finals["base"])]
        for step, examples, _ in full["checkpoints"][arm]:
            rows = full["checkpoint_samples"][f"{arm}_step{step}"]
            points.append((examples, np.mean([s["correct"] for s in rows])))
        points.append((full["report"]["budgets"][arm]["prompts_seen"], finals[arm]))
        for checkpoint in (c for c in full["report"]["checkpoints"] if c["arm"] == arm):
            rows = full["checkpoint_samples"][checkpoint["name"]]
            k = sum(s["verifier_correct"] for s in rows)
            ci = sps.binomtest(k, len(rows)).proportion_ci(method="wilson")
            assert checkpoint["accuracy_verifier"] == k / len(rows)
            assert checkpoint["ci95_verifier"] == pytest.approx([ci.low, ci.high])
        assert [p["examples"] for p in eff["curves"][arm]] == pytest.approx([x for x, _ in points])
        assert [p["accuracy"] for p in eff["curves"][arm]] == pytest.approx([y for _, y in points])
        first = next((i for i, (_, acc) in enumerate(points) if acc >= target), None)
        reach = eff["to_target"][arm]
        if first is None:
            assert reach["reached"] is False
            continue
        (x0, y0), (x1, y1) = points[first - 1], points[first]
        assert reach["examples"] == pytest.approx(x1)
        assert reach["examples_interpolated"] == pytest.approx(x0 + (target - y0) / (y1 - y0) * (x1 - x0))


@pytest.mark.slow  # runs the report or a subprocess (3-5 s)
def test_target_accuracy_setting(tmp_path):
    built = build_full_experiment(tmp_path)
    md = report.build_report(built["dir"], target_accuracy=0.99)
    data = json.loads((md.parent / "report.json").read_text())
    assert data["efficiency"]["target"] == 0.99
    assert all(r["reached"] is False for r in data["efficiency"]["to_target"].values())
    with pytest.raises(UserError, match="target-accuracy 1.5"):
        report.build_report(built["dir"], target_accuracy=1.5)


def test_dynamics_shared_axis(full):
    dyn = full["report"]["dynamics"]
    assert dyn["sft"]["examples_per_step"] == 16 and dyn["rlvr"]["examples_per_step"] == 8
    assert dyn["rlvr"]["metrics"]["entropy"]["key"] == "train/entropy"
    assert dyn["rlvr"]["metrics"]["truncated_ratio"]["points"][0] == [1, 0.1]


def test_every_section_is_in_the_markdown(full):
    for heading in ("1. Headline", "2. Budgets", "3. Learning dynamics", "4. Sample efficiency",
                    "5. Solution diversity", "6. Error patterns", "7. Robustness", "8. Several seeds",
                    "9. Reproducibility"):
        assert f"## {heading}" in full["md"]
    assert "Tulu 3 8B SFT" in full["md"]  # published anchors, labelled as other people's numbers


def test_wandb_run_of_another_experiment_is_refused(tmp_path, capsys):
    built = build_full_experiment(tmp_path)
    manifest_path = built["dir"] / "rlvr" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    stray = tmp_path / "stray"
    write_offline_run(stray, [{"train/reward": 0.5, "train/global_step": 1}], run_id=manifest["wandb"]["run_id"],
                      project="someone-else", group="other-experiment")
    for run_dir in (built["dir"] / "rlvr" / "wandb" / "wandb").glob("offline-run-*"):
        for path in sorted(run_dir.rglob("*"), reverse=True):
            path.rmdir() if path.is_dir() else path.unlink()
        run_dir.rmdir()
    (next((stray / "wandb").glob("offline-run-*"))).rename(
        built["dir"] / "rlvr" / "wandb" / "wandb" / next((stray / "wandb").glob("offline-run-*")).name)
    assert report.main(["--experiment-dir", str(built["dir"])]) == 2
    err = capsys.readouterr().err
    assert "run-" in err and "another experiment" in err and "someone-else" in err
    assert not (built["dir"] / "report").exists()


def test_results_of_another_settings_version_are_refused(tmp_path):
    built = build_full_experiment(tmp_path)
    path = built["dir"] / "eval" / "sft_results.json"
    results = json.loads(path.read_text())
    results["settings_fingerprints"]["eval"] = "changed-eval"
    path.write_text(json.dumps(results))
    with pytest.raises(UserError, match=r"sft_results\.json was evaluated under eval settings changed-eval"):
        report.build_report(built["dir"])
    results["settings_fingerprints"] = {"shared": "other-shared", "eval": "eval-fp"}
    path.write_text(json.dumps(results))
    with pytest.raises(UserError, match=r"sft_results\.json was evaluated under shared settings other-shared.*"
                                        r"experiment\.json"):
        report.build_report(built["dir"])


def test_malformed_results_file_names_it(tmp_path):
    built = build_full_experiment(tmp_path)
    (built["dir"] / "eval" / "rlvr_step10_results.json").write_text("{not json")
    with pytest.raises(UserError, match=r"rlvr_step10_results\.json"):
        report.build_report(built["dir"])
    assert not (built["dir"] / "report").exists()


# ----------------------------------------------------------------------------- several seeds


@pytest.fixture(scope="module")
def three_seeds(tmp_path_factory):
    root = tmp_path_factory.mktemp("seeds")
    built = {seed: build_full_experiment(root, seed=seed) for seed in (42, 43, 44)}
    out = root / "report"
    md = report.build_report([built[s]["dir"] for s in (44, 42, 43)], out)
    return {"built": built, "report": json.loads((md.parent / "report.json").read_text()), "md": md.read_text()}


def test_seeds_mean_and_spread(three_seeds):
    data = three_seeds["report"]
    assert data["seeds"] == [42, 43, 44]
    for model in data["models"]:
        values = [np.mean([s["correct"] for s in three_seeds["built"][seed]["samples"][model["name"]]])
                  for seed in (42, 43, 44)]
        aggregate = model["graders"]["robust"]["accuracy"]
        assert aggregate["per_seed"] == pytest.approx(values)
        assert aggregate["mean"] == pytest.approx(np.mean(values))
        assert aggregate["sd"] == pytest.approx(np.std(values, ddof=1))
    assert "± " in three_seeds["md"] and "## 8. Several seeds" in three_seeds["md"]
    # examples seen stay numbers (mean across seeds); example responses stay whole lists, one per seed
    first = data["efficiency"]["curves"]["sft"][1]
    assert first["examples"]["mean"] == three_seeds["built"][42]["checkpoints"]["sft"][0][1]
    pair = next(p for p in data["errors"]["pairs"] if (p["a"], p["b"]) == ("rlvr", "sft"))
    assert len(pair["examples"]["per_seed"]) == 3 and isinstance(pair["examples"]["per_seed"][0], dict)


def test_headline_test_across_seeds(three_seeds):
    data = three_seeds["report"]
    c = next(c for c in data["across_seeds"]["comparisons"] if (c["a"], c["b"], c["grader"]) == ("rlvr", "sft", "robust"))
    diffs = []
    for seed in (42, 43, 44):
        samples = three_seeds["built"][seed]["samples"]
        sft = {s["id"]: s["correct"] for s in samples["sft"]}
        diffs.append(np.mean([float(s["correct"]) - float(sft[s["id"]]) for s in samples["rlvr"]]))
    assert c["per_seed_difference"] == pytest.approx(diffs)
    assert c["t_test_p"] == pytest.approx(sps.ttest_1samp(diffs, 0.0).pvalue)
    lo, hi = sps.t.interval(0.95, 2, loc=np.mean(diffs), scale=sps.sem(diffs))
    assert c["t_ci95"] == pytest.approx([lo, hi])
    b_lo, b_hi = c["two_stage_bootstrap_ci95"]
    assert b_lo <= np.mean(diffs) <= b_hi


@pytest.mark.slow  # runs the report or a subprocess (3-5 s)
def test_seed_missing_in_one_arm_names_the_file(tmp_path):
    dirs = [build_full_experiment(tmp_path, seed=s)["dir"] for s in (42, 43)]
    (dirs[1] / "eval" / "rlvr_results.json").unlink()
    out = tmp_path / "report"
    with pytest.raises(UserError, match=r"tiny-seed43/eval/rlvr_results\.json is missing: seeds 42 have rlvr"):
        report.build_report(dirs, out)
    assert not out.exists()


@pytest.mark.slow  # runs the report or a subprocess (3-5 s)
def test_seeds_with_other_settings_are_refused(tmp_path):
    dirs = [build_full_experiment(tmp_path, seed=s)["dir"] for s in (42, 43)]
    for stage in ("sft", "rlvr"):
        path = dirs[1] / stage / "manifest.json"
        manifest = json.loads(path.read_text())
        manifest["settings"]["sft"]["epochs"] = 5
        path.write_text(json.dumps(manifest))
    with pytest.raises(UserError, match=r"tiny-seed43 was run with other settings.*sft\.epochs \(2 vs 5\)"):
        report.build_report(dirs, tmp_path / "report")


@pytest.mark.slow  # runs the report or a subprocess (3-5 s)
def test_same_seed_twice_is_refused(tmp_path):
    first = build_full_experiment(tmp_path / "a", seed=42)["dir"]
    second = build_full_experiment(tmp_path / "b", seed=42)["dir"]
    with pytest.raises(UserError, match="seed 42 appears twice"):
        report.build_report([first, second], tmp_path / "report")


def test_pass_at_k_formula_sanity():
    # Guards the brute-force reference itself against the closed form.
    assert _brute_pass_at_k([True, False, False, False], 2) == pytest.approx(1 - comb(3, 2) / comb(4, 2))


def test_open_instruct_grpo_metric_names_of_both_versions_from_real_runs(tmp_path):
    """grpo_fast v0.3.0 logs objective/kl0_avg (k1) and val/stop_rate; before it, k1 was objective/kl_avg."""
    from sft_vs_rlvr.report import dynamics, wandb_runs

    v030 = [{"training_step": i, "episode": 64 * i, "objective/verifiable_reward": 0.1 * i, "scores": 0.5,
             "objective/kl0_avg": 0.01 * i, "objective/kl1_avg": 9.0, "loss/policy_avg": -0.1,
             "policy/entropy_avg": 1.2, "val/sequence_lengths": 200.0 + i, "val/stop_rate": 0.75, "lr": 1e-6,
             "optim/grad_norm": 0.3, "val/num_total_tokens": 1000.0 * i} for i in range(1, 6)]
    run = wandb_runs.read_offline_run(write_offline_run(tmp_path / "a", v030, run_id="grpo0300"))
    metrics = dynamics.extract_metrics("rlvr", run.history)
    # Lengths and stop rates of the surviving groups keep their own names; the filtered reward is never "reward".
    assert {m: c["key"] for m, c in metrics.items()} == {
        "kl": "objective/kl0_avg", "loss": "loss/policy_avg", "entropy": "policy/entropy_avg",
        "response_length_survivors": "val/sequence_lengths", "truncated_ratio_survivors": "1 - val/stop_rate",
        "learning_rate": "lr", "grad_norm": "optim/grad_norm", "tokens": "val/num_total_tokens"}
    assert metrics["truncated_ratio_survivors"]["points"] == [[i, 0.25] for i in range(1, 6)]
    assert metrics["kl"]["points"] == [[i, 0.01 * i] for i in range(1, 6)]
    older = [{"training_step": i, "episode": 64 * i, "objective/kl_avg": 0.02 * i, "scores": 0.4} for i in range(1, 4)]
    run = wandb_runs.read_offline_run(write_offline_run(tmp_path / "b", older, run_id="grpobase"))
    metrics = dynamics.extract_metrics("rlvr", run.history)
    assert metrics["kl"]["key"] == "objective/kl_avg" and "solve_rate" not in metrics
    finetune = [{"train_loss": 2.0 - 0.1 * i, "learning_rate": 2e-5, "total_tokens": 5000 * i} for i in range(1, 5)]
    run = wandb_runs.read_offline_run(write_offline_run(tmp_path / "c", finetune, run_id="finetune"))
    metrics = dynamics.extract_metrics("sft", run.history)
    assert {m: c["key"] for m, c in metrics.items()} == {"loss": "train_loss", "learning_rate": "learning_rate",
                                                        "tokens": "total_tokens"}
    assert metrics["loss"]["step_key"] == "_step"


def test_pass_at_k_crossover_against_the_base(full):
    rows = {r["model"]: r for r in full["report"]["pass_at_k_crossover"]}
    base = full["report"]["diversity"]["base"]["pass_at_k"]["robust"]
    for name in ("sft", "rlvr"):
        curve = full["report"]["diversity"][name]["pass_at_k"]["robust"]
        assert rows[name]["lead_at_1"] == pytest.approx(curve["1"] - base["1"])
        caught = [int(k) for k in sorted(curve, key=int) if base[k] >= curve[k]]
        assert rows[name]["base_catches_up_at_k"] == (caught[0] if caught else None)


def test_aggregate_rules():
    from sft_vs_rlvr.report import seeds

    merged = seeds.aggregate([
        {"acc": 0.5, "name": "sft", "run": "a", "reached": True, "at": 10, "examples": [{"id": 1}], "pts": [[1, 2]]},
        {"acc": 0.7, "name": "sft", "run": "b", "reached": False, "at": None, "examples": [{"id": 2}],
         "pts": [[1, 2], [2, 3]]}])
    assert merged["acc"]["mean"] == pytest.approx(0.6) and merged["acc"]["sd"] == pytest.approx(np.std([0.5, 0.7], ddof=1))
    assert merged["name"] == "sft" and merged["run"] == {"per_seed": ["a", "b"]}
    assert merged["reached"] == {"per_seed": [True, False]} and merged["at"] == {"per_seed": [10, None]}
    assert merged["examples"] == {"per_seed": [[{"id": 1}], [{"id": 2}]]}  # example lists stay whole per seed
    assert merged["pts"] == {"per_seed": [[[1, 2]], [[1, 2], [2, 3]]]}  # curves of different lengths too


def test_every_number_in_the_tables_is_in_report_json(full, three_seeds):
    assert_table_numbers_in_json(full["md"], full["report"])
    assert_table_numbers_in_json(three_seeds["md"], three_seeds["report"])
