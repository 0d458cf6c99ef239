//! Data-driven tests of the forecasting crate: session logs in, canonical CSV, series,
//! forecasts and evaluation reports out. One test binary (link time), modules by topic.

use chargeops_forecast::calendar::Calendar;
use chargeops_forecast::eval::{EvalOptions, evaluate};
use chargeops_forecast::import::{ExportFormat, import};
use chargeops_forecast::session::{DropReason, read_canonical, write_canonical};
use chargeops_forecast::{ForecastError, SiteHistory, Span, Zone, by_site, forecast};
use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};

fn data(name: &str) -> String {
    let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"))
}

fn file(name: &str) -> (String, String) {
    (name.to_owned(), data(name))
}

/// Minutes since the epoch of a UTC date-time `YYYY-MM-DD HH:MM`.
fn min(s: &str) -> i64 {
    let t = chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").expect("time");
    Utc.from_utc_datetime(&t).timestamp() / 60
}

fn utc(s: &str) -> DateTime<Utc> {
    Utc.timestamp_opt(min(s) * 60, 0).single().expect("instant")
}

/// A canonical CSV with `days` days of one daily session at `site`, ending on 2018-09-06.
fn daily_log(site: &str, days: i64, hour: u32, len_min: i64) -> String {
    let end_day = NaiveDate::from_ymd_opt(2018, 9, 6).expect("date");
    let mut out = String::new();
    for d in 0..days {
        let day = end_day - Duration::days(d);
        let start = Zone::LONDON.from_local(day.and_hms_opt(hour, 0, 0).expect("time"));
        let end = start + Duration::minutes(len_min);
        out.push_str(&format!(
            "\"{site}\",CP1,1,{},{},10\n",
            start.to_rfc3339(),
            end.to_rfc3339()
        ));
    }
    out
}

mod import_exports {
    use super::*;

    #[test]
    fn dundee_excerpts_with_the_year_day_month_trap_and_dd_mm_yyyy() {
        let files = [file("dundee-2017.csv"), file("dundee-2018-ddmm.csv")];
        let (sessions, report) =
            import(ExportFormat::Dundee, &files, Zone::LONDON).expect("import");
        assert_eq!(write_canonical(&sessions), data("dundee.expected.csv"));
        assert_eq!(report.rows_read, 16);
        assert_eq!(report.dropped[&DropReason::MissingSite], 2);
        assert_eq!(report.dropped[&DropReason::MissingEnd], 4);
        assert_eq!(report.dropped[&DropReason::TestSite], 2);
        assert!(
            report.notes.iter().any(|n| n.contains("year-day-month")),
            "{:?}",
            report.notes
        );
        assert!(report.summary().contains("8 sessions kept, 8 dropped"));
    }

    #[test]
    fn perth_excerpt_on_the_day_summer_time_starts() {
        let (sessions, report) = import(
            ExportFormat::PerthKinross,
            &[file("perth-2019.csv")],
            Zone::LONDON,
        )
        .expect("import");
        assert_eq!(write_canonical(&sessions), data("perth.expected.csv"));
        assert_eq!(report.dropped_total(), 2);
    }

    #[test]
    fn canonical_round_trip() {
        let (sessions, _) = read_canonical(&data("dundee.expected.csv"), "x").expect("read");
        assert_eq!(sessions.len(), 8);
        assert_eq!(write_canonical(&sessions), data("dundee.expected.csv"));
        let (again, report) = import(
            ExportFormat::Canonical,
            &[file("dundee.expected.csv")],
            Zone::LONDON,
        )
        .expect("import canonical");
        assert_eq!(again, sessions);
        assert_eq!(report.dropped_total(), 0);
    }

    #[test]
    fn renamed_sites_are_merged_into_the_new_name() {
        let text = "_id,CP ID,Connector,Start Date,Start Time,End Date,End Time,Total kWh,Site,Model\n\
            2,50245,1,2017-06-15T00:00:00,10:00,2017-06-15T00:00:00,11:00,5,\"Broxden Park & Ride, Perth\",M\n\
            1,50245,1,2017-01-15T00:00:00,10:00,2017-01-15T00:00:00,11:00,5,Broxden Park & Ride,M\n\
            0,99999,1,2017-01-14T00:00:00,10:00,2017-01-14T00:00:00,11:00,5,Broxden,M\n";
        let (sessions, report) = import(
            ExportFormat::PerthKinross,
            &[("p.csv".into(), text.into())],
            Zone::LONDON,
        )
        .expect("import");
        let sites: Vec<&str> = sessions.iter().map(|s| s.site.as_str()).collect();
        // `Broxden` shares no charge point with the others, so it stays.
        assert_eq!(
            sites,
            [
                "Broxden",
                "Broxden Park & Ride, Perth",
                "Broxden Park & Ride, Perth"
            ]
        );
        assert!(report.notes.iter().any(|n| n.contains("renamed")));
    }

    #[test]
    fn bad_rows_are_counted_by_reason() {
        let text = "_id,CP ID,Connector,Start Date,Start Time,End Date,End Time,Total kWh,Site,Model\n\
            1,5,1,2017-06-15T00:00:00,10:00,2017-06-15T00:00:00,09:00,5,A,M\n\
            2,5,1,June 15th,10:00,2017-06-15T00:00:00,11:00,5,A,M\n\
            3,5,1,2017-06-15T00:00:00,10h00,2017-06-15T00:00:00,11:00,5,A,M\n\
            4,5,1,2017-06-15T00:00:00,,2017-06-15T00:00:00,11:00,5,A,M\n\
            5,5,1,2017-06-15T00:00:00,10:00\n\
            6,5,,2017-06-15T00:00:00,10:00,2017-06-15T00:00:00,11:00,5,A,M\n\
            7,5,1,2017-06-15T00:00:00,10:00,2017-06-15T00:00:00,11:00,5,A,M\n\
            8,5,1,2017-06-15T00:00:00,10:00,2017-06-15T00:00:00,11:00,5,A,M\n";
        let (sessions, report) = import(
            ExportFormat::PerthKinross,
            &[("p.csv".into(), text.into())],
            Zone::LONDON,
        )
        .expect("import");
        assert_eq!(sessions.len(), 1);
        let d = &report.dropped;
        assert_eq!(d[&DropReason::EndBeforeStart], 1);
        assert_eq!(d[&DropReason::BadDateFormat], 2);
        assert_eq!(d[&DropReason::MissingStart], 1);
        assert_eq!(d[&DropReason::ShortRow], 1);
        assert_eq!(d[&DropReason::MissingConnector], 1);
        assert_eq!(d[&DropReason::Duplicate], 1);
        assert_eq!(
            report.first_dropped_at[&DropReason::EndBeforeStart],
            "p.csv:2"
        );
    }

    /// An export as a spreadsheet saves it: a byte-order mark, CRLF line ends, a site with a
    /// comma in quotes, a quoted field holding a line break, and a bad row whose line is named.
    #[test]
    fn bom_crlf_and_quoted_commas_in_an_export() {
        let text = "\u{feff}_id,CP ID,Connector,Start Date,Start Time,End Date,End Time,Total kWh,Site,Model\r\n\
            2,51516,2,31/08/2019,23:26,31/08/2019,23:54,12.78,\"Kinross Park and Ride, Kinross\",\"APT \"\"Triple\"\"\r\nRapid\"\r\n\
            1,51249,1,31/08/2019,21:12,31/08/2019,21:32,5.7,\"Atholl Street Car Park, Dunkeld\",Siemens\r\n\
            0,51249,1,31/08/2019,21:12,31/08/2019,20:32,5.7,\"Atholl Street Car Park, Dunkeld\",Siemens\r\n";
        let (sessions, report) = import(
            ExportFormat::PerthKinross,
            &[("p.csv".into(), text.into())],
            Zone::LONDON,
        )
        .expect("import");
        assert_eq!(
            write_canonical(&sessions),
            "site,charger,connector,start,end,kwh\n\
             \"Atholl Street Car Park, Dunkeld\",51249,1,2019-08-31T21:12:00+01:00,2019-08-31T21:32:00+01:00,5.7\n\
             \"Kinross Park and Ride, Kinross\",51516,2,2019-08-31T23:26:00+01:00,2019-08-31T23:54:00+01:00,12.78\n"
        );
        assert_eq!(report.rows_read, 3);
        // The quoted line break makes the last row start on line 5.
        assert_eq!(
            report.first_dropped_at[&DropReason::EndBeforeStart],
            "p.csv:5"
        );
    }

    #[test]
    fn canonical_with_bom_crlf_and_quoted_commas() {
        let text = "\u{feff}site,charger,connector,start,end,kwh\r\n\
            \"Dock Street, Dundee\",CP1,1,2018-01-01T10:00:00+00:00,2018-01-01T11:00:00+00:00,3.5\r\n\
            \"Say \"\"Hi\"\", Dundee\",CP2,1,2018-01-01T10:00:00+00:00,2018-01-01T11:00:00+00:00,\r\n";
        let (sessions, report) = read_canonical(text, "c.csv").expect("read");
        assert_eq!(report.dropped_total(), 0);
        let sites: Vec<&str> = sessions.iter().map(|s| s.site.as_str()).collect();
        assert_eq!(sites, ["Dock Street, Dundee", "Say \"Hi\", Dundee"]);
        assert_eq!(sessions[0].kwh, Some(3.5));
        let written = write_canonical(&sessions);
        assert!(
            written.contains("\n\"Say \"\"Hi\"\", Dundee\",CP2,"),
            "{written}"
        );
        let (again, _) = read_canonical(&written, "again.csv").expect("read own output");
        assert_eq!(again, sessions);
    }

    #[test]
    fn an_export_from_another_zone_is_read_in_its_own_time() {
        // New York falls back on 2024-11-03: 01:30 happens twice (EDT first), 02:30 once (EST).
        let text = "_id,CP ID,Connector,Start Date,Start Time,End Date,End Time,Total kWh,Site,Model\n\
            2,7,1,03/11/2024,02:30,03/11/2024,03:00,4,\"Times Square, NY\",M\n\
            1,7,1,03/11/2024,01:30,03/11/2024,02:10,4,\"Times Square, NY\",M\n";
        let zone = Zone::parse("America/New_York").expect("zone");
        let (sessions, _) = import(
            ExportFormat::PerthKinross,
            &[("ny.csv".into(), text.into())],
            zone,
        )
        .expect("import");
        let spans: Vec<(String, String)> = sessions
            .iter()
            .map(|s| (s.start.to_rfc3339(), s.end.to_rfc3339()))
            .collect();
        assert_eq!(
            spans,
            [
                (
                    "2024-11-03T01:30:00-04:00".into(),
                    "2024-11-03T02:10:00-05:00".into()
                ),
                (
                    "2024-11-03T02:30:00-05:00".into(),
                    "2024-11-03T03:00:00-05:00".into()
                ),
            ]
        );
        assert_eq!((sessions[0].end - sessions[0].start).num_minutes(), 100);
    }

    #[test]
    fn not_an_export_is_a_clear_error() {
        let err = import(
            ExportFormat::Dundee,
            &[("x.csv".into(), "a,b\n1,2\n".into())],
            Zone::LONDON,
        )
        .expect_err("no columns");
        assert!(err.to_string().contains("CP ID"), "{err}");
        let err = import(
            ExportFormat::Dundee,
            &[("x.csv".into(), String::new())],
            Zone::LONDON,
        )
        .expect_err("empty");
        assert!(err.to_string().contains("empty"), "{err}");
    }

    #[test]
    fn canonical_bad_input() {
        let text = "site,charger,connector,start,end,kwh\n\
            A,1,1,2018-01-01T10:00:00+00:00,2018-01-01T09:00:00+00:00,\n\
            A,1,1,2018-01-01 10:00,2018-01-01T11:00:00+00:00,\n\
            A,1,1,,2018-01-01T11:00:00+00:00,\n\
            A,1,1,2018-01-01T10:00:00+00:00,,\n\
            A,1,1,2018-01-01T10:00:00+00:00,2018-01-01T11:00:00+00:00,3.5\n\
            A,1,1,2018-01-01T10:30:00+00:00,2018-01-01T11:30:00+00:00,\n";
        let (sessions, report) = read_canonical(text, "c.csv").expect("read");
        assert_eq!(sessions.len(), 2);
        assert_eq!(sessions[0].kwh, Some(3.5));
        assert_eq!(sessions[1].kwh, None);
        assert_eq!(report.dropped[&DropReason::EndBeforeStart], 1);
        assert_eq!(report.dropped[&DropReason::BadDateFormat], 1);
        assert_eq!(report.dropped[&DropReason::MissingStart], 1);
        assert_eq!(report.dropped[&DropReason::MissingEnd], 1);
        assert!(
            report.notes.iter().any(|n| n.contains("overlap")),
            "{:?}",
            report.notes
        );
        let err = read_canonical("site,start\n", "c.csv").expect_err("bad header");
        assert!(err.to_string().contains("charger"), "{err}");
    }
}

mod series {
    use super::*;

    /// A hand-written log in, the hourly series out.
    #[test]
    fn occupancy_and_arrivals_of_a_small_log() {
        let text = "site,charger,connector,start,end,kwh\n\
            S,A,1,2018-01-01T08:30:00+00:00,2018-01-01T10:00:00+00:00,\n\
            S,A,2,2018-01-01T09:00:00+00:00,2018-01-01T09:15:00+00:00,\n\
            S,A,2,2018-01-01T09:10:00+00:00,2018-01-01T09:45:00+00:00,\n\
            S,B,1,2018-01-01T07:00:00+00:00,2018-01-01T11:00:00+00:00,\n";
        let (sessions, _) = read_canonical(text, "s.csv").expect("read");
        let sites = by_site(&sessions);
        assert_eq!(sites.len(), 1);
        assert_eq!(sites[0].connectors, 3);
        let h8 = min("2018-01-01 08:00") / 60;
        let occ = sites[0].occupancy(h8 - 1, h8 + 4, i64::MAX);
        let got: Vec<String> = occ.iter().map(|v| format!("{v:.4}")).collect();
        // 07: B only (60/180); 08: B + A1 half (90/180); 09: B + A1 + A2 merged 09:00-09:45
        // (165/180); 10: B (60/180); 11: nothing.
        assert_eq!(got, ["0.3333", "0.5000", "0.9167", "0.3333", "0.0000"]);
        let arr = sites[0].arrivals(h8 - 1, h8 + 4, i64::MAX);
        assert_eq!(arr, [1.0, 1.0, 2.0, 0.0, 0.0]);
        // Seen from 09:30: the session 08:30-10:00 is known only up to 09:30.
        let seen = sites[0].occupancy(h8 - 1, h8 + 4, min("2018-01-01 09:30"));
        let got: Vec<String> = seen.iter().map(|v| format!("{v:.4}")).collect();
        assert_eq!(got, ["0.3333", "0.5000", "0.5000", "0.0000", "0.0000"]);
    }
}

mod forecaster {
    use super::*;

    fn daily_site(days: i64, start_hour: i64, len: i64) -> SiteHistory {
        let day0 = min("2018-01-01 00:00");
        let spans = (0..days)
            .map(|d| Span {
                connector: 0,
                start: day0 + d * 1440 + start_hour * 60,
                end: day0 + d * 1440 + start_hour * 60 + len,
            })
            .collect();
        SiteHistory::new("S", 1, spans)
    }

    #[test]
    fn a_regular_site_is_forecast_closely() {
        let site = daily_site(70, 18, 120);
        let fc = forecast(
            &site,
            utc("2018-03-12 00:00"),
            24,
            &Calendar::empty(Zone::Fixed(0)),
        )
        .expect("forecast");
        for (h, hour) in fc.hours.iter().enumerate() {
            let want = if (18..20).contains(&h) { 1.0 } else { 0.0 };
            assert!(
                (hour.occupancy.p50 - want).abs() < 0.05,
                "hour {h}: {:?}",
                hour.occupancy
            );
            assert!(hour.occupancy.p90 >= hour.occupancy.p50);
        }
        assert_eq!(fc.hours[0].at, utc("2018-03-12 00:00"));
        assert_eq!(fc.hours.len(), 24);
        // Arrivals: one at 18:00.
        assert!((fc.hours[18].arrivals.p50 - 1.0).abs() < 0.05);
        assert!(fc.hours[18].queue.probability_of_queue > 0.9);
        assert!(fc.hours[3].queue.probability_of_queue < 0.05);
    }

    /// A session running at the origin is known only up to the origin: its true end must not
    /// change the forecast.
    #[test]
    fn a_session_running_at_the_origin_is_truncated() {
        let base = daily_site(70, 18, 60);
        let origin = utc("2018-03-12 00:00");
        let mut spans_a = base.spans().to_vec();
        let mut spans_b = base.spans().to_vec();
        let start = min("2018-03-11 22:00");
        spans_a.push(Span {
            connector: 0,
            start,
            end: min("2018-03-12 01:00"),
        });
        spans_b.push(Span {
            connector: 0,
            start,
            end: min("2018-03-14 09:00"),
        });
        // And a session starting at the origin is not seen at all.
        spans_b.push(Span {
            connector: 0,
            start: min("2018-03-12 00:00"),
            end: min("2018-03-12 05:00"),
        });
        let cal = Calendar::empty(Zone::Fixed(0));
        let a = forecast(&SiteHistory::new("S", 1, spans_a), origin, 24, &cal).expect("a");
        let b = forecast(&SiteHistory::new("S", 1, spans_b), origin, 24, &cal).expect("b");
        assert_eq!(a.hours, b.hours);
        assert_eq!(a.fit.running_at_origin, 1);
        // The running session makes the first hour busier than a quiet night.
        assert!(a.hours[0].occupancy.p50 > 0.1, "{:?}", a.hours[0]);
    }

    #[test]
    fn horizons_out_of_range_are_errors() {
        let site = daily_site(10, 8, 60);
        let cal = Calendar::scotland();
        let origin = utc("2018-01-11 00:00");
        for h in [0, 10_000] {
            let err = forecast(&site, origin, h, &cal).expect_err("bad horizon");
            assert!(matches!(err, ForecastError::InvalidHorizon(_)));
            assert!(err.to_string().contains("between 1 and 8784"), "{err}");
        }
        let year = forecast(&site, origin, 8784, &cal).expect("a year ahead");
        assert_eq!(year.hours.len(), 8784);
        assert!(year.hours.iter().all(|h| h.occupancy.p50.is_finite()));
    }

    #[test]
    fn no_sessions_and_all_zero_history_forecast_zero() {
        let cal = Calendar::scotland();
        let origin = utc("2018-01-11 00:00");
        let empty = SiteHistory::new("Nobody", 4, vec![]);
        let fc = forecast(&empty, origin, 48, &cal).expect("empty history");
        assert!(
            fc.hours
                .iter()
                .all(|h| h.occupancy.p50 == 0.0 && h.occupancy.p90 == 0.0)
        );
        assert!(
            fc.hours
                .iter()
                .all(|h| h.arrivals.p50 == 0.0 && h.queue.expected_queue == 0.0)
        );
        // History that ended long ago: an all-zero recent series.
        let old = daily_site(20, 8, 60);
        let fc = forecast(&old, utc("2018-06-01 00:00"), 24, &cal).expect("stale history");
        assert!(
            fc.hours
                .iter()
                .all(|h| h.occupancy.p50 == 0.0 && h.occupancy.p90 == 0.0)
        );
        let no_connectors = SiteHistory::new("X", 0, vec![]);
        assert!(matches!(
            forecast(&no_connectors, origin, 24, &cal),
            Err(ForecastError::NoConnectors)
        ));
    }

    /// Holidays as known regressors: a site busy on working days and quiet on Sundays and bank
    /// holidays is forecast quiet on a Monday bank holiday only with the calendar.
    #[test]
    fn a_bank_holiday_is_forecast_like_a_holiday() {
        let cal = Calendar::scotland();
        let day0 = NaiveDate::from_ymd_opt(2018, 5, 1).expect("date");
        let mut spans = Vec::new();
        for d in 0..100 {
            let day = day0 + Duration::days(d);
            let quiet =
                cal.class(day) == 7 || chrono::Datelike::weekday(&day) == chrono::Weekday::Sun;
            if quiet {
                continue;
            }
            let start = Zone::LONDON
                .from_local(day.and_hms_opt(9, 0, 0).expect("t"))
                .timestamp()
                / 60;
            spans.push(Span {
                connector: 0,
                start,
                end: start + 8 * 60,
            });
        }
        let site = SiteHistory::new("Office", 1, spans);
        // Summer bank holiday, Monday 6 August 2018.
        let origin = Zone::LONDON.midnight(NaiveDate::from_ymd_opt(2018, 8, 6).expect("date"));
        let with = forecast(&site, origin, 24, &cal).expect("with");
        let without = forecast(&site, origin, 24, &Calendar::empty(Zone::LONDON)).expect("without");
        let busy = |f: &chargeops_forecast::SiteForecast| {
            f.hours[9..17].iter().map(|h| h.occupancy.p50).sum::<f64>() / 8.0
        };
        assert!(busy(&with) < 0.2, "with calendar: {}", busy(&with));
        assert!(busy(&without) > 0.6, "without calendar: {}", busy(&without));
    }

    #[test]
    fn a_holiday_block_is_forecast_from_the_same_days_last_year() {
        // A site busy 08:00-20:00 on the days of the 2025 Spring Festival block (28 Jan-4 Feb)
        // and the day before it, quiet (10:00-11:00) on every other day, New Year included.
        let cal = Calendar::china();
        let day0 = NaiveDate::from_ymd_opt(2025, 1, 1).expect("date");
        let rush = |d: NaiveDate| {
            (NaiveDate::from_ymd_opt(2025, 1, 27).expect("date")
                ..=NaiveDate::from_ymd_opt(2025, 2, 4).expect("date"))
                .contains(&d)
        };
        let mut spans = Vec::new();
        for d in 0..410 {
            let day = day0 + Duration::days(d);
            let (from, hours) = if rush(day) { (8, 12) } else { (10, 1) };
            let start = Zone::CHINA
                .from_local(day.and_hms_opt(from, 0, 0).expect("t"))
                .timestamp()
                / 60;
            spans.push(Span {
                connector: 0,
                start,
                end: start + hours * 60,
            });
        }
        let site = SiteHistory::new("Toll plaza", 1, spans);
        // The first day of the 2026 block (15-23 Feb): the block's ninth-last day, like
        // 27 Jan 2025 (the blocks are aligned on their last day).
        let origin = Zone::CHINA.midnight(NaiveDate::from_ymd_opt(2026, 2, 15).expect("date"));
        let busy = |f: &chargeops_forecast::SiteForecast| {
            f.hours[12..20].iter().map(|h| h.occupancy.p50).sum::<f64>() / 8.0
        };
        let with = forecast(&site, origin, 24, &cal).expect("with");
        let without = forecast(&site, origin, 24, &Calendar::empty(Zone::CHINA)).expect("without");
        assert!(busy(&with) > 0.35, "with calendar: {}", busy(&with));
        assert!(
            busy(&without) < 0.05,
            "without calendar: {}",
            busy(&without)
        );
        // With the history cut to the last 12 weeks there is no earlier block on record: the
        // holiday falls back to the earlier holidays (New Year, quiet) and Sundays.
        let recent = SiteHistory::new(
            "Toll plaza",
            1,
            site.spans()
                .iter()
                .filter(|s| s.start >= origin.timestamp() / 60 - 84 * 1440)
                .copied()
                .collect(),
        );
        let short = forecast(&recent, origin, 24, &cal).expect("short");
        assert!(busy(&short) < 0.05, "12 weeks of history: {}", busy(&short));
    }
}

mod evaluation {
    use super::*;

    fn header() -> String {
        "site,charger,connector,start,end,kwh\n".into()
    }

    #[test]
    fn sites_with_short_history_are_left_out_and_counted() {
        // 140 days ending 2018-09-06 at one site, 40 at another: the first origin is 2018-08-10,
        // so the second has < 8 weeks before it.
        let text = header() + &daily_log("Long", 140, 18, 90) + &daily_log("Short", 40, 9, 60);
        let (sessions, _) = read_canonical(&text, "t.csv").expect("read");
        let (report, dump) =
            evaluate(&sessions, &EvalOptions::new(Calendar::scotland())).expect("eval");
        assert_eq!(report.sites, 1);
        assert_eq!(report.excluded_short_history, ["Short"]);
        assert_eq!(report.origins.len(), 28);
        assert_eq!(report.origins[0].to_rfc3339(), "2018-08-09T23:00:00+00:00");
        assert_eq!(report.origins[27].to_rfc3339(), "2018-09-05T23:00:00+00:00");
        let json = report.to_json();
        assert_eq!(json["sites"], 1);
        assert_eq!(json["origins"], 28);
        assert_eq!(json["excluded_sites"]["short_history"], 1);
        let h1 = &json["horizons"][0];
        assert_eq!(h1["h"], 1);
        for key in [
            "model",
            "seasonal_naive_24h",
            "seasonal_naive_168h",
            "last_value",
        ] {
            assert!(
                h1[key]["mae"].is_number() && h1[key]["rmse"].is_number(),
                "{key}"
            );
        }
        assert_eq!(json["horizons"].as_array().map(Vec::len), Some(24));
        // A perfectly regular site: the model is (nearly) exact.
        assert!(report.mean()[0].rmse < 0.02, "{:?}", report.mean()[0]);
        assert_eq!(dump.sites.len(), 1);
        assert_eq!(dump.origins.len(), 28);
        assert!(report.to_table().contains("h=24"));
    }

    #[test]
    fn nothing_to_evaluate_is_a_clear_error() {
        let err = evaluate(&[], &EvalOptions::new(Calendar::scotland())).expect_err("empty");
        assert!(err.to_string().contains("no sessions"), "{err}");
        let (sessions, _) =
            read_canonical(&(header() + &daily_log("New", 10, 9, 60)), "t.csv").expect("read");
        let err = evaluate(&sessions, &EvalOptions::new(Calendar::scotland())).expect_err("short");
        assert!(err.to_string().contains("56 days of history"), "{err}");
    }
}

mod properties {
    use super::*;
    use chargeops_forecast::csv;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn csv_round_trips(rows in prop::collection::vec(prop::collection::vec("[a-z ,\"\n\r]{0,8}", 1..5), 1..6)) {
            let mut text = String::new();
            for r in &rows {
                let fields: Vec<&str> = r.iter().map(String::as_str).collect();
                text.push_str(&csv::line(&fields));
                text.push('\n');
            }
            let parsed = csv::parse(&text).expect("own output parses");
            // Every row comes back, a row of one empty field too (written `""`).
            prop_assert_eq!(parsed.len(), rows.len());
            for (p, w) in parsed.iter().zip(&rows) {
                prop_assert_eq!(&p.fields, w);
            }
        }

        #[test]
        fn csv_never_panics(text in "[a-z,\"\n\r]{0,64}") {
            let _ = csv::parse(&text);
        }

        #[test]
        fn forecasts_are_finite_ordered_and_bounded(
            spans in prop::collection::vec((0u32..3, 0i64..(70 * 1440), 0i64..(3 * 1440)), 0..300),
            origin_day in 0i64..80,
            horizon in 1usize..60,
        ) {
            let day0 = min("2018-01-01 00:00");
            let spans = spans.into_iter().map(|(c, s, len)| Span { connector: c, start: day0 + s, end: day0 + s + len }).collect();
            let site = SiteHistory::new("P", 3, spans);
            let origin = Utc.timestamp_opt((day0 + origin_day * 1440 + 7 * 60) * 60, 0).single().expect("t");
            let fc = forecast(&site, origin, horizon, &Calendar::scotland()).expect("forecast");
            prop_assert_eq!(fc.hours.len(), horizon);
            for h in &fc.hours {
                for q in [h.occupancy, h.arrivals, h.busy_connectors] {
                    prop_assert!(q.p50.is_finite() && q.p90.is_finite());
                    prop_assert!(q.p50 >= 0.0 && q.p90 >= q.p50);
                }
                prop_assert!(h.occupancy.p90 <= 1.0);
                prop_assert!(h.queue.expected_queue.is_finite() && h.queue.probability_of_queue <= 1.0);
            }
        }
    }
}

mod cli_contract {
    use chargeops_forecast::cli::{ForecastCmd, OutputFormat, run};
    use chargeops_forecast::import::ExportFormat;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        cmd: ForecastCmd,
    }

    fn parse(args: &[&str]) -> Result<ForecastCmd, clap::Error> {
        Cli::try_parse_from(std::iter::once("forecast").chain(args.iter().copied())).map(|c| c.cmd)
    }

    #[test]
    fn the_issue_flags_parse() {
        match parse(&["eval", "--sessions", "s.csv", "--format", "json"]).expect("eval") {
            ForecastCmd::Eval(a) => {
                assert_eq!(a.sessions.to_str(), Some("s.csv"));
                assert_eq!(a.format, OutputFormat::Json);
            }
            other => panic!("{other:?}"),
        }
        match parse(&["eval", "--sessions", "s.csv"]).expect("eval") {
            ForecastCmd::Eval(a) => assert_eq!(a.format, OutputFormat::Table),
            other => panic!("{other:?}"),
        }
        for (name, want) in [
            ("dundee", ExportFormat::Dundee),
            ("perth-kinross", ExportFormat::PerthKinross),
            ("canonical", ExportFormat::Canonical),
        ] {
            match parse(&[
                "import", "--format", name, "a.csv", "b.csv", "--out", "o.csv",
            ])
            .expect("import")
            {
                ForecastCmd::Import(a) => {
                    assert_eq!(a.format, want);
                    assert_eq!(a.paths.len(), 2);
                    assert_eq!(a.out.to_str(), Some("o.csv"));
                }
                other => panic!("{other:?}"),
            }
        }
        assert!(parse(&["import", "--format", "excel", "a.csv", "--out", "o.csv"]).is_err());
        assert!(parse(&["import", "--format", "dundee", "--out", "o.csv"]).is_err());
    }

    #[test]
    fn import_writes_the_canonical_file_and_eval_reports_missing_input() {
        let dir =
            std::env::temp_dir().join(format!("chargeops-forecast-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let out = dir.join("perth.csv");
        let input = format!("{}/tests/data/perth-2019.csv", env!("CARGO_MANIFEST_DIR"));
        let out_s = out.to_str().expect("utf-8 path");
        run(parse(&[
            "import",
            "--format",
            "perth-kinross",
            &input,
            "--out",
            out_s,
        ])
        .expect("args"))
        .expect("import");
        assert_eq!(
            std::fs::read_to_string(&out).expect("written"),
            super::data("perth.expected.csv")
        );
        let missing = dir.join("nope.csv");
        let err =
            run(parse(&["eval", "--sessions", missing.to_str().expect("path")]).expect("args"))
                .expect_err("missing file");
        assert!(err.to_string().contains("nope.csv"), "{err}");
        let empty = dir.join("empty.csv");
        std::fs::write(&empty, "site,charger,connector,start,end,kwh\n").expect("write");
        let err = run(parse(&["eval", "--sessions", empty.to_str().expect("path")]).expect("args"))
            .expect_err("no sessions");
        assert!(err.to_string().contains("no sessions"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
