"""The compiled passes check the shapes they index without bounds checks:
``_recurrent.forward`` and ``backward`` called with any one array of the
wrong shape raise a ValueError that names it, before any nogil code runs,
instead of reading or writing out of bounds. The arrays are the ones a real
call passes (captured from Cell.forward and backward), changed one at a
time."""
import numpy as np
import pytest

from pyx_gru import _cells, _recurrent

from helpers import make_cell, random_problem


def captured_calls(monkeypatch, name, cache, lengths, gates):
    """The arguments of the kernel calls a forward (and, with a cache, a
    backward) pass makes."""
    calls = {}
    for pass_ in ("forward", "backward"):
        real = getattr(_recurrent, pass_)

        def spy(*args, _real=real, _pass=pass_):
            calls[_pass] = args
            return _real(*args)

        monkeypatch.setattr(_recurrent, pass_, spy)
    cell = make_cell(name, D=3, H=5)
    x, state0, dy, _ = random_problem(cell, 6, 4)
    y, _, saved = cell.forward(x, state0, lengths, gates=gates, cache=cache)
    if cache:
        cell.backward(saved, dy)
    monkeypatch.undo()
    return calls


def is_placeholder(a):
    # the stand-ins for arrays a cell does not use: any shape will do
    return any(a is p for p in _cells._PLACEHOLDERS.values()) or a is _cells._NO_LENGTHS


def widened(a):
    """A zeroed array like ``a`` with its last dimension one longer."""
    return np.zeros(a.shape[:-1] + (a.shape[-1] + 1,), dtype=a.dtype)


# The kernels' arguments, in order (their docstrings give the shapes).
ARGS = {
    "forward": ("kind peephole masked x W U b b_hg P lengths gates hs cs extra h_last c_last "
                "hu packed keep pin dropout drop hm zoneout zone_h zone_c key").split(),
    "backward": ("kind peephole masked x W U P lengths gates hs cs extra dy dh dc dA dxg work "
                 "packed dx dW dU db db_hg dP acc keep dropout drop hmc zoneout zone_h zone_c "
                 "key").split(),
}
# Workspaces that may be larger than needed.
ROOMY = {"packed", "acc"}


@pytest.mark.parametrize("name", ["rnn", "simple_gru", "gru_after", "gru_before", "lstm",
                                  "lstm_peephole", "cifg", "cifg_peephole"])
@pytest.mark.parametrize("cache", [True, False], ids=["cache", "inference"])
def test_every_array_of_the_wrong_shape_is_refused(monkeypatch, name, cache):
    lengths = np.array([6, 2, 0, 5])
    gates = None if name == "rnn" else {make_cell(name).pinnable_gates[0]: 0.5}  # pin is used
    calls = captured_calls(monkeypatch, name, cache, lengths, gates)
    assert set(calls) == ({"forward", "backward"} if cache else {"forward"})
    for pass_, args in calls.items():
        kernel = getattr(_recurrent, pass_)
        assert len(args) == len(ARGS[pass_])
        # fresh writable copies (the cache made the forward's read-only),
        # the placeholders kept as they are
        args = [np.copy(a) if isinstance(a, np.ndarray) and not is_placeholder(a) else a
                for a in args]
        kernel(*args)  # as captured: accepted
        checked = []
        for i, (arg, a) in enumerate(zip(ARGS[pass_], args, strict=True)):
            if not isinstance(a, np.ndarray) or is_placeholder(a) or arg in ROOMY:
                continue
            bad = list(args)
            bad[i] = widened(a)
            # named, or (for the arrays the sizes are read from) a mismatch
            # of the sizes they give
            with pytest.raises(ValueError, match=rf"_recurrent\.{pass_}: "):
                kernel(*bad)
            checked.append(arg)
        must = {"x", "W", "U", "hs", "gates", "keep", "lengths"} | (
            {"b", "h_last", "hu"} | ({"pin"} if gates else set()) if pass_ == "forward" else
            {"dy", "dh", "dA", "work", "dx", "dW", "dU", "db"})
        assert must <= set(checked), sorted(must - set(checked))


def test_rings_and_kinds_are_checked(monkeypatch):
    calls = captured_calls(monkeypatch, "lstm", False, None, None)
    args = list(calls["forward"])
    at = {arg: i for i, arg in enumerate(ARGS["forward"])}
    gates, cs = args[at["gates"]], args[at["cs"]]
    assert cs.shape[0] == 2  # inference: the ring of c_{t-1} and c_t
    for arg, shape in (("gates", (0,) + gates.shape[1:]),   # an empty ring of gates
                       ("gates", (7,) + gates.shape[1:]),   # more steps than T = 6
                       ("cs", (1,) + cs.shape[1:])):         # c_{t-1} and c_t in one slot
        bad = list(args)
        bad[at[arg]] = np.zeros(shape, dtype=gates.dtype)
        with pytest.raises(ValueError, match=rf"_recurrent\.forward: {arg} has shape"):
            _recurrent.forward(*bad)
    with pytest.raises(ValueError, match=f"kind must be one of 0..{_recurrent.N_KINDS - 1}"):
        _recurrent.forward(_recurrent.N_KINDS, *args[1:])
    with pytest.raises(ValueError, match="gate columns"):
        _recurrent.forward(_recurrent.GRU_AFTER, *args[1:])  # an LSTM's 4H columns
