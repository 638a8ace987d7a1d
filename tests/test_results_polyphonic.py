"""docs/results/polyphonic.json, the record behind the page "Chung et al.'s
Table 2 on their own data": its numbers agree with themselves, with the
recipe the page states, and with what the page draws from them; and the
script that writes it reduces a Comparison correctly."""
import importlib.util
import json
import math
import pathlib
import sys

import numpy as np
import pytest

from pyx_gru import experiments, tasks
from pyx_gru.tasks.polyphonic import CHUNG_TABLE_2

ROOT = pathlib.Path(__file__).resolve().parents[1]
RECORD = ROOT / "docs" / "results" / "polyphonic.json"
PAGE = ROOT / "docs" / "results" / "polyphonic.rst"


def _load(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def record():
    return json.loads(RECORD.read_text())


@pytest.fixture(scope="module")
def figures():
    pytest.importorskip("matplotlib")
    return _load(ROOT / "docs" / "_ext" / "results_figures.py", "results_figures")


def test_every_set_has_the_three_cells_five_seeds_and_the_lr_grid(record):
    assert set(record["sets"]) <= set(tasks.POLYPHONIC_SETS) and "jsb" in record["sets"]
    for name, entry in record["sets"].items():
        s = entry["settings"]
        assert s["task"] == name and len(s["lrs"]) >= 2 and len(s["seeds"]) >= 5
        assert s["optimizer"] == "rmsprop" and s["clip"] == 1.0 and s["weight_noise"] == 0.075
        cells = [c["cell"] for c in entry["cells"]]
        assert {"rnn", "gru", "lstm"} <= set(cells) and cells == s["cells"]
        assert entry["chung"] == CHUNG_TABLE_2[name]
        for c in entry["cells"]:
            assert len(c["test"]) == len(s["seeds"]) == len(c["valid_curves"])
            assert c["lr"] in s["lrs"]
            assert abs(c["n_params"] - 20_000) <= 0.05 * 20_000       # Chung et al.'s budget
            assert c["n_params"] == experiments.count_params(c["cell"], c["hidden_size"], 88, 88)
            assert c["test_mean"] == pytest.approx(np.mean(c["test"]), rel=1e-12)
            assert c["test_std"] == pytest.approx(np.std(c["test"], ddof=1), rel=1e-12)
            assert [len(v) for v in c["valid_curves"]] == c["epochs"]
            assert all(e <= s["epochs"] for e in c["epochs"])


def test_the_lr_was_chosen_on_validation_loss(record):
    for entry in record["sets"].values():
        for c in entry["cells"]:
            chosen = np.mean([min(v) for v in c["valid_curves"]])
            for lr in set(entry["settings"]["lrs"]) - {c["lr"]}:
                other = [r["best_valid"] for r in entry["other_lrs"]
                         if r["cell"] == c["cell"] and r["lr"] == lr]
                assert len(other) == len(c["test"])
                assert chosen <= np.mean(other)


def test_the_tests_against_the_tanh_rnn_are_welchs(record):
    from scipy import stats

    for entry in record["sets"].values():
        by_cell = {c["cell"]: c for c in entry["cells"]}
        rnn = by_cell["rnn"]["test"]
        assert [a["cell"] for a in entry["against_rnn"]] == [c for c in by_cell if c != "rnn"]
        for a in entry["against_rnn"]:
            mine = by_cell[a["cell"]]["test"]
            expected = stats.ttest_ind(rnn, mine, equal_var=False, alternative="greater")
            assert a["t"] == pytest.approx(expected.statistic, rel=1e-9)
            assert a["p"] == pytest.approx(expected.pvalue, rel=1e-9)
            assert a["advantage"] == pytest.approx(np.mean(rnn) - np.mean(mine), rel=1e-12)
            assert a["separated"] == (max(mine) < min(rnn))


def test_the_baselines_are_the_shipped_datas(record):
    for name, entry in record["sets"].items():
        train, valid, test = tasks.polyphonic(name)
        assert entry["settings"]["baseline"] == pytest.approx(test.baseline, rel=1e-12)
        assert entry["baseline_train_fit"] == pytest.approx(test.info["baseline_train_fit"],
                                                            rel=1e-12)
        # with --chunk the training pieces were cut into windows
        chunk = entry["settings"].get("chunk")
        n_train = train.chunks(chunk).N if chunk else train.N
        assert (entry["settings"]["n_train"], entry["settings"]["n_valid"],
                entry["settings"]["n_test"]) == (n_train, valid.N, test.N)


def test_the_page_shows_every_set_and_its_numbers(record, figures):
    page = PAGE.read_text()
    for name in record["sets"]:
        assert f"/_results/polyphonic_{name}.svg" in page
    for directive in ("polyphonic-table", "polyphonic-tests", "polyphonic-runs"):
        assert f".. {directive}::" in page
    rows = figures.table_rows(record)
    assert len(rows) == sum(len(e["cells"]) for e in record["sets"].values())
    jsb = record["sets"]["jsb"]
    first = rows[[r[0] for r in rows].index("JSB Chorales")]
    assert first[5].startswith(f"{jsb['cells'][0]['test_mean']:.3f} ± ")
    assert len(figures.test_rows(record)) == sum(len(e["against_rnn"])
                                                 for e in record["sets"].values())


def test_the_figures_draw(record, figures, tmp_path):
    paths = figures.write_all(tmp_path, RECORD)
    assert [p.name for p in paths] == [f"polyphonic_{n}.svg" for n in record["sets"]]
    for p in paths:
        assert p.read_bytes().startswith(b"<?xml")
    mean = figures.curves(record, "jsb")["gru"][1]
    runs = next(c for c in record["sets"]["jsb"]["cells"] if c["cell"] == "gru")["valid_curves"]
    assert mean[0] == pytest.approx(np.mean([r[0] for r in runs]))


def test_collect_reduces_a_comparison(tmp_path, monkeypatch):
    pytest.importorskip("joblib")
    pytest.importorskip("threadpoolctl")
    script = _load(ROOT / "docs" / "results" / "polyphonic.py", "polyphonic_results")
    train, valid, test = tasks.polyphonic("jsb")
    small = tuple(t.subset(np.arange(6)) for t in (train, valid, test))
    result = experiments.compare(small, cells=["rnn", "gru"], hidden_size=4, lrs=[1e-2, 3e-2],
                                 seeds=[0, 1], epochs=2, batch_size=3, optimizer="rmsprop")
    out = tmp_path / "runs"
    result.save(out, plots=False)
    target = tmp_path / "record.json"
    monkeypatch.setattr(sys, "argv", ["polyphonic.py"])
    script.main([f"jsb={out}", "--out", str(target)])
    entry = json.loads(target.read_text())["sets"]["jsb"]
    summary = {s["cell"]: s for s in result.summary()}
    for c in entry["cells"]:
        assert c["lr"] == summary[c["cell"]]["lr"]
        assert c["test_mean"] == pytest.approx(summary[c["cell"]]["test_loss"], rel=1e-12)
        assert len(c["valid_curves"]) == 2 and all(len(v) == 2 for v in c["valid_curves"])
    assert len(entry["other_lrs"]) == 4 and entry["chung"] == CHUNG_TABLE_2["jsb"]
    assert [a["cell"] for a in entry["against_rnn"]] == ["gru"]
    assert math.isfinite(entry["settings"]["wall_time"]) and entry["machine"]["cores"] >= 1
    assert "cpu_seconds" not in entry
    script.main(["--cpu", "jsb=61.5", "--out", str(target), f"jsb={out}"])
    assert json.loads(target.read_text())["sets"]["jsb"]["cpu_seconds"] == 61.5
    with pytest.raises(SystemExit):
        script.main(["bogus=" + str(out), "--out", str(target)])
    for bad in ("jsb=fast", "nottingham=10"):     # not a number; a set not in the record
        with pytest.raises(SystemExit):
            script.main([f"jsb={out}", "--cpu", bad, "--out", str(tmp_path / "other.json")])


def test_the_chorales_tutorial_quotes_the_full_run(record):
    """tutorials/plot_chorales.py sets its short run beside the full one:
    the numbers it quotes are the record's, to the two decimals it shows."""
    import ast

    tree = ast.parse((ROOT / "tutorials" / "plot_chorales.py").read_text())
    (quoted,) = [ast.literal_eval(node.value) for node in ast.walk(tree)
                 if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "full_run"]
    jsb = {c["cell"]: c["test_mean"] for c in record["sets"]["jsb"]["cells"]}
    assert quoted == {cell: round(jsb[cell], 2) for cell in quoted}
    assert set(quoted) == {"rnn", "gru", "lstm"}


def test_the_story_and_the_gru_page_quote_the_record(record):
    jsb = {c["cell"]: f"{c['test_mean']:.2f}" for c in record["sets"]["jsb"]["cells"]}
    story = (ROOT / "docs" / "story.rst").read_text()
    gru = (ROOT / "docs" / "theory" / "gru.rst").read_text()
    assert (f"the tanh RNN reaches a test\nNLL of {jsb['rnn']} nats per frame, the GRU "
            f"{jsb['gru']} and the LSTM {jsb['lstm']}") in story
    assert f"test NLL of {jsb['gru']} nats per frame" in gru
    assert f"tanh RNN ({jsb['rnn']})" in gru and f"LSTM ({jsb['lstm']})" in gru


def markov_per_key(train, test):
    """Test NLL per frame (nats) of a two-state Markov chain per key: p(key
    sounds at t + 1 | it sounds or not at t), counted on the training frames
    plus one half each."""
    def frames(task):
        real = np.arange(task.x.shape[0])[:, None] < task.lengths[None, :]
        return task.x[real], task.y[real]
    x, y = frames(train)
    on = (np.sum(y * x, 0) + 0.5) / (np.sum(x, 0) + 1)
    off = (np.sum(y * (1 - x), 0) + 0.5) / (np.sum(1 - x, 0) + 1)
    x, y = frames(test)
    p = np.where(x == 1, on, off)
    return float(-(y * np.log(p) + (1 - y) * np.log1p(-p)).sum(-1).mean())


def test_the_pages_simple_predictors_are_recomputed():
    """The page's table of the memoryless baseline and the Markov chain per
    key, recomputed from the shipped data, with Chung et al.'s best cell."""
    page = PAGE.read_text()
    block = page[page.index("     - Chung et al.'s best cell"):]
    block = block[:block.index("\n\n")]
    rows = [r.split("\n     - ") for r in block.split("\n   * - ")[1:]]
    titles = {"JSB Chorales": "jsb", "Nottingham": "nottingham", "MuseData": "musedata",
              "Piano-midi.de": "piano_midi"}
    assert [r[0] for r in rows] == list(titles)
    for title, memoryless, markov, best in (r[:4] for r in rows):
        train, _, test = tasks.polyphonic(titles[title])
        assert float(memoryless) == round(test.info["baseline_train_fit"], 2)
        assert float(markov.split()[0]) == round(markov_per_key(train, test), 2)
        assert float(best.split()[0]) == min(CHUNG_TABLE_2[titles[title]].values())


CAPACITY = ROOT / "docs" / "results" / "capacity"


def _capacity_rows(page):
    """The rows of the page's table of the PyTorch runs, as lists of cells."""
    block = page[page.index("     - test NLL, averaged per piece"):]
    block = block[:block.index("\n\n")]
    return [r.split("\n     - ") for r in block.split("\n   * - ")[1:]]


def test_the_capacity_runs_are_on_the_page():
    """Every record of docs/results/polyphonic_capacity.py's runs is a row of
    the page's table, with its figures as recorded."""
    records = [json.loads(p.read_text()) for p in sorted(CAPACITY.glob("*.json"))]
    assert len(records) >= 4
    rows = {(r[0], r[1]): r for r in _capacity_rows(PAGE.read_text())}
    assert len(rows) == len(records)
    titles = {k: v[1] for k, v in tasks.POLYPHONIC_SETS.items()}
    names = {"rnn": "tanh RNN", "gru": "GRU", "lstm": "LSTM"}
    for rec in records:
        H, K = rec["hidden_size"], 88
        gates = {"rnn": 1, "gru": 3, "lstm": 4}[rec["cell"]]
        assert rec["n_params"] == gates * (K * H + H * H + 2 * H) + H * K + K  # PyTorch's layout
        row = rows[(titles[rec["set"]], f"{names[rec['cell']]}, H = {H}")]
        assert row[2] == f"{rec['n_params']:,}"
        assert row[3] == f"{rec['epochs']} ({rec['best_epoch']})"
        assert row[4:8] == [f"{rec['train']['per_frame']:.2f}", f"{rec['valid']['per_frame']:.2f}",
                            f"{rec['test']['per_frame']:.2f}", f"{rec['test']['per_piece']:.2f}"]
        assert rec["valid"]["per_frame"] == pytest.approx(min(rec["valid_curve"]), rel=1e-6)
        assert rec["best_epoch"] == 1 + int(np.argmin(rec["valid_curve"]))


@pytest.fixture
def torch_state():
    """Give back PyTorch's thread count and RNG, which the script sets."""
    torch = pytest.importorskip("torch")
    threads = torch.get_num_threads()
    with torch.random.fork_rng():
        yield
    torch.set_num_threads(threads)


def test_the_capacity_script_trains_and_records(tmp_path, torch_state):
    script = _load(ROOT / "docs" / "results" / "polyphonic_capacity.py", "polyphonic_capacity")
    out = tmp_path / "run.json"
    args = ["--set", "jsb", "--cell", "gru", "--hidden", "8", "--epochs", "3", "--out", str(out)]
    script.main(args)
    rec = json.loads(out.read_text())
    assert rec["epochs"] == 3 and rec["n_params"] == 3 * (88 * 8 + 64 + 16) + 8 * 88 + 88
    assert rec["valid"]["per_frame"] == pytest.approx(min(rec["valid_curve"]), rel=1e-6)
    assert rec["valid_curve"][-1] < rec["valid_curve"][0] < 61.0   # it learns (88 ln 2 = 61)
    script.main(args[:-1] + [str(tmp_path / "again.json")])
    again = json.loads((tmp_path / "again.json").read_text())
    assert again["valid_curve"] == rec["valid_curve"]                 # seeded: repeatable
    with pytest.raises(SystemExit):
        script.main(["--set", "jsb", "--hidden", "0", "--out", str(out)])
