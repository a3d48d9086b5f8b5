//! Demand response in the server: the OpenADR 2.0b VEN driver (HTTP pull towards a VTN).
//! Grid commands given over HTTP are in `api`; both end up as `orderly_grid::GridCommand`s for the
//! community's controller.

pub mod openadr;
