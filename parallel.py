"""parallel.py: --jobs. Independent runs in several worker processes, their log rows
through the parent into one log.

  run_parallel  spawns the workers (CUDA and OpenMP start clean in each), the cores divided
                between them, and collects their rows, run ends and failures
  _worker       one process: runs (variant, arm, seed) from a queue; stops after its step
                on SIGTERM, the parent's stop request; dies with its parent

A stop (Ctrl-C, SIGTERM) is forwarded: no new runs, the current ones end after their
step. A worker that fails sends its traceback; one killed (say, by the kernel for memory)
is named with the run it was on. Either way the other workers stop after their step, the
finished runs stay in the log, and the error says --resume reruns the rest.
"""
import os
import queue
import signal
import sys
import threading
import time
import traceback

import experiment
import runtime
from experiment import run_key

KEPT = "the finished runs are kept in the log, and --resume reruns the rest"


def run_parallel(setup, todo, append, *, done, jobs, device):
    """Step 3 of compare_methods.py in `jobs` spawned processes. Rows reach `append` in
    the order they arrive; the summary does not depend on that order. Raises
    runtime.RunFailed if a worker failed or was killed."""
    import multiprocessing as mp
    import torch
    ctx = mp.get_context("spawn")
    tasks, results = ctx.Queue(), ctx.Queue()
    jobs = min(jobs, len(todo))
    for r in [*todo, *[None] * jobs]:
        tasks.put(r)
    threads = 1 if device != "cpu" else max(1, torch.get_num_threads() // jobs)
    procs = [ctx.Process(target=_worker, args=(tasks, results, threads, setup, os.getpid()), daemon=True)
             for _ in range(jobs)]
    saved = signal.signal(signal.SIGINT, signal.SIG_IGN)   # inherited: a terminal's Ctrl-C is ours alone
    try:
        for p in procs:
            p.start()
    finally:
        signal.signal(signal.SIGINT, saved)
    print(f"{len(todo)} runs in {jobs} processes, {threads} thread(s) each", file=sys.stderr)
    try:
        failure = _collect(procs, tasks, results, append=append, done=done, total=len(todo))
    except KeyboardInterrupt:   # a second Ctrl-C: stop at once
        for p in procs:
            p.kill()
        raise
    except BaseException:   # this process cannot go on (say, its log cannot be written)
        _wind_down(procs, tasks, results)
        raise
    for p in procs:
        p.join(timeout=60)
        if p.is_alive():
            p.kill()
    if failure:
        raise runtime.RunFailed(failure)


def _collect(procs, tasks, results, *, append, done, total):
    """The parent's loop while workers run: log their rows and ends, forward a stop request,
    and watch for a worker that dies without saying why. Returns the failure to report (a
    worker's traceback, or which worker died on which run), or None."""
    state = {"finished": 0, "failure": None, "on": {}, "left": set()}   # left: workers accounted for
    forwarded = False
    while len(state["left"]) < len(procs):
        if runtime.STOP.requested and not forwarded:
            forwarded = True
            _forward_stop(procs, tasks)
        try:
            _handle(results.get(timeout=1.0), state, append=append, done=done, total=total)
        except queue.Empty:
            if not any(p.is_alive() for p in procs):
                break
        for p in procs:   # killed by a signal, not the SIGTERM of a stop we forwarded
            if p.pid not in state["left"] and p.exitcode is not None and p.exitcode < 0:
                state["left"].add(p.pid)
                if not (forwarded and p.exitcode == -signal.SIGTERM):
                    how = signal.Signals(-p.exitcode).name
                    state["failure"] = state["failure"] or (
                        f"--jobs worker {p.pid} was killed ({how}) while running "
                        f"{state['on'].get(p.pid, 'no run yet')}; {KEPT}")
                    runtime.STOP.requested = True   # stop the other workers after their step
    while True:   # what a worker sent before it died may still be in the pipe
        try:
            _handle(results.get(timeout=0.2), state, append=append, done=done, total=total)
        except queue.Empty:
            break
    for p in procs:   # died before it could send anything (say, while starting)
        if p.pid not in state["left"] and p.exitcode not in (0, None) and not state["failure"]:
            state["failure"] = f"--jobs worker {p.pid} exited with code {p.exitcode} without a word; {KEPT}"
    return state["failure"]


def _handle(message, state, *, append, done, total):
    """One message from a worker: a run's start, a log row, a run's end, an error, its exit."""
    kind, a, b = message
    if kind == "start":
        state["on"][b] = run_key(*a)
    elif kind == "row":
        append(a)
    elif kind == "end":
        (variant, arm, seed), key = a, run_key(*a)
        state["on"] = {pid: k for pid, k in state["on"].items() if k != key}
        if b != "stopped":
            append({"run": key, "variant": variant, "method": arm, "seed": seed, "kind": "end", "status": b})
            done.add(key)
        state["finished"] += 1
        print(f"[{state['finished']}/{total}] {key}: {b}", file=sys.stderr)
    elif kind == "error":
        state["failure"] = state["failure"] or f"a --jobs worker failed; {KEPT}:\n{b}"
        runtime.STOP.requested = True   # stop the other workers after their step
    elif kind == "exit":
        state["left"].add(a)


def _forward_stop(procs, tasks):
    """No new runs; the current ones stop after their step (SIGTERM is a worker's STOP)."""
    while True:
        try:
            tasks.get_nowait()
        except queue.Empty:
            break
    for _ in procs:
        tasks.put(None)
    for p in procs:
        if p.is_alive():
            p.terminate()


def _wind_down(procs, tasks, results, timeout=60):
    """Stop the workers after their step and let them leave cleanly, reading (and
    dropping) what they still send so that none blocks on a full pipe."""
    _forward_stop(procs, tasks)
    t0 = time.time()
    while any(p.is_alive() for p in procs) and time.time() - t0 < timeout:
        try:
            results.get(timeout=0.2)
        except queue.Empty:
            pass
    for p in procs:
        if p.is_alive():
            p.kill()


def _watch_parent(parent):
    """Exit at once when the parent is gone (killed): a worker never outlives its sweep."""
    while True:
        if os.getppid() != parent:
            os._exit(1)
        time.sleep(0.5)


def _worker(tasks, results, threads, setup, parent):
    """A --jobs process: runs (variant, arm, seed) from `tasks` until None, sending every log
    row and each run's start and end to `results`. It stops after the current step on
    SIGTERM (the parent's stop request); Ctrl-C goes to the parent alone."""
    import torch
    torch.set_num_threads(threads)
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    memo = {}
    with runtime.STOP:
        signal.signal(signal.SIGINT, signal.SIG_IGN)   # the parent's Ctrl-C reaches us as its SIGTERM
        signal.signal(signal.SIGTERM, lambda *_: setattr(runtime.STOP, "requested", True))
        try:
            for variant, arm, seed in iter(tasks.get, None):
                if runtime.STOP.requested:
                    break
                results.put(("start", (variant, arm, seed), os.getpid()))
                row = {"run": run_key(variant, arm, seed), "variant": variant, "method": arm, "seed": seed}
                log = lambda r: results.put(("row", {**row, **r}, None))
                status = experiment.run_one(setup, variant, arm, seed, log=log, progress=False,
                                            memo=memo.setdefault((variant, seed), {}))
                results.put(("end", (variant, arm, seed), status))
                if status == "stopped":
                    break
        except BaseException:   # any other failure: the parent stops the sweep and shows it
            results.put(("error", None, traceback.format_exc()))
            sys.exit(1)          # the parent prints the traceback, once
    signal.signal(signal.SIGTERM, signal.SIG_IGN)   # leaving: a late stop request changes nothing
    results.put(("exit", os.getpid(), None))
