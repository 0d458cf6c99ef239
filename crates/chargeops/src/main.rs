//! The `chargeops` binary: parses configuration, starts tracing and wires the crates together.

mod config;
mod demo;
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
    /// Only the simulated chargers and traffic, against any OCPP server.
    Sim(demo::SimArgs),
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
        Cmd::Sim(args) => {
            serve::init_tracing("warn");
            runtime()?.block_on(demo::sim(args))
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
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}
