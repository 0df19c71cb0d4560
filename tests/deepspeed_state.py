"""Write real accelerate + DeepSpeed training states of a tiny Llama, as finetune.py's save path writes them.

Run under `accelerate launch` (DeepSpeed, CPU, 2 processes, gloo) in open-instruct's environment, where
deepspeed is installed: a few optimizer steps, then `accelerator.save_state(<out>/step_N)` and COMPLETED,
exactly the sequence of finetune.py (v0.3.0, lines 966-975), and the bf16 state dict the final save would
write at that step (`reference.pt`), to compare a conversion with.
Usage (see tests/test_snapshots.py): accelerate launch --config_file CFG tests/deepspeed_state.py OUT,DS_JSON,TIE ...
Each OUT,DS_JSON,TIE is one state (TIE=1 ties the embeddings); the first DS_JSON must be the one CFG names. Several
states are written one after another by the same processes, which pays the imports and the launch once.
"""

import os
import sys

import torch
from accelerate import Accelerator, DeepSpeedPlugin
from accelerate.state import AcceleratorState, GradientState
from transformers import LlamaConfig, LlamaForCausalLM, get_scheduler


def write_state(accelerator: Accelerator, out: str, tie: bool) -> None:
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=264, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                         tie_word_embeddings=tie)
    model = LlamaForCausalLM(config).to(torch.bfloat16)
    data = [{"input_ids": torch.randint(0, 264, (16,))} for _ in range(32)]
    loader = torch.utils.data.DataLoader(data, batch_size=2, collate_fn=lambda b: {
        "input_ids": torch.stack([d["input_ids"] for d in b]), "labels": torch.stack([d["input_ids"] for d in b])})
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    scheduler = get_scheduler("linear", optimizer=optimizer, num_training_steps=100, num_warmup_steps=0)
    model, optimizer, loader, scheduler = accelerator.prepare(model, optimizer, loader, scheduler)
    for step, batch in enumerate(loader, start=1):
        loss = model(**batch, use_cache=False).loss
        accelerator.backward(loss)
        optimizer.step()
        optimizer.zero_grad()
        scheduler.step()
        if step == 3:
            state = os.path.join(out, f"step_{step}")
            accelerator.save_state(state)
            with open(os.path.join(state, "COMPLETED"), "w") as handle:
                handle.write("COMPLETED")
            reference = accelerator.get_state_dict(model)  # a collective under ZeRO-3: every rank calls it
            if accelerator.is_main_process:
                torch.save({k: v.cpu() for k, v in reference.items()}, os.path.join(out, "reference.pt"))
                accelerator.unwrap_model(model).config.save_pretrained(os.path.join(out, "config"))
            accelerator.wait_for_everyone()
            break


for index, spec in enumerate(sys.argv[1:]):
    out, ds_config, tie = spec.split(",")
    if index:  # a new DeepSpeed configuration in the same processes (and the same process group)
        AcceleratorState._reset_state()
        GradientState._reset_state()
    accelerator = Accelerator(deepspeed_plugin=DeepSpeedPlugin(hf_ds_config=ds_config) if index else None)
    write_state(accelerator, out, tie == "1")
    accelerator.free_memory()
