"""The committed default run (figures/summary.json) shows what the README says it shows,
on every seed (the targets of the default run, docs/LOG.md):

- OPSD's leak rate (hint citations plus answers without work) over the last 10 steps is
  at least 0.10, and at least 10 times that of RLVR, OPD and RLSD on the same seed;
- OPSD's greedy test accuracy ends at least 3 points below its own peak, its sampled
  accuracy at least 5 points below;
- from the no-shift control student, OPSD shows no leak;
- RLVR, OPD and RLSD end above where they started (greedy test, mean over seeds).

Regenerating the figures with a run that does not show this fails here.
"""
import json
import os

import pytest

import compare_methods
import figures
import experiment

PATH = os.path.join(os.path.dirname(__file__), "..", "figures", "summary.json")


@pytest.fixture(scope="module")
def S():
    with open(PATH) as f:
        return json.load(f)


def test_the_committed_run_is_the_default_preset_and_complete(S):
    assert S["complete"] and S["preset"]["base"] == "default"
    assert S["preset"]["steps"] == experiment.PRESETS["default"].steps
    assert S["preset"]["eval_every"] <= 10
    assert all(r["status"] == "done" for r in S["runs"].values())


def test_opsd_leaks_and_falls_on_every_seed(S):
    M = S["methods"]
    opsd = M["opsd"]
    for seed, leak in enumerate(opsd["per_seed_last10_leak"]):
        assert leak >= 0.10, f"seed {seed}: OPSD leak {leak:.3f}"
        for other in ("rlvr", "opd", "rlsd"):
            assert leak >= 10 * M[other]["per_seed_last10_leak"][seed], f"seed {seed}: {other}"
    assert min(opsd["per_seed_greedy_test_drop_from_peak"]) >= 0.03
    assert min(opsd["per_seed_sampled_test_drop_from_peak"]) >= 0.05


def test_the_control_shows_no_leak_and_the_reward_methods_keep_their_gains(S):
    M = S["methods"]
    assert max(M["opsd/control"]["per_seed_last10_leak"]) < 0.01
    for m in ("rlvr", "opd", "rlsd"):
        assert M[m]["final_greedy_test_mean"] > M[m]["initial_greedy_test"], m


FRONTIER = os.path.join(os.path.dirname(__file__), "..", "figures", "frontier")


def test_the_committed_frontier_is_the_frontier_preset_complete_and_redraws(tmp_path):
    """figures/frontier/ holds the frontier preset's summary (every arm, every seed, the
    probe of every arm) and figures 5 and 6, which --redraw makes again from it alone."""
    with open(os.path.join(FRONTIER, "summary.json")) as f:
        F = json.load(f)
    preset = experiment.PRESETS["frontier"]
    assert F["complete"] and F["preset"]["seeds"] == preset.seeds >= 5
    assert F["preset"]["eval_n"] >= 500 and F["preset"]["eval_every"] <= 25
    for arm in preset.arms:
        assert F["methods"][arm]["n_seeds"] == preset.seeds, arm
        assert arm in F["probe"]["main"]["arms"]
    assert F["probe"]["main"]["batches"] >= 50 and F["probe"]["main"]["big_samples"] >= 4096
    for arm in preset.control_arms:
        assert F["methods"][f"{arm}/control"]["n_seeds"] == preset.seeds
    assert set(F["frontier"]["vs_rlvr"]) == set(preset.arms) - {"rlvr"}
    (tmp_path / "summary.json").write_text(json.dumps(F))
    assert compare_methods.main(["--redraw", str(tmp_path)]) == 0
    for name in figures.FRONTIER_FILES.values():
        assert os.path.getsize(tmp_path / name) > 0 and os.path.getsize(os.path.join(FRONTIER, name)) > 0
