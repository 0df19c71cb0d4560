"""The W&B run reader against run files written by the real wandb package in offline mode."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from conftest_report_helpers import write_offline_run

from sft_vs_rlvr.report import wandb_runs
from sft_vs_rlvr.report.wandb_runs import (
    BLOCK_SIZE,
    CorruptRunFile,
    MissingInput,
    find_offline_run,
    history_for_manifest,
    read_offline_history,
    read_offline_run,
    series,
)

N_STEPS = 3000
LONG_TEXT = "0123456789" * 8000  # 80 kB: one record spread over FIRST, MIDDLE and LAST chunks


def _rows() -> list[dict]:
    return [{"train/loss": 1.0 / (i + 1) + 1e-3 * (i % 13), "train/global_step": i} for i in range(N_STEPS)]


@pytest.fixture(scope="module")
def big_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("wandb_big")
    return write_offline_run(
        root, _rows(), run_id="bigrun01", project="proj-x", group="grp-y",
        config={"lr": 0.1, "long": LONG_TEXT, "nested": {"k": [1, 2]}}, summary={"final_score": 0.75},
    )


def _run_file(run_dir: Path) -> Path:
    (path,) = run_dir.glob("run-*.wandb")
    return path


def test_reads_every_history_value_across_blocks(big_run):
    assert _run_file(big_run).stat().st_size > 10 * BLOCK_SIZE  # many block boundaries crossed
    history = read_offline_history(big_run)
    expected = _rows()
    assert len(history) == N_STEPS
    for row, logged in zip(history, expected):
        assert row["train/loss"] == logged["train/loss"]
        assert row["train/global_step"] == logged["train/global_step"]
    assert [row["_step"] for row in history] == list(range(N_STEPS))


def test_reads_identity_config_and_summary(big_run):
    run = read_offline_run(big_run)
    assert (run.run_id, run.project, run.group) == ("bigrun01", "proj-x", "grp-y")
    assert run.config["lr"] == 0.1
    assert run.config["long"] == LONG_TEXT  # a record larger than two blocks
    assert run.config["nested"] == {"k": [1, 2]}
    assert run.summary["final_score"] == 0.75
    assert run.summary["train/loss"] == _rows()[-1]["train/loss"]


def test_partial_trailing_record_is_skipped(big_run, tmp_path):
    full = read_offline_history(big_run)
    data = _run_file(big_run).read_bytes()
    # BLOCK_SIZE + 11 cuts the 80 kB run record (FIRST chunk read, LAST never comes): no rows, no error.
    for cut in (BLOCK_SIZE + 11, 3 * BLOCK_SIZE - 2, len(data) // 2 + 5, len(data) - 3):
        run_dir = tmp_path / f"offline-run-20260101_000000-cut{cut}"
        run_dir.mkdir()
        (run_dir / "run-cut.wandb").write_bytes(data[:cut])
        history = read_offline_history(run_dir)
        assert history == full[: len(history)]
        if cut > len(data) // 2:
            assert len(history) > N_STEPS // 3


def test_corrupt_record_raises(big_run, tmp_path):
    data = bytearray(_run_file(big_run).read_bytes())
    data[BLOCK_SIZE // 2] ^= 0xFF
    run_dir = tmp_path / "offline-run-20260101_000000-bad"
    run_dir.mkdir()
    (run_dir / "run-bad.wandb").write_bytes(bytes(data))
    with pytest.raises(CorruptRunFile, match="checksum"):
        read_offline_history(run_dir)


def test_not_a_wandb_file_raises(tmp_path):
    (tmp_path / "run-x.wandb").write_bytes(b"PK\x03\x04 not a wandb file at all")
    with pytest.raises(CorruptRunFile, match="not a W&B run file"):
        read_offline_history(tmp_path)


def test_nested_keys_and_nan(tmp_path):
    rows = [{"a": {"b": 1, "c": {"d": 2.5}}, "m": float("nan"), "s": 0},
            {"m": 3.0, "s": 1},
            {"s": 2},
            {"m": float("inf"), "s": 3}]
    history = read_offline_history(write_offline_run(tmp_path, rows, run_id="nested01"))
    assert history[0]["a/b"] == 1 and history[0]["a/c/d"] == 2.5
    assert math.isnan(history[0]["m"])
    assert series(history, "m", "s") == [[1, 3.0]]  # absent, NaN and inf rows dropped
    assert series(history, "s", "_step") == [[0, 0], [1, 1], [2, 2], [3, 3]]


def test_find_offline_run_both_layouts(tmp_path):
    flat = write_offline_run(tmp_path / "flat", [{"x": 1}], run_id="flat0001")  # <stage>/wandb/offline-run-*
    nested = write_offline_run(tmp_path / "nested" / "wandb", [{"x": 1}], run_id="nest0001")
    assert find_offline_run(tmp_path / "flat" / "wandb") == flat
    assert find_offline_run(tmp_path / "nested" / "wandb") == nested  # <stage>/wandb/wandb/offline-run-*
    assert find_offline_run(tmp_path / "nested" / "wandb", run_id="nest0001") == nested
    with pytest.raises(MissingInput, match="no W&B run folder"):
        find_offline_run(tmp_path / "nested" / "wandb", run_id="other123")


def test_find_offline_run_several_needs_an_id(tmp_path):
    first = write_offline_run(tmp_path, [{"x": 1}], run_id="runaaaa1")
    second = write_offline_run(tmp_path, [{"x": 2}], run_id="runbbbb2")
    with pytest.raises(MissingInput, match="several.*runaaaa1.*runbbbb2"):
        find_offline_run(tmp_path / "wandb")
    assert find_offline_run(tmp_path / "wandb", run_id="runbbbb2") == second
    assert find_offline_run(tmp_path / "wandb", run_id="runaaaa1") == first


def test_history_for_manifest_offline(tmp_path):
    stage = tmp_path / "sft"
    write_offline_run(stage / "wandb", [{"train/loss": 0.5, "train/global_step": 1}], run_id="sftabc01")
    manifest = {"wandb": {"mode": "offline", "run_id": "sftabc01", "project": "p", "dir": "wandb"}}
    history = history_for_manifest(stage, manifest)
    assert series(history, "train/loss", "train/global_step") == [[1, 0.5]]


def test_history_for_manifest_online_prefers_local_copy(tmp_path, monkeypatch):
    # An online run keeps the same .wandb file in run-<date>_<time>-<id>/; the file is real, only the
    # folder is renamed from the offline layout, since no W&B server is reachable here.
    stage = tmp_path / "rlvr"
    offline_dir = write_offline_run(stage, [{"train/reward": 0.25, "train/global_step": 3}], run_id="online01")
    offline_dir.rename(offline_dir.with_name(offline_dir.name.removeprefix("offline-")))
    monkeypatch.setattr(wandb_runs, "read_online_run", lambda *a: pytest.fail("API called despite local copy"))
    manifest = {"wandb": {"mode": "online", "run_id": "online01", "project": "p", "url": "https://wandb.ai/e/p/runs/online01"}}
    assert series(history_for_manifest(stage, manifest), "train/reward", "train/global_step") == [[3, 0.25]]


def test_history_for_manifest_online_falls_back_to_api(tmp_path, monkeypatch):
    calls = []

    def fake_api(path, run_id):
        calls.append((path, run_id))
        raise RuntimeError("no API key")

    monkeypatch.setattr(wandb_runs, "read_online_run", fake_api)
    manifest = {"wandb": {"mode": "online", "run_id": "r1", "project": "p", "url": "https://wandb.ai/ent/proj/runs/r1"}}
    with pytest.raises(MissingInput, match="no API key"):
        history_for_manifest(tmp_path, manifest)
    assert calls == [("ent/proj", "r1")]


def test_history_for_manifest_missing(tmp_path):
    with pytest.raises(MissingInput, match="disabled"):
        history_for_manifest(tmp_path, {"wandb": {"mode": "disabled"}})
    with pytest.raises(MissingInput, match="no W&B run folder"):
        history_for_manifest(tmp_path, {"wandb": {"mode": "offline", "run_id": "abc"}})
    empty = tmp_path / "wandb" / "offline-run-20260101_000000-abc"
    empty.mkdir(parents=True)
    with pytest.raises(MissingInput, match="found none"):
        history_for_manifest(tmp_path, {"wandb": {"mode": "offline", "run_id": "abc"}})

