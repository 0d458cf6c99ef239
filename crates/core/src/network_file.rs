//! The network file: a CSV list of stations (highway service-area sides and urban stations), as
//! in `data/network/hunan.csv`, whose columns are documented in `data/network/README.md`.
//!
//! [`parse_network`] does no IO: it takes the file's text and returns the stations, or an error
//! that names the line (and the column) at fault. Besides each field on its own, it checks the
//! file as a whole: ids are unique, every twin exists and names the station back, twins are on
//! the same highway in the opposite direction, and along one highway and direction the `km`
//! values order the stations without ties, so [`NetworkSpec::downstream`] is unambiguous.

use std::collections::HashMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// The bundled Hunan demo network, carried inside the binary.
pub const HUNAN: &str = include_str!("../../../data/network/hunan.csv");

/// The columns of a network file. The header must name each exactly once, in any order.
pub const COLUMNS: [&str; 16] = [
    "id",
    "pair",
    "name_zh",
    "name_pinyin",
    "kind",
    "highway",
    "direction",
    "travel",
    "km",
    "lat",
    "lon",
    "position",
    "chargers",
    "power_kw",
    "twin",
    "source",
];

const MAX_CHARGERS: u32 = 1000;
const MAX_POWER_KW: u32 = 2000;

/// What kind of place a station is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StationKind {
    /// One side of a highway service area (服务区).
    ServiceArea,
    /// One side of a highway parking area (停车区): smaller, fewer amenities.
    ParkingArea,
    /// A station off the highway, in a town.
    Urban,
}

impl StationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            StationKind::ServiceArea => "service_area",
            StationKind::ParkingArea => "parking_area",
            StationKind::Urban => "urban",
        }
    }
}

/// The compass direction of travel on one side of a highway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Direction {
    N,
    S,
    E,
    W,
}

impl Direction {
    pub fn opposite(self) -> Direction {
        match self {
            Direction::N => Direction::S,
            Direction::S => Direction::N,
            Direction::E => Direction::W,
            Direction::W => Direction::E,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Direction::N => "N",
            Direction::S => "S",
            Direction::E => "E",
            Direction::W => "W",
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether `km` grows or shrinks as a car drives on this side of the highway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Travel {
    Ascending,
    Descending,
}

impl Travel {
    pub fn opposite(self) -> Travel {
        match self {
            Travel::Ascending => Travel::Descending,
            Travel::Descending => Travel::Ascending,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Travel::Ascending => "ascending",
            Travel::Descending => "descending",
        }
    }
}

/// How far a position can be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Position {
    /// Placed by hand near the named town; typically within a few km.
    Approximate,
    /// Surveyed or taken from an authoritative source.
    Exact,
}

/// Where a station's name (and highway) comes from; see `data/network/README.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// Name and highway both stated by a public source.
    Verified,
    /// Name stated by a public source; the highway it is put on is inferred.
    VerifiedName,
    /// A name believed real, not confirmed by a source.
    UnverifiedName,
    /// A placeholder named after a town on the route; may not exist.
    InterpolatedName,
    /// A demo urban station at a real place.
    DemoUrban,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Verified => "verified",
            Source::VerifiedName => "verified-name",
            Source::UnverifiedName => "unverified-name",
            Source::InterpolatedName => "interpolated-name",
            Source::DemoUrban => "demo-urban",
        }
    }
}

/// One row of the network file: one station.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StationSpec {
    /// Stable ASCII id, e.g. `g4-changsha-s`.
    pub id: String,
    /// The key shared by the two sides of one service area, e.g. `g4-changsha`.
    pub pair: Option<String>,
    pub name_zh: String,
    pub name_pinyin: String,
    pub kind: StationKind,
    /// National expressway number, e.g. `G4`; `None` for an urban station.
    pub highway: Option<String>,
    /// Direction of travel on this side; set exactly when `highway` is.
    pub direction: Option<Direction>,
    /// Whether `km` grows in the direction of travel; set exactly when `highway` is.
    pub travel: Option<Travel>,
    /// Position along the highway; set exactly when `highway` is.
    pub km: Option<f64>,
    /// WGS84 latitude, degrees.
    pub lat: f64,
    /// WGS84 longitude, degrees.
    pub lon: f64,
    pub position: Position,
    /// Number of DC chargers on this side.
    pub chargers: u32,
    /// Rated power of each charger, kW.
    pub power_kw: u32,
    /// Id of the opposite-direction side of the same service area.
    pub twin: Option<String>,
    pub source: Source,
}

impl StationSpec {
    pub fn is_highway(&self) -> bool {
        self.highway.is_some()
    }
}

/// A parsed network file.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct NetworkSpec {
    /// The stations in file order.
    pub stations: Vec<StationSpec>,
}

impl NetworkSpec {
    /// The station with this id.
    pub fn station(&self, id: &str) -> Option<&StationSpec> {
        self.stations.iter().find(|s| s.id == id)
    }

    /// The opposite-direction side of the same service area.
    pub fn twin(&self, id: &str) -> Option<&StationSpec> {
        let twin = self.station(id)?.twin.as_deref()?;
        self.station(twin)
    }

    /// The stations further along the same highway in the same direction of travel, nearest
    /// first. Empty for an unknown id or an urban station.
    pub fn downstream(&self, id: &str) -> Vec<&StationSpec> {
        self.along(id, true)
    }

    /// The stations behind this one on the same highway and direction, nearest first.
    pub fn upstream(&self, id: &str) -> Vec<&StationSpec> {
        self.along(id, false)
    }

    /// The highways in the file, sorted.
    pub fn highways(&self) -> Vec<&str> {
        let mut h: Vec<&str> = self
            .stations
            .iter()
            .filter_map(|s| s.highway.as_deref())
            .collect();
        h.sort_unstable();
        h.dedup();
        h
    }

    /// The stations on one side of a highway in driving order.
    pub fn along_highway(&self, highway: &str, direction: Direction) -> Vec<&StationSpec> {
        let mut v: Vec<&StationSpec> = self
            .stations
            .iter()
            .filter(|s| s.highway.as_deref() == Some(highway) && s.direction == Some(direction))
            .collect();
        let descending = v.first().and_then(|s| s.travel) == Some(Travel::Descending);
        v.sort_by(|a, b| {
            let (ka, kb) = (a.km.unwrap_or(0.0), b.km.unwrap_or(0.0));
            if descending {
                kb.total_cmp(&ka)
            } else {
                ka.total_cmp(&kb)
            }
        });
        v
    }

    fn along(&self, id: &str, ahead: bool) -> Vec<&StationSpec> {
        let Some(me) = self.station(id) else {
            return Vec::new();
        };
        let (Some(highway), Some(direction), Some(travel), Some(km)) =
            (me.highway.as_deref(), me.direction, me.travel, me.km)
        else {
            return Vec::new();
        };
        // Moving "ahead" on an ascending side means larger km.
        let larger = (travel == Travel::Ascending) == ahead;
        let mut v: Vec<&StationSpec> = self
            .stations
            .iter()
            .filter(|s| s.highway.as_deref() == Some(highway) && s.direction == Some(direction))
            .filter(|s| match s.km {
                Some(k) if larger => k > km,
                Some(k) => k < km,
                None => false,
            })
            .collect();
        v.sort_by(|a, b| {
            let da = (a.km.unwrap_or(km) - km).abs();
            let db = (b.km.unwrap_or(km) - km).abs();
            da.total_cmp(&db)
        });
        v
    }
}

/// A network file that cannot be used, with the line (1-based) it was found on.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("line {line}: {kind}")]
pub struct NetworkFileError {
    pub line: usize,
    pub kind: NetworkFileErrorKind,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NetworkFileErrorKind {
    #[error("the file is empty: expected a header line naming the columns")]
    Empty,
    #[error("unknown column '{0}' in the header")]
    UnknownColumn(String),
    #[error("column '{0}' appears twice in the header")]
    DuplicateColumn(String),
    #[error("missing column '{0}' in the header")]
    MissingColumn(&'static str),
    #[error("expected {expected} fields, found {found}")]
    FieldCount { expected: usize, found: usize },
    #[error("a quoted field is not closed")]
    UnterminatedQuote,
    #[error("unexpected character after a closing quote in field {field}")]
    TextAfterQuote { field: usize },
    #[error("{column} is empty but required")]
    Required { column: &'static str },
    #[error("{column} {value:?} is not {expected}")]
    Invalid {
        column: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("{column} {value} is out of range {range}")]
    OutOfRange {
        column: &'static str,
        value: String,
        range: String,
    },
    #[error("{column} must be empty for {reason}")]
    MustBeEmpty {
        column: &'static str,
        reason: &'static str,
    },
    #[error("duplicate id '{id}' (first on line {first_line})")]
    DuplicateId { id: String, first_line: usize },
    #[error("twin '{twin}' of '{id}' is not an id in the file")]
    UnknownTwin { id: String, twin: String },
    #[error("'{id}' is its own twin")]
    SelfTwin { id: String },
    #[error("twin '{twin}' of '{id}' names {back} as its twin (line {twin_line})")]
    TwinNotMutual {
        id: String,
        twin: String,
        back: String,
        twin_line: usize,
    },
    #[error("twin '{twin}' of '{id}' (line {twin_line}) {problem}")]
    TwinMismatch {
        id: String,
        twin: String,
        twin_line: usize,
        problem: String,
    },
    #[error("{highway} {direction} is {travel} here but {other} on line {other_line}")]
    InconsistentTravel {
        highway: String,
        direction: Direction,
        travel: &'static str,
        other: &'static str,
        other_line: usize,
    },
    #[error(
        "{highway} {direction} and {other_direction} (line {other_line}) are both {travel}: \
         the two directions of a highway must run opposite ways along km"
    )]
    SameTravelBothWays {
        highway: String,
        direction: Direction,
        other_direction: Direction,
        travel: &'static str,
        other_line: usize,
    },
    #[error(
        "{highway} {direction} has km {km} twice (also '{other}' on line {other_line}): the order of stations would be ambiguous"
    )]
    DuplicateKm {
        highway: String,
        direction: Direction,
        km: f64,
        other: String,
        other_line: usize,
    },
    #[error("the file has a header but no stations")]
    NoStations,
}

fn err(line: usize, kind: NetworkFileErrorKind) -> NetworkFileError {
    NetworkFileError { line, kind }
}

/// One CSV record with the line it starts on.
struct Record {
    line: usize,
    fields: Vec<String>,
}

/// Splits CSV text into records (RFC 4180: comma separated, fields optionally in double quotes,
/// `""` for a quote inside quotes, newlines allowed inside quotes). Blank lines and lines whose
/// first character is `#` are skipped.
fn records(text: &str) -> Result<Vec<Record>, NetworkFileError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    let mut line = 1usize;
    loop {
        // Start of a record: skip blank and comment lines.
        match chars.peek() {
            None => break,
            Some('\n') => {
                chars.next();
                line += 1;
                continue;
            }
            Some('\r') => {
                chars.next();
                continue;
            }
            Some('#') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
                line += 1;
                continue;
            }
            Some(_) => {}
        }
        let start = line;
        let mut fields = Vec::new();
        let mut field = String::new();
        let mut at_field_start = true;
        let mut in_quotes = false;
        let mut after_quote = false;
        loop {
            let Some(c) = chars.next() else {
                if in_quotes {
                    return Err(err(start, NetworkFileErrorKind::UnterminatedQuote));
                }
                fields.push(std::mem::take(&mut field));
                break;
            };
            if in_quotes {
                match c {
                    '"' if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    '"' => {
                        in_quotes = false;
                        after_quote = true;
                    }
                    '\n' => {
                        line += 1;
                        field.push('\n');
                    }
                    _ => field.push(c),
                }
                continue;
            }
            match c {
                ',' => {
                    fields.push(std::mem::take(&mut field));
                    at_field_start = true;
                    after_quote = false;
                }
                '\n' => {
                    line += 1;
                    fields.push(std::mem::take(&mut field));
                    break;
                }
                '\r' if chars.peek() == Some(&'\n') || chars.peek().is_none() => {}
                '"' if at_field_start => {
                    in_quotes = true;
                    at_field_start = false;
                }
                _ if after_quote => {
                    return Err(err(
                        start,
                        NetworkFileErrorKind::TextAfterQuote {
                            field: fields.len() + 1,
                        },
                    ));
                }
                _ => {
                    field.push(c);
                    at_field_start = false;
                }
            }
        }
        out.push(Record {
            line: start,
            fields,
        });
    }
    Ok(out)
}

/// The fields of one row, looked up by column name.
struct Row<'a> {
    line: usize,
    fields: &'a [String],
    index: &'a HashMap<&'static str, usize>,
}

impl Row<'_> {
    fn raw(&self, column: &'static str) -> &str {
        // Every column in COLUMNS is in the index: the header was checked.
        self.index
            .get(column)
            .and_then(|&i| self.fields.get(i))
            .map(|s| s.trim())
            .unwrap_or("")
    }

    fn opt(&self, column: &'static str) -> Option<String> {
        let v = self.raw(column);
        (!v.is_empty()).then(|| v.to_string())
    }

    fn required(&self, column: &'static str) -> Result<String, NetworkFileError> {
        self.opt(column)
            .ok_or_else(|| err(self.line, NetworkFileErrorKind::Required { column }))
    }

    fn invalid(
        &self,
        column: &'static str,
        value: &str,
        expected: &'static str,
    ) -> NetworkFileError {
        err(
            self.line,
            NetworkFileErrorKind::Invalid {
                column,
                value: value.to_string(),
                expected,
            },
        )
    }

    fn out_of_range(&self, column: &'static str, value: &str, range: String) -> NetworkFileError {
        err(
            self.line,
            NetworkFileErrorKind::OutOfRange {
                column,
                value: value.to_string(),
                range,
            },
        )
    }

    fn f64_in(&self, column: &'static str, min: f64, max: f64) -> Result<f64, NetworkFileError> {
        let raw = self.required(column)?;
        let v: f64 = raw
            .parse()
            .map_err(|_| self.invalid(column, &raw, "a number"))?;
        if !v.is_finite() {
            return Err(self.invalid(column, &raw, "a finite number"));
        }
        if v < min || v > max {
            return Err(self.out_of_range(column, &raw, format!("{min}..{max}")));
        }
        Ok(v)
    }

    fn u32_in(&self, column: &'static str, min: u32, max: u32) -> Result<u32, NetworkFileError> {
        let raw = self.required(column)?;
        let v: u64 = raw
            .parse()
            .map_err(|_| self.invalid(column, &raw, "a whole number"))?;
        if v < u64::from(min) || v > u64::from(max) {
            return Err(self.out_of_range(column, &raw, format!("{min}..{max}")));
        }
        // In range, so it fits.
        Ok(u32::try_from(v).unwrap_or(max))
    }
}

fn is_slug(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && !s.starts_with('-')
}

fn is_highway_code(s: &str) -> bool {
    // G4, G0421, S50: a letter then digits.
    let mut b = s.bytes();
    matches!(b.next(), Some(b'G' | b'S'))
        && s.len() >= 2
        && s.len() <= 8
        && b.all(|c| c.is_ascii_digit())
}

fn parse_station(row: &Row<'_>) -> Result<StationSpec, NetworkFileError> {
    use NetworkFileErrorKind as K;
    let line = row.line;

    let id = row.required("id")?;
    if !is_slug(&id) {
        return Err(row.invalid("id", &id, "an ASCII slug (a-z, 0-9, '-', '_', at most 64)"));
    }
    let pair = row.opt("pair");
    if let Some(p) = pair.as_deref().filter(|p| !is_slug(p)) {
        return Err(row.invalid("pair", p, "an ASCII slug (a-z, 0-9, '-', '_', at most 64)"));
    }
    let name_zh = row.required("name_zh")?;
    let name_pinyin = row.required("name_pinyin")?;
    let kind_raw = row.required("kind")?;
    let kind = match kind_raw.as_str() {
        "service_area" => StationKind::ServiceArea,
        "parking_area" => StationKind::ParkingArea,
        "urban" => StationKind::Urban,
        _ => {
            return Err(row.invalid(
                "kind",
                &kind_raw,
                "one of service_area, parking_area, urban",
            ));
        }
    };
    let highway = row.opt("highway");
    if let Some(h) = highway.as_deref().filter(|h| !is_highway_code(h)) {
        return Err(row.invalid("highway", h, "an expressway number like G4, G0421 or S50"));
    }
    let (direction, travel, km) = if highway.is_some() {
        if kind == StationKind::Urban {
            return Err(err(
                line,
                K::MustBeEmpty {
                    column: "highway",
                    reason: "an urban station",
                },
            ));
        }
        let d = row.required("direction")?;
        let direction = match d.as_str() {
            "N" => Direction::N,
            "S" => Direction::S,
            "E" => Direction::E,
            "W" => Direction::W,
            _ => return Err(row.invalid("direction", &d, "one of N, S, E, W")),
        };
        let t = row.required("travel")?;
        let travel = match t.as_str() {
            "ascending" => Travel::Ascending,
            "descending" => Travel::Descending,
            _ => return Err(row.invalid("travel", &t, "ascending or descending")),
        };
        let km = row.f64_in("km", 0.0, 100_000.0)?;
        (Some(direction), Some(travel), Some(km))
    } else {
        if kind != StationKind::Urban {
            return Err(err(line, K::Required { column: "highway" }));
        }
        for column in ["direction", "travel", "km", "twin", "pair"] {
            if !row.raw(column).is_empty() {
                return Err(err(
                    line,
                    K::MustBeEmpty {
                        column,
                        reason: "a station with no highway",
                    },
                ));
            }
        }
        (None, None, None)
    };
    let lat = row.f64_in("lat", -90.0, 90.0)?;
    let lon = row.f64_in("lon", -180.0, 180.0)?;
    let pos_raw = row.required("position")?;
    let position = match pos_raw.as_str() {
        "approximate" => Position::Approximate,
        "exact" => Position::Exact,
        _ => return Err(row.invalid("position", &pos_raw, "approximate or exact")),
    };
    let chargers = row.u32_in("chargers", 1, MAX_CHARGERS)?;
    let power_kw = row.u32_in("power_kw", 1, MAX_POWER_KW)?;
    let twin = row.opt("twin");
    if let Some(t) = twin.as_deref().filter(|t| !is_slug(t)) {
        return Err(row.invalid("twin", t, "the id of another station"));
    }
    let src_raw = row.required("source")?;
    let source = match src_raw.as_str() {
        "verified" => Source::Verified,
        "verified-name" => Source::VerifiedName,
        "unverified-name" => Source::UnverifiedName,
        "interpolated-name" => Source::InterpolatedName,
        "demo-urban" => Source::DemoUrban,
        _ => {
            return Err(row.invalid(
                "source",
                &src_raw,
                "one of verified, verified-name, unverified-name, interpolated-name, demo-urban",
            ));
        }
    };
    Ok(StationSpec {
        id,
        pair,
        name_zh,
        name_pinyin,
        kind,
        highway,
        direction,
        travel,
        km,
        lat,
        lon,
        position,
        chargers,
        power_kw,
        twin,
        source,
    })
}

/// Parses a network file. See the module documentation for what is checked.
pub fn parse_network(text: &str) -> Result<NetworkSpec, NetworkFileError> {
    use NetworkFileErrorKind as K;
    let records = records(text)?;
    let mut records = records.into_iter();
    let header = records.next().ok_or_else(|| err(1, K::Empty))?;

    let mut index: HashMap<&'static str, usize> = HashMap::new();
    for (i, name) in header.fields.iter().enumerate() {
        let name = name.trim();
        let Some(&known) = COLUMNS.iter().find(|c| **c == name) else {
            return Err(err(header.line, K::UnknownColumn(name.to_string())));
        };
        if index.insert(known, i).is_some() {
            return Err(err(header.line, K::DuplicateColumn(name.to_string())));
        }
    }
    if let Some(missing) = COLUMNS.iter().find(|c| !index.contains_key(**c)) {
        return Err(err(header.line, K::MissingColumn(missing)));
    }
    let expected = header.fields.len();

    let mut stations = Vec::new();
    let mut lines = Vec::new();
    let mut ids: HashMap<String, usize> = HashMap::new();
    for rec in records {
        if rec.fields.len() != expected {
            return Err(err(
                rec.line,
                K::FieldCount {
                    expected,
                    found: rec.fields.len(),
                },
            ));
        }
        let row = Row {
            line: rec.line,
            fields: &rec.fields,
            index: &index,
        };
        let station = parse_station(&row)?;
        if let Some(&first) = ids.get(&station.id) {
            let first_line = lines[first];
            return Err(err(
                rec.line,
                K::DuplicateId {
                    id: station.id,
                    first_line,
                },
            ));
        }
        ids.insert(station.id.clone(), stations.len());
        lines.push(rec.line);
        stations.push(station);
    }
    if stations.is_empty() {
        return Err(err(header.line, K::NoStations));
    }

    check_highways(&stations, &lines)?;
    check_twins(&stations, &lines, &ids)?;
    Ok(NetworkSpec { stations })
}

/// Along one highway, each direction runs one way along km, the two directions opposite ways,
/// and no two stations of one direction share a km.
fn check_highways(stations: &[StationSpec], lines: &[usize]) -> Result<(), NetworkFileError> {
    use NetworkFileErrorKind as K;
    let mut by_dir: HashMap<(&str, Direction), (Travel, usize)> = HashMap::new();
    let mut by_travel: HashMap<(&str, Travel), (Direction, usize)> = HashMap::new();
    let mut by_km: HashMap<(&str, Direction, u64), usize> = HashMap::new();
    for (i, s) in stations.iter().enumerate() {
        let (Some(h), Some(d), Some(t), Some(km)) =
            (s.highway.as_deref(), s.direction, s.travel, s.km)
        else {
            continue;
        };
        let line = lines[i];
        match by_dir.get(&(h, d)) {
            Some(&(other, other_line)) if other != t => {
                return Err(err(
                    line,
                    K::InconsistentTravel {
                        highway: h.to_string(),
                        direction: d,
                        travel: t.as_str(),
                        other: other.as_str(),
                        other_line,
                    },
                ));
            }
            Some(_) => {}
            None => {
                by_dir.insert((h, d), (t, line));
            }
        }
        match by_travel.get(&(h, t)) {
            Some(&(other_direction, other_line)) if other_direction != d => {
                return Err(err(
                    line,
                    K::SameTravelBothWays {
                        highway: h.to_string(),
                        direction: d,
                        other_direction,
                        travel: t.as_str(),
                        other_line,
                    },
                ));
            }
            Some(_) => {}
            None => {
                by_travel.insert((h, t), (d, line));
            }
        }
        if let Some(&j) = by_km.get(&(h, d, km.to_bits())) {
            return Err(err(
                line,
                K::DuplicateKm {
                    highway: h.to_string(),
                    direction: d,
                    km,
                    other: stations[j].id.clone(),
                    other_line: lines[j],
                },
            ));
        }
        by_km.insert((h, d, km.to_bits()), i);
    }
    Ok(())
}

/// Every twin exists, names the station back, and is its other side.
fn check_twins(
    stations: &[StationSpec],
    lines: &[usize],
    ids: &HashMap<String, usize>,
) -> Result<(), NetworkFileError> {
    use NetworkFileErrorKind as K;
    for (i, s) in stations.iter().enumerate() {
        let Some(twin) = s.twin.as_deref() else {
            continue;
        };
        let line = lines[i];
        if twin == s.id {
            return Err(err(line, K::SelfTwin { id: s.id.clone() }));
        }
        let Some(&j) = ids.get(twin) else {
            return Err(err(
                line,
                K::UnknownTwin {
                    id: s.id.clone(),
                    twin: twin.to_string(),
                },
            ));
        };
        let t = &stations[j];
        if t.twin.as_deref() != Some(s.id.as_str()) {
            let back = match &t.twin {
                Some(b) => format!("'{b}'"),
                None => "nothing".to_string(),
            };
            return Err(err(
                line,
                K::TwinNotMutual {
                    id: s.id.clone(),
                    twin: twin.to_string(),
                    back,
                    twin_line: lines[j],
                },
            ));
        }
        let problem = if t.highway != s.highway {
            Some(format!(
                "is on highway {} but '{}' is on {}",
                t.highway.as_deref().unwrap_or("(none)"),
                s.id,
                s.highway.as_deref().unwrap_or("(none)")
            ))
        } else if t.direction != s.direction.map(Direction::opposite) {
            Some(format!(
                "runs {} but should run opposite to {}",
                t.direction.map(|d| d.as_str()).unwrap_or("(none)"),
                s.direction.map(|d| d.as_str()).unwrap_or("(none)")
            ))
        } else if t.pair != s.pair {
            Some(format!(
                "has pair {} but '{}' has {}",
                t.pair.as_deref().unwrap_or("(none)"),
                s.id,
                s.pair.as_deref().unwrap_or("(none)")
            ))
        } else {
            None
        };
        if let Some(problem) = problem {
            return Err(err(
                line,
                K::TwinMismatch {
                    id: s.id.clone(),
                    twin: twin.to_string(),
                    twin_line: lines[j],
                    problem,
                },
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hunan() -> NetworkSpec {
        parse_network(HUNAN).expect("the bundled Hunan network parses")
    }

    const HEADER: &str = "id,pair,name_zh,name_pinyin,kind,highway,direction,travel,km,lat,lon,position,chargers,power_kw,twin,source";

    /// A small valid file: one service area (two sides) on G4 with a neighbour, plus one urban.
    fn small() -> String {
        [
            HEADER,
            "g4-a-s,g4-a,甲服务区,Jia Fuwuqu,service_area,G4,S,ascending,10,29.0,113.0,approximate,8,120,g4-a-n,verified",
            "g4-a-n,g4-a,甲服务区,Jia Fuwuqu,service_area,G4,N,descending,10,29.0,113.0,approximate,8,120,g4-a-s,verified",
            "g4-b-s,g4-b,乙服务区,Yi Fuwuqu,service_area,G4,S,ascending,60,28.6,113.0,approximate,6,60,g4-b-n,verified",
            "g4-b-n,g4-b,乙服务区,Yi Fuwuqu,service_area,G4,N,descending,60,28.6,113.0,approximate,6,60,g4-b-s,verified",
            "urban-x,,长沙充电站,Changsha Chongdianzhan,urban,,,,,28.2,112.9,approximate,10,120,,demo-urban",
        ]
        .join("\n")
    }

    /// `small()` with line `n` (1-based) replaced.
    fn with_line(n: usize, line: &str) -> String {
        let mut lines: Vec<String> = small().lines().map(str::to_string).collect();
        lines[n - 1] = line.to_string();
        lines.join("\n")
    }

    fn error_of(text: &str) -> NetworkFileError {
        match parse_network(text) {
            Ok(_) => panic!("expected an error for:\n{text}"),
            Err(e) => e,
        }
    }

    #[test]
    fn hunan_has_enough_highway_service_area_sides() {
        let net = hunan();
        let sides = net
            .stations
            .iter()
            .filter(|s| {
                s.highway.is_some()
                    && matches!(s.kind, StationKind::ServiceArea | StationKind::ParkingArea)
            })
            .count();
        assert!(sides >= 150, "only {sides} highway sides");
        let urban = net
            .stations
            .iter()
            .filter(|s| s.kind == StationKind::Urban)
            .count();
        assert!((5..=10).contains(&urban), "{urban} urban stations");
        for hw in [
            "G4", "G60", "G55", "G56", "G65", "G72", "G5513", "G1517", "G0421",
        ] {
            assert!(net.highways().contains(&hw), "no station on {hw}");
        }
    }

    #[test]
    fn hunan_positions_inside_the_province_box() {
        for s in &hunan().stations {
            assert!((24.6..=30.1).contains(&s.lat), "{} lat {}", s.id, s.lat);
            assert!((108.8..=114.3).contains(&s.lon), "{} lon {}", s.id, s.lon);
            assert_eq!(s.position, Position::Approximate, "{}", s.id);
            assert!(
                (4..=16).contains(&s.chargers),
                "{} chargers {}",
                s.id,
                s.chargers
            );
            assert!(
                (60..=240).contains(&s.power_kw),
                "{} power {}",
                s.id,
                s.power_kw
            );
        }
    }

    /// Ray casting: is (lon, lat) inside the ring?
    fn inside(ring: &[(f64, f64)], lon: f64, lat: f64) -> bool {
        let mut inside = false;
        let mut j = ring.len() - 1;
        for i in 0..ring.len() {
            let (xi, yi) = ring[i];
            let (xj, yj) = ring[j];
            if (yi > lat) != (yj > lat) && lon < (xj - xi) * (lat - yi) / (yj - yi) + xi {
                inside = !inside;
            }
            j = i;
        }
        inside
    }

    #[test]
    fn hunan_positions_inside_the_province_outline() {
        let geo: serde_json::Value =
            serde_json::from_str(include_str!("../../../web/geo/hunan.geojson"))
                .expect("outline parses");
        let ring: Vec<(f64, f64)> = geo["features"][0]["geometry"]["coordinates"][0]
            .as_array()
            .expect("outer ring")
            .iter()
            .map(|p| (p[0].as_f64().expect("lon"), p[1].as_f64().expect("lat")))
            .collect();
        assert!(ring.len() > 100);
        for s in &hunan().stations {
            assert!(
                inside(&ring, s.lon, s.lat),
                "{} ({}, {}) is outside Hunan",
                s.id,
                s.lat,
                s.lon
            );
        }
        // And the check can fail: Wuhan and Guangzhou are outside.
        assert!(!inside(&ring, 114.30, 30.59));
        assert!(!inside(&ring, 113.26, 23.13));
    }

    #[test]
    fn hunan_twins_resolve_both_ways() {
        let net = hunan();
        for s in net.stations.iter().filter(|s| s.highway.is_some()) {
            let twin = net
                .twin(&s.id)
                .unwrap_or_else(|| panic!("{} has no twin", s.id));
            assert_eq!(
                net.twin(&twin.id).map(|t| t.id.as_str()),
                Some(s.id.as_str())
            );
            assert_eq!(twin.highway, s.highway);
            assert_eq!(twin.pair, s.pair);
            assert_eq!(twin.km, s.km);
            assert_eq!(twin.name_zh, s.name_zh);
            assert_eq!(
                Some(twin.direction.expect("direction").opposite()),
                s.direction
            );
        }
        for s in net.stations.iter().filter(|s| s.highway.is_none()) {
            assert!(net.twin(&s.id).is_none());
            assert!(net.downstream(&s.id).is_empty());
        }
    }

    #[test]
    fn hunan_neighbours_are_consistent() {
        let net = hunan();
        for s in net.stations.iter().filter(|s| s.highway.is_some()) {
            let down = net.downstream(&s.id);
            let up = net.upstream(&s.id);
            let side = net.along_highway(
                s.highway.as_deref().expect("highway"),
                s.direction.expect("direction"),
            );
            // Every other station of the side is either ahead or behind, never both.
            assert_eq!(down.len() + up.len() + 1, side.len(), "{}", s.id);
            for d in &down {
                assert_eq!(d.highway, s.highway);
                assert_eq!(d.direction, s.direction);
                assert!(!up.iter().any(|u| u.id == d.id));
            }
            // Nearest first, and the next one downstream has me as the nearest upstream.
            for w in down.windows(2) {
                let (a, b) = (w[0].km.expect("km"), w[1].km.expect("km"));
                let me = s.km.expect("km");
                assert!(
                    (a - me).abs() < (b - me).abs(),
                    "{} downstream not nearest first",
                    s.id
                );
            }
            if let Some(next) = down.first() {
                assert_eq!(
                    net.upstream(&next.id).first().map(|u| u.id.as_str()),
                    Some(s.id.as_str())
                );
            }
            // The twin's downstream is my upstream, mirrored.
            let twin = net.twin(&s.id).expect("twin");
            let twin_down: Vec<Option<&str>> = net
                .downstream(&twin.id)
                .iter()
                .map(|t| t.pair.as_deref())
                .collect();
            let my_up: Vec<Option<&str>> = up.iter().map(|t| t.pair.as_deref()).collect();
            assert_eq!(twin_down, my_up, "{}", s.id);
        }
    }

    #[test]
    fn hunan_g4_southbound_runs_from_yueyang_to_chenzhou() {
        let net = hunan();
        let side = net.along_highway("G4", Direction::S);
        let names: Vec<&str> = side.iter().map(|s| s.name_zh.as_str()).collect();
        let pos = |n: &str| {
            names
                .iter()
                .position(|x| *x == n)
                .unwrap_or_else(|| panic!("{n} missing"))
        };
        assert!(pos("羊楼司服务区") < pos("长沙服务区"));
        assert!(pos("长沙服务区") < pos("雁城服务区"));
        assert!(pos("雁城服务区") < pos("宜章服务区"));
        // Heading south, the latitude mostly falls.
        assert!(side.first().expect("first").lat > side.last().expect("last").lat);
        let down = net.downstream("g4-changsha-s");
        assert_eq!(down.first().map(|s| s.name_zh.as_str()), Some("昭山服务区"));
        let down_n = net.downstream("g4-changsha-n");
        assert_eq!(
            down_n.first().map(|s| s.name_zh.as_str()),
            Some("安沙停车区")
        );
    }

    #[test]
    fn small_file_parses_and_finds_neighbours() {
        let net = parse_network(&small()).expect("parses");
        assert_eq!(net.stations.len(), 5);
        assert_eq!(net.twin("g4-a-s").map(|s| s.id.as_str()), Some("g4-a-n"));
        assert_eq!(
            net.downstream("g4-a-s")
                .iter()
                .map(|s| s.id.as_str())
                .collect::<Vec<_>>(),
            ["g4-b-s"]
        );
        assert!(net.downstream("g4-b-s").is_empty());
        assert_eq!(
            net.downstream("g4-b-n")
                .iter()
                .map(|s| s.id.as_str())
                .collect::<Vec<_>>(),
            ["g4-a-n"]
        );
        assert!(net.downstream("nope").is_empty());
        let urban = net.station("urban-x").expect("urban");
        assert_eq!(urban.highway, None);
        assert_eq!(urban.km, None);
        assert_eq!(urban.kind, StationKind::Urban);
    }

    #[test]
    fn quoted_fields_with_commas_quotes_and_crlf() {
        let text = small()
            .replace(
                "长沙充电站,Changsha Chongdianzhan",
                "\"长沙,五一\",\"Changsha \"\"Wuyi\"\", Square\"",
            )
            .replace('\n', "\r\n");
        let net = parse_network(&text).expect("parses");
        let s = net.station("urban-x").expect("urban");
        assert_eq!(s.name_zh, "长沙,五一");
        assert_eq!(s.name_pinyin, "Changsha \"Wuyi\", Square");
    }

    #[test]
    fn header_columns_may_come_in_any_order_and_comments_are_skipped() {
        let text = "# a comment\nkm,id,pair,name_zh,name_pinyin,kind,highway,direction,travel,lat,lon,position,chargers,power_kw,twin,source\n\
                    ,urban-x,,X,X,urban,,,,28.2,112.9,approximate,10,120,,demo-urban\n";
        let net = parse_network(text).expect("parses");
        assert_eq!(net.stations[0].id, "urban-x");
    }

    #[test]
    fn lat_out_of_range_names_line_and_column() {
        let text = with_line(
            3,
            "g4-a-n,g4-a,甲服务区,Jia Fuwuqu,service_area,G4,N,descending,10,95.2,113.0,approximate,8,120,g4-a-s,verified",
        );
        let e = error_of(&text);
        assert_eq!(e.line, 3);
        assert_eq!(e.to_string(), "line 3: lat 95.2 is out of range -90..90");
    }

    #[test]
    fn wrong_field_count_names_the_line() {
        let text = with_line(
            3,
            "g4-a-n,g4-a,甲服务区,Jia Fuwuqu,service_area,G4,N,descending,10,29.0,113.0,approximate,8,120,g4-a-s",
        );
        assert_eq!(
            error_of(&text).to_string(),
            "line 3: expected 16 fields, found 15"
        );
    }

    #[test]
    fn duplicate_id_names_both_lines() {
        let text = with_line(
            4,
            "g4-a-s,g4-b,乙服务区,Yi Fuwuqu,service_area,G4,S,ascending,60,28.6,113.0,approximate,6,60,g4-b-n,verified",
        );
        let e = error_of(&text);
        assert_eq!(e.line, 4);
        assert_eq!(
            e.to_string(),
            "line 4: duplicate id 'g4-a-s' (first on line 2)"
        );
    }

    #[test]
    fn unknown_twin_names_the_line() {
        let text = with_line(
            2,
            "g4-a-s,g4-a,甲服务区,Jia Fuwuqu,service_area,G4,S,ascending,10,29.0,113.0,approximate,8,120,g4-zz-n,verified",
        );
        let e = error_of(&text);
        assert_eq!(e.line, 2);
        assert!(
            e.to_string()
                .contains("twin 'g4-zz-n' of 'g4-a-s' is not an id"),
            "{e}"
        );
    }

    #[test]
    fn one_sided_twin_is_rejected() {
        // g4-a-n points at g4-b-s, whose twin is g4-b-n.
        let text = with_line(
            3,
            "g4-a-n,g4-a,甲服务区,Jia Fuwuqu,service_area,G4,N,descending,10,29.0,113.0,approximate,8,120,g4-b-s,verified",
        );
        let e = error_of(&text);
        assert_eq!(e.line, 2, "{e}"); // g4-a-s's twin (g4-a-n) no longer names it back
        assert!(
            matches!(e.kind, NetworkFileErrorKind::TwinNotMutual { .. }),
            "{e}"
        );
    }

    #[test]
    fn twin_on_another_highway_is_rejected() {
        let mut lines: Vec<String> = small().lines().map(str::to_string).collect();
        lines[2] = "g4-a-n,g4-a,甲服务区,Jia Fuwuqu,service_area,G5,N,descending,10,29.0,113.0,approximate,8,120,g4-a-s,verified".into();
        let e = error_of(&lines.join("\n"));
        assert_eq!(e.line, 2);
        assert!(e.to_string().contains("is on highway G5"), "{e}");
    }

    #[test]
    fn unknown_header_column_names_line_one() {
        let text = small().replacen("source", "origin", 1);
        assert_eq!(
            error_of(&text).to_string(),
            "line 1: unknown column 'origin' in the header"
        );
        let text = small().replacen(",source", "", 1);
        assert!(
            error_of(&text)
                .to_string()
                .starts_with("line 1: missing column 'source'")
        );
        let text = small().replacen("source", "id", 1);
        assert_eq!(
            error_of(&text).to_string(),
            "line 1: column 'id' appears twice in the header"
        );
    }

    #[test]
    fn bad_values_name_line_and_column() {
        let base = "g4-a-n,g4-a,甲服务区,Jia Fuwuqu,service_area,G4,N,descending,10,29.0,113.0,approximate,8,120,g4-a-s,verified";
        let cases = [
            (
                base.replace(",N,descending", ",X,descending"),
                "direction \"X\" is not one of N, S, E, W",
            ),
            (
                base.replace("descending", "down"),
                "travel \"down\" is not ascending or descending",
            ),
            (
                base.replace(",10,29.0", ",ten,29.0"),
                "km \"ten\" is not a number",
            ),
            (
                base.replace("113.0", "NaN"),
                "lon \"NaN\" is not a finite number",
            ),
            (
                base.replace("113.0", "190"),
                "lon 190 is out of range -180..180",
            ),
            (
                base.replace(",8,120", ",0,120"),
                "chargers 0 is out of range 1..1000",
            ),
            (
                base.replace(",8,120", ",8,-5"),
                "power_kw \"-5\" is not a whole number",
            ),
            (
                base.replace("service_area", "rest_stop"),
                "kind \"rest_stop\" is not one of",
            ),
            (
                base.replace("verified", "guessed"),
                "source \"guessed\" is not one of",
            ),
            (
                base.replace("approximate", "roughly"),
                "position \"roughly\" is not approximate or exact",
            ),
            (
                base.replace("G4,N", "I-95,N"),
                "highway \"I-95\" is not an expressway number",
            ),
            (
                base.replace("甲服务区", ""),
                "name_zh is empty but required",
            ),
            (
                base.replace("g4-a-n,g4-a", "G4 A N,g4-a"),
                "id \"G4 A N\" is not an ASCII slug",
            ),
        ];
        for (line, want) in cases {
            let e = error_of(&with_line(3, &line));
            assert_eq!(e.line, 3, "{e}");
            let msg = e.to_string();
            assert!(msg.starts_with("line 3: "), "{msg}");
            assert!(msg.contains(want), "{msg} does not contain {want}");
        }
    }

    #[test]
    fn urban_station_with_highway_fields_is_rejected() {
        let text = with_line(
            6,
            "urban-x,,长沙充电站,Changsha Chongdianzhan,urban,,N,,,28.2,112.9,approximate,10,120,,demo-urban",
        );
        assert_eq!(
            error_of(&text).to_string(),
            "line 6: direction must be empty for a station with no highway"
        );
        let text = with_line(
            6,
            "urban-x,,长沙充电站,Changsha Chongdianzhan,service_area,,,,,28.2,112.9,approximate,10,120,,demo-urban",
        );
        assert_eq!(
            error_of(&text).to_string(),
            "line 6: highway is empty but required"
        );
    }

    #[test]
    fn inconsistent_travel_and_duplicate_km_are_rejected() {
        // Southbound is ascending on line 2 but descending on line 4.
        let text = with_line(
            4,
            "g4-b-s,g4-b,乙服务区,Yi Fuwuqu,service_area,G4,S,descending,60,28.6,113.0,approximate,6,60,g4-b-n,verified",
        );
        let e = error_of(&text);
        assert_eq!(e.line, 4);
        assert!(
            e.to_string()
                .contains("G4 S is descending here but ascending on line 2"),
            "{e}"
        );
        // Two southbound stations at the same km make the order ambiguous.
        let text = small()
            .replace(",S,ascending,60,", ",S,ascending,10,")
            .replace(",N,descending,60,", ",N,descending,10,");
        let e = error_of(&text);
        assert_eq!(e.line, 4);
        assert!(e.to_string().contains("has km 10 twice"), "{e}");
        // Both directions ascending.
        let text = small().replace("N,descending", "N,ascending");
        let e = error_of(&text);
        assert_eq!(e.line, 3);
        assert!(e.to_string().contains("are both ascending"), "{e}");
    }

    #[test]
    fn csv_syntax_errors_name_the_line() {
        let text = format!(
            "{}\n\"urban-y,,Y,Y,urban,,,,,28.2,112.9,approximate,10,120,,demo-urban\n",
            small()
        );
        assert_eq!(
            error_of(&text).to_string(),
            "line 7: a quoted field is not closed"
        );
        let text = with_line(
            6,
            "urban-x,,\"长沙\"x,Changsha,urban,,,,,28.2,112.9,approximate,10,120,,demo-urban",
        );
        assert_eq!(
            error_of(&text).to_string(),
            "line 6: unexpected character after a closing quote in field 3"
        );
        assert_eq!(
            error_of("").to_string(),
            "line 1: the file is empty: expected a header line naming the columns"
        );
        assert_eq!(
            error_of(HEADER).to_string(),
            "line 1: the file has a header but no stations"
        );
    }

    #[test]
    fn line_numbers_count_quoted_newlines_and_blank_lines() {
        let text = format!(
            "{HEADER}\n\n\"urban-a\",,\"two\nlines\",A,urban,,,,,28.2,112.9,approximate,10,120,,demo-urban\nurban-b,,B,B,urban,,,,,95,112.9,approximate,10,120,,demo-urban\n"
        );
        assert_eq!(
            error_of(&text).to_string(),
            "line 5: lat 95 is out of range -90..90"
        );
    }
}
