"""integrations/trl_rlsd.py: RLSD and OPSD on Hugging Face models through TRL 1.16.0, with the
credit computed by this project's own rlsd.py.

What is here:
  RLSDConfig     GRPOConfig plus RLSD's settings (lam0, lam_decay_steps, eps_w, the teacher)
  RLSDTrainer    GRPOTrainer that overrides only `_generate_and_score_completions`: GRPO's
                 group advantage A (B,) becomes RLSD's per-token credit (B, T)
  opsd_config    the trl.experimental SDFTConfig that trains the project's OPSD
  main --demo    a few RLSD steps on the arithmetic task with the exported shipped student,
                 on CPU, then the check that TRL trained on exactly rlsd.py's credit

RLSD (docs/METHODS.md, "RLSD", Eq. 13-15): the verifier's group advantage A sets each
token's direction, a self-teacher (the same network shown privileged context, e.g. the
reference answer) only its magnitude: Ahat_t = A * (1 + lam * (clip(w_t) - 1)) with
w_t = exp(sign(A) * sg(logp_T - logp_S)). `rlsd.rlsd_token_advantages` computes it here, so
the math is the one the conformance vectors pin (tests/vectors/).

What RLSDTrainer takes from TRL as it is (read in TRL 1.16.0's grpo_trainer.py):
  - A is TRL's GRPO advantage, already sliced to this process's rows: (R - mean_g R) /
    (std_g R + 1e-4) with the unbiased std (`scale_rewards="group"`). docs/METHODS.md
    ("RLVR: GRPO") adds 1e-6, not 1e-4: a relative difference below 3e-4 for binary rewards
    and G = 8; everything after A is the project's.
  - `_compute_loss` accepts (B, T) advantages (it unsqueezes only a 1-D tensor), and every
    loss_type broadcasts them; "dapo" is the project's token-mean over the whole batch.
  - log-probs come from TRL's own `_get_per_token_logps_and_entropies` (its fused LM head,
    divided by the sampling temperature), for the teacher as for the student, so the
    teacher scores the same completion tokens the same way.
"""
import argparse
import dataclasses
import os
import string
import sys
import tempfile
import time
import warnings

import torch
from transformers import TrainerCallback
from transformers.trainer_callback import PrinterCallback
from trl import GRPOConfig, GRPOTrainer
from trl.trainer.utils import add_fused_lm_head, pad

import rlsd

TEACHER_WEIGHTS = ("initial", "snapshot", "live")


@dataclasses.dataclass
class RLSDConfig(GRPOConfig):
    """GRPOConfig plus RLSD. Defaults follow docs/METHODS.md ("RLSD", "Defaults and where
    they come from"). Recommended with them, and set here by default: `loss_type="dapo"`
    (token-mean), `beta=0` (no KL), clip 0.2 / 0.28 (`epsilon`, `epsilon_high`).

    lam0, lam_decay_steps  rlsd.lam_schedule(step, lam0=lam0, decay_steps=lam_decay_steps):
                           lam0 at step 0, linearly to 0 at lam_decay_steps (then GRPO)
    eps_w                  the clip of the evidence weight w_t to [1 - eps_w, 1 + eps_w]
    teacher_prompt_template  how the teacher's prompt is built from the student's prompt and
                           the row's `privileged_context` column (as TRL's SDFT does)
    teacher_weights        initial (a frozen copy of the starting model), snapshot (that copy,
                           refreshed every teacher_sync_steps optimizer steps), live (the
                           current weights, under no_grad)
    """
    lam0: float = dataclasses.field(default=0.5, metadata={"help": "RLSD mixing factor at step 0"})
    lam_decay_steps: int = dataclasses.field(default=50, metadata={"help": "steps over which lam falls to 0"})
    eps_w: float = dataclasses.field(default=0.2, metadata={"help": "clip of the evidence weight: [1-eps_w, 1+eps_w]"})
    teacher_prompt_template: str = dataclasses.field(
        default="{prompt}\n\n{privileged_context}",
        metadata={"help": "the teacher's prompt, from {prompt} and {privileged_context}"})
    teacher_weights: str = dataclasses.field(default="snapshot", metadata={"help": "initial | snapshot | live"})
    teacher_sync_steps: int = dataclasses.field(default=10, metadata={"help": "snapshot refresh period (steps)"})
    epsilon_high: float = dataclasses.field(default=0.28, metadata={"help": "upper clip (DAPO clip-higher)"})

    def __post_init__(self):
        super().__post_init__()
        if not 0.0 <= self.lam0 <= 1.0:
            raise ValueError(f"lam0 must lie in [0, 1], got {self.lam0}")
        if int(self.lam_decay_steps) != self.lam_decay_steps or self.lam_decay_steps <= 0:
            raise ValueError(f"lam_decay_steps must be a positive integer, got {self.lam_decay_steps}")
        if not self.eps_w >= 0.0:   # any eps_w >= 0 keeps the sign of A (docs/METHODS.md, "RLSD")
            raise ValueError(f"eps_w must be >= 0, got {self.eps_w}")
        if self.teacher_weights not in TEACHER_WEIGHTS:
            raise ValueError(f"teacher_weights must be one of {TEACHER_WEIGHTS}, got {self.teacher_weights!r}")
        if int(self.teacher_sync_steps) != self.teacher_sync_steps or self.teacher_sync_steps < 1:
            raise ValueError(f"teacher_sync_steps must be a positive integer, got {self.teacher_sync_steps}")
        try:
            fields = {f for _, f, _, _ in string.Formatter().parse(self.teacher_prompt_template) if f is not None}
        except ValueError as e:   # an unmatched brace
            raise ValueError(f"teacher_prompt_template {self.teacher_prompt_template!r}: {e}") from None
        if fields != {"prompt", "privileged_context"}:
            raise ValueError("teacher_prompt_template must use {prompt} and {privileged_context} and no other "
                             f"field (write a literal brace as {{{{ or }}}}): {self.teacher_prompt_template!r}")


def check_privileged_context(dataset, name, required):
    """Every row's `privileged_context` is a non-empty string (an empty one would train as
    GRPO without a word, an integer would be written into the prompt). A dataset without
    the column is refused when `required`; a streamed dataset is checked as it is read."""
    columns = getattr(dataset, "column_names", None)
    if dataset is None or columns is None:
        return
    if "privileged_context" not in columns:
        if required:
            raise ValueError(f"RLSDTrainer needs a `privileged_context` column in {name} (the hint the teacher "
                             f"sees); its columns are {', '.join(columns)}")
        return
    for i, c in enumerate(dataset["privileged_context"]):
        if not (isinstance(c, str) and c.strip()):
            raise ValueError(f"{name} row {i}: privileged_context must be a non-empty string, got {c!r}")


class RLSDTrainer(GRPOTrainer):
    """GRPOTrainer whose advantages are RLSD's per-token credit (docs/METHODS.md, "RLSD").

    Needs a `privileged_context` column in the dataset (keep `remove_unused_columns=False`,
    GRPOConfig's default). Only `_generate_and_score_completions` is overridden; the teacher
    is made on its first call, before any update, so `initial` is the starting model.

    Besides TRL's keys, the batch carries `rlsd_sequence_advantages` (B,), and
    `rlsd_teacher_logps`, `rlsd_student_logps` (B, T): what the credit was computed from.
    They travel with TRL's shuffling and splitting, so the credit can be checked row for
    row where `_compute_loss` receives it; the loss reads none of them.
    """

    _rlsd_teacher = None
    _rlsd_synced_at = 0

    def __init__(self, model, reward_funcs=None, args=None, train_dataset=None, eval_dataset=None, **kwargs):
        # the dataset is checked before any model is loaded or update made
        check_privileged_context(train_dataset, "train_dataset", required=True)
        evals = eval_dataset.items() if isinstance(eval_dataset, dict) else [("eval_dataset", eval_dataset)]
        for name, ds in evals:
            check_privileged_context(ds, name, required=False)
        super().__init__(model, reward_funcs, args=args, train_dataset=train_dataset, eval_dataset=eval_dataset,
                         **kwargs)

    def _generate_and_score_completions(self, inputs):
        contexts = [x.get("privileged_context") for x in inputs]
        if any(c is None for c in contexts):
            raise ValueError("RLSDTrainer needs a `privileged_context` column in the dataset (the hint the "
                             "teacher sees) with a value in every row; keep remove_unused_columns=False")
        out = super()._generate_and_score_completions(inputs)
        args, mode = self.args, ("train" if self.model.training else "eval")
        completion_ids, completion_mask = out["completion_ids"], out["completion_mask"]
        mask = completion_mask if "tool_mask" not in out else completion_mask * out["tool_mask"]
        T = completion_ids.size(1)
        batch_size = args.per_device_train_batch_size if mode == "train" else args.per_device_eval_batch_size

        # the teacher's context: the same completion tokens after prompt + privileged context
        teacher_prompts = [self._teacher_prompt(x["prompt"], c) for x, c in zip(inputs, contexts)]
        t_ids = [torch.tensor(ids) for ids in self._tokenize_prompts(teacher_prompts)[0]]
        t_mask = pad([torch.ones_like(t) for t in t_ids], padding_value=0, padding_side="left")
        t_ids = pad(t_ids, padding_value=self._tokenizer.pad_token_id, padding_side="left")
        t_input = torch.cat([t_ids.to(completion_ids.device), completion_ids], dim=1)
        t_attn = torch.cat([t_mask.to(completion_ids.device), completion_mask], dim=1)

        step = self.state.global_step
        teacher = self._teacher(step)
        with torch.no_grad():
            logp_t = self._get_per_token_logps_and_entropies(teacher, t_input, t_attn, T, batch_size=batch_size)[0]
            logp_s = out.get("old_per_token_logps")
            if logp_s is None:   # on-policy: the current weights are the sampling weights
                s_input = torch.cat([out["prompt_ids"], completion_ids], dim=1)
                s_attn = torch.cat([out["prompt_mask"], completion_mask], dim=1)
                logp_s = self._get_per_token_logps_and_entropies(self.model, s_input, s_attn, T,
                                                                 batch_size=batch_size)[0]

        adv = out["advantages"]                                       # (B,): this process's rows
        lam = rlsd.lam_schedule(step, lam0=args.lam0, decay_steps=args.lam_decay_steps)
        out["advantages"] = rlsd.rlsd_token_advantages(adv, logp_t, logp_s, mask, lam=lam, eps_w=args.eps_w)
        out["rlsd_sequence_advantages"] = adv
        out["rlsd_teacher_logps"], out["rlsd_student_logps"] = logp_t, logp_s
        self._log_rlsd_metrics(mode, adv, logp_t, logp_s, mask, lam)
        return out

    def _teacher_prompt(self, prompt, context):
        """The teacher's prompt: the template filled with the prompt (the last user message's
        text for a conversation) and the privileged context, as TRL's SDFT builds it."""
        fill = self.args.teacher_prompt_template.format
        if isinstance(prompt, str):
            return fill(prompt=prompt, privileged_context=str(context))
        last = prompt[-1]
        if last.get("role") != "user" or not isinstance(last.get("content"), str):
            raise ValueError("RLSDTrainer builds the teacher prompt from the last message, which must be a user "
                             f"turn with text content; got role {last.get('role')!r}")
        return prompt[:-1] + [{**last, "content": fill(prompt=last["content"], privileged_context=str(context))}]

    def _teacher(self, step):
        """The teacher model for this step: self.model (live) or a frozen copy, made on the first
        call and, for `snapshot`, refreshed once teacher_sync_steps optimizer steps have passed
        since the last refresh (docs/METHODS.md, "The loop": at the start of step k > 0 with
        k % teacher_sync_steps == 0 when every step generates)."""
        kind = self.args.teacher_weights
        if kind == "live":
            return self.model
        if self._rlsd_teacher is None:
            if self.is_deepspeed_enabled and self.accelerator.state.deepspeed_plugin.zero_stage == 3 \
                    or self.is_fsdp_enabled:
                raise ValueError(f"teacher_weights={kind!r} keeps a full copy of the model on each process, which "
                                 "ZeRO-3 and FSDP shard; use ZeRO-2 or DDP, or teacher_weights='live'")
            src = self.accelerator.unwrap_model(self.model)
            try:
                teacher = type(src)(src.config)
            except Exception as e:
                raise ValueError(f"cannot make a {kind} teacher copy of {type(src).__name__} ({e}); "
                                 "use teacher_weights='live'") from None
            teacher.to(device=src.device, dtype=src.dtype)
            _copy_weights(src, teacher)
            teacher.requires_grad_(False).eval()
            add_fused_lm_head(teacher, temperature=self.temperature, cast_lm_head_to_fp32=self.args.cast_lm_head_to_fp32)
            self._rlsd_teacher, self._rlsd_synced_at = teacher, step
        elif kind == "snapshot" and step - self._rlsd_synced_at >= self.args.teacher_sync_steps:
            _copy_weights(self.accelerator.unwrap_model(self.model), self._rlsd_teacher)
            self._rlsd_synced_at = step
        return self._rlsd_teacher

    def _log_rlsd_metrics(self, mode, adv, logp_t, logp_s, mask, lam):
        """lam; the share of tokens with A != 0 whose weight was clipped (rlsd_clip_frac); the
        sampled estimate of KL(student || teacher) (kl_sampled), as rlsd.step_metrics logs them,
        summed over every process."""
        a = adv[:, None]
        m = mask.bool()
        w = rlsd.rlsd_weight(a, logp_t, logp_s, mask)
        active = (a != 0) & m
        clipped = ((w < 1 - self.args.eps_w) | (w > 1 + self.args.eps_w)) & active
        sums = torch.stack([clipped.sum().float(), active.sum().float(),
                            ((logp_s - logp_t) * m).sum().float(), m.sum().float()])
        sums = self.accelerator.reduce(sums, reduction="sum")
        self._metrics[mode]["rlsd/lam"].append(lam)
        self._metrics[mode]["rlsd/clip_frac"].append((sums[0] / sums[1].clamp(min=1)).item())
        self._metrics[mode]["rlsd/kl_sampled"].append((sums[2] / sums[3].clamp(min=1)).item())


@torch.no_grad()
def _copy_weights(src, dst):
    """Copy every parameter and buffer (non-persistent ones too, e.g. rotary frequencies)."""
    for group in ("named_parameters", "named_buffers"):
        theirs = dict(getattr(src, group)())
        for name, t in getattr(dst, group)():
            t.copy_(theirs[name])


# ---------------------------------------------------------------- OPSD through TRL's SDFT

def opsd_config(output_dir, **overrides):
    """The trl.experimental.sdft.SDFTConfig that trains the project's OPSD (docs/METHODS.md,
    "OPSD"): the full-vocabulary generalized JSD with beta 0.5 (`distillation_alpha` is
    rlsd.generalized_jsd's beta; the tests check the divergence), tau 1, over every response
    token, teacher = the initial model (`teacher_model_kind="base"`) shown the
    `privileged_context` column after the prompt, no importance-ratio clip (one update per
    batch), and the project's sampling and optimizer settings. `overrides` replace any field.

    Not the same, and not settable: SDFT averages the JSD per response, then over responses
    (docs/METHODS.md's "seq-mean-token-mean"); the project uses token-mean over the batch.
    SDFT builds a `base` teacher by reloading the model from its path, so pass the student
    to SDFTTrainer as a folder (hf_export.save_pretrained), not as an object.
    """
    from trl.experimental.sdft import SDFTConfig
    kw = dict(output_dir=output_dir,
              distillation_mode="full_logits", distillation_alpha=0.5, distillation_is_clip=None,
              num_loss_tokens_to_skip=0, teacher_model_kind="base", generate_from_teacher=False,
              teacher_prompt_template="{prompt}{privileged_context}",
              num_generations=8, max_completion_length=56, temperature=1.0, top_p=1.0, top_k=0,
              learning_rate=3e-5, lr_scheduler_type="constant_with_warmup", warmup_steps=10,
              adam_beta1=0.9, adam_beta2=0.99, weight_decay=0.0, max_grad_norm=1.0)
    kw.update(overrides)
    return SDFTConfig(**kw)


# ---------------------------------------------------------------- the demo on the arithmetic task

def task_dataset(n, seed=0, split="train"):
    """n arithmetic problems as TRL rows: `prompt` (text; the tokenizer adds BOS), the
    answer hint as `privileged_context` (verify.hint_text, e.g. "H37|"), and the problem
    (`operands`, `ops`) for the reward."""
    import datasets
    import verify
    rows = [dict(prompt=p.prompt, privileged_context=verify.hint_text(p, "answer"),
                 operands=list(p.operands), ops=list(p.ops))
            for p in verify.make_problems(split, n, seed=seed)]
    return datasets.Dataset.from_list(rows)


def task_reward(completion_ids, operands, ops, **_):
    """verify.reward on each completion, read from its token ids with verify.response_text
    (text before the first EOS; a sampled BOS or PAD becomes '?'), as rlsd.rollout does."""
    import verify
    return [verify.reward(verify.Problem(tuple(a), tuple(o)), verify.response_text(ids))
            for ids, a, o in zip(completion_ids, operands, ops)]


def demo_config(output_dir, **overrides):
    """RLSDConfig for the CPU demo: the project's RLSD settings (docs/METHODS.md, "Defaults")
    at a tiny batch: 16 completions per process a step (2 prompts x 8 samples on one process),
    the answer hint right after the prompt, the snapshot teacher refreshed every 2 steps."""
    kw = dict(output_dir=output_dir, use_cpu=True, bf16=False, report_to=[], save_strategy="no",
              logging_steps=1, disable_tqdm=True, seed=0, data_seed=0, dataloader_num_workers=0,
              per_device_train_batch_size=16, num_generations=8, max_completion_length=56, max_steps=5,
              temperature=1.0, top_p=1.0, top_k=0,
              learning_rate=3e-5, lr_scheduler_type="constant_with_warmup", warmup_steps=10,
              adam_beta1=0.9, adam_beta2=0.99, weight_decay=0.0, max_grad_norm=1.0,
              teacher_prompt_template="{prompt}{privileged_context}", teacher_weights="snapshot",
              teacher_sync_steps=2)
    kw.update(overrides)
    return RLSDConfig(**kw)


def shipped_student():
    """The shipped default student (base_models/, checked against its SHA256SUMS)."""
    import model
    import train_tiny
    name = f"student-{train_tiny.PRESETS['default']['student'].key()}.pt"
    train_tiny.check_shipped(train_tiny.SHIPPED, name)
    return model.load(os.path.join(train_tiny.SHIPPED, name))[0].eval()


class CreditRecorder:
    """Records what a trainer generated and what it trained on, on the instance (the class is
    untouched): every generation batch as `_generate_and_score_completions` returns it (rows
    in TRL's order, before shuffling), and every batch `_compute_loss` receives, with a check
    that its `advantages` equal rlsd.rlsd_token_advantages of the A and log-probs carried with
    it, bit for bit (torch.equal)."""

    KEEP = ("prompt_ids", "prompt_mask", "completion_ids", "completion_mask", "advantages",
            "rlsd_sequence_advantages", "rlsd_teacher_logps", "rlsd_student_logps")

    def __init__(self, trainer):
        self.trainer, self.generated, self.trained = trainer, [], []
        generate, loss = trainer._generate_and_score_completions, trainer._compute_loss

        def record_generation(inputs):
            batch = generate(inputs)
            # TRL keeps the gathered A of every process (before its slice) in a log deque
            # sized to the generation batch: after this call it holds this batch's
            a = trainer.args
            self.generated.append(dict(
                self._copy(batch), all_advantages=torch.tensor(list(trainer._logs["advantages"])),
                process_index=trainer.accelerator.process_index, eps_w=a.eps_w,
                lam=rlsd.lam_schedule(trainer.state.global_step, lam0=a.lam0, decay_steps=a.lam_decay_steps)))
            return batch

        def record_loss(model, inputs):
            a, lam = trainer.args, self.generated[-1]["lam"]   # the lam of the step that generated the batch
            ours = rlsd.rlsd_token_advantages(inputs["rlsd_sequence_advantages"], inputs["rlsd_teacher_logps"],
                                              inputs["rlsd_student_logps"], inputs["completion_mask"],
                                              lam=lam, eps_w=a.eps_w)
            self.trained.append(dict(self._copy(inputs), lam=lam, equal=torch.equal(ours, inputs["advantages"])))
            return loss(model, inputs)

        trainer._generate_and_score_completions, trainer._compute_loss = record_generation, record_loss

    def _copy(self, batch):
        return dict({k: batch[k].detach().cpu().clone() for k in self.KEEP}, step=self.trainer.state.global_step)


class _StepPrinter(TrainerCallback):
    """Prints the RLSD numbers of each logged step."""

    def __init__(self, out):
        self.out = out

    def on_log(self, args, state, control, logs=None, **_):
        if logs and "reward" in logs and state.is_world_process_zero:
            self.out(f"step {state.global_step - 1:2d}  reward {logs['reward']:.3f}  lam {logs['rlsd/lam']:.3f}  "
                     f"rlsd_clip_frac {logs['rlsd/clip_frac']:.3f}  kl_sampled {logs['rlsd/kl_sampled']:+.4f}  "
                     f"(TRL's PPO clip ratio {logs.get('clip_ratio/region_mean', float('nan')):.3f})")


def run_demo(steps=5, out=print, announce=False, **overrides):
    """Export the shipped student, train `steps` RLSD steps in TRL (printing reward, lam and
    the clip fraction per step); returns (trainer, recorder, the project GPT)."""
    import transformers
    from integrations import hf_export
    transformers.logging.set_verbosity_error()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)   # transformers' renames (gradient_checkpointing), not ours
        gpt = shipped_student()
        hf, tok = hf_export.export_model(gpt), hf_export.make_tokenizer()
        args = demo_config(tempfile.mkdtemp(prefix="rlsd-trl-"), max_steps=steps, **overrides)
        if announce and args.process_index == 0:
            n = args.generation_batch_size
            out(f"RLSD in TRL on the exported shipped student ({args.world_size} process(es)): "
                f"{n // args.num_generations} prompts x {args.num_generations} samples per step, the answer hint as "
                f"privileged context, the teacher a snapshot refreshed every {args.teacher_sync_steps} steps")
        trainer = RLSDTrainer(model=hf, reward_funcs=task_reward, args=args, processing_class=tok,
                              train_dataset=task_dataset(64, seed=0), callbacks=[_StepPrinter(out)])
        trainer.remove_callback(PrinterCallback)   # it prints every raw log dict; _StepPrinter says what matters
        rec = CreditRecorder(trainer)
        trainer.train()
    return trainer, rec, gpt


def project_credit(gpt, batch, group_size, lam, eps_w):
    """rlsd.py's credit for a generation batch, from scratch: the project's GPT scores each
    completion after the plain prompt and after the prompt + answer hint
    (rlsd.response_logits), verify.reward gives the rewards, rlsd.group_advantages the A
    (rows in group order, as TRL generated them). Returns (A, logp_S, logp_T, credit)."""
    import model
    import verify
    contexts, hinted, rewards = [], [], []
    for pid, pm, cid, cm in zip(batch["prompt_ids"], batch["prompt_mask"], batch["completion_ids"],
                                batch["completion_mask"]):
        ctx = pid[pm.bool()].tolist()
        prob = problem_of(ctx)
        contexts.append(ctx)
        hinted.append(verify.prompt_ids(prob, "answer"))
        rewards.append(verify.reward(prob, verify.response_text(cid[cm.bool()].tolist())))
    mask = batch["completion_mask"].float()
    tokens = batch["completion_ids"].masked_fill(mask == 0, verify.PAD)
    with torch.no_grad():
        logp_s = model.token_logprobs(rlsd.response_logits(gpt, contexts, tokens), tokens)
        logp_t = model.token_logprobs(rlsd.response_logits(gpt, hinted, tokens), tokens)
    adv = rlsd.group_advantages(torch.tensor(rewards), group_size)
    return adv, logp_s, logp_t, rlsd.rlsd_token_advantages(adv, logp_t, logp_s, mask, lam=lam, eps_w=eps_w)


def problem_of(ctx):
    """The verify.Problem whose prompt token ids (BOS + prompt) are ctx."""
    import re
    import verify
    text = verify.decode(ctx[1:])
    nums, ops = re.findall(r"[0-9]+", text), re.findall(r"[+*]|(?<=[0-9])-", text)
    return verify.Problem(tuple(int(n[::-1]) for n in nums), tuple(ops))


def check_credit(rec, gpt, group_size, out=print):
    """Say whether every batch TRL trained on carried exactly rlsd.py's credit; and, on the
    first generation batch (step 0, sampled from the exported gpt), how far TRL's A, log-probs
    and credit are from rlsd.py's computed from scratch (close, not bitwise: TRL's A adds
    1e-4 to the std, and its forward runs other kernels, at shifted positions)."""
    a = rec.trainer.args
    equal = bool(rec.trained) and all(b["equal"] for b in rec.trained)
    out(f"advantages TRL trained on == rlsd.rlsd_token_advantages(A, logp_T, logp_S, mask, lam, eps_w) of the "
        f"same rows (torch.equal), on all {len(rec.trained)} batches: {equal}")
    g = rec.generated[0]
    lam = rlsd.lam_schedule(g["step"], lam0=a.lam0, decay_steps=a.lam_decay_steps)
    adv, logp_s, logp_t, credit = project_credit(gpt, g, group_size, lam, a.eps_w)
    m = g["completion_mask"].bool()
    diffs = dict(A=(adv - g["rlsd_sequence_advantages"]).abs().max().item(),
                 logp_S=(logp_s - g["rlsd_student_logps"])[m].abs().max().item(),
                 logp_T=(logp_t - g["rlsd_teacher_logps"])[m].abs().max().item(),
                 credit=(credit - g["advantages"])[m].abs().max().item())
    out("step 0, TRL vs rlsd.py from scratch (project GPT forward, verify.reward, group_advantages), max |diff|: "
        + ", ".join(f"{k} {v:.1e}" for k, v in diffs.items()))
    return equal, diffs


def check_slicing(records, out=print):
    """Check, from what each process recorded (`--record`), that every process trained on the
    (B, T) credit of its own rows. TRL gathers the rewards of all processes in process order,
    forms groups of G consecutive rows (a group may span two processes), normalises, and
    slices A back with rows [rank * n, (rank + 1) * n). Per step, this recomputes from the
    completions alone: the rewards (verify.reward), rlsd.group_advantages over the rows of
    all processes in process order, and compares each process's A row for row (close: TRL's
    std eps is 1e-4, rlsd.py's 1e-6; signs equal), that each process's slice of the gathered
    A is its own A, and that its (B, T) credit is rlsd.rlsd_token_advantages of that slice
    and its own log-probs, bit for bit. records: the rank<i>.pt dicts in rank order.
    Returns a dict of what was found; raises AssertionError on a mismatch."""
    import verify
    G = records[0]["num_generations"]
    steps = len(records[0]["generated"])
    found = dict(steps=steps, rows=0, spanning_groups=0, nonzero_A=0, max_A_diff=0.0)
    for k in range(steps):
        gens = [r["generated"][k] for r in records]
        assert all(g["process_index"] == i for i, g in enumerate(gens)), "records are not in rank order"
        n = gens[0]["completion_ids"].shape[0]
        gathered = gens[0]["all_advantages"]
        prompts, rewards = [], []
        for i, g in enumerate(gens):
            assert torch.equal(g["all_advantages"], gathered), "processes disagree on the gathered A"
            assert torch.equal(g["rlsd_sequence_advantages"], gathered[i * n:(i + 1) * n]), \
                f"step {k}: process {i}'s A is not rows {i * n}..{(i + 1) * n - 1} of the gathered A"
            for pid, pm, cid, cm in zip(g["prompt_ids"], g["prompt_mask"], g["completion_ids"], g["completion_mask"]):
                ctx = pid[pm.bool()].tolist()
                prompts.append(ctx)
                rewards.append(verify.reward(problem_of(ctx), verify.response_text(cid[cm.bool()].tolist())))
            credit = rlsd.rlsd_token_advantages(gathered[i * n:(i + 1) * n], g["rlsd_teacher_logps"],
                                                g["rlsd_student_logps"], g["completion_mask"], lam=g["lam"],
                                                eps_w=g["eps_w"])
            assert torch.equal(credit, g["advantages"]), \
                f"step {k}: process {i}'s (B, T) credit is not rlsd.py's for its slice of the gathered A"
        for j in range(0, len(prompts), G):
            assert all(p == prompts[j] for p in prompts[j:j + G]), f"step {k}: rows {j}..{j + G - 1} mix prompts"
            found["spanning_groups"] += (j // n) != ((j + G - 1) // n)
        ours = rlsd.group_advantages(torch.tensor(rewards), G)
        theirs = torch.cat([g["rlsd_sequence_advantages"] for g in gens])
        assert torch.equal(torch.sign(ours), torch.sign(theirs)), f"step {k}: A signs differ from the rewards'"
        found["max_A_diff"] = max(found["max_A_diff"], (ours - theirs).abs().max().item())
        assert found["max_A_diff"] < 1e-3, f"step {k}: A differs from the rewards' by {found['max_A_diff']}"
        found["rows"] += len(prompts)
        found["nonzero_A"] += int((theirs != 0).sum())
    for r in records:
        for b in r["trained"]:
            assert b["equal"], f"a batch of process {records.index(r)} did not carry rlsd.py's credit exactly"
    out(f"{len(records)} processes, {steps} steps, {found['rows']} rows ({found['nonzero_A']} with A != 0, "
        f"{found['spanning_groups']} groups split across processes): every process's A matches its own rows' "
        f"rewards (max |diff| {found['max_A_diff']:.1e}, signs equal) and it trained on exactly rlsd.py's credit")
    return found


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--demo", action="store_true", help="run a few RLSD steps in TRL on CPU and check the credit")
    ap.add_argument("--steps", type=int, default=5, help="RLSD steps of the demo (default 5)")
    ap.add_argument("--per-device-batch", type=int, default=16,
                    help="completions per process per step (default 16: 2 prompts x 8 samples on one process)")
    ap.add_argument("--num-generations", type=int, default=8, help="samples per prompt (default 8)")
    ap.add_argument("--record", metavar="DIR", help="save what each process generated and trained on to "
                    "DIR/rank<i>.pt (the two-process test reads it)")
    args = ap.parse_args(argv)
    if not args.demo:
        ap.print_help()
        return 0
    if not 1 <= args.steps <= 100:
        print("trl_rlsd: error: --steps must lie in 1..100", file=sys.stderr)
        return 2
    if args.per_device_batch < 1 or args.num_generations < 2:
        print("trl_rlsd: error: --per-device-batch must be positive and --num-generations at least 2",
              file=sys.stderr)
        return 2
    torch.manual_seed(0)
    t0 = time.time()
    trainer, rec, gpt = run_demo(args.steps, out=print, per_device_train_batch_size=args.per_device_batch,
                                 num_generations=args.num_generations, announce=True)
    acc = trainer.accelerator
    if args.record:
        os.makedirs(args.record, exist_ok=True)
        torch.save({"generated": rec.generated, "trained": rec.trained, "num_processes": acc.num_processes,
                    "num_generations": trainer.args.num_generations},
                   os.path.join(args.record, f"rank{acc.process_index}.pt"))
    if acc.num_processes == 1:   # from scratch needs whole groups: one process
        equal, _ = check_credit(rec, gpt, trainer.args.num_generations)
    else:
        equal = bool(rec.trained) and all(b["equal"] for b in rec.trained)
        print(f"process {acc.process_index}: advantages trained on == rlsd.py's credit of the same rows "
              f"(torch.equal), all {len(rec.trained)} batches: {equal}")
    if acc.is_main_process:
        print(f"done in {time.time() - t0:.0f}s")
    return 0 if equal else 1


if __name__ == "__main__":
    sys.exit(main())
