"""Shared fixtures. Everything is parametrized from the registry (fastact.ops()), so a new op is tested
on every ISA, dtype and layout without touching this suite; it only has to bring a float64 reference
(tests/reference.py)."""
from __future__ import annotations

import functools

import numpy as np
import pytest

import fastact

OPS = fastact.ops()
ELEMENTWISE = [o for o in OPS if o["kind"] == "elementwise"]
ROW = [o for o in OPS if o["kind"] == "row"]

# Alternative values for numeric parameters, to test more than the defaults; values for the parameters
# that have no default (required: every variant passes them).
_ALT = {"any": 0.37, "positive": 1.7, "nonnegative": 0.25, "extended": 0.37}
_REQUIRED = {"any": -0.75, "positive": 30.0, "nonnegative": 1.5, "extended": -2.0}


def required_params(op):
    """The values the tests pass for op's required parameters."""
    return {p["name"]: _REQUIRED[p["check"]] for p in op["params"] if p["required"]}


def op_fn(op, suffix=""):
    """fastact.<op><suffix> with op's required parameters given (the test values; a call's own keywords
    override them)."""
    f = getattr(fastact, op["name"] + suffix)
    req = required_params(op)
    return functools.partial(f, **req) if req else f


def variants(op):
    """(id, kwargs) pairs: the defaults (required parameters given), every choice, and one other value
    per number."""
    base = required_params(op)
    out = [(op["name"], dict(base))]
    for p in op["params"]:
        if p["choices"]:
            for c in p["choices"].split("|")[1:]:
                out.append((f"{op['name']}-{p['name']}={c}", {**base, p["name"]: c}))
        else:
            v = _ALT[p["check"]]
            out.append((f"{op['name']}-{p['name']}={v}", {**base, p["name"]: v}))
    return out


ELEMENTWISE_VARIANTS = [pytest.param(o, kw, id=i) for o in ELEMENTWISE for i, kw in variants(o)]


def full_params(op, kwargs, dtype):
    """All parameters (defaults filled in), numbers rounded to dtype as the kernels see them."""
    out = {}
    for p in op["params"]:
        if p["choices"]:
            out[p["name"]] = kwargs.get(p["name"], p["choices"].split("|")[int(p["default"])])
        else:
            out[p["name"]] = float(np.dtype(dtype).type(kwargs.get(p["name"], p["default"])))
    return out


def backward_modes(op, kwargs):
    """Which of 'x', 'y' the op's backward accepts with these parameters."""
    b = op["backward_from"]
    modes = ["x"] if "x" in b else []
    if b in ("x|y", "y"):
        modes.append("y")
    elif b == "x|y+":
        first = op["params"][0]
        if kwargs.get(first["name"], first["default"]) > 0:
            modes.append("y")
    return modes


@pytest.fixture(params=fastact.supported_isas())
def isa(request):
    """Run the test on each ISA path this CPU has, restoring the default afterwards."""
    before = fastact.get_isa()
    fastact.set_isa(request.param)
    yield request.param
    fastact.set_isa(before)


def bit_patterns_f32(n=1 << 20):
    """n float32 bit patterns spread evenly over all 2^32 (every exponent, both signs), plus specials."""
    step = (1 << 32) // n
    bits = (np.arange(n, dtype=np.uint64) * step + 12345) % (1 << 32)
    x = bits.astype(np.uint32).view(np.float32)
    specials = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-45, -1e-45, 1.1754944e-38, -1.1754944e-38,
                         3.4028235e38, -3.4028235e38], dtype=np.float32)
    return np.concatenate([x, specials])


def _variants_with(mode):
    return [pytest.param(o, kw, id=i) for o in ELEMENTWISE for i, kw in variants(o) if mode in backward_modes(o, kw)]


BACKWARD_X_VARIANTS = _variants_with("x")
BACKWARD_Y_VARIANTS = _variants_with("y")


GATED = [o for o in OPS if o["kind"] == "gated"]
BROADCAST = [o for o in OPS if o["kind"] == "broadcast"]


class Form:
    """One way to call an op, from the registry: its function, the names of its array arguments, valid
    arrays for them (good(dtype)), and the call itself. A test that loops over FORMS covers every op of
    every kind, each in every form it has, with no edit when an op is added."""

    def __init__(self, id, op, fn, names, shapes, call, tuple_out=False):
        self.id, self.op, self.fn, self.names, self.shapes = id, op, fn, names, shapes
        self._call, self.tuple_out = call, tuple_out

    def good(self, dtype=np.float32, seed=0):
        rng = np.random.default_rng(seed)
        return [(rng.standard_normal(s) * 3).astype(dtype) for s in self.shapes]

    def __call__(self, args, **kw):  # the op's required parameters given unless kw gives them
        return self._call(getattr(fastact, self.fn), args, {**required_params(self.op), **kw})

    def __repr__(self):
        return self.id


def _forms(op):
    name = op["name"]
    if op["kind"] == "elementwise":
        out = [Form(name, op, name, ["x"], [(8,)], lambda f, a, kw: f(a[0], **kw))]
        for m in backward_modes(op, {}):
            call = (lambda f, a, kw: f(a[0], a[1], **kw)) if m == "x" else (lambda f, a, kw: f(a[0], y=a[1], **kw))
            out.append(Form(f"{name}_backward[{m}]", op, name + "_backward", ["grad_output", m], [(8,), (8,)], call))
        return out
    if op["kind"] == "row":
        return [Form(name, op, name, ["x"], [(8,)], lambda f, a, kw: f(a[0], **kw)),
                Form(f"{name}_backward[y]", op, name + "_backward", ["grad_output", "y"], [(8,), (8,)],
                     lambda f, a, kw: f(a[0], y=a[1], **kw))]
    if op["kind"] == "gated":
        return [Form(f"{name}[x]", op, name, ["x"], [(8,)], lambda f, a, kw: f(a[0], **kw)),
                Form(f"{name}[gate,up]", op, name, ["gate", "up"], [(8,), (8,)], lambda f, a, kw: f(a[0], a[1], **kw)),
                Form(f"{name}_backward[x]", op, name + "_backward", ["grad_output", "x"], [(4,), (8,)],
                     lambda f, a, kw: f(a[0], a[1], **kw)),
                Form(f"{name}_backward[gate,up]", op, name + "_backward", ["grad_output", "gate", "up"],
                     [(8,), (8,), (8,)], lambda f, a, kw: f(a[0], a[1], a[2], **kw), tuple_out=True)]
    if op["kind"] == "broadcast":  # x and its weight / bias along axis 0 (1-d: outputs are 1-d in these tests)
        w = op["operand"]
        if op["activation"]:  # bias_act, one form per activation
            act = op["activation"]
            fwd = lambda f, a, kw: f(a[0], a[1], activation=act, **kw)
            bwd = lambda f, a, kw: f(a[0], a[1], a[2], activation=act, **kw)
            tag = f"[{act}]"
        else:
            fwd = lambda f, a, kw: f(a[0], a[1], channel_axis=0, **kw)
            bwd = lambda f, a, kw: f(a[0], a[1], a[2], channel_axis=0, **kw)
            tag = ""
        return [Form(f"{name}{tag}", op, name, ["x", w], [(8,), (8,)], fwd),
                Form(f"{name}_backward{tag}", op, name + "_backward", ["grad_output", "x", w], [(8,), (8,), (8,)],
                     bwd, tuple_out=True)]
    if op["kind"] == "loss":  # element-wise losses, unreduced (an array out, as the other kinds)
        names = op["operand"].split()  # the input (pred, logits), target, the weights
        n = len(names)
        return [Form(f"{name}[none]", op, name, names, [(8,)] * n,
                     lambda f, a, kw: f(*a, **{"reduction": "none", **kw})),
                Form(f"{name}_backward[none]", op, name + "_backward", ["grad_output"] + names, [(8,)] * (n + 1),
                     lambda f, a, kw: f(*a, **{"reduction": "none", **kw}))]
    raise AssertionError(f"no call forms for the kind {op['kind']!r} (of {name}): add them here")


FORMS = [f for o in OPS for f in _forms(o)]
