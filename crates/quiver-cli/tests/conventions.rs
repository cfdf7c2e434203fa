//! The logging conventions real data use, through the `quiver` binary on CSV files, for every
//! critic: `a_next` = -1 (or an empty cell) on rows with `done = 1` — there is no next action —
//! and a `policy` table written out as a full π matrix, with `prob = 0` on the actions π never
//! takes. Each gives the same answer as the cleaned table; a method that does not use `a_next`
//! never looks at it.

use quiver_host::{Table, Values};
use quiver_testing as testing;
use quiver_testing::mdp::FiniteMdp;
use serde_json::Value;
use std::path::Path;
use std::process::Command;

fn write_csv(path: &Path, t: &Table, cell: impl Fn(&str, usize, String) -> String) {
    let mut out = t.columns.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(",") + "\n";
    for i in 0..t.nrows {
        let row: Vec<String> = t
            .columns
            .iter()
            .map(|(name, v)| {
                let shown = match v {
                    Values::F64(x) => format!("{:?}", x[i]),
                    Values::I64(x) => x[i].to_string(),
                    Values::Bool(x) => u8::from(x[i]).to_string(),
                    Values::Bytes { .. } => unreachable!("the samplers write no bytes columns"),
                };
                cell(name, i, shown)
            })
            .collect();
        out += &(row.join(",") + "\n");
    }
    std::fs::write(path, out).unwrap();
}

fn run(method: &str, inputs: &[(&str, &Path)], sets: &[&str]) -> Value {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_quiver"));
    cmd.args(["run", method, "--json", "--plugins"]).arg(testing::plugin_dir()).env_remove("QUIVER_PLUGIN_PATH");
    for (role, path) in inputs {
        cmd.arg("--input").arg(format!("{role}={}", path.display()));
    }
    for s in sets {
        cmd.args(["--set", s]);
    }
    let o = cmd.output().unwrap();
    assert!(o.status.success(), "{method} {sets:?}: {}", String::from_utf8_lossy(&o.stderr));
    let mut v: Value = serde_json::from_slice(&o.stdout).unwrap();
    v.as_object_mut().unwrap().remove("notice");
    v
}

#[test]
fn terminal_a_next_and_zero_probability_rows_change_nothing() {
    let dir = std::env::temp_dir().join(format!("quiver-conventions-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (s, a) = (4, 3);
    let mdp = FiniteMdp::random(61, s, a, 0.9);
    let beta = mdp.random_policy(1, |_, _| true);
    // π never takes action 2, nor action 1 in state 0
    let pi = mdp.random_policy(2, |st, act| act != 2 && !(st == 0 && act == 1));
    let log = mdp.sample(3, &beta, Some(&pi), 150, 20);
    let done: Vec<bool> = match &log.columns.iter().find(|(n, _)| n == "done").unwrap().1 {
        Values::Bool(d) => d.clone(),
        _ => unreachable!(),
    };
    assert!(done.iter().any(|&x| x), "the sample has terminal rows");
    let clean = dir.join("clean.csv");
    let minus_one = dir.join("minus_one.csv");
    let empty = dir.join("empty.csv");
    write_csv(&clean, &log, |_, _, v| v);
    write_csv(&minus_one, &log, |c, i, v| if c == "a_next" && done[i] { "-1".into() } else { v });
    write_csv(&empty, &log, |c, i, v| if c == "a_next" && done[i] { String::new() } else { v });
    let policy = dir.join("policy.csv");
    write_csv(&policy, &mdp.policy_table(&pi), |_, _, v| v);
    let mut full = String::from("s,a,prob\n");
    for st in 0..s {
        for act in 0..a {
            full += &format!("{st},{act},{:?}\n", pi[st * a + act]);
        }
    }
    let full_policy = dir.join("full_policy.csv");
    std::fs::write(&full_policy, full).unwrap();
    assert!(std::fs::read_to_string(&full_policy).unwrap().contains(",0.0\n"), "the matrix has zeros");

    let cases: &[(&str, &[&str])] = &[
        ("critic-lstd", &["target=lstdq"]),
        ("critic-lstd", &["target=fqe"]),
        ("critic-lstd", &["target=sarsa"]),
        ("critic-expectile", &[]),
        ("critic-cql", &[]),
        ("critic-quantile", &["n_quantiles=8"]),
        ("critic-chunked", &[]),
        ("ope", &["ci=t"]),
    ];
    for (method, sets) in cases {
        let info = Command::new(env!("CARGO_BIN_EXE_quiver"))
            .args(["info", method, "--json", "--plugins"])
            .arg(testing::plugin_dir())
            .output()
            .unwrap();
        let info: Value = serde_json::from_slice(&info.stdout).unwrap();
        let takes_policy = info["tables"].as_array().unwrap().iter().any(|t| t["role"] == "policy");
        let sarsa = sets.contains(&"target=sarsa");
        let with = |transitions: &Path, pol: &Path| {
            let mut inputs = vec![("transitions", transitions)];
            if takes_policy && !sarsa {
                inputs.push(("policy", pol));
            }
            run(method, &inputs, sets)
        };
        let want = with(&clean, &policy);
        for (what, t, p) in [
            ("a_next = -1 on done rows", &minus_one, &policy),
            ("a_next empty on done rows", &empty, &policy),
            ("a full policy matrix with zeros", &clean, &full_policy),
        ] {
            let got = with(t, p);
            assert_eq!(got, want, "{method} {sets:?}: {what} changed the answer");
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}
