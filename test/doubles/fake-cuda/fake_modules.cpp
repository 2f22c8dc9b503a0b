// Modules and kernel launches of the fake CUDA driver. It compiles and runs no code: a module
// is PTX text, a function one of its `.entry` names, and a launch is queued on its stream like
// any work. It knows one kernel by name, `pinpool_fault`: when its turn on the stream comes, the
// context fails with CUDA_ERROR_ILLEGAL_ADDRESS, as one writing through a bad pointer makes it
// fail on a GPU (a sticky error: what the sticky_error knob sets). Any other kernel does nothing.
#include "fake_internal.h"

#include <cstring>
#include <string>

struct CUmod_st {
  std::string ptx;
};

struct CUfunc_st {
  bool faults = false;
};

using namespace fake;

FAKE_API CUresult cuModuleLoadData(CUmodule* module, const void* image) {
  return entry(k_cuModuleLoadData, true, [&]() -> CUresult {
    if (module == nullptr || image == nullptr) return CUDA_ERROR_INVALID_VALUE;
    if (current_device() < 0) return CUDA_ERROR_INVALID_CONTEXT;
    const char* text = static_cast<const char*>(image);
    if (std::strstr(text, ".entry") == nullptr) return CUDA_ERROR_INVALID_PTX;
    *module = new CUmod_st{text};  // never unloaded: the fake has no cuModuleUnload
    return CUDA_SUCCESS;
  });
}

FAKE_API CUresult cuModuleGetFunction(CUfunction* function, CUmodule module, const char* name) {
  return entry(k_cuModuleGetFunction, true, [&]() -> CUresult {
    if (function == nullptr || module == nullptr || name == nullptr)
      return CUDA_ERROR_INVALID_VALUE;
    if (module->ptx.find(std::string(".entry ") + name) == std::string::npos)
      return CUDA_ERROR_NOT_FOUND;
    *function = new CUfunc_st{std::strcmp(name, "pinpool_fault") == 0};  // lives with the module
    return CUDA_SUCCESS;
  });
}

FAKE_API CUresult cuLaunchKernel(CUfunction f, unsigned int gx, unsigned int gy, unsigned int gz,
                                 unsigned int bx, unsigned int by, unsigned int bz,
                                 unsigned int shared, CUstream h, void** params, void** extra) {
  (void)shared;
  (void)params;
  (void)extra;
  return entry(k_cuLaunchKernel, true, [&]() -> CUresult {
    if (f == nullptr) return CUDA_ERROR_INVALID_HANDLE;
    if (gx == 0 || gy == 0 || gz == 0 || bx == 0 || by == 0 || bz == 0)
      return CUDA_ERROR_INVALID_VALUE;
    StreamRef s = resolve_stream(h);
    if (!s) return CUDA_ERROR_INVALID_HANDLE;
    if (CUresult rc = check_stream_context(s.get())) return rc;
    const bool faults = f->faults;
    uint64_t seq = 0;
    return enqueue(
        s,
        [faults] {  // runs at once when reached: copies held by a test do not hold it
          if (faults) knobs().sticky_error.store(CUDA_ERROR_ILLEGAL_ADDRESS);
        },
        &seq);
  });
}
