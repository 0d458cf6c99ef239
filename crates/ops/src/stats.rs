//! Case statistics per station and per kind: counts, SLA breaches and mean time to repair
//! (from opening to the charger verified working, over the closed fault cases), and their CSV.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::model::{Case, CaseState, Category};

#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Row {
    /// `station` or `kind`.
    pub dimension: &'static str,
    pub key: String,
    pub cases: u64,
    pub open: u64,
    pub closed: u64,
    pub sla_breached: u64,
    pub reopened: u64,
    /// Mean minutes from opening to closing, over closed fault cases; `None` without any.
    pub mean_time_to_repair_min: Option<f64>,
    #[serde(skip)]
    repair_minutes_sum: f64,
    #[serde(skip)]
    repaired: u64,
}

impl Row {
    fn add(&mut self, c: &Case) {
        self.cases += 1;
        if c.state == CaseState::Closed {
            self.closed += 1;
        } else {
            self.open += 1;
        }
        self.sla_breached += u64::from(c.sla_breached);
        self.reopened += u64::from(c.reopened);
        if let (Some(closed), Category::Fault) = (c.closed_at, c.category) {
            self.repair_minutes_sum += (closed - c.opened_at).num_seconds().max(0) as f64 / 60.0;
            self.repaired += 1;
            self.mean_time_to_repair_min =
                Some((self.repair_minutes_sum / self.repaired as f64 * 10.0).round() / 10.0);
        }
    }
}

/// One row per station and one per kind, each group sorted by key.
pub fn summarize(cases: &[Case]) -> Vec<Row> {
    let mut by_station: BTreeMap<String, Row> = BTreeMap::new();
    let mut by_kind: BTreeMap<String, Row> = BTreeMap::new();
    for c in cases {
        by_station
            .entry(c.station_id.clone())
            .or_insert_with(|| Row {
                dimension: "station",
                key: c.station_id.clone(),
                ..Row::default()
            })
            .add(c);
        by_kind
            .entry(c.kind.as_str().to_owned())
            .or_insert_with(|| Row {
                dimension: "kind",
                key: c.kind.as_str().to_owned(),
                ..Row::default()
            })
            .add(c);
    }
    by_station
        .into_values()
        .chain(by_kind.into_values())
        .collect()
}

fn field(s: &str) -> String {
    // Keep spreadsheet formulas out (OWASP CSV injection) and quote what needs it.
    let s = if s.starts_with(['=', '+', '-', '@']) {
        format!("'{s}")
    } else {
        s.to_owned()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

pub fn to_csv(rows: &[Row]) -> String {
    let mut out = String::from(
        "dimension,key,cases,open,closed,sla_breached,reopened,mean_time_to_repair_min\n",
    );
    for r in rows {
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{}\n",
            r.dimension,
            field(&r.key),
            r.cases,
            r.open,
            r.closed,
            r.sla_breached,
            r.reopened,
            r.mean_time_to_repair_min
                .map(|m| format!("{m:.1}"))
                .unwrap_or_default()
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Duration, Utc};

    use super::*;
    use crate::cases::open_detected;
    use crate::config::OpsConfig;
    use crate::detect::Problem;
    use crate::model::CaseKind;

    fn case(station: &str, kind: CaseKind, repair_min: Option<i64>) -> Case {
        let at = DateTime::parse_from_rfc3339("2027-02-05T08:00:00Z")
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default();
        let (mut c, _) = open_detected(
            &Problem {
                charger_id: "CP1".into(),
                station_id: station.into(),
                kind,
                connector_id: None,
                error_code: None,
                detail: "x".into(),
                at,
            },
            &OpsConfig::default(),
        );
        if let Some(m) = repair_min {
            c.state = CaseState::Closed;
            c.closed_at = Some(at + Duration::minutes(m));
        }
        c
    }

    #[test]
    fn counts_and_mttr() {
        let cases = [
            case("S1", CaseKind::Faulted, Some(60)),
            case("S1", CaseKind::Faulted, Some(120)),
            case("S1", CaseKind::Offline, None),
            case("S2,=x", CaseKind::Offline, Some(30)),
        ];
        let rows = summarize(&cases);
        let s1 = rows.iter().find(|r| r.key == "S1").unwrap();
        assert_eq!((s1.cases, s1.open, s1.closed), (3, 1, 2));
        assert_eq!(s1.mean_time_to_repair_min, Some(90.0));
        let off = rows.iter().find(|r| r.key == "offline").unwrap();
        assert_eq!((off.cases, off.mean_time_to_repair_min), (2, Some(30.0)));
        let csv = to_csv(&rows);
        assert!(csv.starts_with("dimension,key,cases,"));
        assert!(csv.contains("station,S1,3,1,2,0,0,90.0\n"));
        assert!(csv.contains("station,\"S2,=x\",1,0,1,0,0,30.0\n"));
        assert!(csv.contains("kind,faulted,2,0,2,0,0,90.0\n"));
    }
}
