//! The `forecast` subcommands, for the binary to mount as `chargeops forecast ...`.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use crate::ForecastError;
use crate::calendar::Calendar;
use crate::eval::{EvalOptions, evaluate};
use crate::import::{ExportFormat, import};
use crate::session::read_canonical;
use crate::tz::{CHINA_OFFSET, Zone};

/// `chargeops forecast ...`
#[derive(Debug, clap::Subcommand)]
pub enum ForecastCmd {
    /// Rolling-origin evaluation of the forecaster and the baselines on a session log.
    Eval(EvalArgs),
    /// Turn a council session export into the canonical session CSV.
    Import(ImportArgs),
}

/// Output format of `forecast eval`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Table,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    /// Canonical session CSV (site,charger,connector,start,end,kwh).
    #[arg(long)]
    pub sessions: PathBuf,
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
    /// Holiday calendar: scotland, china, none or a calendar file; default from the time zone.
    #[arg(long)]
    pub calendar: Option<String>,
    /// Local time of the sites: an IANA zone name (Europe/London, Asia/Shanghai,
    /// America/New_York, ...), utc or +HH:MM; default inferred from the offsets in the file.
    #[arg(long)]
    pub tz: Option<String>,
    /// Also write the evaluated series and origins as JSON (for bench/forecast/compare.py).
    #[arg(long)]
    pub dump: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// Which exporter wrote the files.
    #[arg(long, value_enum)]
    pub format: ExportFormat,
    /// Input files, all of that format.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Output canonical CSV.
    #[arg(long)]
    pub out: PathBuf,
    /// Local time of the export's dates: an IANA zone name (Europe/London, Asia/Shanghai, ...),
    /// utc or +HH:MM.
    #[arg(long, default_value = "europe/london")]
    pub tz: String,
}

fn read(path: &Path) -> Result<String, ForecastError> {
    let bytes = std::fs::read(path).map_err(|source| ForecastError::Io {
        path: path.to_owned(),
        source,
    })?;
    // The exports are UTF-8; a stray byte should not stop an import.
    Ok(String::from_utf8(bytes)
        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
}

fn calendar_for(spec: Option<&str>, zone: Zone) -> Result<Calendar, ForecastError> {
    Ok(match spec.map(str::to_ascii_lowercase).as_deref() {
        Some("scotland") => Calendar::scotland().with_zone(zone),
        Some("china") => Calendar::china().with_zone(zone),
        Some("none") => Calendar::empty(zone),
        Some(_) => {
            let path = Path::new(spec.unwrap_or_default());
            Calendar::parse(&read(path)?, zone)?
        }
        // A log kept at +08:00 all year is China's.
        None => match zone {
            Zone::LONDON => Calendar::scotland(),
            Zone::CHINA | Zone::Fixed(CHINA_OFFSET) => Calendar::china(),
            z => Calendar::empty(z),
        },
    })
}

/// Runs a `forecast` subcommand: results on stdout, reports and progress on stderr.
pub fn run(cmd: ForecastCmd) -> Result<(), ForecastError> {
    match cmd {
        ForecastCmd::Import(args) => {
            let zone = Zone::parse(&args.tz)?;
            let files = args
                .paths
                .iter()
                .map(|p| Ok((p.display().to_string(), read(p)?)))
                .collect::<Result<Vec<_>, ForecastError>>()?;
            let (sessions, report) = import(args.format, &files, zone)?;
            let text = crate::session::write_canonical(&sessions);
            std::fs::write(&args.out, text).map_err(|source| ForecastError::Write {
                path: args.out.clone(),
                source,
            })?;
            eprint!("{}", report.summary());
            eprintln!(
                "wrote {} sessions to {}",
                sessions.len(),
                args.out.display()
            );
            Ok(())
        }
        ForecastCmd::Eval(args) => {
            let name = args.sessions.display().to_string();
            let (sessions, report) = read_canonical(&read(&args.sessions)?, &name)?;
            eprint!("{}", report.summary());
            if sessions.is_empty() {
                return Err(ForecastError::NoSessions(format!(" in {name}")));
            }
            let zone = match &args.tz {
                Some(tz) => Zone::parse(tz)?,
                None => Zone::infer(sessions.iter().map(|s| s.start)),
            };
            let calendar = calendar_for(args.calendar.as_deref(), zone)?;
            let mut opts = EvalOptions::new(calendar);
            // Holiday hours are scored apart on the region's own calendar, so that runs with
            // `--calendar none` and with the calendar compare on the same hours.
            opts.holidays = Some(calendar_for(None, zone)?).filter(|c| !c.is_empty());
            opts.progress = std::io::stderr().is_terminal();
            let (result, dump) = evaluate(&sessions, &opts)?;
            if let Some(path) = &args.dump {
                let text = serde_json::to_string(&dump)?;
                std::fs::write(path, text).map_err(|source| ForecastError::Write {
                    path: path.clone(),
                    source,
                })?;
            }
            let out = match args.format {
                OutputFormat::Table => result.to_table(),
                OutputFormat::Json => {
                    format!("{}\n", serde_json::to_string_pretty(&result.to_json())?)
                }
            };
            let mut stdout = std::io::stdout().lock();
            // A closed pipe (`| head`) is not an error worth reporting.
            let _ = stdout.write_all(out.as_bytes());
            Ok(())
        }
    }
}
