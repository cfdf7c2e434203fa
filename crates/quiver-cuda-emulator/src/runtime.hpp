// The CUDA C dialect of Quiver's kernels, on the CPU: placed before a kernel's source, which the
// host C++ compiler then builds as a shared library (see lib.rs).
//
// A launch runs the grid's blocks one after another. A block's threads are coroutines
// (ucontext) on one OS thread, each with its own stack, so their locals are private as on the
// GPU; `__syncthreads()` switches back to the scheduler, which resumes the block's threads in
// turn, so no thread passes a barrier before every thread of its block has reached it (or
// returned). `__shared__` variables are function statics, one copy for the block that runs;
// `extern __shared__` arrays are rewritten (lib.rs) to point into the launch's dynamic shared
// buffer. Atomics need no hardware: one thread runs at a time.
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <ucontext.h>

struct qv_dim3 {
    unsigned int x, y, z;
};
static qv_dim3 threadIdx, blockIdx, blockDim, gridDim;
static unsigned char* qv_dynamic_shared;

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static
#define __constant__ static const

static inline double __longlong_as_double(long long x) {
    double d;
    memcpy(&d, &x, sizeof d);
    return d;
}
static inline long long __double_as_longlong(double d) {
    long long x;
    memcpy(&x, &d, sizeof x);
    return x;
}
template <typename T> static inline T atomicAdd(T* p, T v) {
    T old = *p;
    *p = old + v;
    return old;
}
template <typename T> static inline T atomicMax(T* p, T v) {
    T old = *p;
    if (v > old) *p = v;
    return old;
}
template <typename T> static inline T atomicMin(T* p, T v) {
    T old = *p;
    if (v < old) *p = v;
    return old;
}

// the scheduler of one block
enum qv_state { QV_READY, QV_WAITING, QV_DONE };
struct qv_thread {
    ucontext_t ctx;
    qv_state state;
    qv_dim3 idx;
};
static ucontext_t qv_scheduler;
static qv_thread* qv_threads;
static size_t qv_current;
static void (*qv_body)(void*);
static void* qv_data;

static inline void __syncthreads() {
    qv_thread* t = &qv_threads[qv_current];
    t->state = QV_WAITING;
    swapcontext(&t->ctx, &qv_scheduler);
}

static void qv_entry() {
    qv_body(qv_data);
    qv_threads[qv_current].state = QV_DONE;
    // returning resumes uc_link: the scheduler
}

static const size_t QV_STACK = 256 * 1024;

// Run `body(data)` (which calls the kernel with its arguments) on every thread of the grid.
// Returns 0, or -1 when a stack or context could not be made.
extern "C" int qv_launch(unsigned int gx, unsigned int gy, unsigned int gz, unsigned int bx, unsigned int by,
                         unsigned int bz, size_t shared_bytes, void (*body)(void*), void* data) {
    size_t n = (size_t)bx * by * bz;
    qv_thread* threads = (qv_thread*)calloc(n, sizeof(qv_thread));
    unsigned char* stacks = (unsigned char*)malloc(n * QV_STACK);
    unsigned char* shared = (unsigned char*)calloc(shared_bytes ? shared_bytes : 1, 1);
    if (!threads || !stacks || !shared) {
        free(threads);
        free(stacks);
        free(shared);
        return -1;
    }
    qv_threads = threads;
    qv_dynamic_shared = shared;
    qv_body = body;
    qv_data = data;
    gridDim = {gx, gy, gz};
    blockDim = {bx, by, bz};
    int status = 0;
    for (unsigned int z = 0; z < gz && status == 0; ++z)
        for (unsigned int y = 0; y < gy && status == 0; ++y)
            for (unsigned int x = 0; x < gx && status == 0; ++x) {
                blockIdx = {x, y, z};
                for (size_t i = 0; i < n; ++i) {
                    qv_thread* t = &threads[i];
                    t->state = QV_READY;
                    t->idx = {(unsigned int)(i % bx), (unsigned int)((i / bx) % by), (unsigned int)(i / ((size_t)bx * by))};
                    if (getcontext(&t->ctx) != 0) {
                        status = -1;
                        break;
                    }
                    t->ctx.uc_stack.ss_sp = stacks + i * QV_STACK;
                    t->ctx.uc_stack.ss_size = QV_STACK;
                    t->ctx.uc_link = &qv_scheduler;
                    makecontext(&t->ctx, qv_entry, 0);
                }
                // rounds: each resumes every thread not done, until all are done; a round ends
                // with every live thread at the same barrier
                bool live = status == 0;
                while (live) {
                    live = false;
                    for (size_t i = 0; i < n; ++i) {
                        qv_thread* t = &threads[i];
                        if (t->state == QV_DONE) continue;
                        t->state = QV_READY;
                        qv_current = i;
                        threadIdx = t->idx;
                        swapcontext(&qv_scheduler, &t->ctx);
                        if (t->state != QV_DONE) live = true;
                    }
                }
            }
    free(threads);
    free(stacks);
    free(shared);
    return status;
}
