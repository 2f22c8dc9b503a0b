// Turns a CUresult from the CUDA layer into a handler failure: out-of-memory stays
// out-of-memory (a fallback may try elsewhere), a missing driver or device is "unavailable",
// anything else is a CUDA error that carries its number.
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
      return {PINPOOL_ERR_UNAVAILABLE, Reason::NoDevice, rc};
    default:
      return {PINPOOL_ERR_CUDA, Reason::Cuda, rc};
  }
}

}  // namespace pinpool
