/*
 * pinpool.h: the public C ABI of a pinpool allocator handler, and (below, ABI version 2) the C
 * API other native addons build on: handles from JavaScript, a table of entry points, the registry.
 *
 * A handler is a table of functions plus a `ctx` pointer, in the style of CPython's
 * PyMemAllocatorEx (PEP 445) and NumPy's PyDataMem_Handler (NEP 49): one implementation serves
 * many configurations (a device, an alignment, an upstream) through its ctx.
 *
 * Stability rules, so that other native extensions can hold a pinpool_handler* safely:
 *   - The struct is append-only. New members go at the end and bump PINPOOL_ABI_VERSION.
 *   - `struct_size` says how many bytes the producer filled in: a consumer built against a
 *     newer header checks `offsetof(member) < struct_size` before reading a newer member.
 *   - A consumer that needs a newer ABI than it finds must fail with a clear error rather than
 *     call through a member that is not there.
 *
 * Ownership: a handler is reference counted. Whoever stores a pointer to it calls `retain`,
 * and `release` when done; the last release calls `destroy(ctx)`. Every block is returned to
 * the handler that allocated it, with the same `bytes` and `alignment`, and a handler that
 * still has live blocks must be kept alive by whoever holds those blocks.
 *
 * Thread safety: `alloc`, `free`, `retain` and `release` may be called from any thread at once,
 * and a block may be freed on another thread than the one that allocated it. Nothing else in the
 * struct changes after it is made.
 *
 * Misuse. pinpool's own handlers check every argument but `ctx` (and `self`), and never crash,
 * throw (a C++ exception never leaves one of these functions) or corrupt themselves on a bad
 * call; a handler written elsewhere should do the same:
 *   - `alloc` with an alignment that is not a power of two from 1 to 2^30 fails with
 *     PINPOOL_ERR_INVALID_ARGUMENT, reason "invalid-argument".
 *   - `free(ctx, NULL, ...)` does nothing, as free(NULL) in C.
 *   - `free` of a pointer the handler did not hand out (or not from its start), of a block it
 *     already took back, of a block it handed to JavaScript (a HostBuffer's memory, held until
 *     JavaScript frees it) or to one of pinpool's adaptors (a pool's slab, a fallback's block),
 *     or with a size or alignment that does not match the allocation's, is refused: nothing is
 *     freed, a live block stays live and untouched, and the handler counts the call as an
 *     invalid free. (A pool compares size classes, so a size in the block's own class passes,
 *     and counts the size the block was allocated with; leaves compare size and alignment
 *     exactly.) `free` returns nothing: the count is where a refusal shows, as `invalidFrees` in
 *     the JavaScript statistics and `pinpool_invalid_frees_total` in the metrics. A native addon
 *     reads it with the C API table below (`read_stats`, `invalid_frees`).
 */
#ifndef PINPOOL_H
#define PINPOOL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* 1: the handler. 2: the C API table, the registry, native handles. */
#define PINPOOL_ABI_VERSION 2

/* Status codes. Stable: values are never reused. */
typedef enum pinpool_status_code {
  PINPOOL_OK = 0,
  PINPOOL_ERR_INVALID_ARGUMENT = 1, /* bad size, alignment or options */
  PINPOOL_ERR_OUT_OF_MEMORY = 2,    /* this handler cannot serve the request now */
  PINPOOL_ERR_UNAVAILABLE = 3,      /* this handler can never serve on this host (no CUDA...) */
  PINPOOL_ERR_CUDA = 4,             /* a CUDA driver call failed; see cuda_error */
  PINPOOL_ERR_DOUBLE_FREE = 5, /* (JavaScript API) a buffer freed twice; C frees return nothing */
  PINPOOL_ERR_INTERNAL = 6     /* a fault inside the handler (an exception caught at the
                                  ABI, reason "internal"); the call had no effect */
} pinpool_status_code;

/*
 * Filled by `alloc` (the caller zero-initialises it). On failure `code`, `reason` and, for
 * CUDA failures, `cuda_error` say why. On success `served_by` names the leaf handler whose
 * memory this is; it stays valid as long as the allocating handler is alive.
 */
typedef struct pinpool_alloc_info {
  int32_t code;       /* pinpool_status_code */
  int32_t cuda_error; /* CUresult when code == PINPOOL_ERR_CUDA or the cause was CUDA */
  const char* reason; /* static string: "limit", "mlock", "cuda", "no-cuda",
                         "invalid-argument", "internal", ... */
  const struct pinpool_handler* served_by; /* the leaf that provided the memory */
  void* slab;                              /* start of the slab of the handler called (a
                                                pool's slab) that holds the block, if any */
  size_t slab_bytes; /* its size; 0 when the block is not inside such a slab */
} pinpool_alloc_info;

typedef struct pinpool_handler pinpool_handler;

struct pinpool_handler {
  uint32_t abi_version; /* PINPOOL_ABI_VERSION of the producer */
  uint32_t struct_size; /* sizeof(pinpool_handler) of the producer, in bytes */
  const char* name;     /* for people: "pinned-pool", "locked" ... (valid while alive; need not
                           be unique) */
  const char* kind;     /* what it is: "pinned", "managed", "locked", "pageable", "file", "pool",
                           "fallback", "limit" (static) */
  void* ctx;            /* the handler's state, passed back unchanged to alloc, free, destroy */

  /* Returns `bytes` bytes aligned to `alignment` (a power of two from 1 to 2^30), or NULL with
     `info->code` set. `info` is zero-initialised by the caller, or NULL when the caller does not
     want to know why. bytes == 0 returns a unique non-NULL pointer that must be freed like any
     other. Any thread. */
  void* (*alloc)(void* ctx, size_t bytes, size_t alignment, pinpool_alloc_info* info);
  /* Returns a block to this handler: `ptr` as alloc returned it, `bytes` and `alignment` as
     given to alloc. Once per block; any thread, not only the allocating one. NULL is a no-op;
     anything else that is not a live block of this handler, or is a block JavaScript holds, is
     refused and counted (see the top of this file), never freed. */
  void (*free)(void* ctx, void* ptr, size_t bytes, size_t alignment);

  /* Adds a reference. Any thread. */
  void (*retain)(pinpool_handler* self);
  /* Drops a reference; the last one calls destroy(ctx), after which `self` must not be used.
     Any thread. */
  void (*release)(pinpool_handler* self);
  /* Called once, by the last release, never by a consumer. Frees ctx and everything it owns. */
  void (*destroy)(void* ctx);
};

/* ------------------------------------------------------------------------------------------
 * The C API for other native addons (ABI version 2)
 *
 * A native addon (a decoder, a CUDA kernel binding) reaches pinpool's handlers through this
 * table. Two ways in:
 *   1. From JavaScript: `handler.nativeHandle()` returns an external value type-tagged with
 *      PINPOOL_NATIVE_HANDLE_TAG whose data is a `pinpool_native_handle`. With node_api.h
 *      included first, `pinpool_unwrap_native_handle()` below checks the tag and unwraps it.
 *   2. Without JavaScript: `pinpool_capsule_publish(NULL)`, found with
 *      dlsym(RTLD_DEFAULT, "pinpool_capsule_publish"), returns the process's registry (or NULL
 *      before any copy of pinpool has loaded), and `registry->api` is the table.
 *
 * Every table and options struct follows the rules at the top of this file: append-only,
 * `struct_size` first-class. A consumer checks PINPOOL_HAS(table, member) before calling a
 * member newer than the oldest ABI it accepts, and reports the two versions when it is
 * missing: the table may come from an older copy of pinpool that loaded first.
 *
 * Every function of `pinpool_api` returns a pinpool_status_code, never aborts and never throws,
 * and checks its arguments: NULL pointers, a `struct_size` smaller than the first version of
 * the struct, a handler that is not one of pinpool's (for read_stats, trim and handler_id),
 * options out of range: PINPOOL_ERR_INVALID_ARGUMENT, with nothing made or changed. All of them
 * may be called from any thread, at once. A pointer that is not NULL must point at a live
 * object of its type: that cannot be checked.
 * ------------------------------------------------------------------------------------------ */

/* True when `ptr`'s producer filled in `member` (ptr->struct_size covers it). */
#define PINPOOL_HAS(ptr, member) \
  ((ptr)->struct_size >= offsetof(__typeof__(*(ptr)), member) + sizeof((ptr)->member))

/* Statistics of one handler, read by `read_stats`. The caller sets `struct_size` to
   sizeof(pinpool_stats) of its header; the producer fills the members both know and leaves the
   rest alone. Counters are since the handler was made; `*_current` is what is in use now. The
   counts of JavaScript thread caches in front of a pool are folded in, as in handler.stats(). */
typedef struct pinpool_stats {
  uint32_t struct_size; /* set by the caller */
  uint32_t reserved0;
  uint64_t bytes_current;       /* bytes handed out and not yet returned */
  uint64_t bytes_peak;          /* the most bytes_current has been, in bytes */
  uint64_t bytes_total;         /* bytes handed out, ever */
  uint64_t allocations_current; /* blocks handed out and not yet returned */
  uint64_t allocations_peak;
  uint64_t allocations_total;
  uint64_t frees;          /* blocks returned */
  uint64_t invalid_frees;  /* frees refused (see the top of this file) */
  uint64_t reserved_bytes; /* (pools) bytes held from the upstream */
  uint64_t cached_bytes;   /* (pools) bytes held and free for reuse */
} pinpool_stats;

/* Leaf kinds for create_leaf. */
typedef enum pinpool_leaf_kind {
  PINPOOL_LEAF_PAGEABLE = 1, /* ordinary aligned host memory */
  PINPOOL_LEAF_LOCKED = 2,   /* mmap + mlock: page-locked without CUDA */
  PINPOOL_LEAF_PINNED = 3,   /* cuMemHostAlloc */
  PINPOOL_LEAF_MANAGED = 4   /* cuMemAllocManaged */
} pinpool_leaf_kind;

/* Flags of a pinned leaf (the `pinned()` options of the JavaScript API). */
#define PINPOOL_PINNED_PORTABLE 0x1u
#define PINPOOL_PINNED_MAPPED 0x2u
#define PINPOOL_PINNED_WRITE_COMBINED 0x4u

typedef struct pinpool_leaf_options {
  uint32_t struct_size; /* sizeof(pinpool_leaf_options) of the caller */
  int32_t kind;         /* pinpool_leaf_kind */
  const char* name;     /* copied; NULL: the kind's name ("pinned", ...); at most 128 bytes */
  int32_t device;       /* pinned, managed: the CUDA device, 0 to 1023 */
  uint32_t flags;       /* pinned: PINPOOL_PINNED_* (0 is not portable; JavaScript's default is
                           PINPOOL_PINNED_PORTABLE) */
} pinpool_leaf_options;

typedef struct pinpool_pool_options {
  uint32_t struct_size; /* sizeof(pinpool_pool_options) of the caller */
  uint32_t reserved0;
  const char* name;          /* copied; NULL: "pool" */
  uint64_t max_cached_bytes; /* cap on cached memory, in bytes (UINT64_MAX: no cap) */
  double cache_ratio;        /* 0 or more, or +INFINITY; see pool() in docs/handlers.md */
} pinpool_pool_options;

typedef struct pinpool_fallback_options {
  uint32_t struct_size; /* sizeof(pinpool_fallback_options) of the caller */
  uint32_t reserved0;
  const char* name;   /* copied; NULL: "fallback" */
  uint64_t min_bytes; /* requests from min_bytes ... */
  uint64_t max_bytes; /* ... to max_bytes (inclusive) go to the primary first */
} pinpool_fallback_options;

typedef struct pinpool_limit_options {
  uint32_t struct_size; /* sizeof(pinpool_limit_options) of the caller */
  uint32_t reserved0;
  const char* name;   /* copied; NULL: "limit" */
  uint64_t max_bytes; /* cap on the bytes in use */
} pinpool_limit_options;

typedef struct pinpool_api {
  uint32_t abi_version; /* PINPOOL_ABI_VERSION of the producer (2 or more) */
  uint32_t struct_size; /* sizeof(pinpool_api) of the producer */
  const char* version;  /* the producer's package version, e.g. "0.1.0" (static) */

  /* Makes a leaf. On PINPOOL_OK `*out` holds a new handler with one reference, the caller's:
     release it with (*out)->release(*out). A pinned or managed leaf made without a CUDA driver
     is made; its allocations fail with PINPOOL_ERR_UNAVAILABLE, as in JavaScript. */
  int32_t (*create_leaf)(const pinpool_leaf_options* options, pinpool_handler** out);
  /* Makes a pool in front of `upstream`, which it retains (the caller keeps its own reference).
     `upstream` may be any handler of this ABI, pinpool's or another library's. */
  int32_t (*create_pool)(pinpool_handler* upstream, const pinpool_pool_options* options,
                         pinpool_handler** out);
  /* Makes a fallback: requests in [min_bytes, max_bytes] go to `primary`, and to `secondary`
     when the primary is out of memory or unavailable. Retains both. */
  int32_t (*create_fallback)(pinpool_handler* primary, pinpool_handler* secondary,
                             const pinpool_fallback_options* options, pinpool_handler** out);
  /* Makes a limit: at most max_bytes in use from `upstream`. Retains it. */
  int32_t (*create_limit)(pinpool_handler* upstream, const pinpool_limit_options* options,
                          pinpool_handler** out);
  /* Reads a pinpool handler's statistics into `out` (out->struct_size set by the caller, at
     least the first version's size). A handler that is not pinpool's (another library's) is
     PINPOOL_ERR_INVALID_ARGUMENT: statistics are pinpool's own. A snapshot per member. */
  int32_t (*read_stats)(const pinpool_handler* handler, pinpool_stats* out);
  /* Gives a pinpool handler's cached memory back upstream (pools; adaptors pass it down), as
     handler.trim() in JavaScript. `released` (may be NULL) receives the bytes given back. May
     call the CUDA driver: not for a latency-critical thread. */
  int32_t (*trim)(pinpool_handler* handler, size_t* released);
  /* The process-wide id of a pinpool handler (never reused): the number the metrics add to the
     `handler` label as `#id` when two handlers share a name, so people can tell which one. */
  int32_t (*handler_id)(const pinpool_handler* handler, uint64_t* id);
} pinpool_api;

/* What `handler.nativeHandle()` wraps. Valid while the JavaScript value lives; the handler
   stays alive after that only through the consumer's own retain(). */
typedef struct pinpool_native_handle {
  uint32_t abi_version;     /* PINPOOL_ABI_VERSION of the producer */
  uint32_t struct_size;     /* sizeof(pinpool_native_handle) of the producer */
  const pinpool_api* api;   /* the C API of the copy of pinpool that made the handler */
  pinpool_handler* handler; /* the handler; this value holds one reference */
} pinpool_native_handle;

/* The type tag of `nativeHandle()` values (napi_type_tag: lower, upper): a UUID, fixed forever. */
#define PINPOOL_NATIVE_HANDLE_TAG_LOWER 0x9a4c1f0e5b2d4e83ull
#define PINPOOL_NATIVE_HANDLE_TAG_UPPER 0xb7e2c6d1a8f34c59ull

/* The process-wide registry: one per process, published by the first copy of pinpool to load
   (every copy of the addon exports pinpool_capsule_publish; the first one in the global scope
   holds the slot). Append-only like everything here. */
typedef struct pinpool_registry {
  uint32_t abi_version;   /* PINPOOL_ABI_VERSION of the publisher */
  uint32_t struct_size;   /* sizeof(pinpool_registry) of the publisher */
  const char* version;    /* the publisher's package version (static) */
  const char* entry;      /* absolute path of the publisher's JavaScript entry module, which
                             every later copy loads instead of its own */
  const char* addon;      /* absolute path of the publisher's pinpool.node */
  const pinpool_api* api; /* the publisher's C API */
} pinpool_registry;

/* With candidate NULL: the registry, or NULL when no copy has published one yet. With a
   candidate: publishes it if none is published, and returns the one that is (the candidate
   or an earlier one). Any thread; the first publication wins, atomically, and never changes.
   For copies of pinpool; other addons call it with NULL. Reach it with dlsym(RTLD_DEFAULT, ...)
   only: every copy defines it. */
typedef const pinpool_registry* (*pinpool_capsule_publish_fn)(const pinpool_registry* candidate);
#define PINPOOL_CAPSULE_SYMBOL "pinpool_capsule_publish"

#if defined(SRC_NODE_API_H_) || defined(PINPOOL_WITH_NODE_API)
/* The pinpool_native_handle behind `value` (from handler.nativeHandle()), or NULL when `value`
   is anything else. Include node_api.h before this header to get it. The main thread of the
   environment that made `value` only (a Node-API rule); the handle's members may then go to
   any thread. */
static inline const pinpool_native_handle* pinpool_unwrap_native_handle(napi_env env,
                                                                        napi_value value) {
  static const napi_type_tag tag = {PINPOOL_NATIVE_HANDLE_TAG_LOWER,
                                    PINPOOL_NATIVE_HANDLE_TAG_UPPER};
  napi_valuetype type;
  bool tagged = false;
  void* data = NULL;
  if (napi_typeof(env, value, &type) != napi_ok || type != napi_external) return NULL;
  if (napi_check_object_type_tag(env, value, &tag, &tagged) != napi_ok || !tagged) return NULL;
  if (napi_get_value_external(env, value, &data) != napi_ok) return NULL;
  return (const pinpool_native_handle*)data;
}
#endif

#ifdef __cplusplus
}
#endif

#endif /* PINPOOL_H */
