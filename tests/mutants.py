"""Deliberately wrong implementations: the conformance vectors must catch every one.

Each mutant is a fresh copy of rlsd.py with one or two public functions replaced, so that
internal calls (policy_loss -> aggregate) see the replacement too. `make_mutant(name)`
returns the module; MUTANTS maps name -> (what is wrong, {function: builder(module)}).
"""

import importlib.util
from pathlib import Path

import torch

RLSD_PATH = Path(__file__).resolve().parents[1] / "rlsd.py"


def population_std(mod):
    def group_advantages(rewards, group_size, *, scale="group", eps=1e-6):
        r = rewards.detach().to(torch.float64).reshape(-1, group_size)
        c = r - r.mean(dim=1, keepdim=True)
        if scale == "group":
            c = c / (r.std(dim=1, keepdim=True, correction=0) + eps)      # ddof=0: wrong
        return c.reshape(-1)
    return group_advantages


def verl_singleton(mod):
    # a legitimate alternative convention: a group of one keeps its raw reward
    orig = mod.group_advantages

    def group_advantages(rewards, group_size, *, scale="group", eps=1e-6):
        if group_size == 1 and scale == "group":
            return rewards.detach().to(torch.float64).clone()
        return orig(rewards, group_size, scale=scale, eps=eps)
    return group_advantages


def jsd_endpoints_swapped(mod):
    orig = mod.generalized_jsd

    def generalized_jsd(student_logits, teacher_logits, mask, *, beta=0.5, temperature=1.0):
        if beta in (0.0, 1.0):
            beta = 1.0 - beta                  # forward <-> reverse KL: wrong
        return orig(student_logits, teacher_logits, mask, beta=beta, temperature=temperature)
    return generalized_jsd


def jsd_no_temperature(mod):
    orig = mod.generalized_jsd

    def generalized_jsd(student_logits, teacher_logits, mask, *, beta=0.5, temperature=1.0):
        return orig(student_logits, teacher_logits, mask, beta=beta)
    return generalized_jsd


def rlsd_clip_on_product(mod):
    def rlsd_token_advantages(adv, logp_teacher, logp_student, mask, *, lam=0.5, eps_w=0.2):
        a = adv.detach()[:, None]
        w = torch.exp(torch.sign(a) * (logp_teacher - logp_student).detach())
        ahat = (1 - lam) * a + lam * torch.clamp(a * w, 1 - eps_w, 1 + eps_w)   # wrong
        return ahat * mask
    return rlsd_token_advantages


def mask_ignored_aggregate(mod):
    orig = mod.aggregate

    def aggregate(per_token, mask, mode="token-mean"):
        return orig(per_token, torch.ones_like(mask), mode)
    return aggregate


def mask_ignored_rlsd(mod):
    orig = mod.rlsd_token_advantages

    def rlsd_token_advantages(adv, logp_teacher, logp_student, mask, *, lam=0.5, eps_w=0.2):
        return orig(adv, logp_teacher, logp_student, torch.ones_like(mask), lam=lam, eps_w=eps_w)
    return rlsd_token_advantages


def token_mean_over_sequences(mod):
    orig = mod.aggregate

    def aggregate(per_token, mask, mode="token-mean"):
        if mode == "token-mean":
            mode = "seq-mean-token-mean"       # averages sequences, not tokens: wrong
        return orig(per_token, mask, mode)
    return aggregate


def no_clip_higher(mod):
    orig = mod.policy_loss

    def policy_loss(logp, logp_old, token_adv, mask, *, eps_low=0.2, eps_high=0.28, mode="token-mean"):
        return orig(logp, logp_old, token_adv, mask, eps_low=eps_low, eps_high=eps_low, mode=mode)
    return policy_loss


def opd_sign_flipped(mod):
    orig = mod.opd_token_advantages

    def opd_token_advantages(logp_student, logp_teacher, mask, *, coef=1.0):
        return -orig(logp_student, logp_teacher, mask, coef=coef)
    return opd_token_advantages


def k3_direction_swapped(mod):
    orig = mod.kl_k3

    def kl_k3(logp, logp_ref, mask):
        return orig(logp_ref, logp, mask)
    return kl_k3


def schedule_off_by_one(mod):
    def lam_schedule(step, *, lam0=0.5, decay_steps=50):
        return float(lam0 * max(0.0, 1.0 - (step + 1) / decay_steps))
    return lam_schedule


def dual_alpha_on_surrogate(mod):
    def rlvr_opsd_loss(logp, logp_old, token_adv, mask, student_logits, teacher_logits, *, alpha,
                       beta=0.5, eps_low=0.2, eps_high=0.28, mode="token-mean"):
        pg = mod.policy_loss(logp, logp_old, token_adv, mask, eps_low=eps_low, eps_high=eps_high, mode=mode)
        jsd = mod.aggregate(mod.generalized_jsd(student_logits, teacher_logits, mask, beta=beta), mask, mode)
        return alpha * pg + jsd                  # alpha weights the wrong term
    return rlvr_opsd_loss


MUTANTS = {
    "population_std": ("group std with ddof=0", {"group_advantages": population_std}),
    "verl_singleton": ("singleton group keeps its raw reward (a convention, not a bug)",
                       {"group_advantages": verl_singleton}),
    "jsd_endpoints_swapped": ("beta=0 gives KL(S||T) and beta=1 gives KL(T||S)",
                              {"generalized_jsd": jsd_endpoints_swapped}),
    "jsd_no_temperature": ("temperature ignored", {"generalized_jsd": jsd_no_temperature}),
    "rlsd_clip_on_product": ("clip applied to A*w instead of w",
                             {"rlsd_token_advantages": rlsd_clip_on_product}),
    "mask_ignored": ("padding counted in aggregation and in RLSD advantages",
                     {"aggregate": mask_ignored_aggregate, "rlsd_token_advantages": mask_ignored_rlsd}),
    "token_mean_over_sequences": ("token-mean averages per sequence first",
                                  {"aggregate": token_mean_over_sequences}),
    "no_clip_higher": ("eps_high ignored (symmetric clip)", {"policy_loss": no_clip_higher}),
    "opd_sign_flipped": ("OPD advantage +(logp_S - logp_T)", {"opd_token_advantages": opd_sign_flipped}),
    "k3_direction_swapped": ("k3 with logp and logp_ref swapped", {"kl_k3": k3_direction_swapped}),
    "schedule_off_by_one": ("lam schedule starts one step late", {"lam_schedule": schedule_off_by_one}),
    "dual_alpha_on_surrogate": ("rlvr+opsd: alpha weights the surrogate instead of the JSD",
                                {"rlvr_opsd_loss": dual_alpha_on_surrogate}),
}


def make_mutant(name, skip_flags=()):
    """A fresh module built from rlsd.py with mutant `name` patched in."""
    spec = importlib.util.spec_from_file_location(f"rlsd_mutant_{name}", RLSD_PATH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    for function, build in MUTANTS[name][1].items():
        setattr(mod, function, build(mod))
    mod.CONFORMANCE_SKIP_FLAGS = set(skip_flags)
    return mod
