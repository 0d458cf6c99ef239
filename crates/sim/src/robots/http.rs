//! The HTTP client of the robot interface and the lot's car endpoints: JSON in, JSON out, by
//! reqwest.
//!
//! A robot reports every few simulated seconds; in the demo that is many requests a real
//! second across a few dozen robots, so connections are pooled and kept alive instead of
//! paying a TCP handshake per report. One client (one pool) serves every caller in the process.

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::Value;

const TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("failed to reach {addr}: {}", chargeops_core::error::chain(.source))]
    Connect {
        addr: SocketAddr,
        #[source]
        source: reqwest::Error,
    },
    #[error("connection to the platform failed: {}", chargeops_core::error::chain(.0))]
    Transport(#[source] reqwest::Error),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("bad HTTP request: {0}")]
    Bad(String),
}

/// One answer: the status and the body, parsed as JSON when it is JSON (`Null` otherwise).
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub json: Value,
}

impl Answer {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The API's error message (`{"code", "message"}`), or the status.
    pub fn message(&self) -> String {
        self.json
            .get("message")
            .and_then(Value::as_str)
            .map_or_else(|| format!("HTTP {}", self.status), str::to_owned)
    }
}

/// The process's one client; building it reads the system trust roots, so it is done once.
fn client() -> Result<reqwest::Client, HttpError> {
    static CLIENT: OnceLock<Result<reqwest::Client, String>> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            reqwest::Client::builder()
                .timeout(TIMEOUT)
                .tcp_nodelay(true)
                .user_agent("chargeops-sim")
                .build()
                .map_err(|e| e.to_string())
        })
        .clone()
        .map_err(HttpError::Bad)
}

/// A caller of the platform at one address.
#[derive(Debug)]
pub struct Http {
    addr: SocketAddr,
}

impl Http {
    pub fn new(addr: SocketAddr) -> Http {
        Http { addr }
    }

    /// Sends one request. `auth` is the whole `Authorization` header value. A request that
    /// fails on the way (a kept-alive connection the server closed meanwhile) is sent once
    /// more; a refused connection is reported at once.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        auth: Option<&str>,
        body: Option<&Value>,
    ) -> Result<Answer, HttpError> {
        let method = reqwest::Method::from_bytes(method.as_bytes())
            .map_err(|_| HttpError::Bad(format!("method {method:?}")))?;
        let url = format!("http://{}{path}", self.addr);
        let mut request = client()?
            .request(method, &url)
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(a) = auth {
            request = request.header(reqwest::header::AUTHORIZATION, a);
        }
        if let Some(b) = body {
            request = request.json(b);
        }
        let again = request.try_clone();
        match (self.exchange(request).await, again) {
            (Err(HttpError::Transport(_)), Some(again)) => self.exchange(again).await,
            (result, _) => result,
        }
    }

    async fn exchange(&self, request: reqwest::RequestBuilder) -> Result<Answer, HttpError> {
        let answer = request.send().await.map_err(|e| self.error(e))?;
        let status = answer.status().as_u16();
        let bytes = answer.bytes().await.map_err(|e| self.error(e))?;
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok(Answer { status, json })
    }

    fn error(&self, e: reqwest::Error) -> HttpError {
        if e.is_timeout() {
            HttpError::Timeout(TIMEOUT)
        } else if e.is_connect() {
            HttpError::Connect {
                addr: self.addr,
                source: e,
            }
        } else if e.is_builder() {
            HttpError::Bad(e.to_string())
        } else {
            HttpError::Transport(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    use tokio::net::TcpListener;

    /// A server that answers each request on one connection with the next canned answer.
    async fn serve(
        answers: Vec<&'static str>,
    ) -> (SocketAddr, tokio::task::JoinHandle<Vec<String>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let task = tokio::spawn(async move {
            let mut seen = Vec::new();
            let (stream, _) = listener.accept().await.expect("accept");
            let mut conn = BufReader::new(stream);
            for answer in answers {
                let mut req = String::new();
                let mut length = 0;
                loop {
                    let mut line = String::new();
                    if conn.read_line(&mut line).await.expect("read") == 0 {
                        return seen;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().expect("length");
                    }
                    req.push_str(&line);
                    if line == "\r\n" {
                        break;
                    }
                }
                let mut body = vec![0; length];
                conn.read_exact(&mut body).await.expect("body");
                req.push_str(&String::from_utf8_lossy(&body));
                seen.push(req);
                conn.get_mut()
                    .write_all(answer.as_bytes())
                    .await
                    .expect("write");
            }
            seen
        });
        (addr, task)
    }

    #[tokio::test]
    async fn json_over_one_kept_alive_connection_with_length_and_chunks() {
        let (addr, server) = serve(vec![
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 13\r\n\r\n{\"task\":null}",
            "HTTP/1.1 409 Conflict\r\nTransfer-Encoding: chunked\r\n\r\n7\r\n{\"code\"\r\n1a\r\n:\"conflict\",\"message\":\"no\"\r\n1\r\n}\r\n0\r\n\r\n",
        ])
        .await;
        let http = Http::new(addr);
        let a = http
            .request("POST", "/r", Some("Basic eDp5"), Some(&json!({"x": 1})))
            .await
            .expect("first");
        assert_eq!((a.status, a.json.clone()), (200, json!({"task": null})));
        let b = http.request("GET", "/c", None, None).await.expect("second");
        assert_eq!(b.status, 409);
        assert!(!b.ok());
        assert_eq!(b.message(), "no");
        let seen = server.await.expect("server");
        assert_eq!(seen.len(), 2, "both requests on the one connection");
        assert!(seen[0].starts_with("POST /r HTTP/1.1\r\n"), "{}", seen[0]);
        assert!(
            seen[0]
                .to_ascii_lowercase()
                .contains("authorization: basic edp5\r\n"),
            "{}",
            seen[0]
        );
        assert!(seen[0].ends_with("\r\n\r\n{\"x\":1}"), "{}", seen[0]);
        assert!(seen[1].starts_with("GET /c HTTP/1.1\r\n"));
    }

    #[tokio::test]
    async fn a_closed_kept_alive_connection_is_replaced_once() {
        // The first server answers once and closes; the request after goes to a new
        // connection on the same listener.
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            for _ in 0..2 {
                let (mut s, _) = listener.accept().await.expect("accept");
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\n{}")
                    .await;
                // Dropped: the connection closes without a word.
            }
        });
        let http = Http::new(addr);
        for _ in 0..2 {
            let a = http
                .request("DELETE", "/x", None, None)
                .await
                .expect("answer");
            assert_eq!(a.status, 201);
        }
    }

    #[tokio::test]
    async fn nothing_listening_is_an_error_not_a_panic() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        drop(listener);
        let http = Http::new(addr);
        assert!(matches!(
            http.request("GET", "/", None, None).await,
            Err(HttpError::Connect { .. })
        ));
    }
}
