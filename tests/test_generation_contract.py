"""The generation contract: the same prompt token ids for SFT data, RL data, both evaluation engines and the
pilot, on the tiny model and on the real Llama 3 tokenizer; stop strings that every engine honours.

open-instruct's own tokenization (finetune.py's SFT transform, grpo_fast's RLVR transform) runs in its
environment where it is installed (scripts/setup_open_instruct_cpu.sh) and the test skips there otherwise.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from llama3_tokenizer import build as build_llama3_tokenizer

from sft_vs_rlvr import generation, prompts
from sft_vs_rlvr import settings as settings_mod
from sft_vs_rlvr.errors import UserError
from sft_vs_rlvr.evaluate import driver, engines

REPO = Path(__file__).resolve().parent.parent
QUESTION = "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. " \
           "How many clips did Natalia sell altogether in April and May?"


def shared(profile: str) -> dict:
    return settings_mod.load(profile).shared


def messages(profile: str) -> list[dict]:
    return [{"role": "user", "content": prompts.user_content(QUESTION, shared(profile)["instruction"])}]


@pytest.fixture(scope="module")
def llama3(tmp_path_factory) -> Path:
    return build_llama3_tokenizer(tmp_path_factory.mktemp("llama3"))


@pytest.fixture(scope="module")
def tiny(tiny_base) -> Path:
    return tiny_base


def _tokenizer(path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path)


def _trained_tokenizer(base: Path, out: Path, add_bos: bool) -> Path:
    """A tokenizer as a trained arm saves it: the shared template, "{{ bos_token }}" first under --add_bos."""
    tokenizer = _tokenizer(base)
    tokenizer.chat_template = generation.prompt_template(prompts.template_text("tulu"), add_bos)
    tokenizer.save_pretrained(out)
    return out


def test_llama8b_prompt_ids_start_with_bos_once_and_the_tulu_markers_are_plain_text(llama3):
    tokenizer = _tokenizer(llama3)
    contract = generation.Contract.from_shared(shared("llama8b"))
    assert contract.add_bos  # the llama8b setting: Llama 3.1 was pretrained with <|begin_of_text|> first
    ids = generation.prompt_ids(tokenizer, prompts.template_text("tulu"), messages("llama8b"), contract)
    assert ids[0] == tokenizer.bos_token_id == 128000 and ids.count(128000) == 1
    assert tokenizer.convert_ids_to_tokens(ids[1:6]) == ["<", "|", "user", "|", ">Ċ"]
    assert tokenizer.decode(ids).endswith("<|assistant|>\n")
    # A template that already starts with BOS (a trained arm's saved one) is not given a second.
    again = generation.prompt_ids(tokenizer, generation.prompt_template(prompts.template_text("tulu"), True),
                                  messages("llama8b"), contract)
    assert again == ids


@pytest.mark.parametrize("profile", ["tiny", "llama8b"])
def test_the_evaluator_the_vllm_request_and_the_pilot_build_the_same_ids(profile, llama3, tiny, tmp_path):
    base = tiny if profile == "tiny" else llama3
    settings = settings_mod.load(profile)
    contract = generation.Contract.from_shared(settings.shared)
    rows = [{"id": "q", "messages": messages(profile), "ground_truth": "72"}]
    trained = _trained_tokenizer(base, tmp_path / "trained", contract.add_bos)
    base_tokenizer, tokenizer = _tokenizer(base), _tokenizer(trained)  # the Llama 3 one takes seconds to load
    base_ids, _, base_facts = driver.prompt_token_ids(driver.ModelSpec("base", str(base)), base_tokenizer,
                                                      settings, rows, log=lambda _: None)
    arm_ids, _, arm_facts = driver.prompt_token_ids(driver.ModelSpec("sft", str(trained)), tokenizer,
                                                    settings, rows, log=lambda _: None)
    pilot_ids = generation.prompt_ids(base_tokenizer, prompts.template_text("tulu"), rows[0]["messages"], contract)
    assert base_ids == arm_ids == [pilot_ids]
    assert base_facts["first_prompt_token_ids"] == arm_facts["first_prompt_token_ids"] == pilot_ids
    assert base_facts["add_bos"] is contract.add_bos and base_facts["stop_strings"] == list(contract.stop_strings)
    # transformers' own apply_chat_template (what TRL and open-instruct call) agrees.
    assert tokenizer.apply_chat_template(rows[0]["messages"], add_generation_prompt=True, tokenize=True,
                                         return_dict=False) == pilot_ids
    # The vLLM request carries these ids, never text (vLLM would add a BOS of its own to a string).
    request, params = engines.vllm_request(base_ids, [0], engines.greedy(512, 42, contract.stop_strings), 7)
    assert request == [{"prompt_token_ids": pilot_ids}]
    assert params[0]["stop"] == list(contract.stop_strings) and params[0]["include_stop_str_in_output"] is False


@pytest.mark.slow
def test_open_instructs_sft_and_rlvr_transforms_build_the_same_prompt_ids(llama3, tmp_path, open_instruct_probe):
    """finetune.py's SFT transform and grpo_fast's RLVR transform, run at the pinned tag with --add_bos."""
    from sft_vs_rlvr.launch import tokenizer_prep

    prepared = tokenizer_prep.prepare(str(llama3), tmp_path / "prepared")
    contract = generation.Contract.from_shared(shared("llama8b"))
    row = {"messages": [*messages("llama8b"), {"role": "assistant", "content": "48 / 2 = 24\n#### 72"}],
           "ground_truth": "72", "dataset": "gsm8k"}
    probe = (
        "import json, sys\n"
        "from open_instruct import dataset_transformation as dt\n"
        "tc = dt.TokenizerConfig(tokenizer_name_or_path=sys.argv[1], chat_template_name='tulu', add_bos=True)\n"
        "tok = tc.tokenizer\n"
        "row = json.loads(sys.argv[2])\n"
        "sft = dt.sft_tulu_tokenize_and_truncate_v1(dict(row), tok, max_seq_length=2048)\n"
        "rl = dt.rlvr_tokenize_v3(dict(row), tok)\n"
        "ids = lambda x: [int(v) for v in (x.tolist() if hasattr(x, 'tolist') else x)]\n"
        "labels = ids(sft['labels'])\n"
        "first = next(i for i, l in enumerate(labels) if l != -100)\n"
        "print(json.dumps({'sft_prompt': ids(sft['input_ids'])[:first], 'rl_prompt': ids(rl['input_ids_prompt']),"
        " 'template': tok.chat_template}))\n")
    seen = json.loads(open_instruct_probe(probe, str(prepared), json.dumps(row)).strip().splitlines()[-1])
    ours = generation.prompt_ids(_tokenizer(prepared), prompts.template_text("tulu"), row["messages"][:1], contract)
    assert seen["rl_prompt"] == ours
    assert seen["sft_prompt"] == ours  # the SFT target's prompt part, up to its first trained label
    assert seen["template"].startswith(generation.BOS_PREFIX)  # --add_bos: open-instruct's own tulu text, BOS first


def test_a_stop_string_the_tokenizer_cannot_carry_and_a_missing_bos_are_refused_in_one_line(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.WordLevel({"a": 0, "b": 1, "<unk>": 2}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", eos_token="b")
    with pytest.raises(UserError, match=r"stop string '<\|user\|>' does not survive the tokenizer"):
        generation.check_tokenizer(tokenizer, generation.Contract(("<|user|>",), False), "toy")
    with pytest.raises(UserError, match="add_bos = true but the tokenizer has no BOS token"):
        generation.check_tokenizer(tokenizer, generation.Contract(("a",), True), "toy")
    generation.check_tokenizer(tokenizer, generation.Contract(("a",), False), "toy")


@pytest.mark.parametrize("edit, message", [
    ('stop_strings = ["<|user|>", "<|assistant|>", "<|system|>"]', "must be non-empty one-line strings"),
    ('stop_strings = ["Question 1:"]', "holds a digit"),
])
def test_bad_stop_strings_in_the_settings_are_refused(config_dir, edit, message):
    path = config_dir / "experiment.toml"
    text = path.read_text()
    replacement = 'stop_strings = [""]' if "must be" in message else edit
    path.write_text(text.replace('stop_strings = ["<|user|>", "<|assistant|>", "<|system|>"]', replacement, 1))
    with pytest.raises(UserError, match=message):
        settings_mod.load("tiny", config_dir)


def test_the_transformers_engine_cuts_at_a_stop_string_and_counts_its_tokens(tiny):
    engine = engines.TransformersEngine(str(tiny), batch_size=4, max_new_tokens=12)
    tokenizer = engine.tokenizer
    decoding = engines.greedy(12, 42, ("<|user|>",))
    answer = tokenizer("#### 7\n", add_special_tokens=False)["input_ids"]
    user = tokenizer.convert_tokens_to_ids("<|user|>")
    stopped = engine.completion(answer + [user] + [engine.pad_id] * 3, decoding)
    assert stopped == engines.Completion("#### 7\n", len(answer) + 1, False)
    ended = engine.completion(answer + [tokenizer.eos_token_id, engine.pad_id], decoding)
    assert ended == engines.Completion("#### 7\n", len(answer) + 1, False)
    cut = engine.completion((answer * 12)[:12], decoding)
    assert cut.truncated and cut.tokens == 12
    # A real generation with the contract's stop strings: every completion either stopped or used the budget.
    ids = [generation.prompt_ids(tokenizer, prompts.template_text("tulu"), messages("tiny"),
                                 generation.Contract.from_shared(shared("tiny")))]
    out: dict = {}
    engine.generate(ids, replace(decoding, stop=tuple(shared("tiny")["stop_strings"])), (), lambda b: out.update(b))
    completion = out[0][0]
    assert completion.truncated == (completion.tokens == 12 and "<|user|>" not in completion.text)
    assert not any(stop in completion.text for stop in shared("tiny")["stop_strings"])
