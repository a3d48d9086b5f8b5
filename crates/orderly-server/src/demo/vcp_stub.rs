//! TEMPORARY stand-in for `orderly_loadgen::virtual_cp` (contract API) until it lands.
#![allow(dead_code)]
use jiff::Timestamp;
pub type SharedClock = std::sync::Arc<dyn Fn() -> Timestamp + Send + Sync>;
pub struct VirtualChargerConfig {
    pub url: String,
    pub id: String,
    pub phases: u8,
    pub voltage_v: f64,
    pub max_current_a: f64,
    pub meter_interval_secs: f64,
    pub clock: SharedClock,
}
#[derive(Debug, Clone)]
pub struct CarVisit {
    pub id_tag: String,
    pub arrival: Timestamp,
    pub departure: Timestamp,
    pub energy_kwh: f64,
    pub max_kw: f64,
}
pub enum VcpEvent {
    Plugged {
        charger: String,
        transaction_id: i64,
        visit: CarVisit,
    },
    Unplugged {
        charger: String,
        transaction_id: i64,
        delivered_kwh: f64,
        wanted_kwh: f64,
    },
    Profile {
        charger: String,
        received: std::time::Instant,
        purpose: String,
        accepted: bool,
    },
    Power {
        charger: String,
        kw: f64,
    },
}
pub struct VcpSummary;
#[derive(Debug, thiserror::Error)]
#[error("stub")]
pub struct VcpError;
pub async fn run_virtual_charger(
    _config: VirtualChargerConfig,
    _visits: Vec<CarVisit>,
    _events: tokio::sync::mpsc::UnboundedSender<VcpEvent>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> Result<VcpSummary, VcpError> {
    let _ = shutdown.wait_for(|s| *s).await;
    Ok(VcpSummary)
}
