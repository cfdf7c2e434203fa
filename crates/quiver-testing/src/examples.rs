//! The built-in examples of `examples/METHOD/demo.txt` as runs: the inputs and parameters of each
//! block (blocks are separated by `---` lines; `input: ROLE=FILE` lines carry over to later
//! blocks, `set: KEY=VALUE` lines belong to their block; `story:` and `check:` lines are the
//! demo's and are skipped here).

use std::path::{Path, PathBuf};

/// One `quiver run` of an example.
#[derive(Debug, Clone)]
pub struct ExampleRun {
    /// `(role, file)` inputs.
    pub inputs: Vec<(String, PathBuf)>,
    /// `KEY=VALUE` parameters.
    pub sets: Vec<String>,
}

/// The folder of `method`'s example.
pub fn example_dir(method: &str) -> PathBuf {
    crate::workspace_root().join("examples").join(method)
}

/// The runs of `method`'s example in the workspace's `examples/`, or `None` when it has none.
pub fn example_runs(method: &str) -> Option<Vec<ExampleRun>> {
    runs_in(&example_dir(method))
}

/// The runs of the example in `dir` (its `demo.txt`), or `None` when there is none.
pub fn runs_in(dir: &Path) -> Option<Vec<ExampleRun>> {
    let text = std::fs::read_to_string(dir.join("demo.txt")).ok()?;
    Some(parse(dir, &text))
}

fn parse(dir: &Path, text: &str) -> Vec<ExampleRun> {
    let mut inputs = Vec::new();
    let mut runs = Vec::new();
    for block in text.split("\n---\n") {
        let mut sets = Vec::new();
        for line in block.lines() {
            if let Some((role, file)) = line.strip_prefix("input:").and_then(|s| s.trim().split_once('=')) {
                inputs.retain(|(r, _): &(String, PathBuf)| r != role);
                inputs.push((role.to_string(), dir.join(file)));
            } else if let Some(s) = line.strip_prefix("set:") {
                sets.push(s.trim().to_string());
            }
        }
        runs.push(ExampleRun { inputs: inputs.clone(), sets });
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_carry_over_and_sets_do_not() {
        let runs = parse(Path::new("/e"), "story: x\ninput: data=a.csv\nset: k=1\ncheck: y z\n---\nset: k=2\n");
        assert_eq!(runs.len(), 2);
        assert_eq!(runs[1].inputs, vec![("data".to_string(), PathBuf::from("/e/a.csv"))]);
        assert_eq!(runs[0].sets, vec!["k=1"]);
        assert_eq!(runs[1].sets, vec!["k=2"]);
    }
}
