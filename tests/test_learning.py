"""Slow check (CI skips it; run with `python -m pytest -m slow`): on an easy task, RLVR
and RLSD raise the sampled train reward by at least 0.15 within a fixed number of steps."""
from dataclasses import replace

import pytest
import torch

import model as M
import rlsd as R
import train_tiny as TT
import verify as V

EASY = V.TaskConfig(min_operands=2, max_operands=3, max_value=9)
import os
STEPS = int(os.environ.get("EASY_STEPS", "400"))


@pytest.fixture(scope="module")
def easy_student():
    # a small student trained only part-way on one-digit chains (sampled reward ~0.2-0.5)
    cfg = TT.SFTConfig(model=M.GPTConfig(vocab_size=V.VOCAB_SIZE, n_layer=2, n_head=2, n_embd=64), task=EASY,
                       steps=STEPS, batch_size=64, lr=2e-3, warmup=20, seed=0)
    model, _ = TT.train(cfg, progress=False, pool=2000)
    return model


@pytest.mark.slow
@pytest.mark.parametrize("method", ["rlvr", "rlsd"])
def test_rl_raises_train_reward(easy_student, method):
    cfg = R.RLConfig(method=method, prompts_per_step=16, group_size=8, lr=1e-3, warmup=5, max_new_tokens=24)
    state = R.make_state(easy_student, cfg, seed=0)
    probs = V.make_problems("train", 16 * 80, seed=11, cfg=EASY)
    rewards = [R.train_step(state, probs[16 * i:16 * (i + 1)])["reward"] for i in range(80)]
    first, last = sum(rewards[:10]) / 10, sum(rewards[-10:]) / 10
    assert 0.05 < first < 0.8, f"the easy student should start part-way, got {first:.2f}"
    assert last - first >= 0.15, f"{method}: reward {first:.2f} -> {last:.2f}"
