//! The Windows x64 calling convention at the boundary between a loaded image and fltsim,
//! in both directions, without a second definition of any fltsim routine.
//!
//! * **Image → fltsim** (imports). Each provided import is a closure that calls the
//!   routine through its declaration in `portfilter_bindings` (on Linux that symbol *is*
//!   fltsim's definition). [`IntoWin64::win64`] turns the closure into the address of an
//!   `extern "win64"` function with exactly that signature — argument and return types
//!   are inferred from the declaration, so the import table names only routines, never
//!   types, and the compiler checks every call. The closures capture nothing (zero-sized);
//!   the generated function re-creates the closure value from its type.
//! * **fltsim → driver** (callbacks). A function pointer the driver hands to fltsim has
//!   the calling convention of the code it points into: Windows x64 inside a loaded image,
//!   the host's C convention elsewhere (the driver built as an rlib, test drivers).
//!   [`driver_call`] looks at the address and calls accordingly; every call of a driver
//!   callback in fltsim goes through it.

use std::mem::transmute_copy;

/// Re-creates a value of a zero-sized closure type.
///
/// # Safety
/// `F` is the type of a closure that captures nothing (checked: zero-sized), so every
/// value of it is the same value and has no invariant to uphold.
unsafe fn conjure<F>() -> F {
    const { assert!(size_of::<F>() == 0, "import closures must capture nothing") };
    // SAFETY: `F` has no bytes (asserted above); reading zero bytes from a dangling but
    // aligned pointer is valid for a zero-sized type.
    unsafe { std::ptr::NonNull::<F>::dangling().as_ptr().read() }
}

/// A capture-free closure that can become a Windows x64 entry point.
pub(crate) trait IntoWin64<Args> {
    /// The address of an `extern "win64"` function that calls this closure.
    fn win64(self) -> usize;
}

/// A function pointer of the driver, called through [`driver_call`].
pub(crate) trait DriverFn<Args>: Copy {
    /// What the function returns.
    type Output;
    /// Calls it with the convention of the code it points into.
    ///
    /// # Safety
    /// As calling the function itself.
    unsafe fn call_with(self, args: Args) -> Self::Output;
}

/// Calls a driver callback (`f` with the argument tuple `args`) with the calling
/// convention of the code `f` points into: Windows x64 inside a loaded image, the host's
/// C convention elsewhere.
///
/// # Safety
/// As calling `f(args…)` directly.
pub(crate) unsafe fn driver_call<F: DriverFn<A>, A>(f: F, args: A) -> F::Output {
    // SAFETY: forwarded contract.
    unsafe { f.call_with(args) }
}

macro_rules! arities {
    ($( ($($arg:ident: $ty:ident),*) )*) => {$(
        impl<$($ty,)* R, F: Fn($($ty),*) -> R + Copy> IntoWin64<($($ty,)*)> for F {
            fn win64(self) -> usize {
                /// The Windows x64 entry point: calls the closure type `F`.
                unsafe extern "win64" fn entry<$($ty,)* R, F: Fn($($ty),*) -> R>(
                    $($arg: $ty),*
                ) -> R {
                    // SAFETY: `F` is a capture-free closure type (see `conjure`).
                    let f = unsafe { conjure::<F>() };
                    f($($arg),*)
                }
                entry::<$($ty,)* R, F> as *const () as usize
            }
        }

        impl<$($ty,)* R> DriverFn<($($ty,)*)> for unsafe extern "system" fn($($ty),*) -> R {
            type Output = R;
            #[allow(non_snake_case)]
            unsafe fn call_with(self, ($($arg,)*): ($($ty,)*)) -> R {
                if super::runs_win64(self as usize) {
                    type Win64<$($ty,)* R> = unsafe extern "win64" fn($($ty),*) -> R;
                    // SAFETY: the pointer points into a loaded Windows image, whose code
                    // follows the Windows x64 convention; same argument and return types.
                    let f = unsafe { transmute_copy::<Self, Win64<$($ty,)* R>>(&self) };
                    // SAFETY: the caller's contract.
                    unsafe { f($($arg),*) }
                } else {
                    // SAFETY: the caller's contract.
                    unsafe { self($($arg),*) }
                }
            }
        }
    )*};
}

arities! {
    ()
    (a: A)
    (a: A, b: B)
    (a: A, b: B, c: C)
    (a: A, b: B, c: C, d: D)
    (a: A, b: B, c: C, d: D, e: E)
    (a: A, b: B, c: C, d: D, e: E, f: G)
    (a: A, b: B, c: C, d: D, e: E, f: G, g: H)
    (a: A, b: B, c: C, d: D, e: E, f: G, g: H, h: I)
}
