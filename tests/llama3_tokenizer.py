"""The real Llama 3 tokenizer, rebuilt offline from Meta's llama-models package (no Hub access needed).

llama-models 0.3.0 ships llama_models/llama3/tokenizer.model (the 128,000 BPE ranks, tiktoken format) and the
split pattern and 256 special tokens in llama_models/llama3/tokenizer.py. transformers' TikTokenConverter turns
them into a fast tokenizer with exactly the Hub ids (<|begin_of_text|> 128000, <|end_of_text|> 128001,
<|finetune_right_pad_id|> 128004, ...); a post-processor prepends BOS when add_special_tokens=True, as the Hub's
does. The files fall under the Llama 3 community licence: they are built at test time into a temporary folder
and never committed. `make setup` installs llama-models (--no-deps) and tiktoken for this.
"""

from __future__ import annotations

from pathlib import Path

import pytest

BOS, EOS, PAD = "<|begin_of_text|>", "<|end_of_text|>", "<|finetune_right_pad_id|>"


def build(out: Path) -> Path:
    """Save the rebuilt tokenizer into `out` (a folder AutoTokenizer loads); skip where the package is absent."""
    tokenizer_module = pytest.importorskip("llama_models.llama3.tokenizer",
                                           reason="llama-models is not installed (make setup installs it)")
    from tokenizers import processors
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import TikTokenConverter

    meta = tokenizer_module.Tokenizer.get_instance()
    model_file = Path(tokenizer_module.__file__).parent / "tokenizer.model"
    specials = sorted(meta.special_tokens, key=meta.special_tokens.get)
    backend = TikTokenConverter(vocab_file=str(model_file), pattern=meta.pat_str,
                                extra_special_tokens=specials).converted()
    bos_id = meta.special_tokens[BOS]
    backend.post_processor = processors.TemplateProcessing(single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B",
                                                           special_tokens=[(BOS, bos_id)])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token=BOS, eos_token=EOS)
    assert len(tokenizer) == 128256 and tokenizer.convert_tokens_to_ids(PAD) == 128004
    tokenizer.save_pretrained(out)
    return out
