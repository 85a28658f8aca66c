//! Starting and stopping the server under test: chorus (the release binary, alone or as a cluster node),
//! nats-server with its WebSocket listener, the Socket.IO peer on Node, the raw-limit server (this
//! binary's `raw-server` subcommand), and the redis-server a chorus cluster shares. Each runs as a child process pinned to [`SERVER_CPU`](crate::affinity::SERVER_CPU),
//! killed when dropped (`kill_on_drop`) and by the kernel if the harness dies (`PR_SET_PDEATHSIG`).
//! A chorus node that is already listening can be attached to instead (the CI smoke test does that).

use crate::affinity;
use anyhow::{Context as _, anyhow, bail};
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

/// How long a server may take to print its listening line (nats-server: to accept connections).
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a server may take to exit after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// Ports tried for redis-server, which cannot report a port it chose: another process may take a
/// probed free port before it binds it.
const REDIS_PORT_ATTEMPTS: usize = 3;

/// Which server a target runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerKind {
    /// The chorus broker.
    Chorus,
    /// nats-server (Debian package) with WebSocket enabled.
    Nats,
    /// Socket.IO 4 on Node (`bench/peers/socketio/server.js`).
    SocketIo,
    /// The raw limit (`chorus-bench raw-server`).
    Raw,
    /// The raw ceiling (`chorus-bench raw-server --writev`).
    RawWritev,
}

/// A chorus node started by someone else.
#[derive(Debug, Clone)]
pub struct Attached {
    /// Its HTTP/WebSocket address.
    pub http: SocketAddr,
    /// Its QUIC address.
    pub quic: Option<SocketAddr>,
    /// Its QUIC certificate (PEM).
    pub quic_cert: Option<PathBuf>,
    /// Its process id, for CPU and RSS.
    pub pid: Option<u32>,
}

/// Where the servers' programs are and how to run them.
#[derive(Debug, Clone)]
pub struct Launcher {
    /// The release `chorus` binary.
    pub chorus_bin: PathBuf,
    /// `nats-server`.
    pub nats_bin: PathBuf,
    /// `node`.
    pub node_bin: PathBuf,
    /// `redis-server` (cluster scenario).
    pub redis_bin: PathBuf,
    /// Folder of the Socket.IO peer (with `node_modules` installed by `npm ci`).
    pub socketio_dir: PathBuf,
    /// HS256 secret given to chorus, for tokens the calls scenario needs.
    pub jwt_secret: String,
    /// The number of CPUs (from CPU 0) servers are pinned to; `None`: not pinned.
    pub pin: Option<usize>,
    /// Use this chorus node instead of starting one.
    pub attach: Option<Attached>,
}

/// A server under test.
pub struct Running {
    /// Its process id (unknown for an attached node started without `--attach-pid`).
    pub pid: Option<u32>,
    /// TCP address clients connect to.
    pub http: SocketAddr,
    /// QUIC address (chorus).
    pub quic: Option<SocketAddr>,
    /// QUIC certificate (chorus).
    pub quic_cert: Option<PathBuf>,
    /// The command line that started it, for the report.
    pub command: String,
    child: Option<Child>,
    log: Option<PathBuf>,
    _dir: Option<tempfile::TempDir>,
}

impl Launcher {
    /// Starts (or attaches to) a server of `kind`.
    pub async fn start(&self, kind: ServerKind) -> anyhow::Result<Running> {
        match kind {
            ServerKind::Chorus => match &self.attach {
                Some(a) => Ok(Running::attached(a)),
                None => self.start_chorus().await,
            },
            ServerKind::Nats => self.start_nats().await,
            ServerKind::SocketIo => self.start_socketio().await,
            ServerKind::Raw | ServerKind::RawWritev => {
                let exe = std::env::current_exe().context("locating chorus-bench")?;
                let mut args = ["raw-server", "--listen", "127.0.0.1:0"].map(String::from).to_vec();
                if kind == ServerKind::RawWritev {
                    args.push("--writev".to_owned());
                }
                let dir = tempfile::tempdir()?;
                let (child, kv, command) = self.spawn(&exe, &args, None, &[], dir.path(), "raw listening ").await?;
                let http = addr(&kv, "http")?;
                let log = Some(dir.path().join("server.log"));
                Ok(Running::started(child, http, command, log, dir))
            }
        }
    }

    async fn start_chorus(&self) -> anyhow::Result<Running> {
        self.start_chorus_with(&[]).await
    }

    /// Starts a chorus cluster node: `redis` is the redis-server the cluster shares, `id` the node id.
    /// `--store redis` because the binary refuses the embedded store in cluster mode.
    pub async fn start_cluster_node(&self, redis: &Running, id: &str) -> anyhow::Result<Running> {
        let url = format!("redis://{}", redis.http);
        self.start_chorus_with(&["--redis-url", &url, "--store", "redis", "--node-id", id]).await
    }

    /// Starts chorus with the bench's flags and `extra`.
    async fn start_chorus_with(&self, extra: &[&str]) -> anyhow::Result<Running> {
        if !self.chorus_bin.exists() {
            bail!(
                "{} not found: build it with `cargo build --release -p chorus-broker` or pass --chorus-bin",
                self.chorus_bin.display()
            );
        }
        let dir = tempfile::tempdir()?;
        let data = dir.path().join("data");
        let args = [
            "--listen",
            "127.0.0.1:0",
            "--quic-listen",
            "127.0.0.1:0",
            "--data-dir",
            path_str(&data)?,
            "--jwt-secret",
            &self.jwt_secret,
            // Generous limits: the bench measures throughput, not the default per-client protections.
            "--publish-rate",
            "100000000",
            "--commerce-interaction-rate",
            "100000000",
            "--outbound-queue-bytes",
            "4194304",
            "--max-subscriptions",
            "4096",
            "--idle-timeout-secs",
            "3600",
            "--hello-timeout-secs",
            "60",
            "--shutdown-grace-secs",
            "1",
            "--log",
            "warn",
        ]
        .iter()
        .chain(extra)
        .map(|a| a.to_string())
        .chain(self.pin.into_iter().flat_map(|cpus| ["--workers".to_owned(), cpus.to_string()]))
        .collect::<Vec<_>>();
        let (child, kv, command) =
            self.spawn(&self.chorus_bin, &args, None, &[], dir.path(), "chorus listening ").await?;
        let http = addr(&kv, "http")?;
        let quic = kv.get("quic").and_then(|q| q.parse().ok());
        let log = dir.path().join("server.log");
        Ok(Running {
            quic,
            quic_cert: Some(data.join("quic-cert.pem")),
            ..Running::started(child, http, command, Some(log), dir)
        })
    }

    async fn start_nats(&self) -> anyhow::Result<Running> {
        let dir = tempfile::tempdir()?;
        let ws_port = free_port()?;
        let config = dir.path().join("nats.conf");
        std::fs::write(
            &config,
            format!(
                "host: \"127.0.0.1\"\nport: -1\nmax_payload: 1048576\nmax_pending: 67108864\n\
                 max_connections: 1000000\nwrite_deadline: \"10s\"\nping_interval: \"2m\"\n\
                 websocket {{\n  host: \"127.0.0.1\"\n  port: {ws_port}\n  no_tls: true\n  compression: false\n}}\n"
            ),
        )?;
        let args = vec!["-c".to_owned(), path_str(&config)?.to_owned()];
        let mut child = self.spawn_only(&self.nats_bin, &args, None, &[], dir.path())?;
        let http = SocketAddr::from((Ipv4Addr::LOCALHOST, ws_port));
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        loop {
            if tokio::net::TcpStream::connect(http).await.is_ok() {
                break;
            }
            if let Some(status) = child.try_wait()? {
                bail!("nats-server exited ({status}): {}", log_tail(&dir.path().join("server.log")));
            }
            if tokio::time::Instant::now() > deadline {
                bail!("nats-server did not accept WebSocket connections within {START_TIMEOUT:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let command = format!("{} {}", self.nats_bin.display(), args.join(" "));
        let log = dir.path().join("server.log");
        Ok(Running::started(child, http, command, Some(log), dir))
    }

    async fn start_socketio(&self) -> anyhow::Result<Running> {
        if !self.socketio_dir.join("node_modules").join("socket.io").exists() {
            bail!("Socket.IO peer not installed: run `npm ci` in {}", self.socketio_dir.display());
        }
        let dir = tempfile::tempdir()?;
        let args = vec!["server.js".to_owned()];
        let env = [("HOST", "127.0.0.1"), ("PORT", "0")];
        let (child, kv, command) = self
            .spawn(&self.node_bin, &args, Some(&self.socketio_dir), &env, dir.path(), "socketio listening ")
            .await?;
        let http = addr(&kv, "http")?;
        let log = dir.path().join("server.log");
        Ok(Running::started(child, http, command, Some(log), dir))
    }

    /// Starts redis-server on a free loopback port without persistence (`--save ''`, `--appendonly
    /// no`), pinned like every server, and waits until it is ready. `Running::http` is its address.
    pub async fn start_redis(&self) -> anyhow::Result<Running> {
        let mut last = String::new();
        for _ in 0..REDIS_PORT_ATTEMPTS {
            match self.start_redis_on(free_port()?).await? {
                Ok(running) => return Ok(running),
                Err(port_taken) => last = port_taken,
            }
        }
        bail!("redis-server found no free port in {REDIS_PORT_ATTEMPTS} attempts: {last}")
    }

    /// `Ok(Err(log))`: the port was taken meanwhile.
    async fn start_redis_on(&self, port: u16) -> anyhow::Result<Result<Running, String>> {
        let dir = tempfile::tempdir()?;
        let log = dir.path().join("redis.log");
        let args = [
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            path_str(dir.path())?,
            "--logfile",
            path_str(&log)?,
        ]
        .map(String::from);
        let mut child = match self.spawn_only(&self.redis_bin, &args, None, &[], dir.path()) {
            Ok(child) => child,
            Err(e) if e.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::NotFound) => {
                bail!(
                    "{} not found: install redis-server (Debian: apt-get install -y redis-server) or pass --redis-bin",
                    self.redis_bin.display()
                )
            }
            Err(e) => return Err(e),
        };
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.contains("Ready to accept connections") {
                break;
            }
            if let Some(status) = child.try_wait()? {
                let tail = format!("{}\n{}", log_tail(&log), log_tail(&dir.path().join("server.log")));
                if text.contains("Address already in use") {
                    return Ok(Err(tail));
                }
                bail!("redis-server exited ({status}): {tail}");
            }
            if tokio::time::Instant::now() > deadline {
                bail!("redis-server was not ready within {START_TIMEOUT:?}: {}", log_tail(&log));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Quoted so the report's command line can be pasted into a shell.
        let shown: Vec<String> = args.iter().map(|a| if a.is_empty() { "''".to_owned() } else { a.clone() }).collect();
        let command = format!("{} {}", self.redis_bin.display(), shown.join(" "));
        let http = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        Ok(Ok(Running::started(child, http, command, Some(log), dir)))
    }

    /// Spawns a server (stderr to `<dir>/server.log`), pinned and tied to the harness's life.
    fn spawn_only(
        &self,
        program: &Path,
        args: &[String],
        cwd: Option<&Path>,
        env: &[(&str, &str)],
        dir: &Path,
    ) -> anyhow::Result<Child> {
        let log = std::fs::File::create(dir.join("server.log"))?;
        let mut cmd = Command::new(program);
        cmd.args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(log).kill_on_drop(true);
        for (k, v) in env {
            cmd.env(k, v);
        }
        if let Some(cwd) = cwd {
            cmd.current_dir(cwd);
        }
        let pin = self.pin;
        // SAFETY: the closure runs between fork and exec and only makes two async-signal-safe system
        // calls (sched_setaffinity, prctl); it allocates nothing and takes no lock.
        unsafe {
            cmd.pre_exec(move || {
                if let Some(cpus) = pin {
                    affinity::pin_current_thread_to(affinity::SERVER_CPU, cpus)?;
                }
                affinity::die_with_parent()
            });
        }
        cmd.spawn().with_context(|| format!("starting {}", program.display()))
    }

    /// Spawns a server and waits for the stdout line starting with `ready`, returning its `key=value`
    /// fields. Later stdout output is drained so the server never blocks on a full pipe.
    async fn spawn(
        &self,
        program: &Path,
        args: &[String],
        cwd: Option<&Path>,
        env: &[(&str, &str)],
        dir: &Path,
        ready: &str,
    ) -> anyhow::Result<(Child, HashMap<String, String>, String)> {
        let mut child = self.spawn_only(program, args, cwd, env, dir)?;
        let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout pipe"))?;
        let mut lines = BufReader::new(stdout).lines();
        let found = tokio::time::timeout(START_TIMEOUT, async {
            while let Some(line) = lines.next_line().await? {
                if let Some(rest) = line.strip_prefix(ready) {
                    let kv = rest
                        .split_ascii_whitespace()
                        .filter_map(|f| f.split_once('='))
                        .map(|(k, v)| (k.to_owned(), v.to_owned()))
                        .collect::<HashMap<_, _>>();
                    return Ok::<_, anyhow::Error>(Some(kv));
                }
            }
            Ok(None)
        })
        .await;
        let kv = match found {
            Ok(Ok(Some(kv))) => kv,
            Ok(Ok(None)) => {
                bail!("{} exited before listening: {}", program.display(), log_tail(&dir.join("server.log")))
            }
            Ok(Err(e)) => return Err(e),
            Err(_) => bail!("{} printed no `{ready}` line within {START_TIMEOUT:?}", program.display()),
        };
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let command = format!("{} {}", program.display(), args.join(" "));
        Ok((child, kv, command))
    }
}

impl Running {
    /// A server the harness started, listening on `http`, with its log and working directory.
    fn started(child: Child, http: SocketAddr, command: String, log: Option<PathBuf>, dir: tempfile::TempDir) -> Self {
        Running {
            pid: child.id(),
            http,
            quic: None,
            quic_cert: None,
            command,
            child: Some(child),
            log,
            _dir: Some(dir),
        }
    }

    /// A chorus node started by someone else.
    pub fn attached(a: &Attached) -> Self {
        Running {
            pid: a.pid,
            http: a.http,
            quic: a.quic,
            quic_cert: a.quic_cert.clone(),
            command: format!("attached to chorus at {}", a.http),
            child: None,
            log: None,
            _dir: None,
        }
    }

    /// Stops the server: SIGTERM, then SIGKILL if it has not exited within [`STOP_TIMEOUT`].
    pub async fn stop(mut self) {
        if let Some(mut child) = self.child.take() {
            if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) {
                // SAFETY: kill sends a signal to our own child, whose pid is not yet reaped.
                unsafe { libc::kill(pid, libc::SIGTERM) };
            }
            if tokio::time::timeout(STOP_TIMEOUT, child.wait()).await.is_err() {
                let _ = child.kill().await;
            }
        }
    }

    /// Whether the server process is still running (always true for an attached node).
    pub fn alive(&mut self) -> bool {
        match &mut self.child {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => true,
        }
    }

    /// The end of the server's log, for error reports.
    pub fn log_tail(&self) -> String {
        self.log.as_deref().map(log_tail).unwrap_or_default()
    }
}

fn addr(kv: &HashMap<String, String>, key: &str) -> anyhow::Result<SocketAddr> {
    kv.get(key)
        .ok_or_else(|| anyhow!("listening line without {key}="))?
        .parse()
        .with_context(|| format!("{key}= address"))
}

fn path_str(p: &Path) -> anyhow::Result<&str> {
    p.to_str().ok_or_else(|| anyhow!("non-UTF-8 path {}", p.display()))
}

/// A TCP port free on loopback right now (for servers that cannot report the port they bound).
fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?.port())
}

/// The last lines of a log file.
fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(8)..].join("\n")
}
