//! `GET /`: the landing page a person sees when opening the broker's port in a browser — what is running
//! (version, node id, listeners, store, cluster state, dev mode), the modules with their demo pages and
//! READMEs (as each module describes itself, [`Module::info`](crate::module::Module::info)), and the
//! operational endpoints. Machine clients keep their own paths; nothing else changes for them.

use crate::node::Node;
use axum::extract::State;
use axum::response::Html;
use clap::ValueEnum;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;

/// Where the node listens, as bound (known once the listeners are open).
#[derive(Debug, Clone)]
pub struct Listeners {
    /// HTTP and WebSocket.
    pub http: SocketAddr,
    /// QUIC, unless disabled.
    pub quic: Option<SocketAddr>,
    /// SHA-256 fingerprint of the QUIC certificate, when QUIC is on.
    pub quic_fingerprint: Option<String>,
}

/// The page's state.
#[derive(Clone)]
pub(crate) struct Landing {
    pub node: Arc<Node>,
    pub listeners: Arc<Listeners>,
}

/// Escapes text for HTML element content and attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

pub(crate) async fn page(State(landing): State<Landing>) -> Html<String> {
    Html(render(&landing.node, &landing.listeners))
}

fn render(node: &Node, listeners: &Listeners) -> String {
    let config = &node.config;
    let node_id = match (&node.cluster, &config.node_id) {
        (Some(cluster), _) => cluster.node_id().to_owned(),
        (None, Some(id)) => id.clone(),
        (None, None) => "single node (no id: cluster mode is off)".to_owned(),
    };
    let cluster = match &node.cluster {
        None => "off — a single node (set --redis-url to share topics with other nodes)".to_owned(),
        Some(c) if c.healthy() => "on — connected to the other nodes through Redis".to_owned(),
        Some(_) => "on — Redis unreachable: publishes are kept in the outbox until it is back".to_owned(),
    };
    let store = config.store.store.to_possible_value().map(|v| v.get_name().to_owned()).unwrap_or_default();
    let quic = listeners.quic.map_or_else(|| "off (--disable-quic)".to_owned(), |a| a.to_string());
    let fingerprint = listeners.quic_fingerprint.clone().unwrap_or_else(|| "none".to_owned());
    let socketio = if config.socketio.disable_socketio {
        "off (--disable-socketio)".to_owned()
    } else {
        config.socketio.socketio_path.clone()
    };
    let dev = if config.dev {
        "on — demo pages mint their own short-lived tokens; never run a production broker with --dev"
    } else {
        "off — demo pages need a token and an id in their URL (start with --dev to try them bare)"
    };
    let mut modules = String::new();
    for module in node.modules.all() {
        let name = escape(module.name());
        let _ = write!(modules, "<li data-module=\"{name}\"><strong>{name}</strong>");
        if let Some(info) = module.info() {
            let _ = write!(modules, " — {}: README <code>{}</code>", escape(info.title), escape(info.readme));
            if let Some(demo) = info.demo {
                let demo = escape(demo);
                let _ = write!(modules, ", demo page <a class=\"demo\" href=\"{demo}\">{demo}</a>");
            }
        }
        modules.push_str("</li>\n");
    }
    if modules.is_empty() {
        modules.push_str("<li>none: topics are plain pub/sub</li>\n");
    }
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>chorus {version}</title>
<style>
  body {{ font-family: system-ui, sans-serif; max-width: 46rem; margin: 2rem auto; padding: 0 1rem; color: #222; }}
  th {{ text-align: left; padding-right: 1rem; font-weight: 600; vertical-align: top; }}
  code {{ font-size: 0.9em; }}
</style>
</head>
<body>
<h1>chorus <span id="version">{version}</span></h1>
<p>A realtime pub/sub broker: WebSocket and QUIC, MessagePack and JSON, domain modules.</p>
<table>
<tr><th>Node id</th><td id="node-id">{node_id}</td></tr>
<tr><th>HTTP / WebSocket</th><td id="http-addr">{http}</td></tr>
<tr><th>QUIC</th><td id="quic-addr">{quic}</td></tr>
<tr><th>QUIC certificate SHA-256</th><td><code id="quic-fingerprint">{fingerprint}</code></td></tr>
<tr><th>Socket.IO</th><td id="socketio">{socketio}</td></tr>
<tr><th>Store</th><td id="store">{store}</td></tr>
<tr><th>Cluster</th><td id="cluster">{cluster}</td></tr>
<tr><th>Dev mode</th><td id="dev-mode" data-dev="{dev_flag}">{dev}</td></tr>
</table>
<h2>Modules</h2>
<ul id="modules">
{modules}</ul>
<h2>Endpoints</h2>
<ul>
<li><a href="/metrics">/metrics</a> — Prometheus metrics</li>
<li><a href="/health">/health</a> — liveness</li>
<li><a href="/ready">/ready</a> — readiness (503 while starting, shutting down or cut off from the cluster)</li>
<li><code>/v1/ws</code> — the native WebSocket endpoint; the protocol is <code>protocol/PROTOCOL.md</code> in the repository</li>
</ul>
</body>
</html>
"#,
        version = env!("CARGO_PKG_VERSION"),
        node_id = escape(&node_id),
        http = listeners.http,
        fingerprint = escape(&fingerprint),
        socketio = escape(&socketio),
        dev_flag = config.dev,
    )
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn text_is_escaped() {
        assert_eq!(escape(r#"<a href="x">'&'</a>"#), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
    }
}
