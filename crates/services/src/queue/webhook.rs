//! The webhook notification adapter: each notification is POSTed as JSON to one configured
//! `http://` URL, by a minimal HTTP/1.1 client over a tokio `TcpStream` (one request per
//! connection, `Connection: close`). Delivery is best effort: a failure is logged, not retried,
//! and never holds up the queue.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use chargeops_queue::{Notification, Notifier};

const TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub(crate) struct Webhook {
    host: String,
    port: u16,
    path: String,
}

impl Webhook {
    pub(crate) fn new(url: &str) -> Result<Webhook, String> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("webhook url {url:?} is not http://"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => (
                h,
                p.parse::<u16>()
                    .map_err(|_| format!("webhook url {url:?} has a bad port"))?,
            ),
            None => (authority, 80),
        };
        if host.is_empty()
            || host.contains(['@', ' ', '\r', '\n'])
            || path.contains([' ', '\r', '\n'])
        {
            return Err(format!("webhook url {url:?} is not usable"));
        }
        Ok(Webhook {
            host: host.to_owned(),
            port,
            path: path.to_owned(),
        })
    }

    async fn post(&self, body: Vec<u8>) -> Result<u16, String> {
        let mut stream = tokio::net::TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let head = format!(
            "POST {} HTTP/1.1\r\nHost: {}:{}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nUser-Agent: chargeops-queue\r\nConnection: close\r\n\r\n",
            self.path,
            self.host,
            self.port,
            body.len()
        );
        stream
            .write_all(head.as_bytes())
            .await
            .map_err(|e| format!("write: {e}"))?;
        stream
            .write_all(&body)
            .await
            .map_err(|e| format!("write: {e}"))?;
        let mut buf = vec![0u8; 1024];
        let n = stream
            .read(&mut buf)
            .await
            .map_err(|e| format!("read: {e}"))?;
        let line = String::from_utf8_lossy(&buf[..n]);
        line.split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| "no HTTP status in the answer".to_owned())
    }
}

impl Notifier for Webhook {
    fn notify(&self, n: &Notification) {
        let Ok(body) = serde_json::to_vec(n) else {
            return;
        };
        let hook = self.clone();
        let ticket = n.ticket_id.clone();
        // Outside a runtime (a unit test of the queue rules) there is nothing to send with.
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        rt.spawn(async move {
            match tokio::time::timeout(TIMEOUT, hook.post(body)).await {
                Ok(Ok(status)) if (200..300).contains(&status) => {
                    tracing::debug!(ticket = %ticket, status, "queue webhook delivered");
                }
                Ok(Ok(status)) => {
                    tracing::warn!(ticket = %ticket, status, "queue webhook refused the notification");
                }
                Ok(Err(e)) => tracing::warn!(ticket = %ticket, error = %e, "queue webhook failed"),
                Err(_) => tracing::warn!(ticket = %ticket, "queue webhook timed out"),
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let w = Webhook::new("http://127.0.0.1:8099/hooks/queue").expect("url");
        assert_eq!(
            (w.host.as_str(), w.port, w.path.as_str()),
            ("127.0.0.1", 8099, "/hooks/queue")
        );
        assert_eq!(Webhook::new("http://localhost").map(|w| w.port), Ok(80));
        assert!(Webhook::new("https://x").is_err());
        assert!(Webhook::new("http://a b/").is_err());
        assert!(Webhook::new("http://h:99999/").is_err());
    }

    #[tokio::test]
    async fn posts_json_to_a_local_server() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.expect("accept");
            let mut got = Vec::new();
            let mut buf = [0u8; 2048];
            loop {
                let n = s.read(&mut buf).await.expect("read");
                got.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&got);
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("Content-Length: "))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    if body.len() >= len {
                        break;
                    }
                }
                if n == 0 {
                    break;
                }
            }
            s.write_all(b"HTTP/1.1 204 No Content\r\n\r\n")
                .await
                .expect("answer");
            String::from_utf8_lossy(&got).into_owned()
        });
        let w = Webhook::new(&format!("http://127.0.0.1:{port}/hook")).expect("url");
        let status = w.post(br#"{"number":7}"#.to_vec()).await.expect("post");
        assert_eq!(status, 204);
        let req = server.await.expect("server");
        assert!(req.starts_with("POST /hook HTTP/1.1\r\n"), "{req}");
        assert!(req.ends_with(r#"{"number":7}"#), "{req}");
    }
}
