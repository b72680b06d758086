"""compare_methods.py: RLVR, OPD, OPSD and RLSD side by side from the same base model.

    python compare_methods.py                  # the default preset (README, "Quick start": its time)
    python compare_methods.py --preset smoke   # seconds; what the tests run
    python compare_methods.py --preset frontier   # the frontier sweep (README, "Where dense credit stops being free")
    python compare_methods.py --redraw figures/frontier   # figures 5 and 6 again, from the committed summary
    python compare_methods.py --preset full --device cuda

What it does, in order:
  1. loads the base student, a control student whose hinted data has no behaviour shift,
     and the larger OPD teacher, as shipped in base_models/ (--retrain-base trains them
     anew with train_tiny.py, into the --checkpoints cache; --base-seed N trains another
     student and control student beside the shipped teacher);
  2. signal density: samples responses from the base student once and shows the per-token
     credit each method would give them (fig2_signal_density.png); when the preset asks,
     the one-update probe of every arm (frontier.py);
  3. runs every arm (a method, maybe with settings: --arms) for every seed under identical
     conditions (same checkpoint, prompts in the same order, group size, learning rate,
     steps), plus the control arms from the control student, logging every step to
     metrics.jsonl as it goes; --jobs N runs them in N processes;
  4. draws the learning-curve, leakage and cost figures (and, with the probe, figures 5
     and 6) and writes summary.json.

Ctrl-C (or SIGTERM), at any stage, ends the current unit of work (a step, a base-model
training chunk, an evaluation, the probe), saves what is done, draws the figures from the
finished runs and prints the --resume command. Nothing is tuned on `test` or `hard`.
"""
import argparse
import itertools
import json
import math
import os
import shlex
import sys
import time
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch

import model
import rlsd
import runtime
import frontier
import train_tiny
import verify

METHOD_ORDER = ("rlvr", "opd", "opsd", "rlsd", "rlvr+opsd")
DEFAULT_METHODS = METHOD_ORDER[:4]   # the four of the default run; rlvr+opsd on request
COLORS = {"rlvr": "tab:blue", "opd": "tab:green", "opsd": "tab:red", "rlsd": "tab:purple", "rlvr+opsd": "tab:orange"}
LABELS = {"rlvr": "RLVR (GRPO)", "opd": "OPD", "opsd": "OPSD", "rlsd": "RLSD", "rlvr+opsd": "RLVR + OPSD"}
FIGURE_FILES = {"learning_curves": "fig1_learning_curves.png", "signal_density": "fig2_signal_density.png",
                "leakage": "fig3_leakage.png", "cost": "fig4_cost.png"}
# figure 2's rows: OPSD trains on a full-vocabulary JSD, so its row shows that loss's push on
# each sampled token; the sampled-token log-ratio (RLSD paper, Eq. 17) is shown as a stand-in
DENSITY_ROWS = ("rlvr", "opd", "opsd_jsd", "opsd", "rlsd", "rlsd_solution")
DENSITY_LABELS = {**LABELS, "opsd_jsd": "OPSD, as trained (JSD push)", "opsd": "OPSD, sampled-token stand-in",
                  "rlsd_solution": "RLSD, full-solution hint"}
DENSITY_SHORT = {"rlvr": "RLVR", "opsd_jsd": "OPSD\nas trained\n(JSD push)", "opsd": "OPSD\nsampled-token\nstand-in",
                 "rlsd_solution": "RLSD\nsolution hint"}


@dataclass
class Preset:
    base: str                    # train_tiny preset of the base models
    steps: int
    seeds: int
    prompts_per_step: int
    group_size: int
    lr: float
    eval_every: int
    eval_n: int                  # problems per split for greedy test/hard accuracy
    density_prompts: int         # prompts x group_size responses for the signal-density figure
    controls: bool = True        # also run arms from the no-shift control student
    arms: tuple = DEFAULT_METHODS  # what runs when neither --arms nor --methods is given
    control_arms: tuple = None   # the arms run from the control student; None: every OPSD and RLSD arm
    probe_batches: int = 0       # the one-update probe (frontier.py): fixed batches per arm; 0 = no probe
    probe_big: int = 4096        # samples in the probe's large-batch GRPO gradient


PRESETS = {
    "smoke": Preset(base="smoke", steps=4, seeds=1, prompts_per_step=4, group_size=4, lr=1e-4,
                    eval_every=2, eval_n=16, density_prompts=16),
    # lr 3e-5 was picked on train reward alone (docs/LOG.md): at 1e-4 every method's train
    # reward fell, and with the rewards shuffled it fell to 0, so the fall is optimizer noise;
    # at 1e-5 RLVR rose but OPSD barely moved in 60 steps
    # 80 steps: OPSD's leak is well past its onset on every seed (docs/LOG.md)
    "default": Preset(base="default", steps=80, seeds=3, prompts_per_step=8, group_size=8, lr=3e-5,
                      eval_every=10, eval_n=200, density_prompts=256),
    "full": Preset(base="full", steps=400, seeds=5, prompts_per_step=16, group_size=8, lr=3e-5,
                   eval_every=25, eval_n=400, density_prompts=512),
}
# the frontier (README, "Where dense credit stops being free"): the default run's models,
# batch and rate, more seeds, larger evaluation sets, and these arms. RLSD's (lam, eps_w)
# grid holds lam constant; the paper's schedule is the plain "rlsd" arm
FRONTIER_ARMS = (
    "rlvr", "rlsd", "rlsd:lam_kind=constant",
    "rlsd:lam_kind=constant,lam0=1,eps_w=0.5", "rlsd:lam_kind=constant,lam0=1,eps_w=1",
    "rlsd:lam_kind=constant,lam0=1,eps_w=3", "rlsd:hint=solution", "rlsd:hint=none",
    "rlvr+opsd:alpha=0.01", "rlvr+opsd:alpha=0.03", "rlvr+opsd:alpha=0.1", "rlvr+opsd:alpha=0.3",
    "rlvr+opsd:alpha=1", "rlvr+opsd:alpha=3", "rlvr+opsd:alpha=10", "rlvr+opsd:alpha=10,alpha_leak_threshold=0.05",
    "opsd", "opsd:hint=solution")
PRESETS["frontier"] = replace(PRESETS["default"], seeds=5, eval_every=20, eval_n=500, arms=FRONTIER_ARMS,
                              control_arms=("opsd", "rlvr+opsd:alpha=1", "rlsd:lam_kind=constant,lam0=1,eps_w=3"),
                              probe_batches=50, probe_big=4096)
PRESETS["smoke"] = replace(PRESETS["smoke"], probe_batches=1, probe_big=16)


# ---------------------------------------------------------------- arms

# the settings an arm may override, with their types (docs/METHODS.md gives their meaning)
ARM_KEYS = {"lam0": float, "lam_decay_steps": int, "lam_kind": str, "eps_w": float, "hint": str,
            "teacher_weights": str, "refresh_every": int, "alpha": float, "alpha_leak_threshold": float,
            "jsd_beta": float, "opd_coef": float, "opsd_loss": str}


def parse_arm(text):
    """An arm is a method plus setting overrides, 'METHOD[:key=value,...]', for example
    'rlsd:eps_w=1,lam0=1' or 'rlvr+opsd:alpha=0.1'. Returns (method, {key: value}); a bad
    arm raises one ValueError naming what is wrong."""
    method, _, rest = text.partition(":")
    if method not in rlsd.METHODS:
        raise ValueError(f"arm {text!r}: unknown method {method!r}; choose one of {', '.join(METHOD_ORDER)}")
    over = {}
    for item in rest.split(",") if rest else []:
        key, eq, value = item.partition("=")
        if not eq or key not in ARM_KEYS:
            raise ValueError(f"arm {text!r}: {item!r} is not key=value with a key among {', '.join(ARM_KEYS)}")
        try:
            over[key] = ARM_KEYS[key](value)
        except ValueError:
            raise ValueError(f"arm {text!r}: {key} must be {ARM_KEYS[key].__name__}, got {value!r}") from None
    try:
        rlsd.check_config(replace(rlsd.RLConfig(method=method), **over))
    except ValueError as e:
        raise ValueError(f"arm {text!r}: {e}") from None
    return method, over


def method_of(arm):
    """The method an arm runs: what comes before its settings."""
    return arm.partition(":")[0]


def label(arm):
    """How figures and tables name an arm: the method's name, then its overrides."""
    rest = arm.partition(":")[2]
    return LABELS.get(method_of(arm), method_of(arm)) + (f" ({rest.replace(',', ', ')})" if rest else "")


def color(arm, arms):
    """A method's own colour for a plain method; otherwise one from a cycle, by position."""
    if arm in COLORS:
        return COLORS[arm]
    return _pyplot().get_cmap("tab10")((list(arms).index(arm) + 4) % 10) if arm in arms else "gray"


# ---------------------------------------------------------------- runs

KL_SAMPLES = 64   # sampled test responses the two KL yardsticks are read on, at every evaluation


def run_key(variant, method, seed):
    return f"{variant}/{method}/{seed}"


def control_arms(methods, preset):
    """The arms that also run from the control student."""
    if not preset.controls:
        return []
    if preset.control_arms is None:
        return [m for m in methods if method_of(m) in ("opsd", "rlsd")]
    return [m for m in methods if m in preset.control_arms]


def planned_runs(methods, seeds, controls):
    """Seed by seed, so that a sweep cut short has whole seeds: every arm from the main
    student, then the control arms."""
    return [run for s in range(seeds) for run in [("main", m, s) for m in methods] + [("control", m, s) for m in controls]]


@torch.no_grad()
def evaluate_policy(policy, evalsets, seed, references):
    """Greedy accuracy on test and hard, sampled accuracy on test, and two fixed KL yardsticks
    measured on the policy's own samples for every method alike: KL(policy || the initial
    student given the answer hint) and KL(policy || the OPD teacher, plain prompt).

    Two generation passes: one greedy pass over every split together (one batch), and one
    sampled pass (temperature 1) over test. The KL yardsticks are read on the first
    KL_SAMPLES of those same sampled responses (each of a different prompt), so they cost
    only the forward passes."""
    out = {}
    everything = [p for probs in evalsets.values() for p in probs]
    texts = iter(train_tiny.sample_texts(policy, everything, batch_size=len(everything)))
    for split, probs in evalsets.items():
        out[f"greedy_{split}"] = sum(verify.reward(p, next(texts)) for p in probs) / max(1, len(probs))
    gen = torch.Generator(device=policy.wte.weight.device).manual_seed(seed)
    roll = rlsd.rollout(policy, evalsets["test"], rlsd.RLConfig(group_size=1), gen)
    out["sampled_test"] = roll.rewards.mean().item()
    n = min(KL_SAMPLES, len(roll.problems))
    tokens, mask = roll.tokens[:n], roll.mask[:n]
    logits = rlsd.response_logits(policy, roll.contexts[:n], tokens)
    for name, (ref, hint) in references.items():
        ref_logits = rlsd.response_logits(ref, [verify.prompt_ids(p, hint) for p in roll.problems[:n]], tokens)
        kl = rlsd.kl_divergence(logits, ref_logits, mask)  # KL(policy || ref) per token
        out[f"kl_{name}"] = (kl.sum() / mask.sum()).item()
    return out


def run_one(student, teacher, method, seed, preset, evalsets, log, task, references, progress=True, first=None):
    """One arm (a method, maybe with overrides: parse_arm), one seed: returns 'done',
    'stopped' or 'failed: ...'. Every step and every evaluation is appended to the log as
    it happens. `wall` is the cumulative training time (rollout + teacher + update),
    evaluations excluded. A stop request ends the run after the current step (and its
    evaluation, if one is due). `first`, a dict shared by the arms of one (student, seed),
    keeps the step-0 evaluation, which is the same for all of them (same weights, same
    sampling seed), so that it is computed once."""
    name, over = parse_arm(method)
    cfg = rlsd.RLConfig(method=name, group_size=preset.group_size, lr=preset.lr, **over)
    torch.manual_seed(seed)
    state = rlsd.make_state(student, cfg, opd_teacher=teacher, seed=seed)
    # the same prompts in the same order for every method of a seed, drawn as the run goes
    prompts = verify.iter_problems("train", seed=10_000 + seed, cfg=task)
    bar = train_tiny._bar(preset.steps, f"{method} seed {seed}", progress)
    wall = 0.0

    def evaluate():   # timed, for the profile in summary.json
        t0 = time.time()
        ev = evaluate_policy(state.policy, evalsets, seed, references)
        return {**ev, "t_eval": time.time() - t0}
    first = {} if first is None else first
    if "eval" not in first:
        first["eval"] = evaluate()
    log({"kind": "eval", "step": 0, "wall": wall, **first["eval"]})
    for step in range(preset.steps):
        try:
            m = rlsd.train_step(state, list(itertools.islice(prompts, preset.prompts_per_step)))
        except rlsd.NonFiniteError as e:
            log({"kind": "failed", "step": step, "error": str(e)})
            bar.close()
            return f"failed: {e}"
        wall += m["t_rollout"] + m["t_teacher"] + m["t_update"]
        m["wall"] = wall
        log({"kind": "step", **m})
        bar.set_postfix(reward=f"{m['reward']:.2f}", cite=f"{m['cites_hint']:.2f}")
        bar.update(1)
        if (step + 1) % preset.eval_every == 0 or step + 1 == preset.steps:
            log({"kind": "eval", "step": step + 1, "wall": wall, **evaluate()})
        if runtime.STOP.requested and step + 1 < preset.steps:
            bar.close()
            return "stopped"
    bar.close()
    return "done"


def _worker(tasks, results, threads, models, teacher, preset, evalsets, task, refs):
    """A --jobs process: runs (variant, arm, seed) from `tasks` until None, sending every log
    row and each run's end to `results`. It stops after the current step on SIGTERM (the
    parent forwards a stop request); Ctrl-C goes to the parent alone."""
    import signal
    import traceback
    torch.set_num_threads(threads)
    first = {}
    with runtime.STOP:
        signal.signal(signal.SIGINT, signal.SIG_IGN)   # the parent's Ctrl-C reaches us as its SIGTERM
        signal.signal(signal.SIGTERM, lambda *_: setattr(runtime.STOP, "requested", True))
        try:
            for variant, method, seed in iter(tasks.get, None):
                if runtime.STOP.requested:
                    break
                key = run_key(variant, method, seed)
                log = lambda row: results.put(("row", {"run": key, "variant": variant, "method": method, "seed": seed,
                                                       **row}, None))
                status = run_one(models[variant], teacher, method, seed, preset, evalsets, log, task, refs[variant],
                                 False, first.setdefault((variant, seed), {}))
                results.put(("end", (variant, method, seed), status))
                if status == "stopped":
                    break
        except BaseException:   # any other failure: the parent stops the sweep and shows it
            results.put(("error", None, traceback.format_exc()))
            raise
    results.put(("exit", None, None))


def run_parallel(todo, jobs, models, teacher, preset, evalsets, task, refs, append, done, device):
    """Run independent runs in `jobs` processes (spawned, so that CUDA and OpenMP start
    clean in each), dividing the cores between them. Rows reach one log, through this
    process, in the order they arrive; the summary does not depend on that order."""
    import multiprocessing as mp
    import queue
    ctx = mp.get_context("spawn")
    tasks, results = ctx.Queue(), ctx.Queue()
    for r in todo:
        tasks.put(r)
    jobs = min(jobs, len(todo))
    for _ in range(jobs):
        tasks.put(None)
    threads = 1 if device != "cpu" else max(1, torch.get_num_threads() // jobs)
    procs = [ctx.Process(target=_worker, args=(tasks, results, threads, models, teacher, preset, evalsets, task, refs),
                         daemon=True) for _ in range(jobs)]
    import signal
    saved = signal.signal(signal.SIGINT, signal.SIG_IGN)   # inherited: a terminal's Ctrl-C is ours alone
    try:
        for p in procs:
            p.start()
    finally:
        signal.signal(signal.SIGINT, saved)
    print(f"{len(todo)} runs in {jobs} processes, {threads} thread(s) each", file=sys.stderr)
    running, forwarded, finished, failure = jobs, False, 0, None
    try:
        while running:
            if runtime.STOP.requested and not forwarded:
                forwarded = True
                while True:   # no new runs; the current ones stop after their step
                    try:
                        tasks.get_nowait()
                    except queue.Empty:
                        break
                for _ in procs:
                    tasks.put(None)
                for p in procs:
                    if p.is_alive():
                        p.terminate()   # SIGTERM: the worker's STOP, not a kill
            try:
                kind, a, b = results.get(timeout=1.0)
            except queue.Empty:   # check that the workers are alive
                if not any(p.is_alive() for p in procs):
                    break
                continue
            if kind == "row":
                append(a)
            elif kind == "end":
                (variant, method, seed), key = a, run_key(*a)
                if b != "stopped":
                    append({"run": key, "variant": variant, "method": method, "seed": seed, "kind": "end", "status": b})
                    done.add(key)
                finished += 1
                print(f"[{finished}/{len(todo)}] {key}: {b}", file=sys.stderr)
            elif kind == "error":
                failure = failure or b
                runtime.STOP.requested = True   # stop the other workers after their step
            else:
                running -= 1
    except BaseException:   # a second Ctrl-C: stop at once
        for p in procs:
            p.kill()
        raise
    for p in procs:
        p.join(timeout=60)
        if p.is_alive():
            p.kill()
    if failure:
        raise RuntimeError(f"a --jobs worker failed; the runs finished so far are kept:\n{failure}")


def read_log(path):
    """The rows of a metrics.jsonl this program wrote. Only its last line may be damaged (a
    hard kill mid-write): that line is dropped. Any other damage is one FileProblem."""
    if not os.path.exists(path):
        return []
    fix = "rerun without --resume, or give another --out"
    try:
        with open(path, "rb") as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise runtime.FileProblem(f"{path} is unreadable ({e.strerror}); {fix}") from None
    rows = []
    for n, line in enumerate(lines, 1):
        try:
            row = json.loads(line.decode("utf-8"))
            if not (isinstance(row, dict) and isinstance(row.get("run"), str) and isinstance(row.get("kind"), str)):
                raise ValueError
            rows.append(row)
        except ValueError:   # JSONDecodeError and UnicodeDecodeError included
            if n == len(lines):
                break        # the line a hard kill cut
            raise runtime.FileProblem(f"{path} line {n} is not a row this program wrote; {fix}") from None
    return rows


# ---------------------------------------------------------------- signal density

def jsd_push(student_logits, teacher_logits, tokens, mask, beta=0.5):
    """OPSD's real per-token signal: how hard its generalized JSD (beta 0.5, the default)
    pushes the logit of each sampled token, -d JSD_t / d z_S[t, y_t] (positive = raised).
    The JSD of token t depends only on that token's logits, so one backward of the sum
    gives every token's own gradient. logits (B, T, V); tokens, mask (B, T). Returns (B, T)."""
    with torch.enable_grad():
        z = student_logits.detach().float().requires_grad_(True)
        jsd = rlsd.generalized_jsd(z, teacher_logits.detach().float(), mask, beta=beta)
        (grad,) = torch.autograd.grad(jsd.sum(), z)
    return -grad.gather(-1, tokens.unsqueeze(-1)).squeeze(-1) * mask


@torch.no_grad()
def signal_density(student, teacher, preset, task, seed=0):
    """Score the same sampled responses of the base student with every method's per-token
    credit (at step 0, lam = lam0) and measure where each method puts its blame."""
    G = preset.group_size
    cfg = rlsd.RLConfig(group_size=G)
    probs = verify.make_problems("train", preset.density_prompts, seed=20_000 + seed, cfg=task)
    gen = torch.Generator(device=student.wte.weight.device).manual_seed(seed)
    roll = rlsd.rollout(student, probs, cfg, gen)
    student.eval()
    plain = roll.contexts
    logits = rlsd.response_logits(student, plain, roll.tokens)
    logp = model.token_logprobs(logits, roll.tokens)
    logits_ans = rlsd.response_logits(student, [verify.prompt_ids(p, "answer") for p in roll.problems], roll.tokens)
    lp_ans = model.token_logprobs(logits_ans, roll.tokens)
    lp_sol = model.token_logprobs(rlsd.response_logits(student, [verify.prompt_ids(p, "solution") for p in roll.problems],
                                                roll.tokens), roll.tokens)
    lp_opd = model.token_logprobs(rlsd.response_logits(teacher, plain, roll.tokens), roll.tokens)
    mask = roll.mask
    adv = rlsd.group_advantages(roll.rewards, G)
    credit = {
        "rlvr": adv[:, None] * mask,
        "opd": rlsd.opd_token_advantages(logp, lp_opd, mask),
        "opsd": rlsd.opsd_token_advantages(logp, lp_ans, mask),      # the sampled-token stand-in
        "opsd_jsd": jsd_push(logits, logits_ans, roll.tokens, mask),   # what OPSD trains on
        "rlsd": rlsd.rlsd_token_advantages(adv, lp_ans, logp, mask, lam=0.5),
        "rlsd_solution": rlsd.rlsd_token_advantages(adv, lp_sol, logp, mask, lam=0.5),
    }
    checks = roll.checks
    # responses with a located first wrong step and a signal from GRPO (mixed group)
    failed = [b for b, c in enumerate(checks) if not c.correct and c.wrong_span is not None and adv[b] != 0]
    lucky = [b for b, c in enumerate(checks) if c.lucky and c.wrong_span is not None and adv[b] != 0]
    rng = np.random.default_rng(seed)
    out = {"n_responses": len(checks), "n_failed": len(failed), "n_lucky": len(lucky),
           "reward_mean": roll.rewards.mean().item(), "methods": {}}
    for name, c in credit.items():
        hit, chance = [], []
        for b in failed:
            n = int(mask[b].sum())
            a0, a1 = checks[b].wrong_span
            a1 = min(a1, n)
            if a0 >= n:
                continue
            vals = c[b, :n].cpu().numpy()
            lowest = np.flatnonzero(vals == vals.min())
            hit.append(np.mean((lowest >= a0) & (lowest < a1)))  # ties share the blame evenly
            chance.append((a1 - a0) / n)
        wrong_credit, rest_credit = [], []
        for b in lucky:
            n = int(mask[b].sum())
            a0, a1 = checks[b].wrong_span
            inside = torch.zeros(n, dtype=torch.bool)
            inside[a0:min(a1, n)] = True
            if inside.any() and (~inside).any():
                wrong_credit.append(c[b, :n][inside].mean().item())
                rest_credit.append(c[b, :n][~inside].mean().item())
        out["methods"][name] = {
            "within_response_std": rlsd.within_response_std(c, mask),
            "blame_in_first_wrong_step": float(np.mean(hit)) if hit else float("nan"),
            "chance": float(np.mean(chance)) if chance else float("nan"),
            "lucky_credit_wrong_step": float(np.mean(wrong_credit)) if wrong_credit else float("nan"),
            "lucky_credit_rest": float(np.mean(rest_credit)) if rest_credit else float("nan"),
        }
    # one failed, one lucky, one faithful example (with a GRPO signal) for the token picture
    faithful = [b for b, c in enumerate(checks) if c.faithful and adv[b] != 0]
    examples = {}
    for kind, pool in (("failed", failed), ("lucky", lucky), ("faithful", faithful)):
        if pool:
            b = int(pool[rng.integers(len(pool))])
            n = int(mask[b].sum())
            examples[kind] = {"prompt": roll.problems[b].prompt,
                              "tokens": [verify.decode([t]) for t in roll.tokens[b, :n].tolist()],
                              "wrong_span": checks[b].wrong_span,
                              "credit": {k: v[b, :n].tolist() for k, v in credit.items()}}
    out["examples"] = examples
    return out


# ---------------------------------------------------------------- summary

def summarize(rows, runs, preset, base_summary, density, params, probe=None):
    """Every number the figures and README use, from the logged rows."""
    by_run = {}
    for r in rows:
        by_run.setdefault(r["run"], []).append(r)
    S = {"preset": asdict(preset), "base_models": base_summary, "signal_density": density, "runs": {},
         "methods": {}}
    for variant, method, seed in runs:
        rs = by_run.get(run_key(variant, method, seed), [])
        steps = [r for r in rs if r["kind"] == "step"]
        evals = [r for r in rs if r["kind"] == "eval"]
        status = next((r["status"] for r in rs if r["kind"] == "end"), "incomplete")
        S["runs"][run_key(variant, method, seed)] = {"status": status, "steps": len(steps),
                                                     "final_eval": evals[-1] if evals else None}
    arms = list(dict.fromkeys(m for _, m, _ in runs))   # in the order they ran
    for variant in ("main", "control"):
        for method in arms:
            key = f"{method}" if variant == "main" else f"{method}/control"
            keys = [run_key(v, m, s) for v, m, s in runs if v == variant and m == method]
            if not keys:
                continue
            finished = [k for k in keys if S["runs"][k]["status"] == "done"]
            S["methods"][key] = method_summary([by_run[k] for k in finished], method, params)
            S["methods"][key]["n_failed"] = sum(S["runs"][k]["status"].startswith("failed") for k in keys)
    S["profile_seconds"] = profile(rows)
    if probe:
        S["probe"] = probe
        S["frontier"] = frontier_stats(by_run, runs, S, probe)
    # learning speed: first eval step at which each method reaches RLVR's final test accuracy
    target = S["methods"].get("rlvr", {}).get("final_greedy_test_mean")
    if target is not None:
        for key, ms in S["methods"].items():
            curve = ms.get("curve_greedy_test", {})
            ms["first_step_at_rlvr_final_test"] = next((int(s) for s, v in sorted(curve.items(), key=lambda kv: int(kv[0]))
                                                        if v >= target), None)
    return S


def frontier_stats(by_run, runs, S, probe):
    """Per arm and variant: each finished run's statistics (frontier.run_stats, leak onset
    against that student's background leak from the probe), and for the main student each
    arm minus RLVR, paired by seed, with bootstrap 95% intervals."""
    preset = S["preset"]
    out = {"per_seed": {}, "vs_rlvr": {}, "onset_factor": frontier.ONSET_FACTOR, "leak_window": frontier.LEAK_WINDOW,
           "onset_min_count": frontier.ONSET_MIN_COUNT}
    for variant, method, seed in runs:
        key = run_key(variant, method, seed)
        if S["runs"][key]["status"] != "done":
            continue
        bg = probe.get(variant, {}).get("background_leak")
        name = method if variant == "main" else f"{method}/control"
        out["per_seed"].setdefault(name, {})[str(seed)] = frontier.run_stats(by_run[key], bg,
                                                                            preset["prompts_per_step"] * preset["group_size"])
    ref = out["per_seed"].get("rlvr")
    if ref:
        for name, per in out["per_seed"].items():
            if not name.endswith("/control") and name != "rlvr":
                out["vs_rlvr"][name] = frontier.paired(per, ref)
    out["probe_vs_rlvr"] = frontier.probe_vs(probe["main"]) if "main" in probe else {}
    out["power"] = frontier.power_from_summary(S)
    return out


def profile(rows):
    """Where the logged runs spent their time, in seconds summed over every run: sampling
    (rollout), the teacher's forward pass, the update, evaluation, the signal-density pass
    and the probe. Start-up, loading and drawing are the rest of total_seconds."""
    steps = [r for r in rows if r["kind"] == "step"]
    out = {k: float(sum(r[f"t_{k}"] for r in steps)) for k in ("rollout", "teacher", "update")}
    # a step-0 evaluation reused by the arms of one (student, seed) is logged by each with
    # the same t_eval: count it once
    seen, out["evaluation"] = set(), 0.0
    for r in rows:
        if r["kind"] == "eval" and "t_eval" in r:
            key = (r.get("variant"), r.get("seed"), r["t_eval"])
            if not (r["step"] == 0 and key in seen):
                out["evaluation"] += float(r["t_eval"])
            seen.add(key)
    out["probe"] = float(sum(r.get("seconds", 0.0) for r in rows if r["kind"] == "probe"))
    out["signal_density"] = float(sum(r.get("seconds", 0.0) for r in rows if r["kind"] == "density"))
    return out


def _mean_std(xs):
    xs = [x for x in xs if x is not None and not (isinstance(x, float) and math.isnan(x))]
    if not xs:
        return None, None
    return float(np.mean(xs)), float(np.std(xs, ddof=1)) if len(xs) > 1 else 0.0


def method_summary(per_seed, method, params):
    out = {"n_seeds": len(per_seed)}  # finished runs only
    finals = [[r for r in rs if r["kind"] == "eval"] for rs in per_seed]
    for k in ("greedy_test", "greedy_hard", "sampled_test", "kl_hinted_initial", "kl_opd_teacher"):
        out[f"final_{k}_mean"], out[f"final_{k}_std"] = _mean_std([e[-1][k] if e else None for e in finals])
        out[f"initial_{k}"] = _mean_std([e[0][k] if e else None for e in finals])[0]
    # mean curves over seeds, keyed by step
    for k in ("greedy_test", "sampled_test", "kl_hinted_initial", "kl_opd_teacher"):
        curve = {}
        for e in finals:
            for r in e:
                curve.setdefault(r["step"], []).append(r[k])
        out[f"curve_{k}"] = {str(s): float(np.mean(v)) for s, v in sorted(curve.items())}
        if k in ("greedy_test", "sampled_test"):
            peak_step, peak = max(((s, float(np.mean(v))) for s, v in curve.items()), key=lambda t: t[1],
                                  default=(None, None))
            out[f"peak_{k}"], out[f"peak_step_{k}"] = peak, peak_step
    steps = [[r for r in rs if r["kind"] == "step"] for rs in per_seed]
    tail = lambda rs, k, n=10: float(np.mean([r[k] for r in rs[-n:]])) if rs and k in rs[-1] else None
    head = lambda rs, k, n=10: float(np.mean([r[k] for r in rs[:n]])) if rs and k in rs[0] else None
    for k in ("reward", "cites_hint", "no_work", "faithful", "lucky", "resp_len", "kl_full", "kl_sampled",
              "adv_within_std", "rlsd_clip_frac"):
        out[f"first10_{k}"] = _mean_std([head(rs, k) for rs in steps])[0]
        out[f"last10_{k}"] = _mean_std([tail(rs, k) for rs in steps])[0]
    # per seed: the leak rate (hint citations plus answers without work) over the last 10
    # steps, and how far greedy and sampled test accuracy end below the seed's own peak
    out["per_seed_last10_leak"] = [tail(rs, "cites_hint") + tail(rs, "no_work") if rs else None for rs in steps]
    for k in ("greedy_test", "sampled_test"):
        out[f"per_seed_{k}_drop_from_peak"] = [max(r[k] for r in e) - e[-1][k] if e else None for e in finals]
    for k in ("t_rollout", "t_teacher", "t_update"):
        out[f"mean_{k}"] = _mean_std([float(np.mean([r[k] for r in rs[1:]])) if len(rs) > 1 else None
                                      for rs in steps])[0]
    out["mean_step_seconds"] = sum(out[f"mean_{k}"] or 0.0 for k in ("t_rollout", "t_teacher", "t_update"))
    out.update(params[method])
    return out


def cost_model(method, student, teacher):
    """Parameters resident and passes per step, by construction of the loop in rlsd.py."""
    ns, nt = student.num_params(), teacher.num_params()
    kind = rlsd.METHODS[method].teacher
    teacher_params = nt if kind == "separate" else (ns if kind == "self" else 0)
    return {"params_trained": ns, "params_teacher": teacher_params,
            "params_resident": ns + teacher_params,
            # weights + grads + two AdamW moments for the student, weights for a teacher copy, float32
            "model_state_mb": (4 * ns + teacher_params) * 4 / 2**20,
            "passes_per_step": {"generate": 1, "teacher_forward": int(kind is not None),
                                "student_forward": 1, "student_backward": 1}}


# ---------------------------------------------------------------- figures

def _series(rows, variant, method, kind, key):
    """{seed: (steps, values)} for one method, from the log."""
    out = {}
    for r in rows:
        if r.get("variant") == variant and r.get("method") == method and r["kind"] == kind and key in r:
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


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _title_tail(S):
    return f"{S['preset']['seeds']} seed(s), mean and min-max band; preset {S['preset']['base']}"


def draw_all(rows, S, out):
    """The four figures, from the log rows and the summary."""
    methods = [m for m in S["methods"] if not m.endswith("/control")]   # the arms, in run order
    draw_learning_curves(rows, S, methods, out)
    draw_signal_density(S, out)
    draw_leakage(rows, S, methods, out)
    draw_cost(S, methods, out)
    draw_frontier_figures(S, out)


def draw_frontier_figures(S, out):
    """Figures 5 and 6, from the summary alone (so --redraw needs nothing else)."""
    if "frontier" in S and S["frontier"]["per_seed"].get("rlvr"):
        frontier.draw_frontier(S, os.path.join(out, FRONTIER_FILES["frontier"]))
        frontier.draw_knobs(S, os.path.join(out, FRONTIER_FILES["knobs"]))


def draw_learning_curves(rows, S, methods, out):
    """Figure 1: greedy accuracy on test and hard, against RL step and against training seconds."""
    plt = _pyplot()
    title_tail = _title_tail(S)
    fig, axes = plt.subplots(2, 2, figsize=(11, 7), sharey="row")
    for i, split in enumerate(("test", "hard")):
        for m in methods:
            ser = _series(rows, "main", m, "eval", f"greedy_{split}")
            _band(axes[i, 0], ser, color(m, methods), label(m))
            wall = _series(rows, "main", m, "eval", "wall")
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
    fig.savefig(os.path.join(out, FIGURE_FILES["learning_curves"]), dpi=110)
    plt.close(fig)


def draw_signal_density(S, out):
    """Figure 2: the per-token credit each method gives the base student's own samples."""
    plt = _pyplot()
    D = S["signal_density"]
    names = [k for k in DENSITY_ROWS if k in D["methods"]]
    pretty = DENSITY_LABELS
    ex = D.get("examples", {})
    fig = plt.figure(figsize=(13, 2.2 + 1.6 * len(ex) + 3.2))
    gs = fig.add_gridspec(len(ex) + 1, 2, height_ratios=[1.6] * len(ex) + [3.0])
    cmap = plt.get_cmap("coolwarm_r")
    for i, (kind, e) in enumerate(ex.items()):
        ax = fig.add_subplot(gs[i, :])
        ax.set_axis_off()
        ax.set_xlim(0, max(len(e["tokens"]), 20) + 14)
        ax.set_ylim(len(names), -1.2)
        span = e["wrong_span"]
        ax.text(0, -0.9, f"{kind} response to {e['prompt']}   (that is {verify.flip(e['prompt'])[:-1]}: every number is "
                f"written least-significant digit first)" + ("; first wrong step underlined" if span and kind != "faithful" else ""),
                fontsize=9, weight="bold")
        for j, name in enumerate(names):
            c = np.asarray(e["credit"][name])
            scale = max(np.abs(c).max(), 1e-9)
            ax.text(0, j + 0.3, pretty[name], fontsize=8)
            for t, (tok, v) in enumerate(zip(e["tokens"], c)):
                x = 13 + t
                ax.add_patch(plt.Rectangle((x, j), 1, 0.8, color=cmap(0.5 + 0.5 * v / scale)))
                ax.text(x + 0.5, j + 0.55, "$" if tok == "<|eos|>" else tok, ha="center", fontsize=7,
                        family="monospace")
                if span and span[0] <= t < span[1] and kind != "faithful":
                    ax.plot([x, x + 1], [j + 0.86, j + 0.86], color="black", lw=1)
    ax = fig.add_subplot(gs[-1, 0])
    xs = np.arange(len(names))
    hit = [D["methods"][k]["blame_in_first_wrong_step"] for k in names]
    colors = {**COLORS, "opsd": "lightcoral", "opsd_jsd": COLORS["opsd"], "rlsd_solution": "tab:pink"}
    ax.bar(xs, hit, color=[colors[k] for k in names])
    ax.axhline(D["methods"]["rlvr"]["chance"], color="black", ls="--", lw=1, label="chance (span / length)")
    ax.set_xticks(xs, [DENSITY_SHORT.get(k, pretty[k]) for k in names], fontsize=7)
    ax.set_ylabel("share of failed responses")
    ax.set_title(f"most-blamed token lies in the first wrong step\n(n={D['n_failed']} failed responses "
                 f"of the base student)", fontsize=9)
    ax.legend(fontsize=8)
    ax = fig.add_subplot(gs[-1, 1])
    w = np.array([D["methods"][k]["lucky_credit_wrong_step"] for k in names])
    r = np.array([D["methods"][k]["lucky_credit_rest"] for k in names])
    push = np.array([k == "opsd_jsd" for k in names])   # a gradient, not an advantage: its own axis
    ax.bar(xs[~push] - 0.2, w[~push], 0.4, label="tokens of the wrong step", color="tab:orange")
    ax.bar(xs[~push] + 0.2, r[~push], 0.4, label="the rest of the response", color="tab:gray")
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xticks(xs, [DENSITY_SHORT.get(k, pretty[k]) for k in names], fontsize=7)
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
    fig.suptitle("Signal density: per-token credit each method gives the same sampled responses "
                 "(blue = pushed up, red = pushed down, scaled per row; $ = end of sequence)", fontsize=10)
    fig.tight_layout()
    fig.savefig(os.path.join(out, FIGURE_FILES["signal_density"]), dpi=110)
    plt.close(fig)


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
              ("eval", "kl_hinted_initial", "KL(student || initial student + answer hint)\n(test prompts, the "
                                            "same yardstick for all)"),
              ("eval", "sampled_test", f"sampled accuracy on test (T = 1)\n(evaluated every {every} steps)"),
              ("eval", "greedy_test", f"greedy accuracy on test\n(evaluated every {every} steps)")]
    fig, axes = plt.subplots(2, 4, figsize=(16, 8))
    for ax, (kind, key, title) in zip(axes.flat, panels):
        for m in methods:
            if key == "kl_full" and method_of(m) == "rlvr":
                continue
            _band(ax, _series(rows, "main", m, kind, key), color(m, methods), label(m),
                  smooth=10 if kind == "step" else 1)
            if method_of(m) in ("opsd", "rlsd"):
                _band(ax, _series(rows, "control", m, kind, key), color(m, methods), label(m) + ", no-shift control",
                      smooth=10 if kind == "step" else 1, ls=":")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("RL step")
        ax.grid(alpha=0.3)
    h, l = axes.flat[0].get_legend_handles_labels()
    fig.legend(h, l, fontsize=8, loc="lower center", ncol=6)
    fig.suptitle(f"Leakage: does the student copy what only the privileged teacher could know? "
                 f"(training-sample metrics: trailing mean over 10 steps; {title_tail})", fontsize=10)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    fig.savefig(os.path.join(out, FIGURE_FILES["leakage"]), dpi=110)
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
    fig.suptitle("Cost per method: memory resident and time per step (rollout, teacher pass, update)", fontsize=10)
    fig.tight_layout()
    fig.savefig(os.path.join(out, FIGURE_FILES["cost"]), dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------- main

MAX_SEEDS, MAX_STEPS = 100, 100_000
DEFAULT_JOBS = {"cpu": 2}   # 2 processes of 1 thread beat 1 of 2 threads on 2 cores (docs/LOG.md)
FRONTIER_FILES = {"frontier": "fig5_frontier.png", "knobs": "fig6_knobs.png"}   # when the preset probes
RESULT_FILES = ("summary.json", *FIGURE_FILES.values(), *FRONTIER_FILES.values())   # what a run derives from its log
OUTPUT_FILES = ("metrics.jsonl", *RESULT_FILES)


def main(argv=None):
    ap = runtime.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="default", help=f"one of {', '.join(PRESETS)}")
    ap.add_argument("--methods", default=None,
                    help=f"comma-separated subset of {','.join(METHOD_ORDER)} (default: the preset's arms; "
                         "the first four for default, smoke and full)")
    ap.add_argument("--arms", nargs="+", default=None, metavar="ARM",
                    help="instead of --methods: arms METHOD[:key=value,...], e.g. rlsd:eps_w=1,lam0=1 "
                         f"rlvr+opsd:alpha=0.1 (keys: {', '.join(ARM_KEYS)})")
    ap.add_argument("--seeds", type=int, default=None, help=f"number of seeds, 1 to {MAX_SEEDS} (default: the preset's)")
    ap.add_argument("--steps", type=int, default=None, help=f"RL steps per run, 1 to {MAX_STEPS:,} (default: the preset's)")
    ap.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    ap.add_argument("--out", default=None, help="output folder (default runs/<preset>)")
    ap.add_argument("--checkpoints", default="checkpoints", help="cache folder of retrained base models")
    ap.add_argument("--base-seed", type=int, default=0,
                    help="seed of the base student and control student; any seed but 0 trains them "
                         "(into --checkpoints) beside the shipped teacher (default 0: the shipped ones)")
    ap.add_argument("--retrain-base", action="store_true",
                    help="train the base models (into --checkpoints) instead of loading the shipped ones")
    ap.add_argument("--resume", action="store_true", help="skip the runs that finished in --out and redo the rest")
    ap.add_argument("--no-controls", action="store_true", help="skip the no-shift control runs")
    ap.add_argument("--quiet", action="store_true", help="no progress bars")
    ap.add_argument("--redraw", default=None, metavar="DIR",
                    help="only redraw: figures 5 and 6 from DIR/summary.json, and figures 1-4 too when "
                         "DIR/metrics.jsonl is there (e.g. --redraw figures/frontier)")
    ap.add_argument("--jobs", type=int, default=None,
                    help="runs in parallel processes, the cores divided between them (default: 2 on a "
                         "CPU, measured 1.2x faster on 2 cores; 1 on a GPU, not measured; docs/LOG.md)")
    args = ap.parse_args(argv)
    if args.redraw is not None:
        try:
            return redraw(args.redraw)
        except (runtime.FileProblem, OSError) as e:
            print(f"compare_methods.py: error: {e}", file=sys.stderr)
            return 1
    try:
        if args.preset not in PRESETS:
            raise ValueError(f"unknown preset {args.preset!r}; choose one of {', '.join(PRESETS)}")
        if args.arms or not args.methods:
            methods = list(dict.fromkeys(a.strip() for a in args.arms or PRESETS[args.preset].arms))   # in order
            for arm in methods:
                parse_arm(arm)
        else:
            methods = [m.strip() for m in args.methods.split(",") if m.strip()]
            bad = [m for m in methods if m not in rlsd.METHODS]
            if bad or not methods:
                raise ValueError(f"unknown method(s) {', '.join(bad) or '(none given)'}; choose from "
                                 f"{', '.join(METHOD_ORDER)}")
            methods = [m for m in METHOD_ORDER if m in methods]
        runtime.check_range("--seeds", args.seeds, 1, MAX_SEEDS)
        runtime.check_range("--steps", args.steps, 1, MAX_STEPS)
        runtime.check_range("--base-seed", args.base_seed, 0, runtime.MAX_SEED)
        runtime.check_range("--jobs", args.jobs, 1, 64)
        device = train_tiny.resolve_device(args.device)
        jobs = args.jobs or DEFAULT_JOBS.get(device, 1)
        out = args.out or os.path.join("runs", args.preset)
        runtime.check_folder(out)
        for name in OUTPUT_FILES:   # every output path is checked before the work
            if os.path.isdir(os.path.join(out, name)):
                raise ValueError(f"{os.path.join(out, name)!r} is a folder; compare_methods.py writes a file there")
        runtime.check_folder(args.checkpoints)
        if os.path.abspath(out) == os.path.abspath(args.checkpoints):
            raise ValueError("--out and --checkpoints must be different folders (each has its own summary.json)")
    except ValueError as e:
        print(f"compare_methods.py: error: {e}", file=sys.stderr)
        return 2
    preset = PRESETS[args.preset]
    preset = replace(preset, seeds=args.seeds or preset.seeds, steps=args.steps or preset.steps,
                     controls=preset.controls and not args.no_controls)
    try:
        return compare(preset, methods, device, out, args.checkpoints, args.resume, progress=not args.quiet,
                       argv=argv if argv is not None else sys.argv[1:], retrain_base=args.retrain_base,
                       base_seed=args.base_seed, jobs=jobs)
    except (model.CheckpointError, runtime.FileProblem) as e:
        print(f"compare_methods.py: error: {e}", file=sys.stderr)
        return 1
    except ValueError as e:
        print(f"compare_methods.py: error: {e}", file=sys.stderr)
        return 2


def redraw(folder):
    """Redraw a finished run's figures from its files, without running anything."""
    path = os.path.join(folder, "summary.json")
    if not os.path.isfile(path):
        raise runtime.FileProblem(f"{path} does not exist; --redraw needs a folder a run wrote")
    S = runtime.read_json(path, "rerun compare_methods.py to write it anew")
    if "frontier" not in S and not os.path.isfile(os.path.join(folder, "metrics.jsonl")):
        raise runtime.FileProblem(f"{folder} has no metrics.jsonl and its summary has no frontier statistics: "
                                  "nothing to redraw")
    log = os.path.join(folder, "metrics.jsonl")
    if os.path.isfile(log):
        rows = read_log(log)
        done = {r["run"] for r in rows if r["kind"] == "end" and r.get("status") == "done"}
        draw_all([r for r in rows if r["run"] in done], S, folder)
    else:
        draw_frontier_figures(S, folder)
    print(f"figures redrawn in {folder}")
    return 0


def start_log(log_path, header, resume):
    """The resume bookkeeping. Without resume: a fresh log holding only the header. With it:
    keep the finished runs and the signal-density and probe rows of the old log (a run cut short is
    dropped and redone), after checking that the old log was made with the same settings.
    Returns (rows, the keys of the finished runs); the log file is rewritten atomically."""
    rows = read_log(log_path) if resume else []
    old = next((r for r in rows if r["kind"] == "header"), None)
    header = json.loads(json.dumps(header))   # as it reads back (tuples become lists)
    # the arms may differ (runs are kept by arm); every other setting must not
    same = lambda h: {k: ({**v, "arms": None} if k == "preset" else v) for k, v in h.items() if k != "methods"}
    if resume and old is not None and same(old) != same(header):
        raise ValueError(f"{log_path} was made with other settings (preset, steps, seeds or base models); "
                         f"rerun without --resume, or give another --out")
    done = {r["run"] for r in rows if r["kind"] == "end" and r.get("status") == "done"}
    rows = [header] + [r for r in rows if r["run"] in done or r["run"] in ("density", "probe")]
    runtime.atomic_write(log_path, lambda f: f.writelines(json.dumps(r) + "\n" for r in rows))
    return rows, done


def compare(preset, methods, device, out, ckpt_dir, resume=False, progress=True, argv=(), retrain_base=False,
            base_seed=0, jobs=1):
    """The experiment: base models, signal density, every run, then summary and figures.
    One process per output folder (locked); Ctrl-C or SIGTERM at any stage ends the current
    unit of work, keeps what is done and prints the command that continues (exit 130)."""
    again = runtime.resume_command("compare_methods.py", argv)
    os.makedirs(out, exist_ok=True)
    with runtime.FolderLock(out, ".run.lock", purpose="compare_methods.py is writing it"), runtime.STOP:
        try:
            shipped = None if retrain_base else train_tiny.SHIPPED
            return _compare(preset, methods, device, out, ckpt_dir, resume, progress, argv, again, shipped, base_seed,
                            jobs)
        except runtime.Interrupted as e:
            print(f"{e}\nto continue: {again}", file=sys.stderr)
            return 130
        except KeyboardInterrupt:
            print(f"\nstopped at once; the runs finished so far are kept in {out}. To continue: {again}",
                  file=sys.stderr)
            return 130


def _compare(preset, methods, device, out, ckpt_dir, resume, progress, argv, again, shipped, base_seed, jobs):
    t0 = time.time()
    log_path = os.path.join(out, "metrics.jsonl")
    if not resume:   # a fresh run: an earlier run's summary and figures must not sit beside its new log
        for name in RESULT_FILES:
            if os.path.isfile(os.path.join(out, name)):
                os.remove(os.path.join(out, name))
    # 1. base models: the shipped ones, else cached by configuration or trained (and then
    # their training stops and resumes on request)
    student, teacher, base = train_tiny.build_base_models(preset.base, ckpt_dir, device, progress=progress,
                                                          shipped=shipped, student_seed=base_seed)
    base_summary = {"student": base["student"], "teacher": base["teacher"]}
    control = None
    controls = control_arms(methods, preset)
    if controls:
        control, _, cbase = train_tiny.build_base_models(preset.base, ckpt_dir, device, progress=progress,
                                                         student_overrides=dict(cite_frac=0.0, nowork_frac=0.0),
                                                         shipped=shipped, student_seed=base_seed)
        base_summary["control_student"] = cbase["student"]
    task = train_tiny.PRESETS[preset.base]["student"].task
    runs = planned_runs(methods, preset.seeds, controls)
    params = {m: cost_model(method_of(m), student, teacher) for m in methods}

    header = {"run": "header", "kind": "header", "preset": asdict(preset), "methods": methods,
              "student": base["student"]["checkpoint"], "teacher": base["teacher"]["checkpoint"]}
    rows, done = start_log(log_path, header, resume)
    with open(log_path, "a") as logf:
        def append(row):
            rows.append(row)
            try:
                logf.write(json.dumps(row) + "\n")
                logf.flush()
            except OSError as e:
                raise runtime.FileProblem(f"could not write {log_path}: {e.strerror or e}") from None

        # 2. signal density, on the base student's own samples
        density = next((r["data"] for r in rows if r["run"] == "density"), None)
        if density is None and not runtime.STOP.requested:
            t_density = time.time()
            density = signal_density(student, teacher, preset, task)
            append({"run": "density", "kind": "density", "data": density, "seconds": time.time() - t_density})

        # 2b. the one-update probe (frontier.py), when the preset asks for it: every arm from
        # the main student, the control arms from the control student
        # (its samples are fixed by the seed, so a resume with more arms probes only those
        # and merges them; the last probe row of the log wins)
        old = next((r["data"] for r in reversed(rows) if r["run"] == "probe"), None) or {}
        missing = {v: [a for a in arms if a not in old.get(v, {}).get("arms", {})]
                   for v, arms in (("main", methods), ("control", controls))}
        probe = old or None
        if any(missing.values()) and preset.probe_batches > 0 and not runtime.STOP.requested:
            new = {}
            for variant, net in (("main", student), ("control", control)):
                if missing[variant]:
                    new[variant] = frontier.probe(net, teacher, [(a, *parse_arm(a)) for a in missing[variant]],
                                                  preset, task, progress=progress, stop=lambda: runtime.STOP.requested,
                                                  log=lambda s: print(s, file=sys.stderr))
            if any(p is None for p in new.values()):
                probe = old or None   # stopped part-way: these arms are probed on --resume
            else:
                probe = dict(old)
                for v, p in new.items():   # the samples and yardsticks are the same: only arms are added
                    probe[v] = {**p, "arms": {**old[v]["arms"], **p["arms"]},
                                "seconds": old[v]["seconds"] + p["seconds"]} if v in old else p
                seconds = sum(p["seconds"] for p in new.values())
                append({"run": "probe", "kind": "probe", "data": probe, "seconds": seconds})
                print(f"probe: {sum(map(len, missing.values()))} arm(s) in {seconds:.0f}s", file=sys.stderr)

        # 3. the runs
        evalsets = {s: verify.make_problems(s, preset.eval_n, seed=30_000, cfg=task) for s in ("test", "hard")}
        refs = {"main": {"hinted_initial": (student, "answer"), "opd_teacher": (teacher, "none")},
                "control": {"hinted_initial": (control, "answer"), "opd_teacher": (teacher, "none")}}
        todo = [r for r in runs if run_key(*r) not in done]
        models = {"main": student, "control": control}
        first = {}   # step-0 evaluations, equal for every arm of a (variant, seed): computed once
        if jobs <= 1 or len(todo) <= 1:
            for variant, method, seed in todo:
                if runtime.STOP.requested:
                    break
                key = run_key(variant, method, seed)

                def log(row, key=key):
                    append({"run": key, "variant": variant, "method": method, "seed": seed, **row})
                status = run_one(models[variant], teacher, method, seed, preset, evalsets, log, task, refs[variant],
                                 progress, first.setdefault((variant, seed), {}))
                if status == "stopped":
                    break
                log({"kind": "end", "status": status})
                done.add(key)
                if not progress:
                    print(f"{key}: {status}", file=sys.stderr)
        elif not runtime.STOP.requested:
            run_parallel(todo, jobs, models, teacher, preset, evalsets, task, refs, append, done, device)
    complete = all(run_key(*r) in done for r in runs)

    # 4. summary and figures, from the finished runs (a run cut short is redone by --resume)
    if done:
        rows = [r for r in rows if r["run"] in done or r["run"] in ("density", "probe", "header")]
        S = summarize(rows, runs, preset, base_summary, density, params, probe)
        S["total_seconds"] = time.time() - t0
        S["complete"] = complete
        S["command"] = shlex.join(["python", "compare_methods.py", *argv])
        runtime.write_json(os.path.join(out, "summary.json"), S)
        try:
            draw_all(rows, S, out)
        except OSError as e:
            raise runtime.FileProblem(f"could not write the figures in {out}: {e.strerror or e}") from None
        print_table(S)
    if not complete:
        kept = f"{len(done)} finished run(s) are kept in {out}" if done else "no run had finished"
        print(f"\nstopped early; {kept}. To continue: {again}", file=sys.stderr)
        return 130
    print(f"\nall done in {S['total_seconds']:.0f}s; figures and summary.json in {out}")
    return 0


def print_table(S):
    cols = ("final_greedy_test_mean", "final_greedy_hard_mean", "final_sampled_test_mean", "last10_reward",
            "last10_cites_hint", "last10_no_work", "last10_resp_len", "last10_kl_full", "mean_step_seconds",
            "params_resident")
    short = ("test", "hard", "test(T=1)", "reward", "cite", "nowork", "len", "KL", "s/step", "params")
    w = max([16] + [len(name) + 1 for name in S["methods"]])
    print("\n" + f"{'method':{w}s}" + "".join(f"{c:>10s}" for c in short))
    for name, ms in S["methods"].items():
        cells = []
        for c in cols:
            v = ms.get(c)
            cells.append(f"{'-':>10s}" if v is None else f"{v:>10.3f}" if isinstance(v, float) else f"{v:>10d}")
        print(f"{name:{w}s}" + "".join(cells))


if __name__ == "__main__":
    sys.exit(main())
