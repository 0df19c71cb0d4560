"""Generation engines for evaluation and the RL pilot: vLLM on GPU machines, transformers on CPUs and on request.

Both take prompts as token ids built by the generation contract (generation.py: the chat template, BOS as
the trainers add it, tokenized without special tokens), never as text, and one Decoding; they return, per
prompt, n completions (text, tokens, truncated). Same rules for every model: stop at the tokenizer's EOS or
at a contract stop string (left out of the text), max_new_tokens from the shared max_response_length,
float32 on CPU and bf16 on GPU (never 8-bit). A completion that hit the token budget without stopping is
marked truncated.

transformers: batched generate() with left padding, prompts sorted by length so a batch pads little,
torch.inference_mode. A call holds at most `cap` sequences (prompts x samples): the KV cache of that many
sequences of the longest length must fit the card's free memory (generation_cap), so a long sampled pass
cannot run out of memory. Batches are fixed over the prompt list (sorted order, cap), and a sampled batch is
seeded by its own position, so a resumed evaluation regenerates exactly what an uninterrupted one would have.
vLLM: one generate call per model and decoding over every prompt still to do, prompts as
{"prompt_token_ids": [...]}, one SamplingParams per prompt seeded by the problem's index (the same samples
whichever replica draws them). vLLM does not run on the CPU machines the tests run on; its request
(vllm_request) and the mapping of its outputs (completions_from_vllm) are plain functions, tested.

Which engine (choose): `engine = "auto"` is vLLM on a machine with a GPU, transformers on one without; auto on
a GPU machine without vLLM is an error naming the fix, never a silent fallback to the slow engine.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable, Iterable, Sequence

from sft_vs_rlvr import generation
from sft_vs_rlvr.errors import UserError

OnBatch = Callable[[list[tuple[int, list["Completion"]]]], None]
GIB = 1024 ** 3


@dataclass(frozen=True)
class Decoding:
    kind: str            # "greedy" or "sampled"
    n: int               # completions per prompt (1 for greedy)
    temperature: float   # 0 for greedy
    top_p: float
    max_new_tokens: int
    seed: int
    stop: tuple[str, ...] = ()  # the contract's stop strings, besides EOS

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "stop": ["eos", *self.stop]}


@dataclass(frozen=True)
class Completion:
    text: str
    tokens: int          # generated tokens, through EOS or the stop string when it stopped there
    truncated: bool      # reached max_new_tokens without EOS or a stop string


def greedy(max_new_tokens: int, seed: int, stop: Sequence[str] = ()) -> Decoding:
    return Decoding("greedy", 1, 0.0, 1.0, max_new_tokens, seed, tuple(stop))


def sampled(n: int, temperature: float, top_p: float, max_new_tokens: int, seed: int,
            stop: Sequence[str] = ()) -> Decoding:
    return Decoding("sampled", n, temperature, top_p, max_new_tokens, seed, tuple(stop))


def batches(prompt_ids: Sequence[Sequence[int]], batch_size: int) -> list[list[int]]:
    """Prompt indices in fixed batches: sorted by length (less padding), then cut every batch_size."""
    order = sorted(range(len(prompt_ids)), key=lambda i: (len(prompt_ids[i]), i))
    return [order[start:start + batch_size] for start in range(0, len(order), batch_size)]


# ---------------------------------------------------------------------------------------------- memory


def kv_bytes_per_token(config, dtype_bytes: int) -> int:
    """Keys and values of one token across the layers (grouped-query attention: the key-value heads)."""
    heads = getattr(config, "num_attention_heads")
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    return 2 * config.num_hidden_layers * kv_heads * head_dim * dtype_bytes


def generation_cap(config, dtype_bytes: int, free_bytes: float, sequence_tokens: int, share: float = 0.6) -> int:
    """Sequences one generate() call may hold: `share` of the free memory for their KV cache at full length,
    the rest for logits (float32 over the vocabulary, per sequence) and activations. At least 1."""
    per_sequence = kv_bytes_per_token(config, dtype_bytes) * sequence_tokens + 4 * config.vocab_size * 2
    return max(1, int(share * free_bytes // per_sequence))


# ---------------------------------------------------------------------------------------------- transformers


class TransformersEngine:
    name = "transformers"

    def __init__(self, model_path: str, batch_size: int, max_new_tokens: int, device: str | None = None):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        dtype = torch.bfloat16 if self.device.startswith("cuda") else torch.float32
        self.dtype = str(dtype).replace("torch.", "")
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(model_path)
            self.model = AutoModelForCausalLM.from_pretrained(model_path, dtype=dtype).to(self.device).eval()
        except (OSError, ValueError) as error:
            raise UserError(f"cannot load model or tokenizer from {model_path} ({str(error).splitlines()[0]}); "
                            "check that the folder has config.json, weights and tokenizer files") from None
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None \
            else self.tokenizer.eos_token_id
        self.batch_size = batch_size
        self.max_new_tokens = max_new_tokens
        self.cap = batch_size  # sequences per call; on a GPU also bounded by its free memory (set per prompt set)

    def _sequence_cap(self, longest_prompt: int) -> int:
        import torch

        if not self.device.startswith("cuda"):
            return self.batch_size * 64  # a CPU holds what the batch size asks; memory is the host's
        free, _ = torch.cuda.mem_get_info(torch.device(self.device))
        dtype_bytes = 2 if self.dtype == "bfloat16" else 4
        return generation_cap(self.model.config, dtype_bytes, free, longest_prompt + self.max_new_tokens)

    def generate(self, prompt_ids: Sequence[Sequence[int]], decoding: Decoding, done: Iterable[int],
                 on_batch: OnBatch) -> None:
        import torch

        done = set(done)
        sequences = self._sequence_cap(max((len(p) for p in prompt_ids), default=1))
        per_call = max(1, min(self.batch_size, sequences // decoding.n))
        self.cap = per_call * decoding.n
        eos = self.tokenizer.eos_token_id
        for position, batch in enumerate(batches(prompt_ids, per_call)):
            todo = [i for i in batch if i not in done]
            if not todo:
                continue
            longest = max(len(prompt_ids[i]) for i in batch)
            rows = [[self.pad_id] * (longest - len(prompt_ids[i])) + list(prompt_ids[i]) for i in batch]
            mask = [[0] * (longest - len(prompt_ids[i])) + [1] * len(prompt_ids[i]) for i in batch]
            inputs = {"input_ids": torch.tensor(rows, device=self.device),
                      "attention_mask": torch.tensor(mask, device=self.device)}
            options: dict[str, Any] = {"do_sample": False}
            if decoding.kind == "sampled":
                torch.manual_seed(decoding.seed * 1_000_003 + position)  # this batch's samples, resumable
                options = {"do_sample": True, "temperature": decoding.temperature, "top_p": decoding.top_p,
                           "num_return_sequences": decoding.n}
            if decoding.stop:
                options.update(stop_strings=list(decoding.stop), tokenizer=self.tokenizer)
            with torch.inference_mode():
                generated = self.model.generate(**inputs, max_new_tokens=decoding.max_new_tokens, eos_token_id=eos,
                                                pad_token_id=self.pad_id, **options)
            new = generated[:, longest:].tolist()
            per_prompt = [new[j * decoding.n:(j + 1) * decoding.n] for j in range(len(batch))]
            on_batch([(i, [self.completion(tokens, decoding) for tokens in per_prompt[j]])
                      for j, i in enumerate(batch) if i not in done])

    def completion(self, tokens: list[int], decoding: Decoding) -> Completion:
        """Generated ids -> text: cut at EOS, or after the tokens that complete a stop string (then padding)."""
        eos = self.tokenizer.eos_token_id
        if eos in tokens:
            kept = tokens[: tokens.index(eos)]
            return Completion(self.tokenizer.decode(kept, skip_special_tokens=True), len(kept) + 1, False)
        kept = list(tokens)
        while kept and kept[-1] == self.pad_id and len(kept) > 0:
            kept.pop()
        text, stopped = generation.cut_at_stop(self.tokenizer.decode(kept, skip_special_tokens=False),
                                               decoding.stop)
        if stopped:  # generate stopped on the token that completed the stop string; padding followed
            return Completion(self._plain(text), len(kept), False)
        return Completion(self.tokenizer.decode(kept, skip_special_tokens=True), len(kept),
                          len(tokens) >= decoding.max_new_tokens)

    def _plain(self, text: str) -> str:
        for special in self.tokenizer.all_special_tokens:
            text = text.replace(special, "")
        return text


# ---------------------------------------------------------------------------------------------- vLLM


def vllm_request(prompt_ids: Sequence[Sequence[int]], indices: Sequence[int], decoding: Decoding,
                 eos_token_id: int) -> tuple[list[dict[str, list[int]]], list[dict[str, Any]]]:
    """The prompts (token ids, so vLLM adds no BOS of its own) and one SamplingParams' keyword arguments per
    prompt, seeded by the problem's index: the samples of a problem do not depend on which replica draws them."""
    prompts = [{"prompt_token_ids": list(prompt_ids[i])} for i in indices]
    params = []
    for i in indices:
        one: dict[str, Any] = {
            "n": decoding.n, "max_tokens": decoding.max_new_tokens, "stop_token_ids": [eos_token_id],
            "stop": list(decoding.stop), "include_stop_str_in_output": False, "skip_special_tokens": True,
            "seed": decoding.seed * 1_000_003 + i,
        }
        if decoding.kind == "greedy":
            one.update(temperature=0.0, top_p=1.0)
        else:
            one.update(temperature=decoding.temperature, top_p=decoding.top_p)
        params.append(one)
    return prompts, params


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
        # generation_config="vllm": the model folder's sampling defaults (the base's temperature 0.6, top_p
        # 0.9 that finetune.py's final folder carries) never override the decoding asked for here.
        self.llm = LLM(model=model_path, tokenizer=model_path, dtype="bfloat16", seed=seed,
                       tensor_parallel_size=tensor_parallel_size, generation_config="vllm")
        self.device, self.dtype = "cuda", "bfloat16"
        self.cap = None

    def generate(self, prompt_ids: Sequence[Sequence[int]], decoding: Decoding, done: Iterable[int],
                 on_batch: OnBatch) -> None:
        from vllm import SamplingParams

        done = set(done)
        todo = [i for i in range(len(prompt_ids)) if i not in done]
        if not todo:
            return
        prompts, params = vllm_request(prompt_ids, todo, decoding, self.tokenizer.eos_token_id)
        outputs = self.llm.generate(prompts, [SamplingParams(**p) for p in params])
        on_batch(list(zip(todo, completions_from_vllm(outputs))))


# ---------------------------------------------------------------------------------------------- choice


def vllm_importable() -> bool:
    try:
        import vllm  # noqa: F401
    except ImportError:
        return False
    return True


def choose(setting: str, gpu: bool | None = None, has_vllm: bool | None = None) -> str:
    """The engine for the `engine` setting, refused before any model loads when it cannot run here."""
    if setting not in ("auto", "transformers", "vllm"):
        raise UserError(f"eval engine {setting!r} is unknown; use auto, transformers or vllm in configs/eval.toml")
    if gpu is None:
        import torch

        gpu = torch.cuda.is_available()
    if setting == "transformers":
        return "transformers"
    has_vllm = vllm_importable() if has_vllm is None else has_vllm
    if setting == "vllm" and not (gpu and has_vllm):
        missing = "vLLM is not installed in this Python environment" if not has_vllm else "no GPU is visible"
        raise UserError(f"engine = \"vllm\" but {missing}; run ./evaluate_comparison.sh on a GPU box after "
                        "make setup-gpu (it evaluates in open-instruct's environment, which has vLLM), or set "
                        "engine = \"transformers\" in configs/eval.toml")
    if not gpu:
        return "transformers"
    if not has_vllm:
        raise UserError("engine = \"auto\" on a GPU machine needs vLLM, which this Python environment lacks "
                        "(transformers' generate is several times slower and its sampled passes can run out of "
                        "memory); run make setup-gpu, whose environment ./evaluate_comparison.sh uses, or set "
                        "engine = \"transformers\" in configs/eval.toml to accept the slow engine")
    return "vllm"


def make(engine: str, model_path: str, batch_size: int, seed: int, max_new_tokens: int,
         tensor_parallel_size: int = 1, device: str | None = None):
    if engine == "vllm":
        return VLLMEngine(model_path, tensor_parallel_size, seed)
    return TransformersEngine(model_path, batch_size, max_new_tokens, device)
