//! Small shared helpers: strided matrix views with bounds validation, and a `Send` raw pointer.

/// Read-only strided matrix view: element `(i, j)` is at `ptr + i*rs + j*cs`.
#[derive(Clone, Copy)]
pub(crate) struct MatRef {
    pub ptr: *const f32,
    pub rs: isize,
    pub cs: isize,
}
// SAFETY: a MatRef is only built from a borrowed slice that outlives every use (checked by the
// public entry points), and it is only read.
unsafe impl Send for MatRef {}
unsafe impl Sync for MatRef {}

impl MatRef {
    /// # Safety
    /// `(i, j)` must be inside the validated shape.
    #[inline(always)]
    pub unsafe fn at(&self, i: usize, j: usize) -> f32 {
        *self.ptr.offset(i as isize * self.rs + j as isize * self.cs)
    }
}

/// Writable strided matrix view; tasks write disjoint tiles of it from several threads.
#[derive(Clone, Copy)]
pub(crate) struct MatMut {
    pub ptr: *mut f32,
    pub rs: isize,
    pub cs: isize,
}
// SAFETY: built from a `&mut [f32]` that outlives the parallel region; the drivers hand each
// task a disjoint set of elements (checked non-aliasing strides, disjoint tiles).
unsafe impl Send for MatMut {}
unsafe impl Sync for MatMut {}

/// Offset of element (0,0) inside a slice for a `rows × cols` matrix with strides `rs`, `cs`
/// (in elements, possibly negative), following the BLAS convention that the matrix occupies
/// the lowest addresses of the slice: with a negative stride, row/column 0 is at the far end.
/// Panics with a readable message when the matrix does not fit in `len` elements.
pub(crate) fn origin_offset(
    what: &str,
    rows: usize,
    cols: usize,
    rs: isize,
    cs: isize,
    len: usize,
) -> usize {
    if rows == 0 || cols == 0 {
        return 0;
    }
    let span = |n: usize, s: isize| -> (isize, isize) {
        let last = (n as isize - 1) * s;
        (last.min(0), last.max(0))
    };
    let (rmin, rmax) = span(rows, rs);
    let (cmin, cmax) = span(cols, cs);
    let lo = rmin + cmin;
    let hi = rmax + cmax;
    let needed = (hi - lo) as usize + 1;
    assert!(
        needed <= len,
        "kernels: matrix {what} of {rows}x{cols} with strides ({rs}, {cs}) needs {needed} \
         elements but the slice has {len}; pass a larger slice or fix the strides"
    );
    (-lo) as usize
}

/// Panics unless distinct `(i, j)` map to distinct elements (needed for an output matrix,
/// which several threads write).
pub(crate) fn assert_no_alias(what: &str, rows: usize, cols: usize, rs: isize, cs: isize) {
    if rows <= 1 && cols <= 1 {
        return;
    }
    let (ars, acs) = (rs.unsigned_abs(), cs.unsigned_abs());
    let ok = if rows <= 1 {
        acs >= 1
    } else if cols <= 1 {
        ars >= 1
    } else {
        (acs >= 1 && ars >= cols * acs) || (ars >= 1 && acs >= rows * ars)
    };
    assert!(
        ok,
        "kernels: output matrix {what} of {rows}x{cols} with strides ({rs}, {cs}) has \
         overlapping elements; use strides that give every element its own slot"
    );
}

#[inline]
pub(crate) fn div_ceil(a: usize, b: usize) -> usize {
    a.div_ceil(b)
}

#[inline]
pub(crate) fn round_up(a: usize, b: usize) -> usize {
    a.div_ceil(b) * b
}

/// Runs `f` with this thread's scratch vector from `slot`, taken out for the call and put back
/// after, so that steady-state calls (decoder steps) allocate nothing. Taking (not borrowing)
/// keeps it safe when rayon runs another task of the same kernel on this thread meanwhile:
/// that task finds the slot empty and uses a fresh vector.
pub(crate) fn with_scratch<T, R>(slot: &'static std::thread::LocalKey<std::cell::Cell<Vec<T>>>, f: impl FnOnce(&mut Vec<T>) -> R) -> R {
    let mut v = slot.take();
    let r = f(&mut v);
    slot.set(v);
    r
}
