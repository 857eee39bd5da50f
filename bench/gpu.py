"""GPU benchmark: achieved memory bandwidth of every op and direction, per dtype, on large arrays.

Each fastact kernel is measured against, in the same run and on the same GPU:
  * the device-to-device copy of the same bytes (the bandwidth roof; a kernel that reads k arrays and
    writes one moves (k + 1) * n elements, as a copy of k + 1 half-sized arrays would),
  * PyTorch's own kernels (torch.nn.functional forward, torch.ops.aten.*_backward),
  * CuPy's element-wise functions where CuPy has the op (forward, float32/float16).
Timing: CUDA events around each call after a warm-up, median of --rounds. Needs PyTorch with CUDA
(its tensors carry the data and its events time it); CuPy is optional.

    python bench/gpu.py                       # 2^28 elements, float32 / float16 / bfloat16
    python bench/gpu.py --size 16777216 --dtypes float32 --ops gelu,softmax
"""
from __future__ import annotations

import argparse
import statistics
import sys

import fastact


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=1 << 28, help="elements per array (default 2^28)")
    ap.add_argument("--dtypes", default="float32,float16,bfloat16")
    ap.add_argument("--ops", default=None, help="comma-separated op names (default: all)")
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--row", type=int, default=1024, help="softmax row length (default 1024)")
    ap.add_argument("--ce-rows", type=int, default=8192, help="cross_entropy rows (default 8192; 0 skips it)")
    ap.add_argument("--ce-classes", type=int, default=128000, help="cross_entropy classes (default 128000)")
    ap.add_argument("--call-size", type=int, default=1024,
                    help="elements for the per-call cost table (default 1024; 0 skips it)")
    args = ap.parse_args(argv)

    try:
        import torch
    except ImportError:
        sys.exit("bench/gpu.py needs PyTorch with CUDA (its tensors and events carry the measurement)")
    if not torch.cuda.is_available() or not fastact.cuda.is_available():
        sys.exit(f"no usable GPU: torch.cuda.is_available()={torch.cuda.is_available()}, "
                 f"fastact: {fastact.cuda.unavailable_reason()}")
    try:
        import cupy
        import cupyx.scipy.special as cps
    except ImportError:
        cupy = None
        print("note: CuPy not installed; its column is empty")
    F = torch.nn.functional
    aten = torch.ops.aten

    def timed(fn):
        fn()
        torch.cuda.synchronize()
        ts = []
        for _ in range(args.rounds):
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            fn()
            b.record()
            b.synchronize()
            ts.append(a.elapsed_time(b) / 1e3)
        return statistics.median(ts)

    # (name, direction, fastact call, torch call, cupy call or None, arrays read)
    def cases(x, g, y_sig, y_tanh, rows, grows, y_soft, y_logsoft):
        cx = cupy.from_dlpack(x) if cupy is not None and x.dtype != torch.bfloat16 else None
        cr = cupy.from_dlpack(rows) if cx is not None else None
        return [
            ("relu", "fwd", lambda: fastact.relu(x), lambda: F.relu(x), cx is not None and (lambda: cupy.maximum(cx, 0)), 1),
            ("relu", "bwd", lambda: fastact.relu_backward(g, x), lambda: aten.threshold_backward(g, x, 0), None, 2),
            ("leaky_relu", "fwd", lambda: fastact.leaky_relu(x), lambda: F.leaky_relu(x, 0.01),
             cx is not None and (lambda: cupy.where(cx > 0, cx, cx * 0.01)), 1),
            ("leaky_relu", "bwd", lambda: fastact.leaky_relu_backward(g, x),
             lambda: aten.leaky_relu_backward(g, x, 0.01, False), None, 2),
            ("elu", "fwd", lambda: fastact.elu(x), lambda: F.elu(x),
             cx is not None and (lambda: cupy.where(cx > 0, cx, cupy.expm1(cx))), 1),
            ("elu", "bwd", lambda: fastact.elu_backward(g, x), lambda: aten.elu_backward(g, 1.0, 1, 1, False, x), None, 2),
            ("gelu", "fwd", lambda: fastact.gelu(x), lambda: F.gelu(x),
             cx is not None and (lambda: 0.5 * cx * cps.erfc(cx * -0.7071067811865476)), 1),
            ("gelu", "bwd", lambda: fastact.gelu_backward(g, x), lambda: aten.gelu_backward(g, x), None, 2),
            ("gelu_tanh", "fwd", lambda: fastact.gelu(x, approximate="tanh"), lambda: F.gelu(x, approximate="tanh"), None, 1),
            ("gelu_tanh", "bwd", lambda: fastact.gelu_backward(g, x, approximate="tanh"),
             lambda: aten.gelu_backward(g, x, approximate="tanh"), None, 2),
            ("silu", "fwd", lambda: fastact.silu(x), lambda: F.silu(x), cx is not None and (lambda: cx * cps.expit(cx)), 1),
            ("silu", "bwd", lambda: fastact.silu_backward(g, x), lambda: aten.silu_backward(g, x), None, 2),
            ("sigmoid", "fwd", lambda: fastact.sigmoid(x), lambda: torch.sigmoid(x), cx is not None and (lambda: cps.expit(cx)), 1),
            ("sigmoid", "bwd", lambda: fastact.sigmoid_backward(g, y=y_sig), lambda: aten.sigmoid_backward(g, y_sig), None, 2),
            ("tanh", "fwd", lambda: fastact.tanh(x), lambda: torch.tanh(x), cx is not None and (lambda: cupy.tanh(cx)), 1),
            ("tanh", "bwd", lambda: fastact.tanh_backward(g, y=y_tanh), lambda: aten.tanh_backward(g, y_tanh), None, 2),
            ("softmax", "fwd", lambda: fastact.softmax(rows), lambda: torch.softmax(rows, -1),
             cr is not None and (lambda: cps.softmax(cr, axis=-1)), 1),
            ("softmax", "bwd", lambda: fastact.softmax_backward(grows, y=y_soft),
             lambda: aten._softmax_backward_data(grows, y_soft, -1, rows.dtype), None, 2),
            ("log_softmax", "fwd", lambda: fastact.log_softmax(rows), lambda: torch.log_softmax(rows, -1),
             cr is not None and (lambda: cps.log_softmax(cr, axis=-1)), 1),
            ("log_softmax", "bwd", lambda: fastact.log_softmax_backward(grows, y=y_logsoft),
             lambda: aten._log_softmax_backward_data(grows, y_logsoft, -1, rows.dtype), None, 2),
        ]

    wanted = set(args.ops.split(",")) if args.ops else None
    n = args.size // args.row * args.row
    dev = torch.cuda.get_device_name()
    print(f"fastact {fastact.__version__} on {dev}; {n} elements ({n // args.row} softmax rows of {args.row}); "
          f"median of {args.rounds} after warm-up; GB/s = bytes read + written per second")
    print()
    print("| op | dir | dtype | fastact GB/s | % of copy | torch GB/s | CuPy GB/s | fastact / torch time |")
    print("|---|---|---|---|---|---|---|---|")
    for dname in args.dtypes.split(","):
        dt = getattr(torch, dname)
        x = torch.randn(n, device="cuda", dtype=torch.float32).mul_(4).to(dt)
        g = torch.randn(n, device="cuda", dtype=torch.float32).to(dt)
        rows, grows = x.view(-1, args.row), g.view(-1, args.row)
        y_sig, y_tanh = torch.sigmoid(x), torch.tanh(x)
        y_soft, y_logsoft = torch.softmax(rows, -1), torch.log_softmax(rows, -1)
        esize = x.element_size()
        # the copy roof: n elements read and written
        src, dst = torch.empty_like(x), torch.empty_like(x)
        t_copy = timed(lambda: dst.copy_(src))
        copy_bw = 2 * n * esize / t_copy
        print(f"| copy (roof) | | {dname} | {copy_bw / 1e9:.0f} | 100% | | | |")
        for name, d, ours, theirs, cp_fn, reads in cases(x, g, y_sig, y_tanh, rows, grows, y_soft, y_logsoft):
            if wanted and name not in wanted and name.split("_")[0] not in wanted:
                continue
            nbytes = (reads + 1) * n * esize
            t_ours = timed(ours)
            t_torch = timed(theirs)
            try:
                t_cp = timed(cp_fn) if cp_fn else None
            except Exception as e:  # a CuPy without this function
                print(f"note: CuPy {name}: {type(e).__name__}: {e}")
                t_cp = None
            bw = nbytes / t_ours
            cp_col = f"{nbytes / t_cp / 1e9:.0f}" if t_cp else ""
            print(f"| {name} | {d} | {dname} | {bw / 1e9:.0f} | {100 * bw / copy_bw:.0f}% | {nbytes / t_torch / 1e9:.0f} | "
                  f"{cp_col} | {t_ours / t_torch:.2f} |")
        del x, g, rows, grows, y_sig, y_tanh, y_soft, y_logsoft, src, dst
        torch.cuda.empty_cache()
    if args.ce_rows and args.ce_classes:
        cross_entropy_table(torch, args, timed)
    if args.call_size:
        call_cost(torch, args)


def cross_entropy_table(torch, args, timed):
    """cross_entropy at an LLM shape against PyTorch's CUDA F.cross_entropy: the forward, and the forward +
    backward (fastact's backward writing over the logits: out=logits; PyTorch's through autograd)."""
    F = torch.nn.functional
    r, k = args.ce_rows, args.ce_classes
    print()
    print(f"cross_entropy, {r} rows x {k} classes, mean; median of {args.rounds}")
    print()
    print("| dtype | direction | fastact ms | torch ms | fastact / torch time |")
    print("|---|---|---|---|---|")
    for dname in ("float32", "bfloat16"):
        dt = getattr(torch, dname)
        x = torch.randn(r, k, device="cuda", dtype=torch.float32).mul_(3).to(dt)
        t = torch.randint(0, k, (r,), device="cuda")
        xg = x.clone().requires_grad_(True)

        def torch_fb():
            xg.grad = None
            F.cross_entropy(xg, t).backward()

        def ours_fb():
            fastact.cross_entropy(x, t)
            fastact.cross_entropy_backward(1.0, x, t, out=x)  # (overwrites x: timing only)

        for d, ours, theirs in [("fwd", lambda: fastact.cross_entropy(x, t), lambda: F.cross_entropy(x, t)),
                                ("fwd+bwd", ours_fb, torch_fb)]:
            t_ours, t_torch = timed(ours), timed(theirs)
            print(f"| {dname} | {d} | {t_ours * 1e3:.2f} | {t_torch * 1e3:.2f} | {t_ours / t_torch:.2f} |")
        torch.cuda.empty_cache()


def call_cost(torch, args):
    """Host time per call on small torch tensors (launch and Python included), the cost that dominates
    small activations on a GPU: calls issued back to back, then one synchronize, median of rounds."""
    import time

    n = args.call_size
    x = torch.randn(n, device="cuda")
    g = torch.randn(n, device="cuda")
    rows = x.view(-1, min(n, 256))
    cases = [("relu", lambda: fastact.relu(x), lambda: torch.relu(x)),
             ("gelu", lambda: fastact.gelu(x), lambda: torch.nn.functional.gelu(x)),
             ("gelu_backward", lambda: fastact.gelu_backward(g, x), lambda: torch.ops.aten.gelu_backward(g, x)),
             ("softmax", lambda: fastact.softmax(rows), lambda: torch.softmax(rows, -1))]
    print()
    print(f"Per call, {n} float32 elements on the GPU (torch tensors in and out; host wall time of 200 calls "
          f"issued back to back, then a synchronize; median of {args.rounds}):")
    print()
    print("| op | fastact µs | torch µs | fastact / torch |")
    print("|---|---|---|---|")
    for name, ours, theirs in cases:
        res = []
        for fn in (ours, theirs):
            fn()
            torch.cuda.synchronize()
            ts = []
            for _ in range(args.rounds):
                t0 = time.perf_counter()
                for _ in range(200):
                    fn()
                torch.cuda.synchronize()
                ts.append((time.perf_counter() - t0) / 200)
            res.append(statistics.median(ts))
        print(f"| {name} | {res[0] * 1e6:.1f} | {res[1] * 1e6:.1f} | {res[0] / res[1]:.2f} |")


if __name__ == "__main__":
    main()
