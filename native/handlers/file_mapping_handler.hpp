// Leaf: a file's contents as host memory (the NEP 49 thread's mmap example). The handler maps
// the file when its one block is allocated and unmaps it when that block is freed; with
// `register`, the mapping is also page-locked with cuMemHostRegister, so copies from it to a
// device run at pinned speed (model weights from disk straight to the GPU).
//
// The handler is given the file open, not its path: the caller opened it and so could say why
// not (the path, ENOENT, EACCES ...), and what it checked is what gets mapped. The handler keeps
// its own duplicate of that descriptor until its one allocation, which closes it.
//
// A mapping that is not writable is private (copy-on-write): a write through the bytes changes
// this process's copy of that one page, never the file. Until then the pages are the page
// cache's own: mapping costs no anonymous memory, however large the file.
#pragma once

#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <mutex>

#include "../support/align.hpp"
#include "../support/kernel.hpp"
#include "cuda_result.hpp"

namespace pinpool {

struct FileMappingOptions {
  int fd = -1;                   // the open file (the handler duplicates it)
  bool writable = false;         // MAP_SHARED read-write: writes reach the file
  bool register_memory = false;  // page-lock the mapping with CUDA
  int device = 0;                // whose context registers it
};

class FileMappingHandler final : public Handler {
 public:
  FileMappingHandler(std::string name, FileMappingOptions options)
      : Handler(std::move(name), "file", Role::Leaf),
        options_(options),
        fd_(options.fd >= 0 ? fcntl(options.fd, F_DUPFD_CLOEXEC, 0) : -1) {}

  ~FileMappingHandler() override {
    if (fd_ >= 0) close(fd_);
  }

  // What a copy of the live mapping may do (native/binding/gpu.cpp). Registered, it is
  // page-locked. A private mapping is pinned read-only where the device supports it: the device
  // may only read it, and unless the kernel gave the pin private copies of the pages (Linux 6.2
  // on: `coherent`), a page the process writes afterwards is a copy of its own that the device
  // does not see: it reads the file's page it pinned.
  bool registered() const { return options_.register_memory; }
  bool pinned_read_only() const { return read_only_.load(std::memory_order_acquire); }
  bool coherent() const { return coherent_.load(std::memory_order_acquire); }

 private:
  // The size of the file open as `fd`, or UINT64_MAX when it cannot be read. statx where glibc
  // has it (2.28): fstat is a versioned symbol of glibc 2.33, past the baseline the prebuilt
  // binaries keep (scripts/prebuild.sh).
  static uint64_t file_size(int fd) {
#if defined(__GLIBC__) && defined(STATX_SIZE)
    struct statx sx {};
    if (statx(fd, "", AT_EMPTY_PATH, STATX_SIZE, &sx) != 0) return UINT64_MAX;
    return sx.stx_size;
#else
    struct stat st {};
    if (fstat(fd, &st) != 0) return UINT64_MAX;
    return static_cast<uint64_t>(st.st_size);
#endif
  }

  void* do_allocate(size_t bytes, size_t, pinpool_alloc_info* info) override {
    std::lock_guard<std::mutex> lock(mutex_);
    if (fd_ < 0) {
      fail(info, {PINPOOL_ERR_INVALID_ARGUMENT, Reason::InvalidArgument});
      return nullptr;  // one block per handler: a second would alias the first
    }
    const int fd = fd_;
    fd_ = -1;
    // The size is checked again: the file may have changed since the caller looked.
    if (file_size(fd) != bytes) {
      close(fd);
      fail(info, {PINPOOL_ERR_INVALID_ARGUMENT, Reason::Size});
      return nullptr;
    }
    bytes_ = bytes;
    length_ = bytes ? bytes : 1;
    void* p =
        bytes ? map(fd)
              : mmap(nullptr, length_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    const int error = p == MAP_FAILED ? errno : 0;
    close(fd);  // the mapping keeps the file open
    if (p == MAP_FAILED) {
      // Out of memory or address space; anything else (ENODEV: a file system that cannot map
      // files, as /sys) is a file this handler cannot serve.
      if (error == ENOMEM || error == EAGAIN)
        fail(info, {PINPOOL_ERR_OUT_OF_MEMORY, Reason::Mmap});
      else
        fail(info, {PINPOOL_ERR_INVALID_ARGUMENT, Reason::Mmap});
      return nullptr;
    }
    if (options_.register_memory) {
      // A private mapping is pinned read-only: pinned for writing, the driver makes the kernel
      // copy every page into anonymous memory (copy-on-write broken: a 2 GiB file costing 2 GiB
      // of RAM). Linux 6.2 and later does that for a read-only long-term pin of a private
      // mapping too (so that the pin sees what the process writes): then the pages are the
      // process's own copies at once, and the pin is coherent. A shared (writable) mapping is
      // pinned for writing, so that copies from the device land in place; the driver marks its
      // pages dirty at unregister either way. A device without read-only registration
      // (attribute 113, or a driver that refuses the flag) gets a private one pinned for
      // writing too, as before.
      const size_t length = align_up(length_, page_size());
      const auto& devices = cuda::driver().devices;
      const bool read_only = !options_.writable && options_.device >= 0 &&
                             static_cast<size_t>(options_.device) < devices.size() &&
                             devices[options_.device].read_only_host_register;
      CUresult rc = read_only ? cuda::host_register(
                                    options_.device, p, length,
                                    CU_MEMHOSTREGISTER_PORTABLE | CU_MEMHOSTREGISTER_READ_ONLY)
                              : CUDA_ERROR_NOT_SUPPORTED;
      if (rc == CUDA_SUCCESS) {
        read_only_.store(true, std::memory_order_release);
        coherent_.store(kernel().private_copies(p, length) == 1, std::memory_order_release);
      } else if (rc == CUDA_ERROR_NOT_SUPPORTED || rc == CUDA_ERROR_INVALID_VALUE) {
        rc = cuda::host_register(options_.device, p, length, CU_MEMHOSTREGISTER_PORTABLE);
      }
      if (rc != CUDA_SUCCESS) {
        munmap(p, length_);
        fail(info, cuda_failure(rc));
        return nullptr;
      }
    }
    mapping_ = p;
    return p;
  }

  // Maps the whole file, its pages read in ahead. A private mapping is populated read-only and
  // made writable only afterwards: MAP_POPULATE write-faults a writable private mapping, which
  // copies every page into anonymous memory (a 2 GiB file would cost 2 GiB of RAM). Populated
  // read-only, the pages are the page cache's own, and a write copies just the page it touches.
  void* map(int fd) {
    if (options_.writable)
      return mmap(nullptr, length_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
    void* p = mmap(nullptr, length_, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
    if (p != MAP_FAILED && mprotect(p, length_, PROT_READ | PROT_WRITE) != 0) {
      const int error = errno;
      munmap(p, length_);
      errno = error;
      return MAP_FAILED;
    }
    return p;
  }

  std::optional<size_t> do_deallocate(void* ptr, size_t bytes, size_t) override {
    std::lock_guard<std::mutex> lock(mutex_);
    // Only the one mapping, whole: munmap with another length would cut it or its neighbour.
    if (!ptr || ptr != mapping_ || (bytes ? bytes : 1) != length_) return std::nullopt;
    // Still registered after a refused unregister: the mapping stays, and the free is refused so
    // that a retry unregisters and unmaps it once. Unmapped now, the driver would go on pinning
    // an address the next mmap may hand to someone else.
    if (options_.register_memory &&
        cuda::host_unregister(options_.device, mapping_) != CUDA_SUCCESS)
      return std::nullopt;
    munmap(mapping_, length_);
    mapping_ = nullptr;
    return bytes_;  // an empty file's block was allocated as 0 bytes, and may be freed as 1
  }

  const FileMappingOptions options_;
  std::mutex mutex_;         // guards the members below
  int fd_;                   // our duplicate of the file until the one allocation; then -1
  void* mapping_ = nullptr;  // the live mapping, if any
  size_t length_ = 0;        // its length, in bytes
  size_t bytes_ = 0;         // the allocation's size, in bytes (0 for an empty file)
  std::atomic<bool> read_only_{false};  // registered with CU_MEMHOSTREGISTER_READ_ONLY
  std::atomic<bool> coherent_{false};   // ... and its pages are the process's own already
};

}  // namespace pinpool
