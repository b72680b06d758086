"""rlsd.py: the four post-training objectives as pure functions, then the on-policy loop.

The objectives are GRPO (RLVR), OPD (on-policy distillation from a larger teacher), OPSD
(on-policy self-distillation with privileged context) and RLSD (RLVR with self-distillation).
Every function below takes tensors and returns tensors; the equations and conventions are
those of docs/METHODS.md, and tests/vectors/*.json pins them with an independent numpy
reference.

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

import copy
import math
import time
from dataclasses import dataclass
from typing import Callable, Optional

import torch
import torch.nn.functional as F

import model
import verify

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
    lam = 0 or logp_T == logp_S gives GRPO's A bit for bit. With 0 <= lam <= 1 and any
    eps_w >= 0, Ahat/A lies in [1 - lam*min(eps_w, 1), 1 + lam*eps_w] and is positive (w > 0;
    at lam = 1 and eps_w >= 1 it is w itself, which only a float underflow can make 0), so
    sign(Ahat) = sign(A). eps_w >= 1 turns the lower clip off (docs/METHODS.md, "RLSD").
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
    if not eps_w >= 0.0:   # NaN fails too
        raise ValueError(f"eps_w must be >= 0, got {eps_w}")
    a = adv.detach()
    w = torch.clamp(rlsd_weight(a, logp_teacher, logp_student, mask), 1.0 - eps_w, 1.0 + eps_w)
    ahat = a * (1.0 + lam * (w - 1.0))
    return _zero_pad(ahat, mask)


def rlsd_weight(adv, logp_teacher, logp_student, mask):
    """RLSD's evidence weight before its clip: w_t = exp(sign(A) * sg(logp_T - logp_S))
    (Eq. 13-14), 1 on padding. adv: (B, 1) or (B, T); the rest (B, T). Returns (B, T)."""
    delta = _zero_pad(logp_teacher.detach() - logp_student.detach(), mask)    # (B, T)
    return torch.exp(torch.sign(adv.detach()) * delta)


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


def kl_divergence(p_logits, q_logits, mask, *, temperature=1.0):
    """KL(p || q) per token over the full vocabulary: sum_v p_v (log p_v - log q_v), with
    p = softmax(p_logits / tau) and q = softmax(q_logits / tau). It is generalized_jsd at
    beta = 1, named here so that a reader does not have to decode that convention.
    Gradient flows only through p_logits. logits (B, T, V); mask (B, T). Returns (B, T).
    """
    return generalized_jsd(p_logits, q_logits, mask, beta=1.0, temperature=temperature)


def kl_k3(logp, logp_ref, mask):
    """k3 estimator of KL(pi || pi_ref) per sampled token (Schulman), optional penalty.

        kl_t = exp(logp_ref - logp) - (logp_ref - logp) - 1   (>= 0)

    Added to the per-token loss as + beta * kl_t. Gradient flows through logp only.
    Computed as expm1(d) - d: exp(d) - d - 1 rounds to a tiny negative number when d is
    near 0, while expm1(d) >= d holds in floating point too, so the result is never < 0.
    All inputs (B, T). Returns (B, T).
    """
    _check_same_shape(("logp", logp), ("logp_ref", logp_ref), ("mask", mask))
    d = _zero_pad(logp_ref.detach() - logp, mask)
    return _zero_pad(torch.expm1(d) - d, mask)


# Aggregation modes, named as verl's core_algos.agg_loss (docs/METHODS.md, "Aggregation",
# says where verl 0.9.1's definitions differ). Each takes
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


def rlvr_opsd_loss(logp, logp_old, token_adv, mask, student_logits, teacher_logits, *, alpha,
                   beta=0.5, eps_low=0.2, eps_high=0.28, mode="token-mean"):
    """The dual objective (the RLSD paper's GRPO+OPSD baseline): GRPO's clipped surrogate
    plus alpha times OPSD's generalized JSD to the privileged self-teacher,

        loss = policy_loss(logp, logp_old, A, mask) + alpha * aggregate(JSD_beta(S, T), mask)

    both aggregated with the same mode (docs/METHODS.md, "RLVR + OPSD"). alpha = 0 is GRPO
    exactly; a large alpha approaches OPSD plus a reward term. token_adv is GRPO's A
    broadcast over tokens. logp, logp_old, token_adv, mask (B, T); logits (B, T, V).
    Gradient flows through logp and student_logits. Returns a scalar.
    """
    if not alpha >= 0.0:   # NaN fails too
        raise ValueError(f"alpha must be >= 0, got {alpha}")
    pg = policy_loss(logp, logp_old, token_adv, mask, eps_low=eps_low, eps_high=eps_high, mode=mode)
    return pg + alpha * aggregate(generalized_jsd(student_logits, teacher_logits, mask, beta=beta),
                                  mask, mode)


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
# One training step, the same for every method (train_step):
#
#   1. rollout       G samples per prompt from the student, rewards from the verifier
#   2. teacher pass  (OPD, OPSD, RLSD) a no-grad forward that scores the SAME sampled tokens:
#                    OPD's larger model on the plain prompt, or the student's own network
#                    with a privileged hint between prompt and response (OPSD, RLSD)
#   3. credit, loss  Method.credit gives every sampled token its credit Ahat_t, and
#                    Method.loss turns it into the loss: the clipped surrogate for RLVR, OPD
#                    and RLSD; OPSD's full-vocabulary JSD; GRPO's surrogate plus alpha times
#                    that JSD for RLVR + OPSD
#   4. update        one AdamW step with a short learning-rate warmup
#
# A method is its Method record: which teacher step 2 uses, and the two functions of step 3.
# train_step reads those fields and never a method's name.


@dataclass
class RLConfig:
    method: str = "rlsd"             # rlvr | opd | opsd | rlsd | rlvr+opsd
    group_size: int = 8              # G: samples per prompt; train_step gets P problems, B = P * G
    lr: float = 3e-5                 # the default experiment's rate, chosen on train reward (docs/LOG.md)
    warmup: int = 10                 # steps of linear LR warmup: a fresh Adam without one loses
                                     # accuracy in the first steps (docs/LOG.md)
    grad_clip: float = 1.0
    max_new_tokens: int = 56
    temperature: float = 1.0
    eps_low: float = 0.2
    eps_high: float = 0.28
    agg: str = "token-mean"
    hint: str = "answer"             # privileged context of the self-teacher: answer | solution | none
    teacher_weights: str = "default"  # initial | snapshot | live; default: OPSD initial, RLSD snapshot
    refresh_every: int = 10          # snapshot refresh period (RLSD paper: 10)
    lam0: float = 0.5                # RLSD mixing factor, falling linearly to 0 ...
    lam_decay_steps: int = 50        # ... over this many steps
    lam_kind: str = "linear"         # linear (the paper's schedule) | constant (lam0 throughout)
    eps_w: float = 0.2
    opd_coef: float = 1.0
    opsd_loss: str = "jsd"           # jsd (full vocabulary, OPSD default) | sampled (credit into
                                     # the surrogate)
    jsd_beta: float = 0.5
    alpha: float = 0.1               # rlvr+opsd: weight of the JSD term beside GRPO's surrogate
    alpha_leak_threshold: float = 0.0  # rlvr+opsd: if > 0, alpha halves whenever the leak rate of the
                                     # step's own samples (hint citations + answers without work) exceeds it


@dataclass
class Rollout:
    problems: list          # B problems, group-contiguous: each prompt repeated G times
    contexts: list          # B token-id lists the samples were drawn from (BOS + prompt)
    tokens: torch.Tensor    # (B, T) sampled response tokens, EOS included, PAD after
    mask: torch.Tensor      # (B, T) 1.0 on response tokens (EOS included), 0.0 on padding
    rewards: torch.Tensor   # (B,) verifier reward, 1.0 or 0.0
    checks: list            # B verify.StepCheck: diagnostics only, never a training signal


@torch.no_grad()
def rollout(policy, problems, cfg, generator):
    """Sample G responses for each problem (temperature cfg.temperature, KV cache) and score
    them with the verifier."""
    policy.eval()
    dev = policy.wte.weight.device
    group = [p for p in problems for _ in range(cfg.group_size)]
    contexts = [verify.prompt_ids(p) for p in group]
    tokens = policy.generate(contexts, cfg.max_new_tokens, eos_id=verify.EOS, pad_id=verify.PAD,
                             temperature=cfg.temperature, generator=generator)
    # a token is part of the response if no EOS came before it (EOS itself included)
    eos_before = torch.cumsum((tokens == verify.EOS).long(), dim=1) - (tokens == verify.EOS).long()
    mask = (eos_before == 0).float()
    T = int(mask.sum(1).max().item())            # drop columns that are padding in every row
    tokens, mask = tokens[:, :T], mask[:, :T]
    texts = [verify.response_text(r) for r in tokens.tolist()]
    rewards = torch.tensor([verify.reward(p, t) for p, t in zip(group, texts)], device=dev)
    return Rollout(group, contexts, tokens, mask, rewards,
                   [verify.check_steps(p, t) for p, t in zip(group, texts)])


def response_logits(net, contexts, tokens):
    """Logits that score each row's response tokens after its own context.

    contexts: B lists of token ids (BOS + prompt, or BOS + prompt + hint); tokens (B, T).
    Row b is laid out as context_b followed directly by its response (no padding in
    between, so positions are right), right-padded; out[b, t] are the logits at the
    position that predicts tokens[b, t]. Returns (B, T, V).
    """
    B, T = tokens.shape
    lens = torch.tensor([len(c) for c in contexts], device=tokens.device)
    L = int(lens.max()) + T
    idx = torch.full((B, L), verify.PAD, dtype=torch.long, device=tokens.device)
    for b, c in enumerate(contexts):
        idx[b, :len(c)] = torch.tensor(c, device=tokens.device)
    cols = lens.view(-1, 1) + torch.arange(T, device=tokens.device)      # (B, T): where the response sits
    idx.scatter_(1, cols, tokens)
    logits = net(idx[:, :-1])                                            # (B, L-1, V)
    return logits.gather(1, (cols - 1).unsqueeze(-1).expand(B, T, logits.shape[-1]))


@dataclass
class Step:
    """What a method sees: the rollout, the student's scores with gradient, and the
    teacher's scores (None for RLVR)."""
    roll: Rollout
    logits: torch.Tensor            # (B, T, V) student, with grad
    logp: torch.Tensor              # (B, T) student log-prob of each sampled token, with grad
    teacher_logits: torch.Tensor    # (B, T, V) or None
    logp_teacher: torch.Tensor      # (B, T) or None
    step: int
    alpha: float = 0.0              # rlvr+opsd's current JSD weight


# ---- step 3: each method's per-token credit, (B, T), 0 on padding ----

def rlvr_credit(s, cfg):
    """GRPO: every token of a response gets its group advantage."""
    adv = group_advantages(s.roll.rewards, cfg.group_size)
    return adv[:, None] * s.roll.mask


def opd_credit(s, cfg):
    """OPD: the negative sampled-token reverse KL to the larger teacher."""
    return opd_token_advantages(s.logp.detach(), s.logp_teacher, s.roll.mask, coef=cfg.opd_coef)


def opsd_credit(s, cfg):
    """OPSD, sampled-token form: the privileged self-teacher's log-ratio, no reward. It is
    what OPSD trains on with opsd_loss="sampled"; by default OPSD trains on its JSD
    instead (opsd_objective), and this credit is only logged."""
    return opsd_token_advantages(s.logp.detach(), s.logp_teacher, s.roll.mask)


def rlsd_credit(s, cfg):
    """RLSD: the group advantage sets the sign, the privileged self-teacher rescales each token."""
    adv = group_advantages(s.roll.rewards, cfg.group_size)
    lam = rlsd_lam(s.step, cfg)
    return rlsd_token_advantages(adv, s.logp_teacher, s.logp.detach(), s.roll.mask, lam=lam, eps_w=cfg.eps_w)


def rlsd_lam(step, cfg):
    """RLSD's mixing factor at this step: the linear schedule, or lam0 held constant."""
    if cfg.lam_kind == "constant":
        return cfg.lam0
    return lam_schedule(step, lam0=cfg.lam0, decay_steps=cfg.lam_decay_steps)


# ---- the loss each method minimizes, (Step, RLConfig, credit) -> scalar with gradient ----

def surrogate_loss(s, cfg, credit):
    """The clipped surrogate on the step's credit: RLVR, OPD and RLSD (RLSD Eq. 17)."""
    return policy_loss(s.logp, s.logp.detach(), credit, s.roll.mask, eps_low=cfg.eps_low,
                       eps_high=cfg.eps_high, mode=cfg.agg)


def opsd_objective(s, cfg, credit):
    """OPSD's own loss (its default, opsd_loss="jsd"): match the privileged self-teacher over
    the whole vocabulary, generalized JSD per token, aggregated like the surrogate. With
    opsd_loss="sampled" its sampled-token credit goes through the surrogate instead."""
    if cfg.opsd_loss == "sampled":
        return surrogate_loss(s, cfg, credit)
    jsd = generalized_jsd(s.logits, s.teacher_logits, s.roll.mask, beta=cfg.jsd_beta)
    return aggregate(jsd, s.roll.mask, cfg.agg)


def dual_loss(s, cfg, credit):
    """RLVR + OPSD: GRPO's surrogate on its credit plus alpha times OPSD's JSD, in one loss."""
    return rlvr_opsd_loss(s.logp, s.logp.detach(), credit, s.roll.mask, s.logits, s.teacher_logits,
                          alpha=s.alpha, beta=cfg.jsd_beta, eps_low=cfg.eps_low, eps_high=cfg.eps_high,
                          mode=cfg.agg)


# ---- per-step numbers only some methods have ----

def rlsd_metrics(s, cfg):
    """How often RLSD's evidence weight hits its clip, among tokens with a GRPO signal, and
    this step's lam."""
    mask = s.roll.mask
    adv = group_advantages(s.roll.rewards, cfg.group_size)[:, None]
    w = rlsd_weight(adv, s.logp_teacher, s.logp, mask)
    clipped = ((w < 1 - cfg.eps_w) | (w > 1 + cfg.eps_w)) & (adv != 0) & mask.bool()
    active = ((adv != 0) & mask.bool()).sum().clamp(min=1)
    return {"rlsd_clip_frac": (clipped.sum() / active).item(), "lam": rlsd_lam(s.step, cfg)}


def alpha_metrics(s, cfg):
    """The dual objective's JSD weight at this step (after the adaptive rule)."""
    return {"alpha": s.alpha}


@dataclass(frozen=True)
class Method:
    """A method is its credit, its teacher and its loss; the loop has no other branch."""
    credit: Callable                       # (Step, RLConfig) -> (B, T) per-token credit
    teacher: Optional[str] = None          # None | "separate" (a larger model) | "self" (hinted student)
    teacher_weights: Optional[str] = None  # a self-teacher's default weights: initial | snapshot
    loss: Callable = surrogate_loss        # (Step, RLConfig, credit) -> scalar loss
    uses_alpha: bool = False               # weighs a JSD term by alpha, halved on leaks if asked
    metrics: Optional[Callable] = None     # (Step, RLConfig) -> extra per-step numbers


METHODS = {
    "rlvr": Method(rlvr_credit),
    "opd": Method(opd_credit, teacher="separate"),
    "opsd": Method(opsd_credit, teacher="self", teacher_weights="initial", loss=opsd_objective),
    "rlsd": Method(rlsd_credit, teacher="self", teacher_weights="snapshot", metrics=rlsd_metrics),
    # GRPO's credit, trained through the dual loss; the logged credit is GRPO's
    "rlvr+opsd": Method(rlvr_credit, teacher="self", teacher_weights="initial", loss=dual_loss,
                        uses_alpha=True, metrics=alpha_metrics),
}


@dataclass
class RLState:
    cfg: RLConfig
    policy: torch.nn.Module
    teacher: torch.nn.Module         # None for RLVR; may be `policy` itself ("live")
    optimizer: torch.optim.Optimizer
    generator: torch.Generator       # sampling randomness, seeded
    weights: str = None              # initial | snapshot | live (self-teachers)
    step: int = 0
    method: Method = None            # METHODS[cfg.method]
    alpha: float = 0.0               # rlvr+opsd's JSD weight now (cfg.alpha, halved on leaks)


def check_config(cfg):
    """Raise one ValueError naming the first setting of an RLConfig that is out of range."""
    if cfg.method not in METHODS:
        raise ValueError(f"unknown method {cfg.method!r}; choose one of {', '.join(METHODS)}")
    choices = {"opsd_loss": ("jsd", "sampled"), "hint": verify.HINTS, "lam_kind": ("linear", "constant"),
               "teacher_weights": ("default", "initial", "snapshot", "live"), "agg": AGGREGATIONS}
    for key, allowed in choices.items():
        if getattr(cfg, key) not in allowed:
            raise ValueError(f"unknown {key} {getattr(cfg, key)!r}; choose one of {', '.join(allowed)}")
    ranges = {"lam0": (0.0, 1.0), "jsd_beta": (0.0, 1.0), "eps_w": (0.0, math.inf), "alpha": (0.0, math.inf),
              "alpha_leak_threshold": (0.0, 1.0), "lr": (0.0, 1.0), "temperature": (1e-6, math.inf),
              "opd_coef": (-math.inf, math.inf), "eps_low": (0.0, 1.0), "eps_high": (0.0, math.inf)}
    for key, (lo, hi) in ranges.items():
        v = getattr(cfg, key)
        if not (isinstance(v, (int, float)) and lo <= v <= hi and math.isfinite(v)):
            raise ValueError(f"{key} must be a finite number in [{lo}, {hi}], got {v!r}")
    for key in ("group_size", "lam_decay_steps", "refresh_every", "max_new_tokens"):
        if not (isinstance(getattr(cfg, key), int) and getattr(cfg, key) >= 1):
            raise ValueError(f"{key} must be a whole number >= 1, got {getattr(cfg, key)!r}")


def make_state(student, cfg, opd_teacher=None, seed=0):
    """Wrap a (copied) student for training with one method; pick its teacher weights."""
    check_config(cfg)
    if student.cfg.vocab_size != verify.VOCAB_SIZE:
        raise ValueError(f"the student's vocab_size is {student.cfg.vocab_size}; "
                         f"the task needs {verify.VOCAB_SIZE}")
    policy = copy.deepcopy(student)
    method = METHODS[cfg.method]
    weights = None
    if method.teacher == "separate":
        if opd_teacher is None:
            raise ValueError("OPD needs a teacher model")
        teacher = opd_teacher.eval()
    elif method.teacher == "self":
        weights = method.teacher_weights if cfg.teacher_weights == "default" else cfg.teacher_weights
        teacher = policy if weights == "live" else copy.deepcopy(student).eval()
    else:
        teacher = None
    for p in (teacher.parameters() if teacher is not None and teacher is not policy else []):
        p.requires_grad_(False)
    opt = torch.optim.AdamW(policy.parameters(), lr=cfg.lr, betas=(0.9, 0.99), weight_decay=0.0)
    gen = torch.Generator(device=student.wte.weight.device).manual_seed(seed)
    return RLState(cfg, policy, teacher, opt, gen, weights, method=method, alpha=cfg.alpha)


class NonFiniteError(RuntimeError):
    pass


def train_step(state, problems):
    """One on-policy step of state.cfg.method on these P problems; returns its metrics.
    Everything that changes the state between steps happens here, in this order."""
    cfg, policy, step = state.cfg, state.policy, state.step
    t0 = time.perf_counter()

    # 1. rollout
    roll = rollout(policy, problems, cfg, state.generator)
    t1 = time.perf_counter()

    # 2. teacher pass, from a snapshot refreshed first when one is due
    if state.weights == "snapshot" and step > 0 and step % cfg.refresh_every == 0:
        state.teacher.load_state_dict(policy.state_dict())
    teacher = teacher_pass(state, roll)
    t2 = time.perf_counter()

    # 3. credit and loss; the adaptive dual objective first turns its JSD down on a leaky step
    leak = verify.leak_rate(roll.checks)
    state.alpha = adapted_alpha(state, state.alpha, leak)
    loss, s, credit = step_loss(state, roll, teacher)

    # 4. the update
    for g in state.optimizer.param_groups:
        g["lr"] = cfg.lr * min(1.0, (step + 1) / max(1, cfg.warmup))
    state.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(policy.parameters(), cfg.grad_clip)
    if not (torch.isfinite(loss) and torch.isfinite(grad_norm)):
        raise NonFiniteError(f"{cfg.method} step {step}: loss {loss.item()}, grad norm {grad_norm.item()}")
    state.optimizer.step()
    t3 = time.perf_counter()
    state.step += 1

    m = step_metrics(s, credit, state.method, cfg)
    m.update(leak=leak, loss=loss.item(), grad_norm=grad_norm.item(), t_rollout=t1 - t0, t_teacher=t2 - t1,
             t_update=t3 - t2)
    return m


def adapted_alpha(state, alpha, leak):
    """The dual objective's JSD weight for a step that starts at `alpha`: halved when the
    step's own samples leak more than cfg.alpha_leak_threshold (0 turns the rule off)."""
    cfg = state.cfg
    if state.method.uses_alpha and cfg.alpha_leak_threshold > 0 and leak > cfg.alpha_leak_threshold:
        return alpha / 2
    return alpha


@torch.no_grad()
def teacher_pass(state, roll):
    """Step 2: the teacher scores the same sampled tokens, without gradient: OPD's larger
    model on the plain prompt, a self-teacher with its hint. Returns (teacher_logits,
    logp_teacher), or (None, None) for a method without a teacher."""
    method = state.method
    if method.teacher is None:
        return None, None
    hint = "none" if method.teacher == "separate" else state.cfg.hint
    state.teacher.eval()
    contexts = [verify.prompt_ids(p, hint) for p in roll.problems]
    teacher_logits = response_logits(state.teacher, contexts, roll.tokens).float()
    return teacher_logits, model.token_logprobs(teacher_logits, roll.tokens)


def step_loss(state, roll, teacher):
    """Step 3, a pure function of the state and the step's samples: the student's scores,
    each token's credit and the loss to minimize (with gradient). teacher: what
    teacher_pass returned. Returns (loss, Step, credit). The one-update probe (frontier.py)
    calls it too, so that its gradients are exactly the loop's; figure 2 (density.py)
    calls the same Method.credit on a Step built the same way."""
    cfg, policy, method = state.cfg, state.policy, state.method
    policy.train()
    logits = response_logits(policy, roll.contexts, roll.tokens)  # the student: the prompt alone
    logp = model.token_logprobs(logits, roll.tokens)
    s = Step(roll, logits, logp, *teacher, state.step, alpha=state.alpha)
    credit = method.credit(s, cfg)                                 # (B, T), detached
    return method.loss(s, cfg, credit), s, credit


def within_response_std(token_adv, mask):
    """How much the credit varies inside a response (population std over its tokens),
    averaged over the responses that get any credit at all: 0 for GRPO by construction,
    and not diluted by the all-equal groups that get no signal."""
    cnt = mask.sum(1).clamp(min=1)
    mu = (token_adv * mask).sum(1) / cnt
    std = ((((token_adv - mu[:, None]) ** 2) * mask).sum(1) / cnt).sqrt()
    credited = ((token_adv != 0) & mask.bool()).any(1)
    return (std[credited].mean().item() if credited.any() else 0.0)


@torch.no_grad()
def step_metrics(s, credit, method, cfg):
    """The per-step numbers of docs/METHODS.md, "The experiment's conventions"."""
    roll = s.roll
    mask, n = roll.mask, roll.mask.sum().clamp(min=1)
    checks = roll.checks
    rate = lambda f: sum(map(f, checks)) / len(checks)
    m = dict(
        step=s.step,
        reward=roll.rewards.mean().item(),
        resp_len=mask.sum(1).mean().item(),
        faithful=rate(lambda c: c.faithful), lucky=rate(lambda c: c.lucky),
        cites_hint=rate(lambda c: c.cites_hint), no_work=rate(lambda c: c.no_work),
        adv_mean=((credit * mask).sum() / n).item(),
    )
    m["adv_within_std"] = within_response_std(credit, mask)
    if s.logp_teacher is not None:
        logits, logp = s.logits.detach(), s.logp.detach()
        m["kl_sampled"] = (((logp - s.logp_teacher) * mask).sum() / n).item()   # estimate of KL(S||T)
        m["kl_full"] = (kl_divergence(logits.float(), s.teacher_logits, mask).sum() / n).item()  # KL(S||T)
    if method.metrics is not None:
        m.update(method.metrics(s, cfg))
    return m
