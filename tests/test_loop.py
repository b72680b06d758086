"""The on-policy loop in rlsd.py: every method steps, RLSD(lam=0) == RLVR, alignment."""
import copy

import pytest
import torch

import model
import rlsd
import verify


def tiny(n_embd=32, seed=0):
    torch.manual_seed(seed)
    return model.GPT(model.GPTConfig(vocab_size=verify.VOCAB_SIZE, n_layer=2, n_head=2, n_embd=n_embd))


@pytest.fixture(scope="module")
def models():
    return tiny(), tiny(64, seed=1)


PROBS = verify.make_problems("train", 12, seed=5)


def cfg(method, **kw):
    kw.setdefault("group_size", 4)
    kw.setdefault("max_new_tokens", 24)
    kw.setdefault("lr", 1e-3)
    return rlsd.RLConfig(method=method, **kw)


@pytest.mark.parametrize("method", list(rlsd.METHODS))
def test_each_method_runs_three_steps(models, method, monkeypatch):
    student, teacher = models
    # an untrained model earns reward 0 everywhere (no GRPO signal): reward short responses
    monkeypatch.setattr(rlsd.verify, "reward", lambda p, t: 1.0 if len(t) < 12 else 0.0)
    state = rlsd.make_state(student, cfg(method), opd_teacher=teacher, seed=0)
    before = [p.clone() for p in state.policy.parameters()]
    for i in range(3):
        m = rlsd.train_step(state, PROBS[3 * i:3 * i + 3])
        assert all(torch.isfinite(torch.tensor(v)) for k, v in m.items() if isinstance(v, float))
    for key in ("reward", "resp_len", "faithful", "lucky", "cites_hint", "no_work", "adv_mean", "adv_within_std",
                "loss", "t_rollout", "t_teacher", "t_update"):
        assert key in m
    if method != "rlvr":
        assert "kl_sampled" in m and "kl_full" in m
    if method == "rlsd":
        assert "rlsd_clip_frac" in m and "lam" in m
    assert any(not torch.equal(a, b) for a, b in zip(before, state.policy.parameters()))  # the student learned
    # the caller's student is never modified
    assert all(torch.equal(a, b) for a, b in zip(student.parameters(), tiny().parameters()))


@pytest.mark.parametrize("method,zero,on", [("rlsd", dict(lam0=0.0), dict(lam0=0.5)),
                                             ("rlvr+opsd", dict(alpha=0.0), dict(alpha=1.0))])
def test_a_zero_teacher_weight_is_exactly_rlvr(models, monkeypatch, method, zero, on):
    student, _ = models
    # give GRPO a signal: reward 1 for responses shorter than 12 tokens, so groups are mixed
    monkeypatch.setattr(rlsd.verify, "reward", lambda p, t: 1.0 if len(t) < 12 else 0.0)
    a = rlsd.make_state(student, cfg("rlvr"), seed=3)
    b = rlsd.make_state(student, cfg(method, **zero), seed=3)
    ma, mb = rlsd.train_step(a, PROBS[:3]), rlsd.train_step(b, PROBS[:3])
    assert 0 < ma["reward"] < 1 and ma["adv_within_std"] < 1e-6
    assert ma["loss"] == mb["loss"]
    for p, q in zip(a.policy.parameters(), b.policy.parameters()):
        assert torch.equal(p, q)
    # and with the teacher's weight on, the update differs
    c = rlsd.make_state(student, cfg(method, **on), seed=3)
    mc = rlsd.train_step(c, PROBS[:3])
    assert any(not torch.equal(p, q) for p, q in zip(a.policy.parameters(), c.policy.parameters()))
    if method == "rlvr+opsd":
        assert mb["alpha"] == 0.0 and mc["loss"] > ma["loss"]   # the JSD term adds to the loss


def test_rlvr_opsd_alpha_halves_on_leaks(models, monkeypatch):
    student, _ = models
    monkeypatch.setattr(rlsd.verify, "reward", lambda p, t: 1.0 if len(t) < 12 else 0.0)
    # adaptive: alpha halves on every step whose own samples leak above the threshold
    d = rlsd.make_state(student, cfg("rlvr+opsd", alpha=0.4, alpha_leak_threshold=0.05), seed=3)
    monkeypatch.setattr(rlsd.verify, "leak_rate", lambda checks: 0.0)
    assert rlsd.train_step(d, PROBS[:3])["alpha"] == 0.4
    monkeypatch.setattr(rlsd.verify, "leak_rate", lambda checks: 0.5)
    assert [rlsd.train_step(d, PROBS[3 * i:3 * i + 3])["alpha"] for i in range(2)] == [0.2, 0.1]
    with pytest.raises(ValueError, match="alpha"):
        rlsd.make_state(student, cfg("rlvr+opsd", alpha=-1.0))


def test_opsd_with_itself_as_teacher_and_no_hint_has_zero_loss(models):
    student, _ = models
    s = rlsd.make_state(student, cfg("opsd", hint="none", teacher_weights="live"), seed=0)
    m = rlsd.train_step(s, PROBS[:3])
    assert abs(m["loss"]) < 1e-6 and abs(m["kl_full"]) < 1e-6 and m["grad_norm"] < 1e-5


def test_alignment_helper_matches_a_direct_forward(models):
    student, _ = models
    student.eval()
    problems = PROBS[:4]
    responses = [verify.response_ids(problems[0]), verify.response_ids(problems[1], "cite"),
                 verify.response_ids(problems[2], "nowork"), verify.response_ids(problems[3])]
    T = max(map(len, responses))
    tokens = torch.full((4, T), verify.PAD)
    for b, r in enumerate(responses):
        tokens[b, :len(r)] = torch.tensor(r)
    for hint in verify.HINTS:
        contexts = [verify.prompt_ids(p, hint) for p in problems]
        with torch.no_grad():
            lp = model.token_logprobs(rlsd.response_logits(student, contexts, tokens), tokens)
            for b, (c, r) in enumerate(zip(contexts, responses)):
                x = torch.tensor([c + r])                      # the unpadded privileged sequence
                direct = model.token_logprobs(student(x[:, :-1]), x[:, 1:])[0, len(c) - 1:]
                assert torch.allclose(lp[b, :len(r)], direct, atol=1e-5)


def test_teacher_weights_modes(models, monkeypatch):
    student, teacher = models
    monkeypatch.setattr(rlsd.verify, "reward", lambda p, t: 1.0 if len(t) < 12 else 0.0)  # a GRPO signal
    opsd = rlsd.make_state(student, cfg("opsd"), seed=0)
    snap = rlsd.make_state(student, cfg("rlsd", refresh_every=2), seed=0)
    live = rlsd.make_state(student, cfg("rlsd", teacher_weights="live"), seed=0)
    assert opsd.weights == "initial" and snap.weights == "snapshot" and live.teacher is live.policy
    assert rlsd.make_state(student, cfg("opd"), opd_teacher=teacher).teacher is teacher
    init = copy.deepcopy(opsd.teacher.state_dict())
    for i in range(3):
        rlsd.train_step(opsd, PROBS[:3])
        rlsd.train_step(snap, PROBS[:3])
    assert all(torch.equal(init[k], v) for k, v in opsd.teacher.state_dict().items())   # frozen
    # the snapshot was refreshed at step 2 (taken before step 2's update)
    assert any(not torch.equal(init[k], v) for k, v in snap.teacher.state_dict().items())
    assert all(not p.requires_grad for p in snap.teacher.parameters())


def test_bad_settings_are_refused(models):
    student, _ = models
    with pytest.raises(ValueError, match="unknown method"):
        rlsd.make_state(student, cfg("ppo"))
    with pytest.raises(ValueError, match="teacher"):
        rlsd.make_state(student, cfg("opd"))
    with pytest.raises(ValueError, match="teacher_weights"):
        rlsd.make_state(student, cfg("opsd", teacher_weights="ema"))


def test_non_finite_loss_stops_the_run(models, monkeypatch):
    student, _ = models
    nan_loss = lambda s, c, credit: s.logp.sum() * float("nan")
    monkeypatch.setitem(rlsd.METHODS, "rlvr", rlsd.Method(rlsd.rlvr_credit, loss=nan_loss))
    s = rlsd.make_state(student, cfg("rlvr"), seed=0)
    before = [p.clone() for p in s.policy.parameters()]
    with pytest.raises(rlsd.NonFiniteError, match="rlvr step 0"):
        rlsd.train_step(s, PROBS[:3])
    assert all(torch.equal(a, b) for a, b in zip(before, s.policy.parameters()))  # no update applied


def test_opsd_sampled_option_trains_through_the_surrogate(models):
    student, _ = models
    jsd = rlsd.make_state(student, cfg("opsd"), seed=0)
    sampled = rlsd.make_state(student, cfg("opsd", opsd_loss="sampled"), seed=0)
    m, mj = rlsd.train_step(sampled, PROBS[:3]), rlsd.train_step(jsd, PROBS[:3])
    assert abs(m["loss"] + m["adv_mean"]) < 1e-6   # rho = 1: the surrogate's value is -mean(credit)
    assert mj["loss"] > 0 and abs(mj["loss"] + mj["adv_mean"]) > 1e-6   # the JSD, not the surrogate


@pytest.mark.parametrize("method", ["rlvr", "rlsd"])
def test_the_loop_raises_a_reward_it_can_learn(models, monkeypatch, method):
    """The fast sibling of test_learning.py (slow): with a reward an untrained model can
    earn by changing one habit (stop early: responses under 12 tokens), RLVR and RLSD
    raise the reward on the prompts they train on."""
    student, _ = models
    monkeypatch.setattr(rlsd.verify, "reward", lambda p, t: 1.0 if len(t) < 12 else 0.0)
    state = rlsd.make_state(student, cfg(method, lr=3e-3, warmup=1), seed=0)
    rewards = [rlsd.train_step(state, PROBS[:4])["reward"] for _ in range(20)]
    first, last = sum(rewards[:4]) / 4, sum(rewards[-4:]) / 4
    assert 0.05 < first < 0.8, f"the untrained student should earn some reward, got {first:.2f}"
    assert last - first >= 0.15, f"{method}: reward {first:.2f} -> {last:.2f}"
