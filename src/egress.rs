//! How requests reach receivers: an endpoint's own TLS (client certificate, extra CAs), and the egress proxy, whose CONNECT tunnel goes to the address the destination guard checked.
//!
//! reqwest's proxy support hands the proxy the destination's host name, so
//! the proxy would resolve it and the guard would check nothing. Proxied
//! requests therefore go through hyper's HTTP/1 client over [`Tunnel`], a
//! connector that resolves and checks the destination itself
//! ([`resolve_checked`]), asks the proxy to `CONNECT` to that checked
//! `IP:port`, and then speaks TLS to the receiver with its host name (SNI and
//! certificate check) and sends the host name in `Host`, for http and https
//! targets alike.

use crate::guard::{resolve_checked, AddressPolicy, Cidr};
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use sha2::{Digest, Sha256};
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Largest `tls_client_cert` (the certificate and its chain), in bytes.
pub const MAX_CLIENT_CERT_BYTES: usize = 65_536;
/// Largest `tls_client_key`, in bytes (as written, before sealing).
pub const MAX_CLIENT_KEY_BYTES: usize = 16_384;
/// Largest `tls_ca_bundle`, in bytes.
pub const MAX_CA_BUNDLE_BYTES: usize = 524_288;

/// The HTTP/1 client of proxied requests.
pub type TunnelClient = hyper_util::client::legacy::Client<Tunnel, reqwest::Body>;

/// An endpoint's own TLS settings, built once per endpoint version; its
/// clients are made on its first request and kept while the settings stay
/// the same (a reload with the same PEM text reuses them).
pub struct EndpointTls {
    pub config: Arc<ClientConfig>,
    /// SHA-256 over the PEM text: equal settings, same clients.
    pub fingerprint: [u8; 32],
    /// Its reqwest client, for requests that do not go through the proxy.
    pub direct: OnceLock<Result<reqwest::Client, String>>,
    /// Its tunnel client, for requests that do.
    pub tunnel: OnceLock<TunnelClient>,
}

/// Never the key, nor the certificates.
impl std::fmt::Debug for EndpointTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EndpointTls([redacted])")
    }
}

/// The root certificates every destination is checked against: Mozilla's.
fn public_roots() -> RootCertStore {
    RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() }
}

fn builder() -> rustls::ConfigBuilder<ClientConfig, rustls::WantsVerifier> {
    ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
}

/// The TLS of endpoints without settings of their own (proxied requests).
pub fn default_tls() -> Arc<ClientConfig> {
    let mut config = builder().with_root_certificates(public_roots()).with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// A TLS setting that cannot be used: the column it is in (the config
/// names its key after it) and the rule, never the content.
#[derive(Debug)]
pub struct Refused {
    pub field: &'static str,
    pub reason: String,
}

impl Refused {
    fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self { field, reason: reason.into() }
    }
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

/// Checks an endpoint's TLS columns (PEM text) and builds their TLS
/// configuration; `None` when none is set. Problems name the column and
/// the rule, never the content.
pub fn endpoint_tls(cert: Option<&str>, key: Option<&str>, ca: Option<&str>) -> Result<Option<EndpointTls>, Refused> {
    if cert.is_none() && key.is_none() && ca.is_none() {
        return Ok(None);
    }
    let mut hash = Sha256::new();
    for part in [cert, key, ca] {
        hash.update(part.map_or(0, |p| p.len() + 1).to_le_bytes());
        hash.update(part.unwrap_or_default());
    }
    let fingerprint = hash.finalize().into();
    let mut roots = public_roots();
    if let Some(ca) = ca {
        if ca.len() > MAX_CA_BUNDLE_BYTES {
            return Err(Refused::new("tls_ca_bundle", format!("is over {MAX_CA_BUNDLE_BYTES} bytes")));
        }
        let certs = certificates(ca, "tls_ca_bundle")?;
        let (added, _) = roots.add_parsable_certificates(certs);
        if added == 0 {
            return Err(Refused::new("tls_ca_bundle", "holds no usable CA certificate"));
        }
    }
    let builder = builder().with_root_certificates(roots);
    let mut config = match (cert, key) {
        (None, None) => builder.with_no_client_auth(),
        (Some(_), None) => return Err(Refused::new("tls_client_key", "is required with tls_client_cert")),
        (None, Some(_)) => return Err(Refused::new("tls_client_cert", "is required with tls_client_key")),
        (Some(cert), Some(key)) => {
            if cert.len() > MAX_CLIENT_CERT_BYTES {
                return Err(Refused::new("tls_client_cert", format!("is over {MAX_CLIENT_CERT_BYTES} bytes")));
            }
            if key.len() > MAX_CLIENT_KEY_BYTES {
                return Err(Refused::new("tls_client_key", format!("is over {MAX_CLIENT_KEY_BYTES} bytes")));
            }
            let chain = certificates(cert, "tls_client_cert")?;
            // The parser's error is not shown: it could quote the key.
            let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).map_err(|_| {
                Refused::new(
                    "tls_client_key",
                    "holds no PEM private key (unencrypted PKCS#8 `PRIVATE KEY`, PKCS#1 `RSA PRIVATE KEY` or SEC1 `EC PRIVATE KEY`)",
                )
            })?;
            builder.with_client_auth_cert(chain, key).map_err(|_| {
                Refused::new(
                    "tls_client_key",
                    "is not a key rustls can use with tls_client_cert (RSA, ECDSA or Ed25519)",
                )
            })?
        }
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(EndpointTls { config: Arc::new(config), fingerprint, direct: OnceLock::new(), tunnel: OnceLock::new() }))
}

/// The `CERTIFICATE` blocks of a PEM text: at least one, each well formed.
fn certificates(pem: &str, field: &'static str) -> Result<Vec<CertificateDer<'static>>, Refused> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Refused::new(field, format!("is not PEM text: {e}")))?;
    if certs.is_empty() {
        return Err(Refused::new(field, "holds no PEM `CERTIFICATE` block"));
    }
    Ok(certs)
}

/// `[delivery] proxy` and `proxy_bypass`, parsed.
#[derive(Debug, Default)]
pub struct Egress {
    pub proxy: Option<ProxyServer>,
    pub bypass: Vec<Bypass>,
}

/// An HTTP proxy that is asked to `CONNECT`.
pub struct ProxyServer {
    pub host: String,
    pub port: u16,
    /// `Proxy-Authorization` from the URL's user and password.
    /// Never printed (see `Debug`).
    pub authorization: Option<String>,
}

impl std::fmt::Debug for ProxyServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyServer")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("authorization", &self.authorization.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

/// One `proxy_bypass` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bypass {
    /// `*`: every destination.
    Everything,
    /// `example.com`: that name and every name under it.
    Domain(String),
    /// `*.example.com` or `.example.com`: names under it only.
    Under(String),
    /// `10.0.0.0/8` or one address: destinations whose address (written in
    /// the URL, or resolved) is in it.
    Network(Cidr),
}

impl Bypass {
    pub fn parse(entry: &str) -> Result<Self, String> {
        let raw = entry.trim().to_ascii_lowercase();
        if raw == "*" {
            return Ok(Self::Everything);
        }
        let entry = raw.strip_suffix('.').unwrap_or(&raw).to_owned();
        if let Ok(cidr) = entry.parse::<Cidr>() {
            return Ok(Self::Network(cidr));
        }
        let (under, name) = match entry.strip_prefix("*.").or_else(|| entry.strip_prefix('.')) {
            Some(rest) => (true, rest.to_owned()),
            None => (false, entry.clone()),
        };
        let plain = !name.is_empty()
            && name.split('.').all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
        if !plain {
            return Err(format!(
                "`{entry}` is not `*`, a host name (`example.com`), a domain's names (`*.example.com`) \
                 nor an IP network (`10.0.0.0/8`)"
            ));
        }
        Ok(if under { Self::Under(name) } else { Self::Domain(name) })
    }

    fn matches(&self, host: &str, addrs: &[SocketAddr]) -> bool {
        match self {
            Self::Everything => true,
            Self::Domain(d) => host == d || host.strip_suffix(d.as_str()).is_some_and(|h| h.ends_with('.')),
            Self::Under(d) => host.strip_suffix(d.as_str()).is_some_and(|h| h.ends_with('.') && h.len() > 1),
            Self::Network(net) => !addrs.is_empty() && addrs.iter().all(|a| net.contains(a.ip())),
        }
    }
}

impl Egress {
    /// Parses `delivery.proxy` and `delivery.proxy_bypass`; errors name the key.
    pub fn parse(proxy: &str, bypass: &[String]) -> Result<Self, (String, String)> {
        let proxy = proxy.trim();
        let server = if proxy.is_empty() { None } else { Some(ProxyServer::parse(proxy)?) };
        let bypass = bypass
            .iter()
            .enumerate()
            .map(|(i, e)| Bypass::parse(e).map_err(|r| (format!("delivery.proxy_bypass[{i}]"), r)))
            .collect::<Result<_, _>>()?;
        Ok(Self { proxy: server, bypass })
    }

    /// Whether the destination `host` (lower case, as in the URL), found at
    /// `addrs`, is reached without the proxy.
    pub fn bypasses(&self, host: &str, addrs: &[SocketAddr]) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.bypass.iter().any(|b| b.matches(&host, addrs))
    }
}

impl ProxyServer {
    fn parse(text: &str) -> Result<Self, (String, String)> {
        let key = || "delivery.proxy".to_owned();
        let url = url::Url::parse(text).map_err(|e| (key(), format!("is not a URL: {e}")))?;
        match url.scheme() {
            "http" => {}
            "socks5" | "socks5h" | "socks4" | "https" => {
                return Err((
                    key(),
                    format!(
                        "{}:// proxies are not supported: tailhook needs an HTTP proxy that accepts CONNECT \
                         (http://host:port), so that it can name the checked address itself",
                        url.scheme()
                    ),
                ))
            }
            other => return Err((key(), format!("`{other}` is not a proxy scheme; use http://host:port"))),
        }
        if !matches!(url.path(), "" | "/") || url.query().is_some() || url.fragment().is_some() {
            return Err((key(), "must be http://host:port, without a path, query or fragment".into()));
        }
        let host = match url.host() {
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            Some(host) => host.to_string(),
            None => return Err((key(), "has no host".into())),
        };
        let authorization = if url.username().is_empty() && url.password().is_none() {
            None
        } else {
            use base64::Engine;
            let decode = |s: &str| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned();
            let pair = format!("{}:{}", decode(url.username()), decode(url.password().unwrap_or_default()));
            Some(format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair)))
        };
        Ok(Self { host, port: url.port().unwrap_or(80), authorization })
    }
}

/// The proxy answered `CONNECT` with something other than 2xx, or not as HTTP.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ProxyFailure(pub String);

/// Makes the connections of a [`TunnelClient`]: each destination resolved
/// and checked, then reached through the proxy (CONNECT to the checked
/// address) unless the bypass list names it, then TLS for https.
#[derive(Clone)]
pub struct Tunnel {
    egress: Arc<Egress>,
    policy: Arc<AddressPolicy>,
    tls: Arc<ClientConfig>,
}

impl Tunnel {
    /// The client; `idle_per_host`: connections kept per destination.
    pub fn client(
        egress: Arc<Egress>,
        policy: Arc<AddressPolicy>,
        tls: Arc<ClientConfig>,
        idle_per_host: usize,
    ) -> TunnelClient {
        hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(idle_per_host)
            .build(Self { egress, policy, tls })
    }

    async fn connect(self, uri: Uri) -> Result<Conn, BoxError> {
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(Box::new(ProxyFailure("only http and https URLs are sent".into()))),
        };
        let host = uri.host().ok_or_else(|| ProxyFailure("the URL has no host".into()))?;
        let host = host.trim_start_matches('[').trim_end_matches(']').to_owned();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let addrs: Vec<SocketAddr> =
            resolve_checked(&self.policy, &host).await?.into_iter().map(|a| SocketAddr::new(a.ip(), port)).collect();
        let tcp = match &self.egress.proxy {
            Some(proxy) if !self.egress.bypasses(&host, &addrs) => through(proxy, &addrs).await?,
            _ => direct(&addrs).await?,
        };
        let _ = tcp.set_nodelay(true);
        if !https {
            return Ok(Conn(TokioIo::new(Stream::Plain(tcp))));
        }
        let name = match host.parse::<IpAddr>() {
            Ok(ip) => ServerName::IpAddress(ip.into()),
            Err(_) => ServerName::try_from(host).map_err(|e| Box::new(e) as BoxError)?,
        };
        let tls = tokio_rustls::TlsConnector::from(self.tls.clone()).connect(name, tcp).await?;
        Ok(Conn(TokioIo::new(Stream::Tls(Box::new(tls)))))
    }
}

impl tower_service::Service<Uri> for Tunnel {
    type Response = Conn;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Conn, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        Box::pin(self.clone().connect(uri))
    }
}

/// The first of the checked addresses that accepts a connection.
async fn direct(addrs: &[SocketAddr]) -> Result<TcpStream, BoxError> {
    let mut last = None;
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(tcp) => return Ok(tcp),
            Err(e) => last = Some(e),
        }
    }
    Err(Box::new(last.unwrap_or_else(|| io::Error::other("no address to connect to"))))
}

/// Largest response to `CONNECT` read from the proxy.
const MAX_CONNECT_RESPONSE: usize = 8_192;

/// A connection to the proxy tunnelled to the first checked address it
/// reaches (a new proxy connection for each address tried).
async fn through(proxy: &ProxyServer, addrs: &[SocketAddr]) -> Result<TcpStream, BoxError> {
    let mut last: Option<BoxError> = None;
    for addr in addrs {
        let mut tcp = TcpStream::connect((proxy.host.as_str(), proxy.port))
            .await
            .map_err(|e| io::Error::new(e.kind(), format!("cannot connect to the proxy (delivery.proxy): {e}")))?;
        let mut request = format!("CONNECT {addr} HTTP/1.1\r\nHost: {addr}\r\n");
        if let Some(auth) = &proxy.authorization {
            request.push_str("Proxy-Authorization: ");
            request.push_str(auth);
            request.push_str("\r\n");
        }
        request.push_str("\r\n");
        tcp.write_all(request.as_bytes()).await?;
        let mut head = Vec::with_capacity(256);
        let mut buf = [0u8; 512];
        while !head.ends_with(b"\r\n\r\n") {
            // One byte at a time once near the end, so nothing past the
            // response's head (the receiver's bytes) is read here.
            let want = if head.is_empty() { 12 } else { 1 };
            let n = tcp.read(&mut buf[..want]).await?;
            if n == 0 {
                return Err(Box::new(ProxyFailure("the proxy closed the connection in answer to CONNECT".into())));
            }
            head.extend_from_slice(&buf[..n]);
            if head.len() > MAX_CONNECT_RESPONSE {
                return Err(Box::new(ProxyFailure("the proxy's answer to CONNECT is too long".into())));
            }
        }
        let line = String::from_utf8_lossy(head.split(|b| *b == b'\n').next().unwrap_or_default());
        let status = line.split_whitespace().nth(1).and_then(|s| s.parse::<u16>().ok());
        match status {
            Some(200..=299) => return Ok(tcp),
            Some(code) => {
                last = Some(Box::new(ProxyFailure(format!(
                    "the proxy refused CONNECT to the checked address: HTTP {code}"
                ))))
            }
            None => return Err(Box::new(ProxyFailure("the proxy's answer to CONNECT is not HTTP".into()))),
        }
    }
    Err(last.unwrap_or_else(|| Box::new(ProxyFailure("no address to connect to".into()))))
}

/// A connection to a receiver: plain, or TLS.
enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut tokio::io::ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Self::Tls(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Self::Tls(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_flush(cx),
            Self::Tls(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Self::Tls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// A [`Stream`] as hyper's connection type.
pub struct Conn(TokioIo<Stream>);

impl Connection for Conn {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl Read for Conn {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: ReadBufCursor<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl Write for Conn {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bypass_entries() {
        let e =
            Egress::parse("http://127.0.0.1:3128", &["*.internal".into(), "example.com".into(), "10.0.0.0/8".into()])
                .unwrap();
        let none: &[SocketAddr] = &[];
        assert!(e.bypasses("a.internal", none) && e.bypasses("x.y.internal", none));
        assert!(!e.bypasses("internal", none), "`*.internal` names the names under it only");
        assert!(e.bypasses("example.com", none) && e.bypasses("api.example.com", none));
        assert!(!e.bypasses("notexample.com", none));
        let ten: SocketAddr = "10.1.2.3:443".parse().unwrap();
        let public: SocketAddr = "8.8.8.8:443".parse().unwrap();
        assert!(e.bypasses("anything", &[ten]));
        assert!(!e.bypasses("anything", &[ten, public]), "every address must be in the network");
        assert!(Egress::parse("", &["*".into()]).unwrap().bypasses("x", none));
        for bad in ["a b", "http://x", "*.", "x/y"] {
            assert!(Bypass::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn proxy_urls() {
        let e = Egress::parse("http://user:p%40ss@proxy.example:3128", &[]).unwrap();
        let p = e.proxy.unwrap();
        assert_eq!((p.host.as_str(), p.port), ("proxy.example", 3128));
        assert_eq!(p.authorization.as_deref(), Some("Basic dXNlcjpwQHNz"));
        assert!(!format!("{p:?}").contains("dXNlcjpwQHNz"), "credentials are never printed");
        for bad in ["socks5://127.0.0.1:1080", "https://p:3128", "http://p:3128/path", "nope"] {
            let (key, reason) = Egress::parse(bad, &[]).unwrap_err();
            assert_eq!(key, "delivery.proxy");
            assert!(!reason.is_empty());
        }
    }

    #[test]
    fn tls_columns_are_checked_without_echoing_them() {
        assert!(endpoint_tls(None, None, None).unwrap().is_none());
        let p = endpoint_tls(Some("nope"), Some("-----BEGIN PRIVATE KEY-----\nsecretstuff\n"), None).unwrap_err();
        assert_eq!(p.field, "tls_client_cert");
        let junk_key = "-----BEGIN PRIVATE KEY-----\nc2VjcmV0c3R1ZmY=\n-----END PRIVATE KEY-----\n";
        let p = endpoint_tls(None, Some(junk_key), None).unwrap_err();
        assert_eq!(p.field, "tls_client_cert", "{p}");
        let p = endpoint_tls(None, None, Some("x".repeat(MAX_CA_BUNDLE_BYTES + 1).as_str())).unwrap_err();
        assert_eq!(p.field, "tls_ca_bundle");
        assert!(!p.to_string().contains("xxxx"));
    }
}
