"""density.py: figure 2 is computed by the loop's own credit, and OPSD's push is the
closed-form gradient of its JSD (docs/METHODS.md, "OPSD")."""
import torch

import density
import experiment
import model
import rlsd
import verify


def tiny(n_embd, seed):
    torch.manual_seed(seed)
    return model.GPT(model.GPTConfig(vocab_size=verify.VOCAB_SIZE, n_layer=2, n_head=2, n_embd=n_embd))


def test_figure_2_credit_is_what_train_step_weights_at_step_0(monkeypatch):
    """Every row of figure 2 but OPSD's JSD push equals the credit train_step passes on at
    step 0 of that arm, on the same samples; a change to a method's credit in the loop
    therefore shows in the figure."""
    student, teacher = tiny(32, 0), tiny(64, 1)
    # an untrained model earns reward 0 everywhere: reward short responses, so groups are mixed
    monkeypatch.setattr(rlsd.verify, "reward", lambda p, t: 1.0 if len(t) < 12 else 0.0)
    problems = verify.make_problems("train", 3, seed=5)
    roll = rlsd.rollout(student, problems, rlsd.RLConfig(group_size=4, max_new_tokens=24),
                        torch.Generator().manual_seed(0))
    assert 0 < roll.rewards.mean() < 1
    credits = density.density_credits(student, teacher, roll, 4)
    assert set(credits) == set(density.DENSITY_ARMS)
    seen = []
    real_metrics = rlsd.step_metrics
    monkeypatch.setattr(rlsd, "rollout", lambda *a, **k: roll)   # train_step samples these very responses
    monkeypatch.setattr(rlsd, "step_metrics", lambda s, credit, *a: seen.append(credit) or real_metrics(s, credit, *a))
    for row, arm in density.DENSITY_ARMS.items():
        name, over = experiment.parse_arm(arm)
        state = rlsd.make_state(student, rlsd.RLConfig(method=name, group_size=4, **over), opd_teacher=teacher)
        rlsd.train_step(state, problems)
        if row != "opsd_jsd":
            assert torch.allclose(seen[-1], credits[row], rtol=1e-6, atol=1e-7), row
    assert not torch.allclose(credits["rlsd"], credits["rlvr"])   # the rows do differ
    assert not torch.allclose(credits["opsd_jsd"], credits["opsd"])


def test_jsd_push_is_the_closed_form_gradient():
    # docs/METHODS.md, "OPSD": -dJSD/dz[y] = ((1-beta)/tau) S_y (KL(S||M) - log(S_y/M_y)), tau = 1
    g = torch.Generator().manual_seed(0)
    zs, zt = torch.randn(3, 4, 7, generator=g, dtype=torch.float64), torch.randn(3, 4, 7, generator=g, dtype=torch.float64)
    y = torch.randint(7, (3, 4), generator=g)
    mask = torch.ones(3, 4, dtype=torch.float64)
    mask[1, 3] = 0
    for beta in (0.2, 0.5, 0.8):
        S, T = zs.softmax(-1), zt.softmax(-1)
        M = beta * T + (1 - beta) * S
        kl_sm = (S * (S / M).log()).sum(-1)
        Sy, My = S.gather(-1, y[..., None])[..., 0], M.gather(-1, y[..., None])[..., 0]
        expected = (1 - beta) * Sy * (kl_sm - (Sy / My).log()) * mask
        got = density.jsd_push(zs, zt, y, mask, beta=beta)
        assert torch.allclose(got.double(), expected, atol=1e-6)


