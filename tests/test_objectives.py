"""Invariants of the four objectives (docs/METHODS.md), gradients, properties, and mutants.

The JSON vectors (test_conformance.py) pin values; this file pins what must hold for every
input: signs, bounds, exact reductions to GRPO, where gradients flow, and that the vectors
are strong enough to catch known bugs (tests/mutants.py).
"""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import rlsd
from conformance_adapter import failing_cases
from mutants import MUTANTS, make_mutant

F64 = torch.float64
SETTINGS = settings(max_examples=60, deadline=None)


def randn(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=F64)


def ones(*shape):
    return torch.ones(*shape, dtype=F64)


# ---- RLSD: worked case and invariants ----

def test_rlsd_worked_case():
    ahat = rlsd.rlsd_token_advantages(torch.tensor([1.0, -1.0], dtype=F64),
                                      torch.full((2, 1), -0.5, dtype=F64),
                                      torch.full((2, 1), -1.0, dtype=F64), ones(2, 1),
                                      lam=0.5, eps_w=0.2)
    assert ahat[:, 0].tolist() == pytest.approx([1.1, -0.9], abs=1e-12)


def _rlsd_inputs(seed, B=6, T=5):
    adv = randn(B, seed=seed) * 2
    adv[0] = 0.0
    lt, ls = randn(B, T, seed=seed + 1) - 1, randn(B, T, seed=seed + 2) - 1
    mask = ones(B, T)
    mask[1, 3:] = 0
    return adv, lt, ls, mask


@pytest.mark.parametrize("lam,eps_w", [(0.5, 0.2), (1.0, 0.2), (0.3, 0.5), (1.0, 0.9), (1.0, 3.0), (0.5, 1.0)])
def test_rlsd_sign_bounds_and_zero_advantage(lam, eps_w):
    adv, lt, ls, mask = _rlsd_inputs(1)
    ahat = rlsd.rlsd_token_advantages(adv, lt, ls, mask, lam=lam, eps_w=eps_w)
    a = adv[:, None].expand_as(ahat)
    valid = mask.bool() & (a != 0)
    assert torch.equal(torch.sign(ahat[valid]), torch.sign(a[valid]))
    ratio = ahat[valid] / a[valid]
    assert ratio.min() >= 1 - lam * min(eps_w, 1) - 1e-12 and ratio.max() <= 1 + lam * eps_w + 1e-12
    assert torch.all(ahat[0] == 0)                      # A = 0 -> Ahat = 0
    assert torch.all(ahat[~mask.bool()] == 0)           # padding -> 0


def test_rlsd_lam_zero_is_exactly_grpo():
    adv, lt, ls, mask = _rlsd_inputs(2)
    ahat = rlsd.rlsd_token_advantages(adv, lt, ls, mask, lam=0.0)
    assert torch.equal(ahat, adv[:, None] * mask)


@given(lam=st.floats(0.0, 1.0), eps_w=st.floats(0.0, 5.0), seed=st.integers(0, 1000))
@SETTINGS
def test_rlsd_teacher_equals_student_is_exactly_grpo(lam, eps_w, seed):
    adv, _, ls, mask = _rlsd_inputs(seed)
    ahat = rlsd.rlsd_token_advantages(adv, ls.clone(), ls, mask, lam=lam, eps_w=eps_w)
    assert torch.equal(ahat, adv[:, None] * mask)


@given(a=st.floats(-5, 5).filter(lambda x: abs(x) > 1e-6),
       lt=st.floats(-20, 0), ls=st.floats(-20, 0),
       lam=st.floats(0.0, 1.0), eps_w=st.floats(0.0, 5.0))
@SETTINGS
def test_rlsd_ratio_inside_bounds(a, lt, ls, lam, eps_w):
    ahat = rlsd.rlsd_token_advantages(torch.tensor([a], dtype=F64), torch.tensor([[lt]], dtype=F64),
                                      torch.tensor([[ls]], dtype=F64), ones(1, 1), lam=lam, eps_w=eps_w)
    r = (ahat / a).item()
    assert 1 - lam * min(eps_w, 1) - 1e-12 <= r <= 1 + lam * eps_w + 1e-12   # eps_w >= 1: no lower clip
    assert r > 0
    assert math.copysign(1, ahat.item()) == math.copysign(1, a)


def test_rlsd_no_gradient_through_ahat():
    adv, lt, ls, mask = _rlsd_inputs(3)
    adv, lt, ls = (x.clone().requires_grad_(True) for x in (adv, lt, ls))
    ahat = rlsd.rlsd_token_advantages(adv, lt, ls, mask)
    assert not ahat.requires_grad


def test_rlsd_padding_may_hold_nan_or_inf():
    adv, lt, ls, mask = _rlsd_inputs(4)
    lt[~mask.bool()] = float("nan")
    ls[~mask.bool()] = float("inf")
    ahat = rlsd.rlsd_token_advantages(adv, lt, ls, mask)
    assert torch.isfinite(ahat).all() and torch.all(ahat[~mask.bool()] == 0)


# ---- GRPO group advantages ----

@given(rewards=st.lists(st.sampled_from([0.0, 1.0]), min_size=2, max_size=24),
       g=st.integers(2, 8), scale=st.sampled_from(["group", "none"]))
@SETTINGS
def test_group_advantages_sum_to_zero_per_group(rewards, g, scale):
    rewards = rewards[: len(rewards) // g * g]
    if not rewards:
        return
    a = rlsd.group_advantages(torch.tensor(rewards, dtype=F64), g, scale=scale)
    assert a.view(-1, g).sum(dim=1).abs().max() < 1e-9


def test_group_advantages_equal_rewards_and_singletons_give_zero():
    assert torch.all(rlsd.group_advantages(torch.tensor([1.0, 1.0, 0.0, 0.0]), 2) == 0)
    assert torch.all(rlsd.group_advantages(torch.tensor([1.0, 0.0, 1.0]), 1) == 0)


def test_group_advantages_detached():
    r = torch.tensor([1.0, 0.0, 0.0, 1.0], requires_grad=True)
    assert not rlsd.group_advantages(r, 2).requires_grad


@pytest.mark.parametrize("call", [
    lambda: rlsd.group_advantages(torch.ones(5), 2),
    lambda: rlsd.group_advantages(torch.ones(4), 2, scale="batch"),
    lambda: rlsd.aggregate(torch.ones(2, 3), torch.ones(2, 3), mode="mean"),
    lambda: rlsd.policy_loss(torch.ones(2, 3), torch.ones(2, 3), torch.ones(2, 3), torch.ones(2, 3), mode="x"),
    lambda: rlsd.rlsd_token_advantages(torch.ones(2), torch.ones(2, 3), torch.ones(2, 2), torch.ones(2, 3)),
    lambda: rlsd.rlsd_token_advantages(torch.ones(3), torch.ones(2, 3), torch.ones(2, 3), torch.ones(2, 3)),
    lambda: rlsd.opd_token_advantages(torch.ones(2, 3), torch.ones(2, 3), torch.ones(3, 2)),
    lambda: rlsd.generalized_jsd(torch.ones(1, 2, 4), torch.ones(1, 2, 3), torch.ones(1, 2)),
    lambda: rlsd.kl_k3(torch.ones(2, 3), torch.ones(2), torch.ones(2, 3)),
])
def test_bad_input_raises_value_error(call):
    with pytest.raises(ValueError):
        call()


# ---- generalized JSD ----

def _kl(log_p, log_q):
    return (log_p.exp() * (log_p - log_q)).sum(-1)


logits = st.lists(st.floats(-8, 8), min_size=3, max_size=5)


@given(zs=logits, data=st.data(), tau=st.floats(0.25, 4.0))
@SETTINGS
def test_jsd_properties(zs, data, tau):
    zt = data.draw(st.lists(st.floats(-8, 8), min_size=len(zs), max_size=len(zs)))
    s, t, m = torch.tensor([[zs]], dtype=F64), torch.tensor([[zt]], dtype=F64), ones(1, 1)
    jsd = lambda a, b, beta: rlsd.generalized_jsd(a, b, m, beta=beta, temperature=tau).item()  # noqa: E731
    ls, lt = torch.log_softmax(s / tau, -1), torch.log_softmax(t / tau, -1)
    assert jsd(s, s, 0.5) == pytest.approx(0.0, abs=1e-12)                        # equal inputs
    assert jsd(s, t, 0.5) == pytest.approx(jsd(t, s, 0.5), rel=1e-9, abs=1e-12)   # symmetric at 0.5
    assert jsd(s, t, 0.0) == pytest.approx(_kl(lt, ls).item(), rel=1e-9, abs=1e-12)  # forward KL(T||S)
    assert jsd(s, t, 1.0) == pytest.approx(_kl(ls, lt).item(), rel=1e-9, abs=1e-12)  # reverse KL(S||T)
    beta = data.draw(st.floats(0.01, 0.99))
    assert jsd(s, t, beta) == pytest.approx(jsd(t, s, 1 - beta), rel=1e-9, abs=1e-12)
    assert jsd(s, t, beta) >= -1e-12


@pytest.mark.parametrize("beta", [0.0, 0.1, 0.3, 0.7, 0.9, 1.0])
def test_jsd_not_symmetric_away_from_half(beta):
    s = torch.tensor([[[3.0, 0.0, -1.0]]], dtype=F64)
    t = torch.tensor([[[0.0, 0.5, 0.4]]], dtype=F64)
    m = ones(1, 1)
    a = rlsd.generalized_jsd(s, t, m, beta=beta).item()
    b = rlsd.generalized_jsd(t, s, m, beta=beta).item()
    assert abs(a - b) > 1e-3


@pytest.mark.parametrize("beta,tau", [(0.0, 1.0), (0.3, 1.0), (0.5, 2.0), (1.0, 0.5)])
def test_jsd_gradcheck_wrt_student_logits(beta, tau):
    s = randn(2, 2, 3, seed=5).requires_grad_(True)
    t = randn(2, 2, 3, seed=6)
    mask = ones(2, 2)
    mask[1, 1] = 0
    assert torch.autograd.gradcheck(
        lambda x: rlsd.generalized_jsd(x, t, mask, beta=beta, temperature=tau), (s,))


# ---- policy loss ----

def _policy_inputs():
    # log-ratios chosen so every rho sits at least 0.05 away from the clip edges 0.8, 1.28
    old = randn(3, 4, seed=7) - 1.0
    ratios = torch.tensor([[1.5, 0.5, 1.1, 1.0], [0.5, 1.5, 0.9, 1.0], [1.4, 0.7, 1.0, 1.2]], dtype=F64)
    adv = torch.tensor([[1.2] * 4, [-0.8] * 4, [-0.5, 2.0, 0.3, 0.3]], dtype=F64)
    mask = ones(3, 4)
    mask[0, 3] = mask[1, 3] = 0
    return old + ratios.log(), old, adv, mask


@pytest.mark.parametrize("mode", list(rlsd.AGGREGATIONS))
def test_policy_loss_gradcheck(mode):
    logp, old, adv, mask = _policy_inputs()
    assert torch.autograd.gradcheck(
        lambda x: rlsd.policy_loss(x, old, adv, mask, mode=mode), (logp.requires_grad_(True),))


def test_policy_loss_on_policy_value_is_minus_mean_adv_but_gradient_is_not_zero():
    _, old, adv, mask = _policy_inputs()
    logp = old.clone().requires_grad_(True)
    loss = rlsd.policy_loss(logp, old, adv, mask)
    assert loss.item() == pytest.approx(-(adv * mask).sum().item() / mask.sum().item(), abs=1e-12)
    loss.backward()
    assert torch.allclose(logp.grad, -adv * mask / mask.sum())
    assert logp.grad.abs().sum() > 0


# ---- where gradients go ----

def _teacher_grads(objective):
    """Run one objective with every input requiring grad; return (output, teacher grads)."""
    B, T, V = 4, 3, 5
    mask = ones(B, T)
    mask[0, 2] = 0
    s_logits, t_logits = randn(B, T, V, seed=8), randn(B, T, V, seed=9)
    lp_s, lp_t = randn(B, T, seed=10) - 1, randn(B, T, seed=11) - 1
    adv = torch.tensor([1.0, -1.0, 0.5, 0.0], dtype=F64)
    leaves = dict(s_logits=s_logits, t_logits=t_logits, lp_s=lp_s, lp_t=lp_t, adv=adv)
    leaves = {k: v.clone().requires_grad_(True) for k, v in leaves.items()}
    L = leaves
    out = {
        "rlsd": lambda: rlsd.rlsd_token_advantages(L["adv"], L["lp_t"], L["lp_s"], mask),
        "opd": lambda: rlsd.opd_token_advantages(L["lp_s"], L["lp_t"], mask),
        "opsd": lambda: rlsd.opsd_token_advantages(L["lp_s"], L["lp_t"], mask),
        "jsd": lambda: rlsd.generalized_jsd(L["s_logits"], L["t_logits"], mask),
        "k3": lambda: rlsd.kl_k3(L["lp_s"], L["lp_t"], mask),
        "policy": lambda: rlsd.policy_loss(L["lp_s"], L["lp_t"], L["lp_t"] * 2, mask),
    }[objective]()
    if out.requires_grad:
        out.sum().backward()
    return out, leaves


@pytest.mark.parametrize("objective", ["rlsd", "opd", "opsd", "jsd", "k3", "policy"])
def test_no_gradient_reaches_the_teacher(objective):
    out, leaves = _teacher_grads(objective)
    assert leaves["t_logits"].grad is None and leaves["lp_t"].grad is None and leaves["adv"].grad is None
    if objective in ("rlsd", "opd", "opsd"):
        assert not out.requires_grad                    # advantages are detached
    else:
        student = leaves["s_logits"] if objective == "jsd" else leaves["lp_s"]
        assert student.grad is not None and student.grad.abs().sum() > 0


# ---- aggregation, k3, schedule ----

def test_every_output_is_zero_on_padding():
    mask = ones(2, 3)
    mask[1, 1:] = 0
    junk = torch.tensor([[0.1, 0.2, 0.3], [0.4, float("inf"), float("nan")]], dtype=F64)
    lp = randn(2, 3, seed=12) - 1
    for out in (rlsd.kl_k3(junk, lp, mask), rlsd.opd_token_advantages(junk, lp, mask),
                rlsd.opsd_token_advantages(lp, junk, mask)):
        assert torch.isfinite(out).all() and torch.all(out[~mask.bool()] == 0)
    for mode in rlsd.AGGREGATIONS:
        assert math.isfinite(rlsd.aggregate(junk, mask, mode).item())


def test_aggregate_with_no_valid_token_is_zero():
    for mode in rlsd.AGGREGATIONS:
        assert rlsd.aggregate(ones(2, 3), torch.zeros(2, 3, dtype=F64), mode).item() == 0.0


@given(lp=st.floats(-20, 0), lr=st.floats(-20, 0))
@SETTINGS
def test_kl_k3_nonnegative(lp, lr):
    out = rlsd.kl_k3(torch.tensor([[lp]], dtype=F64), torch.tensor([[lr]], dtype=F64), ones(1, 1))
    assert out.item() >= 0.0


def test_kl_k3_is_not_negative_near_zero():
    # exp(d) - d - 1 gives -1.1e-16 here (found by hypothesis in a fresh environment)
    lp = torch.tensor([[-9.646128222375691e-15, -1e-12, 1e-9]], dtype=F64)
    assert (rlsd.kl_k3(lp, torch.zeros_like(lp), ones(1, 3)) >= 0).all()


def test_lam_schedule():
    lams = [rlsd.lam_schedule(s) for s in range(80)]
    assert lams[0] == 0.5 and lams[25] == pytest.approx(0.25) and lams[50] == 0.0
    assert all(a >= b for a, b in zip(lams, lams[1:]))
    assert all(lam == 0.0 for lam in lams[50:])
    assert rlsd.lam_schedule(0, lam0=0.5, decay_steps=60) == 0.5
    assert isinstance(rlsd.lam_schedule(3), float)


# ---- the oracle must catch bugs ----

def test_reference_passes_every_vector():
    assert failing_cases(rlsd) == []


@pytest.mark.parametrize("name", list(MUTANTS))
def test_vectors_catch_mutant(name):
    failures = failing_cases(make_mutant(name))
    assert failures, f"no vector catches mutant {name!r}: {MUTANTS[name][0]}"


def test_declared_convention_is_skipped():
    # verl's singleton convention passes once it is declared, and only the flagged case differs
    assert failing_cases(make_mutant("verl_singleton", {"SingletonGroup"})) == []
    caught = failing_cases(make_mutant("verl_singleton"))
    assert [(fn, cid) for fn, cid, _ in caught] == [("group_advantages", "singleton_groups")]
