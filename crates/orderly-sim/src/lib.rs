//! orderly-sim (being built).
