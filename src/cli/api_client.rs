//! The daemon's API as the CLI calls it (`logwarden silence`, `logwarden state backup`): the
//! address is `api.listen` from the config, the token `api.token` from the config or, without
//! one, the token the daemon keeps beside its state database (`api.token`, mode 0600), as
//! CrowdSec's `cscli` reads its local API's credentials: whoever may read the daemon's state
//! may act on it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::config::ConfigError;
use crate::daemon::token::{self, TokenError};

/// Longest wait for the daemon's answer (it answers once what was asked is durable).
const TIMEOUT: Duration = Duration::from_secs(30);

/// Why a call to the daemon's API failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiClientError {
    /// The config could not be read.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The config has no `api:`.
    #[error("{config}: no `api:` section, so the daemon serves no API to ask")]
    NoApi {
        /// The config.
        config: String,
    },
    /// `api.listen` is not an address.
    #[error("{config}: `api.listen` `{listen}` is not an address such as 127.0.0.1:9600")]
    Listen {
        /// The config.
        config: String,
        /// What it says.
        listen: String,
    },
    /// No `api.token`, and the daemon's own token cannot be read.
    #[error(
        "{config} sets no `api.token` (or its variable is unset here), so the daemon's own \
         token is needed, and it cannot be used (run as the daemon's user or root, or set \
         `api.token`)"
    )]
    Token {
        /// The config.
        config: String,
        /// Why.
        #[source]
        source: TokenError,
    },
    /// Nothing answers at the API's address.
    #[error("no logwarden answers at {url} (is the daemon running with this config?)")]
    NotRunning {
        /// The API.
        url: String,
        /// What the connection said.
        #[source]
        source: reqwest::Error,
    },
    /// The daemon answered 401.
    #[error(
        "the daemon at {url} refused the token from {from}: a daemon started with `api.token` \
         needs the same value here"
    )]
    Refused {
        /// The API.
        url: String,
        /// Where the token came from.
        from: String,
    },
    /// The daemon answered with another error.
    #[error("the daemon refused ({status}): {message}")]
    Rejected {
        /// The HTTP status.
        status: u16,
        /// Its `error`, or the body.
        message: String,
    },
    /// The request failed midway, or the answer did not read.
    #[error("talking to the daemon at {url}")]
    Http {
        /// The API.
        url: String,
        /// What failed.
        #[source]
        source: reqwest::Error,
    },
    /// The async runtime could not start.
    #[error("cannot start the runtime")]
    Runtime(#[source] std::io::Error),
}

impl ApiClientError {
    /// A short name for the failure.
    pub fn kind(&self) -> &'static str {
        match self {
            ApiClientError::Config(_) => "config",
            ApiClientError::NoApi { .. } => "no_api",
            ApiClientError::Listen { .. } => "listen",
            ApiClientError::Token { .. } => "token",
            ApiClientError::NotRunning { .. } => "not_running",
            ApiClientError::Refused { .. } => "refused",
            ApiClientError::Rejected { .. } => "rejected",
            ApiClientError::Http { .. } => "http",
            ApiClientError::Runtime(_) => "runtime",
        }
    }
}

/// The daemon's API, with the token to call it with.
pub(crate) struct Client {
    base: reqwest::Url,
    token: String,
    /// Where the token came from, for a refusal's message.
    token_from: String,
    http: reqwest::Client,
    runtime: tokio::runtime::Runtime,
}

impl Client {
    pub(crate) fn connect(config: &Path) -> Result<Client, ApiClientError> {
        let shown = config.display().to_string();
        let api = crate::config::api_section(config)?
            .ok_or(ApiClientError::NoApi { config: shown.clone() })?;
        let listen = &api.listen.value;
        let addr: SocketAddr = listen.parse().map_err(|_| ApiClientError::Listen {
            config: shown.clone(),
            listen: listen.clone(),
        })?;
        let (token, token_from) = match api.token {
            Some(t) => (t, format!("`api.token` in {shown}")),
            None => {
                let path = token::path_for(&crate::config::state_path(config)?);
                let t = token::read(&path)
                    .map_err(|source| ApiClientError::Token { config: shown.clone(), source })?;
                (t, path.display().to_string())
            }
        };
        let base = base_url(addr);
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .build()
            .map_err(|source| ApiClientError::Http { url: base.to_string(), source })?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(ApiClientError::Runtime)?;
        Ok(Client { base, token, token_from, http, runtime })
    }

    /// The API URL of these path segments (each escaped).
    pub(crate) fn url(&self, segments: &[&str]) -> reqwest::Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.clear().extend(segments);
        }
        url
    }

    /// Sends one request; the answer's JSON (`null` for none), or why not.
    pub(crate) fn call(
        &self,
        method: reqwest::Method,
        url: reqwest::Url,
        body: Option<Value>,
    ) -> Result<Value, ApiClientError> {
        let shown = self.base.to_string();
        let mut req = self.http.request(method, url).bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        self.runtime.block_on(async {
            let resp = req.send().await.map_err(|source| {
                if source.is_connect() {
                    ApiClientError::NotRunning { url: shown.clone(), source }
                } else {
                    ApiClientError::Http { url: shown.clone(), source }
                }
            })?;
            let status = resp.status();
            let text = resp
                .text()
                .await
                .map_err(|source| ApiClientError::Http { url: shown.clone(), source })?;
            if status == reqwest::StatusCode::UNAUTHORIZED {
                return Err(ApiClientError::Refused {
                    url: shown.clone(),
                    from: self.token_from.clone(),
                });
            }
            let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            if !status.is_success() {
                let message =
                    value["error"].as_str().map_or_else(|| text.trim().to_owned(), str::to_owned);
                return Err(ApiClientError::Rejected { status: status.as_u16(), message });
            }
            Ok(value)
        })
    }
}

/// `http://ADDR/`, where an address bound on every interface is reached on loopback.
fn base_url(addr: SocketAddr) -> reqwest::Url {
    let ip = match addr.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    let text = format!("http://{}/", SocketAddr::new(ip, addr.port()));
    // A SocketAddr always makes a valid URL.
    #[allow(clippy::expect_used)]
    reqwest::Url::parse(&text).expect("an address is a valid URL host")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn an_address_on_every_interface_is_reached_on_loopback() {
        assert_eq!(base_url("0.0.0.0:9600".parse().unwrap()).as_str(), "http://127.0.0.1:9600/");
        assert_eq!(base_url("[::]:9600".parse().unwrap()).as_str(), "http://[::1]:9600/");
        assert_eq!(base_url("10.0.0.5:80".parse().unwrap()).as_str(), "http://10.0.0.5/");
    }
}
