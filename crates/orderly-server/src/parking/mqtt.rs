//! Occupancy reports over MQTT: subscribes to `{prefix}/+/+` (topic
//! `{prefix}/{community_id}/{bay_number}`, payload an [`OccupancyReport`] as JSON) and hands
//! each report to the parking task. A malformed message is logged and counted
//! (`orderly_parking_reports_total{via="mqtt",outcome=...}`), never fatal; when the broker goes
//! away the client reconnects (and subscribes again) every second until it is back.

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

fn count(outcome: &'static str) {
    metrics::counter!(REPORTS_TOTAL, "via" => "mqtt", "outcome" => outcome).increment(1);
}

/// Runs the subscriber until `stop` completes.
pub async fn run(
    state: AppState,
    url: String,
    prefix: String,
    stop: impl Future<Output = ()> + Send + 'static,
) {
    let (host, port) = match parse_url(&url) {
        Ok(hp) => hp,
        Err(error) => {
            tracing::error!(%error, "parking: MQTT disabled");
            return;
        }
    };
    let client_id = format!("orderly-parking-{:016x}", rand::random::<u64>());
    let mut options = MqttOptions::new(client_id, host, port);
    options.set_keep_alive(Duration::from_secs(30));
    // A clean session: subscriptions are made again at every ConnAck.
    options.set_clean_session(true);
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
                tracing::info!(%url, %filter, "parking: connected to the MQTT broker");
                if let Err(error) = client.try_subscribe(filter.clone(), QoS::AtLeastOnce) {
                    tracing::warn!(%error, "parking: could not subscribe");
                }
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                handle(&state, &prefix, &p.topic, &p.payload).await;
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

async fn handle(state: &AppState, prefix: &str, topic: &str, payload: &[u8]) {
    let (community, number) = match topic_bay(prefix, topic) {
        Ok(cb) => cb,
        Err(error) => {
            count("malformed");
            tracing::warn!(%error, "parking: MQTT message ignored");
            return;
        }
    };
    if payload.len() > MAX_PAYLOAD {
        count("malformed");
        tracing::warn!(%topic, bytes = payload.len(), "parking: MQTT payload too large, ignored");
        return;
    }
    let report: OccupancyReport = match serde_json::from_slice(payload) {
        Ok(r) => r,
        Err(error) => {
            count("malformed");
            tracing::warn!(%topic, %error, "parking: malformed MQTT payload ignored");
            return;
        }
    };
    let bay = match state.store().bay_id_by_number(community, number).await {
        Ok(Some(bay)) => bay,
        Ok(None) => {
            count("unknown_bay");
            tracing::warn!(%topic, "parking: MQTT report for an unknown bay ignored");
            return;
        }
        Err(error) => {
            count("error");
            tracing::error!(%error, %topic, "parking: could not look the bay up");
            return;
        }
    };
    match state.parking().report(bay, report).await {
        Ok(_) => count("ok"),
        Err(error @ (ParkingError::Store(_) | ParkingError::Stopped)) => {
            count("error");
            tracing::warn!(%error, %topic, "parking: MQTT report not applied");
        }
        Err(error) => {
            count("refused");
            tracing::warn!(%error, %topic, "parking: MQTT report refused");
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
}
