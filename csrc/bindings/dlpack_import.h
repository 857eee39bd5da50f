// The one DLPack import path, for the CPU module and the CUDA module alike: a producer's capsule,
// checked, as 64-bit shape and element strides. A capsule from before DLPack 1.0 cannot say whether its
// memory may be written, so its tensor counts as read-only (as NumPy's from_dlpack has it): fastact never
// writes where it was not told it may.
#pragma once
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>
#include <vector>

#include "../layout.h"
#include "dlpack.h"

namespace fastact::dlpack {

struct Imported {
  pybind11::capsule owner;  // runs the producer's deleter when the last holder lets it go
  char* data = nullptr;     // the first element (byte_offset applied)
  int device_type = 0, device_id = 0;
  DLDataType dtype{};
  // strides in elements; C order when the producer sent none; 0 along dimensions of one element or none
  // (where a producer may put anything: PyTorch's empty_strided takes 2^62)
  std::vector<std::int64_t> shape, strides;
  bool read_only = true;
  bool copied = false;  // the producer says it exported a copy: writing it would change nothing it holds
};
constexpr std::uint64_t kFlagIsCopied = 2;

// what: the argument as messages name it ("fastact.relu: x"). Errors: TypeError (not a capsule, a used
// one, a dtype with lanes), ValueError (a layout that cannot be described). The capsule is marked used
// only once everything is checked; until then the producer's own capsule destructor still owns it.
inline Imported import_capsule(pybind11::handle cap, const std::string& what) {
  namespace py = pybind11;
  if (!PyCapsule_CheckExact(cap.ptr()))
    throw py::type_error(what + ": __dlpack__() returned " + std::string(py::str(py::type::of(cap).attr("__name__"))) +
                         ", not a DLPack capsule");
  const char* name = PyCapsule_GetName(cap.ptr());
  const std::string n = name ? name : "";
  const bool versioned = n == "dltensor_versioned";
  if (!versioned && n != "dltensor")
    throw py::type_error(what + ": __dlpack__() returned a capsule named '" + n +
                         "', not an unused DLPack tensor ('dltensor' or 'dltensor_versioned')");
  void* raw = PyCapsule_GetPointer(cap.ptr(), n.c_str());
  if (!raw) throw py::error_already_set();
  if (versioned && static_cast<DLManagedTensorVersioned*>(raw)->major != 1)
    throw py::type_error(what + ": DLPack major version " +
                         std::to_string(static_cast<DLManagedTensorVersioned*>(raw)->major) + " is not supported (1 is)");
  const DLTensor& t = versioned ? static_cast<DLManagedTensorVersioned*>(raw)->dl_tensor
                                : static_cast<DLManagedTensor*>(raw)->dl_tensor;
  Imported r;
  r.read_only = versioned ? (static_cast<DLManagedTensorVersioned*>(raw)->flags & kFlagReadOnly) != 0 : true;
  r.copied = versioned && (static_cast<DLManagedTensorVersioned*>(raw)->flags & kFlagIsCopied) != 0;
  if (t.ndim < 0 || t.ndim > layout::kMaxDims)
    throw py::value_error(what + ": a DLPack tensor of " + std::to_string(t.ndim) + " dimensions (at most " +
                          std::to_string(layout::kMaxDims) + ")");
  if (t.ndim > 0 && !t.shape) throw py::value_error(what + ": a DLPack tensor without a shape");
  if (t.dtype.lanes != 1)
    throw py::type_error(what + ": a DLPack dtype with " + std::to_string(t.dtype.lanes) + " lanes (vector types are not supported)");
  r.shape.assign(t.shape, t.shape + t.ndim);
  for (std::int64_t s : r.shape)
    if (s < 0) throw py::value_error(what + ": a DLPack tensor with a negative dimension");
  r.strides.resize(std::size_t(t.ndim));
  std::int64_t step = 1;  // C order, in 64 bits: a dimension of 2^31 elements is nothing unusual
  bool empty = false;
  for (int i = t.ndim - 1; i >= 0; --i) {
    const std::int64_t n = r.shape[std::size_t(i)];
    r.strides[std::size_t(i)] = n <= 1 ? 0 : t.strides ? t.strides[i] : step;
    empty = empty || n == 0;
    if (__builtin_mul_overflow(step, n > 0 ? n : 1, &step))
      throw py::value_error(what + ": a DLPack tensor with more elements than 64 bits can count");
  }
  if (!t.data && !empty) throw py::value_error(what + ": a DLPack tensor with elements but no data pointer");
  r.data = static_cast<char*>(t.data) + t.byte_offset;
  r.device_type = t.device.device_type;
  r.device_id = t.device.device_id;
  r.dtype = t.dtype;
  r.owner = py::capsule(raw, release_fn(versioned));  // first: if this fails, the producer's capsule still owns it
  PyCapsule_SetName(cap.ptr(), versioned ? "used_dltensor_versioned" : "used_dltensor");
  return r;
}

// Calls obj.__dlpack__, asking for a versioned capsule (and, for an output, for no copy: writing into a
// copy would change nothing the caller holds), then in the legacy form for producers that predate those
// keywords. A producer's refusal (a tensor that requires grad, a sparse or quantized one) becomes a
// TypeError that names the argument and says why; KeyboardInterrupt, SystemExit and MemoryError pass as
// they are. kwargs: the legacy call's arguments (stream= for GPU producers).
inline pybind11::object call_dlpack(pybind11::handle obj, const std::string& what, pybind11::dict kwargs = {},
                                    bool for_output = false) {
  namespace py = pybind11;
  try {
    py::dict kw = kwargs.attr("copy")();  // a copy: the legacy call below must not see the new keywords
    kw["max_version"] = py::make_tuple(1, 0);
    if (for_output) kw["copy"] = false;
    try {
      return obj.attr("__dlpack__")(**kw);
    } catch (py::error_already_set& e) {
      if (!e.matches(PyExc_TypeError)) throw;
    }
    return obj.attr("__dlpack__")(**kwargs);
  } catch (py::error_already_set& e) {
    if (!e.matches(PyExc_Exception) || e.matches(PyExc_MemoryError)) throw;
    throw py::type_error(what + " (" + std::string(py::str(py::type::of(obj).attr("__name__"))) +
                         ") could not be exported through DLPack: " + std::string(py::str(e.value())));
  }
}

}  // namespace fastact::dlpack
