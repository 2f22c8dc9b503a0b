// Test hooks, compiled only with PINPOOL_TESTING=ON (CMakeLists.txt; `npm run build` turns it on,
// `prepare` and scripts/prebuild.sh leave it off): the module's `testing` object. No production
// module calls them; the published binaries have no `testing` key (test/prebuilds/smoke.cjs).
//   fakeCuda    the CUDA test double's counters and knobs (test/support/fake-cuda.ts)
//   deferred    a handler's frees still waiting for their leases
//   cudaError   what pinpool calls a CUresult: the loaded driver's name and words, or its own
//   kernel      a double of the kernel calls growth makes (support/kernel.hpp): knobs, counts
//   faultIn     maps, first-touches and unmaps memory, locking nothing (bench/growth.mjs's
//               measure of the machine's limit)
//   legacyCopy  a copy another CUDA library would make: host to device on the legacy default
//               stream (stream 0), which pinpool's own streams never wait for by themselves
//   cudaContext another library's context made current on this thread, and whose context is
//               current or made some memory
//   faultKernel a kernel that faults, as another library's may: the context fails
//   groups      the module's keys by the binding file that exports them (test/host/binding.test.ts)
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <mutex>
#include <string>
#include <vector>

#include <sys/mman.h>

#include "../core/growth.hpp"
#include "../cuda/cuda_driver.hpp"
#include "../support/align.hpp"
#include "../support/kernel.hpp"
#include "module_exports.hpp"

namespace pinpool::binding {
namespace {

// fakeCuda('set', knob, value) -> bool
napi_value fake_set(napi_env env, const napi_value* argv) {
  const Call call{env, "binding: testing.fakeCuda('set', knob, value)"};
  PINPOOL_REQUIRE_STRING(1, knob);
  PINPOOL_REQUIRE_INT64(2, value);
  return js_bool(env, cuda::fake_set(knob.c_str(), value));
}

// fakeCuda('counters') -> object | null; fakeCuda('reset') -> bool; fakeCuda('set', knob, value)
napi_value FakeCuda(napi_env env, napi_callback_info info) {
  PINPOOL_ARGS(env, info, 3, "testing.fakeCuda(op, ...)");
  PINPOOL_REQUIRE_STRING(0, op);
  if (op == "counters") {
    std::vector<cuda::Counter> counters;
    if (!cuda::fake_counters(counters)) return js_null(env);
    napi_value o = js_object(env);
    for (const auto& c : counters)
      set_named(env, o, c.name.c_str(), js_number(env, static_cast<double>(c.value)));
    return o;
  }
  if (op == "reset") return js_bool(env, cuda::fake_reset_counters());
  if (op == "set") return fake_set(env, argv);
  if (op == "query") {
    PINPOOL_REQUIRE_STRING(1, what);
    PINPOOL_REQUIRE_INT64(2, arg);
    long long answer = 0;
    if (!cuda::fake_query(what.c_str(), arg, &answer)) return js_null(env);
    return js_number(env, static_cast<double>(answer));
  }
  return throw_error(env, code::kInvalidArgument, "binding: testing.fakeCuda: unknown op " + op);
}

// deferred(handler) -> blocks still waiting for their leases (0 for any other value)
napi_value Deferred(napi_env env, napi_callback_info info) {
  PINPOOL_ARGS(env, info, 1, "testing.deferred(handler)");
  Handler* h = nullptr;
  get_handle(env, argv[0], &h);
  return js_number(env, h ? static_cast<double>(h->deferred()) : 0);
}

// cudaError(code) -> { name, text }: cuda::error_name() and cuda::error_string()
napi_value CudaError(napi_env env, napi_callback_info info) {
  PINPOOL_ARGS(env, info, 1, "testing.cudaError(code)");
  PINPOOL_REQUIRE_INT64(0, code);
  PINPOOL_REQUIRE(code >= INT32_MIN && code <= INT32_MAX);
  const auto rc = static_cast<CUresult>(code);
  napi_value o = js_object(env);
  set_named(env, o, "name", js_string(env, cuda::error_name(rc)));
  set_named(env, o, "text", js_string(env, cuda::error_string(rc)));
  return o;
}

// The kernel double: what a machine with several NUMA nodes, or without transparent huge pages,
// would say, and a record of the calls. Pages are still mapped, touched and locked for real
// (huge-page advice and locking go on to the real calls unless refused here); only the NUMA
// calls are played, since this machine may have one node.
struct KernelDouble {
  std::atomic<bool> huge_offered{true};
  std::atomic<int> nodes{1};                    // node_count()
  std::atomic<int> pci_node{-1};                // pci_node()'s answer
  std::atomic<int> place_on{-1};                // nodes_of()'s answer; -1: the node last preferred
  std::atomic<long> lock_fails_at{0};           // the nth lock_pages call (from 1) fails; 0: none
  std::atomic<bool> populate_refused{false};    // populate_write() says EINVAL (a kernel < 5.14)
  std::atomic<bool> populate_no_memory{false};  // populate_write() says ENOMEM
  // The record.
  std::atomic<long> advise{0}, prefer{0}, prefer_node{-1}, nodes_of{0}, thread_prefer{0},
      thread_prefer_node{-1}, thread_restores{0}, pci_lookups{0}, populates{0}, locks{0},
      largest_lock{0}, unlocks{0};
  std::mutex bus_mutex;
  std::string last_bus_id;
};
KernelDouble& double_kernel() {
  static KernelDouble* d = new KernelDouble();  // never destroyed: touch threads may outlive us
  return *d;
}

const Kernel kDouble = {
    [] { return double_kernel().huge_offered.load(); },
    [](void* p, size_t length) {
      double_kernel().advise++;
      return real_kernel().advise_huge(p, length);
    },
    [](void*, size_t, int node) {
      KernelDouble& d = double_kernel();
      d.prefer++;
      d.prefer_node = node;
      if (node >= d.nodes.load()) {
        errno = EINVAL;
        return -1;
      }
      return 0;
    },
    [](void* const*, size_t count, int* nodes) {
      KernelDouble& d = double_kernel();
      d.nodes_of++;
      int on = d.place_on >= 0 ? d.place_on.load() : static_cast<int>(d.prefer_node.load());
      std::fill(nodes, nodes + count, on);
      return 0;
    },
    [](int node) {
      KernelDouble& d = double_kernel();
      if (node < 0) {
        d.thread_restores++;
      } else {
        d.thread_prefer++;
        d.thread_prefer_node = node;
      }
      return 0;
    },
    [](const char* bus_id) {
      KernelDouble& d = double_kernel();
      d.pci_lookups++;
      std::lock_guard<std::mutex> lock(d.bus_mutex);
      d.last_bus_id = bus_id;
      return d.pci_node.load();
    },
    [] { return double_kernel().nodes.load(); },
    [](void* p, size_t length) {
      KernelDouble& d = double_kernel();
      d.populates++;
      if (d.populate_refused || d.populate_no_memory) {
        errno = d.populate_refused ? EINVAL : ENOMEM;
        return -1;
      }
      return real_kernel().populate_write(p, length);
    },
    [](void* p, size_t length) {
      KernelDouble& d = double_kernel();
      long n = ++d.locks;
      long seen = d.largest_lock.load();
      while (static_cast<long>(length) > seen &&
             !d.largest_lock.compare_exchange_weak(seen, static_cast<long>(length))) {}
      if (n == d.lock_fails_at.load()) {
        errno = ENOMEM;
        return -1;
      }
      return real_kernel().lock_pages(p, length);
    },
    [](void* p, size_t length) {
      double_kernel().unlocks++;
      return real_kernel().unlock_pages(p, length);
    },
    [](const void* p, size_t length) { return real_kernel().private_copies(p, length); },
};

// kernel('double', knobs) installs the double with `knobs` ({ hugePages, nodes, pciNode,
// placeOn, lockFailsAt, populateRefused, populateNoMemory }), the record cleared; kernel('real')
// puts the real calls back; kernel('calls') -> the record.
napi_value KernelCalls(napi_env env, napi_callback_info info) {
  PINPOOL_ARGS(env, info, 2, "testing.kernel(op, knobs)");
  PINPOOL_REQUIRE_STRING(0, op);
  KernelDouble& d = double_kernel();
  if (op == "real") {
    kernel() = real_kernel();
    return js_bool(env, true);
  }
  if (op == "double") {
    PINPOOL_REQUIRE_OBJECT(1, knobs);
    auto number = [&](const char* key, double fallback) {
      napi_value v;
      double out = fallback;
      bool has = false;
      bool flag;
      if (napi_has_named_property(env, knobs, key, &has) == napi_ok && has &&
          napi_get_named_property(env, knobs, key, &v) == napi_ok &&
          !get_any_number(env, v, &out) && get_bool(env, v, &flag))
        out = flag ? 1 : 0;
      return out;
    };
    d.huge_offered = number("hugePages", 1) != 0;
    d.nodes = static_cast<int>(number("nodes", 1));
    d.pci_node = static_cast<int>(number("pciNode", -1));
    d.place_on = static_cast<int>(number("placeOn", -1));
    d.lock_fails_at = static_cast<long>(number("lockFailsAt", 0));
    d.populate_refused = number("populateRefused", 0) != 0;
    d.populate_no_memory = number("populateNoMemory", 0) != 0;
    for (auto* c : {&d.advise, &d.prefer, &d.nodes_of, &d.thread_prefer, &d.thread_restores,
                    &d.pci_lookups, &d.populates, &d.locks, &d.largest_lock, &d.unlocks})
      *c = 0;
    d.prefer_node = -1;
    d.thread_prefer_node = -1;
    {
      std::lock_guard<std::mutex> lock(d.bus_mutex);
      d.last_bus_id.clear();
    }
    kernel() = kDouble;
    return js_bool(env, true);
  }
  if (op == "calls") {
    napi_value o = js_object(env);
    auto put = [&](const char* key, long v) {
      set_named(env, o, key, js_number(env, static_cast<double>(v)));
    };
    put("advise", d.advise);
    put("prefer", d.prefer);
    put("preferNode", d.prefer_node);
    put("nodesOf", d.nodes_of);
    put("threadPrefer", d.thread_prefer);
    put("threadPreferNode", d.thread_prefer_node);
    put("threadRestores", d.thread_restores);
    put("pciLookups", d.pci_lookups);
    put("populates", d.populates);
    put("locks", d.locks);
    put("largestLock", d.largest_lock);
    put("unlocks", d.unlocks);
    std::lock_guard<std::mutex> lock(d.bus_mutex);
    set_named(env, o, "lastBusId", js_string(env, d.last_bus_id));
    return o;
  }
  return throw_error(env, code::kInvalidArgument, "binding: testing.kernel: unknown op " + op);
}

// faultIn(bytes, threads, hugePages) -> true: what growth costs without the locking (the
// machine's limit for first touch), through the same mapping and touch as the leaves.
napi_value FaultIn(napi_env env, napi_callback_info info) {
  PINPOOL_ARGS(env, info, 3, "testing.faultIn(bytes, threads, hugePages)");
  PINPOOL_REQUIRE_SIZE(0, bytes);
  PINPOOL_REQUIRE_INT32(1, threads);
  PINPOOL_REQUIRE_BOOL(2, huge);
  GrowthOptions o;
  o.huge_pages = huge;
  o.touch_threads = threads > 0 ? static_cast<unsigned>(threads) : 0;
  GrowthReport report;
  size_t length = align_up(bytes, page_size());
  void* p = length ? map_and_touch(length, page_size(), o, &report) : nullptr;
  if (!p) return throw_error(env, code::kOutOfMemory, "testing.faultIn: mmap failed");
  munmap(p, length);
  return js_bool(env, !report.huge_refused);
}

// legacyCopy(device, address, bytes: Uint8Array) -> undefined: queues a copy of `bytes` to
// device memory at `address` on CU_STREAM_LEGACY, as another library using the runtime API's
// default stream would. The source is pageable: the driver stages it before returning.
napi_value LegacyCopy(napi_env env, napi_callback_info info) {
  PINPOOL_ARGS(env, info, 3, "testing.legacyCopy(device, address, bytes)");
  PINPOOL_REQUIRE_INT32(0, device);
  PINPOOL_REQUIRE_ADDRESS(1, address);
  PINPOOL_REQUIRE_UINT8_ARRAY(2, bytes);
  CUresult rc = cuda::copy_async(device, cuda::CopyKind::HostToDevice, address, bytes.data,
                                 bytes.length, CU_STREAM_LEGACY);
  if (rc != CUDA_SUCCESS) napi_throw(env, cuda_error(env, rc, "legacyCopy"));
  return nullptr;
}

// cudaContext('begin', device) -> true: a context another library made (cuCtxCreate), current
// on this thread until cudaContext('end'); cudaContext('current', device) and
// cudaContext('of', device, address) -> 'none' | 'primary' | 'foreign'. Throws the CUDA error.
napi_value CudaContext(napi_env env, napi_callback_info info) {
  PINPOOL_ARGS(env, info, 3, "testing.cudaContext(op, device, address)");
  PINPOOL_REQUIRE_STRING(0, op);
  PINPOOL_REQUIRE_INT32(1, device);
  CUresult rc = CUDA_SUCCESS;
  if (op == "begin" || op == "end") {
    rc = op == "begin" ? cuda::foreign_context_begin(device) : cuda::foreign_context_end();
    if (rc != CUDA_SUCCESS) {
      napi_throw(env, cuda_error(env, rc, "cudaContext(" + op + ")"));
      return nullptr;
    }
    return js_bool(env, true);
  }
  const void* ptr = nullptr;
  if (op == "of") {
    PINPOOL_REQUIRE_ADDRESS(2, address);
    ptr = address;
  } else if (op != "current") {
    return throw_error(env, code::kInvalidArgument, "testing.cudaContext: unknown op " + op);
  }
  static const char* const kinds[] = {"none", "primary", "foreign"};
  int kind = cuda::context_kind(device, ptr);
  if (kind < 0)
    return throw_error(env, code::kInvalidArgument, "testing.cudaContext: the driver cannot say");
  return js_string(env, kinds[kind]);
}

// faultKernel(device) -> undefined: launches a kernel that stores through a null pointer on the
// device's legacy default stream. Every later CUDA call in the process fails.
napi_value FaultKernel(napi_env env, napi_callback_info info) {
  PINPOOL_ARGS(env, info, 1, "testing.faultKernel(device)");
  PINPOOL_REQUIRE_INT32(0, device);
  CUresult rc = cuda::launch_faulting_kernel(device);
  if (rc != CUDA_SUCCESS) napi_throw(env, cuda_error(env, rc, "faultKernel"));
  return nullptr;
}

}  // namespace

void ExportTesting(napi_env env, napi_value exports, napi_value groups) {
  napi_value testing = js_object(env);
  export_functions(env, testing,
                   {{"fakeCuda", guarded<FakeCuda>},
                    {"deferred", guarded<Deferred>},
                    {"cudaError", guarded<CudaError>},
                    {"kernel", guarded<KernelCalls>},
                    {"faultIn", guarded<FaultIn>},
                    {"legacyCopy", guarded<LegacyCopy>},
                    {"cudaContext", guarded<CudaContext>},
                    {"faultKernel", guarded<FaultKernel>}});
  set_named(env, testing, "groups", groups);
  set_named(env, exports, "testing", testing);
}

}  // namespace pinpool::binding
