#include "lock_cap.hpp"

#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>

#include <sstream>
#include <string>

namespace pinpool {
namespace {

constexpr int kCapIpcLock = 14;                   // linux/capability.h
constexpr uint64_t kNoLimit = uint64_t{1} << 62;  // cgroup files say "no limit" with values
                                                  // near 2^63 (v1) or "max" (v2)

// With open() and read(), not std::ifstream: the static libstdc++ of the prebuilt binaries would
// bring in glibc 2.33's fstat64 through std::filebuf, past their glibc 2.28 baseline.
bool read_file(const std::string& path, std::string* out) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  out->clear();
  char chunk[4096];
  for (;;) {
    ssize_t n = ::read(fd, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out->append(chunk, static_cast<size_t>(n));
  }
  ::close(fd);
  return true;
}

// The lines of a file (empty where it cannot be read), to parse as a stream.
std::istringstream lines_of(const char* path) {
  std::string text;
  read_file(path, &text);
  return std::istringstream(text);
}

// A cgroup memory limit file: bytes, or UINT64_MAX for "max", a value that means no limit, or
// a file that is not there.
uint64_t limit_in(const std::string& path) {
  std::string text;
  if (!read_file(path, &text)) return UINT64_MAX;
  try {
    uint64_t v = std::stoull(text);
    return v >= kNoLimit ? UINT64_MAX : v;
  } catch (...) {
    return UINT64_MAX;  // "max"
  }
}

// The least limit on the way from the process's cgroup up to the root of `mount`: a limit on
// any ancestor bounds the process too. `file` is memory.max (v2) or memory.limit_in_bytes (v1).
uint64_t least_limit(const std::string& mount, std::string path, const char* file) {
  uint64_t least = UINT64_MAX;
  for (;;) {
    uint64_t v = limit_in(mount + path + (path.empty() || path.back() != '/' ? "/" : "") + file);
    if (v < least) least = v;
    if (path.empty() || path == "/") break;
    path.erase(path.rfind('/'));
  }
  return least;
}

// The memory the process's cgroup allows, v2 or v1, or UINT64_MAX where none is readable.
// /proc/self/cgroup names the group ("0::/path" for v2, "N:memory:/path" for v1); inside a
// container's cgroup namespace the path may not exist under the mount, and the mount's root
// is the group itself, which the walk up reaches.
uint64_t cgroup_limit() {
  std::istringstream in = lines_of("/proc/self/cgroup");
  std::string line;
  uint64_t least = UINT64_MAX;
  while (std::getline(in, line)) {
    size_t a = line.find(':'), b = a == std::string::npos ? a : line.find(':', a + 1);
    if (b == std::string::npos) continue;
    std::string controllers = "," + line.substr(a + 1, b - a - 1) + ",";
    std::string path = line.substr(b + 1);
    uint64_t v = UINT64_MAX;
    if (controllers == ",,")
      v = least_limit("/sys/fs/cgroup", path, "memory.max");
    else if (controllers.find(",memory,") != std::string::npos)
      v = least_limit("/sys/fs/cgroup/memory", path, "memory.limit_in_bytes");
    if (v < least) least = v;
  }
  return least;
}

// MemAvailable, else MemTotal, from /proc/meminfo; else the physical pages.
uint64_t machine_memory() {
  std::istringstream in = lines_of("/proc/meminfo");
  std::string key;
  uint64_t kib = 0, available = 0, total = 0;
  std::string unit;
  while (in >> key >> kib) {
    std::getline(in, unit);
    if (key == "MemAvailable:") available = kib * 1024;
    if (key == "MemTotal:") total = kib * 1024;
  }
  if (available) return available;
  if (total) return total;
  long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  return pages > 0 && page > 0 ? uint64_t(pages) * uint64_t(page) : UINT64_MAX;
}

bool ipc_lock_capability() {
  std::istringstream in = lines_of("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("CapEff:", 0) != 0) continue;
    try {
      return (std::stoull(line.substr(7), nullptr, 16) >> kCapIpcLock) & 1;
    } catch (...) { return false; }
  }
  return false;
}

HostMemory read_host_memory() {
  HostMemory m{};
  uint64_t cgroup = cgroup_limit(), machine = machine_memory();
  uint64_t allowed = cgroup < machine ? cgroup : machine;
  if (allowed != UINT64_MAX)
    m.host = {static_cast<uint64_t>(static_cast<double>(allowed) * kHostLockFraction),
              cgroup < machine ? "cgroup" : "meminfo"};
  rlimit r{};
  m.memlock_limit = getrlimit(RLIMIT_MEMLOCK, &r) == 0 && r.rlim_cur != RLIM_INFINITY
                        ? static_cast<uint64_t>(r.rlim_cur)
                        : UINT64_MAX;
  m.memlock_privileged = ipc_lock_capability();
  return m;
}

}  // namespace

const HostMemory& host_memory() {
  static const HostMemory memory = read_host_memory();
  return memory;
}

LockCap memlock_cap() {
  const HostMemory& m = host_memory();
  if (m.memlock_privileged || m.memlock_limit == UINT64_MAX) return {};
  return {m.memlock_limit, "rlimit"};
}

LockBudget& host_lock_budget() {
  static LockBudget budget(host_memory().host);
  return budget;
}

bool take_lock_budget(LockBudget* own, uint64_t bytes) {
  LockBudget* refused = nullptr;
  if (own && !own->take(bytes)) {
    refused = own;
  } else if (!host_lock_budget().take(bytes)) {
    if (own) own->give_back(bytes);
    refused = &host_lock_budget();
  }
  if (!refused) return true;
  lock_refusal() = {true, bytes, refused->used(), refused->cap()};
  return false;
}

void give_back_lock_budget(LockBudget* own, uint64_t bytes) {
  host_lock_budget().give_back(bytes);
  if (own) own->give_back(bytes);
}

}  // namespace pinpool
