//! Logits to the k most probable classes, in the shape `resnet classify --json` prints and
//! the Python package returns: `{image, top: [{class, label, prob}]}`.

/// One image's result.
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

/// Softmax in `f64` after subtracting the maximum, so large logits neither overflow nor
/// lose the small probabilities.
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exp: Vec<f64> = logits.iter().map(|&v| ((v - max) as f64).exp()).collect();
    let sum: f64 = exp.iter().sum();
    exp.iter().map(|&e| (e / sum) as f32).collect()
}

/// The `k` most probable classes of one image's `logits` (at most all of them), named by
/// `labels` (one per logit).
pub fn top_k(logits: &[f32], labels: &[String], k: usize) -> Vec<Scored> {
    let probs = softmax(logits);
    let mut order: Vec<usize> = (0..probs.len()).collect();
    order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]));
    order
        .into_iter()
        .take(k)
        .map(|c| Scored {
            class: c,
            label: labels.get(c).cloned().unwrap_or_else(|| c.to_string()),
            prob: probs[c],
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_orders_by_probability_and_stops_at_k() {
        let labels: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let top = top_k(&[1.0, 3.0, 2.0], &labels, 2);
        let classes: Vec<usize> = top.iter().map(|s| s.class).collect();
        assert_eq!(classes, [1, 2]);
        assert_eq!(top[0].label, "b");
        let p = softmax(&[1.0, 3.0, 2.0]);
        assert_eq!(top[0].prob, p[1]);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert_eq!(top_k(&[0.0; 3], &labels, 10).len(), 3);
    }

    #[test]
    fn softmax_of_huge_logits_is_finite() {
        let p = softmax(&[1e30, 0.0]);
        assert_eq!(p, [1.0, 0.0]);
    }
}
