"""Fault injection: every interruption honoured, one writer per folder, every bad file and
bad argument named in one line, no temporary file left behind (runtime.py).

Signals go to subprocesses that run with Python's default signal handling; the hook that
sends them is patched in at the stage under test (base-model training, the density pass,
a run's steps)."""
import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace

import pytest
import torch

import bench
import compare_methods
import model
import rlsd
import runtime
import train_tiny

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMOKE = ["--preset", "smoke", "--quiet", "--no-controls", "--methods", "rlvr,rlsd"]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    """The smoke base models, trained once for this module."""
    d = str(tmp_path_factory.mktemp("ckpt"))
    train_tiny.build_base_models("smoke", d, "cpu", progress=False, log=lambda *a: None)
    return d


def run_hooked(hook, args, tmp_path, sig="SIGINT"):
    """Run `main(args)` of compare_methods in a subprocess; `hook` names a function
    (module.attr) that sends `sig` to the process on its 3rd call."""
    mod, attr = hook.split(".")
    code = (f"import os, signal, sys\nsys.path.insert(0, {ROOT!r})\nimport compare_methods, {mod}\n"
            f"real, n = {mod}.{attr}, [0]\n"
            f"def hooked(*a, **k):\n    n[0] += 1\n    if n[0] == 3:\n"
            f"        os.kill(os.getpid(), signal.{sig})\n    return real(*a, **k)\n"
            f"{mod}.{attr} = hooked\nsys.exit(compare_methods.main({args!r}))\n")
    return subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=240)


def one_line_error(err):
    lines = [l for l in err.strip().splitlines() if l.strip()]
    return len(lines) == 1 and "Traceback" not in err


# ---------------------------------------------------------------- 1, 2: interruptions

def test_a_signal_during_base_model_training_saves_progress_and_resume_continues(tmp_path):
    ck, out = str(tmp_path / "ck"), str(tmp_path / "o")
    r = run_hooked("train_tiny.make_batch", SMOKE + ["--out", out, "--checkpoints", ck], tmp_path)
    assert r.returncode == 130, r.stderr
    assert "Traceback" not in r.stderr and "progress saved" in r.stderr and "stopped at step 3" in r.stderr
    assert "to continue: python compare_methods.py" in r.stderr
    assert any(f.endswith(".progress.pt") for f in os.listdir(ck))
    # the same command continues from step 3 and ends with the weights of an uninterrupted run
    assert compare_methods.main(SMOKE + ["--out", out, "--checkpoints", ck]) == 0
    cfg = train_tiny.PRESETS["smoke"]["student"]
    a, _ = model.load(os.path.join(ck, f"student-{cfg.key()}.pt"))
    b, _, _ = train_tiny.train(cfg, progress=False)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert not any(f.endswith(".progress.pt") for f in os.listdir(ck))


def test_sigterm_during_base_model_training_is_a_clean_stop_too(tmp_path):
    r = run_hooked("train_tiny.make_batch", SMOKE + ["--out", str(tmp_path / "o"), "--checkpoints",
                                                     str(tmp_path / "ck")], tmp_path, "SIGTERM")
    assert r.returncode == 130 and "Traceback" not in r.stderr and "progress saved" in r.stderr, r.stderr


def test_a_signal_during_the_density_pass_stops_cleanly(ckpt, tmp_path):
    out = str(tmp_path / "o")
    r = run_hooked("rlsd.response_logits", SMOKE + ["--out", out, "--checkpoints", ckpt], tmp_path)
    assert r.returncode == 130 and "Traceback" not in r.stderr, r.stderr
    assert "no run had finished" in r.stderr and "--resume" in r.stderr


def test_a_signal_after_the_last_step_of_a_run_stops_before_the_next(ckpt, tmp_path, monkeypatch):
    # --steps 1: every step is a run's last; the old loop ignored the flag there and between runs
    preset = replace(compare_methods.PRESETS["smoke"], controls=False, steps=1)
    real = rlsd.train_step

    def step_then_signal(state, problems):
        m = real(state, problems)
        os.kill(os.getpid(), signal.SIGINT)
        return m
    monkeypatch.setattr(compare_methods.rlsd, "train_step", step_then_signal)
    out = str(tmp_path / "o")
    assert compare_methods.compare(preset, ["rlvr", "rlsd"], "cpu", out, ckpt, progress=False) == 130
    S = json.load(open(os.path.join(out, "summary.json")))
    assert S["runs"]["main/rlvr/0"]["status"] == "done" and S["runs"]["main/rlsd/0"]["status"] == "incomplete"
    assert S["complete"] is False


def test_a_huge_step_count_does_not_build_its_prompts_first(ckpt, tmp_path, monkeypatch):
    preset = replace(compare_methods.PRESETS["smoke"], controls=False, steps=compare_methods.MAX_STEPS)
    real = rlsd.train_step

    def step_then_signal(state, problems):
        os.kill(os.getpid(), signal.SIGINT)
        return real(state, problems)
    monkeypatch.setattr(compare_methods.rlsd, "train_step", step_then_signal)
    t0 = time.time()
    assert compare_methods.compare(preset, ["rlvr"], "cpu", str(tmp_path / "o"), ckpt, progress=False) == 130
    assert time.time() - t0 < 30     # 800,000 prompts drawn up front took minutes


# ---------------------------------------------------------------- 3: one writer per folder

def test_a_second_run_on_the_same_out_is_refused(ckpt, tmp_path, capsys):
    out = str(tmp_path / "o")
    with runtime.FolderLock(out, ".run.lock"):     # another run holds it
        assert compare_methods.main(SMOKE + ["--out", out, "--checkpoints", ckpt]) == 2
    err = capsys.readouterr().err
    assert one_line_error(err) and out in err and str(os.getpid()) in err


def test_a_stale_lock_is_taken_over_with_a_warning(ckpt, tmp_path, capsys):
    out = tmp_path / "o"
    out.mkdir()
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    (out / ".run.lock").write_text(str(gone.pid))
    assert compare_methods.main(SMOKE + ["--steps", "1", "--out", str(out), "--checkpoints", ckpt]) == 0
    assert f"left by process {gone.pid}, which is gone" in capsys.readouterr().err


def test_a_run_that_needs_the_checkpoint_folder_waits_for_its_trainer(tmp_path):
    folder, order = str(tmp_path / "ck"), []

    def other():
        with runtime.FolderLock(folder, ".train.lock", wait=True):
            order.append("second")
    with runtime.FolderLock(folder, ".train.lock", wait=True):
        t = threading.Thread(target=other)
        t.start()
        time.sleep(0.5)
        order.append("first")
    t.join(10)
    assert order == ["first", "second"]


# ---------------------------------------------------------------- 4, 5: output paths, full disk

def test_bench_out_that_is_a_folder_is_refused_before_the_work(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(bench, "bench_generation", lambda *a, **k: pytest.fail("the benchmark ran"))
    assert bench.main(["--preset", "smoke", "--out", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err


def test_too_little_free_space_is_refused_before_the_work(tmp_path, capsys, monkeypatch):
    class Usage:
        free = 2**20
    monkeypatch.setattr(runtime.shutil, "disk_usage", lambda p: Usage)
    assert compare_methods.main(SMOKE + ["--out", str(tmp_path / "o"), "--checkpoints", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert one_line_error(err) and "MB free" in err


def test_a_full_disk_mid_run_names_the_file_and_leaves_no_temporary(ckpt, tmp_path, capsys, monkeypatch):
    def full(src, dst):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(runtime.os, "replace", full)
    out = tmp_path / "o"
    assert compare_methods.main(SMOKE + ["--out", str(out), "--checkpoints", ckpt]) == 1
    err = capsys.readouterr().err
    assert one_line_error(err) and "metrics.jsonl" in err and "No space left" in err
    assert not [f for f in os.listdir(out) if ".tmp" in f]


def test_an_interrupted_save_leaves_no_temporary(tmp_path, monkeypatch):
    net = model.GPT(model.GPTConfig(n_layer=1, n_head=1, n_embd=8))

    def killed(obj, f):
        with open(f, "wb") as fh:      # part of the file is written when Ctrl-C comes
            fh.write(b"partial")
        raise KeyboardInterrupt
    monkeypatch.setattr(model.torch, "save", killed)
    with pytest.raises(KeyboardInterrupt):
        model.save(str(tmp_path / "m.pt"), net)
    assert os.listdir(tmp_path) == []


def test_temporaries_of_a_killed_writer_are_removed(ckpt):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    left = os.path.join(ckpt, f"student-x.pt.tmp{dead.pid}")
    open(left, "w").close()
    train_tiny.build_base_models("smoke", ckpt, "cpu", progress=False, log=lambda *a: None)
    assert not os.path.exists(left)


# ---------------------------------------------------------------- 6, 7, 11: bad files

def test_a_truncated_summary_cache_is_named_and_rebuilt(ckpt, capsys):
    path = next(os.path.join(ckpt, f) for f in os.listdir(ckpt) if f.startswith("summary-"))
    good = json.load(open(path))
    with open(path, "w") as f:
        f.write('{"preset": "smo')
    assert train_tiny.main(["--preset", "smoke", "--out", ckpt]) == 0
    err = capsys.readouterr().err
    assert path in err and "rebuilt" in err and "Traceback" not in err
    assert json.load(open(path))["student"]["params"] == good["student"]["params"]


def _bad_checkpoint(ckpt, tmp_path, change):
    cfg = train_tiny.PRESETS["smoke"]["student"]
    d = tmp_path / "bad"
    d.mkdir(exist_ok=True)
    for f in os.listdir(ckpt):
        if f.endswith(".pt"):
            with open(os.path.join(ckpt, f), "rb") as a, open(d / f, "wb") as b:
                b.write(a.read())
    path = str(d / f"student-{cfg.key()}.pt")
    ck = torch.load(path, weights_only=True)
    change(ck)
    torch.save(ck, path)
    return str(d), path


def test_checkpoint_meta_of_the_wrong_type_is_one_line(ckpt, tmp_path, capsys):
    d, path = _bad_checkpoint(ckpt, tmp_path, lambda ck: ck.update(meta=[1, 2]))
    assert compare_methods.main(SMOKE + ["--out", str(tmp_path / "o"), "--checkpoints", d]) == 1
    err = capsys.readouterr().err
    assert one_line_error(err) and path in err and "meta" in err


def test_non_finite_weights_are_refused_everywhere(ckpt, tmp_path, capsys):
    d, path = _bad_checkpoint(ckpt, tmp_path, lambda ck: [t.fill_(float("nan")) for t in ck["state_dict"].values()])
    assert compare_methods.main(SMOKE + ["--out", str(tmp_path / "o"), "--checkpoints", d]) == 1
    assert train_tiny.main(["--preset", "smoke", "--out", d]) == 1
    err = capsys.readouterr().err
    assert "non-finite" in err and "Traceback" not in err


def test_a_checkpoint_that_is_not_plain_tensors_never_suggests_unsafe_loading(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("true",))
    path = str(tmp_path / "evil.pt")
    torch.save({"config": {}, "state_dict": {}, "meta": Evil()}, path)
    with pytest.raises(model.CheckpointError) as e:
        model.load(path)
    assert "weights_only" not in str(e.value) and "\n" not in str(e.value) and "never unpickled" in str(e.value)


@pytest.mark.parametrize("damage", [b'{"run": "header"}\n\xff\xfe not utf-8\n{"run": "x"}\n', b"123\n456\n"])
def test_a_damaged_metrics_log_is_named_on_resume(ckpt, tmp_path, capsys, damage):
    out = tmp_path / "o"
    out.mkdir()
    (out / "metrics.jsonl").write_bytes(damage)
    assert compare_methods.main(SMOKE + ["--out", str(out), "--checkpoints", ckpt, "--resume"]) == 1
    err = capsys.readouterr().err
    assert one_line_error(err) and "metrics.jsonl line " in err


# ---------------------------------------------------------------- 8, 9: arguments

@pytest.mark.parametrize("args", [["--seeds", "abc"], ["--seeds", "100000"], ["--steps", "0"],
                                  ["--steps", str(10**9)]])
def test_bad_counts_are_one_line(args, capsys):
    with pytest.raises(SystemExit) as e:
        sys.exit(compare_methods.main(args))
    assert e.value.code == 2
    assert one_line_error(capsys.readouterr().err)


def test_a_huge_seed_is_one_line(capsys):
    assert train_tiny.main(["--seed", "99999999999999999999999"]) == 2
    err = capsys.readouterr().err
    assert one_line_error(err) and "--seed" in err


# ---------------------------------------------------------------- 10: the resume command

def test_the_resume_command_survives_a_shell(tmp_path):
    argv = ["--preset", "smoke", "--out", str(tmp_path / "a folder with spaces"), "--checkpoints", "it's"]
    cmd = runtime.resume_command("compare_methods.py", argv)
    echoed = subprocess.run(["sh", "-c", "printf '%s\\n' " + cmd], capture_output=True, text=True).stdout
    assert echoed.splitlines() == ["python", "compare_methods.py", *argv, "--resume"]
    assert shlex.split(cmd)[2:-1] == argv
