//! The webhook notification adapter: each notification is POSTed as JSON to one configured
//! `http://` or `https://` URL by reqwest (connections pooled and kept alive, TLS on rustls with
//! the system's trust roots). Delivery is best effort: a failure is logged, not retried, and
//! never holds up the queue.

use std::time::Duration;

use chargeops_queue::{Notification, Notifier};

const TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub(crate) struct Webhook {
    url: reqwest::Url,
    client: reqwest::Client,
}

impl Webhook {
    pub(crate) fn new(url: &str) -> Result<Webhook, String> {
        let parsed = reqwest::Url::parse(url)
            .map_err(|e| format!("webhook url {url:?} is not usable: {e}"))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(format!("webhook url {url:?} is not http:// or https://"));
        }
        if parsed.host_str().is_none_or(str::is_empty) {
            return Err(format!("webhook url {url:?} has no host"));
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(format!(
                "webhook url {url:?} carries credentials; the webhook sends none"
            ));
        }
        let client = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .user_agent("chargeops-queue")
            .build()
            .map_err(|e| format!("webhook client: {e}"))?;
        Ok(Webhook {
            url: parsed,
            client,
        })
    }

    async fn post(&self, body: Vec<u8>) -> Result<u16, String> {
        let answer = self
            .client
            .post(self.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| {
                if e.is_timeout() {
                    return "timed out".to_owned();
                }
                chargeops_core::error::chain(&e)
            })?;
        Ok(answer.status().as_u16())
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
            match hook.post(body).await {
                Ok(status) if (200..300).contains(&status) => {
                    tracing::debug!(ticket = %ticket, status, "queue webhook delivered");
                }
                Ok(status) => {
                    tracing::warn!(ticket = %ticket, status, "queue webhook refused the notification");
                }
                Err(e) => tracing::warn!(ticket = %ticket, error = %e, "queue webhook failed"),
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[test]
    fn urls() {
        let w = Webhook::new("http://127.0.0.1:8099/hooks/queue").expect("url");
        assert_eq!(
            (w.url.host_str(), w.url.port(), w.url.path()),
            (Some("127.0.0.1"), Some(8099), "/hooks/queue")
        );
        assert_eq!(
            Webhook::new("http://localhost").map(|w| w.url.port_or_known_default()),
            Ok(Some(80))
        );
        assert!(Webhook::new("https://partner.example/hook").is_ok());
        assert!(Webhook::new("ftp://x/").is_err());
        assert!(Webhook::new("http://a b/").is_err());
        assert!(Webhook::new("http://h:99999/").is_err());
        assert!(Webhook::new("http://user:pw@h/").is_err());
        assert!(Webhook::new("not a url").is_err());
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
                        .find_map(|l| {
                            let (name, value) = l.split_once(':')?;
                            name.eq_ignore_ascii_case("content-length").then_some(value)
                        })
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
        assert!(
            req.to_ascii_lowercase()
                .contains("content-type: application/json\r\n"),
            "{req}"
        );
        assert!(req.ends_with(r#"{"number":7}"#), "{req}");
    }
}
