#!/usr/bin/env python3
"""The report's epoch (one full-batch training step on 50,000 MNIST images + the 10,000-image
eval pass) in PyTorch and in rprop-lab's CPU backend, side by side in one run.

Usage (from the repository root):
  python3 tools/cpu_vs_torch.py [--rounds 7] [--epochs 5] [--matmul dense,sparse] [--no-torch]
      [--products] [--train]

The two take turns: each round times --epochs epochs of torch (in this process), then
--epochs epochs of rprop-lab (`cargo run --release --example cpu_epoch`, its strategies
themselves interleaved epoch by epoch, after one warm-up epoch) and, with --train, the
user's command `rprop-lab train --backend cpu` with its default settings (its per-epoch
`seconds` from metrics.json, the first epoch left out as the warm-up; wall time only). Each side's figure is the
median over rounds of the per-round medians, so both see the same machine load. Wall time and
CPU time (all threads) are printed: on a machine shared with other work the wall time grows
with the load while the CPU time stays close to the unloaded cost. The ratios are rprop-lab /
torch (below 1 means rprop-lab is faster).

torch is optional: without it (or with --no-torch) only rprop-lab is timed. To install it:
  pip install torch --index-url https://download.pytorch.org/whl/cpu   # CPU-only wheel
  pip install torch                                                    # or the default one
Both use all cores (torch.set_num_threads(os.cpu_count()), rayon's default).
"""
import argparse
import gzip
import json
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import time


def idx(torch, path):
    """An IDX file as a uint8 tensor of its shape."""
    raw = bytearray(gzip.open(path, "rb").read())
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return torch.frombuffer(raw, dtype=torch.uint8, offset=4 + 4 * ndim).reshape(dims)


def cpu_model():
    vendor, model = "?", platform.processor() or "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("vendor_id") and vendor == "?":
                vendor = line.split(":", 1)[1].strip()
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return vendor, model


class TorchEpoch:
    """The report's flow in PyTorch: nn.Sequential 784-128-10, CrossEntropyLoss,
    torch.optim.Rprop, full batch; the eval pass under no_grad."""

    def __init__(self, torch, data):
        self.torch = torch
        torch.set_num_threads(os.cpu_count() or 1)
        torch.manual_seed(0)
        x = idx(torch, data / "train-images-idx3-ubyte.gz").float()
        x = (x.reshape(len(x), -1) / 255.0 - 0.5) / 0.5  # ToTensor + Normalize(0.5, 0.5)
        y = idx(torch, data / "train-labels-idx1-ubyte.gz").long()
        self.xt, self.yt = x[:50_000].contiguous(), y[:50_000]
        self.xe, self.ye = x[50_000:60_000].contiguous(), y[50_000:60_000]
        nn = torch.nn
        self.model = nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10))
        self.opt = torch.optim.Rprop(
            self.model.parameters(), lr=1e-3, etas=(0.5, 1.2), step_sizes=(1e-6, 50)
        )
        self.crit = nn.CrossEntropyLoss()
        self.eval_acc = float("nan")

    def epoch(self):
        torch = self.torch
        self.model.train()
        self.opt.zero_grad()
        logits = self.model(self.xt)
        loss = self.crit(logits, self.yt)
        loss.backward()
        self.opt.step()
        _ = (loss.item(), (logits.argmax(1) == self.yt).float().mean().item())
        with torch.no_grad():
            out = self.model(self.xe)
            _ = self.crit(out, self.ye).item()
            self.eval_acc = (out.argmax(1) == self.ye).float().mean().item()


    def products(self):
        """Seconds of torch's two big products alone: Z1 = X·W1ᵀ + b1 and dW1 = dZ1ᵀ·X."""
        torch = self.torch
        if not hasattr(self, "dz1"):
            self.dz1 = torch.randn(self.xt.shape[0], 128)
        w, b = self.model[0].weight.detach(), self.model[0].bias.detach()
        with torch.no_grad():
            t0 = time.perf_counter()
            torch.addmm(b, self.xt, w.t())
            t1 = time.perf_counter()
            self.dz1.t().mm(self.xt)
            t2 = time.perf_counter()
        return t1 - t0, t2 - t1


def time_torch(t, epochs):
    wall, cpu = [], []
    for _ in range(epochs):
        w0, c0 = time.perf_counter(), time.process_time()
        t.epoch()
        wall.append(time.perf_counter() - w0)
        cpu.append(time.process_time() - c0)
    return statistics.median(wall), statistics.median(cpu)


def time_rprop(root, epochs, matmul):
    cmd = ["cargo", "run", "--release", "--quiet", "--example", "cpu_epoch", "--",
           "--epochs", str(epochs), "--matmul", matmul, "--json"]
    out = subprocess.run(cmd, cwd=root, check=True, capture_output=True, text=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def time_train(root, epochs):
    """The train command's epochs, default settings: median of metrics.json's `seconds`."""
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        cmd = [str(root / "target/release/rprop-lab"), "train", "--optimizer", "irprop-plus",
               "--backend", "cpu", "--epochs", str(epochs + 1), "--out", d + "/run", "-q",
               "--no-test"]
        subprocess.run(cmd, cwd=root, check=True, capture_output=True)
        m = json.load(open(d + "/run/metrics.json"))
    return statistics.median(e["seconds"] for e in m["epochs"][1:])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--epochs", type=int, default=5, help="timed epochs per side per round")
    ap.add_argument("--matmul", default="dense,sparse", help="rprop-lab strategies")
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--products", action="store_true",
                    help="also time torch's two big products alone (GFLOP/s, vs cpu_step's)")
    ap.add_argument("--train", action="store_true",
                    help="also time the train command (default CPU settings) in each round")
    ap.add_argument("--data", default="data/mnist")
    a = ap.parse_args()
    if a.rounds < 1 or a.epochs < 1:
        sys.exit("cpu_vs_torch: --rounds and --epochs must be positive")
    root = pathlib.Path(__file__).resolve().parent.parent
    data = root / a.data
    if not (data / "train-images-idx3-ubyte.gz").is_file():
        sys.exit(f"cpu_vs_torch: {data}/train-images-idx3-ubyte.gz not found (--data)")
    torch = None
    if not a.no_torch:
        try:
            import torch  # noqa: F401 (optional)
        except ImportError:
            print("torch not installed: timing rprop-lab only "
                  "(pip install torch --index-url https://download.pytorch.org/whl/cpu)")
    vendor, model = cpu_model()
    print(f"CPU: {model} ({vendor}), {os.cpu_count()} logical cores; Python {platform.python_version()}")
    t = None
    if torch is not None:
        mkl = torch.backends.mkl.is_available()
        mkl_note = ""
        if mkl and vendor != "GenuineIntel":
            mkl_note = " (not an Intel CPU: MKL may not take its fastest code paths)"
        cap = getattr(torch.backends.cpu, "get_cpu_capability", lambda: "?")()
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, kernels {cap}, "
              f"MKL {'yes' if mkl else 'no'}{mkl_note}, oneDNN "
              f"{'yes' if torch.backends.mkldnn.is_available() else 'no'}")
        t = TorchEpoch(torch, data)
        t.epoch()  # warm-up (allocator, thread pool)
    print("building examples/cpu_epoch ...", flush=True)
    subprocess.run(["cargo", "build", "--release", "--quiet", "--example", "cpu_epoch",
                    "--bin", "rprop-lab"], cwd=root, check=True)
    rows = {}  # name -> list of (wall, cpu) per round
    prods = {}  # torch product -> seconds
    for r in range(a.rounds):
        if t is not None:
            rows.setdefault("torch", []).append(time_torch(t, a.epochs))
            if a.products:
                for _ in range(a.epochs):
                    z1, dw1 = t.products()
                    prods.setdefault("Z1 = X·W1ᵀ + b1", []).append(z1)
                    prods.setdefault("dW1 = dZ1ᵀ·X", []).append(dw1)
        for j in time_rprop(root, a.epochs, a.matmul):
            rows.setdefault(f"rprop-lab {j['matmul']}", []).append((j["wall_s"], j["cpu_s"]))
        if a.train:
            rows.setdefault("train (defaults)", []).append((time_train(root, a.epochs), float("nan")))
        line = ", ".join(f"{k} {v[-1][0] * 1e3:.0f} ms" for k, v in rows.items())
        print(f"round {r + 1}/{a.rounds}: {line}", flush=True)
    med = {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v))
           for k, v in rows.items()}
    print(f"\nepoch = 50,000-image full-batch step + 10,000-image eval; median of {a.rounds} "
          f"rounds x {a.epochs} epochs")
    base = med.get("torch")
    print(f"{'':22} {'wall ms':>9} {'CPU ms':>9}" + (f" {'wall/torch':>11} {'CPU/torch':>10}" if base else ""))
    for k, (w, c) in med.items():
        line = f"{k:22} {w * 1e3:9.1f} {c * 1e3:9.1f}"
        if base:
            line += f" {w / base[0]:11.2f} {c / base[1]:10.2f}"
        print(line)
    flops = 2 * 50_000 * 784 * 128
    for k, v in prods.items():
        m = statistics.median(v)
        print(f"torch {k:18} {m * 1e3:7.1f} ms  {flops / m / 1e9:6.1f} GFLOP/s")
    if t is not None:
        print(f"(torch eval accuracy after its epochs: {t.eval_acc:.4f})")


if __name__ == "__main__":
    main()
