"""integrations/: the exact Hugging Face export, the tokenizer, RLSD in TRL (its credit is
rlsd.py's, bit for bit), and OPSD's divergence in TRL's SDFT. Skipped, with one line, without
the extra: `pip install -r integrations/requirements.txt`."""
import os
import subprocess
import sys
import tempfile

import pytest
import torch

try:
    import transformers  # noqa: F401
    import trl  # noqa: F401
except ImportError:
    pytest.skip("integration tests need `pip install -r integrations/requirements.txt`", allow_module_level=True)

import model
import rlsd
import verify
from integrations import hf_export, trl_rlsd

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")   # transformers' own renames
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def gpt():
    return trl_rlsd.shipped_student()


@pytest.fixture(scope="module")
def hf(gpt):
    return hf_export.export_model(gpt)


@pytest.fixture(scope="module")
def tok():
    return hf_export.make_tokenizer()


def mixed_batch():
    """Prompts of every format, some with a full response after them: mixed lengths."""
    ps = verify.make_problems("test", 4, seed=5) + verify.make_problems("hard", 2, seed=5)
    rows = [verify.prompt_ids(ps[0]), verify.prompt_ids(ps[1], "answer"), verify.prompt_ids(ps[2], "solution"),
            verify.prompt_ids(ps[3]) + verify.response_ids(ps[3]),
            verify.prompt_ids(ps[4], "answer") + verify.response_ids(ps[4], "cite"),
            verify.prompt_ids(ps[5], "solution") + verify.response_ids(ps[5], "nowork")]
    L = max(map(len, rows))
    idx = torch.full((len(rows), L), verify.PAD)
    am = torch.zeros_like(idx)
    for b, r in enumerate(rows):
        idx[b, L - len(r):], am[b, L - len(r):] = torch.tensor(r), 1
    assert len({len(r) for r in rows}) == len(rows)
    return idx, am, torch.tensor([L - len(r) for r in rows])


def test_config_is_the_matching_gpt_neox(hf):
    c = hf.config
    assert (c.use_parallel_residual, c.hidden_act, c.layer_norm_eps, c.tie_word_embeddings) == (False, "gelu", 1e-5, True)
    assert (c.rope_parameters["partial_rotary_factor"], c.rope_parameters["rope_theta"]) == (1.0, 10000)
    assert hf.lm_head.weight.data_ptr() == hf.gpt_neox.embed_in.weight.data_ptr()
    assert (c.bos_token_id, c.eos_token_id, c.pad_token_id) == (verify.BOS, verify.EOS, verify.PAD)


def test_logits_equal_on_left_padded_mixed_lengths(gpt, hf):
    idx, am, start = mixed_batch()
    with torch.no_grad():
        ours = gpt(idx, start)
        theirs = hf(input_ids=idx, attention_mask=am, position_ids=hf_export.position_ids(am)).logits
    m = am.bool()
    assert (ours - theirs)[m].abs().max().item() <= 1e-5


def test_export_rejects_other_models():
    with pytest.raises(TypeError, match="model.GPT"):
        hf_export.export_model(torch.nn.Linear(2, 2))


def test_greedy_generate_equals_gpt_generate(gpt, hf, tok):
    ps = verify.make_problems("test", 6, seed=7)
    hints = ["none", "answer", "solution", "none", "answer", "none"]
    prompts = [verify.prompt_ids(p, h) for p, h in zip(ps, hints)]
    ours = gpt.generate(prompts, 56, eos_id=verify.EOS, pad_id=verify.PAD, temperature=0)
    enc = tok([p.prompt + verify.hint_text(p, h) for p, h in zip(ps, hints)], return_tensors="pt", padding=True)
    out = hf.generate(**enc, max_new_tokens=56, do_sample=False)[:, enc.input_ids.shape[1]:]
    n = out.shape[1]   # HF stops once every row has its EOS; GPT.generate pads to 56
    assert torch.equal(out, ours[:, :n]) and bool((ours[:, n:] == verify.PAD).all())


def test_tokenizer_round_trips_every_format(tok):
    assert (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id, len(tok)) == \
        (verify.BOS, verify.EOS, verify.PAD, verify.VOCAB_SIZE)
    assert tok.padding_side == "left"
    for split in verify.SPLITS:
        for p in verify.make_problems(split, 5, seed=11):
            for hint in verify.HINTS:
                ids = verify.prompt_ids(p, hint)
                assert tok(p.prompt + verify.hint_text(p, hint)).input_ids == ids
                assert tok.decode(ids, skip_special_tokens=True) == p.prompt + verify.hint_text(p, hint)
                assert tok.decode(ids) == verify.decode(ids)
            for style in verify.STYLES:
                ids = verify.response_ids(p, style)
                text = verify.response_str(p, style)
                assert tok(text, add_special_tokens=False).input_ids + [verify.EOS] == ids
                assert tok(text + verify.SPECIALS[1], add_special_tokens=False).input_ids == ids
                assert tok.decode(ids, skip_special_tokens=True) == text
                assert tok.decode(ids) == verify.decode(ids)


def test_save_pretrained_reloads(gpt, tmp_path):
    hf_export.save_pretrained(str(tmp_path), gpt)
    plain = transformers.AutoModelForCausalLM.from_pretrained(str(tmp_path)).eval()
    tok = transformers.AutoTokenizer.from_pretrained(str(tmp_path))
    assert tok("73+54=").input_ids == [verify.BOS] + verify.encode("73+54=")
    exact, _ = hf_export.load_pretrained(str(tmp_path))
    idx, am, start = mixed_batch()
    pos = hf_export.position_ids(am)
    with torch.no_grad():
        ours = gpt(idx, start)
        diff_exact = (ours - exact(input_ids=idx, attention_mask=am, position_ids=pos).logits)[am.bool()].abs().max()
        diff_plain = (ours - plain(input_ids=idx, attention_mask=am, position_ids=pos).logits)[am.bool()].abs().max()
    assert diff_exact.item() <= 1e-5
    # from_pretrained recomputes GPT-NeoX's own rotary frequencies (hf_export docstring): close, not exact
    assert diff_plain.item() <= 1e-4


@pytest.mark.parametrize("beta", [0.0, 0.1, 0.5, 0.9, 1.0])
@pytest.mark.parametrize("tau", [0.5, 1.0, 2.0])
def test_sdft_divergence_is_generalized_jsd(beta, tau):
    from trl.experimental.sdft.loss_utils import compute_full_logit_self_distillation_loss
    g = torch.Generator().manual_seed(int(100 * beta + 10 * tau))
    s = 3 * torch.randn(3, 5, 22, generator=g, dtype=torch.float64)
    t = 3 * torch.randn(3, 5, 22, generator=g, dtype=torch.float64)
    # SDFT divides both logits by its temperature before the divergence (_forward_logits)
    theirs = compute_full_logit_self_distillation_loss(s / tau, t / tau, distillation_alpha=beta)
    ours = rlsd.generalized_jsd(s, t, torch.ones(3, 5), beta=beta, temperature=tau)
    assert theirs.dtype == torch.float64
    assert torch.allclose(theirs, ours, rtol=1e-12, atol=1e-14)


def test_opsd_config_is_the_project_opsd(tmp_path):
    c = trl_rlsd.opsd_config(str(tmp_path), use_cpu=True, bf16=False, report_to=[])
    assert type(c).__name__ == "SDFTConfig"
    assert (c.distillation_mode, c.distillation_alpha, c.teacher_model_kind, c.temperature) == \
        ("full_logits", 0.5, "base", 1.0)
    assert (c.num_generations, c.max_completion_length, c.learning_rate, c.top_k, c.top_p) == (8, 56, 3e-5, 0, 1.0)
    p = verify.make_problems("train", 1)[0]
    teacher_text = c.teacher_prompt_template.format(prompt=p.prompt, privileged_context=verify.hint_text(p, "answer"))
    assert hf_export.make_tokenizer()(teacher_text).input_ids == verify.prompt_ids(p, "answer")


def test_opsd_config_trains_in_sdft(gpt, tok, tmp_path):
    """Two OPSD steps through TRL's SDFTTrainer on the exported student, passed as a folder: SDFT
    builds its `base` teacher by reloading that path."""
    from trl.experimental.sdft import SDFTTrainer
    folder = hf_export.save_pretrained(str(tmp_path / "student"), gpt)
    args = trl_rlsd.opsd_config(str(tmp_path / "out"), use_cpu=True, bf16=False, report_to=[], max_steps=2,
                                per_device_train_batch_size=8, num_generations=4, logging_steps=1,
                                save_strategy="no", disable_tqdm=True)
    tr = SDFTTrainer(model=folder, args=args, train_dataset=trl_rlsd.task_dataset(16), processing_class=tok)
    assert tr.teacher_model is not tr.model
    tr.train()
    losses = [h["loss"] for h in tr.state.log_history if "loss" in h]
    assert len(losses) == 2 and all(torch.isfinite(torch.tensor(losses)))


@pytest.mark.parametrize("bad, match", [(dict(lam0=1.5), "lam0"), (dict(eps_w=-0.1), "eps_w"),
                                        (dict(teacher_weights="ema"), "teacher_weights"),
                                        (dict(teacher_sync_steps=0), "teacher_sync_steps"),
                                        (dict(lam_decay_steps=0), "lam_decay_steps"),
                                        (dict(teacher_prompt_template="{prompt}"), "privileged_context"),
                                        (dict(teacher_prompt_template="{prompt}{privileged_context}{answer}"),
                                         "no other field"),
                                        (dict(teacher_prompt_template="{prompt}{privileged_context}{"), "format string")])
def test_rlsd_config_rejects_bad_values(bad, match, tmp_path):
    with pytest.raises(ValueError, match=match):
        trl_rlsd.demo_config(str(tmp_path), **bad)


@pytest.fixture(scope="module")
def demo():
    lines = []
    trainer, rec, gpt = trl_rlsd.run_demo(steps=3, out=lines.append, per_device_train_batch_size=8,
                                          num_generations=4, teacher_sync_steps=2)
    return trainer, rec, gpt, lines


def test_demo_trains_on_exactly_rlsd_credit(demo):
    trainer, rec, gpt, lines = demo
    assert [l.split()[:2] for l in lines] == [["step", "0"], ["step", "1"], ["step", "2"]]
    assert "lam 0.500" in lines[0] and "rlsd_clip_frac" in lines[0] and "reward" in lines[0]
    assert len(rec.trained) == 3 and all(b["equal"] for b in rec.trained)
    assert any(bool((b["advantages"] != 0).any()) for b in rec.trained)   # not a vacuous check
    equal, diffs = trl_rlsd.check_credit(rec, gpt, trainer.args.num_generations, out=lambda *_: None)
    assert equal
    # from scratch: the project's own forward and rewards; TRL's A adds 1e-4 to the std, not 1e-6
    assert diffs["logp_S"] < 1e-4 and diffs["logp_T"] < 1e-4
    assert diffs["A"] < 1e-3 and diffs["credit"] < 1e-3


def test_demo_teacher_sees_the_answer_hint(demo):
    trainer = demo[0]
    for p in verify.make_problems("train", 3, seed=2):
        text = trainer._teacher_prompt(p.prompt, verify.hint_text(p, "answer"))
        assert trainer.processing_class(text).input_ids == verify.prompt_ids(p, "answer")
    assert trainer._rlsd_synced_at == 2   # the snapshot was refreshed at step 2


@pytest.mark.parametrize("rows, match", [([{"prompt": "73+54="}], "needs a `privileged_context` column"),
                                         ([{"prompt": "73+54=", "privileged_context": ""}], "non-empty string"),
                                         ([{"prompt": "73+54=", "privileged_context": "  "}], "non-empty string"),
                                         ([{"prompt": "73+54=", "privileged_context": "H37|"},
                                           {"prompt": "73+54=", "privileged_context": None}], "row 1")])
def test_rlsd_trainer_checks_the_dataset_before_any_model(rows, match, tmp_path):
    """Empty contexts used to train as GRPO without a word, and a None failed only after an
    optimizer update: the constructor refuses them before it loads a model."""
    from datasets import Dataset
    with pytest.raises(ValueError, match=match):
        trl_rlsd.RLSDTrainer(model="no-such-model", reward_funcs=[lambda **k: [0.0]],
                             args=trl_rlsd.demo_config(str(tmp_path)), train_dataset=Dataset.from_list(rows))
    ints = Dataset.from_list([{"prompt": "73+54=", "privileged_context": 37}])
    with pytest.raises(ValueError, match="non-empty string"):   # an integer is not stringified
        trl_rlsd.check_privileged_context(ints, "train_dataset", required=True)


def test_rlsd_trainer_needs_privileged_context(demo):
    trainer = demo[0]
    with pytest.raises(ValueError, match="privileged_context"):
        trainer._generate_and_score_completions([{"prompt": "73+54="}] * 4)


@pytest.mark.slow
def test_two_processes_each_train_on_their_own_rows():
    """accelerate launch, two CPU processes (gloo), 6 rows each in groups of 4: a group spans
    both processes. `accelerate launch --cpu --num_processes 2` starts ONE process unless
    mpirun is given a hostfile; `--multi_gpu` on a machine without GPUs starts two CPU ones."""
    with tempfile.TemporaryDirectory() as rec_dir:
        cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "-m", "integrations.trl_rlsd", "--demo", "--steps", "3", "--per-device-batch", "6",
               "--num-generations", "4", "--record", rec_dir]
        env = dict(os.environ, OMP_NUM_THREADS="1")
        r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
        records = [torch.load(os.path.join(rec_dir, f"rank{i}.pt"), weights_only=False) for i in range(2)]
    found = trl_rlsd.check_slicing(records, out=lambda *_: None)
    assert found["spanning_groups"] > 0 and found["nonzero_A"] > 0
