//! What docs/prometheus ships, as the tests read it.

use std::path::PathBuf;

/// docs/prometheus in the source tree.
pub fn docs_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/prometheus"))
}

/// Every query (`expr`) of the Grafana dashboard.
pub fn dashboard_exprs() -> anyhow::Result<Vec<String>> {
    let text = std::fs::read_to_string(docs_dir().join("dashboard.json"))?;
    let dashboard: serde_json::Value = serde_json::from_str(&text)?;
    let mut out = Vec::new();
    exprs(&dashboard, &mut out);
    Ok(out)
}

fn exprs(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                match (k.as_str(), v) {
                    ("expr", serde_json::Value::String(e)) => out.push(e.clone()),
                    _ => exprs(v, out),
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|v| exprs(v, out)),
        _ => {}
    }
}
