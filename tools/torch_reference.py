#!/usr/bin/env python3
"""PyTorch twin of `rprop-lab train --optimizer irprop-minus`: the report's flow with
torch.optim.Rprop, from the same initial weights, to check the Rust trainer step for step.

Not run by CI (it needs torch). Usage:
  python3 tools/torch_reference.py --train 2000 --eval 500 --epochs 10 \
      --out tests/fixtures/torch_rprop.json
Writes torch's initial weights (torch_rprop-init.safetensors), per-epoch train/eval loss and
accuracy (the JSON) and the final weights (torch_rprop.safetensors).

With --lbfgs none|strong_wolfe it runs torch.optim.LBFGS instead (lr 1, max_iter 20, history
100, one step() per epoch, the closure a full-batch forward+backward) and records each epoch's
closure calls; the weights saved are those after the first step:
  python3 tools/torch_reference.py --train 2000 --eval 500 --epochs 3 --lbfgs none \
      --init tests/fixtures/torch_rprop-init.safetensors --out tests/fixtures/torch_lbfgs.json
  python3 tools/torch_reference.py --train 2000 --eval 500 --epochs 3 --lbfgs strong_wolfe \
      --init tests/fixtures/torch_rprop-init.safetensors --out tests/fixtures/torch_lbfgs-wolfe.json
"""
import argparse
import gzip
import json
import pathlib

import numpy as np
import torch
from safetensors.torch import load_file, save_file


def idx(path):
    raw = gzip.open(path, "rb").read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def named(model):
    """State dict with the rprop-lab (nn.Linear attribute) names fc1/fc2."""
    return {k.replace("0.", "fc1.", 1) if k.startswith("0.") else k.replace("2.", "fc2.", 1): v.detach().contiguous()
            for k, v in model.state_dict().items()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="data/mnist")
    ap.add_argument("--init", help="initial weights (default: torch's own init, seed 0, saved beside --out)")
    ap.add_argument("--train", type=int, default=2000)
    ap.add_argument("--eval", type=int, default=500)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--out", required=True)
    ap.add_argument("--lbfgs", choices=["none", "strong_wolfe"], help="run torch.optim.LBFGS with this line search")
    a = ap.parse_args()
    torch.set_num_threads(1)
    d = pathlib.Path(a.data)
    x = torch.from_numpy(idx(d / "train-images-idx3-ubyte.gz").astype(np.float32))
    x = (x.reshape(len(x), -1) / 255.0 - 0.5) / 0.5  # ToTensor + Normalize(0.5, 0.5)
    y = torch.from_numpy(idx(d / "train-labels-idx1-ubyte.gz").astype(np.int64))
    xt, yt = x[: a.train], y[: a.train]
    xe, ye = x[a.train : a.train + a.eval], y[a.train : a.train + a.eval]

    model = torch.nn.Sequential(
        torch.nn.Linear(784, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10)
    )
    out = pathlib.Path(a.out)
    if a.init:
        sd = load_file(a.init)
        model.load_state_dict({k.replace("fc1", "0").replace("fc2", "2"): v for k, v in sd.items()})
    else:
        torch.manual_seed(0)
        model[0].reset_parameters()
        model[2].reset_parameters()
        save_file(named(model), str(out.with_name(out.stem + "-init.safetensors")))
    crit = torch.nn.CrossEntropyLoss()
    if a.lbfgs:
        ls = None if a.lbfgs == "none" else "strong_wolfe"
        opt = torch.optim.LBFGS(model.parameters(), lr=1, max_iter=20, history_size=100, line_search_fn=ls)
    else:
        opt = torch.optim.Rprop(model.parameters(), lr=1e-3, etas=(0.5, 1.2), step_sizes=(1e-6, 50))
    rows = []
    for epoch in range(1, a.epochs + 1):
        model.train()
        first = []

        def closure():
            opt.zero_grad()
            logits = model(xt)
            loss = crit(logits, yt)
            loss.backward()
            first.append((loss.item(), (logits.argmax(1) == yt).float().mean().item()))
            return loss

        if a.lbfgs:
            opt.step(closure)
        else:
            closure()
            opt.step()
        with torch.no_grad():
            eo = model(xe)
            el = crit(eo, ye).item()
            eacc = (eo.argmax(1) == ye).float().mean().item()
        row = dict(epoch=epoch, train_loss=first[0][0], train_acc=first[0][1], eval_loss=el, eval_acc=eacc)
        if a.lbfgs:
            row["grad_evals"] = len(first)
        rows.append(row)
        print(rows[-1])
        if a.lbfgs and epoch == 1:
            save_file(named(model), str(out.with_suffix(".safetensors")))
    meta = dict(torch=torch.__version__, train=a.train, eval=a.eval)
    if a.lbfgs:
        meta.update(lbfgs=dict(lr=1, max_iter=20, max_eval=25, history_size=100, line_search=a.lbfgs))
    json.dump(dict(meta, epochs=rows), open(out, "w"), indent=1)
    if not a.lbfgs:
        save_file(named(model), str(out.with_suffix(".safetensors")))


if __name__ == "__main__":
    main()
