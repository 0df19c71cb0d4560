"""The RL arms' learning dynamics from the trainers' unbiased signals, not from their filtered rewards.

open-instruct's grpo_fast (v0.3.0) computes every reward-type metric it logs (scores, objective/*,
batch/percent_solved_*, val/stop_rate, val/sequence_lengths*) over the prompt groups that survived its
zero-variance filter only: a group whose samples all got the same reward is dropped before anything is
measured, so those curves hover near 50% whatever the policy's solve rate (oi-grpo-v030.md §4). What is
unbiased, and what this module reads:

  solve_rate        (c T + F_solved) / (T + F), the share of every sampled response that is correct:
                    c = objective/verifiable_correct_rate (else batch/percent_solved_mean) over the
                    T = batch/total_prompts surviving groups, F = batch/filtered_prompts dropped groups, of which
                    F_solved = batch/filtered_prompts_solved were all correct and the rest all wrong. A step
                    with batch/filtered_prompts_nonzero > 0 (a constant reward that is neither: only with a
                    format reward or a penalty) cannot be rebuilt and is left out, said in the note.
  trained_groups    T / (T + F): the share of sampled groups that carried a learning signal
  all_correct_groups, all_wrong_groups   F_solved / (T + F), F_zero / (T + F)
  eval_pass_at_1, eval_stop_rate, eval_response_length   the in-loop evaluation on test rows (every
                    response, no filter; logged at the step its results were collected)
  entropy           policy/entropy_avg over the trained tokens (with --record_entropy)
  kl                objective/kl0_avg (k1); with beta 0 and --load_ref_policy false there is no reference model
                    and grpo_fast logs 0.0, which is not a measurement: "not measured", never a curve of zeros
  reward_survivors, response_length_survivors, truncated_ratio_survivors   what grpo_fast logs for the
                    surviving groups (objective/verifiable_correct_rate, val/sequence_lengths, 1 - val/stop_rate),
                    shown under those names; length and truncation of every sample cannot be rebuilt.

TRL's GRPOTrainer (the tiny profile) filters nothing: train/reward is the mean verifier reward (1 or 0) of every
sample, so it is the solve rate; 1 - train/frac_reward_zero_std is the share of groups with a learning signal;
train/entropy, train/kl (absent with beta 0), train/completions/mean_length and clipped_ratio cover every
sample. TRL's tiny runs have no in-loop evaluation.

A curve that cannot be rebuilt is returned under "unavailable" with the reason, never replaced by a biased one.
"""

from __future__ import annotations

from typing import Any

from sft_vs_rlvr.report.wandb_runs import curve, is_number, series

OPEN_INSTRUCT, TRL = "open-instruct grpo_fast", "TRL GRPOTrainer"
SURVIVOR_RATE_KEYS = ("objective/verifiable_correct_rate", "batch/percent_solved_mean")
TRL_NO_EVAL = "not logged: TRL's tiny runs evaluate no test rows in the loop (section 4 has the checkpoints' accuracy)"
TITLES = {
    "solve_rate": "solve rate, all sampled responses", "trained_groups": "share of groups that trained",
    "all_correct_groups": "share of groups all correct", "all_wrong_groups": "share of groups all wrong",
    "eval_pass_at_1": "in-loop eval pass@1 (test rows)", "eval_stop_rate": "in-loop eval stop rate",
    "eval_response_length": "in-loop eval response length", "entropy": "policy entropy (trained tokens)",
    "kl": "KL to the reference (k1)", "response_length": "mean response length (tokens)",
    "truncated_ratio": "share of responses truncated", "reward_std": "reward std within batch",
    "reward_survivors": "solve rate, surviving groups only (as logged; biased)",
    "response_length_survivors": "response length, surviving groups only",
    "truncated_ratio_survivors": "share truncated, surviving groups only",
}


def trainer_of(history: list[dict[str, Any]]) -> str | None:
    """Which RL trainer wrote the history: TRL's keys start with train/, grpo_fast's step is training_step."""
    for row in history:
        if "train/reward" in row or "train/global_step" in row:
            return TRL
        if "training_step" in row:
            return OPEN_INSTRUCT
    return None


def _keyed(history: list[dict[str, Any]], key: str, step_key: str, invert: bool = False,
           **extra: Any) -> dict[str, Any] | None:
    points = series(history, key, step_key)
    if invert:
        points = [[step, 1 - value] for step, value in points]
    return curve(points, f"1 - {key}" if invert else key, step_key, **extra) if points else None


def _open_instruct(history: list[dict[str, Any]], beta: float | None) -> tuple[dict[str, Any], dict[str, str]]:
    step_key = "training_step"
    rows = [row for row in history if is_number(row.get(step_key))]
    present = set().union(*rows) if rows else set()
    rate_key = next((key for key in SURVIVOR_RATE_KEYS if key in present), None)
    total_key = next((key for key in ("batch/total_prompts", "val/total_reward_groups") if key in present), None)
    solve, trained, correct, wrong, left_out = [], [], [], [], 0
    for row in rows:
        step, kept, dropped = row[step_key], row.get(total_key), row.get("batch/filtered_prompts")
        if not (is_number(kept) and is_number(dropped)) or kept + dropped <= 0:
            continue
        n = kept + dropped
        trained.append([step, kept / n])
        solved, zero = row.get("batch/filtered_prompts_solved"), row.get("batch/filtered_prompts_zero")
        if is_number(solved):
            correct.append([step, solved / n])
        if is_number(zero):
            wrong.append([step, zero / n])
        rate = row.get(rate_key)
        if is_number(rate) and is_number(solved):
            if is_number(row.get("batch/filtered_prompts_nonzero")) and row["batch/filtered_prompts_nonzero"] > 0:
                left_out += 1  # groups at a constant reward that is neither all right nor all wrong
                continue
            solve.append([step, (rate * kept + solved) / n])
    counts = f"{total_key or 'batch/total_prompts'}, batch/filtered_prompts"
    metrics: dict[str, Any] = {}
    unavailable: dict[str, str] = {}
    if solve:
        note = "rebuilt: (c T + F_solved) / (T + F) over every sampled prompt"
        if left_out:
            note += f"; {left_out} steps with batch/filtered_prompts_nonzero > 0 left out (cannot be rebuilt)"
        metrics["solve_rate"] = curve(solve, f"rebuilt from {rate_key}, {counts}, batch/filtered_prompts_solved",
                                      step_key, note=note)
    else:
        needs = [name for name, found in ((" or ".join(SURVIVOR_RATE_KEYS), rate_key),
                                          ("batch/total_prompts", total_key),
                                          ("batch/filtered_prompts", "batch/filtered_prompts" in present),
                                          ("batch/filtered_prompts_solved", "batch/filtered_prompts_solved" in present))
                 if not found]
        what = f"the run logged no {', '.join(needs)}" if needs else "no step logged all of its inputs"
        unavailable["solve_rate"] = (f"cannot be rebuilt: {what}; the reward it logged "
                                     "covers only the groups that survived the zero-variance filter")
    for metric, points, what in (("trained_groups", trained, "T / (T + F)"),
                                 ("all_correct_groups", correct, "batch/filtered_prompts_solved / (T + F)"),
                                 ("all_wrong_groups", wrong, "batch/filtered_prompts_zero / (T + F)")):
        if points:
            metrics[metric] = curve(points, f"rebuilt: {what}", step_key)
        else:
            unavailable[metric] = f"cannot be rebuilt: the run logged no {counts} counts"
    for metric, key in (("eval_pass_at_1", "eval/pass_at_1"), ("eval_stop_rate", "eval/stop_rate"),
                        ("eval_response_length", "eval/sequence_lengths")):
        found = _keyed(rows, key, step_key, note="logged at the step its results were collected")
        if found:
            metrics[metric] = found
        else:
            unavailable[metric] = f"not logged ({key}): no in-loop evaluation (--local_eval_every, " \
                                  "--dataset_mixer_eval_list)"
    entropy = _keyed(rows, "policy/entropy_avg", step_key)
    if entropy:
        metrics["entropy"] = entropy
    else:
        unavailable["entropy"] = "not logged (policy/entropy_avg): --record_entropy was off"
    kl_key = next((k for k in ("objective/kl0_avg", "objective/kl_avg") if k in present), None)
    if beta == 0:
        unavailable["kl"] = ("not measured: beta 0, no reference model (grpo_fast logs objective/kl*_avg as 0.0 "
                             "without one)")
    elif kl_key:
        metrics["kl"] = _keyed(rows, kl_key, step_key)
    else:
        unavailable["kl"] = "not logged (objective/kl0_avg)"
    survivors = ("grpo_fast logs it for the surviving groups only (see *_survivors); every test response's is in "
                 "the in-loop evaluation's curves")
    unavailable["response_length"] = f"cannot be rebuilt for every sample: {survivors}"
    unavailable["truncated_ratio"] = f"cannot be rebuilt for every sample: {survivors}"
    for metric, key, invert in (("reward_survivors", rate_key, False),
                                ("response_length_survivors", "val/sequence_lengths", False),
                                ("truncated_ratio_survivors", "val/stop_rate", True)):
        found = _keyed(rows, key, step_key, invert, note="surviving groups only") if key else None
        if found:
            metrics[metric] = found
    return metrics, unavailable


def _trl(history: list[dict[str, Any]], beta: float | None) -> tuple[dict[str, Any], dict[str, str]]:
    step_key = "train/global_step"
    metrics: dict[str, Any] = {}
    unavailable: dict[str, str] = {}
    for metric, key, invert, note in (
            ("solve_rate", "train/reward", False, "mean verifier reward (1 or 0) of every sample: TRL filters none"),
            ("trained_groups", "train/frac_reward_zero_std", True, "groups whose rewards differ"),
            ("entropy", "train/entropy", False, None), ("kl", "train/kl", False, None),
            ("response_length", "train/completions/mean_length", False, None),
            ("truncated_ratio", "train/completions/clipped_ratio", False, None),
            ("reward_std", "train/reward_std", False, None)):
        found = _keyed(history, key, step_key, invert, **({"note": note} if note else {}))
        if found:
            metrics[metric] = found
        elif metric == "kl":
            unavailable["kl"] = ("not measured: beta 0, no reference model (TRL computes no KL without one)"
                                 if beta == 0 else "not logged (train/kl)")
        elif metric != "reward_std":
            unavailable[metric] = f"not logged ({key})"
    for metric in ("eval_pass_at_1", "eval_stop_rate", "eval_response_length"):
        unavailable[metric] = TRL_NO_EVAL
    for metric in ("all_correct_groups", "all_wrong_groups"):
        unavailable[metric] = ("not logged: TRL logs only the share of groups with equal rewards "
                               "(frac_reward_zero_std), not whether they were all right or all wrong")
    return metrics, unavailable


def rl_curves(history: list[dict[str, Any]], beta: float | None) -> tuple[dict[str, Any], dict[str, str]]:
    """The RL-specific curves of one run ({metric: curve}) and the ones it cannot give ({metric: reason});
    beta is the stage's KL coefficient (manifest settings), None when unknown."""
    trainer = trainer_of(history)
    if trainer == TRL:
        return _trl(history, beta)
    if trainer == OPEN_INSTRUCT:
        return _open_instruct(history, beta)
    return {}, {}
