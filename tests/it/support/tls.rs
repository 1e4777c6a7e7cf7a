//! A second throwaway PostgreSQL that accepts only TLS, with certificates from a CA this test run makes.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};
use std::path::PathBuf;
use std::sync::OnceLock;
use tailhook::local_pg::{self, LocalPg, Setup};

/// The name in the server's certificate; tests reach it with `hostaddr=127.0.0.1`.
pub const HOST: &str = "db.tailhook.test";
/// A role that must present a client certificate (`clientcert=verify-full`).
pub const CERT_USER: &str = "certuser";

pub struct TlsServer {
    pub pg: LocalPg,
    port: u16,
    files: PathBuf,
}

impl TlsServer {
    /// A client-side file: `ca.crt`, `other-ca.crt`, `client.crt`, `client.key`.
    pub fn file(&self, name: &str) -> String {
        self.files.join(name).display().to_string()
    }

    /// A URL to `database` as `user`, reaching 127.0.0.1 under the name
    /// `host` (checked against the certificate), with extra `params`.
    pub fn url(&self, user: &str, host: &str, database: &str, params: &str) -> String {
        format!("postgres://{user}@{host}:{}/{database}?hostaddr=127.0.0.1&{params}", self.port)
    }
}

/// The TLS-only server, started once per test process.
pub fn server() -> &'static TlsServer {
    static SERVER: OnceLock<Result<TlsServer, String>> = OnceLock::new();
    match SERVER.get_or_init(start) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    }
}

struct Ca {
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

fn ca(name: &str) -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let cert_pem = params.self_signed(&key).unwrap().pem();
    Ca { cert_pem, issuer: Issuer::new(params, key) }
}

/// A certificate and its key (PEM), signed by `ca`.
fn leaf(ca: &Ca, names: &[&str], common_name: &str, usage: ExtendedKeyUsagePurpose) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    params.distinguished_name.push(DnType::CommonName, common_name);
    params.extended_key_usages = vec![usage];
    (params.signed_by(&key, &ca.issuer).unwrap().pem(), key.serialize_pem())
}

fn start() -> Result<TlsServer, String> {
    let ca_main = ca("tailhook test CA");
    let ca_other = ca("some other CA");
    let (server_crt, server_key) = leaf(&ca_main, &[HOST], HOST, ExtendedKeyUsagePurpose::ServerAuth);
    let (client_crt, client_key) = leaf(&ca_main, &[], CERT_USER, ExtendedKeyUsagePurpose::ClientAuth);
    // TLS only: no `host` lines. The superuser connects over the socket or TLS.
    let hba = format!(
        "local all all trust\n\
         hostssl all {CERT_USER} 127.0.0.1/32 trust clientcert=verify-full\n\
         hostssl all all 127.0.0.1/32 trust\n"
    );
    let setup = Setup {
        files: vec![
            ("server.crt".into(), server_crt.into_bytes()),
            ("server.key".into(), server_key.into_bytes()),
            ("root.crt".into(), ca_main.cert_pem.clone().into_bytes()),
            ("pg_hba.conf".into(), hba.into_bytes()),
        ],
        settings: ["ssl=on", "ssl_cert_file=server.crt", "ssl_key_file=server.key", "ssl_ca_file=root.crt"]
            .map(String::from)
            .to_vec(),
        url_suffix: "?sslmode=require".into(),
        keep_running: false,
    };
    let pg = local_pg::start_throwaway_with(&setup)?;
    let port = pg.admin_url.parse::<tokio_postgres::Config>().map_err(|e| e.to_string())?.get_ports()[0];

    // Beside the data directory, so they go when the cluster is removed.
    let files =
        pg.data_dir.as_ref().and_then(|d| d.parent()).ok_or("throwaway cluster without a directory")?.join("client");
    std::fs::create_dir_all(&files).map_err(|e| e.to_string())?;
    for (name, contents) in [
        ("ca.crt", ca_main.cert_pem.as_str()),
        ("other-ca.crt", ca_other.cert_pem.as_str()),
        ("client.crt", client_crt.as_str()),
        ("client.key", client_key.as_str()),
    ] {
        std::fs::write(files.join(name), contents).map_err(|e| e.to_string())?;
    }
    Ok(TlsServer { pg, port, files })
}
