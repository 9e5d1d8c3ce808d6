//! Sub-batching: a batch whose plan would exceed the adapter's buffer limits runs as several
//! smaller batches. The largest batch that fits is found on the CPU, from shapes and memory
//! plans alone, so nothing is allocated on the GPU to find out.

use super::{u32_of, Engine, Output};
use crate::error::{Error, Result};
use crate::gpu::weights::check_size;
use crate::graph::plan::MemoryPlan;
use crate::graph::Shape;

impl Engine {
    /// Runs one inference on an NCHW input `(n, C_in, h, w)` and returns the requested output,
    /// row-major `(n, features)`.
    ///
    /// A batch whose plan would exceed the adapter's buffer limits is split into the fewest
    /// sub-batches that fit, of near-equal sizes (so at most two plans); every image is
    /// computed exactly as in one batch, so the result is the same. A single image that does
    /// not fit is an [`Error::AdapterLimit`] naming the limit.
    pub fn run(
        &self,
        input: &[f32],
        n: usize,
        h: usize,
        w: usize,
        output: Output,
    ) -> Result<Vec<f32>> {
        let c = self.graph.input_channels;
        let per_image = c.checked_mul(h).and_then(|v| v.checked_mul(w));
        let expected = per_image.and_then(|v| v.checked_mul(n));
        if expected != Some(input.len()) {
            return Err(Error::InputShape(format!(
                "input has {} values, expected ({n}, {c}, {h}, {w})",
                input.len()
            )));
        }
        let per_image = per_image.unwrap_or(0);
        let sizes = self.sub_batches(n, h, w)?;
        if sizes.len() == 1 {
            return self.run_batch(input, n, h, w, output);
        }
        log::info!("batch {n} at {h}×{w} exceeds the adapter's limits; running {sizes:?}");
        let mut out = Vec::new();
        let mut start = 0;
        for size in sizes {
            let part = &input[start * per_image..(start + size) * per_image];
            out.extend(self.run_batch(part, size, h, w, output)?);
            start += size;
        }
        Ok(out)
    }

    /// The sub-batches [`Engine::run`] splits a batch of `n` into at `h×w`: `[n]` when it
    /// fits, else the fewest that fit, of near-equal sizes, larger first.
    pub fn sub_batches(&self, n: usize, h: usize, w: usize) -> Result<Vec<usize>> {
        let fit = self.max_batch(n, h, w)?;
        let chunks = n.div_ceil(fit.max(1));
        let (base, extra) = (n / chunks, n % chunks);
        Ok((0..chunks).map(|i| base + usize::from(i < extra)).collect())
    }

    /// The largest batch, at most `n`, whose plan at `h×w` fits the adapter's limits. Found
    /// on the CPU from shapes and memory plans alone, without allocating anything.
    pub fn max_batch(&self, n: usize, h: usize, w: usize) -> Result<usize> {
        if n == 0 {
            // No batch to split: the shape error says so.
            self.graph.infer_shapes(n, h, w)?;
        }
        if self.fits(n, h, w).is_ok() {
            return Ok(n);
        }
        // One image must fit; if it does not, its error names the limit.
        self.fits(1, h, w)?;
        // Every buffer grows with the batch, so fitting is monotonic: bisect.
        let (mut lo, mut hi) = (1, n);
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if self.fits(mid, h, w).is_ok() {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        Ok(lo)
    }

    fn fits(&self, n: usize, h: usize, w: usize) -> Result<()> {
        let shapes = self.graph.infer_shapes(n, h, w)?;
        let memory = MemoryPlan::new(&self.graph, &shapes, true);
        self.check_limits(n, h, w, &shapes, &memory)
    }

    /// Every batch-dependent limit a plan must respect: each buffer against the binding
    /// and buffer size limits, element counts against u32 indexing, and the batch against
    /// the head's dispatch size. `build_plan` relies on the same checks.
    pub(super) fn check_limits(
        &self,
        n: usize,
        h: usize,
        w: usize,
        shapes: &[Shape],
        memory: &MemoryPlan,
    ) -> Result<()> {
        let ctx = &self.ctx;
        for (i, &bytes) in memory.slot_bytes.iter().enumerate() {
            check_size(
                ctx,
                &format!("activation buffer {i} for batch {n} at {h}×{w}"),
                bytes,
            )?;
        }
        for s in shapes {
            u32_of("activation", s.numel())?;
        }
        let max_groups = ctx.limits.max_compute_workgroups_per_dimension as u64;
        if n as u64 > max_groups {
            return Err(Error::AdapterLimit {
                what: "batch for the head".into(),
                needed: n as u64,
                limit_name: "max_compute_workgroups_per_dimension",
                limit: max_groups,
            });
        }
        Ok(())
    }
}
