"""frontier.py: how much dense credit before leakage. The one-update probe and the paired
statistics of a sweep of arms (README, "Where dense credit stops being free";
docs/METHODS.md, "The frontier's measurements"); figures.py draws them (figures 5 and 6).

  probe           from the base student's weights, one gradient per arm on the same fixed
                  batches of rollouts, read against three yardsticks measured on other
                  samples: (a) where a failed response's blame lands, (b) the first
                  derivative of the leak, (c) agreement with a large-batch GRPO gradient
  merge_probe     a resumed probe: the arms probed before, plus the new ones
  run_stats       per run: area under the accuracy curve, final accuracies, leak onset and
                  final leak rate, from the logged rows
  paired          each arm against RLVR, paired by seed, with a bootstrap 95% interval
  power           how many seeds a 2-point difference needs, from a run's seed spread
  frontier_stats  all of the above for a summary.json

compare_methods.py calls it only when the preset probes; nothing here changes how a method
trains.
"""
import copy
import math
import time

import numpy as np
import torch

import experiment
import model
import rlsd
import verify

LEAK_WINDOW = 10       # steps in the trailing window of the leak rate (64 samples a step by default)
ONSET_FACTOR = 3.0     # leak onset: the window's rate first exceeds this times the base student's background
ONSET_MIN_COUNT = 5    # ... and the window holds at least this many leaks: one stray sample is not an onset
N_BOOT = 10_000        # bootstrap resamples for every interval


# ---------------------------------------------------------------- statistics

def bootstrap_ci(x, n_boot=N_BOOT, seed=0):
    """Mean of x and a percentile bootstrap 95% interval of that mean. With few values the
    percentile interval is too narrow; the number of values is reported beside it."""
    x = np.asarray([v for v in x if v is not None and np.isfinite(v)], float)
    if len(x) == 0:
        return {"mean": None, "lo": None, "hi": None, "n": 0}
    if len(x) == 1:
        return {"mean": float(x[0]), "lo": None, "hi": None, "n": 1}
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, len(x), size=(n_boot, len(x)))].mean(1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return {"mean": float(x.mean()), "lo": float(lo), "hi": float(hi), "n": int(len(x))}


def leak_onset(steps, background, samples_per_step, window=LEAK_WINDOW, factor=ONSET_FACTOR,
               min_count=ONSET_MIN_COUNT):
    """The first step at which the leak rate (hint citations plus answers without work)
    averaged over the trailing `window` steps exceeds factor x background, with at least
    min_count leaks in the window; None if never. The count guard matters when the
    background is about one leak per window: then factor x background alone is passed by a
    single stray sample. steps: a run's step rows in order. Only full windows count."""
    if background is None:
        return None
    leak = [r["leak"] for r in steps]
    for i in range(window - 1, len(leak)):
        rate = float(np.mean(leak[i - window + 1:i + 1]))
        if rate > factor * background and rate * window * samples_per_step >= min_count - 1e-9:
            return int(steps[i]["step"])
    return None


def run_stats(rows, background, samples_per_step):
    """One finished run's numbers, from its log rows."""
    evals = [r for r in rows if r["kind"] == "eval"]
    steps = [r for r in rows if r["kind"] == "step"]
    x = np.array([e["step"] for e in evals], float)
    y = np.array([e["greedy_test"] for e in evals], float)
    # area under the greedy test curve, divided by the steps: the mean accuracy over training
    auc = float(np.sum((y[1:] + y[:-1]) / 2 * np.diff(x)) / (x[-1] - x[0])) if len(x) > 1 else float(y[0])
    tail = steps[-LEAK_WINDOW:]
    return {"auc_greedy_test": auc, "final_greedy_test": evals[-1]["greedy_test"],
            "final_greedy_hard": evals[-1]["greedy_hard"], "final_sampled_test": evals[-1]["sampled_test"],
            "leak_onset": leak_onset(steps, background, samples_per_step),
            "final_leak": float(np.mean([r["leak"] for r in tail])) if tail else None}


STAT_KEYS = ("auc_greedy_test", "final_greedy_test", "final_greedy_hard", "final_sampled_test", "final_leak")


def paired(per_seed, reference):
    """Each statistic of an arm minus the reference arm's, seed by seed (the same base model
    and prompts in the same order), with the bootstrap interval of the mean difference.
    per_seed, reference: {seed: run_stats}."""
    common = sorted(set(per_seed) & set(reference))
    out = {}
    for k in STAT_KEYS:
        d = [per_seed[s][k] - reference[s][k] for s in common
             if per_seed[s][k] is not None and reference[s][k] is not None]
        out[k] = {**bootstrap_ci(d), "per_seed": d}
    return out


def probe_vs(probe_variant, reference="rlvr", keys=("blame", "cite", "nowork", "cos_big")):
    """Each arm's probe readings minus the reference arm's, batch by batch (the same
    rollouts), with bootstrap intervals: much tighter than either arm's own interval."""
    ref = probe_variant["arms"].get(reference)
    if ref is None:
        return {}
    out = {}
    for arm, d in probe_variant["arms"].items():
        if arm != reference:
            out[arm] = {k: bootstrap_ci([a - b for a, b in zip(d[k]["per_batch"], ref[k]["per_batch"])
                                         if a is not None and b is not None]) for k in keys}
    return out


def power(sd_diff, delta=0.02, alpha=0.05, target=0.8):
    """Seeds needed for a paired two-sided t-test at level alpha to detect a mean difference
    `delta` with probability `target`, given the standard deviation of the per-seed
    differences; and the difference detectable with 5 seeds. Student-t quantiles, iterated."""
    from statistics import NormalDist
    if sd_diff is None or not sd_diff >= 0:
        return {"sd_diff": sd_diff, "seeds_needed": None, "detectable_with_5": None}
    z = NormalDist().inv_cdf
    for n in range(2, 1000):
        t_a, t_b = _t_quantile(1 - alpha / 2, n - 1), _t_quantile(target, n - 1)
        if (t_a + t_b) * sd_diff / math.sqrt(n) <= delta:
            break
    else:
        n = None   # more than 999 seeds
    five = (_t_quantile(1 - alpha / 2, 4) + _t_quantile(target, 4)) * sd_diff / math.sqrt(5)
    return {"sd_diff": sd_diff, "delta": delta, "seeds_needed": n, "detectable_with_5": five,
            "z_approx_seeds": math.ceil(((z(1 - alpha / 2) + z(target)) * sd_diff / delta) ** 2)}


def _t_quantile(p, df):
    """Student-t quantile by bisection on its CDF (regularized incomplete beta via a series
    that converges for these small df): enough for a power calculation."""
    def cdf(t):
        x = df / (df + t * t)
        ib = _betainc(df / 2, 0.5, x)
        return 1 - 0.5 * ib if t > 0 else 0.5 * ib
    lo, hi = -50.0, 50.0
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if cdf(mid) < p else (lo, mid)
    return (lo + hi) / 2


def _betainc(a, b, x):
    """Regularized incomplete beta I_x(a, b): the continued fraction, evaluated by the
    modified Lentz method, on the side of x where it converges fast."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    if x > (a + 1) / (a + b + 2):
        return 1.0 - _betainc(b, a, 1 - x)
    tiny = 1e-300
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                     + a * math.log(x) + b * math.log1p(-x))
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 500):
        for num in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),          # even term
                    -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):  # odd term
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / (c if abs(c) > tiny else tiny)
            h *= c * d
        if abs(c * d - 1.0) < 1e-14:
            break
    return front * h / a


# ---------------------------------------------------------------- the one-update probe

def _flat_grad(scalar, params, retain=False):
    return torch.cat([g.reshape(-1) for g in torch.autograd.grad(scalar, params, retain_graph=retain)])


def _rollouts(student, problems_iter, cfg, generator, *, n_batches, prompts):
    return [rlsd.rollout(student, [next(problems_iter) for _ in range(prompts)], cfg, generator)
            for _ in range(n_batches)]


def yardsticks(net, roll, group_size):
    """Four held-out log-prob averages, as tensors with net's graph: in failed responses
    with a located first wrong step, the mean log-prob of that step's tokens ("wrong") and
    of the correct tokens before it ("right"); under the plain prompts of those samples,
    the log-prob of the two shift openings, a hint citation "H<answer>;" ("cite") and a
    bare "A:" ("nowork"). Returns ({name: scalar}, counts)."""
    net.eval()
    logp = model.token_logprobs(rlsd.response_logits(net, roll.contexts, roll.tokens), roll.tokens)
    wrong, right = [], []
    for b, c in enumerate(roll.checks):
        n = int(roll.mask[b].sum())
        if c.correct or c.wrong_span is None or not 0 < c.wrong_span[0] < n:
            continue
        a0, a1 = c.wrong_span
        wrong.append(logp[b, a0:min(a1, n)].mean())
        right.append(logp[b, :a0].mean())
    probs = roll.problems[::group_size]   # one per group: the openings under the plain prompt
    out = {}
    if wrong:
        out["wrong"], out["right"] = torch.stack(wrong).mean(), torch.stack(right).mean()
    for name, text in (("cite", lambda p: f"H{verify.num(p.value)};"), ("nowork", lambda p: "A:")):
        ids = [verify.encode(text(p)) for p in probs]
        T = max(map(len, ids))
        tokens = torch.full((len(ids), T), verify.PAD, dtype=torch.long, device=roll.tokens.device)
        mask = torch.zeros(len(ids), T, device=roll.tokens.device)
        for i, t in enumerate(ids):
            tokens[i, :len(t)], mask[i, :len(t)] = torch.tensor(t), 1.0
        lp = model.token_logprobs(rlsd.response_logits(net, [verify.prompt_ids(p) for p in probs], tokens),
                                  tokens)
        out[name] = ((lp * mask).sum(1)).mean()   # log-prob of the whole opening
    return out, {"failed_responses": len(wrong), "prompts": len(probs)}


def yardstick_grads(net, roll, group_size):
    """The gradients of the yardsticks with respect to net's parameters, flattened."""
    values, counts = yardsticks(net, roll, group_size)
    params = list(net.parameters())
    names = list(values)
    return {k: _flat_grad(values[k], params, retain=i + 1 < len(names)) for i, k in enumerate(names)}, counts


def probe_samples(student, preset, task, seed=0):
    """The probe's samples of the student, drawn once: the fixed batches, the large-batch
    gradient's batches and the held-out yardstick rollout, each from `train` problems of a
    seed of its own (none of the seeds the RL runs, the evaluation or figure 2 use)."""
    G, P = preset.group_size, preset.prompts_per_step
    cfg0 = rlsd.RLConfig(group_size=G)
    gen = torch.Generator(device=student.wte.weight.device).manual_seed(seed)
    batches = _rollouts(student, verify.iter_problems("train", seed=50_000 + seed, cfg=task), cfg0, gen,
                        n_batches=preset.probe_batches, prompts=P)
    big = _rollouts(student, verify.iter_problems("train", seed=60_000 + seed, cfg=task), cfg0, gen,
                    n_batches=max(1, preset.probe_big // (P * G)), prompts=P)
    held = rlsd.rollout(student, verify.make_problems("train", max(8, preset.probe_big // (4 * G)),
                                                      seed=70_000 + seed, cfg=task), cfg0, gen)
    return batches, big, held


def probe(student, teacher, arms, preset, *, task, seed=0, progress=False, log=print, stop=None):
    """The one-update probe (docs/METHODS.md, "The frontier's measurements"). From the
    student's weights, each arm's loss gradient g on each of preset.probe_batches fixed
    batches (the same rollouts for every arm), through rlsd.step_loss, exactly the loop's
    loss at step 0. The update is a step along -g of unit length, and what it changes is
    read to first order, <grad M, -g/|g|>, for each held-out yardstick M (yardstick_grads:
    first-wrong-step and correct-prefix log-probs, shift openings), plus the cosine between
    g and a large-batch GRPO gradient over preset.probe_big other samples (probe_samples).
    arms: arm strings (experiment.parse_arm). Returns the summary entry, or None if stop()
    turned true between arms."""
    t0 = time.time()
    G, P = preset.group_size, preset.prompts_per_step
    batches, big, held = probe_samples(student, preset, task, seed)
    net = copy.deepcopy(student)
    for p in net.parameters():
        p.requires_grad_(True)
    yard, counts = yardstick_grads(net, held, G)
    all_checks = [c for r in batches + big + [held] for c in r.checks]
    out = {"batches": len(batches), "batch_size": P * G, "big_samples": sum(len(r.problems) for r in big),
           "held_out_samples": len(held.problems), **counts,
           "background_leak": verify.leak_rate(all_checks), "background_samples": len(all_checks),
           "base_reward": float(np.mean([r.rewards.mean().item() for r in batches])), "arms": {}}
    # the large-batch GRPO gradient: the mean of its batches' gradients
    grpo = rlsd.make_state(student, rlsd.RLConfig(method="rlvr", group_size=G), seed=seed)
    g_big = sum(_loss_grad(grpo, r) for r in big) / len(big)
    for arm in arms:
        if stop is not None and stop():
            return None   # asked to stop: the probe is redone whole on --resume
        state = rlsd.make_state(student, experiment.arm_config(arm, preset), opd_teacher=teacher, seed=seed)
        per = _probe_arm(state, batches, yard, g_big)
        out["arms"][arm] = {k: {**bootstrap_ci(v), "per_batch": v} for k, v in per.items()}
        if progress:
            log(f"probe {arm}: blame {out['arms'][arm]['blame']['mean']}, "
                f"cite {out['arms'][arm]['cite']['mean']}, cos {out['arms'][arm]['cos_big']['mean']}")
    out["seconds"] = time.time() - t0
    return out


def _loss_grad(state, roll):
    """The gradient of the loop's step-0 loss on one batch, flattened: the teacher pass,
    then rlsd.step_loss, as train_step calls them."""
    return _flat_grad(rlsd.step_loss(state, roll, rlsd.teacher_pass(state, roll))[0],
                      list(state.policy.parameters()))


def _probe_arm(state, batches, yard, g_big):
    """One arm's readings, batch by batch; a batch with no gradient reads None."""
    per = {k: [] for k in ("wrong", "right", "blame", "cite", "nowork", "cos_big", "grad_norm",
                           "blame_adam", "cite_adam", "nowork_adam")}
    for roll in batches:
        # each batch from the loop's step 0: alpha as configured, halved if this batch leaks
        state.alpha = rlsd.adapted_alpha(state, state.cfg.alpha, verify.leak_rate(roll.checks))
        g = _loss_grad(state, roll)
        norm = g.norm().item()
        per["grad_norm"].append(norm)
        if norm == 0:   # no signal in this batch (every group all right or all wrong): kept as None
            for k in per:  # so that per_batch lists stay aligned across arms
                if k != "grad_norm":
                    per[k].append(None)
            continue
        d = -g / norm
        adam = -torch.sign(g) / math.sqrt(g.numel())   # AdamW's first step, at unit length
        for k in ("wrong", "right", "cite", "nowork"):
            per[k].append((yard[k] @ d).item() if k in yard else None)
        per["blame"].append(per["right"][-1] - per["wrong"][-1] if "wrong" in yard else None)
        per["blame_adam"].append(((yard["right"] - yard["wrong"]) @ adam).item() if "wrong" in yard else None)
        per["cite_adam"].append((yard["cite"] @ adam).item())
        per["nowork_adam"].append((yard["nowork"] @ adam).item())
        per["cos_big"].append((g @ g_big).item() / (norm * g_big.norm().item()) if g_big.norm() > 0 else None)
    return per


def merge_probe(old, new):
    """A resumed probe: the samples and yardsticks are the same (fixed by the seed), so only
    the newly probed arms are added to each student's entry."""
    probe = dict(old)
    for v, p in new.items():
        probe[v] = {**p, "arms": {**old[v]["arms"], **p["arms"]},
                    "seconds": old[v]["seconds"] + p["seconds"]} if v in old else p
    return probe


def frontier_stats(by_run, runs, S, probe):
    """Per arm and student: each finished run's statistics (run_stats, leak onset against
    that student's background leak from the probe), and for the main student each arm
    minus RLVR, paired by seed, with bootstrap 95% intervals; the probe's readings minus
    RLVR's; the power analysis."""
    preset = S["preset"]
    out = {"per_seed": {}, "vs_rlvr": {}, "onset_factor": ONSET_FACTOR, "leak_window": LEAK_WINDOW,
           "onset_min_count": ONSET_MIN_COUNT}
    for variant, arm, seed in runs:
        key = experiment.run_key(variant, arm, seed)
        if S["runs"][key]["status"] != "done":
            continue
        bg = probe.get(variant, {}).get("background_leak")
        name = arm if variant == "main" else f"{arm}/control"
        samples = preset["prompts_per_step"] * preset["group_size"]
        out["per_seed"].setdefault(name, {})[str(seed)] = run_stats(by_run[key], bg, samples)
    ref = out["per_seed"].get("rlvr")
    if ref:
        for name, per in out["per_seed"].items():
            if not name.endswith("/control") and name != "rlvr":
                out["vs_rlvr"][name] = paired(per, ref)
    out["probe_vs_rlvr"] = probe_vs(probe["main"]) if "main" in probe else {}
    out["power"] = power_from_summary(S)
    return out


def power_from_summary(S, delta=0.02, leaky=("opsd",)):
    """The power analysis from a summary's own runs: the standard deviation of the per-seed
    differences in final greedy test accuracy between each main arm and RLVR (arms whose
    method is in `leaky` left out: their differences are the effect, not the noise),
    pooled, and what it implies (power)."""
    finals = {}
    for key, run in S["runs"].items():
        variant, arm, seed = key.split("/")
        if variant == "main" and run["status"] == "done" and run["final_eval"]:
            finals.setdefault(arm, {})[seed] = run["final_eval"]["greedy_test"]
    ref = finals.get("rlvr", {})
    diffs = {arm: [v[s] - ref[s] for s in v if s in ref] for arm, v in finals.items()
             if arm != "rlvr" and experiment.method_of(arm) not in leaky}
    # pooled variance of the differences around each arm's own mean difference
    ss = sum(float(np.sum((np.array(d) - np.mean(d)) ** 2)) for d in diffs.values() if len(d) > 1)
    dof = sum(len(d) - 1 for d in diffs.values() if len(d) > 1)
    sd = math.sqrt(ss / dof) if dof else None
    rlvr_sd = float(np.std(list(ref.values()), ddof=1)) if len(ref) > 1 else None
    return {**power(sd, delta), "pooled_over": sorted(diffs), "dof": dof, "rlvr_seed_sd": rlvr_sd}
