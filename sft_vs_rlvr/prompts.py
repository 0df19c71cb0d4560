"""The one prompt template both arms train under and every model is evaluated with.

The template text is ours, written to render exactly what open-instruct's
`CHAT_TEMPLATES["tulu"]` renders (open_instruct/dataset_transformation.py at v0.3.0); a test
compares the two renderings where an open-instruct checkout is present. It closes every
assistant turn with EOS, so SFT targets teach the model to stop and evaluation can stop on EOS
for every model alike.
"""

from __future__ import annotations

import functools

from jinja2.sandbox import ImmutableSandboxedEnvironment

TULU_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'system' -%}{{ '<|system|>\\n' ~ message['content'] ~ '\\n' }}"
    "{%- elif message['role'] == 'user' -%}{{ '<|user|>\\n' ~ message['content'] ~ '\\n' }}"
    "{%- elif message['role'] == 'assistant' -%}"
    "{{ '<|assistant|>\\n' ~ message['content'] ~ eos_token }}{%- if not loop.last -%}{{ '\\n' }}{%- endif -%}"
    "{%- endif -%}"
    "{%- if loop.last and add_generation_prompt -%}{{ '<|assistant|>\\n' }}{%- endif -%}"
    "{%- endfor -%}"
)

TEMPLATES = {"tulu": TULU_TEMPLATE}


def template_text(name: str) -> str:
    try:
        return TEMPLATES[name]
    except KeyError:
        raise ValueError(f"unknown chat template {name!r}; known: {', '.join(TEMPLATES)}") from None


def user_content(question: str, instruction: str) -> str:
    """The user turn every arm and every evaluation sees."""
    return f"{question}\n\n{instruction}" if instruction else question


def render(template: str, messages: list[dict], eos_token: str, add_generation_prompt: bool,
           bos_token: str = "") -> str:
    """Render like transformers' apply_chat_template (sandboxed jinja2, trim_blocks/lstrip_blocks)."""
    return _compiled(template).render(messages=messages, eos_token=eos_token, bos_token=bos_token,
                                      add_generation_prompt=add_generation_prompt)


@functools.lru_cache(maxsize=8)
def _compiled(template: str):
    # Compiling is most of the cost of a render; data preparation and --plan render thousands of rows.
    return ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True).from_string(template)
