//! Test support (feature `testkit`): real PostgreSQL and S3-compatible servers on 127.0.0.1,
//! started by the project's `scripts/services` (which installs them when missing), and a fresh
//! database or bucket per test. `EDETAIL_TEST_PG_URL` / `EDETAIL_TEST_S3_ENDPOINT` (set by
//! `scripts/test`) skip the start-up. Nothing here skips a test: when a server cannot be had,
//! the test fails with the reason.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::OnceLock;

use crate::blobs::s3::S3Config;

/// The environment variable naming the test cluster's URL.
pub const PG_URL_ENV: &str = "EDETAIL_TEST_PG_URL";
/// The environment variable naming the test S3 endpoint.
pub const S3_ENDPOINT_ENV: &str = "EDETAIL_TEST_S3_ENDPOINT";

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs `scripts/services start <which>` once per process and returns the value it printed for `key`.
fn service(which: &str, key: &str) -> String {
    if let Ok(v) = std::env::var(key)
        && !v.is_empty()
    {
        return v;
    }
    let script = repo_root().join("scripts/services");
    let out = std::process::Command::new("bash")
        .arg(&script)
        .arg("start")
        .arg(which)
        .stderr(std::process::Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
    assert!(out.status.success(), "{} start {which} failed ({}); see its messages above", script.display(), out.status);
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .map(str::to_string)
        .unwrap_or_else(|| panic!("{} start {which} printed no {key}: {text}", script.display()))
}

/// The test cluster's URL (its `postgres` database).
pub fn postgres_url() -> String {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| service("pg", PG_URL_ENV)).clone()
}

/// The test S3 endpoint (`http://127.0.0.1:PORT`).
pub fn s3_endpoint() -> String {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| service("s3", S3_ENDPOINT_ENV)).clone()
}

/// Runs SQL statements against the cluster's `postgres` database on a private thread and runtime.
fn admin_sql(sql: String) {
    let url = postgres_url();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        rt.block_on(async move {
            let config = tokio_postgres::Config::from_str(&url).expect("test cluster URL");
            let (client, conn) = config.connect(tokio_postgres::NoTls).await.unwrap_or_else(|e| panic!("connecting to {url}: {e}"));
            tokio::spawn(conn);
            client.batch_execute(&sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
        })
    })
    .join()
    .expect("admin SQL thread");
}

/// A database of its own for one test; dropped (connections terminated) when this is dropped.
#[derive(Debug)]
pub struct TestDatabase {
    pub url: String,
    name: String,
}

impl TestDatabase {
    pub fn new() -> TestDatabase {
        let name = format!("edetail_test_{}", uuid::Uuid::new_v4().simple());
        admin_sql(format!("CREATE DATABASE {name}"));
        let base = postgres_url();
        let url = match base.rfind('/') {
            Some(i) if base[..i].contains("://") && !base[i..].contains('@') => format!("{}/{name}", &base[..i]),
            _ => panic!("cannot derive a database URL from {base}"),
        };
        TestDatabase { url, name }
    }

    /// Runs one SQL statement on this database (tests that go around the store, e.g. to
    /// prove the audit trail refuses UPDATE and DELETE); the server's error text on failure.
    pub fn execute(&self, sql: &str) -> Result<u64, String> {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
        rt.block_on(async {
            let (client, conn) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls).await.map_err(|e| e.to_string())?;
            let task = tokio::spawn(conn);
            let r = client.execute(sql, &[]).await.map_err(|e| e.as_db_error().map_or_else(|| e.to_string(), |d| d.message().to_string()));
            drop(client);
            let _ = task.await;
            r
        })
    }
}

impl Default for TestDatabase {
    fn default() -> Self {
        TestDatabase::new()
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // Keep it for a post-mortem; the cluster is a throwaway.
            eprintln!("keeping test database {} for inspection", self.name);
            return;
        }
        admin_sql(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
    }
}

/// A fresh, empty bucket on the test S3 server.
pub fn fresh_bucket() -> S3Config {
    let endpoint = s3_endpoint();
    let bucket = format!("edetail-test-{}", uuid::Uuid::new_v4().simple());
    let host = endpoint.strip_prefix("http://").expect("test S3 endpoint is http://").trim_end_matches('/');
    let mut s = TcpStream::connect(host).unwrap_or_else(|e| panic!("connecting to {endpoint}: {e}"));
    write!(s, "PUT /{bucket} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").expect("create bucket");
    let mut answer = String::new();
    s.read_to_string(&mut answer).expect("create bucket answer");
    assert!(answer.starts_with("HTTP/1.1 200"), "creating bucket {bucket}: {}", answer.lines().next().unwrap_or(""));
    S3Config {
        bucket,
        prefix: "blobs".into(),
        endpoint: Some(endpoint),
        region: Some("us-east-1".into()),
        allow_http: true,
        access_key_id: Some("testing".into()),
        secret_access_key: Some("testing".into()),
    }
}

/// Test certificates: a fresh CA and a server certificate it signed for `127.0.0.1` and
/// `localhost`, written as PEM files for `edetail hub serve --tls-cert/--tls-key` and
/// [`crate::tls::TlsFiles`].
#[derive(Debug)]
pub struct TestCa {
    /// The CA certificate (DER): the trust root clients are given.
    pub ca_der: Vec<u8>,
    /// The CA certificate (PEM).
    pub ca_pem: String,
    /// The server's PEM files.
    pub files: crate::tls::TlsFiles,
    _dir: tempfile::TempDir,
}

impl TestCa {
    /// A new CA and server certificate, in a new temporary directory.
    pub fn new() -> TestCa {
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose};
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(DnType::CommonName, "edetail test CA");
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("CA key")).expect("CA certificate");
        let server_key = KeyPair::generate().expect("server key");
        let mut params = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).expect("server params");
        params.distinguished_name.push(DnType::CommonName, "edetail test hub");
        let server = params.signed_by(&server_key, &ca).expect("server certificate");
        let dir = tempfile::tempdir().expect("tempdir");
        let files = crate::tls::TlsFiles { cert: dir.path().join("hub.crt"), key: dir.path().join("hub.key") };
        std::fs::write(&files.cert, server.pem()).expect("write certificate");
        std::fs::write(&files.key, server_key.serialize_pem()).expect("write key");
        TestCa { ca_der: ca.der().to_vec(), ca_pem: ca.pem(), files, _dir: dir }
    }

    /// The directory holding the PEM files (for further test files).
    pub fn dir(&self) -> &std::path::Path {
        self._dir.path()
    }
}

impl Default for TestCa {
    fn default() -> TestCa {
        TestCa::new()
    }
}
