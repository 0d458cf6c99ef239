//! A minimal HTTP/1.1 client for the robot interface and the lot's car endpoints: JSON in,
//! JSON out, over one kept-alive tokio `TcpStream` per caller.
//!
//! A robot reports every few simulated seconds; in the demo that is many requests a real
//! second across a few dozen robots, so each keeps its connection instead of paying a TCP
//! handshake per report. The workspace has no HTTP client crate and this needs only
//! `Content-Length` and chunked bodies, which is less code than a dependency.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Largest response head and body read: the lot view with its fifty ended cars is far smaller.
const MAX_HEAD: usize = 16 * 1024;
const MAX_BODY: usize = 8 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("failed to reach {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("connection to the platform failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("bad HTTP answer: {0}")]
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

/// A kept-alive connection to the platform, opened on first use and again after a failure.
#[derive(Debug)]
pub struct Http {
    addr: SocketAddr,
    timeout: Duration,
    conn: Option<BufReader<TcpStream>>,
}

impl Http {
    pub fn new(addr: SocketAddr) -> Http {
        Http {
            addr,
            timeout: Duration::from_secs(10),
            conn: None,
        }
    }

    /// Sends one request. `auth` is the whole `Authorization` header value. A kept-alive
    /// connection the server has closed meanwhile is retried once on a fresh one.
    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        auth: Option<&str>,
        body: Option<&Value>,
    ) -> Result<Answer, HttpError> {
        let body = body.map(Value::to_string).unwrap_or_default();
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nAccept: application/json\r\nUser-Agent: chargeops-sim\r\n",
            self.addr
        );
        if let Some(a) = auth {
            head.push_str(&format!("Authorization: {a}\r\n"));
        }
        if !body.is_empty() {
            head.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                body.len()
            ));
        } else if method != "GET" && method != "HEAD" {
            head.push_str("Content-Length: 0\r\n");
        }
        head.push_str("\r\n");
        let mut request = head.into_bytes();
        request.extend_from_slice(body.as_bytes());

        let reused = self.conn.is_some();
        match self.exchange(&request).await {
            Ok(a) => Ok(a),
            // The server may close an idle kept-alive connection at any time; only a request
            // on a new connection says something about the server.
            Err(HttpError::Io(_) | HttpError::Bad(_)) if reused => {
                self.conn = None;
                self.exchange(&request).await
            }
            Err(e) => Err(e),
        }
    }

    async fn exchange(&mut self, request: &[u8]) -> Result<Answer, HttpError> {
        let timeout = self.timeout;
        let result = tokio::time::timeout(timeout, async {
            if self.conn.is_none() {
                let stream =
                    TcpStream::connect(self.addr)
                        .await
                        .map_err(|source| HttpError::Connect {
                            addr: self.addr,
                            source,
                        })?;
                stream.set_nodelay(true)?;
                self.conn = Some(BufReader::new(stream));
            }
            let Some(conn) = self.conn.as_mut() else {
                return Err(HttpError::Bad("no connection".into()));
            };
            conn.get_mut().write_all(request).await?;
            read_answer(conn).await
        })
        .await;
        match result {
            Ok(Ok((answer, keep))) => {
                if !keep {
                    self.conn = None;
                }
                Ok(answer)
            }
            Ok(Err(e)) => {
                self.conn = None;
                Err(e)
            }
            Err(_) => {
                self.conn = None;
                Err(HttpError::Timeout(timeout))
            }
        }
    }
}

/// Reads one response; the flag says whether the connection may carry another request.
async fn read_answer(conn: &mut BufReader<TcpStream>) -> Result<(Answer, bool), HttpError> {
    let mut head = Vec::new();
    loop {
        let before = head.len();
        let n = conn.read_until(b'\n', &mut head).await?;
        if n == 0 {
            return Err(HttpError::Bad("connection closed before the answer".into()));
        }
        if head.len() > MAX_HEAD {
            return Err(HttpError::Bad("answer head too large".into()));
        }
        if head[before..] == *b"\r\n" || head[before..] == *b"\n" {
            break;
        }
    }
    let head = String::from_utf8_lossy(&head);
    let mut lines = head.lines();
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.split_whitespace();
    let version = parts.next().unwrap_or_default();
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .filter(|_| version.starts_with("HTTP/1."))
        .ok_or_else(|| HttpError::Bad(format!("status line {status_line:?}")))?;
    let mut length = None;
    let mut chunked = false;
    let mut keep = version == "HTTP/1.1";
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => {
                length = Some(
                    value
                        .parse::<usize>()
                        .map_err(|_| HttpError::Bad(format!("content-length {value:?}")))?,
                );
            }
            "transfer-encoding" => chunked = value.to_ascii_lowercase().contains("chunked"),
            "connection" => keep = !value.eq_ignore_ascii_case("close"),
            _ => {}
        }
    }
    let body = if chunked {
        read_chunked(conn).await?
    } else if let Some(n) = length {
        if n > MAX_BODY {
            return Err(HttpError::Bad(format!("body of {n} bytes")));
        }
        let mut body = vec![0; n];
        conn.read_exact(&mut body).await?;
        body
    } else if status == 204 || status == 304 || (100..200).contains(&status) {
        Vec::new()
    } else {
        // No length: the body runs to the end of the connection.
        keep = false;
        let mut body = Vec::new();
        conn.take(MAX_BODY as u64).read_to_end(&mut body).await?;
        body
    };
    let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
    Ok((Answer { status, json }, keep))
}

async fn read_chunked(conn: &mut BufReader<TcpStream>) -> Result<Vec<u8>, HttpError> {
    let mut body = Vec::new();
    loop {
        let mut line = String::new();
        if conn.read_line(&mut line).await? == 0 {
            return Err(HttpError::Bad(
                "connection closed inside a chunked body".into(),
            ));
        }
        let size = line.trim().split(';').next().unwrap_or_default();
        let size = usize::from_str_radix(size.trim(), 16)
            .map_err(|_| HttpError::Bad(format!("chunk size {size:?}")))?;
        if body.len() + size > MAX_BODY {
            return Err(HttpError::Bad("chunked body too large".into()));
        }
        if size == 0 {
            // Trailers, then the blank line.
            loop {
                line.clear();
                if conn.read_line(&mut line).await? == 0 || line.trim().is_empty() {
                    return Ok(body);
                }
            }
        }
        let start = body.len();
        body.resize(start + size, 0);
        conn.read_exact(&mut body[start..]).await?;
        line.clear();
        conn.read_line(&mut line).await?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
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
        let mut http = Http::new(addr);
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
        assert!(seen[0].contains("Authorization: Basic eDp5\r\n"));
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
        let mut http = Http::new(addr);
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
        let mut http = Http::new(addr);
        assert!(matches!(
            http.request("GET", "/", None, None).await,
            Err(HttpError::Connect { .. })
        ));
    }
}
