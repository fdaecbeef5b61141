//! fastai's blur after a pixel shuffle (`PixelShuffle_ICNR(blur=True)`, after Sugawara et al.
//! 2019, arXiv:1806.02658, against checkerboard artefacts): `ReplicationPad2d((1, 0, 1, 0))` then
//! `AvgPool2d(2, stride=1)`. The output keeps the input's size; pixel `(i, j)` is the mean of
//! rows `i−1, i` and columns `j−1, j`, with index −1 clamped to 0 (`../shared/reference/deoldify.md`
//! §3.3).

use rayon::prelude::*;

use super::{Io, Node, ShapeError};
use crate::graph::Value;

/// The blur op of a graph.
#[derive(Debug)]
pub(crate) struct Blur {
    pub x: [Value; 1],
    pub channels: usize,
}

impl Node for Blur {
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

    unsafe fn run(&self, io: &Io<'_>) {
        let src = (io.src)(self.x[0]);
        let (out, c) = (io.out, self.channels);
        let (h, w) = (io.height, io.width);
        (0..io.batch * h).into_par_iter().for_each(|row| {
            let (b, y) = (row / h, row % h);
            let y0 = y.saturating_sub(1);
            for x in 0..w {
                let x0 = x.saturating_sub(1);
                let at = |yy: usize, xx: usize| (b * h + yy) * w + xx;
                // SAFETY: the four pixels are inside the input view and the output pixel inside
                // the output view (the plan's contract); rows are written by one task each.
                unsafe {
                    let (p00, p01, p10, p11) = (
                        src.pixel(at(y0, x0)),
                        src.pixel(at(y0, x)),
                        src.pixel(at(y, x0)),
                        src.pixel(at(y, x)),
                    );
                    let to = out.pixel(at(y, x));
                    for k in 0..c {
                        *to.add(k) = 0.25 * (*p00.add(k) + *p01.add(k) + *p10.add(k) + *p11.add(k));
                    }
                }
            }
        });
    }

    fn name(&self) -> String {
        "blur".to_string()
    }
}
