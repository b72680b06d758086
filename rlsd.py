"""rlsd.py: the four post-training objectives as pure functions, and (later) the on-policy loop.

The objectives are GRPO (RLVR), OPD (on-policy distillation from a larger teacher), OPSD
(on-policy self-distillation with privileged context) and RLSD (RLVR with self-distillation).
Every function below takes tensors and returns tensors; the equations and conventions are
those of METHODS.md, and tests/vectors/*.json pins them with an independent numpy reference.

What this reference simplifies, and why:

GRPO
 1. Binary verifier reward only, no format or length reward: the comparison is about where
    the per-token credit comes from, not about reward shaping.
 2. One policy update per batch (fully on-policy), so rho = 1 and the clip never binds in
    the default recipe; the clipped surrogate is kept so the loss matches PPO/DAPO code.
 3. No KL penalty and no entropy bonus by default (DAPO, Dr. GRPO); `kl_k3` is here as an
    option only.
 4. A singleton group gets A = 0 (verl gives it its raw reward): one sample has no baseline.
OPD
 5. The sampled-token reverse KL is the advantage (tinker-cookbook), no discount, so OPD
    reuses the GRPO surrogate unchanged; full-vocabulary generalized JSD is an option.
 6. The teacher is frozen and scored under no_grad; no teacher top-k or logit caching.
OPSD
 7. Full-vocabulary generalized JSD (beta = 0.5) over response tokens, gradient through the
    student logits only, as in the released OPSD code; no reward enters the update.
 8. Teacher weights default to the fixed initial model; refreshing them is the loop's job.
RLSD
 9. Eq. 13-15 as released, with the linear lam schedule of the paper (50 steps; the
    released script uses 60). After the schedule ends RLSD is exactly GRPO.
10. The teacher is the same network with the reference answer as privileged context, a
    snapshot refreshed every 10 steps; that bookkeeping belongs to the loop, not here.
"""

import math

import torch
import torch.nn.functional as F

# ---- objectives (pure functions) ----
# Shapes: B = P * G responses (group-contiguous), T response tokens, V vocabulary.
# Token tensors are (B, T); mask is 1 on response tokens and 0 on padding (bool or float).


def _check_same_shape(*named):
    shape = named[0][1].shape
    for name, t in named[1:]:
        if t.shape != shape:
            raise ValueError(f"{name} has shape {tuple(t.shape)}, expected {tuple(shape)} "
                             f"(same as {named[0][0]})")


def _valid(mask):
    return mask.bool()


def _zero_pad(x, mask):
    # torch.where, not x * mask: padding may hold inf or nan, and inf * 0 = nan
    return torch.where(_valid(mask), x, torch.zeros_like(x))


def group_advantages(rewards, group_size, *, scale="group", eps=1e-6):
    """GRPO group advantage (DeepSeekMath; RLSD step 1), one value per response.

        A_i = (R_i - mean_g R) / (std_g R + eps)     scale="group"
        A_i =  R_i - mean_g R                        scale="none" (Dr. GRPO)

    std is the unbiased one (ddof=1, as torch.std) and eps is added to the std, not to the
    variance. Rows k*G .. k*G+G-1 share prompt k. A group whose rewards are all equal gives
    A = 0. A group of size 1 gives A = 0 here; verl gives a singleton its raw reward instead.
    rewards: (B,). Returns (B,), detached.
    """
    if rewards.dim() != 1:
        raise ValueError(f"rewards must be 1-D (B,), got shape {tuple(rewards.shape)}")
    if int(group_size) != group_size or group_size < 1:
        raise ValueError(f"group_size must be a positive integer, got {group_size!r}")
    if rewards.numel() % group_size != 0:
        raise ValueError(f"B={rewards.numel()} is not divisible by group_size={group_size}")
    if scale not in ("group", "none"):
        raise ValueError(f"unknown scale {scale!r}; expected 'group' or 'none'")
    r = rewards.detach()
    if not r.is_floating_point():
        r = r.to(torch.get_default_dtype())
    r = r.reshape(-1, group_size)                                   # (P, G)
    centered = r - r.mean(dim=1, keepdim=True)
    if scale == "group":
        if group_size == 1:
            return torch.zeros_like(rewards, dtype=r.dtype)      # no baseline, no signal
        centered = centered / (r.std(dim=1, keepdim=True) + eps)
    return centered.reshape(-1)


def rlsd_token_advantages(adv, logp_teacher, logp_student, mask, *, lam=0.5, eps_w=0.2):
    """RLSD per-token credit: the verifier picks the direction, the teacher the magnitude.

        Delta_t = sg(logp_T - logp_S)                          (RLSD Eq. 13)
        w_t     = exp(sign(A) * Delta_t)                       (Eq. 14)
        Ahat_t  = A * ((1 - lam) + lam * clip(w_t, 1 - eps_w, 1 + eps_w))   (Eq. 15, with
                                                               the released mixing factor)

    w_t is P_T/P_S when A > 0 and P_S/P_T when A < 0. The clip acts on the weight, never on
    the product A * w. Computed as A * (1 + lam * (clip(w) - 1)), the same number, so that
    lam = 0 or logp_T == logp_S gives GRPO's A bit for bit. With 0 <= lam <= 1 and
    0 <= eps_w < 1, Ahat/A lies in [1 - lam*eps_w, 1 + lam*eps_w], so sign(Ahat) = sign(A).
    adv: (B,) (broadcast over tokens) or (B, T); the rest (B, T). Returns (B, T), detached.
    """
    _check_same_shape(("logp_teacher", logp_teacher), ("logp_student", logp_student),
                      ("mask", mask))
    if adv.dim() == 1:
        adv = adv[:, None]
    if adv.dim() != 2 or adv.shape[0] != mask.shape[0] or adv.shape[1] not in (1, mask.shape[1]):
        raise ValueError(f"adv has shape {tuple(adv.shape)}; expected (B,) or (B, T) with "
                         f"(B, T) = {tuple(mask.shape)}")
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"lam must lie in [0, 1], got {lam}")
    if not 0.0 <= eps_w < 1.0:
        raise ValueError(f"eps_w must lie in [0, 1), got {eps_w}")
    a = adv.detach()
    delta = _zero_pad(logp_teacher.detach() - logp_student.detach(), mask)    # (B, T)
    w = torch.exp(torch.sign(a) * delta)
    w = torch.clamp(w, 1.0 - eps_w, 1.0 + eps_w)
    ahat = a * (1.0 + lam * (w - 1.0))
    return _zero_pad(ahat, mask)


def opd_token_advantages(logp_student, logp_teacher, mask, *, coef=1.0):
    """OPD per-token advantage: the negative sampled-token reverse KL (tinker-cookbook).

        Ahat_t = -coef * sg(logp_S - logp_T)

    Fed to the same clipped surrogate as GRPO (RLSD Eq. 17 with a separate teacher), no
    discount. All inputs (B, T). Returns (B, T), detached.
    """
    _check_same_shape(("logp_student", logp_student), ("logp_teacher", logp_teacher),
                      ("mask", mask))
    diff = logp_student.detach() - logp_teacher.detach()
    return _zero_pad(-coef * diff, mask)


def opsd_token_advantages(logp_student, logp_teacher, mask):
    """OPSD sampled-token option: Ahat_t = sg(logp_T - logp_S) = Delta_t (RLSD Eq. 13, 17).

    The teacher is the same network given privileged context. No reward enters. The OPSD
    default is the full-vocabulary `generalized_jsd`; this is the sampled-token variant.
    All inputs (B, T). Returns (B, T), detached.
    """
    return opd_token_advantages(logp_student, logp_teacher, mask, coef=1.0)


def generalized_jsd(student_logits, teacher_logits, mask, *, beta=0.5, temperature=1.0):
    """Generalized JSD per token over the full vocabulary (GKD; OPSD default, OPD option).

        S = softmax(z_S / tau),  T = softmax(z_T / tau),  M = beta * T + (1 - beta) * S
        JSD_beta = beta * KL(T || M) + (1 - beta) * KL(S || M)      for 0 < beta < 1

    Endpoints follow TRL and are the plain, unscaled KLs (the interior formula tends to 0
    there, so they are special cases):
        beta = 0 -> KL(T || S), the FORWARD KL (teacher-weighted, mode-covering)
        beta = 1 -> KL(S || T), the REVERSE KL (student-weighted, mode-seeking)
    Symmetric in (S, T) only at beta = 0.5. The temperature divides both sets of logits
    and the result is not rescaled by tau^2. Gradient flows only through student_logits.
    logits: (B, T, V); mask (B, T). Returns (B, T).
    """
    if student_logits.shape != teacher_logits.shape or student_logits.dim() != 3:
        raise ValueError(f"logits must both be (B, T, V); got {tuple(student_logits.shape)} "
                         f"and {tuple(teacher_logits.shape)}")
    if mask.shape != student_logits.shape[:2]:
        raise ValueError(f"mask has shape {tuple(mask.shape)}, expected "
                         f"{tuple(student_logits.shape[:2])}")
    if not 0.0 <= beta <= 1.0:
        raise ValueError(f"beta must lie in [0, 1], got {beta}")
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    log_s = F.log_softmax(student_logits / temperature, dim=-1)              # (B, T, V)
    log_t = F.log_softmax(teacher_logits.detach() / temperature, dim=-1)     # (B, T, V)

    def kl(log_p, log_q):                      # KL(p || q) over the vocabulary, (B, T)
        return (log_p.exp() * (log_p - log_q)).sum(dim=-1)

    if beta == 0.0:
        out = kl(log_t, log_s)
    elif beta == 1.0:
        out = kl(log_s, log_t)
    else:
        # log M computed in log space, stable when a probability underflows
        log_m = torch.logsumexp(torch.stack([log_t + math.log(beta), log_s + math.log(1.0 - beta)]), dim=0)
        out = beta * kl(log_t, log_m) + (1.0 - beta) * kl(log_s, log_m)
    return _zero_pad(out, mask)


def kl_k3(logp, logp_ref, mask):
    """k3 estimator of KL(pi || pi_ref) per sampled token (Schulman), optional penalty.

        kl_t = exp(logp_ref - logp) - (logp_ref - logp) - 1   (>= 0)

    Added to the per-token loss as + beta * kl_t. Gradient flows through logp only.
    All inputs (B, T). Returns (B, T).
    """
    _check_same_shape(("logp", logp), ("logp_ref", logp_ref), ("mask", mask))
    d = _zero_pad(logp_ref.detach() - logp, mask)
    return _zero_pad(torch.exp(d) - d - 1.0, mask)


# Aggregation modes, named and defined as verl's core_algos.agg_loss does. Each takes
# (per_token (B, T), mask (B, T) float) and returns a scalar; an empty batch gives 0.

def _token_mean(x, m):
    # sum over every valid token of the batch / their count (DAPO; the default)
    return (x * m).sum() / m.sum().clamp(min=1.0)


def _seq_mean_token_mean(x, m):
    # original GRPO: mean per response, then mean over responses with a valid token
    count = m.sum(dim=1)                                           # (B,)
    has_tokens = (count > 0).to(x.dtype)
    per_seq = (x * m).sum(dim=1) / count.clamp(min=1.0)
    return (per_seq * has_tokens).sum() / has_tokens.sum().clamp(min=1.0)


def _seq_mean_token_sum(x, m):
    # sum per response, then mean over all B responses (verl divides by B here)
    return (x * m).sum(dim=1).mean()


def _seq_mean_token_sum_norm(x, m):
    # Dr. GRPO: sum over all valid tokens / padded length T (TRL's dr_grpo also divides by B)
    return (x * m).sum() / x.shape[1]


AGGREGATIONS = {
    "token-mean": _token_mean,
    "seq-mean-token-mean": _seq_mean_token_mean,
    "seq-mean-token-sum": _seq_mean_token_sum,
    "seq-mean-token-sum-norm": _seq_mean_token_sum_norm,
}


def aggregate(per_token, mask, mode="token-mean"):
    """Reduce a (B, T) per-token loss to a scalar with one of AGGREGATIONS (verl names).

        token-mean               sum_{b,t} m*x / sum_{b,t} m
        seq-mean-token-mean      mean over responses with m > 0 of (sum_t m*x / sum_t m)
        seq-mean-token-sum       (1/B) sum_b sum_t m*x
        seq-mean-token-sum-norm  (1/T) sum_{b,t} m*x    (T = padded length; TRL's dr_grpo
                                                         divides by B * T instead)
    Padding never contributes, whatever it holds. A batch with no valid token gives 0.
    """
    if mode not in AGGREGATIONS:
        raise ValueError(f"unknown aggregation mode {mode!r}; expected one of {sorted(AGGREGATIONS)}")
    _check_same_shape(("per_token", per_token), ("mask", mask))
    if per_token.dim() != 2:
        raise ValueError(f"per_token must be (B, T), got shape {tuple(per_token.shape)}")
    m = _valid(mask).to(per_token.dtype)
    return AGGREGATIONS[mode](_zero_pad(per_token, mask), m)


def policy_loss(logp, logp_old, token_adv, mask, *, eps_low=0.2, eps_high=0.28, mode="token-mean"):
    """PPO clipped surrogate with DAPO clip-higher, shared by all four methods (RLSD Eq. 17).

        rho_t = exp(logp_t - logp_old_t)
        l_t   = -min(rho_t * Ahat_t, clip(rho_t, 1 - eps_low, 1 + eps_high) * Ahat_t)
        loss  = aggregate(l, mask, mode)

    Ahat_t is group_advantages broadcast (GRPO), rlsd_token_advantages (RLSD), or
    opd/opsd_token_advantages. With one update per batch logp_old = sg(logp), so rho = 1:
    the loss VALUE is -mean(Ahat) (token-mean; -aggregate(Ahat) in general), a number that
    does not depend on the parameters and is often ~0 for GRPO, but its GRADIENT is
    -mean(Ahat * grad logp), which is not zero. A flat loss curve is expected; watch the
    reward instead. Gradient flows through logp only (logp_old and token_adv detached).
    All inputs (B, T). Returns a scalar.
    """
    _check_same_shape(("logp", logp), ("logp_old", logp_old), ("token_adv", token_adv),
                      ("mask", mask))
    log_ratio = _zero_pad(logp - logp_old.detach(), mask)
    a = _zero_pad(token_adv.detach(), mask)
    rho = torch.exp(log_ratio)
    surrogate = torch.minimum(rho * a, torch.clamp(rho, 1.0 - eps_low, 1.0 + eps_high) * a)
    return aggregate(-surrogate, mask, mode)


def lam_schedule(step, *, lam0=0.5, decay_steps=50):
    """RLSD mixing factor: lam0 at step 0, linearly down to 0 at decay_steps, then 0.

        lam(step) = lam0 * max(0, 1 - step / decay_steps)

    Paper: lam0 = 0.5 over 50 steps (the released script uses 60). Returns a float.
    """
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    if decay_steps <= 0:
        raise ValueError(f"decay_steps must be positive, got {decay_steps}")
    return float(lam0 * max(0.0, 1.0 - step / decay_steps))


# ---- the on-policy loop ----
