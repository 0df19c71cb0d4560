"""Where did the weights move? Per-tensor comparison of each trained arm (SFT, RLVR, ...) with the base.

For every parameter tensor, grouped by layer and by kind (attention q/k/v/o, MLP gate/up/down,
norms, embedding, LM head):

* relative update norm      ||W_arm - W_base||_F / ||W_base||_F;
* update sparsity           the fraction of entries that changed by at least the bf16 rounding of
                            the base value (threshold below), and, between two arms, how much the
                            changed sets overlap (Jaccard |A∩B|/|A∪B| and overlap coefficient
                            |A∩B|/min(|A|,|B|));
* spectrum (2-D only)       effective rank of the update and the share of update energy in its top
                            1 and top 8 singular directions;
* cosine                    between the updates of two arms of the same tensor.

Threshold for "changed". bf16 keeps 8 significant bits (7 stored + the implicit one), so for a base
value w with exponent e = floor(log2|w|) the bf16 spacing is 2^(e-7) and half of it (the rounding
error of storing w in bf16) is 2^(e-8). An entry counts as changed when |W_arm - W_base| >= 2^(e-8).
">=" rather than ">": just below a power of two the spacing halves, so the next bf16 value below
w = 2^e is exactly 2^(e-8) away and must count. For w == 0 and bf16 subnormals (|w| < 2^-126) the
spacing is the smallest one, 2^-133, so the threshold is 2^-134: any real change of a zero counts.
When both checkpoints are bf16 this counts exactly the entries whose stored value differs; with
float32 checkpoints, drifts smaller than bf16 rounding are not counted.

Effective rank (Roy & Vetterli 2007): with singular values s_i of the update and p_i = s_i / sum s,
erank = exp(-sum p_i log p_i); 1 for a rank-1 update, k for k equal singular values. Energy share
of the top k directions = sum_{i<k} s_i^2 / sum s_i^2. numerical_rank counts s_i > s_max *
max(m, n) * eps(float32).

The update, not the rounding. A checkpoint stored in bf16 holds W_base + U rounded to 8 significant bits,
so the difference is U plus a rounding error E of up to half a bf16 spacing per entry: full rank, and for
updates of a few spacings (RL at a small learning rate) it dominates the raw spectrum (a planted rank-2
update reads numerical rank 64 and a doubled effective rank). So each spectrum also has a rounding-noise
baseline: with h_ij half the spacing of the arm's stored value (its dtype's significant bits: bf16 8,
fp16 11, float32 24) the rounding error of entry ij has variance at most h_ij^2 / 3 (uniform on [-h, h]),
and a matrix of such independent errors has spectral norm at most about sigma_row + sigma_col, the largest
row and the largest column root-sum of those variances (Bandeira & van Handel 2016; for equal variances
this is the Bai-Yin edge sigma (sqrt(m) + sqrt(n))). ``rounding_noise_edge`` is that norm;
``signal_rank`` counts the singular values above it (and above the numerical tolerance), and
``signal_effective_rank`` and ``signal_energy`` are the effective rank of those values and their share of
the update's energy. The report shows the signal figures; the raw ones stay beside them in the JSON. For
float32 checkpoints the edge is negligible and both agree. Singular values come from torch.linalg.svdvals of the float32 update;
for matrices above ``svd_full_max_elements`` (embedding, LM head of an 8B model) from the
eigenvalues of the float64 Gram matrix D^T D accumulated over row chunks (D tall; wider ones that
large are skipped with a note).

Memory. Weight files are indexed from their headers (safetensors header, or a mmap'd
``torch.load`` of a ``.bin`` shard); tensors are then read row chunk by row chunk with plain file
reads (no mmap that would stay resident), so the statistics pass holds one row chunk of the base and
of each arm (the chunk shrinks as arms are added), and the spectrum pass holds one update matrix of
one arm at a time (an 8B MLP matrix: 235 MB in float32). Peak stays well under 4 GB for an 8B model
whatever the number of arms; ``meta.peak_rss_mb`` records it.

Shapes. open-instruct's SFT may add a pad token and resize the embedding and LM head: tensors whose
shapes differ only in the first dimension are compared on the shared rows [:min(rows)], and the
entry says so in ``note``. A tied LM head (no ``lm_head.weight`` stored) is read from the embedding.

Everything is computed in float32 (sums in float64), on CUDA when present, else on CPU.

CLI: python -m sft_vs_rlvr.weights.diff --base DIR --arm sft=DIR --arm rlvr=DIR [--out FILE.json]
     [--rank-sample K]   (spectra only on layers 0, K, 2K, ... and non-layer matrices; 0 = none)
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import re
import resource
import struct
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from sft_vs_rlvr.errors import UserError, cli

SAFETENSORS_DTYPES = {
    "BF16": torch.bfloat16, "F16": torch.float16, "F32": torch.float32, "F64": torch.float64,
}
FLOAT_DTYPES = set(SAFETENSORS_DTYPES.values())

# The statistics pass holds about (3 + 3 * arms) float32 row chunks; this budget bounds their sum.
CHUNK_BUDGET_BYTES = 64 * 2**20
# Above this many elements the spectrum comes from the Gram matrix instead of a full float32 copy.
SVD_FULL_MAX_ELEMENTS = 64 * 2**20
GRAM_MAX_DIM = 8192  # float64 Gram of 8192^2 = 512 MB
TOP_K = (1, 8)

THRESHOLD_DOC = ("changed when |W_arm - W_base| >= 2^(floor(log2|w_base|) - 8), half the bf16 spacing "
                 "at the base value (8 significant bits); 2^-134 for zero and subnormal base values")
ERANK_DOC = ("effective rank = exp(entropy of singular values normalised to sum 1) (Roy & Vetterli 2007); "
             "topK_energy = sum of the K largest squared singular values / sum of all")
SIGNAL_DOC = ("signal_* = over the singular values above rounding_noise_edge, the spectral norm that the storage "
              "dtype's rounding alone can reach: largest row plus largest column root-sum of the per-entry rounding "
              "variances h^2/3, h half the spacing of the arm's stored value (Bandeira & van Handel 2016)")
# Significant bits (stored mantissa + the implicit one) and the smallest normal exponent of each float dtype:
# the rounding of a value stored in it is at most 2^(floor(log2|w|) - bits).
PRECISION = {torch.bfloat16: (8, -126), torch.float16: (11, -14), torch.float32: (24, -126),
             torch.float64: (53, -1022)}


# ----------------------------------------------------------------------------- weight files


@dataclass(frozen=True)
class TensorRef:
    file: Path
    key: str
    shape: tuple[int, ...]
    dtype: torch.dtype | None  # None: not a float tensor we compare
    offset: int | None  # absolute byte offset of the data (safetensors only)

    @property
    def rows(self) -> int:
        return self.shape[0] if self.shape else 1

    @property
    def row_shape(self) -> tuple[int, ...]:
        return tuple(self.shape[1:])

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


def _safetensors_header(path: Path) -> dict[str, TensorRef]:
    with open(path, "rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        header = json.loads(handle.read(length))
    start = 8 + length
    refs = {}
    for key, info in header.items():
        if key == "__metadata__":
            continue
        refs[key] = TensorRef(path, key, tuple(info["shape"]), SAFETENSORS_DTYPES.get(info["dtype"]),
                              start + info["data_offsets"][0])
    return refs


def _load_bin(path: Path) -> dict:
    try:
        return torch.load(path, map_location="cpu", mmap=True, weights_only=True)
    except RuntimeError:  # legacy (non-zip) format cannot be mmap'd
        return torch.load(path, map_location="cpu", weights_only=True)


class WeightIndex:
    """Names, shapes and places of the tensors of one checkpoint folder; reads row ranges on demand."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        if not self.root.is_dir():
            raise UserError(f"{self.root} is not a folder; pass a checkpoint folder with *.safetensors or *.bin weights")
        self.tensors: dict[str, TensorRef] = {}
        files = self._files("model.safetensors.index.json", "*.safetensors")
        if files:
            for path in files:
                self.tensors.update(_safetensors_header(path))
        else:
            files = self._files("pytorch_model.bin.index.json", "*.bin")
            if not files:
                raise UserError(f"no *.safetensors or *.bin weights in {self.root}; pass the folder the model was saved to")
            for path in files:
                state = _load_bin(path)
                for key, tensor in state.items():
                    if isinstance(tensor, torch.Tensor):
                        dtype = tensor.dtype if tensor.dtype in FLOAT_DTYPES else None
                        self.tensors[key] = TensorRef(path, key, tuple(tensor.shape), dtype, None)
                del state
        self.files = files
        self.format = files[0].suffix.lstrip(".")

    def _files(self, index_name: str, pattern: str) -> list[Path]:
        index = self.root / index_name
        if index.is_file():
            weight_map = json.loads(index.read_text())["weight_map"]
            return sorted({self.root / name for name in weight_map.values()})
        return sorted(path for path in self.root.glob(pattern) if path.is_file())

    def nbytes(self) -> int:
        return sum(ref.numel * ref.dtype.itemsize for ref in self.tensors.values() if ref.dtype is not None)

    def read_rows(self, ref: TensorRef, r0: int, r1: int) -> torch.Tensor:
        """Rows [r0:r1) of *ref* (a 1-D tensor's rows are its entries) in the stored dtype, on CPU."""
        row_elems = math.prod(ref.row_shape)
        if ref.offset is None:  # .bin: map the shard, copy the rows, drop the mapping
            state = _load_bin(ref.file)
            out = state[ref.key].reshape(ref.rows, *ref.row_shape)[r0:r1].clone()
            del state
            return out
        itemsize = ref.dtype.itemsize
        nbytes = (r1 - r0) * row_elems * itemsize
        buffer = torch.empty(nbytes, dtype=torch.uint8)
        view = memoryview(buffer.numpy())
        with open(ref.file, "rb", buffering=0) as handle:
            handle.seek(ref.offset + r0 * row_elems * itemsize)
            got = 0
            while got < nbytes:
                n = handle.readinto(view[got:])
                if not n:
                    raise UserError(f"{ref.file} ends inside tensor {ref.key}: the file is truncated; re-save the checkpoint")
                got += n
        return buffer.view(ref.dtype).reshape(r1 - r0, *ref.row_shape)


# ----------------------------------------------------------------------------- names


LAYER_RE = re.compile(r"(?:^|\.)layers\.(\d+)\.")
KINDS = [("q_proj", "attn_q"), ("k_proj", "attn_k"), ("v_proj", "attn_v"), ("o_proj", "attn_o"),
         ("gate_proj", "mlp_gate"), ("up_proj", "mlp_up"), ("down_proj", "mlp_down"),
         ("embed_tokens", "embedding"), ("lm_head", "lm_head"), ("norm", "norm")]
LM_HEAD = "lm_head.weight"


def layer_of(name: str) -> int | None:
    match = LAYER_RE.search(name)
    return int(match.group(1)) if match else None


def kind_of(name: str) -> str:
    for marker, kind in KINDS:
        if marker in name:
            return kind
    return "other"


def _embedding_name(index: WeightIndex) -> str | None:
    return next((name for name in index.tensors if name.endswith("embed_tokens.weight")), None)


def _resolve(index: WeightIndex, name: str) -> tuple[TensorRef | None, str | None]:
    """The tensor that plays *name* in this checkpoint; a missing LM head is the tied embedding."""
    if name in index.tensors:
        return index.tensors[name], None
    if name == LM_HEAD and (embedding := _embedding_name(index)):
        return index.tensors[embedding], f"tied: read from {embedding}"
    return None, None


# ----------------------------------------------------------------------------- measures


def bf16_half_spacing(w: torch.Tensor) -> torch.Tensor:
    """Half the bf16 spacing at each base value: 2^(floor(log2|w|) - 8); 2^-134 for |w| < 2^-126."""
    w = w.float()
    _, exponent = torch.frexp(w)  # w = m * 2^exponent with 0.5 <= |m| < 1 (frexp(0) = (0, 0))
    exponent = torch.where(w == 0, -126, exponent - 1).clamp(min=-126)  # floor(log2|w|); zero, subnormals → -126
    return torch.ldexp(torch.ones_like(w, dtype=torch.float32), exponent - 8)


def rounding_variance(stored: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Upper bound of the variance of each entry's rounding error when stored in dtype: h^2 / 3, with h half
    the spacing at the value (float32 result; float64 storage counts as exact)."""
    bits, min_exponent = PRECISION.get(dtype, (53, -1022))
    if bits > 24:
        return torch.zeros_like(stored, dtype=torch.float32)
    w = stored.float()
    _, exponent = torch.frexp(w)
    exponent = torch.where(w == 0, min_exponent, exponent - 1).clamp(min=min_exponent)
    half = torch.ldexp(torch.ones_like(w), exponent - bits)
    return half * half / 3


def changed_mask(base: torch.Tensor, arm: torch.Tensor) -> torch.Tensor:
    return (arm.float() - base.float()).abs() >= bf16_half_spacing(base)


def _effective_rank(s: torch.Tensor) -> float | None:
    total = s.sum().item()
    if total <= 0:
        return None
    p = s[s > 0] / total
    return math.exp(-(p * p.log()).sum().item())


def spectrum_measures(singular_values: torch.Tensor, shape: tuple[int, int], noise_edge: float = 0.0) -> dict:
    """Raw measures of the spectrum, and the same over the part above the rounding-noise edge (signal_*)."""
    s = singular_values.double().flatten().sort(descending=True).values.clamp(min=0)
    total = s.sum().item()
    out = {"effective_rank": None, "numerical_rank": 0, **{f"top{k}_energy": None for k in TOP_K},
           "rounding_noise_edge": noise_edge, "signal_rank": 0, "signal_effective_rank": None, "signal_energy": None}
    if total <= 0:
        return out
    out["effective_rank"] = _effective_rank(s)
    energy = s * s
    for k in TOP_K:
        out[f"top{k}_energy"] = (energy[:k].sum() / energy.sum()).item()
    tol = s[0].item() * max(shape) * torch.finfo(torch.float32).eps
    out["numerical_rank"] = int((s > tol).sum().item())
    signal = s[s > max(tol, noise_edge)]
    out["signal_rank"] = int(signal.numel())
    out["signal_effective_rank"] = _effective_rank(signal) if signal.numel() else None
    out["signal_energy"] = (signal * signal).sum().item() / energy.sum().item()
    return out


def _ratio(num: float, den: float) -> float | None:
    return num / den if den > 0 else None


def _arm_summary(acc: dict) -> dict:
    return {"numel": acc["numel"], "changed": acc["changed"],
            "changed_fraction": _ratio(acc["changed"], acc["numel"]),
            "update_norm": math.sqrt(acc["update_sq"]), "base_norm": math.sqrt(acc["base_sq"]),
            "rel_norm": _ratio(math.sqrt(acc["update_sq"]), math.sqrt(acc["base_sq"])),
            "update_sq": acc["update_sq"], "base_sq": acc["base_sq"]}


def _pair_summary(acc: dict, a: dict, b: dict) -> dict:
    union = a["changed"] + b["changed"] - acc["intersection"]
    return {"cosine": _ratio(acc["dot"], math.sqrt(a["update_sq"] * b["update_sq"])),
            "dot": acc["dot"], "intersection": acc["intersection"],
            "jaccard": _ratio(acc["intersection"], union),
            "overlap_coefficient": _ratio(acc["intersection"], min(a["changed"], b["changed"]))}


def pair_key(a: str, b: str) -> str:
    return f"{a} vs {b}"


# ----------------------------------------------------------------------------- one tensor


class _Reader:
    def __init__(self, index: WeightIndex, ref: TensorRef, device: torch.device):
        self.index, self.ref, self.device = index, ref, device

    def rows(self, r0: int, r1: int) -> torch.Tensor:
        chunk = self.index.read_rows(self.ref, r0, r1)
        return chunk.to(self.device).to(torch.float32).reshape(r1 - r0, -1)


def _chunk_rows(row_elems: int, buffers: int) -> int:
    return max(1, CHUNK_BUDGET_BYTES // (4 * buffers * max(1, row_elems)))


def _stats(base: _Reader, arms: dict[str, _Reader], rows: int, row_elems: int) -> tuple[dict, dict]:
    names = list(arms)
    acc = {a: {"numel": 0, "changed": 0, "update_sq": 0.0, "base_sq": 0.0} for a in names}
    pairs = {p: {"dot": 0.0, "intersection": 0} for p in itertools.combinations(names, 2)}
    step = _chunk_rows(row_elems, 3 + 3 * len(names))
    for r0 in range(0, rows, step):
        r1 = min(rows, r0 + step)
        w = base.rows(r0, r1)
        threshold = bf16_half_spacing(w)
        base_sq = torch.sum(w * w, dtype=torch.float64).item()
        deltas, masks = {}, {}
        for a in names:
            d = arms[a].rows(r0, r1) - w
            masks[a] = d.abs() >= threshold
            deltas[a] = d
            acc[a]["numel"] += d.numel()
            acc[a]["changed"] += int(masks[a].sum().item())
            acc[a]["update_sq"] += torch.sum(d * d, dtype=torch.float64).item()
            acc[a]["base_sq"] += base_sq
        for (a, b), pair in pairs.items():
            pair["dot"] += torch.sum(deltas[a] * deltas[b], dtype=torch.float64).item()
            pair["intersection"] += int((masks[a] & masks[b]).sum().item())
        del w, threshold, deltas, masks
    return acc, pairs


class _NoiseEdge:
    """Row and column sums of the arm's per-entry rounding variances, accumulated chunk by chunk; edge() is
    sigma_row + sigma_col (the module docstring: the update, not the rounding)."""

    def __init__(self, cols: int, dtype: torch.dtype, device: torch.device):
        self.dtype, self.row_max = dtype, 0.0
        self.col = torch.zeros(cols, dtype=torch.float64, device=device)

    def add(self, arm_rows: torch.Tensor) -> None:
        variance = rounding_variance(arm_rows, self.dtype).double()
        self.row_max = max(self.row_max, variance.sum(dim=1).max().item())
        self.col += variance.sum(dim=0)

    def edge(self) -> float:
        return math.sqrt(self.row_max) + math.sqrt(self.col.max().item())


def _singular_values(base: _Reader, arm: _Reader, rows: int, cols: int,
                     full_max: int, device: torch.device) -> tuple[torch.Tensor | None, str, float]:
    """Singular values of the update, how they were computed, and the rounding-noise edge of the arm's dtype."""
    noise = _NoiseEdge(cols, arm.ref.dtype, device)
    if rows * cols <= full_max:
        update = torch.empty(rows, cols, dtype=torch.float32, device=device)
        step = _chunk_rows(cols, 4)
        for r0 in range(0, rows, step):
            r1 = min(rows, r0 + step)
            stored = arm.rows(r0, r1)
            noise.add(stored)
            update[r0:r1] = stored - base.rows(r0, r1)
        return torch.linalg.svdvals(update), "svdvals", noise.edge()
    if rows >= cols and cols <= GRAM_MAX_DIM:
        gram = torch.zeros(cols, cols, dtype=torch.float64, device=device)
        step = _chunk_rows(cols, 6)
        for r0 in range(0, rows, step):
            r1 = min(rows, r0 + step)
            stored = arm.rows(r0, r1)
            noise.add(stored)
            d = (stored - base.rows(r0, r1)).double()
            gram.addmm_(d.T, d)
            del d, stored
        return torch.linalg.eigvalsh(gram).clamp(min=0).sqrt(), "gram_eigvalsh", noise.edge()
    return None, f"too large for a spectrum ({rows}x{cols}, wider than tall)", 0.0


# ----------------------------------------------------------------------------- whole models


def _plan(base: WeightIndex, arms: dict[str, WeightIndex]) -> tuple[list[dict], list[dict], list[str]]:
    """Which tensors to compare, with which refs and which row range; skipped tensors with reasons."""
    names = list(base.tensors)
    notes = []
    if LM_HEAD not in base.tensors:
        if any(LM_HEAD in idx.tensors for idx in arms.values()):
            names.append(LM_HEAD)
        else:
            notes.append("no checkpoint stores lm_head.weight: the LM head is tied to the embedding, "
                         "so the embedding entries cover it")
    plan, skipped = [], []
    for name in names:
        base_ref, base_note = _resolve(base, name)
        if base_ref is None:
            skipped.append({"name": name, "reason": "in an arm, but the base has neither it nor an embedding to tie it to"})
            continue
        if base_ref.dtype is None:
            skipped.append({"name": name, "reason": "not a floating-point tensor"})
            continue
        refs, tensor_notes = {}, [f"base {base_note}"] if base_note else []
        for arm, idx in arms.items():
            ref, note = _resolve(idx, name)
            if ref is None:
                tensor_notes.append(f"absent from {arm}")
            elif ref.dtype is None or len(ref.shape) != len(base_ref.shape) or ref.row_shape != base_ref.row_shape:
                tensor_notes.append(f"{arm} has shape {list(ref.shape)} vs base {list(base_ref.shape)}: not compared")
            else:
                refs[arm] = ref
                if note:
                    tensor_notes.append(f"{arm} {note}")
        if not refs:
            skipped.append({"name": name, "reason": "; ".join(tensor_notes) or "in no arm"})
            continue
        rows = min([base_ref.rows] + [ref.rows for ref in refs.values()])
        if any(ref.rows != rows for ref in [base_ref, *refs.values()]):
            sizes = ", ".join(f"{label} {ref.rows}" for label, ref in [("base", base_ref), *refs.items()])
            tensor_notes.append(f"first dimension differs ({sizes}): compared the shared rows [:{rows}]")
        plan.append({"name": name, "base": base_ref, "arms": refs, "rows": rows,
                     "note": "; ".join(tensor_notes) or None})
    for arm, idx in arms.items():
        for name in idx.tensors:
            if name not in base.tensors and name != LM_HEAD:
                skipped.append({"name": name, "reason": f"in {arm} but not in the base"})
    return plan, skipped, notes


def _wants_spectrum(item: dict, rank_sample: int | None) -> bool:
    if len(item["base"].shape) != 2 or rank_sample == 0:
        return False
    layer = layer_of(item["name"])
    return rank_sample is None or layer is None or layer % rank_sample == 0


def _calibrate(device: torch.device) -> tuple[float, float]:
    """Rough speeds on this device: elements per second of the statistics pass, SVD flops per second."""
    w = torch.randn(1 << 21, device=device)
    a = w + 0.01 * torch.randn_like(w)
    start = time.perf_counter()
    for _ in range(2):
        d = a - w
        _ = (d.abs() >= bf16_half_spacing(w)).sum().item(), torch.sum(d * d, dtype=torch.float64).item()
    elem_rate = 2 * w.numel() / max(time.perf_counter() - start, 1e-6)
    m = torch.randn(768, 384, device=device)
    start = time.perf_counter()
    torch.linalg.svdvals(m).sum().item()
    flop_rate = 4 * 768 * 384 ** 2 / max(time.perf_counter() - start, 1e-6)
    return elem_rate, flop_rate


def _svd_flops(rows: int, cols: int, full_max: int) -> float:
    if rows * cols <= full_max:
        m, n = max(rows, cols), min(rows, cols)
        return 4.0 * m * n * n
    return 2.0 * rows * cols * cols  # Gram accumulation (float64, counted at the same rate)


def peak_rss_mb() -> float:
    """Peak resident memory of this process: VmHWM on Linux (ru_maxrss survives exec, so a child of a big
    parent would report the parent's peak), ru_maxrss elsewhere."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux


def _aggregate(entries: list[dict], arm_names: list[str]) -> dict:
    out = {"n_tensors": len(entries), "arms": {}, "pairs": {}}
    sums = {}
    for arm in arm_names:
        rows = [e["arms"][arm] for e in entries if arm in e["arms"]]
        acc = {key: sum(r[key] for r in rows) for key in ("numel", "changed", "update_sq", "base_sq")}
        sums[arm] = acc
        summary = _arm_summary(acc)
        summary["n_tensors"] = len(rows)
        spectra = [r["spectrum"] for r in rows if r.get("spectrum") and r["spectrum"]["effective_rank"] is not None]
        summary["n_spectra"] = len(spectra)
        for key in ("effective_rank", *[f"top{k}_energy" for k in TOP_K]):
            summary[f"mean_{key}"] = sum(s[key] for s in spectra) / len(spectra) if spectra else None
        # Above the rounding noise: a matrix whose whole update is below it has rank 0 and no effective rank.
        summary["mean_signal_rank"] = sum(s.get("signal_rank", 0) for s in spectra) / len(spectra) if spectra else None
        signal = [s["signal_effective_rank"] for s in spectra if s.get("signal_effective_rank") is not None]
        summary["n_signal_spectra"] = len(signal)
        summary["mean_signal_effective_rank"] = sum(signal) / len(signal) if signal else None
        out["arms"][arm] = summary
    for a, b in itertools.combinations(arm_names, 2):
        key = pair_key(a, b)
        both = [e for e in entries if key in e["pairs"]]
        if not both:
            continue
        acc = {"dot": sum(e["pairs"][key]["dot"] for e in both),
               "intersection": sum(e["pairs"][key]["intersection"] for e in both)}
        side = {arm: {k: sum(e["arms"][arm][k] for e in both) for k in ("changed", "update_sq")} for arm in (a, b)}
        out["pairs"][key] = _pair_summary(acc, side[a], side[b])  # cosine of the concatenated updates
    return out


def compare(base_dir: str | Path, arms: dict[str, str | Path], rank_sample: int | None = None,
            device: str | torch.device | None = None, log: Callable[[str], None] = print,
            progress: bool = True, svd_full_max_elements: int = SVD_FULL_MAX_ELEMENTS) -> dict:
    """Compare each arm's weights with the base's; returns a JSON-ready dict (see the module docstring).

    rank_sample: None = spectra of every 2-D tensor; K > 0 = only layers 0, K, 2K, ... (and 2-D tensors
    outside the layers: embedding, LM head); 0 = no spectra.
    """
    if not arms:
        raise UserError("no arm to compare; pass at least one --arm NAME=DIR")
    if rank_sample is not None and rank_sample < 0:
        raise UserError(f"rank_sample must be >= 0, got {rank_sample}")
    started = time.perf_counter()
    device = torch.device(device) if device else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    base = WeightIndex(base_dir)
    arm_idx = {name: WeightIndex(path) for name, path in arms.items()}
    arm_names = list(arm_idx)
    plan, skipped, notes = _plan(base, arm_idx)

    # Estimate before starting.
    elements = sum(item["rows"] * math.prod(item["base"].row_shape) * (1 + len(item["arms"])) for item in plan)
    spectra = [item for item in plan if _wants_spectrum(item, rank_sample)]
    spectrum_names = {item["name"] for item in spectra}
    flops = sum(_svd_flops(item["rows"], item["base"].shape[1], svd_full_max_elements) * len(item["arms"])
                for item in spectra)
    elem_rate, flop_rate = _calibrate(device)
    estimate = elements / elem_rate * 1.5 + flops / flop_rate
    log(f"weight_diff: {len(plan)} tensors, base {base.nbytes() / 1e9:.3g} GB, {len(arm_names)} arm(s) "
        f"({', '.join(arm_names)}); {len(spectra)} matrices get spectra ({len(spectra) * len(arm_names)} "
        f"decompositions, {flops / 1e12:.2f} TFLOP) on {device}; rough estimate {estimate:.0f} s")

    entries = []
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=len(plan), unit="tensor", file=sys.stderr, desc="weight_diff", leave=False)
    for item in plan:
        name, ref = item["name"], item["base"]
        rows, row_elems = item["rows"], math.prod(ref.row_shape)
        base_reader = _Reader(base, ref, device)
        readers = {arm: _Reader(arm_idx[arm], r, device) for arm, r in item["arms"].items()}
        acc, pair_acc = _stats(base_reader, readers, rows, row_elems)
        entry = {"name": name, "layer": layer_of(name), "kind": kind_of(name), "shape": list(ref.shape),
                 "compared_shape": [rows, *ref.row_shape] if ref.shape else [], "note": item["note"],
                 "arms": {arm: _arm_summary(a) for arm, a in acc.items()}, "pairs": {}}
        for (a, b), p in pair_acc.items():
            entry["pairs"][pair_key(a, b)] = _pair_summary(p, acc[a], acc[b])
        if name in spectrum_names:
            for arm, reader in readers.items():
                values, method, edge = _singular_values(base_reader, reader, rows, ref.shape[1], svd_full_max_elements,
                                                        device)
                spectrum = spectrum_measures(values.cpu(), (rows, ref.shape[1]), edge) if values is not None else None
                entry["arms"][arm]["spectrum"] = spectrum and {**spectrum, "method": method}
                if values is None:
                    entry["arms"][arm]["spectrum_note"] = method
                del values
        entries.append(entry)
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()

    by_kind = {kind: _aggregate([e for e in entries if e["kind"] == kind], arm_names)
               for kind in sorted({e["kind"] for e in entries})}
    layers = sorted({e["layer"] for e in entries if e["layer"] is not None})
    by_layer = {str(layer): _aggregate([e for e in entries if e["layer"] == layer], arm_names) for layer in layers}
    peak_mb = peak_rss_mb()
    seconds = time.perf_counter() - started
    log(f"weight_diff: done in {seconds:.1f} s, peak RSS {peak_mb:.0f} MB")
    return {
        "meta": {"base": str(base_dir), "arms": {k: str(v) for k, v in arms.items()}, "device": str(device),
                 "formats": {"base": base.format, **{k: v.format for k, v in arm_idx.items()}},
                 "rank_sample": rank_sample, "threshold": THRESHOLD_DOC, "effective_rank": ERANK_DOC,
                 "signal": SIGNAL_DOC,
                 "pairs": "cosine of the two updates; jaccard = |A∩B|/|A∪B| and overlap_coefficient = "
                          "|A∩B|/min(|A|,|B|) of the changed-entry sets",
                 "notes": notes, "estimate_s": estimate, "seconds": seconds, "peak_rss_mb": peak_mb},
        "tensors": entries,
        "skipped": skipped,
        "overall": _aggregate(entries, arm_names),
        "by_kind": by_kind,
        "by_layer": by_layer,
    }


# ----------------------------------------------------------------------------- CLI


def _parse_arm(text: str) -> tuple[str, Path]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise UserError(f"--arm {text!r} is not NAME=DIR; write e.g. --arm sft=runs/x/sft/model")
    return name, Path(path)


@cli
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Compare the weights of trained arms with the base model, tensor by tensor.")
    parser.add_argument("--base", required=True, type=Path, help="base checkpoint folder")
    parser.add_argument("--arm", action="append", default=[], metavar="NAME=DIR", help="an arm checkpoint (repeat)")
    parser.add_argument("--out", type=Path, help="write the JSON here (default: stdout)")
    parser.add_argument("--rank-sample", type=int, default=None,
                        help="spectra only for layers 0, K, 2K, ... (default: all; 0: none)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")
    args = parser.parse_args(argv)
    arms = dict(_parse_arm(text) for text in args.arm)
    if len(arms) != len(args.arm):
        raise UserError("two --arm options share a name; give each arm its own name")

    def log(message: str) -> None:  # stdout stays for the JSON
        print(message, file=sys.stderr)

    result = compare(args.base, arms, rank_sample=args.rank_sample, device=args.device, log=log)
    if args.out:
        from sft_vs_rlvr.atomic import write_json
        write_json(args.out, result)
        log(f"weight_diff: wrote {args.out}")
    else:
        print(json.dumps(result, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
