//! What `wasmhub proxy` does beyond configurable-http-proxy, and how it takes bad input: routes kept across restarts
//! and crashes, draining on SIGTERM, metrics, TLS with redirect and reload, clear startup errors, and no leak or
//! crash from huge heads, slow clients, hanging backends or gigabyte bodies. `docs/proxy.md` lists each difference.

use std::io::{Read, Write};
use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use serde_json::json;
use wasmhub_system_tests::backend::{Backend, PatternCheck, UploadReport, pattern};
use wasmhub_system_tests::proxy_harness::{ApiAuth, BoxError, ProxyKind, RunningProxy, full_body, poll_until, send};
use wasmhub_system_tests::{curl_https, make_certificate};
use wasmhub_system_tests::{free_port, wasmhub_bin};

const WASMHUB: ProxyKind = ProxyKind::Wasmhub;

async fn register_routes(proxy: &RunningProxy, backend: &Backend, count: usize) {
    // Ten at a time, as JupyterHub's ConfigurableHTTPProxy does.
    futures_util::stream::iter(0..count)
        .for_each_concurrent(10, |index| async move {
            let data =
                json!({"target": backend.url(), "user": format!("u{index}"), "server_name": "", "jupyterhub": true});
            proxy.add_route(&format!("/user/u{index}"), data).await;
        })
        .await;
}

async fn assert_all_route(proxy: &RunningProxy, count: usize) {
    let table = proxy.list_routes().await;
    assert_eq!(table.len(), count, "routes listed after restart via {}", proxy.context());
    for index in 0..count {
        let key = format!("/user/u{index}");
        assert_eq!(table[&key]["user"], format!("u{index}"), "data of {key} kept verbatim");
        let response = proxy.get(&format!("/user/u{index}/api/ping")).await;
        assert_eq!(response.status, 200, "{key} routes after restart via {}", proxy.context());
        assert_eq!(response.echo().uri, format!("/user/u{index}/api/ping"));
    }
}

#[tokio::test]
async fn a_thousand_routes_survive_a_crash() {
    let backend = Backend::start().await;
    let mut proxy = RunningProxy::start(WASMHUB, &[]).await;
    register_routes(&proxy, &backend, 1000).await;
    proxy.restart("KILL").await;
    assert_all_route(&proxy, 1000).await;
}

#[tokio::test]
async fn a_thousand_routes_survive_a_clean_restart_with_their_activity() {
    let backend = Backend::start().await;
    let mut proxy = RunningProxy::start(WASMHUB, &[]).await;
    register_routes(&proxy, &backend, 1000).await;
    assert_eq!(proxy.delete_route("/user/u999").await, 204);
    assert_eq!(proxy.get("/user/u5/x").await.status, 200);
    let activity_before = proxy.last_activity("/user/u5").await;
    proxy.restart("TERM").await;
    assert_eq!(proxy.last_activity("/user/u5").await, activity_before, "saved activity restored");
    assert!(proxy.get_route("/user/u999").await.is_none(), "a deleted route stays deleted");
    assert_all_route(&proxy, 999).await;
}

#[tokio::test]
async fn sigterm_lets_in_flight_requests_finish_and_refuses_new_ones() {
    let backend = Backend::start().await;
    let mut proxy = RunningProxy::start(WASMHUB, &["--drain-timeout", "10000"]).await;
    proxy.add_target("/user/slow", &backend.url()).await;
    let address = proxy.proxy_addr();
    let in_flight = tokio::spawn(async move {
        wasmhub_system_tests::proxy_harness::http_request(address, "GET", "/user/slow/slow?ms=1500", &[], Bytes::new())
            .await
    });
    poll_until("the slow request to reach the backend", Duration::from_secs(10), || async {
        backend.seen().iter().any(|seen| seen.contains("slow?ms=1500")).then_some(())
    })
    .await;
    proxy.process().signal("TERM");
    poll_until("the proxy to stop accepting", Duration::from_secs(10), || async {
        tokio::net::TcpStream::connect(address).await.is_err().then_some(())
    })
    .await;
    let response = in_flight.await.unwrap().expect("the in-flight request completes");
    assert_eq!(response.status, 200, "in-flight request answered during the drain");
    let status = proxy.process().wait_timeout(Duration::from_secs(15)).expect("proxy exits after draining");
    assert!(status.success(), "clean exit after a drain, got {status}");
}

#[tokio::test]
async fn metrics_count_requests_routes_and_connections() {
    let backend = Backend::start().await;
    let metrics_port = free_port();
    let proxy =
        RunningProxy::start(WASMHUB, &["--metrics-ip", "127.0.0.1", "--metrics-port", &metrics_port.to_string()]).await;
    proxy.add_target("/user/a", &backend.url()).await;
    proxy.add_target("/user/b", &backend.url()).await;
    assert_eq!(proxy.get("/user/a/x").await.status, 200);
    assert_eq!(proxy.get("/nowhere").await.status, 404);
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], metrics_port));
    let metrics =
        wasmhub_system_tests::proxy_harness::http_request(address, "GET", "/metrics", &[], Bytes::new()).await.unwrap();
    assert_eq!(metrics.status, 200);
    let text = metrics.text();
    for expected in [
        "requests_web_total 2",
        "api_route_add_total 2",
        "wasmhub_proxy_routes 2",
        "requests_proxy_total{status=\"200\"} 1",
        "requests_proxy_total{status=\"404\"} 1",
        "requests_api_total{status=\"201\"} 2",
        "process_resident_memory_bytes",
    ] {
        assert!(text.contains(expected), "metrics lack {expected:?}:\n{text}");
    }
}

#[tokio::test]
async fn unusable_targets_are_refused_when_posted() {
    let proxy = RunningProxy::start(WASMHUB, &[]).await;
    for target in ["ws://127.0.0.1:1", "not a url", "/relative/path", "http://"] {
        let body = json!({ "target": target }).to_string();
        let response = proxy.api("POST", "/api/routes/user/x", ApiAuth::Token, &body).await;
        assert_eq!(response.status, 400, "target {target:?}: {}", response.text());
        assert!(response.text().contains("target"), "the message names the target: {}", response.text());
    }
    assert!(proxy.list_routes().await.is_empty(), "nothing was added");
}

#[tokio::test]
async fn api_checks_the_token_before_reading_the_body() {
    let proxy = RunningProxy::start(WASMHUB, &[]).await;
    let response = proxy.api("POST", "/api/routes/x", ApiAuth::None, "{not json").await;
    assert_eq!(response.status, 403);
    let response = proxy.api("GET", "/api/routes/user/%E0%A4%A", ApiAuth::Token, "").await;
    assert_eq!(response.status, 400, "a malformed escape in the API path gets an answer");
}

#[tokio::test]
async fn huge_request_heads_get_431_and_the_proxy_keeps_serving() {
    let backend = Backend::start().await;
    let proxy = RunningProxy::start(WASMHUB, &[]).await;
    proxy.add_target("/user/a", &backend.url()).await;
    let huge = "x".repeat(100 * 1024);
    let response = wasmhub_system_tests::proxy_harness::http_request(
        proxy.proxy_addr(),
        "GET",
        "/user/a/x",
        &[("x-huge", &huge)],
        Bytes::new(),
    )
    .await;
    match response {
        Ok(response) => assert_eq!(response.status, 431),
        // The proxy may close before the client has sent everything; either way nothing reached the backend.
        Err(error) => eprintln!("connection closed while sending a 100 KiB head: {error:#}"),
    }
    assert!(backend.seen().is_empty(), "an oversized head never reaches the backend");
    assert_eq!(proxy.get("/user/a/x").await.status, 200, "still serving");
}

/// Polls the metrics endpoint until the proxy reports no open client connections.
async fn wait_for_no_open_connections(metrics_port: u16) {
    let metrics_address = std::net::SocketAddr::from(([127, 0, 0, 1], metrics_port));
    poll_until("open connections to drop to zero", Duration::from_secs(10), || async {
        let metrics =
            wasmhub_system_tests::proxy_harness::http_request(metrics_address, "GET", "/metrics", &[], Bytes::new())
                .await
                .ok()?;
        metrics.text().contains("wasmhub_proxy_connections_open 0").then_some(())
    })
    .await;
}

#[tokio::test]
async fn slow_clients_are_cut_off_and_do_not_pile_up() {
    let backend = Backend::start().await;
    let metrics_port = free_port();
    let proxy = RunningProxy::start(
        WASMHUB,
        &["--keep-alive-timeout", "500", "--metrics-ip", "127.0.0.1", "--metrics-port", &metrics_port.to_string()],
    )
    .await;
    proxy.add_target("/user/a", &backend.url()).await;
    let address = proxy.proxy_addr();
    // Twenty clients that send half a request head and then nothing.
    let mut sockets = Vec::new();
    for _ in 0..20 {
        let mut socket = std::net::TcpStream::connect(address).unwrap();
        socket.write_all(b"GET /user/a/x HTTP/1.1\r\nHost: x\r\n").unwrap();
        socket.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        sockets.push(socket);
    }
    for mut socket in sockets {
        let mut buffer = Vec::new();
        let read = socket.read_to_end(&mut buffer);
        assert!(read.is_ok(), "the proxy closes a stalled connection instead of waiting forever: {read:?}");
    }
    assert!(backend.seen().is_empty());
    wait_for_no_open_connections(metrics_port).await;
    assert_eq!(proxy.get("/user/a/x").await.status, 200, "still serving");
}

#[tokio::test]
async fn clients_that_give_up_on_a_hanging_backend_leave_nothing_behind() {
    let backend = Backend::start().await;
    let metrics_port = free_port();
    let proxy =
        RunningProxy::start(WASMHUB, &["--metrics-ip", "127.0.0.1", "--metrics-port", &metrics_port.to_string()]).await;
    proxy.add_target("/user/a", &backend.url()).await;
    let address = proxy.proxy_addr();
    let hung: Vec<_> = (0..50)
        .map(|_| {
            tokio::spawn(async move {
                let request = http::Request::get("/user/a/hang").body(full_body(Bytes::new())).unwrap();
                send(address, request).await
            })
        })
        .collect();
    poll_until("all requests to reach the backend", Duration::from_secs(20), || async {
        (backend.seen().len() >= 50).then_some(())
    })
    .await;
    for request in hung {
        request.abort();
    }
    wait_for_no_open_connections(metrics_port).await;
    assert_eq!(proxy.get("/user/a/x").await.status, 200, "still serving");
}

/// Peak resident memory of a process, from /proc.
fn peak_rss_bytes(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|line| line.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}

#[tokio::test]
async fn a_gigabyte_each_way_streams_through_in_bounded_memory() {
    const GIB: u64 = 1 << 30;
    let backend = Backend::start().await;
    let mut proxy = RunningProxy::start(WASMHUB, &[]).await;
    proxy.add_target("/user/big", &backend.url()).await;

    let request = http::Request::get(format!("/user/big/bytes?n={GIB}")).body(full_body(Bytes::new())).unwrap();
    let response = send(proxy.proxy_addr(), request).await.unwrap();
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    let mut check = PatternCheck::new();
    while let Some(frame) = body.frame().await {
        if let Some(data) = frame.expect("download completes").data_ref() {
            check.feed(data);
        }
    }
    assert_eq!(check.received(), GIB);
    assert!(check.ok(), "download content intact");

    let frames = pattern(GIB).map(|chunk| Ok::<_, BoxError>(Frame::data(chunk)));
    let request = http::Request::post("/user/big/upload").body(BodyExt::boxed(StreamBody::new(frames))).unwrap();
    let response = send(proxy.proxy_addr(), request).await.unwrap();
    assert_eq!(response.status(), 200);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(UploadReport::from_body(&body), UploadReport { received: GIB, pattern_ok: true });

    let peak = peak_rss_bytes(proxy.process().pid());
    assert!(peak < 64 << 20, "proxy peak RSS {} MiB after 2 GiB streamed: bodies must not be buffered", peak >> 20);
}

#[tokio::test]
async fn a_second_proxy_on_the_same_routes_file_is_refused() {
    let proxy = RunningProxy::start(WASMHUB, &[]).await;
    let output = Command::new(wasmhub_bin())
        .args(["proxy", "--ip", "127.0.0.1", "--port", &free_port().to_string()])
        .args(["--api-ip", "127.0.0.1", "--api-port", &free_port().to_string()])
        .arg("--routes-file")
        .arg(proxy.dir().join("routes.jsonl"))
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("in use by another proxy") && stderr.contains("--routes-file"), "{stderr}");
}

#[test]
fn bad_flags_are_clear_errors() {
    let run = |args: &[&str]| {
        let output = Command::new(wasmhub_bin()).arg("proxy").args(args).output().unwrap();
        assert!(!output.status.success(), "{args:?} must fail");
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    assert!(run(&["--no-such-flag"]).contains("--no-such-flag"));
    assert!(run(&["--port", "eighty"]).contains("--port"));
    assert!(run(&["--storage-backend", "redis"]).contains("--storage-backend"));
    assert!(run(&["--custom-header", "no-colon"]).contains("Name: value"));
    assert!(run(&["--ssl-key", "/nonexistent"]).contains("--ssl-cert"));
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let message = run(&["--ip", "127.0.0.1", "--port", &port, "--no-persist-routes"]);
    assert!(message.contains("--ip/--port") && message.contains("in use"), "{message}");
}

#[tokio::test]
async fn tls_redirect_and_certificate_reload_on_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let (key, cert) = make_certificate(dir.path(), "first");
    let backend = Backend::start().await;
    let redirect_port = free_port();
    let mut proxy = RunningProxy::start(
        WASMHUB,
        &["--ssl-key", &key, "--ssl-cert", &cert, "--redirect-port", &redirect_port.to_string()],
    )
    .await;
    proxy.add_target("/user/a", &backend.url()).await;
    let url = format!("https://127.0.0.1:{}/user/a/x", proxy.proxy_port);
    let url_for_curl = url.clone();
    let (body, subject) = tokio::task::spawn_blocking(move || curl_https(&url_for_curl)).await.unwrap();
    assert!(subject.contains("CN=first"), "served the first certificate: {subject}");
    let echo = wasmhub_system_tests::backend::Echo::from_body(body.as_bytes());
    assert_eq!(echo.header("x-forwarded-proto"), ["https"]);

    let redirect = wasmhub_system_tests::proxy_harness::http_request(
        std::net::SocketAddr::from(([127, 0, 0, 1], redirect_port)),
        "GET",
        "/user/a/x?y=1",
        &[("host", "127.0.0.1")],
        Bytes::new(),
    )
    .await
    .unwrap();
    assert_eq!(redirect.status, 301);
    let expected = format!("https://127.0.0.1:{}/user/a/x?y=1", proxy.proxy_port);
    assert_eq!(redirect.header("location"), Some(expected.as_str()));

    // Renew the certificate in place, then SIGHUP: new connections get the new one without a restart.
    let (new_key, new_cert) = make_certificate(dir.path(), "second");
    std::fs::copy(new_key, &key).unwrap();
    std::fs::copy(new_cert, &cert).unwrap();
    proxy.process().signal("HUP");
    let subject = poll_until("the renewed certificate to be served", Duration::from_secs(10), || {
        let url = url.clone();
        async move {
            let (_, subject) = tokio::task::spawn_blocking(move || curl_https(&url)).await.unwrap();
            subject.contains("CN=second").then_some(subject)
        }
    })
    .await;
    assert!(subject.contains("CN=second"));
}

/// Query strings carry tokens (`?token=...` is how JupyterHub clients authenticate websockets), so the proxy never
/// writes one to its log, not even at debug level or for a request it cannot route.
#[tokio::test]
async fn query_strings_never_reach_the_log() {
    let backend = Backend::start().await;
    let proxy = RunningProxy::start(WASMHUB, &[]).await;
    proxy.add_target("/user/alice", &backend.url()).await;
    assert_eq!(proxy.get("/user/alice/api/ping?token=secret-routed").await.status, 200);
    assert_eq!(proxy.get("/nowhere/x?token=secret-unrouted").await.status, 404);
    let unroutable = proxy.get("/user/alice/%E0%A4%A?token=secret-unroutable").await;
    assert!(unroutable.status >= 400, "a malformed path is refused");
    let log = std::fs::read_to_string(proxy.log_path()).unwrap();
    assert!(!log.contains("secret-"), "a query string is in {}:\n{log}", proxy.context());
}
