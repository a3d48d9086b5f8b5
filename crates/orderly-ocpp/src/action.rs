//! The 28 actions of OCPP 1.6 core, who may initiate them, and their embedded OCA schemas.

use std::fmt;
use std::str::FromStr;

/// Who sends the CALL of an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Initiator {
    /// Charge point → central system (e.g. BootNotification).
    ChargePoint,
    /// Central system → charge point (e.g. Reset).
    CentralSystem,
    /// Either side (only DataTransfer).
    Both,
}

macro_rules! actions {
    ($( $name:ident => $initiator:ident ),+ $(,)?) => {
        /// An OCPP 1.6 core action. `as_str()` is the wire name (`"BootNotification"`).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Action {
            $( #[allow(missing_docs)] $name, )+
        }

        impl Action {
            /// Every OCPP 1.6 core action, in alphabetical order.
            pub const ALL: &'static [Action] = &[ $( Action::$name, )+ ];

            /// The action's name on the wire.
            pub const fn as_str(self) -> &'static str {
                match self { $( Action::$name => stringify!($name), )+ }
            }

            /// Who may send the CALL.
            pub const fn initiator(self) -> Initiator {
                match self { $( Action::$name => Initiator::$initiator, )+ }
            }

            /// The OCA JSON schema of the request (`<Action>.json`), BOM stripped.
            pub fn request_schema(self) -> &'static str {
                match self {
                    $( Action::$name => strip_bom(include_str!(concat!("../schemas/v16/", stringify!($name), ".json"))), )+
                }
            }

            /// The OCA JSON schema of the response (`<Action>Response.json`), BOM stripped.
            pub fn response_schema(self) -> &'static str {
                match self {
                    $( Action::$name => strip_bom(include_str!(concat!("../schemas/v16/", stringify!($name), "Response.json"))), )+
                }
            }
        }

        impl FromStr for Action {
            type Err = UnknownAction;
            /// Exact, case-sensitive match of the wire name (OCPP action names are case-sensitive).
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $( stringify!($name) => Ok(Action::$name), )+
                    _ => Err(UnknownAction(s.to_owned())),
                }
            }
        }
    };
}

actions! {
    Authorize => ChargePoint,
    BootNotification => ChargePoint,
    CancelReservation => CentralSystem,
    ChangeAvailability => CentralSystem,
    ChangeConfiguration => CentralSystem,
    ClearCache => CentralSystem,
    ClearChargingProfile => CentralSystem,
    DataTransfer => Both,
    DiagnosticsStatusNotification => ChargePoint,
    FirmwareStatusNotification => ChargePoint,
    GetCompositeSchedule => CentralSystem,
    GetConfiguration => CentralSystem,
    GetDiagnostics => CentralSystem,
    GetLocalListVersion => CentralSystem,
    Heartbeat => ChargePoint,
    MeterValues => ChargePoint,
    RemoteStartTransaction => CentralSystem,
    RemoteStopTransaction => CentralSystem,
    ReserveNow => CentralSystem,
    Reset => CentralSystem,
    SendLocalList => CentralSystem,
    SetChargingProfile => CentralSystem,
    StartTransaction => ChargePoint,
    StatusNotification => ChargePoint,
    StopTransaction => ChargePoint,
    TriggerMessage => CentralSystem,
    UnlockConnector => CentralSystem,
    UpdateFirmware => CentralSystem,
}

impl Action {
    /// Actions a charge point may send to us (the 10 charger-initiated ones incl. DataTransfer).
    pub fn charger_initiated() -> impl Iterator<Item = Action> {
        Self::ALL
            .iter()
            .copied()
            .filter(|a| a.initiator() != Initiator::CentralSystem)
    }

    /// Actions the central system may send to a charge point (the operator operations,
    /// 19 incl. DataTransfer). Use this to route `POST /chargers/{id}/operations/{Action}`.
    pub fn csms_initiated() -> impl Iterator<Item = Action> {
        Self::ALL
            .iter()
            .copied()
            .filter(|a| a.initiator() != Initiator::ChargePoint)
    }

    /// Whether the charge point may send this action as a CALL.
    pub fn is_charger_initiated(self) -> bool {
        self.initiator() != Initiator::CentralSystem
    }

    /// Whether the central system may send this action as a CALL.
    pub fn is_csms_initiated(self) -> bool {
        self.initiator() != Initiator::ChargePoint
    }

    /// Index into tables with one entry per action (`Action::ALL[i] == self`).
    pub(crate) fn index(self) -> usize {
        // `ALL` is declared in the same order as the enum, so the discriminant is the index.
        self as usize
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An action name that is not one of the 28 OCPP 1.6 core actions.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown OCPP 1.6 action {0:?}")]
pub struct UnknownAction(pub String);

/// The files as shipped may begin with a UTF-8 byte-order mark, which JSON parsers reject.
const fn strip_bom(s: &'static str) -> &'static str {
    match s.as_bytes() {
        [0xEF, 0xBB, 0xBF, rest @ ..] => match std::str::from_utf8(rest) {
            Ok(rest) => rest,
            Err(_) => s,
        },
        _ => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_index_matches_all() {
        assert_eq!(Action::ALL.len(), 28);
        for (i, a) in Action::ALL.iter().enumerate() {
            assert_eq!(a.index(), i);
            assert_eq!(a.as_str().parse::<Action>(), Ok(*a));
        }
        assert!("bootnotification".parse::<Action>().is_err());
        assert!("SignCertificate".parse::<Action>().is_err());
    }

    #[test]
    fn initiators_match_the_spec_lists() {
        let cp: Vec<_> = Action::charger_initiated().map(Action::as_str).collect();
        assert_eq!(
            cp,
            [
                "Authorize",
                "BootNotification",
                "DataTransfer",
                "DiagnosticsStatusNotification",
                "FirmwareStatusNotification",
                "Heartbeat",
                "MeterValues",
                "StartTransaction",
                "StatusNotification",
                "StopTransaction"
            ]
        );
        assert_eq!(Action::csms_initiated().count(), 19);
        assert!(Action::csms_initiated().any(|a| a == Action::DataTransfer));
        assert!(!Action::csms_initiated().any(|a| a == Action::Heartbeat));
    }

    #[test]
    fn bom_is_stripped() {
        assert_eq!(strip_bom("\u{feff}{}"), "{}");
        assert_eq!(strip_bom("{}"), "{}");
        for a in Action::ALL {
            assert!(a.request_schema().starts_with('{'), "{a}");
            assert!(a.response_schema().starts_with('{'), "{a}");
        }
    }
}
