/*
 * pinpool.h: the public C ABI of a pinpool allocator handler.
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
 *     already took back, or with a size or alignment that does not match the allocation's, is
 *     refused: nothing is freed, a live block stays live and untouched, and the handler counts
 *     the call as an invalid free. (A pool compares size classes, so a size in the block's own
 *     class passes; leaves compare size and alignment exactly.) `free` returns nothing: the
 *     count is where a refusal shows, as `invalidFrees` in the JavaScript statistics and
 *     `pinpool_invalid_frees_total` in the metrics. Statistics are not part of this ABI.
 */
#ifndef PINPOOL_H
#define PINPOOL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PINPOOL_ABI_VERSION 1

/* Status codes. Stable: values are never reused. */
typedef enum pinpool_status_code {
  PINPOOL_OK = 0,
  PINPOOL_ERR_INVALID_ARGUMENT = 1, /* bad size, alignment or options */
  PINPOOL_ERR_OUT_OF_MEMORY = 2,    /* this handler cannot serve the request now */
  PINPOOL_ERR_UNAVAILABLE = 3,      /* this handler can never serve on this host (no CUDA...) */
  PINPOOL_ERR_CUDA = 4,             /* a CUDA driver call failed; see cuda_error */
  PINPOOL_ERR_DOUBLE_FREE = 5,      /* (JavaScript API) a buffer freed twice; C frees return nothing */
  PINPOOL_ERR_INTERNAL = 6          /* a fault inside the handler (an exception caught at the
                                       ABI, reason "internal"); the call had no effect */
} pinpool_status_code;

/*
 * Filled by `alloc` (the caller zero-initialises it). On failure `code`, `reason` and, for
 * CUDA failures, `cuda_error` say why. On success `served_by` names the leaf handler whose
 * memory this is; it stays valid as long as the allocating handler is alive.
 */
typedef struct pinpool_alloc_info {
  int32_t code;                  /* pinpool_status_code */
  int32_t cuda_error;            /* CUresult when code == PINPOOL_ERR_CUDA or the cause was CUDA */
  const char* reason;            /* static string: "limit", "mlock", "cuda", "no-cuda",
                                    "invalid-argument", "internal", ... */
  const struct pinpool_handler* served_by; /* the leaf that provided the memory */
  void* region;                  /* start of the long-lived region of the handler called (a
                                    pool's slab) that holds the block, if any */
  size_t region_bytes;           /* its size; 0 when the block is not inside such a region */
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
     anything else that is not a live block of this handler is refused and counted (see the
     top of this file), never freed. */
  void (*free)(void* ctx, void* ptr, size_t bytes, size_t alignment);

  /* Adds a reference. Any thread. */
  void (*retain)(pinpool_handler* self);
  /* Drops a reference; the last one calls destroy(ctx), after which `self` must not be used.
     Any thread. */
  void (*release)(pinpool_handler* self);
  /* Called once, by the last release, never by a consumer. Frees ctx and everything it owns. */
  void (*destroy)(void* ctx);
};

#ifdef __cplusplus
}
#endif

#endif /* PINPOOL_H */
