"""The table "The cells at a glance" of docs/theory/index.rst, read from the
page: its parameter counts against ``cell.params``, its direct terms of J_t
and its Jacobians at initialisation against
``pyx_gru.diagnostics.state_jacobians`` (float64)."""
import re
from pathlib import Path

import numpy as np
import pytest

from pyx_gru import diagnostics as dg
from helpers import CONFIGS, make_cell, random_state

INDEX = Path(__file__).resolve().parent.parent / "docs" / "theory" / "index.rst"
# the table's rows, top to bottom
ROWS = ["rnn", "simple_gru", "gru_after", "gru_before", "mgu_after", "mgu_before", "lstm",
        "lstm_peephole", "cifg", "cifg_peephole", "mingru", "minlstm"]


def table():
    """The list-table's rows (header first), each a list of cell texts."""
    text = INDEX.read_text()
    start = text.index(":class: cells-at-a-glance")
    rows = []
    for line in text[start:].splitlines()[1:]:
        if line.startswith("   * - "):
            rows.append([line[7:]])
        elif line.startswith("     - "):
            rows[-1].append(line[7:])
        elif line.startswith("       ") and rows:
            rows[-1][-1] += " " + line.strip()
        elif line.strip() and not line.startswith("   "):
            break
    return rows


def count_formula(cell_text):
    """':math:`3H(D + H + 1) + H`' -> a function of (D, H)."""
    expr = re.fullmatch(r":math:`([^`]*)`", cell_text.strip()).group(1)
    expr = re.sub(r"(?<=[0-9A-Z)])\s*(?=[A-Z(])", "*", expr.replace(" ", ""))
    assert re.fullmatch(r"[0-9DH+*()]+", expr), expr
    return lambda D, H: eval(expr, {}, {"D": D, "H": H})


def test_the_table_has_a_row_per_cell():
    rows = table()
    assert rows[0][:3] == ["cell", "update", "parameters"] and len(rows[0]) == 7
    assert len(rows) == 1 + len(ROWS) and all(len(r) == 7 for r in rows)


@pytest.mark.parametrize("name", ROWS)
def test_parameter_counts(name):
    formula = count_formula(table()[1 + ROWS.index(name)][2])
    cls, kw = CONFIGS[name]
    for D, H in ((1, 1), (1, 2), (3, 5), (7, 4), (16, 32)):
        cell = cls(D, H, **kw)
        sizes = sum(v.size for v in cell.params.values())
        assert formula(D, H) == sizes == cell.n_params, (D, H)


@pytest.mark.parametrize("name", ROWS)
def test_direct_term_is_the_jacobian_without_U(name):
    """With U = 0 every path through a matrix is cut: J_t (for the LSTM its
    c -> c block) is the table's direct term, 0, diag(f), diag(z) or diag(d);
    minGRU and minLSTM have no U, and diag(1 - z) or diag(f') is all of J_t."""
    H = 4
    cell = make_cell(name, 3, H, scale=1.0)
    if "U" in cell.params:
        cell.params["U"][:] = 0
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (1, 2, 3))
    state0 = random_state(cell, 2, rng)
    J = dg.state_jacobians(cell, x, state0=state0, state="full")[:, 0]
    _, _, cache = cell.forward(x, state0)
    gates = dict(zip(cell.gates, np.split(cache.gates[0], len(cell.gates), axis=-1), strict=True))
    if name == "rnn":
        want, got = np.zeros((2, H)), J
    elif name == "simple_gru":
        want, got = gates["f"], J
    elif name.startswith("gru"):
        want, got = gates["z"], J
    elif name.startswith("mgu"):
        want, got = gates["f"], J
    elif name == "mingru":
        want, got = 1 - gates["z"], J
    elif name == "minlstm":
        want, got = gates["f"] / (gates["f"] + gates["i"]), J
    elif name.startswith("cifg"):
        f, g = gates["f"], gates["g"]
        p_f, _ = cell.params["P"] if cell.peephole else np.zeros((2, H))
        c_prev = state0[1]
        want = f + p_f * (c_prev - g) * f * (1 - f)  # d_t, with i = 1 - f
        got = J[:, H:, H:]
    else:
        i, f, g = gates["i"], gates["f"], gates["g"]
        p_i, p_f, _ = cell.params["P"] if cell.peephole else np.zeros((3, H))
        c_prev = state0[1]
        want = f + p_f * c_prev * f * (1 - f) + p_i * g * i * (1 - i)  # d_t
        got = J[:, H:, H:]
    np.testing.assert_allclose(got, [np.diag(w) for w in want], rtol=0, atol=1e-15)


def at_init(name, H):
    """The table's last column (and the LSTM's matrix below it): J_t at
    initialisation, zero input and zero state."""
    cls, kw = CONFIGS[name]
    cell = cls(3, H, seed=1, **kw)
    I = np.eye(H)
    if "U" not in cell.params:   # minGRU, minLSTM: z = f = i = 1/2 at b = 0, x = 0
        return cell, I / 2
    U = np.split(cell.params["U"], len(cell.gates), axis=1)
    U_g = U[cell.gates.index("g")]
    s1 = 1 / (1 + np.exp(-1.0))
    want = {
        "rnn": U_g.T,
        "simple_gru": (I + U_g.T) / 2,
        "gru_after": I / 2 + U_g.T / 4,
        "gru_before": I / 2 + U_g.T / 4,
        "mgu_after": I / 2 + U_g.T / 4,
        "mgu_before": I / 2 + U_g.T / 4,
        "lstm": np.block([[U_g.T / 4, s1 / 2 * I], [U_g.T / 2, s1 * I]]),
    }
    want["lstm_peephole"] = want["lstm"]
    want["cifg"] = want["cifg_peephole"] = np.block([[(1 - s1) / 2 * U_g.T, s1 / 2 * I],
                                                     [(1 - s1) * U_g.T, s1 * I]])
    return cell, want[name]


@pytest.mark.parametrize("name", ROWS)
def test_jacobian_at_initialisation(name):
    cell, want = at_init(name, H=5)
    J = dg.state_jacobians(cell, np.zeros((1, 1, 3)), state="full")[0, 0]
    np.testing.assert_allclose(J, want, rtol=0, atol=1e-15)
    norm = dg.singular_values(J)[0]
    bound = {"rnn": 1, "simple_gru": 1, "gru_after": 0.75, "gru_before": 0.75,
             "mgu_after": 0.75, "mgu_before": 0.75, "mingru": 0.5, "minlstm": 0.5}
    if name in bound:
        assert norm <= bound[name] + 1e-12
    if name == "rnn":
        np.testing.assert_allclose(dg.singular_values(J), 1, rtol=1e-14)
