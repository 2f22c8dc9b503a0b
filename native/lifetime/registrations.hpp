// Host memory page-locked in place (cuMemHostRegister, register() in JavaScript), known to the
// whole process by address, as blocks are to the block registry: a copy whose host side lies
// wholly inside a registration hands the driver that memory itself, at pinned speed, instead of
// staging it through a buffer of its own.
//
// Such a copy takes a use of the registration for as long as the device may touch the memory.
// Ending the registration (unregister) takes it out of every later lookup at once, but the
// driver's cuMemHostUnregister waits for the last use to end: the driver never sees memory
// turn pageable under a copy it is running. The memory itself is kept alive by the caller
// while the registration lasts, and by each copy (its reference to the memory) while it runs.
#pragma once

#include <cstddef>

#include "../core/fence.hpp"
#include "../cuda/cuda_driver.hpp"

namespace pinpool::registrations {

class Registration;

// Records a registration the caller has made: [ptr, ptr + bytes), registered in `device`'s
// context (for every context when `portable`), inside the buffer that starts at `buffer` (an
// ArrayBuffer's or SharedArrayBuffer's first byte: only views of that buffer are found, never
// other memory at the same address). `lease` (taken over; null for none) is signalled once the
// driver has unregistered it.
Registration* add(void* ptr, size_t bytes, int device, bool portable, const void* buffer,
                  Fence* lease);

// A use of the live registration holding [p, p + bytes) of the buffer that starts at `buffer`,
// page-locked for `device`'s context; null when there is none. end_use() ends it.
Registration* use(const void* p, size_t bytes, const void* buffer, int device);
void end_use(Registration* r);

// Ends a registration made with add(): no lookup finds it from now on. The driver's
// unregister runs now when nothing uses it (its result is returned), otherwise when the last
// use ends (CUDA_SUCCESS is returned; a failure then has nobody to tell). Once only.
CUresult end(Registration* r);

// Its owner went without end() (a thread that ended while registered): no lookup finds it,
// and the driver keeps the range, so its lease is abandoned (the block under it is orphaned,
// counted rather than reused).
void forget(Registration* r);

}  // namespace pinpool::registrations
