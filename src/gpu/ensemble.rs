//! Ensembles: several networks on one device, blended into one prediction — the mean (or a
//! weighted mean) of their probabilities or logits. Members may differ in layout, depth and
//! input size; they must agree on the number of classes. Each batch of every member is
//! recorded into one command buffer: one submission per batch for the whole ensemble.

use std::sync::{Arc, MutexGuard};

use super::engine::{Engine, Output};
use super::plan::GpuPlan;
use super::readback::read_stored;
use crate::error::{Error, Result};
use crate::graph::InputSize;
use crate::platform;
use crate::scores::{combine, Combine};

/// Engines that share one device and predict the same classes.
pub struct Ensemble {
    pub members: Vec<Engine>,
    /// One non-negative weight per member, not all zero.
    pub weights: Vec<f64>,
    pub combine: Combine,
}

/// One member's input: its tensor and size (each member may take its own preprocessing).
pub type MemberInput<'a> = (&'a [f32], InputSize);

impl Ensemble {
    /// Checks that the members share one device and their class counts (`names` label them
    /// in errors, e.g. their files) and the weights (one per member, default equal).
    pub fn new(
        members: Vec<Engine>,
        names: &[String],
        weights: Option<Vec<f64>>,
        combine: Combine,
    ) -> Result<Self> {
        let Some(first) = members.first() else {
            return Err(Error::Usage("an ensemble needs at least one member".into()));
        };
        if let Some(i) = members
            .iter()
            .position(|m| !Arc::ptr_eq(&m.ctx, &first.ctx))
        {
            return Err(Error::Usage(format!(
                "{}: not on the ensemble's device",
                member_name(names, i)
            )));
        }
        let classes: Vec<Option<usize>> = members
            .iter()
            .map(|e| e.model.as_ref().and_then(|m| m.num_classes()))
            .collect();
        check_classes(&classes, names)?;
        let weights = weights.unwrap_or_else(|| vec![1.0; members.len()]);
        let valid = weights.iter().all(|w| w.is_finite() && *w >= 0.0);
        if weights.len() != members.len() || !valid || weights.iter().sum::<f64>() <= 0.0 {
            return Err(Error::Usage(format!(
                "{} ensemble weights for {} members: give one non-negative weight per member, \
                 not all zero",
                weights.len(),
                members.len()
            )));
        }
        Ok(Ensemble {
            members,
            weights,
            combine,
        })
    }

    /// Classes every member predicts.
    pub fn classes(&self) -> usize {
        self.members[0]
            .model
            .as_ref()
            .and_then(|m| m.num_classes())
            .unwrap_or(0)
    }

    /// The blended `(n, classes)` scores (probabilities under [`Combine::Probs`], logits
    /// under [`Combine::Logits`]) of one input per member, each with the same batch `n`.
    pub fn run(&self, inputs: &[MemberInput<'_>]) -> Result<Vec<f32>> {
        let logits = self.member_logits(inputs)?;
        Ok(combine(
            &logits,
            &self.weights,
            self.combine,
            self.classes(),
        ))
    }

    /// Every member's `(n, classes)` logits, batch by batch in sub-batches every member's
    /// plan can hold, each sub-batch one submission for all members.
    pub fn member_logits(&self, inputs: &[MemberInput<'_>]) -> Result<Vec<Vec<f32>>> {
        let n = self.check_inputs(inputs)?;
        let mut fit = n;
        for (m, (_, size)) in self.members.iter().zip(inputs) {
            fit = fit.min(m.max_batch(*size)?);
        }
        let mut out = vec![Vec::new(); self.members.len()];
        let mut start = 0;
        while start < n {
            let count = fit.min(n - start);
            let parts: Vec<MemberInput<'_>> = inputs
                .iter()
                .map(|&(x, size)| {
                    let per = x.len() / n;
                    (
                        &x[start * per..(start + count) * per],
                        size.with_batch(count),
                    )
                })
                .collect();
            let rows = platform::block_on(self.run_together(&parts), "Ensemble::run")?;
            for (acc, r) in out.iter_mut().zip(rows) {
                acc.extend(r);
            }
            start += count;
        }
        Ok(out)
    }

    /// One input per member, all with the same batch, each of its member's size: the batch.
    fn check_inputs(&self, inputs: &[MemberInput<'_>]) -> Result<usize> {
        if inputs.len() != self.members.len() {
            return Err(Error::Usage(format!(
                "{} inputs for {} ensemble members",
                inputs.len(),
                self.members.len()
            )));
        }
        let n = inputs[0].1.n;
        if inputs.iter().any(|(_, size)| size.n != n) {
            return Err(Error::InputShape(
                "every ensemble member must get the same number of images".into(),
            ));
        }
        for (m, (x, size)) in self.members.iter().zip(inputs) {
            let c = m.graph.input_channels;
            if size.n * c * size.t * size.h * size.w != x.len() {
                return Err(Error::InputShape(format!(
                    "input has {} values, expected {}",
                    x.len(),
                    size.describe(c)
                )));
            }
        }
        Ok(n)
    }

    /// One batch of every member: recorded into one encoder, one submission, then each
    /// member's logits read back. The plans stay locked until their readbacks are done
    /// (natively the future never yields while holding them; see `Engine::run_batch`).
    #[allow(clippy::await_holding_lock)]
    async fn run_together(&self, parts: &[MemberInput<'_>]) -> Result<Vec<Vec<f32>>> {
        let plans = self
            .members
            .iter()
            .zip(parts)
            .map(|(m, (_, size))| m.plan(*size))
            .collect::<Result<Vec<_>>>()?;
        let guards: Vec<MutexGuard<'_, GpuPlan>> = plans
            .iter()
            .map(|p| platform::lock_across_await(p, "an inference on this ensemble"))
            .collect::<Result<_>>()?;
        let ctx = &self.members[0].ctx;
        let (submission, bytes) = ctx.scoped("running the ensemble", || {
            let mut encoder = ctx
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("ensemble"),
                });
            let bytes: Vec<(u64, usize)> = self
                .members
                .iter()
                .zip(parts)
                .zip(&guards)
                .map(|((m, (x, _)), plan)| m.encode_batch(plan, x, Output::Logits, &mut encoder))
                .collect();
            (ctx.queue.submit([encoder.finish()]), bytes)
        })?;
        let mut out = Vec::new();
        for (plan, bytes) in guards.iter().zip(bytes) {
            out.push(read_stored(ctx, &plan.readback, bytes, Some(submission.clone())).await?);
        }
        Ok(out)
    }
}

/// Members must all have a head, of one class count: `classes` per member (`names` label
/// them in the error). Checked on the CPU, before anything is loaded, by callers that can.
pub fn check_classes(classes: &[Option<usize>], names: &[String]) -> Result<()> {
    for (i, &c) in classes.iter().enumerate() {
        if c.is_none() || c != classes[0] {
            return Err(Error::Usage(format!(
                "ensemble members disagree on the classes: {} has {}, {} has {}",
                member_name(names, 0),
                count(classes[0]),
                member_name(names, i),
                count(c)
            )));
        }
    }
    Ok(())
}

fn member_name(names: &[String], i: usize) -> String {
    names
        .get(i)
        .cloned()
        .unwrap_or_else(|| format!("member {i}"))
}

fn count(classes: Option<usize>) -> String {
    classes.map_or("no classification head".into(), |c| format!("{c} classes"))
}
