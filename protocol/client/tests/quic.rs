//! QUIC transport and certificate trust against a tiny quinn server on port 0 with an rcgen self-signed
//! certificate: pinning by fingerprint, CA roots, length-delimited frames on one stream, and the close
//! code carried as the QUIC application error code.

use bytes::BytesMut;
use chorus_client::{Client, ClientError, CloseCode, ConnectOptions, Fingerprint, Payload};
use chorus_protocol::delimit::{put_prefix, split_frame};
use chorus_protocol::{
    ClientFrame, Codec, Identity, Limits, QUIC_ALPN, ServerFrame, Welcome, decode_client, encode_server,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

struct TestServer {
    addr: SocketAddr,
    cert: CertificateDer<'static>,
    cert_pem: String,
    _endpoint: quinn::Endpoint,
}

/// A server that answers hello → welcome, ping → pong, and closes the connection with 4001 on call `kick`.
fn start_server() -> TestServer {
    let generated = rcgen::generate_simple_self_signed(["localhost".to_owned()]).unwrap();
    let cert = generated.cert.der().clone();
    let key = PrivateKeyDer::from(PrivatePkcs8KeyDer::from(generated.signing_key.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .unwrap();
    tls.alpn_protocols = vec![QUIC_ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls).unwrap();
    let config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    let endpoint = quinn::Endpoint::server(config, "127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = endpoint.local_addr().unwrap();
    let accepting = endpoint.clone();
    tokio::spawn(async move {
        while let Some(incoming) = accepting.accept().await {
            tokio::spawn(async move {
                // A failed handshake (wrong pin) ends here.
                if let Ok(conn) = incoming.await {
                    serve(conn).await;
                }
            });
        }
    });
    TestServer { addr, cert, cert_pem: generated.cert.pem(), _endpoint: endpoint }
}

async fn serve(conn: quinn::Connection) {
    let Ok((mut send, mut recv)) = conn.accept_bi().await else {
        return;
    };
    let mut buf = BytesMut::new();
    loop {
        let frame = loop {
            if let Some(frame) = split_frame(&mut buf, 1 << 20).unwrap() {
                break frame;
            }
            match recv.read_chunk(4096, true).await {
                Ok(Some(chunk)) => buf.extend_from_slice(&chunk.bytes),
                _ => return,
            }
        };
        let answer = match decode_client(Codec::MsgPack, &frame, 1 << 20).unwrap() {
            ClientFrame::Hello { token } => ServerFrame::Welcome(Welcome {
                conn_id: 7,
                identity: Identity { sub: token.unwrap_or_default(), name: None, role: None, guest: false },
                limits: Limits {
                    max_frame_bytes: 65536,
                    max_subscriptions: 100,
                    publish_rate: 50,
                    idle_timeout_ms: 30_000,
                },
            }),
            ClientFrame::Ping { id } => ServerFrame::Pong { id },
            ClientFrame::Call { method, .. } if method == "kick" => {
                conn.close(CloseCode::SlowConsumer.as_u16().into(), b"slow consumer");
                return;
            }
            other => panic!("unexpected frame {other:?}"),
        };
        let body = encode_server(Codec::MsgPack, &answer).unwrap();
        let mut out = BytesMut::new();
        put_prefix(&mut out, body.len());
        out.extend_from_slice(&body);
        send.write_all(&out).await.unwrap();
    }
}

fn options(server: &TestServer, server_name: &str) -> ConnectOptions {
    ConnectOptions::quic(server.addr, server_name).token("carol").connect_timeout(Duration::from_secs(5))
}

#[tokio::test]
async fn pinned_certificate_connects_and_reports_the_application_close() {
    let server = start_server();
    // Upper case with colons, as `openssl x509 -fingerprint -sha256` prints it.
    let hex = Fingerprint::of_der(&server.cert).to_string().to_uppercase();
    let pin = hex.as_bytes().chunks(2).map(|c| String::from_utf8_lossy(c).into_owned()).collect::<Vec<_>>().join(":");
    // The pin is the identity: the name need not match the certificate.
    let client = Client::connect(options(&server, "any.example").pin_sha256(pin)).await.unwrap();
    assert_eq!((client.welcome().conn_id, client.welcome().identity.sub.as_str()), (7, "carol"));
    assert_eq!(client.codec(), Codec::MsgPack);
    client.ping().await.unwrap();

    let err = client.call("kick", Payload::null()).await.unwrap_err();
    assert_eq!(err.close_code(), Some(CloseCode::SlowConsumer), "{err:?}");
    let info = client.closed().await;
    assert_eq!((info.code, info.reason.as_str(), info.by_client), (Some(4001), "slow consumer", false));
}

#[tokio::test]
async fn wrong_pin_fails_the_handshake() {
    let server = start_server();
    let wrong = Fingerprint::of_der(b"some other certificate").to_string();
    let err = Client::connect(options(&server, "localhost").pin_sha256(wrong.clone())).await.unwrap_err();
    assert!(matches!(err, ClientError::Handshake(_)), "{err:?}");
    // The error names the certificate actually seen and the pin, in words (rustls would show its debug form).
    let seen = Fingerprint::of_der(&server.cert).to_string();
    let text = err.to_string();
    assert!(text.contains(&seen) && text.contains(&wrong) && !text.contains("PinMismatch"), "{text}");
}

#[tokio::test]
async fn ca_pem_trusts_the_certificate_for_its_name_only() {
    let server = start_server();
    let client = Client::connect(options(&server, "localhost").ca_pem(server.cert_pem.clone())).await.unwrap();
    client.ping().await.unwrap();
    let info = client.close().await;
    assert_eq!((info.close_code(), info.by_client), (Some(CloseCode::Normal), true));

    let err = Client::connect(options(&server, "other.example").ca_pem(server.cert_pem.clone())).await.unwrap_err();
    assert!(matches!(err, ClientError::Transport(_)), "{err:?}");
}
