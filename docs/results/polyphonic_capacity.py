"""How low can a model's NLL go on one of the four polyphonic sets? PyTorch's
own modules, trained until validation stops improving.

An independent check for the page "Chung et al.'s Table 2 on their own
data": the same shipped piano rolls (``pyx_gru.tasks.polyphonic``), the same
unit (the 88 keys' binary cross-entropies summed, in nats per frame), and
models from another library at Chung et al.'s budget and at many times it::

    python docs/results/polyphonic_capacity.py --set musedata --cell lstm --hidden 256 \\
        --out capacity_musedata_lstm256.json

Training: windows of at most ``--window`` frames cut from the training
pieces (each starting from a zero state), ``--batch`` windows a step, Adam,
the gradient's norm clipped at 1, no regularisation; after every epoch the
NLL on the whole validation pieces; early stopping after ``--patience``
epochs without a new best, and the best epoch's parameters scored on all
three splits. One thread, seeded: the same command gives the same numbers.

Each split's NLL is reported two ways: per frame (the total over every
target frame of every piece, divided by their number: the page's unit) and
per piece (each piece's NLL per frame, averaged over the pieces).
"""
import argparse
import json
import platform
import time

import numpy as np

from pyx_gru._files import write_text
from pyx_gru.tasks.polyphonic import POLYPHONIC_SETS, load_polyphonic


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--set", required=True, choices=list(POLYPHONIC_SETS))
    p.add_argument("--cell", default="lstm", choices=["rnn", "gru", "lstm"])
    p.add_argument("--hidden", type=int, required=True)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--window", type=int, default=200)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--epochs", type=int, default=300)
    p.add_argument("--patience", type=int, default=15)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    for name in ("hidden", "window", "batch", "epochs", "patience"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be at least 1")

    import torch

    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)

    rolls = {split: [torch.tensor(r, dtype=torch.float32) for r in pieces if r.shape[0] >= 2]
             for split, pieces in load_polyphonic(args.set).items()}
    K = 88

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            kind = {"rnn": torch.nn.RNN, "gru": torch.nn.GRU, "lstm": torch.nn.LSTM}[args.cell]
            self.rnn = kind(K, args.hidden)        # nn.RNN: tanh
            self.out = torch.nn.Linear(args.hidden, K)

        def forward(self, x):                      # x (T, N, 88) -> logits (T, N, 88)
            return self.out(self.rnn(x)[0])

    model = Model()
    n_params = sum(q.numel() for q in model.parameters())
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    bce = torch.nn.BCEWithLogitsLoss(reduction="none")

    def score(split):
        total, frames, per_piece = 0.0, 0, []
        with torch.no_grad():
            for r in rolls[split]:
                nll = bce(model(r[:-1, None])[:, 0], r[1:]).sum(1)   # (F - 1,) nats per frame
                total += nll.sum().item()
                frames += nll.numel()
                per_piece.append(nll.mean().item())
        return {"per_frame": total / frames, "per_piece": float(np.mean(per_piece))}

    # Windows of window + 1 frames: window inputs and their next frames.
    windows = [r[s:s + args.window + 1] for r in rolls["train"]
               for s in range(0, r.shape[0] - 1, args.window)]
    best, best_state, best_epoch, curve = np.inf, None, 0, []
    start = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        model.train()
        order = rng.permutation(len(windows))
        for i in range(0, len(order), args.batch):
            batch = [windows[j] for j in order[i:i + args.batch]]
            T = max(w.shape[0] for w in batch) - 1
            x = torch.zeros(T, len(batch), K)
            y = torch.zeros(T, len(batch), K)
            mask = torch.zeros(T, len(batch))
            for n, w in enumerate(batch):
                x[:w.shape[0] - 1, n], y[:w.shape[0] - 1, n] = w[:-1], w[1:]
                mask[:w.shape[0] - 1, n] = 1.0
            loss = (bce(model(x), y).sum(2) * mask).sum() / mask.sum()
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
        model.eval()
        valid = score("valid")["per_frame"]
        curve.append(valid)
        print(f"epoch {epoch}: valid {valid:.4f} ({time.perf_counter() - start:.0f} s)", flush=True)
        if valid < best:
            best, best_epoch = valid, epoch
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
        elif epoch - best_epoch >= args.patience:
            break
    seconds = time.perf_counter() - start
    model.load_state_dict(best_state)
    record = {
        "set": args.set, "cell": args.cell, "hidden_size": args.hidden, "n_params": n_params,
        "settings": {k: getattr(args, k) for k in ("lr", "window", "batch", "epochs",
                                                   "patience", "seed")},
        "epochs": len(curve), "best_epoch": best_epoch, "valid_curve": curve,
        "seconds": seconds, "torch": torch.__version__, "python": platform.python_version(),
        **{split: score(split) for split in ("train", "valid", "test")},
    }
    text = json.dumps(record, indent=1) + "\n"
    write_text(args.out, text)
    print(json.dumps({k: record[k] for k in ("set", "cell", "hidden_size", "n_params",
                                              "best_epoch", "train", "valid", "test")}))


if __name__ == "__main__":
    main()
