//! Store configuration: the `--store*` and `--scylla-*` flags the broker flattens into its own
//! config. `--data-dir` and `--redis-url` belong to the broker, which passes them to
//! [`crate::open`] (the Redis URL is shared with the broker's other uses of Redis).

use clap::ValueEnum;

/// Which backend [`crate::open`] builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Backend {
    /// redb database file `store.redb` under `--data-dir` (the default: no server needed).
    Embedded,
    /// A ScyllaDB (or Cassandra ≥ 4.0) cluster reached through `--scylla-nodes`.
    Scylla,
    /// A Redis server reached through the broker's `--redis-url`.
    Redis,
}

/// Consistency level of ScyllaDB reads and writes (and of the commit phase of conditional writes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum Consistency {
    /// Any replica, or a hint (writes only).
    Any,
    /// One replica.
    One,
    /// Two replicas.
    Two,
    /// Three replicas.
    Three,
    /// A majority of all replicas across datacenters.
    Quorum,
    /// Every replica.
    All,
    /// A majority of the replicas in the local datacenter (the default).
    LocalQuorum,
    /// A majority of the replicas in every datacenter.
    EachQuorum,
    /// One replica in the local datacenter.
    LocalOne,
}

/// Consistency level of the Paxos phase of ScyllaDB conditional writes (LWT).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum SerialConsistency {
    /// Linearizable across all datacenters.
    Serial,
    /// Linearizable within the local datacenter (the default; conditional writes from one
    /// datacenter stay linearizable per key).
    LocalSerial,
}

/// Store settings, flattened into the broker's config with `#[command(flatten)]`.
///
/// (`about = None`: without it clap would make this doc comment the `--help` text of whatever
/// command flattens the struct.)
#[derive(clap::Args, Debug, Clone)]
#[command(about = None, long_about = None)]
pub struct StoreConfig {
    /// Storage backend: `embedded` (a redb file under --data-dir), `scylla` (at --scylla-nodes)
    /// or `redis` (at --redis-url).
    #[arg(long = "store", env = "CHORUS_STORE", value_enum, default_value_t = Backend::Embedded)]
    pub store: Backend,

    /// At start, create the ScyllaDB keyspace if it is missing and apply deploy/scylla/schema.cql
    /// (idempotent). Without it the schema must already exist.
    #[arg(
        long = "store-migrate",
        env = "CHORUS_STORE_MIGRATE",
        value_parser = clap::builder::BoolishValueParser::new(),
        default_value_t = false,
        num_args = 0,
        default_missing_value = "true"
    )]
    pub store_migrate: bool,

    /// ScyllaDB contact points, comma-separated host:port (e.g. 10.0.0.1:9042,10.0.0.2:9042).
    /// Required with --store scylla.
    #[arg(long = "scylla-nodes", env = "CHORUS_SCYLLA_NODES", value_delimiter = ',')]
    pub scylla_nodes: Vec<String>,

    /// ScyllaDB keyspace holding the store tables.
    #[arg(long = "scylla-keyspace", env = "CHORUS_SCYLLA_KEYSPACE", default_value = "chorus")]
    pub scylla_keyspace: String,

    /// Local datacenter: requests go to its replicas only (token-aware), never to another
    /// datacenter. Unset: every node counts as local.
    #[arg(long = "scylla-local-dc", env = "CHORUS_SCYLLA_LOCAL_DC")]
    pub scylla_local_dc: Option<String>,

    /// Consistency level of ScyllaDB reads and writes.
    #[arg(
        long = "scylla-consistency",
        env = "CHORUS_SCYLLA_CONSISTENCY",
        value_enum,
        default_value_t = Consistency::LocalQuorum
    )]
    pub scylla_consistency: Consistency,

    /// Serial consistency of ScyllaDB conditional writes (lightweight transactions).
    #[arg(
        long = "scylla-serial-consistency",
        env = "CHORUS_SCYLLA_SERIAL_CONSISTENCY",
        value_enum,
        default_value_t = SerialConsistency::LocalSerial
    )]
    pub scylla_serial_consistency: SerialConsistency,

    /// Client-side timeout of one ScyllaDB or Redis request in milliseconds (ScyllaDB: retries
    /// included; Redis: time queued while reconnecting included), and of each connect attempt
    /// (per ScyllaDB node; per Redis connection). The embedded backend has no timeout (local disk).
    #[arg(
        long = "store-timeout-ms",
        env = "CHORUS_STORE_TIMEOUT_MS",
        default_value_t = 2000,
        value_parser = clap::value_parser!(u64).range(1..=600_000)
    )]
    pub store_timeout_ms: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Args, Command, FromArgMatches};

    fn parse(args: &[&str]) -> Result<StoreConfig, clap::Error> {
        let matches = StoreConfig::augment_args(Command::new("chorus"))
            .try_get_matches_from(std::iter::once("chorus").chain(args.iter().copied()))?;
        StoreConfig::from_arg_matches(&matches)
    }

    #[test]
    fn flags_parse() -> Result<(), clap::Error> {
        let cfg = parse(&[
            "--store",
            "scylla",
            "--store-migrate",
            "--scylla-nodes",
            "a:9042,b:9042",
            "--scylla-keyspace",
            "ks",
            "--scylla-local-dc",
            "dc1",
            "--scylla-consistency",
            "each_quorum",
            "--scylla-serial-consistency",
            "serial",
            "--store-timeout-ms",
            "500",
        ])?;
        assert_eq!(cfg.store, Backend::Scylla);
        assert!(cfg.store_migrate);
        assert_eq!(cfg.scylla_nodes, ["a:9042", "b:9042"]);
        assert_eq!(cfg.scylla_keyspace, "ks");
        assert_eq!(cfg.scylla_local_dc.as_deref(), Some("dc1"));
        assert_eq!(cfg.scylla_consistency, Consistency::EachQuorum);
        assert_eq!(cfg.scylla_serial_consistency, SerialConsistency::Serial);
        assert_eq!(cfg.store_timeout_ms, 500);
        Ok(())
    }

    #[test]
    fn redis_is_a_backend() -> Result<(), clap::Error> {
        assert_eq!(parse(&["--store", "redis", "--store-timeout-ms", "250"])?.store, Backend::Redis);
        Ok(())
    }

    #[test]
    fn every_arg_has_long_and_env() {
        let cmd = StoreConfig::augment_args(Command::new("chorus"));
        let mut envs: Vec<String> = Vec::new();
        for arg in cmd.get_arguments() {
            assert!(arg.get_long().is_some(), "{} has no --long", arg.get_id());
            let env = arg.get_env().map(|e| e.to_string_lossy().into_owned());
            envs.push(env.unwrap_or_default());
        }
        envs.sort();
        assert_eq!(
            envs,
            [
                "CHORUS_SCYLLA_CONSISTENCY",
                "CHORUS_SCYLLA_KEYSPACE",
                "CHORUS_SCYLLA_LOCAL_DC",
                "CHORUS_SCYLLA_NODES",
                "CHORUS_SCYLLA_SERIAL_CONSISTENCY",
                "CHORUS_STORE",
                "CHORUS_STORE_MIGRATE",
                "CHORUS_STORE_TIMEOUT_MS",
            ]
        );
    }

    #[test]
    fn defaults_are_shown_in_help() {
        let cmd = StoreConfig::augment_args(Command::new("chorus"));
        let default_of = |id: &str| -> Vec<String> {
            cmd.get_arguments()
                .filter(|a| a.get_id() == id)
                .flat_map(|a| a.get_default_values())
                .map(|v| v.to_string_lossy().into_owned())
                .collect()
        };
        assert_eq!(default_of("store"), ["embedded"]);
        assert_eq!(default_of("store_migrate"), ["false"]);
        assert_eq!(default_of("scylla_keyspace"), ["chorus"]);
        assert_eq!(default_of("scylla_consistency"), ["local_quorum"]);
        assert_eq!(default_of("scylla_serial_consistency"), ["local_serial"]);
        assert_eq!(default_of("store_timeout_ms"), ["2000"]);
    }

    /// The broker, as it will flatten the store flags.
    #[derive(clap::Parser)]
    struct Documented {
        #[command(flatten)]
        store: StoreConfig,
    }

    #[derive(clap::Parser)]
    struct Undocumented {
        #[command(flatten)]
        store: StoreConfig,
    }

    #[test]
    fn flattening_does_not_replace_the_parent_about() {
        use clap::CommandFactory;
        let about = Documented::command().get_about().map(|a| a.to_string());
        assert_eq!(about.as_deref(), Some("The broker, as it will flatten the store flags"));
        assert!(Undocumented::command().get_about().is_none());
    }

    #[test]
    fn bad_values_are_rejected() {
        assert!(parse(&["--store", "postgres"]).is_err());
        assert!(parse(&["--scylla-consistency", "local-quorum"]).is_err());
        assert!(parse(&["--store-timeout-ms", "0"]).is_err());
    }
}
