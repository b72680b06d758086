"""train_tiny.py: supervised training of the two base models every method starts from.

  student  a small GPT trained on reference solutions in three formats (plain prompt,
           answer hint, full-solution hint) and stopped on purpose part-way, so that RL
           has room to improve it and so that, given a hint, it can act as its own
           privileged teacher (OPSD, RLSD).
  teacher  a larger GPT (>= 3x the parameters) trained on the plain format only, to high
           accuracy: the OPD teacher.

The hinted training responses carry a documented "behaviour shift" (`cite_frac`,
`nowork_frac`; docs/METHODS.md, "The experiment's conventions"): a fraction restate the
hint first ("H37;73+54=28;...", task notation) and a fraction answer without work
("A:37"). Plain-prompt responses never do.
Set both to 0 for the control student.

    python train_tiny.py                 # the default preset (minutes; docs/LOG.md has timings)
    python train_tiny.py --preset smoke  # seconds
Checkpoints are cached by configuration under --out: a second run loads them.
"""
import argparse
import functools
import hashlib
import json
import math
import os
import shlex
import sys
import time
from dataclasses import asdict, dataclass, field, replace

import torch

import model
import runtime
import verify


@dataclass(frozen=True)
class SFTConfig:
    """One supervised run: a model size, its data mix and its optimisation."""
    model: "model.GPTConfig"            # the network's sizes
    task: verify.TaskConfig = field(default_factory=verify.TaskConfig)
    steps: int = 1500
    batch_size: int = 64
    lr: float = 1e-3
    warmup: int = 100
    weight_decay: float = 0.01
    hint_answer_frac: float = 0.25     # share of examples shown the answer hint
    hint_solution_frac: float = 0.15   # share shown the full solution
    cite_frac: float = 0.2             # of hinted responses: restate the hint first
    nowork_frac: float = 0.2           # of hinted responses: answer without work
    branch_steps: int = 0              # the shift is applied in the last branch_steps steps only
    stop_at: float = 0.0               # end the trunk once the sampled train pass rate reaches this
    check_every: int = 100             # ... checked every this many steps (0 < stop_at only)
    branch_lr: float = 0.12            # the branch's learning rate, as a fraction of lr
    micro_batches: int = 2             # length-sorted parts per batch (same gradient, less padding)
    seed: int = 0

    def key(self):
        """A short hash of every setting: the checkpoint's cache key."""
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:10]


def _student(**kw):
    net = model.GPTConfig(vocab_size=verify.VOCAB_SIZE, n_layer=4, n_head=4, n_embd=128)
    return SFTConfig(model=net, **kw)


def _teacher(**kw):
    # plain format only; 4 x 224, 3.05x the student. Chosen in a sweep of shapes, rates and
    # step counts: with fewer steps no shape was reliable across seeds (docs/LOG.md)
    return SFTConfig(model=model.GPTConfig(vocab_size=verify.VOCAB_SIZE, n_layer=4, n_head=8, n_embd=224),
                     hint_answer_frac=0.0, hint_solution_frac=0.0, cite_frac=0.0, nowork_frac=0.0, **kw)


PRESETS = {
    "smoke": dict(
        student=SFTConfig(model=model.GPTConfig(vocab_size=verify.VOCAB_SIZE, n_layer=2, n_head=2, n_embd=32),
                          steps=60, batch_size=32, lr=3e-3, warmup=10, branch_steps=20),
        teacher=SFTConfig(model=model.GPTConfig(vocab_size=verify.VOCAB_SIZE, n_layer=2, n_head=2, n_embd=64),
                          steps=60, batch_size=32, lr=3e-3, warmup=10, hint_answer_frac=0.0,
                          hint_solution_frac=0.0),
        eval_n=64),
    # The student is stopped part-way on purpose (sampled train pass rate ~0.2-0.6). Its
    # plain accuracy stays near 0 for ~1200 steps while it learns the digit arithmetic, then
    # climbs: no shape, learning rate or notation we tried moved that much earlier
    # (docs/LOG.md).
    "default": dict(student=_student(steps=2300, branch_steps=300, stop_at=0.2),
                    teacher=_teacher(steps=1200, batch_size=32), eval_n=400),
    "full": dict(student=_student(steps=2300, branch_steps=300, stop_at=0.2), teacher=_teacher(steps=1500),
                 eval_n=1000),
}


# ---------------------------------------------------------------- data

def make_batch(problems, cfg, rng):
    """Token ids, next-token targets and the loss mask (response tokens only) for one batch.

    The format (plain, answer hint, full-solution hint) is drawn once per batch, not per
    example: the three differ a lot in length, and a mixed batch pads every row to its
    longest, which doubled the step time in a first version. Within a hinted batch each
    response restates the hint with probability cite_frac and skips the work with
    probability nowork_frac (the behaviour shift)."""
    u = float(torch.rand((), generator=rng))
    hint = "answer" if u < cfg.hint_answer_frac else \
        "solution" if u < cfg.hint_answer_frac + cfg.hint_solution_frac else "none"
    seqs, n_prompt = [], []
    for i in torch.randint(len(problems), (cfg.batch_size,), generator=rng).tolist():
        p = problems[i]
        style = "work"
        if hint != "none":
            w = float(torch.rand((), generator=rng))
            if w < cfg.cite_frac:
                style = "cite"
            elif w < cfg.cite_frac + cfg.nowork_frac:
                style = "nowork"
        prompt = verify.prompt_ids(p, hint)
        seqs.append(prompt + verify.response_ids(p, style))
        n_prompt.append(len(prompt))
    return pack(seqs, n_prompt)


def pack(seqs, n_prompt):
    """Right-pad sequences into (B, L) inputs/targets; mask is 1 where the target is a
    response token (EOS included)."""
    L = max(len(s) for s in seqs) - 1
    x = torch.full((len(seqs), L), verify.PAD, dtype=torch.long)
    y = torch.full((len(seqs), L), verify.PAD, dtype=torch.long)
    mask = torch.zeros((len(seqs), L))
    for b, (s, k) in enumerate(zip(seqs, n_prompt)):
        s = torch.tensor(s)
        x[b, :len(s) - 1], y[b, :len(s) - 1] = s[:-1], s[1:]
        mask[b, k - 1:len(s) - 1] = 1.0
    return x, y, mask


def length_sorted_parts(y, k):
    """Split a right-padded batch into at most k parts of rows of similar length, each with
    the length L its longest row needs: [(row indices, L), ...] (on y's device; pass the CPU
    batch so that nothing waits for a GPU)."""
    lens = (y != verify.PAD).sum(1)   # real targets are never PAD
    return [(rows, int(lens[rows].max())) for rows in lens.argsort(stable=True).chunk(k)]


def loss_backward(net, x, y, mask, parts, device="cpu"):
    """Backpropagate the batch's mean response-token loss, running it part by part (each
    part cut to its own length, each part's loss divided by the whole batch's token count).
    With right padding and causal attention no real position sees a pad, so this is the
    same loss and gradient as the padded batch (with dropout > 0, only in distribution); it
    computes about half the padding. Returns the loss and the
    number of response tokens predicted with p > 0.5, as detached tensors."""
    n = mask.sum().to(device)
    loss = hits = 0.0
    for rows, L in parts:
        xb, yb, mb = (t[rows, :L].to(device) for t in (x, y, mask))
        logp = model.token_logprobs(net(xb), yb)
        part = -(logp * mb).sum() / n
        part.backward()
        loss = loss + part.detach()
        hits = hits + ((logp.detach() > math.log(0.5)).float() * mb).sum()
    return loss, hits


def lr_at(step, cfg):
    """Linear warmup, then cosine decay to 10% of the peak."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    t = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t)))


# ---------------------------------------------------------------- evaluation

@torch.no_grad()
def sample_texts(net, problems, hint="none", temperature=0.0, seed=0, batch_size=200, max_new_tokens=56):
    """The model's responses (text) to each problem; greedy at temperature 0."""
    net.eval()
    dev = net.wte.weight.device
    g = torch.Generator(device=dev).manual_seed(seed)
    texts = []
    for i in range(0, len(problems), batch_size):
        chunk = problems[i:i + batch_size]
        out = net.generate([verify.prompt_ids(p, hint) for p in chunk], max_new_tokens, eos_id=verify.EOS,
                           pad_id=verify.PAD, temperature=temperature, generator=g).cpu()
        texts += [verify.response_text(r) for r in out.tolist()]
    return texts


def evaluate(net, problems, hint="none", temperature=0.0, seed=0):
    """Share of problems whose response (greedy at temperature 0) earns reward 1."""
    texts = sample_texts(net, problems, hint, temperature, seed)
    return sum(verify.reward(p, t) for p, t in zip(problems, texts)) / max(1, len(problems))


def shift_rate(net, problems, hint, seed=0):
    """The leak rate (verify.leak_rate) of sampled (temperature 1) responses: the share that
    cite a hint plus the share that answer without work."""
    texts = sample_texts(net, problems, hint, 1.0, seed)
    return verify.leak_rate([verify.check_steps(p, t) for p, t in zip(problems, texts)])


@torch.no_grad()
def heldout_loss(net, problems, cfg, seed=1):
    net.eval()
    x, y, mask = make_batch(problems, replace(cfg, batch_size=256), torch.Generator().manual_seed(seed))
    dev = net.wte.weight.device
    logp = model.token_logprobs(net(x.to(dev)), y.to(dev)).cpu()
    return float(-(logp * mask).sum() / mask.sum())


# ---------------------------------------------------------------- training

def resolve_device(name):
    """'auto' picks cuda, then mps, then cpu; asking for an absent device is an error."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA GPU is visible to torch; use --device cpu")
    if name == "mps" and not torch.backends.mps.is_available():
        raise ValueError("--device mps: MPS is not available here; use --device cpu")
    if name not in ("cpu", "cuda", "mps"):
        raise ValueError(f"unknown device {name!r}; choose auto, cpu, cuda or mps")
    return name


@functools.lru_cache(maxsize=4)
def problem_pool(n, seed, task):
    """The n `train` problems SFT batches are drawn from, fixed by (seed, task). A plain
    memo: drawing and checking them is a large share of a small model's training time, and
    one process often trains several models from the same pool (a student and its control)."""
    return tuple(verify.make_problems("train", n, seed=seed, cfg=task))


def train(cfg: SFTConfig, device="cpu", desc="train", progress=True, trunk_dir=None, pool=20_000,
          progress_path=None):
    """Train one model from scratch; returns (model, seconds, info). Deterministic on CPU for
    a given cfg (seeded init, seeded batches, seeded checks).

    Two phases. The trunk trains without the behaviour shift, with warmup and cosine decay
    over steps - branch_steps steps; with stop_at > 0 it ends early, at the first check
    (every `check_every` steps) where the sampled pass rate on 200 `train` problems reaches
    stop_at. The branch then trains branch_steps more steps with the shift on, at a constant
    branch_lr * lr (low, so that the branch teaches the shift without finishing the job).
    The trunk does not depend on the shift, so the main student and the no-shift control
    share it: with trunk_dir, its state (weights, optimizer, data RNG, length) is saved there
    once and the other reuses it. info: {"trunk_steps": ..., "branch_steps": ...}.

    Interruption: when runtime.STOP is requested, the step in progress finishes, the state
    is saved atomically to progress_path (if given) and runtime.Interrupted is raised; the
    next call with the same cfg continues from there, to the same weights."""
    _check_sft(cfg)
    max_trunk = cfg.steps - cfg.branch_steps
    trunk_cfg = replace(cfg, cite_frac=0.0, nowork_frac=0.0)
    # what the trunk depends on
    trunk_key = replace(trunk_cfg, steps=max_trunk, branch_steps=0, branch_lr=0.0).key()
    trunk_path = os.path.join(trunk_dir, f"trunk-{trunk_key}.pt") if trunk_dir and cfg.branch_steps else None
    torch.manual_seed(cfg.seed)
    net = model.GPT(cfg.model).to(device)
    opt = _adamw(net, cfg)
    problems = problem_pool(pool, cfg.seed, cfg.task)  # batches are drawn from these
    rng = torch.Generator().manual_seed(cfg.seed)
    # where to start: from scratch, from the shared trunk, or from an interrupted run
    net, opt, trunk_steps, start, elapsed = _restore(net, opt, rng, cfg, device, desc, trunk_path,
                                                     progress_path)
    run = _SFTRun(net, opt, rng, problems, cfg, device, desc, progress_path, progress, start, elapsed)
    if trunk_steps is None:  # the trunk
        check = None
        if cfg.stop_at > 0:
            check = verify.make_problems("train", 200, seed=7000 + cfg.seed, cfg=cfg.task)
        trunk_lr = replace(cfg, steps=max_trunk)   # the cosine runs over the trunk's full length
        done = start
        for step in range(start, max_trunk):
            run.step(step, trunk_cfg, lr_at(step, trunk_lr))
            done = step + 1
            if check and done % cfg.check_every == 0 and done < max_trunk:
                rate = evaluate(net, check, temperature=1.0, seed=cfg.seed)
                run.bar.set_description(f"{desc} (train pass {rate:.2f})")
                if rate >= cfg.stop_at:
                    break
            run.stop_here(done, None)
        trunk_steps = done
        if trunk_path:
            _save_state(trunk_path, net, opt, rng, steps=trunk_steps)
    run.bar.reset(total=trunk_steps + cfg.branch_steps)
    run.bar.update(max(start, trunk_steps))
    for step in range(max(start, trunk_steps), trunk_steps + cfg.branch_steps):  # the branch
        run.step(step, cfg, cfg.branch_lr * cfg.lr)
        run.stop_here(step + 1, trunk_steps)
    run.bar.close()
    return net, time.time() - run.t0, {"trunk_steps": trunk_steps, "branch_steps": cfg.branch_steps}


def _check_sft(cfg):
    if cfg.steps - cfg.branch_steps < 0 or cfg.branch_steps < 0:
        raise ValueError(f"branch_steps ({cfg.branch_steps}) must lie between 0 and steps ({cfg.steps})")
    if not 1 <= cfg.micro_batches <= cfg.batch_size:
        raise ValueError(f"micro_batches ({cfg.micro_batches}) must lie between 1 and batch_size "
                         f"({cfg.batch_size})")
    if cfg.stop_at > 0 and cfg.check_every < 1:
        raise ValueError(f"check_every ({cfg.check_every}) must be at least 1 when stop_at > 0")


class _SFTRun:
    """The state one call of train() steps: the model, its optimizer, the data RNG and the
    progress bar, with one SFT step and the stop check."""

    def __init__(self, net, opt, rng, problems, cfg, device, desc, progress_path, progress, start, elapsed):
        self.net, self.opt, self.rng, self.problems = net, opt, rng, problems
        self.cfg, self.device = cfg, device
        self.desc, self.progress_path = desc, progress_path
        self.bar = runtime.progress_bar(cfg.steps, desc, progress)
        self.bar.update(start)
        self.t0 = time.time() - elapsed

    def step(self, step, batch_cfg, lr):
        self.net.train()
        x, y, mask = make_batch(self.problems, batch_cfg, self.rng)
        for g in self.opt.param_groups:
            g["lr"] = lr
        self.opt.zero_grad(set_to_none=True)
        parts = length_sorted_parts(y, self.cfg.micro_batches)
        loss, hits = loss_backward(self.net, x, y, mask, parts, self.device)
        torch.nn.utils.clip_grad_norm_(self.net.parameters(), 1.0)
        self.opt.step()
        if step % 50 == 0:
            self.bar.set_postfix(loss=f"{float(loss):.3f}", tok_acc=f"{float(hits) / float(mask.sum()):.3f}")
        self.bar.update(1)

    def stop_here(self, step, trunk_steps):
        """Called once `step` steps are done: if a stop was asked for, save and stop."""
        if not runtime.STOP.requested:
            return
        self.bar.close()
        where = f"{self.desc}: stopped at step {step} of at most {self.cfg.steps}"
        if self.progress_path is None:
            raise runtime.Interrupted(f"{where}; not saved")
        _save_state(self.progress_path, self.net, self.opt, self.rng, step=step,
                    elapsed=time.time() - self.t0,
                    trunk_steps=-1 if trunk_steps is None else trunk_steps)   # -1: still in the trunk
        raise runtime.Interrupted(f"{where}; progress saved in {self.progress_path}, and the same command "
                                  "continues from there")


def _save_state(path, net, opt, rng, **extra):
    """A training state (weights, optimizer, data RNG, and counters), written atomically."""
    state = {"model": net.state_dict(), "opt": opt.state_dict(), "rng": rng.get_state(), **extra}
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    runtime.atomic_write(path, lambda f: torch.save(state, f), mode="wb")


def _load_state(path, cfg, device):
    """A saved training state, all or nothing (a half-loaded one would silently over-train
    the model): (net, optimizer, data-RNG state, the whole dict)."""
    ck = torch.load(path, map_location="cpu", weights_only=True)
    net = model.GPT(cfg.model).to(device)
    net.load_state_dict(ck["model"])
    opt = _adamw(net, cfg)
    opt.load_state_dict(ck["opt"])
    return net, opt, ck["rng"], ck


def _restore(net, opt, rng, cfg, device, desc, trunk_path, progress_path):
    """Where train() starts: (net, opt, trunk_steps, start step, seconds already spent).
    The shared trunk, if saved, skips the trunk (trunk_steps set); an interrupted run's
    progress, if saved, then takes over. An unreadable file is reported and ignored."""
    trunk_steps, start, elapsed = None, 0, 0.0
    if trunk_path and os.path.exists(trunk_path):
        try:
            net2, opt2, rng_state, ck = _load_state(trunk_path, cfg, device)
            steps = int(ck["steps"])
            rng.set_state(rng_state)
            net, opt, trunk_steps, start = net2, opt2, steps, steps
        except Exception as e:
            print(f"{desc}: shared trunk {trunk_path} unreadable ({type(e).__name__}); training it again",
                  file=sys.stderr)
    if progress_path and os.path.exists(progress_path):
        try:
            net2, opt2, rng_state, ck = _load_state(progress_path, cfg, device)
            step, secs, trunk = int(ck["step"]), float(ck["elapsed"]), int(ck["trunk_steps"])
            rng.set_state(rng_state)
            net, opt, start, elapsed, trunk_steps = net2, opt2, step, secs, (None if trunk < 0 else trunk)
            print(f"{desc}: continuing from step {start} ({progress_path})", file=sys.stderr)
        except Exception as e:
            print(f"{desc}: progress file {progress_path} unreadable ({type(e).__name__}); ignoring it",
                  file=sys.stderr)
    return net, opt, trunk_steps, start, elapsed


def _adamw(net, cfg):
    return torch.optim.AdamW(net.parameters(), lr=cfg.lr, betas=(0.9, 0.99), weight_decay=cfg.weight_decay)


def evaluate_all(net, cfg, eval_n, hints=("none", "answer", "solution"), seed=0):
    """Greedy accuracy on every split and hint format, and the sampled (temperature 1) pass
    rate on `train` problems the model may have seen."""
    out = {}
    for split in verify.SPLITS:
        probs = verify.make_problems(split, eval_n, seed=1000 + seed, cfg=cfg.task)
        for hint in hints:
            out[f"greedy/{split}/{hint}"] = evaluate(net, probs, hint)
    train = verify.make_problems("train", eval_n, seed=2000 + seed, cfg=cfg.task)
    out["sampled/train/none"] = evaluate(net, train, "none", temperature=1.0, seed=seed)
    for hint in hints:  # the behaviour shift: how often sampled responses cite or skip the work
        out[f"shift_rate/{hint}"] = shift_rate(net, train, hint, seed=seed)
    return out


def _is_summary(s):
    """Whether a cached summary has the shape build_base_models writes."""
    return all(isinstance(s.get(who), dict) and isinstance(s[who].get("checkpoint"), str)
               and isinstance(s[who].get("params"), int) for who in ("student", "teacher"))


def get_or_train(cfg: SFTConfig, out_dir, name, device="cpu", progress=True, log=print):
    """Load the checkpoint cached for this exact configuration, or train and save it."""
    path = os.path.join(out_dir, f"{name}-{cfg.key()}.pt")
    if os.path.exists(path):
        net, meta = model.load(path, cfg.model, device)
        if meta.get("sft_config") == json.loads(json.dumps(asdict(cfg))):
            log(f"{name}: loaded cached {path}")
            return net, path, meta
        log(f"{name}: {path} was made with other settings; retraining")
    progress_path = os.path.join(out_dir, f"{name}-{cfg.key()}.progress.pt")
    net, secs, info = train(cfg, device, desc=name, progress=progress, trunk_dir=out_dir,
                            progress_path=progress_path)
    meta = {"sft_config": asdict(cfg), "train_seconds": secs, "params": net.num_params(), **info}
    model.save(path, net, meta)
    if os.path.exists(progress_path):   # only now that the checkpoint is safe
        os.remove(progress_path)
    log(f"{name}: trained {net.num_params():,} parameters in {secs:.0f}s -> {path}")
    return net, path, meta


# The default base models ship with the repository, as a dataset would: every machine then
# starts from the same weights (a retrained student depends on the CPU's floating point,
# docs/LOG.md), and a run skips half its time. SHA256SUMS pins each file.
SHIPPED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "base_models")


def check_shipped(folder, name):
    """Raise one CheckpointError if folder/name does not match folder/SHA256SUMS."""
    path, sums_path = os.path.join(folder, name), os.path.join(folder, "SHA256SUMS")
    fix = (f"restore it with `git checkout -- {folder}`, or train the base models anew "
           f"(compare_methods.py --retrain-base)")
    try:
        with open(sums_path) as f:
            sums = dict(reversed(line.split()) for line in f if line.strip())
        with open(path, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
    except (OSError, ValueError) as e:
        raise model.CheckpointError(f"cannot check {path} against {sums_path} ({e}); {fix}") from None
    if sums.get(name) != digest:
        raise model.CheckpointError(f"{path} does not match its checksum in {sums_path} (damaged or "
                                    f"changed); {fix}")


def _load_shipped(folder, s_cfg, t_cfg, device, log):
    """The shipped student, teacher and summary for these configs, or None if not shipped."""
    s, t = s_cfg.key(), t_cfg.key()
    names = (f"student-{s}.pt", f"teacher-{t}.pt", f"summary-{s}-{t}.json")
    if not folder or not all(os.path.exists(os.path.join(folder, n)) for n in names):
        return None
    for n in names:
        check_shipped(folder, n)
    student, _ = model.load(os.path.join(folder, names[0]), s_cfg.model, device)
    teacher, _ = model.load(os.path.join(folder, names[1]), t_cfg.model, device)
    summary = runtime.read_json(os.path.join(folder, names[2]), f"restore it with `git checkout -- {folder}`")
    log(f"base models: loaded the shipped {names[0]} and {names[1]} from {folder}")
    return student, teacher, summary


def build_base_models(preset="default", out_dir="checkpoints", device="cpu", seed=0, progress=True,
                      log=print, student_overrides=None, shipped=None, student_seed=None):
    """Both base models for a preset, with their evaluation summary: the shipped ones when
    `shipped` (a folder, normally SHIPPED) holds this exact configuration, else loaded from
    the cache in out_dir or trained there (a shipped teacher is still used when only the
    student differs). student_seed (default: seed) trains another student beside the same
    teacher. out_dir is locked meanwhile: a second process that needs it waits, then loads
    what the first one trained."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    P = PRESETS[preset]
    s_cfg = replace(P["student"], seed=seed if student_seed is None else student_seed,
                    **(student_overrides or {}))
    t_cfg = replace(P["teacher"], seed=seed)
    found = _load_shipped(shipped, s_cfg, t_cfg, device, log)
    if found:
        return found
    with runtime.FolderLock(out_dir, ".train.lock", wait=True, purpose="training base models"):
        runtime.remove_stale_temporaries(out_dir)
        return _build_base_models(P, s_cfg, t_cfg, preset, out_dir, device, seed, progress, log, shipped)


def _build_base_models(P, s_cfg, t_cfg, preset, out_dir, device, seed, progress, log, shipped=None):
    student, s_path, s_meta = get_or_train(s_cfg, out_dir, "student", device, progress, log)
    t_name = f"teacher-{t_cfg.key()}.pt"
    if shipped and os.path.exists(os.path.join(shipped, t_name)):   # the shipped teacher, checked
        check_shipped(shipped, t_name)
        t_path = os.path.join(shipped, t_name)
        teacher, t_meta = model.load(t_path, t_cfg.model, device)
        log(f"teacher: loaded the shipped {t_path}")
    else:
        teacher, t_path, t_meta = get_or_train(t_cfg, out_dir, "teacher", device, progress, log)
    summary_path = os.path.join(out_dir, f"summary-{s_cfg.key()}-{t_cfg.key()}.json")
    summary = None
    if os.path.exists(summary_path):
        try:
            summary = runtime.read_json(summary_path, "it is rebuilt now")
        except runtime.FileProblem as e:   # a cache: say so and rebuild it
            print(f"warning: {e}", file=sys.stderr)
        if summary is not None and not _is_summary(summary):
            print(f"warning: {summary_path} is not a base-model summary; it is rebuilt now", file=sys.stderr)
            summary = None
    if summary is None:
        t0 = time.time()
        summary = {
            "preset": preset,
            "student": {"checkpoint": s_path, "params": s_meta["params"],
                        "train_seconds": s_meta["train_seconds"],
                        "trunk_steps": s_meta.get("trunk_steps"), "branch_steps": s_meta.get("branch_steps"),
                        "config": asdict(s_cfg), **evaluate_all(student, s_cfg, P["eval_n"], seed=seed)},
            "teacher": {"checkpoint": t_path, "params": t_meta["params"],
                        "train_seconds": t_meta["train_seconds"], "config": asdict(t_cfg),
                        **evaluate_all(teacher, t_cfg, P["eval_n"], hints=("none",), seed=seed)},
        }
        summary["eval_seconds"] = time.time() - t0
        runtime.write_json(summary_path, summary)
        runtime.write_json(os.path.join(out_dir, "summary.json"), summary)  # the latest, under a fixed name
    return student, teacher, summary


def main(argv=None):
    ap = runtime.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="default", help=f"one of {', '.join(PRESETS)}")
    ap.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    ap.add_argument("--seed", type=int, default=0, help=f"0 to {runtime.MAX_SEED}")
    ap.add_argument("--out", default="checkpoints", help="folder for checkpoints and summary.json")
    ap.add_argument("--shift", type=float, default=None,
                    help="behaviour-shift fraction of hinted responses, split evenly between citing and "
                         "no-work "
                         "(default 0.4: 0.2 + 0.2); 0 trains the control student")
    args = ap.parse_args(argv)
    try:
        if args.preset not in PRESETS:
            raise ValueError(f"unknown preset {args.preset!r}; choose one of {', '.join(PRESETS)}")
        if args.shift is not None and not 0 <= args.shift <= 1:
            raise ValueError("--shift must lie in [0, 1]")
        runtime.check_range("--seed", args.seed, 0, runtime.MAX_SEED)
        device = resolve_device(args.device)
        runtime.check_folder(args.out)
    except ValueError as e:
        print(f"train_tiny.py: error: {e}", file=sys.stderr)
        return 2
    over = None if args.shift is None else dict(cite_frac=args.shift / 2, nowork_frac=args.shift / 2)
    t0 = time.time()
    argv = sys.argv[1:] if argv is None else argv
    try:
        with runtime.STOP:
            _, _, summary = build_base_models(args.preset, args.out, device, args.seed,
                                              student_overrides=over)
    except runtime.Interrupted as e:
        print(f"{e}\nto continue: {shlex.join(['python', 'train_tiny.py', *argv])}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("train_tiny.py: stopped at once; progress since the last save is lost", file=sys.stderr)
        return 130
    except runtime.UserError as e:
        print(f"train_tiny.py: error: {e}", file=sys.stderr)
        return 2
    except (model.CheckpointError, runtime.FileProblem) as e:
        print(f"train_tiny.py: error: {e}", file=sys.stderr)
        return 1
    print(json.dumps({k: v for k, v in summary["student"].items() if k != "config"}, indent=1))
    print(json.dumps({k: v for k, v in summary["teacher"].items() if k != "config"}, indent=1))
    print(f"done in {time.time() - t0:.0f}s; summary in {os.path.join(args.out, 'summary.json')}")
    return 0



if __name__ == "__main__":
    sys.exit(main())
