"""The character-level language model tutorial (tutorials/plot_char_lm.py)
and what it relies on: ``tasks.stdlib_source`` (its selection rule on files
written here, its string and comment spans against Python's own parser),
``Model.step`` against ``Model.forward``, the tutorial's counting baselines
and sampler against plain-Python counts, and its main claim: the GRU,
trained by the tutorial's own loop, beats the counting baselines on
held-out text."""
import ast
import collections
import math
import os
import pathlib

import numpy as np
import pytest

import pyx_gru as pg
from pyx_gru import _kinds, tasks
from pyx_gru.layers import CELLS, Model

TUTORIAL = pathlib.Path(__file__).parent.parent / "tutorials" / "plot_char_lm.py"
SKIP = ("warning", "traceback", "object at 0x")


def tutorial_namespace(**names):
    """The tutorial's settings and functions, without running it: its
    ``def`` statements and its settings (assignments to upper-case names of
    plain values, such as ``H = 256 if FULL else 128``: no call, attribute
    or subscript), executed at the build setting (``FULL = False``) in a
    namespace that has ``names`` (the globals its functions read)."""
    tree = ast.parse(TUTORIAL.read_text())
    computed = (ast.Call, ast.Attribute, ast.Subscript)

    def setting(node):
        names = [n for t in node.targets for n in ast.walk(t) if isinstance(n, ast.Name)]
        return (all(n.id.isupper() for n in names)
                and not any(isinstance(n, computed) for n in ast.walk(node.value)))

    keep = [node for node in tree.body if isinstance(node, ast.FunctionDef)
            or (isinstance(node, ast.Assign) and setting(node))]
    ns = {"np": np, "pg": pg, "FULL": False, **names}
    exec(compile(ast.Module(keep, []), str(TUTORIAL), "exec"), ns)
    return ns


# --------------------------------------------------------------------------
# stdlib_source: the rule, on files written here
# --------------------------------------------------------------------------

FILES = {
    "alpha.py": 'x = "abc"  # note\n',
    "beta.py": "def f():\n    '''doc'''\n    return f'{1}' + b'x'\n",
    "gamma.py": "y = 1",                       # no final newline: one is added
    "_private.py": "z = 2\n",                   # leading underscore: never read
    "tabs.py": "if x:\n\ty = 1\n",              # a tab: not plain printable ASCII
    "accents.py": "s = 'caf\u00e9'\n",          # not ASCII
    "warned.py": "import warnings  # Warning\n",  # a skip word
    "broken.py": 's = """never closed\n',       # tokenize cannot read it
    "notes.txt": "not python\n",
}
# kinds of alpha.py, beta.py, gamma.py by hand: c code, s string, # comment
KINDS_BY_HAND = {
    "alpha.py": "cccc" + "sssss" + "cc" + "######" + "c",
    "beta.py": ("c" * 9 + "cccc" + "s" * 9 + "c"
                + "cccc" + "c" * 7 + "ssssss" + "ccc" + "ssss" + "c"),
    "gamma.py": "cccccc",
}


@pytest.fixture
def pydir(tmp_path):
    for name, source in FILES.items():
        (tmp_path / name).write_text(source, encoding="utf-8")
    (tmp_path / "pkg.py").mkdir()  # a directory that looks like a file
    return tmp_path


def test_stdlib_source_rule_on_files_written_here(pydir):
    text = tasks.stdlib_source(seed=3, skip_words=("WARNING",), directory=pydir)
    names = sorted(n for n in os.listdir(pydir) if n.endswith(".py") and not n.startswith("_")
                   and (pydir / n).is_file())
    order = [names[i] for i in np.random.default_rng(3).permutation(len(names))]
    kept = [n for n in order if n in KINDS_BY_HAND]
    assert [f[0] for f in text.files] == kept
    sources = {n: FILES[n] + ("" if FILES[n].endswith("\n") else "\n") for n in kept}
    assert text.text == "".join(sources[n] for n in kept)
    for name, a, b in text.files:
        assert text.text[a:b] == sources[name]
        got = "".join("cs#"[k] for k in text.kinds[a:b])
        assert got == KINDS_BY_HAND[name], name
    assert text.chars == "".join(sorted(set(text.text)))
    assert text.decode(text.codes) == text.text
    assert text.info["seed"] == 3 and text.info["skip_words"] == ("warning",)


def test_stdlib_source_cuts_at_n_chars_and_is_deterministic(pydir):
    full = tasks.stdlib_source(seed=1, directory=pydir)
    assert "warned.py" in [f[0] for f in full.files]  # no skip words: kept
    for n in (1, 10, full.n_chars):
        text = tasks.stdlib_source(n, seed=1, directory=pydir)
        assert text.text == full.text[:n] and len(text) == n
        np.testing.assert_array_equal(text.kinds, full.kinds[:n])
        assert text.files[-1][2] == n
    other = tasks.stdlib_source(seed=2, directory=pydir)
    assert sorted(other.text) == sorted(full.text)  # the same files, maybe in another order
    with pytest.raises(ValueError, match=f"hold only {full.n_chars} characters"):
        tasks.stdlib_source(full.n_chars + 1, seed=1, directory=pydir)


@pytest.mark.parametrize("kwargs, error, match", [
    ({"n_chars": 0}, ValueError, "n_chars must be >= 1"),
    ({"n_chars": 10.0}, TypeError, "n_chars must be an int"),
    ({"seed": -1}, ValueError, "seed"),
    ({"seed": 1.5}, TypeError, "seed"),
    ({"skip_words": "warning"}, TypeError, "skip_words"),
    ({"skip_words": ("",)}, TypeError, "skip_words"),
])
def test_stdlib_source_rejects_bad_arguments(pydir, kwargs, error, match):
    with pytest.raises(error, match=match):
        tasks.stdlib_source(directory=pydir, **kwargs)


def test_stdlib_source_needs_a_qualifying_file(tmp_path):
    (tmp_path / "tabs.py").write_text("\tx\n")
    with pytest.raises(ValueError, match="no file"):
        tasks.stdlib_source(directory=tmp_path)


def test_encode_decode_one_hot(pydir):
    text = tasks.stdlib_source(directory=pydir)
    codes = text.encode("def f")
    assert text.decode(codes) == "def f" and codes.dtype == np.int64
    oh = text.one_hot(codes.reshape(1, 5), np.float32)
    assert oh.shape == (1, 5, text.n_classes) and oh.dtype == np.float32
    np.testing.assert_array_equal(oh.argmax(-1), codes.reshape(1, 5))
    assert oh.sum() == 5
    with pytest.raises(ValueError, match="'Q' is not in the vocabulary"):
        text.encode("Q")
    with pytest.raises(ValueError, match=r"codes must lie in \[0,"):
        text.decode([text.n_classes])
    with pytest.raises(ValueError, match=r"codes must lie in \[0,"):
        text.one_hot([-1])
    with pytest.raises(TypeError, match="must be a str"):
        text.encode(b"def")


# --------------------------------------------------------------------------
# stdlib_source: the standard library, as the tutorial reads it
# --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def stdlib():
    """The tutorial's text."""
    return tasks.stdlib_source(tutorial_namespace()["N_CHARS"], seed=0, skip_words=SKIP)


def test_the_tutorial_reads_this_text_and_trains_as_below():
    """What the last test repeats is what the tutorial runs."""
    source = " ".join(TUTORIAL.read_text().split())   # line breaks do not matter
    skip = "(" + ", ".join(f'"{w}"' for w in SKIP) + ")"
    for line in [f"tasks.stdlib_source(N_CHARS, seed=0, skip_words={skip})",
                 "split = int(0.9 * text.n_chars)",
                 'model = pg.Model(K, H, K, cell="gru", readout="every", dtype=np.float32, '
                 'seed=0)',
                 "opt = pg.optim.Adam(lr=LR)", "rng = np.random.default_rng(0)",
                 "x, y = windows(train_codes, rng)", "out, cache = model.forward(x)",
                 "loss, dout = pg.losses.softmax_cross_entropy(out, y)",
                 "_, grads = model.backward(cache, dout)",
                 "pg.optim.clip_grad_norm(grads, CLIP)", "opt.step(model.params, grads)",
                 "held.append(held_out_loss(model, held_codes))"]:
        assert " ".join(line.split()) in source, line


def test_stdlib_text_is_plain_ascii_without_the_skipped_words(stdlib):
    assert len(stdlib) == tutorial_namespace()["N_CHARS"]
    assert set(stdlib.chars) <= set(map(chr, range(32, 127))) | {"\n"}
    assert not any(w in stdlib.text.lower() for w in SKIP)
    starts = [f[1] for f in stdlib.files] + [stdlib.n_chars]
    assert [f[2] for f in stdlib.files] == starts[1:]
    assert all(not name.startswith("_") for name, _, _ in stdlib.files)
    again = tasks.stdlib_source(len(stdlib), seed=0, skip_words=SKIP)
    assert again.text == stdlib.text and again.files == stdlib.files


def _ast_string_spans(source):
    """(start, stop) offsets of the string literals that Python's parser
    sees: constants of str/bytes and f-strings, outermost only."""
    starts = [0]
    for line in source.splitlines(keepends=True):
        starts.append(starts[-1] + len(line))
    spans = []

    def visit(node):
        if isinstance(node, ast.JoinedStr) or (
                isinstance(node, ast.Constant) and isinstance(node.value, (str, bytes))):
            spans.append((starts[node.lineno - 1] + node.col_offset,
                          starts[node.end_lineno - 1] + node.end_col_offset))
            return
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(source))
    return spans


def test_string_and_comment_spans_agree_with_the_parser(stdlib):
    """Strings: every literal the parser finds starts and ends on a string
    character, and every string character lies in one of its literals.
    Comments: each runs from a '#' to the end of its line."""
    whole = [(n, a, b) for n, a, b in stdlib.files if b < stdlib.n_chars]  # not the cut one
    assert len(whole) >= 3
    assert np.mean(stdlib.kinds == 1) > 0.1 and np.mean(stdlib.kinds == 2) > 0.02
    for name, a, b in whole:
        source, kinds = stdlib.text[a:b], stdlib.kinds[a:b]
        inside = np.zeros(len(source), dtype=bool)
        for s, e in _ast_string_spans(source):
            assert kinds[s] == 1 and kinds[e - 1] == 1, (name, source[s:e][:40])
            inside[s:e] = True
        assert not np.any((kinds == 1) & ~inside), name
        for line_start, line in zip(np.cumsum([0] + [len(x) for x in source.splitlines(True)])[:-1],
                                    source.splitlines(True), strict=True):
            k = kinds[line_start:line_start + len(line)]
            comment = np.flatnonzero(k == 2)
            if comment.size:
                assert line[comment[0]] == "#", (name, line)
                assert comment[-1] == len(line.rstrip("\n")) - 1, (name, line)
                assert comment.size == comment[-1] - comment[0] + 1


# --------------------------------------------------------------------------
# Model.step
# --------------------------------------------------------------------------

@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize("num_layers", [1, 2])
def test_step_by_step_is_the_forward_pass(cell, num_layers):
    rng = np.random.default_rng(0)
    model = Model(3, 4, 5, cell=cell, num_layers=num_layers, readout="every", seed=1)
    model.params = {k: rng.uniform(-0.5, 0.5, v.shape) for k, v in model.params.items()}
    x = rng.uniform(-1, 1, (7, 2, 3))
    out, _ = model.forward(x, cache=False)
    state, stepped = None, []
    for t in range(7):
        o, state = model.step(x[t], state)
        stepped.append(o)
    np.testing.assert_allclose(np.array(stepped), out, rtol=1e-12, atol=1e-12)
    assert len(state) == num_layers
    # a state (h, c) is a tuple, layer by layer (the LSTMs, the CoupledLSTM)
    assert all(isinstance(s, tuple) == (len(_kinds.get(cell).state) == 2) for s in state)
    last = Model(3, 4, 5, cell=cell, num_layers=num_layers, readout="last", seed=1)
    last.params = model.params
    np.testing.assert_allclose(o, last.forward(x, cache=False)[0], rtol=1e-12, atol=1e-12)


def test_step_carries_the_state():
    """Fails if the state is dropped: a fresh start gives another output."""
    model = Model(2, 3, 2, cell="gru", readout="every", seed=0)
    x = np.ones((2, 1, 2))
    _, state = model.step(x[0])
    carried, _ = model.step(x[1], state)
    fresh, _ = model.step(x[1])
    np.testing.assert_allclose(carried, model.forward(x)[0][1], rtol=1e-12)
    assert not np.allclose(carried, fresh)
    kept = [s.copy() for s in state]            # a state stays as it was returned
    model.step(x[1], state)
    model.step(2 * x[1], state)
    np.testing.assert_array_equal(state[0], kept[0])


def test_step_takes_a_cell_class_without_the_cache_keyword():
    class Plain(pg.SimpleGRU):
        def forward(self, x, state0=None, lengths=None):
            return super().forward(x, state0, lengths)

    model = Model(2, 3, 2, cell=Plain, readout="every", seed=0)
    x = np.random.default_rng(0).uniform(size=(3, 1, 2))
    state, outs = None, []
    for t in range(3):
        o, state = model.step(x[t], state)
        outs.append(o)
    np.testing.assert_allclose(np.array(outs), model.forward(x)[0], rtol=1e-12)


def test_step_rejects_what_it_cannot_do():
    with pytest.raises(ValueError, match="unidirectional"):
        Model(2, 3, 2, bidirectional=True, readout="every").step(np.zeros((1, 2)))
    model = Model(2, 3, 2, num_layers=2, readout="every")
    with pytest.raises(ValueError, match=r"x must have shape \(B, 2\)"):
        model.step(np.zeros((1, 1, 2)))
    with pytest.raises(ValueError, match="list of 2 layer state"):
        model.step(np.zeros((1, 2)), [np.zeros((1, 3))])
    with pytest.raises(ValueError, match=r"state\[0\] must have shape \(1, 3\)"):
        model.step(np.zeros((1, 2)), [np.zeros((2, 3)), np.zeros((2, 3))])


# --------------------------------------------------------------------------
# the tutorial's own functions against plain Python
# --------------------------------------------------------------------------

def _ngram_by_counting(train, held, K, context):
    ends = range(context, len(train))
    counts = collections.Counter(tuple(train[i - context:i + 1]) for i in ends)
    before = collections.Counter(tuple(train[i - context:i]) for i in ends)
    total = 0.0
    for i in range(context, len(held)):
        key = tuple(held[i - context:i + 1])
        total -= math.log((counts[key] + 0.5) / (before[key[:-1]] + 0.5 * K))
    return total / (len(held) - context)


@pytest.mark.parametrize("context", [0, 1, 2])
def test_ngram_baselines_are_smoothed_counts(context):
    ns = tutorial_namespace()
    rng = np.random.default_rng(context)
    K = 5
    train, held = rng.integers(0, K, 400), rng.integers(0, K, 100)
    train[::7] = 0  # some structure, and a symbol never seen in training:
    held[3] = K - 1
    train[train == K - 1] = 1
    got = ns["ngram_loss"](train, held, K, context)
    assert got == pytest.approx(_ngram_by_counting(list(train), list(held), K, context), rel=1e-12)


def test_correlation_is_pearsons():
    ns = tutorial_namespace()
    rng = np.random.default_rng(0)
    h = rng.normal(size=(200, 3))
    ind = (rng.random(200) < 0.3).astype(float)
    h[:, 1] += 2 * ind
    expected = [np.corrcoef(h[:, j], ind)[0, 1] for j in range(3)]
    np.testing.assert_allclose(ns["correlation"](h, ind), expected, rtol=1e-12)


def test_sampler_follows_the_temperature(pydir):
    """A model whose logits are fixed (zero weights, a chosen readout bias):
    the sampler's frequencies match softmax(bias / tau) for each row."""
    text = tasks.stdlib_source(directory=pydir)
    K = text.n_classes
    ns = tutorial_namespace(text=text, K=K)
    model = Model(K, 2, K, readout="every", dtype=np.float32, seed=0)
    bias = np.linspace(-2, 2, K)
    model.params = {k: (bias if k == "readout.b" else np.zeros_like(v))
                    for k, v in model.params.items()}
    temperatures = (0.5, 1.0, 2.0)
    rows = ns["sample"](model, "x", 4000, temperatures, np.random.default_rng(0))
    for tau, row in zip(temperatures, rows, strict=True):
        assert row.startswith("x") and len(row) == 4001
        freq = np.bincount(text.encode(row[1:]), minlength=K) / 4000
        p = np.exp(bias / tau) / np.exp(bias / tau).sum()
        assert np.abs(freq - p).max() < 4 * np.sqrt(p.max() / 4000), tau


# --------------------------------------------------------------------------
# the tutorial's claim: the trained GRU beats counting on held-out text
# --------------------------------------------------------------------------

def test_trained_gru_beats_the_counting_baselines(stdlib):
    """The tutorial's text, model, optimiser and loop (its ``windows`` and
    ``held_out_loss``), run here for its first two checkpoints (a third of
    its steps): the held-out loss is below the unigram and bigram models'
    at the first, below the trigram model's at the second, as the tutorial
    says. (It prints the rest of the run.)"""
    threadpoolctl = pytest.importorskip("threadpoolctl", reason="threadpoolctl (the 'docs' extra) is not installed")
    ns = tutorial_namespace(text=stdlib)
    split = int(0.9 * stdlib.n_chars)
    train, held = stdlib.codes[:split], stdlib.codes[split:]
    K, H = stdlib.n_classes, ns["H"]
    unigram, bigram, trigram = (ns["ngram_loss"](train, held, K, c) for c in range(3))
    assert trigram < bigram < unigram
    first, second, _ = ns["CHECKPOINTS"]
    losses = {}
    with threadpoolctl.threadpool_limits(limits=1):
        model = pg.Model(K, H, K, cell="gru", readout="every", dtype=np.float32, seed=0)
        opt = pg.optim.Adam(lr=ns["LR"])
        rng = np.random.default_rng(0)
        for step in range(1, second + 1):
            x, y = ns["windows"](train, rng)
            out, cache = model.forward(x)
            _, dout = pg.losses.softmax_cross_entropy(out, y)
            _, grads = model.backward(cache, dout)
            pg.optim.clip_grad_norm(grads, ns["CLIP"])
            opt.step(model.params, grads)
            if step in (first, second):
                losses[step] = ns["held_out_loss"](model, held)
    assert losses[first] < bigram, (losses, bigram)
    assert losses[second] < trigram, (losses, trigram)
