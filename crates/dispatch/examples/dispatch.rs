//! `chargeops bench dispatch` without the binary: `cargo run --release -p chargeops-dispatch --example dispatch -- --robots 10`.

use clap::Parser;

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    bench: chargeops_dispatch::cli::DispatchBenchArgs,
}

fn main() -> Result<(), chargeops_dispatch::DispatchError> {
    chargeops_dispatch::cli::run(Args::parse().bench)
}
