//! orderly-ocpp (being built).
