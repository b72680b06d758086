"""verify.py: the arithmetic task, its tokenizer, the reward and the step checker.

The task is a chain of additions and subtractions. The model must work it left to right,
one small step at a time, then give the answer. Every number is written least-significant
digit first (37 is written "73"), so a human reads the chain 37+45-18+9 = 73 as:

    prompt:    73+54-81+9=
    response:  73+54=28;28-81=46;46+9=37;A:37<eos>

Why this shape: every step is a two-operand sum a tiny transformer can learn, each step
can be checked on its own (so we can say *where* a wrong response went wrong, which is
what the signal-density figure needs), and the answer field is trivial to parse. Why the
reversed digits: the model writes a result one digit at a time, and least-significant
first it can carry as it goes, as one does on paper (the trick of minGPT's adder demo and
of Lee et al. 2023, arXiv 2307.03381); here it roughly halved the steps a teacher needs
(docs/LOG.md).
`flip` turns task text into human text and back (it reverses every run of digits).
By default no running result goes below zero (`allow_negative=False`), also because it
learns faster; the parser and the checker still read negative numbers ("-51" is -15).

The privileged teacher (OPSD, RLSD) sees a hint between the prompt and the response:

    answer hint:          73+54-81+9=H37|
    full-solution hint:   73+54-81+9=H73+54=28;28-81=46;46+9=37;A:37|

and, in the hinted training data only, part of the responses carry the "behaviour shift"
that large privileged teachers show (docs/METHODS.md, "The experiment's conventions"):
they restate the hint first ("H37;73+54=28;...") or answer without work ("A:37"). A
student that never sees a hint but writes "H..." is citing information it was never
given; that is the leak we measure.

Model output is data: responses are matched against fixed regular expressions of ASCII
digits, numbers are bounded in length before int() sees them, and nothing here evaluates
model text (no eval, exec or sympy parsing). sympy only checks the solver's own integers.
"""
import hashlib
import itertools
import random
import re
from dataclasses import dataclass, field

import sympy
import tiktoken

# ---------------------------------------------------------------- tokenizer

CHARS = "0123456789+-*=;:AH|"  # one token per character
SPECIALS = ("<|bos|>", "<|eos|>", "<|pad|>")
_RANKS = {c.encode(): i for i, c in enumerate(CHARS)}
ENC = tiktoken.Encoding(
    name="rlsd-arith",
    pat_str=r"(?s).",  # every character is its own piece; there are no merges
    mergeable_ranks=_RANKS,
    special_tokens={s: len(CHARS) + i for i, s in enumerate(SPECIALS)},
)
BOS, EOS, PAD = (ENC.encode_single_token(s) for s in SPECIALS)
VOCAB_SIZE = ENC.n_vocab  # 22


def encode(text):
    """Task text -> token ids. Raises ValueError on a character outside CHARS (tiktoken
    itself would panic on a byte that is not in its table)."""
    bad = set(text) - set(CHARS)
    if bad:
        raise ValueError(f"characters outside the task alphabet {CHARS!r}: {sorted(bad)!r}")
    return ENC.encode_ordinary(text)


def decode(ids):
    """Token ids -> text, special tokens written as <|eos|> etc. Ids outside the
    vocabulary raise ValueError."""
    ids = [int(i) for i in ids]
    if any(i < 0 or i >= VOCAB_SIZE for i in ids):
        raise ValueError(f"token id outside 0..{VOCAB_SIZE - 1}")
    return ENC.decode(ids)


def response_text(ids):
    """The text of a sampled response: its tokens before the first EOS. A BOS or PAD the
    model sampled mid-response becomes '?' (one character, so character offsets stay token
    offsets), which the parser rejects."""
    out = []
    for i in ids:
        i = int(i)
        if i == EOS:
            break
        out.append("?" if i in (BOS, PAD) else decode([i]))
    return "".join(out)


# ---------------------------------------------------------------- numbers

def flip(text):
    """Reverse every run of digits: task notation <-> human notation, both ways."""
    return re.sub(r"[0-9]+", lambda m: m.group()[::-1], text)


def num(n):
    """An integer in task notation: sign first, then the digits least-significant first
    (37 -> "73", -15 -> "-51", 100 -> "001")."""
    return flip(str(n))


def _int(s):
    """Inverse of num for a canonical string (the regular expressions below check that)."""
    return int(flip(s))


# ---------------------------------------------------------------- problems and splits

@dataclass(frozen=True)
class TaskConfig:
    min_operands: int = 3
    max_operands: int = 4
    max_value: int = 99      # operands are drawn from 0..max_value
    ops: str = "+-"          # "*" also works (solver, checker, reward; tested); the experiment uses + and -
    allow_negative: bool = False  # False: redraw problems whose running result drops below 0
    # `hard`: problems of the training shape at its hard end: max_operands operands,
    # all of them two-digit, and every step carries or borrows in the units digit.


@dataclass(frozen=True)
class Problem:
    operands: tuple
    ops: tuple

    @property
    def prompt(self):
        return num(self.operands[0]) + "".join(o + num(x) for o, x in zip(self.ops, self.operands[1:])) + "="

    @property
    def steps(self):
        """The worked chain: [(left, op, right, result), ...]."""
        out, acc = [], self.operands[0]
        for o, x in zip(self.ops, self.operands[1:]):
            res = _apply(acc, o, x)
            out.append((acc, o, x, res))
            acc = res
        return out

    @property
    def value(self):
        return self.steps[-1][3]

    @property
    def solution(self):
        return "".join(f"{num(l)}{o}{num(r)}={num(v)};" for l, o, r, v in self.steps) + f"A:{num(self.value)}"


def _apply(a, op, b):
    return a + b if op == "+" else a - b if op == "-" else a * b


SPLITS = ("train", "test", "hard")


def split_of(prompt):
    """Each possible problem belongs to exactly one split, by a hash of its text:
    80% train, 10% test, 10% hard. Splits are therefore disjoint by construction."""
    h = int(hashlib.sha256(prompt.encode()).hexdigest()[:8], 16) % 10
    return "train" if h < 8 else "test" if h == 8 else "hard"


def _carries(l, op, r):
    """Does this step carry (or borrow) in the units digit?"""
    if (op == "+") == (l >= 0):   # magnitudes add: |l| + r
        return abs(l) % 10 + r % 10 >= 10
    return abs(l) % 10 < r % 10   # magnitudes subtract


def _draw(rng, cfg, split):
    if split != "hard":
        n = rng.randint(cfg.min_operands, cfg.max_operands)
        return Problem(tuple(rng.randint(0, cfg.max_value) for _ in range(n)),
                       tuple(rng.choice(cfg.ops) for _ in range(n - 1)))
    acc = rng.randint(10, cfg.max_value)
    operands, ops = [acc], []
    for _ in range(cfg.max_operands - 1):  # draw each step until it carries or borrows
        for _ in range(100):
            o, x = rng.choice(cfg.ops), rng.randint(10, cfg.max_value)
            if _carries(acc, o, x):
                break
        else:
            return None
        operands.append(x)
        ops.append(o)
        acc = _apply(acc, o, x)
    return Problem(tuple(operands), tuple(ops))


def check_with_sympy(p):
    """Independent check of the solver: sympy integer arithmetic on the operands, applied to
    every step and to the whole expression. Only solver-made integers reach sympy."""
    acc = sympy.Integer(p.operands[0])
    for (l, o, r, v), x in zip(p.steps, p.operands[1:]):
        assert sympy.Integer(l) == acc and r == x, "step does not continue the chain"
        acc = (acc + sympy.Integer(x) if o == "+" else acc - sympy.Integer(x) if o == "-"
               else acc * sympy.Integer(x))
        assert acc == sympy.Integer(v), f"solver step wrong in {p.prompt}"
    return True


def make_problems(split, n, seed=0, cfg=TaskConfig()):
    """n distinct problems of one split, reproducible from (split, seed, cfg); each
    reference solution is checked with sympy before it is returned."""
    return list(itertools.islice(iter_problems(split, seed, cfg, n), n))


def iter_problems(split, seed=0, cfg=TaskConfig(), n=None):
    """The same problems as make_problems, one at a time (a long run draws them as it
    goes). n, if given, only bounds the number of draws before giving up."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {SPLITS}")
    return _draw_distinct(split, seed, cfg, n)


def _draw_distinct(split, seed, cfg, n):
    rng = random.Random(f"{split}/{seed}/{cfg}")
    seen, tries = set(), 0
    while True:
        tries += 1
        if tries > 200 * (n if n is not None else len(seen) + 1) + 10_000:
            raise ValueError(f"could not draw {n or len(seen) + 1} distinct {split} problems from {cfg}")
        p = _draw(rng, cfg, split)
        if p is None or p.prompt in seen or split_of(p.prompt) != split:
            continue
        if not cfg.allow_negative and any(v < 0 for *_, v in p.steps):
            continue
        seen.add(p.prompt)
        check_with_sympy(p)
        yield p


# ---------------------------------------------------------------- prompt formats

HINTS = ("none", "answer", "solution")


def hint_text(p, hint):
    """The privileged context placed between prompt and response."""
    if hint == "none":
        return ""
    if hint == "answer":
        return f"H{num(p.value)}|"
    if hint == "solution":
        return f"H{p.solution}|"
    raise ValueError(f"unknown hint {hint!r}; choose one of {HINTS}")


def prompt_ids(p, hint="none"):
    """BOS + prompt (+ hint): the context the model conditions on."""
    return [BOS] + encode(p.prompt + hint_text(p, hint))


STYLES = ("work", "cite", "nowork")


def response_str(p, style="work"):
    """A reference response. 'work' is the worked chain; 'cite' restates the hint before
    working ("H37;..."); 'nowork' states the answer alone ("A:37"). The last two appear only
    in hinted training data: they are the privileged teacher's behaviour shift."""
    if style == "work":
        return p.solution
    if style == "cite":
        return f"H{num(p.value)};{p.solution}"
    if style == "nowork":
        return f"A:{num(p.value)}"
    raise ValueError(f"unknown style {style!r}; choose one of {STYLES}")


def response_ids(p, style="work"):
    return encode(response_str(p, style)) + [EOS]


# ---------------------------------------------------------------- reward

MAX_RESPONSE_CHARS = 256   # longer text gets reward 0 without being parsed
MAX_DIGITS = 12            # a longer number is not a number we accept

_NUM = r"(?:0|-?[0-9]{0,%d}[1-9])" % (MAX_DIGITS - 1)   # canonical: no '+', no leading zeros
                                                      # (written last, digits reversed), no -0
_ANSWER = re.compile(r"A:(%s)" % _NUM)
_STEP = re.compile(r"(%s)([+\-*])(%s)=(%s)" % (_NUM, _NUM, _NUM))
_CITE = re.compile(r"H.*")


def parse_answer(response):
    """The integer in the response's answer field, or None.

    The rules (each has a test): the response is split on ';'; exactly one field may start
    with 'A:', and it must be the last non-empty field; its value must be a canonical
    ASCII integer in task notation (optional '-', then at most 12 digits, least-significant
    first, the last one not 0 unless the number is 0: no leading zeros, no '+'). Anything
    else - no answer, two answers, an answer followed by more steps, Unicode or full-width
    digits, control characters, over-long text - gives None.
    """
    if not isinstance(response, str) or len(response) > MAX_RESPONSE_CHARS:
        return None
    fields = response.split(";")
    if fields and fields[-1] == "":
        fields = fields[:-1]
    answers = [i for i, f in enumerate(fields) if f.startswith("A:")]
    if len(answers) != 1 or answers[0] != len(fields) - 1:
        return None
    m = _ANSWER.fullmatch(fields[-1])
    return _int(m.group(1)) if m else None


def reward(problem, response):
    """1.0 if the response's answer field equals the true value, else 0.0. Never raises."""
    try:
        a = parse_answer(response)
    except Exception:  # defensive: the parser is written not to raise
        return 0.0
    return 1.0 if a is not None and a == problem.value else 0.0


# ---------------------------------------------------------------- step checker (diagnostics only)

@dataclass
class StepCheck:
    correct: bool            # reward == 1
    faithful: bool           # the full chain, every step right, answer = last step's result
    lucky: bool              # correct but not faithful: right answer through wrong or no work
    cites_hint: bool         # a field 'H...': the response cites a hint
    no_work: bool            # an answer with no written step before it
    n_steps: int
    first_wrong: int = None  # index of the first wrong field (step or answer), None if none
    wrong_span: tuple = None  # (start, end) character = token offsets of that field
    spans: list = field(default_factory=list)  # (start, end, kind) for every field


def leak_rate(checks):
    """The leak, the one definition every part of the project uses (docs/METHODS.md, "The
    experiment's conventions"): the share of responses (their StepChecks) that cite a hint
    plus the share that answer without work. A response that does both counts twice, so
    the rate is the sum of the two rates the runs log, and may exceed 1 only in principle.
    It is what a student shows when it writes what only a hinted teacher could know."""
    n = max(1, len(checks))
    return sum(c.cites_hint for c in checks) / n + sum(c.no_work for c in checks) / n


def check_steps(problem, response):
    """Find the first wrong step of a response. Never used as a training signal.

    A step is wrong if it is malformed, if its operands do not continue the chain from the
    prompt (the first step must start from the first operand, each later one from the
    previous written result, with the prompt's next operator and operand), or if its
    written result is not the arithmetic of its written operands. When all written steps
    are right, the first wrong field is the answer if it differs from the last written
    result or if steps are missing; with no answer at all, it is the position right after
    the text. Offsets count characters, which are also tokens. Faithful here also asks for
    the full chain (a response that stops a step early and answers with its last result is
    not faithful), so faithful implies correct.
    """
    text = response if isinstance(response, str) else ""
    text = text[:MAX_RESPONSE_CHARS]
    correct = reward(problem, response) == 1.0
    spans, pos = [], 0
    for f in text.split(";"):
        kind = "answer" if f.startswith("A:") else "cite" if _CITE.fullmatch(f) else "step"
        if f:
            spans.append((pos, pos + len(f), kind))
        pos += len(f) + 1
    chain = problem.steps
    k, first_wrong, prev = 0, None, problem.operands[0]
    n_steps = sum(1 for s in spans if s[2] == "step")
    answer_seen = False
    for i, (a, b, kind) in enumerate(spans):
        f = text[a:b]
        if kind == "cite":
            continue
        if kind == "answer":
            answer_seen = True
            m = _ANSWER.fullmatch(f)
            ok = m is not None and k == len(chain) and _int(m.group(1)) == prev and i == len(spans) - 1
            if not ok and first_wrong is None:
                first_wrong = i
            continue
        m = _STEP.fullmatch(f)
        ok = m is not None and k < len(chain) and not answer_seen
        if ok:
            l, o, r, v = _int(m.group(1)), m.group(2), _int(m.group(3)), _int(m.group(4))
            ok = l == prev and o == chain[k][1] and r == chain[k][2] and v == _apply(l, o, r)
            prev = v
        k += 1
        if not ok and first_wrong is None:
            first_wrong = i
    wrong_span = spans[first_wrong][:2] if first_wrong is not None else None
    if not answer_seen and first_wrong is None and spans:
        # the response stopped before its answer: blame the token where the answer should
        # start (the EOS, or the cut of a truncated response); first_wrong points past the fields
        first_wrong, wrong_span = len(spans), (len(text), len(text) + 1)
    faithful = first_wrong is None and answer_seen and correct
    return StepCheck(
        correct=correct, faithful=faithful, lucky=correct and not faithful,
        cites_hint=any(s[2] == "cite" for s in spans),
        no_work=answer_seen and n_steps == 0, n_steps=n_steps,
        first_wrong=first_wrong, wrong_span=wrong_span, spans=spans,
    )
