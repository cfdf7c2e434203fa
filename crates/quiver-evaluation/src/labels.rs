//! Text labels (algorithms, tasks, estimators) numbered in the order they first appear: how the
//! evaluators turn a column of names into indices.

use std::collections::HashMap;

/// Labels in order of first appearance, each with its index.
#[derive(Debug, Clone, Default)]
pub struct Labels {
    names: Vec<String>,
    index: HashMap<String, usize>,
}

impl Labels {
    /// No labels.
    pub fn new() -> Labels {
        Labels::default()
    }
    /// The index of `name`, numbered next when new.
    pub fn intern(&mut self, name: &str) -> usize {
        if let Some(&i) = self.index.get(name) {
            return i;
        }
        self.index.insert(name.to_string(), self.names.len());
        self.names.push(name.to_string());
        self.names.len() - 1
    }
    /// The labels, in order of first appearance.
    pub fn names(&self) -> &[String] {
        &self.names
    }
    /// The labels, given up.
    pub fn into_names(self) -> Vec<String> {
        self.names
    }
    /// How many.
    pub fn len(&self) -> usize {
        self.names.len()
    }
    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_keep_their_first_order() {
        let mut l = Labels::new();
        let got: Vec<usize> = ["b", "a", "b", "c", "a"].iter().map(|n| l.intern(n)).collect();
        assert_eq!(got, vec![0, 1, 0, 2, 1]);
        assert_eq!(l.names(), ["b", "a", "c"]);
        assert_eq!(l.len(), 3);
    }
}
