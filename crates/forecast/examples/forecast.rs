//! Development entry point: `cargo run -p chargeops-forecast --example forecast -- eval ...`.
//! The real binary mounts the same subcommands as `chargeops forecast ...`.

use clap::Parser;

#[derive(Parser)]
#[command(name = "forecast")]
struct Cli {
    #[command(subcommand)]
    cmd: chargeops_forecast::cli::ForecastCmd,
}

fn main() {
    let cli = Cli::parse();
    if let Err(e) = chargeops_forecast::cli::run(cli.cmd) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
