//! Opening the socket: TCP (directly, or through the outbound proxy the
//! environment names), then TLS for `wss://`, then the WebSocket handshake.
//!
//! Teams that run Socket Mode because nothing may reach them from outside
//! often let nothing out either except through a proxy. The Web API client
//! (reqwest) honours the usual variables on its own; the socket follows the
//! same ones, so both go the same way: `HTTPS_PROXY` (for `wss://`) or
//! `HTTP_PROXY` (for `ws://`), else `ALL_PROXY`, lower-case names too;
//! `NO_PROXY` lists hosts (and domain suffixes, `*` for all) that go direct.
//! Through a proxy the socket is an HTTP `CONNECT` tunnel (RFC 9110 §9.3.6),
//! with `Proxy-Authorization: Basic` when the proxy URL carries a user.
//!
//! Nothing here logs the socket's URL (it carries a one-time ticket) or the
//! proxy's credentials.

use std::time::Duration;

use base64::Engine as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::http::Uri;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// An open Socket Mode socket.
pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The longest answer to `CONNECT` a proxy may send before the tunnel opens.
const MAX_PROXY_HEAD: usize = 16 * 1024;

/// The outbound proxy settings, read once from the environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Proxies {
    https: Option<String>,
    http: Option<String>,
    all: Option<String>,
    no_proxy: Vec<String>,
}

impl Proxies {
    /// From the variables `env` gives (the process environment in `klaxon serve`).
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>) -> Proxies {
        let var = |upper: &str| {
            env(upper)
                .or_else(|| env(&upper.to_ascii_lowercase()))
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        Proxies {
            https: var("HTTPS_PROXY"),
            http: var("HTTP_PROXY"),
            all: var("ALL_PROXY"),
            no_proxy: var("NO_PROXY")
                .map(|v| {
                    v.split(',')
                        .map(|h| h.trim().to_ascii_lowercase())
                        .filter(|h| !h.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// The proxy for a socket to `host` over `scheme` (`ws` or `wss`), if any.
    fn for_target(&self, scheme: &str, host: &str) -> Option<&str> {
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        let ip: Option<std::net::IpAddr> = host.parse().ok();
        let direct = self.no_proxy.iter().any(|entry| {
            if let (Some(ip), Some((net, bits))) = (ip, entry.split_once('/')) {
                return in_network(ip, net, bits);
            }
            let entry = if entry.parse::<std::net::IpAddr>().is_ok() {
                entry.as_str()
            } else {
                entry.split(':').next().unwrap_or_default()
            };
            let suffix = entry.trim_start_matches("*.").trim_start_matches('.');
            entry == "*" || host == suffix || host.ends_with(&format!(".{suffix}"))
        });
        if direct {
            return None;
        }
        let specific = if scheme == "wss" {
            &self.https
        } else {
            &self.http
        };
        specific.as_deref().or(self.all.as_deref())
    }
}

/// Whether `ip` is in the network `net`/`bits` (a `NO_PROXY` CIDR entry).
fn in_network(ip: std::net::IpAddr, net: &str, bits: &str) -> bool {
    use std::net::IpAddr;
    let (Ok(net), Ok(bits)) = (net.parse::<IpAddr>(), bits.parse::<u32>()) else {
        return false;
    };
    match (ip, net) {
        (IpAddr::V4(ip), IpAddr::V4(net)) if bits <= 32 => {
            let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) if bits <= 128 => {
            let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
            u128::from(ip) & mask == u128::from(net) & mask
        }
        _ => false,
    }
}

/// Why a socket could not be opened (no secret in it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectError {
    #[error("the socket URL is not a ws:// or wss:// URL")]
    BadUrl,
    #[error(
        "the proxy URL is not http://[user:password@]host:port (the socket cannot use an https:// proxy)"
    )]
    BadProxy,
    #[error("cannot reach {0}: {1}")]
    Tcp(String, String),
    #[error("the proxy refused the tunnel: {0}")]
    ProxyRefused(String),
    #[error("the WebSocket handshake failed: {0}")]
    Handshake(String),
}

/// Opens the WebSocket at `url` (`ws://` or `wss://`), through a proxy when
/// `proxies` names one for its host, within `timeout` for each step.
pub async fn open(url: &str, proxies: &Proxies, timeout: Duration) -> Result<Socket, ConnectError> {
    let uri: Uri = url.parse().map_err(|_| ConnectError::BadUrl)?;
    let scheme = uri.scheme_str().ok_or(ConnectError::BadUrl)?;
    let host = uri.host().ok_or(ConnectError::BadUrl)?.to_string();
    // `Uri` reads a port past 65,535 as no port at all; refuse it rather
    // than fall back to the scheme's port.
    let authority = uri.authority().ok_or(ConnectError::BadUrl)?.as_str();
    if let Some((_, port)) = authority.rsplit_once(':')
        && !port.ends_with(']')
        && port.parse::<u16>().is_err()
    {
        return Err(ConnectError::BadUrl);
    }
    let port = match (uri.port_u16(), scheme) {
        (Some(p), _) => p,
        (None, "wss") => 443,
        (None, "ws") => 80,
        _ => return Err(ConnectError::BadUrl),
    };
    let target = format!("{host}:{port}");
    let stream = match proxies.for_target(scheme, &host) {
        Some(proxy) => tunnel(proxy, &target, timeout).await?,
        None => tcp(&target, timeout).await?,
    };
    // Nagle off: an acknowledgement is one small frame that must not wait for
    // the previous one's TCP ACK.
    let _ = stream.set_nodelay(true);
    let handshake = tokio_tungstenite::client_async_tls_with_config(url, stream, None, None);
    match tokio::time::timeout(timeout, handshake).await {
        Ok(Ok((socket, _))) => Ok(socket),
        Ok(Err(e)) => Err(ConnectError::Handshake(e.to_string())),
        Err(_) => Err(ConnectError::Handshake("timed out".into())),
    }
}

async fn tcp(target: &str, timeout: Duration) -> Result<TcpStream, ConnectError> {
    match tokio::time::timeout(timeout, TcpStream::connect(target)).await {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(e)) => Err(ConnectError::Tcp(target.to_string(), e.to_string())),
        Err(_) => Err(ConnectError::Tcp(target.to_string(), "timed out".into())),
    }
}

/// A `CONNECT` tunnel to `target` through the HTTP proxy at `proxy`.
async fn tunnel(proxy: &str, target: &str, timeout: Duration) -> Result<TcpStream, ConnectError> {
    let uri: Uri = proxy.parse().map_err(|_| ConnectError::BadProxy)?;
    if uri.scheme_str().is_some_and(|s| s != "http") {
        return Err(ConnectError::BadProxy);
    }
    let authority = uri.authority().ok_or(ConnectError::BadProxy)?;
    let address = format!(
        "{}:{}",
        authority.host(),
        authority.port_u16().unwrap_or(80)
    );
    let credentials = authority.as_str().rsplit_once('@').map(|(userinfo, _)| {
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        };
        let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
        base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            decode(user),
            decode(password)
        ))
    });
    let mut stream = tcp(&address, timeout).await?;
    let mut request = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
    if let Some(c) = credentials {
        request.push_str(&format!("Proxy-Authorization: Basic {c}\r\n"));
    }
    request.push_str("\r\n");
    let exchange = async {
        stream.write_all(request.as_bytes()).await?;
        // Read the proxy's answer up to its blank line, byte by byte so that
        // nothing of the tunnel's first bytes is taken.
        let mut head = Vec::with_capacity(256);
        let mut byte = [0u8; 1];
        // RFC 9112 allows a bare LF as the line end.
        while !(head.ends_with(b"\n\r\n") || head.ends_with(b"\n\n")) {
            if stream.read(&mut byte).await? == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the proxy closed the connection",
                ));
            }
            head.push(byte[0]);
            if head.len() > MAX_PROXY_HEAD {
                return Err(std::io::Error::other("the proxy's answer is too long"));
            }
        }
        Ok(head)
    };
    let head = match tokio::time::timeout(timeout, exchange).await {
        Ok(Ok(head)) => head,
        Ok(Err(e)) => return Err(ConnectError::ProxyRefused(e.to_string())),
        Err(_) => return Err(ConnectError::ProxyRefused("no answer in time".into())),
    };
    let status_line = String::from_utf8_lossy(&head)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string();
    let ok = status_line
        .split_whitespace()
        .nth(1)
        .is_some_and(|code| code.starts_with('2'));
    if ok {
        Ok(stream)
    } else {
        Err(ConnectError::ProxyRefused(status_line))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Proxies {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Proxies::from_env(&move |k| {
            pairs
                .iter()
                .find(|(name, _)| name == k)
                .map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn the_socket_takes_the_proxy_its_scheme_names_and_no_proxy_hosts_go_direct() {
        let p = env(&[
            ("HTTPS_PROXY", "http://proxy.internal:3128"),
            ("http_proxy", "http://plain.internal:8080"),
            ("NO_PROXY", "localhost, .corp.example, 127.0.0.1:9000"),
        ]);
        assert_eq!(
            p.for_target("wss", "wss-primary.slack.com"),
            Some("http://proxy.internal:3128")
        );
        assert_eq!(
            p.for_target("ws", "slack.test"),
            Some("http://plain.internal:8080")
        );
        assert_eq!(p.for_target("wss", "chat.corp.example"), None);
        assert_eq!(p.for_target("wss", "corp.example"), None);
        assert_eq!(p.for_target("ws", "127.0.0.1"), None);
        assert_eq!(p.for_target("ws", "LOCALHOST"), None);
        assert_eq!(
            p.for_target("wss", "notcorp.example"),
            Some("http://proxy.internal:3128"),
            "a suffix matches at a dot only"
        );
        let all = env(&[("ALL_PROXY", "http://all:1"), ("NO_PROXY", "*")]);
        assert_eq!(all.for_target("wss", "wss-primary.slack.com"), None);
        let all = env(&[("all_proxy", "http://all:1")]);
        assert_eq!(
            all.for_target("wss", "wss-primary.slack.com"),
            Some("http://all:1")
        );
        assert_eq!(env(&[]).for_target("wss", "slack.com"), None);
        let cidr = env(&[
            ("ALL_PROXY", "http://all:1"),
            ("NO_PROXY", "127.0.0.0/8,fd00::/8"),
        ]);
        assert_eq!(cidr.for_target("ws", "127.0.0.1"), None);
        assert_eq!(cidr.for_target("ws", "[fd00::5]"), None);
        assert_eq!(cidr.for_target("ws", "128.0.0.1"), Some("http://all:1"));
        assert_eq!(cidr.for_target("ws", "slack.com"), Some("http://all:1"));
    }

    #[tokio::test]
    async fn a_proxy_that_refuses_the_tunnel_is_an_error_naming_its_answer() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            if let Ok((mut s, _)) = listener.accept().await {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n")
                    .await;
            }
        });
        let proxies = env(&[("HTTP_PROXY", &format!("http://u:p%40ss@{addr}"))]);
        let err = open(
            "ws://slack.test/link/?ticket=secret",
            &proxies,
            Duration::from_secs(5),
        )
        .await
        .expect_err("refused");
        assert_eq!(
            err,
            ConnectError::ProxyRefused("HTTP/1.1 407 Proxy Authentication Required".into())
        );
        assert!(!err.to_string().contains("secret") && !err.to_string().contains("p@ss"));
    }

    #[tokio::test]
    async fn a_socket_url_with_a_port_past_65535_is_refused_before_any_connection() {
        for url in [
            "ws://127.0.0.1:99999/link/?ticket=t",
            "ws://[::1]:65536/link/",
            "wss://host:/x",
        ] {
            let err = open(url, &Proxies::default(), Duration::from_secs(1))
                .await
                .expect_err(url);
            assert_eq!(err, ConnectError::BadUrl, "{url}");
        }
    }
}
