"""ms-swift 4.6.0 (swift.rl_core.advantage) behind the suite's names:
rlsd_token_advantages (apply_rlsd_reweight), group_advantages (compute_advantages),
opsd_token_advantages (compute_teacher_logratio) and opd_token_advantages
(expand_advantage_to_per_token, its OPD-RL teacher term, on a zero base advantage).

    RLSD_IMPL=integrations.adapters.ms_swift python -m pytest tests/test_conformance.py

Only in its own environment (ms-swift pins trl<1.0 and transformers<5.20), built by
integrations/run_oracle.sh. Each function converts arguments and results only; the math
is ms-swift's own. Conventions: docs/METHODS.md ("RLVR: GRPO", "OPD", "OPSD", "RLSD").
"""

import torch
from swift.rl_core.advantage import (apply_rlsd_reweight, compute_advantages,
                                     compute_teacher_logratio, expand_advantage_to_per_token)

CONFORMANCE_SKIP_FLAGS = {
    # compute_advantages has no eps argument: it adds a fixed 1e-4 to the std. The
    # default-eps cases are run all the same, against that constant.
    "CustomEps",
    # none of these functions validate: shape mismatches end in torch's RuntimeError,
    # and scale="batch" is one of ms-swift's own modes (batch std), not an error.
    "InvalidInput",
}


def rlsd_token_advantages(adv, logp_teacher, logp_student, mask, *, lam=0.5, eps_w=0.2):
    return apply_rlsd_reweight(adv, mask, logp_teacher, logp_student, lam=lam, clip_range=eps_w)


def group_advantages(rewards, group_size, *, scale="group"):
    """One reward function of weight 1; "group" and "none" are ms-swift's scale_rewards names."""
    adv, _rewards = compute_advantages(rewards[:, None], torch.ones(1, dtype=rewards.dtype),
                                       group_size, advantage_estimator="grpo", scale_rewards=scale)
    return adv


def opsd_token_advantages(logp_student, logp_teacher, mask):
    return compute_teacher_logratio(logp_teacher, logp_student, mask)


def opd_token_advantages(logp_student, logp_teacher, mask, *, coef=1.0):
    """base advantage 0 + coef * (logp_T - logp_S): ms-swift's OPD-RL term alone."""
    zero = torch.zeros(mask.shape[0], dtype=logp_student.dtype)
    return expand_advantage_to_per_token(zero, mask, logp_teacher, logp_student, teacher_kl_coef=coef)
