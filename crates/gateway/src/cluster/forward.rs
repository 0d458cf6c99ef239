//! Requests for the background duties' books, carried to the node that runs them.
//!
//! The queue, the robot lots, the mobile units and the cases are kept by one node at a time
//! (the holder of the duties lease), which keeps them in step with the store. Any other node
//! takes such an HTTP request as it came, sends it over NATS to the holder
//! (`<cluster>.http.<holder>`), and answers with the holder's response: a client sees one
//! platform, whichever node it reached.
//!
//! Tag checks go the same way (`<cluster>.tags.<holder>`): a queue ticket's or a robot's car's
//! tag presented at a charger on any node is vouched for by the holder's books.

use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, Method, Request, Response, StatusCode, Uri};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};

/// Set on a request that came from another node, so it is served here and not sent on.
#[derive(Debug, Clone)]
pub struct Forwarded {
    pub from: String,
}

/// How long the holder may take over a forwarded request.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a tag check may take (a charger is waiting on the answer).
pub const TAG_TIMEOUT: Duration = Duration::from_secs(3);
/// Headers not carried: they describe the hop, not the request.
const HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
];

/// A request as it travels.
#[derive(Debug, Serialize, Deserialize)]
pub struct WireHttp {
    pub from: String,
    pub method: String,
    pub uri: String,
    pub headers: Vec<(String, String)>,
    /// Base64.
    pub body: String,
}

/// A response as it travels back.
#[derive(Debug, Serialize, Deserialize)]
pub struct WireHttpReply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct WireTag {
    pub charger_id: String,
    pub id_tag: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct WireTagReply {
    pub accepted: bool,
}

/// Why a request could not be carried.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error("no node runs the platform's duties right now (the lease is moving); retry shortly")]
    NoHolder,
    #[error("the node running the duties ({0}) did not answer; retry shortly")]
    Unreachable(String),
    #[error("the request is too large to carry to the node running the duties ({0} bytes)")]
    TooLarge(usize),
    #[error("the node running the duties answered something unreadable")]
    BadReply,
}

fn headers_of(map: &axum::http::HeaderMap) -> Vec<(String, String)> {
    map.iter()
        .filter(|(k, _)| !HOP.contains(&k.as_str()))
        .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
        .collect()
}

/// Wire headers back to a header map, leaving out the hop's own and any that do not parse.
fn header_map(pairs: &[(String, String)]) -> axum::http::HeaderMap {
    pairs
        .iter()
        .filter_map(|(k, v)| {
            let name = HeaderName::from_bytes(k.as_bytes()).ok()?;
            let value = HeaderValue::from_str(v).ok()?;
            (!HOP.contains(&name.as_str())).then_some((name, value))
        })
        .collect()
}

/// A request to wire form (the body read whole, up to `limit` bytes).
pub async fn to_wire(
    from: &str,
    req: Request<Body>,
    limit: usize,
) -> Result<WireHttp, ForwardError> {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| ForwardError::TooLarge(limit))?;
    Ok(WireHttp {
        from: from.to_owned(),
        method: parts.method.as_str().to_owned(),
        uri: parts
            .uri
            .path_and_query()
            .map_or_else(|| parts.uri.path().to_owned(), |p| p.as_str().to_owned()),
        headers: headers_of(&parts.headers),
        body: B64.encode(&bytes),
    })
}

/// A wire request back to an HTTP request for the local router, marked [`Forwarded`].
pub fn from_wire(wire: WireHttp) -> Option<Request<Body>> {
    let method = Method::from_bytes(wire.method.as_bytes()).ok()?;
    let uri: Uri = wire.uri.parse().ok()?;
    let body = B64.decode(wire.body.as_bytes()).ok()?;
    let mut req = Request::builder()
        .method(method)
        .uri(uri)
        .body(Body::from(body))
        .ok()?;
    *req.headers_mut() = header_map(&wire.headers);
    req.extensions_mut().insert(Forwarded { from: wire.from });
    Some(req)
}

/// A response to wire form, its body read up to `limit` bytes (beyond: 502).
pub async fn reply_to_wire(resp: Response<Body>, limit: usize) -> WireHttpReply {
    let (parts, body) = resp.into_parts();
    match axum::body::to_bytes(body, limit).await {
        Ok(bytes) => WireHttpReply {
            status: parts.status.as_u16(),
            headers: headers_of(&parts.headers),
            body: B64.encode(&bytes),
        },
        Err(_) => WireHttpReply {
            status: StatusCode::BAD_GATEWAY.as_u16(),
            headers: vec![("content-type".into(), "application/json".into())],
            body: B64.encode(
                serde_json::json!({
                    "code": "too_large",
                    "message": "the answer is too large to carry between nodes; ask the node running the duties directly",
                })
                .to_string(),
            ),
        },
    }
}

/// A wire reply back to a response.
pub fn reply_from_wire(wire: WireHttpReply) -> Result<Response<Body>, ForwardError> {
    let status = StatusCode::from_u16(wire.status).map_err(|_| ForwardError::BadReply)?;
    let body = B64
        .decode(wire.body.as_bytes())
        .map_err(|_| ForwardError::BadReply)?;
    let mut resp = Response::builder()
        .status(status)
        .body(Body::from(body))
        .map_err(|_| ForwardError::BadReply)?;
    *resp.headers_mut() = header_map(&wire.headers);
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn requests_and_replies_cross_intact() {
        let req = Request::builder()
            .method("POST")
            .uri("/api/v1/stations/S1/queue?x=1")
            .header("authorization", "Bearer abc")
            .header("content-type", "application/json")
            .header("connection", "keep-alive")
            .body(Body::from("{\"plate\":\"湘A\"}"))
            .unwrap();
        let wire = to_wire("n1", req, 1 << 20).await.unwrap();
        let text = serde_json::to_string(&wire).unwrap();
        let back = from_wire(serde_json::from_str(&text).unwrap()).unwrap();
        assert_eq!(back.method(), Method::POST);
        assert_eq!(back.uri(), "/api/v1/stations/S1/queue?x=1");
        assert_eq!(back.headers()["authorization"], "Bearer abc");
        assert!(back.headers().get("connection").is_none());
        assert_eq!(back.extensions().get::<Forwarded>().unwrap().from, "n1");
        let body = axum::body::to_bytes(back.into_body(), 1024).await.unwrap();
        assert_eq!(&body[..], "{\"plate\":\"湘A\"}".as_bytes());

        let resp = Response::builder()
            .status(201)
            .header("content-type", "application/json")
            .body(Body::from("{}"))
            .unwrap();
        let wire = reply_to_wire(resp, 1024).await;
        let resp = reply_from_wire(wire).unwrap();
        assert_eq!(resp.status(), 201);
        let big = Response::new(Body::from(vec![b'x'; 2048]));
        assert_eq!(reply_to_wire(big, 1024).await.status, 502);
        let too_big = Request::new(Body::from(vec![0u8; 2048]));
        assert!(matches!(
            to_wire("n1", too_big, 1024).await,
            Err(ForwardError::TooLarge(1024))
        ));
        assert!(
            from_wire(WireHttp {
                from: "n".into(),
                method: "GET".into(),
                uri: "not a uri at all".into(),
                headers: vec![],
                body: String::new(),
            })
            .is_none()
        );
    }
}
