// Python bindings. Two generic entry points (element-wise and row ops) take the registry id of the op,
// so no op has binding code of its own; the Python layer builds the public functions from ops().
// Arrays are used in place (zero copy): only inputs whose strides are not whole elements are copied.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <pthread.h>
#include <sys/mman.h>

#include <array>
#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <new>
#include <string>
#include <vector>

#include "../cpu/dispatch.h"
#include "../cpu/engine.h"
#include "../cpu/op_info.h"
#include "../cpu/tables16.h"
#include "../cpu/thread_pool.h"
#include "dlpack.h"
#include "fastact/fastact.h"

namespace py = pybind11;
using namespace fastact;

namespace {

constexpr int kMaxDims = 64;

py::object& coerce_fn() {
  // Leaked on purpose: a static py::object would be released after the interpreter has finalized.
  static py::object* f = new py::object(py::module_::import("fastact._dispatch").attr("as_array"));
  return *f;
}

py::object& gpu_route_fn() {
  static py::object* f = new py::object(py::module_::import("fastact._dispatch").attr("gpu_route"));
  return *f;
}

// GPU arrays (and stream=) go to fastact._dispatch.gpu_route, which answers NotImplemented when every
// argument is on the CPU. NumPy arrays never pay for the check.
bool maybe_gpu(py::handle a, py::handle b, py::handle out, py::handle stream) {
  auto plain = [](py::handle h) { return h.is_none() || py::isinstance<py::array>(h); };
  return !stream.is_none() || !plain(a) || !plain(b) || !plain(out);
}

// An ndarray for arg (NumPy arrays pass through untouched; anything else goes through
// fastact._dispatch.as_array, which handles scalars, lists, DLPack and GPU objects).
// The public function's name, put together only when a message needs it (most calls never do).
struct Fn {
  const char* op;
  bool backward;
  std::string str() const { return std::string(op) + (backward ? "_backward" : ""); }
};
std::string operator+(const Fn& f, const char* s) { return f.str() + s; }

py::array to_array(py::handle h, const Fn& fn, const char* name) {
  if (py::isinstance<py::array>(h)) return py::reinterpret_borrow<py::array>(h);
  return coerce_fn()(h, fn.str(), name);
}

bool native_order(const py::dtype& dt) {
  const char b = py::detail::array_descriptor_proxy(dt.ptr())->byteorder;
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  return b != '>';
#else
  return b != '<';
#endif
}

// The kernel dtype of a (kF32 / kF64), or a TypeError naming the argument. Equal dtypes compare equal
// here even when NumPy holds them as distinct objects (metadata). A byte-swapped input is converted to
// native order (a copy: its bytes are not floats the CPU can use); a byte-swapped out= is an error.
int dtype_code(py::array& a, const Fn& fn, const char* name, bool is_out = false) {
  py::dtype dt = a.dtype();
  int code = -1;
  if (dt.kind() == 'f') code = dt.itemsize() == 4 ? cpu::kF32 : dt.itemsize() == 8 ? cpu::kF64
                             : dt.itemsize() == 2 ? cpu::kF16 : -1;
  // ml_dtypes.bfloat16 (a NumPy user dtype of kind 'V'): recognised by name once, then by its type number
  // (the name check is slow); never imported here.
  else if (dt.kind() == 'V' && dt.itemsize() == 2) {
    static int bf16_type_num = -1;
    const int num = py::detail::array_descriptor_proxy(dt.ptr())->type_num;
    if (num == bf16_type_num) {
      code = cpu::kBF16;
    } else if (bf16_type_num < 0 && std::string(py::str(dt)) == "bfloat16") {
      bf16_type_num = num;
      code = cpu::kBF16;
    }
  }
  if (code < 0)
    throw py::type_error(fn + ": " + name + " has dtype " + std::string(py::str(dt)) +
                         "; expected float32, float64, float16 or bfloat16");
  if (!native_order(dt)) {
    if (is_out) throw py::type_error(fn + ": out must be in the machine's byte order (got " +
                                     std::string(py::str(dt.attr("str"))) + ")");
    a = a.attr("astype")(dt.attr("newbyteorder")("="));
  }
  return code;
}

const char* dtype_name(int code) {
  static const char* names[cpu::kNumDtypes] = {"float32", "float64", "float16", "bfloat16"};
  return names[code];
}
int elsize_of(int code) { return code == cpu::kF64 ? 8 : code == cpu::kF32 ? 4 : 2; }

// py::array() would allocate an empty array: members start as null handles instead.
py::array null_array() { return py::reinterpret_steal<py::array>(py::handle()); }

struct View {
  py::object arr;  // keeps a copied input alive (py::object: null by default, no allocation)
  std::int64_t strides[kMaxDims];  // only the first ndim are set
  char* data;
};

// Element strides; an array whose strides or address are not whole elements is copied (only such
// odd views are ever copied).
View view_of(const py::array& a_in, bool writable, const Fn& fn, const char* name) {
  const ssize_t isz = a_in.itemsize(), nd = a_in.ndim();
  const ssize_t* st = a_in.strides();
  bool aligned = reinterpret_cast<std::uintptr_t>(a_in.data()) % isz == 0;
  for (ssize_t i = 0; i < nd; ++i) aligned = aligned && st[i] % isz == 0;
  View v;
  const py::array* a = &a_in;
  py::array copy = null_array();
  if (!aligned) {
    if (writable) throw py::value_error(fn + ": " + name + " must be aligned to its element size");
    copy = py::module_::import("numpy").attr("ascontiguousarray")(a_in);
    v.arr = copy;
    a = &copy;
    st = a->strides();
  }
  v.data = static_cast<char*>(const_cast<void*>(a->data()));
  for (ssize_t i = 0; i < nd; ++i) v.strides[i] = st[i] / isz;
  return v;
}

void check_same_shape(const py::array& a, const py::array& b, const Fn& fn, const char* na,
                      const char* nb) {
  bool same = a.ndim() == b.ndim();
  for (ssize_t i = 0; same && i < a.ndim(); ++i) same = a.shape(i) == b.shape(i);
  if (!same) {
    auto shape = [](const py::array& x) { return std::string(py::str(py::tuple(py::cast(std::vector<ssize_t>(
                                                      x.shape(), x.shape() + x.ndim()))))); };
    throw py::value_error(fn + ": " + nb + " must have the shape of " + na + " " + shape(a) + ", got " + shape(b));
  }
}

// Byte range [lo, hi) an array can touch.
std::pair<std::uintptr_t, std::uintptr_t> extent(const py::array& a) {
  std::uintptr_t lo = reinterpret_cast<std::uintptr_t>(a.data()), hi = lo;
  for (ssize_t i = 0; i < a.ndim(); ++i) {
    if (a.shape(i) == 0) return {lo, lo};
    const std::intptr_t span = std::intptr_t(a.shape(i) - 1) * a.strides(i);
    if (span < 0) lo += span; else hi += span;
  }
  return {lo, hi + a.itemsize()};
}

bool needs_temp(const py::array& out, const py::array& in) {
  auto [olo, ohi] = extent(out);
  auto [ilo, ihi] = extent(in);
  if (ohi <= ilo || ihi <= olo || olo == ohi || ilo == ihi) return false;
  // The very same elements (in-place) are safe: every element is read before it is written.
  if (out.data() != in.data() || out.ndim() != in.ndim()) return true;
  for (ssize_t i = 0; i < out.ndim(); ++i)
    if (out.strides(i) != in.strides(i)) return true;
  return false;
}

// Large results come from a small cache of recently released buffers. Fresh memory costs the kernel
// zeroing its pages on first touch (about 0.25 ns per float32 element, more than relu itself), and a
// loop over batches frees and makes a result of the same size every call. Buffers of at least 1 MiB
// are kept, up to FASTACT_RESULT_CACHE_MB in all (default 1024; 0 turns the cache off).
class ResultCache {
 public:
  static constexpr std::size_t kMinBytes = std::size_t(1) << 20;
  static constexpr std::size_t kMaxBlocks = 8;

  static ResultCache& get() {
    static ResultCache* c = [] {
      auto* cache = new ResultCache();  // never destroyed: arrays may outlive static destruction
      pthread_atfork(nullptr, nullptr, [] { new (&get().m_) std::mutex(); });  // a child's lock starts free
      return cache;
    }();
    return *c;
  }
  std::size_t limit() const { return limit_; }
  std::size_t held() {
    std::lock_guard<std::mutex> lk(m_);
    return held_;
  }

  // A block of at least n bytes (64-byte aligned): a cached one no more than twice as big, or a new one.
  void* take(std::size_t n, std::size_t& size) {
    {
      std::lock_guard<std::mutex> lk(m_);
      std::size_t best = blocks_.size();
      for (std::size_t i = 0; i < blocks_.size(); ++i)
        if (blocks_[i].size >= n && blocks_[i].size <= 2 * n && (best == blocks_.size() || blocks_[i].size < blocks_[best].size))
          best = i;
      if (best != blocks_.size()) {
        Block b = blocks_[best];
        blocks_.erase(blocks_.begin() + std::ptrdiff_t(best));
        held_ -= b.size;
        size = b.size;
        return b.ptr;
      }
    }
    // Big blocks on 2 MiB boundaries, offered to transparent huge pages (as NumPy does): fewer faults.
    constexpr std::size_t kHuge = std::size_t(2) << 20;
    void* p = nullptr;
    if (posix_memalign(&p, n >= 2 * kHuge ? kHuge : 64, n) != 0) throw std::bad_alloc();
#ifdef MADV_HUGEPAGE
    if (n >= 2 * kHuge) madvise(p, n, MADV_HUGEPAGE);
#endif
    size = n;
    return p;
  }
  void give(void* p, std::size_t size) {
    {
      std::lock_guard<std::mutex> lk(m_);
      if (size <= limit_) {
        while (!blocks_.empty() && (held_ + size > limit_ || blocks_.size() >= kMaxBlocks)) {  // oldest first
          std::free(blocks_.front().ptr);
          held_ -= blocks_.front().size;
          blocks_.erase(blocks_.begin());
        }
        blocks_.push_back({p, size});
        held_ += size;
        return;
      }
    }
    std::free(p);
  }

 private:
  ResultCache() {
    const char* env = std::getenv("FASTACT_RESULT_CACHE_MB");
    long mb = 1024;
    if (env) {
      char* end = nullptr;
      const long v = std::strtol(env, &end, 10);
      if (end != env && *end == '\0' && v >= 0) mb = v;
    }
    limit_ = std::size_t(mb) << 20;
  }
  struct Block {
    void* ptr;
    std::size_t size;
  };
  std::mutex m_;
  std::vector<Block> blocks_;
  std::size_t held_ = 0, limit_ = 0;
};

// A new array of a's shape and dtype (Fortran order when a is, else C order).
py::array new_like(const py::array& a) {
  const ssize_t nd = a.ndim();
  const bool f_order = nd > 1 && (a.flags() & py::array::f_style) && !(a.flags() & py::array::c_style);
  std::size_t nbytes = std::size_t(a.itemsize());
  for (ssize_t i = 0; i < nd; ++i) nbytes *= std::size_t(a.shape(i));
  ResultCache& cache = ResultCache::get();
  if (nbytes < ResultCache::kMinBytes || cache.limit() == 0) {
    // NumPy's own constructor, straight: strides from the order flag, no containers in between.
    auto& api = py::detail::npy_api::get();
    PyObject* descr = py::detail::array_proxy(a.ptr())->descr;
    Py_INCREF(descr);  // stolen by the constructor
    PyObject* r = api.PyArray_NewFromDescr_(api.PyArray_Type_, descr, int(nd), const_cast<Py_intptr_t*>(a.shape()),
                                            nullptr, nullptr, f_order ? py::detail::npy_api::NPY_ARRAY_F_CONTIGUOUS_ : 0,
                                            nullptr);
    if (!r) throw py::error_already_set();
    return py::reinterpret_steal<py::array>(r);
  }
  std::vector<ssize_t> shape(a.shape(), a.shape() + nd), strides(nd);
  ssize_t s = a.itemsize();
  for (ssize_t k = 0; k < nd; ++k) {
    const ssize_t i = f_order ? k : nd - 1 - k;
    strides[i] = s;
    s *= shape[i];
  }
  struct Owned {
    void* ptr;
    std::size_t size;
  };
  auto* owned = new Owned{nullptr, 0};
  owned->ptr = cache.take(nbytes, owned->size);
  py::capsule owner(owned, [](void* o) {
    auto* b = static_cast<Owned*>(o);
    ResultCache::get().give(b->ptr, b->size);
    delete b;
  });
  return py::array(a.dtype(), shape, strides, owned->ptr, owner);
}

// Validates out= (or makes a new array) and says whether results must go through a temporary.
py::array prepare_out(py::handle out_h, const py::array& like, int dtype, const py::array* const* inputs,
                      int n_inputs, const Fn& fn, bool& temp) {
  temp = false;
  if (out_h.is_none()) return new_like(like);
  py::array out = null_array();
  if (py::isinstance<py::array>(out_h)) {
    out = py::reinterpret_borrow<py::array>(out_h);
  } else if (py::hasattr(out_h, "__dlpack__")) {  // e.g. a torch tensor, written in place
    out = to_array(out_h, fn, "out");
  } else {
    throw py::type_error(fn + ": out must be a NumPy array or a DLPack tensor, got " +
                         std::string(py::str(py::type::of(out_h))));
  }
  int out_code = -1;
  try {
    out_code = dtype_code(out, fn, "out", true);
  } catch (py::type_error&) {
    if (!native_order(out.dtype())) throw;
  }
  if (out_code != dtype)
    throw py::type_error(fn + ": out has dtype " + std::string(py::str(out.dtype())) + "; expected " +
                         dtype_name(dtype) + " (the input's)");
  check_same_shape(like, out, fn, "the input", "out");
  if (!out.writeable()) throw py::value_error(fn + ": out is read-only");
  for (int i = 0; i < n_inputs; ++i) temp = temp || needs_temp(out, *inputs[i]);
  return out;
}

using Params = std::array<double, kMaxParams>;

Params read_params(const cpu::OpInfo& info, PyObject* params) {
  Params p{};
  if (!PyTuple_Check(params) || PyTuple_GET_SIZE(params) != Py_ssize_t(info.params.size()))
    throw py::type_error(std::string(info.name) + ": expected a tuple of " + std::to_string(info.params.size()) +
                         " parameters");
  for (size_t i = 0; i < info.params.size(); ++i) {
    PyObject* v = PyTuple_GET_ITEM(params, Py_ssize_t(i));
    if (PyFloat_CheckExact(v)) {  // the usual case: the default or a float literal
      p[i] = PyFloat_AS_DOUBLE(v);
      continue;
    }
    if (!PyFloat_Check(v) && !PyLong_Check(v) && !py::isinstance<py::array>(v) && !PyNumber_Check(v))
      throw py::type_error(std::string(info.name) + ": " + info.params[i].name + " must be a number, got " +
                           std::string(py::str(py::type::of(v))));
    p[i] = PyFloat_AsDouble(v);
    if (PyErr_Occurred()) throw py::error_already_set();
  }
  cpu::check_params(info, p.data());
  return p;
}

// The result: out= as the caller passed it (a NumPy array, or a DLPack tensor written in place), else
// the new array. dst went through a temporary when out overlapped an input.
py::object finish(const py::array& out, const py::array& dst, py::handle out_h, bool temp) {
  if (temp) py::module_::import("numpy").attr("copyto")(out, dst);
  if (!out_h.is_none()) return py::reinterpret_borrow<py::object>(out_h);
  return dst;
}

// The arguments of one call, checked and viewed: what both entry points share. Nothing here allocates
// on the heap in the common case (NumPy arrays in, a small or cached result out): at 1,024 elements the
// call's own cost is most of the time.
struct Call {
  Fn fn;  // fn.backward: there is a second input b
  int dtype;
  bool temp;
  py::array a = null_array(), b = null_array(), out = null_array();
  py::array dst = null_array();  // out, or a temporary when out overlaps an input
  View va, vb, vo;
  int ndim;
  const std::int64_t* shape;  // a's (NumPy's npy_intp is 64-bit on every platform fastact builds for)
  std::int64_t size;
  int elsize() const { return elsize_of(dtype); }
};
static_assert(sizeof(Py_intptr_t) == sizeof(std::int64_t), "NumPy shapes are read as int64");

// a_h: x or grad_output; b_h (backward only): the backward's x or y.
void prepare(Call& c, py::handle a_h, py::handle b_h, py::handle out_h, const char* an, const char* bn) {
  c.a = to_array(a_h, c.fn, an);
  c.dtype = dtype_code(c.a, c.fn, an);
  if (c.fn.backward) {
    c.b = to_array(b_h, c.fn, bn);
    if (dtype_code(c.b, c.fn, bn) != c.dtype)
      throw py::type_error(c.fn + ": " + bn + " has dtype " + std::string(py::str(c.b.dtype())) + " but " + an +
                           " has " + std::string(py::str(c.a.dtype())) + "; pass arrays of one dtype");
    check_same_shape(c.a, c.b, c.fn, an, bn);
  }
  if (c.a.ndim() > kMaxDims) throw py::value_error(c.fn + ": at most 64 dimensions");
  const py::array* ins[2] = {&c.a, &c.b};
  c.out = prepare_out(out_h, c.a, c.dtype, ins, c.fn.backward ? 2 : 1, c.fn, c.temp);
  c.dst = c.temp ? new_like(c.a) : c.out;
  c.va = view_of(c.a, false, c.fn, an);
  if (c.fn.backward) c.vb = view_of(c.b, false, c.fn, bn);
  c.vo = view_of(c.dst, true, c.fn, "out");
  c.ndim = int(c.a.ndim());
  c.shape = reinterpret_cast<const std::int64_t*>(c.a.shape());
  c.size = 1;
  for (int i = 0; i < c.ndim; ++i) c.size *= c.shape[i];
}

// Below this many elements a call keeps the GIL (a few microseconds at most, for the slowest op):
// releasing and taking it back costs about 40 ns, as much as a whole 1,024-element relu call's work.
constexpr std::int64_t kReleaseGilElements = 4096;

template <class F>
void run_released(std::int64_t n, F&& f) {
  if (n < kReleaseGilElements) return f();
  py::gil_scoped_release nogil;
  f();
}

py::object elementwise(int op, int dir, py::handle a_h, py::handle b_h, py::handle out_h, PyObject* params,
                       py::handle stream_h) {
  const auto& ops = cpu::elementwise_ops();
  if (op < 0 || std::size_t(op) >= ops.size() || dir < cpu::kForward || dir > cpu::kBackwardY)
    throw py::value_error("_elementwise: no such op or direction");
  const cpu::OpInfo& info = ops[std::size_t(op)];
  Call c;
  c.fn = {info.name, dir != cpu::kForward};
  const Params p = read_params(info, params);
  if (dir == cpu::kBackwardY) cpu::check_backward_from_y(info, p.data());
  if (maybe_gpu(a_h, b_h, out_h, stream_h)) {
    py::object r = gpu_route_fn()("elementwise", op, dir, c.fn.str(), a_h, b_h, out_h,
                                  std::vector<double>(p.begin(), p.end()), stream_h);
    if (!r.is(py::handle(Py_NotImplemented))) return r;
  }
  prepare(c, a_h, b_h, out_h, c.fn.backward ? "grad_output" : "x", dir == cpu::kBackwardX ? "x" : "y");
  cpu::EwKernel k = cpu::tables16::pick(cpu::active_table(), op, dir, c.dtype, c.size);
  run_released(c.size, [&] {
    cpu::run_elementwise(k, c.elsize(), c.ndim, c.shape, c.vo.data, c.vo.strides, {c.va.data, c.va.strides},
                         {c.fn.backward ? c.vb.data : nullptr, c.vb.strides}, p.data());
  });
  return finish(c.out, c.dst, out_h, c.temp);
}

py::object rowwise(int op, int dir, py::handle a_h, py::handle b_h, py::handle out_h, PyObject* axis_obj,
                   py::handle stream_h) {
  const py::handle axis_h(axis_obj);
  const auto& ops = cpu::row_ops();
  if (op < 0 || std::size_t(op) >= ops.size() || dir < 0 || dir > 1)
    throw py::value_error("_rowwise: no such op or direction");
  const cpu::OpInfo& info = ops[std::size_t(op)];
  Call c;
  c.fn = {info.name, dir != 0};
  if (!PyLong_Check(axis_h.ptr()) || PyBool_Check(axis_h.ptr()))
    throw py::type_error(c.fn + ": axis must be an int, got " + std::string(py::str(py::type::of(axis_h))));
  const long axis_in = PyLong_AsLong(axis_h.ptr());
  if (axis_in == -1 && PyErr_Occurred()) {
    PyErr_Clear();
    throw py::value_error(c.fn + ": axis " + std::string(py::str(axis_h)) + " is out of range");
  }
  if (maybe_gpu(a_h, b_h, out_h, stream_h)) {
    py::object r = gpu_route_fn()("rows", op, dir, c.fn.str(), a_h, b_h, out_h, axis_in, stream_h);
    if (!r.is(py::handle(Py_NotImplemented))) return r;
  }
  // Rows read all their inputs before writing, but only within a row: prepare() sends any overlap that
  // is not the very same layout through a temporary.
  prepare(c, a_h, b_h, out_h, c.fn.backward ? "grad_output" : "x", "y");
  const long nd = c.ndim;
  if (nd == 0) throw py::value_error(c.fn + ": x must have at least one dimension (got a 0-d array)");
  if (axis_in < -nd || axis_in >= nd)
    throw py::value_error(c.fn + ": axis " + std::to_string(axis_in) + " is out of range for an array of " +
                          std::to_string(nd) + " dimensions");
  const int axis = int(axis_in < 0 ? axis_in + nd : axis_in);
  cpu::RowKernel k = cpu::active_table().row[op][dir][c.dtype];
  run_released(c.size, [&] {
    cpu::run_rows(k, c.elsize(), c.ndim, c.shape, axis, c.vo.data, c.vo.strides, {c.va.data, c.va.strides},
                  {c.fn.backward ? c.vb.data : nullptr, c.vb.strides});
  });
  return finish(c.out, c.dst, out_h, c.temp);
}

// The two entry points as plain CPython fast-call functions: pybind11's general dispatcher (argument
// casters, overload bookkeeping) cost about as much as a 1,024-element relu. Exceptions are translated
// the way pybind11 would.
template <class F>
PyObject* guarded(F&& f) noexcept {
  try {
    return f().release().ptr();
  } catch (py::error_already_set& e) {
    e.restore();
  } catch (py::builtin_exception& e) {
    e.set_error();
  } catch (const std::bad_alloc&) {
    PyErr_NoMemory();
  } catch (const std::invalid_argument& e) {  // fastact::Error among them
    PyErr_SetString(PyExc_ValueError, e.what());
  } catch (const std::exception& e) {
    PyErr_SetString(PyExc_RuntimeError, e.what());
  } catch (...) {
    PyErr_SetString(PyExc_RuntimeError, "fastact: unknown C++ exception");
  }
  return nullptr;
}

int small_int(PyObject* o, const char* what) {
  const long v = PyLong_Check(o) ? PyLong_AsLong(o) : -1;
  if (PyErr_Occurred() || !PyLong_Check(o) || v < 0 || v > 1000) {
    PyErr_Clear();
    throw py::type_error(std::string("fastact: internal entry point got a bad ") + what);
  }
  return int(v);
}

// The CPython face of elementwise() and rowwise(): seven positional arguments, the first two small ints.
template <py::object (*F)(int, int, py::handle, py::handle, py::handle, PyObject*, py::handle)>
PyObject* entry(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  return guarded([&] {
    if (nargs != 7) throw py::type_error("fastact: the internal entry point takes 7 arguments");
    return F(small_int(args[0], "op"), small_int(args[1], "direction"), args[2], args[3], args[4], args[5], args[6]);
  });
}

PyMethodDef entry_points[] = {
    {"_elementwise", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&entry<elementwise>)), METH_FASTCALL,
     "_elementwise(op, dir, a, b, out, params, stream): the generic element-wise entry point (use fastact.<op>)."},
    {"_rowwise", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&entry<rowwise>)), METH_FASTCALL,
     "_rowwise(op, dir, a, b, out, axis, stream): the generic row entry point (use fastact.<op>)."},
    {nullptr, nullptr, 0, nullptr}};

py::list op_list() {
  py::list l;
  auto add = [&](const cpu::OpInfo& o) {
    py::list params;
    for (const auto& p : o.params) {
      py::dict d;
      d["name"] = p.name;
      d["default"] = p.default_value;
      d["check"] = p.check == ParamCheck::Positive ? "positive" : p.check == ParamCheck::NonNegative ? "nonnegative" : "any";
      d["choices"] = p.choices ? py::cast(std::string(p.choices)) : py::none();
      params.append(d);
    }
    static const char* from[] = {"x", "y", "x|y", "x|y+"};
    py::dict d;
    d["name"] = o.name;
    d["id"] = o.id;
    d["kind"] = o.row ? "row" : "elementwise";
    d["doc"] = o.doc;
    d["backward_from"] = from[int(o.backward_from)];
    d["params"] = params;
    d["tabulated16"] = o.tabulated16;
    l.append(d);
  };
  for (const auto& o : cpu::elementwise_ops()) add(o);
  for (const auto& o : cpu::row_ops()) add(o);
  return l;
}

// A zero-copy NumPy view of a CPU DLPack tensor of a dtype NumPy's from_dlpack refuses (bfloat16), as
// `dtype` (ml_dtypes.bfloat16). The producer's deleter runs when the view is released. A versioned
// export (DLPack >= 1.0) says whether it is read-only; an unversioned one cannot, so its view is made
// read-only: fastact never writes into memory it was not told it may write.
using namespace fastact::dlpack;

py::array dlpack_bfloat16(py::object obj, py::dtype dtype) {
  py::object cap;
  try {
    cap = obj.attr("__dlpack__")(py::arg("max_version") = py::make_tuple(1, 0));
  } catch (py::error_already_set& e) {
    if (!e.matches(PyExc_TypeError)) throw;
    cap = obj.attr("__dlpack__")();  // a producer that predates versioned exports
  }
  const bool versioned = std::string(PyCapsule_GetName(cap.ptr())) == "dltensor_versioned";
  void* raw = PyCapsule_GetPointer(cap.ptr(), versioned ? "dltensor_versioned" : "dltensor");
  if (!raw) throw py::error_already_set();
  const DLTensor& t = versioned ? static_cast<DLManagedTensorVersioned*>(raw)->dl_tensor
                                : static_cast<DLManagedTensor*>(raw)->dl_tensor;
  const bool read_only = versioned ? (static_cast<DLManagedTensorVersioned*>(raw)->flags & kFlagReadOnly) != 0 : true;
  if (t.device.device_type != kCPU) throw py::value_error("not a CPU DLPack tensor");
  if (!(t.dtype.code == kBfloat && t.dtype.bits == 16 && t.dtype.lanes == 1))
    throw py::type_error("DLPack tensor is not bfloat16");
  std::vector<ssize_t> shape(t.shape, t.shape + t.ndim), strides(t.ndim);
  for (int i = t.ndim - 1, s = 2; i >= 0; --i) {  // DLPack strides are in elements (null: C order)
    strides[i] = t.strides ? ssize_t(t.strides[i]) * 2 : s;
    s *= int(shape[i]);
  }
  PyCapsule_SetName(cap.ptr(), versioned ? "used_dltensor_versioned" : "used_dltensor");
  py::capsule owner(raw, release_fn(versioned));
  py::array arr(dtype, shape, strides, static_cast<char*>(t.data) + t.byte_offset, owner);
  if (read_only) arr.attr("flags").attr("writeable") = false;
  return arr;
}

std::string compiler() {
#if defined(__clang__)
  return "clang " __clang_version__;
#elif defined(__GNUC__)
  return "gcc " __VERSION__;
#else
  return "unknown";
#endif
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "fastact compiled core (use the fastact package, not this module)";
  cpu::active_table();  // reads FASTACT_ISA now: a path this CPU lacks fails the import, clearly
  if (PyModule_AddFunctions(m.ptr(), entry_points) != 0) throw py::error_already_set();
  m.def("_dlpack_bfloat16", &dlpack_bfloat16);
  m.def("ops", &op_list, "The op registry: names, parameters, defaults and backward forms.");
  m.def("version", &fastact::version);
  m.def("compiler", &compiler);
  m.def("compiled_isas", &fastact::compiled_isas, "ISA paths compiled into this build.");
  m.def("supported_isas", &fastact::supported_isas, "ISA paths this CPU can run.");
  m.def("get_isa", &fastact::current_isa, "The ISA path in use.");
  m.def("set_isa", &fastact::set_isa, py::arg("name"),
        "Use the given ISA path ('scalar', 'avx2', 'avx512', 'neon' or 'best') for later calls.");
  m.def("get_num_threads", &fastact::num_threads, "Threads used by large calls.");
  m.def("result_cache", [] {
    ResultCache& c = ResultCache::get();
    return py::make_tuple(c.held(), c.limit());
  }, "(bytes held, limit) of the cache of released large results (FASTACT_RESULT_CACHE_MB).");
  m.def("stream_min_bytes", [] { return std::size_t(cpu::stream_min_bytes()); },
        "Element-wise float32/float64 kernel calls that write at least this many bytes use non-temporal "
        "stores (half the last-level cache; SIZE_MAX when FASTACT_STREAM_STORES=0).");
  m.attr("HALF_TABLE_MIN_ELEMENTS") = cpu::tables16::kMinElements;
  m.def("half_tables", [] {
    const cpu::tables16::Stats s = cpu::tables16::stats();
    return py::make_tuple(s.enabled, s.count, s.bytes);
  }, "(enabled, tables built, bytes) of the 16-bit lookup tables (FASTACT_HALF_TABLES).");
  m.def("set_num_threads", &fastact::set_num_threads, py::arg("n"),
        "Use up to n threads (n >= 1) for large calls; results do not depend on it.");
}
