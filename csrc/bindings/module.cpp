// Python bindings. Two generic entry points (element-wise and row ops) take the registry id of the op,
// so no op has binding code of its own; the Python layer builds the public functions from ops().
// Arrays are used in place (zero copy): only inputs whose address or strides are not whole elements, or
// whose bytes are not in the machine's order, are copied.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <pthread.h>
#include <sys/mman.h>
#if defined(__GLIBCXX__)
#include <cxxabi.h>
#endif

#include <array>
#include <cmath>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "../cpu/dispatch.h"
#include "../cpu/engine.h"
#include "../cpu/env.h"
#include "../cpu/fp_env.h"
#include "../cpu/losses.h"
#include "../cpu/op_info.h"
#include "../cpu/tables16.h"
#include "../cpu/thread_pool.h"
#include "../layout.h"
#include "dlpack_import.h"
#include "fastact/fastact.h"
#include "gil.h"

namespace py = pybind11;
using namespace fastact;

namespace {

using layout::kMaxDims;

// The Python side of the call path, handed over once by fastact/__init__.py (_set_hooks) and read under
// the GIL. Nothing is imported during a call: an import inside a C++ function-local static held its
// initialisation guard while Python ran, and threads making their first calls at once deadlocked.
// The references are never released (the interpreter may finalize before static destructors run).
struct Hooks {
  PyObject* as_array = nullptr;   // _dispatch.as_array: scalars, lists, GPU arrays reaching the CPU path
  PyObject* gpu_route = nullptr;  // _dispatch.gpu_route: runs a call on the GPU, or NotImplemented
  PyObject* bfloat16 = nullptr;   // _dispatch.bfloat16_dtype: ml_dtypes' bfloat16 NumPy dtype, imported on use
};
Hooks g_hooks;
PyObject* g_numpy_generic = nullptr;  // numpy.generic, for parameters given as NumPy scalars

py::object hook(PyObject* f) {
  if (!f) throw py::import_error("fastact._core is used through the fastact package (import fastact)");
  return py::reinterpret_borrow<py::object>(f);
}
py::object coerce_fn() { return hook(g_hooks.as_array); }
py::object gpu_route_fn() { return hook(g_hooks.gpu_route); }

// GPU arrays (and stream=) go to fastact._dispatch.gpu_route, which answers NotImplemented when every
// argument is on the CPU. NumPy arrays never pay for the check.
bool maybe_gpu(py::handle a, py::handle b, py::handle out, py::handle stream) {
  auto plain = [](py::handle h) { return h.is_none() || py::isinstance<py::array>(h); };
  return !stream.is_none() || !plain(a) || !plain(b) || !plain(out);
}

// The public function's name, put together only when a message needs it (most calls never do).
struct Fn {
  const char* op;
  bool backward;
  std::string str() const { return std::string(op) + (backward ? "_backward" : ""); }
};
std::string operator+(const Fn& f, const char* s) { return f.str() + s; }

// A NumPy view of a CPU DLPack tensor (PyTorch and JAX CPU arrays, NumPy itself), any of the four
// dtypes, read only where the producer says so (or cannot say: dlpack_import.h).
py::array from_dlpack(py::handle obj, const Fn& fn, const char* name, bool for_output = false) {
  const std::string what = "fastact." + fn.str() + ": " + name;
  if (PyObject_HasAttrString(obj.ptr(), "requires_grad") && py::object(obj.attr("requires_grad")).ptr() == Py_True)
    throw py::value_error(what + " requires grad, and fastact records no autograd history; pass " + name +
                          ".detach()");
  dlpack::Imported t = dlpack::import_capsule(dlpack::call_dlpack(obj, what, {}, for_output), what);
  if (for_output && t.copied)
    throw py::value_error(what + " was exported as a copy (DLPack's IS_COPIED flag): results written there would "
                          "not reach it; pass an array fastact can write in place");
  if (t.device_type != dlpack::kCPU && t.device_type != dlpack::kCUDAHost)
    throw py::value_error(what + " was exported for DLPack device type " + std::to_string(t.device_type) +
                          ", not the CPU");
  const int bits = t.dtype.bits, dcode = t.dtype.lanes == 1 ? kinds::dtype_of_dlpack(t.dtype.code, bits) : -1;
  if (dcode < 0)
    throw py::type_error(what + " has DLPack dtype (code " + std::to_string(t.dtype.code) + ", " + std::to_string(bits) +
                         " bits); expected " + kinds::kDtypeList);
  constexpr int kNpyTypeNum[kinds::kNumDtypes] = {11, 12, 23, -1};  // NumPy's type numbers (bfloat16: ml_dtypes')
  py::object dt = dcode == kinds::kBF16 ? hook(g_hooks.bfloat16)(fn.str(), name) : py::dtype(kNpyTypeNum[dcode]);
  const std::int64_t isz = bits / 8;
  std::vector<Py_intptr_t> shape(t.shape.begin(), t.shape.end()), strides(t.shape.size());
  for (std::size_t i = 0; i < t.shape.size(); ++i)
    if (__builtin_mul_overflow(t.strides[i], isz, &strides[i]))
      throw py::value_error(what + " has a stride too large to describe in bytes");
  auto& api = py::detail::npy_api::get();
  PyObject* arr = api.PyArray_NewFromDescr_(api.PyArray_Type_, dt.release().ptr(), int(shape.size()), shape.data(),
                                            strides.data(), t.data,
                                            t.read_only ? 0 : py::detail::npy_api::NPY_ARRAY_WRITEABLE_, nullptr);
  if (!arr) throw py::error_already_set();
  py::array r = py::reinterpret_steal<py::array>(arr);
  if (api.PyArray_SetBaseObject_(arr, t.owner.release().ptr()) != 0) throw py::error_already_set();
  return r;
}

bool has_dlpack(py::handle h) {
  return PyObject_HasAttrString(h.ptr(), "__dlpack__") && PyObject_HasAttrString(h.ptr(), "__dlpack_device__");
}

// The device type a __dlpack_device__ names, or a TypeError naming the argument when it names none.
int dlpack_device_type(py::handle h, const Fn& fn, const char* name) {
  py::object dev;
  try {
    dev = h.attr("__dlpack_device__")();
  } catch (py::error_already_set& e) {
    if (!e.matches(PyExc_Exception) || e.matches(PyExc_MemoryError)) throw;
    throw py::type_error("fastact." + fn.str() + ": " + name + ".__dlpack_device__() failed: " +
                         std::string(py::str(e.value())));
  }
  if (PyTuple_Check(dev.ptr()) && PyTuple_GET_SIZE(dev.ptr()) == 2) {
    const long v = PyLong_AsLong(PyTuple_GET_ITEM(dev.ptr(), 0));
    if (!(v == -1 && PyErr_Occurred())) return int(v);
    PyErr_Clear();
  }
  throw py::type_error("fastact." + fn.str() + ": " + name + ".__dlpack_device__() returned " +
                       std::string(py::repr(dev)) + "; expected a (device_type, device_id) tuple");
}

// An ndarray for arg: NumPy arrays as they are, CPU DLPack tensors as views; the rest (Python scalars
// and lists, GPU arrays that reached the CPU path) through fastact._dispatch.as_array.
// numpy.ma arrays are ndarrays whose mask fastact would drop without a word: refused, as input or out=.
void refuse_masked(py::handle h, const Fn& fn, const char* name) {
  if (Py_TYPE(h.ptr()) != py::detail::npy_api::get().PyArray_Type_ && PyObject_HasAttrString(h.ptr(), "_mask") &&
      PyObject_HasAttrString(h.ptr(), "filled"))
    throw py::type_error("fastact." + fn.str() + ": " + name + " is a masked array; pass " + name +
                         ".filled(value) or " + name + ".data");
}

py::array to_array(py::handle h, const Fn& fn, const char* name, bool for_output = false) {
  if (py::isinstance<py::array>(h)) {
    refuse_masked(h, fn, name);
    return py::reinterpret_borrow<py::array>(h);
  }
  if (has_dlpack(h) && !PyObject_HasAttrString(h.ptr(), "__cuda_array_interface__")) {
    const int dev = dlpack_device_type(h, fn, name);
    if (dev == dlpack::kCPU || dev == dlpack::kCUDAHost) return from_dlpack(h, fn, name, for_output);
    if (dev != dlpack::kCUDA && dev != dlpack::kCUDAManaged)
      throw py::value_error("fastact." + fn.str() + ": " + name + " is on DLPack device type " + std::to_string(dev) +
                            "; fastact runs on the CPU and on CUDA GPUs");
  }
  if (for_output) throw py::type_error("fastact." + fn.str() + ": out must be a NumPy array or a DLPack tensor (with "
                                       "__dlpack__ and __dlpack_device__), got " +
                                       std::string(Py_TYPE(h.ptr())->tp_name));
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
    static std::atomic<int> bf16_type_num{-1};
    const int num = py::detail::array_descriptor_proxy(dt.ptr())->type_num;
    if (num == bf16_type_num.load(std::memory_order_relaxed)) {
      code = cpu::kBF16;
    } else if (std::string(py::str(dt)) == "bfloat16") {
      bf16_type_num.store(num, std::memory_order_relaxed);
      code = cpu::kBF16;
    }
  }
  if (code < 0)
    throw py::type_error(fn + ": " + name + " has dtype " + std::string(py::str(dt)) +
                         "; expected " + kinds::kDtypeList);
  if (!native_order(dt)) {
    if (is_out) throw py::type_error(fn + ": out must be in the machine's byte order (got " +
                                     std::string(py::str(dt.attr("str"))) + ")");
    a = a.attr("astype")(dt.attr("newbyteorder")("="));
  }
  return code;
}

const char* dtype_name(int code) { return kinds::kDtypes[code].name; }
int elsize_of(int code) { return kinds::kDtypes[code].itemsize; }

// py::array() would allocate an empty array: members start as null handles instead.
py::array null_array() { return py::reinterpret_steal<py::array>(py::handle()); }

// Whether a's address and strides are whole elements.
bool whole_elements(const py::array& a) {
  const ssize_t isz = a.itemsize();
  bool ok = reinterpret_cast<std::uintptr_t>(a.data()) % isz == 0;
  for (ssize_t i = 0; i < a.ndim(); ++i) ok = ok && a.strides(i) % isz == 0;
  return ok;
}

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
  const bool aligned = whole_elements(a_in);
  View v;
  const py::array* a = &a_in;
  py::array copy = null_array();
  if (!aligned) {
    if (writable) throw py::value_error(fn + ": " + name + " must be aligned to its element size");
    // a new buffer (NumPy's own allocation is aligned): ascontiguousarray would hand a misaligned but
    // contiguous array back as it is
    copy = py::module_::import("numpy").attr("array")(a_in, py::arg("copy") = true, py::arg("order") = "C");
    v.arr = copy;
    a = &copy;
    st = a->strides();
  }
  v.data = static_cast<char*>(const_cast<void*>(a->data()));
  for (ssize_t i = 0; i < nd; ++i) v.strides[i] = st[i] / isz;
  return v;
}

std::string shape_str(int nd, const std::int64_t* shape) {
  std::string r = "(";
  for (int i = 0; i < nd; ++i) r += std::to_string(shape[i]) + (nd == 1 ? "," : i + 1 < nd ? ", " : "");
  return r + ")";
}

// ---- The checks the CPU and the GPU share. Each path reads its arrays its own way (NumPy and DLPack
// here; CUDA array interface, DLPack and torch in fastact.cuda) and describes them as Specs; the checks of
// dtypes, shapes and axes, with their messages, are these functions (the GPU's through _core._plan).
struct Spec {
  const char* name = nullptr;
  int code = -1;  // the dtype code; -1: the argument was not given
  int nd = 0;
  const std::int64_t* shape = nullptr;
  bool given() const { return code >= 0; }
};
Spec spec_of(const py::array& a, int code, const char* name) {
  return {name, code, int(a.ndim()), reinterpret_cast<const std::int64_t*>(a.shape())};
}

void same_dtype(const Fn& fn, const Spec& first, const Spec& b) {
  if (b.code != first.code)
    throw py::type_error(fn + ": " + b.name + " has dtype " + dtype_name(b.code) + " but " + first.name + " has " +
                         dtype_name(first.code) + "; pass arrays of one dtype");
}

void same_shape(const Fn& fn, const char* like_name, int nd, const std::int64_t* shape, const Spec& b) {
  if (nd != b.nd || !std::equal(shape, shape + nd, b.shape))
    throw py::value_error(fn + ": " + b.name + " must have the shape of " + like_name + " " + shape_str(nd, shape) +
                          ", got " + shape_str(b.nd, b.shape));
}

void check_dims(const Fn& fn, const Spec& a) {
  if (a.nd > kMaxDims) throw py::value_error(fn + ": at most 64 dimensions");
}

// An output against what it must be: the input's dtype, the shape of like_name.
void check_output(const Fn& fn, const Spec& out, int code, const char* like_name, int nd, const std::int64_t* shape) {
  if (out.code != code)
    throw py::type_error(fn + ": " + out.name + " has dtype " + dtype_name(out.code) + "; expected " + dtype_name(code) +
                         " (the input's)");
  same_shape(fn, like_name, nd, shape, out);
}

// Whether two arrays share a byte (layout::may_share_memory).
bool shares_memory(const py::array& a, const py::array& b) {
  return layout::may_share_memory(reinterpret_cast<std::uintptr_t>(a.data()), int(a.ndim()),
                                  reinterpret_cast<const std::int64_t*>(a.shape()),
                                  reinterpret_cast<const std::int64_t*>(a.strides()),
                                  reinterpret_cast<std::uintptr_t>(b.data()), int(b.ndim()),
                                  reinterpret_cast<const std::int64_t*>(b.shape()),
                                  reinterpret_cast<const std::int64_t*>(b.strides()), a.itemsize());
}

// Whether out must be written through a temporary because of in (layout::overlaps_differently).
bool needs_temp(const py::array& out, const py::array& in) {
  static_assert(sizeof(ssize_t) == sizeof(std::int64_t), "NumPy strides are read as int64");
  return layout::overlaps_differently(reinterpret_cast<std::uintptr_t>(out.data()),
                                      reinterpret_cast<const std::int64_t*>(out.strides()),
                                      reinterpret_cast<std::uintptr_t>(in.data()),
                                      reinterpret_cast<const std::int64_t*>(in.strides()), int(out.ndim()),
                                      reinterpret_cast<const std::int64_t*>(out.shape()), out.itemsize());
}

// Large results come from a small cache of recently released buffers. Fresh memory costs the kernel
// zeroing its pages on first touch (about 0.25 ns per float32 element, more than relu itself), and a
// loop over batches frees and makes a result of the same size every call. Buffers of at least 1 MiB
// are kept, up to FASTACT_RESULT_CACHE_MB in all (default 256; 0 turns the cache off), and given back to
// the system once unused for kIdle (a helper thread, alive only while the cache holds something) or on
// fastact.release_memory(). The results are ordinary NumPy arrays that own their memory: NumPy allocates
// them through this cache's data-memory handler (NEP 49), so they free, resize and pickle as any other.
class ResultCache {
 public:
  static constexpr std::size_t kMinBytes = std::size_t(1) << 20;
  static constexpr std::size_t kMaxBlocks = 8;
  static constexpr auto kIdle = std::chrono::seconds(2);

  static ResultCache& get() {
    static ResultCache* c = [] {
      auto* cache = new ResultCache();  // never destroyed: arrays may outlive static destruction
      g_cache = cache;
      // A fork copies the cache consistent: no other thread is inside it (prepare takes its lock). The
      // child has no helper thread, and its condition variable must not count the parent's waiter.
      pthread_atfork([] { g_cache->m_.lock(); }, [] { g_cache->m_.unlock(); },
                     [] {
                       g_cache->m_.unlock();
                       new (&g_cache->idle_cv_) std::condition_variable();
                       g_cache->reaper_running_ = false;
                     });
      return cache;
    }();
    return *c;
  }
  std::size_t limit() const { return limit_; }
  std::size_t held() {
    std::lock_guard<std::mutex> lk(m_);
    return held_;
  }
  std::size_t release_all() {
    std::lock_guard<std::mutex> lk(m_);
    const std::size_t freed = held_;
    while (!blocks_.empty()) drop_oldest();
    return freed;
  }

  // A block of at least n bytes (64-byte aligned): a cached one no more than twice as big, or a new one.
  // (null when there is no memory: NumPy then raises MemoryError). NumPy calls take, give and capacity
  // from C: nothing may escape them.
  void* take(std::size_t n) noexcept try {
    {
      std::lock_guard<std::mutex> lk(m_);
      std::size_t best = blocks_.size();
      for (std::size_t i = 0; i < blocks_.size(); ++i)
        if (blocks_[i].size >= n && blocks_[i].size <= 2 * n && (best == blocks_.size() || blocks_[i].size < blocks_[best].size))
          best = i;
      if (best != blocks_.size()) {
        const Block b = blocks_[best];
        live_.emplace(b.ptr, b.size);  // first: if it throws, the block stays in the cache
        blocks_.erase(blocks_.begin() + std::ptrdiff_t(best));
        held_ -= b.size;
        return b.ptr;
      }
    }
    // Big blocks on 2 MiB boundaries, offered to transparent huge pages (as NumPy does): fewer faults.
    constexpr std::size_t kHuge = std::size_t(2) << 20;
    void* p = nullptr;
    if (posix_memalign(&p, n >= 2 * kHuge ? kHuge : 64, n) != 0) return nullptr;
#ifdef MADV_HUGEPAGE
    if (n >= 2 * kHuge) madvise(p, n, MADV_HUGEPAGE);
#endif
    try {
      std::lock_guard<std::mutex> lk(m_);
      live_[p] = n;
    } catch (...) {
      std::free(p);
      return nullptr;
    }
    return p;
  } catch (...) {
    return nullptr;
  }
  void give(void* p) noexcept try {
    if (!p) return;
    std::lock_guard<std::mutex> lk(m_);
    const auto it = live_.find(p);
    if (it == live_.end()) {  // never the case: NumPy frees through the handler that allocated
      std::free(p);
      return;
    }
    const std::size_t size = it->second;
    live_.erase(it);
    // small blocks (what a garbage-collector pass allocated while the handler was set) are not kept
    if (size > limit_ || size < kMinBytes) {
      std::free(p);
      return;
    }
    while (!blocks_.empty() && (held_ + size > limit_ || blocks_.size() >= kMaxBlocks)) drop_oldest();
    blocks_.push_back({p, size, std::chrono::steady_clock::now()});
    held_ += size;
    if (!reaper_running_) start_reaper();
  } catch (...) {  // only a failing lock could get here (p is then neither cached nor freed: kept)
  }
  std::size_t capacity(void* p) noexcept try {  // 0 for a block this cache did not hand out (never the case)
    std::lock_guard<std::mutex> lk(m_);
    const auto it = live_.find(p);
    return it == live_.end() ? 0 : it->second;
  } catch (...) {
    return 0;
  }

  // NumPy's data-memory handler (NEP 49) over this cache; NumPy calls it with the GIL held.
  struct Handler {
    char name[127];
    std::uint8_t version;
    void* ctx;
    void* (*malloc)(void*, std::size_t);
    void* (*calloc)(void*, std::size_t, std::size_t);
    void* (*realloc)(void*, void*, std::size_t);
    void (*free)(void*, void*, std::size_t);
  };
  static Handler handler;

 private:
  // blocks_ never grows past kMaxBlocks + 1: reserved, so give() (NumPy's free) cannot fail to allocate
  ResultCache() : limit_(std::size_t(cpu::env_int("FASTACT_RESULT_CACHE_MB", 0, 1 << 20).value_or(256)) << 20) {
    blocks_.reserve(kMaxBlocks + 1);
  }
  struct Block {
    void* ptr;
    std::size_t size;
    std::chrono::steady_clock::time_point released;
  };
  void drop_oldest() {  // under m_
    std::free(blocks_.front().ptr);
    held_ -= blocks_.front().size;
    blocks_.erase(blocks_.begin());
  }
  void start_reaper() {  // under m_
    try {
      std::thread([this] { reap(); }).detach();
      reaper_running_ = true;
    } catch (...) {  // no thread (or no memory for one): blocks stay until reused, evicted or released
    }
  }
  void reap() {
    std::unique_lock<std::mutex> lk(m_);
    while (!blocks_.empty()) {
      idle_cv_.wait_for(lk, kIdle);
      const auto now = std::chrono::steady_clock::now();
      while (!blocks_.empty() && now - blocks_.front().released >= kIdle) drop_oldest();
    }
    reaper_running_ = false;
  }

  static ResultCache* g_cache;
  std::mutex m_;
  std::condition_variable idle_cv_;
  std::vector<Block> blocks_;  // oldest first
  std::unordered_map<void*, std::size_t> live_;  // blocks handed out, and their sizes
  std::size_t held_ = 0;
  const std::size_t limit_;
  bool reaper_running_ = false;
};
ResultCache* ResultCache::g_cache = nullptr;

ResultCache::Handler ResultCache::handler = {
    "fastact_result_cache", 1, nullptr,
    [](void*, std::size_t n) { return ResultCache::get().take(n ? n : 1); },
    [](void*, std::size_t count, std::size_t size) -> void* {
      std::size_t n;
      if (__builtin_mul_overflow(count, size, &n)) return nullptr;
      void* p = ResultCache::get().take(n ? n : 1);
      if (p) std::memset(p, 0, n);
      return p;
    },
    [](void*, void* p, std::size_t n) -> void* {
      ResultCache& c = ResultCache::get();
      if (!p) return c.take(n ? n : 1);
      const std::size_t cap = c.capacity(p);
      if (cap == 0) return nullptr;  // NumPy raises MemoryError; p stays valid
      if (n <= cap) return p;
      void* q = c.take(n);
      if (!q) return nullptr;
      std::memcpy(q, p, cap);
      c.give(p);
      return q;
    },
    [](void*, void* p, std::size_t) { ResultCache::get().give(p); },
};

// NumPy's PyDataMem_SetHandler (C API slot 304, NumPy >= 1.22), and the handler capsule; null when the
// NumPy in use predates NEP 49 (large results then come from NumPy's own allocator).
using SetHandlerFn = PyObject* (*)(PyObject*);
SetHandlerFn g_set_handler = nullptr;
PyObject* g_handler_capsule = nullptr;

void init_result_handler() {
  py::module_ m = py::detail::import_numpy_core_submodule("multiarray");
  void** api = static_cast<void**>(PyCapsule_GetPointer(m.attr("_ARRAY_API").ptr(), nullptr));
  if (!api) throw py::error_already_set();
  const auto feature_version = reinterpret_cast<unsigned (*)()>(api[211])();
  if (feature_version < 0xf) return;  // NPY_1_22_API_VERSION
  g_set_handler = reinterpret_cast<SetHandlerFn>(api[304]);
  g_handler_capsule = PyCapsule_New(&ResultCache::handler, "mem_handler", nullptr);
  if (!g_handler_capsule) throw py::error_already_set();
}

// A new array of a's shape and dtype (Fortran order when a is, else C order); large ones through the
// result cache.
py::array new_like(const py::array& a) {
  const ssize_t nd = a.ndim();
  const bool f_order = nd > 1 && (a.flags() & py::array::f_style) && !(a.flags() & py::array::c_style);
  std::size_t nbytes = std::size_t(a.itemsize());
  for (ssize_t i = 0; i < nd; ++i) nbytes *= std::size_t(a.shape(i));
  const bool cached = nbytes >= ResultCache::kMinBytes && g_set_handler && ResultCache::get().limit() > 0;
  PyObject* previous = nullptr;
  if (cached && !(previous = g_set_handler(g_handler_capsule))) throw py::error_already_set();
  // NumPy's own constructor, straight: strides from the order flag, no containers in between.
  auto& api = py::detail::npy_api::get();
  PyObject* descr = py::detail::array_proxy(a.ptr())->descr;
  Py_INCREF(descr);  // stolen by the constructor
  PyObject* r = api.PyArray_NewFromDescr_(api.PyArray_Type_, descr, int(nd), const_cast<Py_intptr_t*>(a.shape()),
                                          nullptr, nullptr, f_order ? py::detail::npy_api::NPY_ARRAY_F_CONTIGUOUS_ : 0,
                                          nullptr);
  if (cached) {
    py::error_scope keep;  // the constructor's error, if any, survives putting the handler back
    Py_XDECREF(g_set_handler(previous));
    Py_DECREF(previous);
  }
  if (!r) throw py::error_already_set();
  return py::reinterpret_steal<py::array>(r);
}

// Whether two indices of a reach one element (layout.h); a's strides are whole elements.
bool has_self_overlap(const py::array& a) {
  if (a.flags() & (py::array::c_style | py::array::f_style)) return false;  // dense: the usual out=, at once
  std::int64_t strides[kMaxDims];
  const ssize_t nd = a.ndim() > kMaxDims ? kMaxDims : a.ndim();
  for (ssize_t i = 0; i < nd; ++i) strides[i] = a.strides(i) / a.itemsize();
  return layout::has_internal_overlap(int(nd), reinterpret_cast<const std::int64_t*>(a.shape()), strides);
}

// Validates out= (or makes a new array) and says whether results must go through a temporary.
py::array prepare_out(py::handle out_h, const py::array& like, int dtype, const py::array* const* inputs,
                      int n_inputs, const Fn& fn, bool& temp, const char* like_name = "the input") {
  temp = false;
  if (out_h.is_none()) return new_like(like);
  py::array out = null_array();
  if (py::isinstance<py::array>(out_h)) {
    refuse_masked(out_h, fn, "out");
    out = py::reinterpret_borrow<py::array>(out_h);
  } else if (py::hasattr(out_h, "__dlpack__")) {  // e.g. a torch tensor, written in place (never a copy)
    out = to_array(out_h, fn, "out", true);
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
  if (out_code < 0)
    throw py::type_error(fn + ": out has dtype " + std::string(py::str(out.dtype())) + "; expected " +
                         dtype_name(dtype) + " (the input's)");
  check_output(fn, spec_of(out, out_code, "out"), dtype, like_name, int(like.ndim()),
               reinterpret_cast<const std::int64_t*>(like.shape()));
  if (!out.writeable()) throw py::value_error(fn + ": out is read-only");
  // whole elements first: the overlap checks below and the kernels count in elements, and an out= that
  // goes through a temporary would otherwise never meet the kernels' own check
  if (!whole_elements(out)) throw py::value_error(fn + ": out must be aligned to its element size");
  if (has_self_overlap(out))
    throw py::value_error(fn + ": out has elements that share memory (a broadcast or overlapping view), so what it "
                          "would hold depends on the order of the writes; pass an array whose elements are distinct");
  for (int i = 0; i < n_inputs; ++i) temp = temp || needs_temp(out, *inputs[i]);
  return out;
}

using Params = std::array<double, kMaxParams>;

// One parameter as a double, or a TypeError / ValueError naming it: real numbers only (Python ints and
// floats, NumPy scalars and 0-d arrays of a real dtype, objects with __float__); never a bool, a complex,
// an array of several values, or an int too large for a double.
double param_value(const cpu::OpInfo& info, const Fn& fn, std::size_t i, PyObject* v) {
  if (PyFloat_CheckExact(v)) return PyFloat_AS_DOUBLE(v);  // the usual case: the default or a float literal
  const std::string name = fn.str() + ": " + info.params[i].name;
  auto type_name = [&] { return std::string(Py_TYPE(v)->tp_name); };
  if (PyBool_Check(v)) throw py::type_error(name + " must be a real number, got bool");
  if (PyComplex_Check(v)) throw py::type_error(name + " must be a real number, got " + type_name());
  const int generic = g_numpy_generic ? PyObject_IsInstance(v, g_numpy_generic) : 0;
  if (generic < 0) throw py::error_already_set();
  if (py::isinstance<py::array>(v) || generic == 1) {
    py::array a = py::array::ensure(v);
    if (!a) throw py::error_already_set();
    if (a.ndim() != 0)
      throw py::type_error(name + " must be a real number, got an array of shape " +
                           std::string(py::str(py::tuple(py::cast(std::vector<ssize_t>(a.shape(), a.shape() + a.ndim()))))));
    const char k = a.dtype().kind();
    if (k != 'f' && k != 'i' && k != 'u')
      throw py::type_error(name + " must be a real number, got a NumPy " + std::string(py::str(a.dtype())));
  } else if (!PyLong_Check(v) && !PyFloat_Check(v) && !PyNumber_Check(v)) {
    throw py::type_error(name + " must be a real number, got " + type_name());
  }
  const double d = PyFloat_AsDouble(v);
  if (d == -1.0 && PyErr_Occurred()) {
    if (!PyErr_ExceptionMatches(PyExc_Exception) || PyErr_ExceptionMatches(PyExc_MemoryError))
      throw py::error_already_set();  // KeyboardInterrupt, SystemExit, MemoryError: as they are
    const bool overflow = PyErr_ExceptionMatches(PyExc_OverflowError);
    PyErr_Clear();
    if (overflow) throw py::value_error(name + " is too large for a float64 (" + std::string(py::repr(v)).substr(0, 40) + ")");
    throw py::type_error(name + " must be a real number, got " + type_name());
  }
  return d;
}

Params read_params(const cpu::OpInfo& info, const Fn& fn, PyObject* params) {
  Params p{};
  if (!PyTuple_Check(params) || PyTuple_GET_SIZE(params) != Py_ssize_t(info.params.size()))
    throw py::type_error(fn.str() + ": expected a tuple of " + std::to_string(info.params.size()) + " parameters");
  for (size_t i = 0; i < info.params.size(); ++i)
    p[i] = param_value(info, fn, i, PyTuple_GET_ITEM(params, Py_ssize_t(i)));
  return p;
}

// A PyTorch tensor written through DLPack: its autograd version counter moves, as after torch's own
// in-place ops, so that a backward which saved it raises instead of using the new values. torch is looked
// up among the loaded modules (the tensor could not exist without it), never imported here.
void note_in_place_write(py::handle out_h) {
  if (!PyObject_HasAttrString(out_h.ptr(), "_version")) return;
  const py::str name("torch");
  PyObject* torch = PyImport_GetModule(name.ptr());  // a new reference, or null
  if (!torch) {
    PyErr_Clear();
    return;
  }
  const py::object mod = py::reinterpret_steal<py::object>(torch);
  try {
    mod.attr("autograd").attr("graph").attr("increment_version")(out_h);
  } catch (py::error_already_set& e) {
    if (!e.matches(PyExc_AttributeError)) throw;  // a PyTorch without it: nothing to tell
  }
}

// The result: out= as the caller passed it (a NumPy array, or a DLPack tensor written in place), else
// the new array. dst went through a temporary when out overlapped an input.
py::object finish(const py::array& out, const py::array& dst, py::handle out_h, bool temp) {
  if (temp) py::module_::import("numpy").attr("copyto")(out, dst);
  if (out_h.is_none()) return dst;
  if (!py::isinstance<py::array>(out_h)) note_in_place_write(out_h);
  return py::reinterpret_borrow<py::object>(out_h);
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

// The inputs of an element-wise or row call: a, and b (the backward's second input) of a's dtype and shape.
void check_operands(const Fn& fn, const Spec& a, const Spec& b) {
  if (b.given()) {
    same_dtype(fn, a, b);
    same_shape(fn, a.name, a.nd, a.shape, b);
  }
  check_dims(fn, a);
}

// a_h: x or grad_output; b_h (backward only): the backward's x or y.
void prepare(Call& c, py::handle a_h, py::handle b_h, py::handle out_h, const char* an, const char* bn) {
  c.a = to_array(a_h, c.fn, an);
  c.dtype = dtype_code(c.a, c.fn, an);
  if (c.fn.backward) {
    c.b = to_array(b_h, c.fn, bn);
    const int b_code = dtype_code(c.b, c.fn, bn);
    check_operands(c.fn, spec_of(c.a, c.dtype, an), spec_of(c.b, b_code, bn));
  } else {
    check_operands(c.fn, spec_of(c.a, c.dtype, an), Spec{});
  }
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
  bindings::without_gil(f);
}

py::object elementwise(int op, int dir, py::handle a_h, py::handle b_h, py::handle out_h, PyObject* params,
                       py::handle stream_h) {
  const auto& ops = cpu::elementwise_ops();
  if (op < 0 || std::size_t(op) >= ops.size() || ops[std::size_t(op)].kind != cpu::OpKind::Unary ||
      dir < cpu::kForward || dir > cpu::kBackwardY)
    throw py::value_error("_elementwise: no such op or direction");
  const cpu::OpInfo& info = ops[std::size_t(op)];
  Call c;
  c.fn = {info.name, dir != cpu::kForward};
  const Params p = read_params(info, c.fn, params);
  if (dir == cpu::kBackwardY) cpu::check_backward_from_y(info, p.data());  // needs only the parameters' signs
  if (maybe_gpu(a_h, b_h, out_h, stream_h)) {
    py::object r = gpu_route_fn()("elementwise", op, dir, c.fn.str(), a_h, b_h, out_h,
                                  std::vector<double>(p.begin(), p.end()), stream_h);
    if (!r.is(py::handle(Py_NotImplemented))) return r;
  }
  prepare(c, a_h, b_h, out_h, c.fn.backward ? "grad_output" : "x", dir == cpu::kBackwardX ? "x" : "y");
  cpu::check_params(info, p.data(), c.dtype, c.fn.backward);
  cpu::EwKernel k = cpu::tables16::pick(cpu::active_table(), op, dir, c.dtype, c.size);
  run_released(c.size, [&] {
    cpu::run_elementwise(k, c.elsize(), c.ndim, c.shape, c.vo.data, c.vo.strides, {c.va.data, c.va.strides},
                         {c.fn.backward ? c.vb.data : nullptr, c.vb.strides}, p.data());
  });
  return finish(c.out, c.dst, out_h, c.temp);
}

// axis= as a C long: any integer (NumPy's included, through __index__), but not a bool.
long read_axis(py::handle axis_h, const Fn& fn, const char* name = "axis") {
  if (PyBool_Check(axis_h.ptr()) || !PyIndex_Check(axis_h.ptr()))
    throw py::type_error(fn + ": " + name + " must be an int, got " + std::string(Py_TYPE(axis_h.ptr())->tp_name));
  const py::object axis_int = py::reinterpret_steal<py::object>(PyNumber_Index(axis_h.ptr()));
  if (!axis_int) {  // an __index__ that refuses (a NumPy array of one or more values, a float array)
    if (!PyErr_ExceptionMatches(PyExc_TypeError)) throw py::error_already_set();
    PyErr_Clear();
    throw py::type_error(fn + ": " + name + " must be an int, got " + std::string(Py_TYPE(axis_h.ptr())->tp_name));
  }
  const long axis = PyLong_AsLong(axis_int.ptr());
  if (axis == -1 && PyErr_Occurred()) {
    PyErr_Clear();
    throw py::value_error(fn + ": " + name + " " + std::string(py::str(axis_h)) + " is out of range");
  }
  return axis;
}

// The axis of an array of ndim dimensions named by axis (negative: from the end), or a ValueError.
int axis_index(long axis, int ndim, const Fn& fn, const char* name) {
  if (ndim == 0) throw py::value_error(fn + ": " + name + " must have at least one dimension (got a 0-d array)");
  if (axis < -ndim || axis >= ndim)
    throw py::value_error(fn + ": axis " + std::to_string(axis) + " is out of range for an array of " +
                          std::to_string(ndim) + " dimensions");
  return int(axis < 0 ? axis + ndim : axis);
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
  const long axis_in = read_axis(axis_h, c.fn);
  if (maybe_gpu(a_h, b_h, out_h, stream_h)) {
    py::object r = gpu_route_fn()("rows", op, dir, c.fn.str(), a_h, b_h, out_h, axis_in, stream_h);
    if (!r.is(py::handle(Py_NotImplemented))) return r;
  }
  // Rows read all their inputs before writing, but only within a row: prepare() sends any overlap that
  // is not the very same layout through a temporary.
  const char* an = c.fn.backward ? "grad_output" : "x";
  prepare(c, a_h, b_h, out_h, an, "y");
  const int axis = axis_index(axis_in, c.ndim, c.fn, an);
  cpu::RowKernel k = cpu::active_table().row[op][dir][c.dtype];
  run_released(c.size, [&] {
    cpu::run_rows(k, c.elsize(), c.ndim, c.shape, axis, c.vo.data, c.vo.strides, {c.va.data, c.va.strides},
                  {c.fn.backward ? c.vb.data : nullptr, c.vb.strides});
  });
  return finish(c.out, c.dst, out_h, c.temp);
}

// A view of x's first or second half along axis (its base keeps x alive).
py::array half_of(const py::array& x, int axis, bool second, bool writable) {
  std::vector<Py_intptr_t> shape(x.shape(), x.shape() + x.ndim()), strides(x.strides(), x.strides() + x.ndim());
  shape[std::size_t(axis)] /= 2;
  char* data = static_cast<char*>(const_cast<void*>(x.data())) +
               (second ? shape[std::size_t(axis)] * strides[std::size_t(axis)] : 0);
  auto& api = py::detail::npy_api::get();
  PyObject* descr = py::detail::array_proxy(x.ptr())->descr;
  Py_INCREF(descr);  // stolen
  PyObject* r = api.PyArray_NewFromDescr_(api.PyArray_Type_, descr, int(x.ndim()), shape.data(), strides.data(), data,
                                          writable ? py::detail::npy_api::NPY_ARRAY_WRITEABLE_ : 0, nullptr);
  if (!r) throw py::error_already_set();
  py::array v = py::reinterpret_steal<py::array>(r);
  if (api.PyArray_SetBaseObject_(r, x.inc_ref().ptr()) != 0) throw py::error_already_set();
  return v;
}

bool on_cpu_or_none(py::handle h) { return h.is_none() || py::isinstance<py::array>(h); }

// Whether every argument of a several-operand call is a NumPy array or None, out= a tuple of them included
// (anything else goes to the GPU route first).
bool plain_call(std::initializer_list<py::handle> args, py::handle out_h, py::handle stream_h) {
  bool plain = stream_h.is_none();
  for (py::handle h : args) plain = plain && on_cpu_or_none(h);
  if (PyTuple_Check(out_h.ptr()))
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(out_h.ptr()); ++i) plain = plain && on_cpu_or_none(PyTuple_GET_ITEM(out_h.ptr(), i));
  else
    plain = plain && on_cpu_or_none(out_h);
  return plain;
}

// out= of a two-output backward: None, or a tuple (first, grad_<second>), each an array or None.
std::array<py::handle, 2> out_pair(py::handle out_h, const Fn& fn, const char* first, const char* second) {
  std::array<py::handle, 2> o = {py::none(), py::none()};
  if (out_h.is_none()) return o;
  if (!PyTuple_Check(out_h.ptr()) || PyTuple_GET_SIZE(out_h.ptr()) != 2)
    throw py::type_error(fn + ": out must be a tuple (" + first + ", grad_" + second + "), each an array or None, got " +
                         std::string(Py_TYPE(out_h.ptr())->tp_name));
  o[0] = PyTuple_GET_ITEM(out_h.ptr(), 0);
  o[1] = PyTuple_GET_ITEM(out_h.ptr(), 1);
  return o;
}

// A call's outputs: the arrays returned (outs) and those written (dsts: a temporary where an output
// overlaps an input other than as its very same elements).
struct Outputs {
  std::vector<py::array> outs, dsts;
  std::vector<char> temps;
  void add(py::array o, bool temp, const py::array& like) {
    outs.push_back(o);
    dsts.push_back(temp ? new_like(like) : o);
    temps.push_back(temp);
  }
  // After the kernels: temporaries copied out; PyTorch tensors written through DLPack told (autograd).
  void finish(py::handle out_h) const {
    for (std::size_t o = 0; o < outs.size(); ++o)
      if (temps[o]) py::module_::import("numpy").attr("copyto")(outs[o], dsts[o]);
    if (PyTuple_Check(out_h.ptr())) {
      for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(out_h.ptr()); ++i) {
        py::handle o = PyTuple_GET_ITEM(out_h.ptr(), i);
        if (!on_cpu_or_none(o)) note_in_place_write(o);
      }
    } else if (!on_cpu_or_none(out_h)) {
      note_in_place_write(out_h);
    }
  }
};

// A gated call's inputs: x (split along axis_in in halves) or gate and up, and grad_output in backward;
// the kernel's inputs and outputs are shaped as half_name says.
struct GatedPlan {
  int axis = -1;  // the one-array form's split axis
  const char* half_name = "gate";
  int nd = 0;
  std::int64_t shape[kMaxDims];
};
GatedPlan plan_gated(const Fn& fn, const Spec& x, const Spec& up, const Spec& grad, long axis_in) {
  check_dims(fn, x);
  GatedPlan g;
  g.nd = x.nd;
  std::copy(x.shape, x.shape + x.nd, g.shape);
  if (!up.given()) {
    g.axis = axis_index(axis_in, x.nd, fn, "x");
    if (x.shape[g.axis] % 2)
      throw py::value_error(fn + ": x has length " + std::to_string(x.shape[g.axis]) + " along axis " +
                            std::to_string(axis_in) + ", which cannot be split in halves (an even length is needed)");
    g.shape[g.axis] /= 2;
    g.half_name = "x with its axis halved";
  } else {
    same_dtype(fn, x, up);
    same_shape(fn, "gate", x.nd, x.shape, up);
  }
  if (grad.given()) {
    same_dtype(fn, x, grad);
    same_shape(fn, g.half_name, g.nd, g.shape, grad);
  }
  return g;
}

// The GLU family (registry.h FASTACT_GATED_OPS). Forward: gate(x) split along axis, or gate(gate, up).
// Backward (dir 1) from grad_output and the forward's inputs: grad_x (one array, x's shape: its halves are
// the two outputs) or (grad_gate, grad_up). out=: an array (forward; backward, one-array form) or a tuple
// of two, each an array or None (backward, two-array form); an output may be its matching input.
py::object gated(int op, int dir, py::handle x_h, py::handle up_h, py::handle grad_h, py::handle out_h,
                 PyObject* params, py::handle axis_h, py::handle stream_h) {
  const auto& ops = cpu::elementwise_ops();
  if (op < 0 || std::size_t(op) >= ops.size() || ops[std::size_t(op)].kind != cpu::OpKind::Gated || dir < 0 || dir > 1)
    throw py::value_error("_gated: no such op or direction");
  const cpu::OpInfo& info = ops[std::size_t(op)];
  const Fn fn{info.name, dir != 0};
  const Params p = read_params(info, fn, params);
  const bool split = up_h.is_none();
  const long axis_in = split ? read_axis(axis_h, fn) : 0;
  const bool tuple_out = PyTuple_Check(out_h.ptr());
  if (!plain_call({x_h, up_h, grad_h}, out_h, stream_h)) {
    py::object r = gpu_route_fn()("gated", op, dir, fn.str(), py::make_tuple(x_h, up_h, grad_h), py::none(), out_h,
                                  py::make_tuple(std::vector<double>(p.begin(), p.end()), axis_in), stream_h);
    if (!r.is(py::handle(Py_NotImplemented))) return r;
  }
  const char* xn = split ? "x" : "gate";
  py::array x = to_array(x_h, fn, xn), up = null_array(), dy = null_array();
  const int code = dtype_code(x, fn, xn);
  Spec up_s, dy_s;
  if (!split) {
    up = to_array(up_h, fn, "up");
    up_s = spec_of(up, dtype_code(up, fn, "up"), "up");
  }
  if (dir == 1) {
    dy = to_array(grad_h, fn, "grad_output");
    dy_s = spec_of(dy, dtype_code(dy, fn, "grad_output"), "grad_output");
  }
  const GatedPlan g = plan_gated(fn, spec_of(x, code, xn), up_s, dy_s, axis_in);
  const int axis = g.axis;
  py::array a = split ? half_of(x, axis, false, false) : x;
  py::array b = split ? half_of(x, axis, true, false) : up;
  const char* half_name = g.half_name;
  std::vector<py::array> ins = {a, b};  // the kernel's inputs: (a, b), or (dy, a, b)
  if (dir == 1) ins.insert(ins.begin(), dy);
  const int n_in = int(ins.size());
  const py::array* in_ptrs[3] = {&ins[0], &ins[1], n_in > 2 ? &ins[2] : nullptr};
  // Outputs, each checked (prepare_out), with a temporary where it overlaps an input other than as its
  // very same elements.
  Outputs outputs;
  auto& outs = outputs.outs;
  auto& dsts = outputs.dsts;
  auto add_output = [&](py::array o, bool temp, const py::array& like) { outputs.add(o, temp, like); };
  py::object result;
  if (dir == 0) {
    if (tuple_out) throw py::type_error(fn + ": out must be an array, got a tuple");
    bool temp = false;
    py::array o = prepare_out(out_h, a, code, in_ptrs, n_in, fn, temp, half_name);
    add_output(o, temp, a);
    result = out_h.is_none() ? py::object(o) : py::reinterpret_borrow<py::object>(out_h);
  } else if (split) {
    if (tuple_out)
      throw py::type_error(fn + ": out must be one array of x's shape (grad_x) in the one-array form, got a tuple");
    bool unused = false;
    py::array gx = prepare_out(out_h, x, code, in_ptrs, 0, fn, unused, "x");
    for (int half = 0; half < 2; ++half) {  // grad_x's halves, each through a temporary where it must
      py::array h = half_of(gx, axis, half == 1, true);
      bool temp = false;
      for (int i = 0; i < n_in; ++i) temp = temp || needs_temp(h, *in_ptrs[i]);
      add_output(h, temp, h);
    }
    result = out_h.is_none() ? py::object(gx) : py::reinterpret_borrow<py::object>(out_h);
  } else {
    const auto o = out_pair(out_h, fn, "grad_gate", "up");
    for (int i = 0; i < 2; ++i) {
      bool temp = false;
      py::array arr = prepare_out(o[i], a, code, in_ptrs, n_in, fn, temp, "gate");
      add_output(arr, temp, a);
    }
    if (!o[0].is_none() && !o[1].is_none() && shares_memory(outs[0], outs[1]))
      throw py::value_error(fn + ": out's two arrays share memory; pass two separate arrays");
    result = py::make_tuple(o[0].is_none() ? py::object(outs[0]) : py::reinterpret_borrow<py::object>(o[0]),
                            o[1].is_none() ? py::object(outs[1]) : py::reinterpret_borrow<py::object>(o[1]));
  }
  cpu::check_params(info, p.data(), code, fn.backward);
  // Views and the call.
  cpu::Operand oin[3], oout[2];
  View vin[3], vout[2];
  for (int i = 0; i < n_in; ++i) {
    vin[i] = view_of(ins[std::size_t(i)], false, fn, i == 0 && dir ? "grad_output" : xn);
    oin[i] = {vin[i].data, vin[i].strides};
  }
  for (std::size_t o = 0; o < dsts.size(); ++o) {
    vout[o] = view_of(dsts[o], true, fn, "out");
    oout[o] = {vout[o].data, vout[o].strides};
  }
  const int ndim = int(a.ndim());
  const auto* shape = reinterpret_cast<const std::int64_t*>(a.shape());
  std::int64_t size = 1;
  for (int i = 0; i < ndim; ++i) size *= shape[i];
  const cpu::EwKernel k = cpu::active_table().ew[op][dir][code];
  run_released(size, [&] {
    cpu::run_elementwise(k, elsize_of(code), ndim, shape, int(dsts.size()), oout, n_in, oin, p.data());
  });
  outputs.finish(out_h);
  return result;
}

// How a broadcast operand w (or its gradient, an array of w's shape) lies along x's shape: element strides
// per dim of x (0 where w is broadcast) and the reduced shape (1 on the dims its gradient sums over).
// channel_axis: an int (w one value, or 1-d along that axis of x), or None (NumPy broadcasting).
struct WeightMap {
  int axis = -1;       // channel mode: x's axis w lies along (-1: one value)
  bool numpy = false;  // w broadcast by NumPy's rules
  std::int64_t reduced_shape[kMaxDims];
  // The dim of x that w's dim i lies along, or -1 (w is broadcast there).
  int x_dim(int i, int nd, int w_ndim) const {
    if (numpy) {
      const int d = i + nd - w_ndim;
      return reduced_shape[d] != 1 ? d : -1;
    }
    return axis >= 0 && i == 0 ? axis : -1;
  }
  // w's element strides (its own shape) placed along x's nd dims
  void strides_along_x(int nd, const std::int64_t* w_strides, int w_ndim, std::int64_t* out) const {
    for (int d = 0; d < nd; ++d) out[d] = 0;
    for (int i = 0; i < w_ndim; ++i) {
      const int d = x_dim(i, nd, w_ndim);
      if (d >= 0) out[d] = w_strides[i];
    }
  }
};

// The CPU's and the GPU's check of a weight / bias of shape ws against x of shape xs (wsize: its elements).
WeightMap map_weight(int nd, const std::int64_t* xs, int wnd, const std::int64_t* ws, std::int64_t wsize,
                     py::handle axis_h, const Fn& fn, const char* wn, bool bias) {
  WeightMap m;
  for (int d = 0; d < nd; ++d) m.reduced_shape[d] = 1;
  const auto mismatch = [&](const std::string& why) {
    return py::value_error(fn + ": " + wn + " of shape " + shape_str(wnd, ws) + " does not fit x of shape " +
                           shape_str(nd, xs) + ": " + why);
  };
  if (axis_h.is_none()) {
    m.numpy = true;
    if (wnd > nd) throw mismatch("it has more dimensions than x (it is broadcast against x, NumPy's rules)");
    for (int i = 0; i < wnd; ++i) {
      const int d = i + nd - wnd;
      if (ws[i] == xs[d]) m.reduced_shape[d] = xs[d];
      else if (ws[i] != 1)
        throw mismatch("its dimension " + std::to_string(i) + " must be 1 or x's " + std::to_string(xs[d]) +
                       " (it is broadcast against x, NumPy's rules)");
    }
    return m;
  }
  const long axis_in = read_axis(axis_h, fn, "channel_axis");
  if (bias && nd == 0) throw py::value_error(fn + ": x must have at least one dimension (got a 0-d array)");
  const bool one = wsize == 1 && wnd <= 1;  // one value for every element
  // x of fewer than two dims has no channel axis (PyTorch's rule: one channel) at the default channel_axis 1
  if (!bias && (axis_in < -nd || axis_in >= nd) && !(one && nd < 2 && axis_in == 1))
    throw mismatch("channel_axis " + std::to_string(axis_in) + " is out of range for x's " + std::to_string(nd) +
                   " dimensions");
  if (one) return m;
  if (wnd != 1)
    throw mismatch(bias ? "bias must be 1-d, of x's last dimension"
                        : "with channel_axis given, weight is one value or 1-d, one per channel (channel_axis=None "
                          "broadcasts it by NumPy's rules)");
  if (nd == 0) throw mismatch("x has no channel_axis (a 0-d array): pass one value");
  m.axis = int(axis_in < 0 ? axis_in + nd : axis_in);
  if (ws[0] != xs[m.axis])
    throw mismatch(bias ? "its length must be x's last dimension, " + std::to_string(xs[m.axis])
                        : "its length must be x's " + std::to_string(xs[m.axis]) + " channels along channel_axis " +
                              std::to_string(axis_in));
  m.reduced_shape[m.axis] = xs[m.axis];
  return m;
}
// A broadcast call's inputs: x, the weight or bias w (of x's dtype, fitting x), grad_output in backward.
WeightMap plan_broadcast(const Fn& fn, const Spec& x, const Spec& w, const Spec& grad, py::handle axis_h, bool bias) {
  check_dims(fn, x);
  check_dims(fn, w);
  same_dtype(fn, x, w);
  std::int64_t wsize = 1;
  for (int i = 0; i < w.nd; ++i) wsize *= w.shape[i];
  const WeightMap m = map_weight(x.nd, x.shape, w.nd, w.shape, wsize, axis_h, fn, w.name, bias);
  if (grad.given()) {
    same_dtype(fn, x, grad);
    same_shape(fn, "x", x.nd, x.shape, grad);
  }
  return m;
}

// Ops with a broadcast operand (registry.h FASTACT_BROADCAST_OPS and bias_act): forward (x, w) -> y;
// backward (dir 1) from grad_output -> (grad_x, grad_w), grad_w of w's shape, summed by the reduction
// engine. out=: an array (forward) or a tuple of two, each an array or None; an output may be its
// matching input.
py::object broadcast(int op, int dir, py::handle x_h, py::handle w_h, py::handle grad_h, py::handle out_h,
                     PyObject* params, py::handle axis_h, py::handle stream_h) {
  const auto& ops = cpu::elementwise_ops();
  if (op < 0 || std::size_t(op) >= ops.size() || ops[std::size_t(op)].kind != cpu::OpKind::Broadcast || dir < 0 ||
      dir > 1)
    throw py::value_error("_broadcast: no such op or direction");
  const cpu::OpInfo& info = ops[std::size_t(op)];
  const bool bias = info.activation != nullptr;  // bias_act: its bias lies along x's last axis
  const Fn fn{info.name, dir != 0};
  const Params p = read_params(info, fn, params);
  const char* wn = info.operand;
  if (!plain_call({x_h, w_h, grad_h}, out_h, stream_h)) {
    py::object r = gpu_route_fn()("broadcast", op, dir, fn.str(), py::make_tuple(grad_h, x_h, w_h),
                                  py::make_tuple("grad_output", "x", wn),
                                  out_h, py::make_tuple(std::vector<double>(p.begin(), p.end()), axis_h), stream_h);
    if (!r.is(py::handle(Py_NotImplemented))) return r;
  }
  py::array x = to_array(x_h, fn, "x");
  const int code = dtype_code(x, fn, "x");
  check_dims(fn, spec_of(x, code, "x"));
  // a Python number as the weight or bias takes x's dtype (as NumPy's x * 0.25 does)
  const bool number = (PyFloat_Check(w_h.ptr()) || PyLong_Check(w_h.ptr())) && !PyBool_Check(w_h.ptr());
  py::array w = null_array();
  if (number) {
    const double v = PyFloat_AsDouble(w_h.ptr());  // an int too large for a double: OverflowError, named below
    if (v == -1.0 && PyErr_Occurred()) {
      PyErr_Clear();
      throw py::value_error(fn + ": " + wn + " is too large for a float64");
    }
    py::module_ np = py::module_::import("numpy");
    py::object errstate = np.attr("errstate")(py::arg("over") = "ignore");
    errstate.attr("__enter__")();
    w = py::array(np.attr("asarray")(v, x.dtype()));
    errstate.attr("__exit__")(py::none(), py::none(), py::none());
    if (std::isfinite(v) && !std::isfinite(py::float_(w.attr("item")()).cast<double>()))
      throw py::value_error(fn + ": " + wn + " " + std::string(py::repr(w_h)) + " does not fit x's dtype " +
                            std::string(py::str(x.dtype())));
  } else {
    w = to_array(w_h, fn, wn);
  }
  const int w_code = dtype_code(w, fn, wn);
  py::array dy = null_array();
  Spec dy_s;
  if (dir == 1) {
    dy = to_array(grad_h, fn, "grad_output");
    dy_s = spec_of(dy, dtype_code(dy, fn, "grad_output"), "grad_output");
  }
  const WeightMap map = plan_broadcast(fn, spec_of(x, code, "x"), spec_of(w, w_code, wn), dy_s, axis_h, bias);
  std::vector<py::array> ins = {x, w};
  if (dir == 1) ins.insert(ins.begin(), dy);
  const int n_in = int(ins.size());
  // Outputs: x-shaped ones checked against the x-shaped inputs (in place is fine) and go through a
  // temporary where they reach the weight at all (it is read for many elements); the weight's gradient,
  // written once its sums are done, may be the weight itself but nothing else an input has.
  Outputs outputs;
  py::object result;
  const py::array* x_shaped[2] = {&ins[0], n_in > 2 ? &ins[1] : nullptr};  // x, or (dy, x)
  const int n_x_shaped = n_in - 1;
  const py::array& wref = ins[std::size_t(n_in - 1)];
  if (dir == 0) {
    if (PyTuple_Check(out_h.ptr())) throw py::type_error(fn + ": out must be an array, got a tuple");
    bool temp = false;
    py::array o = prepare_out(out_h, x, code, x_shaped, n_x_shaped, fn, temp, "x");
    outputs.add(o, temp || shares_memory(o, wref), x);
    result = out_h.is_none() ? py::object(o) : py::reinterpret_borrow<py::object>(out_h);
  } else {
    const auto o = out_pair(out_h, fn, "grad_x", wn);
    bool temp = false;
    py::array gx = prepare_out(o[0], x, code, x_shaped, n_x_shaped, fn, temp, "x");
    outputs.add(gx, temp || shares_memory(gx, wref), x);
    const py::array* w_only[1] = {&wref};
    py::array gw = prepare_out(o[1], w, code, w_only, 1, fn, temp, wn);
    for (int i = 0; i < n_x_shaped; ++i) temp = temp || shares_memory(gw, *x_shaped[i]);
    outputs.add(gw, temp, w);
    if (!o[0].is_none() && !o[1].is_none() && shares_memory(gx, gw))
      throw py::value_error(fn + ": out's two arrays share memory; pass two separate arrays");
    result = py::make_tuple(o[0].is_none() ? py::object(gx) : py::reinterpret_borrow<py::object>(o[0]),
                            o[1].is_none() ? py::object(gw) : py::reinterpret_borrow<py::object>(o[1]));
  }
  cpu::check_params(info, p.data(), code, fn.backward);
  // Views: the inputs along x's shape (w's strides placed by the map), then the call.
  const int ndim = int(x.ndim());
  const auto* shape = reinterpret_cast<const std::int64_t*>(x.shape());
  View vin[3], vout[2];
  std::int64_t w_full[kMaxDims], gw_full[kMaxDims];
  cpu::Operand oin[3], oout[1];
  for (int i = 0; i < n_in; ++i) {
    const bool is_w = i == n_in - 1;
    vin[i] = view_of(ins[std::size_t(i)], false, fn, is_w ? wn : i == 0 && dir ? "grad_output" : "x");
    if (is_w) map.strides_along_x(ndim, vin[i].strides, int(w.ndim()), w_full);
    oin[i] = {vin[i].data, is_w ? w_full : vin[i].strides};
  }
  for (std::size_t o = 0; o < outputs.dsts.size(); ++o) vout[o] = view_of(outputs.dsts[o], true, fn, "out");
  oout[0] = {vout[0].data, vout[0].strides};
  std::int64_t size = 1;
  for (int i = 0; i < ndim; ++i) size *= shape[i];
  const cpu::KernelTable& table = cpu::active_table();
  const cpu::EwKernel k = table.ew[op][dir][code];
  if (dir == 0) {
    run_released(size, [&] { cpu::run_elementwise(k, elsize_of(code), ndim, shape, 1, oout, n_in, oin, p.data()); });
  } else {
    map.strides_along_x(ndim, vout[1].strides, int(w.ndim()), gw_full);
    const cpu::Operand red{vout[1].data, gw_full};
    run_released(size, [&] {
      cpu::run_reduction(k, table.reduce, code, ndim, shape, 1, oout, n_in, oin, red, map.reduced_shape, p.data());
    });
  }
  outputs.finish(out_h);
  return result;
}

// The two entry points as plain CPython fast-call functions: pybind11's general dispatcher (argument
// casters, overload bookkeeping) cost about as much as a 1,024-element relu. Exceptions are translated
// the way pybind11 would.
// Not noexcept: a thread that CPython ends at interpreter exit (pthread_exit when it asks for the GIL)
// unwinds through here, and that unwind must go on (gil.h).
template <class F>
PyObject* guarded(F&& f) {
  try {
    return f().release().ptr();
#if defined(__GLIBCXX__)
  } catch (abi::__forced_unwind&) {
    throw;
#endif
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
  // the whole call in fastact's floating-point state: the kernels, and the parameter checks and
  // conversions too (a Fraction's float depends on the rounding mode; a float32 overflow check traps
  // where overflow is unmasked)
  const cpu::FpEnvScope fp;
  return guarded([&] {
    if (nargs != 7) throw py::type_error("fastact: the internal entry point takes 7 arguments");
    return F(small_int(args[0], "op"), small_int(args[1], "direction"), args[2], args[3], args[4], args[5], args[6]);
  });
}

PyObject* gated_entry(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  const cpu::FpEnvScope fp;  // as entry<> has it
  return guarded([&] {
    if (nargs != 9) throw py::type_error("fastact: the internal gated entry point takes 9 arguments");
    return gated(small_int(args[0], "op"), small_int(args[1], "direction"), args[2], args[3], args[4], args[5], args[6],
                 args[7], args[8]);
  });
}

PyObject* broadcast_entry(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  const cpu::FpEnvScope fp;  // as entry<> has it
  return guarded([&] {
    if (nargs != 9) throw py::type_error("fastact: the internal broadcast entry point takes 9 arguments");
    return broadcast(small_int(args[0], "op"), small_int(args[1], "direction"), args[2], args[3], args[4], args[5],
                     args[6], args[7], args[8]);
  });
}

PyMethodDef entry_points[] = {
    {"_elementwise", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&entry<elementwise>)), METH_FASTCALL,
     "_elementwise(op, dir, a, b, out, params, stream): the generic element-wise entry point (use fastact.<op>)."},
    {"_rowwise", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&entry<rowwise>)), METH_FASTCALL,
     "_rowwise(op, dir, a, b, out, axis, stream): the generic row entry point (use fastact.<op>)."},
    {"_gated", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&gated_entry)), METH_FASTCALL,
     "_gated(op, dir, x_or_gate, up, grad_output, out, params, axis, stream): the GLU family's entry point."},
    {"_broadcast", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&broadcast_entry)), METH_FASTCALL,
     "_broadcast(op, dir, x, weight_or_bias, grad_output, out, params, channel_axis, stream): prelu's and bias_act's "
     "entry point."},
    {nullptr, nullptr, 0, nullptr}};

// The losses' engine (cpu/losses.h) behind fastact/losses.py, which checks the arguments and moves the
// class axis last; these re-check what the engine relies on (a bad call is an error, never a bad read).
struct LossArgs {
  py::array x;
  View vx;
  int dtype, nd;
  const std::int64_t* shape;
  std::int64_t nrows = 1, len;
  py::array target = null_array(), weight = null_array();  // int64 / float64, C-contiguous, or null
};

LossArgs loss_args(py::handle x_h, py::handle target_h, py::handle weight_h, const char* fn_name) {
  const Fn fn{fn_name, false};
  LossArgs a;
  a.x = to_array(x_h, fn, "x");
  a.dtype = dtype_code(a.x, fn, "x");
  a.nd = int(a.x.ndim());
  if (a.nd < 1 || a.nd > kMaxDims) throw py::value_error(std::string(fn_name) + ": x must have 1 to 64 dimensions");
  a.shape = reinterpret_cast<const std::int64_t*>(a.x.shape());
  for (int i = 0; i + 1 < a.nd; ++i) a.nrows *= a.shape[i];
  a.len = a.shape[a.nd - 1];
  a.vx = view_of(a.x, false, fn, "x");
  if (!target_h.is_none()) {
    a.target = py::array_t<std::int64_t, py::array::c_style>::ensure(target_h);
    if (!a.target || a.target.size() != a.nrows) throw py::value_error(std::string(fn_name) + ": target: one int64 per row");
    const auto* t = static_cast<const std::int64_t*>(a.target.data());
    for (std::int64_t r = 0; r < a.nrows; ++r)
      if (t[r] < -1 || t[r] >= a.len)
        throw py::value_error(std::string(fn_name) + ": target " + std::to_string(t[r]) + " is not a class index");
  }
  if (!weight_h.is_none()) {
    a.weight = py::array_t<double, py::array::c_style>::ensure(weight_h);
    if (!a.weight || a.weight.size() != a.len) throw py::value_error(std::string(fn_name) + ": weight: one float64 per class");
  }
  return a;
}

const std::int64_t* target_data(const LossArgs& a) {
  return a.target ? static_cast<const std::int64_t*>(a.target.data()) : nullptr;
}
const double* weight_data(const LossArgs& a) { return a.weight ? static_cast<const double*>(a.weight.data()) : nullptr; }

py::array logsumexp_rows(py::handle x_h) {
  LossArgs a = loss_args(x_h, py::none(), py::none(), "_logsumexp");
  py::array_t<double> lse(std::vector<ssize_t>(a.shape, a.shape + a.nd - 1));
  double* pl = lse.mutable_data();
  run_released(a.nrows * a.len, [&] {
    cpu::run_logsumexp(a.dtype, a.nd, a.shape, {a.vx.data, a.vx.strides}, pl);
  });
  return lse;
}

// out= of a loss gradient: x's dtype and shape, writable; it may be x itself (each row is read whole before
// it is written), but not another view that overlaps x.
View loss_out(const LossArgs& a, py::handle out_h, const char* fn_name) {
  const Fn fn{fn_name, false};
  py::array out = to_array(out_h, fn, "out", true);
  if (dtype_code(out, fn, "out", true) != a.dtype || out.ndim() != a.x.ndim() ||
      !std::equal(a.shape, a.shape + a.nd, reinterpret_cast<const std::int64_t*>(out.shape())))
    throw py::value_error(std::string(fn_name) + ": out must have x's dtype and shape");
  if (!out.writeable()) throw py::value_error(std::string(fn_name) + ": out is read-only");
  View vo = view_of(out, true, fn, "out");
  if (shares_memory(out, a.x) && (out.data() != a.x.data() || !std::equal(a.vx.strides, a.vx.strides + a.nd, vo.strides)))
    throw py::value_error(std::string(fn_name) + ": out overlaps x without being x");
  vo.arr = out;  // keeps it alive
  return vo;
}

void loss_grad(py::handle x_h, py::handle coef_h, py::handle out_h) {
  LossArgs a = loss_args(x_h, py::none(), py::none(), "_logsumexp_backward");
  auto coef = py::array_t<double, py::array::c_style>::ensure(coef_h);
  if (!coef || coef.size() != 4 * a.nrows) throw py::value_error("_logsumexp_backward: coef: four float64 per row");
  const View vo = loss_out(a, out_h, "_logsumexp_backward");
  run_released(a.nrows * a.len, [&] {
    cpu::run_loss_grad(a.dtype, a.nd, a.shape, {a.vx.data, a.vx.strides}, vo.data, vo.strides, nullptr, nullptr,
                       coef.data());
  });
}

cpu::Reduction read_reduction(int r) {
  if (r < 0 || r > 2) throw py::value_error("_cross_entropy: reduction code 0, 1 or 2");
  return cpu::Reduction(r);
}

// One value per row (none: a float64 array of the rows' shape), or the reduced value (a float).
// nll: the log-probabilities' loss (eps and z unused) instead of the logits'.
py::object ce_rows(py::handle x_h, py::handle target_h, py::handle weight_h, int reduction, double eps, double z,
                   bool nll) {
  LossArgs a = loss_args(x_h, target_h, weight_h, "_cross_entropy");
  if (!a.target) throw py::value_error("_cross_entropy: target is required");
  const cpu::CrossEntropy ce{target_data(a), weight_data(a), eps, z, read_reduction(reduction)};
  py::array_t<double> rows(std::vector<ssize_t>(a.shape, a.shape + a.nd - 1));
  double* pr = rows.mutable_data();
  double v = 0;
  run_released(a.nrows * (nll ? 1 : a.len), [&] {
    const cpu::Operand x{a.vx.data, a.vx.strides};
    v = nll ? cpu::run_nll(a.dtype, a.nd, a.shape, x, ce, pr) : cpu::run_cross_entropy(a.dtype, a.nd, a.shape, x, ce, pr);
  });
  if (ce.reduction == cpu::Reduction::none) return rows;
  return py::float_(v);
}

void ce_rows_backward(py::handle grad_h, py::handle x_h, py::handle target_h, py::handle weight_h, int reduction,
                      double eps, double z, py::handle out_h, bool nll) {
  LossArgs a = loss_args(x_h, target_h, weight_h, "_cross_entropy_backward");
  if (!a.target) throw py::value_error("_cross_entropy_backward: target is required");
  const cpu::CrossEntropy ce{target_data(a), weight_data(a), eps, z, read_reduction(reduction)};
  auto grad = py::array_t<double, py::array::c_style>::ensure(grad_h);
  if (!grad || grad.size() != (ce.reduction == cpu::Reduction::none ? a.nrows : 1))
    throw py::value_error("_cross_entropy_backward: grad: float64, one value, or one per row for none");
  const View vo = loss_out(a, out_h, "_cross_entropy_backward");
  run_released(a.nrows * a.len, [&] {
    if (nll) cpu::run_nll_backward(a.dtype, a.nd, a.shape, vo.data, vo.strides, ce, grad.data());
    else cpu::run_cross_entropy_backward(a.dtype, a.nd, a.shape, {a.vx.data, a.vx.strides}, vo.data, vo.strides, ce,
                                         grad.data());
  });
}

// Probability targets: p of x's dtype and shape (both with the class axis last, as views).
View prob_view(const LossArgs& a, py::handle p_h, const char* fn_name, py::array& keep) {
  const Fn fn{fn_name, false};
  keep = to_array(p_h, fn, "target");
  if (dtype_code(keep, fn, "target") != a.dtype || keep.ndim() != a.x.ndim() ||
      !std::equal(a.shape, a.shape + a.nd, reinterpret_cast<const std::int64_t*>(keep.shape())))
    throw py::value_error(std::string(fn_name) + ": target: probabilities of x's dtype and shape");
  return view_of(keep, false, fn, "target");
}

py::object ce_probs(py::handle x_h, py::handle p_h, py::handle weight_h, int reduction, double eps, double z) {
  LossArgs a = loss_args(x_h, py::none(), weight_h, "_cross_entropy_probs");
  py::array keep = null_array();
  const View vp = prob_view(a, p_h, "_cross_entropy_probs", keep);
  const cpu::ProbTargets pt{{vp.data, vp.strides}, weight_data(a), eps, z, read_reduction(reduction)};
  py::array_t<double> rows(std::vector<ssize_t>(a.shape, a.shape + a.nd - 1));
  double* pr = rows.mutable_data();
  double v = 0;
  run_released(a.nrows * a.len, [&] {
    v = cpu::run_cross_entropy_probs(a.dtype, a.nd, a.shape, {a.vx.data, a.vx.strides}, pt, pr);
  });
  if (pt.reduction == cpu::Reduction::none) return rows;
  return py::float_(v);
}

void ce_probs_backward(py::handle grad_h, py::handle x_h, py::handle p_h, py::handle weight_h, int reduction,
                       double eps, double z, py::handle out_h) {
  LossArgs a = loss_args(x_h, py::none(), weight_h, "_cross_entropy_probs_backward");
  py::array keep = null_array();
  const View vp = prob_view(a, p_h, "_cross_entropy_probs_backward", keep);
  const cpu::ProbTargets pt{{vp.data, vp.strides}, weight_data(a), eps, z, read_reduction(reduction)};
  auto grad = py::array_t<double, py::array::c_style>::ensure(grad_h);
  if (!grad || grad.size() != (pt.reduction == cpu::Reduction::none ? a.nrows : 1))
    throw py::value_error("_cross_entropy_probs_backward: grad: float64, one value, or one per row for none");
  const View vo = loss_out(a, out_h, "_cross_entropy_probs_backward");
  if (shares_memory(py::reinterpret_borrow<py::array>(vo.arr), keep))
    throw py::value_error("cross_entropy_backward: out overlaps target (the probabilities are read for every row)");
  run_released(a.nrows * a.len, [&] {
    cpu::run_cross_entropy_probs_backward(a.dtype, a.nd, a.shape, {a.vx.data, a.vx.strides}, vo.data, vo.strides, pt,
                                          grad.data());
  });
}

// Element-wise losses (registry.h FASTACT_LOSS_OPS) behind the functions _generate.py builds from the
// registry, which check the arguments and broadcast the weights (and a scalar grad_output) to the input's
// shape as views. ins: the kernel's inputs in direction dir (forward: input, target, the op's weights;
// backward: grad_output first), arrays of one dtype and shape. reduction: 0 mean, 1 sum (forward: the
// reduced loss as a float), 2 none (forward and backward write out, or a new array, which is returned).
// scale: the backward's grad_output factor (ops.h kGradScale).
py::object pointwise_loss(int op, int dir, int reduction, py::tuple ins_h, py::handle out_h, py::tuple params,
                          double scale) {
  const auto& ops = cpu::elementwise_ops();
  if (op < 0 || std::size_t(op) >= ops.size() || ops[std::size_t(op)].kind != cpu::OpKind::Loss || dir < 0 ||
      dir > 1 || reduction < 0 || reduction > 2)
    throw py::value_error("_loss: no such loss, direction or reduction");
  const cpu::OpInfo& info = ops[std::size_t(op)];
  const Fn fn{info.name, dir != 0};
  const int nin = info.n_in[dir];
  if (std::size_t(nin) != ins_h.size())
    throw py::value_error(fn + ": expected " + std::to_string(nin) + " operands");
  std::vector<std::string> names;
  if (dir == 1) names.push_back("grad_output");
  for (const char *w = info.operand, *e = w; *w; w = *e ? e + 1 : e) {
    for (e = w; *e && *e != ' '; ++e) {}
    names.emplace_back(w, e);
  }
  Params p = read_params(info, fn, params.ptr());
  std::vector<py::array> ins;
  int code = -1;
  for (int i = 0; i < nin; ++i) {
    ins.push_back(to_array(ins_h[std::size_t(i)], fn, names[std::size_t(i)].c_str()));
    const Spec si = spec_of(ins.back(), dtype_code(ins.back(), fn, names[std::size_t(i)].c_str()), names[std::size_t(i)].c_str());
    if (i == 0) {
      code = si.code;
      check_dims(fn, si);
      continue;
    }
    same_dtype(fn, spec_of(ins[0], code, names[0].c_str()), si);
    same_shape(fn, names[0].c_str(), int(ins[0].ndim()), reinterpret_cast<const std::int64_t*>(ins[0].shape()), si);
  }
  cpu::check_params(info, p.data(), code, fn.backward);
  p[kGradScale] = scale;
  const py::array& like = ins[std::size_t(dir)];  // the input (pred, logits)
  const int ndim = int(like.ndim());
  const auto* shape = reinterpret_cast<const std::int64_t*>(like.shape());
  std::int64_t size = 1;
  for (int i = 0; i < ndim; ++i) size *= shape[i];
  View vin[layout::kMaxOperands];
  cpu::Operand oin[layout::kMaxOperands];
  for (int i = 0; i < nin; ++i) {
    vin[i] = view_of(ins[std::size_t(i)], false, fn, names[std::size_t(i)].c_str());
    oin[i] = {vin[i].data, vin[i].strides};
  }
  const cpu::KernelTable& table = cpu::active_table();
  if (dir == 0 && reduction != 2) {
    double total = 0;
    run_released(size, [&] {
      total = cpu::run_total(table.ew[info.summed][0][code], table.reduce, code, ndim, shape, nin, oin, p.data());
    });
    return py::float_(reduction == 0 ? total / double(size) : total);  // an empty mean is NaN, as PyTorch's
  }
  std::vector<const py::array*> in_ptrs;
  for (const auto& a : ins) in_ptrs.push_back(&a);
  bool temp = false;
  py::array o = prepare_out(out_h, like, code, in_ptrs.data(), nin, fn, temp, names[std::size_t(dir)].c_str());
  Outputs outputs;
  outputs.add(o, temp, like);
  const View vo = view_of(outputs.dsts[0], true, fn, "out");
  const cpu::Operand oout[1] = {{vo.data, vo.strides}};
  run_released(size, [&] {
    cpu::run_elementwise(table.ew[op][dir][code], elsize_of(code), ndim, shape, 1, oout, nin, oin, p.data());
  });
  outputs.finish(out_h);
  return out_h.is_none() ? py::object(o) : py::reinterpret_borrow<py::object>(out_h);
}

py::list op_list() {
  py::list l;
  auto add = [&](const cpu::OpInfo& o) {
    py::list params;
    for (const auto& p : o.params) {
      py::dict d;
      d["name"] = p.name;
      d["default"] = p.default_value;
      d["check"] = p.check == ParamCheck::Positive      ? "positive"
                   : p.check == ParamCheck::NonNegative ? "nonnegative"
                   : p.check == ParamCheck::Extended    ? "extended"
                                                        : "any";
      d["required"] = p.required();
      d["choices"] = p.choices ? py::cast(std::string(p.choices)) : py::none();
      params.append(d);
    }
    static const char* from[] = {"x", "y", "x|y", "x|y+"};
    py::dict d;
    d["name"] = o.name;
    d["id"] = o.id;
    d["kind"] = o.kind == cpu::OpKind::Row         ? "row"
                : o.kind == cpu::OpKind::Gated     ? "gated"
                : o.kind == cpu::OpKind::Broadcast ? "broadcast"
                : o.kind == cpu::OpKind::Loss      ? "loss"
                                                   : "elementwise";
    d["operand"] = o.operand ? py::cast(std::string(o.operand)) : py::none();
    d["gate"] = o.gate ? py::cast(std::string(o.gate)) : py::none();
    d["activation"] = o.activation ? py::cast(std::string(o.activation)) : py::none();
    d["doc"] = o.doc;
    d["backward_from"] = from[int(o.backward_from)];
    d["params"] = params;
    d["tabulated16"] = o.tabulated16;
    d["param_rule"] = o.param_rule ? py::cast(std::string(o.param_rule)) : py::none();
    d["range"] = o.range ? py::cast(std::string(o.range)) : py::none();
    d["derivative"] = o.derivative ? py::cast(std::string(o.derivative)) : py::none();
    if (o.kind == cpu::OpKind::Loss) d["summed"] = o.summed;  // the id of its "mean" / "sum" kernel
    l.append(d);
  };
  for (const auto& o : cpu::elementwise_ops())
    if (o.kind != cpu::OpKind::SummedLoss) add(o);  // a kernel of its loss, not a function
  for (const auto& o : cpu::row_ops()) add(o);
  return l;
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
  // Everything a call may initialise lazily is set up now, under the import lock: the environment
  // variables are read (a bad value fails the import with a message that names it, rather than being
  // ignored), and no call later waits on another thread's static initialisation, nor forks in the
  // middle of one.
  cpu::active_table();  // FASTACT_ISA: a path this CPU lacks fails the import, clearly
  cpu::num_threads();   // FASTACT_NUM_THREADS
  cpu::stream_min_bytes();  // FASTACT_STREAM_STORES
  cpu::tables16::stats();   // FASTACT_HALF_TABLES
  ResultCache::get();       // FASTACT_RESULT_CACHE_MB
  py::detail::npy_api::get();  // NumPy's C API table (pybind11 looks it up on first use otherwise)
  init_result_handler();
  g_numpy_generic = py::object(py::module_::import("numpy").attr("generic")).release().ptr();
  if (PyModule_AddFunctions(m.ptr(), entry_points) != 0) throw py::error_already_set();
  m.def("_set_hooks", [](py::object as_array, py::object gpu_route, py::object bfloat16) {
    g_hooks = {as_array.inc_ref().ptr(), gpu_route.inc_ref().ptr(), bfloat16.inc_ref().ptr()};
  }, "Installs the Python side of the call path (fastact/__init__.py does, once).");
  {
    py::list dtypes;  // the dtype table (kinds.h), in code order: what fastact.cuda reads
    for (const auto& d : kinds::kDtypes)
      dtypes.append(py::dict(py::arg("name") = d.name, py::arg("itemsize") = d.itemsize,
                             py::arg("dlpack") = py::make_tuple(d.dlpack_code, d.dlpack_bits),
                             py::arg("typestr") = d.typestr));
    m.attr("_dtypes") = dtypes;
    m.attr("_dtype_list") = kinds::kDtypeList;
  }
  m.def("_as_array", [](py::handle obj, const std::string& fn, const std::string& name) {
    return to_array(obj, Fn{fn.c_str(), false}, name.c_str());
  }, "The NumPy array (a view where it can be) that a call would use for obj.");
  m.def("_check_params", [](int op, int dir, py::tuple params, int dtype) {
    const cpu::FpEnvScope fp;
    const auto& ops = cpu::elementwise_ops();
    if (op < 0 || std::size_t(op) >= ops.size() || dtype < 0 || dtype >= cpu::kNumDtypes)
      throw py::value_error("_check_params: no such op or dtype");
    const cpu::OpInfo& info = ops[std::size_t(op)];
    const Fn fn{info.name, dir != cpu::kForward};
    const Params p = read_params(info, fn, params.ptr());
    cpu::check_params(info, p.data(), dtype, fn.backward);
  }, "Checks an op's parameters for arrays of a dtype code (the GPU path's check; the CPU's is in the call).");
  m.def("_plan", [](const std::string& kind, int op, int dir, py::object params, py::list ins, py::list outs,
                    py::object axis) -> py::object {
    // The GPU path's checks of a call it has described: the CPU's own functions, with their messages.
    const cpu::FpEnvScope fp;
    const bool rows = kind == "rows";
    const auto& ops = rows ? cpu::row_ops() : cpu::elementwise_ops();
    if (op < 0 || std::size_t(op) >= ops.size() || dir < 0 || dir > (rows ? 1 : 2))
      throw py::value_error("_plan: no such op or direction");
    const cpu::OpInfo& info = ops[std::size_t(op)];
    const Fn fn{info.name, dir != 0};
    // (name, code, shape) or None, each
    std::vector<std::string> names;
    std::vector<std::vector<std::int64_t>> shapes;
    names.reserve(ins.size() + outs.size());
    shapes.reserve(ins.size() + outs.size());
    auto specs = [&](py::list l) {
      std::vector<Spec> v;
      for (py::handle h : l) {
        if (h.is_none()) {
          v.push_back(Spec{});
          continue;
        }
        const auto t = h.cast<py::tuple>();
        names.push_back(t[0].cast<std::string>());
        shapes.push_back(t[2].cast<std::vector<std::int64_t>>());
        const int code = t[1].cast<int>();
        if (code < 0 || code >= kinds::kNumDtypes) throw py::value_error("_plan: no such dtype");
        v.push_back(Spec{names.back().c_str(), code, int(shapes.back().size()), shapes.back().data()});
      }
      return v;
    };
    const std::vector<Spec> in = specs(ins), out = specs(outs);
    if (in.size() < 2 || !in[0].given()) throw py::value_error("_plan: inputs (first, second, third)");
    const int code = in[0].code;
    // in the CPU's order: the parameters read (a TypeError) first, their values checked once the arrays are
    const Params p = rows ? Params{} : read_params(info, fn, params.ptr());
    const auto params_checked = [&](py::object r) {
      if (!rows) cpu::check_params(info, p.data(), code, fn.backward);
      return r;
    };
    // each output against the shape it must have (like: (name, nd, shape))
    auto check_outs = [&](std::initializer_list<std::tuple<const char*, int, const std::int64_t*>> like) {
      auto l = like.begin();
      for (const Spec& o : out) {
        if (l == like.end()) throw py::value_error("_plan: too many outputs");
        if (o.given()) check_output(fn, o, code, std::get<0>(*l), std::get<1>(*l), std::get<2>(*l));
        ++l;
      }
    };
    if (kind == "elementwise" || rows) {
      check_operands(fn, in[0], in[1]);
      check_outs({{"the input", in[0].nd, in[0].shape}});
      if (rows) return py::int_(axis_index(read_axis(axis, fn), in[0].nd, fn, in[0].name));
      return params_checked(py::none());
    }
    if (in.size() != 3) throw py::value_error("_plan: three inputs");
    if (kind == "gated") {  // ins: x or gate, up (None: one array), grad_output (None: forward)
      const GatedPlan g = plan_gated(fn, in[0], in[1], in[2], in[1].given() ? 0 : read_axis(axis, fn));
      if (dir == 1 && !in[1].given()) check_outs({{"x", in[0].nd, in[0].shape}});
      else check_outs({{g.half_name, g.nd, g.shape}, {g.half_name, g.nd, g.shape}});
      return params_checked(py::make_tuple(g.axis, std::vector<std::int64_t>(g.shape, g.shape + g.nd)));
    }
    if (kind == "broadcast") {  // ins: x, weight or bias, grad_output (None: forward)
      if (info.kind != cpu::OpKind::Broadcast || dir > 1) throw py::value_error("_plan: no such broadcast op");
      const Spec &x = in[0], &w = in[1];
      const WeightMap m = plan_broadcast(fn, x, w, in[2], axis, info.activation != nullptr);
      check_outs({{"x", x.nd, x.shape}, {w.name, w.nd, w.shape}});
      std::vector<int> dims;
      for (int i = 0; i < w.nd; ++i) dims.push_back(m.x_dim(i, x.nd, w.nd));
      return params_checked(py::make_tuple(std::vector<std::int64_t>(m.reduced_shape, m.reduced_shape + x.nd), dims));
    }
    throw py::value_error("_plan: no such kind");
  }, "The GPU path's checks of a call (the CPU's functions and messages): kind, op, direction, params, inputs and "
     "outputs as (name, dtype code, shape) or None, axis. Returns the row axis (rows), (split axis or -1, the "
     "kernel's shape) (gated), (reduced shape, the x dim of each weight dim or -1) (broadcast), or None.");
  m.def("_may_share_memory", [](std::uintptr_t a, std::vector<std::int64_t> shape_a, std::vector<std::int64_t> strides_a,
                                 std::uintptr_t b, std::vector<std::int64_t> shape_b, std::vector<std::int64_t> strides_b,
                                 std::int64_t elsize) {
    if (shape_a.size() != strides_a.size() || shape_b.size() != strides_b.size() || shape_a.size() > std::size_t(kMaxDims) ||
        shape_b.size() > std::size_t(kMaxDims))
      throw py::value_error("_may_share_memory: shapes and strides of one length (at most 64)");
    return layout::may_share_memory(a, int(shape_a.size()), shape_a.data(), strides_a.data(), b, int(shape_b.size()),
                                    shape_b.data(), strides_b.data(), elsize);
  }, "Whether two arrays (addresses, shapes, byte strides) may share a byte (exact for all but unusual layouts).");
  m.def("_has_internal_overlap", [](std::vector<std::int64_t> shape, std::vector<std::int64_t> strides) {
    if (shape.size() != strides.size() || shape.size() > std::size_t(kMaxDims))
      throw py::value_error("_has_internal_overlap: shape and strides of one length (at most 64)");
    return layout::has_internal_overlap(int(shape.size()), shape.data(), strides.data());
  }, "Whether two indices of an array with this shape and these strides reach one element.");
  m.def("_logsumexp", &logsumexp_rows, "Per-row logsumexp along the last axis, float64 (losses.py).");
  m.def("_logsumexp_backward", &loss_grad, "grad * softmax along the last axis, one grad per row, into out (losses.py).");
  m.def("_cross_entropy", &ce_rows, "cross-entropy (or nll) over rows along the last axis (losses.py).");
  m.def("_cross_entropy_backward", &ce_rows_backward, "its gradient, into out (losses.py).");
  m.def("_cross_entropy_probs", &ce_probs, "cross-entropy with probability targets (losses.py).");
  m.def("_cross_entropy_probs_backward", &ce_probs_backward, "its gradient, into out (losses.py).");
  m.def("_loss", &pointwise_loss, "An element-wise loss or its gradient (the functions built from the registry).");
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
  m.def("release_memory", [] { return ResultCache::get().release_all(); },
        "Frees the cached buffers of released results now; returns the bytes freed.");
  m.attr("RESULT_CACHE_IDLE_SECONDS") = std::chrono::duration<double>(ResultCache::kIdle).count();
  m.attr("MAX_THREADS") = cpu::kMaxThreads;
  m.attr("MAX_PARAMS") = kMaxParams;  // an op's parameter slots (the last: a loss gradient's scale, kGradScale)
  m.def("stream_min_bytes", [] { return std::size_t(cpu::stream_min_bytes()); },
        "Element-wise float32/float64 kernel calls that write at least this many bytes use non-temporal "
        "stores (half the last-level cache; SIZE_MAX when FASTACT_STREAM_STORES=0).");
  m.attr("HALF_TABLE_MIN_ELEMENTS") = cpu::tables16::kMinElements;
  m.def("half_tables", [] {
    const cpu::tables16::Stats s = cpu::tables16::stats();
    return py::make_tuple(s.enabled, s.count, s.bytes);
  }, "(enabled, tables built, bytes) of the 16-bit lookup tables (FASTACT_HALF_TABLES).");
  m.def("set_num_threads", &fastact::set_num_threads, py::arg("n"),
        "Use up to n threads (1 <= n <= MAX_THREADS) for large calls; results do not depend on it.");
}
