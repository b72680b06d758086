"""The loop learns the task (slow: `python -m pytest -m slow`; its fast sibling is
test_loop.py's test_the_loop_raises_a_reward_it_can_learn).

On an easy configuration, a small set of prompts revisited every step, RLVR and RLSD raise
the sampled reward on those prompts by at least 0.15 within 40 steps at lr 3e-4, seeded
(docs/LOG.md gives the gains measured). The default experiment draws fresh prompts every
step instead.
"""
import pytest

import model
import rlsd
import train_tiny
import verify

EASY = verify.TaskConfig(min_operands=2, max_operands=3, max_value=9)


@pytest.fixture(scope="module")
def easy_student():
    # a small student trained part-way on one-digit chains (sampled reward ~0.15)
    cfg = train_tiny.SFTConfig(model=model.GPTConfig(vocab_size=verify.VOCAB_SIZE, n_layer=2, n_head=2, n_embd=64), task=EASY,
                       steps=500, batch_size=64, lr=2e-3, warmup=20, seed=0)
    net, _, _ = train_tiny.train(cfg, progress=False, pool=2000)
    return net


@pytest.mark.slow
@pytest.mark.parametrize("method", ["rlvr", "rlsd"])
def test_rl_raises_train_reward(easy_student, method):
    cfg = rlsd.RLConfig(method=method, group_size=8, lr=3e-4, warmup=1, max_new_tokens=24)
    state = rlsd.make_state(easy_student, cfg, seed=0)
    probs = verify.make_problems("train", 16, seed=11, cfg=EASY)
    rewards = [rlsd.train_step(state, probs)["reward"] for _ in range(40)]
    first, last = sum(rewards[:5]) / 5, sum(rewards[-5:]) / 5
    assert 0.02 < first < 0.8, f"the easy student should start part-way, got {first:.2f}"
    assert last - first >= 0.15, f"{method}: reward {first:.2f} -> {last:.2f}"
