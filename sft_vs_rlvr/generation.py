"""The generation contract: how a prompt becomes token ids and when a response stops, the same for every model.

Both arms train on prompts tokenized one way, and every engine (the transformers fallback, vLLM, the RL
pilot, the tiny trainers) must see exactly those ids and stop by the same rule, or the evaluation measures
a prefix or a stop rule no model trained with. Two settings in configs/experiment.toml hold the contract:

  stop_strings  ([shared])  generation also stops at these texts, besides the tokenizer's EOS. Passed to
                            grpo_fast (--stop_strings), to vLLM (`stop`), to transformers' generate
                            (`stop_strings`), and to the tiny GRPO trainer as extra EOS ids
  add_bos       ([profile]) the prompt starts with the tokenizer's BOS token. open-instruct's --add_bos does it
                            by prepending "{{ bos_token }}" to the chat template (dataset_transformation.py,
                            get_tokenizer_tulu_v2_2), so the saved tokenizers of both arms carry it too

Token ids: the chat template rendered (BOS first when add_bos) and tokenized without special tokens, as
transformers' apply_chat_template(tokenize=True) does inside open-instruct's SFT and RLVR transforms. Engines
get these ids, never text: vLLM given a string would prepend BOS on its own.

A response that ends on a stop string is "stopped", not truncated; the stop string itself is left out of
the evaluated text (vLLM's default). open-instruct's RL rollouts keep it (include_stop_str_in_output), which
changes no GSM8K reward: the verifier reads the last number and the stop strings hold none (checked here).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sft_vs_rlvr import prompts
from sft_vs_rlvr.errors import UserError

BOS_PREFIX = "{{ bos_token }}"


@dataclass(frozen=True)
class Contract:
    stop_strings: tuple[str, ...]
    add_bos: bool

    @classmethod
    def from_shared(cls, shared: dict[str, Any]) -> "Contract":
        return cls(tuple(shared["stop_strings"]), bool(shared["add_bos"]))

    def as_dict(self) -> dict[str, Any]:
        return {"stop_strings": list(self.stop_strings), "add_bos": self.add_bos}


def prompt_template(template: str, add_bos: bool) -> str:
    """The template as the trainers apply it: with add_bos, "{{ bos_token }}" first (open-instruct's --add_bos)."""
    if add_bos and not template.startswith(BOS_PREFIX):
        return BOS_PREFIX + template
    return template


def prompt_text(tokenizer, template: str, messages: list[dict], contract: Contract) -> str:
    return prompts.render(prompt_template(template, contract.add_bos), messages, tokenizer.eos_token,
                          add_generation_prompt=True, bos_token=tokenizer.bos_token or "")


def prompt_ids(tokenizer, template: str, messages: list[dict], contract: Contract) -> list[int]:
    """The prompt's token ids exactly as both trainers tokenize it (special tokens only from the text)."""
    text = prompt_text(tokenizer, template, messages, contract)
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def check_tokenizer(tokenizer, contract: Contract, where: str) -> None:
    """Refuse, before any model loads, a tokenizer that cannot carry the contract."""
    if contract.add_bos and tokenizer.bos_token is None:
        raise UserError(f"{where}: add_bos = true but the tokenizer has no BOS token; set add_bos = false for "
                        "this profile in configs/experiment.toml")
    for stop in contract.stop_strings:
        ids = tokenizer(stop, add_special_tokens=False)["input_ids"]
        if not ids or tokenizer.decode(ids) != stop:
            raise UserError(f"{where}: stop string {stop!r} does not survive the tokenizer (it decodes as "
                            f"{tokenizer.decode(ids)!r}); remove it from stop_strings in configs/experiment.toml")


def single_token_ids(tokenizer, stop_strings: tuple[str, ...], where: str) -> list[int]:
    """Stop strings as token ids, for a generator that can only stop on ids (TRL's GRPOTrainer)."""
    ids = []
    for stop in stop_strings:
        encoded = tokenizer(stop, add_special_tokens=False)["input_ids"]
        if len(encoded) != 1:
            raise UserError(f"{where}: stop string {stop!r} is {len(encoded)} tokens of this tokenizer; the tiny "
                            "GRPO trainer stops only on single-token stop strings")
        ids.append(encoded[0])
    return ids


def cut_at_stop(text: str, stop_strings: tuple[str, ...]) -> tuple[str, bool]:
    """(text before the first stop string, whether one was found)."""
    positions = [text.find(stop) for stop in stop_strings if stop in text]
    if not positions:
        return text, False
    return text[:min(positions)], True
