"""verl 0.9.1 (verl.trainer.ppo.core_algos) behind the suite's names: group_advantages,
aggregate, policy_loss and kl_k3.

    RLSD_IMPL=integrations.adapters.verl_core python -m pytest tests/test_conformance.py

Only in the environment integrations/run_oracle.sh builds. Each function turns the
suite's arguments (tests/vectors/README.md) into verl's call and verl's result back; the
math is verl's own. The conventions compared are those of docs/METHODS.md.
"""

import numpy as np
import torch
from verl.trainer.ppo import core_algos
from verl.workers.config.actor import ActorConfig

CONFORMANCE_SKIP_FLAGS = {
    # compute_grpo_outcome_advantage gives a group of one the mean 0 and the std 1, so
    # A = R / (1 + eps); docs/METHODS.md ("RLVR: GRPO") gives it A = 0.
    "SingletonGroup",
    # agg_loss's seq-mean-token-sum divides by the rows that have a valid token (its
    # global_batch_size defaults to that count); docs/METHODS.md ("Aggregation") by all B.
    "EmptyResponse",
    # verl does not validate: it groups rows by an index array, so "B not divisible by G"
    # cannot be said to it, and kl_penalty broadcasts (or raises RuntimeError) on a shape
    # mismatch. agg_loss does raise ValueError on an unknown mode; this flag skips that too.
    "InvalidInput",
}


def group_advantages(rewards, group_size, *, scale="group", eps=1e-6):
    """compute_grpo_outcome_advantage on one token per response holding its reward,
    rows k*G .. k*G+G-1 sharing the index k (verl's uid of the prompt)."""
    norm_by_std = {"group": True, "none": False}[scale]    # verl's norm_adv_by_std_in_grpo
    index = np.arange(rewards.shape[0]) // group_size
    token_rewards = rewards[:, None].clone()
    adv, _returns = core_algos.compute_grpo_outcome_advantage(
        token_rewards, torch.ones_like(token_rewards), index,
        epsilon=eps, norm_adv_by_std_in_grpo=norm_by_std)
    return adv[:, 0]


def aggregate(per_token, mask, mode="token-mean"):
    """agg_loss with verl's defaults: one data-parallel rank, global counts from this batch."""
    return core_algos.agg_loss(per_token, mask, mode)


def policy_loss(logp, logp_old, token_adv, mask, *, eps_low=0.2, eps_high=0.28, mode="token-mean"):
    """compute_policy_loss_vanilla (verl's "vanilla" PPO loss, dual clip at its default
    clip_ratio_c = 3) with clip_ratio_low/high = eps_low/eps_high."""
    config = ActorConfig(strategy="fsdp", rollout_n=1, ppo_micro_batch_size_per_gpu=1,
                         clip_ratio=eps_low, clip_ratio_low=eps_low, clip_ratio_high=eps_high)
    loss, _metrics = core_algos.compute_policy_loss_vanilla(
        logp_old, logp, token_adv, mask, loss_agg_mode=mode, config=config)
    return loss


def kl_k3(logp, logp_ref, mask):
    """kl_penalty(..., "k3") (verl's "low_var_kl"), per token. verl leaves padding to
    agg_loss, so the suite's "0 at padding" is applied here."""
    kl = core_algos.kl_penalty(logp, logp_ref, "k3")
    return torch.where(mask.bool(), kl, torch.zeros_like(kl))
