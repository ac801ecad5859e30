"""Scratch probe (2026-12-02, issue 14), kept as it ran for seed 2: few-label accuracy of
the raw weights and of moving averages of them, from one training run of CEBMEncoder's
defaults on Fashion-MNIST. Seeds 0 and 1 ran an earlier version whose averages took weight
``1 - decay`` from the second update on (no running-mean warm-up). From the repository
root; see ../time_to_accuracy_ema/README.md.
"""

import argparse
import json
import sys
import time
import warnings

sys.path.insert(0, "benchmarks")
import numpy as np
import torch
from _common import IMAGE_SHAPE, TrainingClock, load_images, training_iterations
from skorch.callbacks import Callback

from sklearn_cebm import CEBMEncoder
from sklearn_cebm.evaluation import few_label_accuracy


class EMAs(Callback):
    def __init__(self, decays):
        self.decays = decays

    def initialize(self):
        self.averages_ = None
        return self

    def on_batch_end(self, net, training=True, **kw):
        if not training:
            return
        params = [p.detach() for p in net.module_.parameters()]
        if self.averages_ is None:
            self.averages_ = {d: [p.clone() for p in params] for d in self.decays}
            self.n_ = 1
            return
        with torch.no_grad():
            for d, avg in self.averages_.items():
                torch._foreach_lerp_(avg, params, max(1 - d, 1 / (self.n_ + 1)))
        self.n_ += 1


p = argparse.ArgumentParser()
p.add_argument("--seed", type=int, default=0)
p.add_argument("--checkpoints", type=float, nargs="*", default=[240, 480])
p.add_argument("--decays", type=float, nargs="*", default=[0.99, 0.998, 0.9995])
p.add_argument("--threads", type=int, default=1)
p.add_argument("--set", action="append", default=[])
p.add_argument("--output", required=True)
a = p.parse_args()
torch.set_num_threads(a.threads)
rng = np.random.default_rng(a.seed)
Xtr, ytr, Xte, yte = load_images("fashion-mnist", 60000, 10000, rng, random_test=False)
extra = {}
for s in a.set:
    k, v = s.split("=", 1)
    extra[k] = eval(v)
enc = CEBMEncoder(
    image_shape=IMAGE_SHAPE,
    max_iter=10000,
    random_state=a.seed,
    device="cpu",
    callbacks=[("clock", TrainingClock(a.checkpoints[0])), ("emas", EMAs(a.decays))],
    **extra,
)
rows = []
for i, cp in enumerate(a.checkpoints):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if i == 0:
            enc.fit(Xtr)
            cbs = dict(enc.net_.callbacks_)
            clock, emas = cbs["clock"], cbs["emas"]
        clock.target = cp
        while clock.spent_ < cp:
            enc.partial_fit(Xtr)
    params = list(enc.net_.module_.parameters())
    raw = [q.detach().clone() for q in params]
    for name, weights in [("raw", raw)] + [(f"ema{d}", emas.averages_[d]) for d in a.decays]:
        with torch.no_grad():
            for q, w in zip(params, weights, strict=True):
                q.copy_(w)
        t = time.perf_counter()
        res = few_label_accuracy(
            enc.transform(Xtr),
            ytr,
            enc.transform(Xte),
            yte,
            labels_per_class=(1, 10, 100, None),
            n_draws=10,
            random_state=a.seed,
        )
        acc = [round(100 * res[b][0], 2) for b in (1, 10, 100, None)]
        row = dict(
            checkpoint=cp,
            seconds=clock.spent_,
            iterations=training_iterations(enc),
            weights=name,
            plain=acc,
            eval_s=time.perf_counter() - t,
        )
        rows.append(row)
        print(json.dumps(row), flush=True)
    with torch.no_grad():
        for q, w in zip(params, raw, strict=True):
            q.copy_(w)
json.dump(dict(args=vars(a), rows=rows), open(a.output, "w"), indent=1)
