"""A DLPack producer built with ctypes, for tests that need what real producers rarely send: no strides
(C order implied), legacy (unversioned) capsules, read-only flags, odd dtypes, byte offsets, and a way to
see that the producer's deleter runs once."""
from __future__ import annotations

import ctypes

import numpy as np

c_int64_p = ctypes.POINTER(ctypes.c_int64)


class DLDevice(ctypes.Structure):
    _fields_ = [("device_type", ctypes.c_int32), ("device_id", ctypes.c_int32)]


class DLDataType(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]


class DLTensor(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("device", DLDevice), ("ndim", ctypes.c_int32), ("dtype", DLDataType),
                ("shape", c_int64_p), ("strides", c_int64_p), ("byte_offset", ctypes.c_uint64)]


_DELETER = ctypes.CFUNCTYPE(None, ctypes.c_void_p)


class DLManagedTensor(ctypes.Structure):
    _fields_ = [("dl_tensor", DLTensor), ("manager_ctx", ctypes.c_void_p), ("deleter", _DELETER)]


class DLManagedTensorVersioned(ctypes.Structure):
    _fields_ = [("major", ctypes.c_uint32), ("minor", ctypes.c_uint32), ("manager_ctx", ctypes.c_void_p),
                ("deleter", _DELETER), ("flags", ctypes.c_uint64), ("dl_tensor", DLTensor)]


_capsule_new = ctypes.pythonapi.PyCapsule_New
_capsule_new.restype = ctypes.py_object
_capsule_new.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]
# not through ctypes.pythonapi: that checks for a Python error after each call, and a capsule destructor
# may run while one is being raised (the consumer refused the tensor)
_capsule_valid = ctypes.CDLL(None).PyCapsule_IsValid
_capsule_valid.restype = ctypes.c_int
_capsule_valid.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
_CAPSULE_DESTRUCTOR = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
_NAMES = {False: b"dltensor", True: b"dltensor_versioned"}

KINDS = {"float32": (2, 32), "float64": (2, 64), "float16": (2, 16), "bfloat16": (4, 16), "int32": (0, 32)}


class Producer:
    """Exports `buf` (a NumPy array whose memory is used) as a tensor of `shape` and `dtype`, element
    `strides` (None: the producer sends NULL), on `device` (1 = CPU). `versioned`: a DLPack >= 1.0 capsule;
    `read_only`, `copied`: its flags. `deleted` counts the deleter's calls."""

    def __init__(self, buf, shape, dtype="float32", strides=None, versioned=True, read_only=False, device=1,
                 byte_offset=0, lanes=1, major=1, copied=False, null_data=False):
        self.buf, self.shape, self.strides = buf, tuple(shape), strides
        self.dtype, self.versioned, self.read_only, self.device = dtype, versioned, read_only, device
        self.byte_offset, self.lanes, self.major = byte_offset, lanes, major
        self.copied, self.null_data = copied, null_data  # the IS_COPIED flag; a NULL data pointer
        self.deleted = 0
        self._keep = []

    def __dlpack_device__(self):
        return (self.device, 0)

    def __dlpack__(self, stream=None, max_version=None, **kwargs):
        versioned = self.versioned and max_version is not None and tuple(max_version)[0] >= 1
        shape = (ctypes.c_int64 * max(len(self.shape), 1))(*self.shape)
        strides = None if self.strides is None else (ctypes.c_int64 * max(len(self.strides), 1))(*self.strides)
        code, bits = KINDS[self.dtype]

        def deleter(_):
            self.deleted += 1

        cb = _DELETER(deleter)
        t = DLTensor(None if self.null_data else self.buf.ctypes.data, DLDevice(self.device, 0), len(self.shape), DLDataType(code, bits, self.lanes),
                     ctypes.cast(shape, c_int64_p), ctypes.cast(strides, c_int64_p) if strides is not None else None,
                     self.byte_offset)
        if versioned:
            m = DLManagedTensorVersioned(self.major, 0, None, cb, (1 if self.read_only else 0) | (2 if self.copied else 0), t)
        else:
            m = DLManagedTensor(t, None, cb)
        name = _NAMES[versioned]

        def capsule_destructor(cap):  # as real producers do: an unconsumed capsule releases its tensor
            if _capsule_valid(cap, name):
                deleter(None)

        cd = _CAPSULE_DESTRUCTOR(capsule_destructor)
        self._keep += [shape, strides, cb, m, cd]
        return _capsule_new(ctypes.addressof(m), name, ctypes.cast(cd, ctypes.c_void_p))


def bf16_bits(x) -> np.ndarray:
    """float32 values as bfloat16 bit patterns (truncated: exact for the values the tests use)."""
    return (np.asarray(x, np.float32).view(np.uint32) >> 16).astype(np.uint16)
