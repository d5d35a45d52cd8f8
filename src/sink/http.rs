//! What the HTTP sinks (webhook, Slack) share: the client, URL checks, and how a response or
//! a transport error maps to retriable or permanent.

use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::{Client, StatusCode, Url};

use super::{SinkError, config_error};

/// How much of an error response's body goes into the error message: enough for Slack's
/// `invalid_payload` or a JSON error, not a whole HTML error page.
const BODY_EXCERPT_BYTES: usize = 512;

/// Builds the one client a sink keeps (its connection pool lives as long as the sink).
pub fn client(name: &str, timeout: Duration) -> Result<Client, SinkError> {
    Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        // A redirect of a POST is more likely a misconfigured URL than something to follow.
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| config_error(name, format!("HTTP client: {e}")))
}

/// Parses an `http`/`https` URL from the config.
pub fn parse_url(name: &str, key: &str, url: &str) -> Result<Url, SinkError> {
    let u = Url::parse(url).map_err(|e| config_error(name, format!("{key} `{url}`: {e}")))?;
    match u.scheme() {
        "http" | "https" => Ok(u),
        s => Err(config_error(name, format!("{key} `{url}`: scheme `{s}` is not http or https"))),
    }
}

/// POSTs `body` with `headers`, and maps the outcome: 2xx is delivered; 408, 429 and 5xx are
/// worth a retry; any other status is permanent; a connect error or timeout is retriable.
pub async fn post(
    client: &Client,
    url: &Url,
    headers: HeaderMap,
    body: Vec<u8>,
) -> Result<(), SinkError> {
    let resp = client
        .post(url.clone())
        .headers(headers)
        .body(body)
        .send()
        .await
        .map_err(|e| transport_error(url, e))?;
    let status = resp.status();
    if status.is_success() {
        return Ok(());
    }
    let excerpt = body_excerpt(resp).await;
    let msg = format!("{} answered {status}: {excerpt}", redacted(url));
    Err(if is_retriable_status(status) {
        SinkError::Retriable(msg)
    } else {
        SinkError::Permanent(msg)
    })
}

/// Whether a non-2xx status may succeed later.
pub fn is_retriable_status(status: StatusCode) -> bool {
    status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
        || status.is_server_error()
}

fn transport_error(url: &Url, e: reqwest::Error) -> SinkError {
    // reqwest's Display repeats the URL, which for Slack holds the secret token: print the
    // source chain without it.
    let e = e.without_url();
    let mut msg = format!("{}: {e}", redacted(url));
    let mut src = std::error::Error::source(&e);
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    // A request that never got a status (refused, reset, timed out, DNS) may well succeed
    // later; only a request we could not even build is our own fault.
    if e.is_builder() { SinkError::Permanent(msg) } else { SinkError::Retriable(msg) }
}

/// The URL without path or query: Slack and many webhooks carry a secret in them, and error
/// messages end up in logs.
fn redacted(url: &Url) -> String {
    format!("{}://{}", url.scheme(), url.host_str().unwrap_or("?"))
        + &url.port().map(|p| format!(":{p}")).unwrap_or_default()
}

async fn body_excerpt(mut resp: reqwest::Response) -> String {
    let mut buf = Vec::new();
    while buf.len() < BODY_EXCERPT_BYTES {
        match resp.chunk().await {
            Ok(Some(c)) => buf.extend_from_slice(&c),
            _ => break,
        }
    }
    buf.truncate(BODY_EXCERPT_BYTES);
    String::from_utf8_lossy(&buf).trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_mapping() {
        for (code, retriable) in
            [(408, true), (429, true), (500, true), (503, true), (400, false), (404, false)]
        {
            let s = StatusCode::from_u16(code).expect("valid");
            assert_eq!(is_retriable_status(s), retriable, "{code}");
        }
    }

    #[test]
    fn urls_are_checked_and_redacted() {
        assert!(parse_url("s", "url", "ftp://x/").is_err());
        assert!(parse_url("s", "url", "nope").is_err());
        let u = parse_url("s", "url", "https://hooks.slack.com:8443/services/T/B/secret")
            .expect("valid");
        assert_eq!(redacted(&u), "https://hooks.slack.com:8443");
    }
}
