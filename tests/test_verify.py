"""verify.py: tokenizer, problem splits, reward and the step checker."""
import builtins

import pytest
from hypothesis import given, settings, strategies as st

import verify

P = verify.Problem((37, 45, 18, 9), ("+", "-", "+"))  # 37+45=82;82-18=64;64+9=73;A:73
H = verify.flip  # human notation -> task notation (digits least-significant first), and back


def test_number_notation():
    assert [verify.num(n) for n in (0, 7, 37, 100, -15, 1203)] == ["0", "7", "73", "001", "-51", "3021"]
    for n in (0, 7, 37, 100, -15, -100, 1203, 10**11):
        assert verify._int(verify.num(n)) == n
    assert verify.flip("37+45=82;A:100") == "73+54=28;A:001"
    assert verify.flip(verify.flip("a1b23c456;-70")) == "a1b23c456;-70"


def test_problem_solution_and_formats():
    assert P.prompt == "73+54-81+9="        # task notation, written out once
    assert P.solution == "73+54=28;28-81=46;46+9=37;A:37"
    assert P.solution == H("37+45=82;82-18=64;64+9=73;A:73")
    assert verify.hint_text(P, "answer") == H("H73|")
    assert verify.hint_text(P, "solution") == H("H37+45=82;82-18=64;64+9=73;A:73|")
    assert verify.response_str(P, "cite") == H("H73;") + P.solution
    assert verify.response_str(P, "nowork") == H("A:73")
    neg = verify.Problem((5, 20, 3), ("-", "+"))
    assert neg.solution == H("5-20=-15;-15+3=-12;A:-12")
    assert verify.Problem((60, 45), ("+",)).solution == "06+54=501;A:501"
    with pytest.raises(ValueError):
        verify.hint_text(P, "bogus")


@pytest.mark.parametrize("hint", verify.HINTS)
@pytest.mark.parametrize("style", verify.STYLES)
def test_tokenizer_round_trip_on_every_format(hint, style):
    for p in verify.make_problems("train", 20, seed=4) + verify.make_problems("hard", 5, seed=4):
        ids = verify.prompt_ids(p, hint) + verify.response_ids(p, style)
        assert ids[0] == verify.BOS and ids[-1] == verify.EOS
        text = p.prompt + verify.hint_text(p, hint) + verify.response_str(p, style)
        assert verify.decode(ids) == "<|bos|>" + text + "<|eos|>"
        assert verify.encode(text) == ids[1:-1]
        assert len(ids) == len(text) + 2  # one token per character
        assert verify.response_text(verify.response_ids(p, style) + [verify.PAD]) == verify.response_str(p, style)
    assert verify.response_text(verify.encode("A:1") + [verify.PAD, verify.BOS, verify.EOS]) == "A:1??"


def test_tokenizer_refuses_foreign_characters():
    with pytest.raises(ValueError, match="alphabet"):
        verify.encode("12+x")
    with pytest.raises(ValueError):
        verify.decode([verify.VOCAB_SIZE])
    assert verify.VOCAB_SIZE == len(verify.CHARS) + 3


@pytest.mark.parametrize("n", [2_000, pytest.param(10_000, marks=pytest.mark.slow)])
def test_splits_verify_and_do_not_overlap(n):
    sets = {}
    for split in verify.SPLITS:
        ps = verify.make_problems(split, n, seed=0)
        assert len({p.prompt for p in ps}) == n
        for p in ps:  # reference solutions: sympy-checked inside make_problems, and the reward agrees
            assert verify.split_of(p.prompt) == split
            assert verify.reward(p, p.solution) == 1.0
        sets[split] = {p.prompt for p in ps}
    assert not sets["train"] & sets["test"]
    assert not sets["train"] & sets["hard"]
    assert not sets["test"] & sets["hard"]


def test_generation_is_seeded_and_hard_is_the_hard_end():
    assert verify.make_problems("test", 50, seed=1) == verify.make_problems("test", 50, seed=1)
    assert verify.make_problems("test", 50, seed=1) != verify.make_problems("test", 50, seed=2)
    for p in verify.make_problems("hard", 200, seed=0):
        assert len(p.operands) == 4 and all(10 <= x <= 99 for x in p.operands)
        assert all(verify._carries(l, o, r) for l, o, r, _ in p.steps)
    with pytest.raises(ValueError, match="unknown split"):
        verify.make_problems("validation", 3)


def test_sympy_check_catches_a_wrong_solver():
    class Bad(verify.Problem):
        @property
        def steps(self):
            return [(37, "+", 45, 83)]
    with pytest.raises(AssertionError):
        verify.check_with_sympy(Bad((37, 45), ("+",)))


# ---------------------------------------------------------------- reward edge cases

@pytest.mark.parametrize("response, expected", [
    ("37+45=82;82-18=64;64+9=73;A:73", 1.0),
    ("A:73", 1.0),                           # no work, right answer: rewarded (the verifier reads answers only)
    ("H73;37+45=82;82-18=64;64+9=73;A:73", 1.0),
    ("37+45=82;82-18=64;64+9=73;A:73;", 1.0),  # a trailing separator is tolerated
    ("37+45=82;82-18=64;64+9=74;A:74", 0.0),
    ("37+45=82;82-18=64;64+9=73", 0.0),       # missing answer
    ("", 0.0),                                # empty
    ("A:73;A:73", 0.0),                       # two answers
    ("A:72;A:73", 0.0),
    ("A:73;64+9=73", 0.0),                    # answer not last
    ("A:073", 0.0),                           # leading zero: not canonical
    ("A:+73", 0.0),
    ("A:-0", 0.0),
    ("A:-", 0.0),
    ("A:٧٣", 0.0),                            # Arabic-Indic digits
    ("A:７３", 0.0),                          # full-width digits
    ("A:73\x00", 0.0),                        # control character
    ("A:7\n3", 0.0),
    ("A: 73", 0.0),
    ("A:" + "7" * 13, 0.0),                   # too many digits
    ("A:73" + ";" * 300, 0.0),                # over-long text
    ("64+9=73;A:73", 1.0),                    # work skipped, answer right: reward is about answers only
    ("A:__import__('os').system('touch /tmp/pwned')", 0.0),
])
def test_reward_edge_cases(response, expected):
    assert verify.reward(P, H(response)) == expected


def test_minus_zero_is_not_canonical():
    zero = verify.Problem((5, 5), ("-",))
    assert verify.reward(zero, "5-5=0;A:0") == 1.0
    assert verify.reward(zero, "5-5=0;A:-0") == 0.0
    assert verify.reward(verify.Problem((60, 40), ("+",)), "A:001") == 1.0
    assert verify.reward(verify.Problem((60, 40), ("+",)), "A:100") == 0.0  # task notation: that is 001, not canonical


def test_reward_handles_negative_answers_and_non_strings():
    neg = verify.Problem((5, 20), ("-",))
    assert verify.reward(neg, H("5-20=-15;A:-15")) == 1.0
    assert verify.reward(neg, "A:-51") == 1.0
    assert verify.reward(neg, H("A:15")) == 0.0
    assert verify.reward(P, None) == 0.0
    assert verify.reward(P, b"A:37") == 0.0


# ---------------------------------------------------------------- step checker

def test_faithful_response():
    c = verify.check_steps(P, P.solution)
    assert c.correct and c.faithful and not c.lucky and c.first_wrong is None and c.n_steps == 3


def test_wrong_step_in_the_middle():
    r = H("37+45=82;82-18=65;65+9=74;A:74")
    c = verify.check_steps(P, r)
    assert not c.correct and not c.faithful and not c.lucky
    assert c.first_wrong == 1 and c.wrong_span == (9, 17) and r[9:17] == H("82-18=65")


def test_right_answer_after_a_wrong_step_is_lucky():
    r = H("37+45=81;81-18=64;64+9=73;A:73")  # 37+45 is 82, not 81; the chain then recovers
    c = verify.check_steps(P, r)
    assert c.correct and c.lucky and not c.faithful and c.first_wrong == 0 and c.wrong_span == (0, 8)


def test_answer_copying_the_last_number_is_not_enough():
    r = H("37+45=82;82-18=64;64+9=75;A:75")  # the answer copies the last written result
    c = verify.check_steps(P, r)
    assert not c.faithful and c.first_wrong == 2


def test_operand_that_does_not_continue_the_chain():
    r = H("37+45=82;80-18=62;62+9=71;A:71")  # the arithmetic of each step is right, the chain is not
    assert verify.check_steps(P, r).first_wrong == 1
    r = H("37+45=82;82-17=65;65+9=74;A:74")  # wrong operand from the prompt
    assert verify.check_steps(P, r).first_wrong == 1
    r = H("37+45=82;82+18=100;100+9=109;A:109")  # wrong operator
    assert verify.check_steps(P, r).first_wrong == 1


def test_missing_steps_extra_steps_and_answer_mismatch():
    c = verify.check_steps(P, H("37+45=82;82-18=64;A:64"))  # stops a step early
    assert not c.faithful and c.first_wrong == 2
    c = verify.check_steps(P, H("37+45=82;82-18=64;64+9=73;73+1=74;A:74"))  # one step too many
    assert c.first_wrong == 3
    c = verify.check_steps(P, H("37+45=82;82-18=64;64+9=73;A:72"))
    assert c.first_wrong == 3 and not c.correct
    c = verify.check_steps(P, H("37+45=82;82-18=64;64+9=73"))  # no answer: the token after the text is blamed
    assert c.first_wrong == 3 and c.wrong_span == (25, 26) and not c.correct


def test_no_work_and_citation_flags():
    c = verify.check_steps(P, H("A:73"))
    assert c.no_work and c.lucky and not c.faithful and not c.cites_hint
    c = verify.check_steps(P, H("H73;37+45=82;82-18=64;64+9=73;A:73"))
    assert c.cites_hint and c.faithful and not c.no_work
    c = verify.check_steps(P, H("H58;A:73"))  # cites a made-up hint, then answers without work
    assert c.cites_hint and c.no_work and c.lucky


def test_step_checker_on_garbage():
    for r in ["", ";;;", "=", "A:", "H", "1+2=3", "x" * 1000, "٣+٤=٧;A:7", None]:
        c = verify.check_steps(P, r)
        assert not c.faithful and not c.correct


# ---------------------------------------------------------------- hostile text

class _NoCode:
    """Fail the test if anything tries to evaluate text as code while reward runs."""

    def __enter__(self):
        self.saved = builtins.eval, builtins.exec, builtins.compile

        def boom(*a, **k):
            raise AssertionError("model text reached eval/exec/compile")
        builtins.eval = builtins.exec = builtins.compile = boom
        return self

    def __exit__(self, *exc):
        builtins.eval, builtins.exec, builtins.compile = self.saved


@settings(max_examples=2000, deadline=None)
@given(st.text(max_size=300))
def test_reward_never_raises_on_arbitrary_text(text):
    with _NoCode():
        r = verify.reward(P, text)
        c = verify.check_steps(P, text)
    assert r in (0.0, 1.0)
    assert c.correct == (r == 1.0)


@settings(max_examples=2000, deadline=None)
@given(st.text(alphabet=verify.CHARS, max_size=80))
def test_reward_only_accepts_the_true_value(text):
    r = verify.reward(P, text)
    if r == 1.0:
        assert text.rstrip(";").split(";")[-1] == "A:37"


def test_python_code_in_a_response_is_not_executed(tmp_path):
    marker = tmp_path / "pwned"
    payloads = [f"A:__import__('pathlib').Path('{marker}').touch()",
                f"37+45=82;exec(\"open('{marker}','w')\");A:73",
                f"A:{{open('{marker}','w')}}"]
    with _NoCode():
        for t in payloads:
            verify.reward(P, t)
            verify.check_steps(P, t)
    assert not marker.exists()


def test_ten_thousand_hostile_strings(tmp_path):
    """A seeded fuzz over 10,000 strings built from the task alphabet, Unicode and full-width
    digits, control characters, signs and Python code: no exception, nothing executed, and
    reward 1 only when the answer field holds the true value."""
    import random
    rng = random.Random(0)
    marker = tmp_path / "ran"
    pieces = list(verify.CHARS) + ["A:", "A:37", "A:-37", "H", ";", "٧", "３", "\x00", "\x1b[2J", "\u202e", "+", "-0",
                              "0" * 20, "9" * 40, f"__import__('pathlib').Path('{marker}').touch()", "\n", " ", "é"]
    with _NoCode():
        for _ in range(10_000):
            text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 40)))
            r = verify.reward(P, text)
            c = verify.check_steps(P, text)
            assert r in (0.0, 1.0) and c.correct == (r == 1.0)
            if r == 1.0:
                assert text.rstrip(";").split(";")[-1] == "A:37"
    assert not marker.exists()


def test_multiplication_option():
    # TaskConfig.ops may include "*" (not used by the experiment): the solver, the sympy
    # check, the reward and the step checker all handle it
    cfg = verify.TaskConfig(ops="+-*", max_value=9)
    probs = verify.make_problems("train", 200, seed=1, cfg=cfg)
    times = [p for p in probs if "*" in p.ops]
    assert times
    for p in times:
        assert verify.check_with_sympy(p)
        assert verify.reward(p, p.solution) == 1.0
        assert verify.check_steps(p, p.solution).faithful
    p = verify.Problem((3, 4), ("*",))
    assert p.value == 12 and p.solution == "3*4=21;A:21"     # 12 is written 21
    assert verify.check_steps(p, "3*4=31;A:31").first_wrong == 0   # 13 is not 3*4


def test_leak_rate_is_the_rate_of_citations_plus_the_rate_of_answers_without_work():
    p = verify.make_problems("test", 1, seed=3)[0]
    both = f"H{verify.num(p.value)};A:{verify.num(p.value)}"   # cites and skips: counted twice
    texts = [verify.response_str(p, style) for style in ("cite", "nowork", "work")] + [both]
    checks = [verify.check_steps(p, t) for t in texts]
    assert [(c.cites_hint, c.no_work) for c in checks] == [(True, False), (False, True), (False, False), (True, True)]
    assert verify.leak_rate(checks) == 2 / 4 + 2 / 4 and verify.leak_rate(checks[:3]) == pytest.approx(2 / 3)
    assert verify.leak_rate([]) == 0.0
