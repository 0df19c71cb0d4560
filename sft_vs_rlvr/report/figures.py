"""The report's figures (matplotlib, Agg backend), as PNG bytes with no version stamp, so reruns are identical.

Every figure draws numbers that report.json holds. With several seeds, values are the means across seeds
(seeds.mean_of), and curves logged at different steps in different seeds are drawn once per seed.
"""

from __future__ import annotations

import io
import math
from typing import Any

import matplotlib

matplotlib.use("Agg")  # never a GUI backend: the report runs on headless machines
import matplotlib.pyplot as plt  # noqa: E402

from sft_vs_rlvr.report.seeds import mean_of  # noqa: E402

GRADERS = ("robust", "verifier")


def _png(fig: plt.Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, metadata={"Software": None})
    plt.close(fig)
    return buffer.getvalue()


def _curves(points: Any) -> list[tuple[list[float], list[float]]]:
    """[(xs, ys)] from a list of [x, y] (numbers or aggregates), or one per seed from {"per_seed": [...]}."""
    if isinstance(points, dict) and "per_seed" in points:
        return [xy for seed_points in points["per_seed"] if seed_points for xy in _curves(seed_points)]
    return [([mean_of(p[0]) for p in points], [mean_of(p[1]) for p in points])]


def accuracy(models: list[dict[str, Any]]) -> bytes:
    """Grouped bars: accuracy per model and grader, with Wilson 95% intervals as error bars."""
    fig, ax = plt.subplots(figsize=(1.6 * len(models) + 2.5, 3.6))
    width = 0.8 / len(GRADERS)
    for offset, grader in enumerate(GRADERS):
        xs = [i + (offset - (len(GRADERS) - 1) / 2) * width for i in range(len(models))]
        accs = [100 * mean_of(m["graders"][grader]["accuracy"]) for m in models]
        lows = [100 * mean_of(m["graders"][grader]["ci95"][0]) for m in models]
        highs = [100 * mean_of(m["graders"][grader]["ci95"][1]) for m in models]
        ax.bar(xs, accs, width, yerr=[[max(0.0, a - lo) for a, lo in zip(accs, lows)],
                                      [max(0.0, hi - a) for a, hi in zip(accs, highs)]], capsize=3, label=grader)
    ax.set_xticks(range(len(models)), [m["name"] for m in models])
    ax.set_ylabel("accuracy (%)")
    ax.set_title("Test accuracy (greedy), 95% Wilson intervals")
    ax.legend()
    fig.tight_layout()
    return _png(fig)


def dynamics(stages: dict[str, dict[str, Any]], titles: dict[str, str], metric_titles: dict[str, str],
             plotted: tuple[str, ...]) -> bytes:
    """One panel per metric, one line per stage, against training examples seen (steps when unknown)."""
    metrics = [m for m in plotted if any(m in (d.get("metrics") or {}) for d in stages.values())]
    ncols = min(3, len(metrics))
    nrows = math.ceil(len(metrics) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3 * nrows), squeeze=False)
    for ax, metric in zip(axes.flat, metrics):
        for stage, data in stages.items():
            curve = (data.get("metrics") or {}).get(metric)
            if not curve:
                continue
            per_step = mean_of(data.get("examples_per_step"))
            for xs, ys in _curves(curve["points"]):
                ax.plot([x * per_step for x in xs] if per_step else xs, ys, linewidth=1.1, label=titles[stage])
        ax.set_title(metric_titles[metric], fontsize=9)
        ax.set_xlabel("training examples seen (SFT sequences, RL prompts)", fontsize=7)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(metrics):]:
        ax.set_visible(False)
    fig.suptitle("Learning dynamics (W&B)")
    fig.tight_layout()
    return _png(fig)


def efficiency(curves: dict[str, list[dict[str, Any]]], target: Any, titles: dict[str, str]) -> bytes:
    """Accuracy against FLOPs, tokens processed and sequences (the fair axes); the target accuracy as a line."""
    axes_keys = [("flops", "FLOPs (estimate at checkpoints)"),
                 ("tokens_processed", "tokens trained + generated (estimate at checkpoints)"),
                 ("sequences", "sequences (RL: prompts x samples; estimate at checkpoints)")]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.4))
    for ax, (key, label) in zip(axes, axes_keys):
        for arm, points in curves.items():
            pairs = [(mean_of(p[key]), 100 * mean_of(p["accuracy"])) for p in points if mean_of(p.get(key)) is not None]
            if pairs:
                ax.plot([x for x, _ in pairs], [y for _, y in pairs], marker="o", markersize=3, label=titles[arm])
        if target is not None:
            ax.axhline(100 * mean_of(target), color="grey", linestyle="--", linewidth=1, label="target")
        ax.set_xlabel(label, fontsize=8)
        ax.set_ylabel("accuracy (%)", fontsize=8)
        ax.legend(fontsize=7)
    fig.suptitle("Sample efficiency: checkpoints of each arm")
    fig.tight_layout()
    return _png(fig)


def pass_at_k(diversity: dict[str, dict[str, Any]], grader: str) -> bytes:
    """pass@k and maj@k against k (log scale), one line per model."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    for ax, (key, title) in zip(axes, (("pass_at_k", "pass@k"), ("maj_at_k", "maj@k"))):
        for name, result in diversity.items():
            curve = result[key].get(grader) or {}
            if curve:
                ks = sorted(curve, key=int)
                ax.plot([int(k) for k in ks], [100 * mean_of(curve[k]) for k in ks], marker="o", markersize=3,
                        label=name)
        ax.set_xscale("log", base=2)
        ks_drawn = sorted({int(k) for r in diversity.values() for k in (r[key].get(grader) or {})})
        ax.set_xticks(ks_drawn, [str(k) for k in ks_drawn])
        ax.minorticks_off()
        ax.set_xlabel("k (sampled completions)", fontsize=8)
        ax.set_ylabel(f"{title} (%)", fontsize=8)
        ax.set_title(f"{title}, {grader} grader", fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return _png(fig)


def lengths(diversity: dict[str, dict[str, Any]]) -> bytes:
    """Response length distributions: greedy (left) and sampled (right), one step line per model."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    for ax, kind in zip(axes, ("greedy", "sampled")):
        for name, result in diversity.items():
            stats = result["lengths"].get(kind)
            if not stats:
                continue
            edges, counts = stats["histogram"]["edges"], stats["histogram"]["counts"]
            edges, counts = [mean_of(e) for e in edges], [mean_of(c) for c in counts]
            total = sum(counts) or 1
            ax.stairs([c / total for c in counts], edges, label=name)
        ax.set_title(f"{kind} responses", fontsize=9)
        ax.set_xlabel("response tokens", fontsize=8)
        ax.set_ylabel("share of responses", fontsize=8)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.tight_layout()
    return _png(fig)


def weights(by_layer: dict[str, Any], arms: list[str], rank_key: str = "mean_signal_effective_rank") -> bytes:
    """Per layer: relative update norm, share of entries changed, and mean effective rank, one line per arm."""
    layers = sorted(by_layer, key=int)
    panels = (("rel_norm", "relative update norm"), ("changed_fraction", "entries changed"),
              (rank_key, "effective rank of the update" + (" (above rounding)" if "signal" in rank_key else "")))
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.2))
    for ax, (key, title) in zip(axes, panels):
        for arm in arms:
            values = [by_layer[layer]["arms"].get(arm, {}).get(key) for layer in layers]
            ax.plot([int(layer) for layer in layers], [v if v is not None else float("nan") for v in values],
                    marker="o", markersize=3, linewidth=1.2, label=arm)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("layer", fontsize=8)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return _png(fig)
