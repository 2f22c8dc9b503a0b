// Leaf: a file's contents as host memory (the NEP 49 thread's mmap example). The handler maps
// the file when its one block is allocated and unmaps it when that block is freed; with
// `register`, the mapping is also page-locked with cuMemHostRegister, so copies from it to a
// device run at pinned speed (model weights from disk straight to the GPU).
//
// A mapping that is not writable is private (copy-on-write): a write through the bytes changes
// this process's copy, never the file, and never faults.
#pragma once

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mutex>

#include "cuda_result.hpp"
#include "../core/align.hpp"

namespace pinpool {

struct FileMappingOptions {
  std::string path;
  bool writable = false;        // MAP_SHARED read-write: writes reach the file
  bool register_memory = false; // page-lock the mapping with CUDA
  int device = 0;               // whose context registers it
};

class FileMappingHandler final : public Handler {
 public:
  FileMappingHandler(std::string name, FileMappingOptions options)
      : Handler(std::move(name), "file"), options_(std::move(options)) {}

 private:
  void* do_allocate(size_t bytes, size_t, pinpool_alloc_info* info) override {
    std::lock_guard<std::mutex> lock(mutex_);
    if (mapping_ || used_) {
      fail(info, {PINPOOL_ERR_INVALID_ARGUMENT, Reason::InvalidArgument});
      return nullptr;  // one block per mapping: a second would alias the first
    }
    int fd = open(options_.path.c_str(), options_.writable ? O_RDWR : O_RDONLY);
    struct stat st {};
    if (fd < 0 || fstat(fd, &st) != 0 || static_cast<uint64_t>(st.st_size) != bytes) {
      if (fd >= 0) close(fd);
      fail(info, {PINPOOL_ERR_INVALID_ARGUMENT, Reason::InvalidArgument});
      return nullptr;
    }
    length_ = bytes ? bytes : 1;
    int flags = (options_.writable ? MAP_SHARED : MAP_PRIVATE) | MAP_POPULATE;
    void* p = bytes ? mmap(nullptr, length_, PROT_READ | PROT_WRITE, flags, fd, 0)
                    : mmap(nullptr, length_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    close(fd);  // the mapping keeps the file open
    if (p == MAP_FAILED) {
      fail(info, {PINPOOL_ERR_OUT_OF_MEMORY, Reason::Mmap});
      return nullptr;
    }
    if (options_.register_memory) {
      CUresult rc = cuda::host_register(options_.device, p, align_up(length_, page_size()),
                                        CU_MEMHOSTREGISTER_PORTABLE);
      if (rc != CUDA_SUCCESS) {
        munmap(p, length_);
        fail(info, cuda_failure(rc));
        return nullptr;
      }
    }
    mapping_ = p;
    used_ = true;
    return p;
  }

  bool do_deallocate(void* ptr, size_t bytes, size_t) override {
    std::lock_guard<std::mutex> lock(mutex_);
    // Only the one mapping, whole: munmap with another length would cut it or its neighbour.
    if (!ptr || ptr != mapping_ || (bytes ? bytes : 1) != length_) return false;
    if (options_.register_memory) cuda::host_unregister(mapping_);
    munmap(mapping_, length_);
    mapping_ = nullptr;
    return true;
  }

  const FileMappingOptions options_;
  std::mutex mutex_;         // guards the members below
  void* mapping_ = nullptr;  // the live mapping, if any
  size_t length_ = 0;        // its length, in bytes
  bool used_ = false;        // the one block was handed out (and maybe freed)
};

}  // namespace pinpool
