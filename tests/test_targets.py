"""Slow (CI skips it): the default preset's base models meet their targets.

    python -m pytest -m slow tests/test_targets.py   # trains them the first time (minutes,
                                                     # like `python train_tiny.py`); seconds
                                                     # when checkpoints/ holds them
"""
import pytest

import train_tiny


@pytest.mark.slow
def test_default_base_models():
    _, _, S = train_tiny.build_base_models("default", "checkpoints", "cpu", progress=False)
    s, t = S["student"], S["teacher"]
    assert 0.2 <= s["sampled/train/none"] <= 0.6                 # room for RL
    assert s["greedy/test/answer"] > s["greedy/test/none"] + 0.05   # a hint makes it a teacher
    assert s["greedy/test/solution"] > s["greedy/test/none"] + 0.05
    assert s["shift_rate/answer"] > 0.2 and s["shift_rate/none"] < 0.01   # the planted shift
    assert t["params"] >= 3 * s["params"]
    assert t["greedy/test/none"] >= 0.90   # the OPD teacher: high accuracy on the plain format
