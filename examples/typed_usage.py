"""Ordinary use of fastact with its types: a small classifier's forward and backward in NumPy.

CI type-checks this file with ``mypy --strict`` and ``pyright`` (tests/test_api.py) against the installed
package, and runs it. The annotations below are what the checkers infer from fastact's signatures: a NumPy
array in gives a NumPy array of the same dtype out; the backward of a two-operand op gives a tuple.

    python examples/typed_usage.py
"""
from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

import fastact
from fastact import init, nn

F32 = NDArray[np.float32]


def forward_backward(x: F32, labels: NDArray[np.int64], w1: F32, w2: F32, slope: F32) -> tuple[float, F32, F32]:
    """Linear -> PReLU -> Linear -> cross-entropy, and the gradients of the two weights."""
    h: F32 = x @ w1.T
    a: F32 = fastact.prelu(h, slope, channel_axis=-1)
    logits: F32 = a @ w2.T
    loss = float(fastact.cross_entropy(logits, labels, label_smoothing=0.1))
    dlogits: F32 = fastact.cross_entropy_backward(1.0, logits, labels, label_smoothing=0.1)
    dw2: F32 = dlogits.T @ a
    da: F32 = dlogits @ w2
    dh, dslope = fastact.prelu_backward(da, h, slope, channel_axis=-1)
    dw1: F32 = dh.T @ x
    assert dslope.shape == slope.shape
    return loss, dw1, dw2


def layers(x: F32) -> F32:
    """The same ops as objects, as a training loop holds them."""
    act = nn.GELU(approximate="tanh")
    gate = nn.SwiGLU()
    y: F32 = gate(act(x))
    g: F32 = act.backward(gate.backward(np.ones_like(y)))
    loss_fn = nn.MSELoss(reduction="sum")
    loss_fn(y, np.zeros_like(y))
    dy: F32 = loss_fn.backward()
    assert dy.shape == y.shape
    return g


def main() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 20)).astype(np.float32)
    labels = rng.integers(0, 10, 64)
    w1 = init.kaiming_uniform_(np.empty((32, 20), np.float32), nonlinearity="leaky_relu", a=0.25, rng=rng)
    w2 = init.xavier_uniform_(np.empty((10, 32), np.float32), rng=rng)
    slope = np.full(32, 0.25, np.float32)
    loss, dw1, dw2 = forward_backward(x, labels, w1, w2, slope)
    y16: NDArray[np.float16] = fastact.silu(x.astype(np.float16))
    probs: F32 = fastact.softmax(x, axis=-1)
    dprobs: F32 = fastact.softmax_backward(np.ones_like(probs), y=probs)
    gx, gup = fastact.swiglu_backward(np.ones_like(x), x, x)
    g = layers(x)
    print(f"loss {loss:.4f}; |dw1| {np.abs(dw1).sum():.3f}, |dw2| {np.abs(dw2).sum():.3f}; {y16.dtype} out of "
          f"silu; softmax rows sum to {probs.sum(axis=-1).mean():.4f}; {dprobs.shape} {gx.shape} {gup.shape} "
          f"{g.shape}; dead units of relu(x): {fastact.dead_units(fastact.relu(x)):.2f}; "
          f"ISA {fastact.get_isa()}, {fastact.get_num_threads()} threads")


if __name__ == "__main__":
    main()
