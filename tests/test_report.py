"""The report end to end on synthetic experiment folders with real offline W&B runs.

Every expected number is computed here from the per-sample files with scipy called directly,
never with the code under test.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from conftest_report_helpers import assert_table_numbers_in_json, build_experiment, write_model_eval
from scipy import stats as sps

from sft_vs_rlvr.errors import UserError
from sft_vs_rlvr.report import analysis as report
from sft_vs_rlvr.report import dynamics

MODELS = ("base", "sft", "rlvr")


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    built = build_experiment(tmp_path_factory.mktemp("exp"), n_problems=50, seed=0)
    assert report.main(["--experiment-dir", str(built["dir"])]) == 0
    built["report"] = json.loads((built["dir"] / "report" / "report.json").read_text())
    return built


def _wilson(k: int, n: int) -> list[float]:
    ci = sps.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    return [ci.low, ci.high]


def test_prints_report_md_path_last(tmp_path, capsys):
    built = build_experiment(tmp_path, wandb_runs=False)
    out = tmp_path / "elsewhere"
    assert report.main(["--experiment-dir", str(built["dir"]), "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == str(out / "report.md")
    assert sorted(p.name for p in out.iterdir()) == ["figures", "report.html", "report.json", "report.md"]


def test_model_accuracies_match_samples(experiment):
    data = experiment["report"]
    assert (data["format"], data["version"]) == ("sft-vs-rlvr/report", 3)
    assert [m["name"] for m in data["models"]] == list(MODELS)
    for model in data["models"]:
        samples = experiment["samples"][model["name"]]
        n = len(samples)
        assert model["n"] == n == 50
        for grader, key in (("robust", "correct"), ("verifier", "verifier_correct")):
            k = sum(s[key] for s in samples)
            assert model["graders"][grader]["correct"] == k
            assert model["graders"][grader]["accuracy"] == k / n
            assert model["graders"][grader]["ci95"] == pytest.approx(_wilson(k, n), abs=1e-15)
        assert model["counts"] == {
            "n": n,
            "truncated": sum(s["truncated"] for s in samples),
            "no_answer": sum(s["extracted"] is None for s in samples),
            "grader_disagreements": sum(s["correct"] != s["verifier_correct"] for s in samples),
        }
        assert model["mean_response_tokens"] == pytest.approx(sum(s["response_tokens"] for s in samples) / n)
        assert model["results_file"] == f"eval/{model['name']}_results.json"


def test_paired_comparisons_match_samples(experiment):
    comparisons = {(c["a"], c["b"], c["grader"]): c for c in experiment["report"]["comparisons"]}
    assert list(comparisons)[:2] == [("rlvr", "sft", "robust"), ("rlvr", "sft", "verifier")]
    assert len(comparisons) == 6
    for (a, b, grader), c in comparisons.items():
        key = {"robust": "correct", "verifier": "verifier_correct"}[grader]
        by_id_a = {s["id"]: s[key] for s in experiment["samples"][a]}
        by_id_b = {s["id"]: s[key] for s in experiment["samples"][b]}
        assert by_id_a.keys() == by_id_b.keys()
        pairs = [(by_id_a[i], by_id_b[i]) for i in by_id_a]
        table = {
            "both_correct": sum(x and y for x, y in pairs),
            "a_only": sum(x and not y for x, y in pairs),
            "b_only": sum(y and not x for x, y in pairs),
            "neither": sum(not x and not y for x, y in pairs),
        }
        assert c["table"] == table
        assert c["n_paired"] == len(pairs) == 50
        assert c["unpaired"] == {"a_only_ids": 0, "b_only_ids": 0}
        n = len(pairs)
        assert c["difference"] == pytest.approx((table["a_only"] - table["b_only"]) / n, abs=1e-15)
        assert c["accuracy_a"] - c["accuracy_b"] == pytest.approx(c["difference"], abs=1e-15)
        discordant = table["a_only"] + table["b_only"]
        assert c["mcnemar_p"] == pytest.approx(sps.binomtest(table["a_only"], discordant, 0.5).pvalue, rel=1e-12)
        lo, hi = c["bootstrap_ci95"]
        assert lo <= c["difference"] <= hi
        # scipy's own percentile bootstrap of the paired differences (another random stream): the bounds agree
        # within the granularity of a mean over 50 problems plus Monte Carlo error.
        diffs = np.array([float(x) - float(y) for x, y in pairs])
        reference = sps.bootstrap((diffs,), np.mean, n_resamples=10000, method="percentile", confidence_level=0.95,
                                  random_state=np.random.default_rng(7)).confidence_interval
        assert lo == pytest.approx(reference.low, abs=0.025) and hi == pytest.approx(reference.high, abs=0.025)


def test_rlvr_samples_were_reordered(experiment):
    """Guards the pairing test: it only proves id matching if the files are in different orders."""
    order = lambda name: [s["id"] for s in experiment["samples"][name]]  # noqa: E731
    assert order("rlvr") != order("sft") and sorted(order("rlvr")) == sorted(order("sft"))


def test_curves_equal_logged_values(experiment):
    dynamics = experiment["report"]["dynamics"]
    logged = experiment["logged"]
    expected = {
        ("sft", "loss", "train/loss"), ("sft", "learning_rate", "train/learning_rate"),
        ("sft", "grad_norm", "train/grad_norm"), ("rlvr", "solve_rate", "train/reward"),
        ("rlvr", "reward_std", "train/reward_std"), ("rlvr", "kl", "train/kl"), ("rlvr", "loss", "train/loss"),
        ("rlvr", "grad_norm", "train/grad_norm"),
    }
    found = {(stage, metric, curve["key"]) for stage, d in dynamics.items() for metric, curve in d["metrics"].items()}
    assert found == expected
    for stage, metric, key in expected:
        curve = dynamics[stage]["metrics"][metric]
        points = [[row["train/global_step"], row[key]] for row in logged[stage] if key in row and row[key] == row[key]]
        assert curve["points"] == points
        assert curve["step_key"] == "train/global_step"
        values = [v for _, v in points]
        assert (curve["n_points"], curve["first"], curve["last"]) == (len(points), points[0], points[-1])
        assert (curve["min"], curve["max"]) == (min(values), max(values))
    assert dynamics["rlvr"]["metrics"]["kl"]["n_points"] == 29  # the NaN row is dropped
    assert dynamics["sft"]["source"]["run_id"] == "sftrun01"
    assert dynamics["rlvr"]["source"]["run_id"] == "rlvrrun1"


def test_reproducibility_section(experiment):
    repro = experiment["report"]["reproducibility"]
    assert repro["same_data"] is True and repro["same_shared_settings"] is True
    sft = repro["stages"]["sft"]
    assert sft["repo_commit"] == "0123456789abcdef" and sft["exit_status"] == 0
    assert sft["packages"] == {"torch": "2.13.0", "trl": "1.16.0"}
    assert sft["data"]["files.test.jsonl.sha256"] == "feed"
    assert sft["wandb"]["run_id"] == "sftrun01" and sft["wandb"]["mode"] == "offline"
    md = (experiment["dir"] / "report" / "report.md").read_text()
    for text in ("0123456789abcdef", "sftrun01", "rlvrrun1", "2026-11-26T21:05:00Z", "feed"):
        assert text in md


def test_every_number_in_markdown_tables_is_in_json(experiment):
    md = (experiment["dir"] / "report" / "report.md").read_text()
    assert_table_numbers_in_json(md, experiment["report"])


def test_html_is_self_contained(experiment):
    html = (experiment["dir"] / "report" / "report.html").read_text()
    sources = re.findall(r'(?:src|href)\s*=\s*"([^"]*)"', html)
    # accuracy, dynamics, efficiency, lengths (no sampled completions here, so no pass@k figures)
    assert len(sources) == len(experiment["report"]["figures"]) == 4
    assert all(src.startswith("data:image/png;base64,") for src in sources)
    assert "http://" not in html and "https://" not in html and "<link" not in html and "<script" not in html
    md = (experiment["dir"] / "report" / "report.md").read_text()
    for figure in experiment["report"]["figures"]:
        assert (experiment["dir"] / "report" / figure).read_bytes().startswith(b"\x89PNG")
        assert f"]({figure})" in md


def test_output_is_deterministic(experiment, tmp_path):
    out = tmp_path / "again"
    assert report.main(["--experiment-dir", str(experiment["dir"]), "--out", str(out)]) == 0
    first = experiment["dir"] / "report"
    for path in sorted(p for p in first.rglob("*") if p.is_file()):
        assert (out / path.relative_to(first)).read_bytes() == path.read_bytes(), path.name


def test_inconsistent_results_is_an_error(tmp_path, capsys):
    built = build_experiment(tmp_path, wandb_runs=False)
    path = built["dir"] / "eval" / "sft_results.json"
    results = json.loads(path.read_text())
    results["graders"]["robust"]["correct"] += 1
    path.write_text(json.dumps(results))
    with pytest.raises(report.InconsistentResults, match=r"sft_results\.json.*graders\.robust\.correct"):
        report.build_report(built["dir"])
    assert report.main(["--experiment-dir", str(built["dir"])]) == 2
    assert "sft_results.json" in capsys.readouterr().err
    assert not (built["dir"] / "report").exists()


def test_rounded_accuracy_off_by_more_than_rounding_is_an_error(tmp_path):
    built = build_experiment(tmp_path, wandb_runs=False)
    path = built["dir"] / "eval" / "base_results.json"
    results = json.loads(path.read_text())
    results["accuracy"] += 0.002
    path.write_text(json.dumps(results))
    with pytest.raises(report.InconsistentResults, match=r"base_results\.json.*accuracy"):
        report.build_report(built["dir"])


def test_unknown_results_version_names_the_file(tmp_path):
    built = build_experiment(tmp_path, wandb_runs=False)
    path = built["dir"] / "eval" / "rlvr_results.json"
    results = json.loads(path.read_text())
    results["version"] = 99
    path.write_text(json.dumps(results))
    with pytest.raises(UserError, match=r"rlvr_results\.json.*version 99"):
        report.build_report(built["dir"])


def test_missing_rlvr_results_degrades(tmp_path):
    built = build_experiment(tmp_path, models=("base", "sft"), wandb_runs=False)
    md_path = report.build_report(built["dir"])
    data = json.loads((md_path.parent / "report.json").read_text())
    assert [m["name"] for m in data["models"]] == ["base", "sft"]
    assert {(c["a"], c["b"]) for c in data["comparisons"]} == {("sft", "base")}
    assert "no eval/rlvr_results.json: run ./evaluate_comparison.sh" in data["missing"]
    assert data["dynamics"]["sft"]["missing"].startswith("no sft/manifest.json")
    md = md_path.read_text()
    assert "Missing: no eval/rlvr_results.json: run ./evaluate_comparison.sh" in md
    assert "Missing: no rlvr/manifest.json" in md
    assert (md_path.parent / "report.html").exists()


def test_manifest_without_wandb_run_degrades(tmp_path):
    built = build_experiment(tmp_path, wandb_runs=True)
    for run_dir in (built["dir"] / "rlvr" / "wandb").glob("offline-run-*"):
        for path in sorted(run_dir.rglob("*"), reverse=True):
            path.rmdir() if path.is_dir() else path.unlink()
        run_dir.rmdir()
    data = json.loads((report.build_report(built["dir"]).parent / "report.json").read_text())
    assert "no W&B history for rlvr" in data["dynamics"]["rlvr"]["missing"]
    assert data["dynamics"]["sft"]["metrics"]["loss"]["n_points"] == 40


def test_no_results_is_a_user_error(tmp_path, capsys):
    built = build_experiment(tmp_path, models=(), wandb_runs=False)
    built["dir"].mkdir(parents=True, exist_ok=True)
    with pytest.raises(UserError, match="run ./evaluate_comparison.sh first"):
        report.build_report(built["dir"])
    assert report.main(["--experiment-dir", str(built["dir"])]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: no evaluation results") and "evaluate_comparison.sh first" in err[0]


def test_missing_experiment_dir_is_a_user_error(tmp_path, capsys):
    assert report.main(["--experiment-dir", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_unpaired_ids_are_counted(tmp_path):
    built = build_experiment(tmp_path, wandb_runs=False)
    sft = built["samples"]["sft"][:-5]  # the SFT evaluation stopped 5 problems short
    write_model_eval(built["dir"] / "eval", "sft", sft, "tiny-seed42")
    data = json.loads((report.build_report(built["dir"]).parent / "report.json").read_text())
    rlvr_sft = next(c for c in data["comparisons"] if (c["a"], c["b"]) == ("rlvr", "sft"))
    assert rlvr_sft["n_paired"] == 45
    assert rlvr_sft["unpaired"] == {"a_only_ids": 5, "b_only_ids": 0}
    sft_ids = {s["id"] for s in sft}
    rlvr = {s["id"]: s["correct"] for s in built["samples"]["rlvr"]}
    assert rlvr_sft["accuracy_a"] == sum(rlvr[i] for i in sft_ids) / 45


def test_extra_models_follow_the_main_three(tmp_path):
    built = build_experiment(tmp_path, models=("sft_step10", "rlvr", "base", "sft"), wandb_runs=False)
    data = json.loads((report.build_report(built["dir"]).parent / "report.json").read_text())
    assert [m["name"] for m in data["models"]] == ["base", "sft", "rlvr", "sft_step10"]


def test_open_instruct_metric_aliases():
    finetune = [{"train_loss": 2.0 - 0.1 * i, "learning_rate": 1e-5, "_step": i + 1} for i in range(5)]
    metrics = dynamics.extract_metrics("sft", finetune)
    assert metrics["loss"]["key"] == "train_loss" and metrics["loss"]["step_key"] == "_step"
    assert metrics["loss"]["points"] == [[i + 1, 2.0 - 0.1 * i] for i in range(5)]
    assert set(metrics) == {"loss", "learning_rate"}
    grpo = [{"objective/verifiable_reward": 0.1 * i, "objective/kl0_avg": 0.01 * i, "loss/policy_avg": -0.1,
             "val/sequence_lengths": 200 + i, "training_step": i, "_step": 100 + i} for i in range(4)]
    metrics, unavailable = dynamics.extract("rlvr", grpo)
    # The filtered reward is not shown as the reward: without the filter counts no solve rate can be rebuilt.
    assert {m: c["key"] for m, c in metrics.items()} == {
        "kl": "objective/kl0_avg", "loss": "loss/policy_avg", "response_length_survivors": "val/sequence_lengths"}
    assert "solve_rate" not in metrics and "cannot be rebuilt" in unavailable["solve_rate"]
    assert "batch/filtered_prompts" in unavailable["solve_rate"]
    assert metrics["kl"]["points"] == [[i, 0.01 * i] for i in range(4)]  # training_step beats _step


def test_first_alias_with_data_wins():
    history = [{"train/loss": float("nan"), "train_loss": 3.0, "_step": 7},
               {"train_loss": 2.0, "_step": 8, "learning_rate": 1e-5, "lr": 5.0}]
    metrics = dynamics.extract_metrics("sft", history)
    assert (metrics["loss"]["key"], metrics["loss"]["points"]) == ("train_loss", [[7, 3.0], [8, 2.0]])
    assert (metrics["learning_rate"]["key"], metrics["learning_rate"]["points"]) == ("learning_rate", [[8, 1e-5]])


def test_missing_samples_file_is_an_error(tmp_path):
    built = build_experiment(tmp_path, wandb_runs=False)
    (built["dir"] / "eval" / "sft_samples.jsonl").unlink()
    with pytest.raises(report.InconsistentResults, match=r"sft_samples\.jsonl is missing"):
        report.build_report(built["dir"])


def test_unknown_manifest_version_names_the_file(tmp_path):
    built = build_experiment(tmp_path, wandb_runs=True)
    path = built["dir"] / "sft" / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["format"] = "something-else"
    path.write_text(json.dumps(manifest))
    with pytest.raises(UserError, match=r"sft/manifest\.json is format 'something-else'"):
        report.build_report(built["dir"])
