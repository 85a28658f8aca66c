//! The one config struct. Every option is a CLI flag, a `CHORUS_*` environment variable, and a key in the
//! TOML file given by `--config` (keys are the option names in snake_case, e.g. `listen`, `jwt_secret`).
//! Precedence: flag > environment > file > built-in default. `chorus --help` lists every default.

use anyhow::{Context as _, bail};
use clap::builder::ValueParser;
use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser};
use std::ffi::OsString;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

/// JWT signature algorithms the broker can be pinned to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum JwtAlg {
    /// HMAC-SHA256 with `--jwt-secret`.
    #[value(name = "HS256")]
    Hs256,
    /// RSA PKCS#1 v1.5 SHA-256 with the public key in `--jwt-public-key`.
    #[value(name = "RS256")]
    Rs256,
    /// Ed25519 with the public key in `--jwt-public-key`.
    #[value(name = "EdDSA")]
    EdDsa,
}

/// No flags besides the broker's ([`Config::load_from`]).
#[derive(Debug, Clone, Copy, clap::Args)]
struct NoFlags {}

/// How log lines are written to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines, coloured only when stderr is a terminal.
    Text,
    /// One JSON object per line (`timestamp`, `level`, `fields`, `target`, `span`, `spans`), for log shippers.
    Json,
}

/// Broker configuration.
#[derive(Debug, Clone, Parser)]
#[command(name = "chorus", version, about = "chorus: a realtime pub/sub broker (WebSocket + QUIC, MessagePack + JSON)")]
pub struct Config {
    /// TOML config file; its keys are the option names below in snake_case.
    #[arg(long, env = "CHORUS_CONFIG")]
    pub config: Option<PathBuf>,

    /// TCP address for HTTP and WebSocket (landing page `/`, `/v1/ws`, `/metrics`, `/health`, `/ready`).
    #[arg(long, env = "CHORUS_LISTEN", default_value = "0.0.0.0:7400")]
    pub listen: SocketAddr,

    /// UDP address for QUIC.
    #[arg(long, env = "CHORUS_QUIC_LISTEN", default_value = "0.0.0.0:7401")]
    pub quic_listen: SocketAddr,

    /// Do not start the QUIC listener.
    #[arg(long, env = "CHORUS_DISABLE_QUIC")]
    pub disable_quic: bool,

    /// QUIC certificate chain (PEM). Without it a self-signed certificate is kept in the data dir.
    #[arg(long, env = "CHORUS_QUIC_CERT", requires = "quic_key")]
    pub quic_cert: Option<PathBuf>,

    /// QUIC private key (PEM, PKCS#8 or PKCS#1 or SEC1).
    #[arg(long, env = "CHORUS_QUIC_KEY", requires = "quic_cert")]
    pub quic_key: Option<PathBuf>,

    /// Directory for the embedded store and the generated QUIC certificate.
    #[arg(long, env = "CHORUS_DATA_DIR", default_value = "./chorus-data")]
    pub data_dir: PathBuf,

    /// HS256 secret for client JWTs. When neither this nor a public key is set, only guests can connect.
    #[arg(long, env = "CHORUS_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,

    /// Public key (PEM file) for RS256 or EdDSA client JWTs; set `--jwt-alg` to match.
    #[arg(long, env = "CHORUS_JWT_PUBLIC_KEY", conflicts_with = "jwt_secret")]
    pub jwt_public_key: Option<PathBuf>,

    /// The only JWT algorithm accepted (tokens with another `alg` are refused).
    #[arg(long, env = "CHORUS_JWT_ALG", value_enum, default_value = "HS256")]
    pub jwt_alg: JwtAlg,

    /// Required `aud` of client JWTs: a token must name this audience (a string, or one of an array).
    /// Unset: `aud` is not checked.
    #[arg(long, env = "CHORUS_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,

    /// Required `iss` of client JWTs. Unset: `iss` is not checked.
    #[arg(long, env = "CHORUS_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,

    /// Clock skew tolerated when checking `exp` and `nbf`, in seconds.
    #[arg(long, env = "CHORUS_JWT_LEEWAY_SECS", default_value_t = 5)]
    pub jwt_leeway_secs: u64,

    /// Log filter (tracing `EnvFilter` syntax), e.g. `info` or `chorus_core=debug`.
    #[arg(long, env = "CHORUS_LOG", default_value = "info")]
    pub log: String,

    /// Log format: `text`, or `json` (one object per line).
    #[arg(long, env = "CHORUS_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,

    /// Largest inbound frame in bytes.
    #[arg(long, env = "CHORUS_MAX_FRAME_BYTES", default_value_t = 64 * 1024)]
    pub max_frame_bytes: u32,

    /// Most subscriptions one connection may hold.
    #[arg(long, env = "CHORUS_MAX_SUBSCRIPTIONS", default_value_t = 512)]
    pub max_subscriptions: u32,

    /// Publishes per second per connection (token bucket; bursts up to the same number).
    #[arg(long, env = "CHORUS_PUBLISH_RATE", default_value_t = 1000)]
    pub publish_rate: u32,

    /// Bytes a connection's outbound queue may hold before the client is cut as a slow consumer.
    #[arg(long, env = "CHORUS_OUTBOUND_QUEUE_BYTES", default_value_t = 1024 * 1024)]
    pub outbound_queue_bytes: usize,

    /// Seconds a new connection has to send `hello`.
    #[arg(long, env = "CHORUS_HELLO_TIMEOUT_SECS", default_value_t = 10)]
    pub hello_timeout_secs: u64,

    /// Seconds without any inbound frame before a connection is closed.
    #[arg(long, env = "CHORUS_IDLE_TIMEOUT_SECS", default_value_t = 60)]
    pub idle_timeout_secs: u64,

    /// Whether guests may publish on topics no module owns.
    #[arg(long, env = "CHORUS_GUEST_PUBLISH", default_value_t = true, action = clap::ArgAction::Set)]
    pub guest_publish: bool,

    /// Events each topic keeps for recovery after a reconnect (0 disables history).
    #[arg(long, env = "CHORUS_HISTORY_SIZE", default_value_t = 100)]
    pub history_size: usize,

    /// Seconds a topic without subscribers keeps its history.
    #[arg(long, env = "CHORUS_HISTORY_TTL_SECS", default_value_t = 300)]
    pub history_ttl_secs: u64,

    /// Threads that run connections, fan-out and modules (default: one per CPU this process may run on,
    /// as its CPU affinity or cgroup quota allows). Every connection's tasks may run on any of them.
    #[arg(long, env = "CHORUS_WORKERS", value_parser = clap::value_parser!(u16).range(1..))]
    pub workers: Option<u16>,

    /// Seconds to wait for connections to drain on shutdown before exiting anyway.
    #[arg(long, env = "CHORUS_SHUTDOWN_GRACE_SECS", default_value_t = 5)]
    pub shutdown_grace_secs: u64,

    /// Redis URL: `redis://host:port/db`, `rediss://` (TLS), `redis-cluster://h1:p1?node=h2:p2`, or
    /// `redis-sentinel://h1:p1/db?sentinelServiceName=name`. Turns cluster mode on: nodes with the same
    /// Redis share topics, presence, counters and history (and modules their Redis compatibility). Needs
    /// a shared store (`--store redis` or `scylla`).
    #[arg(long, env = "CHORUS_REDIS_URL")]
    pub redis_url: Option<String>,

    /// This node's id in the cluster (default: random at each start).
    #[arg(long, env = "CHORUS_NODE_ID")]
    pub node_id: Option<String>,

    /// Cluster heartbeat in milliseconds. A node that stops (crash, partition) drops out of presence
    /// within 3 heartbeats.
    #[arg(long, env = "CHORUS_CLUSTER_HEARTBEAT_MS", default_value_t = 1000)]
    pub cluster_heartbeat_ms: u64,

    /// Publishes a cluster node keeps while Redis is unreachable, to send when it is back; beyond it
    /// publishes are refused with error 2010.
    #[arg(long, env = "CHORUS_CLUSTER_OUTBOX", default_value_t = 10_000)]
    pub cluster_outbox: usize,

    /// How often shared counters are flushed to the cluster, in milliseconds.
    #[arg(long, env = "CHORUS_COUNTER_FLUSH_MS", default_value_t = 250)]
    pub counter_flush_ms: u64,

    /// Storage settings.
    #[command(flatten)]
    pub store: chorus_store::StoreConfig,

    /// Socket.IO gateway settings.
    #[command(flatten)]
    pub socketio: crate::socketio::config::SocketIoConfig,

    /// Local development mode, never for production: an HS256 secret is generated (and printed) when none
    /// is configured, guests may publish, and the demo pages may mint short-lived tokens (`POST
    /// /demo/token`) and create demo events and sessions by themselves.
    #[arg(long, env = "CHORUS_DEV")]
    pub dev: bool,

    /// Whether `jwt_secret` was generated at start by `--dev` (so the node prints it once).
    #[arg(skip)]
    pub generated_jwt_secret: bool,
}

impl Config {
    /// Parses the process arguments, environment and config file. Exits with usage on bad flags.
    pub fn load() -> anyhow::Result<Self> {
        Self::load_from(std::env::args_os())
    }

    /// As [`Config::load`] with explicit arguments (the first is the program name).
    pub fn load_from<I, T>(args: I) -> anyhow::Result<Self>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        Self::load_from_with::<NoFlags, _, _>(args).map(|(config, _)| config)
    }

    /// As [`Config::load`], with the binary's own flags `A` (its modules' settings) parsed alongside the
    /// broker's: listed in `--help`, read from the environment and the config file like every option.
    pub fn load_with<A: Args>() -> anyhow::Result<(Self, A)> {
        Self::load_from_with(std::env::args_os())
    }

    /// As [`Config::load_with`] with explicit arguments (the first is the program name).
    pub fn load_from_with<A, I, T>(args: I) -> anyhow::Result<(Self, A)>
    where
        A: Args,
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
        let mut cmd = lenient(A::augment_args(Self::command()));
        let mut file = None;
        if let Some(path) = config_path(&args) {
            let text =
                std::fs::read_to_string(&path).with_context(|| format!("reading config file {}", path.display()))?;
            let table: toml::Table =
                toml::from_str(&text).with_context(|| format!("parsing config file {}", path.display()))?;
            let known: Vec<String> = cmd.get_arguments().map(|a| a.get_id().to_string()).collect();
            let mut keys = Vec::new();
            for (key, value) in table {
                if !known.contains(&key) || key == "config" {
                    let snake = key.replace('-', "_");
                    if snake != key && known.contains(&snake) {
                        bail!(
                            "config file {}: unknown key `{key}`; did you mean `{snake}`? (keys are snake_case)",
                            path.display()
                        );
                    }
                    bail!("config file {}: unknown key `{key}`", path.display());
                }
                let value = toml_to_arg(&key, &value)?;
                cmd = cmd.mut_arg(&key, |a| a.default_value(value));
                keys.push(key);
            }
            file = Some((path, keys));
        }
        let matches: ArgMatches = match cmd.try_get_matches_from_mut(&args) {
            Ok(matches) => matches,
            Err(e) => match bad_value(&cmd, &e, &args, file.as_ref()) {
                Some(message) => bail!(message),
                None => e.exit(),
            },
        };
        let mut config = Self::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
        let flags = A::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
        config.check()?;
        if config.dev {
            config.apply_dev()?;
        }
        Ok((config, flags))
    }

    /// What `--dev` turns on: a generated HS256 secret when none is configured, guest publishes.
    fn apply_dev(&mut self) -> anyhow::Result<()> {
        if self.jwt_public_key.is_some() {
            bail!("--dev signs demo tokens with an HS256 secret; it cannot be combined with --jwt-public-key");
        }
        if self.jwt_secret.is_none() {
            self.jwt_secret = Some(hex::encode(rand::random::<[u8; 32]>()));
            self.generated_jwt_secret = true;
        }
        self.guest_publish = true;
        Ok(())
    }

    fn check(&self) -> anyhow::Result<()> {
        if self.max_frame_bytes < 256 {
            bail!("max_frame_bytes must be at least 256");
        }
        if self.publish_rate == 0 || self.max_subscriptions == 0 || self.idle_timeout_secs == 0 {
            bail!("publish_rate, max_subscriptions and idle_timeout_secs must be positive");
        }
        if self.outbound_queue_bytes < self.max_frame_bytes as usize {
            bail!("outbound_queue_bytes must be at least max_frame_bytes");
        }
        self.socketio.check()?;
        match (self.jwt_alg, &self.jwt_secret, &self.jwt_public_key) {
            (JwtAlg::Hs256, None, Some(_)) => bail!("--jwt-public-key needs --jwt-alg RS256 or EdDSA"),
            (JwtAlg::Rs256 | JwtAlg::EdDsa, Some(_), None) => {
                let alg = clap::ValueEnum::to_possible_value(&self.jwt_alg).map(|v| v.get_name().to_owned());
                bail!("--jwt-alg {} needs --jwt-public-key", alg.unwrap_or_default())
            }
            _ => Ok(()),
        }
    }

    /// Idle timeout as a duration.
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_secs)
    }

    /// Hello timeout as a duration.
    pub fn hello_timeout(&self) -> Duration {
        Duration::from_secs(self.hello_timeout_secs)
    }
}

/// Widens what the options accept, whichever struct declares them: booleans take `1/0`, `yes/no`,
/// `on/off` and `true/false` (operators' habits from other daemons), addresses take a host name
/// (`localhost:7400`) as well as an IP.
fn lenient(cmd: clap::Command) -> clap::Command {
    let bool_type = ValueParser::bool().type_id();
    let address_type = ValueParser::from(clap::value_parser!(SocketAddr)).type_id();
    let ids: Vec<(clap::Id, bool)> = cmd
        .get_arguments()
        .filter_map(|a| {
            let kind = a.get_value_parser().type_id();
            (kind == bool_type || kind == address_type).then(|| (a.get_id().clone(), kind == bool_type))
        })
        .collect();
    ids.into_iter().fold(cmd, |cmd, (id, is_bool)| {
        cmd.mut_arg(id, |a| if is_bool { a.value_parser(boolean) } else { a.value_parser(socket_addr) })
    })
}

/// `true/false`, `yes/no`, `on/off`, `1/0` (any case).
fn boolean(text: &str) -> Result<bool, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Ok(true),
        "false" | "no" | "off" | "0" => Ok(false),
        _ => Err("expected true/false, yes/no, on/off or 1/0".to_owned()),
    }
}

/// `ip:port`, or `host:port` resolved now (an IPv4 address first, as clients' `127.0.0.1` defaults expect).
fn socket_addr(text: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = text.parse() {
        return Ok(addr);
    }
    let hint = "expected host:port, e.g. 0.0.0.0:7400 or localhost:7400";
    let addrs: Vec<SocketAddr> = text.to_socket_addrs().map_err(|e| format!("{hint} ({e})"))?.collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| format!("{hint} ({text} resolves to nothing)"))
}

/// For a value clap refused, the message naming where it came from: the flag, the environment variable,
/// or the config file and key (clap itself always names the flag). `None` for other errors.
fn bad_value(
    cmd: &clap::Command,
    e: &clap::Error,
    args: &[OsString],
    file: Option<&(PathBuf, Vec<String>)>,
) -> Option<String> {
    if !matches!(e.kind(), ErrorKind::InvalidValue | ErrorKind::ValueValidation) {
        return None;
    }
    let Some(ContextValue::String(shown)) = e.get(ContextKind::InvalidArg) else { return None };
    let arg = cmd.get_arguments().find(|a| {
        a.get_long().is_some_and(|long| shown.split([' ', '=']).next() == Some(format!("--{long}").as_str()))
    })?;
    let long = arg.get_long()?;
    let id = arg.get_id().as_str();
    let value = match e.get(ContextKind::InvalidValue) {
        Some(ContextValue::String(v)) => v.clone(),
        _ => String::new(),
    };
    let reason = match (std::error::Error::source(e), e.get(ContextKind::ValidValue)) {
        (Some(cause), _) => cause.to_string(),
        (None, Some(ContextValue::Strings(valid))) => format!("expected one of {}", valid.join(", ")),
        _ => "not a valid value".to_owned(),
    };
    let flag = format!("--{long}");
    let on_command_line = args.iter().skip(1).any(|a| {
        let a = a.to_string_lossy();
        a == flag || a.starts_with(&format!("{flag}="))
    });
    let env = arg.get_env().filter(|name| std::env::var_os(name).is_some());
    let source = match (on_command_line, env, file.filter(|(_, keys)| keys.iter().any(|k| k == id))) {
        (true, _, _) => format!("{flag} {value:?}"),
        (false, Some(name), _) => format!("environment variable {}={value:?}", name.to_string_lossy()),
        (false, None, Some((path, _))) => format!("config file {}, key `{id}` = {value:?}", path.display()),
        (false, None, None) => format!("{flag} {value:?}"),
    };
    Some(format!("{source}: invalid value: {reason}"))
}

fn config_path(args: &[OsString]) -> Option<PathBuf> {
    let mut iter = args.iter().skip(1);
    while let Some(arg) = iter.next() {
        let arg = arg.to_string_lossy();
        if arg == "--config" {
            return iter.next().map(PathBuf::from);
        }
        if let Some(path) = arg.strip_prefix("--config=") {
            return Some(PathBuf::from(path));
        }
    }
    std::env::var_os("CHORUS_CONFIG").map(PathBuf::from)
}

fn toml_to_arg(key: &str, value: &toml::Value) -> anyhow::Result<String> {
    Ok(match value {
        toml::Value::String(s) => s.clone(),
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        toml::Value::Float(f) => f.to_string(),
        toml::Value::Array(items) => {
            items.iter().map(|v| toml_to_arg(key, v)).collect::<anyhow::Result<Vec<_>>>()?.join(",")
        }
        _ => bail!("config key `{key}`: tables and dates are not option values"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_documented_ones() {
        let c = Config::load_from(["chorus"]).unwrap();
        assert_eq!(c.listen, "0.0.0.0:7400".parse().unwrap());
        assert_eq!(c.quic_listen, "0.0.0.0:7401".parse().unwrap());
        assert_eq!(c.data_dir, PathBuf::from("./chorus-data"));
        assert!(c.guest_publish);
        assert!(!c.dev);
    }

    #[test]
    fn dev_mode_generates_a_secret_only_when_none_is_set() {
        let c = Config::load_from(["chorus", "--dev", "--guest-publish", "false"]).unwrap();
        assert!(c.dev && c.generated_jwt_secret && c.guest_publish);
        assert_eq!(c.jwt_secret.as_deref().map(str::len), Some(64));
        let other = Config::load_from(["chorus", "--dev"]).unwrap();
        assert_ne!(c.jwt_secret, other.jwt_secret, "each start generates its own secret");
        let kept = Config::load_from(["chorus", "--dev", "--jwt-secret", "mine"]).unwrap();
        assert_eq!((kept.jwt_secret.as_deref(), kept.generated_jwt_secret), (Some("mine"), false));
        let err =
            Config::load_from(["chorus", "--dev", "--jwt-alg", "EdDSA", "--jwt-public-key", "k.pem"]).unwrap_err();
        assert!(err.to_string().contains("--dev"), "{err}");
    }

    /// A binary's own flag, as `chorus` adds its modules' settings.
    #[derive(Debug, clap::Args)]
    struct Extra {
        #[arg(long, env = "CHORUS_TEST_EXTRA_RATE", default_value_t = 7)]
        extra_rate: u32,
    }

    #[test]
    fn a_binarys_own_flags_parse_with_the_brokers() {
        let (c, extra) = Config::load_from_with::<Extra, _, _>(["chorus", "--max-subscriptions", "3"]).unwrap();
        assert_eq!((c.max_subscriptions, extra.extra_rate), (3, 7));
        let (_, extra) = Config::load_from_with::<Extra, _, _>(["chorus", "--extra-rate", "9"]).unwrap();
        assert_eq!(extra.extra_rate, 9);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chorus.toml");
        std::fs::write(&path, "extra_rate = 11\n").unwrap();
        let (_, extra) = Config::load_from_with::<Extra, _, _>(["chorus", "--config", path.to_str().unwrap()]).unwrap();
        assert_eq!(extra.extra_rate, 11, "the config file sets it too");
    }

    #[test]
    fn file_values_apply_and_flags_win() {
        let dir = std::env::temp_dir().join(format!("chorus-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("chorus.toml");
        std::fs::write(&path, "listen = \"127.0.0.1:9000\"\nmax_subscriptions = 7\nguest_publish = false\n").unwrap();
        let p = path.to_str().unwrap();
        let c = Config::load_from(["chorus", "--config", p, "--max-subscriptions", "9"]).unwrap();
        assert_eq!(c.listen, "127.0.0.1:9000".parse().unwrap());
        assert_eq!(c.max_subscriptions, 9);
        assert!(!c.guest_publish);
        std::fs::write(&path, "no_such_key = 1\n").unwrap();
        let err = Config::load_from(["chorus", "--config", p]).unwrap_err();
        assert!(err.to_string().contains("unknown key `no_such_key`"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
