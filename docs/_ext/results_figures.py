"""The results pages' figures, drawn from the recorded numbers when the site is built.

``docs/results/polyphonic.json`` (written by ``docs/results/polyphonic.py``
from the sweeps' ``results.json``) holds, for every music set, the
validation curves of each cell's runs at its chosen learning rate. As a
Sphinx extension (``"results_figures"`` in ``conf.py``) this module draws
one figure per set, the mean validation NLL over the seeds after every
epoch with the seeds' range shaded, as SVG into ``docs/_results/`` (which
ignores itself in git), and gives docs/results/polyphonic.rst its tables
from the same record, so that the page cannot drift from it:
``.. polyphonic-table::`` (ours beside Chung et al.'s Table 2),
``.. polyphonic-tests::`` (each cell against the tanh RNN) and
``.. polyphonic-runs::`` (commands, wall times, machine).
"""
import io
import json
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.figure import Figure

RECORD = Path(__file__).resolve().parents[1] / "results" / "polyphonic.json"
STYLE = {"font.size": 10, "svg.fonttype": "path", "svg.hashsalt": "pyx_gru",
         "figure.facecolor": "white", "savefig.facecolor": "white"}
LABELS = {"rnn": "tanh RNN", "sgru": "simplified GRU", "gru": "GRU (reset after)",
          "gru_before": "GRU (reset before)", "lstm": "LSTM", "lstm_peephole": "LSTM, peepholes"}
COLORS = {"rnn": "C0", "sgru": "C1", "gru": "C2", "gru_before": "C4", "lstm": "C3",
          "lstm_peephole": "C5"}


def curves(record, name):
    """Per cell: (epochs, mean, low, high) of the chosen runs' validation
    NLL; a seed that stopped early keeps its last value after its end."""
    out = {}
    for c in record["sets"][name]["cells"]:
        runs = c["valid_curves"]
        n = max(len(r) for r in runs)
        grid = np.array([r + [r[-1]] * (n - len(r)) for r in runs], dtype=float)
        out[c["cell"]] = (np.arange(1, n + 1), grid.mean(0), grid.min(0), grid.max(0))
    return out


def draw(record, name):
    """The figure of set ``name``: validation curves of every cell."""
    entry = record["sets"][name]
    fig = Figure(figsize=(6.4, 3.8))
    ax = fig.add_subplot()
    lows = []
    for cell, (epoch, mean, low, high) in curves(record, name).items():
        lr = next(c["lr"] for c in entry["cells"] if c["cell"] == cell)
        ax.plot(epoch, mean, color=COLORS.get(cell), linewidth=1.4,
                label=f"{LABELS.get(cell, cell)}, lr {lr:g}")
        ax.fill_between(epoch, low, high, color=COLORS.get(cell), alpha=0.15, linewidth=0)
        lows.append(mean.min())
    top = min(entry["baseline_train_fit"] or np.inf, max(lows) + 1.0)
    ax.set_ylim(min(lows) - 0.1, top)
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation NLL (nats per frame)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    return fig


def write_all(directory, record_path=RECORD):
    """Write ``polyphonic_SET.svg`` for every set of the record; the paths."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    ignore = directory / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# written by docs/_ext/results_figures.py at every build\n*\n")
    record = json.loads(Path(record_path).read_text())
    paths = []
    for name in record["sets"]:
        with matplotlib.rc_context(STYLE):
            buf = io.BytesIO()
            draw(record, name).savefig(buf, format="svg",
                                       metadata={"Date": None, "Creator": None})
        path = directory / f"polyphonic_{name}.svg"
        if not path.exists() or path.read_bytes() != buf.getvalue():
            path.write_bytes(buf.getvalue())
        paths.append(path)
    return paths


ORDER = ("jsb", "nottingham", "musedata", "piano_midi")
TITLES = {"jsb": "JSB Chorales", "nottingham": "Nottingham", "musedata": "MuseData",
          "piano_midi": "Piano-midi.de"}


def _sets(record):
    return [n for n in ORDER if n in record["sets"]]


def table_rows(record):
    """The main table: one row per set and cell, as lists of strings."""
    rows = []
    for name in _sets(record):
        entry = record["sets"][name]
        chung = entry.get("chung") or {}
        for k, c in enumerate(entry["cells"]):
            std = "" if c["test_std"] is None else f" ± {c['test_std']:.3f}"
            rows.append([TITLES[name] if k == 0 else "", LABELS.get(c["cell"], c["cell"]),
                         str(c["hidden_size"]), f"{c['n_params']:,}", f"{c['lr']:g}",
                         f"{c['test_mean']:.3f}{std}", f"{min(c['test']):.3f}",
                         f"{chung[c['cell']]:.2f}" if c["cell"] in chung else "",
                         f"{entry['baseline_train_fit']:.2f}" if k == 0 else ""])
    return rows


def test_rows(record):
    rows = []
    for name in _sets(record):
        for k, a in enumerate(record["sets"][name]["against_rnn"]):
            rows.append([TITLES[name] if k == 0 else "", LABELS.get(a["cell"], a["cell"]),
                         f"{a['advantage']:+.3f}", f"{a['spread']:.3f}", f"{a['t']:.1f}",
                         f"{a['p']:.1e}", "yes" if a["separated"] else "no"])
    return rows


def run_rows(record):
    rows = []
    for name in _sets(record):
        e = record["sets"][name]
        s, m = e["settings"], e["machine"]
        runs = len(s["cells"]) * len(s["lrs"]) * len(s["seeds"])
        train = (f"{e['n_train_pieces']} (as {s['n_train']} windows of at most "
                 f"{s['chunk']} frames)" if s.get("chunk") else str(s["n_train"]))
        rows.append([TITLES[name], f"{train}/{s['n_valid']}/{s['n_test']}", str(runs),
                     f"{s['wall_time'] / 60:.1f} min",
                     f"{e['cpu_seconds'] / 60:.1f} min" if e.get("cpu_seconds") else "",
                     f"{m['cpu']}, {m['cores']} cores",
                     f"``{e['command']}``" if e.get("command") else ""])
    return rows


def _list_table(header, rows, widths=None):
    lines = [".. list-table::", "   :header-rows: 1"]
    if widths:
        lines.append(f"   :widths: {' '.join(map(str, widths))}")
    lines.append("")
    for row in [header] + rows:
        lines.append(f"   * - {row[0] or ' '}")
        lines += [f"     - {cell or ' '}" for cell in row[1:]]
    return lines


def _directive(header, make_rows):
    from docutils import nodes
    from docutils.statemachine import StringList
    from sphinx.util.docutils import SphinxDirective

    class Table(SphinxDirective):
        def run(self):
            self.env.note_dependency(str(RECORD))
            record = json.loads(RECORD.read_text())
            node = nodes.container()
            self.state.nested_parse(StringList(_list_table(header, make_rows(record))),
                                    self.content_offset, node)
            return node.children

    return Table


def _builder_inited(app):
    write_all(Path(app.srcdir) / "_results")


def setup(app):
    app.connect("builder-inited", _builder_inited)
    app.add_directive("polyphonic-table", _directive(
        ["set", "cell", "H", "parameters", "lr (chosen)", "test NLL, mean ± sd",
         "best seed", "Chung et al.", "memoryless"], table_rows))
    app.add_directive("polyphonic-tests", _directive(
        ["set", "cell", "advantage over tanh", "spread (sd)", "Welch t", "p (one-sided)",
         "every seed better"], test_rows))
    app.add_directive("polyphonic-runs", _directive(
        ["set", "pieces (train/valid/test)", "runs", "wall time", "CPU time", "machine",
         "command"],
        run_rows))
    return {"parallel_read_safe": True, "parallel_write_safe": True}
