//! Occupancy reports over MQTT: subscribes to `{prefix}/+/+` (topic
//! `{prefix}/{community_id}/{bay_number}`, payload an [`OccupancyReport`] as JSON) and hands
//! each report to the parking task. A malformed message is logged and counted
//! (`orderly_parking_reports_total{via="mqtt",outcome=...}`), never fatal; when the broker goes
//! away the client reconnects (and subscribes again) every second until it is back.
//!
//! No report is lost to a restart of the server: the session is persistent (a stable client id,
//! clean session off), so the broker queues the QoS 1 reports published while the server is
//! down, and a report is acknowledged only once it is applied or refused for good (malformed,
//! unknown bay, rejected by the rules). One that failed for a passing reason (the store, the
//! server stopping) stays unacknowledged, and the broker sends it again on the next connection.

use super::{OccupancyReport, ParkingError};
use crate::state::AppState;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use std::time::Duration;

/// Largest payload taken (a report is ~150 bytes).
pub const MAX_PAYLOAD: usize = 4096;

/// The metric counting reports by way and outcome.
pub const REPORTS_TOTAL: &str = "orderly_parking_reports_total";

/// `mqtt://HOST[:PORT]` → host and port (1883 by default).
pub fn parse_url(url: &str) -> Result<(String, u16), String> {
    let rest = url
        .strip_prefix("mqtt://")
        .or_else(|| url.strip_prefix("tcp://"))
        .ok_or_else(|| format!("parking.mqtt_url: {url:?} must start with mqtt://"))?;
    let rest = rest.trim_end_matches('/');
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) => (
            h,
            p.parse::<u16>()
                .map_err(|_| format!("parking.mqtt_url: bad port in {url:?}"))?,
        ),
        None => (rest, 1883),
    };
    if host.is_empty() || host.contains('/') || host.contains('@') {
        return Err(format!("parking.mqtt_url: bad host in {url:?}"));
    }
    Ok((host.to_owned(), port))
}

/// Checks `[parking]`'s MQTT settings, so a bad one stops the server at start with a clear
/// message rather than leaving occupancy silently unread.
pub fn check_config(config: &super::ParkingConfig) -> Result<(), String> {
    if let Some(url) = &config.mqtt_url {
        parse_url(url)?;
    }
    if let Some(id) = &config.mqtt_client_id {
        let ok = !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_graphic());
        if !ok {
            return Err(format!(
                "parking.mqtt_client_id: {id:?} must be 1–64 printable ASCII characters"
            ));
        }
    }
    let prefix = config.mqtt_topic_prefix.trim_end_matches('/');
    if prefix.is_empty() || prefix.contains(['+', '#']) {
        return Err(format!(
            "parking.mqtt_topic_prefix: {:?} must be a topic without wildcards",
            config.mqtt_topic_prefix
        ));
    }
    Ok(())
}

/// The client id when none is configured: the same for every start of a server on the same
/// database and prefix (so its persistent session is found again), different for another
/// database (so parallel servers, such as tests, do not take each other's session). 23
/// characters, the length every MQTT 3.1.1 broker accepts.
pub fn default_client_id(config: &crate::config::Config) -> String {
    use sha2::Digest;
    let database = match &config.database_url {
        Some(url) => url.clone(),
        None => std::fs::canonicalize(&config.data_dir)
            .unwrap_or_else(|_| config.data_dir.clone())
            .display()
            .to_string(),
    };
    let mut hash = sha2::Sha256::new();
    hash.update(database.as_bytes());
    hash.update([0]);
    hash.update(config.parking.mqtt_topic_prefix.as_bytes());
    let digest = hash.finalize();
    let hex: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
    format!("orderly-pk-{hex}")
}

fn count(outcome: &'static str) {
    metrics::counter!(REPORTS_TOTAL, "via" => "mqtt", "outcome" => outcome).increment(1);
}

/// Runs the subscriber until `stop` completes.
pub async fn run(
    state: AppState,
    url: String,
    prefix: String,
    client_id: String,
    stop: impl Future<Output = ()> + Send + 'static,
) {
    let (host, port) = match parse_url(&url) {
        Ok(hp) => hp,
        Err(error) => {
            tracing::error!(%error, "parking: MQTT disabled");
            return;
        }
    };
    let mut options = MqttOptions::new(client_id.clone(), host, port);
    options.set_keep_alive(Duration::from_secs(30));
    // A persistent session, acknowledged by hand once a report is applied: see the module docs.
    // Subscribing again at every ConnAck costs nothing and covers a broker that lost the session.
    options.set_clean_session(false);
    options.set_manual_acks(true);
    let (client, mut events) = AsyncClient::new(options, 64);
    let filter = format!("{}/+/+", prefix.trim_end_matches('/'));
    tokio::pin!(stop);
    loop {
        let event = tokio::select! {
            () = &mut stop => break,
            event = events.poll() => event,
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                tracing::info!(%url, %filter, %client_id, "parking: connected to the MQTT broker");
                if let Err(error) = client.try_subscribe(filter.clone(), QoS::AtLeastOnce) {
                    tracing::warn!(%error, "parking: could not subscribe");
                }
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                if handle(&state, &prefix, &p.topic, &p.payload).await == Settled::Yes
                    && let Err(error) = client.try_ack(&p)
                {
                    tracing::warn!(%error, "parking: could not acknowledge an MQTT report");
                }
            }
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(%error, %url, "parking: MQTT connection lost; retrying");
                tokio::select! {
                    () = &mut stop => break,
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    }
    let _ = client.try_disconnect();
}

/// The community and bay number a topic names, or why it does not.
pub fn topic_bay<'t>(prefix: &str, topic: &'t str) -> Result<(&'t str, &'t str), String> {
    let rest = topic
        .strip_prefix(prefix.trim_end_matches('/'))
        .and_then(|r| r.strip_prefix('/'))
        .ok_or_else(|| format!("topic {topic:?} is not under {prefix:?}"))?;
    match rest.split_once('/') {
        Some((c, b)) if !c.is_empty() && !b.is_empty() && !b.contains('/') => Ok((c, b)),
        _ => Err(format!(
            "topic {topic:?}: expected {prefix}/COMMUNITY/BAY_NUMBER"
        )),
    }
}

/// Whether a report is done with (applied, or refused for good) and may be acknowledged.
#[derive(Debug, PartialEq, Eq)]
enum Settled {
    Yes,
    /// Failed for a passing reason: left for the broker to send again.
    No,
}

async fn handle(state: &AppState, prefix: &str, topic: &str, payload: &[u8]) -> Settled {
    let (community, number) = match topic_bay(prefix, topic) {
        Ok(cb) => cb,
        Err(error) => {
            count("malformed");
            tracing::warn!(%error, "parking: MQTT message ignored");
            return Settled::Yes;
        }
    };
    if payload.len() > MAX_PAYLOAD {
        count("malformed");
        tracing::warn!(%topic, bytes = payload.len(), "parking: MQTT payload too large, ignored");
        return Settled::Yes;
    }
    let report: OccupancyReport = match serde_json::from_slice(payload) {
        Ok(r) => r,
        Err(error) => {
            count("malformed");
            tracing::warn!(%topic, %error, "parking: malformed MQTT payload ignored");
            return Settled::Yes;
        }
    };
    let bay = match state.store().bay_id_by_number(community, number).await {
        Ok(Some(bay)) => bay,
        Ok(None) => {
            count("unknown_bay");
            tracing::warn!(%topic, "parking: MQTT report for an unknown bay ignored");
            return Settled::Yes;
        }
        Err(error) => {
            count("error");
            tracing::error!(%error, %topic, "parking: could not look the bay up");
            return Settled::No;
        }
    };
    match state.parking().report(bay, report).await {
        Ok(_) => {
            count("ok");
            Settled::Yes
        }
        Err(error @ (ParkingError::Store(_) | ParkingError::Stopped)) => {
            count("error");
            tracing::warn!(%error, %topic, "parking: MQTT report not applied; the broker will send it again");
            Settled::No
        }
        Err(error) => {
            count("refused");
            tracing::warn!(%error, %topic, "parking: MQTT report refused");
            Settled::Yes
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_topics_parse_or_say_why_not() {
        assert_eq!(
            parse_url("mqtt://127.0.0.1:1883").unwrap(),
            ("127.0.0.1".into(), 1883)
        );
        assert_eq!(parse_url("mqtt://broker").unwrap(), ("broker".into(), 1883));
        assert!(parse_url("http://x:1").is_err());
        assert!(parse_url("mqtt://x:notaport").is_err());
        assert!(parse_url("mqtt://:1883").is_err());
        assert_eq!(
            topic_bay("orderly/parking", "orderly/parking/garden/B-12").unwrap(),
            ("garden", "B-12")
        );
        assert!(topic_bay("orderly/parking", "orderly/parking/garden").is_err());
        assert!(topic_bay("orderly/parking", "orderly/parking/garden/1/x").is_err());
        assert!(topic_bay("orderly/parking", "other/garden/1").is_err());
        assert!(topic_bay("orderly/parking", "orderly/parkingX/garden/1").is_err());
    }

    #[test]
    fn the_default_client_id_is_stable_per_database_and_prefix() {
        let config = |db: &str, prefix: &str| {
            let mut c = crate::config::Config {
                database_url: Some(db.to_owned()),
                ..Default::default()
            };
            c.parking.mqtt_topic_prefix = prefix.to_owned();
            c
        };
        let a = default_client_id(&config("postgres://h/a", "orderly/parking"));
        assert_eq!(
            a,
            default_client_id(&config("postgres://h/a", "orderly/parking"))
        );
        assert_eq!(a.len(), 23, "{a}");
        assert_ne!(
            a,
            default_client_id(&config("postgres://h/b", "orderly/parking"))
        );
        assert_ne!(a, default_client_id(&config("postgres://h/a", "other")));
    }

    #[test]
    fn bad_mqtt_settings_are_refused() {
        let mut c = crate::parking::ParkingConfig::default();
        assert!(check_config(&c).is_ok());
        c.mqtt_url = Some("http://broker".into());
        assert!(check_config(&c).unwrap_err().contains("mqtt_url"));
        c.mqtt_url = Some("mqtt://broker".into());
        c.mqtt_client_id = Some(String::new());
        assert!(check_config(&c).unwrap_err().contains("mqtt_client_id"));
        c.mqtt_client_id = Some("a b".into());
        assert!(check_config(&c).is_err());
        c.mqtt_client_id = Some("site-1".into());
        c.mqtt_topic_prefix = "x/#".into();
        assert!(check_config(&c).unwrap_err().contains("mqtt_topic_prefix"));
    }
}
