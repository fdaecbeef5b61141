//! Dense optical flow on lightness planes, by Dense Inverse Search (DIS).
//!
//! The video pipeline uses this to carry colour (the ab planes) from one frame to the next and to
//! measure flicker. The method follows Kroeger et al. 2016, "Fast Optical Flow using Dense Inverse
//! Search" (arXiv 1603.03590), without the variational refinement:
//!
//! 1. Both frames are reduced into a pyramid (factor 2, 2x2 box average) down to about
//!    [`FlowParams::coarsest_width`] pixels wide.
//! 2. At each level, from the coarsest to [`FlowParams::finest_level`], square patches of the
//!    target frame laid on a grid of step [`FlowParams::stride`] are searched for in the source
//!    frame by inverse-compositional Gauss-Newton (the patch Hessian is computed once per patch),
//!    starting from the coarser level's flow. The mean difference over the patch is removed, so a
//!    uniform brightness change (film flicker) does not bias the search. An update that grows the
//!    patch error ends the search (the previous position is kept), and a patch that strays more than
//!    its own size from its initial guess falls back to that guess.
//! 3. Densification: every pixel takes the average of the displacements of the patches covering
//!    it, each weighted by `1 / max(1, |photometric error|)` at that pixel.
//!
//! Conventions: planes are row-major `f32`; the flow of a frame gives, for each of its pixels
//! `(x, y)`, the position `(x + dx, y + dy)` of the same point in the other frame, in pixels of
//! that frame, pixel centres at integer coordinates. Everything is single-threaded and
//! deterministic; callers may run several frames or planes in parallel.

/// A gray plane: row-major, `width * height` values. The colouriser passes L in `0.0..=100.0`, but
/// any finite range works (the only absolute scale in the algorithm is the densification weight,
/// which assumes differences of about one unit are small).
#[derive(Debug, Clone, Copy)]
pub struct Plane<'a> {
    /// Number of columns, in pixels.
    pub width: usize,
    /// Number of rows, in pixels.
    pub height: usize,
    /// The samples, row after row: the value of pixel `(x, y)` is `values[y * width + x]`.
    /// Must hold exactly `width * height` values.
    pub values: &'a [f32],
}

/// A dense flow field at one resolution: for pixel `(x, y)` of the frame it was computed FOR, the
/// matching position in the other frame is `(x + dx, y + dy)`, in pixels.
#[derive(Debug, Clone, PartialEq)]
pub struct Flow {
    /// Number of columns, in pixels.
    pub width: usize,
    /// Number of rows, in pixels.
    pub height: usize,
    /// Horizontal displacement of each pixel (row-major, `width * height` values), in pixels;
    /// positive means the match lies to the right.
    pub dx: Vec<f32>,
    /// Vertical displacement of each pixel (row-major, `width * height` values), in pixels;
    /// positive means the match lies lower (rows grow downwards).
    pub dy: Vec<f32>,
}

/// Tuning of the DIS search. `Default` is a "medium"-like preset suited to frames 240-480 px wide:
/// patch 8, stride 4, 12 iterations, coarsest level about 24 px wide, finest level 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowParams {
    /// Side of the square patches, in pixels of the level being searched (default 8). Values below
    /// 2 are treated as 2; on frames smaller than a patch the patch shrinks to fit.
    pub patch: usize,
    /// Step of the patch grid, in pixels (default 4; 0 is treated as 1). Smaller is slower and
    /// smoother. The last row and column of patches are aligned to the frame's edge, so every
    /// pixel is covered.
    pub stride: usize,
    /// Maximum Gauss-Newton iterations per patch and level (default 12). The search of a patch
    /// also stops early when the step falls under 0.01 px or the error grows. 0 keeps the coarser
    /// level's flow (zero flow at the coarsest level).
    pub iterations: usize,
    /// The pyramid is halved while the next level would still be at least this many pixels wide
    /// (and at least one patch wide and high), so the coarsest level is `coarsest_width` to
    /// `2 * coarsest_width - 1` pixels wide when the frame allows (default 24: 480 px frames get
    /// 5 levels, the coarsest 30 px wide). More levels reach larger motions.
    pub coarsest_width: usize,
    /// Finest pyramid level searched: 0 = the input's full resolution (default), 1 = half
    /// resolution (a quarter of the patches; the result is upsampled bilinearly to full resolution),
    /// and so on. Clamped to the coarsest level.
    pub finest_level: usize,
}

impl Default for FlowParams {
    fn default() -> Self {
        FlowParams {
            patch: 8,
            stride: 4,
            iterations: 12,
            coarsest_width: 24,
            finest_level: 0,
        }
    }
}

impl Flow {
    /// A `width` x `height` field of zero vectors (every pixel matches itself).
    pub fn zero(width: usize, height: usize) -> Flow {
        Flow {
            width,
            height,
            dx: vec![0.0; width * height],
            dy: vec![0.0; width * height],
        }
    }

    /// Resample to `width` x `height` (bilinear, pixel centres aligned, border clamped), scaling
    /// the vectors by the size ratio: `dx` by `width / self.width`, `dy` by
    /// `height / self.height`. A field with no pixels resizes to zero flow.
    pub fn resize(&self, width: usize, height: usize) -> Flow {
        if self.width == 0 || self.height == 0 || width == 0 || height == 0 {
            return Flow::zero(width, height);
        }
        let sx = self.width as f32 / width as f32;
        let sy = self.height as f32 / height as f32;
        resample(
            self,
            width,
            height,
            [sx, 0.5 * sx - 0.5, sy, 0.5 * sy - 0.5],
            [1.0 / sx, 1.0 / sy],
        )
    }
}

/// Flow for `target`: where each pixel of `target` is found in `source`, so that
/// `warp(source, flow) ≈ target`. Both planes must have the same size; the result has that size,
/// in pixels of the input resolution, whatever [`FlowParams::finest_level`] is.
///
/// Any size works: frames smaller than 2x2 give zero flow, small frames use fewer pyramid levels
/// and smaller patches. Each level may move a patch up to `patch` pixels of that level from its
/// initial guess, so motions up to roughly `patch * 2^(levels + 1)` input pixels are found (about
/// 120 px at 240 px wide and 250 px at 480 px wide with the defaults; in practice large motions of
/// small objects are lost earlier, as with any coarse-to-fine method).
///
/// # Panics
///
/// If the planes differ in size or a plane's `values` does not hold `width * height` samples.
pub fn dis_flow(target: Plane, source: Plane, params: &FlowParams) -> Flow {
    assert_eq!(
        (target.width, target.height),
        (source.width, source.height),
        "dis_flow: target and source planes differ in size"
    );
    let (w, h) = (target.width, target.height);
    assert_eq!(
        target.values.len(),
        w * h,
        "dis_flow: target.values has the wrong length"
    );
    assert_eq!(
        source.values.len(),
        w * h,
        "dis_flow: source.values has the wrong length"
    );
    if w < 2 || h < 2 {
        return Flow::zero(w, h);
    }
    let patch = params.patch.max(2).min(w).min(h);
    let stride = params.stride.max(1);

    // Pyramid: level l is floor(w / 2^l) x floor(h / 2^l); its pixel x covers input pixels
    // 2^l x .. 2^l x + 2^l - 1.
    let mut levels: Vec<(usize, usize, Vec<f32>, Vec<f32>)> =
        vec![(w, h, target.values.to_vec(), source.values.to_vec())];
    loop {
        let (lw, lh, t, s) = levels.last().expect("level 0 exists");
        let (nw, nh) = (lw / 2, lh / 2);
        if nw < params.coarsest_width.max(patch) || nh < patch {
            break;
        }
        let next = (nw, nh, downsample(t, *lw, *lh), downsample(s, *lw, *lh));
        levels.push(next);
    }
    let finest = params.finest_level.min(levels.len() - 1);

    let mut coarser: Option<Flow> = None;
    for (lw, lh, t, s) in levels[finest..].iter().rev() {
        let level = Level::new(*lw, *lh, t, s, patch);
        coarser = Some(level.flow(coarser.as_ref(), stride, params.iterations));
    }
    let flow = coarser.expect("at least one level is searched");
    if finest == 0 {
        flow
    } else {
        // Level pixel x_l is centred on input coordinate f x_l + (f - 1) / 2.
        let f = (1u64 << finest.min(62)) as f32;
        let off = -(f - 1.0) / (2.0 * f);
        resample(&flow, w, h, [1.0 / f, off, 1.0 / f, off], [f, f])
    }
}

/// Bilinear backward warp: `out[y * w + x]` = `src` sampled at `(x + dx, y + dy)`, coordinates
/// clamped to the border (pixel centres at integer coordinates). `src` has the flow's size
/// (`flow.width * flow.height` values, row-major); returns a new plane of that size.
///
/// # Panics
///
/// If `src.len() != flow.width * flow.height`.
pub fn warp(src: &[f32], flow: &Flow) -> Vec<f32> {
    let (w, h) = (flow.width, flow.height);
    assert_eq!(src.len(), w * h, "warp: src does not have the flow's size");
    let mut out = Vec::with_capacity(w * h);
    for y in 0..h {
        for x in 0..w {
            let i = y * w + x;
            out.push(bilinear(
                src,
                w,
                h,
                x as f32 + flow.dx[i],
                y as f32 + flow.dy[i],
            ));
        }
    }
    out
}

/// Forward-backward consistency check (Sundaram et al. 2010, as Lai et al. 2018 use it). `fwd` is
/// the flow for frame t (into frame t-1), `bwd` the flow for frame t-1 (into frame t), both the
/// same size. Pixel `p` of frame t is reliable when `p + f(p)` lies inside the frame (within the
/// outer pixel centres) and
/// `|f(p) + b(p + f(p))|² < 0.01 (|f(p)|² + |b(p + f(p))|²) + 0.5`, with `b` sampled bilinearly.
/// Returns one flag per pixel of frame t, row-major: `true` = reliable (not occluded).
///
/// # Panics
///
/// If the two flows differ in size.
pub fn consistent(fwd: &Flow, bwd: &Flow) -> Vec<bool> {
    let (w, h) = (fwd.width, fwd.height);
    assert_eq!(
        (w, h),
        (bwd.width, bwd.height),
        "consistent: fwd and bwd differ in size"
    );
    let mut out = Vec::with_capacity(w * h);
    for y in 0..h {
        for x in 0..w {
            let i = y * w + x;
            let (fx, fy) = (fwd.dx[i], fwd.dy[i]);
            let (qx, qy) = (x as f32 + fx, y as f32 + fy);
            let inside = qx >= 0.0 && qy >= 0.0 && qx <= (w - 1) as f32 && qy <= (h - 1) as f32;
            let ok = inside && {
                let bx = bilinear(&bwd.dx, w, h, qx, qy);
                let by = bilinear(&bwd.dy, w, h, qx, qy);
                let (sx, sy) = (fx + bx, fy + by);
                sx * sx + sy * sy < 0.01 * (fx * fx + fy * fy + bx * bx + by * by) + 0.5
            };
            out.push(ok);
        }
    }
    out
}

/// Error growth tolerated before a search step counts as a failure (relative).
const ERR_SLACK: f32 = 1e-6;
/// A Gauss-Newton step shorter than this (squared, px²) ends the search of a patch.
const MIN_STEP_SQ: f32 = 1e-4;
/// Accumulator lanes of the patch sums (lets the compiler use SIMD registers).
const LANES: usize = 8;

/// One pyramid level, ready for the patch search: `t` is the target (template) plane, `s` the
/// source plane searched, `gx`/`gy` the target's central-difference gradients, `p` the patch side.
struct Level<'a> {
    w: usize,
    h: usize,
    t: &'a [f32],
    s: &'a [f32],
    gx: Vec<f32>,
    gy: Vec<f32>,
    p: usize,
}

/// Scratch buffers of the patch search: one interpolated row (`p`) and a border block
/// (`(p + 1)²`).
struct Scratch {
    row: Vec<f32>,
    block: Vec<f32>,
}

/// Result of one patch search: top-left corner, displacement and mean source-minus-target offset.
struct PatchFit {
    x: usize,
    y: usize,
    u: [f32; 2],
    mean: f32,
}

/// The `(p + 1)`-square block of source samples under a displaced patch, read with one set of
/// bilinear weights: sample `(i, j)` of the patch is
/// `w00 b[j][i] + w01 b[j][i + 1] + w10 b[j + 1][i] + w11 b[j + 1][i + 1]`, with
/// `b[j][i] = data[base + j * stride + i]`.
struct Window<'s> {
    data: &'s [f32],
    stride: usize,
    base: usize,
    wts: [f32; 4],
}

impl Window<'_> {
    /// Row `j` of the displaced patch, bilinearly interpolated into `out` (`p` values).
    #[inline]
    fn row(&self, j: usize, out: &mut [f32]) {
        let p = out.len();
        let r0 = &self.data[self.base + j * self.stride..][..p + 1];
        let r1 = &self.data[self.base + (j + 1) * self.stride..][..p + 1];
        let [w00, w01, w10, w11] = self.wts;
        let top = r0[..p].iter().zip(&r0[1..]);
        let bottom = r1[..p].iter().zip(&r1[1..]);
        for (o, ((a, b), (c, d))) in out.iter_mut().zip(top.zip(bottom)) {
            *o = w00 * a + w01 * b + w10 * c + w11 * d;
        }
    }
}

impl<'a> Level<'a> {
    fn new(w: usize, h: usize, t: &'a [f32], s: &'a [f32], patch: usize) -> Self {
        let (gx, gy) = gradients(t, w, h);
        Level {
            w,
            h,
            t,
            s,
            gx,
            gy,
            p: patch.min(w).min(h),
        }
    }

    /// Searches every patch (initialised from `coarser`, the previous level's flow, or zero) and
    /// densifies the result into this level's flow.
    fn flow(&self, coarser: Option<&Flow>, stride: usize, iterations: usize) -> Flow {
        let p = self.p;
        let mut scratch = Scratch {
            row: vec![0.0; p],
            block: vec![0.0; (p + 1) * (p + 1)],
        };
        let xs = grid(self.w, p, stride);
        let ys = grid(self.h, p, stride);
        let mut fits = Vec::with_capacity(xs.len() * ys.len());
        let centre = (p as f32 - 1.0) * 0.5;
        for &y in &ys {
            for &x in &xs {
                let init = match coarser {
                    None => [0.0, 0.0],
                    Some(c) => {
                        // This level's pixel x is centred on the coarser level's (x - 0.5) / 2.
                        let cx = (x as f32 + centre - 0.5) * 0.5;
                        let cy = (y as f32 + centre - 0.5) * 0.5;
                        [
                            2.0 * bilinear(&c.dx, c.width, c.height, cx, cy),
                            2.0 * bilinear(&c.dy, c.width, c.height, cx, cy),
                        ]
                    }
                };
                fits.push(self.search(x, y, init, iterations, &mut scratch));
            }
        }
        self.densify(&fits, &mut scratch)
    }

    /// The source under the patch with top-left `(x, y)` of this level, displaced by `u`; border
    /// patches are gathered (clamped) into `block`.
    #[inline]
    fn window<'s>(&'s self, x: usize, y: usize, u: [f32; 2], block: &'s mut [f32]) -> Window<'s> {
        let p = self.p;
        // Beyond a patch outside the frame every sample is the edge value, so clamping the
        // position there changes nothing (and tames NaN and infinite vectors).
        let limit = |v: f32, len: usize| {
            if v.is_nan() {
                0.0
            } else {
                v.clamp(-(p as f32) - 2.0, len as f32 + 1.0)
            }
        };
        let sx = limit(x as f32 + u[0], self.w);
        let sy = limit(y as f32 + u[1], self.h);
        let (fx, fy) = (floor(sx), floor(sy));
        let (ax, ay) = (sx - fx, sy - fy);
        let wts = [
            (1.0 - ax) * (1.0 - ay),
            ax * (1.0 - ay),
            (1.0 - ax) * ay,
            ax * ay,
        ];
        let (x0, y0) = (fx as isize, fy as isize);
        let (w, h) = (self.w as isize, self.h as isize);
        let end = p as isize;
        if x0 >= 0 && y0 >= 0 && x0 + end < w && y0 + end < h {
            return Window {
                data: self.s,
                stride: self.w,
                base: y0 as usize * self.w + x0 as usize,
                wts,
            };
        }
        for (j, brow) in block.chunks_exact_mut(p + 1).enumerate() {
            let yy = (y0 + j as isize).clamp(0, h - 1) as usize;
            let srow = &self.s[yy * self.w..][..self.w];
            for (i, b) in brow.iter_mut().enumerate() {
                *b = srow[(x0 + i as isize).clamp(0, w - 1) as usize];
            }
        }
        Window {
            data: block,
            stride: p + 1,
            base: 0,
            wts,
        }
    }

    /// Sums over the patch with top-left `(x, y)`, displaced by `u`, of `r`, `gx r`, `gy r` and
    /// `r²`, where `r` = source - target.
    #[inline]
    fn residual_sums(&self, x: usize, y: usize, u: [f32; 2], sc: &mut Scratch) -> [f32; 4] {
        let p = self.p;
        let win = self.window(x, y, u, &mut sc.block);
        let mut lanes = [[0.0f32; LANES]; 4];
        let mut s = [0.0f32; 4];
        for j in 0..p {
            win.row(j, &mut sc.row);
            let o = (y + j) * self.w + x;
            let (wc, wr) = sc.row.as_chunks::<LANES>();
            let (tc, tr) = self.t[o..][..p].as_chunks::<LANES>();
            let (xc, xr) = self.gx[o..][..p].as_chunks::<LANES>();
            let (yc, yr) = self.gy[o..][..p].as_chunks::<LANES>();
            for (((wv, tv), xv), yv) in wc.iter().zip(tc).zip(xc).zip(yc) {
                for k in 0..LANES {
                    let r = wv[k] - tv[k];
                    lanes[0][k] += r;
                    lanes[1][k] += xv[k] * r;
                    lanes[2][k] += yv[k] * r;
                    lanes[3][k] += r * r;
                }
            }
            for (((wv, tv), xv), yv) in wr.iter().zip(tr).zip(xr).zip(yr) {
                let r = wv - tv;
                s[0] += r;
                s[1] += xv * r;
                s[2] += yv * r;
                s[3] += r * r;
            }
        }
        for (total, lane) in s.iter_mut().zip(&lanes) {
            *total += lane.iter().sum::<f32>();
        }
        s
    }

    /// Sums over the patch with top-left `(x, y)` of `gx`, `gy`, `gx²`, `gy²` and `gx gy`.
    fn gradient_sums(&self, x: usize, y: usize) -> [f32; 5] {
        let p = self.p;
        let mut lanes = [[0.0f32; LANES]; 5];
        let mut s = [0.0f32; 5];
        for j in 0..p {
            let o = (y + j) * self.w + x;
            let (xc, xr) = self.gx[o..][..p].as_chunks::<LANES>();
            let (yc, yr) = self.gy[o..][..p].as_chunks::<LANES>();
            for (xv, yv) in xc.iter().zip(yc) {
                for k in 0..LANES {
                    lanes[0][k] += xv[k];
                    lanes[1][k] += yv[k];
                    lanes[2][k] += xv[k] * xv[k];
                    lanes[3][k] += yv[k] * yv[k];
                    lanes[4][k] += xv[k] * yv[k];
                }
            }
            for (gx, gy) in xr.iter().zip(yr) {
                s[0] += gx;
                s[1] += gy;
                s[2] += gx * gx;
                s[3] += gy * gy;
                s[4] += gx * gy;
            }
        }
        for (total, lane) in s.iter_mut().zip(&lanes) {
            *total += lane.iter().sum::<f32>();
        }
        s
    }

    /// Inverse-compositional Gauss-Newton search of the patch with top-left `(x, y)`, starting at
    /// displacement `init`.
    fn search(
        &self,
        x: usize,
        y: usize,
        init: [f32; 2],
        iterations: usize,
        sc: &mut Scratch,
    ) -> PatchFit {
        let n = (self.p * self.p) as f32;
        // Hessian of the mean-normalised residual: covariance of the gradients over the patch.
        let [sgx, sgy, sxx, syy, sxy] = self.gradient_sums(x, y);
        let hxx = (sxx - sgx * sgx / n).max(0.0);
        let hyy = (syy - sgy * sgy / n).max(0.0);
        let hxy = sxy - sgx * sgy / n;
        // A little damping keeps edge-only (rank-1) patches from taking huge steps along the edge.
        let lambda = 1e-3 * (hxx + hyy) + 1e-12;
        let (axx, ayy) = (hxx + lambda, hyy + lambda);
        let det = axx * ayy - hxy * hxy;
        let flat = det.is_nan() || det <= 0.0 || hxx + hyy <= 1e-9 * n;
        let (ixx, iyy, ixy) = (ayy / det, axx / det, -hxy / det);

        let mut u = init;
        let mut best = PatchFit { x, y, u, mean: 0.0 };
        let mut best_err = f32::INFINITY;
        let max_dev = n; // squared patch side
        for it in 0..=iterations {
            let [sr, sxr, syr, srr] = self.residual_sums(x, y, u, sc);
            let err = srr - sr * sr / n;
            if it > 0 && (err.is_nan() || err > best_err * (1.0 + ERR_SLACK)) {
                break; // the last step made things worse: keep the previous position
            }
            best = PatchFit {
                x,
                y,
                u,
                mean: sr / n,
            };
            best_err = err;
            if it == iterations || flat {
                break;
            }
            let bx = sxr - sgx * sr / n;
            let by = syr - sgy * sr / n;
            let step = [ixx * bx + ixy * by, ixy * bx + iyy * by];
            let next = [u[0] - step[0], u[1] - step[1]];
            let dev = [next[0] - init[0], next[1] - init[1]];
            let dev_sq = dev[0] * dev[0] + dev[1] * dev[1];
            if dev_sq.is_nan() || dev_sq > max_dev {
                // Strayed further than a patch from its guess: trust the guess instead.
                if it > 0 {
                    let [sr, _, _, _] = self.residual_sums(x, y, init, sc);
                    best = PatchFit {
                        x,
                        y,
                        u: init,
                        mean: sr / n,
                    };
                }
                break;
            }
            u = next;
            if step[0] * step[0] + step[1] * step[1] < MIN_STEP_SQ {
                best.u = u; // converged; a step this small cannot hurt
                break;
            }
        }
        best
    }

    /// Each pixel = average of the displacements of the patches covering it, weighted by
    /// `1 / max(1, |photometric error|)` (mean offset of the patch removed).
    fn densify(&self, fits: &[PatchFit], sc: &mut Scratch) -> Flow {
        let (w, p) = (self.w, self.p);
        let mut acc_x = vec![0.0f32; w * self.h];
        let mut acc_y = vec![0.0f32; w * self.h];
        let mut acc_w = vec![0.0f32; w * self.h];
        for fit in fits {
            let win = self.window(fit.x, fit.y, fit.u, &mut sc.block);
            for j in 0..p {
                win.row(j, &mut sc.row);
                let o = (fit.y + j) * w + fit.x;
                let t = &self.t[o..][..p];
                let ax = &mut acc_x[o..][..p];
                let ay = &mut acc_y[o..][..p];
                let aw = &mut acc_w[o..][..p];
                for ((((v, t), ax), ay), aw) in sc.row.iter().zip(t).zip(ax).zip(ay).zip(aw) {
                    let wt = 1.0 / (v - t - fit.mean).abs().max(1.0);
                    *ax += wt * fit.u[0];
                    *ay += wt * fit.u[1];
                    *aw += wt;
                }
            }
        }
        for ((x, y), &wt) in acc_x.iter_mut().zip(acc_y.iter_mut()).zip(&acc_w) {
            if wt > 0.0 && wt.is_finite() {
                *x /= wt;
                *y /= wt;
            } else {
                *x = 0.0;
                *y = 0.0;
            }
        }
        Flow {
            width: w,
            height: self.h,
            dx: acc_x,
            dy: acc_y,
        }
    }
}

/// Patch positions along one axis of length `len`: every `stride` pixels, plus one flush with the
/// far edge. Requires `p <= len`.
fn grid(len: usize, p: usize, stride: usize) -> Vec<usize> {
    let last = len - p;
    let mut v: Vec<usize> = (0..=last).step_by(stride).collect();
    if v.last() != Some(&last) {
        v.push(last);
    }
    v
}

/// `v.floor()` for `|v| < 2^31`, without a libm call on baseline x86-64.
fn floor(v: f32) -> f32 {
    let t = v as i32 as f32;
    if t > v { t - 1.0 } else { t }
}

/// `img` (`w` x `h`, row-major, non-empty) sampled bilinearly at `(x, y)`, border clamped. A NaN
/// coordinate samples the top-left corner.
fn bilinear(img: &[f32], w: usize, h: usize, x: f32, y: f32) -> f32 {
    let x = if x.is_nan() {
        0.0
    } else {
        x.clamp(0.0, (w - 1) as f32)
    };
    let y = if y.is_nan() {
        0.0
    } else {
        y.clamp(0.0, (h - 1) as f32)
    };
    let (x0, y0) = (x as usize, y as usize); // x, y >= 0: truncation is floor
    let (x1, y1) = ((x0 + 1).min(w - 1), (y0 + 1).min(h - 1));
    let (ax, ay) = (x - x0 as f32, y - y0 as f32);
    let top = img[y0 * w + x0] + ax * (img[y0 * w + x1] - img[y0 * w + x0]);
    let bottom = img[y1 * w + x0] + ax * (img[y1 * w + x1] - img[y1 * w + x0]);
    top + ay * (bottom - top)
}

/// Resamples `flow` to `w` x `h`: new pixel `(x, y)` reads the old field at
/// `(x * m[0] + m[1], y * m[2] + m[3])` and scales its vector by `v`.
fn resample(flow: &Flow, w: usize, h: usize, m: [f32; 4], v: [f32; 2]) -> Flow {
    let mut out = Flow::zero(w, h);
    if flow.width == 0 || flow.height == 0 {
        return out;
    }
    for y in 0..h {
        let oy = y as f32 * m[2] + m[3];
        for x in 0..w {
            let ox = x as f32 * m[0] + m[1];
            out.dx[y * w + x] = v[0] * bilinear(&flow.dx, flow.width, flow.height, ox, oy);
            out.dy[y * w + x] = v[1] * bilinear(&flow.dy, flow.width, flow.height, ox, oy);
        }
    }
    out
}

/// 2x2 box reduction of a `w` x `h` plane to `w / 2` x `h / 2` (an odd last row/column is dropped).
fn downsample(img: &[f32], w: usize, h: usize) -> Vec<f32> {
    let (nw, nh) = (w / 2, h / 2);
    let mut out = Vec::with_capacity(nw * nh);
    for y in 0..nh {
        let r0 = &img[2 * y * w..][..2 * nw];
        let r1 = &img[(2 * y + 1) * w..][..2 * nw];
        for (a, b) in r0.chunks_exact(2).zip(r1.chunks_exact(2)) {
            out.push(0.25 * (a[0] + a[1] + b[0] + b[1]));
        }
    }
    out
}

/// Central-difference gradients (one-sided at the border) of a `w` x `h` plane.
fn gradients(img: &[f32], w: usize, h: usize) -> (Vec<f32>, Vec<f32>) {
    let mut gx = vec![0.0f32; w * h];
    let mut gy = vec![0.0f32; w * h];
    if w >= 2 {
        for y in 0..h {
            let r = &img[y * w..][..w];
            let g = &mut gx[y * w..][..w];
            g[0] = r[1] - r[0];
            g[w - 1] = r[w - 1] - r[w - 2];
            for x in 1..w - 1 {
                g[x] = 0.5 * (r[x + 1] - r[x - 1]);
            }
        }
    }
    if h >= 2 {
        for y in 0..h {
            let (up, down, k) = match y {
                0 => (0, 1, 1.0),
                _ if y == h - 1 => (h - 2, h - 1, 1.0),
                _ => (y - 1, y + 1, 0.5),
            };
            for x in 0..w {
                gy[y * w + x] = k * (img[down * w + x] - img[up * w + x]);
            }
        }
    }
    (gx, gy)
}

/// [`dis_flow`] for `target` into `source` together with the forward-backward check
/// ([`consistent`]): the flow, and for each pixel of `target` whether it is trusted (not
/// occluded). Both flows are computed; only the first is returned.
pub fn flow_with_consistency(
    target: Plane,
    source: Plane,
    params: &FlowParams,
) -> (Flow, Vec<bool>) {
    let flow = dis_flow(target, source, params);
    let back = dis_flow(source, target, params);
    let reliable = consistent(&flow, &back);
    (flow, reliable)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// A plane owned by a test.
    struct Img {
        w: usize,
        h: usize,
        v: Vec<f32>,
    }

    impl Img {
        fn plane(&self) -> Plane<'_> {
            Plane {
                width: self.w,
                height: self.h,
                values: &self.v,
            }
        }
    }

    /// Kodak photos used as test content (all 768x512).
    const PHOTOS: [&str; 3] = ["kodim05.png", "kodim14.png", "kodim23.png"];

    /// Looks for `shared/data/val/kodak/<name>` above this crate.
    fn find_photo(name: &str) -> Option<PathBuf> {
        let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        here.ancestors()
            .map(|a| a.join("shared/data/val/kodak").join(name))
            .find(|p| p.is_file())
    }

    /// Luma of a Kodak photo in 0..=100 at 768x512, or the synthetic texture when the photo is
    /// not available (so the tests still check real behaviour).
    fn photo(name: &str) -> Img {
        let Some(path) = find_photo(name) else {
            eprintln!(
                "{name} not found above {}: using a synthetic texture",
                env!("CARGO_MANIFEST_DIR")
            );
            return synthetic(768, 512);
        };
        let rgb = image::open(&path).expect("decodable test photo").to_rgb8();
        let (w, h) = (rgb.width() as usize, rgb.height() as usize);
        let v = rgb
            .pixels()
            .map(|p| {
                let [r, g, b] = p.0.map(f32::from);
                (0.299 * r + 0.587 * g + 0.114 * b) * (100.0 / 255.0)
            })
            .collect();
        Img { w, h, v }
    }

    /// Deterministic hash of a lattice point to 0..1.
    fn hash(x: i64, y: i64, seed: u64) -> f32 {
        let mut z = (x as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ (y as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F)
            ^ seed.wrapping_mul(0x1656_67B1_9E37_79F9);
        z ^= z >> 31;
        z = z.wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z ^= z >> 29;
        (z >> 40) as f32 / (1u64 << 24) as f32
    }

    /// Smooth value noise (bilinear interpolation of a random lattice of step `cell`).
    fn value_noise(x: f32, y: f32, cell: f32, seed: u64) -> f32 {
        let (gx, gy) = (x / cell, y / cell);
        let (x0, y0) = (gx.floor(), gy.floor());
        let (ax, ay) = (gx - x0, gy - y0);
        let (ax, ay) = (ax * ax * (3.0 - 2.0 * ax), ay * ay * (3.0 - 2.0 * ay));
        let (i, j) = (x0 as i64, y0 as i64);
        let top = hash(i, j, seed) * (1.0 - ax) + hash(i + 1, j, seed) * ax;
        let bottom = hash(i, j + 1, seed) * (1.0 - ax) + hash(i + 1, j + 1, seed) * ax;
        top * (1.0 - ay) + bottom * ay
    }

    /// A rich synthetic texture in 0..=100: sinusoids plus several octaves of smooth noise.
    fn synthetic(w: usize, h: usize) -> Img {
        let mut v = Vec::with_capacity(w * h);
        for y in 0..h {
            for x in 0..w {
                let (xf, yf) = (x as f32, y as f32);
                let waves = (xf * 0.07 + yf * 0.02).sin() * 8.0
                    + (xf * 0.013 - yf * 0.051).sin() * 10.0
                    + ((xf + yf) * 0.11).sin() * 3.0;
                let noise = value_noise(xf, yf, 48.0, 1) * 30.0
                    + value_noise(xf, yf, 17.0, 2) * 18.0
                    + value_noise(xf, yf, 6.0, 3) * 10.0;
                v.push((20.0 + waves + noise).clamp(0.0, 100.0));
            }
        }
        Img { w, h, v }
    }

    /// Renders a `w` x `h` frame at 1/`k` of `full`'s resolution: frame pixel (x, y) shows the
    /// point `map(x, y)` of the reduced image (pixel coordinates of `full` divided by `k`),
    /// averaged over k x k bilinear sub-samples of `full` (a box filter, as a camera would).
    fn render(
        full: &Img,
        k: usize,
        w: usize,
        h: usize,
        map: impl Fn(f32, f32) -> (f32, f32),
    ) -> Img {
        let kf = k as f32;
        let mut v = Vec::with_capacity(w * h);
        for y in 0..h {
            for x in 0..w {
                let mut acc = 0.0;
                for j in 0..k {
                    for i in 0..k {
                        let sx = x as f32 + (i as f32 + 0.5) / kf - 0.5;
                        let sy = y as f32 + (j as f32 + 0.5) / kf - 0.5;
                        let (mx, my) = map(sx, sy);
                        let fx = kf * mx + (kf - 1.0) * 0.5;
                        let fy = kf * my + (kf - 1.0) * 0.5;
                        acc += bilinear(&full.v, full.w, full.h, fx, fy);
                    }
                }
                v.push(acc / (kf * kf));
            }
        }
        Img { w, h, v }
    }

    /// Frame size of the accuracy tests, at 1/3 of the 768x512 photos (256x170 reduced image).
    const W: usize = 224;
    const H: usize = 136;
    /// Where the frames sit in the reduced image.
    const O: (f32, f32) = (16.0, 17.0);

    /// A target frame and a source frame in which each target pixel (x, y) shows up at
    /// (x + dx, y + dy).
    fn translated(full: &Img, d: (f32, f32)) -> (Img, Img) {
        let target = render(full, 3, W, H, |x, y| (x + O.0, y + O.1));
        let source = render(full, 3, W, H, |x, y| (x + O.0 - d.0, y + O.1 - d.1));
        (target, source)
    }

    /// Median and mean endpoint error against `truth`, excluding a `border`-pixel frame.
    fn epe(flow: &Flow, border: usize, truth: impl Fn(usize, usize) -> (f32, f32)) -> (f32, f32) {
        let mut e = Vec::new();
        for y in border..flow.height - border {
            for x in border..flow.width - border {
                let (tx, ty) = truth(x, y);
                let i = y * flow.width + x;
                e.push((flow.dx[i] - tx).hypot(flow.dy[i] - ty));
            }
        }
        e.sort_by(f32::total_cmp);
        let mean = e.iter().sum::<f32>() / e.len() as f32;
        (e[e.len() / 2], mean)
    }

    fn translation_epe(full: &Img, d: (f32, f32), params: &FlowParams) -> (f32, f32) {
        let (target, source) = translated(full, d);
        let flow = dis_flow(target.plane(), source.plane(), params);
        assert_eq!((flow.width, flow.height), (W, H));
        epe(&flow, 10, |_, _| d)
    }

    #[test]
    fn subpixel_translation() {
        for name in PHOTOS {
            let (median, mean) = translation_epe(&photo(name), (3.4, -1.7), &FlowParams::default());
            eprintln!("subpixel translation {name}: median EPE {median:.3}, mean {mean:.3}");
            assert!(
                median < 0.2 && mean < 0.35,
                "{name}: median {median}, mean {mean}"
            );
        }
    }

    #[test]
    fn subpixel_translation_synthetic() {
        let (median, mean) =
            translation_epe(&synthetic(768, 512), (3.4, -1.7), &FlowParams::default());
        eprintln!("subpixel translation synthetic: median EPE {median:.3}, mean {mean:.3}");
        assert!(median < 0.2 && mean < 0.35, "median {median}, mean {mean}");
    }

    #[test]
    fn large_translation_through_pyramid() {
        for name in PHOTOS {
            let (median, mean) =
                translation_epe(&photo(name), (11.0, -6.0), &FlowParams::default());
            eprintln!("large translation {name}: median EPE {median:.3}, mean {mean:.3}");
            assert!(median < 0.5, "{name}: median {median}, mean {mean}");
        }
    }

    #[test]
    fn half_resolution_finest_level() {
        let params = FlowParams {
            finest_level: 1,
            ..FlowParams::default()
        };
        let (median, mean) = translation_epe(&photo(PHOTOS[0]), (3.4, -1.7), &params);
        eprintln!("finest_level 1: median EPE {median:.3}, mean {mean:.3}");
        assert!(median < 0.4, "median {median}, mean {mean}");
    }

    #[test]
    fn zoom_about_centre() {
        let s = 1.05;
        let (cx, cy) = ((W as f32 - 1.0) * 0.5, (H as f32 - 1.0) * 0.5);
        // The target is the source magnified by `s` about the frame's centre.
        let truth = |x: usize, y: usize| {
            let (x, y) = (x as f32, y as f32);
            (cx + (x - cx) / s - x, cy + (y - cy) / s - y)
        };
        for name in PHOTOS {
            let full = photo(name);
            let target = render(&full, 3, W, H, |x, y| {
                (O.0 + cx + (x - cx) / s, O.1 + cy + (y - cy) / s)
            });
            let source = render(&full, 3, W, H, |x, y| (x + O.0, y + O.1));
            let flow = dis_flow(target.plane(), source.plane(), &FlowParams::default());
            let (median, mean) = epe(&flow, 10, truth);
            eprintln!("zoom {name}: median EPE {median:.3}, mean {mean:.3}");
            assert!(median < 0.5, "{name}: median {median}, mean {mean}");
        }
    }

    #[test]
    fn identical_frames_give_zero_flow() {
        let full = photo(PHOTOS[1]);
        let frame = render(&full, 3, W, H, |x, y| (x + O.0, y + O.1));
        let flow = dis_flow(frame.plane(), frame.plane(), &FlowParams::default());
        let worst = flow
            .dx
            .iter()
            .zip(&flow.dy)
            .map(|(x, y)| x.hypot(*y))
            .fold(0.0f32, f32::max);
        assert!(worst < 0.05, "largest vector {worst}");
    }

    #[test]
    fn brightness_change_keeps_translation() {
        for name in PHOTOS {
            let full = photo(name);
            let d = (-2.6, 1.3);
            let (mut target, source) = translated(&full, d);
            for v in &mut target.v {
                *v = *v * 0.9 + 5.0;
            }
            let flow = dis_flow(target.plane(), source.plane(), &FlowParams::default());
            let (median, mean) = epe(&flow, 10, |_, _| d);
            eprintln!("brightness {name}: median EPE {median:.3}, mean {mean:.3}");
            assert!(median < 0.3, "{name}: median {median}, mean {mean}");
        }
    }

    #[test]
    fn any_value_range_works() {
        let full = photo(PHOTOS[2]);
        let d = (1.8, 2.3);
        let (mut target, mut source) = translated(&full, d);
        for v in target.v.iter_mut().chain(source.v.iter_mut()) {
            *v *= 0.01; // 0..=1 instead of 0..=100
        }
        let flow = dis_flow(target.plane(), source.plane(), &FlowParams::default());
        let (median, mean) = epe(&flow, 10, |_, _| d);
        eprintln!("0..1 range: median EPE {median:.3}, mean {mean:.3}");
        assert!(median < 0.3, "median {median}, mean {mean}");
    }

    #[test]
    fn warp_with_integer_and_zero_flow() {
        let (w, h) = (23, 17);
        let src: Vec<f32> = (0..w * h).map(|i| ((i * 37) % 101) as f32).collect();
        assert_eq!(warp(&src, &Flow::zero(w, h)), src);

        let mut flow = Flow::zero(w, h);
        flow.dx.fill(3.0);
        flow.dy.fill(-2.0);
        let out = warp(&src, &flow);
        for y in 0..h {
            for x in 0..w {
                // Border clamp: reads beyond the edge take the edge's value.
                let (sx, sy) = ((x + 3).min(w - 1), y.saturating_sub(2));
                assert_eq!(out[y * w + x], src[sy * w + sx], "at ({x}, {y})");
            }
        }

        // Half-pixel flow averages neighbours.
        flow.dx.fill(0.5);
        flow.dy.fill(0.0);
        let out = warp(&src, &flow);
        let (x, y) = (5, 4);
        let expect = 0.5 * (src[y * w + x] + src[y * w + x + 1]);
        assert!((out[y * w + x] - expect).abs() < 1e-4);
    }

    #[test]
    fn consistency_marks_disocclusion() {
        let full = photo(PHOTOS[0]);
        let background = render(&full, 3, W, H, |x, y| (x + O.0, y + O.1));
        let (side, sy, x_prev, shift) = (40usize, 48usize, 80usize, 6usize);
        // A square cut from elsewhere in the photo (inverted, so it stands out), moving right.
        let frame = |sx: usize| {
            let square = render(&full, 3, W, H, |x, y| (x - sx as f32 + 180.0, y + 100.0));
            let mut img = Img {
                w: W,
                h: H,
                v: background.v.clone(),
            };
            for y in sy..sy + side {
                for x in sx..sx + side {
                    img.v[y * W + x] = 100.0 - square.v[y * W + x];
                }
            }
            img
        };
        let prev = frame(x_prev);
        let cur = frame(x_prev + shift);
        let params = FlowParams::default();
        let fwd = dis_flow(cur.plane(), prev.plane(), &params);
        let bwd = dis_flow(prev.plane(), cur.plane(), &params);
        let ok = consistent(&fwd, &bwd);
        assert_eq!(ok.len(), W * H);

        // The strip uncovered behind the square in the current frame.
        let mut strip = (0, 0);
        for y in sy..sy + side {
            for x in x_prev..x_prev + shift {
                strip.0 += usize::from(!ok[y * W + x]);
                strip.1 += 1;
            }
        }
        // Background well away from the square in both frames.
        let margin = 16;
        let mut far = (0, 0);
        for y in 0..H {
            for x in 0..W {
                let near = x + margin >= x_prev
                    && x < x_prev + shift + side + margin
                    && y + margin >= sy
                    && y < sy + side + margin;
                if !near {
                    far.0 += usize::from(ok[y * W + x]);
                    far.1 += 1;
                }
            }
        }
        let strip_bad = strip.0 as f32 / strip.1 as f32;
        let far_ok = far.0 as f32 / far.1 as f32;
        eprintln!(
            "disoccluded strip unreliable {strip_bad:.3}, far background reliable {far_ok:.3}"
        );
        assert!(strip_bad > 0.6, "strip unreliable fraction {strip_bad}");
        assert!(far_ok > 0.95, "far background reliable fraction {far_ok}");
        // And the square itself moved by the shift: its interior is reliable with the right flow.
        let c = (sy + side / 2) * W + x_prev + shift + side / 2;
        assert!((fwd.dx[c] + shift as f32).abs() < 0.3 && fwd.dy[c].abs() < 0.3);
        assert!(ok[c]);
    }

    #[test]
    fn tiny_frames_do_not_panic() {
        let sizes = [
            (1, 1),
            (2, 1),
            (1, 9),
            (2, 2),
            (3, 2),
            (7, 40),
            (40, 7),
            (8, 8),
            (9, 17),
            (33, 5),
            (47, 31),
        ];
        let odd = FlowParams {
            patch: 0,
            stride: 0,
            iterations: 0,
            coarsest_width: 0,
            finest_level: 9,
        };
        let deep = FlowParams {
            coarsest_width: 0,
            finest_level: 1,
            ..FlowParams::default()
        };
        for (w, h) in sizes {
            let a: Vec<f32> = (0..w * h).map(|i| hash(i as i64, 0, 7) * 100.0).collect();
            let b: Vec<f32> = (0..w * h).map(|i| hash(i as i64, 1, 7) * 100.0).collect();
            for params in [FlowParams::default(), odd, deep] {
                let pa = Plane {
                    width: w,
                    height: h,
                    values: &a,
                };
                let pb = Plane {
                    width: w,
                    height: h,
                    values: &b,
                };
                let flow = dis_flow(pa, pb, &params);
                assert_eq!((flow.width, flow.height), (w, h));
                assert_eq!((flow.dx.len(), flow.dy.len()), (w * h, w * h));
                assert!(
                    flow.dx.iter().chain(&flow.dy).all(|v| v.is_finite()),
                    "{w}x{h}"
                );
                assert_eq!(warp(&a, &flow).len(), w * h);
                assert_eq!(consistent(&flow, &flow).len(), w * h);
            }
        }
        let empty = dis_flow(
            Plane {
                width: 0,
                height: 0,
                values: &[],
            },
            Plane {
                width: 0,
                height: 0,
                values: &[],
            },
            &FlowParams::default(),
        );
        assert_eq!(empty, Flow::zero(0, 0));
    }

    #[test]
    fn resize_scales_vectors() {
        let mut flow = Flow::zero(64, 48);
        flow.dx.fill(2.0);
        flow.dy.fill(-1.0);
        let half = flow.resize(32, 24);
        assert_eq!((half.width, half.height, half.dx.len()), (32, 24, 32 * 24));
        assert!(half.dx.iter().all(|&v| v == 1.0) && half.dy.iter().all(|&v| v == -0.5));
        assert_eq!(half.resize(64, 48), flow);

        // Odd sizes scale by the exact ratio.
        let mut odd = Flow::zero(63, 47);
        odd.dx.fill(6.3);
        odd.dy.fill(4.7);
        let small = odd.resize(31, 23);
        assert!(
            small
                .dx
                .iter()
                .all(|&v| (v - 6.3 * 31.0 / 63.0).abs() < 1e-5)
        );
        assert!(
            small
                .dy
                .iter()
                .all(|&v| (v - 4.7 * 23.0 / 47.0).abs() < 1e-5)
        );

        // A ramp keeps its geometry: dx = x at 16 px wide is dx = X - 0.5 at 32 px (interior).
        let mut ramp = Flow::zero(16, 4);
        for y in 0..4 {
            for x in 0..16 {
                ramp.dx[y * 16 + x] = x as f32;
            }
        }
        let up = ramp.resize(32, 8);
        for x in 1..31 {
            assert!((up.dx[3 * 32 + x] - (x as f32 - 0.5)).abs() < 1e-4, "x {x}");
        }
    }

    /// CPU time used by this thread so far, in ns (Linux, scheduler-tick resolution), so that a
    /// busy machine does not inflate the timings; `None` elsewhere.
    fn cpu_ns() -> Option<u64> {
        std::fs::read_to_string("/proc/thread-self/schedstat")
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse().ok())
    }

    /// Runs `f` `runs` times; returns (minimum wall ms, median wall ms, mean CPU ms or NaN).
    fn time_runs(runs: usize, mut f: impl FnMut()) -> (f64, f64, f64) {
        let mut wall = Vec::with_capacity(runs);
        let cpu0 = cpu_ns();
        for _ in 0..runs {
            let t0 = std::time::Instant::now();
            f();
            wall.push(t0.elapsed().as_secs_f64() * 1e3);
        }
        let cpu = match (cpu0, cpu_ns()) {
            (Some(a), Some(b)) => (b - a) as f64 * 1e-6 / runs as f64,
            _ => f64::NAN,
        };
        wall.sort_by(f64::total_cmp);
        (wall[0], wall[runs / 2], cpu)
    }

    /// Single-threaded speed on 240x136 and 480x272 frame pairs (run with
    /// `cargo test --release -- --ignored --nocapture timing`). Fails beyond twice the budget
    /// (4 ms and 15 ms), to leave room for a busy machine.
    #[test]
    #[ignore]
    fn timing() {
        let full = photo(PHOTOS[0]);
        for (k, w, h, budget_ms) in [(2usize, 240usize, 136usize, 4.0f64), (1, 480, 272, 15.0)] {
            let kf = k as f32;
            let d = (4.6 / kf, -2.2 / kf);
            let target = render(&full, k, w, h, |x, y| (x + 40.0 / kf, y + 60.0 / kf));
            let source = render(&full, k, w, h, |x, y| {
                (x + 40.0 / kf - d.0, y + 60.0 / kf - d.1)
            });
            let params = FlowParams::default();
            let mut flow = Flow::zero(0, 0);
            let (min, med, cpu) = time_runs(50, || {
                flow = dis_flow(target.plane(), source.plane(), &params)
            });
            let (median, mean) = epe(&flow, 10, |_, _| d);
            eprintln!(
                "{w}x{h}: wall min {min:.2} ms, median {med:.2} ms; CPU mean {cpu:.2} ms \
                 (EPE median {median:.3}, mean {mean:.3})"
            );
            assert!(min < 2.0 * budget_ms, "{w}x{h}: {min} ms");
            assert!(median < 0.2, "{w}x{h}: EPE {median}");
        }
    }
}
