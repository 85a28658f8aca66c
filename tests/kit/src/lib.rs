//! Test fixtures shared by the workspace's test suites: real servers the tests start for themselves.
//!
//! [`RedisServer`] runs Debian's `redis-server` on a free loopback port in a directory of its own,
//! waits until it accepts connections, and kills it when dropped. [`socketio`] runs the real Socket.IO
//! client libraries (Node and Python) as scenarios against a broker; [`http`] is the one raw HTTP client
//! every suite uses; [`chromium`] drives a headless Chromium for the browser tests; [`venv`] keeps the
//! pinned Python tools they run; [`plain`] checks that messages for people carry no Rust type names;
//! [`raise_open_file_limit`] lets a test hold thousands of sockets.
#![warn(missing_docs)]

pub mod chromium;
pub mod http;
pub mod plain;
pub mod socketio;
pub mod venv;

use anyhow::{Context, Result, bail};
use std::io::{self, BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;
use tokio::sync::oneshot;

/// How long a starting `redis-server` may take to log that it is ready. It takes milliseconds; the rest
/// is margin for a loaded CI machine.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// Ports tried: another process can take a probed free port before `redis-server` binds it.
const PORT_ATTEMPTS: usize = 3;

/// Raises this process's open-file limit to its hard limit (children started afterwards inherit it), for
/// tests that hold thousands of sockets; returns the limit now in force.
pub fn raise_open_file_limit() -> io::Result<u64> {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit read and write one `rlimit` owned here.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return Err(io::Error::last_os_error());
        }
        if lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(io::Error::last_os_error());
            }
        }
    }
    Ok(lim.rlim_cur)
}

/// A loopback port nothing listens on (at the time of asking), for servers that cannot take port 0.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free loopback port").port()
}

/// Where a server keeps its files.
enum Dir {
    /// A temporary directory, removed with the server.
    Temp(tempfile::TempDir),
    /// A directory the test owns (its data outlives the process, e.g. for a restart).
    Kept(PathBuf),
}

impl Dir {
    fn path(&self) -> &Path {
        match self {
            Self::Temp(dir) => dir.path(),
            Self::Kept(dir) => dir,
        }
    }
}

/// A `redis-server` child process, killed when dropped.
pub struct RedisServer {
    child: Child,
    port: u16,
    options: Vec<String>,
    dir: Dir,
}

impl RedisServer {
    /// Starts a server without persistence, with extra `redis-server` options (e.g.
    /// `["--requirepass", "x"]`, or `["--cluster-enabled", "yes"]`: its files go to a directory of its own).
    pub async fn start(options: &[&str]) -> Result<Self> {
        let mut options: Vec<String> = options.iter().map(|o| o.to_string()).collect();
        options.extend(["--save", "", "--appendonly", "no"].map(String::from));
        Self::start_in(Dir::Temp(tempfile::tempdir()?), options).await
    }

    /// Starts a server that keeps its data in an append-only file under `dir`, fsynced on every write,
    /// so a [`RedisServer::kill`] and [`RedisServer::restart`] lose nothing.
    pub async fn start_persistent(dir: &Path) -> Result<Self> {
        let options = ["--save", "", "--appendonly", "yes", "--appendfsync", "always"].map(String::from).to_vec();
        Self::start_in(Dir::Kept(dir.to_owned()), options).await
    }

    async fn start_in(dir: Dir, options: Vec<String>) -> Result<Self> {
        let mut log = String::new();
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port();
            match spawn(port, dir.path(), &options).await? {
                Ok(child) => return Ok(Self { child, port, options, dir }),
                Err(port_taken) => log = port_taken,
            }
        }
        bail!("redis-server found no free port in {PORT_ATTEMPTS} attempts:\n{log}")
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Its process id (to signal it, e.g. SIGSTOP).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, then waits for the process to be gone.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the server again on the same port, directory and options (after [`RedisServer::kill`]).
    pub async fn restart(&mut self) -> Result<()> {
        self.kill();
        match spawn(self.port, self.dir.path(), &self.options).await? {
            Ok(child) => {
                self.child = child;
                Ok(())
            }
            Err(log) => bail!("redis-server could not start again on port {}:\n{log}", self.port),
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts `redis-server` on `port` in `dir` and waits for its "ready" log line. `Ok(Err(log))`: the port
/// was taken meanwhile.
async fn spawn(port: u16, dir: &Path, options: &[String]) -> Result<Result<Child, String>> {
    let spawned = Command::new("redis-server")
        .current_dir(dir)
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--dir"])
        .arg(dir)
        .args(options)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            bail!(
                "redis-server is not installed (Debian: apt-get install -y redis-server); these tests start their own"
            )
        }
        Err(e) => return Err(e).context("starting redis-server"),
    };
    let stdout = child.stdout.take().context("redis-server has no stdout")?;
    let (ready_tx, ready_rx) = oneshot::channel();
    std::thread::spawn(move || watch_log(stdout, ready_tx));
    let outcome = match tokio::time::timeout(START_TIMEOUT, ready_rx).await {
        Ok(Ok(Ok(()))) => return Ok(Ok(child)),
        Ok(Ok(Err(log))) if log.contains("Address already in use") => Ok(Err(log)),
        Ok(Ok(Err(log))) => Err(anyhow::anyhow!("redis-server exited before it was ready:\n{log}")),
        Ok(Err(_)) => Err(anyhow::anyhow!("the redis-server log reader stopped")),
        Err(_) => Err(anyhow::anyhow!("redis-server did not log that it was ready within {START_TIMEOUT:?}")),
    };
    let _ = child.kill();
    let _ = child.wait();
    outcome
}

/// Reads the server's log: reports readiness (or the log so far, if it exits first), then keeps draining
/// it so the server never blocks on a full pipe.
fn watch_log(stdout: ChildStdout, ready: oneshot::Sender<Result<(), String>>) {
    let mut ready = Some(ready);
    let mut log = String::new();
    for line in BufReader::new(stdout).lines().map_while(Result::ok) {
        if ready.is_none() {
            continue;
        }
        log.push_str(&line);
        log.push('\n');
        if line.contains("Ready to accept connections")
            && let Some(ready) = ready.take()
        {
            let _ = ready.send(Ok(()));
        }
    }
    if let Some(ready) = ready {
        let _ = ready.send(Err(log));
    }
}
