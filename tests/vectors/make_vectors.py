"""Regenerate tests/vectors/*.json from an independent float64 numpy reference.

    python tests/vectors/make_vectors.py

This script must not import rlsd.py or torch: it is the second, independent implementation
that the vectors come from. It is written for plainness (loops, probability space), not
speed, and follows docs/METHODS.md (the project's math contract). Inputs of each case are
listed in the positional order of the public function; kwargs are passed by name.
"""

import json
import math
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
FORMAT_VERSION = 1

COMMON = {
    "dtype": "float64; every list input is a float64 tensor, mask included (1 = valid, 0 = padding)",
    "layout": "token tensors are (B, T) over response tokens; logits are (B, T, V); B = P * G, group-contiguous",
    "mask": "every output is 0 where mask is 0, whatever the padding holds",
    "tolerance": {"rtol": 1e-9, "atol": 1e-9},
    "errors": "a case with expected_error expects that exception (ValueError) and has expected = null",
}

AGGREGATION_DEFS = {
    "token-mean": "sum_{b,t} m*x / sum_{b,t} m  (0 if no valid token)",
    "seq-mean-token-mean": "mean over rows with sum_t m > 0 of (sum_t m*x / sum_t m)",
    "seq-mean-token-sum": "(1/B) * sum_b sum_t m*x  (B counts every row, empty ones too)",
    "seq-mean-token-sum-norm": "(1/T) * sum_{b,t} m*x  (T = padded length)",
}


# ---------------------------------------------------------------- numpy reference

def ref_group_advantages(rewards, group_size, scale="group", eps=1e-6):
    r = np.asarray(rewards, dtype=np.float64)
    out = np.zeros_like(r)
    for start in range(0, len(r), group_size):
        g = r[start:start + group_size]
        mean = g.sum() / len(g)
        if scale == "none":
            out[start:start + group_size] = g - mean
        elif len(g) == 1:
            out[start] = 0.0
        else:
            std = math.sqrt(((g - mean) ** 2).sum() / (len(g) - 1))
            out[start:start + group_size] = (g - mean) / (std + eps)
    return out


def ref_rlsd(adv, logp_t, logp_s, mask, lam=0.5, eps_w=0.2):
    logp_t, logp_s, mask = (np.asarray(x, dtype=np.float64) for x in (logp_t, logp_s, mask))
    out = np.zeros_like(mask)
    for b in range(mask.shape[0]):
        a = float(adv[b])
        for t in range(mask.shape[1]):
            if mask[b, t] == 0:
                continue
            delta = logp_t[b, t] - logp_s[b, t]
            if a > 0:
                w = math.exp(delta)          # P_T / P_S
            elif a < 0:
                w = math.exp(-delta)         # P_S / P_T
            else:
                w = 1.0
            w = min(max(w, 1.0 - eps_w), 1.0 + eps_w)
            out[b, t] = a * ((1.0 - lam) + lam * w)
    return out


def ref_opd(logp_s, logp_t, mask, coef=1.0):
    logp_s, logp_t, mask = (np.asarray(x, dtype=np.float64) for x in (logp_s, logp_t, mask))
    return np.where(mask != 0, -coef * (logp_s - logp_t), 0.0)


def ref_opsd(logp_s, logp_t, mask):
    logp_s, logp_t, mask = (np.asarray(x, dtype=np.float64) for x in (logp_s, logp_t, mask))
    return np.where(mask != 0, logp_t - logp_s, 0.0)


def _softmax(z):
    e = np.exp(z - z.max())
    return e / e.sum()


def _kl(p, q):
    return float(sum(pi * math.log(pi / qi) for pi, qi in zip(p, q) if pi > 0))


def ref_jsd(student_logits, teacher_logits, mask, beta=0.5, temperature=1.0):
    zs, zt, mask = (np.asarray(x, dtype=np.float64) for x in (student_logits, teacher_logits, mask))
    out = np.zeros(mask.shape)
    for b in range(mask.shape[0]):
        for t in range(mask.shape[1]):
            if mask[b, t] == 0:
                continue
            s = _softmax(zs[b, t] / temperature)
            q = _softmax(zt[b, t] / temperature)
            if beta == 0:
                out[b, t] = _kl(q, s)                      # forward KL(T || S)
            elif beta == 1:
                out[b, t] = _kl(s, q)                      # reverse KL(S || T)
            else:
                m = beta * q + (1 - beta) * s
                out[b, t] = beta * _kl(q, m) + (1 - beta) * _kl(s, m)
    return out


def ref_kl_k3(logp, logp_ref, mask):
    logp, logp_ref, mask = (np.asarray(x, dtype=np.float64) for x in (logp, logp_ref, mask))
    out = np.zeros(mask.shape)
    for idx in np.ndindex(mask.shape):
        if mask[idx] != 0:
            d = logp_ref[idx] - logp[idx]
            out[idx] = math.exp(d) - d - 1.0
    return out


def ref_aggregate(x, mask, mode="token-mean"):
    x, mask = np.asarray(x, dtype=np.float64), np.asarray(mask, dtype=np.float64)
    B, T = mask.shape
    rows = [[x[b, t] for t in range(T) if mask[b, t] != 0] for b in range(B)]
    if mode == "token-mean":
        tokens = [v for row in rows for v in row]
        return sum(tokens) / len(tokens) if tokens else 0.0
    if mode == "seq-mean-token-mean":
        means = [sum(row) / len(row) for row in rows if row]
        return sum(means) / len(means) if means else 0.0
    if mode == "seq-mean-token-sum":
        return sum(sum(row) for row in rows) / B
    if mode == "seq-mean-token-sum-norm":
        return sum(sum(row) for row in rows) / T
    raise ValueError(mode)


def ref_policy_loss(logp, logp_old, adv, mask, eps_low=0.2, eps_high=0.28, mode="token-mean"):
    """Returns (loss, d loss / d logp)."""
    logp, logp_old, adv, mask = (np.asarray(x, dtype=np.float64) for x in (logp, logp_old, adv, mask))
    per_token = np.zeros(mask.shape)
    dper_token = np.zeros(mask.shape)       # d l_t / d logp_t
    for idx in np.ndindex(mask.shape):
        if mask[idx] == 0:
            continue
        rho = math.exp(logp[idx] - logp_old[idx])
        a = adv[idx]
        unclipped = rho * a
        clipped = min(max(rho, 1 - eps_low), 1 + eps_high) * a
        per_token[idx] = -min(unclipped, clipped)
        inside = 1 - eps_low < rho < 1 + eps_high
        # the clipped branch is constant in logp outside the clip range
        dper_token[idx] = -a * rho if (unclipped <= clipped or inside) else 0.0
    loss = ref_aggregate(per_token, mask, mode)
    # every mode is linear in per_token: d loss / d l_t = weight of token (b, t)
    B, T = mask.shape
    weight = np.zeros(mask.shape)
    count = mask.sum(axis=1)
    for b, t in np.ndindex(mask.shape):
        if mask[b, t] == 0:
            continue
        weight[b, t] = {
            "token-mean": 1.0 / mask.sum(),
            "seq-mean-token-mean": 1.0 / (count[b] * (count > 0).sum()),
            "seq-mean-token-sum": 1.0 / B,
            "seq-mean-token-sum-norm": 1.0 / T,
        }[mode]
    return loss, weight * dper_token


def ref_lam_schedule(step, lam0=0.5, decay_steps=50):
    if step >= decay_steps:
        return 0.0
    return lam0 * (1.0 - step / decay_steps)


# ---------------------------------------------------------------- cases

def case(id, comment, flags, inputs, kwargs, expected, **extra):
    c = {"id": id, "comment": comment, "flags": flags, "inputs": inputs, "kwargs": kwargs,
         "expected": expected}
    c.update(extra)
    return c


def error_case(id, comment, inputs, kwargs):
    return case(id, comment, ["InvalidInput"], inputs, kwargs, None, expected_error="ValueError")


def tolist(x):
    return np.asarray(x, dtype=np.float64).tolist()


def group_advantages_cases():
    def c(id, comment, flags, rewards, G, **kw):
        return case(id, comment, flags, {"rewards": rewards, "group_size": G}, kw,
                    tolist(ref_group_advantages(rewards, G, **kw)))
    return [
        c("two_groups_g4", "P=2, G=4, binary rewards", [], [1, 0, 0, 1, 1, 0, 0, 0], 4),
        c("pairs_g2", "G=2: +-0.5 / (std + eps), std = sqrt(0.5)", [], [1, 0, 0, 1], 2),
        c("all_correct_and_all_wrong", "equal rewards in a group give A = 0", ["ZeroVarianceGroup"],
          [1, 1, 1, 0, 0, 0], 3),
        c("one_informative_group", "first group informative, second all equal",
          ["ZeroVarianceGroup"], [1, 1, 0, 1, 0, 0, 0, 0], 4),
        c("singleton_groups", "G=1 gives A = 0 (verl gives the raw reward)", ["SingletonGroup"],
          [1, 0, 1], 1),
        c("dr_grpo_no_scale", "scale='none': A = R - mean", ["DrGRPO"],
          [1, 0, 0, 1, 1, 0, 0, 0], 4, scale="none"),
        c("dr_grpo_singleton", "scale='none', G=1: R - mean = 0", ["DrGRPO", "SingletonGroup"],
          [1, 0], 1, scale="none"),
        c("non_binary_rewards", "fractional rewards, G=3", ["NonBinaryReward"], [0.2, 0.5, 0.9], 3),
        c("custom_eps", "eps=0.1 is added to the std, not to the variance", ["CustomEps"],
          [1, 0], 2, eps=0.1),
        error_case("b_not_divisible", "B=5 is not divisible by G=2",
                   {"rewards": [1, 0, 1, 0, 1], "group_size": 2}, {}),
        error_case("unknown_scale", "scale must be 'group' or 'none'",
                   {"rewards": [1, 0], "group_size": 2}, {"scale": "batch"}),
    ]


def rlsd_cases():
    def c(id, comment, flags, adv, lt, ls, mask, **kw):
        return case(id, comment, flags,
                    {"adv": adv, "logp_teacher": lt, "logp_student": ls, "mask": mask}, kw,
                    tolist(ref_rlsd(adv, lt, ls, mask, **kw)))
    lt = [[-0.5, -2.0, -0.1, 9.0], [-0.5, -0.3, -3.0, 9.0], [-1.0, -1.0, -2.0, -0.4]]
    ls = [[-1.0, -2.05, -1.5, 7.0], [-1.0, -0.25, -0.2, -7.0], [-0.5, -1.2, -1.0, -0.3]]
    mask = [[1, 1, 1, 0], [1, 1, 1, 0], [1, 1, 1, 1]]
    return [
        c("worked_case_positive", 'docs/METHODS.md, "RLSD", worked case: A=+1, logp_T=-0.5, logp_S=-1 -> +1.1',
          ["WorkedCase", "ClipActive"], [1.0], [[-0.5]], [[-1.0]], [[1]], lam=0.5, eps_w=0.2),
        c("worked_case_negative", 'docs/METHODS.md, "RLSD", worked case: A=-1 -> -0.9',
          ["WorkedCase", "ClipActive", "NegativeAdvantage"], [-1.0], [[-0.5]], [[-1.0]], [[1]],
          lam=0.5, eps_w=0.2),
        c("clip_inactive", "small gain: w = exp(+-0.1) stays inside [0.8, 1.2]",
          ["NegativeAdvantage"], [0.8, -0.8], [[-1.0, -2.0]] * 2, [[-1.1, -1.9]] * 2,
          [[1, 1], [1, 1]]),
        c("mixed_batch", "A>0, A<0, A=0 rows; padding holds junk; both clip sides and inside",
          ["ClipActive", "NegativeAdvantage", "AdvantageZero", "MaskedToken"],
          [1.5, -0.7, 0.0], lt, ls, mask),
        c("lam_zero_is_grpo", "lam=0 gives A on every valid token", ["LamZero", "MaskedToken"],
          [1.5, -0.7, 0.0], lt, ls, mask, lam=0.0),
        c("teacher_equals_student", "logp_T == logp_S gives A", ["TeacherEqualsStudent", "MaskedToken"],
          [1.5, -0.7, 0.0], ls, ls, mask),
        c("lam_one_narrow_clip", "lam=1, eps_w=0.1", ["ClipActive", "CustomClip", "NegativeAdvantage",
          "MaskedToken", "AdvantageZero"], [1.5, -0.7, 0.0], lt, ls, mask, lam=1.0, eps_w=0.1),
        c("lam_one_wide_clip", "lam=1, eps_w=3: the lower clip (1-eps_w < 0) never binds, the upper one at 4 "
          "does; the sign still follows A", ["ClipActive", "CustomClip", "NegativeAdvantage", "MaskedToken",
          "AdvantageZero"], [1.5, -0.7, 0.0], lt, ls, mask, lam=1.0, eps_w=3.0),
        error_case("negative_eps_w", "eps_w must be >= 0",
                   {"adv": [1.0], "logp_teacher": [[-1.0]], "logp_student": [[-1.0]], "mask": [[1]]}, {"eps_w": -0.1}),
        error_case("shape_mismatch", "logp_teacher (1, 3) vs logp_student (1, 2)",
                   {"adv": [1.0], "logp_teacher": [[-1.0, -1.0, -1.0]], "logp_student": [[-1.0, -1.0]],
                    "mask": [[1, 1]]}, {}),
    ]


def opd_cases():
    ls = [[-0.2, -1.5, -3.0], [-0.7, -0.1, 5.0]]
    lt = [[-0.9, -1.0, -3.0], [-0.2, -2.1, -5.0]]
    mask = [[1, 1, 1], [1, 1, 0]]

    def c(id, comment, flags, ls, lt, mask, **kw):
        return case(id, comment, flags, {"logp_student": ls, "logp_teacher": lt, "mask": mask}, kw,
                    tolist(ref_opd(ls, lt, mask, **kw)))
    return [
        c("basic", "-(logp_S - logp_T); padding holds junk", ["MaskedToken", "NegativeAdvantage"],
          ls, lt, mask),
        c("coef_half", "coef=0.5 scales the reverse-KL advantage", ["CustomCoef", "MaskedToken"],
          ls, lt, mask, coef=0.5),
        c("student_overconfident", "student puts more mass than teacher: negative advantage",
          ["NegativeAdvantage"], [[-0.1]], [[-2.0]], [[1]]),
        c("equal", "teacher == student gives 0", ["TeacherEqualsStudent"], ls, ls, [[1, 1, 1], [1, 1, 1]]),
        error_case("shape_mismatch", "mask (2, 2) vs log-probs (2, 3)",
                   {"logp_student": ls, "logp_teacher": lt, "mask": [[1, 1], [1, 1]]}, {}),
    ]


def opsd_cases():
    ls = [[-0.2, -1.5, -3.0], [-0.7, -0.1, 5.0]]
    lt = [[-0.9, -1.0, -3.0], [-0.2, -2.1, -5.0]]
    mask = [[1, 1, 1], [1, 1, 0]]

    def c(id, comment, flags, ls, lt, mask):
        return case(id, comment, flags, {"logp_student": ls, "logp_teacher": lt, "mask": mask}, {},
                    tolist(ref_opsd(ls, lt, mask)))
    return [
        c("basic", "logp_T - logp_S; padding holds junk", ["MaskedToken", "NegativeAdvantage"], ls, lt, mask),
        c("teacher_more_confident", "privileged teacher more confident: positive advantage", [],
          [[-2.0]], [[-0.1]], [[1]]),
        c("equal", "teacher == student gives 0", ["TeacherEqualsStudent"], ls, ls, [[1, 1, 1], [1, 1, 1]]),
        error_case("shape_mismatch", "logp_teacher (2, 2) vs logp_student (2, 3)",
                   {"logp_student": ls, "logp_teacher": [[0.0, 0.0], [0.0, 0.0]], "mask": mask}, {}),
    ]


def jsd_cases():
    # B=2, T=2, V=4; token (1, 1) is padding and holds junk logits
    zs = [[[2.0, 0.5, -1.0, 0.0], [0.1, 0.2, 0.3, -0.4]],
          [[-1.0, 3.0, 0.0, 0.5], [50.0, -50.0, 0.0, 7.0]]]
    zt = [[[0.0, 1.5, -0.5, 1.0], [1.0, -2.0, 0.5, 0.0]],
          [[1.0, 1.0, 2.0, -3.0], [-9.0, 9.0, 1.0, 1.0]]]
    mask = [[1, 1], [1, 0]]

    def c(id, comment, flags, zs, zt, mask, **kw):
        return case(id, comment, flags, {"student_logits": zs, "teacher_logits": zt, "mask": mask}, kw,
                    tolist(ref_jsd(zs, zt, mask, **kw)))
    return [
        c("beta_half", "default beta=0.5, symmetric JSD", ["MaskedToken"], zs, zt, mask),
        c("beta_zero_forward_kl", "beta=0 is KL(T || S), forward", ["BetaEndpoint", "ForwardKL", "MaskedToken"],
          zs, zt, mask, beta=0.0),
        c("beta_one_reverse_kl", "beta=1 is KL(S || T), reverse", ["BetaEndpoint", "ReverseKL", "MaskedToken"],
          zs, zt, mask, beta=1.0),
        c("beta_0_1", "interior beta=0.1, not symmetric", ["MaskedToken"], zs, zt, mask, beta=0.1),
        c("beta_0_9", "interior beta=0.9, not symmetric", ["MaskedToken"], zs, zt, mask, beta=0.9),
        c("temperature_2", "tau=2 divides both logits; no tau^2 rescale", ["Temperature", "MaskedToken"],
          zs, zt, mask, temperature=2.0),
        c("temperature_half_forward", "tau=0.5 at beta=0", ["Temperature", "BetaEndpoint", "ForwardKL",
          "MaskedToken"], zs, zt, mask, beta=0.0, temperature=0.5),
        c("equal_distributions", "equal logits give 0", ["EqualDistributions"], zs, zs, [[1, 1], [1, 1]]),
        c("shifted_logits", "a constant logit shift is the same distribution: 0",
          ["EqualDistributions"], zs, tolist(np.asarray(zs) + 3.0), [[1, 1], [1, 1]], beta=0.3),
        c("vocab_3", "V=3, single token", ["SmallVocab"], [[[0.0, 1.0, 2.0]]], [[[2.0, 1.0, 0.0]]], [[1]], beta=0.25),
        error_case("vocab_mismatch", "student V=4, teacher V=3",
                   {"student_logits": [[[0.0, 0.0, 0.0, 0.0]]], "teacher_logits": [[[0.0, 0.0, 0.0]]],
                    "mask": [[1]]}, {}),
    ]


def kl_k3_cases():
    lp = [[-0.5, -1.0, -2.0], [-0.1, -3.0, -50.0]]
    lr = [[-0.7, -1.0, -0.5], [-2.0, -2.5, 50.0]]
    mask = [[1, 1, 1], [1, 1, 0]]

    def c(id, comment, flags, lp, lr, mask):
        return case(id, comment, flags, {"logp": lp, "logp_ref": lr, "mask": mask}, {},
                    tolist(ref_kl_k3(lp, lr, mask)))
    return [
        c("basic", "exp(d) - d - 1 with d = logp_ref - logp; padding holds junk", ["MaskedToken"], lp, lr, mask),
        c("equal", "logp == logp_ref gives 0", ["EqualInputs"], lp, lp, [[1, 1, 1], [1, 1, 1]]),
        error_case("shape_mismatch", "logp_ref (2, 2) vs logp (2, 3)",
                   {"logp": lp, "logp_ref": [[0.0, 0.0], [0.0, 0.0]], "mask": mask}, {}),
    ]


MODES = list(AGGREGATION_DEFS)


def aggregate_cases():
    # rows of different lengths and different means, so every mode gives a different value
    x = [[1.0, 2.0, 3.0, 100.0], [4.0, -100.0, -100.0, -100.0], [-1.0, 0.5, 2.0, 6.0]]
    mask = [[1, 1, 1, 0], [1, 0, 0, 0], [1, 1, 1, 1]]
    empty_row = [[1, 1, 1, 0], [0, 0, 0, 0], [1, 1, 1, 1]]
    cases = []
    for mode in MODES:
        cases.append(case(f"ragged_{mode}", f"{mode} over rows of length 3, 1, 4; padding holds junk",
                          ["MaskedToken"] + (["DrGRPO"] if mode.endswith("norm") else []),
                          {"per_token": x, "mask": mask}, {"mode": mode}, ref_aggregate(x, mask, mode)))
    for mode in MODES:
        cases.append(case(f"empty_row_{mode}", f"{mode} with a response that has no valid token",
                          ["EmptyResponse", "MaskedToken"] + (["DrGRPO"] if mode.endswith("norm") else []),
                          {"per_token": x, "mask": empty_row}, {"mode": mode}, ref_aggregate(x, empty_row, mode)))
    cases.append(case("default_mode", "no mode given: token-mean", ["MaskedToken"],
                      {"per_token": x, "mask": mask}, {}, ref_aggregate(x, mask)))
    cases.append(error_case("unknown_mode", "mode must be one of the four names",
                            {"per_token": x, "mask": mask}, {"mode": "seq-sum"}))
    return cases


def policy_loss_cases():
    # rho = exp(logp - logp_old) per token, chosen away from the clip edges 0.8 and 1.28:
    # row 0 (A>0):  rho 1.5 (clipped above), 0.5 (unclipped, below range), 1.1 (inside)
    # row 1 (A<0):  rho 0.5 (clipped below), 1.5 (unclipped, above range), 0.9 (inside), pad
    # row 2 (mixed per-token RLSD-like advantages): 1.4 with A<0, 0.7 with A>0, pads
    old = [[-1.0, -2.0, -0.5, -1.0], [-1.0, -0.3, -1.2, -4.0], [-0.8, -1.5, -1.0, -1.0]]
    ratios = [[1.5, 0.5, 1.1, 1.0], [0.5, 1.5, 0.9, 1.0], [1.4, 0.7, 1.0, 1.0]]
    logp = tolist(np.asarray(old) + np.log(np.asarray(ratios)))
    logp[1][3] = 30.0   # junk in padding: exp(30 - (-4)) would dominate if not masked
    adv = [[1.2, 1.2, 1.2, 0.0], [-0.8, -0.8, -0.8, 99.0], [-0.5, 2.0, 0.0, 0.0]]
    mask = [[1, 1, 1, 0], [1, 1, 1, 0], [1, 1, 0, 0]]
    inputs = {"logp": logp, "logp_old": old, "token_adv": adv, "mask": mask}
    policy_loss_cases.inputs = inputs   # reused by rlvr_opsd_cases
    cases = []
    for mode in MODES:
        loss, grad = ref_policy_loss(logp, old, adv, mask, mode=mode)
        cases.append(case(f"clip_both_sides_{mode}", f"{mode}; clip binds above (A>0) and below (A<0)",
                          ["ClipActive", "NegativeAdvantage", "MaskedToken"]
                          + (["DrGRPO"] if mode.endswith("norm") else []), inputs, {"mode": mode}, loss))
    loss, grad = ref_policy_loss(logp, old, adv, mask, eps_low=0.1, eps_high=0.1)
    cases.append(case("symmetric_clip", "eps_low = eps_high = 0.1 (no clip-higher)",
                      ["ClipActive", "NegativeAdvantage", "MaskedToken", "CustomClip"], inputs,
                      {"eps_low": 0.1, "eps_high": 0.1}, loss))
    loss, grad = ref_policy_loss(logp, old, adv, mask)
    cases.append(case("clip_both_sides_grad", "default mode; gradient is 0 where the clip binds",
                      ["ClipActive", "NegativeAdvantage", "MaskedToken", "Gradient"], inputs, {}, loss,
                      expected_grad={"logp": tolist(grad)}))
    on = {"logp": old, "logp_old": old, "token_adv": adv, "mask": mask}
    loss, grad = ref_policy_loss(old, old, adv, mask)
    cases.append(case("on_policy_rho_one", "rho = 1: value is -mean(Ahat), gradient is not zero",
                      ["OnPolicy", "NegativeAdvantage", "MaskedToken", "Gradient"], on, {}, loss,
                      expected_grad={"logp": tolist(grad)}))
    cases.append(error_case("unknown_mode", "mode must be one of the four names", inputs, {"mode": "mean"}))
    return cases


def rlvr_opsd_cases():
    # the policy-loss inputs above (clip binds on both sides) plus logits over a 3-token
    # vocabulary; padding holds junk logits that would change the JSD if not masked
    policy_loss_cases()
    pl = policy_loss_cases.inputs
    rng = np.random.default_rng(7)
    zs = rng.normal(size=(3, 4, 3)) * 2.0
    zt = rng.normal(size=(3, 4, 3)) * 2.0
    zs[1, 3] = [50.0, -50.0, 0.0]
    inputs = {**pl, "student_logits": tolist(zs), "teacher_logits": tolist(zt)}

    def expected(alpha, beta=0.5, mode="token-mean"):
        pg, _ = ref_policy_loss(pl["logp"], pl["logp_old"], pl["token_adv"], pl["mask"], mode=mode)
        return pg + alpha * ref_aggregate(ref_jsd(zs, zt, pl["mask"], beta=beta), pl["mask"], mode)
    return [
        case("alpha_zero_is_grpo", "alpha=0: GRPO's clipped surrogate alone",
             ["AlphaZero", "ClipActive", "NegativeAdvantage", "MaskedToken"], inputs, {"alpha": 0.0}, expected(0.0)),
        case("alpha_0.1", "alpha=0.1, JSD beta 0.5, token-mean for both terms",
             ["ClipActive", "NegativeAdvantage", "MaskedToken"], inputs, {"alpha": 0.1}, expected(0.1)),
        case("alpha_1_seq_mean", "alpha=1, seq-mean-token-mean for both terms",
             ["ClipActive", "NegativeAdvantage", "MaskedToken"], inputs,
             {"alpha": 1.0, "mode": "seq-mean-token-mean"}, expected(1.0, mode="seq-mean-token-mean")),
        case("alpha_0.3_reverse_kl", "alpha=0.3, beta=1: the distillation term is KL(S || T)",
             ["ClipActive", "NegativeAdvantage", "MaskedToken", "BetaEndpoint", "ReverseKL"], inputs,
             {"alpha": 0.3, "beta": 1.0}, expected(0.3, beta=1.0)),
        error_case("negative_alpha", "alpha must be >= 0", inputs, {"alpha": -0.1}),
    ]


def lam_schedule_cases():
    def c(id, comment, flags, step, **kw):
        return case(id, comment, flags, {"step": step}, kw, ref_lam_schedule(step, **kw))
    return [
        c("step_0", "lam0 at step 0", [], 0),
        c("step_25", "half way: lam0 / 2", [], 25),
        c("step_49", "last step before the end", [], 49),
        c("step_50", "0 at decay_steps", ["ScheduleEnd"], 50),
        c("step_500", "0 forever after", ["ScheduleEnd"], 500),
        c("released_script_60", "released script: 60 steps, step 15", ["CustomSchedule"], 15,
          lam0=0.5, decay_steps=60),
        c("lam0_one", "lam0=1, decay 10, step 3", ["CustomSchedule"], 3, lam0=1.0, decay_steps=10),
    ]


FILES = {
    "group_advantages": (group_advantages_cases, {
        "std": "unbiased, ddof=1", "eps": "1e-6, added to the std (not the variance)",
        "singleton_group": "A = 0 (verl: raw reward)", "zero_variance_group": "A = 0",
        "scale": "'group' = (R - mean) / (std + eps); 'none' = R - mean (Dr. GRPO)"}),
    "rlsd_token_advantages": (rlsd_cases, {
        "equation": "Ahat = A * ((1 - lam) + lam * clip(exp(sign(A) * (logp_T - logp_S)), 1 - eps_w, 1 + eps_w))",
        "sign_zero": "sign(0) = 0, so A = 0 gives Ahat = 0", "adv_shape": "(B,), broadcast over tokens"}),
    "opd_token_advantages": (opd_cases, {"equation": "Ahat = -coef * (logp_S - logp_T)"}),
    "opsd_token_advantages": (opsd_cases, {"equation": "Ahat = logp_T - logp_S"}),
    "generalized_jsd": (jsd_cases, {
        "equation": "beta*KL(T||M) + (1-beta)*KL(S||M), M = beta*T + (1-beta)*S, S/T = softmax(logits/tau)",
        "endpoints": "beta=0 -> KL(T||S) forward; beta=1 -> KL(S||T) reverse (TRL), unscaled",
        "temperature": "divides both logits; no tau^2 factor"}),
    "kl_k3": (kl_k3_cases, {"equation": "exp(logp_ref - logp) - (logp_ref - logp) - 1"}),
    "aggregate": (aggregate_cases, {"aggregation": AGGREGATION_DEFS}),
    "policy_loss": (policy_loss_cases, {
        "equation": "aggregate(-min(rho*A, clip(rho, 1-eps_low, 1+eps_high)*A)), rho = exp(logp - logp_old)",
        "defaults": {"eps_low": 0.2, "eps_high": 0.28, "mode": "token-mean"},
        "aggregation": AGGREGATION_DEFS,
        "gradient": "expected_grad holds d loss / d logp where given"}),
    "rlvr_opsd_loss": (rlvr_opsd_cases, {
        "equation": "policy_loss(logp, logp_old, A, mask) + alpha * aggregate(JSD_beta(S, T), mask), one mode for both",
        "defaults": {"beta": 0.5, "eps_low": 0.2, "eps_high": 0.28, "mode": "token-mean"},
        "alpha": "required; alpha = 0 is GRPO exactly"}),
    "lam_schedule": (lam_schedule_cases, {"equation": "lam0 * max(0, 1 - step / decay_steps)",
                                          "defaults": {"lam0": 0.5, "decay_steps": 50}}),
}


def dump(doc):
    """JSON with one line per case field: small, diffable, still plain JSON."""
    head = {k: v for k, v in doc.items() if k != "cases"}
    out = "{\n" + "".join(f' {json.dumps(k)}: {json.dumps(v)},\n' for k, v in head.items()
                           if k != "conventions")
    conv = ",\n".join(f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in head["conventions"].items())
    out += ' "conventions": {\n' + conv + "},\n"
    cases = []
    for c in doc["cases"]:
        fields = ",\n   ".join(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in c.items())
        cases.append("  {" + fields + "}")
    return out + ' "cases": [\n' + ",\n".join(cases) + "\n ]\n}\n"


def main():
    for function, (make, conventions) in FILES.items():
        doc = {"format_version": FORMAT_VERSION, "function": function,
               "conventions": {**COMMON, **conventions}, "cases": make()}
        ids = [c["id"] for c in doc["cases"]]
        assert len(ids) == len(set(ids)), f"duplicate case id in {function}"
        path = HERE / f"{function}.json"
        path.write_text(dump(doc))
        print(f"{path.name}: {len(ids)} cases")


if __name__ == "__main__":
    main()
