/*
 * Cross-check of portfilter-bindings' struct layouts and constants against Debian's
 * mingw-w64 DDK headers, compiled (never run) with x86_64-w64-mingw32-gcc by
 * tests/layout_mingw.rs.
 *
 * The expected numbers are not written here: the Rust test generates
 * "rust_layouts.h" from size_of / offset_of / the constants' values, as a list of the
 * PF_* checks below. A Rust layout that disagrees with the header fails this compile.
 *
 * Two translation units in one file:
 *   PF_KERNEL  ddk/ntifs.h (pulls in ntddk.h and wdm.h): kernel structures and constants
 *   PF_USER    windows.h + fltuser.h (fltuserstructures.h): the port message headers
 * mingw-w64 has no fltkernel.h, so the FLT_* kernel structures cannot be checked here.
 */
#if defined(PF_KERNEL)
#include <ntifs.h>
#elif defined(PF_USER)
#include <windows.h>
#include <fltuser.h>
#else
#error "define PF_KERNEL or PF_USER"
#endif

#include <stddef.h>

#if !defined(_WIN64)
#error "the layouts are those of x64"
#endif

/* sizeof(T) == size on the Rust side. */
#define PF_SIZE(T, rust) \
    _Static_assert(sizeof(T) == (rust), "size of " #T " differs from the Rust declaration")

/* offsetof(T, F) == offset on the Rust side. */
#define PF_OFFSET(T, F, rust) \
    _Static_assert(offsetof(T, F) == (rust), "offset of " #T "." #F " differs from the Rust declaration")

/* Offset of a nested member F relative to member BASE (e.g. the Create parameters inside
 * IO_STACK_LOCATION.Parameters, which FLT_PARAMETERS.Create mirrors). */
#define PF_RELATIVE(T, F, BASE, rust)                                          \
    _Static_assert(offsetof(T, F) - offsetof(T, BASE) == (rust),               \
                   "offset of " #T "." #F " relative to " #BASE                \
                   " differs from the Rust declaration")

/* A constant's value, both sides converted to the C type of the Rust constant (so that,
 * e.g., GENERIC_READ, a negative 32-bit long in the header, compares as the u32 Rust uses). */
#define PF_CONST(NAME, CTYPE, rust)                                             \
    _Static_assert((CTYPE)(NAME) == (CTYPE)(rust),                              \
                   "value of " #NAME " differs from the Rust declaration")

#include "rust_layouts.h"
