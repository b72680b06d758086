"""frontier.py: how much dense credit before leakage. The one-update probe, the paired
statistics of a sweep of arms, and figures 5 and 6 (README, "Where dense credit stops
being free"; docs/METHODS.md, "The frontier's measurements").

  probe          from the base student's weights, one gradient per arm on the same fixed
                 batches of rollouts, read against three yardsticks measured on other
                 samples: (a) where a failed response's blame lands, (b) the first
                 derivative of the leak, (c) agreement with a large-batch GRPO gradient
  run_stats      per run: area under the accuracy curve, final accuracies, leak onset and
                 final leak rate, from the logged rows
  paired         each arm against RLVR, paired by seed, with a bootstrap 95% interval
  power          how many seeds a 2-point difference needs, from a run's seed spread
  draw_frontier  fig5_frontier.png and fig6_knobs.png, from summary.json alone

compare_methods.py calls all of it; nothing here changes how a method trains.
"""
import copy
import math
import time

import numpy as np
import torch

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
    leak = [r["cites_hint"] + r["no_work"] for r in steps]
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
            "final_leak": float(np.mean([r["cites_hint"] + r["no_work"] for r in tail])) if tail else None}


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
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
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

def leak_sum(checks):
    """The leak rate as the runs log it: the rate of hint citations plus the rate of answers
    without work (a response that does both counts twice; docs/METHODS.md)."""
    n = max(1, len(checks))
    return sum(c.cites_hint for c in checks) / n + sum(c.no_work for c in checks) / n


def _flat_grad(scalar, params, retain=False):
    return torch.cat([g.reshape(-1) for g in torch.autograd.grad(scalar, params, retain_graph=retain)])


def _rollouts(student, problems_iter, n_batches, prompts, cfg, generator):
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
        lp = model.token_logprobs(rlsd.response_logits(net, [verify.prompt_ids(p) for p in probs], tokens), tokens)
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
    batches = _rollouts(student, verify.iter_problems("train", seed=50_000 + seed, cfg=task), preset.probe_batches,
                        P, cfg0, gen)
    big = _rollouts(student, verify.iter_problems("train", seed=60_000 + seed, cfg=task),
                    max(1, preset.probe_big // (P * G)), P, cfg0, gen)
    held = rlsd.rollout(student, verify.make_problems("train", max(8, preset.probe_big // (4 * G)),
                                                      seed=70_000 + seed, cfg=task), cfg0, gen)
    return batches, big, held


def probe(student, teacher, arms, preset, task, seed=0, progress=False, log=print, stop=None):
    """The one-update probe (docs/METHODS.md, "The frontier's measurements"). From the
    student's weights, each arm's loss gradient g on each of preset.probe_batches fixed
    batches (the same rollouts for every arm), through rlsd.step_loss, exactly the loop's
    loss at step 0. The update is a step along -g of unit length, and what it changes is
    read to first order, <grad M, -g/|g|>, for each held-out yardstick M (yardstick_grads:
    first-wrong-step and correct-prefix log-probs, shift openings), plus the cosine between
    g and a large-batch GRPO gradient over preset.probe_big other samples (probe_samples).
    arms: (label, method, overrides) triples, as compare_methods.parse_arm reads them.
    Returns the summary entry, or None if stop() turned true between arms."""
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
           "background_leak": leak_sum(all_checks), "background_samples": len(all_checks),
           "base_reward": float(np.mean([r.rewards.mean().item() for r in batches])), "arms": {}}
    # the large-batch GRPO gradient: the mean of its batches' gradients
    grpo = rlsd.make_state(student, rlsd.RLConfig(method="rlvr", group_size=G), seed=seed)
    params = [p for p in grpo.policy.parameters()]
    g_big = sum(_flat_grad(rlsd.step_loss(grpo, r)[0], params) for r in big) / len(big)
    for arm, name, over in arms:
        if stop is not None and stop():
            return None   # asked to stop: the probe is redone whole on --resume
        cfg = rlsd.RLConfig(method=name, group_size=G, lr=preset.lr, **over)
        state = rlsd.make_state(student, cfg, opd_teacher=teacher, seed=seed)
        params = [p for p in state.policy.parameters()]
        per = {k: [] for k in ("wrong", "right", "blame", "cite", "nowork", "cos_big", "grad_norm",
                               "blame_adam", "cite_adam", "nowork_adam")}
        for roll in batches:
            state.alpha = cfg.alpha   # each batch from the same starting state
            g = _flat_grad(rlsd.step_loss(state, roll)[0], params)
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
        out["arms"][arm] = {k: {**bootstrap_ci(v), "per_batch": v} for k, v in per.items()}
        if progress:
            log(f"probe {arm}: blame {out['arms'][arm]['blame']['mean']}, cite {out['arms'][arm]['cite']['mean']}, "
                f"cos {out['arms'][arm]['cos_big']['mean']}")
    out["seconds"] = time.time() - t0
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
             if arm != "rlvr" and arm.partition(":")[0] not in leaky}
    # pooled variance of the differences around each arm's own mean difference
    ss = sum(float(np.sum((np.array(d) - np.mean(d)) ** 2)) for d in diffs.values() if len(d) > 1)
    dof = sum(len(d) - 1 for d in diffs.values() if len(d) > 1)
    sd = math.sqrt(ss / dof) if dof else None
    rlvr_sd = float(np.std(list(ref.values()), ddof=1)) if len(ref) > 1 else None
    return {**power(sd, delta), "pooled_over": sorted(diffs), "dof": dof, "rlvr_seed_sd": rlvr_sd}


# ---------------------------------------------------------------- figures 5 and 6

SYMBOLS = {"lam0": "λ", "eps_w": "ε_w", "alpha": "α", "lam_decay_steps": "decay", "refresh_every": "refresh"}


def _split_arm(arm):
    """'rlsd:eps_w=1,lam0=1' -> ('rlsd', {'eps_w': '1', 'lam0': '1'}): an arm's text as the
    figures need it (compare_methods.parse_arm checks and types it before any run)."""
    method, _, rest = arm.partition(":")
    return method, dict(kv.split("=", 1) for kv in rest.split(",")) if rest else {}


def short_label(arm):
    """A compact name for crowded figures: 'rlsd:lam_kind=constant,lam0=1,eps_w=3' ->
    'RLSD λ=1 const, ε_w=3'."""
    method, over = _split_arm(arm)
    name = {"rlvr": "GRPO", "opd": "OPD", "opsd": "OPSD", "rlsd": "RLSD", "rlvr+opsd": "GRPO+OPSD"}.get(method, method)
    parts = []
    if method == "rlsd" and not over:
        parts.append("paper schedule")
    for k, v in over.items():
        if k == "lam_kind":
            parts.append("const λ" if v == "constant" else v)
        elif k == "hint":
            parts.append(f"hint={v}")
        elif k == "alpha_leak_threshold":
            parts.append(f"adaptive >{v}")
        else:
            parts.append(f"{SYMBOLS.get(k, k)}={v}")
    return name + (" " + ", ".join(parts) if parts else "")


def family_color(arm, arms):
    """One hue per method; arms of the same method in shades of it, by their order."""
    import matplotlib
    method = arm.partition(":")[0]
    cmap = {"rlvr": "Blues", "rlsd": "Purples", "rlvr+opsd": "Oranges", "opsd": "Reds", "opd": "Greens"}.get(method, "Greys")
    same = [a for a in arms if a.partition(":")[0] == method]
    if arm not in same:   # e.g. a control arm whose main run did not finish
        same.append(arm)
    shade = 0.85 if len(same) == 1 else 0.45 + 0.5 * same.index(arm) / (len(same) - 1)
    return matplotlib.colormaps[cmap](shade)


def _mean_ci(per_seed, key):
    return bootstrap_ci([v[key] for v in per_seed.values()])


def _err(ci):
    if ci["lo"] is None:
        return [[0], [0]]
    return [[ci["mean"] - ci["lo"]], [ci["hi"] - ci["mean"]]]


def draw_frontier(S, path):
    """Figure 5, three panels, one marker per arm (numbered; the legend names them): the
    probe's targeted blame against the final leak rate and against the paired accuracy
    gain over RLVR, and the probe's first derivative of the leak against the final leak
    rate (does one update foretell the leak?)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    F, P = S["frontier"], S["probe"]
    arms = [a for a in F["per_seed"] if not a.endswith("/control")]
    fig, axes = plt.subplots(1, 3, figsize=(19, 6.5))
    handles = []
    for i, (name, per) in enumerate(F["per_seed"].items(), 1):
        arm, control = name.removesuffix("/control"), name.endswith("/control")
        pr = P["control" if control else "main"]["arms"].get(arm)
        if pr is None or pr["blame"]["mean"] is None:
            continue
        c = family_color(arm, arms)
        kw = dict(fmt="s" if control else "o", color=c, mfc="white" if control else c, ms=7, capsize=2, lw=1)
        leak = _mean_ci(per, "final_leak")
        shift = {k: pr[k]["mean"] for k in ("cite", "nowork")}
        points = [(axes[0], pr["blame"], leak, 1.0)]
        if not control:
            gain = F["vs_rlvr"][arm]["final_greedy_test"] if arm != "rlvr" else {"mean": 0.0, "lo": None}
            points.append((axes[1], pr["blame"], gain, 100.0))
        deriv = {"mean": shift["cite"] + shift["nowork"], "lo": None}
        points.append((axes[2], deriv, leak, 1.0))
        for ax, x, y, scale in points:
            ax.errorbar(x["mean"], scale * y["mean"], xerr=_err(x), yerr=scale * np.array(_err(y)), **kw)
            ax.annotate(str(i), (x["mean"], scale * y["mean"]), fontsize=7, xytext=(4, 3), textcoords="offset points")
        handles.append(Line2D([], [], marker=kw["fmt"], color=c, mfc=kw["mfc"], ls="",
                              label=f"{i}  {short_label(arm)}" + (" (control student)" if control else "")))
    blame_label = ("targeted blame (probe): first-order drop of the first wrong step's\nlog-prob below the correct "
                   "prefix's, per unit-length update (nats)")
    bg = P["main"]["background_leak"]
    axes[0].set(xlabel=blame_label, ylabel=f"leak rate, last {F['leak_window']} steps (hint citations + no-work answers)",
                title="Density against leakage")
    axes[1].axhline(0, color="gray", lw=1)
    axes[1].set(xlabel=blame_label, ylabel="final greedy test accuracy minus RLVR's, same seed (points)",
                title="Density against accuracy (paired by seed)")
    axes[2].set(xlabel="first derivative of the leak (probe): first-order rise of log p('H<answer>;')\n"
                       "plus log p('A:') under the plain prompt, per unit-length update (nats)",
                ylabel=axes[0].get_ylabel(), title="Does one update foretell the leak?")
    for ax in (axes[0], axes[2]):
        ax.axhline(bg, color="gray", ls=":", lw=1)
        ax.set_yscale("symlog", linthresh=0.01)
        ax.set_ylim(bottom=0)
    axes[2].axvline(0, color="gray", lw=1)
    fig.legend(handles=handles, loc="center right", fontsize=8, frameon=False,
               title="arms (squares, hollow: the control student,\nwhose hinted self has nothing to leak)",
               title_fontsize=8)
    fig.suptitle(f"The frontier: {S['preset']['seeds']} seeds x {S['preset']['steps']} steps per arm; error bars: "
                 f"bootstrap 95% intervals, over seeds (y, and accuracy) and over {P['main']['batches']} probe batches "
                 f"(x); dotted: the base student's background leak rate", fontsize=10)
    fig.tight_layout(rect=(0, 0, 0.83, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _dose(arm):
    """(family, dose) of an arm in figure 6, or None: RLVR+OPSD by alpha, RLSD with constant
    lam by lam x eps_w."""
    method, over = _split_arm(arm)
    if method == "rlvr+opsd" and "alpha_leak_threshold" not in over and set(over) <= {"alpha"}:
        return "rlvr+opsd", float(over.get("alpha", rlsd.RLConfig.alpha))
    if method == "rlsd" and over.get("lam_kind") == "constant" and set(over) <= {"lam_kind", "lam0", "eps_w"}:
        return "rlsd", float(over.get("lam0", rlsd.RLConfig.lam0)) * float(over.get("eps_w", rlsd.RLConfig.eps_w))
    return None


def draw_knobs(S, path):
    """Figure 6: dose-response. Rows: RLVR+OPSD against alpha, RLSD (constant lam) against
    lam x eps_w. Columns: final greedy test accuracy minus RLVR's (paired), leak onset per
    seed, final leak rate. Arms that are not on a dose axis (the adaptive alpha, RLSD's
    paper schedule) are drawn at the right, apart."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    F = S["frontier"]
    steps = S["preset"]["steps"]
    fig, axes = plt.subplots(2, 3, figsize=(15, 8), sharex="row")
    rows = {"rlvr+opsd": (0, "α, the JSD weight beside GRPO (log scale)", "tab:orange"),
            "rlsd": (1, "λ·ε_w, the most RLSD can tilt a token's credit (log scale)", "tab:purple")}
    for name, per in F["per_seed"].items():
        if name.endswith("/control") or _dose(name) is None:
            continue
        fam, dose = _dose(name)
        r, xlabel, c = rows[fam]
        d = F["vs_rlvr"][name]["final_greedy_test"]
        axes[r, 0].errorbar(dose, 100 * d["mean"], yerr=100 * np.array(_err(d)), fmt="o", color=c, capsize=3)
        on = [v["leak_onset"] for v in per.values()]
        jitter = np.linspace(0.92, 1.08, len(on))
        axes[r, 1].scatter(dose * jitter, [steps + 5 if o is None else o for o in on], color=c,
                           marker="o", s=18)
        leak = _mean_ci(per, "final_leak")
        axes[r, 2].errorbar(dose, leak["mean"], yerr=_err(leak), fmt="o", color=c, capsize=3)
    # the arms that are not on a dose axis, drawn as stars where they start
    adaptive = [(a, _split_arm(a)[1]) for a in F["per_seed"] if not a.endswith("/control")
                and _split_arm(a)[0] == "rlvr+opsd" and "alpha_leak_threshold" in _split_arm(a)[1]]
    apart = {"rlvr+opsd": [(a, float(o.get("alpha", rlsd.RLConfig.alpha)),
                            f"adaptive: α halves when the step's leak > {o['alpha_leak_threshold']}")
                           for a, o in adaptive],
             "rlsd": [("rlsd", rlsd.RLConfig.lam0 * rlsd.RLConfig.eps_w,
                       f"paper schedule: λ {rlsd.RLConfig.lam0:g} -> 0 in {rlsd.RLConfig.lam_decay_steps} steps")]
             if "rlsd" in F["per_seed"] else []}
    for fam, arms_apart in apart.items():
        r, _, c = rows[fam]
        for arm, dose, text in arms_apart:
            per = F["per_seed"][arm]
            d = F["vs_rlvr"][arm]["final_greedy_test"]
            axes[r, 0].errorbar(dose, 100 * d["mean"], yerr=100 * np.array(_err(d)), fmt="*", ms=11, color="k",
                                mfc=c, capsize=3, label=text)
            on = [v["leak_onset"] for v in per.values()]
            axes[r, 1].scatter(dose * np.linspace(0.92, 1.08, len(on)), [steps + 5 if o is None else o for o in on],
                               marker="*", s=60, color=c, edgecolor="k", lw=0.5)
            leak = _mean_ci(per, "final_leak")
            axes[r, 2].errorbar(dose, leak["mean"], yerr=_err(leak), fmt="*", ms=11, color="k", mfc=c, capsize=3)
    for fam, (r, xlabel, c) in rows.items():
        ref = F["per_seed"].get("rlvr", {})
        ref_leak = _mean_ci(ref, "final_leak")["mean"] if ref else None
        for j, ax in enumerate(axes[r]):
            ax.set_xscale("log")
            ax.set_xlabel(xlabel)
        axes[r, 0].axhline(0, color="tab:blue", lw=1, ls="--", label="RLVR (GRPO)")
        axes[r, 0].set_ylabel("final greedy test minus RLVR (points)")
        axes[r, 1].axhline(steps + 5, color="gray", lw=0.8, ls=":")
        axes[r, 1].set_ylim(0, steps + 10)
        axes[r, 1].set_ylabel(f"leak onset step (top row: none in {steps})")
        axes[r, 2].set_ylabel("final leak rate")
        if ref_leak is not None:
            axes[r, 2].axhline(ref_leak, color="tab:blue", lw=1, ls="--", label="RLVR (GRPO)")
        opsd = F["per_seed"].get("opsd")
        if opsd:
            axes[r, 2].axhline(_mean_ci(opsd, "final_leak")["mean"], color="tab:red", lw=1, ls="--", label="OPSD")
        axes[r, 0].legend(fontsize=7, loc="best")
        axes[r, 2].legend(fontsize=7, loc="best")
        axes[r, 0].set_title(("GRPO + α·JSD to the hinted self-teacher" if fam == "rlvr+opsd"
                              else "RLSD, constant λ") + ": accuracy", fontsize=10)
        axes[r, 1].set_title("leak onset (one dot per seed)", fontsize=10)
        axes[r, 2].set_title("leak rate, last 10 steps (mean, 95% interval)", fontsize=10)
    fig.suptitle(f"Dose-response: {S['preset']['seeds']} seeds, {steps} steps; onset = first step at which the "
                 f"{F['leak_window']}-step leak rate exceeds {F['onset_factor']:g}x the base student's background, "
                 f"with at least {F.get('onset_min_count', 1)} leaks in the window", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
