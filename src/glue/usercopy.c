/*
 * portfilter: fault-tolerant copies between kernel buffers and user-mode addresses.
 *
 * The Rust side of the driver never forms a reference or slice over a user-mode buffer
 * (DESIGN.md, engineering rules). It calls these two routines instead. Each one probes the
 * user range (ProbeForRead / ProbeForWrite raise STATUS_ACCESS_VIOLATION or
 * STATUS_DATATYPE_MISALIGNMENT for a range that is not entirely user space) and copies
 * inside a structured-exception-handling guard, so that a page that is unmapped, or
 * unmapped by another thread while we copy, turns into a status code instead of a bug check.
 *
 * Contract (declared in crates/bindings/src/functions.rs):
 *   NTSTATUS PfCopyFromUser(void *Destination, const void *UserSource, SIZE_T Length);
 *   NTSTATUS PfCopyToUser(void *UserDestination, const void *Source, SIZE_T Length);
 * Both return STATUS_SUCCESS (0) after copying Length bytes, or the code of the exception
 * that stopped the copy. Length 0 copies nothing and succeeds. IRQL <= APC_LEVEL (the
 * user buffer may be paged out). The kernel-side buffer must be valid for Length bytes.
 *
 * Built two ways, from this one file and with no header:
 *   - cross build on Linux: clang-14 --target=x86_64-pc-windows-msvc -fms-extensions
 *     (scripts/build-sys.sh); ProbeForRead, ProbeForWrite and __C_specific_handler are
 *     imported from ntoskrnl.exe, memcpy comes from Rust's compiler_builtins;
 *   - WDK build on Windows: cl.exe through the `cc` crate (build.rs, feature `wdk`); the
 *     WDK's kernel libraries resolve the same names.
 *
 * clang's SEH is synchronous: a __try region catches faults raised inside *calls* made
 * from it. That is why the copy is a call to memcpy rather than an inline loop; a fault in
 * memcpy, or the exception ProbeFor* raises, unwinds to a call site inside the __try.
 *
 * x64 has a single calling convention, so the Rust side's extern "system" matches these
 * plain C definitions.
 */

typedef long NTSTATUS;
typedef unsigned long ULONG;
typedef unsigned long long SIZE_T;

#define STATUS_SUCCESS ((NTSTATUS)0x00000000L)
#define EXCEPTION_EXECUTE_HANDLER 1

/* wdm.h: raise an exception unless [Address, Address + Length) is user space (and, for
 * ProbeForWrite, writable). Length 0 is always accepted. */
__declspec(dllimport) void ProbeForRead(const volatile void *Address, SIZE_T Length,
                                        ULONG Alignment);
__declspec(dllimport) void ProbeForWrite(volatile void *Address, SIZE_T Length,
                                         ULONG Alignment);

/* The C runtime copy. Called, not inlined (the cross build passes -ffreestanding), inside
 * the guarded region. */
void *memcpy(void *Destination, const void *Source, SIZE_T Length);

/* The code of the exception being handled; valid inside an __except block. */
unsigned long _exception_code(void);

/* User buffers are byte streams here; the Rust side checks the alignment it needs. */
#define PF_USER_ALIGNMENT 1

NTSTATUS PfCopyFromUser(void *Destination, const void *UserSource, SIZE_T Length)
{
    if (Length == 0) {
        return STATUS_SUCCESS;
    }
    __try {
        ProbeForRead(UserSource, Length, PF_USER_ALIGNMENT);
        memcpy(Destination, UserSource, Length);
    } __except (EXCEPTION_EXECUTE_HANDLER) {
        return (NTSTATUS)_exception_code();
    }
    return STATUS_SUCCESS;
}

NTSTATUS PfCopyToUser(void *UserDestination, const void *Source, SIZE_T Length)
{
    if (Length == 0) {
        return STATUS_SUCCESS;
    }
    __try {
        ProbeForWrite(UserDestination, Length, PF_USER_ALIGNMENT);
        memcpy(UserDestination, Source, Length);
    } __except (EXCEPTION_EXECUTE_HANDLER) {
        return (NTSTATUS)_exception_code();
    }
    return STATUS_SUCCESS;
}
