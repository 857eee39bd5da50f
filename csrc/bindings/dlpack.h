// The DLPack ABI (https://dmlc.github.io/dlpack/latest/c_api.html), the structs only: what the CPU
// module needs to read bfloat16 tensors NumPy refuses, and the CUDA module to import and export GPU
// tensors. Both legacy (unversioned, capsule "dltensor") and versioned (>= 1.0, "dltensor_versioned").
#pragma once
#include <cstdint>

namespace fastact::dlpack {

enum DeviceType : std::int32_t { kCPU = 1, kCUDA = 2, kCUDAHost = 3, kCUDAManaged = 13 };
enum TypeCode : std::uint8_t { kInt = 0, kUInt = 1, kFloat = 2, kBfloat = 4 };

struct DLDevice {
  std::int32_t device_type, device_id;
};
struct DLDataType {
  std::uint8_t code, bits;
  std::uint16_t lanes;
};
struct DLTensor {
  void* data;
  DLDevice device;
  std::int32_t ndim;
  DLDataType dtype;
  std::int64_t* shape;
  std::int64_t* strides;  // in elements; null: C order
  std::uint64_t byte_offset;
};
struct DLManagedTensor {
  DLTensor dl_tensor;
  void* manager_ctx;
  void (*deleter)(DLManagedTensor*);
};
constexpr std::uint64_t kFlagReadOnly = 1;
struct DLManagedTensorVersioned {
  std::uint32_t major, minor;
  void* manager_ctx;
  void (*deleter)(DLManagedTensorVersioned*);
  std::uint64_t flags;
  DLTensor dl_tensor;
};

// What releases a consumed tensor (calls the producer's deleter), for the owner that keeps it alive.
inline void release_plain(void* p) {
  auto* m = static_cast<DLManagedTensor*>(p);
  if (m->deleter) m->deleter(m);
}
inline void release_versioned(void* p) {
  auto* m = static_cast<DLManagedTensorVersioned*>(p);
  if (m->deleter) m->deleter(m);
}
inline void (*release_fn(bool versioned))(void*) { return versioned ? release_versioned : release_plain; }

}  // namespace fastact::dlpack
