/*
 * A Node-API module with one function, leakCheck(), that runs LeakSanitizer now, inside the
 * running process, and returns non-zero when it found leaks (the report goes to stderr).
 *
 * Why not the check at exit: vitest stops a test fork with SIGTERM and a SIGKILL 500 ms later,
 * and a process killed by a signal never reaches exit(), where LeakSanitizer runs; a check of
 * a Node process takes one to several seconds anyway. Why not rely on exit at all: V8 keeps its
 * heap in pages it maps itself, which LeakSanitizer does not scan, so at exit every block still
 * held by a live JavaScript object looks leaked. Run from the test file's last afterAll hook,
 * after a few garbage collections, the check sees only what nothing can reach.
 *
 * Built by scripts/asan/test-asan.sh into build-asan/lsan-check.node; needs libasan in the
 * process (LD_PRELOAD), whose symbol is taken at load time.
 */
#define NAPI_VERSION 8
#include <node_api.h>

/* From <sanitizer/lsan_interface.h>; weak, so that loading without libasan fails softly. */
extern int __lsan_do_recoverable_leak_check(void) __attribute__((weak));

static napi_value leak_check(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value result;
  int leaks = __lsan_do_recoverable_leak_check ? __lsan_do_recoverable_leak_check() : -1;
  napi_create_int32(env, leaks, &result);
  return result;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  napi_create_function(env, "leakCheck", NAPI_AUTO_LENGTH, leak_check, NULL, &fn);
  napi_set_named_property(env, exports, "leakCheck", fn);
  return exports;
}
