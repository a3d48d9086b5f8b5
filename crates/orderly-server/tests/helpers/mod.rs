//! Test harness: the real server in-process on an ephemeral port over a fresh database, an HTTP
//! client for the API, and a minimal OCPP-J charge point on tokio-tungstenite.

/// Tests of the closed loop (communities, wishes, grid commands, controllers driving charge
/// points); they live here to share this harness within the one test binary.
mod closed_loop;

use axum::body::Bytes;
use axum::http::{HeaderValue, Method, Request, StatusCode, header};
use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use orderly_server::Config;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Upper bound on any single wait in a test: a safety net against hanging, never a measurement.
pub const WAIT: Duration = Duration::from_secs(20);

/// The databases a scenario runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// SQLite always; PostgreSQL too when `ORDERLY_TEST_POSTGRES_URL` is set.
pub fn backends() -> Vec<Backend> {
    if postgres_url().is_some() {
        vec![Backend::Sqlite, Backend::Postgres]
    } else {
        eprintln!("ORDERLY_TEST_POSTGRES_URL is not set: PostgreSQL variants SKIPPED");
        vec![Backend::Sqlite]
    }
}

/// Polls `probe` until it returns Some, failing after [`WAIT`]: how tests wait for something
/// the server does on its own (a sweep, a tick, a notification) without guessing at timing.
pub async fn until<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs `scenario` once per backend (see [`backends`]).
pub async fn each_backend<F, Fut>(scenario: F)
where
    F: Fn(Backend) -> Fut,
    Fut: Future<Output = ()>,
{
    for backend in backends() {
        scenario(backend).await;
    }
}

/// The password [`user`] gives `user`.
pub fn password(user: &str) -> String {
    format!("{user}-secret-pw")
}

/// An API request with `token` as the bearer.
pub async fn call(
    app: &TestApp,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Reply {
    app.request(method, path, body, Some(token)).await
}

/// Creates a user through the API (admin token) and logs them in; returns the session token.
pub async fn user(app: &TestApp, id: &str, role: &str, scopes: Value, id_tags: Value) -> String {
    let body = json!({
        "id": id, "name": format!("User {id}"), "password": password(id), "role": role,
        "scopes": scopes, "id_tags": id_tags,
    });
    let reply = app.post("/api/v1/users", body).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    login(app, id).await
}

/// Logs `id` in with [`password`]; returns the session token.
pub async fn login(app: &TestApp, id: &str) -> String {
    let reply = app
        .request(
            Method::POST,
            "/api/v1/login",
            Some(json!({ "user": id, "password": password(id) })),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    reply.body["token"].as_str().unwrap().to_owned()
}

/// A community with transformer data (400 kVA, pf 0.9, 50 kW base load), through the API.
pub async fn community(app: &TestApp, id: &str) {
    let body = json!({ "name": format!("Community {id}"), "rating_kva": 400.0,
                       "power_factor": 0.9, "base_load_kw": 50.0 });
    let reply = app
        .api(
            Method::PUT,
            &format!("/api/v1/communities/{id}"),
            Some(body),
        )
        .await;
    assert!(reply.status.is_success(), "{:?}", reply.body);
}

fn postgres_url() -> Option<String> {
    std::env::var("ORDERLY_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
}

/// A running server and what is needed to talk to it.
pub struct TestApp {
    pub addr: SocketAddr,
    /// The bootstrap admin token printed at first start.
    pub token: String,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
    http: Client<HttpConnector, Full<Bytes>>,
    postgres_database: Option<(String, String)>,
    /// The configuration it runs with, for [`TestApp::restart`].
    config: Config,
    _dir: tempfile::TempDir,
}

/// Start the server on `127.0.0.1:0` over a fresh database; `customize` adjusts the config.
pub async fn spawn_app(backend: Backend, customize: impl FnOnce(&mut Config)) -> TestApp {
    spawn_app_prepared(backend, customize, |_| async {}).await
}

/// As [`spawn_app`], with `prepare` writing to the fresh (migrated) database before the server
/// opens it (e.g. history the server reads at start).
pub async fn spawn_app_prepared<P, Fut>(
    backend: Backend,
    customize: impl FnOnce(&mut Config),
    prepare: P,
) -> TestApp
where
    P: FnOnce(orderly_store::Store) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().join("data"),
        ..Config::default()
    };
    let mut postgres_database = None;
    if backend == Backend::Postgres {
        let admin_url = postgres_url().expect("PostgreSQL URL");
        let name = format!("orderly_test_{}", rand_suffix());
        let mut admin = connect_postgres(&admin_url).await;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .expect("create test database");
        config.database_url = Some(with_database(&admin_url, &name));
        postgres_database = Some((admin_url, name));
    }
    customize(&mut config);
    let store = orderly_server::open_store(&config)
        .await
        .expect("open the test database");
    prepare(store.clone()).await;
    store.close().await;
    let (addr, opened, shutdown, server) = start(config.clone()).await;
    let token = opened.expect("a fresh database creates the admin token");
    TestApp {
        addr,
        token,
        shutdown: Some(shutdown),
        server: Some(server),
        http: Client::builder(TokioExecutor::new()).build_http(),
        postgres_database,
        config,
        _dir: dir,
    }
}

/// Opens the server state for `config` and serves it on a fresh loopback port: the address,
/// the admin token if the database was new, the shutdown sender and the server task.
async fn start(
    config: Config,
) -> (
    SocketAddr,
    Option<String>,
    oneshot::Sender<()>,
    JoinHandle<()>,
) {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .expect("bind");
    let addr = listener.local_addr().unwrap();
    let opened = orderly_server::open(config)
        .await
        .expect("open the server state");
    let (shutdown, stop) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        orderly_server::serve(listener, opened.state, async move {
            let _ = stop.await;
        })
        .await
        .expect("server ran");
    });
    (addr, opened.created_admin_token, shutdown, server)
}

async fn connect_postgres(url: &str) -> sqlx::AnyConnection {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    sqlx::AnyConnection::connect(url)
        .await
        .expect("connect to PostgreSQL")
}

/// `postgres://host/db?x` with the database replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    let mut out = format!("{}/{name}", &base[..host_end]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

fn rand_suffix() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..10)
        .map(|_| char::from(b'a' + rng.random_range(0..26u8)))
        .collect()
}

/// An HTTP response: status, headers and the body (JSON when it parses, else a string).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: Value,
}

impl TestApp {
    pub fn ws_url(&self, id: &str) -> String {
        format!("ws://{}/ocpp/{id}", self.addr)
    }

    /// An API request with the admin token.
    pub async fn api(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        let token = self.token.clone();
        self.request(method, path, body, Some(&token)).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.api(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.api(Method::POST, path, Some(body)).await
    }

    /// An HTTP request with an optional bearer token.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        token: Option<&str>,
    ) -> Reply {
        let mut builder = Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.addr));
        if let Some(token) = token {
            builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let bytes = match body {
            Some(body) => {
                builder = builder.header(header::CONTENT_TYPE, "application/json");
                Bytes::from(serde_json::to_vec(&body).unwrap())
            }
            None => Bytes::new(),
        };
        let response = tokio::time::timeout(
            WAIT,
            self.http.request(builder.body(Full::new(bytes)).unwrap()),
        )
        .await
        .expect("HTTP response in time")
        .expect("HTTP request");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        Reply {
            status,
            headers,
            body,
        }
    }

    /// An API request with the admin token and `bytes` as the body, sent as JSON whatever they
    /// are (malformed and oversized bodies).
    pub async fn request_raw(&self, method: Method, path: &str, bytes: Vec<u8>) -> Reply {
        let request = Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.addr))
            .header(header::AUTHORIZATION, format!("Bearer {}", self.token))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(bytes)))
            .unwrap();
        let response = tokio::time::timeout(WAIT, self.http.request(request))
            .await
            .expect("HTTP response in time")
            .expect("HTTP request");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        Reply {
            status,
            headers,
            body,
        }
    }

    /// Register a charger through the API.
    pub async fn add_charger(&self, id: &str, password: Option<&str>) {
        let reply = self
            .post(
                "/api/v1/chargers",
                json!({ "id": id, "password": password }),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    }

    /// Add an id tag through the API.
    pub async fn add_tag(&self, tag: &str, status: &str, expiry: Option<&str>) {
        let body = json!({ "id_tag": tag, "status": status, "expiry_date": expiry });
        let reply = self.post("/api/v1/id-tags", body).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    }

    /// The HTTP status of a WebSocket handshake (101 when it succeeds).
    pub async fn handshake_status(
        &self,
        id: &str,
        protocol: Option<&str>,
        credentials: Option<(&str, &str)>,
    ) -> StatusCode {
        match open_ws(&self.ws_url(id), protocol, credentials).await {
            Ok(_) => StatusCode::SWITCHING_PROTOCOLS,
            Err(tungstenite::Error::Http(response)) => response.status(),
            Err(other) => panic!("handshake failed without an HTTP answer: {other}"),
        }
    }

    /// Connect a charge point (subprotocol ocpp1.6, Basic auth when a password is given).
    pub async fn charge_point(&self, id: &str, password: Option<&str>) -> ChargePoint {
        let ws = open_ws(&self.ws_url(id), Some("ocpp1.6"), password.map(|p| (id, p)))
            .await
            .unwrap_or_else(|e| panic!("charge point {id} could not connect: {e}"));
        ChargePoint { ws, next_id: 1 }
    }

    /// Stops the server (as [`TestApp::stop`], keeping its database) and runs `meanwhile` while
    /// it is down; then starts it again on the same database and configuration, on a new port.
    pub async fn restart<F: Future<Output = ()>>(&mut self, meanwhile: F) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.expect("server task");
        }
        meanwhile.await;
        let (addr, _, shutdown, server) = start(self.config.clone()).await;
        self.addr = addr;
        self.shutdown = Some(shutdown);
        self.server = Some(server);
    }

    /// Stop the server, close its store and drop the PostgreSQL database.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.expect("server task");
        }
        if let Some((admin_url, name)) = self.postgres_database.take() {
            let mut admin = connect_postgres(&admin_url).await;
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .execute(&mut admin)
            .await
            .expect("drop test database");
        }
    }
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

async fn open_ws(
    url: &str,
    protocol: Option<&str>,
    credentials: Option<(&str, &str)>,
) -> Result<Ws, tungstenite::Error> {
    let mut request = url.into_client_request()?;
    if let Some(protocol) = protocol {
        request.headers_mut().insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_str(protocol).unwrap(),
        );
    }
    if let Some((user, password)) = credentials {
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        request.headers_mut().insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Basic {encoded}")).unwrap(),
        );
    }
    let (ws, response) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(request))
        .await
        .expect("handshake in time")?;
    if protocol.is_some() {
        assert_eq!(
            response
                .headers()
                .get(header::SEC_WEBSOCKET_PROTOCOL)
                .map(|v| v.to_str().unwrap()),
            Some("ocpp1.6"),
            "the server must select the ocpp1.6 subprotocol"
        );
    }
    Ok(ws)
}

/// A WebSocket opened by hand on a plain TCP socket (no WebSocket library: nothing answers
/// pings, and frames can be written byte by byte). Returns the socket after the 101 answer.
pub async fn raw_websocket(app: &TestApp, id: &str) -> TcpStream {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = TcpStream::connect(app.addr).await.unwrap();
    let request = format!(
        "GET /ocpp/{id} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Protocol: ocpp1.6\r\n\r\n",
        app.addr
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    // Read the HTTP head byte by byte so no WebSocket frame is consumed with it.
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let byte = tokio::time::timeout(WAIT, tcp.read_u8())
            .await
            .expect("101 in time")
            .unwrap();
        head.push(byte);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    tcp
}

/// Everything the server sends on `tcp` until it closes, as (opcode, payload) frames.
pub async fn read_frames_until_closed(tcp: &mut TcpStream) -> Vec<(u8, Vec<u8>)> {
    use tokio::io::AsyncReadExt;
    let mut received = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(WAIT, tcp.read(&mut chunk))
            .await
            .expect("the server closes in time")
            .unwrap_or(0);
        if n == 0 {
            break;
        }
        received.extend_from_slice(&chunk[..n]);
    }
    // Server frames are unmasked and (here) short: byte 0 is FIN + opcode, byte 1 the length.
    let mut frames = Vec::new();
    let mut rest = &received[..];
    while rest.len() >= 2 {
        let len = usize::from(rest[1] & 0x7f);
        let end = (2 + len).min(rest.len());
        frames.push((rest[0] & 0x0f, rest[2..end].to_vec()));
        rest = &rest[end..];
    }
    frames
}

/// A bare OCPP-J charge point: sends frames, reads frames.
pub struct ChargePoint {
    ws: Ws,
    next_id: u64,
}

impl ChargePoint {
    /// Send a CALL and return the matching CALLRESULT/CALLERROR frame (whole array).
    pub async fn call(&mut self, action: &str, payload: Value) -> Value {
        let id = format!("m{}", self.next_id);
        self.next_id += 1;
        self.send_text(&json!([2, id, action, payload]).to_string())
            .await;
        let frame = self.recv_frame().await;
        assert_eq!(frame[1], json!(id), "answer to another message: {frame}");
        frame
    }

    /// Send a CALL and return the CALLRESULT payload, failing on a CALLERROR.
    pub async fn call_ok(&mut self, action: &str, payload: Value) -> Value {
        let frame = self.call(action, payload).await;
        assert_eq!(frame[0], json!(3), "{action} was answered with {frame}");
        frame[2].clone()
    }

    pub async fn send_text(&mut self, text: &str) {
        self.ws.send(Message::text(text)).await.expect("send");
    }

    /// The next text frame from the server, parsed.
    pub async fn recv_frame(&mut self) -> Value {
        loop {
            let message = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("a frame from the server in time")
                .expect("connection open")
                .expect("frame");
            match message {
                Message::Text(text) => return serde_json::from_str(&text).expect("JSON frame"),
                Message::Ping(_) | Message::Pong(_) => continue,
                other => panic!("unexpected WebSocket message {other:?}"),
            }
        }
    }

    /// Close the connection as a charger going offline would, and wait until it is closed.
    pub async fn close(mut self) {
        let _ = self.ws.send(Message::Close(None)).await;
        self.expect_closed().await;
    }

    /// Wait until the server closes the connection.
    pub async fn expect_closed(&mut self) {
        loop {
            match tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("close in time")
            {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => continue,
            }
        }
    }

    /// BootNotification with a fixed vendor/model; returns the payload.
    pub async fn boot(&mut self) -> Value {
        self.call_ok(
            "BootNotification",
            json!({ "chargePointVendor": "Acme", "chargePointModel": "Wallbox 7", "firmwareVersion": "1.2.3" }),
        )
        .await
    }
}
