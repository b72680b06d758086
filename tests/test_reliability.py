"""Fault injection: every interruption honoured, one writer per folder, every bad file and
bad argument named in one line, no temporary file left behind (runtime.py).

Signals go to subprocesses that run with Python's default signal handling; the hook that
sends them is patched in at the stage under test (base-model training, the density pass,
a run's steps)."""
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace

import pytest
import torch

import bench
import compare_methods
import experiment
import model
import rlsd
import runtime
import train_tiny

# runs, resumes and failures, not drawing: figures.draw_all only records its calls here
pytestmark = pytest.mark.usefixtures("no_figures")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMOKE = ["--preset", "smoke", "--quiet", "--no-controls", "--methods", "rlvr,rlsd", "--jobs", "1"]   # in-process: the hooks reach it


def run_hooked(hook, args, tmp_path, sig="SIGINT", at=3):
    """Run `main(args)` of compare_methods in a subprocess; `hook` names a function
    (module.attr) that sends `sig` to the process on its `at`-th call."""
    mod, attr = hook.split(".")
    code = (f"import os, signal, sys\nsys.path.insert(0, {ROOT!r})\nimport compare_methods, {mod}\n"
            f"real, n = {mod}.{attr}, [0]\n"
            f"def hooked(*a, **k):\n    n[0] += 1\n    if n[0] == {at}:\n"
            f"        os.kill(os.getpid(), signal.{sig})\n    return real(*a, **k)\n"
            f"{mod}.{attr} = hooked\nsys.exit(compare_methods.main({args!r}))\n")
    return subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=240)


def one_line_error(err):
    lines = [l for l in err.strip().splitlines() if l.strip()]
    return len(lines) == 1 and "Traceback" not in err


# ---------------------------------------------------------------- 1, 2: interruptions

def test_a_signal_during_base_model_training_saves_progress_and_resume_continues(tmp_path, smoke_models):
    ck, out = str(tmp_path / "ck"), str(tmp_path / "o")
    os.makedirs(ck)   # the teacher is there already: the student's training is the one stopped
    t_name = f"teacher-{train_tiny.PRESETS['smoke']['teacher'].key()}.pt"
    with open(os.path.join(smoke_models, t_name), "rb") as a, open(os.path.join(ck, t_name), "wb") as b:
        b.write(a.read())
    r = run_hooked("train_tiny.make_batch", SMOKE + ["--out", out, "--checkpoints", ck], tmp_path)
    assert r.returncode == 130, r.stderr
    assert "Traceback" not in r.stderr and "progress saved" in r.stderr and "stopped at step 3" in r.stderr
    assert "to continue: python compare_methods.py" in r.stderr
    assert any(f.endswith(".progress.pt") for f in os.listdir(ck))
    # the same command continues from step 3 and ends with the weights of an uninterrupted run
    assert compare_methods.main(SMOKE + ["--out", out, "--checkpoints", ck, "--steps", "1"]) == 0
    cfg = train_tiny.PRESETS["smoke"]["student"]
    a, _ = model.load(os.path.join(ck, f"student-{cfg.key()}.pt"))
    b, _ = model.load(os.path.join(smoke_models, f"student-{cfg.key()}.pt"))   # trained without a stop
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert not any(f.endswith(".progress.pt") for f in os.listdir(ck))


@pytest.mark.slow   # its fast sibling: the SIGINT case above
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
    preset = replace(experiment.PRESETS["smoke"], controls=False, steps=1)
    real = rlsd.train_step

    def step_then_signal(state, problems):
        m = real(state, problems)
        os.kill(os.getpid(), signal.SIGINT)
        return m
    monkeypatch.setattr(rlsd, "train_step", step_then_signal)
    out = str(tmp_path / "o")
    assert compare_methods.compare(preset, ["rlvr", "rlsd"], "cpu", out, ckpt, progress=False) == 130
    S = json.load(open(os.path.join(out, "summary.json")))
    assert S["runs"]["main/rlvr/0"]["status"] == "done" and S["runs"]["main/rlsd/0"]["status"] == "incomplete"
    assert S["complete"] is False


def test_a_huge_step_count_does_not_build_its_prompts_first(ckpt, tmp_path, monkeypatch):
    preset = replace(experiment.PRESETS["smoke"], controls=False, steps=compare_methods.MAX_STEPS)
    real = rlsd.train_step

    def step_then_signal(state, problems):
        os.kill(os.getpid(), signal.SIGINT)
        return real(state, problems)
    monkeypatch.setattr(rlsd, "train_step", step_then_signal)
    drawn = []
    real_draw = experiment.verify.iter_problems

    def counting(*a, **k):
        for p in real_draw(*a, **k):
            if k.get("seed") == 10_000:   # the run's prompts (evaluation sets are drawn apart)
                drawn.append(p)
            yield p
    monkeypatch.setattr(experiment.verify, "iter_problems", counting)
    assert compare_methods.compare(preset, ["rlvr"], "cpu", str(tmp_path / "o"), ckpt, progress=False) == 130
    assert len(drawn) == preset.prompts_per_step     # drawn as the run goes, not all up front


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


def test_a_run_that_needs_the_checkpoint_folder_waits_for_its_trainer(tmp_path, capsys):
    folder = str(tmp_path / "ck")
    trainer = subprocess.Popen([sys.executable, "-c", f"import sys, time; sys.path.insert(0, {ROOT!r}); import runtime\n"
                                f"with runtime.FolderLock({folder!r}, '.train.lock', wait=True):\n"
                                f"    print('locked', flush=True); time.sleep(1.5)"], stdout=subprocess.PIPE, text=True)
    assert trainer.stdout.readline().strip() == "locked"
    t0 = time.time()
    with runtime.FolderLock(folder, ".train.lock", wait=True):
        waited = time.time() - t0
    trainer.wait()
    assert waited > 0.5 and f"waiting for process {trainer.pid}" in capsys.readouterr().err


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


@pytest.fixture
def small_disk(tmp_path):
    """A real 64 MB filesystem (tmpfs), mounted for the test; skipped where mounting is not
    allowed."""
    d = tmp_path / "disk"
    d.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(d)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a small filesystem here: {r.stderr.decode().strip()}")
    try:
        yield d
    finally:
        subprocess.run(["umount", "-l", str(d)], capture_output=True)


def _fill(folder):
    """Write zeros until the filesystem is full."""
    with open(os.path.join(folder, "filler"), "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 2**20)
        except OSError:
            pass


@pytest.mark.parametrize("jobs", ["1", pytest.param("2", marks=pytest.mark.slow)])   # 2: the slow tier
def test_a_disk_that_fills_during_the_runs_names_the_log(ckpt, small_disk, jobs):
    """The filesystem of --out fills up while the runs go: one line naming the log, exit 1,
    no traceback (the failed row used to be written again when the log closed)."""
    out = str(small_disk / "o")
    args = ["--preset", "smoke", "--quiet", "--no-controls", "--methods", "rlvr,opsd", "--steps", "200",
            "--checkpoints", ckpt, "--jobs", jobs, "--out", out]
    proc = subprocess.Popen([sys.executable, "compare_methods.py", *args], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    log, t0 = os.path.join(out, "metrics.jsonl"), time.time()
    while time.time() - t0 < 120 and not (os.path.exists(log) and '"kind": "step"' in open(log).read()):
        time.sleep(0.05)
    _fill(small_disk)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err
    assert one_line_error(err.split("\n", 1)[1] if err.startswith(("1 runs", "2 runs")) else err), err
    assert "could not write" in err and "metrics.jsonl" in err and "No space left" in err
    assert not [f for f in os.listdir(out) if ".tmp" in f or f.endswith(".png")]


def test_a_disk_that_fills_while_figures_are_drawn_leaves_no_half_written_png(ckpt, small_disk, capsys,
                                                                             monkeypatch):
    """The disk fills (for real) after summary.json is written, as the figures are drawn:
    one line naming the figure, exit 1, and no PNG at all (one used to be left with 0 bytes)."""
    import figures
    monkeypatch.undo()   # this module's no_figures: here the figures are drawn for real
    real = figures.draw_all
    monkeypatch.setattr(figures, "draw_all", lambda *a: _fill(small_disk) or real(*a))
    out = str(small_disk / "o")
    assert compare_methods.main(SMOKE + ["--steps", "1", "--out", out, "--checkpoints", ckpt]) == 1
    err = capsys.readouterr().err
    errors = [l for l in err.splitlines() if "error:" in l]   # besides the runs' progress lines
    assert len(errors) == 1 and "Traceback" not in err
    assert "could not write" in errors[0] and ".png" in errors[0] and "No space left" in errors[0]
    assert not [f for f in os.listdir(out) if f.endswith(".png") or ".tmp" in f]


def test_a_full_disk_at_the_first_write_names_the_file_and_leaves_no_temporary(ckpt, tmp_path, capsys, monkeypatch):
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


def test_a_summary_left_half_written_by_kill_9_is_cleaned_on_the_next_run(ckpt, tmp_path):
    out = str(tmp_path / "o")
    args = SMOKE + ["--steps", "1", "--out", out, "--checkpoints", ckpt]
    r = run_hooked("json.dump", args, tmp_path, "SIGKILL", at=1)   # the summary.json write
    assert r.returncode == -signal.SIGKILL
    left = [f for f in os.listdir(out) if ".tmp" in f]
    assert left and left[0].startswith("summary.json.tmp")
    assert compare_methods.main(args + ["--resume"]) == 0
    assert not [f for f in os.listdir(out) if ".tmp" in f]


def test_a_bench_out_without_a_file_name_is_refused_before_the_work(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(bench, "bench_generation", lambda *a, **k: pytest.fail("the benchmark ran"))
    for out in (str(tmp_path / "new") + os.sep, ""):
        assert bench.main(["--preset", "smoke", "--out", out]) == 2
        assert "give a file name" in capsys.readouterr().err


@pytest.mark.parametrize("cache", ['{"student": 5}', pytest.param("{}", marks=pytest.mark.slow),
                                   pytest.param('{"student": {}, "teacher": {"checkpoint": 1}}', marks=pytest.mark.slow)])
def test_a_summary_cache_of_the_wrong_shape_is_named_and_rebuilt(ckpt, tmp_path, capsys, cache):
    d = str(tmp_path / "ck")
    shutil.copytree(ckpt, d)
    s, t = (train_tiny.PRESETS["smoke"][m].key() for m in ("student", "teacher"))
    path = os.path.join(d, f"summary-{s}-{t}.json")
    with open(path, "w") as f:
        f.write(cache)
    assert train_tiny.main(["--preset", "smoke", "--out", d]) == 0
    err = capsys.readouterr().err
    assert f"{path} is not a base-model summary; it is rebuilt now" in err and "Traceback" not in err
    assert json.load(open(path))["student"]["checkpoint"].endswith(f"student-{s}.pt")


def test_temporaries_of_a_killed_writer_are_removed(ckpt):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    left = os.path.join(ckpt, f"student-x.pt.tmp{dead.pid}")
    open(left, "w").close()
    train_tiny.build_base_models("smoke", ckpt, "cpu", progress=False, log=lambda *a: None)
    assert not os.path.exists(left)


# ---------------------------------------------------------------- 6, 7, 11: bad files

def test_a_truncated_summary_cache_is_named_and_rebuilt(ckpt, capsys):
    s, t = (train_tiny.PRESETS["smoke"][m].key() for m in ("student", "teacher"))
    path = os.path.join(ckpt, f"summary-{s}-{t}.json")   # the main student's
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


@pytest.mark.parametrize("damage, line", [(b'{"run": "header", "kind": "header", "preset": {}, "methods": []}\n'
                                           b'\xff\xfe not utf-8\n{"run": "x"}\n', 2),
                                          (b"123\n456\n", 1)])
def test_a_damaged_metrics_log_is_named_on_resume(ckpt, tmp_path, capsys, damage, line):
    out = tmp_path / "o"
    out.mkdir()
    (out / "metrics.jsonl").write_bytes(damage)
    assert compare_methods.main(SMOKE + ["--out", str(out), "--checkpoints", ckpt, "--resume"]) == 1
    err = capsys.readouterr().err
    assert one_line_error(err) and f"metrics.jsonl line {line} " in err


@pytest.fixture(scope="module")
def finished_run(ckpt, tmp_path_factory):
    """The folder of a finished smoke run (2 steps, 2 arms), its figures not drawn."""
    import figures
    out = str(tmp_path_factory.mktemp("finished"))
    with pytest.MonkeyPatch.context() as m:
        m.setattr(figures, "draw_all", lambda *a: None)
        assert compare_methods.main(SMOKE + ["--steps", "2", "--out", out, "--checkpoints", ckpt]) == 0
    return out


@pytest.fixture
def finished_log(finished_run):
    """The lines of that run's metrics.jsonl."""
    return open(os.path.join(finished_run, "metrics.jsonl")).read().splitlines()


FRONTIER_SUMMARY = os.path.join(ROOT, "figures", "frontier", "summary.json")


@pytest.mark.parametrize("damage", ["empty", "no methods", "null preset", "no signal_density",
                                    "empty frontier, no log", "a string in per_seed, no log"])
def test_redraw_of_a_damaged_summary_is_one_line(finished_run, tmp_path, capsys, damage):
    """Each of these used to end in a traceback."""
    with_log = "no log" not in damage
    S = json.load(open(os.path.join(finished_run if with_log else os.path.dirname(FRONTIER_SUMMARY),
                                    "summary.json")))
    if with_log:
        shutil.copy(os.path.join(finished_run, "metrics.jsonl"), tmp_path / "metrics.jsonl")
    if damage == "empty":
        S = {}
    elif damage == "no methods":
        del S["methods"]
    elif damage == "null preset":
        S["preset"] = None
    elif damage == "no signal_density":
        del S["signal_density"]
    elif damage.startswith("empty frontier"):
        S["frontier"] = {}
    else:
        S["frontier"]["per_seed"]["rlvr"] = "five seeds"
    (tmp_path / "summary.json").write_text(json.dumps(S))
    assert compare_methods.main(["--redraw", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert one_line_error(err) and "is not a summary this program wrote" in err
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".png")]


def test_a_log_without_its_header_is_not_resumed(ckpt, tmp_path, capsys, finished_log):
    """Its settings cannot be checked: resumed with other --steps it used to end 'complete'
    with runs of two lengths in one summary."""
    out = tmp_path / "o"
    out.mkdir()
    (out / "metrics.jsonl").write_text("\n".join(finished_log[1:]) + "\n")
    assert compare_methods.main(SMOKE + ["--steps", "1", "--out", str(out), "--checkpoints", ckpt, "--resume"]) == 1
    err = capsys.readouterr().err
    assert one_line_error(err) and "no header row" in err and not (out / "summary.json").exists()


@pytest.mark.parametrize("damage", ["missing", "string", "nan", "null step"])
def test_a_log_row_of_the_wrong_shape_is_named_on_resume(ckpt, tmp_path, capsys, finished_log, damage):
    """A middle row that is valid JSON but not what this program writes: a missing key, a
    string for a number, NaN, a null step. Each used to give a traceback or be taken in."""
    n = next(i for i, line in enumerate(finished_log) if '"kind": "step"' in line)
    row = json.loads(finished_log[n])
    if damage == "missing":
        del row["reward"]
    else:
        row.update({"string": {"reward": "high"}, "nan": {"reward": float("nan")}, "null step": {"step": None}}[damage])
    lines = finished_log[:n] + [json.dumps(row)] + finished_log[n + 1:]
    out = tmp_path / "o"
    out.mkdir()
    (out / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    assert compare_methods.main(SMOKE + ["--steps", "2", "--out", str(out), "--checkpoints", ckpt, "--resume"]) == 1
    err = capsys.readouterr().err
    assert one_line_error(err) and f"metrics.jsonl line {n + 1} is not a row" in err


def test_a_log_of_an_older_format_is_not_resumed(ckpt, tmp_path, capsys):
    """A log written before step rows carried `leak` would leave the leak of its runs
    unknown: --resume refuses it in one line instead of summarizing it wrongly."""
    out = str(tmp_path / "o")
    args = SMOKE + ["--steps", "1", "--out", out, "--checkpoints", ckpt]
    assert compare_methods.main(args) == 0
    rows = [json.loads(l) for l in open(os.path.join(out, "metrics.jsonl"))]
    assert rows[0]["log_format"] == experiment.LOG_FORMAT
    del rows[0]["log_format"]
    with open(os.path.join(out, "metrics.jsonl"), "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    capsys.readouterr()
    assert compare_methods.main(args + ["--resume"]) == 2
    err = capsys.readouterr().err
    assert one_line_error(err) and "older version" in err


def test_a_log_cut_mid_line_by_a_hard_kill_resumes(ckpt, tmp_path):
    out = str(tmp_path / "o")
    args = SMOKE + ["--steps", "2", "--out", out, "--checkpoints", ckpt]
    assert compare_methods.main(args) == 0
    ref = json.load(open(os.path.join(out, "summary.json")))
    with open(os.path.join(out, "metrics.jsonl"), "rb") as f:
        lines = f.read().splitlines(keepends=True)
    last_end = max(i for i, l in enumerate(lines) if b'"kind": "end"' in l and b"rlvr" in l)
    with open(os.path.join(out, "metrics.jsonl"), "wb") as f:   # rlsd's run, cut mid-line
        f.writelines(lines[:last_end + 3])
        f.write(lines[last_end + 3][:17])
    assert compare_methods.main(args + ["--resume"]) == 0
    S = json.load(open(os.path.join(out, "summary.json")))
    numbers = lambda S: {k: (r["status"], r["steps"], {m: v for m, v in r["final_eval"].items() if m not in ("wall", "t_eval")})
                         for k, r in S["runs"].items()}
    assert numbers(S) == numbers(ref)


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


def test_a_stop_is_forgotten_once_its_run_has_ended(ckpt, tmp_path, monkeypatch):
    preset = replace(experiment.PRESETS["smoke"], controls=False, steps=2)
    real = rlsd.train_step

    def step_then_signal(state, problems):
        os.kill(os.getpid(), signal.SIGINT)
        return real(state, problems)
    monkeypatch.setattr(rlsd, "train_step", step_then_signal)
    out = tmp_path / "o"
    out.mkdir()
    (out / "summary.json").write_text("{}")   # an earlier run's
    assert compare_methods.compare(preset, ["rlvr"], "cpu", str(out), ckpt, progress=False) == 130
    assert not (out / "summary.json").exists()          # nothing finished: no summary, not a stale one
    assert not runtime.STOP.requested
    cfg = replace(train_tiny.PRESETS["smoke"]["student"], steps=3, branch_steps=0)
    train_tiny.train(cfg, progress=False, progress_path=str(tmp_path / "p.pt"))   # not interrupted


@pytest.mark.parametrize("at", [12, 17])   # in the trunk, after its check at step 10, and in the branch
def test_training_interrupted_anywhere_resumes_to_the_same_weights(tmp_path, monkeypatch, at):
    cfg = replace(train_tiny.PRESETS["smoke"]["student"], steps=20, branch_steps=6, batch_size=8,
                  stop_at=0.9, check_every=10)
    ref, _, _ = train_tiny.train(cfg, progress=False, trunk_dir=str(tmp_path / "ref"))
    real, calls = train_tiny.make_batch, []

    def batch_then_stop(*a, **k):
        calls.append(1)
        if len(calls) == at:
            runtime.STOP.requested = True
        return real(*a, **k)
    monkeypatch.setattr(train_tiny, "make_batch", batch_then_stop)
    d, progress = str(tmp_path / "cut"), str(tmp_path / "cut" / "p.pt")
    os.makedirs(d)
    with runtime.STOP:
        with pytest.raises(runtime.Interrupted, match=f"stopped at step {at} "):
            train_tiny.train(cfg, progress=False, trunk_dir=d, progress_path=progress)
    # the control student shares the trunk: training it in between must not disturb the resume
    train_tiny.train(replace(cfg, cite_frac=0.0, nowork_frac=0.0), progress=False, trunk_dir=d)
    net, _, info = train_tiny.train(cfg, progress=False, trunk_dir=d, progress_path=progress)
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), ref.state_dict().values()))


def test_waiting_for_a_lock_honours_a_stop_and_never_waits_for_itself(tmp_path):
    folder = str(tmp_path)
    with runtime.FolderLock(folder, ".train.lock", wait=True):
        with pytest.raises(runtime.UserError, match=str(os.getpid())):   # no self-deadlock
            with runtime.FolderLock(folder, ".train.lock", wait=True):
                pass


def test_out_and_checkpoints_must_differ(tmp_path, capsys):
    d = str(tmp_path / "same")
    assert compare_methods.main(SMOKE + ["--out", d, "--checkpoints", d]) == 2
    assert "must be different folders" in capsys.readouterr().err


def test_a_second_ctrl_c_stops_at_once_in_one_line(ckpt, tmp_path, monkeypatch, capsys):
    preset = replace(experiment.PRESETS["smoke"], controls=False, steps=3)
    real = rlsd.train_step

    def step_with_two_signals(state, problems):
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)     # the second one, before the step ends
        return real(state, problems)
    monkeypatch.setattr(rlsd, "train_step", step_with_two_signals)
    assert compare_methods.compare(preset, ["rlvr"], "cpu", str(tmp_path / "o"), ckpt, progress=False) == 130
    err = capsys.readouterr().err
    assert "stopped at once" in err and "--resume" in err and "Traceback" not in err


def test_ctrl_c_during_the_bench_is_one_line(tmp_path, monkeypatch, capsys):
    def interrupted(*a, **k):
        raise KeyboardInterrupt
    monkeypatch.setattr(bench, "bench_generation", interrupted)
    out = tmp_path / "b.json"
    assert bench.main(["--preset", "smoke", "--repeats", "1", "--out", str(out), "--checkpoints", str(tmp_path)]) == 130
    assert "stopped; nothing written" in capsys.readouterr().err and not out.exists()


# ---------------------------------------------------------------- --jobs workers killed, or their parent

def _workers_of(pid):
    """The --jobs worker processes (spawned, running multiprocessing's spawn_main) whose
    parent is `pid`, from /proc."""
    out = []
    for d in os.listdir("/proc"):
        try:
            with open(f"/proc/{d}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{d}/cmdline", "rb") as f:
                cmd = f.read()
        except (OSError, ValueError, IndexError):
            continue
        if ppid == pid and b"spawn_main" in cmd:
            out.append(int(d))
    return out


def _start_a_parallel_sweep(ckpt, out, seeds=1):
    """A --jobs 2 sweep in its own process, returned once both workers have logged a step."""
    args = ["--preset", "smoke", "--quiet", "--no-controls", "--methods", "rlvr,opsd", "--steps", "40",
            "--seeds", str(seeds), "--checkpoints", ckpt, "--jobs", "2", "--out", out]
    proc = subprocess.Popen([sys.executable, "compare_methods.py", *args], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    log, t0 = os.path.join(out, "metrics.jsonl"), time.time()
    while time.time() - t0 < 120:
        if os.path.exists(log) and len({r for r in open(log) if '"kind": "step"' in r}) >= 2 \
                and len(_workers_of(proc.pid)) == 2:
            return proc
        time.sleep(0.05)
    proc.kill()
    pytest.fail("the sweep did not start")


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="reads /proc")
def test_a_killed_worker_is_named_with_its_run_and_the_sweep_stops(ckpt, tmp_path):
    proc = _start_a_parallel_sweep(ckpt, str(tmp_path / "o"))
    victim = _workers_of(proc.pid)[0]
    os.kill(victim, signal.SIGKILL)       # as the kernel does when memory runs out
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err
    lines = [l for l in err.splitlines() if "error:" in l]
    assert len(lines) == 1 and f"worker {victim} was killed (SIGKILL) while running main/" in lines[0]
    assert "--resume" in lines[0] and "Traceback" not in err
    assert not _workers_of(proc.pid)


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="reads /proc")
def test_workers_do_not_outlive_a_killed_parent(ckpt, tmp_path):
    """Left alone, orphaned workers would go on with the sweep's queued runs (3 seeds here)."""
    proc = _start_a_parallel_sweep(ckpt, str(tmp_path / "o"), seeds=3)
    workers = _workers_of(proc.pid)
    proc.kill()
    proc.wait()
    t0 = time.time()
    while time.time() - t0 < 10 and any(os.path.exists(f"/proc/{w}") and _state(w) != "Z" for w in workers):
        time.sleep(0.1)
    assert not [w for w in workers if os.path.exists(f"/proc/{w}") and _state(w) != "Z"], "orphaned workers"


def _state(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"
