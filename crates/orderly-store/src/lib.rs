//! orderly-store (being built).
