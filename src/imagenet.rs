//! ImageNet-1k class names, in the order of a torchvision classifier's 1000 outputs.
//!
//! `imagenet_classes.txt` is `torchvision.models._meta._IMAGENET_CATEGORIES`, one per line
//! (torchvision's names, which disambiguate the duplicates of the original synset list, e.g.
//! "crane bird" vs "crane", "maillot" vs "maillot tank suit").

/// The 1000 class names, one per line, `\n`-terminated.
pub const IMAGENET_CLASSES: &str = include_str!("imagenet_classes.txt");

/// Number of ImageNet-1k classes.
pub const NUM_IMAGENET_CLASSES: usize = 1000;

/// The class names, indexed by model output position.
pub fn imagenet_classes() -> Vec<&'static str> {
    IMAGENET_CLASSES.lines().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousand_distinct_names_in_torchvision_order() {
        let c = imagenet_classes();
        assert_eq!(c.len(), NUM_IMAGENET_CLASSES);
        assert_eq!(c[0], "tench");
        assert_eq!(c[1], "goldfish");
        assert_eq!(c[207], "golden retriever");
        assert_eq!(c[281], "tabby");
        assert_eq!(c[999], "toilet tissue");
        assert!(c.iter().all(|n| !n.is_empty() && n.trim() == *n));
        let mut sorted = c.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), NUM_IMAGENET_CLASSES, "names are unique");
    }
}
