#include "shared_region.hpp"

#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cstring>

#include "../../support/align.hpp"
#include "../../support/random.hpp"

namespace pinpool::shared {
namespace {

constexpr uint64_t kMagic = 0x0170696e706f6f6cULL;  // "lpoopnip" and a version byte
constexpr uint32_t kLayoutVersion = 2;
constexpr uint32_t kContinuation = 0xffffffffu;  // a unit inside a run, not its first
constexpr uint32_t kInFlight = 0x10000u;         // the run is given, not yet adopted
constexpr uint32_t kWaiters = 0x80000000u;       // in the lock word: someone sleeps on it
constexpr off_t kPresenceByte = 0;  // read-locked by every process that has the file open
constexpr off_t kSlotLockBase = 1;  // slot s is held by its process at byte 1 + s
constexpr off_t kIdLockBase = kSlotLockBase + kMaxProcesses;  // and its lock id i at this + i
constexpr size_t kHeaderBytes = 4096;

std::string path_of(const std::string& name) { return "/dev/shm/pinpool-" + name; }

bool valid_name(const std::string& name) {
  if (name.empty() || name.size() > 100 || name[0] == '.') return false;
  for (char c : name)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
          c == '_' || c == '.'))
      return false;
  return true;
}

// Open file description locks (Linux 3.15): owned by this open of the file, dropped by the
// kernel when the last descriptor of it closes, so when the process dies.
int ofd_lock(int fd, short type, off_t byte, bool wait) {
  struct flock l {};
  l.l_type = type;
  l.l_whence = SEEK_SET;
  l.l_start = byte;
  l.l_len = 1;
  int rc;
  do { rc = fcntl(fd, wait ? F_OFD_SETLKW : F_OFD_SETLK, &l); } while (rc != 0 && errno == EINTR);
  return rc;
}

// Whether another open of the file holds byte `byte` (so a live process, if it is a slot byte).
bool held_elsewhere(int fd, off_t byte) {
  struct flock l {};
  l.l_type = F_WRLCK;
  l.l_whence = SEEK_SET;
  l.l_start = byte;
  l.l_len = 1;
  if (fcntl(fd, F_OFD_GETLK, &l) != 0) return true;  // cannot tell: assume alive, free nothing
  return l.l_type != F_UNLCK;
}

// What this code reads of a file. statx where glibc has it (2.28): fstat and stat are versioned
// symbols of glibc 2.33, past the baseline the prebuilt binaries keep (scripts/prebuild.sh).
struct FileFacts {
  bool ok = false;
  bool regular = false;
  uint32_t uid = 0, mode = 0;
  uint64_t size = 0, ino = 0, dev = 0;
};

FileFacts facts_of(int dirfd, const char* path, int flags) {
  FileFacts f;
#if defined(__GLIBC__) && defined(STATX_BASIC_STATS)
  struct statx sx {};
  if (statx(dirfd, path, flags, STATX_BASIC_STATS, &sx) != 0) return f;
  f = {true,
       S_ISREG(sx.stx_mode),
       sx.stx_uid,
       sx.stx_mode,
       sx.stx_size,
       sx.stx_ino,
       (uint64_t{sx.stx_dev_major} << 32) | sx.stx_dev_minor};
#else
  struct stat st {};
  if (fstatat(dirfd, path, &st, flags) != 0) return f;
  f = {true,
       S_ISREG(st.st_mode),
       st.st_uid,
       st.st_mode,
       static_cast<uint64_t>(st.st_size),
       st.st_ino,
       st.st_dev};
#endif
  return f;
}
FileFacts facts_of(int fd) { return facts_of(fd, "", AT_EMPTY_PATH); }
FileFacts facts_of(const std::string& path) { return facts_of(AT_FDCWD, path.c_str(), 0); }

// Whether another open of the file is present: a process has the region open, or is creating
// or opening it (each read-locks the presence byte first thing, and holds it until it closes).
bool others_present(int fd) { return held_elsewhere(fd, kPresenceByte); }

// A region file of this user that no process has open: every process that had it was killed
// (a process that closes it last removes it). The presence byte is write-locked while it is
// checked and removed, so a process opening the file meanwhile waits, then finds it gone.
bool remove_if_stale(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return false;
  const FileFacts f = facts_of(fd);
  const bool stale = f.ok && f.regular && f.uid == geteuid() &&
                     ofd_lock(fd, F_WRLCK, kPresenceByte, false) == 0 && unlink(path.c_str()) == 0;
  close(fd);  // drops the lock
  return stale;
}

// After the presence lock: whether `path` still names the file `fd` is open on (its last
// process may have removed it in between, or a stale file been replaced).
bool still_named(int fd, const std::string& path) {
  const FileFacts open_file = facts_of(fd), named = facts_of(path);
  return open_file.ok && named.ok && open_file.ino == named.ino && open_file.dev == named.dev;
}

long futex(uint32_t* word, int op, uint32_t value, const struct timespec* timeout) {
  return syscall(SYS_futex, word, op, value, timeout, nullptr, 0);
}

void cpu_relax() {
#if defined(__x86_64__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

bool equal_in_constant_time(const char* a, const char* b, size_t n) {
  unsigned char diff = 0;
  for (size_t i = 0; i < n; i++) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

uint32_t owner_word(int slot) { return static_cast<uint32_t>(slot + 1); }
int slot_of(uint32_t word) { return static_cast<int>((word & ~kInFlight) - 1); }
bool is_run_start(uint32_t word) { return word != 0 && word != kContinuation; }

struct Layout {
  uint64_t units = 0;
  size_t owner_offset = 0, extent_offset = 0, nonce_offset = 0, data_offset = 0, length = 0;
};

Layout layout_for(uint64_t units) {
  Layout l;
  l.units = units;
  l.owner_offset = kHeaderBytes;
  l.extent_offset = align_up(l.owner_offset + units * sizeof(uint32_t), 8);
  l.nonce_offset = l.extent_offset + units * sizeof(uint64_t);
  l.data_offset = align_up(l.nonce_offset + units * sizeof(uint64_t), kUnitBytes);
  l.length = l.data_offset + units * kUnitBytes;
  return l;
}

// Maps the region so that its data area starts on a 2 MiB boundary here: every unit is then
// 64 KiB-aligned, and a block can be aligned up to 2 MiB (or more, where the run allows). A
// mapping of the length plus 2 MiB is reserved, the file mapped over it where the data lands
// aligned, and the rest given back.
void* map_region(int fd, const Layout& l) {
  constexpr size_t kAlign = size_t{2} << 20;
  const size_t span = l.length + kAlign;
  void* reserved =
      mmap(nullptr, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (reserved == MAP_FAILED) return MAP_FAILED;
  const auto low = reinterpret_cast<uintptr_t>(reserved);
  const uintptr_t base = align_up(low + l.data_offset, kAlign) - l.data_offset;
  void* p = mmap(reinterpret_cast<void*>(base), l.length, PROT_READ | PROT_WRITE,
                 MAP_SHARED | MAP_FIXED, fd, 0);
  if (p == MAP_FAILED) {
    const int e = errno;
    munmap(reserved, span);
    errno = e;
    return MAP_FAILED;
  }
  if (base > low) munmap(reserved, base - low);
  const uintptr_t end = base + l.length;
  if (low + span > end) munmap(reinterpret_cast<void*>(end), low + span - end);
  return p;
}

}  // namespace

// The region's first page. Written once at creation (magic last), but for the words below
// `dirty`, which change under the region lock.
struct Region::Header {
  uint64_t magic;
  uint32_t version;
  uint32_t unit_bytes;
  uint64_t units;
  char secret[32];
  uint32_t lock;   // the region lock: 0, or its holder's lock_word() (| kWaiters)
  uint32_t dirty;  // 1 while a process holds the region lock: found set, its holder died
  uint64_t recovered_blocks;
  uint64_t recovered_bytes;
  uint64_t repairs;
  // Per lock id: how many processes have taken it. A lock word names its holder's id and
  // incarnation, so a word left by a dead holder never matches a later holder of the same id
  // (no ABA: a waiter that read it before cannot take over from the new one).
  uint32_t incarnation[kMaxProcesses];
};
static_assert(sizeof(Region::Header) <= kHeaderBytes, "the header fits its page");
static_assert(sizeof(void*) == 8, "a 64-bit layout");

namespace {

// A lock word: bit 31 kWaiters, bits 7-30 the holder's incarnation, bits 0-6 its lock id + 1.
constexpr uint32_t kIdBits = 0x7fu;
constexpr uint32_t kIncarnationMask = 0xffffffu;
uint32_t lock_word(int id, uint32_t incarnation) {
  return ((incarnation & kIncarnationMask) << 7) | static_cast<uint32_t>(id + 1);
}

}  // namespace

class Region::Lock {
 public:
  explicit Lock(const Region& r) : region_(r), local_(r.local_mutex_) { r.acquire(); }
  ~Lock() { region_.release(); }
  Lock(const Lock&) = delete;
  Lock& operator=(const Lock&) = delete;

 private:
  const Region& region_;
  std::unique_lock<std::mutex> local_;
};

// The region lock: a word in the region, taken with one compare-and-swap when free. A waiter
// spins a little, then sleeps on it (a futex on shared memory: any process wakes it), waking
// every 2 ms to ask the kernel whether the holder still lives (its lock id's byte lock, and the
// id's incarnation). A holder that died is replaced by whoever notices first, and the `dirty`
// word it left set tells the new holder to repair.
void Region::acquire() const {
  uint32_t* word = &header_->lock;
  const uint32_t me = lock_word_;
  uint32_t want = me;  // with kWaiters once this thread has slept: others may sleep too
  for (int spins = 0;;) {
    uint32_t seen = 0;
    if (__atomic_compare_exchange_n(word, &seen, want, false, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
      break;
    if (++spins < 100) {
      cpu_relax();
      continue;
    }
    // Gone: its id's byte is free, or taken since by another incarnation (checked in this
    // order: an id retaken after the byte check shows in the incarnation).
    const uint32_t holder = seen & ~kWaiters;
    const int id = static_cast<int>(holder & kIdBits) - 1;
    const bool dead =
        id < 0 || id >= kMaxProcesses || !held_elsewhere(fd_, kIdLockBase + id) ||
        lock_word(id, __atomic_load_n(&header_->incarnation[id], __ATOMIC_ACQUIRE)) != holder;
    if (dead) {
      if (__atomic_compare_exchange_n(word, &seen, want | (seen & kWaiters), false,
                                      __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
        break;
      continue;
    }
    if (!(seen & kWaiters)) {
      if (!__atomic_compare_exchange_n(word, &seen, seen | kWaiters, false, __ATOMIC_RELAXED,
                                       __ATOMIC_RELAXED))
        continue;
      seen |= kWaiters;
    }
    want = me | kWaiters;
    const struct timespec wait = {0, 2'000'000};
    futex(word, FUTEX_WAIT, seen, &wait);
  }
  if (__atomic_load_n(&header_->dirty, __ATOMIC_ACQUIRE))
    const_cast<Region*>(this)->repair_locked();
  __atomic_store_n(&header_->dirty, 1u, __ATOMIC_RELEASE);
}

void Region::release() const {
  __atomic_store_n(&header_->dirty, 0u, __ATOMIC_RELEASE);
  if (__atomic_exchange_n(&header_->lock, 0u, __ATOMIC_RELEASE) & kWaiters)
    futex(&header_->lock, FUTEX_WAKE, 1, nullptr);
}

Region::Region(std::string name, int fd, char* base, size_t length)
    : name_(std::move(name)), fd_(fd), base_(base), length_(length) {
  header_ = reinterpret_cast<Header*>(base_);
  const Layout l = layout_for(header_->units);
  units_ = l.units;
  owner_ = reinterpret_cast<uint32_t*>(base_ + l.owner_offset);
  extent_ = reinterpret_cast<uint64_t*>(base_ + l.extent_offset);
  nonce_ = reinterpret_cast<uint64_t*>(base_ + l.nonce_offset);
  data_ = base_ + l.data_offset;
  data_bytes_ = units_ * kUnitBytes;
  secret_.assign(header_->secret, sizeof header_->secret);
}

std::unique_ptr<Region> Region::create(const std::string& name, size_t bytes, int* error) {
  if (!valid_name(name) || bytes == 0 || bytes > (size_t{1} << 46)) {
    *error = EINVAL;
    return nullptr;
  }
  const Layout l = layout_for((bytes + kUnitBytes - 1) / kUnitBytes);
  const std::string path = path_of(name);
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  int e = fd < 0 ? errno : 0;
  if (e == EEXIST && remove_if_stale(path)) {
    fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    e = fd < 0 ? errno : 0;
  }
  if (fd < 0) {
    *error = e;  // remove_if_stale's calls may have changed errno
    return nullptr;
  }
  auto fail = [&](int e) -> std::unique_ptr<Region> {
    unlink(path.c_str());
    close(fd);
    *error = e;
    return nullptr;
  };
  // Present from the start: another create() finds the name taken, not stale. (One that took
  // the new file for stale in the instant before has removed the name: leave it alone.)
  if (ofd_lock(fd, F_RDLCK, kPresenceByte, false) != 0 || !still_named(fd, path)) {
    close(fd);
    *error = EBUSY;
    return nullptr;
  }
  // Reserved now: tmpfs out of room (a container's 64 MiB /dev/shm) refuses here, where a
  // sparse file would kill the process with SIGBUS at the first touch of a page it lacks.
  int rc = fallocate(fd, 0, 0, static_cast<off_t>(l.length));
  if (rc != 0 && (errno == EOPNOTSUPP || errno == ENOSYS))
    rc = ftruncate(fd, static_cast<off_t>(l.length));
  if (rc != 0) return fail(errno);
  void* base = map_region(fd, l);
  if (base == MAP_FAILED) return fail(errno);
  auto* h = static_cast<Header*>(base);
  h->version = kLayoutVersion;
  h->unit_bytes = static_cast<uint32_t>(kUnitBytes);
  h->units = l.units;
  uint64_t words[2];
  random_words(words, 2);
  static const char digits[] = "0123456789abcdef";
  for (int i = 0; i < 32; i++) h->secret[i] = digits[(words[i / 16] >> ((i % 16) * 4)) & 0xf];
  __atomic_store_n(&h->magic, kMagic, __ATOMIC_RELEASE);  // now it is a region
  std::unique_ptr<Region> r(new Region(name, fd, static_cast<char*>(base), l.length));
  if (!r->join()) {  // cannot be: nobody else has a new region open
    r.reset();
    unlink(path.c_str());
    *error = EMFILE;
    return nullptr;
  }
  return r;
}

std::unique_ptr<Region> Region::open(const std::string& name, const std::string& secret,
                                     int* error) {
  if (!valid_name(name) || secret.size() != 32) {
    *error = valid_name(name) ? EACCES : EINVAL;
    return nullptr;
  }
  const std::string path = path_of(name);
  int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    *error = errno;
    return nullptr;
  }
  auto fail = [&](int e) -> std::unique_ptr<Region> {
    close(fd);
    *error = e;
    return nullptr;
  };
  // Present before anything else, then sure the name still leads here: the last process out,
  // or a stale-file removal, may have taken it away since ::open.
  if (ofd_lock(fd, F_RDLCK, kPresenceByte, true) != 0) return fail(errno);
  if (!still_named(fd, path)) return fail(ENOENT);
  // Only a region this user made, owner-only: another user's file (planted to read what this
  // process would put in it) is refused.
  const FileFacts st = facts_of(fd);
  if (!st.ok || !st.regular || st.uid != geteuid() || (st.mode & 077) != 0) return fail(EACCES);
  if (st.size < kHeaderBytes) return fail(EPROTO);
  void* head = mmap(nullptr, kHeaderBytes, PROT_READ, MAP_SHARED, fd, 0);
  if (head == MAP_FAILED) return fail(errno);
  const auto* h = static_cast<const Header*>(head);
  const bool region = __atomic_load_n(&h->magic, __ATOMIC_ACQUIRE) == kMagic &&
                      h->version == kLayoutVersion && h->unit_bytes == kUnitBytes;
  // Units bounded by the file's size first: a header claiming more must not overflow the layout.
  const bool sane = region && h->units > 0 && h->units <= st.size / kUnitBytes;
  const Layout l = layout_for(sane ? h->units : 0);
  const bool fits = sane && st.size >= l.length;
  const bool match = fits && equal_in_constant_time(h->secret, secret.data(), 32);
  munmap(head, kHeaderBytes);
  if (!fits) return fail(EPROTO);
  if (!match) return fail(EACCES);
  void* base = map_region(fd, l);
  if (base == MAP_FAILED) return fail(errno);
  std::unique_ptr<Region> r(new Region(name, fd, static_cast<char*>(base), l.length));
  if (!r->join()) {
    r.reset();
    *error = EMFILE;
    return nullptr;
  }
  return r;
}

// Takes a lock id, then a slot whose process is gone (or that was never taken), recovering
// what it left.
bool Region::join() {
  for (int i = 0; i < kMaxProcesses && id_ < 0; i++)
    if (ofd_lock(fd_, F_WRLCK, kIdLockBase + i, false) == 0) id_ = i;
  if (id_ < 0) return false;
  lock_word_ = lock_word(id_, __atomic_add_fetch(&header_->incarnation[id_], 1, __ATOMIC_ACQ_REL));
  Lock lock(*this);
  recover_locked();
  for (int s = 0; s < kMaxProcesses; s++) {
    if (held_elsewhere(fd_, kSlotLockBase + s)) continue;
    if (ofd_lock(fd_, F_WRLCK, kSlotLockBase + s, false) != 0) continue;
    slot_ = s;
    // Its last process may have died after the pass above: what it left is not this one's.
    for_each_run([&](uint64_t first, uint32_t owner, uint64_t units) {
      if (slot_of(owner) != s) return;
      header_->recovered_blocks++;
      header_->recovered_bytes += units * kUnitBytes;
      free_run_locked(first);
    });
    return true;
  }
  return false;
}

Region::~Region() {
  if (slot_ >= 0) {
    Lock lock(*this);
    // Nobody else can reach what this process owns or gave and was not adopted: it goes back.
    for_each_run([&](uint64_t first, uint32_t owner, uint64_t) {
      if (slot_of(owner) == slot_) free_run_locked(first);
    });
    ofd_lock(fd_, F_UNLCK, kSlotLockBase + slot_, false);
    if (!others_alive()) unlink(path_of(name_).c_str());  // the last one out removes it
  }
  // Dropped by the kernel with the descriptor too; explicit, so nothing waits on close order.
  if (id_ >= 0) ofd_lock(fd_, F_UNLCK, kIdLockBase + id_, false);
  munmap(base_, length_);
  close(fd_);
}

bool Region::slot_alive(int slot) const {
  return slot == slot_ || held_elsewhere(fd_, kSlotLockBase + slot);
}

bool Region::others_alive() const { return others_present(fd_); }

void Region::unlink_if_last() const {
  // Only the name: the map stays as it is (another thread may still be inside the region), and
  // what this process owned is recovered by the next process that opens it.
  if (!others_alive()) unlink(path_of(name_).c_str());
}

uint64_t Region::unit_of(const void* p) const {
  const auto* c = static_cast<const char*>(p);
  if (c < data_ || c >= data_ + data_bytes_ || (c - data_) % kUnitBytes != 0) return UINT64_MAX;
  return static_cast<uint64_t>(c - data_) / kUnitBytes;
}

// Changes are ordered so that a process killed in the middle of one leaves only: units it was
// claiming marked as continuations of no run (allocate writes the first unit's owner last),
// units of a run whose first unit it had already cleared (free clears it first), or whole runs
// that are still its own (recover_locked frees them once it is gone). This makes each right.
void Region::repair_locked() {
  header_->repairs++;
  for (uint64_t u = 0; u < units_;) {
    const uint32_t w = owner_[u];
    if (w == 0) {
      u++;
    } else if (w == kContinuation) {
      owner_[u++] = 0;  // claimed by no run
    } else {
      const uint64_t n = extent_[u];
      if (n == 0 || n > units_ - u) {
        owner_[u++] = 0;  // cannot be: a first unit's extent is written before its owner
        continue;
      }
      u += n;
    }
  }
}

template <typename F>
void Region::for_each_run(F&& f) const {
  for (uint64_t u = 0; u < units_;) {
    const uint32_t w = owner_[u];
    if (!is_run_start(w)) {
      u++;
      continue;
    }
    const uint64_t n = extent_[u] ? extent_[u] : 1;
    f(u, w, n);  // may free the run: n was read before
    u += n;
  }
}

void Region::free_run_locked(uint64_t first) {
  const uint64_t n = extent_[first];
  __atomic_store_n(&owner_[first], 0u, __ATOMIC_RELEASE);  // first: the run is gone at once
  for (uint64_t k = 1; k < n; k++) owner_[first + k] = 0;
  nonce_[first] = 0;
}

size_t Region::recover_locked() {
  size_t recovered = 0;
  // Asked of the kernel once per slot in a pass, not once per block: the lock is held.
  enum : char { kUnknown, kAlive, kDead };
  char alive[kMaxProcesses] = {};
  for_each_run([&](uint64_t first, uint32_t owner, uint64_t units) {
    const int slot = slot_of(owner);
    if (slot >= 0 && slot < kMaxProcesses) {
      if (alive[slot] == kUnknown) alive[slot] = slot_alive(slot) ? kAlive : kDead;
      if (alive[slot] == kAlive) return;
    }
    header_->recovered_blocks++;
    header_->recovered_bytes += units * kUnitBytes;
    free_run_locked(first);
    recovered++;
  });
  return recovered;
}

size_t Region::recover() {
  Lock lock(*this);
  return recover_locked();
}

void* Region::allocate(size_t bytes, size_t alignment) {
  if (bytes == 0 || bytes > data_bytes_ || alignment == 0 || (alignment & (alignment - 1)))
    return nullptr;
  const uint64_t n = (bytes + kUnitBytes - 1) / kUnitBytes;
  Lock lock(*this);
  for (int attempt = 0; attempt < 2; attempt++) {
    uint64_t run = 0;
    for (uint64_t u = 0; u < units_; u++) {
      if (owner_[u] != 0) {
        run = 0;
        if (is_run_start(owner_[u]) && extent_[u] > 1) u += extent_[u] - 1;
        continue;
      }
      if (++run < n) continue;
      const uint64_t first = u + 1 - n;
      // Aligned here (each process maps the region at its own address): a longer run may be.
      if (reinterpret_cast<uintptr_t>(data_ + first * kUnitBytes) % alignment != 0) continue;
      for (uint64_t k = 1; k < n; k++) owner_[first + k] = kContinuation;
      extent_[first] = n;
      nonce_[first] = 0;
      __atomic_store_n(&owner_[first], owner_word(slot_), __ATOMIC_RELEASE);  // last: it is ours
      return data_ + first * kUnitBytes;
    }
    if (attempt == 0 && recover_locked() == 0) break;  // nothing came back: no use looking again
  }
  return nullptr;
}

bool Region::free(void* p) {
  const uint64_t u = unit_of(p);
  if (u == UINT64_MAX) return false;
  Lock lock(*this);
  if (owner_[u] != owner_word(slot_)) return false;
  free_run_locked(u);
  return true;
}

size_t Region::size_of(const void* p) const {
  const uint64_t u = unit_of(p);
  if (u == UINT64_MAX) return 0;
  Lock lock(*this);
  return owner_[u] == owner_word(slot_) ? extent_[u] * kUnitBytes : 0;
}

bool Region::give(void* p, Ticket* out) {
  const uint64_t u = unit_of(p);
  if (u == UINT64_MAX) return false;
  Lock lock(*this);
  if (owner_[u] != owner_word(slot_)) return false;
  uint64_t nonce = 0;
  while (nonce == 0) nonce = random_word();
  nonce_[u] = nonce;
  __atomic_store_n(&owner_[u], owner_word(slot_) | kInFlight, __ATOMIC_RELEASE);
  *out = Ticket{u, nonce, extent_[u]};
  return true;
}

void* Region::adopt(const Ticket& t, size_t* bytes) {
  if (t.unit >= units_ || t.nonce == 0) return nullptr;
  Lock lock(*this);
  const uint32_t w = owner_[t.unit];
  if (!is_run_start(w) || !(w & kInFlight) || nonce_[t.unit] != t.nonce ||
      (t.units && extent_[t.unit] != t.units))
    return nullptr;
  // One word: now ours (killed right after, the block is recovered as this process's).
  __atomic_store_n(&owner_[t.unit], owner_word(slot_), __ATOMIC_RELEASE);
  nonce_[t.unit] = 0;
  *bytes = extent_[t.unit] * kUnitBytes;
  return data_ + t.unit * kUnitBytes;
}

RegionStats Region::stats() {
  Lock lock(*this);
  recover_locked();
  RegionStats s;
  s.bytes = data_bytes_;
  for_each_run([&](uint64_t, uint32_t owner, uint64_t units) {
    s.bytes_in_use += units * kUnitBytes;
    const bool here = slot_of(owner) == slot_;
    if (owner & kInFlight) {
      s.blocks_in_flight++;
      s.given_here += here;
    } else {
      s.blocks_in_use++;
      s.blocks_here += here;
      s.bytes_here += here ? units * kUnitBytes : 0;
    }
  });
  s.recovered_blocks = header_->recovered_blocks;
  s.recovered_bytes = header_->recovered_bytes;
  s.repairs = header_->repairs;
  for (int slot = 0; slot < kMaxProcesses; slot++) s.processes += slot_alive(slot) ? 1 : 0;
  return s;
}

bool Region::consistent() const {
  Lock lock(*this);
  for (uint64_t u = 0; u < units_;) {
    const uint32_t w = owner_[u];
    if (w == 0) {
      u++;
      continue;
    }
    if (w == kContinuation) return false;
    const uint64_t n = extent_[u];
    if (n == 0 || n > units_ - u) return false;
    for (uint64_t k = 1; k < n; k++)
      if (owner_[u + k] != kContinuation) return false;
    u += n;
  }
  return true;
}

}  // namespace pinpool::shared
