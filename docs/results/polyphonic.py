"""Collect the polyphonic-music sweeps into docs/results/polyphonic.json.

The sweeps themselves are ``python -m pyx_gru compare --task SET ...``
commands (the page docs/results/polyphonic.md gives them); each writes
``results.json`` into its ``--out`` directory. This script reads those and
keeps what the page and its figure need: per set, the command's settings,
the wall time and (given) the CPU time, each cell's summary at its chosen
learning rate (mean and sample standard deviation over the seeds, every
seed's test NLL), the test against the tanh RNN, and the validation curves
of the chosen runs::

    python docs/results/polyphonic.py jsb=OUT_JSB nottingham=OUT_NOTT ... \\
        --command-file commands.txt --cpu jsb=1002 ... --out docs/results/polyphonic.json

Sets already in the output file and not named again are kept.
"""
import argparse
import json
import os
import platform
import sys
from pathlib import Path

import numpy as np

from pyx_gru._files import write_text
from pyx_gru.experiments import Comparison
from pyx_gru.tasks.polyphonic import CHUNG_TABLE_2, POLYPHONIC_SETS, polyphonic

HERE = Path(__file__).resolve().parent
KEEP = ("task", "cells", "hidden_sizes", "target_params", "lrs", "seeds", "optimizer",
        "epochs", "batch_size", "clip", "weight_noise", "patience", "bucket", "chunk", "dtype",
        "n_jobs", "threads_per_job", "n_train", "n_valid", "n_test", "baseline",
        "baseline_valid", "wall_time")


def _cpu():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def collect(result, command=None):
    """The page's record of one set's sweep (a Comparison)."""
    summary = result.summary()
    chosen = {s["cell"]: s["lr"] for s in summary}
    cells = []
    for s in summary:
        runs = [(r, h) for r, h in zip(result.rows, result.histories, strict=True)
                if r["cell"] == s["cell"] and r["lr"] == s["lr"]]
        tests = [r["test_loss"] for r, _ in runs]
        cells.append({
            "cell": s["cell"], "hidden_size": s["hidden_size"], "n_params": s["n_params"],
            "lr": s["lr"], "test_mean": float(np.mean(tests)),
            "test_std": float(np.std(tests, ddof=1)) if len(tests) > 1 else None,
            "test": tests, "best_epoch": [r["best_epoch"] for r, _ in runs],
            "epochs": [r["epochs"] for r, _ in runs], "time": [r["time"] for r, _ in runs],
            "valid_curves": [[round(v, 4) for v in h.valid_loss] for _, h in runs],
        })
    other = [{"cell": r["cell"], "lr": r["lr"], "seed": r["seed"], "test": r["test_loss"],
              "best_valid": r["best_valid_loss"]}
             for r in result.rows if r["lr"] != chosen[r["cell"]]]
    settings = {k: result.settings.get(k) for k in KEEP}
    name = settings["task"]
    # the memoryless predictor fitted on the training frames, scored on the test frames
    train, _, test = polyphonic(name)
    return {"settings": settings, "command": command, "cells": cells, "n_train_pieces": train.N,
            "against_rnn": result.against("rnn") if "rnn" in chosen else [],
            "other_lrs": other, "chung": CHUNG_TABLE_2.get(name),
            "baseline_train_fit": test.info["baseline_train_fit"]}


def machine():
    import scipy

    import pyx_gru

    return {"cpu": _cpu(), "cores": os.cpu_count(), "python": platform.python_version(),
            "numpy": np.__version__, "scipy": scipy.__version__, "pyx_gru": pyx_gru.__version__}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", metavar="SET=DIR",
                        help="a set's name and the --out directory of its compare command")
    parser.add_argument("--command-file", help="lines 'SET: command' recorded with the page")
    parser.add_argument("--cpu", action="append", default=[], metavar="SET=SECONDS",
                        help="the CPU time (user + system) the set's command took, as "
                             "/usr/bin/time reports it: the work, whatever else ran beside it")
    parser.add_argument("--out", default=str(HERE / "polyphonic.json"))
    args = parser.parse_args(argv)
    commands = {}
    if args.command_file:
        for line in Path(args.command_file).read_text().splitlines():
            if ":" in line:
                key, cmd = line.split(":", 1)
                commands[key.strip()] = cmd.strip()
    cpu = {}
    for item in args.cpu:
        name, _, seconds = item.partition("=")
        try:
            cpu[name] = float(seconds)
        except ValueError:
            parser.error(f"expected --cpu SET=SECONDS, got {item!r}")
    out = Path(args.out)
    record = (json.loads(out.read_text()) if out.exists()
              else {"format": "pyx_gru results: polyphonic", "sets": {}})
    for item in args.runs:
        name, _, directory = item.partition("=")
        if name not in POLYPHONIC_SETS or not directory:
            parser.error(f"expected SET=DIR with SET one of {sorted(POLYPHONIC_SETS)}, got {item!r}")
        result = Comparison.from_json(Path(directory) / "results.json")
        record["sets"][name] = collect(result, commands.get(name))
        record["sets"][name]["machine"] = machine()
    for name, seconds in cpu.items():
        if name not in record["sets"]:
            parser.error(f"--cpu {name}=...: no such set in the record or the runs")
        record["sets"][name]["cpu_seconds"] = seconds
    text = json.dumps(record, indent=1, sort_keys=True) + "\n"
    write_text(out, text)
    print(f"wrote {out} ({len(text):,} bytes)", file=sys.stderr)


if __name__ == "__main__":
    main()
