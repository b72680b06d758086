"""density.py: figure 2's numbers. Where does each method put its credit on the same
sampled responses of the base student?

  density_credits  each row's per-token credit, computed by the loop's own code: a state
                   of that arm (rlsd.make_state), its teacher pass (rlsd.teacher_pass) and
                   its Method.credit on a Step record at step 0, so that a change to a
                   method's credit shows here at once
  jsd_push         what OPSD's JSD does to each sampled token's logit (its real signal)
  signal_density   the measurements: how much the credit varies inside a response, whether
                   a failed response's most-blamed token lies in its first wrong step, and
                   what a lucky response's wrong step gets; plus three worked examples

compare_methods.py runs it once per comparison, on the base student (docs/METHODS.md,
"The experiment's conventions").
"""
import numpy as np
import torch

import model
import rlsd
import verify
from experiment import parse_arm

# figure 2's rows, each an arm (experiment.parse_arm's form) whose step-0 credit it shows.
# OPSD trains on a full-vocabulary JSD: its row "opsd_jsd" is that loss's push on each
# sampled token (jsd_push); "opsd" is its sampled-token credit (RLSD paper, Eq. 17), the
# stand-in the other rows can be compared with
DENSITY_ARMS = {"rlvr": "rlvr", "opd": "opd", "opsd": "opsd:opsd_loss=sampled", "opsd_jsd": "opsd",
                "rlsd": "rlsd", "rlsd_solution": "rlsd:hint=solution"}


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
def density_credits(student, teacher, roll, group_size, rows=DENSITY_ARMS):
    """{row: (B, T) credit} for one rollout: what train_step would weight each token by at
    step 0 of that arm, or, for "opsd_jsd", the push of OPSD's own loss on each sampled
    token. Each arm's credit is its Method.credit called on a Step built as step_loss
    builds it: the student's scores (one forward, shared: at step 0 every arm's student is
    the base student) and that arm's teacher pass (one per teacher and hint)."""
    logits = rlsd.response_logits(student, roll.contexts, roll.tokens)
    logp = model.token_logprobs(logits, roll.tokens)
    passes, out = {}, {}
    for row, arm in rows.items():
        name, over = parse_arm(arm)
        cfg = rlsd.RLConfig(method=name, group_size=group_size, **over)
        state = rlsd.make_state(student, cfg, opd_teacher=teacher)
        key = (state.method.teacher, cfg.hint)
        if key not in passes:
            passes[key] = rlsd.teacher_pass(state, roll)
        s = rlsd.Step(roll, logits, logp, *passes[key], step=0, alpha=state.alpha)
        out[row] = state.method.credit(s, cfg) if row != "opsd_jsd" else \
            jsd_push(logits, s.teacher_logits, roll.tokens, roll.mask, beta=cfg.jsd_beta)
    return out


def _blame(c, checks, failed, mask):
    """Share of failed responses whose most-credit-negative token lies in the first wrong
    step (ties share the blame evenly), and the chance level (span / length)."""
    hit, chance = [], []
    for b in failed:
        n = int(mask[b].sum())
        a0, a1 = checks[b].wrong_span
        a1 = min(a1, n)
        if a0 >= n:
            continue
        vals = c[b, :n].cpu().numpy()
        lowest = np.flatnonzero(vals == vals.min())
        hit.append(np.mean((lowest >= a0) & (lowest < a1)))
        chance.append((a1 - a0) / n)
    return hit, chance


def _lucky_credit(c, checks, lucky, mask):
    """Mean credit of a lucky response's wrong step, and of the rest of it."""
    wrong_credit, rest_credit = [], []
    for b in lucky:
        n = int(mask[b].sum())
        a0, a1 = checks[b].wrong_span
        inside = torch.zeros(n, dtype=torch.bool)
        inside[a0:min(a1, n)] = True
        if inside.any() and (~inside).any():
            wrong_credit.append(c[b, :n][inside].mean().item())
            rest_credit.append(c[b, :n][~inside].mean().item())
    return wrong_credit, rest_credit


def _mean(xs):
    return float(np.mean(xs)) if xs else float("nan")


def _examples(roll, credit, pools, seed):
    """One failed, one lucky and one faithful response with every row's credit."""
    rng = np.random.default_rng(seed)
    out = {}
    for kind, pool in pools.items():
        if pool:
            b = int(pool[rng.integers(len(pool))])
            n = int(roll.mask[b].sum())
            out[kind] = {"prompt": roll.problems[b].prompt,
                         "tokens": [verify.decode([t]) for t in roll.tokens[b, :n].tolist()],
                         "wrong_span": roll.checks[b].wrong_span,
                         "credit": {k: v[b, :n].tolist() for k, v in credit.items()}}
    return out


@torch.no_grad()
def signal_density(student, teacher, preset, task, seed=0):
    """Score the same sampled responses of the base student with every row's per-token
    credit at step 0 and measure where each puts its blame."""
    G = preset.group_size
    probs = verify.make_problems("train", preset.density_prompts, seed=20_000 + seed, cfg=task)
    gen = torch.Generator(device=student.wte.weight.device).manual_seed(seed)
    roll = rlsd.rollout(student, probs, rlsd.RLConfig(group_size=G), gen)
    credit = density_credits(student, teacher, roll, G)
    mask, checks = roll.mask, roll.checks
    adv = rlsd.group_advantages(roll.rewards, G)
    # responses with a located first wrong step and a signal from GRPO (mixed group)
    failed = [b for b, c in enumerate(checks) if not c.correct and c.wrong_span is not None and adv[b] != 0]
    lucky = [b for b, c in enumerate(checks) if c.lucky and c.wrong_span is not None and adv[b] != 0]
    faithful = [b for b, c in enumerate(checks) if c.faithful and adv[b] != 0]
    out = {"n_responses": len(checks), "n_failed": len(failed), "n_lucky": len(lucky),
           "reward_mean": roll.rewards.mean().item(), "methods": {}}
    for name, c in credit.items():
        hit, chance = _blame(c, checks, failed, mask)
        wrong_credit, rest_credit = _lucky_credit(c, checks, lucky, mask)
        out["methods"][name] = {
            "within_response_std": rlsd.within_response_std(c, mask),
            "blame_in_first_wrong_step": _mean(hit), "chance": _mean(chance),
            "lucky_credit_wrong_step": _mean(wrong_credit), "lucky_credit_rest": _mean(rest_credit),
        }
    out["examples"] = _examples(roll, credit, {"failed": failed, "lucky": lucky, "faithful": faithful}, seed)
    return out
