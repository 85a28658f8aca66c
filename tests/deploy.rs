//! `deploy/`: the files are checked by the tools that consume them and against the real binary.
//!
//! - Prometheus config and alert rules pass `promtool check` and the rules' unit tests (`promtool test rules`).
//! - Every metric the Grafana dashboard and the alert rules query is one a running chorus exports (a
//!   two-node cluster on a real Redis, driven through an outage so the cluster and store metrics exist).
//! - The Kubernetes manifests validate against the Kubernetes schemas (`kubernetes-validate`, pinned in
//!   `tests/deploy/requirements.txt`), and their probes, drain and secrets agree with the broker.
//! - The compose file has the cluster it promises, and every `CHORUS_*` variable anywhere in `deploy/`
//!   is one `chorus --help` knows.
//! - The Dockerfile's `HEALTHCHECK` command passes against a running broker and fails without one.

use crate::support::*;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// `deploy/`.
fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// Runs a command; panics with its output unless it exits 0. Returns stdout.
fn run_ok(command: &mut std::process::Command) -> String {
    let output = command.output().unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{command:?} failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// The virtualenv with the pinned `kubernetes-validate` and PyYAML.
fn python() -> PathBuf {
    let requirements = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/deploy/requirements.txt");
    chorus_testkit::venv::python("deploy-venv", &requirements).expect("the deploy tests' Python tools")
}

/// Every YAML document of a file, as JSON (parsed by PyYAML: anchors and merge keys resolved).
fn yaml(path: &Path) -> Vec<Value> {
    let script = "import json, sys, yaml\njson.dump(list(yaml.safe_load_all(open(sys.argv[1]))), sys.stdout)";
    let out = run_ok(std::process::Command::new(python()).arg("-c").arg(script).arg(path));
    match serde_json::from_str(&out).expect("PyYAML's JSON") {
        Value::Array(docs) => docs,
        other => panic!("expected a list of documents, got {other}"),
    }
}

/// The `chorus_*` names a PromQL expression mentions.
fn metric_names(expr: &str) -> impl Iterator<Item = String> + '_ {
    expr.match_indices("chorus_").filter_map(move |(at, _)| {
        let preceded = expr[..at].chars().next_back().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        let name: String =
            expr[at..].chars().take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_').collect();
        (!preceded).then_some(name)
    })
}

#[test]
fn prometheus_config_and_alert_rules_pass_promtool() {
    let dir = deploy().join("prometheus");
    run_ok(std::process::Command::new("promtool").arg("check").arg("config").arg(dir.join("prometheus.yml")));
    let checked = run_ok(std::process::Command::new("promtool").arg("check").arg("rules").arg(dir.join("alerts.yml")));
    assert!(checked.contains("5 rules found"), "{checked}");
    run_ok(std::process::Command::new("promtool").arg("test").arg("rules").arg(dir.join("alerts.test.yml")));
}

/// Sample names (`name` before `{`) of a `/metrics` text.
fn sample_names(metrics: &Metrics) -> BTreeSet<String> {
    metrics.0.keys().map(|key| key.split('{').next().unwrap_or(key).to_owned()).collect()
}

#[tokio::test]
async fn the_dashboard_and_alerts_query_only_metrics_chorus_exports() {
    let mut wanted = BTreeSet::new();
    let dashboard: Value = serde_json::from_str(&read(&deploy().join("grafana/chorus.json"))).expect("dashboard JSON");
    let provisioned = yaml(&deploy().join("grafana/provisioning/datasources/prometheus.yaml"));
    let uid = &provisioned[0]["datasources"][0]["uid"];
    let panels = dashboard["panels"].as_array().expect("panels");
    for panel in panels.iter().filter(|p| p["type"] != "row") {
        assert_eq!(&panel["datasource"]["uid"], uid, "panel {} uses the provisioned datasource", panel["title"]);
        let targets = panel["targets"].as_array().filter(|t| !t.is_empty());
        for target in targets.unwrap_or_else(|| panic!("panel {} has no query", panel["title"])) {
            wanted.extend(metric_names(target["expr"].as_str().expect("expr")));
        }
    }
    for variable in dashboard["templating"]["list"].as_array().expect("variables") {
        wanted.extend(metric_names(variable["query"]["query"].as_str().expect("variable query")));
    }
    let rules = yaml(&deploy().join("prometheus/alerts.yml"));
    for rule in rules[0]["groups"][0]["rules"].as_array().expect("rules") {
        wanted.extend(metric_names(rule["expr"].as_str().expect("expr")));
    }
    assert!(wanted.len() >= 20, "the dashboard covers the broker: {wanted:?}");

    // Two nodes on one Redis with the Redis store, so cluster, store and Socket.IO metrics all appear.
    let mut redis = RedisServer::start(&[]).await.expect("redis-server");
    let url = redis.url();
    let args = |id| vec!["--redis-url", url.as_str(), "--store", "redis", "--node-id", id, "--store-timeout-ms", "500"];
    let a = Broker::start(&args("deploy-a")).await;
    let b = Broker::start(&args("deploy-b")).await;
    let topic = "deploy/feed";
    let mut publisher = json_session(&a, Some(&token(json!({"sub": "pub"})))).await;
    let mut subscriber = json_session(&b, Some(&token(json!({"sub": "sub"})))).await;
    for ws in [&mut publisher, &mut subscriber] {
        send_json(ws, json!({"type": "subscribe", "id": 1, "topic": topic})).await;
        let reply = next_json(ws).await;
        assert_eq!(reply["type"], "reply", "{reply}");
    }
    send_json(&mut publisher, json!({"type": "publish", "id": 2, "topic": topic, "payload": "over the bus"})).await;
    let event = loop {
        let frame = next_json(&mut subscriber).await;
        if frame["type"] == "event" {
            break frame;
        }
    };
    assert_eq!(event["payload"], "over the bus");
    // An unknown method: an error frame, counted by code.
    send_json(&mut publisher, json!({"type": "call", "id": 3, "method": "no.such", "args": {}})).await;
    let refused = loop {
        let frame = next_json(&mut publisher).await;
        if frame["id"] == 3 {
            break frame;
        }
    };
    assert_eq!(refused["type"], "error", "{refused}");
    // A bad token: an auth failure.
    let mut forged = raw_ws(&a, "chorus.v1.json", "").await;
    send_json(&mut forged, json!({"type": "hello", "token": "not-a-jwt"})).await;
    assert_eq!(next_json(&mut forged).await["code"], 3000);
    // Socket.IO: a long-polling handshake, and a refused protocol version.
    assert_eq!(a.get("/socket.io/?EIO=4&transport=polling").await.0, 200);
    assert_eq!(a.get("/socket.io/?EIO=3&transport=polling").await.0, 400);
    // The store: one write that succeeds.
    let (status, body) = http_request(a.http, "POST", "/api/session/create", &[], None).await.expect("create");
    assert_eq!(status, 200, "{body}");

    // Redis goes away: the bus is down, a publish waits in the outbox, a store write fails (500).
    redis.kill();
    let deadline = Instant::now() + Duration::from_secs(20);
    while a.get("/ready").await.0 != 503 {
        assert!(Instant::now() < deadline, "node a did not notice Redis going away within 20 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    send_json(&mut publisher, json!({"type": "publish", "id": 4, "topic": topic, "payload": "kept"})).await;
    let (status, body) = http_request(a.http, "POST", "/api/session/create", &[], None).await.expect("create");
    assert_eq!(status, 500, "a store write without Redis: {body}");
    redis.restart().await.expect("redis-server restarts");

    // Some of these are set by periodic work (heartbeats, reconnects): wait until they are there, bounded.
    let deadline = Instant::now() + Duration::from_secs(30);
    let missing = loop {
        let mut exported = sample_names(&a.metrics().await);
        exported.extend(sample_names(&b.metrics().await));
        let missing: Vec<&String> = wanted.iter().filter(|name| !exported.contains(*name)).collect();
        if missing.is_empty() || Instant::now() >= deadline {
            break missing.into_iter().cloned().collect::<Vec<_>>();
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert!(missing.is_empty(), "queried by deploy/ but not exported by chorus: {missing:?}");
}

/// `chorus --help`.
fn chorus_help() -> String {
    run_ok(std::process::Command::new(env!("CARGO_BIN_EXE_chorus")).arg("--help"))
}

/// `CHORUS_*` variable names in `text`.
fn chorus_variables(text: &str) -> BTreeSet<String> {
    text.match_indices("CHORUS_")
        .map(|(at, _)| {
            text[at..].chars().take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_').collect()
        })
        .filter(|name: &String| name.len() > "CHORUS_".len())
        .collect()
}

#[test]
fn every_chorus_variable_in_deploy_is_a_real_option() {
    let help = chorus_help();
    let known: BTreeSet<String> = help
        .match_indices("[env: ")
        .map(|(at, _)| help[at + 6..].split(['=', ']']).next().unwrap_or_default().to_owned())
        .collect();
    assert!(known.contains("CHORUS_REDIS_URL") && known.contains("CHORUS_STORE_MIGRATE"), "{known:?}");
    let files = ["Dockerfile", "compose.yaml", "k8s/configmap.yaml", "k8s/statefulset.yaml"];
    for file in files {
        let used = chorus_variables(&read(&deploy().join(file)));
        assert!(!used.is_empty(), "{file} configures chorus");
        let unknown: Vec<_> = used.difference(&known).collect();
        assert!(unknown.is_empty(), "{file} sets variables chorus does not read: {unknown:?}");
    }
}

#[test]
fn kubernetes_manifests_validate_and_agree_with_the_broker() {
    let dir = deploy().join("k8s");
    let kustomization = &yaml(&dir.join("kustomization.yaml"))[0];
    let resources: BTreeSet<String> = kustomization["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .map(|r| r.as_str().expect("resource path").to_owned())
        .collect();
    let on_disk: BTreeSet<String> = std::fs::read_dir(&dir)
        .expect("deploy/k8s")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".yaml") && name != "kustomization.yaml")
        .collect();
    assert_eq!(resources, on_disk, "kustomization.yaml lists every manifest");

    let validate = python().with_file_name("kubernetes-validate");
    let out = run_ok(std::process::Command::new(validate).arg("--strict").args(resources.iter().map(|r| dir.join(r))));
    assert!(!out.contains("WARN") && !out.contains("ERROR"), "{out}");

    let mut objects = Vec::new();
    for resource in &resources {
        objects.extend(yaml(&dir.join(resource)));
    }
    let find = |kind: &str, name: &str| -> &Value {
        objects
            .iter()
            .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no {kind} {name}"))
    };
    let config = &find("ConfigMap", "chorus")["data"];
    let set = find("StatefulSet", "chorus");
    let pod = &set["spec"]["template"];
    let container = &pod["spec"]["containers"][0];
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/ready");
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/health");
    assert_eq!(pod["spec"]["securityContext"]["runAsNonRoot"], true);
    let jwt = container["env"].as_array().expect("env").iter().find(|e| e["name"] == "CHORUS_JWT_SECRET");
    assert!(jwt.is_some_and(|e| e["valueFrom"]["secretKeyRef"]["name"].is_string()), "JWT secret from a Secret");
    assert!(
        container["resources"]["requests"]["cpu"].is_string()
            && container["resources"]["requests"]["memory"].is_string()
    );

    // The drain fits: preStop pause + connection drain + HTTP drain (each up to the grace) + 1 s for QUIC.
    let grace: u64 = config["CHORUS_SHUTDOWN_GRACE_SECS"].as_str().expect("grace").parse().expect("seconds");
    let pause = container["lifecycle"]["preStop"]["sleep"]["seconds"].as_u64().unwrap_or(0);
    let termination = pod["spec"]["terminationGracePeriodSeconds"].as_u64().expect("terminationGracePeriodSeconds");
    assert!(termination > pause + 2 * grace, "{termination} s cannot hold a {pause} s pause and two {grace} s drains");

    let labels = &pod["metadata"]["labels"];
    let selects = |selector: &Value| {
        selector.as_object().expect("selector").iter().all(|(k, v)| &labels[k] == v) && !labels.is_null()
    };
    let headless = find("Service", set["spec"]["serviceName"].as_str().expect("serviceName"));
    assert_eq!(headless["spec"]["clusterIP"], "None", "the governing Service is headless");
    assert!(selects(&headless["spec"]["selector"]));
    assert!(selects(&find("Service", "chorus")["spec"]["selector"]));
    assert!(selects(&find("PodDisruptionBudget", "chorus")["spec"]["selector"]["matchLabels"]));
    let target = &find("HorizontalPodAutoscaler", "chorus")["spec"]["scaleTargetRef"];
    assert_eq!((&target["kind"], &target["name"]), (&json!("StatefulSet"), &json!("chorus")));
}

#[test]
fn kubernetes_validate_refuses_a_broken_manifest() {
    let dir = tempfile::tempdir().expect("temp dir");
    let broken = dir.path().join("broken.yaml");
    let manifest = read(&deploy().join("k8s/pdb.yaml")).replace("maxUnavailable: 1", "maxUnavailable: [1]");
    std::fs::write(&broken, manifest).expect("write");
    let output = std::process::Command::new(python().with_file_name("kubernetes-validate"))
        .arg("--strict")
        .arg(&broken)
        .output()
        .expect("run kubernetes-validate");
    assert!(!output.status.success(), "a PodDisruptionBudget with a list for maxUnavailable passed");
}

#[test]
fn the_compose_file_runs_the_cluster() {
    let compose = &yaml(&deploy().join("compose.yaml"))[0];
    let services = compose["services"].as_object().expect("services");
    for name in ["redis", "scylla", "chorus-1", "chorus-2", "chorus-3", "prometheus", "grafana", "lb"] {
        assert!(services.contains_key(name), "compose.yaml has no service {name}");
    }
    let redis_command: Vec<&str> =
        services["redis"]["command"].as_array().expect("redis command").iter().filter_map(Value::as_str).collect();
    assert!(redis_command.windows(2).any(|w| w == ["--appendonly", "yes"]), "Redis with AOF: {redis_command:?}");

    let nodes = ["chorus-1", "chorus-2", "chorus-3"];
    let mut migrating = 0;
    for node in nodes {
        let service = &services[node];
        let env = &service["environment"];
        assert_eq!(service["build"]["dockerfile"], "deploy/Dockerfile", "{node}");
        assert_eq!(env["CHORUS_REDIS_URL"], "redis://redis:6379", "{node}");
        assert_eq!(env["CHORUS_STORE"], "scylla", "{node}");
        assert_eq!(env["CHORUS_SCYLLA_NODES"], "scylla:9042", "{node}");
        assert_eq!(env["CHORUS_NODE_ID"], node);
        assert!(env["CHORUS_JWT_SECRET"].as_str().is_some_and(|v| v.starts_with("${")), "{node}: secret from env");
        migrating += usize::from(env["CHORUS_STORE_MIGRATE"] == "true");
    }
    assert_eq!(migrating, 1, "exactly one node applies the schema");

    let volumes = |service: &str| -> Vec<String> {
        services[service]["volumes"]
            .as_array()
            .expect("volumes")
            .iter()
            .map(|v| v.as_str().unwrap_or("").to_owned())
            .collect()
    };
    assert!(volumes("grafana").iter().any(|v| v.starts_with("./grafana/chorus.json:")), "dashboard provisioned");
    assert!(volumes("prometheus").iter().any(|v| v.starts_with("./prometheus:")), "Prometheus config mounted");
    assert!(volumes("lb").iter().any(|v| v.starts_with("./nginx/nginx.conf:")), "nginx config mounted");
    let nginx = read(&deploy().join("nginx/nginx.conf"));
    let prometheus = read(&deploy().join("prometheus/prometheus.yml"));
    for node in nodes {
        assert!(nginx.contains(&format!("server {node}:7400")), "nginx balances over {node}");
        assert!(prometheus.contains(&format!("\"{node}:7400\"")), "Prometheus scrapes {node}");
    }
}

#[tokio::test]
async fn the_dockerfile_healthcheck_asks_health() {
    let dockerfile = read(&deploy().join("Dockerfile"));
    assert!(dockerfile.matches("\nFROM ").count() >= 2, "multi-stage build");
    assert!(dockerfile.contains("\nUSER 10001\n"), "runs as a non-root user");
    let ignore = read(&deploy().join("Dockerfile.dockerignore"));
    assert!(ignore.lines().any(|l| l == "**/target"), "the build context leaves target/ out");
    let command = dockerfile
        .split("HEALTHCHECK")
        .nth(1)
        .and_then(|rest| rest.split_once("CMD "))
        .and_then(|(_, cmd)| cmd.lines().next())
        .expect("a HEALTHCHECK CMD");
    let argv: Vec<String> = serde_json::from_str(command).expect("HEALTHCHECK CMD in exec form");

    let broker = Broker::start(&[]).await;
    let probe = |listen: String| {
        let mut command = tokio::process::Command::new(&argv[0]);
        command.args(&argv[1..]).env("CHORUS_LISTEN", listen).stderr(std::process::Stdio::null());
        async move { command.status().await.expect("run the healthcheck").success() }
    };
    assert!(probe(format!("0.0.0.0:{}", broker.http.port())).await, "healthy broker reported unhealthy");
    let port = chorus_testkit::free_port();
    assert!(!probe(format!("0.0.0.0:{port}")).await, "no broker, yet healthy");
}
