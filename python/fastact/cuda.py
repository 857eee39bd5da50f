"""fastact on NVIDIA GPUs.

Every fastact function runs on the GPU when its arrays live there: CuPy arrays, any object with
``__cuda_array_interface__`` (v2/v3: strides honoured, ``mask`` must be None, the producer's ``stream``
waited on), or a CUDA ``__dlpack__`` producer (PyTorch CUDA tensors, JAX GPU arrays; fastact passes
its stream to ``__dlpack__(stream=...)``). The call runs on the array's own device, asynchronously on

* ``stream=`` when given (an int ``cudaStream_t``, a ``cupy.cuda.Stream``, a ``torch.cuda.Stream`` or
  any object with ``__cuda_stream__``), else
* the producer's current stream: CuPy's current stream for CuPy arrays, PyTorch's for torch tensors,
  the ``__cuda_array_interface__``'s ``stream`` for other producers, the default stream otherwise.

The result is of the input's library where it can be (CuPy in -> CuPy out, torch in -> torch out),
else a :class:`DeviceArray`, which exports both protocols, so ``cupy.asarray``, ``torch.from_dlpack``
and ``jax.dlpack.from_dlpack`` take it without a copy. ``out=`` may be any writable GPU array of the
input's shape and dtype (the input itself included). Mixing CPU and GPU arrays in one call is a
``ValueError``; a GPU array given to a build without CUDA, or on a machine without a usable GPU, is a
``RuntimeError`` that says which. The math is the CPU's: float32 results are the CPU's bit for bit,
float16 / bfloat16 the float32 result rounded once.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from . import _core

try:
    from . import _cuda
    _IMPORT_ERROR = None
except ImportError as _e:  # a CPU-only build (no nvcc when it was built)
    _cuda = None
    _IMPORT_ERROR = str(_e)

__all__ = ["is_built", "is_available", "device_count", "targets", "devices", "unavailable_reason",
           "DeviceArray", "to_device", "synchronize"]

# Storage dtypes: the compiled core's one table (csrc/kinds.h), by code.
_NAMES = {code: d["name"] for code, d in enumerate(_core._dtypes)}
_CODE = {name: code for code, name in _NAMES.items()}
_F32, _F64, _F16, _BF16 = (_CODE[n] for n in ("float32", "float64", "float16", "bfloat16"))
_MAX_PARAMS = _core.MAX_PARAMS
_ITEMSIZE = {code: d["itemsize"] for code, d in enumerate(_core._dtypes)}
_TYPESTR = {d["typestr"]: code for code, d in enumerate(_core._dtypes) if d["typestr"]}  # no bfloat16: DLPack only
_DLPACK = {code: tuple(d["dlpack"]) for code, d in enumerate(_core._dtypes)}
_DLPACK_CODE = {dl: code for code, dl in _DLPACK.items()}
_DTYPE_LIST = _core._dtype_list
_DL_CUDA, _DL_CUDA_MANAGED = 2, 13


def is_built() -> bool:
    """True if this fastact was built with its CUDA backend."""
    return _cuda is not None


def device_count() -> int:
    """Number of CUDA devices usable here (0 without a CUDA build, a driver or a GPU)."""
    return _cuda.device_count() if _cuda is not None else 0


def is_available() -> bool:
    """True if GPU arrays can be processed here: a CUDA build, a driver and at least one GPU."""
    return device_count() > 0


def unavailable_reason() -> str | None:
    """Why GPU arrays cannot be processed here, or None when they can."""
    if _cuda is None:
        return "this fastact build has no CUDA backend (no CUDA toolkit when it was built)"
    reason = _cuda.unavailable_reason()
    return None if reason is None else f"no usable GPU here ({reason})"


def targets() -> list[str]:
    """The GPU architectures this build carries code for (SASS ``sm_XX``, PTX ``compute_XX``)."""
    return _cuda.targets() if _cuda is not None else []


def devices() -> list[dict[str, Any]]:
    """One dict per visible GPU: name, capability, multiprocessors, memory (bytes)."""
    return [_cuda.device_info(i) for i in range(device_count())]


def _require(fn: str, obj=None, name: str = ""):
    reason = unavailable_reason()
    if reason is not None:
        what = f"{name} is a GPU array ({type(obj).__module__}.{type(obj).__name__})" if name else "got GPU arrays"
        raise RuntimeError(f"fastact.{fn}: {what}, but {reason}")


# ------------------------------------------------------------------------------------------ streams
def _stream_handle(stream, fn: str):
    """A cudaStream_t as an int from stream= (None stays None)."""
    if stream is None:
        return None
    if isinstance(stream, bool):
        raise TypeError(f"fastact.{fn}: stream must be a CUDA stream, got bool")
    if isinstance(stream, int):
        if stream < 0:
            raise ValueError(f"fastact.{fn}: stream must be a non-negative cudaStream_t handle, got {stream}")
        return stream
    if hasattr(stream, "__cuda_stream__"):
        return int(stream.__cuda_stream__()[1])
    for attr in ("cuda_stream", "ptr"):  # torch.cuda.Stream, cupy.cuda.Stream
        h = getattr(stream, attr, None)
        if isinstance(h, int):
            return h
    raise TypeError(f"fastact.{fn}: stream must be an int cudaStream_t, a CuPy or PyTorch stream, or an object "
                    f"with __cuda_stream__; got {type(stream).__name__}")


_LIBRARY = {}  # type -> its top-level module name (asked on every GPU call)


def _library(obj):
    t = type(obj)
    lib = _LIBRARY.get(t)
    if lib is None:
        lib = _LIBRARY[t] = (t.__module__ or "").split(".", 1)[0]
    return lib


def _current_stream(obj, device: int) -> int:
    """The producer's current stream for obj (CuPy, PyTorch), else None."""
    lib = _library(obj)
    if lib == "cupy":
        import cupy

        with cupy.cuda.Device(device):
            return int(cupy.cuda.get_current_stream().ptr)
    if lib == "torch":
        import torch

        raw = getattr(torch._C, "_cuda_getCurrentRawStream", None)  # what torch's own kernels launch on
        if raw is not None:
            return int(raw(device))
        return int(torch.cuda.current_stream(obj.device).cuda_stream)
    return None


# ------------------------------------------------------------------------------------ GPU arguments
def _cai(obj):
    try:
        return obj.__cuda_array_interface__
    except (AttributeError, TypeError):  # torch raises TypeError for dtypes CAI cannot name (bfloat16)
        return None


def on_gpu(obj: object) -> bool:
    """True if obj is a GPU array (CUDA array interface or a CUDA DLPack device)."""
    if obj is None or isinstance(obj, np.ndarray):
        return False
    if isinstance(obj, DeviceArray):
        return True
    if _is_torch(obj):
        return bool(obj.is_cuda)
    if _cai(obj) is not None:
        return True
    dev = getattr(obj, "__dlpack_device__", None)
    if dev is None:
        return False
    try:
        return int(dev()[0]) in (_DL_CUDA, _DL_CUDA_MANAGED)
    except Exception:
        return False


_IS_TORCH = {}  # type -> whether it is a PyTorch tensor type (asked several times per GPU call)


def _is_torch(obj) -> bool:
    """A PyTorch tensor (or subclass): read through its own attributes, the cheapest way in."""
    t = type(obj)
    r = _IS_TORCH.get(t)
    if r is None:
        r = _IS_TORCH[t] = _library(obj) == "torch" and all(
            hasattr(t, a) for a in ("is_cuda", "data_ptr", "stride", "get_device", "requires_grad"))
    return r


_TORCH_CODES = {}


def _torch_code(dtype):
    if not _TORCH_CODES:
        import torch

        _TORCH_CODES.update({getattr(torch, name): code for code, name in _NAMES.items()})
    return _TORCH_CODES.get(dtype)


class _Arg:
    """One GPU argument, described: pointer, shape, element strides, dtype code, device. keep holds what
    must outlive the call (an imported DLPack tensor's owner, whose release runs the producer's deleter)."""

    __slots__ = ("obj", "ptr", "shape", "strides", "code", "device", "readonly", "keep", "cai_stream")

    def extent(self):
        lo = hi = self.ptr
        size = _ITEMSIZE[self.code]
        for n, s in zip(self.shape, self.strides):
            if n == 0:
                return lo, lo
            span = (n - 1) * s * size
            if span < 0:
                lo += span
            else:
                hi += span
        return lo, hi + size


def _c_strides(shape):
    st, acc = [], 1
    for n in reversed(shape):
        st.append(acc)
        acc *= max(int(n), 1)
    return list(reversed(st))


def _from_cai(obj, cai, fn, name) -> _Arg:
    a = _Arg()
    a.obj, a.keep = obj, None
    if cai.get("mask") is not None:
        raise ValueError(f"fastact.{fn}: {name} has a __cuda_array_interface__ mask; masked arrays are not supported")
    typestr = cai["typestr"]
    if typestr[0] == ">" or typestr[1:] not in _TYPESTR:
        raise TypeError(f"fastact.{fn}: {name} has type {typestr!r}; expected {_DTYPE_LIST} "
                        "(little-endian; bfloat16 through DLPack)")
    a.code = _TYPESTR[typestr[1:]]
    a.ptr, a.readonly = int(cai["data"][0]), bool(cai["data"][1])
    a.shape = tuple(int(n) for n in cai["shape"])
    size = _ITEMSIZE[a.code]
    if cai.get("strides") is None:
        a.strides = _c_strides(a.shape)
    else:
        if any(s % size for s in cai["strides"]):
            raise ValueError(f"fastact.{fn}: {name} has strides that are not whole elements")
        a.strides = [int(s) // size for s in cai["strides"]]
    a.cai_stream = cai.get("stream") if cai.get("version", 0) >= 3 else None
    a.device = None
    return a


def _from_dlpack(obj, fn, name, stream) -> _Arg:
    dl_stream = 1 if stream == 0 else stream  # DLPack: 1 names the legacy default stream; 0 is not allowed
    # the one DLPack import path (the CPU's too): checked, 64-bit strides, legacy capsules read-only, an
    # out= never a copy
    owner, ptr, shape, strides, (code, bits, lanes), (dev_type, dev_id), readonly = _cuda.dlpack_import(
        obj, f"fastact.{fn}: {name}", dl_stream, name == "out")
    if dev_type not in (_DL_CUDA, _DL_CUDA_MANAGED):
        raise ValueError(f"fastact.{fn}: {name} is not on a CUDA device (DLPack device type {dev_type})")
    if lanes != 1 or (code, bits) not in _DLPACK_CODE:
        raise TypeError(f"fastact.{fn}: {name} has DLPack dtype (code {code}, {bits} bits); expected {_DTYPE_LIST}")
    a = _Arg()
    a.obj, a.keep = obj, owner
    a.code, a.ptr, a.readonly = _DLPACK_CODE[(code, bits)], int(ptr), bool(readonly)
    a.shape = tuple(int(n) for n in shape)
    a.strides = list(strides)
    a.device, a.cai_stream = int(dev_id), None
    return a


def _from_torch(t, fn, name) -> _Arg:
    code = _torch_code(t.dtype)
    if code is None:
        raise TypeError(f"fastact.{fn}: {name} has dtype {t.dtype}; expected {_DTYPE_LIST}")
    if t.requires_grad:
        raise ValueError(f"fastact.{fn}: {name} requires grad, and fastact records no autograd history; "
                         f"pass {name}.detach()")
    a = _Arg()
    a.obj, a.keep, a.code, a.ptr, a.readonly = t, None, code, int(t.data_ptr()), False
    a.shape = tuple(t.shape)
    a.strides = list(t.stride())
    a.device, a.cai_stream = int(t.get_device()), None
    return a


def _describe(obj, name, fn, stream) -> _Arg:
    if isinstance(obj, DeviceArray):
        return obj._arg()
    if _is_torch(obj):
        return _from_torch(obj, fn, name)
    cai = _cai(obj)
    # a type CAI cannot name (bfloat16 exported as typestr '<V2') is read through DLPack when the object has it
    unnamed = cai is not None and str(cai.get("typestr", ""))[1:] not in _TYPESTR
    if cai is not None and not (unnamed and hasattr(obj, "__dlpack__")):
        return _from_cai(obj, cai, fn, name)
    return _from_dlpack(obj, fn, name, 0 if stream is None else stream)


def _device_hint(obj) -> int:
    """The device of a GPU array, without exporting it."""
    if _is_torch(obj):
        return int(obj.get_device())
    dev = getattr(obj, "__dlpack_device__", None)
    if dev is not None:
        try:
            t, i = dev()
            if int(t) in (_DL_CUDA, _DL_CUDA_MANAGED):
                return int(i)
        except Exception:
            pass
    cai = _cai(obj)
    ptr = int(cai["data"][0]) if cai is not None else 0
    return _cuda.pointer_device(ptr) if ptr else 0


def _device_of(obj, arg: _Arg) -> int:
    return arg.device if arg.device is not None else _device_hint(obj)


# ----------------------------------------------------------------------------------------- calls
class _Call:
    """The arguments of one GPU call, described: inputs (objs, names), and either out= or several outputs
    (outs: (obj or None, name) pairs); on one device and stream. plan() checks them as the CPU does."""

    def __init__(self, fn, objs, names, out, stream, outs=None):
        present = [(o, n) for o, n in zip(objs, names) if o is not None]
        n_in = len(present)
        out_slots = outs if outs is not None else [(out, "out")]
        present += [(o, n) for o, n in out_slots if o is not None]
        gpu = [on_gpu(o) for o, _ in present]
        if not all(gpu):
            cpu = [n for (o, n), g in zip(present, gpu) if not g]
            raise ValueError(f"fastact.{fn}: {', '.join(cpu)} {'is' if len(cpu) == 1 else 'are'} on the CPU but the "
                             "other arguments are GPU arrays; pass arrays of one device")
        _require(fn, *present[0])
        self.fn = fn
        first = present[0][0]
        self.device = _device_hint(first)
        self.stream = _stream_handle(stream, fn)
        if self.stream is None:
            self.stream = _current_stream(first, self.device)
        args = [_describe(o, n, fn, self.stream) for o, n in present]
        if self.stream is None:  # a plain CAI producer: run on its stream; else the default stream
            s = args[0].cai_stream
            self.stream = s if isinstance(s, int) else 0
        for (o, n), a in zip(present, args):
            a.device = _device_of(o, a)
            if a.device != self.device:
                raise ValueError(f"fastact.{fn}: {n} is on GPU {a.device} but {present[0][1]} is on GPU "
                                 f"{self.device}; pass arrays of one device")
        for a in args:  # CAI v3: the consumer waits for the producer's stream
            if isinstance(a.cai_stream, int) and a.cai_stream != self.stream:
                _cuda.stream_wait(a.cai_stream, self.stream, self.device)
        self.first = first
        self.args = args[:n_in]
        described = iter(args[n_in:])
        self.outs = [next(described) if o is not None else None for o, _ in out_slots]  # None: not given
        self.out = self.outs[0] if outs is None else None
        self.names = [n for _, n in present[:n_in]]
        self.slot_names = [n for _, n in out_slots]
        self.code = self.args[0].code
        self.shape = self.args[0].shape

    def plan(self, kind, op, direction, params, ins, axis=None):
        """The call's checks (dtypes, shapes, axes, parameters): the CPU's, in the compiled core. ins: the
        kernel's inputs in the core's order, each an index into self.args, a (name, code, shape) or None."""
        spec = [None if i is None else i if isinstance(i, tuple) else (self.names[i], self.args[i].code,
                                                                      self.args[i].shape) for i in ins]
        outs = [None if o is None else (n, o.code, o.shape) for o, n in zip(self.outs, self.slot_names)]
        plan = _core._plan(kind, op, direction, params, spec, outs, axis)
        for o, n in zip(self.outs, self.slot_names):  # after dtype and shape, as the CPU's order has it
            if o is None:
                continue
            _check_writable(self.fn, o, n)
        return plan

    def _new(self, shape=None):
        """A fresh result (of the first input's shape, or shape) in the input's library where it can hold it,
        else a DeviceArray."""
        shape = self.shape if shape is None else tuple(shape)
        lib = _library(self.first)
        dtype = _dtype(self.code)
        if lib == "cupy" and self.code != _BF16:
            import cupy

            with cupy.cuda.Device(self.device):
                return cupy.empty(shape, dtype=dtype)
        if lib == "torch":
            import torch

            return torch.empty(shape, dtype=self.first.dtype, device=self.first.device)
        return DeviceArray(shape, dtype, device=self.device, stream=self.stream)

    def run(self, launch):
        """launch(dst_arg) queues the kernel; returns out (as given) or the new result."""
        if self.out is None:
            result = self._new()
            launch(_describe(result, "out", self.fn, self.stream))
            _mark(result, self.stream)
            return result
        dst = self.out
        if any(_overlaps_differently(dst, a) for a in self.args):
            tmp = DeviceArray(self.shape, _dtype(self.code), device=self.device, stream=self.stream)
            t = tmp._arg()
            launch(t)
            _cuda.copy(_ITEMSIZE[self.code], list(self.shape), (dst.ptr, dst.strides), (t.ptr, t.strides),
                       self.stream, self.device)
        else:
            launch(dst)
        _written(self.out.obj, self.stream)
        return self.out.obj


def _check_writable(fn, o: _Arg, name: str):
    """An output's checks beyond dtype and shape: writable, and no two elements in one place."""
    if o.readonly:
        raise ValueError(f"fastact.{fn}: {name} is read-only")
    if _core._has_internal_overlap(list(o.shape), list(o.strides)):
        raise ValueError(f"fastact.{fn}: {name} has elements that share memory (a broadcast or overlapping view), so "
                         "what it would hold depends on the order of the writes; pass an array whose elements are "
                         "distinct")


def _written(obj, stream):
    """After a launch wrote into obj (given as out=): autograd sees the write, a DeviceArray its stream."""
    if _is_torch(obj):
        import torch

        torch.autograd.graph.increment_version(obj)
    _mark(obj, stream)


def _overlaps_differently(out: _Arg, a: _Arg) -> bool:
    """Whether out shares memory with a other than as its very same elements (in place is safe)."""
    olo, ohi = out.extent()
    ilo, ihi = a.extent()
    if ohi <= ilo or ihi <= olo or olo == ohi or ilo == ihi:
        return False
    if out.ptr == a.ptr and out.shape == a.shape and all(
            n <= 1 or s == t for n, s, t in zip(out.shape, out.strides, a.strides)):
        return False  # in place
    isz = _ITEMSIZE[out.code]
    return _core._may_share_memory(out.ptr, list(out.shape), [s * isz for s in out.strides], a.ptr, list(a.shape),
                                   [s * isz for s in a.strides], isz)


def _mark(obj, stream):
    if isinstance(obj, DeviceArray):
        obj._stream = stream


def _pair(a):
    return None if a is None else (a.ptr, list(a.strides))


def _torch_fast(fn, a, b, out, stream):
    """The common PyTorch call -- CUDA tensors of one dtype, shape and device, no out=, no stream=, no grad --
    as (code, device, stream, new result); None sends the call down the general path (which also names
    every error)."""
    if out is not None or stream is not None or not _is_torch(a) or not a.is_cuda or a.requires_grad:
        return None
    code = _torch_code(a.dtype)
    if code is None:
        return None
    _require(fn, a, "grad_output" if b is not None else "x")
    dev = a.get_device()
    if b is not None and not (_is_torch(b) and b.is_cuda and not b.requires_grad and b.dtype == a.dtype
                              and b.shape == a.shape and b.get_device() == dev):
        return None
    import torch

    return code, dev, _current_stream(a, dev), torch.empty(a.shape, dtype=a.dtype, device=a.device)


def elementwise(op, direction, fn, a, b, out, params, stream):
    """Runs registry op `op` in `direction` on GPU arrays (called by the generated functions)."""
    fast = _torch_fast(fn, a, b if direction else None, out, stream)
    if fast is not None:
        code, dev, s, r = fast
        _core._check_params(op, direction, tuple(params[:_nparams(op)]), code)
        _cuda.elementwise(op, direction, code, list(a.shape), [(r.data_ptr(), list(r.stride()))],
                          [(a.data_ptr(), list(a.stride()))] + ([(b.data_ptr(), list(b.stride()))] if direction else []),
                          list(params), s, dev)
        return r
    names = ("grad_output" if direction else "x", "x" if direction == 1 else "y")
    call = _Call(fn, [a, b] if direction else [a], names[: 2 if direction else 1], out, stream)
    call.plan("elementwise", op, direction, tuple(params[:_nparams(op)]), [0, 1 if direction else None])
    b_arg = call.args[1] if direction else None

    def launch(dst):
        _cuda.elementwise(op, direction, call.code, list(call.shape), [_pair(dst)],
                          [_pair(call.args[0])] + ([_pair(b_arg)] if direction else []), list(params), call.stream,
                          call.device)

    return call.run(launch)


def _half(a: _Arg, axis: int, second: bool) -> _Arg:
    """The first or second half of a along axis, as an argument (a view: the same memory)."""
    h = _Arg()
    h.obj, h.keep, h.code, h.device, h.readonly, h.cai_stream = a.obj, a, a.code, a.device, a.readonly, None
    shape = list(a.shape)
    shape[axis] //= 2
    h.shape = tuple(shape)
    h.strides = list(a.strides)
    h.ptr = a.ptr + (shape[axis] * a.strides[axis] * _ITEMSIZE[a.code] if second else 0)
    return h


def _out_slots(fn, out, pair, names):
    """out= as (obj or None, name) slots: a tuple of two where the call has two outputs (pair), else one array."""
    if pair:
        if out is not None and not (isinstance(out, tuple) and len(out) == 2):
            raise TypeError(f"fastact.{fn}: out must be a tuple {names}, each an array or None, got "
                            f"{type(out).__name__}")
        return list(zip(out if out is not None else (None, None), ("out[0]", "out[1]")))
    if isinstance(out, tuple):
        raise TypeError(f"fastact.{fn}: out must be an array, got a tuple")
    return [(out, "out")]


def gated(op, direction, fn, x, up, grad, out, params, axis, stream):
    """The GLU family on GPU arrays: one array split along axis (up None) or two; forward, or the backward
    (direction 1) from grad_output. The same checks, forms and outputs as the CPU path (module.cpp gated)."""
    split = up is None
    in_objs = ([grad] if direction else []) + ([x] if split else [x, up])
    in_names = (["grad_output"] if direction else []) + (["x"] if split else ["gate", "up"])
    slots = _out_slots(fn, out, direction and not split, "(grad_gate, grad_up)")
    call = _Call(fn, in_objs, in_names, None, stream, outs=slots)
    xi = 1 if direction else 0  # in_objs: (grad_output,) x or (gate, up)
    ax, _ = call.plan("gated", op, direction, tuple(params[:_nparams(op)]),
                      [xi, None if split else xi + 1, 0 if direction else None], axis)
    xa = call.args[xi]
    a, b = (_half(xa, ax, False), _half(xa, ax, True)) if split else (xa, call.args[xi + 1])
    ins = [call.args[0], a, b] if direction else [a, b]
    # the outputs: (given or new) arrays, and the arguments the kernel writes (halves of grad_x, temporaries)
    results, dsts = [], []
    if direction and split:
        gx = call.outs[0]
        obj = gx.obj if gx is not None else call._new(xa.shape)
        gx = gx if gx is not None else _describe(obj, "out", fn, call.stream)
        results.append(obj)
        dsts = [_half(gx, ax, False), _half(gx, ax, True)]
    else:
        for o, (given, name) in zip(call.outs, slots):
            obj = o.obj if o is not None else call._new(a.shape)
            results.append(obj)
            dsts.append(o if o is not None else _describe(obj, name, fn, call.stream))
    if len(dsts) == 2 and not split and (dsts[0].ptr == dsts[1].ptr or _overlaps_differently(dsts[0], dsts[1])):
        raise ValueError(f"fastact.{fn}: out's two arrays share memory; pass two separate arrays")
    writes, copies = [], []
    for d in dsts:  # an output overlapping an input other than as its very same elements: a temporary
        if any(_overlaps_differently(d, i) for i in ins):
            tmp = DeviceArray(a.shape, _dtype(call.code), device=call.device, stream=call.stream)
            copies.append((d, tmp._arg()))
            writes.append(copies[-1][1])
        else:
            writes.append(d)
    _cuda.elementwise(op, direction, call.code, list(a.shape), [_pair(w) for w in writes], [_pair(i) for i in ins],
                      list(params), call.stream, call.device)
    for d, t in copies:
        _cuda.copy(_ITEMSIZE[call.code], list(a.shape), (d.ptr, d.strides), (t.ptr, t.strides), call.stream, call.device)
    for (given, _), r in zip(slots, results):
        if given is not None:
            _written(r, call.stream)
        else:
            _mark(r, call.stream)
    if direction and not split:
        return tuple(results)
    return results[0]


def _extents_meet(a: _Arg, b: _Arg) -> bool:
    """Whether two arguments' byte ranges meet (any shared byte possible)."""
    alo, ahi = a.extent()
    blo, bhi = b.extent()
    return alo < bhi and blo < ahi and alo != ahi and blo != bhi


def broadcast(op, direction, fn, grad, x, w, out, params, channel_axis, stream, wname):
    """An op with a broadcast operand (prelu's weight, bias_act's bias) on GPU arrays: forward, or the backward
    (direction 1) from grad_output to (grad_x, grad_w), grad_w summed in the CPU's order (the same bits).
    The same checks, forms and outputs as the CPU path (module.cpp broadcast, whose weight check this
    calls)."""
    number = isinstance(w, (int, float)) and not isinstance(w, bool)  # takes x's dtype, as on the CPU
    in_objs = ([grad] if direction else []) + [x] + ([] if number else [w])
    in_names = (["grad_output"] if direction else []) + ["x"] + ([] if number else [wname])
    slots = _out_slots(fn, out, direction, f"(grad_x, grad_{wname})")
    call = _Call(fn, in_objs, in_names, None, stream, outs=slots)
    xi = 1 if direction else 0  # in_objs: (grad_output,) x (weight)
    xa = call.args[xi]
    if number:  # a Python number takes x's dtype; checked as a 0-d array of it, then copied to the device
        with np.errstate(over="ignore"):  # refused below, as the CPU refuses it
            host = np.asarray(w, dtype=_dtype(xa.code))
        if np.isfinite(float(w)) and not np.isfinite(host.astype(np.float64)):
            raise ValueError(f"{fn}: {wname} {w!r} does not fit x's dtype {_NAMES[xa.code]}")  # the CPU's words
    w_spec = (wname, xa.code, ()) if number else len(call.args) - 1
    reduced_shape, dims = call.plan("broadcast", op, direction, tuple(params[:_nparams(op)]),
                                    [xi, w_spec, 0 if direction else None], channel_axis)
    wa = to_device(host, call.device, stream=call.stream)._arg() if number else call.args[-1]
    x_shaped = [call.args[0], xa] if direction else [xa]
    dy = call.args[0]

    def along_x(a):  # a weight-shaped argument's strides placed along x's dims
        st = [0] * len(xa.shape)
        for i, d in enumerate(dims):
            if d >= 0:
                st[d] = a.strides[i]
        return st

    results, dsts = [], []
    for o, (given, name), shape in zip(call.outs, slots, (xa.shape, wa.shape)):
        obj = o.obj if o is not None else call._new(shape)
        results.append(obj)
        dsts.append(o if o is not None else _describe(obj, name, fn, call.stream))
    if len(dsts) == 2 and _extents_meet(dsts[0], dsts[1]):
        raise ValueError(f"fastact.{fn}: out's two arrays share memory; pass two separate arrays")
    # an x-shaped output reaching an input other than as its very same elements, or the gradient of the
    # weight reaching anything but the weight itself (it is written once its sums are done): a temporary
    temps = [any(_overlaps_differently(dsts[0], a) for a in x_shaped) or _overlaps_differently(dsts[0], wa)]
    if direction:
        temps.append(_overlaps_differently(dsts[1], wa) or any(_extents_meet(dsts[1], a) for a in x_shaped))
    writes, copies = [], []
    for d, t in zip(dsts, temps):
        if t:
            tmp = DeviceArray(d.shape, _dtype(call.code), device=call.device, stream=call.stream)
            copies.append((d, tmp._arg()))
            writes.append(copies[-1][1])
        else:
            writes.append(d)
    shape, w_pair = list(xa.shape), (wa.ptr, along_x(wa))
    if direction:
        _cuda.reduce(op, call.code, shape, [_pair(writes[0])], [_pair(dy), _pair(xa), w_pair],
                     (writes[1].ptr, along_x(writes[1])), reduced_shape, list(params), call.stream, call.device)
    else:
        _cuda.elementwise(op, 0, call.code, shape, [_pair(writes[0])], [_pair(xa), w_pair], list(params), call.stream,
                          call.device)
    for d, t in copies:
        _cuda.copy(_ITEMSIZE[call.code], list(d.shape), (d.ptr, d.strides), (t.ptr, t.strides), call.stream,
                   call.device)
    for (given, _), r in zip(slots, results):
        if given is not None:
            _written(r, call.stream)
        else:
            _mark(r, call.stream)
    return tuple(results) if direction else results[0]


def rowwise(op, direction, fn, a, b, out, axis, stream):
    """Runs row op `op` (softmax family) along axis on GPU arrays."""
    fast = _torch_fast(fn, a, b if direction else None, out, stream)
    if fast is not None and -a.dim() <= axis < a.dim():
        code, dev, s, r = fast
        _cuda.rows(op, direction, code, list(a.shape), axis % a.dim(), (r.data_ptr(), list(r.stride())),
                   (a.data_ptr(), list(a.stride())), (b.data_ptr(), list(b.stride())) if direction else None, s, dev)
        return r
    names = ("grad_output", "y") if direction else ("x",)
    call = _Call(fn, [a, b] if direction else [a], names, out, stream)
    ax = call.plan("rows", op, direction, None, [0, 1 if direction else None], axis)
    b_arg = call.args[1] if direction else None

    def launch(dst):
        _cuda.rows(op, direction, call.code, list(call.shape), ax, _pair(dst), _pair(call.args[0]), _pair(b_arg),
                   call.stream, call.device)

    return call.run(launch)


_NPARAMS = {}


def _nparams(op: int) -> int:
    if not _NPARAMS:
        _NPARAMS.update({o["id"]: len(o["params"]) for o in _core.ops() if o["kind"] != "row"})
    return _NPARAMS[op]


# ------------------------------------------------------------------------------------- DeviceArray
def _dtype(code):
    if code == _BF16:
        try:
            import ml_dtypes

            return np.dtype(ml_dtypes.bfloat16)
        except ImportError:
            return "bfloat16"
    return np.dtype(_NAMES[code])


def _code_of(dtype) -> int:
    name = str(np.dtype(dtype)) if not isinstance(dtype, str) else dtype
    if name not in _CODE:
        raise TypeError(f"fastact.cuda: dtype {name} is not one of {_DTYPE_LIST}")
    return _CODE[name]


class DeviceArray:
    """A C-contiguous GPU array that fastact allocated (when the inputs' library cannot hold a result).

    It exports ``__cuda_array_interface__`` (v3; not for bfloat16, which that protocol cannot name) and
    ``__dlpack__`` / ``__dlpack_device__``, so CuPy, PyTorch and JAX take it without a copy, and it
    can be passed back to any fastact function. ``get()`` copies it to a NumPy array. Its memory is
    freed when the last reference (including any consumer's view) goes.
    """

    def __init__(self, shape: int | tuple[int, ...], dtype: Any, device: int = 0, *, stream: int = 0) -> None:
        if _cuda is None:
            raise RuntimeError(f"fastact.cuda.DeviceArray: {unavailable_reason()}")
        self._code = _code_of(dtype)
        self.shape = tuple(int(n) for n in (shape if isinstance(shape, (tuple, list)) else (shape,)))
        if any(n < 0 for n in self.shape):
            raise ValueError(f"fastact.cuda.DeviceArray: negative dimension in shape {self.shape}")
        self.device = int(device)
        self._stream = stream
        self._buf = _cuda.Buffer(self.nbytes, self.device)

    # -- description
    @property
    def dtype(self):
        return _dtype(self._code)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def itemsize(self) -> int:
        return _ITEMSIZE[self._code]

    @property
    def nbytes(self) -> int:
        return self.size * self.itemsize

    @property
    def strides(self) -> tuple:
        """Strides in bytes (C order), as NumPy and CuPy give them."""
        return tuple(s * self.itemsize for s in _c_strides(self.shape))

    @property
    def ptr(self) -> int:
        return self._buf.ptr

    def __len__(self):
        if not self.shape:
            raise TypeError("len() of a 0-d DeviceArray")
        return self.shape[0]

    def __repr__(self):
        return f"fastact.cuda.DeviceArray(shape={self.shape}, dtype={_NAMES[self._code]}, device={self.device})"

    def _arg(self) -> _Arg:
        a = _Arg()
        a.obj, a.keep, a.ptr, a.shape = self, None, self.ptr, self.shape
        a.strides, a.code, a.device, a.readonly, a.cai_stream = _c_strides(self.shape), self._code, self.device, False, None
        return a

    # -- protocols
    @property
    def __cuda_array_interface__(self):
        if self._code == _BF16:
            raise AttributeError("__cuda_array_interface__ cannot describe bfloat16; use DLPack")
        return {
            "shape": self.shape,
            "typestr": "<" + _core._dtypes[self._code]["typestr"],
            "data": (self.ptr, False),
            "strides": None,
            "version": 3,
            # v3: the stream the consumer must wait on (1 is the legacy default stream; 0 is not allowed)
            "stream": self._stream if self._stream not in (0, None) else 1,
        }

    def __dlpack_device__(self):
        return (_DL_CUDA, self.device)

    def __dlpack__(self, *, stream=None, max_version=None, dl_device=None, copy=None):
        if dl_device is not None and tuple(dl_device) != self.__dlpack_device__():
            raise BufferError("fastact.cuda.DeviceArray: cannot export to another device")
        if copy:
            raise BufferError("fastact.cuda.DeviceArray: export is zero-copy only")
        if stream != -1:  # -1: the consumer asks for no synchronisation; None: the legacy default stream
            consumer = 0 if stream in (None, 1) else int(stream)
            if consumer != self._stream:
                _cuda.stream_wait(self._stream, consumer, self.device)
        versioned = max_version is not None and tuple(max_version)[0] >= 1
        code, bits = _DLPACK[self._code]
        return _cuda.dlpack_export(self, self.ptr, list(self.shape), _c_strides(self.shape), code, bits, self.device,
                                   versioned, False)

    # -- host transfers
    def get(self) -> np.ndarray:
        """A NumPy copy (waits for the work queued on the array's stream)."""
        host = np.empty(self.shape, dtype=self.dtype)
        if self.nbytes:
            _cuda.memcpy(host.ctypes.data, self.ptr, self.nbytes, "dtoh", self._stream, self.device)
        return host


def to_device(a: Any, device: int = 0, stream: Any = None) -> DeviceArray:
    """A DeviceArray holding a copy of a host array (NumPy, lists; float32/64, float16, bfloat16)."""
    if _cuda is None or device_count() == 0:
        raise RuntimeError(f"fastact.cuda.to_device: {unavailable_reason()}")
    host = np.ascontiguousarray(a)
    if host.dtype.kind in "biu":
        host = host.astype(np.float64)
    s = _stream_handle(stream, "cuda.to_device") or 0
    d = DeviceArray(host.shape, host.dtype, device=device, stream=s)
    if d.nbytes:
        _cuda.memcpy(d.ptr, host.ctypes.data, d.nbytes, "htod", s, device)
    return d


def synchronize(stream: Any = None, device: int = 0) -> None:
    """Waits for the work queued on stream (default: the default stream) of device."""
    _require("cuda.synchronize")
    _cuda.synchronize(_stream_handle(stream, "cuda.synchronize") or 0, device)


# ------------------------------------------------------------------------------------------- losses
# The losses on GPU arrays (fastact/losses.py routes here and keeps its own argument checks): the kernels
# are the CPU's math in the CPU's order, so the results have the CPU's bits. Targets, class weights and
# grad_output of the row losses are read on the host (O(rows): each index is checked, none is read out of
# bounds on the GPU), so those calls synchronize with the logits' stream.


def to_host(obj, fn: str, name: str):
    """A NumPy copy of a GPU array of any dtype (a PyTorch or CuPy array, a DeviceArray, or any
    __cuda_array_interface__ / CUDA DLPack producer); anything else is returned as it is."""
    if not on_gpu(obj):
        return obj
    _require(fn, obj, name)
    if isinstance(obj, DeviceArray) and obj._code == _BF16:  # its values, exactly, in float32
        bits = np.empty(obj.shape, np.uint16)
        if bits.nbytes:
            _cuda.memcpy(bits.ctypes.data, obj.ptr, bits.nbytes, "dtoh", obj._stream, obj.device)
        return (bits.astype(np.uint32) << 16).view(np.float32)
    if isinstance(obj, DeviceArray) or _library(obj) == "cupy":
        return obj.get()
    if _is_torch(obj):
        t = obj.detach()
        if str(t.dtype) == "torch.bfloat16":  # NumPy has no bfloat16: its values, exactly, in float32
            t = t.float()
        return t.cpu().numpy()
    cai = _cai(obj)
    if cai is not None:
        dtype = np.dtype(cai["typestr"])
        shape = tuple(int(n) for n in cai["shape"])
        strides = cai.get("strides")
        strides = [s // dtype.itemsize for s in strides] if strides is not None else _c_strides(shape)
        ptr, device = int(cai["data"][0]), _device_hint(obj)
        s = cai.get("stream") if cai.get("version", 0) >= 3 else None
        if isinstance(s, int) and s != 0:  # the copy below runs on the default stream: after the producer's
            _cuda.stream_wait(s, 0, device)
        widen = False
    else:
        _, ptr, shape, strides, (code, bits, lanes), (_, device), _ = _cuda.dlpack_import(obj, f"fastact.{fn}: {name}", 1)
        kinds = {0: "i", 1: "u", 2: "f", 4: "u"}  # 4: bfloat16, read as its bits and widened
        if lanes != 1 or code not in kinds or (code == 4 and bits != 16):
            raise TypeError(f"fastact.{fn}: {name} has DLPack dtype (code {code}, {bits} bits); expected integers or "
                            "floats")
        dtype = np.dtype(f"{kinds[code]}{bits // 8}")
        widen = code == 4
    size = dtype.itemsize
    lo = hi = 0
    for n, s in zip(shape, strides):
        if n == 0:
            return np.empty(shape, dtype)
        lo, hi = (lo + (n - 1) * s, hi) if s < 0 else (lo, hi + (n - 1) * s)
    buf = np.empty((hi - lo + 1) * size, np.uint8)
    _cuda.memcpy(buf.ctypes.data, ptr + lo * size, buf.nbytes, "dtoh", 0, device)
    a = np.ndarray(shape, dtype, buffer=buf, offset=-lo * size, strides=[s * size for s in strides]).copy()
    return (a.astype(np.uint32) << 16).view(np.float32) if widen else a


def _value_bits(values, code) -> np.ndarray:
    """Host values (float64) as the bytes of dtype code, each correctly rounded (bfloat16 through a float32
    rounded to odd, as losses._result rounds)."""
    from .losses import _odd_float32

    v = np.asarray(values, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        if code != _BF16:
            return v.astype(_NAMES[code])
        u = _odd_float32(v).view(np.uint32).astype(np.uint64)
        nan = np.isnan(v)
        return np.where(nan, (u >> 16) | 0x40, (u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def _filled(call, values, code) -> _Arg:
    """A new device array of dtype code holding values (a few host numbers: weights given as numbers)."""
    host = np.ascontiguousarray(_value_bits(values, code))
    d = DeviceArray(host.shape, _dtype(code), device=call.device, stream=call.stream)
    if d.nbytes:
        _cuda.memcpy(d.ptr, host.ctypes.data, d.nbytes, "htod", call.stream, call.device)
    return d._arg()


_ONES = {}  # (device, dtype code) -> a one-element DeviceArray holding 1: an absent weight, a scalar grad's splat


def _one(call, code) -> _Arg:
    key = (call.device, code)
    if key not in _ONES:
        _ONES[key] = _filled(call, [1.0], code).obj
    return _ONES[key]._arg()


def _possessive(name: str) -> str:
    return name + ("'" if name.endswith("s") else "'s")


def _broadcast_strides(a: _Arg, shape, fn, name, xname):
    """a's element strides broadcast to shape (NumPy's rules: 0 along the axes it is broadcast over)."""
    if len(a.shape) > len(shape) or any(n not in (1, m) for n, m in zip(a.shape[::-1], shape[::-1])):
        raise ValueError(f"fastact.{fn}: {name} has shape {a.shape}, which does not broadcast to {_possessive(xname)} shape "
                         f"{tuple(shape)}")
    pad = len(shape) - len(a.shape)
    return [0] * pad + [0 if n == 1 and m != 1 else s for n, m, s in zip(a.shape, shape[pad:], a.strides)]


def pointwise_loss(fn, op, summed, direction, reduction, scale_of, g_obj, operands, names, params, out, stream):
    """An element-wise loss (losses._pointwise, which checked reduction and grad_output) on GPU arrays:
    direction 0 the loss (reduction "none" element-wise; "mean" and "sum" a 0-d array summed in the CPU's
    order), 1 its gradient (g_obj the grad_output array for "none"; else None, and scale_of(size, code) the
    gradient's factor)."""
    xname = names[0]
    objs = ([g_obj] if g_obj is not None else []) + [o for o in operands if o is not None and not isinstance(
        o, (int, float))]
    onames = (["grad_output"] if g_obj is not None else []) + [n for o, n in zip(operands, names)
                                                              if o is not None and not isinstance(o, (int, float))]
    if isinstance(operands[0], (int, float)):
        raise TypeError(f"fastact.{fn}: {xname} must be an array")
    call = _Call(fn, objs, onames, out, stream)
    byname = dict(zip(onames, call.args))
    xa = byname[xname]
    code, shape = xa.code, list(xa.shape)
    _core._check_params(op, 1 if direction else 0, tuple(params), code)
    ins, keep = [], []  # keep: the arrays made here, alive until their launch is queued
    for o, n in zip(operands, names):
        if o is None:
            keep.append(_one(call, code))
            ins.append((keep[-1].ptr, [0] * len(shape)))
            continue
        if isinstance(o, (int, float)):  # a number takes x's dtype, as on the CPU (bool is refused there too)
            if isinstance(o, bool):
                raise TypeError(f"fastact.{fn}: {n} has dtype bool; expected {_possessive(xname)} dtype {_NAMES[code]}")
            bits = _value_bits([float(o)], code)
            back = (bits.astype(np.uint32) << 16).view(np.float32) if code == _BF16 else bits
            if np.isfinite(float(o)) and not np.isfinite(back.astype(np.float64)).all():
                raise ValueError(f"fastact.{fn}: {n} holds a value too large for {_possessive(xname)} dtype {_NAMES[code]}")
            a = _filled(call, [float(o)], code)
        else:
            a = byname[n]
        keep.append(a)
        if a.code != code:
            raise TypeError(f"fastact.{fn}: {n} has dtype {_NAMES[a.code]}; expected {_possessive(xname)} dtype {_NAMES[code]} "
                            "(pass arrays of one dtype)")
        if n == "target" and tuple(a.shape) != tuple(shape):
            raise ValueError(f"fastact.{fn}: target has shape {a.shape}; expected {_possessive(xname)} shape {tuple(shape)}")
        ins.append((a.ptr, _broadcast_strides(a, shape, fn, n, xname)))
    p = list(params) + [0.0] * (_MAX_PARAMS - len(params))
    if direction == 0 and reduction != "none":
        if out is not None:
            raise ValueError(f"fastact.{fn}: out= is for reduction='none' (the losses); 'mean' and 'sum' return a 0-d "
                             "array")
        result = call._new(())
        _cuda.total(summed, code, shape, ins, p, reduction == "mean", _describe(result, "out", fn, call.stream).ptr,
                    call.stream, call.device)
        _mark(result, call.stream)
        return result
    if direction == 1:
        if g_obj is not None:
            ga = byname["grad_output"]
            if ga.code != code:
                raise TypeError(f"fastact.{fn}: grad_output has dtype {_NAMES[ga.code]}; expected {_possessive(xname)} dtype "
                                f"{_NAMES[code]} (pass arrays of one dtype)")
            if tuple(ga.shape) != tuple(shape):
                raise ValueError(f"fastact.{fn}: grad_output has shape {ga.shape}; expected {_possessive(xname)} shape "
                                 f"{tuple(shape)} (reduction 'none')")
            ins.insert(0, (ga.ptr, list(ga.strides)))
            p[_MAX_PARAMS - 1] = 1.0
        else:
            keep.append(_one(call, code))
            ins.insert(0, (keep[-1].ptr, [0] * len(shape)))
            p[_MAX_PARAMS - 1] = scale_of(int(np.prod(shape, dtype=np.int64)), code)
    if call.out is not None:
        if call.out.code != code or tuple(call.out.shape) != tuple(shape):
            raise ValueError(f"fastact.{fn}: out must have the shape {tuple(shape)} and dtype {_NAMES[code]} of the "
                             f"input, got {call.out.shape} {_NAMES[call.out.code]}")
        _check_writable(fn, call.out, "out")

    def launch(dst):
        _cuda.elementwise(op, direction, code, shape, [_pair(dst)], ins, p, call.stream, call.device)

    call.shape = tuple(shape)
    call.code = code
    return call.run(launch)


def _moved(a: _Arg, axis: int):
    """a's shape and element strides with axis moved last (the rows the row losses take)."""
    shape, st = list(a.shape), list(a.strides)
    shape.append(shape.pop(axis))
    st.append(st.pop(axis))
    return shape, st


def _gpu_floats(obj) -> bool:
    """Whether obj is a GPU array of floating point numbers (a class-probability target, not indices)."""
    if not on_gpu(obj):
        return False
    if isinstance(obj, DeviceArray):
        return True
    if _is_torch(obj):
        return bool(obj.is_floating_point())
    cai = _cai(obj)
    if cai is not None:
        return str(cai.get("typestr", ""))[1:2] in ("f", "V")
    return hasattr(obj, "dtype") and (getattr(obj.dtype, "kind", "") == "f" or "float" in str(obj.dtype))


def _like_dtype(code):
    """A NumPy dtype standing for code in losses.py's checks (float32 for bfloat16 where NumPy has none)."""
    return _dtype(code) if code != _BF16 else np.dtype(np.float32)


def class_loss(fn, nll, direction, logits, target, name, out, prepare, grad_of):
    """cross_entropy / nll_loss (direction 0) or their gradient (1) on GPU arrays, with class indices (read on
    the host) or class probabilities (a GPU array of the logits' shape and dtype, read on the GPU; a host one
    is copied there). prepare(like, target_like) runs losses.py's checks on stand-ins of the logits' (and a
    GPU probability target's) shape and dtype, which hold no memory, and gives (axis, targets, reduction,
    label_smoothing, z_loss); grad_of(rows_shape, reduction) gives grad_output on the host."""
    soft = not nll and _gpu_floats(target)
    call = _Call(fn, [logits, target] if soft else [logits], [name, "target"] if soft else [name],
                 out if direction else None, None)
    xa = call.args[0]
    like = np.broadcast_to(np.empty((), _like_dtype(xa.code)), xa.shape)
    target_like = np.broadcast_to(np.empty((), _like_dtype(call.args[1].code)), call.args[1].shape) if soft else None
    axis, tg, reduction, eps, z = prepare(like, target_like)
    shape, st = _moved(xa, axis)
    code = ("mean", "sum", "none").index(reduction)
    pa = None
    if tg.probs is not None:
        pa = call.args[1] if soft else to_device(tg.probs, call.device, stream=call.stream)._arg()
        _, pst = _moved(pa, axis)
    if direction == 0:
        result = call._new(tg.rows_shape if reduction == "none" else ())
        dst = _describe(result, "out", fn, call.stream).ptr
        if pa is not None:
            _cuda.cross_entropy_probs(xa.code, shape, (xa.ptr, st), (pa.ptr, pst), tg.w, code, eps, z, dst, call.stream,
                                      call.device)
        else:
            _cuda.cross_entropy(xa.code, shape, (xa.ptr, st), tg.t, tg.w, code, eps, z, nll, dst, call.stream,
                                call.device)
        _mark(result, call.stream)
        return result
    g = grad_of(tg.rows_shape, reduction)
    result, dst = _gradient_out(call, xa, fn)
    if out is not None and _overlaps_differently(dst, xa):
        raise ValueError(f"fastact.{fn}: out overlaps {name} without being {name}")
    if pa is not None and _extents_meet(dst, pa):
        raise ValueError(f"fastact.{fn}: out overlaps target (the probabilities are read for every row)")
    _, ost = _moved(dst, axis)
    if pa is not None:
        _cuda.cross_entropy_probs_backward(g, xa.code, shape, (xa.ptr, st), (pa.ptr, pst), tg.w, code, eps, z,
                                           (dst.ptr, ost), call.stream, call.device)
    else:
        _cuda.cross_entropy_backward(g, xa.code, shape, (xa.ptr, st), tg.t, tg.w, code, eps, z, (dst.ptr, ost), nll,
                                     call.stream, call.device)
    (_written if out is not None else _mark)(result, call.stream)
    return result


def _gradient_out(call, xa: _Arg, fn):
    """A row loss gradient's destination: out= (checked: x's shape and dtype, writable) or a new array, as
    (the array returned, its argument)."""
    dst = call.out
    if dst is None:
        result = call._new()
        return result, _describe(result, "out", fn, call.stream)
    if dst.code != xa.code or tuple(dst.shape) != tuple(xa.shape):
        raise ValueError(f"fastact.{fn}: out must have the shape {xa.shape} and dtype {_NAMES[xa.code]} of the "
                         f"input, got {dst.shape} {_NAMES[dst.code]}")
    _check_writable(fn, dst, "out")
    return dst.obj, dst


def _merged_rows(a: _Arg, kept, axes):
    """a's rows (kept dims, then the reduced axes merged into one) as (shape, strides), or None where the
    reduced axes do not merge in memory."""
    shape = [a.shape[i] for i in kept]
    st = [a.strides[i] for i in kept]
    red = [(a.shape[i], a.strides[i]) for i in axes if a.shape[i] != 1]
    n = 1
    for m, _ in red:
        n *= m
    for (m0, s0), (m1, s1) in zip(red, red[1:]):
        if s0 != s1 * m1:
            return None
    return shape + [n], st + [red[-1][1] if red else 1]


def _contiguous_copy(call, a: _Arg, order) -> _Arg:
    """A C-contiguous copy of a with its axes in `order` (a DeviceArray, on the call's stream)."""
    shape = [a.shape[i] for i in order]
    tmp = DeviceArray(shape, _dtype(a.code), device=call.device, stream=call.stream)
    t = tmp._arg()
    _cuda.copy(_ITEMSIZE[a.code], shape, (t.ptr, t.strides), (a.ptr, [a.strides[i] for i in order]), call.stream,
               call.device)
    t.keep = tmp
    return t


def logsumexp(fn, x, axes, keepdims, grad, out):
    """logsumexp over axes (sorted, checked by losses.py) on a GPU array, or its gradient (grad: the host
    grad_output, one per kept element) into out or a new array."""
    call = _Call(fn, [x], ["x"], out if grad is not None else None, None)
    xa = call.args[0]
    kept = [i for i in range(len(xa.shape)) if i not in axes]
    rows = _merged_rows(xa, kept, axes)
    src = xa
    if rows is None:  # the reduced axes do not merge: read through one contiguous copy
        src = _contiguous_copy(call, xa, kept + list(axes))
        rows = _merged_rows(src, list(range(len(kept))), list(range(len(kept), len(xa.shape))))
    kept_shape = tuple(xa.shape[i] for i in kept)
    if grad is None:
        shape = tuple(xa.shape[i] if i not in axes else 1 for i in range(len(xa.shape))) if keepdims else kept_shape
        result = call._new(shape)
        _cuda.logsumexp(xa.code, rows[0], (src.ptr, rows[1]), _describe(result, "out", fn, call.stream).ptr,
                        call.stream, call.device)
        _mark(result, call.stream)
        return result
    coef = np.zeros((int(np.prod(kept_shape, dtype=np.int64)), 4))
    coef[:, 0] = grad.reshape(-1)
    result, dst = _gradient_out(call, xa, fn)
    orows = _merged_rows(dst, kept, axes)
    if orows is None or src is not xa or _overlaps_differently(dst, xa):  # through a contiguous buffer, copied to out
        t = DeviceArray([xa.shape[i] for i in kept + list(axes)], _dtype(xa.code), device=call.device,
                        stream=call.stream)
        ta = t._arg()
        trows = _merged_rows(ta, list(range(len(kept))), list(range(len(kept), len(xa.shape))))
        _cuda.loss_grad(xa.code, rows[0], (src.ptr, rows[1]), coef, (ta.ptr, trows[1]), call.stream, call.device)
        inverse = np.argsort(kept + list(axes))
        _cuda.copy(_ITEMSIZE[xa.code], list(xa.shape), (dst.ptr, list(dst.strides)),
                   (ta.ptr, [ta.strides[i] for i in inverse]), call.stream, call.device)
    else:
        _cuda.loss_grad(xa.code, rows[0], (src.ptr, rows[1]), coef, (dst.ptr, orows[1]), call.stream, call.device)
    (_written if out is not None else _mark)(result, call.stream)
    return result
