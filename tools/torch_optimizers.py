#!/usr/bin/env python3
"""Per-step reference sequences of torch.optim.SGD / RMSprop / Adam for rprop-lab's
optimizer tests (tests/optimizers_torch.rs). Not run by CI (it needs torch).

  python3 tools/torch_optimizers.py > tests/fixtures/torch_optimizers.json

Each case: hyper-parameters, 64 initial weights, 15 steps of gradients, and the weights
after each step, all as f32 bit patterns (hex) so the test can compare exactly.
"""
import json

import numpy as np
import torch

CASES = [
    ("sgd", dict(lr=0.1)),
    ("sgd", dict(lr=0.05, momentum=0.9)),
    ("sgd", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01)),
    ("rmsprop", dict(lr=0.01)),
    ("rmsprop", dict(lr=0.01, momentum=0.9, weight_decay=0.01, alpha=0.9)),
    ("adam", dict(lr=0.001)),
    ("adam", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.01)),
]


def bits(a):
    return [format(int(x), "08x") for x in np.asarray(a, dtype=np.float32).view(np.uint32)]


def main():
    rng = np.random.default_rng(0)
    out = []
    for name, kw in CASES:
        w0 = rng.uniform(-1, 1, 64).astype(np.float32)
        grads = [rng.normal(0, 1, 64).astype(np.float32) * np.float32(10.0 ** rng.integers(-4, 1)) for _ in range(15)]
        for g in grads:  # a few exact zeros
            g[rng.integers(0, 64, 3)] = 0
        p = torch.nn.Parameter(torch.from_numpy(w0.copy()))
        opt = {"sgd": torch.optim.SGD, "rmsprop": torch.optim.RMSprop, "adam": torch.optim.Adam}[name]([p], **kw)
        after = []
        for g in grads:
            p.grad = torch.from_numpy(g.copy())
            opt.step()
            after.append(bits(p.detach().numpy()))
        out.append(dict(optimizer=name, hyper=kw, w0=bits(w0), grads=[bits(g) for g in grads], after=after))
    print(json.dumps(dict(torch=torch.__version__, cases=out)))


if __name__ == "__main__":
    main()
