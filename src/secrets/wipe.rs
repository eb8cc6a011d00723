//! Overwriting secret bytes before their memory is freed.
//!
//! Best effort, in safe Rust, without a new dependency: the crate denies `unsafe` outside
//! `crate::sys`, and `zeroize`'s volatile writes would need either that crate (not in the
//! dependency set this module may change) or an `unsafe` block here. Writing zeros and passing the
//! buffer through [`std::hint::black_box`] keeps the compiler from removing the "dead" stores,
//! which is the failure `zeroize` exists to prevent. What neither approach covers: copies left
//! behind when a `String` grew and reallocated, copies a parser made in its scratch buffers,
//! and copies handed to the step (its environment). The point is to keep values out of core
//! dumps and reused heap for the common case, not to promise none survive.

/// Zero every byte of `v`'s allocation (spare capacity too), then leave it empty.
pub(crate) fn wipe_vec(v: &mut Vec<u8>) {
    zero_allocation(v);
    v.clear();
}

/// Zero `s`'s allocation and leave it empty.
pub(crate) fn wipe_string(s: &mut String) {
    // `into_bytes` hands over the same allocation; no copy is made.
    let mut bytes = std::mem::take(s).into_bytes();
    wipe_vec(&mut bytes);
}

/// Extend `v` to its capacity (never reallocates) and zero all of it.
fn zero_allocation(v: &mut Vec<u8>) {
    v.resize(v.capacity(), 0);
    v.fill(0);
    std::hint::black_box(v.as_slice());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_whole_allocation_is_zeroed_in_place() {
        let mut v = Vec::with_capacity(32);
        v.extend_from_slice(b"hunter2hunter2");
        let before = v.as_ptr();
        zero_allocation(&mut v);
        assert_eq!(v.as_ptr(), before, "no reallocation");
        assert_eq!(v.len(), v.capacity());
        assert!(v.iter().all(|&b| b == 0));
        wipe_vec(&mut v);
        assert!(v.is_empty());

        let mut s = String::from("correct horse");
        wipe_string(&mut s);
        assert!(s.is_empty());
    }
}
