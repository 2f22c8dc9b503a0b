#include "kernel.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>

namespace pinpool {
namespace {

// <numaif.h> is libnuma's; the calls are plain system calls.
constexpr int kMpolDefault = 0;
constexpr int kMpolPreferred = 1;
constexpr unsigned long kMaxNodes = 1024;  // the node mask's width, in bits

bool read_line(const char* path, std::string* out) {
  FILE* f = std::fopen(path, "re");
  if (!f) return false;
  char buf[256];
  bool ok = std::fgets(buf, sizeof buf, f) != nullptr;
  std::fclose(f);
  if (ok) *out = buf;
  return ok;
}

bool real_huge_pages_offered() {
  static const bool offered = [] {
    std::string line;
    // "always [madvise] never": the bracketed word is the mode.
    if (!read_line("/sys/kernel/mm/transparent_hugepage/enabled", &line)) return false;
    return line.find("[never]") == std::string::npos;
  }();
  return offered;
}

int real_advise_huge(void* p, size_t length) {
#ifdef MADV_HUGEPAGE
  return madvise(p, length, MADV_HUGEPAGE);
#else
  (void)p;
  (void)length;
  errno = EINVAL;
  return -1;
#endif
}

int real_prefer_node(void* p, size_t length, int node) {
  if (node < 0 || static_cast<unsigned long>(node) >= kMaxNodes) {
    errno = EINVAL;
    return -1;
  }
  unsigned long mask[kMaxNodes / (8 * sizeof(unsigned long))] = {};
  mask[node / (8 * sizeof(unsigned long))] = 1ul << (node % (8 * sizeof(unsigned long)));
  return static_cast<int>(syscall(SYS_mbind, p, length, kMpolPreferred, mask, kMaxNodes + 1, 0));
}

int real_nodes_of(void* const* pages, size_t count, int* nodes) {
  // move_pages with no target nodes moves nothing and reports where each page is.
  return static_cast<int>(syscall(SYS_move_pages, 0, count, pages, nullptr, nodes, 0));
}

int real_thread_prefer_node(int node) {
  if (node < 0) return static_cast<int>(syscall(SYS_set_mempolicy, kMpolDefault, nullptr, 0));
  // A thread with a policy of its own (numactl --membind, --interleave) keeps it.
  int mode = kMpolDefault;
  if (syscall(SYS_get_mempolicy, &mode, nullptr, 0, nullptr, 0) != 0 || mode != kMpolDefault)
    return 1;
  if (static_cast<unsigned long>(node) >= kMaxNodes) {
    errno = EINVAL;
    return -1;
  }
  unsigned long mask[kMaxNodes / (8 * sizeof(unsigned long))] = {};
  mask[node / (8 * sizeof(unsigned long))] = 1ul << (node % (8 * sizeof(unsigned long)));
  return static_cast<int>(syscall(SYS_set_mempolicy, kMpolPreferred, mask, kMaxNodes + 1));
}

int real_pci_node(const char* bus_id) {
  // sysfs spells the bus id in lower case; CUDA in upper.
  std::string id;
  for (const char* c = bus_id; *c; c++) {
    if (!std::isxdigit(static_cast<unsigned char>(*c)) && *c != ':' && *c != '.') return -1;
    id += static_cast<char>(std::tolower(static_cast<unsigned char>(*c)));
  }
  std::string line;
  if (!read_line(("/sys/bus/pci/devices/" + id + "/numa_node").c_str(), &line)) return -1;
  return std::atoi(line.c_str());  // -1 where the platform does not say
}

int real_node_count() {
  static const int count = [] {
    std::string line;
    // "0" or "0-3" or "0,2-3": the highest number is the last one on the line.
    if (!read_line("/sys/devices/system/node/online", &line)) return 1;
    size_t end = line.find_last_of("0123456789");
    if (end == std::string::npos) return 1;
    size_t start = line.find_last_not_of("0123456789", end);
    start = start == std::string::npos ? 0 : start + 1;
    return std::atoi(line.substr(start, end - start + 1).c_str()) + 1;
  }();
  return count;
}

int real_populate_write(void* p, size_t length) {
  constexpr int kMadvPopulateWrite = 23;  // <sys/mman.h> of glibc 2.35; the kernel's since 5.14
  return madvise(p, length, kMadvPopulateWrite);
}

int real_lock_pages(void* p, size_t length) { return mlock(p, length); }
int real_unlock_pages(void* p, size_t length) { return munlock(p, length); }

// /proc/self/pagemap: one 64-bit entry per page, bit 63 "present", bit 61 "file page or shared
// anonymous" (Documentation/admin-guide/mm/pagemap.rst); the flags need no privilege.
int real_private_copies(const void* p, size_t length) {
  if (length == 0) return 0;
  const int pagemap = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  if (pagemap < 0) return -1;
  const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const uintptr_t first = reinterpret_cast<uintptr_t>(p) / page;
  const uintptr_t last = (reinterpret_cast<uintptr_t>(p) + length - 1) / page;
  uint64_t entries[512];
  int answer = 0;
  for (uintptr_t at = first; at <= last && answer == 0;) {
    const size_t count = std::min<uintptr_t>(last - at + 1, sizeof entries / sizeof entries[0]);
    const ssize_t got = pread(pagemap, entries, count * sizeof entries[0],
                              static_cast<off_t>(at * sizeof entries[0]));
    if (got != static_cast<ssize_t>(count * sizeof entries[0])) {
      answer = -1;
      break;
    }
    // Present and not a file page, or swapped out (only anonymous pages are): the process's own.
    for (size_t i = 0; i < count; i++)
      if (((entries[i] >> 63 & 1) && !(entries[i] >> 61 & 1)) || (entries[i] >> 62 & 1)) answer = 1;
    at += count;
  }
  close(pagemap);
  return answer;
}

const Kernel kReal = {real_huge_pages_offered, real_advise_huge,        real_prefer_node,
                      real_nodes_of,           real_thread_prefer_node, real_pci_node,
                      real_node_count,         real_populate_write,     real_lock_pages,
                      real_unlock_pages,       real_private_copies};

}  // namespace

const Kernel& real_kernel() { return kReal; }

Kernel& kernel() {
  static Kernel table = kReal;
  return table;
}

}  // namespace pinpool
