"""bench.py runs end to end at the smoke sizes and writes every number it prints (no
timing is asserted: speed goals are read from its output, not from a unit test)."""
import json

import bench


def test_bench_smoke(tmp_path, capsys):
    out = tmp_path / "b.json"
    assert bench.main(["--preset", "smoke", "--repeats", "1", "--device", "cpu", "--out", str(out),
                       "--checkpoints", str(tmp_path)]) == 0
    r = json.loads(out.read_text())
    for g in r["generation"].values():
        assert g["cached"] > 0 and g["uncached"] > 0 and g["ratio"] > 0
    assert r["train_step"]["flops_per_s"] > 0 and r["matmul_flops_per_s"] > 0
    assert r["rollout_128x48_tokens_per_s"] > 0
    assert set(r["methods"]) == {"rlvr", "opd", "opsd", "rlsd"}
    assert "step_over_rlvr" in r["methods"]["rlsd"]
    assert "ratio" in capsys.readouterr().out


def test_bench_bad_input(tmp_path, capsys):
    assert bench.main(["--repeats", "0", "--out", str(tmp_path / "b.json")]) == 2
    assert "--repeats must be a positive" in capsys.readouterr().err
    assert bench.main(["--preset", "nope", "--out", str(tmp_path / "b.json")]) == 2
