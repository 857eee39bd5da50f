#!/usr/bin/env python3
"""Instructions per element: a speed figure that noise does not move.

    python bench/instructions.py                                # every element-wise and row op, float32, best ISA
    python bench/instructions.py --ops gelu,silu --isa all      # each ISA this CPU has
    python bench/instructions.py --dtype float64 --markdown     # a markdown table
    python bench/instructions.py --ops silu --torch              # next to PyTorch's own kernels
    python bench/instructions.py --sass kernels.cubin           # the GPU: sm_90 SASS of each kernel (no GPU needed)

CPU: the instructions the calling thread executes, counted exactly by single-stepping a child process
under ptrace (Linux; no performance counters needed). Each op is called with out= on n, 2n and 3n
elements (the 2n and 3n inputs repeat the n, so every block takes the same branches) on one thread,
and the count per element is (c(2n) - c(n)) / n: the call's fixed cost (Python, argument checks,
dispatch) cancels, and c(3n) - c(2n) must give the same figure (else the row is marked '?'; a string
instruction with a rep prefix would count once per repetition, as the CPU steps it). Inputs:
a seeded normal sample, sd 3 (the range where activations see their inputs); the row ops (softmax,
log_softmax) rows of 1,024 and 4n elements, as the row engine takes rows in blocks.
Only the instructions inside fastact's extension count (x86-64), so the interpreter's work, which may
vary from call to call, never enters. --torch adds a column for PyTorch's own kernels, called through
torch.ops.aten's out= forms on one thread, counting the instructions inside torch/lib and the code
its oneDNN generates at run time (anonymous executable mappings).
The count covers the whole per-element path: the kernel's loop, its loads and stores, and the rare
lanes a vector meets (exp's wide scaling and the like) as often as these inputs meet them.

GPU (--sass): the instructions of each element-wise kernel's body in a cubin built for sm_90
(nvcc -cubin, or cuobjdump -xelf on the extension), read with nvdisasm or cuobjdump from the
nvidia-cuda-nvdisasm / nvidia-cuda-cuobjdump wheels: a static count per kernel (the whole function:
the loop of a grid-stride kernel once; NOP padding and the closing self-branch left out), for comparing
one build with the next, not a time.
"""
from __future__ import annotations

import argparse
import ctypes
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np

PTRACE_TRACEME, PTRACE_PEEKUSER, PTRACE_CONT, PTRACE_SINGLESTEP = 0, 3, 7, 9
RIP_OFFSET = 16 * 8  # rip in x86-64's struct user_regs_struct
ROW_LEN = 1024
ROW_SCALE = 4  # row ops count on 4n elements: the row engine takes rows in blocks, so n, 2n, 3n rows differ


def _elements(case, n):
    return n * ROW_SCALE if case[1] == "row" else n


def _libc():
    libc = ctypes.CDLL(None, use_errno=True)
    libc.ptrace.restype = ctypes.c_long
    libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
    return libc


def _library_text(pid, isa):
    """The executable mappings, in the child, of the library that does the work: fastact's extension, or
    PyTorch's own shared libraries (torch/lib) and the anonymous code its oneDNN generates at run time. x86-64 only: elsewhere every step counts, the
    interpreter's included, and the difference is then only nearly exact."""
    if os.uname().machine != "x86_64":
        return []
    if isa == "torch":
        import torch

        mine = lambda path: path.startswith(os.path.realpath(os.path.join(os.path.dirname(torch.__file__), "lib")))
    else:
        import fastact._core

        core = os.path.realpath(fastact._core.__file__)
        mine = lambda path: path == core
    ranges = []
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            parts = line.split()
            jit = len(parts) == 5 and isa == "torch"  # anonymous code: oneDNN's JIT kernels
            if "x" in parts[1] and (jit or len(parts) >= 6 and mine(os.path.realpath(parts[5]))):
                lo, hi = (int(v, 16) for v in parts[0].split("-"))
                ranges.append((lo, hi))
    if not ranges:
        raise RuntimeError(f"the {isa} library is not mapped in the child")
    return ranges


def cases(names, dtype):
    """(label, kind, name, kwargs, direction) for each op variant and direction offered."""
    import fastact

    out = []
    for o in fastact.ops():
        if o["name"] not in names or o["kind"] not in ("elementwise", "row"):
            continue
        variants = [{}]
        for p in o["params"]:
            if p["choices"]:
                variants = [{p["name"]: c} for c in p["choices"].split("|")]
            elif p["required"]:
                variants = [{**v, p["name"]: 30.0 if p["check"] == "positive" else 0.5} for v in variants]
        for kw in variants:
            tag = o["name"] + "".join(f"({v})" for k, v in kw.items() if isinstance(v, str))
            out.append((tag, o["kind"], o["name"], kw, "forward"))
            for src in o["backward_from"].split("|"):
                out.append((f"{tag} bwd({src})", o["kind"], o["name"], kw, src))
    return out


def _child_calls(case, n, dtype):
    """The three calls of one case (n, 2n, 3n elements), each with out=."""
    import fastact

    _, kind, name, kw, direction = case
    rng = np.random.default_rng(0)
    base = (rng.standard_normal(_elements(case, n)) * 3).astype(np.float32)
    calls = []
    for k in (1, 2, 3):
        x = np.tile(base, k)
        if kind == "row":
            x = x.reshape(-1, ROW_LEN)
        x = x.astype(dtype) if dtype != "bfloat16" else x.astype(fastact.bfloat16)
        out = np.empty_like(x)
        if direction == "forward":
            f = getattr(fastact, name)
            calls.append((lambda f=f, x=x, out=out: f(x, out=out, **kw)))
        else:
            fb = getattr(fastact, name + "_backward")
            g = np.ones_like(x)
            y = getattr(fastact, name)(x, **kw)
            if direction == "x":
                calls.append((lambda fb=fb, g=g, x=x, out=out: fb(g, x, out=out, **kw)))
            else:
                calls.append((lambda fb=fb, g=g, y=y, out=out: fb(g, y=y, out=out, **kw)))
    return calls


TORCH_BACKWARD_FROM_Y = {"sigmoid", "tanh"}  # aten's sigmoid_backward and tanh_backward take y, the rest x


def _torch_calls(case, n, dtype):
    """The same three calls through PyTorch's own out= kernels (torch.ops.aten), or None where it has none."""
    import torch

    _, kind, name, kw, direction = case
    aten = torch.ops.aten
    rng = np.random.default_rng(0)
    base = (rng.standard_normal(_elements(case, n)) * 3).astype(np.float32)
    tdtype = {"float32": torch.float32, "float64": torch.float64, "float16": torch.float16,
              "bfloat16": torch.bfloat16}[dtype]
    calls = []
    for k in (1, 2, 3):
        x = torch.from_numpy(np.tile(base, k)).to(tdtype)
        if kind == "row":
            x = x.reshape(-1, ROW_LEN)
        o, g = torch.empty_like(x), torch.ones_like(x)
        if kind == "row":
            fwd = {"softmax": aten._softmax, "log_softmax": aten._log_softmax}.get(name)
            bwd = {"softmax": aten._softmax_backward_data,
                   "log_softmax": aten._log_softmax_backward_data}.get(name)
            if fwd is None or direction not in ("forward", "y"):
                return None
            y = fwd(x, -1, False)
            out_name = "grad_input" if name == "softmax" else "out"  # aten's two backward_data signatures
            calls.append((lambda x=x, o=o: fwd.out(x, -1, False, out=o)) if direction == "forward" else
                         (lambda g=g, y=y, o=o: bwd.out(g, y, -1, tdtype, **{out_name: o})))
            continue
        try:
            fwd = getattr(aten, name)
            bwd = getattr(aten, name + "_backward") if direction != "forward" else None
        except AttributeError:
            return None
        if set(kw) - {"approximate"} or direction != "forward" and (direction == "x") == (name in TORCH_BACKWARD_FROM_Y):
            return None
        if direction == "forward":
            calls.append(lambda fwd=fwd, x=x, o=o: fwd.out(x, out=o, **kw))
        else:
            src = x if direction == "x" else fwd(x, **kw)
            calls.append(lambda bwd=bwd, g=g, s=src, o=o: bwd.grad_input(g, s, grad_input=o, **kw))
    try:
        for c in calls:
            c()
    except (RuntimeError, TypeError, AttributeError):  # no such out= overload, or another signature
        return None
    return calls


def count_cpu(case, isa, n, dtype):
    """Instructions per element of one case on one ISA: (c2 - c1) / n and (c3 - c2) / n."""
    libc = _libc()
    pid = os.fork()
    if pid == 0:  # the traced child: runs each call between two SIGSTOP marks
        try:
            if isa == "torch":
                import torch

                torch.set_num_threads(1)
                calls = _torch_calls(case, n, dtype)
                if calls is None:
                    os._exit(3)
            else:
                import fastact

                fastact.set_num_threads(1)
                fastact.set_isa(isa)
                calls = _child_calls(case, n, dtype)
            for _ in range(200):  # warm: caches, lazy tables, the interpreter's specialized bytecode
                for c in calls:
                    c()
            if libc.ptrace(PTRACE_TRACEME, 0, None, None) != 0:  # else SIGSTOP would stop it for good
                os._exit(4)
            for c in calls:
                os.kill(os.getpid(), signal.SIGSTOP)
                c()
            os.kill(os.getpid(), signal.SIGSTOP)
        except BaseException as e:  # noqa: BLE001
            sys.stderr.write(f"{case[0]}: {e!r}\n")
            os._exit(1)
        os._exit(0)
    counts, ranges, stops, steps, status, exited = [], None, 0, 0, 0, False
    try:
        _, status = os.waitpid(pid, 0)
        while True:
            if os.WIFEXITED(status) or os.WIFSIGNALED(status):
                exited = True
                break
            sig = os.WSTOPSIG(status)
            if sig == signal.SIGSTOP:  # a mark: the count of the call before it is complete
                if stops:
                    counts.append(steps)
                stops, steps = stops + 1, 0
                if stops == 4:
                    libc.ptrace(PTRACE_CONT, pid, None, None)
                    _, status = os.waitpid(pid, 0)
                    continue
            elif sig != signal.SIGTRAP:  # a signal of its own: the count would be partial
                return None
            if ranges is None:
                ranges = _library_text(pid, isa)
            if ranges:
                rip = libc.ptrace(PTRACE_PEEKUSER, pid, ctypes.c_void_p(RIP_OFFSET), None)
                steps += any(lo <= (rip & 0xFFFFFFFFFFFFFFFF) < hi for lo, hi in ranges)
            else:
                steps += 1
            if libc.ptrace(PTRACE_SINGLESTEP, pid, None, None) != 0:
                raise OSError(ctypes.get_errno(), "ptrace(PTRACE_SINGLESTEP)")
            _, status = os.waitpid(pid, 0)
    finally:  # an error, a stray signal or Ctrl-C must not leave a traced child behind
        if not exited:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
    if len(counts) != 3:
        code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else None
        if code == 4:
            raise PermissionError("ptrace(PTRACE_TRACEME) was refused (kernel.yama.ptrace_scope, or a seccomp "
                                  "policy): the CPU count needs it")
        return "-" if code == 3 else None
    c1, c2, c3 = counts
    m = _elements(case, n)
    return (c2 - c1) / m, (c3 - c2) / m


def run_cpu(a):
    import fastact

    names = set(a.ops.split(",")) if a.ops else {o["name"] for o in fastact.ops()}
    isas = fastact.supported_isas() if a.isa == "all" else a.isa.split(",")
    isas += ["torch"] * a.torch
    rows = []
    for case in cases(names, a.dtype):
        per = {}
        for isa in isas:
            r = count_cpu(case, isa, a.n, a.dtype)
            if r is None or r == "-":
                per[isa] = "error" if r is None else "-"
            else:
                d1, d2 = r
                per[isa] = f"{d1:.2f}" + ("" if abs(d1 - d2) < 0.01 else "?")
        rows.append((case[0], per))
        if not a.markdown:
            print(f"{case[0]:28s} " + "  ".join(f"{isa} {v:>8s}" for isa, v in per.items()), flush=True)
    if a.markdown:
        print(f"| op ({a.dtype}, instructions per element) | " + " | ".join(isas) + " |")
        print("|---|" + "---:|" * len(isas))
        for label, per in rows:
            print(f"| {label} | " + " | ".join(per[i] for i in isas) + " |")


def _disassemble(cubin):
    for tool, args in (("nvdisasm", ["-c"]), ("cuobjdump", ["-sass"])):
        exe = shutil.which(tool)
        if not exe:
            for d in sys.path:  # the PyPI wheels install under nvidia/cu*/bin
                hits = list(Path(d).glob(f"nvidia/**/bin/{tool}"))
                if hits:
                    exe = str(hits[0])
                    break
        if exe:
            return subprocess.run([exe, *args, cubin], check=True, capture_output=True, text=True).stdout
    sys.exit("neither nvdisasm nor cuobjdump found: pip install nvidia-cuda-nvdisasm nvidia-cuda-cuobjdump")


SASS_KERNEL = re.compile(r"::(ew_contiguous_kernel|row_forward_kernel|row_backward_kernel)<(?:fastact::)?(\w+), "
                         r"fastact::ops::isa_cuda::(.+?)(?:, (\d))?>\(")
SASS_DTYPES = {"float": "float32", "double": "float64", "half": "float16", "bfloat16": "bfloat16"}
SASS_DIRS = {"0": "", "1": " bwd(x)", "2": " bwd(y)", None: ""}


def run_sass(a):
    """Static SASS lines of each element-wise and row kernel: every instruction of the function once."""
    text = _disassemble(a.sass)
    funcs, name, label = {}, None, None
    for line in text.splitlines():
        m = re.match(r"\.text\.(\S+):$|\s*Function\s*:\s*(\S+)", line)
        if m:
            name = m.group(1) or m.group(2)
            funcs[name] = [0, 0]
        elif re.match(r"\.L_x_\d+:$", line):
            label = line[:-1]
        elif name and re.match(r"\s*/\*[0-9a-f]{4,}\*/\s+\S", line):
            # not the padding, nor the closing branch to itself after EXIT
            if not re.search(r"\bNOP\b", line) and not (label and f"BRA `({label})" in line):
                funcs[name][0] += 1
                funcs[name][1] += " MUFU." in line
            label = None
    raw = list(funcs)
    demangle = shutil.which("c++filt")
    if not demangle:
        sys.exit("c++filt (binutils) is needed to read the kernels' names")
    pretty = subprocess.run([demangle], input="\n".join(raw), capture_output=True, text=True).stdout.splitlines()
    table, dtypes = {}, []
    for r, d in zip(raw, pretty):
        m = SASS_KERNEL.search(d)
        if not m:
            continue
        kind, dtype, op, direction = m.groups()
        dtype = SASS_DTYPES.get(dtype, dtype)
        op = re.sub(r"\(\w+\)", "", op.replace("fastact::ops::isa_cuda::", ""))  # BiasAct<Gelu>, Glu<Gelu, (gate)0>
        op = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", op).lower().replace(" ", "")
        label = op + (SASS_DIRS[direction] if kind == "ew_contiguous_kernel" else
                      " bwd(y)" if kind == "row_backward_kernel" else "")
        if a.ops and not set(re.findall(r"\w+", op)) & set(a.ops.split(",")):
            continue
        table.setdefault(label, {})[dtype] = funcs[r]
        dtypes += [dtype] if dtype not in dtypes else []
    dtypes = [t for t in ("float32", "float64", "float16", "bfloat16") if t in dtypes]
    if a.markdown:
        print("| kernel (sm_90 SASS: instructions / of which MUFU) | " + " | ".join(dtypes) + " |")
        print("|---|" + "---:|" * len(dtypes))
    for label in sorted(table):
        cells = [f"{table[label][t][0]} / {table[label][t][1]}" if t in table[label] else "" for t in dtypes]
        print(f"| {label} | " + " | ".join(cells) + " |" if a.markdown else
              f"{label:28s} " + "  ".join(f"{t} {c:>11s}" for t, c in zip(dtypes, cells)))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ops", default="", help="comma-separated op names (default: every element-wise and row op)")
    ap.add_argument("--isa", default="", help="an ISA, a comma-separated list, or all (default: the best this CPU has)")
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64", "float16", "bfloat16"])
    ap.add_argument("-n", type=int, default=2048, help="elements of the first call (a multiple of 1,024)")
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--torch", action="store_true",
                    help="also count PyTorch's own kernels (torch.ops.aten out= forms, one thread: torch/lib and "
                         "oneDNN's JIT code)")
    ap.add_argument("--sass", metavar="CUBIN", help="count the SASS instructions of each kernel of a cubin instead")
    a = ap.parse_args()
    if a.sass:
        return run_sass(a)
    if not hasattr(os, "fork") or not sys.platform.startswith("linux"):
        sys.exit("the CPU count single-steps a child process with ptrace: Linux only")
    if a.n % ROW_LEN:
        sys.exit(f"-n must be a multiple of {ROW_LEN}")
    import fastact

    a.isa = a.isa or fastact.get_isa()
    run_cpu(a)


if __name__ == "__main__":
    main()
