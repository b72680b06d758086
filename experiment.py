"""experiment.py: what one comparison is, and what it records.

  Preset, PRESETS   the settings of a comparison (base models, steps, seeds, batch, rate,
                    evaluation, which arms) by name: smoke, default, full, frontier, frontier-smoke
  parse_arm         an arm is a method with setting overrides, 'rlsd:eps_w=1,lam0=1'; the
                    one place an arm's text is read
  evaluate_policy   greedy and sampled accuracy on held-out problems, and two KL yardsticks
  run_one           one arm, one seed: every step and evaluation appended to the run log
  read_log, start_log   the run log (metrics.jsonl) and the bookkeeping of --resume
  summarize         every number the figures and the README use, from the log

compare_methods.py drives all of this; rlsd.py does the training.
"""
import itertools
import json
import math
import os
import time
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch

import rlsd
import runtime
import train_tiny
import verify

METHOD_ORDER = ("rlvr", "opd", "opsd", "rlsd", "rlvr+opsd")
DEFAULT_METHODS = METHOD_ORDER[:4]   # the four of the default run; rlvr+opsd on request


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
    arms: tuple = DEFAULT_METHODS  # what runs when --arms is not given
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
    "rlvr+opsd:alpha=1", "rlvr+opsd:alpha=3", "rlvr+opsd:alpha=10",
    "rlvr+opsd:alpha=10,alpha_leak_threshold=0.05", "opsd", "opsd:hint=solution")
PRESETS["frontier"] = replace(PRESETS["default"], seeds=5, eval_every=20, eval_n=500, arms=FRONTIER_ARMS,
                              control_arms=("opsd", "rlvr+opsd:alpha=1",
                                            "rlsd:lam_kind=constant,lam0=1,eps_w=3"),
                              probe_batches=50, probe_big=4096)
# the frontier's pipeline (the probe, its statistics, figures 5 and 6) at the smoke size, in seconds
PRESETS["frontier-smoke"] = replace(PRESETS["smoke"], probe_batches=1, probe_big=16,
                                    arms=("rlvr", "rlvr+opsd:alpha=0.1", "rlsd:eps_w=1,lam0=1",
                                          "rlsd:hint=none"))


# ---------------------------------------------------------------- arms

MAX_ARMS, MAX_ARM_CHARS = 100, 200
# the settings an arm may override, with their types (docs/METHODS.md gives their meaning)
ARM_KEYS = {"lam0": float, "lam_decay_steps": int, "lam_kind": str, "eps_w": float, "hint": str,
            "teacher_weights": str, "refresh_every": int, "alpha": float, "alpha_leak_threshold": float,
            "jsd_beta": float, "opd_coef": float, "opsd_loss": str}


def parse_arm(text):
    """An arm is a method plus setting overrides, 'METHOD[:key=value,...]', for example
    'rlsd:eps_w=1,lam0=1' or 'rlvr+opsd:alpha=0.1'. Returns (method, {key: value}) with
    the values typed, in the order written; a bad arm raises one ValueError naming what is
    wrong. Everything that reads an arm reads it here."""
    if len(text) > MAX_ARM_CHARS or not text.isascii():
        raise ValueError(f"arm {text[:40]!r}...: an arm is at most {MAX_ARM_CHARS} ASCII characters")
    method, colon, rest = text.partition(":")
    if method not in rlsd.METHODS:
        raise ValueError(f"arm {text!r}: unknown method {method!r}; choose one of {', '.join(METHOD_ORDER)}")
    if colon and not rest:
        raise ValueError(f"arm {text!r}: no settings after ':'")
    over = {}
    for item in rest.split(",") if rest else []:
        key, eq, value = item.partition("=")
        if not eq or key not in ARM_KEYS:
            raise ValueError(f"arm {text!r}: {item!r} is not key=value with a key among "
                             f"{', '.join(ARM_KEYS)}")
        if key in over:
            raise ValueError(f"arm {text!r}: {key} is set twice")
        try:
            over[key] = ARM_KEYS[key](value)
        except ValueError:
            raise ValueError(f"arm {text!r}: {key} must be {ARM_KEYS[key].__name__}, got {value!r}") from None
    try:
        rlsd.check_config(replace(rlsd.RLConfig(method=method), **over))
    except ValueError as e:
        raise ValueError(f"arm {text!r}: {e}") from None
    return method, over


def same_arms(arms):
    """Pairs of arms that spell the same settings (say 'rlsd' and 'rlsd:eps_w=0.2'): their
    RLConfigs are equal."""
    configs = {}
    for arm in arms:
        name, over = parse_arm(arm)
        configs.setdefault(repr(rlsd.RLConfig(method=name, **over)), []).append(arm)
    return [same for same in configs.values() if len(same) > 1]


def method_of(arm):
    """The method an arm runs."""
    return parse_arm(arm)[0]


def arm_config(arm, preset):
    """The RLConfig an arm trains with under a preset."""
    name, over = parse_arm(arm)
    return rlsd.RLConfig(method=name, group_size=preset.group_size, lr=preset.lr, **over)


# ---------------------------------------------------------------- runs

KL_SAMPLES = 64   # sampled test responses the two KL yardsticks are read on, at every evaluation


def run_key(variant, arm, seed):
    return f"{variant}/{arm}/{seed}"


def control_arms(arms, preset):
    """The arms that also run from the control student."""
    if not preset.controls:
        return []
    if preset.control_arms is None:
        return [a for a in arms if method_of(a) in ("opsd", "rlsd")]
    return [a for a in arms if a in preset.control_arms]


def planned_runs(arms, seeds, controls):
    """Seed by seed, so that a sweep cut short has whole seeds: every arm from the main
    student, then the control arms."""
    return [run for s in range(seeds)
            for run in [("main", a, s) for a in arms] + [("control", a, s) for a in controls]]


def eval_sets(preset, task):
    """The held-out problems every evaluation uses: the same for every arm and seed."""
    return {s: verify.make_problems(s, preset.eval_n, seed=30_000, cfg=task) for s in ("test", "hard")}


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
        ref_logits = rlsd.response_logits(ref, [verify.prompt_ids(p, hint) for p in roll.problems[:n]],
                                          tokens)
        kl = rlsd.kl_divergence(logits, ref_logits, mask)  # KL(policy || ref) per token
        out[f"kl_{name}"] = (kl.sum() / mask.sum()).item()
    return out


@dataclass
class Setup:
    """What every run of one comparison shares: the preset, the task, the OPD teacher, the
    students (main and control), the evaluation sets and each student's KL references."""
    preset: Preset
    task: object                 # verify.TaskConfig of the base models
    teacher: torch.nn.Module
    students: dict               # "main" (and "control" when control arms run) -> the base student
    evalsets: dict               # "test", "hard" -> problems
    references: dict             # student -> {yardstick: (model, hint)}


def load_setup(preset, checkpoints, device, *, controls, progress=True, retrain=False, seed=0):
    """The base models: the shipped ones (seed 0), else cached by configuration in
    `checkpoints` or trained there (train_tiny.py; that training stops and resumes on
    request); the control student too when control arms run. Returns (Setup, the
    base-model summary)."""
    kw = dict(progress=progress, shipped=None if retrain else train_tiny.SHIPPED, student_seed=seed)
    student, teacher, base = train_tiny.build_base_models(preset.base, checkpoints, device, **kw)
    students, summary = {"main": student}, {"student": base["student"], "teacher": base["teacher"]}
    if controls:
        no_shift = dict(cite_frac=0.0, nowork_frac=0.0)
        students["control"], _, cbase = train_tiny.build_base_models(preset.base, checkpoints, device,
                                                                     student_overrides=no_shift, **kw)
        summary["control_student"] = cbase["student"]
    task = train_tiny.PRESETS[preset.base]["student"].task
    refs = {v: {"hinted_initial": (net, "answer"), "opd_teacher": (teacher, "none")}
            for v, net in students.items()}
    setup = Setup(preset=preset, task=task, teacher=teacher, students=students,
                  evalsets=eval_sets(preset, task), references=refs)
    return setup, summary


def run_one(setup, variant, arm, seed, log, progress=True, memo=None):
    """One arm (a method, maybe with overrides: parse_arm) from one student, one seed:
    returns 'done', 'stopped' or 'failed: ...'. Every step and every evaluation is appended
    to the log as it happens. `wall` is the cumulative training time (rollout + teacher +
    update), evaluations excluded. A stop request ends the run after the current step (and
    its evaluation, if one is due). `memo`, a dict shared by the arms of one (student,
    seed), keeps the step-0 evaluation, the same for all of them (same weights, same
    sampling seed); only the row that computed it carries its time, t_eval."""
    preset = setup.preset
    torch.manual_seed(seed)
    state = rlsd.make_state(setup.students[variant], arm_config(arm, preset), opd_teacher=setup.teacher,
                            seed=seed)
    # the same prompts in the same order for every method of a seed, drawn as the run goes
    prompts = verify.iter_problems("train", seed=10_000 + seed, cfg=setup.task)
    bar = runtime.progress_bar(preset.steps, f"{arm} seed {seed}", progress)
    wall = 0.0

    def evaluate(step):
        t0 = time.time()
        ev = evaluate_policy(state.policy, setup.evalsets, seed, setup.references[variant])
        log({"kind": "eval", "step": step, "wall": wall, **ev, "t_eval": time.time() - t0})
        return ev
    memo = {} if memo is None else memo
    if "eval" in memo:   # an earlier arm of this (student, seed) computed it: no time to count
        log({"kind": "eval", "step": 0, "wall": wall, **memo["eval"]})
    else:
        memo["eval"] = evaluate(0)
    for step in range(preset.steps):
        try:
            m = rlsd.train_step(state, list(itertools.islice(prompts, preset.prompts_per_step)))
        except rlsd.NonFiniteError as e:
            log({"kind": "failed", "step": step, "error": str(e)})
            bar.close()
            return f"failed: {e}"
        wall += m["t_rollout"] + m["t_teacher"] + m["t_update"]
        log({"kind": "step", **m, "wall": wall})
        bar.set_postfix(reward=f"{m['reward']:.2f}", leak=f"{m['leak']:.2f}")
        bar.update(1)
        if (step + 1) % preset.eval_every == 0 or step + 1 == preset.steps:
            evaluate(step + 1)
        if runtime.STOP.requested and step + 1 < preset.steps:
            bar.close()
            return "stopped"
    bar.close()
    return "done"


# ---------------------------------------------------------------- the run log

LOG_FORMAT = 2   # 2: step rows carry "leak" (verify.leak_rate); a log of another format is not resumed

# what each kind of row must hold, and of what type (numbers finite); rows of a run also
# name it: variant, method (the arm) and seed
ROW_FIELDS = {"header": {"preset": dict, "methods": list}, "density": {"data": dict}, "probe": {"data": dict},
              "step": {"step": int, "reward": float, "leak": float, "cites_hint": float, "no_work": float,
                       "t_rollout": float, "t_teacher": float, "t_update": float, "wall": float},
              "eval": {"step": int, "wall": float, "greedy_test": float, "greedy_hard": float,
                       "sampled_test": float, "kl_hinted_initial": float, "kl_opd_teacher": float},
              "end": {"status": str}, "failed": {"step": int, "error": str}}
RUN_FIELDS = {"variant": str, "method": str, "seed": int}


def valid_row(row):
    """Whether a parsed line is a row this program writes (ROW_FIELDS)."""
    def ok(v, t):
        if t is float:
            return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
        return isinstance(v, t) and not isinstance(v, bool) and (t is not int or v >= 0)
    if not (isinstance(row, dict) and isinstance(row.get("run"), str) and row.get("kind") in ROW_FIELDS):
        return False
    of_run = row["kind"] in ("step", "eval", "end", "failed")
    fields = {**ROW_FIELDS[row["kind"]], **(RUN_FIELDS if of_run else {})}
    return all(k in row and ok(row[k], t) for k, t in fields.items())


def read_log(path):
    """The rows of a metrics.jsonl this program wrote. Only its last line may be cut (a
    hard kill mid-write): that line is dropped. Any other damage, or a row that is not
    what this program writes (valid_row), is one FileProblem."""
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
        except ValueError:   # JSONDecodeError and UnicodeDecodeError included
            if n == len(lines):
                break        # the line a hard kill cut
            row = None
        if not valid_row(row):
            raise runtime.FileProblem(f"{path} line {n} is not a row this program wrote; {fix}")
        rows.append(row)
    return rows


def start_log(log_path, header, resume):
    """The resume bookkeeping. Without resume: a fresh log holding only the header. With it:
    keep the finished runs and the signal-density and probe rows of the old log (a run cut
    short is dropped and redone), after checking that the old log was made with the same
    settings. Returns (rows, the keys of the finished runs); the log is rewritten atomically."""
    rows = read_log(log_path) if resume else []
    old = next((r for r in rows if r["kind"] == "header"), None)
    if rows and old is None:   # its settings cannot be checked: its runs may not be this run's
        raise runtime.FileProblem(f"{log_path} has no header row; rerun without --resume, or give another "
                                  "--out")
    header = json.loads(json.dumps(header))   # as it reads back (tuples become lists)
    # the arms may differ (runs are kept by arm); every other setting must not
    same = lambda h: {k: ({**v, "arms": None} if k == "preset" else v)
                      for k, v in h.items() if k != "methods"}
    if resume and old is not None and same(old) != same(header):
        raise ValueError(f"{log_path} was made with other settings (preset, steps, seeds or base models) or "
                         "by an older version of this program; rerun without --resume, or give another --out")
    done = {r["run"] for r in rows if r["kind"] == "end" and r.get("status") == "done"}
    rows = [header] + [r for r in rows if r["run"] in done or r["run"] in ("density", "probe")]
    runtime.atomic_write(log_path, lambda f: f.writelines(json.dumps(r) + "\n" for r in rows))
    return rows, done


# ---------------------------------------------------------------- the summary

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


def rows_by_run(rows):
    by_run = {}
    for r in rows:
        by_run.setdefault(r["run"], []).append(r)
    return by_run


def summarize(rows, runs, setup, *, base_summary, density, probe=None):
    """Every number the figures and README use, from the logged rows; frontier.py adds its
    statistics when the preset probes (so the default run never imports it)."""
    preset = setup.preset
    arms = list(dict.fromkeys(a for _, a, _ in runs))   # in the order they ran
    params = {a: cost_model(method_of(a), setup.students["main"], setup.teacher) for a in arms}
    by_run = rows_by_run(rows)
    S = {"preset": asdict(preset), "base_models": base_summary, "signal_density": density, "runs": {},
         "methods": {}}
    for variant, arm, seed in runs:
        rs = by_run.get(run_key(variant, arm, seed), [])
        evals = [r for r in rs if r["kind"] == "eval"]
        status = next((r["status"] for r in rs if r["kind"] == "end"), "incomplete")
        S["runs"][run_key(variant, arm, seed)] = {"status": status,
                                                  "steps": sum(r["kind"] == "step" for r in rs),
                                                  "final_eval": evals[-1] if evals else None}
    for variant in ("main", "control"):
        for arm in arms:
            keys = [run_key(v, a, s) for v, a, s in runs if v == variant and a == arm]
            if not keys:
                continue
            name = arm if variant == "main" else f"{arm}/control"
            finished = [k for k in keys if S["runs"][k]["status"] == "done"]
            S["methods"][name] = arm_summary([by_run[k] for k in finished], params[arm])
            S["methods"][name]["n_failed"] = sum(S["runs"][k]["status"].startswith("failed") for k in keys)
    S["profile_seconds"] = profile(rows)
    if probe:
        import frontier
        S["probe"] = probe
        S["frontier"] = frontier.frontier_stats(by_run, runs, S, probe)
    # learning speed: first eval step at which each arm reaches RLVR's final test accuracy
    target = S["methods"].get("rlvr", {}).get("final_greedy_test_mean")
    if target is not None:
        for ms in S["methods"].values():
            curve = sorted(ms.get("curve_greedy_test", {}).items(), key=lambda kv: int(kv[0]))
            ms["first_step_at_rlvr_final_test"] = next((int(s) for s, v in curve if v >= target), None)
    return S


def profile(rows):
    """Where the logged runs spent their time, in seconds summed over every run: sampling
    (rollout), the teacher's forward pass, the update, evaluation, the signal-density pass
    and the probe. Start-up, loading and drawing are the rest of total_seconds."""
    steps = [r for r in rows if r["kind"] == "step"]
    out = {k: float(sum(r[f"t_{k}"] for r in steps)) for k in ("rollout", "teacher", "update")}
    out["evaluation"] = float(sum(r.get("t_eval", 0.0) for r in rows if r["kind"] == "eval"))
    out["probe"] = float(sum(r.get("seconds", 0.0) for r in rows if r["kind"] == "probe"))
    out["signal_density"] = float(sum(r.get("seconds", 0.0) for r in rows if r["kind"] == "density"))
    return out


def _mean_std(xs):
    xs = [x for x in xs if x is not None and not (isinstance(x, float) and math.isnan(x))]
    if not xs:
        return None, None
    return float(np.mean(xs)), float(np.std(xs, ddof=1)) if len(xs) > 1 else 0.0


def _curves(evals):
    """Mean curves over seeds keyed by step, and the peak of the accuracy curves."""
    out = {}
    for k in ("greedy_test", "sampled_test", "kl_hinted_initial", "kl_opd_teacher"):
        curve = {}
        for e in evals:
            for r in e:
                curve.setdefault(r["step"], []).append(r[k])
        out[f"curve_{k}"] = {str(s): float(np.mean(v)) for s, v in sorted(curve.items())}
        if k in ("greedy_test", "sampled_test"):
            peak_step, peak = max(((s, float(np.mean(v))) for s, v in curve.items()), key=lambda t: t[1],
                                  default=(None, None))
            out[f"peak_{k}"], out[f"peak_step_{k}"] = peak, peak_step
    return out


def arm_summary(per_seed, params):
    """One arm's numbers over its finished runs (per_seed: each run's rows)."""
    out = {"n_seeds": len(per_seed)}
    evals = [[r for r in rs if r["kind"] == "eval"] for rs in per_seed]
    for k in ("greedy_test", "greedy_hard", "sampled_test", "kl_hinted_initial", "kl_opd_teacher"):
        out[f"final_{k}_mean"], out[f"final_{k}_std"] = _mean_std([e[-1][k] if e else None for e in evals])
        out[f"initial_{k}"] = _mean_std([e[0][k] if e else None for e in evals])[0]
    out.update(_curves(evals))
    steps = [[r for r in rs if r["kind"] == "step"] for rs in per_seed]
    tail = lambda rs, k, n=10: float(np.mean([r[k] for r in rs[-n:]])) if rs and k in rs[-1] else None
    head = lambda rs, k, n=10: float(np.mean([r[k] for r in rs[:n]])) if rs and k in rs[0] else None
    for k in ("reward", "cites_hint", "no_work", "leak", "faithful", "lucky", "resp_len", "kl_full",
              "kl_sampled", "adv_within_std", "rlsd_clip_frac"):
        out[f"first10_{k}"] = _mean_std([head(rs, k) for rs in steps])[0]
        out[f"last10_{k}"] = _mean_std([tail(rs, k) for rs in steps])[0]
    # per seed: the leak rate over the last 10 steps, and how far greedy and sampled test
    # accuracy end below the seed's own peak
    out["per_seed_last10_leak"] = [tail(rs, "leak") for rs in steps]
    for k in ("greedy_test", "sampled_test"):
        out[f"per_seed_{k}_drop_from_peak"] = [max(r[k] for r in e) - e[-1][k] if e else None for e in evals]
    for k in ("t_rollout", "t_teacher", "t_update"):
        out[f"mean_{k}"] = _mean_std([float(np.mean([r[k] for r in rs[1:]])) if len(rs) > 1 else None
                                      for rs in steps])[0]
    out["mean_step_seconds"] = sum(out[f"mean_{k}"] or 0.0 for k in ("t_rollout", "t_teacher", "t_update"))
    out.update(params)
    return out


def table(S):
    """The summary's headline numbers, one row per arm, as text."""
    cols = ("final_greedy_test_mean", "final_greedy_hard_mean", "final_sampled_test_mean", "last10_reward",
            "last10_cites_hint", "last10_no_work", "last10_resp_len", "last10_kl_full", "mean_step_seconds",
            "params_resident")
    short = ("test", "hard", "test(T=1)", "reward", "cite", "nowork", "len", "KL", "s/step", "params")
    w = max([16] + [len(name) + 1 for name in S["methods"]])
    lines = ["", f"{'method':{w}s}" + "".join(f"{c:>10s}" for c in short)]
    for name, ms in S["methods"].items():
        cells = []
        for c in cols:
            v = ms.get(c)
            cells.append(f"{'-':>10s}" if v is None
                         else f"{v:>10.3f}" if isinstance(v, float) else f"{v:>10d}")
        lines.append(f"{name:{w}s}" + "".join(cells))
    return "\n".join(lines)
