//! Sends buffered batches to an aggregator's HTTP intake: one `POST` of NDJSON (the ECS
//! lines), gzip-compressed when configured, with a bearer token; any 2xx acknowledges it.

use std::io::Write;

use bytes::Bytes;
use reqwest::header::{CONTENT_ENCODING, CONTENT_TYPE};
use reqwest::{Client, Url};

use super::buffer::Entry;
use super::{Compression, ForwardError, HttpConfig};

/// How much of an error response goes into the error: enough for the intake's JSON message.
const BODY_EXCERPT_BYTES: usize = 512;

/// The client for one `forward.http` destination (one connection pool, kept for the run).
#[derive(Debug)]
pub struct HttpSender {
    client: Client,
    url: Url,
    token: Option<String>,
    compression: Compression,
    target: String,
}

impl HttpSender {
    /// A sender for `cfg`; fails only on a bad URL or a client that cannot be built.
    pub fn new(cfg: &HttpConfig) -> Result<HttpSender, ForwardError> {
        let url = parse_url(&cfg.url)?;
        let client = Client::builder()
            .timeout(cfg.timeout)
            .connect_timeout(cfg.timeout)
            // A redirected POST is more likely a wrong URL than something to follow.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| ForwardError::Config(format!("HTTP client: {e}")))?;
        Ok(HttpSender {
            client,
            target: redacted(&url),
            url,
            token: cfg.token.clone(),
            compression: cfg.compression,
        })
    }

    /// Where to, for messages (scheme, host, port and path; no query).
    pub fn target(&self) -> &str {
        &self.target
    }

    /// POSTs the lines of `entries` in order; `Ok` only on a 2xx answer.
    pub async fn send(&self, entries: &[Entry]) -> Result<(), ForwardError> {
        let len: usize = entries.iter().map(|e| e.lines.len()).sum();
        let mut body = Vec::with_capacity(len);
        for e in entries {
            body.extend_from_slice(&e.lines);
        }
        let mut req =
            self.client.post(self.url.clone()).header(CONTENT_TYPE, "application/x-ndjson");
        if self.compression == Compression::Gzip {
            // Compressing a batch takes milliseconds of CPU: not on the async threads.
            body = tokio::task::spawn_blocking(move || gzip(&body))
                .await
                .map_err(|e| self.unreachable(format!("compression task failed: {e}")))?
                .map_err(|e| self.unreachable(format!("gzip: {e}")))?;
            req = req.header(CONTENT_ENCODING, "gzip");
        }
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let resp = req.body(Bytes::from(body)).send().await.map_err(|e| self.transport(e))?;
        let status = resp.status();
        // Read the answer whole, so the connection goes back to the pool.
        let answer = resp.bytes().await.unwrap_or_default();
        if status.is_success() {
            return Ok(());
        }
        let mut excerpt = String::from_utf8_lossy(&answer[..answer.len().min(BODY_EXCERPT_BYTES)])
            .trim()
            .to_owned();
        if excerpt.is_empty() {
            excerpt = "(no body)".into();
        }
        Err(ForwardError::Status {
            target: self.target.clone(),
            status: status.as_u16(),
            body: excerpt,
        })
    }

    fn unreachable(&self, detail: String) -> ForwardError {
        ForwardError::Unreachable { target: self.target.clone(), detail }
    }

    fn transport(&self, e: reqwest::Error) -> ForwardError {
        let e = e.without_url();
        let mut detail = e.to_string();
        let mut src = std::error::Error::source(&e);
        while let Some(s) = src {
            detail.push_str(": ");
            detail.push_str(&s.to_string());
            src = s.source();
        }
        self.unreachable(detail)
    }
}

fn gzip(body: &[u8]) -> std::io::Result<Vec<u8>> {
    // Level 1: ECS lines still shrink several times, for a fraction of the CPU of level 6.
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 4),
        flate2::Compression::fast(),
    );
    enc.write_all(body)?;
    enc.finish()
}

/// Parses an `http`/`https` URL.
pub fn parse_url(url: &str) -> Result<Url, ForwardError> {
    let u =
        Url::parse(url).map_err(|e| ForwardError::Config(format!("`http.url` `{url}`: {e}")))?;
    match u.scheme() {
        "http" | "https" => Ok(u),
        s => Err(ForwardError::Config(format!(
            "`http.url` `{url}`: scheme `{s}` is not http or https"
        ))),
    }
}

/// The URL without user info or query, which may hold secrets; error messages end up in logs.
fn redacted(url: &Url) -> String {
    let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
    format!("{}://{}{port}{}", url.scheme(), url.host_str().unwrap_or("?"), url.path())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn urls_are_checked_and_redacted() {
        assert!(parse_url("ftp://x/").is_err());
        assert!(parse_url("nope").is_err());
        let u = parse_url("https://user:pw@agg:9600/ingest?key=secret").unwrap();
        assert_eq!(redacted(&u), "https://agg:9600/ingest");
    }

    #[test]
    fn gzip_round_trips() {
        let z = gzip(b"{\"a\":1}\n{\"a\":2}\n").unwrap();
        let mut out = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(z.as_slice()), &mut out)
            .unwrap();
        assert_eq!(out, "{\"a\":1}\n{\"a\":2}\n");
    }
}
