//! The `chargeops` binary: parses configuration, starts tracing and wires the crates together.

mod config;
mod demo;
mod demo_robots;
mod demo_units;
mod plan;
mod serve;

use anyhow::Result;
use clap::{Parser, Subcommand};

use config::Overrides;

#[derive(Parser)]
#[command(
    name = "chargeops",
    version,
    about = "One platform for a whole EV charging network"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the platform: OCPP central system, REST API and live feed on one port.
    Serve(Overrides),
    /// The province demo: the platform, the Hunan highway network, simulated chargers and
    /// traffic, and the live operations map.
    Demo(demo::DemoArgs),
    /// Only the simulated chargers and traffic, against any OCPP server; or, with `history`,
    /// the simulated past as a session log.
    Sim(demo::SimCli),
    /// A station's plan for a peak period, from the history in the data directory.
    Plan(plan::PlanArgs),
    /// Benchmarks that print a table.
    #[command(subcommand)]
    Bench(BenchCmd),
    /// Occupancy forecasting over charging-session history: import real logs, evaluate.
    #[command(subcommand)]
    Forecast(chargeops_forecast::cli::ForecastCmd),
}

#[derive(Subcommand)]
enum BenchCmd {
    /// Simulated OCPP 1.6 chargers against a server: messages per second, latency, memory.
    Ocpp(chargeops_sim::bench::OcppBenchArgs),
    /// Robot dispatch in a lot: FIFO, nearest-idle and chargeops on an arrival trace.
    Dispatch(chargeops_dispatch::cli::DispatchBenchArgs),
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Serve(o) => {
            let config = config::Config::load(&o)?;
            serve::init_tracing(&config.log);
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            rt.block_on(serve::run(config))
        }
        Cmd::Demo(args) => runtime()?.block_on(demo::demo(args)),
        Cmd::Sim(demo::SimCli {
            cmd: Some(demo::SimCmd::History(args)),
            ..
        }) => chargeops_sim::history::run_history(&args),
        Cmd::Sim(demo::SimCli { run, .. }) => {
            serve::init_tracing("warn");
            runtime()?.block_on(demo::sim(run))
        }
        Cmd::Plan(args) => {
            serve::init_tracing("warn");
            runtime()?.block_on(plan::run(args))
        }
        Cmd::Forecast(cmd) => {
            serve::init_tracing("warn");
            Ok(chargeops_forecast::cli::run(cmd)?)
        }
        Cmd::Bench(BenchCmd::Ocpp(args)) => {
            serve::init_tracing("warn");
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            rt.block_on(chargeops_sim::bench::run_ocpp(args))
        }
        Cmd::Bench(BenchCmd::Dispatch(args)) => Ok(chargeops_dispatch::cli::run(args)?),
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}
