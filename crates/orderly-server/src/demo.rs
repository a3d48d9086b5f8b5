//! `orderly demo`: the server on embedded SQLite plus a simulated community whose virtual charge
//! points speak OCPP 1.6 over loopback and replay real residential sessions at accelerated time.

/// Flags of `orderly demo`.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Number of chargers in the simulated community.
    #[arg(long, default_value_t = 60)]
    pub chargers: usize,
    /// Protocol seconds per real second (1440: a day per minute).
    #[arg(long, default_value_t = 1440.0)]
    pub speed: f64,
}

/// Run the demo until Ctrl-C (`shutdown` completes).
pub async fn run(
    args: DemoArgs,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let _ = (args, shutdown);
    anyhow::bail!("orderly demo is not built yet")
}
