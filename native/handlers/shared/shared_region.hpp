// One region of shared memory that several processes of a host allocate from and hand blocks
// across (issue 24, design decision 18): the foundation of the `shared()` leaf. Not yet reachable
// from JavaScript.
//
// The region is a file in /dev/shm (what shm_open makes), created owner-only (0600), its size
// reserved with fallocate so that a full tmpfs is a refusal at creation, never a SIGBUS at first
// touch. Every process that opens it maps it at its own address; everything inside is offsets.
// Opening needs the name and the region's secret (128 random bits, made at creation).
//
// State lives in the region and survives any process being killed at any instruction:
//   - One word per unit of the data area (kUnitBytes each): 0 free, a run's first unit (its
//     owner), or a continuation of the run before it; a run's length sits beside its first
//     unit. Every change is ordered so that a half-done one leaves only free units, units of the
//     process that was changing them, or continuations nothing claims, and repair() puts each
//     right.
//   - Each open process holds OFD locks (fcntl F_OFD_SETLK) on two bytes of the file: its lock
//     id's and its slot's. The kernel drops them when the process dies, so anyone can tell an id
//     or a slot whose process is gone (no pid reuse, any PID namespace), and recover() frees the
//     blocks of a dead slot.
//   - Changes are made under one lock: a word in the region holding its holder's lock id, taken
//     by compare-and-swap, slept on as a futex when busy. A waiter that finds the holder's id
//     byte free takes the lock over; a `dirty` word set while the lock is held tells whoever
//     takes it next that its last holder died mid-change, and it repairs. The id is taken before
//     the slot, so a process opening the region can take the lock to recover dead slots before
//     it joins.
// A block is handed to another process by give() (it becomes in flight, named by a ticket of
// its first unit and a random nonce) and adopt() there: one word changes owner, so the block is
// never both, nor neither. A block in flight whose giver died is recovered, and its ticket no
// longer adopts.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

namespace pinpool::shared {

inline constexpr size_t kUnitBytes = size_t{64} << 10;  // the allocation grain: 64 KiB
inline constexpr int kMaxProcesses = 64;                // processes that can have it open at once

struct RegionStats {
  uint64_t bytes = 0;             // the data area
  uint64_t bytes_in_use = 0;      // in blocks owned or in flight
  uint64_t blocks_in_use = 0;     // blocks owned by a process
  uint64_t blocks_in_flight = 0;  // given, not yet adopted
  uint64_t recovered_blocks = 0;  // taken back from processes that died (ever)
  uint64_t recovered_bytes = 0;
  uint64_t repairs = 0;      // times a process found the lock's last holder dead mid-change
  uint32_t processes = 0;    // processes that have it open now
  uint64_t bytes_here = 0;   // of bytes_in_use: in blocks this process owns
  uint64_t blocks_here = 0;  // blocks this process owns
  uint64_t given_here = 0;   // blocks this process gave, not yet adopted
};

// What give() returns: enough for adopt() in another process (with the region open there).
struct Ticket {
  uint64_t unit = 0;   // the block's first unit
  uint64_t nonce = 0;  // random, written into the region by give(); adopt() must match it
  uint64_t units = 0;  // the block's length in units (give() says); adopt() matches it unless 0
};

class Region {
 public:
  struct Header;  // the region's first page (shared_region.cpp)
  // Creates region `name` (letters, digits, '-', '_', '.'; at most 100) with at least `bytes` of
  // data. Null with errno-style `*error` (EEXIST, EINVAL, ENOSPC, EACCES ...) on failure. A
  // region of that name that no process has open (its last one was killed) is stale: it is
  // removed and made anew.
  static std::unique_ptr<Region> create(const std::string& name, size_t bytes, int* error);
  // Opens an existing region: EACCES for a wrong secret (compared in constant time), ENOENT for
  // none, EMFILE when kMaxProcesses have it open, EPROTO for a file that is not a region.
  static std::unique_ptr<Region> open(const std::string& name, const std::string& secret,
                                      int* error);
  // Closes it here: this process's blocks go back (it owns them, nobody else can reach them),
  // what it gave and was not adopted too; the file is removed when no process has it open.
  ~Region();
  Region(const Region&) = delete;
  Region& operator=(const Region&) = delete;

  const std::string& name() const { return name_; }
  const std::string& secret() const { return secret_; }  // 32 hexadecimal digits
  char* data() const { return data_; }                   // the data area, as mapped here
  size_t data_bytes() const { return data_bytes_; }

  // A block of at least `bytes` (whole units), owned by this process, at an address aligned to
  // `alignment` (a power of two) in this process; null when no run of free units is long
  // enough (after recovering dead processes' blocks), or bytes is 0.
  void* allocate(size_t bytes, size_t alignment = 1);
  // Frees a block this process owns, by its start; false (nothing changed) for anything else.
  bool free(void* p);
  // The size of the block this process owns at `p`, or 0.
  size_t size_of(const void* p) const;
  // Hands a block this process owns to whoever adopts `*out`; false when it owns none at `p`.
  bool give(void* p, Ticket* out);
  // Takes a block given by another process (or this one); null when the ticket does not name a
  // block in flight (adopted already, recovered, or forged). `*bytes` gets its size.
  void* adopt(const Ticket& ticket, size_t* bytes);
  // Frees every block of processes that have died (owned, or given and not adopted); returns
  // how many. Also run by allocate() when nothing fits.
  size_t recover();
  // Its statistics, after taking back the blocks of processes that died (recover()): whoever
  // looks sees only live processes' blocks.
  RegionStats stats();
  // Whether the unit map holds only runs and free units (the check tests make after kills).
  bool consistent() const;
  // At process exit (the region stays mapped: another thread may still be inside a block): if
  // no other process has it open, removes its name, as the last one out would. The blocks this
  // process owns are recovered by whoever opens it next.
  void unlink_if_last() const;

 private:
  Region(std::string name, int fd, char* base, size_t length);
  // Takes the region's lock (and this process's); repairs when its last holder died holding it.
  class Lock;
  bool join();
  void repair_locked();
  size_t recover_locked();
  void free_run_locked(uint64_t first);
  // Calls f(first unit, owner word, units) for each run, in address order. Lock held.
  template <typename F>
  void for_each_run(F&& f) const;
  bool slot_alive(int slot) const;
  bool others_alive() const;
  void acquire() const;  // the region lock (Lock)
  void release() const;
  uint64_t unit_of(const void* p) const;

  const std::string name_;
  std::string secret_;
  const int fd_;
  char* const base_;
  const size_t length_;
  Header* header_ = nullptr;
  uint32_t* owner_ = nullptr;   // per unit: 0 free, kContinuation, or an owner word
  uint64_t* extent_ = nullptr;  // per first unit: the run's length in units
  uint64_t* nonce_ = nullptr;   // per first unit: the ticket of a block in flight
  char* data_ = nullptr;
  size_t data_bytes_ = 0;
  uint64_t units_ = 0;
  int slot_ = -1;                   // this process's slot
  int id_ = -1;                     // this process's lock id: who holds the region lock
  uint32_t lock_word_ = 0;          // what the lock word holds while this process has it
  mutable std::mutex local_mutex_;  // OFD locks exclude processes, not this process's threads
};

}  // namespace pinpool::shared
