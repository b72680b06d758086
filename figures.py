"""figures.py: every figure, drawn from a run's log rows and its summary.json alone.

  fig1_learning_curves  greedy accuracy on test and hard, against step and seconds
  fig2_signal_density   the credit each method gives the same sampled responses
  fig3_leakage          the leak measures, KL to the teachers and accuracy, step by step
  fig4_cost             parameters resident, model-state memory and seconds per step
  fig5_frontier         (when the preset probes) density against leakage and accuracy
  fig6_knobs            (when the preset probes) dose-response of alpha and lam x eps_w

STYLE is the one table of names and colours; _pyplot the one matplotlib set-up. Nothing
here computes a number the summary does not already hold, except means over seeds and
frontier.bootstrap_ci's intervals for the frontier's error bars.
"""
import os

import numpy as np

import rlsd
import runtime
import verify
from experiment import method_of, parse_arm, read_log

FIGURE_FILES = {"learning_curves": "fig1_learning_curves.png", "signal_density": "fig2_signal_density.png",
                "leakage": "fig3_leakage.png", "cost": "fig4_cost.png"}
FRONTIER_FILES = {"frontier": "fig5_frontier.png", "knobs": "fig6_knobs.png"}   # when the preset probes

# one row per method: its name in legends, its short name in crowded figures, its colour,
# and the colour map its arms are shaded from in figures 5 and 6
STYLE = {"rlvr": ("RLVR (GRPO)", "GRPO", "tab:blue", "Blues"),
         "opd": ("OPD", "OPD", "tab:green", "Greens"),
         "opsd": ("OPSD", "OPSD", "tab:red", "Reds"),
         "rlsd": ("RLSD", "RLSD", "tab:purple", "Purples"),
         "rlvr+opsd": ("RLVR + OPSD", "GRPO+OPSD", "tab:orange", "Oranges")}
# figure 2's rows (density.DENSITY_ARMS): the name in the token picture, under the bars, colour
DENSITY_STYLE = {"rlvr": ("RLVR (GRPO)", "RLVR", "tab:blue"),
                 "opd": ("OPD", "OPD", "tab:green"),
                 "opsd_jsd": ("OPSD, as trained (JSD push)", "OPSD\nas trained\n(JSD push)", "tab:red"),
                 "opsd": ("OPSD, sampled-token stand-in", "OPSD\nsampled-token\nstand-in", "lightcoral"),
                 "rlsd": ("RLSD", "RLSD", "tab:purple"),
                 "rlsd_solution": ("RLSD, full-solution hint", "RLSD\nsolution hint", "tab:pink")}
SYMBOLS = {"lam0": "λ", "eps_w": "ε_w", "alpha": "α", "lam_decay_steps": "decay",
           "refresh_every": "refresh"}


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _save(fig, path, dpi):
    """Write a figure whole or not at all (a full disk leaves no half-written PNG)."""
    runtime.atomic_write(path, lambda f: fig.savefig(f, dpi=dpi, format="png"), mode="wb")


def _fmt(v):
    return f"{v:g}" if isinstance(v, float) else str(v)


def label(arm):
    """How figures 1, 3 and 4 and the tables name an arm: the method's name, then its
    overrides."""
    method, over = parse_arm(arm)
    settings = ", ".join(f"{k}={_fmt(v)}" for k, v in over.items())
    return STYLE[method][0] + (f" ({settings})" if settings else "")


def color(arm, arms):
    """A method's own colour for a plain method; otherwise one from a cycle, by position."""
    if arm in STYLE:
        return STYLE[arm][2]
    return _pyplot().get_cmap("tab10")((list(arms).index(arm) + 4) % 10) if arm in arms else "gray"


def short_label(arm):
    """A compact name for crowded figures: 'rlsd:lam_kind=constant,lam0=1,eps_w=3' ->
    'RLSD λ=1 const, ε_w=3'."""
    method, over = parse_arm(arm)
    parts = ["paper schedule"] if method == "rlsd" and not over else []
    for k, v in over.items():
        if k == "lam_kind":
            parts.append("const λ" if v == "constant" else v)
        elif k == "hint":
            parts.append(f"hint={v}")
        elif k == "alpha_leak_threshold":
            parts.append(f"adaptive >{_fmt(v)}")
        else:
            parts.append(f"{SYMBOLS.get(k, k)}={_fmt(v)}")
    return STYLE[method][1] + (" " + ", ".join(parts) if parts else "")


def family_color(arm, arms):
    """One hue per method; arms of the same method in shades of it, by their order."""
    import matplotlib
    method = method_of(arm)
    same = [a for a in arms if method_of(a) == method]
    if arm not in same:   # e.g. a control arm whose main run did not finish
        same.append(arm)
    shade = 0.85 if len(same) == 1 else 0.45 + 0.5 * same.index(arm) / (len(same) - 1)
    return matplotlib.colormaps[STYLE[method][3]](shade)


# ---------------------------------------------------------------- figures 1-4

def _series(rows, variant, arm, *, kind, key):
    """{seed: (steps, values)} of one logged number for one arm from one student: the rows
    of this kind ("step" or "eval") that hold `key`."""
    out = {}
    for r in rows:
        if r.get("variant") == variant and r.get("method") == arm and r["kind"] == kind and key in r:
            out.setdefault(r["seed"], ([], []))
            out[r["seed"]][0].append(r["step"])  # a step row's metrics are of the policy after `step` updates
            out[r["seed"]][1].append(r[key])
    return out


def _smooth(y, k):
    if k <= 1 or len(y) < k:
        return np.asarray(y, float)
    c = np.cumsum(np.insert(np.asarray(y, float), 0, 0.0))
    head = [np.mean(y[:i + 1]) for i in range(k - 1)]
    return np.concatenate([head, (c[k:] - c[:-k]) / k])


def _band(ax, series, color, label, smooth=1, ls="-", xkey=None):
    """Mean over seeds with a min-max band; returns the number of seeds drawn."""
    if not series:
        return 0
    n = min(len(x) for x, _ in series.values())
    if n == 0:
        return 0
    x = np.asarray(next(iter(series.values()))[0][:n], float) if xkey is None else xkey(series, n)
    ys = np.stack([_smooth(y[:n], smooth) for _, y in series.values()])
    ax.plot(x, ys.mean(0), color=color, ls=ls, lw=1.8, label=f"{label} (n={len(series)})")
    if len(series) > 1:
        ax.fill_between(x, ys.min(0), ys.max(0), color=color, alpha=0.15, lw=0)
    return len(series)


def _title_tail(S):
    return f"{S['preset']['seeds']} seed(s), mean and min-max band; preset {S['preset']['base']}"


def redraw(folder):
    """Redraw a finished run's figures from its files, without running anything."""
    path = os.path.join(folder, "summary.json")
    if not os.path.isfile(path):
        raise runtime.FileProblem(f"{path} does not exist; --redraw needs a folder a run wrote")
    S = runtime.read_json(path, "rerun compare_methods.py to write it anew")
    log = os.path.join(folder, "metrics.jsonl")
    if not os.path.isfile(log) and "frontier" not in S:
        raise runtime.FileProblem(f"{folder} has no metrics.jsonl and its summary has no frontier "
                                  "statistics: nothing to redraw")
    check_summary(S, path, with_log=os.path.isfile(log))
    try:
        if os.path.isfile(log):
            rows = read_log(log)
            done = {r["run"] for r in rows if r["kind"] == "end" and r.get("status") == "done"}
            draw_all([r for r in rows if r["run"] in done], S, folder)
        else:
            draw_frontier_figures(S, folder)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as e:   # deeper damage
        raise runtime.FileProblem(f"{path} is not a summary this program wrote ({type(e).__name__}: {e}); "
                                  "rerun compare_methods.py to write it anew") from None
    print(f"figures redrawn in {folder}")
    return 0


def check_summary(S, path, with_log):
    """The parts of a summary.json the figures read, present and of the right type; a
    FileProblem naming the first that is not."""
    is_map = lambda x: isinstance(x, dict) and all(isinstance(v, dict) for v in x.values())
    P, F = S.get("preset"), S.get("frontier")
    checks = [("preset", isinstance(P, dict) and all(isinstance(P.get(k), int) and not isinstance(P[k], bool)
                                                     for k in ("seeds", "steps", "eval_every")))]
    if with_log:
        checks += [("methods", is_map(S.get("methods"))),
                   ("signal_density", isinstance(S.get("signal_density"), dict)
                    and is_map(S["signal_density"].get("methods")))]
    if F is not None or not with_log:
        checks += [("frontier", isinstance(F, dict) and isinstance(F.get("per_seed"), dict)
                    and all(is_map(per) for per in F["per_seed"].values()) and is_map(F.get("vs_rlvr"))),
                   ("probe", isinstance(S.get("probe"), dict) and isinstance(S["probe"].get("main"), dict))]
    for name, ok in checks:
        if not ok:
            raise runtime.FileProblem(f"{path} is not a summary this program wrote ({name} is missing or "
                                      "damaged); rerun compare_methods.py to write it anew")


def draw_all(rows, S, out):
    """Every figure a run has: 1-4 from the log rows and the summary, 5 and 6 when the
    summary holds the frontier's statistics."""
    methods = [m for m in S["methods"] if not m.endswith("/control")]   # the arms, in run order
    draw_learning_curves(rows, S, methods, out)
    draw_signal_density(S, out)
    draw_leakage(rows, S, methods, out)
    draw_cost(S, methods, out)
    draw_frontier_figures(S, out)


def draw_frontier_figures(S, out):
    """Figures 5 and 6, from the summary alone (so --redraw needs nothing else)."""
    if "frontier" in S and S["frontier"]["per_seed"].get("rlvr"):
        draw_frontier(S, os.path.join(out, FRONTIER_FILES["frontier"]))
        draw_knobs(S, os.path.join(out, FRONTIER_FILES["knobs"]))


def draw_learning_curves(rows, S, methods, out):
    """Figure 1: greedy accuracy on test and hard, against RL step and against training seconds."""
    plt = _pyplot()
    title_tail = _title_tail(S)
    fig, axes = plt.subplots(2, 2, figsize=(11, 7), sharey="row")
    for i, split in enumerate(("test", "hard")):
        for m in methods:
            ser = _series(rows, "main", m, kind="eval", key=f"greedy_{split}")
            _band(axes[i, 0], ser, color(m, methods), label(m))
            wall = _series(rows, "main", m, kind="eval", key="wall")
            if ser and wall:
                wx = lambda s_, n_: np.mean([w[1][:n_] for w in wall.values()], axis=0)
                _band(axes[i, 1], ser, color(m, methods), label(m), xkey=wx)
        axes[i, 0].set_ylabel(f"greedy accuracy on {split}")
    axes[1, 0].set_xlabel("RL step")
    axes[1, 1].set_xlabel("wall-clock seconds (mean over seeds, evaluation excluded)")
    axes[0, 0].legend(fontsize=8)
    for ax in axes.flat:
        ax.grid(alpha=0.3)
    fig.suptitle(f"Learning curves: greedy accuracy on held-out problems ({title_tail})")
    fig.tight_layout()
    _save(fig, os.path.join(out, FIGURE_FILES["learning_curves"]), dpi=110)
    plt.close(fig)


def draw_signal_density(S, out):
    """Figure 2: the per-token credit each method gives the base student's own samples:
    worked examples token by token, then the two measurements as bars."""
    plt = _pyplot()
    D = S["signal_density"]
    names = [k for k in DENSITY_STYLE if k in D["methods"]]
    ex = D.get("examples", {})
    fig = plt.figure(figsize=(13, 2.2 + 1.6 * len(ex) + 3.2))
    gs = fig.add_gridspec(len(ex) + 1, 2, height_ratios=[1.6] * len(ex) + [3.0])
    for i, (kind, e) in enumerate(ex.items()):
        _credit_tokens(fig.add_subplot(gs[i, :]), plt, kind, e, names=names)
    _blame_bars(fig.add_subplot(gs[-1, 0]), D, names)
    _lucky_bars(fig.add_subplot(gs[-1, 1]), D, names)
    fig.suptitle("Signal density: per-token credit each method gives the same sampled responses "
                 "(blue = pushed up, red = pushed down, scaled per row; $ = end of sequence)", fontsize=10)
    fig.tight_layout()
    _save(fig, os.path.join(out, FIGURE_FILES["signal_density"]), dpi=110)
    plt.close(fig)


def _credit_tokens(ax, plt, kind, e, *, names):
    """One example response, one row of coloured tokens per method."""
    cmap = plt.get_cmap("coolwarm_r")
    ax.set_axis_off()
    ax.set_xlim(0, max(len(e["tokens"]), 20) + 14)
    ax.set_ylim(len(names), -1.2)
    span = e["wrong_span"] if kind != "faithful" else None
    ax.text(0, -0.9, f"{kind} response to {e['prompt']}   (that is {verify.flip(e['prompt'])[:-1]}: every "
            f"number is written least-significant digit first)"
            + ("; first wrong step underlined" if span else ""),
            fontsize=9, weight="bold")
    for j, name in enumerate(names):
        c = np.asarray(e["credit"][name])
        scale = max(np.abs(c).max(), 1e-9)
        ax.text(0, j + 0.3, DENSITY_STYLE[name][0], fontsize=8)
        for t, (tok, v) in enumerate(zip(e["tokens"], c)):
            x = 13 + t
            ax.add_patch(plt.Rectangle((x, j), 1, 0.8, color=cmap(0.5 + 0.5 * v / scale)))
            ax.text(x + 0.5, j + 0.55, "$" if tok == "<|eos|>" else tok, ha="center", fontsize=7,
                    family="monospace")
            if span and span[0] <= t < span[1]:
                ax.plot([x, x + 1], [j + 0.86, j + 0.86], color="black", lw=1)


def _blame_bars(ax, D, names):
    xs = np.arange(len(names))
    hit = [D["methods"][k]["blame_in_first_wrong_step"] for k in names]
    ax.bar(xs, hit, color=[DENSITY_STYLE[k][2] for k in names])
    ax.axhline(D["methods"]["rlvr"]["chance"], color="black", ls="--", lw=1, label="chance (span / length)")
    ax.set_xticks(xs, [DENSITY_STYLE[k][1] for k in names], fontsize=7)
    ax.set_ylabel("share of failed responses")
    ax.set_title(f"most-blamed token lies in the first wrong step\n(n={D['n_failed']} failed responses "
                 f"of the base student)", fontsize=9)
    ax.legend(fontsize=8)


def _lucky_bars(ax, D, names):
    xs = np.arange(len(names))
    w = np.array([D["methods"][k]["lucky_credit_wrong_step"] for k in names])
    r = np.array([D["methods"][k]["lucky_credit_rest"] for k in names])
    push = np.array([k == "opsd_jsd" for k in names])   # a gradient, not an advantage: its own axis
    ax.bar(xs[~push] - 0.2, w[~push], 0.4, label="tokens of the wrong step", color="tab:orange")
    ax.bar(xs[~push] + 0.2, r[~push], 0.4, label="the rest of the response", color="tab:gray")
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xticks(xs, [DENSITY_STYLE[k][1] for k in names], fontsize=7)
    ax.set_ylabel("mean token credit (advantage)")
    ax.set_title(f"lucky responses: right answer, wrong step (n={D['n_lucky']})", fontsize=9)
    ax.legend(fontsize=8, loc="lower right")
    if push.any():
        ax2 = ax.twinx()
        ax2.bar(xs[push] - 0.2, w[push], 0.4, color="tab:orange", hatch="//", edgecolor="black", lw=0.5)
        ax2.bar(xs[push] + 0.2, r[push], 0.4, color="tab:gray", hatch="//", edgecolor="black", lw=0.5)
        vals = np.abs(np.concatenate([w[push], r[push]]))
        lim = 1.1 * max(vals[np.isfinite(vals)].max(initial=0.0), 1e-6)   # no lucky response: nan
        lo, hi = ax.get_ylim()                                     # zero at the same height on both axes
        ax2.set_ylim(lim * lo / max(abs(lo), abs(hi)), lim * hi / max(abs(lo), abs(hi)))
        ax2.set_ylabel("OPSD as trained (hatched): mean push on the logit", fontsize=8)


def draw_leakage(rows, S, methods, out):
    """Figure 3: the leak measures, KL to the teachers, and accuracy, step by step."""
    plt = _pyplot()
    title_tail = _title_tail(S)
    every = S["preset"]["eval_every"]
    panels = [("step", "cites_hint", "responses citing a hint they were never given\n(training samples)"),
              ("step", "no_work", "answers given without work\n(training samples)"),
              ("step", "faithful", "faithful responses: full chain, all steps right\n(training samples)"),
              ("step", "resp_len", "response length, tokens (training samples)"),
              ("step", "kl_full", "KL(student || its own teacher), nats/token\n(each method's teacher: "
                                  "not comparable across methods)"),
              ("eval", "kl_hinted_initial", "KL(student || initial student + answer hint)\n(test prompts, "
                                            "the same yardstick for all)"),
              ("eval", "sampled_test", f"sampled accuracy on test (T = 1)\n(evaluated every {every} steps)"),
              ("eval", "greedy_test", f"greedy accuracy on test\n(evaluated every {every} steps)")]
    fig, axes = plt.subplots(2, 4, figsize=(16, 8))
    for ax, (kind, key, title) in zip(axes.flat, panels):
        for m in methods:
            if key == "kl_full" and method_of(m) == "rlvr":
                continue
            _band(ax, _series(rows, "main", m, kind=kind, key=key), color(m, methods), label(m),
                  smooth=10 if kind == "step" else 1)
            if method_of(m) in ("opsd", "rlsd"):
                _band(ax, _series(rows, "control", m, kind=kind, key=key), color(m, methods),
                      label(m) + ", no-shift control", smooth=10 if kind == "step" else 1, ls=":")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("RL step")
        ax.grid(alpha=0.3)
    h, l = axes.flat[0].get_legend_handles_labels()
    fig.legend(h, l, fontsize=8, loc="lower center", ncol=6)
    fig.suptitle(f"Leakage: does the student copy what only the privileged teacher could know? "
                 f"(training-sample metrics: trailing mean over 10 steps; {title_tail})", fontsize=10)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    _save(fig, os.path.join(out, FIGURE_FILES["leakage"]), dpi=110)
    plt.close(fig)


def draw_cost(S, methods, out):
    """Figure 4: parameters resident, model-state memory and seconds per step."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    xs = np.arange(len(methods))
    ms = [S["methods"][m] for m in methods]
    axes[0].bar(xs, [x["params_trained"] / 1e6 for x in ms], label="trained student", color="tab:blue")
    axes[0].bar(xs, [x["params_teacher"] / 1e6 for x in ms], bottom=[x["params_trained"] / 1e6 for x in ms],
                label="teacher copy / separate teacher", color="tab:orange")
    axes[0].set_ylabel("parameters resident (millions)")
    axes[0].legend(fontsize=8)
    axes[1].bar(xs, [x["model_state_mb"] for x in ms], color="tab:gray")
    axes[1].set_ylabel("model state, MB (weights, grads, AdamW; float32)")
    bottom = np.zeros(len(ms))
    for k, c in (("t_rollout", "tab:blue"), ("t_teacher", "tab:orange"), ("t_update", "tab:green")):
        v = np.array([x[f"mean_{k}"] or 0.0 for x in ms])
        axes[2].bar(xs, v, bottom=bottom, color=c, label=k[2:])
        bottom += v
    for x_, m in zip(xs, ms):
        p = m["passes_per_step"]
        axes[2].text(x_, bottom[x_] * 1.02, f"{p['teacher_forward']} teacher fwd", ha="center", fontsize=7)
    axes[2].set_ylabel("seconds per step (mean over seeds)")
    axes[2].legend(fontsize=8)
    for ax in axes:
        ax.set_xticks(xs, [label(m) for m in methods], fontsize=8, rotation=15 if len(methods) > 5 else 0)
    fig.suptitle("Cost per method: memory resident and time per step (rollout, teacher pass, update)",
                 fontsize=10)
    fig.tight_layout()
    _save(fig, os.path.join(out, FIGURE_FILES["cost"]), dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------- figures 5 and 6

def _mean_ci(per_seed, key):
    from frontier import bootstrap_ci
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
    plt = _pyplot()
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
            ax.annotate(str(i), (x["mean"], scale * y["mean"]), fontsize=7, xytext=(4, 3),
                        textcoords="offset points")
        handles.append(Line2D([], [], marker=kw["fmt"], color=c, mfc=kw["mfc"], ls="",
                              label=f"{i}  {short_label(arm)}" + (" (control student)" if control else "")))
    blame_label = ("targeted blame (probe): first-order drop of the first wrong step's\nlog-prob below the "
                   "correct prefix's, per unit-length update (nats)")
    bg = P["main"]["background_leak"]
    axes[0].set(xlabel=blame_label, ylabel=f"leak rate, last {F['leak_window']} steps (hint citations "
                "+ no-work answers)", title="Density against leakage")
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
    fig.suptitle(f"The frontier: {S['preset']['seeds']} seeds x {S['preset']['steps']} steps per arm; "
                 f"error bars: bootstrap 95% intervals, over seeds (y, and accuracy) and over "
                 f"{P['main']['batches']} probe batches (x); dotted: the base student's background leak rate",
                 fontsize=10)
    fig.tight_layout(rect=(0, 0, 0.83, 1))
    _save(fig, path, dpi=110)
    plt.close(fig)


def _dose(arm):
    """(family, dose) of an arm in figure 6, or None: RLVR+OPSD by alpha, RLSD with constant
    lam by lam x eps_w."""
    method, over = parse_arm(arm)
    cfg = rlsd.RLConfig(method=method, **over)
    if method == "rlvr+opsd" and set(over) <= {"alpha"}:
        return "rlvr+opsd", cfg.alpha
    if method == "rlsd" and cfg.lam_kind == "constant" and set(over) <= {"lam_kind", "lam0", "eps_w"}:
        return "rlsd", cfg.lam0 * cfg.eps_w
    return None


KNOB_ROWS = {"rlvr+opsd": (0, "α, the JSD weight beside GRPO (log scale)", "tab:orange"),
             "rlsd": (1, "λ·ε_w, the most RLSD can tilt a token's credit (log scale)", "tab:purple")}


def draw_knobs(S, path):
    """Figure 6: dose-response. Rows: RLVR+OPSD against alpha, RLSD (constant lam) against
    lam x eps_w. Columns: final greedy test accuracy minus RLVR's (paired), leak onset per
    seed, final leak rate. Arms that are not on a dose axis (the adaptive alpha, RLSD's
    paper schedule) are drawn as stars where they start."""
    plt = _pyplot()
    F = S["frontier"]
    steps = S["preset"]["steps"]
    fig, axes = plt.subplots(2, 3, figsize=(15, 8), sharex="row")
    for name, per in F["per_seed"].items():
        if name.endswith("/control") or _dose(name) is None:
            continue
        fam, dose = _dose(name)
        c = KNOB_ROWS[fam][2]
        _knob_point(axes[KNOB_ROWS[fam][0]], F, name, dose, steps=steps, errorbar=dict(fmt="o", color=c),
                    scatter=dict(marker="o", s=18, color=c))
    for fam, arms_apart in _arms_apart(F).items():
        c = KNOB_ROWS[fam][2]
        for arm, dose, text in arms_apart:
            _knob_point(axes[KNOB_ROWS[fam][0]], F, arm, dose, steps=steps,
                        errorbar=dict(fmt="*", ms=11, color="k", mfc=c),
                        scatter=dict(marker="*", s=60, color=c, edgecolor="k", lw=0.5), text=text)
    for fam, (r, xlabel, c) in KNOB_ROWS.items():
        _knob_axes(axes[r], F, fam, xlabel=xlabel, steps=steps)
    fig.suptitle(f"Dose-response: {S['preset']['seeds']} seeds, {steps} steps; onset = first step at which "
                 f"the {F['leak_window']}-step leak rate exceeds {F['onset_factor']:g}x the base student's "
                 f"background, with at least {F.get('onset_min_count', 1)} leaks in the window", fontsize=10)
    fig.tight_layout()
    _save(fig, path, dpi=120)
    plt.close(fig)


def _arms_apart(F):
    """The arms of figure 6 that are not on a dose axis: (arm, where it starts, legend)."""
    adaptive = [(a, parse_arm(a)[1]) for a in F["per_seed"] if not a.endswith("/control")
                and method_of(a) == "rlvr+opsd" and "alpha_leak_threshold" in parse_arm(a)[1]]
    default = rlsd.RLConfig
    return {"rlvr+opsd": [(a, o.get("alpha", default.alpha),
                           f"adaptive: α halves when the step's leak > {_fmt(o['alpha_leak_threshold'])}")
                          for a, o in adaptive],
            "rlsd": [("rlsd", default.lam0 * default.eps_w,
                      f"paper schedule: λ {default.lam0:g} -> 0 in {default.lam_decay_steps} steps")]
            if "rlsd" in F["per_seed"] else []}


def _knob_point(row, F, arm, dose, *, steps, errorbar, scatter, text=None):
    """One arm in one row of figure 6: its paired gain, its onsets, its final leak."""
    per = F["per_seed"][arm]
    d = F["vs_rlvr"][arm]["final_greedy_test"]
    row[0].errorbar(dose, 100 * d["mean"], yerr=100 * np.array(_err(d)), capsize=3, **errorbar,
                    **({"label": text} if text else {}))
    on = [v["leak_onset"] for v in per.values()]
    row[1].scatter(dose * np.linspace(0.92, 1.08, len(on)), [steps + 5 if o is None else o for o in on],
                   **scatter)
    leak = _mean_ci(per, "final_leak")
    row[2].errorbar(dose, leak["mean"], yerr=_err(leak), capsize=3, **errorbar)


def _knob_axes(row, F, fam, *, xlabel, steps):
    ref = F["per_seed"].get("rlvr", {})
    ref_leak = _mean_ci(ref, "final_leak")["mean"] if ref else None
    for ax in row:
        ax.set_xscale("log")
        ax.set_xlabel(xlabel)
    row[0].axhline(0, color="tab:blue", lw=1, ls="--", label="RLVR (GRPO)")
    row[0].set_ylabel("final greedy test minus RLVR (points)")
    row[1].axhline(steps + 5, color="gray", lw=0.8, ls=":")
    row[1].set_ylim(0, steps + 10)
    row[1].set_ylabel(f"leak onset step (top row: none in {steps})")
    row[2].set_ylabel("final leak rate")
    if ref_leak is not None:
        row[2].axhline(ref_leak, color="tab:blue", lw=1, ls="--", label="RLVR (GRPO)")
    opsd = F["per_seed"].get("opsd")
    if opsd:
        row[2].axhline(_mean_ci(opsd, "final_leak")["mean"], color="tab:red", lw=1, ls="--", label="OPSD")
    row[0].legend(fontsize=7, loc="best")
    row[2].legend(fontsize=7, loc="best")
    row[0].set_title(("GRPO + α·JSD to the hinted self-teacher" if fam == "rlvr+opsd"
                      else "RLSD, constant λ") + ": accuracy", fontsize=10)
    row[1].set_title("leak onset (one dot per seed)", fontsize=10)
    row[2].set_title("leak rate, last 10 steps (mean, 95% interval)", fontsize=10)
