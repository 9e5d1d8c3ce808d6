//! Kinetics-400 class names, in the order of a Kinetics classifier's 400 outputs (torchvision's
//! and pytorchvideo's video models share it).
//!
//! `kinetics400_classes.txt` is `torchvision.models._meta._KINETICS400_CATEGORIES`, one per line.

/// The 400 class names, one per line, `\n`-terminated.
pub const KINETICS400_CLASSES: &str = include_str!("kinetics400_classes.txt");

/// Number of Kinetics-400 classes.
pub const NUM_KINETICS400_CLASSES: usize = 400;

/// The class names, indexed by model output position.
pub fn kinetics400_classes() -> Vec<&'static str> {
    KINETICS400_CLASSES.lines().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn four_hundred_distinct_names_in_torchvision_order() {
        let c = kinetics400_classes();
        assert_eq!(c.len(), NUM_KINETICS400_CLASSES);
        assert_eq!(c[0], "abseiling");
        assert_eq!(c[1], "air drumming");
        assert_eq!(c[399], "zumba");
        assert!(c.iter().all(|n| !n.is_empty() && n.trim() == *n));
        let mut sorted = c.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), NUM_KINETICS400_CLASSES, "names are unique");
    }
}
