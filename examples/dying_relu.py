"""The dying-ReLU problem and its fixes, on a small MLP trained in NumPy with fastact.

A two-hidden-layer classifier of scikit-learn's handwritten digits (shipped inside scikit-learn: no
download) is trained with plain minibatch SGD in several variants. A ReLU unit "dies" when its input is
negative for every sample: its gradient is then zero, so nothing moves it back. Two causes the guides name:

- a large negative bias (here every hidden bias starts at -2): units start dead and stay dead;
- a learning rate too high: one large step pushes many units' weights and biases where they never fire.

and their fixes: LeakyReLU or ELU (a gradient below zero lets a unit recover), Kaiming initialisation
with zero biases, and a lower rate with gradient clipping. For each variant the script reports the
fraction of dead units in each hidden layer over the whole training set (``fastact.dead_units``), the test
accuracy, and draws both over the epochs.

    python examples/dying_relu.py [--epochs 40] [--plot dying_relu.png] [--check-torch]

``--check-torch`` trains the same model in PyTorch (same initial weights, same batches) and prints the
largest relative difference of the per-step losses: float32 rounding (about 1e-7) in the first epoch; the
differences then grow, as any two float32 trainings drift apart, fastest at the highest rates.
"""
from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass
from typing import Any, Callable, Optional

import numpy as np
from numpy.typing import NDArray

import fastact
from fastact import init, nn

F32 = NDArray[np.float32]
HIDDEN = 128
BATCH = 64


@dataclass(frozen=True)
class Variant:
    name: str
    activation: str = "relu"
    slope: float = 0.01  # leaky_relu's negative_slope (PyTorch's default 0.01)
    lr: float = 0.1
    bias: Optional[float] = None  # None: PyTorch's default init (uniform +-1/sqrt(fan_in)); a number: that constant
    kaiming: bool = False  # Kaiming normal weights for the activation (with the biases above)
    clip: Optional[float] = None  # clip the gradients' global norm to this


VARIANTS = [
    Variant("baseline: relu, default init, lr 0.1"),
    Variant("relu, hidden biases start at -2", bias=-2.0),
    Variant("relu, learning rate 2", lr=2.0),
    Variant("fix? leaky_relu (slope 0.01), biases at -2", activation="leaky_relu", bias=-2.0),
    Variant("fix: leaky_relu (slope 0.2), biases at -2", activation="leaky_relu", slope=0.2, bias=-2.0),
    Variant("fix: elu, biases at -2", activation="elu", bias=-2.0),
    Variant("fix: relu, Kaiming init, zero biases", kaiming=True, bias=0.0),
    Variant("fix: relu, lr 2 with gradient clipping at 1", lr=2.0, clip=1.0),
    Variant("fix: relu, lr 1 with gradient clipping at 1", lr=1.0, clip=1.0),
]


def load_digits(seed: int = 0) -> tuple[F32, NDArray[np.int64], F32, NDArray[np.int64]]:
    """scikit-learn's 8x8 digits, standardised with the training split's statistics; 80% train, 20% test."""
    from sklearn.datasets import load_digits as sk_digits  # type: ignore[import-untyped]

    d = sk_digits()
    x = d.data.astype(np.float64)
    y = d.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(x))
    n_train = int(0.8 * len(x))
    tr, te = order[:n_train], order[n_train:]
    mean, std = x[tr].mean(0), x[tr].std(0) + 1e-3
    return (((x[tr] - mean) / std).astype(np.float32), y[tr], ((x[te] - mean) / std).astype(np.float32), y[te])


def initial_weights(v: Variant, sizes: list[int], seed: int) -> list[tuple[F32, F32]]:
    """(weight, bias) per layer, weight (out, in) as PyTorch's Linear."""
    rng = np.random.default_rng(seed)
    params = []
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        w = np.empty((fan_out, fan_in), np.float32)
        hidden = i < len(sizes) - 2
        if v.kaiming and hidden:
            init.kaiming_normal_(w, a=v.slope, nonlinearity=v.activation, rng=rng)
        else:
            init.kaiming_uniform_(w, a=math.sqrt(5), rng=rng)  # PyTorch's default for Linear
        bound = 1 / math.sqrt(fan_in)
        b = rng.uniform(-bound, bound, fan_out).astype(np.float32)
        if hidden and v.bias is not None:
            b[:] = v.bias
        params.append((w, b))
    return params


class Net:
    """x -> [x @ W.T, then act(. + b) in one pass (fastact.nn.BiasAct)] x 2 -> x @ W.T + b -> cross-entropy."""

    def __init__(self, v: Variant, params: list[tuple[F32, F32]]):
        self.v = v
        self.w = [w.copy() for w, _ in params]
        self.hidden = []
        for _, b in params[:-1]:
            layer = (nn.BiasAct(b.size, v.activation, negative_slope=v.slope) if v.activation == "leaky_relu"
                     else nn.BiasAct(b.size, v.activation))
            layer.bias[:] = b
            self.hidden.append(layer)
        self.b_out = params[-1][1].copy()
        self.loss_fn = nn.CrossEntropyLoss()

    def forward(self, x: F32) -> tuple[F32, list[F32]]:
        self.inputs, acts = [x], []
        for w, layer in zip(self.w, self.hidden):
            a = layer(self.inputs[-1] @ w.T)
            acts.append(a)
            self.inputs.append(a)
        return self.inputs[-1] @ self.w[-1].T + self.b_out, acts

    def step(self, x: F32, y: NDArray[np.int64]) -> float:
        for layer in self.hidden:
            layer.zero_grad()
        logits, _ = self.forward(x)
        loss = float(self.loss_fn(logits, y))
        g = self.loss_fn.backward()
        grads_w = [np.zeros_like(w) for w in self.w]
        grads_w[-1] = g.T @ self.inputs[-1]
        grad_b_out = g.sum(axis=0)
        g = g @ self.w[-1]
        for i in range(len(self.hidden) - 1, -1, -1):
            g = self.hidden[i].backward(g)  # through act(. + b); adds the bias's gradient to bias_grad
            grads_w[i] = g.T @ self.inputs[i]
            g = g @ self.w[i]
        grads = grads_w + [grad_b_out] + [layer.bias_grad for layer in self.hidden]
        scale = 1.0
        if self.v.clip is not None:  # torch.nn.utils.clip_grad_norm_: the global norm, in float32
            norm = float(np.sqrt(sum(np.sum(np.square(gr, dtype=np.float32)) for gr in grads)))
            scale = min(1.0, self.v.clip / (norm + 1e-6))
        lr = np.float32(self.v.lr * scale)
        for w, gw in zip(self.w, grads_w):
            w -= lr * gw
        self.b_out -= lr * grad_b_out
        for layer in self.hidden:
            layer.bias -= lr * layer.bias_grad
        return loss

    def evaluate(self, x: F32, y: NDArray[np.int64]) -> tuple[float, list[float]]:
        for layer in self.hidden:
            layer.eval()
        logits, acts = self.forward(x)
        for layer in self.hidden:
            layer.train()
        accuracy = float(np.mean(np.argmax(logits, axis=1) == y))
        return accuracy, [fastact.dead_units(a, axis=0) for a in acts]


def batches(n: int, epochs: int, seed: int) -> list[NDArray[np.int64]]:
    rng = np.random.default_rng(seed + 1)
    out = []
    for _ in range(epochs):
        order = rng.permutation(n)
        out += [order[i:i + BATCH] for i in range(0, n, BATCH)]
    return out


def train(v: Variant, data: tuple[Any, ...], epochs: int, seed: int = 0) -> dict[str, Any]:
    """Trains one variant; returns the per-step losses and, per epoch, the test accuracy and dead fractions."""
    xtr, ytr, xte, yte = data
    net = Net(v, initial_weights(v, [xtr.shape[1], HIDDEN, HIDDEN, 10], seed))
    per_epoch = -(-len(xtr) // BATCH)
    losses, history = [], [net.evaluate(xtr, ytr)[1] + [net.evaluate(xte, yte)[0]]]
    for i, idx in enumerate(batches(len(xtr), epochs, seed)):
        losses.append(net.step(xtr[idx], ytr[idx]))
        if (i + 1) % per_epoch == 0:
            dead = net.evaluate(xtr, ytr)[1]
            history.append(dead + [net.evaluate(xte, yte)[0]])
    accuracy, dead = net.evaluate(xte, yte)[0], net.evaluate(xtr, ytr)[1]
    return {"losses": losses, "history": np.array(history), "accuracy": accuracy, "dead": dead}


def train_torch(v: Variant, data: tuple[Any, ...], epochs: int, seed: int = 0) -> list[float]:
    """The same model, initial weights and batches in PyTorch (float32, eager); its per-step losses."""
    import torch

    torch.set_num_threads(1)
    xtr, ytr, _, _ = data
    params = initial_weights(v, [xtr.shape[1], HIDDEN, HIDDEN, 10], seed)
    tensors = [(torch.tensor(w, requires_grad=True), torch.tensor(b, requires_grad=True)) for w, b in params]
    act: Callable[[Any], Any] = {"relu": torch.relu, "elu": torch.nn.functional.elu,
                                 "leaky_relu": lambda t: torch.nn.functional.leaky_relu(t, v.slope)}[v.activation]
    flat = [t for pair in tensors for t in pair]
    opt = torch.optim.SGD(flat, lr=v.lr)
    x_all, y_all = torch.from_numpy(xtr), torch.from_numpy(ytr)
    losses = []
    for idx in batches(len(xtr), epochs, seed):
        h = x_all[idx]
        for w, b in tensors[:-1]:
            h = act(h @ w.T + b)
        logits = h @ tensors[-1][0].T + tensors[-1][1]
        loss = torch.nn.functional.cross_entropy(logits, y_all[idx])
        opt.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]
        if v.clip is not None:
            torch.nn.utils.clip_grad_norm_(flat, v.clip)
        opt.step()
        losses.append(float(loss.detach()))
    return losses


def table(results: list[tuple[Variant, dict[str, Any]]]) -> str:
    rows = ["| variant | dead units, layer 1 | dead units, layer 2 | test accuracy |", "|---|---|---|---|"]
    for v, r in results:
        rows.append(f"| {v.name} | {r['dead'][0]:.0%} | {r['dead'][1]:.0%} | {r['accuracy']:.1%} |")
    return "\n".join(rows)


def plot(results: list[tuple[Variant, dict[str, Any]]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.2))
    for v, r in results:
        h = r["history"]
        style = "-" if v.name.startswith(("fix:", "baseline")) else "--"
        ax1.plot(h[:, :2].mean(axis=1), style, label=v.name)
        ax2.plot(h[:, 2], style, label=v.name)
    ax1.set(xlabel="epoch", ylabel="dead hidden units (fraction, both layers)", ylim=(-0.02, 1.02))
    ax2.set(xlabel="epoch", ylabel="test accuracy", ylim=(0, 1.02))
    ax2.legend(fontsize=7, loc="lower right")
    fig.suptitle("Dying ReLU on scikit-learn digits: an MLP trained in NumPy with fastact", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def _rel_diff(ours: Any, theirs: Any, first: int) -> tuple[float, float]:
    """The largest relative difference of two loss sequences in the first steps and over all (a NaN on both
    sides counts as equal)."""
    both_nan = np.isnan(ours) & np.isnan(theirs)
    with np.errstate(invalid="ignore", divide="ignore"):
        rel = np.abs(ours - theirs) / np.maximum(np.abs(theirs), 1e-30)
    rel = np.where(both_nan, 0.0, np.where(np.isnan(rel), np.inf, rel))
    return float(rel[:first].max()), float(rel.max())


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--plot", help="write the dead-unit and accuracy curves to this image")
    ap.add_argument("--check-torch", action="store_true", help="compare the per-step losses with PyTorch's")
    args = ap.parse_args(argv)
    data = load_digits(args.seed)
    results = [(v, train(v, data, args.epochs, args.seed)) for v in VARIANTS]
    print(f"{len(data[0])} training and {len(data[2])} test digits, {args.epochs} epochs of batches of {BATCH}, "
          f"two hidden layers of {HIDDEN}\n")
    print(table(results))
    if args.plot:
        plot(results, args.plot)
        print(f"\nwrote {args.plot}")
    if args.check_torch:
        per_epoch = -(-len(data[0]) // BATCH)
        for v, r in results:
            theirs = np.array(train_torch(v, data, args.epochs, args.seed))
            first, every = _rel_diff(np.array(r["losses"]), theirs, per_epoch)
            print(f"PyTorch, {v.name}: largest relative difference of the step losses {first:.1e} in the first epoch, "
                  f"{every:.1e} over all {len(theirs)} (rounding differences grow as training goes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
