// How long an ArrayBuffer over a block lives, seen from the thread that made it (design
// decision 14: no ArrayBuffer outlives its block, in any thread).
//
// Node tells an addon that no ArrayBuffer reaches an external buffer's memory by calling the
// buffer's finalizer when its backing store is freed, in whichever thread that happens, and
// that is exact while the thread that made the buffer runs. When that thread's environment
// ends, Node calls every remaining finalizer at once, whether the memory is dead or lives on in
// an ArrayBuffer that moved to another thread (`transfer()`, then postMessage with a transfer
// list: Node 22 and later), and says nothing when that buffer dies later. So, in a thread that
// can end before the others (a worker):
//   - a finalizer called while JavaScript can no longer run abandons its fence instead of
//     signalling it (fence.hpp): what waited on it is orphaned, never reused;
//   - the ArrayBuffer JavaScript is handed is never the external one Node's end-of-thread
//     clean-up detaches, but one moved out of it, and the binding keeps a weak reference to
//     it (track()), so that at the thread's end it can tell a buffer still here (returned with
//     the thread) from one that left (orphaned).
// The main thread ends last (its end stops every worker first): its buffers need no watching.
#pragma once

#include <node_api.h>

namespace pinpool::binding {

struct Instance;
struct LiveBlock;

// True once setBufferMoves() found that ArrayBuffers can move (Node 22 and later), in any
// thread of the process.
bool buffers_move();
// False once `env` is ending: JavaScript cannot run there any more, and a finalizer called now
// does not mean that its memory is dead.
bool can_run_js(napi_env env);
// Makes what can_run_js() asks (once per environment, at start-up).
void make_probe(napi_env env, Instance* inst);
// The ArrayBuffer to hand JavaScript for `made`, a new external ArrayBuffer over a slab: where
// buffers move, one moved out of it (so Node's end-of-thread clean-up leaves it alone). In a
// worker, `*watch` gets a weak reference to it (else nullptr). A block's buffer is moved and
// named in JavaScript instead (src/memory/take-back.ts handOut(), then track()): cheaper on the hot
// path.
napi_value hand_out(napi_env env, Instance* inst, napi_value made, napi_ref* watch);
// Whether an ArrayBuffer over `block` may have left this thread, which is ending: the one
// JavaScript was handed was moved away, or is gone without its memory being seen to die.
bool left_thread(napi_env env, const LiveBlock& block);
// The same for a slab's view: `watch` is the weak reference hand_out() gave, `dead` whether its
// finalizer ran while the thread ran.
bool view_left_thread(napi_env env, napi_ref watch, bool dead);

}  // namespace pinpool::binding
