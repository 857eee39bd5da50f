// fastact._cuda: the CUDA backend's Python bindings. A separate extension, so that a CPU-only install
// never needs the toolkit; it links the CUDA runtime statically and imports on machines without a GPU
// or driver (device_count() is then 0 and unavailable_reason() says why). Argument parsing (CuPy,
// __cuda_array_interface__, DLPack, streams) is in fastact/cuda.py; this module takes raw pointers,
// element strides and stream handles, launches, and owns device memory and DLPack capsules.
#include <cuda_runtime_api.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "../cpu/fp_env.h"
#include "../cuda/launch.h"
#include "dlpack_import.h"
#include "fastact/registry.h"
#include "gil.h"

namespace py = pybind11;
using namespace fastact;
using namespace fastact::dlpack;
using fastact::bindings::without_gil;

namespace {

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) {
    cudaGetLastError();  // clear a sticky-free error so the next call starts clean
    throw std::runtime_error(std::string("fastact CUDA: ") + what + ": " + cudaGetErrorString(e));
  }
}

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return n;
}

// Why no GPU can be used (no driver, no device, ...), or None.
py::object unavailable_reason() {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    cudaGetLastError();
    return py::str(std::string(cudaGetErrorName(e)) + ": " + cudaGetErrorString(e));
  }
  if (n == 0) return py::str("no CUDA device");
  return py::none();
}

py::dict device_info(int device) {
  cudaDeviceProp p{};
  check(cudaGetDeviceProperties(&p, device), "cudaGetDeviceProperties");
  py::dict d;
  d["name"] = std::string(p.name);
  d["capability"] = py::make_tuple(p.major, p.minor);
  d["multiprocessors"] = p.multiProcessorCount;
  d["memory"] = std::size_t(p.totalGlobalMem);
  return d;
}

int runtime_version() {
  int v = 0;
  cudaRuntimeGetVersion(&v);
  return v;
}
int driver_version() {
  int v = 0;
  if (cudaDriverGetVersion(&v) != cudaSuccess) cudaGetLastError();
  return v;
}

// The device that owns a pointer; ValueError for host memory.
int pointer_device(std::uintptr_t ptr) {
  cudaPointerAttributes a{};
  check(cudaPointerGetAttributes(&a, reinterpret_cast<const void*>(ptr)), "cudaPointerGetAttributes");
  if (a.type != cudaMemoryTypeDevice && a.type != cudaMemoryTypeManaged)
    throw py::value_error("not GPU device memory (a host pointer)");
  return a.device;
}

// Orders `consumer` after the work queued so far on `producer`.
void stream_wait(std::uintptr_t producer, std::uintptr_t consumer, int device) {
  if (producer == consumer) return;
  cuda::DeviceScope scope(device);
  cudaEvent_t ev;
  check(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming), "cudaEventCreate");
  cudaError_t e = cudaEventRecord(ev, reinterpret_cast<cudaStream_t>(producer));
  if (e == cudaSuccess) e = cudaStreamWaitEvent(reinterpret_cast<cudaStream_t>(consumer), ev, 0);
  cudaEventDestroy(ev);
  check(e, "stream synchronisation");
}

void synchronize(std::uintptr_t stream, int device) {
  cuda::DeviceScope scope(device);
  without_gil([&] { check(cudaStreamSynchronize(reinterpret_cast<cudaStream_t>(stream)), "cudaStreamSynchronize"); });
}

// Device memory fastact owns (DeviceArray's storage). Freed with cudaFree, which waits for the work
// queued on the device, so no stream still using it can be outrun.
struct Buffer {
  std::uintptr_t ptr = 0;
  std::size_t nbytes = 0;
  int device = 0;
  Buffer(std::size_t n, int dev) : nbytes(n), device(dev) {
    cuda::DeviceScope scope(dev);
    void* p = nullptr;
    check(cudaMalloc(&p, n ? n : 1), "cudaMalloc");
    ptr = reinterpret_cast<std::uintptr_t>(p);
  }
  ~Buffer() {
    if (!ptr) return;
    int prev = -1;
    cudaGetDevice(&prev);
    cudaSetDevice(device);
    cudaFree(reinterpret_cast<void*>(ptr));
    if (prev >= 0) cudaSetDevice(prev);
  }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
};

// Copies nbytes; kind: "htod", "dtoh" or "dtod". Waits for the copy (the host side may be freed next).
void memcpy_sync(std::uintptr_t dst, std::uintptr_t src, std::size_t nbytes, const std::string& kind,
                 std::uintptr_t stream, int device) {
  const cudaMemcpyKind k = kind == "htod" ? cudaMemcpyHostToDevice
                           : kind == "dtoh" ? cudaMemcpyDeviceToHost
                           : kind == "dtod" ? cudaMemcpyDeviceToDevice
                                            : throw py::value_error("memcpy kind must be htod, dtoh or dtod");
  cuda::DeviceScope scope(device);
  const cudaStream_t s = reinterpret_cast<cudaStream_t>(stream);
  without_gil([&] {
    check(cudaMemcpyAsync(reinterpret_cast<void*>(dst), reinterpret_cast<const void*>(src), nbytes, k, s),
          "cudaMemcpyAsync");
    check(cudaStreamSynchronize(s), "cudaStreamSynchronize");
  });
}

// (ptr, strides) pairs from Python: strides in elements.
struct Arg {
  std::uintptr_t ptr = 0;
  std::vector<std::int64_t> strides;
};
Arg arg_of(py::handle h, std::size_t ndim, const char* name) {
  Arg a;
  if (h.is_none()) return a;
  auto t = h.cast<py::tuple>();
  a.ptr = t[0].cast<std::uintptr_t>();
  a.strides = t[1].cast<std::vector<std::int64_t>>();
  if (a.strides.size() != ndim) throw py::value_error(std::string(name) + ": strides do not match the shape");
  return a;
}

// A launch's operands from lists of (ptr, strides) pairs: the Args keep the strides alive.
struct Operands {
  std::vector<Arg> args;
  std::vector<cuda::Operand> ops;
  Operands(py::list l, std::size_t ndim, const char* name) {
    for (py::handle h : l) args.push_back(arg_of(h, ndim, name));
    for (const Arg& a : args) ops.push_back({reinterpret_cast<const void*>(a.ptr), a.strides.data()});
  }
};

std::vector<double> all_params(const std::vector<double>& params) {
  std::vector<double> p(params);
  p.resize(kMaxParams, 0.0);
  return p;
}

// outs and ins: lists of (ptr, strides) pairs, the op's outputs and inputs in direction dir.
void elementwise(int op, int dir, int dtype, const std::vector<std::int64_t>& shape, py::list outs, py::list ins,
                 const std::vector<double>& params, std::uintptr_t stream, int device) {
  const Operands o(outs, shape.size(), "out"), i(ins, shape.size(), "an input");
  const std::vector<double> p = all_params(params);
  without_gil([&] {
    cuda::elementwise(op, dir, dtype, int(shape.size()), shape.data(), int(o.ops.size()), o.ops.data(),
                      int(i.ops.size()), i.ops.data(), p.data(), stream, device);
  });
}

// The backward of an op with a broadcast operand: outs and ins as for elementwise, reduced a (ptr, strides)
// pair along shape (0 on the axes it is summed over, where reduced_shape is 1).
void reduce(int op, int dtype, const std::vector<std::int64_t>& shape, py::list outs, py::list ins, py::handle reduced,
            const std::vector<std::int64_t>& reduced_shape, const std::vector<double>& params, std::uintptr_t stream,
            int device) {
  if (reduced_shape.size() != shape.size()) throw py::value_error("reduce: reduced_shape must have shape's length");
  const Operands o(outs, shape.size(), "out"), i(ins, shape.size(), "an input");
  const Arg r = arg_of(reduced, shape.size(), "reduced");
  const std::vector<double> p = all_params(params);
  without_gil([&] {
    cuda::reduce(op, dtype, int(shape.size()), shape.data(), int(o.ops.size()), o.ops.data(), int(i.ops.size()),
                 i.ops.data(), {reinterpret_cast<const void*>(r.ptr), r.strides.data()}, reduced_shape.data(), p.data(),
                 stream, device);
  });
}

void rows(int op, int dir, int dtype, const std::vector<std::int64_t>& shape, int axis, py::handle out, py::handle a,
          py::handle b, std::uintptr_t stream, int device) {
  const Arg o = arg_of(out, shape.size(), "out"), x = arg_of(a, shape.size(), "a"), y = arg_of(b, shape.size(), "b");
  without_gil([&] {
    cuda::rows(op, dir, dtype, int(shape.size()), shape.data(), axis, reinterpret_cast<void*>(o.ptr), o.strides.data(),
               {reinterpret_cast<const void*>(x.ptr), x.strides.data()},
               {reinterpret_cast<const void*>(y.ptr), y.strides.data()}, stream, device);
  });
}

void copy(int elsize, const std::vector<std::int64_t>& shape, py::handle out, py::handle a, std::uintptr_t stream,
          int device) {
  const Arg o = arg_of(out, shape.size(), "out"), x = arg_of(a, shape.size(), "a");
  without_gil([&] {
    cuda::copy(elsize, int(shape.size()), shape.data(), reinterpret_cast<void*>(o.ptr), o.strides.data(),
               {reinterpret_cast<const void*>(x.ptr), x.strides.data()}, stream, device);
  });
}

// ---------------------------------------------------------------------------------------- losses
// The losses on GPU arrays (fastact/losses.py checks the arguments and moves the class axis last): x a
// (ptr, strides) pair of rows along the last axis of shape; targets, class weights, grads and coefficients
// host NumPy arrays, checked again here (a bad class index is never read); results written as dtype into
// out, n contiguous elements of device memory (one value, or one per row for "none").
struct RowLossArgs {
  std::vector<std::int64_t> shape;
  std::int64_t nrows = 1, len = 0;
  Arg x;
  // (a default py::array_t is an empty array, not an absent one: the pointers below are null when absent)
  py::array_t<std::int64_t, py::array::c_style> target;
  py::array_t<double, py::array::c_style> weight;
  const std::int64_t* target_data = nullptr;
  const double* weight_data = nullptr;
};

RowLossArgs row_loss_args(const std::vector<std::int64_t>& shape, py::handle x, py::handle target, py::handle weight,
                          const char* fn) {
  RowLossArgs a;
  if (shape.empty()) throw py::value_error(std::string(fn) + ": at least one dimension");
  a.shape = shape;
  for (std::size_t i = 0; i + 1 < shape.size(); ++i) a.nrows *= shape[i];
  a.len = shape.back();
  a.x = arg_of(x, shape.size(), "x");
  if (!target.is_none()) {
    a.target = py::array_t<std::int64_t, py::array::c_style>::ensure(target);
    if (!a.target || a.target.size() != a.nrows) throw py::value_error(std::string(fn) + ": target: one int64 per row");
    const std::int64_t* t = a.target_data = a.target.data();
    for (std::int64_t r = 0; r < a.nrows; ++r)
      if (t[r] < -1 || t[r] >= a.len) throw py::value_error(std::string(fn) + ": target " + std::to_string(t[r]) + " is not a class index");
  }
  if (!weight.is_none()) {
    a.weight = py::array_t<double, py::array::c_style>::ensure(weight);
    if (!a.weight || a.weight.size() != a.len) throw py::value_error(std::string(fn) + ": weight: one float64 per class");
    a.weight_data = a.weight.data();
  }
  return a;
}

row_losses::CrossEntropy ce_of(const RowLossArgs& a, int reduction, double eps, double z) {
  if (reduction < 0 || reduction > 2) throw py::value_error("reduction code 0, 1 or 2");
  if (!a.target_data) throw py::value_error("target is required");
  return {a.target_data, a.weight_data, eps, z, row_losses::Reduction(reduction)};
}

void cross_entropy(int dtype, const std::vector<std::int64_t>& shape, py::handle x, py::handle target, py::handle weight,
                   int reduction, double eps, double z, bool nll, std::uintptr_t out, std::uintptr_t stream, int device) {
  const RowLossArgs a = row_loss_args(shape, x, target, weight, "_cuda.cross_entropy");
  const row_losses::CrossEntropy ce = ce_of(a, reduction, eps, z);
  std::vector<double> rows(static_cast<std::size_t>(a.nrows));
  without_gil([&] {
    const cpu::FpEnvScope fp;  // the host arithmetic (per-row float64, weights to float) in fastact's state
    const double v = cuda::cross_entropy(dtype, int(shape.size()), shape.data(), {reinterpret_cast<const void*>(a.x.ptr),
                                         a.x.strides.data()}, ce, nll, rows.data(), stream, device);
    if (ce.reduction == row_losses::Reduction::none) cuda::store_values(dtype, a.nrows, rows.data(), reinterpret_cast<void*>(out), stream, device);
    else cuda::store_values(dtype, 1, &v, reinterpret_cast<void*>(out), stream, device);
  });
}

// dx (out, a (ptr, strides) pair; may be x) from grad (host float64: one value, or one per row for none).
void cross_entropy_backward(py::handle grad_h, int dtype, const std::vector<std::int64_t>& shape, py::handle x,
                            py::handle target, py::handle weight, int reduction, double eps, double z, py::handle out,
                            bool nll, std::uintptr_t stream, int device) {
  const RowLossArgs a = row_loss_args(shape, x, target, weight, "_cuda.cross_entropy_backward");
  const row_losses::CrossEntropy ce = ce_of(a, reduction, eps, z);
  auto grad = py::array_t<double, py::array::c_style>::ensure(grad_h);
  if (!grad || grad.size() != (ce.reduction == row_losses::Reduction::none ? a.nrows : 1))
    throw py::value_error("_cuda.cross_entropy_backward: grad: float64, one value, or one per row for none");
  const Arg o = arg_of(out, shape.size(), "out");
  without_gil([&] {
    const cpu::FpEnvScope fp;
    cuda::cross_entropy_backward(dtype, int(shape.size()), shape.data(),
                                 {reinterpret_cast<const void*>(a.x.ptr), a.x.strides.data()}, reinterpret_cast<void*>(o.ptr),
                                 o.strides.data(), ce, nll, grad.data(), stream, device);
  });
}

// Class probabilities p (a (ptr, strides) pair of x's shape and dtype, the class axis last too).
row_losses::SoftTargets soft_of(const RowLossArgs& a, int reduction, double eps, double z) {
  if (reduction < 0 || reduction > 2) throw py::value_error("reduction code 0, 1 or 2");
  return {a.weight_data, eps, z, row_losses::Reduction(reduction)};
}

void cross_entropy_probs(int dtype, const std::vector<std::int64_t>& shape, py::handle x, py::handle p, py::handle weight,
                         int reduction, double eps, double z, std::uintptr_t out, std::uintptr_t stream, int device) {
  const RowLossArgs a = row_loss_args(shape, x, py::none(), weight, "_cuda.cross_entropy_probs");
  const row_losses::SoftTargets st = soft_of(a, reduction, eps, z);
  const Arg pa = arg_of(p, shape.size(), "p");
  std::vector<double> rows(static_cast<std::size_t>(a.nrows));
  without_gil([&] {
    const cpu::FpEnvScope fp;
    const double v = cuda::cross_entropy_probs(dtype, int(shape.size()), shape.data(),
                                               {reinterpret_cast<const void*>(a.x.ptr), a.x.strides.data()},
                                               {reinterpret_cast<const void*>(pa.ptr), pa.strides.data()}, st,
                                               rows.data(), stream, device);
    if (st.reduction == row_losses::Reduction::none) cuda::store_values(dtype, a.nrows, rows.data(), reinterpret_cast<void*>(out), stream, device);
    else cuda::store_values(dtype, 1, &v, reinterpret_cast<void*>(out), stream, device);
  });
}

void cross_entropy_probs_backward(py::handle grad_h, int dtype, const std::vector<std::int64_t>& shape, py::handle x,
                                  py::handle p, py::handle weight, int reduction, double eps, double z, py::handle out,
                                  std::uintptr_t stream, int device) {
  const RowLossArgs a = row_loss_args(shape, x, py::none(), weight, "_cuda.cross_entropy_probs_backward");
  const row_losses::SoftTargets st = soft_of(a, reduction, eps, z);
  const Arg pa = arg_of(p, shape.size(), "p"), o = arg_of(out, shape.size(), "out");
  auto grad = py::array_t<double, py::array::c_style>::ensure(grad_h);
  if (!grad || grad.size() != (st.reduction == row_losses::Reduction::none ? a.nrows : 1))
    throw py::value_error("_cuda.cross_entropy_probs_backward: grad: float64, one value, or one per row for none");
  without_gil([&] {
    const cpu::FpEnvScope fp;
    cuda::cross_entropy_probs_backward(dtype, int(shape.size()), shape.data(),
                                       {reinterpret_cast<const void*>(a.x.ptr), a.x.strides.data()},
                                       {reinterpret_cast<const void*>(pa.ptr), pa.strides.data()},
                                       reinterpret_cast<void*>(o.ptr), o.strides.data(), st, grad.data(), stream, device);
  });
}

void logsumexp(int dtype, const std::vector<std::int64_t>& shape, py::handle x, std::uintptr_t out, std::uintptr_t stream,
               int device) {
  const RowLossArgs a = row_loss_args(shape, x, py::none(), py::none(), "_cuda.logsumexp");
  std::vector<double> lse(static_cast<std::size_t>(a.nrows));
  without_gil([&] {
    const cpu::FpEnvScope fp;
    cuda::logsumexp(dtype, int(shape.size()), shape.data(), {reinterpret_cast<const void*>(a.x.ptr), a.x.strides.data()},
                    lse.data(), stream, device);
    cuda::store_values(dtype, a.nrows, lse.data(), reinterpret_cast<void*>(out), stream, device);
  });
}

// logsumexp's gradient: coef (host float64, four per row: cpu/losses.h run_loss_grad) into out.
void loss_grad(int dtype, const std::vector<std::int64_t>& shape, py::handle x, py::handle coef_h, py::handle out,
               std::uintptr_t stream, int device) {
  const RowLossArgs a = row_loss_args(shape, x, py::none(), py::none(), "_cuda.loss_grad");
  auto coef = py::array_t<double, py::array::c_style>::ensure(coef_h);
  if (!coef || coef.size() != 4 * a.nrows) throw py::value_error("_cuda.loss_grad: coef: four float64 per row");
  const Arg o = arg_of(out, shape.size(), "out");
  without_gil([&] {
    const cpu::FpEnvScope fp;
    cuda::loss_grad(dtype, int(shape.size()), shape.data(), {reinterpret_cast<const void*>(a.x.ptr), a.x.strides.data()},
                    reinterpret_cast<void*>(o.ptr), o.strides.data(), coef.data(), stream, device);
  });
}

// An element-wise loss's "mean" (mean true) or "sum": ins as for elementwise (the summed op's inputs),
// the result as dtype into out (one element of device memory).
void total(int op, int dtype, const std::vector<std::int64_t>& shape, py::list ins, const std::vector<double>& params,
           bool mean, std::uintptr_t out, std::uintptr_t stream, int device) {
  const Operands i(ins, shape.size(), "an input");
  const std::vector<double> p = all_params(params);
  without_gil([&] {
    const cpu::FpEnvScope fp;
    cuda::total(op, dtype, int(shape.size()), shape.data(), int(i.ops.size()), i.ops.data(), p.data(), mean,
                reinterpret_cast<void*>(out), stream, device);
  });
}

// ---------------------------------------------------------------------------------------- DLPack
// Exports obj through DLPack (passing stream= to the producer) and imports it by the one DLPack path
// (dlpack_import.h): returns (owner, ptr, shape, element strides, (code, bits, lanes), (device_type,
// device_id), read_only). The owner runs the producer's deleter when released. what: "fastact.relu: x".
// for_output: asked for without a copy, and refused if the producer made one anyway.
py::tuple dlpack_import(py::handle obj, const std::string& what, std::int64_t stream, bool for_output) {
  py::dict kw;
  kw["stream"] = stream;
  Imported t = import_capsule(call_dlpack(obj, what, kw, for_output), what);
  if (for_output && t.copied)
    throw py::value_error(what + " was exported as a copy (DLPack's IS_COPIED flag): results written there would "
                          "not reach it; pass an array fastact can write in place");
  py::tuple dtype = py::make_tuple(int(t.dtype.code), int(t.dtype.bits), int(t.dtype.lanes));
  py::tuple device = py::make_tuple(t.device_type, t.device_id);
  return py::make_tuple(t.owner, reinterpret_cast<std::uintptr_t>(t.data), t.shape, t.strides, dtype, device,
                        t.read_only);
}

// An export of memory that `owner` keeps alive: the capsule holds a reference to it until the
// consumer calls the deleter (or the capsule is dropped unconsumed).
struct ExportCtx {
  PyObject* owner;
  std::vector<std::int64_t> shape, strides;
};

// A consumer may release the tensor from any thread, late in interpreter exit included: the owner's
// reference is then left to the exiting interpreter (taking the GIL there would end this thread).
inline bool interpreter_finalizing() {
#if PY_VERSION_HEX >= 0x030D0000
  return Py_IsFinalizing();
#else
  return _Py_IsFinalizing();
#endif
}

template <class M>
void export_deleter(M* m) {
  auto* ctx = static_cast<ExportCtx*>(m->manager_ctx);
  if (!interpreter_finalizing()) {
    const PyGILState_STATE g = PyGILState_Ensure();
    Py_XDECREF(ctx->owner);
    PyGILState_Release(g);
  }
  delete ctx;
  delete m;
}

template <class M>
void fill_tensor(M* m, ExportCtx* ctx, std::uintptr_t ptr, int code, int bits, int device) {
  DLTensor& t = m->dl_tensor;
  t.data = reinterpret_cast<void*>(ptr);
  t.device = DLDevice{kCUDA, device};
  t.ndim = std::int32_t(ctx->shape.size());
  t.dtype = DLDataType{std::uint8_t(code), std::uint8_t(bits), 1};
  t.shape = ctx->shape.data();
  t.strides = ctx->strides.data();
  t.byte_offset = 0;
  m->manager_ctx = ctx;
  m->deleter = export_deleter<M>;
}

py::capsule dlpack_export(py::object owner, std::uintptr_t ptr, std::vector<std::int64_t> shape,
                          std::vector<std::int64_t> strides, int code, int bits, int device, bool versioned,
                          bool read_only) {
  auto* ctx = new ExportCtx{owner.ptr(), std::move(shape), std::move(strides)};
  Py_INCREF(ctx->owner);
  if (versioned) {
    auto* m = new DLManagedTensorVersioned{};
    m->major = 1;
    m->minor = 0;
    m->flags = read_only ? kFlagReadOnly : 0;
    fill_tensor(m, ctx, ptr, code, bits, device);
    return py::capsule(m, "dltensor_versioned", [](PyObject* cap) {
      if (PyCapsule_IsValid(cap, "dltensor_versioned")) {  // never consumed: release it ourselves
        auto* mm = static_cast<DLManagedTensorVersioned*>(PyCapsule_GetPointer(cap, "dltensor_versioned"));
        if (mm && mm->deleter) mm->deleter(mm);
      }
    });
  }
  auto* m = new DLManagedTensor{};
  fill_tensor(m, ctx, ptr, code, bits, device);
  return py::capsule(m, "dltensor", [](PyObject* cap) {
    if (PyCapsule_IsValid(cap, "dltensor")) {
      auto* mm = static_cast<DLManagedTensor*>(PyCapsule_GetPointer(cap, "dltensor"));
      if (mm && mm->deleter) mm->deleter(mm);
    }
  });
}

}  // namespace

PYBIND11_MODULE(_cuda, m) {
  m.doc() = "fastact CUDA backend (use fastact and fastact.cuda, not this module)";
  m.def("device_count", &device_count, "Number of CUDA devices usable here (0 without a driver or GPU).");
  m.def("unavailable_reason", &unavailable_reason, "Why no GPU can be used here, or None.");
  m.def("device_info", &device_info, py::arg("device"));
  m.def("runtime_version", &runtime_version);
  m.def("driver_version", &driver_version);
  m.def("targets", &cuda::targets, "GPU architectures this build carries code for.");
  m.def("pointer_device", &pointer_device, py::arg("ptr"));
  m.def("stream_wait", &stream_wait, py::arg("producer"), py::arg("consumer"), py::arg("device"));
  m.def("synchronize", &synchronize, py::arg("stream"), py::arg("device"));
  m.def("memcpy", &memcpy_sync, py::arg("dst"), py::arg("src"), py::arg("nbytes"), py::arg("kind"), py::arg("stream"),
        py::arg("device"));
  m.def("elementwise", &elementwise);
  m.def("reduce", &reduce);
  m.def("rows", &rows);
  m.def("copy", &copy);
  m.def("total", &total);
  m.def("cross_entropy", &cross_entropy);
  m.def("cross_entropy_backward", &cross_entropy_backward);
  m.def("cross_entropy_probs", &cross_entropy_probs);
  m.def("cross_entropy_probs_backward", &cross_entropy_probs_backward);
  m.def("logsumexp", &logsumexp);
  m.def("loss_grad", &loss_grad);
  m.def("dlpack_import", &dlpack_import, py::arg("obj"), py::arg("what"), py::arg("stream"),
        py::arg("for_output") = false);
  m.def("dlpack_export", &dlpack_export);
  py::class_<Buffer>(m, "Buffer")
      .def(py::init<std::size_t, int>(), py::arg("nbytes"), py::arg("device"))
      .def_readonly("ptr", &Buffer::ptr)
      .def_readonly("nbytes", &Buffer::nbytes)
      .def_readonly("device", &Buffer::device);
}
