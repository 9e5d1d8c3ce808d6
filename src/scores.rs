//! From a classifier's logits to what a person reads: probabilities, the most probable
//! classes in the shape `resnet classify --json` prints (`{image, top: [{class, label,
//! prob}]}`), and an ensemble's blend. The CLI, the web page and the Python package all use
//! these, so they show the same numbers.

/// One image's (or video's) result.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Prediction {
    pub image: String,
    pub top: Vec<Scored>,
}

/// One class of a [`Prediction`], most probable first.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Scored {
    pub class: usize,
    pub label: String,
    pub prob: f32,
}

/// Softmax over one image's logits, accumulated in f64 (max subtracted first, so large
/// logits cannot overflow).
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exp: Vec<f64> = logits.iter().map(|&v| ((v - max) as f64).exp()).collect();
    let sum: f64 = exp.iter().sum();
    exp.iter().map(|&e| (e / sum) as f32).collect()
}

/// The indices of the `k` (at most `probs.len()`) largest values, largest first; equal
/// values keep their index order.
pub fn top_k(probs: &[f32], k: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..probs.len()).collect();
    order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]));
    order.truncate(k);
    order
}

/// The `k` most probable classes of `probs`, named by `labels` (the class number where a
/// label is missing).
pub fn scored(probs: &[f32], labels: &[String], k: usize) -> Vec<Scored> {
    top_k(probs, k)
        .into_iter()
        .map(|c| Scored {
            class: c,
            label: labels.get(c).cloned().unwrap_or_else(|| c.to_string()),
            prob: probs[c],
        })
        .collect()
}

/// How an ensemble blends its members' outputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Combine {
    /// The (weighted) mean of the members' softmax probabilities.
    #[default]
    Probs,
    /// The (weighted) mean of the members' logits.
    Logits,
}

/// Blends `members` (each `(n, classes)` logits, row-major) into one `(n, classes)`: the
/// weighted mean of their probabilities or of their logits, accumulated in f64. `weights`
/// holds one non-negative weight per member (normalised here).
pub fn combine(members: &[Vec<f32>], weights: &[f64], how: Combine, classes: usize) -> Vec<f32> {
    let total: f64 = weights.iter().sum();
    let Some(first) = members.first() else {
        return vec![];
    };
    let mut out = vec![0f64; first.len()];
    for (logits, &w) in members.iter().zip(weights) {
        for (row, acc) in logits
            .chunks(classes.max(1))
            .zip(out.chunks_mut(classes.max(1)))
        {
            let values = match how {
                Combine::Probs => softmax(row),
                Combine::Logits => row.to_vec(),
            };
            for (a, v) in acc.iter_mut().zip(values) {
                *a += w / total * v as f64;
            }
        }
    }
    out.into_iter().map(|v| v as f32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combine_weights_probabilities_or_logits() {
        let a = vec![0.0, 1.0, 2.0, 0.0];
        let b = vec![2.0, 0.0, 0.0, 2.0];
        let logits = combine(&[a.clone(), b.clone()], &[3.0, 1.0], Combine::Logits, 2);
        assert_eq!(logits, vec![0.5, 0.75, 1.5, 0.5]);
        let probs = combine(&[a.clone(), b.clone()], &[1.0, 1.0], Combine::Probs, 2);
        let (pa, pb) = (softmax(&a[..2]), softmax(&b[..2]));
        assert!((probs[0] - (pa[0] + pb[0]) / 2.0).abs() < 1e-7);
        assert!((probs[2..].iter().sum::<f32>() - 1.0).abs() < 1e-6);
        // One member alone is itself.
        assert_eq!(
            combine(std::slice::from_ref(&a), &[2.0], Combine::Logits, 2),
            a
        );
    }

    #[test]
    fn softmax_sums_to_one_and_survives_large_logits() {
        let p = softmax(&[1000.0, 1000.0, 0.0]);
        assert!((p[0] - 0.5).abs() < 1e-6 && (p[1] - 0.5).abs() < 1e-6);
        assert!(p[2] < 1e-30);
        let q = softmax(&[0.5, -1.0, 2.0, 0.0]);
        assert!((q.iter().sum::<f32>() - 1.0).abs() < 1e-6);
    }

    #[test]
    fn top_k_orders_by_value_then_index() {
        assert_eq!(top_k(&[0.1, 0.4, 0.1, 0.4], 3), vec![1, 3, 0]);
        assert_eq!(top_k(&[0.3, 0.7], 5), vec![1, 0]);
        assert!(top_k(&[0.3], 0).is_empty());
    }
}
