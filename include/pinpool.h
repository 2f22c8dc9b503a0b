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
 * Thread safety: `alloc`, `free`, `retain`, `release` and `stats` may be called from any thread
 * at once.
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
  PINPOOL_ERR_DOUBLE_FREE = 5,
  PINPOOL_ERR_INTERNAL = 6
} pinpool_status_code;

/*
 * Filled by `alloc` (the caller zero-initialises it). On failure `code`, `reason` and, for
 * CUDA failures, `cuda_error` say why. On success `served_by` names the leaf handler whose
 * memory this is; it stays valid as long as the allocating handler is alive.
 */
typedef struct pinpool_alloc_info {
  int32_t code;                  /* pinpool_status_code */
  int32_t cuda_error;            /* CUresult when code == PINPOOL_ERR_CUDA or the cause was CUDA */
  const char* reason;            /* static string: "limit", "mlock", "cuda", "no-cuda", ... */
  const struct pinpool_handler* served_by; /* the leaf that provided the memory */
  void* region;                  /* start of the long-lived region of the handler called (a
                                    pool's slab) that holds the block, if any */
  size_t region_bytes;           /* its size; 0 when the block is not inside such a region */
} pinpool_alloc_info;

typedef struct pinpool_handler pinpool_handler;

struct pinpool_handler {
  uint32_t abi_version; /* PINPOOL_ABI_VERSION of the producer */
  uint32_t struct_size; /* sizeof(pinpool_handler) of the producer, in bytes */
  const char* name;     /* for people: "pinned-pool", "locked" ... (valid while alive) */
  const char* kind;     /* what it is: "pinned", "managed", "locked", "pageable", "pool",
                           "fallback", "limit" */
  void* ctx;            /* the handler's state, passed back to every function below */

  /* Returns `bytes` bytes aligned to `alignment` (a power of two), or NULL with `info->code`
     set. bytes == 0 returns a unique non-NULL pointer that must be freed like any other. */
  void* (*alloc)(void* ctx, size_t bytes, size_t alignment, pinpool_alloc_info* info);
  /* Returns a block to this handler. `bytes` and `alignment` are those given to alloc. */
  void (*free)(void* ctx, void* ptr, size_t bytes, size_t alignment);

  void (*retain)(pinpool_handler* self);
  void (*release)(pinpool_handler* self);
  /* Called once, by the last release. Frees ctx and everything it owns. */
  void (*destroy)(void* ctx);
};

#ifdef __cplusplus
}
#endif

#endif /* PINPOOL_H */
