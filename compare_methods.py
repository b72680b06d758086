"""compare_methods.py: RLVR, OPD, OPSD and RLSD side by side from the same base model.

    python compare_methods.py                  # the default preset (README, "Quick start": its time)
    python compare_methods.py --preset smoke   # seconds; what the tests run (frontier-smoke: with the probe)
    python compare_methods.py --preset frontier   # README, "Where dense credit stops being free"
    python compare_methods.py --redraw figures/frontier   # figures 5 and 6 again, from the summary
    python compare_methods.py --preset full --device cuda

What it does, in order:
  1. loads the base student, a control student whose hinted data has no behaviour shift,
     and the larger OPD teacher, as shipped in base_models/ (--retrain-base trains them
     anew with train_tiny.py, into the --checkpoints cache; --base-seed N trains another
     student and control student beside the shipped teacher);
  2. signal density (density.py): the credit each method gives the base student's own
     samples; when the preset asks, the one-update probe of every arm (frontier.py);
  3. runs every arm (a method, maybe with settings: --arms) for every seed under identical
     conditions (experiment.run_one), plus the control arms from the control student,
     logging every step to metrics.jsonl as it goes; --jobs N runs them in N processes;
  4. writes summary.json (experiment.summarize) and draws the figures (figures.py).

Ctrl-C (or SIGTERM), at any stage, ends the current unit of work (a step, a base-model
training chunk, an evaluation, the probe), saves what is done, draws the figures from the
finished runs and prints the --resume command. Nothing is tuned on `test` or `hard`.
"""
import argparse
import json
import os
import shlex
import sys
import time
from dataclasses import asdict, dataclass, replace

import density
import experiment
import figures
import model
import parallel
import runtime
import train_tiny
from experiment import PRESETS, run_key

MAX_SEEDS, MAX_STEPS = 100, 100_000
DEFAULT_JOBS = {"cpu": 2}   # 2 processes of 1 thread beat 1 of 2 threads on 2 cores (docs/LOG.md)
RESULT_FILES = ("summary.json", *figures.FIGURE_FILES.values(), *figures.FRONTIER_FILES.values())
OUTPUT_FILES = ("metrics.jsonl", *RESULT_FILES)   # what a run writes; RESULT_FILES derive from the log


# ---------------------------------------------------------------- the command line

def parser():
    ap = runtime.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="default", help=f"one of {', '.join(PRESETS)}")
    ap.add_argument("--arms", nargs="+", default=None, metavar="ARM", help="arms METHOD[:key=value,...], "
                    "e.g. rlvr rlsd:eps_w=1,lam0=1 rlvr+opsd:alpha=0.1 (methods: "
                    f"{', '.join(experiment.METHOD_ORDER)}; keys: {', '.join(experiment.ARM_KEYS)}; "
                    "default: the preset's arms, the first four methods for default, smoke and full)")
    ap.add_argument("--methods", default=None, metavar="M1,M2",
                    help="plain methods, comma-separated, run in the order rlvr, opd, opsd, rlsd, rlvr+opsd: "
                         "--methods opsd,rlvr is --arms rlvr opsd")
    ap.add_argument("--seeds", type=int, default=None,
                    help=f"seeds, 1 to {MAX_SEEDS} (default: the preset's)")
    ap.add_argument("--steps", type=int, default=None,
                    help=f"RL steps per run, 1 to {MAX_STEPS:,} (default: the preset's)")
    ap.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    ap.add_argument("--out", default=None, help="output folder (default runs/<preset>)")
    ap.add_argument("--checkpoints", default="checkpoints", help="cache folder of retrained base models")
    ap.add_argument("--base-seed", type=int, default=0,
                    help="seed of the base student and control student; any seed but 0 trains them "
                         "(into --checkpoints) beside the shipped teacher (default 0: the shipped ones)")
    ap.add_argument("--retrain-base", action="store_true",
                    help="train the base models (into --checkpoints) instead of loading the shipped ones")
    ap.add_argument("--resume", action="store_true",
                    help="keep the runs that finished in --out, redo the rest")
    ap.add_argument("--no-controls", action="store_true", help="skip the no-shift control runs")
    ap.add_argument("--quiet", action="store_true", help="no progress bars")
    ap.add_argument("--redraw", default=None, metavar="DIR",
                    help="only redraw: figures 5 and 6 from DIR/summary.json, and figures 1-4 too when "
                         "DIR/metrics.jsonl is there (e.g. --redraw figures/frontier)")
    ap.add_argument("--jobs", type=int, default=None,
                    help="runs in parallel processes, the cores divided between them (default: 2 on a "
                         "CPU, measured 1.2x faster on 2 cores; 1 on a GPU, not measured; docs/LOG.md)")
    return ap


def arms_of(args):
    """The arms asked for, in order, each read once by experiment.parse_arm. --methods is
    --arms with plain methods, put in the order of METHOD_ORDER."""
    if args.arms and args.methods:
        raise ValueError("give --arms or --methods, not both")
    arms = list(dict.fromkeys(a.strip() for a in args.arms or PRESETS[args.preset].arms))
    if args.methods:
        given = [m.strip() for m in args.methods.split(",") if m.strip()]
        arms = sorted(set(given), key=lambda m: (experiment.METHOD_ORDER + (m,)).index(m))
    if len(arms) > experiment.MAX_ARMS:
        raise ValueError(f"{len(arms)} arms; at most {experiment.MAX_ARMS} run in one comparison")
    same = experiment.same_arms(arms)
    if same:
        raise ValueError(f"arms {' and '.join(same[0])} are the same settings; give one of them")
    return arms


def check_args(args):
    """Every argument, checked before any work; returns (arms, device, jobs, out)."""
    if args.preset not in PRESETS:
        raise ValueError(f"unknown preset {args.preset!r}; choose one of {', '.join(PRESETS)}")
    arms = arms_of(args)
    runtime.check_range("--seeds", args.seeds, 1, MAX_SEEDS)
    runtime.check_range("--steps", args.steps, 1, MAX_STEPS)
    runtime.check_range("--base-seed", args.base_seed, 0, runtime.MAX_SEED)
    runtime.check_range("--jobs", args.jobs, 1, 64)
    device = train_tiny.resolve_device(args.device)
    out = args.out or os.path.join("runs", args.preset)
    runtime.check_folder(out)
    for path in (os.path.join(out, name) for name in OUTPUT_FILES):
        if os.path.isdir(path):
            raise ValueError(f"{path!r} is a folder; compare_methods.py writes a file there")
    runtime.check_folder(args.checkpoints)
    if os.path.abspath(out) == os.path.abspath(args.checkpoints):
        raise ValueError("--out and --checkpoints must be different folders (each has its own summary.json)")
    return arms, device, args.jobs or DEFAULT_JOBS.get(device, 1), out


def main(argv=None):
    args = parser().parse_args(argv)
    error = lambda e, code: print(f"compare_methods.py: error: {e}", file=sys.stderr) or code
    if args.redraw is not None:
        try:
            return figures.redraw(args.redraw)
        except (runtime.FileProblem, OSError, ValueError) as e:   # ValueError: an arm it cannot read
            return error(e, 1)
    try:
        arms, device, jobs, out = check_args(args)
    except ValueError as e:
        return error(e, 2)
    preset = PRESETS[args.preset]
    preset = replace(preset, seeds=args.seeds or preset.seeds, steps=args.steps or preset.steps,
                     controls=preset.controls and not args.no_controls)
    try:
        return compare(preset, arms, device, out, checkpoints=args.checkpoints, resume=args.resume,
                       progress=not args.quiet, argv=argv if argv is not None else sys.argv[1:],
                       retrain_base=args.retrain_base, base_seed=args.base_seed, jobs=jobs)
    except (model.CheckpointError, runtime.FileProblem, runtime.RunFailed, ValueError) as e:
        return error(e, 2 if isinstance(e, ValueError) else 1)


# ---------------------------------------------------------------- the experiment

@dataclass
class Request:
    """What the command line asked for."""
    preset: experiment.Preset
    arms: list
    device: str
    out: str
    checkpoints: str
    resume: bool = False
    progress: bool = True
    argv: tuple = ()
    retrain_base: bool = False
    base_seed: int = 0
    jobs: int = 1


def compare(preset, arms, device, out, checkpoints, **options):
    """The experiment: base models, signal density, every run, summary and figures; options
    are Request's other fields. One process per output folder (locked); Ctrl-C or SIGTERM
    ends the current unit of work, keeps what is done and prints how to continue (130)."""
    req = Request(preset, list(arms), device, out, checkpoints=checkpoints, **options)
    again = runtime.resume_command("compare_methods.py", req.argv)
    os.makedirs(out, exist_ok=True)
    with runtime.FolderLock(out, ".run.lock", purpose="compare_methods.py is writing it"), runtime.STOP:
        runtime.remove_stale_temporaries(out)   # of a writer killed mid-write
        try:
            return _compare(req, again)
        except runtime.Interrupted as e:
            print(f"{e}\nto continue: {again}", file=sys.stderr)
            return 130
        except KeyboardInterrupt:
            print(f"\nstopped at once; the runs finished so far are kept in {out}. To continue: {again}",
                  file=sys.stderr)
            return 130


def _compare(req, again):
    t0 = time.time()
    if not req.resume:   # a fresh run: an earlier run's summary and figures must not sit beside its new log
        for name in RESULT_FILES:
            if os.path.isfile(os.path.join(req.out, name)):
                os.remove(os.path.join(req.out, name))
    controls = experiment.control_arms(req.arms, req.preset)                                # 1.
    setup, base_summary = experiment.load_setup(req.preset, req.checkpoints, req.device,
                                                controls=bool(controls), progress=req.progress,
                                                retrain=req.retrain_base, seed=req.base_seed)
    runs = experiment.planned_runs(req.arms, req.preset.seeds, controls)
    header = {"run": "header", "kind": "header", "log_format": experiment.LOG_FORMAT,
              "preset": asdict(req.preset), "methods": req.arms,
              "student": base_summary["student"]["checkpoint"],
              "teacher": base_summary["teacher"]["checkpoint"]}
    log_path = os.path.join(req.out, "metrics.jsonl")
    rows, done = experiment.start_log(log_path, header, req.resume)
    with open(log_path, "ab", buffering=0) as logf:   # unbuffered: a failed row is not written twice
        def append(row):
            rows.append(row)
            try:
                data = (json.dumps(row) + "\n").encode()
                while data:
                    data = data[logf.write(data):]
            except OSError as e:   # a full disk: at most a cut last line, which --resume drops
                raise runtime.FileProblem(f"could not write {log_path}: {e.strerror or e}") from None

        dens = density_stage(setup, rows, append)                                           # 2.
        probe = probe_stage(setup, req, rows, append, controls=controls)                    # 2b.
        todo = [r for r in runs if run_key(*r) not in done]                                 # 3.
        if req.jobs <= 1 or len(todo) <= 1:
            run_serial(setup, todo, append, done=done, progress=req.progress)
        elif not runtime.STOP.requested:
            parallel.run_parallel(setup, todo, append, done=done, jobs=req.jobs, device=req.device)
    complete = all(run_key(*r) in done for r in runs)                                      # 4.
    S = None
    if done:   # summary and figures from the finished runs (a run cut short is redone by --resume)
        rows = [r for r in rows if r["run"] in done or r["run"] in ("density", "probe", "header")]
        S = experiment.summarize(rows, runs, setup, base_summary=base_summary, density=dens, probe=probe)
        S.update(total_seconds=time.time() - t0, complete=complete,
                 command=shlex.join(["python", "compare_methods.py", *req.argv]))
        runtime.write_json(os.path.join(req.out, "summary.json"), S)
        try:
            figures.draw_all(rows, S, req.out)
        except OSError as e:
            raise runtime.FileProblem(f"could not write the figures in {req.out}: "
                                      f"{e.strerror or e}") from None
        print(experiment.table(S))
    if not complete:
        kept = f"{len(done)} finished run(s) are kept in {req.out}" if done else "no run had finished"
        print(f"\nstopped early; {kept}. To continue: {again}", file=sys.stderr)
        return 130
    failed = [k for k, r in S["runs"].items() if r["status"].startswith("failed")]
    if failed:   # a non-finite loss: its row in the log says which step
        print(f"\n{len(failed)} run(s) failed: {', '.join(failed)} (their 'failed' rows in metrics.jsonl "
              f"say why; the same arm and seed fail again on --resume); the rest are in {req.out}",
              file=sys.stderr)
        return 1
    print(f"\nall done in {S['total_seconds']:.0f}s; figures and summary.json in {req.out}")
    return 0


def density_stage(setup, rows, append):
    """Step 2: signal density on the base student's own samples, or the logged one."""
    dens = next((r["data"] for r in rows if r["run"] == "density"), None)
    if dens is None and not runtime.STOP.requested:
        t0 = time.time()
        dens = density.signal_density(setup.students["main"], setup.teacher, setup.preset, setup.task)
        append({"run": "density", "kind": "density", "data": dens, "seconds": time.time() - t0})
    return dens


def probe_stage(setup, req, rows, append, *, controls):
    """Step 2b, when the preset asks: the one-update probe (frontier.py) of every arm from
    the main student and every control arm from the control student. Its samples are
    fixed by the seed, so a resume with more arms probes only those and merges them; the
    log's last probe row wins. Returns the probe, or None."""
    old = next((r["data"] for r in reversed(rows) if r["run"] == "probe"), None) or {}
    missing = {v: [a for a in arms if a not in old.get(v, {}).get("arms", {})]
               for v, arms in (("main", req.arms), ("control", controls))}
    if not any(missing.values()) or req.preset.probe_batches <= 0 or runtime.STOP.requested:
        return old or None
    import frontier
    new = {v: frontier.probe(setup.students[v], setup.teacher, arms, setup.preset, task=setup.task,
                             progress=req.progress, stop=lambda: runtime.STOP.requested,
                             log=lambda s: print(s, file=sys.stderr))
           for v, arms in missing.items() if arms}
    if any(p is None for p in new.values()):
        return old or None   # stopped part-way: these arms are probed on --resume
    probe = frontier.merge_probe(old, new)
    seconds = sum(p["seconds"] for p in new.values())
    append({"run": "probe", "kind": "probe", "data": probe, "seconds": seconds})
    print(f"probe: {sum(map(len, missing.values()))} arm(s) in {seconds:.0f}s", file=sys.stderr)
    return probe


# ---------------------------------------------------------------- runs in this process (--jobs: parallel.py)

def run_serial(setup, todo, append, *, done, progress):
    """Step 3 in this process, run by run; the step-0 evaluation of a (student, seed) is
    computed once and shared by its arms."""
    memo = {}
    for variant, arm, seed in todo:
        if runtime.STOP.requested:
            break
        key = run_key(variant, arm, seed)
        log = lambda row: append({"run": key, "variant": variant, "method": arm, "seed": seed, **row})
        status = experiment.run_one(setup, variant, arm, seed, log=log, progress=progress,
                                    memo=memo.setdefault((variant, seed), {}))
        if status == "stopped":
            break
        log({"kind": "end", "status": status})
        done.add(key)
        if not progress:
            print(f"{key}: {status}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
