/*
 * A tiny Windows x64 DLL for fltsim's SEH tests (crates/fltsim/tests/seh.rs), built at
 * test time with clang-14 --target=x86_64-pc-windows-msvc and lld-link, the same tools
 * as portfilter.sys. Each export exercises one part of exception dispatch: a fault deep
 * in a call chain whose frames save non-volatile registers, filters that read their
 * parent's locals and decline or accept, __finally blocks in the faulting frame and in
 * an intermediate one, exceptions raised by ProbeForRead, and no handler at all.
 */

typedef unsigned long long u64;

__declspec(dllimport) void ProbeForRead(const volatile void *Address, u64 Length,
                                        unsigned long Alignment);
unsigned long _exception_code(void);

__declspec(noinline) static u64 load(volatile u64 *p)
{
    return *p;
}

/* Keeps several values live across the recursive call, so each frame saves and uses
 * non-volatile registers. */
__declspec(noinline) static u64 deep(volatile u64 *p, int depth, u64 salt)
{
    u64 a = salt * 3 + (u64)depth, b = salt ^ 0x55, c = salt + 7, d = salt * 11;
    if (depth == 0) {
        return load(p) + a;
    }
    u64 r = deep(p, depth - 1, salt + a);
    return r + a * b + c * d;
}

/* The __except continues with values computed before the __try. */
__declspec(dllexport) u64 survive(volatile u64 *p, u64 x)
{
    u64 k1 = x * 3, k2 = x ^ 0xabc, k3 = x + 99, k4 = x * x, k5 = x - 5, k6 = x << 3, k7 = ~x;
    u64 r;
    __try {
        r = deep(p, 4, x);
    } __except (1) {
        r = 1000 + (u64)(_exception_code() - 0xC0000005UL);
    }
    return r + k1 + k2 * k3 + k4 + k5 * k6 + k7;
}

static int accept_if(unsigned long code, unsigned long want, volatile int *seen)
{
    *seen += 1;
    return code == want ? 1 : 0;
}

/* A filter reading the parent's locals (through the establisher frame). */
__declspec(noinline) __declspec(dllexport) long filtered(volatile u64 *p, unsigned long want,
                                                           volatile int *seen)
{
    __try {
        return (long)load(p);
    } __except (accept_if(_exception_code(), want, seen)) {
        return -1;
    }
}

/* The inner filter may decline; then this one takes it. */
__declspec(dllexport) long nested(volatile u64 *p, unsigned long want_inner, volatile int *seen)
{
    __try {
        return filtered(p, want_inner, seen);
    } __except (1) {
        return -2;
    }
}

/* __finally in the frame that also holds the __except. */
__declspec(dllexport) long with_finally(volatile u64 *p, volatile int *count)
{
    __try {
        __try {
            return (long)load(p);
        } __finally {
            *count += 1;
        }
    } __except (1) {
        return -3;
    }
}

/* __finally in a frame between the fault and the __except. */
__declspec(noinline) static u64 middle(volatile u64 *p, volatile int *count)
{
    u64 v;
    __try {
        v = load(p);
    } __finally {
        *count += 10;
    }
    return v;
}

__declspec(dllexport) long through_finally(volatile u64 *p, volatile int *count)
{
    __try {
        return (long)middle(p, count);
    } __except (1) {
        return -4;
    }
}

/* An exception raised by an import (not a fault in this image). */
__declspec(dllexport) unsigned long probe(const void *p, u64 length, unsigned long alignment)
{
    __try {
        ProbeForRead(p, length, alignment);
    } __except (1) {
        return _exception_code();
    }
    return 0;
}

/* No handler anywhere. */
__declspec(dllexport) u64 unguarded(volatile u64 *p)
{
    return load(p);
}
