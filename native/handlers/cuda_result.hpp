// Turns a CUresult from an allocation into a handler failure: out-of-memory stays out-of-memory
// (a fallback may try elsewhere); a missing driver or device, a device held by another process
// (exclusive-process mode), an operation the device cannot do here, and a context this process can
// no longer use (a sticky fault of any library sharing it, a destroyed context, a driver shutting
// down) are "unavailable", so the default chain goes on to page-locked or pageable memory; anything
// else is a CUDA error that carries its number.
#pragma once

#include "../core/handler.hpp"
#include "../cuda/cuda_driver.hpp"

namespace pinpool {

inline Failure cuda_failure(CUresult rc) {
  switch (rc) {
    case CUDA_ERROR_OUT_OF_MEMORY:
      return {PINPOOL_ERR_OUT_OF_MEMORY, Reason::OutOfMemory, rc};
    case CUDA_ERROR_NOT_INITIALIZED:
      return {PINPOOL_ERR_UNAVAILABLE, Reason::NoCuda, rc};
    case CUDA_ERROR_INVALID_DEVICE:
    case CUDA_ERROR_DEVICE_UNAVAILABLE:
      return {PINPOOL_ERR_UNAVAILABLE, Reason::NoDevice, rc};
    case CUDA_ERROR_NOT_SUPPORTED:  // not on this device (managed memory without concurrent access)
      return {PINPOOL_ERR_UNAVAILABLE, Reason::Unavailable, rc};
    case CUDA_ERROR_DEINITIALIZED:
    case CUDA_ERROR_INVALID_CONTEXT:
    case CUDA_ERROR_CONTEXT_IS_DESTROYED:
    case CUDA_ERROR_ECC_UNCORRECTABLE:
    case CUDA_ERROR_ILLEGAL_ADDRESS:
    case CUDA_ERROR_LAUNCH_TIMEOUT:
    case CUDA_ERROR_HARDWARE_STACK_ERROR:
    case CUDA_ERROR_ILLEGAL_INSTRUCTION:
    case CUDA_ERROR_MISALIGNED_ADDRESS:
    case CUDA_ERROR_INVALID_ADDRESS_SPACE:
    case CUDA_ERROR_INVALID_PC:
    case CUDA_ERROR_LAUNCH_FAILED:
      return {PINPOOL_ERR_UNAVAILABLE, Reason::CudaContext, rc};
    default:
      return {PINPOOL_ERR_CUDA, Reason::Cuda, rc};
  }
}

}  // namespace pinpool
