#!/usr/bin/env python3
"""Speed of every registry op against the alternatives, measured in one process.

    python bench/compare.py                                  # all ops, sizes 1K, 64K, 16M, float32
    python bench/compare.py --ops gelu,silu --sizes 65536 --dtype float64 --threads 1 --isa avx2
    python bench/compare.py --dtype bfloat16          # 16-bit types against PyTorch's half kernels and
                                                      # fastact's own float32 rate (column f32 out=)
    python bench/compare.py --markdown --plot speed.png  # the README table, and a bar chart

Alternatives, each optional (skipped with a note when not installed): NumPy, PyTorch (forward and its own
backward kernels, torch.ops.aten.*_backward), JAX (jit-compiled, block_until_ready), ONNX Runtime (one
single-node model per op, built with the onnx package) and numexpr. For each op, size and direction,
every implementation is timed in interleaved rounds (fastact, then each alternative, repeated) and the
median per-call time is reported as ns/element, allocating, and with out= for fastact. Each timed batch
starts after --settle seconds of idle and one untimed call: ONNX Runtime's and XLA's worker threads spin
after their calls, and without the pause they would take the cores from whichever library runs next; the
untimed call wakes the measured library's own threads, so each is timed in its steady state. Ratios are
best alternative / fastact (> 1: fastact is faster). The copy roof (the same bytes copied, single- and
multi-threaded) is measured in the same run.
"""
from __future__ import annotations

import argparse
import functools
import statistics
import sys
import time

import numpy as np

import fastact


def timer(fn, budget=0.02):
    fn()
    one = float("inf")
    for _ in range(3):  # the fastest of three: a cold first call must not shrink the batch
        t0 = time.perf_counter()
        fn()
        one = min(one, time.perf_counter() - t0)
    inner = max(1, int(budget / max(one, 1e-7)))

    def run():
        fn()  # untimed: wakes this library's threads after the settle pause
        t = time.perf_counter()
        for _ in range(inner):
            fn()
        return (time.perf_counter() - t) / inner

    return run


# selu's constants as the registry declares them, so the alternatives compute the same function
_SELU = {p["name"]: p["default"] for o in fastact.ops() if o["name"] == "selu" for p in o["params"]}
SELU_ALPHA, SELU_SCALE = _SELU["alpha"], _SELU["scale"]


def numpy_impls(x, rows):
    with np.errstate(all="ignore"):
        k = np.sqrt(2 / np.pi)

        def np_softmax(a):
            e = np.exp(a - a.max(-1, keepdims=True))
            return e / e.sum(-1, keepdims=True)

        def np_log_softmax(a):
            s = a - a.max(-1, keepdims=True)
            return s - np.log(np.exp(s).sum(-1, keepdims=True))

        return {
            ("relu", ""): lambda: np.maximum(x, 0),
            ("leaky_relu", ""): lambda: np.where(x > 0, x, x * np.float32(0.01)),
            ("elu", ""): lambda: np.where(x > 0, x, np.expm1(x)),
            ("gelu", "tanh"): lambda: 0.5 * x * (1 + np.tanh(k * (x + 0.044715 * x * x * x))),
            ("silu", ""): lambda: x / (1 + np.exp(-x)),
            ("sigmoid", ""): lambda: 1 / (1 + np.exp(-x)),
            ("tanh", ""): lambda: np.tanh(x),
            ("softmax", ""): lambda: np_softmax(rows),
            ("log_softmax", ""): lambda: np_log_softmax(rows),
            # the catalog, as NumPy users write it (parameters: fastact's defaults, compare.py's examples)
            ("selu", ""): lambda: np.where(x > 0, np.float32(SELU_SCALE) * x,
                                           np.float32(SELU_SCALE * SELU_ALPHA) * np.expm1(x)),
            ("celu", ""): lambda: np.where(x > 0, x, np.expm1(x)),
            ("softplus", ""): lambda: np.logaddexp(x, np.float32(0)),
            ("logsigmoid", ""): lambda: -np.logaddexp(-x, np.float32(0)),
            ("softsign", ""): lambda: x / (1 + np.abs(x)),
            ("hardtanh", ""): lambda: np.clip(x, -1, 1),
            ("relu6", ""): lambda: np.clip(x, 0, 6),
            ("hardsigmoid", ""): lambda: np.clip(x * np.float32(1 / 6) + np.float32(0.5), 0, 1),
            ("hardswish", ""): lambda: x * np.clip(x * np.float32(1 / 6) + np.float32(0.5), 0, 1),
            ("tanhshrink", ""): lambda: x - np.tanh(x),
            ("hardshrink", ""): lambda: np.where(np.abs(x) > 0.5, x, 0),
            ("softshrink", ""): lambda: np.where(x > 0.5, x - np.float32(0.5),
                                                 np.where(x < -0.5, x + np.float32(0.5), 0)),
            ("threshold", ""): lambda: np.where(x > 0, x, 0),
            ("softcap", ""): lambda: np.float32(30) * np.tanh(x / np.float32(30)),
        }


def torch_impls(x, rows, g, y):
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        return None, None
    tdtype = {"float32": torch.float32, "float64": torch.float64, "float16": torch.float16,
              "bfloat16": torch.bfloat16}[x.dtype.name]

    def tt(a):  # same values, same dtype, as a torch tensor
        return torch.from_numpy(np.ascontiguousarray(a).astype(np.float32)).to(tdtype) \
            if x.dtype.itemsize == 2 else torch.from_numpy(a)

    tx, tr, tg = tt(x), tt(rows), tt(g)
    ty = {k: tt(v) for k, v in y.items()}
    a = torch.ops.aten
    fwd = {
        ("relu", ""): lambda: torch.relu(tx), ("leaky_relu", ""): lambda: F.leaky_relu(tx),
        ("elu", ""): lambda: F.elu(tx), ("gelu", ""): lambda: F.gelu(tx),
        ("gelu", "tanh"): lambda: F.gelu(tx, approximate="tanh"), ("silu", ""): lambda: F.silu(tx),
        ("sigmoid", ""): lambda: torch.sigmoid(tx), ("tanh", ""): lambda: torch.tanh(tx),
        ("softmax", ""): lambda: torch.softmax(tr, -1), ("log_softmax", ""): lambda: torch.log_softmax(tr, -1),
    }
    catalog = {  # as functions of a tensor, with fastact's defaults and compare.py's required examples
        "selu": F.selu, "celu": F.celu, "quick_gelu": lambda t: t * torch.sigmoid(1.702 * t), "mish": F.mish,
        "logsigmoid": F.logsigmoid, "softplus": F.softplus, "softsign": F.softsign, "hardtanh": F.hardtanh,
        "relu6": F.relu6, "hardsigmoid": F.hardsigmoid, "hardswish": F.hardswish, "tanhshrink": F.tanhshrink,
        "softshrink": F.softshrink, "hardshrink": F.hardshrink,
        "shrink": F.hardshrink,  # shrink with its default bias 0 is hardshrink
        "threshold": lambda t: F.threshold(t, 0.0, 0.0), "softcap": lambda t: 30.0 * torch.tanh(t / 30.0),
    }
    fwd.update({(k, ""): (lambda f=f: f(tx)) for k, f in catalog.items()})
    buffer = a.log_sigmoid_forward(tx)[1]
    bwd = {
        ("relu", ""): lambda: a.threshold_backward(tg, tx, 0),
        ("leaky_relu", ""): lambda: a.leaky_relu_backward(tg, tx, 0.01, False),
        ("elu", ""): lambda: a.elu_backward(tg, 1.0, 1, 1.0, False, tx),
        ("gelu", ""): lambda: a.gelu_backward(tg, tx), ("gelu", "tanh"): lambda: a.gelu_backward(tg, tx, approximate="tanh"),
        ("silu", ""): lambda: a.silu_backward(tg, tx), ("sigmoid", ""): lambda: a.sigmoid_backward(tg, ty["sigmoid"]),
        ("tanh", ""): lambda: a.tanh_backward(tg, ty["tanh"]),
        ("softmax", ""): lambda: a._softmax_backward_data(tg.view(tr.shape), ty["softmax"], -1, tr.dtype),
        ("log_softmax", ""): lambda: a._log_softmax_backward_data(tg.view(tr.shape), ty["log_softmax"], -1, tr.dtype),
        # the catalog: PyTorch's own backward kernel where it has one
        ("selu", ""): lambda: a.elu_backward(tg, SELU_ALPHA, SELU_SCALE, 1.0, False, tx),
        ("celu", ""): lambda: a.elu_backward(tg, 1.0, 1, 1.0, False, tx),
        ("mish", ""): lambda: a.mish_backward(tg, tx),
        ("logsigmoid", ""): lambda: a.log_sigmoid_backward(tg, tx, buffer),
        ("softplus", ""): lambda: a.softplus_backward(tg, tx, 1.0, 20.0),
        ("hardtanh", ""): lambda: a.hardtanh_backward(tg, tx, -1.0, 1.0),
        ("relu6", ""): lambda: a.hardtanh_backward(tg, tx, 0.0, 6.0),
        ("hardsigmoid", ""): lambda: a.hardsigmoid_backward(tg, tx), ("hardswish", ""): lambda: a.hardswish_backward(tg, tx),
        ("softshrink", ""): lambda: a.softshrink_backward(tg, tx, 0.5),
        ("hardshrink", ""): lambda: a.hardshrink_backward(tg, tx, 0.5),
        ("shrink", ""): lambda: a.hardshrink_backward(tg, tx, 0.5),
        ("threshold", ""): lambda: a.threshold_backward(tg, tx, 0.0),
    }
    # and autograd where it has none (its forward included, as a user of these ops pays it)
    for k in ("quick_gelu", "softsign", "tanhshrink", "softcap"):
        bwd[(k, "")] = functools.partial(_autograd, torch, catalog[k], tx, tg)
    return fwd, bwd


def _autograd(torch, f, tx, tg):
    with torch.enable_grad():
        t = tx.detach().requires_grad_()
        return torch.autograd.grad(f(t), t, tg)


def jax_impls(x, rows):
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        return None
    if x.dtype.itemsize == 2 and x.dtype != np.float16:
        xj, rj = jnp.asarray(x.astype(np.float32)).astype(jnp.bfloat16), jnp.asarray(rows.astype(np.float32)).astype(jnp.bfloat16)
    else:
        xj, rj = jnp.asarray(x), jnp.asarray(rows)
    nn = jax.nn
    fns = {
        ("relu", ""): (nn.relu, xj), ("leaky_relu", ""): (lambda a: nn.leaky_relu(a, 0.01), xj),
        ("elu", ""): (nn.elu, xj), ("gelu", ""): (lambda a: nn.gelu(a, approximate=False), xj),
        ("gelu", "tanh"): (lambda a: nn.gelu(a, approximate=True), xj), ("silu", ""): (nn.silu, xj),
        ("sigmoid", ""): (nn.sigmoid, xj), ("tanh", ""): (jnp.tanh, xj),
        ("softmax", ""): (lambda a: nn.softmax(a, axis=-1), rj), ("log_softmax", ""): (lambda a: nn.log_softmax(a, axis=-1), rj),
        ("selu", ""): (nn.selu, xj), ("celu", ""): (nn.celu, xj), ("quick_gelu", ""): (lambda a: a * nn.sigmoid(1.702 * a), xj),
        ("logsigmoid", ""): (nn.log_sigmoid, xj), ("softplus", ""): (nn.softplus, xj), ("softsign", ""): (nn.soft_sign, xj),
        ("hardtanh", ""): (nn.hard_tanh, xj), ("relu6", ""): (nn.relu6, xj), ("hardsigmoid", ""): (nn.hard_sigmoid, xj),
        ("hardswish", ""): (nn.hard_swish, xj), ("tanhshrink", ""): (lambda a: a - jnp.tanh(a), xj),
        ("softshrink", ""): (lambda a: jnp.where(a > 0.5, a - 0.5, jnp.where(a < -0.5, a + 0.5, 0)).astype(a.dtype), xj),
        ("hardshrink", ""): (lambda a: jnp.where(jnp.abs(a) > 0.5, a, 0).astype(a.dtype), xj),
        ("threshold", ""): (lambda a: jnp.where(a > 0, a, 0).astype(a.dtype), xj),
        ("softcap", ""): (lambda a: 30 * jnp.tanh(a / 30), xj),
    }
    if hasattr(nn, "mish"):
        fns[("mish", "")] = (nn.mish, xj)
    out = {}
    for k, (f, arg) in fns.items():
        jf = jax.jit(f)
        jf(arg).block_until_ready()
        out[k] = (lambda jf=jf, arg=arg: jf(arg).block_until_ready())
    return out


def ort_impls(x, rows, threads):
    try:
        import onnxruntime as ort
        from onnx import TensorProto, helper, numpy_helper  # builds the one-node models
    except ImportError:
        return None
    if x.dtype not in (np.float32, np.float64, np.float16):
        return {}
    et = {np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.float64): TensorProto.DOUBLE,
          np.dtype(np.float16): TensorProto.FLOAT16}[x.dtype]

    def session(nodes, shape, consts=None):
        inits = [numpy_helper.from_array(np.asarray(v, x.dtype), k) for k, v in (consts or {}).items()]
        g = helper.make_graph(nodes, "op", [helper.make_tensor_value_info("x", et, list(shape))],
                              [helper.make_tensor_value_info("y", et, list(shape))], inits)
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 20)])
        m.ir_version = 9
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        try:
            return ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
        except Exception:  # an op ORT has no kernel for at this dtype
            return None

    N = helper.make_node
    specs = {
        ("relu", ""): ([N("Relu", ["x"], ["y"])], x), ("leaky_relu", ""): ([N("LeakyRelu", ["x"], ["y"], alpha=0.01)], x),
        ("elu", ""): ([N("Elu", ["x"], ["y"])], x), ("gelu", ""): ([N("Gelu", ["x"], ["y"])], x),
        ("gelu", "tanh"): ([N("Gelu", ["x"], ["y"], approximate="tanh")], x),
        ("silu", ""): ([N("Sigmoid", ["x"], ["s"]), N("Mul", ["x", "s"], ["y"])], x),
        ("sigmoid", ""): ([N("Sigmoid", ["x"], ["y"])], x), ("tanh", ""): ([N("Tanh", ["x"], ["y"])], x),
        ("softmax", ""): ([N("Softmax", ["x"], ["y"], axis=-1)], rows),
        ("log_softmax", ""): ([N("LogSoftmax", ["x"], ["y"], axis=-1)], rows),
        ("selu", ""): ([N("Selu", ["x"], ["y"])], x), ("celu", ""): ([N("Celu", ["x"], ["y"])], x),
        ("quick_gelu", ""): ([N("Mul", ["x", "k"], ["t"]), N("Sigmoid", ["t"], ["s"]), N("Mul", ["x", "s"], ["y"])],
                             x, {"k": 1.702}),
        ("mish", ""): ([N("Mish", ["x"], ["y"])], x), ("softplus", ""): ([N("Softplus", ["x"], ["y"])], x),
        ("softsign", ""): ([N("Softsign", ["x"], ["y"])], x),
        ("hardtanh", ""): ([N("Clip", ["x", "lo", "hi"], ["y"])], x, {"lo": -1.0, "hi": 1.0}),
        ("relu6", ""): ([N("Clip", ["x", "lo", "hi"], ["y"])], x, {"lo": 0.0, "hi": 6.0}),
        ("hardsigmoid", ""): ([N("HardSigmoid", ["x"], ["y"], alpha=1 / 6, beta=0.5)], x),
        ("hardswish", ""): ([N("HardSwish", ["x"], ["y"])], x),
        ("tanhshrink", ""): ([N("Tanh", ["x"], ["t"]), N("Sub", ["x", "t"], ["y"])], x),
        ("softshrink", ""): ([N("Shrink", ["x"], ["y"], lambd=0.5, bias=0.5)], x),
        ("hardshrink", ""): ([N("Shrink", ["x"], ["y"], lambd=0.5)], x),
        ("shrink", ""): ([N("Shrink", ["x"], ["y"], lambd=0.5)], x),
        ("threshold", ""): ([N("ThresholdedRelu", ["x"], ["y"], alpha=0.0)], x),
        ("softcap", ""): ([N("Div", ["x", "c"], ["t"]), N("Tanh", ["t"], ["u"]), N("Mul", ["u", "c"], ["y"])],
                          x, {"c": 30.0}),
    }
    out = {}
    for k, (nodes, arg, *consts) in specs.items():
        sess = session(nodes, arg.shape, *consts)
        if sess is not None:
            feed = {"x": arg}
            out[k] = (lambda sess=sess, feed=feed: sess.run(None, feed))
    return out


def numexpr_impls(x, threads):
    try:
        import numexpr as ne
    except ImportError:
        return None
    if x.dtype not in (np.float32, np.float64):
        return {}
    ne.set_num_threads(threads)
    e = {
        ("relu", ""): "where(x > 0, x, 0)", ("leaky_relu", ""): "where(x > 0, x, x * 0.01)",
        ("elu", ""): "where(x > 0, x, expm1(x))", ("silu", ""): "x / (1 + exp(-x))",
        ("sigmoid", ""): "1 / (1 + exp(-x))", ("tanh", ""): "tanh(x)",
        ("gelu", "tanh"): "0.5 * x * (1 + tanh(0.7978845608 * (x + 0.044715 * x * x * x)))",
    }  # numexpr has no erf: no exact gelu
    return {k: (lambda v=v: ne.evaluate(v, local_dict={"x": x})) for k, v in e.items()}


ALTERNATIVES = ("numpy", "torch", "jax", "ort", "numexpr")


def torch_of(a, dt):
    """a as a torch tensor of dtype dt (16-bit types through float32: NumPy has no bfloat16 for torch)."""
    import torch

    if dt.itemsize == 2:
        tdt = torch.float16 if dt == np.float16 else torch.bfloat16
        return torch.from_numpy(a.astype(np.float32)).to(tdt)
    return torch.from_numpy(a)


def jax_of(a, dt):
    import jax.numpy as jnp

    if dt.itemsize == 2 and dt != np.float16:
        return jnp.asarray(a.astype(np.float32)).astype(jnp.bfloat16)
    return jnp.asarray(a)


def jax_pair(f, a, w, d):
    """JAX's jit-compiled f(a, w) and its vjp, each timed to completion."""
    import jax

    fj = jax.jit(f)
    bj = jax.jit(lambda a, w, d: jax.vjp(f, a, w)[1](d))
    fj(a, w).block_until_ready()
    jax.block_until_ready(bj(a, w, d))
    return {("fwd", "jax"): lambda: fj(a, w).block_until_ready(),
            ("bwd", "jax"): lambda: jax.block_until_ready(bj(a, w, d))}


def gated_impls(name, gate, up, dy, threads):
    """The GLU family written with each alternative's own calls (the unfused forms users write today):
    forward act(gate) * up (glu: gate * sigmoid(up)); backward the two gradients as autograd computes
    them. Every alternative allocates its temporaries."""
    impls = {}
    with np.errstate(all="ignore"):
        if gate.dtype in (np.float32, np.float64):
            sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
            npf = {"glu": lambda: gate * sig(up), "swiglu": lambda: gate * sig(gate) * up,
                   "reglu": lambda: np.maximum(gate, 0) * up}
            if name in npf:
                impls[("fwd", "numpy")] = npf[name]
            try:
                import numexpr as ne

                ne.set_num_threads(threads)
                nef = {"glu": "g / (1 + exp(-u))", "swiglu": "g / (1 + exp(-g)) * u", "reglu": "where(g > 0, g, 0) * u"}
                if name in nef:
                    impls[("fwd", "numexpr")] = lambda e=nef[name]: ne.evaluate(e, local_dict={"g": gate, "u": up})
            except ImportError:
                pass
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        return impls
    tg, tu, td = (torch_of(a, gate.dtype) for a in (gate, up, dy))
    A = torch.ops.aten
    fwd = {"glu": lambda: tg * torch.sigmoid(tu), "swiglu": lambda: F.silu(tg) * tu, "geglu": lambda: F.gelu(tg) * tu,
           "reglu": lambda: torch.relu(tg) * tu}
    bwd = {"glu": lambda: (td * torch.sigmoid(tu), A.sigmoid_backward(td * tg, torch.sigmoid(tu))),
           "swiglu": lambda: (A.silu_backward(td * tu, tg), td * F.silu(tg)),
           "geglu": lambda: (A.gelu_backward(td * tu, tg), td * F.gelu(tg)),
           "reglu": lambda: (A.threshold_backward(td * tu, tg, 0), td * torch.relu(tg))}
    impls[("fwd", "torch")] = fwd[name]
    impls[("bwd", "torch")] = bwd[name]
    try:
        import jax

        jg, ju, jd = (jax_of(a, gate.dtype) for a in (gate, up, dy))
        nn = jax.nn
        jf = {"glu": lambda g, u: g * nn.sigmoid(u), "swiglu": lambda g, u: nn.silu(g) * u,
              "geglu": lambda g, u: nn.gelu(g, approximate=False) * u, "reglu": lambda g, u: nn.relu(g) * u}[name]
        impls.update(jax_pair(jf, jg, ju, jd))
    except ImportError:
        pass
    return impls


BIAS_ACTS = ("relu", "gelu", "silu")  # bias_act's rows: the activation of a dense layer's epilogue
PRELU_CHANNELS, PRELU_INNER = 64, 256  # prelu on NCHW: 64 channels of 16 x 16


def broadcast_impls(op, act, x, g, dt, threads):
    """prelu and bias_act with fastact (allocating and out=) and as each alternative writes them: PyTorch
    eager F.prelu(x, w) and F.act(x + b), their backward the kernels autograd runs (act_backward on x + b
    and a sum over the rows; prelu through autograd itself); JAX jit-compiled with its vjp. x: n values,
    taken as (n / 1024, 1024) rows with a bias of 1,024, or (n / 16,384, 64, 256) with a weight of 64."""
    rng = np.random.default_rng(1)
    if act:
        xs, ws = x.reshape(-1, 1024), (rng.standard_normal(1024)).astype(dt)
        f = lambda a, w, **kw: fastact.bias_act(a, w, act, **kw)  # noqa: E731
        fb = lambda d, a, w, **kw: fastact.bias_act_backward(d, a, w, act, **kw)  # noqa: E731
    else:
        xs, ws = x.reshape(-1, PRELU_CHANNELS, PRELU_INNER), (rng.uniform(0, 0.3, PRELU_CHANNELS)).astype(dt)
        f, fb = fastact.prelu, fastact.prelu_backward
    gs = g.reshape(xs.shape)
    o1, ow = np.empty_like(xs), np.empty_like(ws)
    impls = {("fwd", "fastact"): lambda: f(xs, ws), ("fwd", "fa out="): lambda: f(xs, ws, out=o1),
             ("bwd", "fastact"): lambda: fb(gs, xs, ws), ("bwd", "fa out="): lambda: fb(gs, xs, ws, out=(o1, ow))}
    if act == "relu" and dt in (np.float32, np.float64):
        impls[("fwd", "numpy")] = lambda: np.maximum(xs + ws, 0)
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        return impls
    tx, tw, td = (torch_of(a, dt) for a in (xs, ws, gs))
    A = torch.ops.aten
    if act:
        tf = {"relu": torch.relu, "gelu": F.gelu, "silu": F.silu}[act]
        tb = {"relu": lambda d, z: A.threshold_backward(d, z, 0), "gelu": A.gelu_backward, "silu": A.silu_backward}[act]

        def torch_bwd():
            gx = tb(td, tx + tw)
            return gx, gx.sum(0)

        impls[("fwd", "torch")] = lambda: tf(tx + tw)
        impls[("bwd", "torch")] = torch_bwd
    else:
        def torch_bwd():
            a, w = tx.detach().requires_grad_(), tw.detach().requires_grad_()
            return torch.autograd.grad(F.prelu(a, w), (a, w), td)

        impls[("fwd", "torch")] = lambda: F.prelu(tx, tw)
        impls[("bwd", "torch")] = torch_bwd
    try:
        import jax
        import jax.numpy as jnp

        jx, jw, jd = (jax_of(a, dt) for a in (xs, ws, gs))
        nn = jax.nn
        if act:
            ja = {"relu": nn.relu, "gelu": lambda v: nn.gelu(v, approximate=False), "silu": nn.silu}[act]
            jf = lambda a, w: ja(a + w)  # noqa: E731
        else:
            jf = lambda a, w: jnp.where(a > 0, a, a * w[:, None])  # noqa: E731
        impls.update(jax_pair(jf, jx, jw, jd))
    except ImportError:
        pass
    return impls


def fastact_calls(f, fb, variant, a, g, y, out, from_x):
    """fastact's four timed calls (forward and backward, allocating and out=). The parameter is written
    out, as the alternatives' lambdas do: f(a, **{}) or a functools.partial alone costs 100-130 ns, a
    sixth of a 1,024-element call."""
    if variant:
        v = variant
        calls = {
            ("fwd", "fastact"): lambda: f(a, approximate=v),
            ("fwd", "fa out="): lambda: f(a, approximate=v, out=out),
            ("bwd", "fastact"): (lambda: fb(g, a, approximate=v)) if from_x else (lambda: fb(g, y=y, approximate=v)),
            ("bwd", "fa out="): (lambda: fb(g, a, approximate=v, out=out)) if from_x else
            (lambda: fb(g, y=y, approximate=v, out=out)),
        }
    else:
        calls = {
            ("fwd", "fastact"): lambda: f(a),
            ("fwd", "fa out="): lambda: f(a, out=out),
            ("bwd", "fastact"): (lambda: fb(g, a)) if from_x else (lambda: fb(g, y=y)),
            ("bwd", "fa out="): (lambda: fb(g, a, out=out)) if from_x else (lambda: fb(g, y=y, out=out)),
        }
    return calls


# Values for the parameters that have no default (softcap's cap, threshold's): typical ones.
_REQUIRED_EXAMPLE = {"any": 0.0, "positive": 30.0, "nonnegative": 0.5, "extended": 1.0}


def example_params(o):
    """The values compare.py gives the op's parameters that have no default."""
    return {p["name"]: _REQUIRED_EXAMPLE[p["check"]] for p in o["params"] if p["required"]}


def op_fn(o, suffix=""):
    """fastact.<op><suffix> with its required parameters given."""
    f = getattr(fastact, o["name"] + suffix)
    req = example_params(o)
    return functools.partial(f, **req) if req else f


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ops", default=",".join(o["name"] for o in fastact.ops()))
    ap.add_argument("--sizes", default="1024,65536,16777216")
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64", "float16", "bfloat16"])
    ap.add_argument("--threads", type=int, default=fastact.get_num_threads())
    ap.add_argument("--isa", default=fastact.get_isa())
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--settle", type=float, default=0.05,
                    help="seconds of idle before each timed batch (default 0.05), so that a library's spinning "
                         "thread pool (ONNX Runtime, XLA) has gone to sleep before the next library runs")
    ap.add_argument("--markdown", action="store_true", help="also print the results as a Markdown table")
    ap.add_argument("--plot", default=None, help="write a bar chart of the ratios to this file (matplotlib)")
    a = ap.parse_args()
    fastact.set_num_threads(a.threads)
    fastact.set_isa(a.isa)
    try:
        import torch

        torch.set_num_threads(a.threads)
    except ImportError:
        torch = None
    if a.dtype == "bfloat16":
        import ml_dtypes  # the NumPy bfloat16 type (pip install ml_dtypes)

        dt = np.dtype(ml_dtypes.bfloat16)
    else:
        dt = np.dtype(a.dtype)
    ops = [o for o in fastact.ops() if o["name"] in a.ops.split(",") and
           (o["kind"] != "broadcast" or not o["activation"] or o["activation"] in BIAS_ACTS)]
    print(f"fastact {fastact.__version__}, ISA {fastact.get_isa()}, {a.threads} threads, {a.dtype}; "
          "median ns/element (per call for size 1,024: multiply by 1,024); ratio = best alternative / fastact")
    results = []  # (size, label, dir, fastact ns, best alternative name, its ns)
    missing = set()
    for n in (int(s) for s in a.sizes.split(",")):
        rng = np.random.default_rng(0)
        x = (rng.standard_normal(n) * 3).astype(dt)
        g = rng.standard_normal(n).astype(dt)
        cols = 1024 if n >= 1024 else n
        rows = x.reshape(-1, cols)
        out = np.empty_like(x)
        roof = {"np.copyto": timer(lambda: np.copyto(out, x))}
        if torch is not None:
            tsrc, tdst = torch.from_numpy(x.view(np.uint8)), torch.from_numpy(out.view(np.uint8))
            roof["torch copy_ (threads)"] = timer(lambda: tdst.copy_(tsrc))
        roof_t = {k: statistics.median(r() for _ in range(a.rounds)) / n * 1e9 for k, r in roof.items()}
        print(f"\nsize {n:,}: copy of the same bytes " + ", ".join(f"{k} {v:.3f}" for k, v in roof_t.items()) +
              " ns/element")
        half = dt.itemsize == 2  # 16-bit: also fastact's own float32 rate, the throughput anchor
        cols_hdr = ["fastact", "fa out="] + (["f32 out="] if half else []) + list(ALTERNATIVES)
        print(f"{'op':22s} {'dir':4s} " + " ".join(f"{c:>9s}" for c in cols_hdr) + f"  {'best alt':>9s} {'ratio':>6s}")
        ys = {o["name"]: op_fn(o)(rows if o["kind"] == "row" else x) for o in ops
              if o["kind"] not in ("gated", "broadcast")}
        ys = {k: v.reshape(-1) if v.ndim > 1 else v for k, v in ys.items()}
        anchors = {
            "numpy": (numpy_impls(x, rows) if a.dtype != "bfloat16" else {}, None),  # NumPy has no bfloat16 kernels
            "torch": torch_impls(x, rows, g, {k: v.reshape(rows.shape) if k in ("softmax", "log_softmax") else v
                                              for k, v in ys.items()}),
            "jax": (jax_impls(x, rows), None),  # JAX sizes its own CPU thread pool
            "ort": (ort_impls(x, rows, a.threads), None),
            "numexpr": (numexpr_impls(x, a.threads), None),
        }
        for k, (f, _) in anchors.items():
            if f is None:
                missing.add(k)
        for o in ops:
            name = o["name"]
            if o["kind"] == "gated":  # two arrays of n (gate, up): the two-array form, and its backward
                up = (rng.standard_normal(n) * 3).astype(dt)
                f, fb = getattr(fastact, name), getattr(fastact, name + "_backward")
                o1, o2 = np.empty_like(x), np.empty_like(x)
                impls = {("fwd", "fastact"): lambda: f(x, up), ("fwd", "fa out="): lambda: f(x, up, out=o1),
                         ("bwd", "fastact"): lambda: fb(g, x, up), ("bwd", "fa out="): lambda: fb(g, x, up, out=(o1, o2))}
                impls.update(gated_impls(name, x, up, g, a.threads))
                variants = [None]
            elif o["kind"] == "broadcast":
                if n % (1024 if o["activation"] else PRELU_CHANNELS * PRELU_INNER):
                    continue  # rows of 1,024 / 64 channels of 256: sizes that hold whole ones
                impls = broadcast_impls(o, o["activation"], x, g, dt, a.threads)
                variants = [None]
            else:
                variants = [""] + (["tanh"] if name == "gelu" else [])
            for variant in variants:
                if variant is None:
                    label = (f"bias_act({o['activation']})" if o["activation"] else name) \
                        if o["kind"] == "broadcast" else name + "(gate, up)"
                    runners = {k: timer(v) for k, v in impls.items()}
                    times = {k: [] for k in runners}
                    for _ in range(a.rounds):
                        for k, r in runners.items():
                            if a.settle:
                                time.sleep(a.settle)
                            times[k].append(r())
                    med = {k: statistics.median(v) / n * 1e9 for k, v in times.items()}
                    for d in ("fwd", "bwd"):
                        cells = [med.get((d, c)) for c in cols_hdr]
                        alts = {c: med[(d, c)] for c in ALTERNATIVES if (d, c) in med}
                        best = min(alts, key=alts.get) if alts else None
                        ratio = f"{alts[best] / cells[0]:6.2f}" if best else "     -"
                        print(f"{label:22s} {d:4s} " + " ".join(f"{c:9.3f}" if c is not None else f"{'-':>9s}"
                                                                  for c in cells) + f"  {best or '-':>9s} {ratio}")
                        results.append((n, label, d, cells[0], cells[1], best, alts.get(best), None))
                    continue
                arr = rows if o["kind"] == "row" else x
                f, fb = op_fn(o), op_fn(o, "_backward")
                # the backward form PyTorch's kernel uses: from y where the op allows it unconditionally
                # (sigmoid, tanh, relu, softmax), else from x
                from_x = o["backward_from"] not in ("y", "x|y")
                garr = g.reshape(arr.shape)
                yarr = ys[name].reshape(arr.shape)
                o_out = np.empty_like(arr)
                impls = fastact_calls(f, fb, variant, arr, garr, yarr, o_out, from_x)
                for alt, (fwd_map, bwd_map) in anchors.items():
                    if fwd_map and (name, variant) in fwd_map:
                        impls[("fwd", alt)] = fwd_map[(name, variant)]
                    if bwd_map and (name, variant) in bwd_map:
                        impls[("bwd", alt)] = bwd_map[(name, variant)]
                if half:
                    a32, g32, y32, o32 = (v.astype(np.float32) for v in (arr, garr, yarr, o_out))
                    c32 = fastact_calls(f, fb, variant, a32, g32, y32, o32, from_x)
                    impls[("fwd", "f32 out=")] = c32[("fwd", "fa out=")]
                    impls[("bwd", "f32 out=")] = c32[("bwd", "fa out=")]
                runners = {k: timer(v) for k, v in impls.items()}
                times = {k: [] for k in runners}
                for _ in range(a.rounds):  # interleaved
                    for k, r in runners.items():
                        if a.settle:
                            time.sleep(a.settle)
                        times[k].append(r())
                med = {k: statistics.median(v) / n * 1e9 for k, v in times.items()}
                label = name + (f"({variant})" if variant else "")
                for d in ("fwd", "bwd"):
                    cells = [med.get((d, c)) for c in cols_hdr]
                    alts = {c: med[(d, c)] for c in ALTERNATIVES if (d, c) in med}
                    best = min(alts, key=alts.get) if alts else None
                    ratio = f"{alts[best] / cells[0]:6.2f}" if best else "     -"
                    print(f"{label:22s} {d:4s} " + " ".join(f"{c:9.3f}" if c is not None else f"{'-':>9s}" for c in cells)
                          + f"  {best or '-':>9s} {ratio}")
                    results.append((n, label, d, cells[0], cells[1], best, alts.get(best), med.get((d, "f32 out="))))
    for m in sorted(missing):
        print(f"note: {m} not installed: skipped (pip install {'onnxruntime onnx' if m == 'ort' else m})")
    if a.markdown:
        print_markdown(results, a)
    if a.plot:
        plot(results, a)
    return 0


def print_markdown(results, a):
    sizes = sorted({r[0] for r in results})
    print(f"\n| op | dir | " + " | ".join(f"{n:,}: fastact / best alternative (ratio)" for n in sizes) + " |")
    print("|---|---|" + "---|" * len(sizes))
    keys = list(dict.fromkeys((r[1], r[2]) for r in results))
    by = {(r[0], r[1], r[2]): r for r in results}
    for label, d in keys:
        cells = []
        for n in sizes:
            r = by.get((n, label, d))
            if r is None or r[5] is None:
                cells.append("-")
            else:
                cells.append(f"{r[3]:.3f} / {r[6]:.3f} {r[5]} ({r[6] / r[3]:.2f}x)")
        print(f"| {label} | {d} | " + " | ".join(cells) + " |")
    if results and results[0][7] is not None:  # 16-bit: throughput against fastact's own float32, out= both
        print(f"\n| op | dir | " + " | ".join(f"{n:,}: {a.dtype} / float32 ns (speedup)" for n in sizes) + " |")
        print("|---|---|" + "---|" * len(sizes))
        for label, d in keys:
            cells = [f"{r[4]:.3f} / {r[7]:.3f} ({r[7] / r[4]:.2f}x)" if (r := by.get((n, label, d))) else "-"
                     for n in sizes]
            print(f"| {label} | {d} | " + " | ".join(cells) + " |")


def plot(results, a):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("note: matplotlib not installed: no plot (pip install matplotlib)")
        return
    sizes = sorted({r[0] for r in results})
    fig, axes = plt.subplots(len(sizes), 1, figsize=(12, 3.2 * len(sizes)), squeeze=False)
    for ax, n in zip(axes[:, 0], sizes):
        rs = [r for r in results if r[0] == n and r[5] is not None]
        labels = [f"{r[1]} {r[2]}" for r in rs]
        ax.bar(range(len(rs)), [r[6] / r[3] for r in rs], color=["C0" if r[2] == "fwd" else "C1" for r in rs])
        ax.axhline(1.0, color="k", lw=0.8)
        ax.axhline(2.0, color="g", lw=0.8, ls="--")
        ax.set_xticks(range(len(rs)))
        ax.set_xticklabels(labels, rotation=60, ha="right", fontsize=7)
        ax.set_ylabel("best alternative / fastact")
        ax.set_title(f"{n:,} elements, {a.dtype}, {a.threads} threads (> 1: fastact faster; dashed: the 2x goal)")
    fig.tight_layout()
    fig.savefig(a.plot, dpi=110)
    print(f"plot written to {a.plot}")


if __name__ == "__main__":
    sys.exit(main())
