"""The site's pictures, drawn by docs/_ext/diagrams.py without Sphinx: every
figure is a valid SVG showing the symbols it must, the highlighted path is
where the theory says, the pages include every figure with alt text and a
caption, and each claim figure's caption is true of the numbers it draws
(computed here from the compiled cells, against independent oracles)."""
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("matplotlib", reason="matplotlib (the 'docs' extra), which draws the figures, is not installed")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "docs" / "_ext"))

import diagrams  # noqa: E402
from pyx_gru.diagnostics import decay_rate  # noqa: E402

SVG = "{http://www.w3.org/2000/svg}"

# The labels each diagram must show, as mathtext (matplotlib writes each
# text's source as a comment before its glyphs).
LABELS = {
    "cell_rnn": [r"$h_{t-1}$", r"$x_t$", r"$h_t$", r"$g_t$", r"$\tanh$", r"$U$", r"$W$"],
    "cell_simple_gru": [r"$h_{t-1}$", r"$x_t$", r"$h_t$", r"$f_t$", r"$g_t$", r"$1-f_t$",
                        r"$U_f$", r"$W_f$", r"$U_g$", r"$W_g$", r"$\sigma$", r"$\tanh$",
                        r"$\odot$", r"$+$"],
    "cell_gru_after": [r"$h_{t-1}$", r"$x_t$", r"$h_t$", r"$z_t$", r"$r_t$", r"$g_t$", r"$n_t$",
                       r"$1-z_t$", r"$b_{hg}$", r"$U_z$", r"$W_z$", r"$U_r$", r"$W_r$",
                       r"$U_g$", r"$W_g$"],
    "cell_gru_before": [r"$h_{t-1}$", r"$x_t$", r"$h_t$", r"$z_t$", r"$r_t$", r"$g_t$",
                        r"$1-z_t$", r"$U_z$", r"$W_z$", r"$U_r$", r"$W_r$", r"$U_g$", r"$W_g$"],
    "cell_lstm": [r"$h_{t-1}$", r"$c_{t-1}$", r"$x_t$", r"$h_t$", r"$c_t$", r"$i_t$", r"$f_t$",
                  r"$g_t$", r"$o_t$", r"$p_f, p_i$", r"$p_o$", r"$U_i$", r"$U_f$", r"$U_g$",
                  r"$U_o$", r"$W_i$", r"$W_f$", r"$W_g$", r"$W_o$"],
    "bptt": [r"$h_0$", r"$h_4$", r"$\bar{h}_0$", r"$\bar{h}_4$", r"$J_1$", r"$J_4$",
             r"$\bar{y}_1$", r"$\bar{y}_4$", r"$x_1$", r"$x_4$"],
    "bptt_lstm": [r"$h_0$", r"$c_0$", r"$\bar{h}_3$", r"$\bar{c}_3$", r"$J_2$", r"$\bar{y}_2$"],
    "reset_before_after": [r"$r_t$", "reset before", r"$(r_t \odot h_{t-1})\,U_g$",
                           "reset after", r"$r_t \odot (h_{t-1} U_g + b_{hg})$",
                           r"$h_{t-1}\,\mathrm{diag}(r_t)\,U_g$", r"$h_{t-1}\,U_g\,\mathrm{diag}(r_t)$"],
}
CELLS = ["cell_rnn", "cell_simple_gru", "cell_gru_after", "cell_gru_before", "cell_lstm"]


@pytest.fixture(scope="module")
def svgs():
    return {name: diagrams.render(name).decode() for name in diagrams.DIAGRAMS}


def _comments(svg):
    return set(re.findall(r"<!-- (.*?) -->", svg, flags=re.S))


def test_every_diagram_has_its_expected_labels():
    assert set(LABELS) == set(diagrams.DIAGRAMS)


@pytest.mark.parametrize("name", sorted(diagrams.DIAGRAMS))
def test_diagram_is_a_valid_svg_with_its_labels(svgs, name):
    svg = svgs[name]
    root = ET.fromstring(svg)  # well-formed XML
    assert root.tag == f"{SVG}svg"
    width, height = (float(root.get(k).removesuffix("pt")) for k in ("width", "height"))
    assert 100 < width < 600 and 60 < height < 600, (width, height)
    assert len(root.findall(f".//{SVG}path")) > 20
    missing = [label for label in LABELS[name] if label not in _comments(svg)]
    assert not missing, missing


def _strokes(svg, gid):
    """The stroke colours of the group with id ``gid`` (and its children)."""
    root = ET.fromstring(svg)
    found = []
    for group in root.iter(f"{SVG}g"):
        if group.get("id", "").startswith(gid):
            for e in group.iter():
                found += re.findall(r"stroke: (#[0-9a-f]{6})", e.get("style", ""))
    return found


@pytest.mark.parametrize("name", CELLS)
def test_only_the_gated_cells_have_a_highway(svgs, name):
    strokes = _strokes(svgs[name], "highway")
    if name == "cell_rnn":
        assert not strokes and diagrams.HIGHWAY not in svgs[name]
    else:
        assert strokes and set(strokes) == {diagrams.HIGHWAY}


def test_lstm_peepholes_are_dashed(svgs):
    root = ET.fromstring(svgs["cell_lstm"])
    wires = [g for g in root.iter(f"{SVG}g") if g.get("id", "").startswith("peephole")]
    assert len(wires) == 3  # c_{t-1} into f and i, c_t into o
    for g in wires:
        styles = " ".join(e.get("style", "") for e in g.iter())
        assert "stroke-dasharray" in styles and diagrams.PEEPHOLE in styles
    assert "stroke-dasharray" not in svgs["cell_gru_after"]


def test_ids_are_unique(svgs):
    for name, svg in svgs.items():
        ids = re.findall(r' id="([^"]+)"', svg)
        assert len(ids) == len(set(ids)), name


def test_diagrams_are_the_same_bytes_every_time(svgs):
    # so that an unchanged figure is not rewritten and its pages not read again
    assert diagrams.render("cell_gru_after").decode() == svgs["cell_gru_after"]


@pytest.mark.parametrize("name", sorted(diagrams.FIGURES))
def test_text_is_legible_on_a_phone(name):
    """In the 340 px column of a 400 px wide phone, every label is at least
    10 px; at the figure's natural size on a desktop, at least 14 px (about
    11 pt). Subscripts are smaller, by mathtext's fixed ratio."""
    import matplotlib

    with matplotlib.rc_context(diagrams.STYLE):
        fig = diagrams.FIGURES[name]()
        fig.draw_without_rendering()  # tick labels get their text when drawn
    width_px = fig.get_figwidth() * 96
    sizes = [t.get_fontsize() * 96 / 72 for t in fig.findobj(matplotlib.text.Text) if t.get_text()]
    assert sizes
    assert min(sizes) * min(1.0, 340 / width_px) >= 10, (min(sizes), width_px)
    assert min(sizes) >= 14


def test_write_all_writes_only_what_changed(tmp_path):
    names = ["cell_rnn", "bptt"]
    paths = diagrams.write_all(tmp_path, names)
    assert [p.name for p in paths] == ["cell_rnn.svg", "bptt.svg"]
    assert (tmp_path / ".gitignore").read_text().splitlines()[-1] == "*"
    stamps = [p.stat().st_mtime_ns for p in paths]
    paths[1].write_text("stale")
    diagrams.write_all(tmp_path, names)
    assert paths[0].stat().st_mtime_ns == stamps[0]
    assert paths[1].read_text().startswith("<?xml")


# --------------------------------------------------------------------------
# The pages: every figure included, with alt text and a caption
# --------------------------------------------------------------------------

def _rst_files():
    return [p for p in (ROOT / "docs").rglob("*.rst")
            if not {"_build", "auto_tutorials", "generated"} & set(p.parts)]


FIGURE = re.compile(r"^\.\. figure:: /_diagrams/(\w+)\.svg\n((?:   .*\n|\n)*)", re.M)


def test_pages_include_every_figure_with_alt_text_and_caption():
    used = set()
    for path in _rst_files():
        for name, body in FIGURE.findall(path.read_text(encoding="utf-8")):
            where = f"{path.relative_to(ROOT)}: {name}"
            assert name in diagrams.FIGURES, where
            used.add(name)
            options = re.findall(r"^   :(\w+):(.*)$", body, re.M)
            alt = dict(options).get("alt", "").strip()
            assert len(alt) > 40, f"{where}: no alt text"
            caption = [line for line in body.splitlines() if line.strip() and not line.startswith("   :")]
            assert len(" ".join(caption)) > 60, f"{where}: no caption"
    assert used == set(diagrams.FIGURES), f"figures no page shows: {set(diagrams.FIGURES) - used}"


def test_front_page_shows_every_cell():
    text = (ROOT / "docs" / "index.rst").read_text(encoding="utf-8")
    block = text.split(".. cell-cards::", 1)[1].split("\n\n", 2)[1]
    cards = [line.split(None, 2) for line in block.splitlines()]
    assert [c[0] for c in cards] == CELLS
    for _name, doc, _title in cards:
        assert (ROOT / "docs" / f"{doc}.rst").is_file(), doc
    assert ".. tutorial-cards::" in text


def test_tutorial_titles_are_read_from_the_scripts():
    title = diagrams._title_of(ROOT / "tutorials" / "plot_gradient_flow.py")
    assert title.startswith("Gradient flow")


# --------------------------------------------------------------------------
# The claim figures: what their captions say
# --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def rnn():
    return diagrams.rnn_data()


@pytest.fixture(scope="module")
def simple_gru():
    return diagrams.simple_gru_data()


@pytest.fixture(scope="module")
def gru():
    return diagrams.gru_data()


@pytest.fixture(scope="module")
def lstm():
    return diagrams.lstm_data()


def _rate(curve):
    return decay_rate(curve)


def test_claim_rnn(rnn):
    """theory/rnn.rst: every curve under its bound sigma_max(U)^(T - t);
    below 1e-7 after 60 steps at 0.8; at 1.2 a bound that grows more than
    1e4-fold, and a gradient that stays below its starting value."""
    for a in rnn["alphas"]:
        curve, bound = rnn[a]["curve"], rnn[a]["bound"]
        assert np.all(curve <= bound * (1 + 1e-9)), a
        assert curve[-1] == pytest.approx(1.0)
    assert rnn[0.8]["curve"][0] < 1e-7
    assert rnn[1.2]["bound"][0] > 1e4
    assert np.all(rnn[1.2]["curve"][:-1] < 1.0)


def test_claim_simple_gru(simple_gru):
    """theory/simple_gru.rst: with b_f = 0, 2, 4 (mean f 0.47, 0.87, 0.98)
    the gradient fades by about 0.94, 0.98, 0.99 per step, the vanilla RNN's
    by 0.90; at b_f = 4 more than half is left after 60 steps."""
    rates = [_rate(simple_gru[b]["curve"]) for b in simple_gru["biases"]]
    assert rates == pytest.approx([0.94, 0.98, 0.99], abs=0.005)
    assert [simple_gru[b]["f"] for b in simple_gru["biases"]] == pytest.approx([0.47, 0.87, 0.98],
                                                                               abs=0.005)
    assert _rate(simple_gru["rnn"]) == pytest.approx(0.90, abs=0.005)
    assert _rate(simple_gru["rnn"]) < rates[0] < rates[1] < rates[2]
    assert simple_gru[4.0]["curve"][0] > 0.5


def test_claim_gru(gru):
    """theory/gru.rst: both forms fade by about 0.73 per step, under 3/4 and
    faster than the vanilla RNN's 0.90; with b_z = 2, 0.93, slower than the RNN."""
    rnn = _rate(gru["rnn"])
    for form in ("after", "before"):
        assert _rate(gru[form]) == pytest.approx(0.73, abs=0.005)
        assert _rate(gru[form]) < 0.75 and np.all(gru[form] < 0.75 ** (60 - gru["t"]) + 1e-12)
    assert rnn == pytest.approx(0.90, abs=0.005)
    assert gru["b_z"] == 2.0
    assert _rate(gru["after_bz"]) == pytest.approx(0.93, abs=0.005)
    assert _rate(gru["after_bz"]) > rnn


def test_claim_lstm(lstm):
    """theory/lstm.rst: with U = 0, dc_{t-1} = dc_t * f_t exactly (against the
    product of the cached forget gates), fading by about 0.75, 0.95, 0.993
    per step for b_f = 1, 3, 5 (mean f 0.73, 0.95, 0.99); after 60 steps the
    default LSTM keeps 0.03 of it, the path through c alone 3e-8 at b_f = 1."""
    for b in lstm["biases"]:
        np.testing.assert_allclose(lstm[b]["curve"], lstm[b]["product"], rtol=1e-10)
    rates = [_rate(lstm[b]["curve"]) for b in lstm["biases"]]
    assert rates == pytest.approx([0.75, 0.95, 0.993], abs=0.005)
    assert [lstm[b]["f"] for b in lstm["biases"]] == pytest.approx([0.73, 0.95, 0.99], abs=0.005)
    assert 0.03 < lstm["full"][0] < 0.04 and 2.5e-8 < lstm[1.0]["curve"][0] < 3.5e-8


def test_claim_figures_render():
    for name in diagrams.CLAIMS:
        root = ET.fromstring(diagrams.render(name).decode())
        assert root.tag == f"{SVG}svg"
