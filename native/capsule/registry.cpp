#include "registry.hpp"

#include <dlfcn.h>

#include <atomic>
#include <cstring>
#include <mutex>
#include <new>

#include "c_api.hpp"

// The prebuilt binaries load on glibc 2.28 and later (CMakeLists.txt, PINPOOL_GLIBC_BASELINE):
// the dl functions by the version every glibc has, as in cuda_driver.cpp.
#if defined(PINPOOL_GLIBC_BASELINE) && defined(__GLIBC__)
#if defined(__x86_64__)
__asm__(".symver dlopen,dlopen@GLIBC_2.2.5");
__asm__(".symver dlsym,dlsym@GLIBC_2.2.5");
__asm__(".symver dlerror,dlerror@GLIBC_2.2.5");
__asm__(".symver dladdr,dladdr@GLIBC_2.2.5");
#elif defined(__aarch64__)
__asm__(".symver dlopen,dlopen@GLIBC_2.17");
__asm__(".symver dlsym,dlsym@GLIBC_2.17");
__asm__(".symver dlerror,dlerror@GLIBC_2.17");
__asm__(".symver dladdr,dladdr@GLIBC_2.17");
#endif
#endif

// The one exported symbol of the addon (CMakeLists.txt's version script lists it). Protected:
// this copy's own references, were there any, bind here; other copies reach it only through
// dlsym.
extern "C" __attribute__((visibility("protected"))) const pinpool_registry* pinpool_capsule_publish(
    const pinpool_registry* candidate) {
  static std::atomic<const pinpool_registry*> published{nullptr};
  if (candidate) {
    const pinpool_registry* none = nullptr;
    published.compare_exchange_strong(none, candidate, std::memory_order_acq_rel,
                                      std::memory_order_acquire);
  }
  return published.load(std::memory_order_acquire);
}

namespace pinpool::capsule {
namespace {

pinpool_registry g_own{};  // filled once, by publish(), before it is published
std::once_flag g_filled;

// Strings the registry points at: they live as long as the process (an addon is never unloaded).
// strdup, so the registry holds the allocation's own address (LeakSanitizer sees it reachable).
const char* keep(const std::string& s) {
  const char* copy = strdup(s.c_str());
  if (!copy) throw std::bad_alloc();
  return copy;
}

}  // namespace

std::string addon_path() {
  Dl_info info{};
  if (!dladdr(reinterpret_cast<void*>(&pinpool_capsule_publish), &info) || !info.dli_fname)
    return "";
  return info.dli_fname;
}

bool promote(std::string& why) {
  std::string path = addon_path();
  if (path.empty()) {
    why = "dladdr found no file for the addon";
    return false;
  }
  // RTLD_NOLOAD: the file is loaded already (we are running in it); this only adds it (and what
  // it depends on) to the global scope, with the binding mode it has. The handle is leaked on
  // purpose: the addon stays loaded for good.
  if (!dlopen(path.c_str(), RTLD_NOLOAD | RTLD_LAZY | RTLD_GLOBAL)) {
    const char* e = dlerror();
    why = e ? e : "dlopen failed";
    return false;
  }
  // In the global scope now, this copy's symbol or an earlier copy's must be found; if not, the
  // build did not export it (a linker option hid it) and no copy can find another.
  if (!dlsym(RTLD_DEFAULT, PINPOOL_CAPSULE_SYMBOL)) {
    why = std::string(PINPOOL_CAPSULE_SYMBOL " is not exported by ") + path;
    return false;
  }
  return true;
}

const pinpool_registry* own() { return &g_own; }

const pinpool_registry* publish(const std::string& version, const std::string& entry) {
  std::call_once(g_filled, [&] {
    const char* v = keep(version);
    set_api_version(v);
    g_own.abi_version = PINPOOL_ABI_VERSION;
    g_own.struct_size = sizeof(pinpool_registry);
    g_own.version = v;
    g_own.entry = keep(entry);
    g_own.addon = keep(addon_path());
    g_own.api = api();
  });
  // The first copy promoted holds the slot; this copy's own function when none is found (it
  // could not be promoted: it then stands alone).
  auto first =
      reinterpret_cast<pinpool_capsule_publish_fn>(dlsym(RTLD_DEFAULT, PINPOOL_CAPSULE_SYMBOL));
  if (!first) first = pinpool_capsule_publish;
  const pinpool_registry* r = first(&g_own);
  return r ? r : &g_own;
}

}  // namespace pinpool::capsule
