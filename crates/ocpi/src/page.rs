//! Paging of a sender's list (`GET /locations` and the like): the query checked, a page cut,
//! and the headers that say where the next one is.

use chrono::{DateTime, Utc};

use crate::envelope::StatusCode;

/// The most objects one page carries; a larger `limit` is lowered to it (X-Limit says so).
pub const MAX_LIMIT: usize = 100;

/// A checked paging query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Query {
    pub date_from: Option<DateTime<Utc>>,
    pub date_to: Option<DateTime<Utc>>,
    pub offset: usize,
    pub limit: usize,
}

/// Checks the raw query parameters; the error carries status 2001 and says which is wrong.
pub fn query(
    date_from: Option<&str>,
    date_to: Option<&str>,
    offset: Option<&str>,
    limit: Option<&str>,
) -> Result<Query, (StatusCode, String)> {
    let bad = |m: String| (StatusCode::INVALID_PARAMETERS, m);
    let time =
        |name: &str, v: Option<&str>| -> Result<Option<DateTime<Utc>>, (StatusCode, String)> {
            v.map(|s| {
                DateTime::parse_from_rfc3339(s)
                    .map(|t| t.with_timezone(&Utc))
                    .or_else(|_| {
                        // The standard's DateTime may leave the zone out: UTC.
                        chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
                            .map(|t| t.and_utc())
                    })
                    .map_err(|_| {
                        bad(format!(
                            "{name} must be a date and time (2027-02-01T08:00:00Z)"
                        ))
                    })
            })
            .transpose()
        };
    let number = |name: &str, v: Option<&str>| -> Result<Option<usize>, (StatusCode, String)> {
        v.map(|s| {
            s.parse::<usize>()
                .map_err(|_| bad(format!("{name} must be a whole number of 0 or more")))
        })
        .transpose()
    };
    let q = Query {
        date_from: time("date_from", date_from)?,
        date_to: time("date_to", date_to)?,
        offset: number("offset", offset)?.unwrap_or(0),
        limit: number("limit", limit)?.unwrap_or(MAX_LIMIT).min(MAX_LIMIT),
    };
    if let (Some(from), Some(to)) = (q.date_from, q.date_to)
        && from >= to
    {
        return Err(bad("date_from must be before date_to".to_owned()));
    }
    Ok(q)
}

impl Query {
    /// Whether an object last updated at `t` is in the window (`date_from` inclusive,
    /// `date_to` exclusive).
    pub fn within(&self, t: DateTime<Utc>) -> bool {
        self.date_from.is_none_or(|f| t >= f) && self.date_to.is_none_or(|to| t < to)
    }
}

/// A page of `total` objects and its headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The range of the filtered list this page holds.
    pub range: std::ops::Range<usize>,
    pub total: usize,
    pub limit: usize,
    /// The `Link` header's URL of the next page, when there is one.
    pub next: Option<String>,
}

/// Cuts the page `q` asks for out of `total` objects, the next page's link built on `base`
/// (the list's URL without query) with the same window.
pub fn page(q: &Query, total: usize, base: &str) -> Page {
    let start = q.offset.min(total);
    let end = (start + q.limit).min(total);
    let next = (end < total).then(|| {
        let mut url = format!("{base}?offset={end}&limit={}", q.limit);
        for (name, t) in [("date_from", q.date_from), ("date_to", q.date_to)] {
            if let Some(t) = t {
                url.push_str(&format!("&{name}={}", crate::envelope::datetime(t)));
            }
        }
        url
    });
    Page {
        range: start..end,
        total,
        limit: q.limit,
        next,
    }
}

impl Page {
    /// The headers of the page: `X-Total-Count`, `X-Limit`, and `Link` to the next.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        let mut h = vec![
            ("X-Total-Count", self.total.to_string()),
            ("X-Limit", self.limit.to_string()),
        ];
        if let Some(next) = &self.next {
            h.push(("Link", format!("<{next}>; rel=\"next\"")));
        }
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_checked() {
        let q = query(None, None, None, None).unwrap();
        assert_eq!((q.offset, q.limit), (0, MAX_LIMIT));
        let q = query(
            Some("2027-02-01T08:00:00Z"),
            Some("2027-02-02T00:00:00"),
            Some("10"),
            Some("500"),
        )
        .unwrap();
        assert_eq!(
            (q.offset, q.limit),
            (10, MAX_LIMIT),
            "a limit above the most is lowered"
        );
        assert!(q.date_from.is_some() && q.date_to.is_some());
        for (f, t, o, l) in [
            (Some("yesterday"), None, None, None),
            (None, None, Some("-1"), None),
            (None, None, None, Some("ten")),
            (
                Some("2027-02-02T00:00:00Z"),
                Some("2027-02-01T00:00:00Z"),
                None,
                None,
            ),
        ] {
            let e = query(f, t, o, l).unwrap_err();
            assert_eq!(e.0, StatusCode::INVALID_PARAMETERS, "{e:?}");
        }
    }

    #[test]
    fn pages_link_to_the_next_and_stop_at_the_end() {
        let q = query(Some("2027-02-01T08:00:00Z"), None, Some("0"), Some("50")).unwrap();
        let p = page(&q, 160, "https://cpo.example/ocpi/2.2.1/locations");
        assert_eq!(p.range, 0..50);
        assert_eq!(
            p.next.as_deref(),
            Some(
                "https://cpo.example/ocpi/2.2.1/locations?offset=50&limit=50&date_from=2027-02-01T08:00:00Z"
            )
        );
        let h = p.headers();
        assert!(h.contains(&("X-Total-Count", "160".to_owned())));
        assert!(
            h.iter()
                .any(|(k, v)| *k == "Link" && v.ends_with("; rel=\"next\""))
        );
        let last = page(&Query { offset: 150, ..q }, 160, "u");
        assert_eq!((last.range, last.next), (150..160, None));
        let past = page(&Query { offset: 999, ..q }, 160, "u");
        assert_eq!(
            (past.range, past.next),
            (160..160, None),
            "past the end: empty, no link"
        );
    }
}
