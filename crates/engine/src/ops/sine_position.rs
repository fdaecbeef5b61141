//! `x + pos`, with `pos` DETR's normalised sine position encoding for `x`'s own height and
//! width (Carion et al. 2020, arXiv:2005.12872, `PositionEmbeddingSine(normalize=True)`), as
//! DDColor's colour decoder adds it to every key map (Kang et al., ICCV 2023;
//! `../shared/reference/ddcolor.md` §3.3, from `position_encoding.py`):
//!
//! ```text
//! npf = C / 2 (even);  ye = (y+1) / (h + 1e-6) · 2π;  xe = (x+1) / (w + 1e-6) · 2π
//! dim_t[k] = 10000^(2·floor(k/2) / npf),  k = 0..npf
//! pos[2m] = sin(ye / dim_t[2m]),       pos[2m+1] = cos(ye / dim_t[2m])        m < npf/2
//! pos[npf+2m] = sin(xe / dim_t[2m]),   pos[npf+2m+1] = cos(xe / dim_t[2m])
//! ```
//!
//! The y half depends only on the row and the x half only on the column, so each run computes
//! the two tables (`h · npf` and `w · npf` values, in f64, rounded once to f32) into the op's
//! scratch, then adds them to every pixel in parallel.

use rayon::prelude::*;

use super::{Io, Node, ShapeError};
use crate::graph::Value;

/// The position-encoding op of a graph.
#[derive(Debug)]
pub(crate) struct SinePosition {
    pub x: [Value; 1],
    /// `2 · npf`, a multiple of 4.
    pub channels: usize,
}

/// The encoding of coordinate `i` of `n` (`(i+1)/(n+1e-6)·2π`) over `npf` channels, sin and cos
/// interleaved.
fn table(n: usize, npf: usize, out: &mut [f32]) {
    let tau = 2.0 * std::f64::consts::PI;
    for i in 0..n {
        let e = (i + 1) as f64 / (n as f64 + 1e-6) * tau;
        for m in 0..npf / 2 {
            let a = e / 10000f64.powf((2 * m) as f64 / npf as f64);
            out[i * npf + 2 * m] = a.sin() as f32;
            out[i * npf + 2 * m + 1] = a.cos() as f32;
        }
    }
}

impl Node for SinePosition {
    fn inputs(&self) -> &[Value] {
        &self.x
    }

    fn channels(&self) -> usize {
        self.channels
    }

    fn output_shape(
        &self,
        shape: &dyn Fn(Value) -> (usize, usize),
    ) -> Result<(usize, usize), ShapeError> {
        Ok(shape(self.x[0]))
    }

    fn scratch_len(
        &self,
        _batch: usize,
        height: usize,
        width: usize,
        _shape: &dyn Fn(Value) -> (usize, usize),
    ) -> Option<usize> {
        height.checked_add(width)?.checked_mul(self.channels / 2)
    }

    unsafe fn run(&self, io: &Io<'_>) {
        let src = (io.src)(self.x[0]);
        let (out, c, npf) = (io.out, self.channels, self.channels / 2);
        let (h, w) = (io.height, io.width);
        // SAFETY: the scratch holds `(h + w) · npf` floats (`scratch_len`), alive during the op
        // and overlapping no value.
        let (ty, tx) = unsafe {
            let all = std::slice::from_raw_parts_mut(io.scratch, (h + w) * npf);
            all.split_at_mut(h * npf)
        };
        table(h, npf, ty);
        table(w, npf, tx);
        let (ty, tx) = (&*ty, &*tx);
        (0..io.batch * h).into_par_iter().for_each(|row| {
            let y = row % h;
            let py = &ty[y * npf..][..npf];
            for x in 0..w {
                let p = row * w + x;
                let px = &tx[x * npf..][..npf];
                // SAFETY: pixel `p` is inside both views (the plan's contract); rows are
                // disjoint, and the output overlaps nothing the op reads.
                let (from, to) = unsafe {
                    (
                        std::slice::from_raw_parts(src.pixel(p), c),
                        std::slice::from_raw_parts_mut(out.pixel(p), c),
                    )
                };
                let (to_y, to_x) = to.split_at_mut(npf);
                let (from_y, from_x) = from.split_at(npf);
                for ((o, &a), &e) in to_y.iter_mut().zip(from_y).zip(py) {
                    *o = a + e;
                }
                for ((o, &a), &e) in to_x.iter_mut().zip(from_x).zip(px) {
                    *o = a + e;
                }
            }
        });
    }

    fn name(&self) -> String {
        "sine_position".to_string()
    }
}
