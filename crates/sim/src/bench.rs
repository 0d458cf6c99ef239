//! `chargeops bench ocpp`.

#[derive(Debug, Clone, clap::Args)]
pub struct OcppBenchArgs {}

pub async fn run_ocpp(_args: OcppBenchArgs) -> anyhow::Result<()> {
    anyhow::bail!("not built yet")
}
