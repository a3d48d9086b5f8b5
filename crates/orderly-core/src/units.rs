//! Physical quantities. Each is a transparent newtype over its natural representation: meter
//! registers in OCPP are integer watt-hours, plans are in kilowatts and kilowatt-hours.

use serde::{Deserialize, Serialize};
use std::ops::{Add, Sub};

macro_rules! quantity {
    ($(#[$m:meta])* $name:ident($inner:ty), $unit:literal) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, Default, PartialEq, PartialOrd, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub $inner);

        impl Add for $name {
            type Output = Self;
            fn add(self, o: Self) -> Self { Self(self.0 + o.0) }
        }
        impl Sub for $name {
            type Output = Self;
            fn sub(self, o: Self) -> Self { Self(self.0 - o.0) }
        }
        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{} {}", self.0, $unit)
            }
        }
    };
}

quantity!(
    /// Power in watts.
    Watts(f64), "W");
quantity!(
    /// Power in kilowatts.
    Kilowatts(f64), "kW");
quantity!(
    /// Energy in kilowatt-hours.
    KilowattHours(f64), "kWh");
quantity!(
    /// A meter register or energy in whole watt-hours, as OCPP 1.6 reports `meterStart`/`meterStop`.
    WattHours(i64), "Wh");
quantity!(
    /// Current in amperes (per phase).
    Amperes(f64), "A");

impl From<Kilowatts> for Watts {
    fn from(k: Kilowatts) -> Self {
        Watts(k.0 * 1000.0)
    }
}
impl From<Watts> for Kilowatts {
    fn from(w: Watts) -> Self {
        Kilowatts(w.0 / 1000.0)
    }
}
impl From<WattHours> for KilowattHours {
    fn from(wh: WattHours) -> Self {
        KilowattHours(wh.0 as f64 / 1000.0)
    }
}

impl Amperes {
    /// Power drawn at this current on `phases` phases of `volts` phase-to-neutral voltage.
    pub fn to_watts(self, volts: f64, phases: u8) -> Watts {
        Watts(self.0 * volts * f64::from(phases))
    }
}

impl Watts {
    /// Current per phase that draws this power on `phases` phases of `volts`.
    pub fn to_amperes(self, volts: f64, phases: u8) -> Amperes {
        Amperes(self.0 / (volts * f64::from(phases)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_round_trip() {
        let w: Watts = Kilowatts(7.4).into();
        assert!((w.0 - 7400.0).abs() < 1e-9);
        let a = w.to_amperes(230.0, 1);
        assert!((a.to_watts(230.0, 1).0 - 7400.0).abs() < 1e-9);
        assert_eq!(KilowattHours::from(WattHours(1500)), KilowattHours(1.5));
    }
}
