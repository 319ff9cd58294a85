//! Zeroed values without `memset`, and copies without `memmove`: LLVM turns zero-filling
//! and whole-struct copies into calls to `memset`/`memmove`, byte loops on BPF that also
//! add a frame to the verifier's stack budget (older kernels count it). Volatile word
//! stores are never merged into a call, and are done in place (returning the value by
//! copy would bring the call back).

use core::mem::{size_of, MaybeUninit};

use lb_common::Addr;

/// Zeroes `slot` and returns it initialised. `T`'s size must be a multiple of 4 and its
/// alignment at least 4 (checked at compile time).
///
/// # Safety
///
/// All-zero bytes must be a valid `T`: plain data (integers, byte arrays, structs and
/// unions of them), no references, `NonZero*` or enums without a zero variant.
#[inline(always)]
pub unsafe fn init<T>(slot: &mut MaybeUninit<T>) -> &mut T {
    // SAFETY: `slot` is writable memory for a `T`.
    unsafe { zero_words(slot.as_mut_ptr()) };
    // SAFETY: every byte was written above, and all-zero is a valid `T` (the caller's
    // promise).
    unsafe { &mut *slot.as_mut_ptr() }
}

/// Zeroes `*v` in place (same size and alignment requirements as [`init`]).
///
/// # Safety
///
/// As for [`init`]: all-zero bytes must be a valid `T`.
#[inline(always)]
pub unsafe fn clear<T>(v: &mut T) {
    // SAFETY: `*v` is writable memory for a `T`.
    unsafe { zero_words(v as *mut T) };
}

/// Writes zero to every 4-byte word of `*v`.
///
/// # Safety
///
/// `v` must be valid for writes of a `T`.
#[inline(always)]
unsafe fn zero_words<T>(v: *mut T) {
    const { assert!(size_of::<T>().is_multiple_of(4) && core::mem::align_of::<T>() >= 4) };
    let words = v as *mut u32;
    let mut i = 0;
    while i < size_of::<T>() / 4 {
        // SAFETY: within `*v` (valid for size_of::<T>() bytes), 4-byte aligned (asserted
        // above).
        unsafe { core::ptr::write_volatile(words.add(i), 0) };
        i += 1;
    }
}

/// `*dst = *src` word by word (an array copy between two map values is a `memmove`).
#[inline(always)]
pub fn copy_addr(dst: &mut Addr, src: &Addr) {
    dst[0] = src[0];
    dst[1] = src[1];
    dst[2] = src[2];
    dst[3] = src[3];
}
