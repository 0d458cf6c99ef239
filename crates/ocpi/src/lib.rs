//! OCPI 2.2.1, the charge point operator's side, with no IO: what the HTTP edge and the partner
//! service are built from.
//!
//! - [`envelope`]: every answer's `{data, status_code, status_message, timestamp}` and the
//!   standard's status codes; the `Authorization: Token <base64>` header.
//! - [`objects`]: versions, endpoints, credentials, locations, EVSEs and connectors, spelled as
//!   the standard spells them.
//! - [`network`]: the network as Locations: one per service-area side (a station), an EVSE per
//!   charger EVSE, statuses mapped from the platform's.
//! - [`page`]: the sender's paging (`date_from`, `date_to`, `offset`, `limit`) checked, and the
//!   `Link`, `X-Total-Count` and `X-Limit` headers of a page.

pub mod envelope;
pub mod network;
pub mod objects;
pub mod page;

/// The one version this side speaks.
pub const VERSION: &str = "2.2.1";
