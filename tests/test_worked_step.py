"""Every number of docs/theory/worked_step.rst, recomputed.

The page's math blocks are read line by line: a line ``name &= ...`` starts
a quantity (``name = ...`` in a block of one line), a line ``&= ...``
continues it, and a quantity's value is the last ``bmatrix`` (or plain
number) on its lines. The weights, input and
upstream gradient are taken from the page; every other quantity is
recomputed in float64 with the compiled cell (``pyx_gru.GRU``, reset after)
and with the NumPy reference's step functions, and must match the printed
digits to half a unit in the last printed place. The page's "Run it
yourself" code is run as well and must print what the page says it prints.
"""
import contextlib
import io
import re
from pathlib import Path

import numpy as np
import pytest

import pyx_gru as pg
from pyx_gru import reference

PAGE = Path(__file__).resolve().parent.parent / "docs" / "theory" / "worked_step.rst"
NUMBER = r"-?\d+(?:\.\d+)?"


def math_blocks(text):
    """The bodies of the page's ``.. math::`` blocks, as lists of lines."""
    blocks, lines = [], text.splitlines()
    for k, line in enumerate(lines):
        if line.strip() == ".. math::":
            body = []
            for nxt in lines[k + 1:]:
                if nxt.strip() and not nxt.startswith("   "):
                    break
                body.append(nxt)
            blocks.append([b for b in body if b.strip()])
    return blocks


def parse_matrix(src):
    """'0.1 & 0.2 \\\\ 0.3 & 0.4' -> (array, decimals of each entry)."""
    rows = [r.split("&") for r in src.split(r"\\")]
    cells = [[c.strip() for c in r] for r in rows]
    for c in sum(cells, []):
        assert re.fullmatch(NUMBER, c), c
    values = np.array([[float(c) for c in r] for r in cells])
    decimals = np.array([[len(c.split(".")[1]) if "." in c else 0 for c in r] for r in cells])
    return values, decimals


def page_values(text=None):
    """{LaTeX name: (values, decimals)} of every quantity on the page."""
    text = PAGE.read_text() if text is None else text
    out, name = {}, None
    for block in math_blocks(text):
        for line in block:
            # 'name &= ...' in an aligned block, 'name = ...' alone
            head = re.match(r"\s*(.*?)\s*&=(.*)$", line) if len(block) > 1 else \
                re.match(r"\s*(.*?)\s*=(.*)$", line)
            assert head, f"not a 'name &= value' line: {line!r}"
            if head.group(1):
                name = head.group(1)
            rhs = head.group(2).strip().rstrip("\\").strip().rstrip(".,").strip()
            mats = re.findall(r"\\begin\{bmatrix\}(.*?)\\end\{bmatrix\}", rhs)
            if mats:
                value = parse_matrix(mats[-1])
            else:
                last = rhs.split("=")[-1].strip()
                if not re.fullmatch(NUMBER, last):
                    continue  # a formula, no number on this line
                value = parse_matrix(last)
            assert name not in out, f"{name} has two values"
            out[name] = value
    return out


INPUTS = ["x_1", "h_0", "W_z", "W_r", "W_g", "U_z", "U_r", "U_g", "b_z", "b_r", "b_g",
          "b_{hg}", r"\bar{h}_1"]


def setup():
    """The page's numbers, and the cell, parameters and inputs they define."""
    page = page_values()
    v = {k: page[k][0] for k in INPUTS}
    params = {
        "W": np.hstack([v["W_z"], v["W_r"], v["W_g"]]),
        "U": np.hstack([v["U_z"], v["U_r"], v["U_g"]]),
        "b": np.hstack([v["b_z"], v["b_r"], v["b_g"]])[0],
        "b_hg": v["b_{hg}"][0],
    }
    cell = pg.GRU(1, 2, reset="after", dtype=np.float64)
    cell.params = params
    return page, cell, cell.params, v["x_1"], v["h_0"], v[r"\bar{h}_1"]


def compiled_values():
    """Every quantity of the page from the compiled cell: forward and
    backward, gates from its cache, the pre-activations' gradients from its
    parameter gradients (T = B = 1: db is da, db_hg is n-bar)."""
    page, cell, p, x, h0, dh = setup()
    y, h1, cache = cell.forward(x[None], h0)
    dx, dh0, grads = cell.backward(cache, dstate=dh)
    z, r, g = np.split(cache.gates[0], 3, axis=1)
    n = cache.extra[0]
    W_z, W_r, W_g = np.split(p["W"], 3, axis=1)
    U_z, U_r, U_g = np.split(p["U"], 3, axis=1)
    b_z, b_r, b_g = np.split(p["b"], 3)
    da_z, da_r, da_g = np.split(grads["b"][None], 3, axis=1)
    dn = grads["b_hg"][None]
    rec = np.hstack([da_z, da_r, dn]) @ p["U"].T
    out = {
        "a_{z,1}": x @ W_z + h0 @ U_z + b_z, "a_{r,1}": x @ W_r + h0 @ U_r + b_r,
        "z_1": z, "r_1": r, "n_1": n, "a_{g,1}": x @ W_g + b_g + r * n, "g_1": g,
        "h_1": h1, r"\bar{z}_1": da_z / (z * (1 - z)), r"\bar{g}_1": da_g / (1 - g**2),
        r"\text{direct}_1": dh0 - rec, r"\bar{a}_{g,1}": da_g, r"\bar{r}_1": da_r / (r * (1 - r)),
        r"\bar{n}_1": dn, r"\bar{a}_{z,1}": da_z, r"\bar{a}_{r,1}": da_r,
        r"\bar{a}^h_1 U^\top": rec, r"\bar{h}_0": dh0,
        r"\bar{W}_z": grads["W"][:, :2], r"\bar{W}_r": grads["W"][:, 2:4], r"\bar{W}_g": grads["W"][:, 4:],
        r"\bar{U}_z": grads["U"][:, :2], r"\bar{U}_r": grads["U"][:, 2:4], r"\bar{U}_g": grads["U"][:, 4:],
        r"\bar{b}_z": da_z, r"\bar{b}_r": da_r, r"\bar{b}_g": da_g, r"\bar{b}_{hg}": dn,
        r"\bar{x}_1": dx[0],
    }
    # the pre-activations recomputed from the products are the cell's own
    np.testing.assert_allclose(1 / (1 + np.exp(-out["a_{z,1}"])), z, rtol=0, atol=1e-15)
    np.testing.assert_allclose(1 / (1 + np.exp(-out["a_{r,1}"])), r, rtol=0, atol=1e-15)
    np.testing.assert_allclose(np.tanh(out["a_{g,1}"]), g, rtol=0, atol=1e-15)
    np.testing.assert_array_equal(y[0], h1)
    return page, out


def reference_values():
    """The same quantities from the NumPy reference's step functions, with
    the page's formulas for the intermediates they do not return."""
    page, cell, p, x, h0, dh = setup()
    (h1,), (x_t, h_prev, z, r, n, g) = reference.gru_after_step_forward(x, (h0,), p)
    cache = (x_t, h_prev, z, r, n, g)
    dx, (dh0,), grads = reference.gru_after_step_backward((dh,), cache, p)
    dz, dg = dh * (h0 - g), dh * (1 - z)
    da_g = dg * (1 - g**2)
    dr, dn = da_g * n, da_g * r
    da_z, da_r = dz * z * (1 - z), dr * r * (1 - r)
    W_z, W_r, W_g = np.split(p["W"], 3, axis=1)
    U_z, U_r, U_g = np.split(p["U"], 3, axis=1)
    b_z, b_r, b_g = np.split(p["b"], 3)
    rec = np.hstack([da_z, da_r, dn]) @ p["U"].T
    return page, {
        "a_{z,1}": x @ W_z + h0 @ U_z + b_z, "a_{r,1}": x @ W_r + h0 @ U_r + b_r,
        "z_1": z, "r_1": r, "n_1": n, "a_{g,1}": x @ W_g + b_g + r * n, "g_1": g, "h_1": h1,
        r"\bar{z}_1": dz, r"\bar{g}_1": dg, r"\text{direct}_1": dh * z, r"\bar{a}_{g,1}": da_g,
        r"\bar{r}_1": dr, r"\bar{n}_1": dn, r"\bar{a}_{z,1}": da_z, r"\bar{a}_{r,1}": da_r,
        r"\bar{a}^h_1 U^\top": rec, r"\bar{h}_0": dh0,
        r"\bar{W}_z": grads["W"][:, :2], r"\bar{W}_r": grads["W"][:, 2:4], r"\bar{W}_g": grads["W"][:, 4:],
        r"\bar{U}_z": grads["U"][:, :2], r"\bar{U}_r": grads["U"][:, 2:4], r"\bar{U}_g": grads["U"][:, 4:],
        r"\bar{b}_z": grads["b"][None, :2], r"\bar{b}_r": grads["b"][None, 2:4],
        r"\bar{b}_g": grads["b"][None, 4:], r"\bar{b}_{hg}": grads["b_hg"][None], r"\bar{x}_1": dx,
    }


def test_the_page_prints_every_intermediate_once():
    page = page_values()
    _, computed = compiled_values()
    assert set(page) == set(INPUTS) | set(computed)
    for k in INPUTS:  # the inputs are short decimals: exact in the cell as printed
        assert np.all(page[k][1] == 1), k


@pytest.mark.parametrize("source", ["compiled", "reference"])
def test_every_printed_number_is_right_to_the_last_digit(source):
    page, computed = compiled_values() if source == "compiled" else reference_values()
    for name, value in computed.items():
        printed, decimals = page[name]
        value = np.asarray(value).reshape(printed.shape)
        error = np.abs(printed - value)
        assert np.all(decimals == 4), name
        assert np.all(error <= 0.5e-4 + 1e-12), f"{name}: page {printed}, {source} {value}"


def test_compiled_and_reference_agree():
    _, a = compiled_values()
    _, b = reference_values()
    for name in a:
        np.testing.assert_allclose(np.asarray(a[name]).reshape(np.shape(b[name])), b[name],
                                   rtol=0, atol=1e-13, err_msg=name)


def test_a_wrong_digit_on_the_page_is_caught():
    """The check can fail: one digit changed in the page's text is found."""
    text = PAGE.read_text()
    h1 = re.search(r"h_1 &= z_1.*?\n\s*&= (\\begin\{bmatrix\} (-?\d\.\d{4}))", text, re.S)
    wrong = text.replace(h1.group(1), h1.group(1).replace(h1.group(2), f"{float(h1.group(2)) + 1e-4:.4f}"))
    page = page_values(wrong)
    _, computed = compiled_values()
    assert np.abs(page["h_1"][0] - computed["h_1"]).max() > 0.5e-4


def test_the_run_it_yourself_code_prints_what_the_page_shows():
    text = PAGE.read_text()
    code = re.search(r"\.\. code-block:: python\n\n((?:   .*\n|\n)+)", text).group(1)
    shown = re.search(r"which prints\n\n\.\. code-block:: text\n\n((?:   .*\n?)+)", text).group(1)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile("\n".join(line[3:] for line in code.splitlines()), str(PAGE), "exec"), {})
    assert out.getvalue().split("\n")[:2] == [line[3:] for line in shown.rstrip("\n").splitlines()]
