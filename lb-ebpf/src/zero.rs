//! Zeroed values without `memset`, and copies without `memmove`: LLVM turns zero-filling
//! and whole-struct copies into calls to `memset`/`memmove`, byte loops on BPF that also
//! add a frame to the verifier's stack budget (older kernels count it). Volatile word
//! stores are never merged into a call, and are done in place (returning the value by
//! copy would bring the call back).

use core::mem::{size_of, MaybeUninit};

use lb_common::Addr;

/// Zeroes `slot` and returns it initialised. `T` must be plain data valid when
/// all-zero, with a size that is a multiple of 4 and 4-byte alignment.
#[inline(always)]
pub fn init<T>(slot: &mut MaybeUninit<T>) -> &mut T {
    const { assert!(size_of::<T>() % 4 == 0 && core::mem::align_of::<T>() >= 4) };
    let words = slot.as_mut_ptr() as *mut u32;
    let mut i = 0;
    while i < size_of::<T>() / 4 {
        // SAFETY: within `slot`, 4-byte aligned (asserted above).
        unsafe { core::ptr::write_volatile(words.add(i), 0) };
        i += 1;
    }
    // SAFETY: every byte was written; all-zero is valid for the plain-data types used.
    unsafe { &mut *slot.as_mut_ptr() }
}

/// Zeroes `*v` in place (same requirements as [`init`]).
#[inline(always)]
pub fn clear<T>(v: &mut T) {
    const { assert!(size_of::<T>() % 4 == 0 && core::mem::align_of::<T>() >= 4) };
    let words = v as *mut T as *mut u32;
    let mut i = 0;
    while i < size_of::<T>() / 4 {
        // SAFETY: within `*v`, 4-byte aligned (asserted above).
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
