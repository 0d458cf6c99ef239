//! One integration test binary for the crate (one link instead of one per file).
//!
//! Most tests are data driven: frames and payloads live in `tests/data/*.json`, and the
//! tests feed them in and compare what comes out.

mod frames;
mod props;
mod schema;
mod typed;

use chargeops_ocpp::Version;
use serde_json::Value;

pub fn data(name: &str) -> Value {
    let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parse {path}: {e}"))
}

pub fn version(tag: &str) -> Version {
    match tag {
        "v16" => Version::V16,
        "v201" => Version::V201,
        other => panic!("unknown version tag {other}"),
    }
}

pub const VERSIONS: [(&str, Version); 2] = [("v16", Version::V16), ("v201", Version::V201)];
