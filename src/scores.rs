//! From a classifier's logits to what a person reads: probabilities and the most probable
//! classes. The CLI and the web page both use these, so they show the same numbers.

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

#[cfg(test)]
mod tests {
    use super::*;

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
