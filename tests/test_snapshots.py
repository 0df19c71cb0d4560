"""SFT snapshots as model folders (launch/snapshots.py): conversion of real training states, pruning that always
leaves a resume point, and faults (a failed or killed conversion, a full disk) that lose nothing.

Real DeepSpeed ZeRO-2 and ZeRO-3 states are written on the CPU (2 processes, gloo) by tests/deepspeed_state.py
in open-instruct's environment, where DeepSpeed is installed; those tests skip where it is absent.
"""

from __future__ import annotations

import json
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from test_open_instruct_real import checkout_and_python, oi_environment

from sft_vs_rlvr import generation, prompts
from sft_vs_rlvr import settings as settings_mod
from sft_vs_rlvr.evaluate import driver
from sft_vs_rlvr.launch import snapshots

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def tiny(tiny_base) -> Path:
    return tiny_base


def converter(tiny: Path, python: str = sys.executable) -> list[str]:
    return snapshots.converter_command(python, str(tiny), str(tiny), "tulu", False)


def accelerate_state(output_dir: Path, step: int, weights: Path, ranks: int = 1) -> Path:
    """A finetune.py state as accelerate writes it without DeepSpeed (the tiny profile's CPU launch)."""
    state = output_dir / f"step_{step}"
    state.mkdir(parents=True)
    shutil.copy2(weights / "model.safetensors", state / "model.safetensors")
    (state / "optimizer.bin").write_bytes(b"optimizer")
    (state / "scheduler.bin").write_bytes(b"scheduler")
    for rank in range(ranks):
        (state / f"random_states_{rank}.pkl").write_bytes(b"rng")
    (state / "COMPLETED").write_text("COMPLETED")
    return state


@pytest.mark.slow  # converts real states in subprocesses (5-7 s each)
def test_states_become_model_folders_and_only_the_newest_complete_state_is_kept(tiny, tmp_path):
    output = tmp_path / "run" / "output" / "sft"
    for step in (2, 4, 6):
        accelerate_state(output, step, tiny)
    (output / "step_8").mkdir()  # being written: no COMPLETED yet
    watcher = snapshots.Watcher(output, tmp_path / "run", converter(tiny), settle_seconds=0, log=lambda _: None)
    watcher.poll()
    assert sorted(p.name for p in output.iterdir() if p.name.startswith("step_")) == ["step_6", "step_8"]
    assert (output / "step_6" / "COMPLETED").is_file()  # the resume point stays whole
    for step in (2, 4, 6):
        folder = tmp_path / "run" / "snapshots" / f"step_{step}"
        assert (folder / "CONVERTED.json").is_file() and (folder / "config.json").is_file()
        assert (folder / "chat_template.jinja").read_text() == prompts.template_text("tulu")
    entries = watcher.entries(16)
    assert [e["kind"] for e in entries] == ["hf_model"] * 3 and entries[0] == {
        "step": 2, "examples_seen": 32, "path": "snapshots/step_2", "kind": "hf_model"}
    watcher.poll(training_done=True)  # the stage finished: its last state goes too
    assert not (output / "step_6").exists() and (output / "step_8").exists()
    assert not list((tmp_path / "run" / ".trash").iterdir())


@pytest.mark.slow  # imports open-instruct in its own environment
def test_the_resume_point_is_the_one_open_instruct_picks(tiny, tmp_path, open_instruct_probe):
    checkout_and_python()
    output = tmp_path / "run" / "output" / "sft"
    for step in (3, 6):
        accelerate_state(output, step, tiny)
    snapshots.Watcher(output, tmp_path / "run", converter(tiny), settle_seconds=0, log=lambda _: None).poll()
    probe = "import sys; from open_instruct.utils import get_last_checkpoint; print(get_last_checkpoint(sys.argv[1]))"
    assert open_instruct_probe(probe, str(output)).strip().splitlines()[-1] == str(output / "step_6")


@pytest.mark.slow  # converts real states in subprocesses (5-7 s each)
def test_a_failed_conversion_keeps_its_state_says_why_and_is_redone(tiny, tmp_path):
    """Both states go to one converter process: the broken one fails with its reason, the other still converts."""
    output = tmp_path / "run" / "output" / "sft"
    for step in (2, 4):
        accelerate_state(output, step, tiny)
    (output / "step_2" / "model.safetensors").write_bytes(b"not a safetensors file")
    watcher = snapshots.Watcher(output, tmp_path / "run", converter(tiny), settle_seconds=0, log=lambda _: None)
    watcher.poll()
    assert (output / "step_2").is_dir() and (output / "step_4").is_dir()  # step_2 unconverted, step_4 the newest
    entries = watcher.entries(16)
    assert [e["kind"] for e in entries] == ["training_state", "hf_model"]
    assert "SafetensorError" in entries[0]["conversion_error"]
    assert not list((tmp_path / "run" / "snapshots").glob("*step_2*"))  # no half model folder
    shutil.copy2(tiny / "model.safetensors", output / "step_2" / "model.safetensors")  # the cause is mended
    fixed = snapshots.Watcher(output, tmp_path / "run", converter(tiny), settle_seconds=0, log=lambda _: None)
    fixed.poll()
    assert [e["kind"] for e in fixed.entries(16)] == ["hf_model", "hf_model"] and not (output / "step_2").exists()
    assert json.loads((tmp_path / "run" / "snapshots" / "index.json").read_text())["2"]["status"] == "converted"


@pytest.mark.slow  # a real conversion in a subprocess
def test_a_killed_conversion_leaves_no_model_folder_and_the_next_pass_converts_it(tiny, tmp_path):
    output = tmp_path / "run" / "output" / "sft"
    state = accelerate_state(output, 2, tiny)
    out = tmp_path / "run" / "snapshots" / "step_2"
    process = subprocess.Popen([*converter(tiny), str(state), str(out)], cwd=REPO, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT)
    process.send_signal(signal.SIGKILL)  # killed while it starts up or writes: whatever it had done
    process.wait()
    assert not (out / "CONVERTED.json").exists()
    watcher = snapshots.Watcher(output, tmp_path / "run", converter(tiny), settle_seconds=0, log=lambda _: None)
    assert not watcher.converted(2)
    watcher.poll()
    assert watcher.converted(2) and not list(out.parent.glob(".*partial"))


@pytest.mark.slow  # converts real states in subprocesses (5-7 s each)
def test_a_full_disk_mid_conversion_leaves_no_half_model_folder(tiny, tmp_path):
    state = accelerate_state(tmp_path / "output", 2, tiny)
    out = tmp_path / "snapshots" / "step_2"

    def small_files():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))

    result = subprocess.run([*converter(tiny), str(state), str(out)], cwd=REPO, capture_output=True, text=True,
                            preexec_fn=small_files, timeout=300)
    assert result.returncode != 0
    assert not out.exists() and not list(out.parent.glob(".*partial")) and state.is_dir()


@pytest.fixture(scope="module")
def deepspeed_states(tmp_path_factory):
    """Real ZeRO-2, ZeRO-2 with tied embeddings and ZeRO-3 states of a tiny Llama, written on the CPU by one launch."""
    checkout, python = checkout_and_python()
    root = tmp_path_factory.mktemp("deepspeed")
    made, specs = {}, []
    for name, stage, tie in (("zero2-tied", 2, "1"), ("zero3", 3, "0")):
        ds_config = root / f"{name}.json"
        ds_config.write_text(json.dumps({
            "bf16": {"enabled": True}, "gradient_clipping": 1.0, "train_micro_batch_size_per_gpu": 2,
            "gradient_accumulation_steps": 1, "steps_per_print": 100000,
            "zero_optimization": {"stage": stage, "stage3_gather_16bit_weights_on_model_save": True}}))
        made[name] = root / name
        specs.append(f"{made[name]},{ds_config},{tie}")
    first_config = specs[0].split(",")[1]  # the launch's own DeepSpeed configuration is the first state's
    accelerate_config = root / "accelerate.yaml"
    accelerate_config.write_text(
        "compute_environment: LOCAL_MACHINE\ndistributed_type: DEEPSPEED\n"
        f"deepspeed_config:\n  deepspeed_config_file: {first_config}\nnum_machines: 1\nnum_processes: 2\n"
        "machine_rank: 0\nuse_cpu: true\nmain_training_function: main\nrdzv_backend: static\n"
        "same_network: true\n")
    env = oi_environment(checkout, DS_ACCELERATOR="cpu", TOKENIZERS_PARALLELISM="false", MASTER_PORT="29613")
    result = subprocess.run([str(python.parent / "accelerate"), "launch", "--config_file", str(accelerate_config),
                             str(REPO / "tests" / "deepspeed_state.py"), *specs], cwd=root, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return python, made


@pytest.mark.parametrize("name, kind", [("zero2-tied", "deepspeed-zero2"), ("zero3", "deepspeed-zero3")])
@pytest.mark.slow
def test_deepspeed_states_convert_to_the_weights_the_final_save_writes(deepspeed_states, tiny, name, kind, tmp_path):
    import torch
    from safetensors.torch import load_file

    python, made = deepspeed_states
    state = made[name] / "step_3"
    assert not list(state.glob("*.safetensors")) and not list(state.glob("pytorch_model*.bin"))  # no weights file
    out = tmp_path / "model"
    command = snapshots.converter_command(str(python), str(made[name] / "config"), str(tiny), "tulu", False)
    checkout, _ = checkout_and_python()
    result = subprocess.run([*command, str(state), str(out)], cwd=REPO, env=oi_environment(checkout),
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((out / "CONVERTED.json").read_text())["kind"] == kind
    written = load_file(out / "model.safetensors")
    reference = torch.load(made[name] / "reference.pt")
    if name.endswith("tied"):
        assert "lm_head.weight" not in written  # stored once, as save_pretrained does
        reference.pop("lm_head.weight", None)
    assert sorted(written) == sorted(reference)
    assert all(torch.equal(written[k], reference[k].to(torch.bfloat16)) for k in written)
    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(out)  # a model folder transformers loads


@pytest.mark.slow
def test_the_evaluator_turns_a_deepspeed_state_without_weights_into_a_model_folder(deepspeed_states, tiny, tmp_path):
    """The defect seen on a GPU: every DeepSpeed-state checkpoint was taken for a weights folder (a generator
    object is always true) and refused with "has no weights"."""
    _, made = deepspeed_states
    final = tmp_path / "final"
    shutil.copytree(tiny, final)
    shutil.copy2(made["zero3"] / "config" / "config.json", final / "config.json")
    spec = driver.ModelSpec("sft_step3", str(made["zero3"] / "step_3"), "sft", 3, 48, "training_state", str(final))
    assert driver.spec_fingerprint(spec).startswith("state:")
    with driver.loadable(spec, settings_mod.load("tiny"), tmp_path / "scratch") as folder:
        assert (Path(folder) / "model.safetensors").is_file() and (Path(folder) / "config.json").is_file()
        tokenizer = driver.load_tokenizer(driver.ModelSpec("x", folder))
        assert tokenizer.chat_template == generation.prompt_template(prompts.template_text("tulu"), False)
    assert not (tmp_path / "scratch" / "sft_step3").exists()
