import ast

import pytest

from sft_vs_rlvr import prompts

MESSAGES = [
    [{"role": "user", "content": "Q?"}],
    [{"role": "user", "content": "Q?"}, {"role": "assistant", "content": "A\n#### 3"}],
    [{"role": "system", "content": "S"}, {"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"},
     {"role": "user", "content": "Q2"}],
]


def test_tulu_rendering():
    text = prompts.render(prompts.TULU_TEMPLATE, MESSAGES[1], eos_token="</s>", add_generation_prompt=False)
    assert text == "<|user|>\nQ?\n<|assistant|>\nA\n#### 3</s>"
    text = prompts.render(prompts.TULU_TEMPLATE, MESSAGES[0], eos_token="</s>", add_generation_prompt=True)
    assert text == "<|user|>\nQ?\n<|assistant|>\n"


def test_same_as_transformers_apply_chat_template(tmp_path):
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    tokenizer = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel({"</s>": 0}, unk_token="</s>")),
                                        eos_token="</s>")
    tokenizer.chat_template = prompts.TULU_TEMPLATE
    for messages in MESSAGES:
        for generation in (True, False):
            ours = prompts.render(prompts.TULU_TEMPLATE, messages, "</s>", generation)
            assert ours == tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation)


def _open_instruct_tulu() -> str:
    """CHAT_TEMPLATES['tulu'] at the pinned tag, read from a local open-instruct checkout or mirror."""
    from sft_vs_rlvr.launch import open_instruct

    source = open_instruct.read_source("open_instruct/dataset_transformation.py")
    if source is None:
        pytest.skip("no open-instruct checkout or mirror here (make setup-gpu makes one)")
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values):
                if isinstance(key, ast.Constant) and key.value == "tulu":
                    return ast.literal_eval(value)
    raise AssertionError("CHAT_TEMPLATES['tulu'] not found")


def test_identical_to_open_instruct_tulu_at_the_pinned_tag():
    theirs = _open_instruct_tulu()
    for messages in MESSAGES:
        for generation in (True, False):
            assert prompts.render(theirs, messages, "</s>", generation) == \
                prompts.render(prompts.TULU_TEMPLATE, messages, "</s>", generation)
