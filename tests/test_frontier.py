"""frontier.py: the statistics against values worked out by hand or from tables, the
probe's gradients against finite differences in float64, the probe's zero-weight
properties, and the frontier smoke run end to end (docs/METHODS.md, "The frontier's
measurements")."""
import copy
import json
import math
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace

import numpy as np
import pytest
import torch

import compare_methods
import figures
import experiment
import frontier
import model
import rlsd
import train_tiny
import verify


# ---------------------------------------------------------------- statistics

@pytest.mark.parametrize("p, df, table", [(0.975, 1, 12.706), (0.975, 4, 2.776), (0.8, 4, 0.941),
                                          (0.9, 10, 1.372), (0.995, 20, 2.845), (0.975, 120, 1.980)])
def test_t_quantiles_match_the_printed_table(p, df, table):
    assert frontier._t_quantile(p, df) == pytest.approx(table, abs=1e-3)


def test_power_finds_the_smallest_number_of_seeds():
    sd, delta = 0.011, 0.02
    P = frontier.power(sd, delta)
    n = P["seeds_needed"]
    need = lambda k: (frontier._t_quantile(0.975, k - 1) + frontier._t_quantile(0.8, k - 1)) * sd / math.sqrt(k)
    assert need(n) <= delta < need(n - 1)
    assert P["detectable_with_5"] == pytest.approx((2.776 + 0.941) * sd / math.sqrt(5), rel=1e-3)
    assert frontier.power(None)["seeds_needed"] is None


def test_bootstrap_interval_brackets_the_mean_and_collapses_on_constants():
    ci = frontier.bootstrap_ci([0.1, 0.3, 0.2, 0.4, 0.0])
    assert ci["mean"] == pytest.approx(0.2) and ci["lo"] < 0.2 < ci["hi"] and ci["n"] == 5
    flat = frontier.bootstrap_ci([0.5] * 4)
    assert flat["lo"] == flat["hi"] == 0.5
    assert frontier.bootstrap_ci([None, float("nan")])["mean"] is None


def _steps(leaks):
    return [{"kind": "step", "step": i, "leak": c} for i, c in enumerate(leaks)]


def test_leak_onset_uses_full_trailing_windows_and_a_count_guard():
    leak = [0.0] * 20 + [0.05] * 20   # 0.05 of 100 samples a step: 5 leaks a step
    # window 10, background 0.001: the trailing mean passes 0.003 once one 0.05 step is in it
    assert frontier.leak_onset(_steps(leak), 0.001, 100) == 20
    # fewer steps than one window: no onset, whatever the rate
    assert frontier.leak_onset(_steps([1.0] * 9), 0.001, 100) is None
    assert frontier.leak_onset(_steps([0.0] * 40), 0.001, 100) is None
    assert frontier.leak_onset(_steps(leak), None, 100) is None
    # threshold 3 x 0.011 = 0.033: six 0.05 steps in the window give 0.030, seven 0.035
    assert frontier.leak_onset(_steps(leak), 0.011, 100) == 26
    # one stray leak (1 of 64 samples) beats 3 x a tiny background, but is not an onset;
    # five leaks in one window are
    stray = [0.0] * 15 + [1 / 64] + [0.0] * 20 + [1 / 64] * 5 + [0.0] * 10
    assert frontier.leak_onset(_steps(stray), 1e-4, 64) == 40


def test_run_stats_area_and_finals_by_hand():
    rows = [{"kind": "eval", "step": s, "greedy_test": a, "greedy_hard": 0.5, "sampled_test": 0.4}
            for s, a in ((0, 0.8), (20, 0.9), (40, 0.7))] + _steps([0.0] * 30 + [0.1] * 10)
    st = frontier.run_stats(rows, 0.001, 64)
    # trapezoid: (0.85 * 20 + 0.8 * 20) / 40
    assert st["auc_greedy_test"] == pytest.approx(0.825)
    assert st["final_greedy_test"] == 0.7 and st["final_leak"] == pytest.approx(0.1) and st["leak_onset"] == 30


def test_paired_differences_are_by_seed():
    ref = {"0": dict.fromkeys(frontier.STAT_KEYS, 0.5), "1": dict.fromkeys(frontier.STAT_KEYS, 0.7)}
    arm = {"0": dict.fromkeys(frontier.STAT_KEYS, 0.6), "1": dict.fromkeys(frontier.STAT_KEYS, 0.7),
           "2": dict.fromkeys(frontier.STAT_KEYS, 0.0)}   # seed 2 has no partner: left out
    d = frontier.paired(arm, ref)["final_greedy_test"]
    assert d["per_seed"] == pytest.approx([0.1, 0.0]) and d["mean"] == pytest.approx(0.05) and d["n"] == 2


def test_power_from_the_default_runs_summary_pools_the_non_leaking_arms():
    runs = {}
    for s, (a, b, c) in enumerate(((0.80, 0.82, 0.60), (0.90, 0.91, 0.70), (0.85, 0.88, 0.65))):
        for arm, v in (("rlvr", a), ("rlsd", b), ("opsd", c)):
            runs[f"main/{arm}/{s}"] = {"status": "done", "final_eval": {"greedy_test": v}}
    P = frontier.power_from_summary({"runs": runs})
    assert P["pooled_over"] == ["rlsd"] and P["dof"] == 2
    assert P["sd_diff"] == pytest.approx(np.std([0.02, 0.01, 0.03], ddof=1))


# ---------------------------------------------------------------- the probe

@pytest.fixture(scope="module")
def base():
    student, teacher, _ = train_tiny.build_base_models("default", "unused-checkpoints", "cpu", progress=False,
                                                       shipped=train_tiny.SHIPPED)
    return student, teacher, train_tiny.PRESETS["default"]["student"].task


def _opening_logprob(net, problems, text):
    """The yardstick 'cite' or 'nowork' written out independently: the log-prob of an
    opening right after BOS + plain prompt, read from one forward pass each."""
    total = 0.0
    for p in problems:
        ctx, ids = verify.prompt_ids(p), verify.encode(text(p))
        logits = net(torch.tensor([ctx + ids]))[0].double()
        lp = torch.log_softmax(logits, -1)
        total = total + sum(lp[len(ctx) - 1 + i, t] for i, t in enumerate(ids))
    return total / len(problems)


def test_yardstick_gradients_match_finite_differences_in_float64(base):
    student, _, task = base
    net = copy.deepcopy(student).double()
    gen = torch.Generator().manual_seed(0)
    roll = rlsd.rollout(student, verify.make_problems("train", 4, seed=123, cfg=task), rlsd.RLConfig(group_size=2), gen)
    grads, counts = frontier.yardstick_grads(net, roll, 2)
    assert counts["prompts"] == 4
    u = torch.randn(sum(p.numel() for p in net.parameters()), generator=torch.Generator().manual_seed(1),
                    dtype=torch.float64)
    u /= u.norm()

    def shifted(eps):
        out = copy.deepcopy(net)
        torch.nn.utils.vector_to_parameters(torch.nn.utils.parameters_to_vector(net.parameters()) + eps * u,
                                            out.parameters())
        return out
    probs = roll.problems[::2]
    cite = lambda p: f"H{verify.num(p.value)};"
    with torch.no_grad():
        for name, text in (("cite", cite), ("nowork", lambda p: "A:")):
            eps = 1e-5
            fd = (_opening_logprob(shifted(eps), probs, text) - _opening_logprob(shifted(-eps), probs, text)) / (2 * eps)
            assert (grads[name] @ u).item() == pytest.approx(fd.item(), rel=1e-5, abs=1e-8)


def test_probe_readings_are_the_first_order_change_of_one_update(base, monkeypatch):
    """Each reading is <grad M, d> for d = -g/|g|: move the weights by +-eps d, measure M
    again, and the central difference must agree (float64 throughout, log-probs included)."""
    monkeypatch.setattr(model, "token_logprobs", lambda logits, targets: torch.log_softmax(logits.double(), -1)
                        .gather(-1, targets.unsqueeze(-1)).squeeze(-1))
    student, teacher, task = (copy.deepcopy(base[0]).double(), copy.deepcopy(base[1]).double(), base[2])
    preset = replace(experiment.PRESETS["default"], probe_batches=1, probe_big=64)
    arms = ["rlvr", "opsd"]
    P = frontier.probe(student, teacher, arms, preset, task=task)
    batches, _, held = frontier.probe_samples(student, preset, task)   # the same samples again
    for arm in arms:
        name, over = experiment.parse_arm(arm)
        state = rlsd.make_state(student, rlsd.RLConfig(method=name, group_size=8, **over), opd_teacher=teacher)
        loss = rlsd.step_loss(state, batches[0], rlsd.teacher_pass(state, batches[0]))[0]
        g = torch.cat([x.reshape(-1) for x in torch.autograd.grad(loss, list(state.policy.parameters()))])
        d, eps = -g / g.norm(), 1e-4
        theta = torch.nn.utils.parameters_to_vector(student.parameters()).detach()
        M = {}
        for sign in (1, -1):
            net = copy.deepcopy(student)
            torch.nn.utils.vector_to_parameters(theta + sign * eps * d, net.parameters())
            with torch.no_grad():
                M[sign] = {k: v.item() for k, v in frontier.yardsticks(net, held, 8)[0].items()}
        fd = {k: (M[1][k] - M[-1][k]) / (2 * eps) for k in M[1]}
        fd["blame"] = fd["right"] - fd["wrong"]
        for k in ("wrong", "right", "blame", "cite", "nowork"):
            assert P["arms"][arm][k]["per_batch"][0] == pytest.approx(fd[k], rel=1e-4, abs=1e-6), (arm, k)


def test_probe_zero_teacher_weight_is_grpo_exactly(base):
    """At step 0 the no-hint snapshot is the student itself (weight 1), RLSD with lam0 = 0
    is GRPO, and RLVR+OPSD with alpha = 0 is GRPO: the probe must read the same numbers."""
    student, teacher, task = base
    preset = replace(experiment.PRESETS["default"], probe_batches=2, probe_big=64)
    arms = ["rlvr", "rlsd:hint=none", "rlsd:lam0=0", "rlvr+opsd:alpha=0", "opsd"]
    P = frontier.probe(student, teacher, arms, preset, task=task)
    assert P["batches"] == 2 and P["big_samples"] == 64 and P["failed_responses"] > 0
    ref = P["arms"]["rlvr"]
    for arm in arms[1:4]:
        for k in ("blame", "cite", "nowork", "cos_big", "grad_norm"):
            assert P["arms"][arm][k]["per_batch"] == pytest.approx(ref[k]["per_batch"], rel=1e-5, abs=1e-9), (arm, k)
    assert P["arms"]["opsd"]["cite"]["per_batch"] != pytest.approx(ref["cite"]["per_batch"])
    assert all(abs(c) <= 1 for c in ref["cos_big"]["per_batch"])


# ---------------------------------------------------------------- end to end

SMOKE_ARMS = list(experiment.PRESETS["frontier-smoke"].arms)


def test_frontier_smoke_writes_one_entry_per_arm_the_probe_and_redraws(ckpt, tmp_path):
    out = str(tmp_path / "f")
    assert compare_methods.main(["--preset", "frontier-smoke", "--quiet", "--no-controls", "--out", out,
                                 "--checkpoints", ckpt, "--jobs", "1"]) == 0
    S = json.load(open(os.path.join(out, "summary.json")))
    assert list(S["methods"]) == SMOKE_ARMS
    assert set(S["probe"]["main"]["arms"]) == set(SMOKE_ARMS)
    assert set(S["frontier"]["per_seed"]) == set(SMOKE_ARMS) and set(S["frontier"]["vs_rlvr"]) == set(SMOKE_ARMS[1:])
    figs = [os.path.join(out, f) for f in figures.FRONTIER_FILES.values()]
    assert all(os.path.getsize(f) > 0 for f in figs)
    # figures 5 and 6 come back from the summary alone
    only = tmp_path / "only"
    only.mkdir()
    (only / "summary.json").write_text(open(os.path.join(out, "summary.json")).read())
    assert compare_methods.main(["--redraw", str(only)]) == 0
    assert sorted(os.listdir(only)) == sorted(["summary.json", *figures.FRONTIER_FILES.values()])


def test_redraw_of_a_folder_without_a_summary_is_one_line(tmp_path, capsys):
    assert compare_methods.main(["--redraw", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "summary.json does not exist" in err


def _accuracies(S):
    return {k: (r["status"], r["steps"], {m: pytest.approx(r["final_eval"][m], abs=1.01 / 16)
                                          for m in ("greedy_test", "greedy_hard", "sampled_test")})
            for k, r in S["runs"].items()}


def _stop_and_resume_a_parallel_run(ckpt, tmp_path, steps, resume_jobs):
    """SIGTERM to a --jobs 2 run: both workers stop after their step, the finished runs are
    kept, and --resume ends where an uninterrupted one-process run ends (--jobs only changes
    where runs execute: accuracies equal up to one problem flipped by float round-off, one
    thread against two; the KL yardsticks to 1e-5)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    args = ["--preset", "smoke", "--quiet", "--no-controls", "--methods", "rlvr,opsd", "--steps", str(steps),
            "--checkpoints", ckpt]
    ref, cut = str(tmp_path / "ref"), str(tmp_path / "cut")
    assert compare_methods.main(args + ["--out", ref, "--jobs", "1"]) == 0
    proc = subprocess.Popen([sys.executable, "compare_methods.py", *args, "--jobs", "2", "--out", cut], cwd=root,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    log, t0 = os.path.join(cut, "metrics.jsonl"), time.time()
    while time.time() - t0 < 120:   # wait for the workers' first steps
        if os.path.exists(log) and open(log).read().count('"kind": "step"') >= 2:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "--resume" in err and ": stopped" in err   # a worker ended its run after a step, not killed
    rows = [json.loads(line) for line in open(log)]
    assert not any(r["kind"] == "end" and r["run"].startswith("main/opsd") for r in rows)   # cut short, redone
    assert compare_methods.main(args + ["--jobs", str(resume_jobs), "--out", cut, "--resume"]) == 0
    S1, S2 = (json.load(open(os.path.join(d, "summary.json"))) for d in (ref, cut))
    assert _accuracies(S1) == _accuracies(S2)
    for key, run in S1["runs"].items():
        for k in ("kl_hinted_initial", "kl_opd_teacher"):
            assert run["final_eval"][k] == pytest.approx(S2["runs"][key]["final_eval"][k], rel=1e-5, abs=1e-7)


def test_a_stopped_parallel_run_resumes_to_the_numbers_of_one_process(ckpt, tmp_path, no_figures):
    _stop_and_resume_a_parallel_run(ckpt, tmp_path, steps=4, resume_jobs=1)


@pytest.mark.slow
def test_a_longer_stopped_parallel_run_resumes_in_parallel_to_the_same_numbers(ckpt, tmp_path, no_figures):
    _stop_and_resume_a_parallel_run(ckpt, tmp_path, steps=12, resume_jobs=2)
