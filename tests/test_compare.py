"""compare_methods.py: the smoke preset end to end, interruption and resume, bad input."""
import json
import os
from dataclasses import replace

import pytest

import compare_methods
import figures
import experiment
import rlsd

FIGS = tuple(figures.FIGURE_FILES.values())


def _numbers(summary):
    """The summary without timings: what must not depend on interruptions."""
    out = {}
    for k, v in summary["runs"].items():
        ev = dict(v["final_eval"] or {})
        ev.pop("wall", None)
        ev.pop("t_eval", None)
        out[k] = (v["status"], v["steps"], ev)
    return out


def test_smoke_preset_end_to_end(ckpt, tmp_path):
    out = str(tmp_path / "run")
    assert compare_methods.compare(experiment.PRESETS["smoke"], list(experiment.DEFAULT_METHODS), "cpu", out, ckpt,
                                   progress=False) == 0
    for f in FIGS + ("metrics.jsonl", "summary.json"):
        assert os.path.getsize(os.path.join(out, f)) > 0
    S = json.load(open(os.path.join(out, "summary.json")))
    assert set(S["methods"]) == {"rlvr", "opd", "opsd", "rlsd", "opsd/control", "rlsd/control"}
    assert all(r["status"] == "done" for r in S["runs"].values())
    for m in S["methods"].values():
        for k in ("final_greedy_test_mean", "last10_cites_hint", "last10_no_work", "last10_faithful",
                  "last10_resp_len", "params_resident", "mean_step_seconds", "passes_per_step"):
            assert k in m
    assert S["methods"]["opd"]["params_resident"] > S["methods"]["rlsd"]["params_resident"] > \
        S["methods"]["rlvr"]["params_resident"]
    d = S["signal_density"]
    assert set(d["methods"]) >= {"rlvr", "opd", "opsd", "rlsd"} and d["n_responses"] > 0
    rows = [json.loads(l) for l in open(os.path.join(out, "metrics.jsonl"))]
    steps = [r for r in rows if r["kind"] == "step"]
    assert len(steps) == 6 * experiment.PRESETS["smoke"].steps
    prof = S["profile_seconds"]   # where the time went, summed from the log
    assert prof["rollout"] == pytest.approx(sum(r["t_rollout"] for r in steps))
    assert prof["evaluation"] > 0 and prof["signal_density"] > 0 and prof["teacher"] > 0
    assert prof["rollout"] + prof["update"] + prof["evaluation"] < S["total_seconds"]


def test_evaluation_reads_the_same_numbers_as_separate_passes(ckpt):
    """evaluate_policy batches every split into one greedy pass and reuses its sampled test
    responses for the KL yardsticks; the accuracies must equal one pass per split."""
    import train_tiny
    import verify
    student, teacher, _ = train_tiny.build_base_models("smoke", ckpt, "cpu", progress=False, log=lambda *a: None)
    sets = {s: verify.make_problems(s, 24, seed=5) for s in ("test", "hard")}
    refs = {"self": (student, "none"), "opd_teacher": (teacher, "none")}
    ev = experiment.evaluate_policy(student, sets, 3, refs)
    for s in sets:
        assert ev[f"greedy_{s}"] == train_tiny.evaluate(student, sets[s])
    assert ev["sampled_test"] == train_tiny.evaluate(student, sets["test"], temperature=1.0, seed=3)
    assert abs(ev["kl_self"]) < 1e-6   # the policy against itself, on the same prompts
    assert ev["kl_opd_teacher"] > 0


def test_interrupted_run_resumes_to_the_same_summary(ckpt, tmp_path, monkeypatch):
    preset = replace(experiment.PRESETS["smoke"], controls=False, steps=3)
    methods = ["rlvr", "rlsd"]
    ref = str(tmp_path / "ref")
    with monkeypatch.context() as m:   # only the cut run's figures are looked at
        m.setattr(figures, "draw_all", lambda *a: None)
        assert compare_methods.compare(preset, methods, "cpu", ref, ckpt, progress=False) == 0

    out = str(tmp_path / "cut")
    real_step, calls = rlsd.train_step, []

    def step_then_interrupt(state, problems):
        calls.append(1)
        m = real_step(state, problems)
        if len(calls) == 4:  # in the second run: as if Ctrl-C came during this step
            os.kill(os.getpid(), __import__("signal").SIGINT)
        return m
    monkeypatch.setattr(rlsd, "train_step", step_then_interrupt)
    assert compare_methods.compare(preset, methods, "cpu", out, ckpt, progress=False) == 130
    S = json.load(open(os.path.join(out, "summary.json")))
    assert S["complete"] is False and S["runs"]["main/rlvr/0"]["status"] == "done"
    assert S["runs"]["main/rlsd/0"]["status"] == "incomplete"
    assert all(os.path.exists(os.path.join(out, f)) for f in FIGS)   # figures drawn from what is done
    monkeypatch.setattr(rlsd, "train_step", real_step)
    monkeypatch.setattr(figures, "draw_all", lambda *a: None)
    assert compare_methods.compare(preset, methods, "cpu", out, ckpt, resume=True, progress=False) == 0
    assert _numbers(json.load(open(os.path.join(out, "summary.json")))) == \
        _numbers(json.load(open(os.path.join(ref, "summary.json"))))


def test_command_line_errors(tmp_path, capsys):
    base = ["--out", str(tmp_path / "o"), "--checkpoints", str(tmp_path / "c")]
    for args, msg in ((["--methods", "rlvr,ppo"], "unknown method 'ppo'"),
                      (["--methods", "rlvr", "--arms", "opsd"], "not both"),
                      (["--preset", "big"], "unknown preset"),
                      (["--seeds", "0"], "--seeds must lie between 1 and 100"),
                      (["--steps", "-3"], "--steps must lie between 1 and"),
                      (["--device", "quantum"], "unknown device")):
        assert compare_methods.main(args + base) == 2
        assert msg in capsys.readouterr().err
    (tmp_path / "f").write_text("x")
    assert compare_methods.main(["--out", str(tmp_path / "f" / "o")]) == 2
    assert "not writable" in capsys.readouterr().err


def test_a_corrupted_cached_checkpoint_gives_one_clear_line(tmp_path, capsys):
    import train_tiny
    ck = tmp_path / "c"
    ck.mkdir()
    cfg = train_tiny.PRESETS["smoke"]["student"]
    (ck / f"student-{cfg.key()}.pt").write_bytes(b"\x80\x02 truncated")
    assert compare_methods.main(["--preset", "smoke", "--out", str(tmp_path / "o"), "--checkpoints", str(ck), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "unreadable" in err and f"student-{cfg.key()}.pt" in err and "delete" in err and "Traceback" not in err


def test_resume_with_other_settings_is_refused(ckpt, tmp_path, no_figures):
    preset = replace(experiment.PRESETS["smoke"], controls=False, steps=2)
    out = str(tmp_path / "r")
    assert compare_methods.compare(preset, ["rlvr"], "cpu", out, ckpt, progress=False) == 0
    with pytest.raises(ValueError, match="other settings"):
        compare_methods.compare(replace(preset, steps=3), ["rlvr"], "cpu", out, ckpt, resume=True, progress=False)


def test_arms_run_side_by_side_with_their_settings(ckpt, tmp_path, no_figures):
    preset = replace(experiment.PRESETS["smoke"], steps=2, controls=False)
    arms = ["rlvr", "rlvr+opsd:alpha=0.1", "rlsd:eps_w=1,lam0=1", "rlsd:hint=none,lam_kind=constant"]
    out = str(tmp_path / "arms")
    assert compare_methods.compare(preset, arms, "cpu", out, ckpt, progress=False) == 0
    S = json.load(open(os.path.join(out, "summary.json")))
    assert list(S["methods"]) == arms                          # one entry per arm, in order
    rows = [json.loads(l) for l in open(os.path.join(out, "metrics.jsonl"))]
    lam = lambda arm: [r["lam"] for r in rows if r["kind"] == "step" and r["method"] == arm]
    assert lam("rlsd:eps_w=1,lam0=1") == [1.0, 0.98]              # linear over 50 steps from 1
    assert lam("rlsd:hint=none,lam_kind=constant") == [0.5, 0.5]
    assert all(r["alpha"] == 0.1 for r in rows if r["kind"] == "step" and r["method"] == "rlvr+opsd:alpha=0.1")
    assert figures.label("rlsd:eps_w=1,lam0=1") == "RLSD (eps_w=1, lam0=1)"


@pytest.mark.parametrize("arm,match", [("foo", "unknown method"), ("rlsd:eps=1", "not key=value"),
                                       ("rlsd:eps_w", "not key=value"), ("rlsd:eps_w=abc", "eps_w must be float"),
                                       ("rlsd:eps_w=-1", "eps_w must be"), ("rlsd:eps_w=nan", "eps_w must be"),
                                       ("rlsd:lam0=2", "lam0 must be"), ("opsd:hint=teacher", "unknown hint"),
                                       ("rlvr+opsd:alpha=-0.1", "alpha must be"),
                                       ("rlsd:refresh_every=0", "refresh_every must be"),
                                       ("rlsd:lam0=1,lam0=0", "lam0 is set twice"), ("rlsd:", "no settings"),
                                       ("rlsd:lam0=\uff11", "ASCII"), ("rlsd:" + "lam0=1," * 40 + "eps_w=1", "ASCII")])
def test_a_bad_arm_is_one_line_and_exit_2(arm, match, capsys, tmp_path):
    with pytest.raises(ValueError, match=match):
        experiment.parse_arm(arm)
    assert compare_methods.main(["--preset", "smoke", "--arms", arm, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and match.split()[0] in err


def test_one_leak_definition_feeds_the_loop_the_adaptive_rule_the_summary_and_the_frontier(ckpt, tmp_path,
                                                                                             monkeypatch, no_figures):
    """verify.leak_rate is the only leak: replaced by a constant, every leak number of a run
    (the step log, the adaptive alpha, the summary, the frontier statistics, the probe's
    background) is that constant or follows from it."""
    import verify
    monkeypatch.setattr(verify, "leak_rate", lambda checks: 0.25)
    preset = replace(experiment.PRESETS["frontier-smoke"], steps=3, controls=False)   # with the probe
    arms = ["rlvr", "rlvr+opsd:alpha=1,alpha_leak_threshold=0.05"]
    out = str(tmp_path / "leak")
    assert compare_methods.compare(preset, arms, "cpu", out, ckpt, progress=False) == 0
    rows = [json.loads(l) for l in open(os.path.join(out, "metrics.jsonl"))]
    steps = [r for r in rows if r["kind"] == "step"]
    assert steps and all(r["leak"] == 0.25 for r in steps)
    assert [r["alpha"] for r in steps if r["method"] == arms[1]] == [0.5, 0.25, 0.125]   # halved every step
    S = json.load(open(os.path.join(out, "summary.json")))
    assert all(S["methods"][a]["per_seed_last10_leak"] == [0.25] for a in arms)
    assert all(S["frontier"]["per_seed"][a]["0"]["final_leak"] == 0.25 for a in arms)
    assert S["probe"]["main"]["background_leak"] == 0.25


def test_arms_that_spell_the_same_settings_or_too_many_are_refused(tmp_path, capsys):
    base = ["--preset", "smoke", "--out", str(tmp_path / "o")]
    for arms, match in ((["rlsd", "rlsd:eps_w=0.2"], "are the same settings"),
                        (["rlsd:eps_w=1", "rlsd:eps_w=1.0"], "are the same settings"),
                        ([f"rlsd:eps_w={i}" for i in range(101)], "at most 100")):
        assert compare_methods.main(base + ["--arms", *arms]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and match in err


def test_a_run_that_fails_is_not_all_done(ckpt, tmp_path, capsys, no_figures):
    """A non-finite loss ends its run ('failed'); the comparison then exits 1 and says which."""
    preset = replace(experiment.PRESETS["smoke"], steps=2, controls=False)
    out = str(tmp_path / "f")
    assert compare_methods.compare(preset, ["rlvr", "rlvr+opsd:alpha=1e308"], "cpu", out, ckpt, progress=False) == 1
    err = capsys.readouterr().err
    assert "1 run(s) failed: main/rlvr+opsd:alpha=1e308/0" in err
    S = json.load(open(os.path.join(out, "summary.json")))
    assert S["runs"]["main/rlvr/0"]["status"] == "done"
    assert S["runs"]["main/rlvr+opsd:alpha=1e308/0"]["status"].startswith("failed")
