//! The hub over real TLS on 127.0.0.1 (no mocks): a CA and a server certificate made here
//! (`testkit::TestCa`), clients that trust the CA get the API and the dashboard, clients that
//! do not (or speak plain HTTP) are refused, and bad certificate/key files give clear errors
//! that never quote the key.

use std::time::Duration;

use edetail_hub::testkit::TestCa;
use edetail_hub::tls::{TlsConfigError, TlsFiles};
use edetail_hub::{Hub, HubConfig, serve_local_tls};
use reqwest::StatusCode;

fn client_trusting(ca_der: &[u8]) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_der(ca_der).unwrap()])
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

async fn tls_hub(ca: &TestCa) -> (String, Hub, tempfile::TempDir, tokio::task::JoinHandle<()>) {
    let dir = tempfile::tempdir().unwrap();
    let hub = Hub::open(HubConfig::local(dir.path().join("hub"), vec![])).unwrap();
    let (url, task) = serve_local_tls(hub.clone(), ca.files.load().unwrap()).await.unwrap();
    (url, hub, dir, task)
}

#[tokio::test]
async fn a_client_trusting_the_ca_gets_the_api_and_the_dashboard() {
    let ca = TestCa::new();
    let (url, hub, _dir, _task) = tls_hub(&ca).await;
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    let http = client_trusting(&ca.ca_der);

    let resp = http.get(format!("{url}/v1/device")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);

    let dev = hub.add_device("rep-1", "north").unwrap();
    let resp = http.get(format!("{url}/v1/device")).bearer_auth(&dev.token).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.version(), reqwest::Version::HTTP_11);

    let resp = http.get(format!("{url}/dashboard")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.text().await.unwrap().contains("<html"), "the dashboard is an HTML page");

    // The certificate names localhost too.
    let port = url.rsplit(':').next().unwrap();
    let resp = http.get(format!("https://localhost:{port}/v1/device")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_client_not_trusting_the_ca_fails_the_handshake() {
    let ca = TestCa::new();
    let (url, _hub, _dir, _task) = tls_hub(&ca).await;

    let other = TestCa::new();
    let err = client_trusting(&other.ca_der).get(format!("{url}/v1/device")).send().await.unwrap_err();
    assert!(err.is_connect(), "{err:?}");

    // Nor a client with the platform's roots.
    let err = reqwest::Client::new().get(format!("{url}/v1/device")).send().await.unwrap_err();
    assert!(err.is_connect(), "{err:?}");

    // The server keeps serving those who trust it.
    let resp = client_trusting(&ca.ca_der).get(format!("{url}/v1/device")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn plain_http_to_the_tls_port_fails() {
    let ca = TestCa::new();
    let (url, _hub, _dir, _task) = tls_hub(&ca).await;
    let plain = url.replacen("https://", "http://", 1);
    let http = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap();
    let result = http.get(format!("{plain}/v1/device")).send().await;
    assert!(result.is_err(), "plain HTTP got an answer: {:?}", result.map(|r| r.status()));

    let resp = client_trusting(&ca.ca_der).get(format!("{url}/v1/device")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn serve_tls_stops_on_shutdown() {
    let ca = TestCa::new();
    let dir = tempfile::tempdir().unwrap();
    let hub = Hub::open(HubConfig::local(dir.path().join("hub"), vec![])).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(hub.serve_tls(listener, ca.files.load().unwrap(), async move {
        let _ = stopped.await;
    }));
    let resp = client_trusting(&ca.ca_der).get(format!("https://{addr}/v1/device")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), server).await.expect("stops").unwrap().unwrap();
}

fn load_err(files: &TlsFiles) -> (TlsConfigError, String) {
    let e = files.load().expect_err("must be refused");
    let text = e.to_string();
    (e, text)
}

/// A line of base64 from the key file: no error message may contain it.
fn key_material(files: &TlsFiles) -> Vec<String> {
    std::fs::read_to_string(&files.key).unwrap().lines().filter(|l| !l.starts_with("-----")).map(str::to_string).collect()
}

#[test]
fn missing_or_unreadable_files_are_named() {
    let ca = TestCa::new();
    let missing = ca.dir().join("nope.pem");
    let (e, text) = load_err(&TlsFiles { cert: missing.clone(), key: ca.files.key.clone() });
    assert!(matches!(e, TlsConfigError::Read { what: "certificate", .. }), "{e:?}");
    assert!(text.contains("certificate") && text.contains("nope.pem"), "{text}");

    let (e, text) = load_err(&TlsFiles { cert: ca.files.cert.clone(), key: missing });
    assert!(matches!(e, TlsConfigError::Read { what: "key", .. }), "{e:?}");
    assert!(text.contains("key file") && text.contains("nope.pem"), "{text}");
}

#[test]
fn a_pem_without_certificates_is_refused() {
    let ca = TestCa::new();
    // The key file given as the certificate: PEM, but no certificate in it.
    let (e, text) = load_err(&TlsFiles { cert: ca.files.key.clone(), key: ca.files.key.clone() });
    assert!(matches!(e, TlsConfigError::NoCertificate { .. }), "{e:?}");
    assert!(text.contains("no PEM certificate"), "{text}");
    for line in key_material(&ca.files) {
        assert!(!text.contains(&line), "the message quotes the key: {text}");
    }

    let empty = ca.dir().join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let (e, _) = load_err(&TlsFiles { cert: empty, key: ca.files.key.clone() });
    assert!(matches!(e, TlsConfigError::NoCertificate { .. }), "{e:?}");
}

#[test]
fn a_key_file_without_a_key_is_refused() {
    let ca = TestCa::new();
    let (e, text) = load_err(&TlsFiles { cert: ca.files.cert.clone(), key: ca.files.cert.clone() });
    assert!(matches!(e, TlsConfigError::NoKey { .. }), "{e:?}");
    assert!(text.contains("no PEM private key"), "{text}");

    let broken = ca.dir().join("broken.key");
    let key = std::fs::read_to_string(&ca.files.key).unwrap();
    std::fs::write(&broken, key.replace("-----END", "-----XEND")).unwrap();
    let (e, text) = load_err(&TlsFiles { cert: ca.files.cert.clone(), key: broken });
    assert!(matches!(e, TlsConfigError::BadPem { what: "key", .. }), "{e:?}");
    for line in key_material(&ca.files) {
        assert!(!text.contains(&line), "the message quotes the key: {text}");
    }
}

#[test]
fn a_key_that_does_not_match_the_certificate_is_refused() {
    let ca = TestCa::new();
    let other = TestCa::new();
    let files = TlsFiles { cert: ca.files.cert.clone(), key: other.files.key.clone() };
    let (e, text) = load_err(&files);
    assert!(matches!(e, TlsConfigError::KeyMismatch { .. }), "{e:?}");
    assert!(text.contains("does not match the certificate"), "{text}");
    for line in key_material(&files) {
        assert!(!text.contains(&line), "the message quotes the key: {text}");
    }
}
