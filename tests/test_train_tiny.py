"""train_tiny.py: the smoke preset learns, caches, is deterministic, and refuses bad input."""
import hashlib
import math
import os
from dataclasses import replace

import pytest
import torch

import model
import train_tiny
import verify


@pytest.fixture(scope="module")
def smoke(ckpt):
    student, teacher, summary = train_tiny.build_base_models("smoke", ckpt, "cpu", progress=False, log=lambda *a: None)
    return ckpt, student, teacher, summary


def test_smoke_preset_beats_an_untrained_model(smoke):
    out, student, teacher, summary = smoke
    cfg = train_tiny.PRESETS["smoke"]["student"]
    probs = verify.make_problems("test", 64, seed=7)
    torch.manual_seed(123)
    untrained = model.GPT(cfg.model)
    assert train_tiny.heldout_loss(student, probs, cfg) < train_tiny.heldout_loss(untrained, probs, cfg) - 0.5
    assert teacher.num_params() >= 3 * student.num_params()
    for who in ("student", "teacher"):
        assert summary[who]["train_seconds"] < 60
        assert "greedy/test/none" in summary[who] and "sampled/train/none" in summary[who]
    assert "greedy/test/answer" in summary["student"] and "greedy/hard/solution" in summary["student"]
    assert os.path.exists(os.path.join(out, "summary.json"))


def test_second_run_loads_the_cache(smoke):
    out, student, teacher, _ = smoke
    said = []
    s2, t2, _ = train_tiny.build_base_models("smoke", out, "cpu", progress=False, log=said.append)
    assert all("loaded cached" in line for line in said) and len(said) == 2
    x = torch.tensor([verify.prompt_ids(verify.make_problems("train", 1)[0])])
    assert torch.equal(s2(x), student(x)) and torch.equal(t2(x), teacher(x))


def test_training_is_deterministic_on_cpu():
    cfg = replace(train_tiny.PRESETS["smoke"]["student"], steps=15, branch_steps=5)
    a, _, _ = train_tiny.train(cfg, progress=False)
    b, _, _ = train_tiny.train(cfg, progress=False)
    for p, q in zip(a.state_dict().values(), b.state_dict().values()):
        assert torch.equal(p, q)


def test_batches_mask_only_response_tokens():
    p = verify.Problem((37, 45, 18, 9), ("+", "-", "+"))
    cfg = replace(train_tiny.PRESETS["smoke"]["student"], batch_size=4, hint_answer_frac=1.0, cite_frac=0.0, nowork_frac=0.0)
    x, y, mask = train_tiny.make_batch([p], cfg, torch.Generator().manual_seed(0))
    row_y = y[0][mask[0].bool()].tolist()
    assert row_y == verify.response_ids(p)                     # exactly the response, EOS included
    assert x[0, : len(verify.prompt_ids(p, "answer"))].tolist() == verify.prompt_ids(p, "answer")


@pytest.mark.parametrize("k", [1, 2, 3, 7])
def test_length_sorted_parts_give_the_padded_batch_gradient(k):
    # known answer in float64: the loss and gradient of one right-padded batch, computed
    # directly, against train_tiny.loss_backward running it as k length-sorted parts
    cfg = replace(train_tiny.PRESETS["smoke"]["student"], batch_size=12, hint_solution_frac=0.5)
    probs = verify.make_problems("train", 200, seed=3)
    x, y, mask = train_tiny.make_batch(probs, cfg, torch.Generator().manual_seed(4))
    lens = (y != verify.PAD).sum(1)
    assert int(lens.min()) < int(lens.max()) - 10                  # the batch really has padding
    torch.manual_seed(0)
    net = model.GPT(cfg.model).double()
    full = -(model.token_logprobs(net(x), y) * mask).sum() / mask.sum()
    full.backward()
    want = [p.grad.clone() for p in net.parameters()]
    net.zero_grad()
    parts = train_tiny.length_sorted_parts(y, k)
    assert sorted(torch.cat([r for r, _ in parts]).tolist()) == list(range(12))   # every row once
    assert 1 <= len(parts) <= k and all(len(r) > 0 for r, _ in parts)
    for rows, L in parts:
        assert (y[rows, L:] == verify.PAD).all() and (y[rows, L - 1] != verify.PAD).any()   # cut = padding only
    computed = sum(len(r) * L for r, L in parts)
    assert computed == y.numel() if k == 1 else computed < y.numel()
    widths = []
    forward = net.forward
    net.forward = lambda idx, *a, **kw: widths.append(idx.shape[1]) or forward(idx, *a, **kw)
    loss, hits = train_tiny.loss_backward(net, x, y, mask, parts)
    assert widths == [L for _, L in parts]                          # the model saw the cut parts
    # token_logprobs returns float32 by design, so the two loss sums differ in rounding only
    assert abs(float(loss) - float(full.detach())) < 1e-5
    for g, p in zip(want, net.parameters()):
        torch.testing.assert_close(p.grad, g, rtol=1e-10, atol=1e-12)
    logp = model.token_logprobs(net(x), y)
    assert float(hits) == float(((logp > math.log(0.5)).double() * mask).sum())


def test_micro_batches_train_the_same_model():
    # float32 end to end: one or two parts per batch give the same weights up to rounding
    cfg = replace(train_tiny.PRESETS["smoke"]["student"], steps=10, branch_steps=0)
    a, _, _ = train_tiny.train(replace(cfg, micro_batches=1), progress=False)
    b, _, _ = train_tiny.train(replace(cfg, micro_batches=2), progress=False)
    for p, q in zip(a.state_dict().values(), b.state_dict().values()):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5)


def test_behaviour_shift_fractions():
    probs = verify.make_problems("train", 50, seed=0)
    cfg = replace(train_tiny.PRESETS["smoke"]["student"], batch_size=400, hint_answer_frac=1.0, cite_frac=0.2, nowork_frac=0.2)
    x, y, mask = train_tiny.make_batch(probs, cfg, torch.Generator().manual_seed(1))
    texts = [verify.response_text(r[m.bool()].tolist()) for r, m in zip(y, mask)]
    cite = sum(t.startswith("H") for t in texts) / len(texts)
    nowork = sum(t.startswith("A:") for t in texts) / len(texts)
    assert 0.14 < cite < 0.26 and 0.14 < nowork < 0.26
    cfg0 = replace(cfg, cite_frac=0.0, nowork_frac=0.0)
    x, y, mask = train_tiny.make_batch(probs, cfg0, torch.Generator().manual_seed(1))
    texts = [verify.response_text(r[m.bool()].tolist()) for r, m in zip(y, mask)]
    assert not any(t.startswith("H") or t.startswith("A:") for t in texts)


def test_command_line_errors(tmp_path, capsys):
    assert train_tiny.main(["--preset", "huge", "--out", str(tmp_path)]) == 2
    assert "unknown preset 'huge'" in capsys.readouterr().err
    assert train_tiny.main(["--device", "tpu", "--out", str(tmp_path)]) == 2
    assert "unknown device" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert train_tiny.main(["--device", "cuda", "--out", str(tmp_path)]) == 2
        assert "use --device cpu" in capsys.readouterr().err
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert train_tiny.main(["--out", str(blocker / "sub")]) == 2
    assert "not writable" in capsys.readouterr().err


def test_trunk_stops_on_the_train_criterion_and_is_shared(tmp_path, monkeypatch):
    """The trunk ends at the first check whose sampled train pass rate reaches stop_at; the
    control student (no shift) reuses that trunk, length included, without re-checking."""
    rates = iter([0.0, 0.5])
    calls = []

    def fake_evaluate(net, problems, hint="none", temperature=0.0, seed=0):
        calls.append((len(problems), temperature))
        return next(rates)
    monkeypatch.setattr(train_tiny, "evaluate", fake_evaluate)
    cfg = replace(train_tiny.PRESETS["smoke"]["student"], steps=30, branch_steps=10, stop_at=0.3, check_every=5)
    _, _, info = train_tiny.train(cfg, progress=False, trunk_dir=str(tmp_path))
    assert info == {"trunk_steps": 10, "branch_steps": 10}
    assert calls == [(200, 1.0), (200, 1.0)]             # sampled (temperature 1) on 200 train problems
    control = replace(cfg, cite_frac=0.0, nowork_frac=0.0)
    _, _, info = train_tiny.train(control, progress=False, trunk_dir=str(tmp_path))
    assert info["trunk_steps"] == 10 and len(calls) == 2  # loaded, not retrained nor re-checked
    with pytest.raises(ValueError, match="branch_steps"):
        train_tiny.train(replace(cfg, branch_steps=31), progress=False)
    for bad in (0, cfg.batch_size + 1):
        with pytest.raises(ValueError, match="micro_batches"):
            train_tiny.train(replace(cfg, micro_batches=bad), progress=False)
    with pytest.raises(ValueError, match="check_every"):
        train_tiny.train(replace(cfg, check_every=0), progress=False)
    off = replace(cfg, stop_at=0.0)
    _, _, info = train_tiny.train(off, progress=False)
    assert info["trunk_steps"] == 20 and len(calls) == 2  # no criterion: the full trunk, no checks


def test_a_changed_shipped_file_is_one_clear_error(tmp_path):
    shipped = tmp_path / "base_models"
    shipped.mkdir()
    for f in os.listdir(train_tiny.SHIPPED):
        with open(os.path.join(train_tiny.SHIPPED, f), "rb") as a, open(shipped / f, "wb") as b:
            b.write(a.read())
    name = next(f for f in os.listdir(shipped) if f.startswith("summary-"))
    (shipped / name).write_text((shipped / name).read_text().replace('"preset"', '"Preset"'))
    with pytest.raises(model.CheckpointError, match=r"does not match its checksum.*git checkout") as e:
        train_tiny.check_shipped(str(shipped), name)
    assert "\n" not in str(e.value)
    (shipped / "SHA256SUMS").unlink()
    with pytest.raises(model.CheckpointError, match="cannot check"):
        train_tiny.check_shipped(str(shipped), name)


def test_another_student_seed_trains_the_student_beside_the_shipped_teacher(smoke, tmp_path):
    out, _, teacher, _ = smoke
    shipped = tmp_path / "shipped"      # a shipped folder holding the smoke teacher only
    shipped.mkdir()
    t_name = next(f for f in os.listdir(out) if f.startswith("teacher-") and f.endswith(".pt"))
    (shipped / t_name).write_bytes(open(os.path.join(out, t_name), "rb").read())
    (shipped / "SHA256SUMS").write_text(f"{hashlib.sha256((shipped / t_name).read_bytes()).hexdigest()}  {t_name}\n")
    said = []
    s1, t1, summary = train_tiny.build_base_models("smoke", str(tmp_path / "ck"), "cpu", progress=False,
                                                   log=said.append, shipped=str(shipped), student_seed=1)
    assert summary["student"]["config"]["seed"] == 1 and summary["teacher"]["config"]["seed"] == 0
    assert summary["teacher"]["checkpoint"] == str(shipped / t_name)
    assert any("loaded the shipped" in line for line in said)
    assert not any(f.startswith("teacher-") for f in os.listdir(tmp_path / "ck"))   # not retrained
    assert all(torch.equal(a, b) for a, b in zip(t1.state_dict().values(), teacher.state_dict().values()))
    (shipped / t_name).write_bytes(b"changed")   # a damaged shipped teacher is refused, not used
    with pytest.raises(model.CheckpointError, match="checksum"):
        train_tiny.build_base_models("smoke", str(tmp_path / "ck2"), "cpu", progress=False, log=said.append,
                                     shipped=str(shipped), student_seed=1)
