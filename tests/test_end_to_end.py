"""The tiny profile, training to report, through the four user entry points, the third arm included.

One run of the whole pipeline (module-scoped fixture) feeds every test here, on the tiny profile's settings with
fewer rows and snapshots (conftest.reduced_configs) so the suite stays quick; the demo (make demo, timed
by benchmarks/demo_stages.sh) runs the full tiny settings. Numbers below come from those settings. Canary
tokens are set in HF_TOKEN and WANDB_API_KEY; no file the pipeline writes may contain them.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import pasted_argv, reduced_configs
from scipy.stats import binomtest, norm

from sft_vs_rlvr import atomic
from sft_vs_rlvr import settings as settings_mod
from sft_vs_rlvr.report import wandb_runs

REPO = Path(__file__).resolve().parent.parent
CANARIES = {"HF_TOKEN": "hf_CANARYcanary1234567890", "WANDB_API_KEY": "wandbCANARY0123456789abcdef0123456789abcd"}
ENTRY_POINTS = {
    "sft": ["./experiment_sft_llama8b.sh"],
    "rlvr": ["./experiment_rlvr_llama8b.sh"],
    "eval": ["./evaluate_comparison.sh"],
    "analyze": [sys.executable, "analyze_results.py", "--weights"],
}


pytestmark = pytest.mark.slow


def settings(root: Path) -> settings_mod.Settings:
    return settings_mod.load("tiny", reduced_configs(root))


def _env(root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("EXPERIMENT_ID", "CONFIG_DIR", "WANDB_MODE", "FRESH", "OPEN_INSTRUCT_DIR")}
    env.update(CANARIES)
    env.update(PROFILE="tiny", OUTPUT_ROOT=str(root / "runs"), SFT_VS_RLVR_CACHE=str(root / "cache"),
               CONFIG_DIR=str(reduced_configs(root)),
               HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               # Arms this short can fall below the pilot's threshold; the gate itself is test_pilot.py's business,
               # on the committed settings. Each RL arm still runs its pilot and records it.
               FORCE="1",
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    return env


def run_entry(name: str, root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(ENTRY_POINTS[name] + list(args), cwd=REPO, env=_env(root),
                            capture_output=True, text=True, timeout=900)
    if check and result.returncode != 0:
        raise AssertionError(f"{name} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory, tiny_base):
    root = tmp_path_factory.mktemp("e2e")
    # The pipeline's own model cache, holding the base model this machine built once (as a user's second
    # experiment finds it); building it is tests/test_tiny_model.py's business.
    shutil.copytree(tiny_base, root / "cache" / "models" / tiny_base.name)
    early = {name: run_entry(name, root, check=False) for name in ("eval", "analyze")}
    outputs = {name: run_entry(name, root) for name in ("sft", "rlvr")}
    outputs["sft_rlvr"] = subprocess.run(ENTRY_POINTS["rlvr"], cwd=REPO, env={**_env(root), "INIT_FROM": "sft"},
                                         capture_output=True, text=True, timeout=900)
    assert outputs["sft_rlvr"].returncode == 0, outputs["sft_rlvr"].stderr[-3000:]
    outputs.update({name: run_entry(name, root) for name in ("eval", "analyze")})
    return root, root / "runs" / "tiny-seed42", outputs, early


def test_stages_out_of_order_are_refused_with_one_line(pipeline):
    _, _, _, early = pipeline
    for name, result in early.items():
        assert result.returncode == 2, name
        assert result.stderr.strip().count("\n") == 0 and result.stderr.startswith("error: no experiment at")
        assert "experiment_sft_llama8b.sh" in result.stderr


def test_run_folders_and_manifests(pipeline):
    _, exp, _, _ = pipeline
    data = json.loads((exp / "data" / "manifest.json").read_text())
    for stage in ("sft", "rlvr"):
        manifest = json.loads((exp / stage / "manifest.json").read_text())
        assert manifest["status"] == "completed" and manifest["exit_status"] == 0
        assert manifest["command"][:3] == ["python", "-m", "sft_vs_rlvr.tiny.train"] and manifest["command"][3] == stage
        assert manifest["settings"]["shared"]["seed"] == 42
        assert manifest["data"] == data
        assert {"torch", "transformers", "trl", "wandb"} <= set(manifest["packages"])
        assert "repo_commit" in manifest and manifest["started_at"] <= manifest["ended_at"]
        assert manifest["wandb"]["mode"] == "offline" and manifest["wandb"]["group"] == "tiny-seed42"
        model = exp / stage / manifest["final_model"]
        assert (model / "config.json").is_file() and (model / "model.safetensors").is_file()
        assert (model / "tokenizer.json").is_file()
        assert len(manifest["checkpoints"]) >= 2
        for checkpoint in manifest["checkpoints"]:
            assert (exp / stage / checkpoint["path"] / "model.safetensors").is_file()
        assert (exp / stage / "train.log").stat().st_size > 0
    sft = json.loads((exp / "sft" / "manifest.json").read_text())
    rlvr = json.loads((exp / "rlvr" / "manifest.json").read_text())
    for key in ("base_model", "seed", "chat_template", "instruction", "max_response_length", "wandb_project"):
        assert sft["settings"]["shared"][key] == rlvr["settings"]["shared"][key]


def test_wandb_offline_runs_read_back_and_rl_shows_learning_signal(pipeline):
    _, exp, _, _ = pipeline
    histories = {}
    for stage in ("sft", "rlvr"):
        manifest = json.loads((exp / stage / "manifest.json").read_text())
        run = wandb_runs.read_offline_run(wandb_runs.find_offline_run(exp / stage / "wandb", manifest["wandb"]["run_id"]))
        assert run.run_id == manifest["wandb"]["run_id"] and run.group == "tiny-seed42"
        histories[stage] = run.history
    sft_loss = [row["train/loss"] for row in histories["sft"] if "train/loss" in row]
    assert len(sft_loss) >= 10 and all(math.isfinite(v) for v in sft_loss)
    rl = [row for row in histories["rlvr"] if "train/reward_std" in row]
    assert rl, "GRPO logged no reward_std"
    assert max(row["train/reward_std"] for row in rl) > 0       # rewards vary within groups
    assert max(row["train/grad_norm"] for row in rl) > 0        # and the policy gets a gradient


def _recompute(samples: list[dict], key: str) -> tuple[int, int]:
    return sum(bool(s[key]) for s in samples), len(samples)


def test_report_numbers_equal_those_recomputed_from_per_sample_files(pipeline):
    root, exp, outputs, _ = pipeline
    report = json.loads((exp / "report" / "report.json").read_text())
    assert outputs["analyze"].stdout.strip().splitlines()[-1] == str(exp / "report" / "report.md")
    samples = {name: atomic.read_jsonl(exp / "eval" / f"{name}_samples.jsonl") for name in ("base", "sft", "rlvr")}
    models = {m["name"]: m for m in report["models"]}
    assert set(models) == {"base", "sft", "rlvr", "sft_rlvr"}
    n_test = settings(root).shared["test_size"]
    for name, rows in samples.items():
        assert len(rows) == n_test
        for grader, key in (("robust", "correct"), ("verifier", "verifier_correct")):
            correct, n = _recompute(rows, key)
            assert models[name]["graders"][grader]["correct"] == correct
            assert models[name]["graders"][grader]["accuracy"] == pytest.approx(correct / n)
            low, high = binomtest(correct, n).proportion_ci(method="wilson")
            assert models[name]["graders"][grader]["ci95"] == pytest.approx([low, high])
        results = json.loads((exp / "eval" / f"{name}_results.json").read_text())
        assert results["accuracy"] == pytest.approx(_recompute(rows, "correct")[0] / n_test)
    headline = next(c for c in report["comparisons"] if (c["a"], c["b"], c["grader"]) == ("rlvr", "sft", "robust"))
    by_id = {s["id"]: s["correct"] for s in samples["sft"]}
    rl_only = sum(s["correct"] and not by_id[s["id"]] for s in samples["rlvr"])
    sft_only = sum(by_id[s["id"]] and not s["correct"] for s in samples["rlvr"])
    assert (headline["table"]["a_only"], headline["table"]["b_only"]) == (rl_only, sft_only)
    expected_p = binomtest(rl_only, rl_only + sft_only, 0.5).pvalue if rl_only + sft_only else 1.0
    assert headline["mcnemar_p"] == pytest.approx(expected_p)
    assert headline["difference"] == pytest.approx((rl_only - sft_only) / n_test)
    assert set(report["dynamics"]) == {"sft", "rlvr", "sft_rlvr"}
    html = (exp / "report" / "report.html").read_text()
    assert "data:image/png;base64," in html and "http://" not in html and "https://" not in html


def test_every_report_section_has_the_tiny_models_numbers(pipeline):
    """Sections 2-7 on the real tiny runs: recomputed here from the samples, manifests and checkpoint files."""
    from itertools import combinations

    root, exp, _, _ = pipeline
    n_test = settings(root).shared["test_size"]
    report = json.loads((exp / "report" / "report.json").read_text())
    md = (exp / "report" / "report.md").read_text()
    for heading in ("1. Headline", "2. Budgets", "3. Learning dynamics", "4. Sample efficiency",
                    "5. Solution diversity", "6. Error patterns", "7. Robustness", "8. Several seeds",
                    "9. Reproducibility"):
        assert f"## {heading}" in md
    for arm in ("sft", "rlvr"):  # budgets from the manifest and the W&B token counter
        manifest = json.loads((exp / arm / "manifest.json").read_text())
        budget = report["budgets"][arm]
        assert budget["tokens_source"] == "W&B train/num_tokens (last value)" and budget["tokens_trained"] > 0
        assert budget["gpus"] == 0 and budget["gpu_hours"] is None  # a CPU run
        points = report["efficiency"]["curves"][arm]
        assert [p["examples"] for p in points[1:-1]] == [c["examples_seen"] for c in manifest["checkpoints"]]
    rows = atomic.read_jsonl(exp / "eval" / "rlvr_samples.jsonl")
    n = len(rows[0]["samples"])
    for k in (1, 2, n):  # pass@k by brute force over every subset of the samples
        expected = sum(sum(any(row["samples"][i]["correct"] for i in subset) for subset in combinations(range(n), k))
                       / len(list(combinations(range(n), k))) for row in rows) / len(rows)
        assert report["diversity"]["rlvr"]["pass_at_k"]["robust"][str(k)] == pytest.approx(expected)
    hard = [o for o in report["ood"] if o["set"] == "synthetic-hard"]
    assert {o["model"] for o in hard} >= {"base", "sft", "rlvr"}
    ood_rows = atomic.read_jsonl(exp / "eval" / "ood" / "synthetic-hard" / "sft_samples.jsonl")
    sft_hard = next(o for o in hard if o["model"] == "sft")
    n_hard = len(ood_rows)
    assert sft_hard["n"] == n_hard and sft_hard["accuracy"] == pytest.approx(sum(r["correct"] for r in ood_rows) / n_hard)
    p_ood, p_gsm = sft_hard["accuracy"], report["models"][1]["graders"]["robust"]["accuracy"]
    half = norm.ppf(0.975) * (p_ood * (1 - p_ood) / n_hard + p_gsm * (1 - p_gsm) / n_test) ** 0.5
    assert sft_hard["drop_ci95"] == pytest.approx([p_gsm - p_ood - half, p_gsm - p_ood + half], abs=1e-4)
    categories = report["errors"]["categories"]["sft"]["counts"]
    assert sum(categories.values()) == n_test and categories["correct"] == report["models"][1]["graders"]["robust"]["correct"]


def test_no_secret_in_any_file_written(pipeline):
    root, _, outputs, _ = pipeline
    for path in (root / "runs").rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            for canary in CANARIES.values():
                assert canary.encode() not in content, path
    for result in outputs.values():
        for canary in CANARIES.values():
            assert canary not in result.stdout + result.stderr


def test_second_launch_skips_finished_stages_and_reuses_evaluations(pipeline):
    root, exp, _, _ = pipeline
    before = (exp / "sft" / "manifest.json").read_text()
    again = run_entry("sft", root)
    assert "sft: already completed" in again.stderr
    assert (exp / "sft" / "manifest.json").read_text() == before
    evaluated = run_entry("eval", root)
    arms = ("sft", "rlvr", "sft_rlvr")
    checkpoints = sum(len(json.loads((exp / arm / "manifest.json").read_text())["checkpoints"]) for arm in arms)
    assert checkpoints >= 6 and evaluated.stdout.count("already evaluated") == 1 + len(arms) + checkpoints


def test_evaluation_writes_sampled_metrics_checkpoints_and_an_index(pipeline):
    root, exp, _, _ = pipeline
    options = settings(root).eval
    index = json.loads((exp / "eval" / "index.json").read_text())
    names = {m["name"] for m in index["models"] if m["status"] in ("evaluated", "reused")}
    for arm in ("sft", "rlvr"):
        for checkpoint in json.loads((exp / arm / "manifest.json").read_text())["checkpoints"]:
            name = f"{arm}_step{checkpoint['step']}"
            assert name in names
            results = json.loads((exp / "eval" / f"{name}_results.json").read_text())
            assert results["checkpoint"]["examples_seen"] == checkpoint["examples_seen"]
    for name in ("base", "sft", "rlvr"):
        results = json.loads((exp / "eval" / f"{name}_results.json").read_text())
        assert results["sampled"]["n_per_problem"] == options["samples"]
        curve = results["sampled"]["robust"]["pass@k"]
        assert curve["1"] <= curve["2"] <= curve["4"] and results["accuracy"] <= 1
        reference = json.loads((exp / "eval" / f"{name}_reference_results.json").read_text())
        assert reference["n"] == options["reference_limit"] and reference["num_fewshot"] == 8
    report = json.loads((exp / "report" / "report.json").read_text())
    assert [r["name"] for r in report["reference"]["ours"]] == ["base", "sft", "rlvr", "sft_rlvr"]
    for ours in report["reference"]["ours"]:  # Wilson intervals of the reference protocol, from its own samples
        samples = atomic.read_jsonl(exp / "eval" / f"{ours['name']}_reference_samples.jsonl")
        assert len(samples) == ours["n"] == options["reference_limit"]
        correct = round(ours["metrics"]["strict-match"]["exact_match"] * ours["n"])
        low, high = binomtest(correct, ours["n"]).proportion_ci(method="wilson")
        assert ours["ci95"]["strict-match"] == pytest.approx([low, high])


def test_help_of_every_entry_point(pipeline):
    root = pipeline[0]
    for name in ENTRY_POINTS:
        result = run_entry(name, root, "--help")
        assert "PROFILE" in result.stdout and ("Writes" in result.stdout or "writes" in result.stdout), name


def test_dry_run_prints_the_command_one_flag_per_line_and_writes_nothing(tmp_path):
    for name, program in (("sft", "sft_vs_rlvr.tiny.train sft"), ("rlvr", "sft_vs_rlvr.tiny.train rlvr")):
        result = run_entry(name, tmp_path, "--dry-run")
        lines = result.stdout.rstrip("\n").split("\n")
        assert lines[0] == "python \\" and lines[1] == f"  -m {program} \\"
        assert all(line.startswith("  --") and line.endswith(" \\") for line in lines[2:-1]), lines
        argv = pasted_argv(result.stdout)
        assert argv[:4] == ["python", "-m", *program.split()]
        assert argv[argv.index("--seed") + 1] == str(settings_mod.load("tiny").shared["seed"])
    assert not (tmp_path / "runs").exists() and not (tmp_path / "cache").exists()


def test_unknown_profile_and_option(tmp_path):
    env_result = subprocess.run(["./experiment_rlvr_llama8b.sh"], cwd=REPO, env={**_env(tmp_path), "PROFILE": "tiniest"},
                                capture_output=True, text=True)
    assert env_result.returncode == 2
    assert env_result.stderr.strip() == "error: unknown profile 'tiniest'; choose one of llama8b, tiny (PROFILE=... or --profile)"
    bad = run_entry("sft", tmp_path, "--frsh", check=False)
    assert bad.returncode == 2 and "unknown option '--frsh'" in bad.stderr
    assert not (tmp_path / "runs").exists()


def test_third_arm_rlvr_from_the_sft_model_is_trained_evaluated_and_reported(pipeline):
    _, exp, _, _ = pipeline
    manifest = json.loads((exp / "sft_rlvr" / "manifest.json").read_text())
    sft = json.loads((exp / "sft" / "manifest.json").read_text())
    command = manifest["command"]
    assert command[command.index("--model") + 1] == str(exp / "sft" / sft["final_model"])
    rlvr = json.loads((exp / "rlvr" / "manifest.json").read_text())["command"]
    same = [a for a in command if a not in (command[command.index("--model") + 1], str(exp / "sft_rlvr"))]
    assert same == [a for a in rlvr if a not in (rlvr[rlvr.index("--model") + 1], str(exp / "rlvr"))]
    report = json.loads((exp / "report" / "report.json").read_text())
    pairs = {(c["a"], c["b"]) for c in report["comparisons"]}
    assert {("sft_rlvr", "sft"), ("sft_rlvr", "rlvr"), ("sft_rlvr", "base")} <= pairs
    assert "sft_rlvr" in report["dynamics"]
    for stage in ("rlvr", "sft_rlvr"):  # the pilot ran before each RL arm, with the arm's own starting model
        pilot = json.loads((exp / stage / "pilot.json").read_text())
        assert pilot["key"]["model"] == json.loads((exp / stage / "manifest.json").read_text())["command"][
            command.index("--model") + 1]
        assert json.loads((exp / stage / "manifest.json").read_text())["pilot"]["prompts"] == pilot["prompts"]


def test_weight_level_comparison_is_in_the_report(pipeline):
    _, exp, _, _ = pipeline
    report = json.loads((exp / "report" / "report.json").read_text())
    result = report["weights"]
    assert set(result["meta"]["arms"]) >= {"sft", "rlvr"} and "sft vs rlvr" in result["overall"]["pairs"]
    for kind in ("attn_q", "mlp_down", "embedding"):
        group = result["by_kind"][kind]
        assert group["arms"]["sft"]["rel_norm"] > 0 and -1 <= group["pairs"]["sft vs rlvr"]["cosine"] <= 1
    assert (exp / "weights" / "weight_diff.json").is_file()
    assert "figures/weights_by_layer.png" in report["figures"]
    assert "## Where in the network each method learns" in (exp / "report" / "report.md").read_text()


def test_weight_measures_on_the_tiny_models_equal_a_direct_computation(pipeline):
    """One attention matrix of the real tiny base and SFT models, recomputed here from the safetensors files."""
    import torch
    from safetensors.torch import load_file

    _, exp, _, _ = pipeline
    result = json.loads((exp / "weights" / "weight_diff.json").read_text())
    name = "model.layers.1.self_attn.q_proj.weight"
    base = load_file(str(Path(result["meta"]["base"]) / "model.safetensors"))[name].float()
    sft = load_file(str(Path(result["meta"]["arms"]["sft"]) / "model.safetensors"))[name].float()
    rlvr = load_file(str(Path(result["meta"]["arms"]["rlvr"]) / "model.safetensors"))[name].float()
    entry = next(t for t in result["tensors"] if t["name"] == name)
    assert (entry["layer"], entry["kind"]) == (1, "attn_q")
    update = sft - base
    assert entry["arms"]["sft"]["rel_norm"] == pytest.approx((update.norm() / base.norm()).item(), rel=1e-5)
    exponent = torch.floor(torch.log2(base.abs().clamp_min(2.0 ** -126)))
    changed = update.abs() >= torch.where(base == 0, torch.tensor(2.0 ** -134), 2.0 ** (exponent - 8))
    assert entry["arms"]["sft"]["changed_fraction"] == pytest.approx(changed.float().mean().item())
    singular = torch.linalg.svdvals(update)
    p = singular / singular.sum()
    assert entry["arms"]["sft"]["spectrum"]["effective_rank"] == pytest.approx(
        torch.exp(-(p * torch.log(p)).sum()).item(), rel=1e-4)
    other = rlvr - base
    cosine = (update.flatten() @ other.flatten() / (update.norm() * other.norm())).item()
    assert entry["pairs"]["sft vs rlvr"]["cosine"] == pytest.approx(cosine, rel=1e-5)
