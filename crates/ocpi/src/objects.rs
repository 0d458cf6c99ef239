//! The OCPI 2.2.1 objects this side sends and reads, with the standard's field names.

use serde::{Deserialize, Serialize};

/// One entry of `GET /versions`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Version {
    pub version: String,
    pub url: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum InterfaceRole {
    Sender,
    Receiver,
}

/// One module of a version's details.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Endpoint {
    pub identifier: String,
    pub role: InterfaceRole,
    pub url: String,
}

/// `GET /2.2.1`: the modules of the version and where they are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionDetails {
    pub version: String,
    pub endpoints: Vec<Endpoint>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BusinessDetails {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub website: Option<String>,
}

/// A role a party plays, in the credentials.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CredentialsRole {
    /// `CPO`, `EMSP`, `HUB`, `NAP`, `NSP`, `OTHER`, `SCSP`.
    pub role: String,
    pub business_details: BusinessDetails,
    pub party_id: String,
    pub country_code: String,
}

/// The credentials object: the token the other side is to use, its versions URL, its roles.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Credentials {
    pub token: String,
    pub url: String,
    pub roles: Vec<CredentialsRole>,
}

impl Credentials {
    /// What is wrong with credentials a partner sent, in the standard's words, if anything.
    pub fn problem(&self) -> Option<String> {
        if self.token.trim().is_empty() || self.token.len() > 64 {
            return Some("token must be 1 to 64 characters".to_owned());
        }
        if !self.token.bytes().all(|b| b.is_ascii_graphic()) {
            return Some("token must be printable ASCII".to_owned());
        }
        if !(self.url.starts_with("https://") || self.url.starts_with("http://")) {
            return Some("url must be the http(s) URL of the versions endpoint".to_owned());
        }
        if self.roles.is_empty() {
            return Some("roles must name at least one role".to_owned());
        }
        for r in &self.roles {
            if r.country_code.len() != 2 || r.party_id.is_empty() || r.party_id.len() > 3 {
                return Some(
                    "each role needs a 2-letter country_code and a party_id of 1 to 3 characters"
                        .to_owned(),
                );
            }
        }
        None
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GeoLocation {
    /// Decimal degrees as a string, as the standard has it.
    pub latitude: String,
    pub longitude: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    Available,
    Blocked,
    Charging,
    Inoperative,
    Outoforder,
    Planned,
    Removed,
    Reserved,
    Unknown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ConnectorType {
    /// GB/T 20234.3, DC.
    GbtDc,
    /// GB/T 20234.2, AC.
    GbtAc,
    /// CCS2.
    #[serde(rename = "IEC_62196_T2_COMBO")]
    Iec62196T2Combo,
    #[serde(rename = "IEC_62196_T2")]
    Iec62196T2,
    Chademo,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ConnectorFormat {
    Socket,
    Cable,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PowerType {
    #[serde(rename = "AC_1_PHASE")]
    Ac1Phase,
    #[serde(rename = "AC_3_PHASE")]
    Ac3Phase,
    #[serde(rename = "DC")]
    Dc,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Connector {
    pub id: String,
    pub standard: ConnectorType,
    pub format: ConnectorFormat,
    pub power_type: PowerType,
    pub max_voltage: u32,
    pub max_amperage: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_electric_power: Option<u32>,
    pub last_updated: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evse {
    pub uid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evse_id: Option<String>,
    pub status: Status,
    pub connectors: Vec<Connector>,
    pub last_updated: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Operator {
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Location {
    pub country_code: String,
    pub party_id: String,
    pub id: String,
    pub publish: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub address: String,
    pub city: String,
    pub country: String,
    pub coordinates: GeoLocation,
    pub time_zone: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub evses: Vec<Evse>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<Operator>,
    pub last_updated: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_are_spelled_as_the_standard() {
        let v = serde_json::to_value((
            Status::Outoforder,
            ConnectorType::GbtDc,
            ConnectorType::Iec62196T2Combo,
            ConnectorType::Chademo,
            PowerType::Ac3Phase,
            InterfaceRole::Sender,
            ConnectorFormat::Cable,
        ))
        .unwrap();
        assert_eq!(
            v,
            serde_json::json!([
                "OUTOFORDER",
                "GBT_DC",
                "IEC_62196_T2_COMBO",
                "CHADEMO",
                "AC_3_PHASE",
                "SENDER",
                "CABLE"
            ])
        );
    }

    #[test]
    fn credentials_are_checked() {
        let good = Credentials {
            token: "token-b-123".into(),
            url: "https://emsp.example/ocpi/versions".into(),
            roles: vec![CredentialsRole {
                role: "EMSP".into(),
                business_details: BusinessDetails {
                    name: "Nav".into(),
                    website: None,
                },
                party_id: "NAV".into(),
                country_code: "CN".into(),
            }],
        };
        assert_eq!(good.problem(), None);
        let mut bad = good.clone();
        bad.token = String::new();
        assert!(bad.problem().is_some());
        let mut bad = good.clone();
        bad.url = "ftp://x".into();
        assert!(bad.problem().is_some());
        let mut bad = good.clone();
        bad.roles[0].country_code = "CHN".into();
        assert!(bad.problem().is_some());
        let mut bad = good;
        bad.roles.clear();
        assert!(bad.problem().is_some());
    }
}
