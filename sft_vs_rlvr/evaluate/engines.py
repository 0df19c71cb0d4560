"""Generation engines for evaluation: vLLM on GPU machines, transformers everywhere else.

Both take the rendered prompts and one Decoding and return, per prompt, n completions (text, tokens,
truncated). Same rules for every model: stop at the tokenizer's EOS, max_new_tokens from the shared
max_response_length, full precision on CPU and bf16 on GPU (never 8-bit). A completion that hit the
token budget without EOS is marked truncated.

transformers: batched generate() with left padding, prompts sorted by length so a batch pads little,
torch.inference_mode; batches are fixed over the whole prompt list (sorted order, batch_size), and a
sampled batch is seeded by its own position, so a resumed evaluation regenerates exactly what an
uninterrupted one would have.
vLLM: one LLM.generate call per model and decoding over every prompt still to do (never a loop over
problems), tensor parallel over the visible GPUs. vLLM does not run on our CPU machines; its request
(vllm_sampling_params) and the mapping of its outputs (completions_from_vllm) are plain functions, tested.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable, Iterable, Sequence

from sft_vs_rlvr.errors import UserError

OnBatch = Callable[[list[tuple[int, list["Completion"]]]], None]


@dataclass(frozen=True)
class Decoding:
    kind: str            # "greedy" or "sampled"
    n: int               # completions per prompt (1 for greedy)
    temperature: float   # 0 for greedy
    top_p: float
    max_new_tokens: int
    seed: int

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "stop": "eos"}


@dataclass(frozen=True)
class Completion:
    text: str
    tokens: int          # generated tokens, EOS included when it stopped there
    truncated: bool      # reached max_new_tokens without EOS


def greedy(max_new_tokens: int, seed: int) -> Decoding:
    return Decoding("greedy", 1, 0.0, 1.0, max_new_tokens, seed)


def sampled(n: int, temperature: float, top_p: float, max_new_tokens: int, seed: int) -> Decoding:
    return Decoding("sampled", n, temperature, top_p, max_new_tokens, seed)


def batches(prompts: Sequence[str], batch_size: int) -> list[list[int]]:
    """Prompt indices in fixed batches: sorted by length (less padding), then cut every batch_size."""
    order = sorted(range(len(prompts)), key=lambda i: (len(prompts[i]), i))
    return [order[start:start + batch_size] for start in range(0, len(order), batch_size)]


class TransformersEngine:
    name = "transformers"

    def __init__(self, model_path: str, batch_size: int):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype = torch.bfloat16 if self.device == "cuda" else torch.float32
        self.dtype = str(dtype).replace("torch.", "")
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(model_path, padding_side="left")
            self.model = AutoModelForCausalLM.from_pretrained(model_path, dtype=dtype).to(self.device).eval()
        except (OSError, ValueError) as error:
            raise UserError(f"cannot load model or tokenizer from {model_path} ({str(error).splitlines()[0]}); "
                            "check that the folder has config.json, weights and tokenizer files") from None
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.batch_size = batch_size

    def generate(self, prompts: Sequence[str], decoding: Decoding, done: Iterable[int], on_batch: OnBatch) -> None:
        import torch

        done = set(done)
        tokenizer, eos = self.tokenizer, self.tokenizer.eos_token_id
        for position, batch in enumerate(batches(prompts, self.batch_size)):
            todo = [i for i in batch if i not in done]
            if not todo:
                continue
            encoded = tokenizer([prompts[i] for i in batch], return_tensors="pt", padding=True,
                                add_special_tokens=False).to(self.device)
            options: dict[str, Any] = {"do_sample": False}
            if decoding.kind == "sampled":
                torch.manual_seed(decoding.seed * 1_000_003 + position)  # this batch's samples, resumable
                options = {"do_sample": True, "temperature": decoding.temperature, "top_p": decoding.top_p,
                           "num_return_sequences": decoding.n}
            with torch.inference_mode():
                generated = self.model.generate(**encoded, max_new_tokens=decoding.max_new_tokens, eos_token_id=eos,
                                                pad_token_id=tokenizer.pad_token_id, **options)
            new = generated[:, encoded["input_ids"].shape[1]:].tolist()
            per_prompt = [new[j * decoding.n:(j + 1) * decoding.n] for j in range(len(batch))]
            on_batch([(i, [self._completion(tokens, eos) for tokens in per_prompt[j]])
                      for j, i in enumerate(batch) if i not in done])

    def _completion(self, tokens: list[int], eos: int) -> Completion:
        stopped = eos in tokens
        kept = tokens[: tokens.index(eos)] if stopped else [t for t in tokens if t != self.tokenizer.pad_token_id]
        return Completion(self.tokenizer.decode(kept, skip_special_tokens=True), len(kept) + int(stopped), not stopped)


def vllm_sampling_params(decoding: Decoding, eos_token_id: int) -> dict[str, Any]:
    """Keyword arguments of vllm.SamplingParams for one decoding (greedy is temperature 0, one completion)."""
    params: dict[str, Any] = {
        "n": decoding.n, "max_tokens": decoding.max_new_tokens, "stop_token_ids": [eos_token_id],
        "skip_special_tokens": True, "seed": decoding.seed,
    }
    if decoding.kind == "greedy":
        params.update(temperature=0.0, top_p=1.0)
    else:
        params.update(temperature=decoding.temperature, top_p=decoding.top_p)
    return params


def completions_from_vllm(outputs: Sequence[Any]) -> list[list[Completion]]:
    """vLLM RequestOutputs (in prompt order) to completions: finish_reason "length" means truncated."""
    return [[Completion(c.text, len(c.token_ids), c.finish_reason == "length") for c in output.outputs]
            for output in outputs]


class VLLMEngine:
    name = "vllm"

    def __init__(self, model_path: str, tensor_parallel_size: int, seed: int):
        from transformers import AutoTokenizer
        from vllm import LLM

        self.tokenizer = AutoTokenizer.from_pretrained(model_path)
        self.llm = LLM(model=model_path, tokenizer=model_path, dtype="bfloat16", seed=seed,
                       tensor_parallel_size=tensor_parallel_size)
        self.device, self.dtype = "cuda", "bfloat16"

    def generate(self, prompts: Sequence[str], decoding: Decoding, done: Iterable[int], on_batch: OnBatch) -> None:
        from vllm import SamplingParams

        done = set(done)
        todo = [i for i in range(len(prompts)) if i not in done]
        if not todo:
            return
        params = SamplingParams(**vllm_sampling_params(decoding, self.tokenizer.eos_token_id))
        outputs = self.llm.generate([prompts[i] for i in todo], params)
        on_batch(list(zip(todo, completions_from_vllm(outputs))))


def choose(setting: str) -> str:
    """The engine for the `engine` setting: auto picks vLLM where it is installed and a GPU is visible."""
    if setting in ("transformers", "vllm"):
        return setting
    if setting != "auto":
        raise UserError(f"eval engine {setting!r} is unknown; use auto, transformers or vllm in configs/eval.toml")
    try:
        import torch
        import vllm  # noqa: F401
    except ImportError:
        return "transformers"
    return "vllm" if torch.cuda.is_available() else "transformers"


def make(engine: str, model_path: str, batch_size: int, seed: int):
    if engine == "vllm":
        import torch

        return VLLMEngine(model_path, max(1, torch.cuda.device_count()), seed)
    return TransformersEngine(model_path, batch_size)
