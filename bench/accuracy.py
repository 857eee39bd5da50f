#!/usr/bin/env python3
"""Exhaustive float32 accuracy: every one of the 2^32 inputs of an op, against the float64 reference of
the test suite (tests/reference.py, accurate in the tails).

    python bench/accuracy.py gelu                     # one op, default parameters
    python bench/accuracy.py gelu --param approximate=tanh
    python bench/accuracy.py --all                    # every registry op and variant (~1 h on 2 cores)
    python bench/accuracy.py silu --isa scalar        # measure on one ISA path
    python bench/accuracy.py --all --backward         # the gradients from x (grad_output = 1)
    python bench/accuracy.py --all --gpu [--backward] # the GPU's bits against the CPU's, all 2^32 inputs

The ULP error is measured on the ISA given (default: the best this CPU has); every other ISA path is
checked bit for bit against it on all 2^32 inputs (NaN payloads aside), so its maximum holds for them
too. Prints the maximum error, where it occurs, and the share of inputs within 0.5 / 1 ulp.
--backward measures <op>_backward(1, x) against the float64 derivative of tests/reference.py with the
test suite's criterion (within 8 ulp, or 1e-7 of the derivative's largest term near its zeros): the
inputs that fail it, and the worst ulp error where the derivative is at least a tenth of its largest
term (away from its zeros, where ulps measure cancellation rather than the kernel).
--gpu runs every input on the GPU (fastact.cuda) and on the CPU and compares the bits (NaN payloads
aside): identical bits carry the CPU's exhaustive maximum over to the GPU. Inputs whose bits differ are
measured against the reference (the same criteria), so a GPU formula of its own is still held to them.
Uses scipy.special.erfc for speed when installed (pip install scipy); math.erfc otherwise (slow).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

CHUNK = 1 << 24
GPU_CHUNK = 1 << 26


def _init(isa):
    import fastact

    fastact.set_num_threads(1)
    fastact.set_isa(isa)


def _chunk(args):
    import fastact
    import reference as R

    name, kwargs, ref_params, start, isas, backward = args
    bits = np.arange(start, start + CHUNK, dtype=np.uint64).astype(np.uint32)
    x = bits.view(np.float32)
    if backward:
        fb = getattr(fastact, name + "_backward")
        ones = np.ones_like(x)
        f = lambda v, **kw: fb(ones, v, **kw)  # noqa: E731
    else:
        f = getattr(fastact, name)
    base = fastact.get_isa()
    y = f(x, **kwargs)
    with np.errstate(invalid="ignore"):  # signalling-NaN patterns warn when widened
        x64 = x.astype(np.float64)
    if backward:
        ref = R.derivative(name, x64, **ref_params)
        scale = R.derivative_scale(name, x64, **ref_params)
        err = R.ulp_error(y, ref, np.float32)
        with np.errstate(invalid="ignore"):
            ok = (err <= 8) | (np.abs(y.astype(np.float64) - ref) <= 1e-7 * scale)
            away = np.abs(ref) >= 0.1 * scale
        failures = int(np.count_nonzero(~ok & ~np.isnan(x)))
        err = np.where(away, err, 0.0)
    else:
        ref = R.forward(name, x64, **ref_params)
        err = R.ulp_error(y, ref, np.float32)
        failures = 0
    i = int(np.argmax(err))
    within_half = int(np.count_nonzero(err <= 0.5))
    within_one = int(np.count_nonzero(err <= 1.0))
    mismatches = {}
    for isa in isas:
        if isa == base:
            continue
        fastact.set_isa(isa)
        other = f(x, **kwargs)
        fastact.set_isa(base)
        nan = np.isnan(y)
        bad = (np.isnan(other) != nan) | ((y.view(np.uint32) != other.view(np.uint32)) & ~nan)
        mismatches[isa] = int(np.count_nonzero(bad))
    return float(err[i]), float(x[i]), float(y[i]), float(ref[i]), within_half, within_one, mismatches, failures


def sweep(name, kwargs, isa, workers, isas, backward=False):
    import fastact
    from conftest import full_params

    op = next(o for o in fastact.ops() if o["name"] == name)
    ref_params = full_params(op, kwargs, np.float32)
    jobs = [(name, kwargs, ref_params, s, isas, backward) for s in range(0, 1 << 32, CHUNK)]
    t0 = time.time()
    worst = (-1.0,)
    half = one = failures = 0
    mism = {i: 0 for i in isas if i != isa}
    with ProcessPoolExecutor(workers, initializer=_init, initargs=(isa,)) as ex:
        for r in ex.map(_chunk, jobs):
            if r[0] > worst[0]:
                worst = r
            half += r[4]
            one += r[5]
            for k, v in r[6].items():
                mism[k] += v
            failures += r[7]
    label = name + ("_backward" if backward else "") + "".join(f" {k}={v}" for k, v in kwargs.items())
    err, x, y, ref = worst[:4]
    same = ", ".join(f"{k}: {'identical' if v == 0 else f'{v} DIFFER'}" for k, v in mism.items()) or "-"
    where = " (where |d| >= 0.1 of its largest term)" if backward else ""
    fails = f"; outside the 8 ulp / 1e-7 bound: {failures}" if backward else ""
    print(f"{label:28s} {isa:7s} max {err:6.3f} ulp{where} at x={x!r:>16s} (got {y!r}, want {ref!r}); "
          f"<=0.5 ulp {half / 2**32:.4%}, <=1 ulp {one / 2**32:.4%}{fails}; other ISAs: {same}  "
          f"[{time.time() - t0:.0f} s]", flush=True)
    return err, mism, failures


def gpu_mismatches(runs, xd, x, ones, backward):
    """Each run's (name, kwargs, ref_params) on the inputs x, uploaded as xd, GPU against CPU bit for bit
    (NaN payloads aside): per run, the number of inputs that differ and, among them, the GPU's worst
    error (ulp, x, got, want) and (backward) how many fall outside the test suite's bound."""
    import fastact
    import reference as R

    out = []
    ones_d = None
    for name, kwargs, ref_params in runs:
        if backward:
            if ones_d is None:
                from fastact import cuda

                ones_d = cuda.to_device(ones)
            f = getattr(fastact, name + "_backward")
            y, g = f(ones, x, **kwargs), f(ones_d, xd, **kwargs).get()
        else:
            f = getattr(fastact, name)
            y, g = f(x, **kwargs), f(xd, **kwargs).get()
        idx = np.flatnonzero(y.view(np.uint32) != g.view(np.uint32))
        idx = idx[~(np.isnan(y[idx]) & np.isnan(g[idx]))]
        worst, failures = (0.0, 0.0, 0.0, 0.0), 0
        if idx.size:
            xb, gb = x[idx].astype(np.float64), g[idx]
            ref = R.derivative(name, xb, **ref_params) if backward else R.forward(name, xb, **ref_params)
            err = R.ulp_error(gb, ref, np.float32)
            if backward:
                scale = R.derivative_scale(name, xb, **ref_params)
                with np.errstate(invalid="ignore"):
                    ok = (err <= 8) | (np.abs(gb.astype(np.float64) - ref) <= 1e-7 * scale)
                failures = int(np.count_nonzero(~ok & ~np.isnan(xb)))
                err = np.where(np.abs(ref) >= 0.1 * scale, err, 0.0)
            else:
                failures = int(np.count_nonzero(err > 2.0))
            i = int(np.argmax(err))
            worst = (float(err[i]), float(x[idx][i]), float(gb[i]), float(ref[i]))
        out.append((int(idx.size), worst, failures))
    return out


def gpu_sweep(runs, backward, start=0, stop=1 << 32, chunk=GPU_CHUNK):
    """gpu_mismatches over the bit patterns start .. stop - 1, a chunk at a time (uploaded once for all
    runs); prints a line per run and returns the total of differing inputs and of failures."""
    from fastact import cuda

    t0 = time.time()
    total = [[0, (0.0, 0.0, 0.0, 0.0), 0] for _ in runs]
    for s in range(start, stop, chunk):
        x = np.arange(s, min(s + chunk, stop), dtype=np.uint64).astype(np.uint32).view(np.float32)
        for t, (n, worst, failures) in zip(total, gpu_mismatches(runs, cuda.to_device(x), x, np.ones_like(x),
                                                                 backward)):
            t[0] += n
            t[2] += failures
            if worst[0] > t[1][0]:
                t[1] = worst
    count = stop - start
    for (name, kwargs, _), (n, worst, failures) in zip(runs, total):
        label = name + ("_backward" if backward else "") + "".join(f" {k}={v}" for k, v in kwargs.items())
        if n == 0:
            print(f"{label:28s} gpu: identical to the CPU on all {count} inputs", flush=True)
        else:
            err, wx, got, want = worst
            print(f"{label:28s} gpu: {n} of {count} inputs DIFFER from the CPU; worst GPU error {err:.3f} ulp at "
                  f"x={wx!r} (got {got!r}, want {want!r}); outside the contract: {failures}", flush=True)
    print(f"[{time.time() - t0:.0f} s]")
    return sum(t[0] for t in total), sum(t[2] for t in total)


def main():
    import fastact
    from conftest import variants

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("op", nargs="?", help="op name (see fastact.ops())")
    ap.add_argument("--param", action="append", default=[], help="NAME=VALUE, e.g. approximate=tanh, beta=1.702")
    ap.add_argument("--all", action="store_true", help="every element-wise op and its test variants")
    ap.add_argument("--isa", default=fastact.get_isa(), help="ISA to measure on (default: best here)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--backward", action="store_true", help="the gradient from x instead of the forward")
    ap.add_argument("--gpu", action="store_true", help="the GPU's bits against the CPU's, on all 2^32 inputs")
    a = ap.parse_args()
    isas = fastact.supported_isas()
    runs = []
    if a.all:
        for o in fastact.ops():
            if o["kind"] == "elementwise":
                runs += [(o["name"], kw) for _, kw in variants(o)]
    elif a.op:
        kw = {}
        for p in a.param:
            k, v = p.split("=", 1)
            try:
                kw[k] = float(v)
            except ValueError:
                kw[k] = v
        runs = [(a.op, kw)]
    else:
        ap.error("give an op or --all")
    if a.gpu:
        from conftest import full_params
        from fastact import cuda

        if not cuda.is_available():
            sys.exit("--gpu: no usable GPU here (fastact.cuda.is_available() is False)")
        specs = {o["name"]: o for o in fastact.ops()}
        print(f"fastact {fastact.__version__}: all 2^32 float32 inputs{' (backward)' if a.backward else ''}, "
              f"GPU against CPU ({fastact.get_isa()})")
        differ, failures = gpu_sweep([(n, kw, full_params(specs[n], kw, np.float32)) for n, kw in runs], a.backward)
        print(f"GPU: {differ} inputs differ from the CPU, {failures} outside the contract")
        return 0 if differ == 0 else 1
    print(f"fastact {fastact.__version__}: all 2^32 float32 inputs{' (backward)' if a.backward else ''}; "
          f"ISAs here: {', '.join(isas)}")
    worst = 0.0
    bad = False
    failures = 0
    for name, kw in runs:
        err, mism, fails = sweep(name, kw, a.isa, a.workers, isas, a.backward)
        worst = max(worst, err)
        bad = bad or any(mism.values())
        failures += fails
    if a.backward:
        print(f"worst away from the zeros: {worst:.3f} ulp; outside the bound: {failures}"
              + ("; ISA paths DIFFER" if bad else "; all ISA paths bit-identical"))
        return 0 if failures == 0 and not bad else 1
    print(f"worst: {worst:.3f} ulp" + ("; ISA paths DIFFER" if bad else "; all ISA paths bit-identical"))
    return 0 if worst <= 2.0 and not bad else 1


if __name__ == "__main__":
    sys.exit(main())
