"""The main job, ``python -m pyx_gru``."""
import subprocess
import sys

from pyx_gru.__main__ import main


def test_main_prints_every_cell(capsys):
    assert main(["--T", "20", "--B", "2", "--D", "3", "--H", "4", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    for label in ("RNN", "SimpleGRU", "GRU reset=after", "GRU reset=before", "LSTM", "LSTM peephole"):
        assert any(line.startswith(label + " ") for line in out.splitlines()), label
    assert "OK (threshold 1e-6)" in out


def test_main_runs_as_a_module():
    proc = subprocess.run(
        [sys.executable, "-m", "pyx_gru", "--T", "5", "--H", "3", "--D", "2", "--repeats", "1"],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "params" in proc.stdout and "speed-up" in proc.stdout


def test_main_rejects_bad_sizes(capsys):
    import pytest
    with pytest.raises(SystemExit):
        main(["--T", "0"])
    assert "--T must be >= 1" in capsys.readouterr().err
