"""bench.py: where the time goes, measured in one process so that ratios are comparable.

    python bench.py                    # CPU, default student size; prints a table, writes bench.json
    python bench.py --device cuda

Measures (each a median of --repeats runs after a warm-up):
  1. generation: tokens/s with and without the KV cache, batch 64 and batch P*G of the
     default compare preset, 64 new tokens (EOS ignored, so every row makes 64 tokens),
     and the KV-cached rollout at 128 prompts x 48 new tokens, a shape to compare
     implementations at;
  2. the supervised training step: tokens/s and achieved FLOP/s of forward+backward at the
     default student size, beside a large float32 matrix product timed in the same run
     (this machine's practical ceiling);
  3. one RL step of each method, split into rollout, teacher pass and update; RLSD's and
     OPD's step time over RLVR's; peak memory per method (CUDA only; on CPU the model state
     is reported instead, since torch does not track CPU allocations).
Timings are medians over repeats on a shared machine: read the ratios, not the absolutes.
"""
import json
import os
import statistics
import sys
import time

import torch

import experiment
import model
import rlsd
import runtime
import train_tiny
import verify


def _sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def timed(fn, device, repeats):
    fn()  # warm-up
    _sync(device)
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def load_or_init(cfg, ckpt_dir, name, device):
    """The trained base model, shipped (base_models/) or cached (realistic response
    lengths), else a freshly initialised one of the same size."""
    file = f"{name}-{cfg.key()}.pt"
    if os.path.exists(os.path.join(train_tiny.SHIPPED, file)):
        train_tiny.check_shipped(train_tiny.SHIPPED, file)
        return model.load(os.path.join(train_tiny.SHIPPED, file), cfg.model, device)[0], "shipped checkpoint"
    path = os.path.join(ckpt_dir, file)
    if os.path.exists(path):
        return model.load(path, cfg.model, device)[0], "trained checkpoint"
    torch.manual_seed(0)
    return model.GPT(cfg.model).to(device), "random init (train it first for realistic response lengths)"


def bench_generation(net, batch, device, repeats, new_tokens=64, uncached=True):
    """Sampling tokens/s for `batch` task prompts and exactly `new_tokens` new tokens each
    (no early stop), with the KV cache and, if asked, with the recompute path."""
    probs = verify.make_problems("train", batch, seed=1)
    prompts = [verify.prompt_ids(p) for p in probs]
    g = torch.Generator(device=device)
    out = {}
    for cache in (True, False) if uncached else (True,):
        def go():
            g.manual_seed(0)
            net.generate(prompts, new_tokens, eos_id=-1, pad_id=verify.PAD, generator=g, use_cache=cache)
        t = timed(go, device, repeats if cache else max(1, repeats // 2))
        out["cached" if cache else "uncached"] = batch * new_tokens / t
    if uncached:
        out["ratio"] = out["cached"] / out["uncached"]
    return out


def bench_matmul(device, repeats, n=1024):
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    t = timed(lambda: a @ b, device, repeats * 5)
    return 2 * n ** 3 / t


def bench_train_step(cfg, device, repeats):
    """Forward + backward + AdamW of one supervised batch. FLOPs: 6 * N * tokens for the
    weights (N: every parameter; rotary positions have no table), plus the attention score and value products
    counted for the causal half only (6 * L * T * d per token): a conservative count."""
    torch.manual_seed(0)
    net = model.GPT(cfg.model).to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
    probs = verify.make_problems("train", 2000, seed=0)
    x, y, mask = (t.to(device) for t in train_tiny.make_batch(probs, cfg, torch.Generator().manual_seed(0)))

    def step():
        loss = -(model.token_logprobs(net(x), y) * mask).sum() / mask.sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    t = timed(step, device, repeats)
    B, T = x.shape
    n = net.num_params()  # rotary positions: no position table, every parameter is in a matmul
    flops = 6 * n * B * T + 6 * cfg.model.n_layer * B * T * T * cfg.model.n_embd
    return {"tokens_per_s": B * T / t, "flops_per_s": flops / t, "batch_tokens": B * T, "seconds": t}


def bench_methods(student, teacher, device, repeats, preset):
    """One RL step of each method, the methods interleaved step by step so that a machine
    whose speed drifts slows them all alike; medians over repeats, after a warm-up step."""
    probs = verify.make_problems("train", 64 * preset.prompts_per_step, seed=3)
    states = {m: rlsd.make_state(student, rlsd.RLConfig(method=m, group_size=preset.group_size, lr=preset.lr),
                                 opd_teacher=teacher, seed=0) for m in experiment.DEFAULT_METHODS}
    rows = {m: [] for m in states}
    peak = {m: 0.0 for m in states}
    for i in range(repeats + 1):
        batch = probs[i * preset.prompts_per_step:(i + 1) * preset.prompts_per_step]
        for m, state in states.items():
            if device == "cuda":
                torch.cuda.reset_peak_memory_stats()
            rows[m].append(rlsd.train_step(state, batch))
            if device == "cuda":
                peak[m] = max(peak[m], torch.cuda.max_memory_allocated() / 2**20)
    out = {}
    for m, rs in rows.items():
        rs = rs[1:]  # drop the warm-up step
        med = {k: statistics.median(r[k] for r in rs) for k in ("t_rollout", "t_teacher", "t_update")}
        med["t_step"] = statistics.median(r["t_rollout"] + r["t_teacher"] + r["t_update"] for r in rs)
        med["resp_len"] = statistics.mean(r["resp_len"] for r in rs)
        med["peak_memory_mb"] = peak[m] if device == "cuda" else None
        med.update({k: v for k, v in experiment.cost_model(m, student, teacher).items()
                    if k != "passes_per_step"})
        out[m] = med
    for m in ("opd", "opsd", "rlsd"):
        out[m]["step_over_rlvr"] = out[m]["t_step"] / out["rlvr"]["t_step"]
    return out


def measure(student, teacher, s_src, t_src, preset, base, device, repeats):
    """Every measurement, printed as it is made; returns them as one dict."""
    name = torch.cuda.get_device_name() if device == "cuda" else f"cpu, {torch.get_num_threads()} threads"
    res = {"device": name, "torch": torch.__version__, "student": s_src, "teacher": t_src,
           "student_params": student.num_params(), "teacher_params": teacher.num_params()}
    print(f"bench on {name}; student {student.num_params():,} params ({s_src}), "
          f"teacher {teacher.num_params():,} ({t_src})", flush=True)
    res["generation"] = {}
    for batch in sorted({64, preset.prompts_per_step * preset.group_size}):
        r = bench_generation(student, batch, device, repeats)
        res["generation"][f"batch{batch}"] = r
        print(f"generate  batch {batch:4d}, 64 new tokens: cached {r['cached']:9.0f} tok/s, "
              f"uncached {r['uncached']:9.0f} tok/s, ratio {r['ratio']:.1f}x", flush=True)
    roll = bench_generation(student, 128, device, repeats, new_tokens=48, uncached=False)
    res["rollout_128x48_tokens_per_s"] = roll["cached"]   # a shape to compare implementations at
    print(f"rollout   batch  128, 48 new tokens: {roll['cached']:9.0f} tok/s (KV cache)", flush=True)
    mm = bench_matmul(device, repeats)
    tr = bench_train_step(base["student"], device, repeats)
    res["matmul_flops_per_s"], res["train_step"] = mm, tr
    tr["fraction_of_matmul"] = tr["flops_per_s"] / mm
    print(f"train step: {tr['tokens_per_s']:9.0f} tok/s, {tr['flops_per_s'] / 1e9:6.1f} GFLOP/s = "
          f"{100 * tr['fraction_of_matmul']:.0f}% of a 1024^3 float32 matmul ({mm / 1e9:.1f} GFLOP/s)",
          flush=True)
    res["methods"] = bench_methods(student, teacher, device, repeats, preset)
    print(f"\n{'method':8s}{'rollout':>9s}{'teacher':>9s}{'update':>9s}{'step s':>9s}{'/RLVR':>7s}"
          f"{'resp len':>9s}{'params':>11s}{'peak MB':>9s}")
    for m, r in res["methods"].items():
        peak = f"{r['peak_memory_mb']:9.1f}" if r["peak_memory_mb"] is not None else f"{'n/a':>9s}"
        print(f"{m:8s}{r['t_rollout']:9.3f}{r['t_teacher']:9.3f}{r['t_update']:9.3f}{r['t_step']:9.3f}"
              f"{r.get('step_over_rlvr', 1.0):7.2f}{r['resp_len']:9.1f}{r['params_resident']:11,d}{peak}")
    return res


def main(argv=None):
    ap = runtime.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    ap.add_argument("--preset", default="default",
                    help=f"compare preset whose sizes are timed: {', '.join(experiment.PRESETS)}")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--checkpoints", default="checkpoints")
    ap.add_argument("--out", default="bench.json")
    args = ap.parse_args(argv)
    try:
        if args.preset not in experiment.PRESETS:
            raise ValueError(f"unknown preset {args.preset!r}; "
                             f"choose one of {', '.join(experiment.PRESETS)}")
        if not 1 <= args.repeats <= 1000:
            raise ValueError(f"--repeats must be a positive number up to 1000, got {args.repeats}")
        device = train_tiny.resolve_device(args.device)
        runtime.check_file(args.out)     # before the work: not a folder, room to write it
    except ValueError as e:
        print(f"bench.py: error: {e}", file=sys.stderr)
        return 2
    preset = experiment.PRESETS[args.preset]
    base = train_tiny.PRESETS[preset.base]
    try:
        student, s_src = load_or_init(base["student"], args.checkpoints, "student", device)
        teacher, t_src = load_or_init(base["teacher"], args.checkpoints, "teacher", device)
    except model.CheckpointError as e:
        print(f"bench.py: error: {e}", file=sys.stderr)
        return 1
    try:
        res = measure(student, teacher, s_src, t_src, preset, base, device, args.repeats)
    except KeyboardInterrupt:
        print("\nbench.py: stopped; nothing written", file=sys.stderr)
        return 130
    try:
        runtime.write_json(args.out, res)
    except runtime.FileProblem as e:
        print(json.dumps(res, indent=1))     # the results are not lost
        print(f"bench.py: error: {e}", file=sys.stderr)
        return 1
    print(f"\nwritten to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
