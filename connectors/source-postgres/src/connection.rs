//! Connection settings for PostgreSQL, parsed from a libpq-style URL, and the ordinary
//! (non-replication) connection the source uses for catalog queries, snapshots and admin.
//! The replication connection itself lives in [`crate::client`]; both share these settings
//! and the TLS set-up of [`crate::tls`].

use std::path::PathBuf;
use std::time::Duration;

use sluice_api::Secret;

use crate::tls::MakeRustlsConnect;
use crate::SourceError;

/// The host used when the URL names none.
pub const DEFAULT_HOST: &str = "127.0.0.1";
/// PostgreSQL's default port.
pub const DEFAULT_PORT: u16 = 5432;
/// The `application_name` the server shows in `pg_stat_activity` and `pg_stat_replication`.
pub const DEFAULT_APPLICATION_NAME: &str = "sluice";
/// How long establishing a connection (TCP, TLS and authentication) may take unless the URL
/// says otherwise. libpq waits forever by default; a daemon that reconnects with backoff is
/// better served by giving up on a black-holed address and trying again.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The query parameters [`ConnectionConfig::parse`] understands.
const SUPPORTED_PARAMS: &str = "sslmode, sslrootcert, application_name, connect_timeout";

/// Session settings sent to every connection, so that values in text form (pgoutput and
/// text-mode queries alike) have the one shape the value decoder reads, whatever the server's
/// or the role's own defaults: ISO dates, `postgres` intervals, round-trip exact floats.
pub(crate) const SESSION_SETTINGS: &[(&str, &str)] = &[
    ("client_encoding", "UTF8"),
    ("DateStyle", "ISO"),
    ("IntervalStyle", "postgres"),
    ("extra_float_digits", "3"),
];

/// The statement that keeps a `SQL_ASCII` database's bytes as stored. Such a database checks
/// nothing on input, and PostgreSQL refuses (SQLSTATE 22021) to send any byte above 127 to a
/// UTF8 client, which would stop capture at the first Latin-1 row; passed through instead,
/// text that is not UTF-8 is kept with U+FFFD for what cannot be read (and a warning naming
/// the column). `None` for every other encoding, which the server converts to UTF8 itself.
pub(crate) fn pass_through_encoding(server_encoding: &str) -> Option<&'static str> {
    (server_encoding == "SQL_ASCII").then_some("SET client_encoding = 'SQL_ASCII'")
}

/// libpq's `sslmode` values that sluice supports.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub enum SslMode {
    /// Plain TCP only.
    Disable,
    /// TLS when the server offers it, plain otherwise (libpq's default). `allow` maps here.
    #[default]
    Prefer,
    /// TLS or nothing, without checking the server's certificate (as libpq does).
    Require,
    /// TLS with the certificate chain checked against `sslrootcert` (or the public web roots)
    /// and the certificate's name checked against the host.
    VerifyFull,
}

impl SslMode {
    /// The spelling in a connection URL.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyFull => "verify-full",
        }
    }

    /// Read an `sslmode` value. `allow` is treated as `prefer` (both accept either);
    /// `verify-ca` is refused because a chain check without the name check is not offered.
    pub fn parse(value: &str) -> Result<Self, String> {
        match value {
            "disable" => Ok(SslMode::Disable),
            "allow" | "prefer" => Ok(SslMode::Prefer),
            "require" => Ok(SslMode::Require),
            "verify-full" => Ok(SslMode::VerifyFull),
            "verify-ca" => Err("sslmode \"verify-ca\" is unsupported, use verify-full".to_owned()),
            other => Err(format!(
                "invalid sslmode {other:?}: expected disable, allow, prefer, require or verify-full"
            )),
        }
    }
}

/// Where and how to connect. The password is a [`Secret`].
#[derive(Clone, Debug)]
pub struct ConnectionConfig {
    /// Host name or IP address.
    pub host: String,
    pub port: u16,
    pub user: String,
    pub dbname: String,
    pub password: Option<Secret>,
    pub sslmode: SslMode,
    /// PEM file of trusted roots for `verify-full` (libpq's `sslrootcert`).
    pub sslrootcert: Option<PathBuf>,
    pub application_name: String,
    /// Limit for establishing a connection; zero means no limit.
    pub connect_timeout: Duration,
}

impl ConnectionConfig {
    /// Parse `postgres://user[:password]@host[:port]/dbname?sslmode=...&sslrootcert=...`
    /// (`postgresql://` too). User, password, host and dbname are percent-decoded; reserved
    /// characters in them (`@ / ? :`) must be percent-encoded, as for libpq. The host
    /// defaults to 127.0.0.1, the port to 5432, the dbname to the user name. IPv6 hosts are
    /// written in brackets. Errors name the bad part and never contain the password.
    pub fn parse(url: &str) -> Result<Self, String> {
        let rest = url
            .strip_prefix("postgres://")
            .or_else(|| url.strip_prefix("postgresql://"))
            .ok_or("connection URL must start with postgres:// or postgresql://")?;
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, rest) = rest.split_at(authority_end);
        let Some((userinfo, hostport)) = authority.rsplit_once('@') else {
            // Without an '@' in the authority there is no user; an '@' further on means a
            // password with an unencoded '/' or '?' cut the authority short. Say so without
            // echoing any of it, since part of it is the password.
            return Err(if rest.contains('@') {
                "cannot find the user name: percent-encode '/', '?' and '@' in the user name and password"
                    .to_owned()
            } else {
                "missing user name: expected postgres://user@host:port/dbname".to_owned()
            });
        };
        let (user, password) = match userinfo.split_once(':') {
            Some((user, password)) => (user, Some(password)),
            None => (userinfo, None),
        };
        let user = percent_decode(user).map_err(|e| format!("user name: {e}"))?;
        if user.is_empty() {
            return Err("missing user name: expected postgres://user@host:port/dbname".to_owned());
        }
        let password = match password {
            None => None,
            Some(p) => Some(Secret::new(percent_decode(p).map_err(|_| {
                "password: invalid percent-encoding or not UTF-8".to_owned()
            })?)),
        };
        let (host, port) = parse_host_port(hostport)?;

        let (path, query) = match rest.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (rest, None),
        };
        let dbname = match path.strip_prefix('/') {
            Some(db) if !db.is_empty() => {
                percent_decode(db).map_err(|e| format!("database name: {e}"))?
            }
            _ => user.clone(),
        };

        let mut cfg = ConnectionConfig {
            host,
            port,
            user,
            dbname,
            password,
            sslmode: SslMode::default(),
            sslrootcert: None,
            application_name: DEFAULT_APPLICATION_NAME.to_owned(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
        };
        for pair in query
            .unwrap_or_default()
            .split('&')
            .filter(|p| !p.is_empty())
        {
            cfg.apply_param(pair)?;
        }
        Ok(cfg)
    }

    /// Apply one `key=value` query parameter.
    fn apply_param(&mut self, pair: &str) -> Result<(), String> {
        let Some((key, value)) = pair.split_once('=') else {
            return Err(format!(
                "query parameter {:?} has no '=value'",
                shown_key(pair)
            ));
        };
        let value = percent_decode(value).map_err(|e| format!("query parameter {key}: {e}"))?;
        match key {
            "sslmode" => self.sslmode = SslMode::parse(&value)?,
            "sslrootcert" if value.is_empty() => {
                return Err("sslrootcert must name a PEM file".to_owned())
            }
            "sslrootcert" => self.sslrootcert = Some(PathBuf::from(value)),
            "application_name" => self.application_name = value,
            "connect_timeout" => {
                let seconds: u64 = value.parse().map_err(|_| {
                    format!(
                        "invalid connect_timeout {value:?}: expected whole seconds (0 = no limit)"
                    )
                })?;
                self.connect_timeout = Duration::from_secs(seconds);
            }
            other => {
                return Err(format!(
                    "unsupported query parameter {:?}; supported: {SUPPORTED_PARAMS}",
                    shown_key(other)
                ))
            }
        }
        Ok(())
    }

    /// The URL without the password, for logs and messages. Only settings that differ from
    /// their defaults appear as query parameters, except `sslmode`, which is always shown.
    pub fn redacted(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            percent_encode(&self.host)
        };
        let mut url = format!(
            "postgres://{}@{host}:{}/{}?sslmode={}",
            percent_encode(&self.user),
            self.port,
            percent_encode(&self.dbname),
            self.sslmode.as_str()
        );
        if let Some(root) = &self.sslrootcert {
            url.push_str("&sslrootcert=");
            url.push_str(&percent_encode(&root.to_string_lossy()));
        }
        if self.application_name != DEFAULT_APPLICATION_NAME {
            url.push_str("&application_name=");
            url.push_str(&percent_encode(&self.application_name));
        }
        if self.connect_timeout != DEFAULT_CONNECT_TIMEOUT {
            url.push_str(&format!(
                "&connect_timeout={}",
                self.connect_timeout.as_secs()
            ));
        }
        url
    }

    /// `Some(limit)` unless the timeout is zero (no limit).
    pub(crate) fn connect_limit(&self) -> Option<Duration> {
        (!self.connect_timeout.is_zero()).then_some(self.connect_timeout)
    }

    /// Open an ordinary tokio-postgres connection (catalog queries, snapshots, admin) with
    /// these settings and TLS mode. The connection task is spawned onto the tokio runtime; if
    /// it fails later, the error is logged and the client's calls fail from then on.
    pub async fn connect_sql(&self) -> Result<tokio_postgres::Client, SourceError> {
        let mut pg = tokio_postgres::Config::new();
        pg.host(&self.host)
            .port(self.port)
            .user(&self.user)
            .dbname(&self.dbname)
            .application_name(&self.application_name)
            .options(
                SESSION_SETTINGS
                    .iter()
                    .filter(|(name, _)| *name != "client_encoding")
                    .map(|(name, value)| format!("-c {name}={value}"))
                    .collect::<Vec<_>>()
                    .join(" "),
            );
        if let Some(password) = &self.password {
            pg.password(password.expose());
        }
        if let Some(limit) = self.connect_limit() {
            pg.connect_timeout(limit);
        }
        pg.ssl_mode(match self.sslmode {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            SslMode::Require | SslMode::VerifyFull => tokio_postgres::config::SslMode::Require,
        });
        let target = self.redacted();
        if self.sslmode == SslMode::Disable {
            let (client, connection) = pg
                .connect(tokio_postgres::NoTls)
                .await
                .map_err(SourceError::from)?;
            tokio::spawn(async move {
                if let Err(error) = connection.await {
                    tracing::warn!(%error, %target, "postgres connection closed with an error");
                }
            });
            keep_sql_ascii_bytes(client).await
        } else {
            let tls = MakeRustlsConnect::for_config(self)?;
            let (client, connection) = pg.connect(tls).await.map_err(SourceError::from)?;
            tokio::spawn(async move {
                if let Err(error) = connection.await {
                    tracing::warn!(%error, %target, "postgres connection closed with an error");
                }
            });
            keep_sql_ascii_bytes(client).await
        }
    }
}

/// Apply [`pass_through_encoding`] to an ordinary connection (snapshots read rows through it).
async fn keep_sql_ascii_bytes(
    client: tokio_postgres::Client,
) -> Result<tokio_postgres::Client, SourceError> {
    let encoding: String = client
        .query_one("SELECT current_setting('server_encoding')", &[])
        .await?
        .get(0);
    if let Some(statement) = pass_through_encoding(&encoding) {
        client.batch_execute(statement).await?;
    }
    Ok(client)
}

/// Split `host[:port]` or `[v6addr][:port]`, applying the defaults.
fn parse_host_port(hostport: &str) -> Result<(String, u16), String> {
    let (host, port) = if let Some(bracketed) = hostport.strip_prefix('[') {
        let (host, after) = bracketed
            .split_once(']')
            .ok_or("invalid host: an IPv6 address opened with '[' needs a closing ']'")?;
        match after {
            "" => (host.to_owned(), None),
            _ => match after.strip_prefix(':') {
                Some(port) => (host.to_owned(), Some(port)),
                None => return Err("invalid host: expected ':port' after ']'".to_owned()),
            },
        }
    } else {
        match hostport.rsplit_once(':') {
            Some((host, port)) => (
                percent_decode(host).map_err(|e| format!("host: {e}"))?,
                Some(port),
            ),
            None => (
                percent_decode(hostport).map_err(|e| format!("host: {e}"))?,
                None,
            ),
        }
    };
    if host.contains(',') {
        return Err("several hosts are not supported: name one host".to_owned());
    }
    let host = if host.is_empty() {
        DEFAULT_HOST.to_owned()
    } else {
        host
    };
    let port = match port {
        None | Some("") => DEFAULT_PORT,
        Some(text) => match text.parse::<u16>() {
            Ok(port) if port > 0 => port,
            _ => {
                return Err(format!(
                    "invalid port {text:?}: expected a number from 1 to 65535"
                ))
            }
        },
    };
    Ok((host, port))
}

/// A query parameter name as it may appear in a message: real parameter names are made of
/// letters and underscores, anything else is not echoed.
fn shown_key(key: &str) -> &str {
    if !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        key
    } else {
        "(malformed)"
    }
}

/// Decode `%XX` escapes (no `+` for space, as in libpq) into UTF-8 text.
fn percent_decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or("invalid percent-encoding: '%' must be followed by two hex digits")?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "percent-decoded text is not UTF-8".to_owned())
}

/// Encode everything but unreserved characters (RFC 3986), so [`ConnectionConfig::parse`]
/// reads the result back unchanged.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: &str) -> ConnectionConfig {
        ConnectionConfig::parse(url).unwrap()
    }

    #[test]
    fn a_minimal_url_takes_every_default() {
        let cfg = parse("postgres://alice@");
        assert_eq!(cfg.host, "127.0.0.1");
        assert_eq!(cfg.port, 5432);
        assert_eq!(cfg.user, "alice");
        assert_eq!(cfg.dbname, "alice");
        assert!(cfg.password.is_none());
        assert_eq!(cfg.sslmode, SslMode::Prefer);
        assert_eq!(cfg.sslrootcert, None);
        assert_eq!(cfg.application_name, "sluice");
        assert_eq!(cfg.connect_timeout, DEFAULT_CONNECT_TIMEOUT);
    }

    #[test]
    fn every_part_of_a_full_url_is_read() {
        let cfg = parse(
            "postgresql://rep:pw@db.example.com:6543/app?sslmode=verify-full\
             &sslrootcert=/etc/ca.pem&application_name=cdc%20one&connect_timeout=3",
        );
        assert_eq!(cfg.host, "db.example.com");
        assert_eq!(cfg.port, 6543);
        assert_eq!(cfg.user, "rep");
        assert_eq!(cfg.password.as_ref().map(Secret::expose), Some("pw"));
        assert_eq!(cfg.dbname, "app");
        assert_eq!(cfg.sslmode, SslMode::VerifyFull);
        assert_eq!(cfg.sslrootcert, Some(PathBuf::from("/etc/ca.pem")));
        assert_eq!(cfg.application_name, "cdc one");
        assert_eq!(cfg.connect_timeout, Duration::from_secs(3));
    }

    #[test]
    fn every_sslmode_is_accepted_or_refused_as_documented() {
        let mode = |m: &str| ConnectionConfig::parse(&format!("postgres://u@h/d?sslmode={m}"));
        assert_eq!(mode("disable").unwrap().sslmode, SslMode::Disable);
        assert_eq!(mode("allow").unwrap().sslmode, SslMode::Prefer);
        assert_eq!(mode("prefer").unwrap().sslmode, SslMode::Prefer);
        assert_eq!(mode("require").unwrap().sslmode, SslMode::Require);
        assert_eq!(mode("verify-full").unwrap().sslmode, SslMode::VerifyFull);
        let err = mode("verify-ca").unwrap_err();
        assert!(err.contains("unsupported, use verify-full"), "{err}");
        let err = mode("always").unwrap_err();
        assert!(err.contains("invalid sslmode \"always\""), "{err}");
        for m in [
            SslMode::Disable,
            SslMode::Prefer,
            SslMode::Require,
            SslMode::VerifyFull,
        ] {
            assert_eq!(SslMode::parse(m.as_str()), Ok(m));
        }
    }

    #[test]
    fn a_percent_encoded_password_is_decoded() {
        let cfg = parse("postgres://u:p%40ss%2Fw%3Ard%25@h/d");
        assert_eq!(
            cfg.password.as_ref().map(Secret::expose),
            Some("p@ss/w:rd%")
        );
        let cfg = parse("postgres://u:@h/d");
        assert_eq!(cfg.password.as_ref().map(Secret::expose), Some(""));
    }

    #[test]
    fn an_unencoded_at_sign_in_the_password_still_parses() {
        let cfg = parse("postgres://u:p@ss@h:1/d");
        assert_eq!(cfg.password.as_ref().map(Secret::expose), Some("p@ss"));
        assert_eq!(cfg.host, "h");
        assert_eq!(cfg.port, 1);
    }

    #[test]
    fn percent_encoded_user_and_dbname_are_decoded() {
        let cfg = parse("postgres://us%65r@h/my%20db");
        assert_eq!(cfg.user, "user");
        assert_eq!(cfg.dbname, "my db");
    }

    #[test]
    fn ipv6_hosts_are_written_in_brackets() {
        let cfg = parse("postgres://u@[::1]:5433/d");
        assert_eq!(cfg.host, "::1");
        assert_eq!(cfg.port, 5433);
        let cfg = parse("postgres://u@[fe80::1]/d");
        assert_eq!(cfg.port, 5432);
        assert!(cfg.redacted().contains("@[fe80::1]:5432/"));
    }

    #[test]
    fn the_password_appears_in_no_debug_output_redacted_url_or_error() {
        let secret = "Sup3rS3cret";
        let cfg = parse(&format!("postgres://u:{secret}@h:5432/d"));
        assert!(!format!("{cfg:?}").contains(secret));
        assert!(!cfg.redacted().contains(secret));
        let bad = [
            format!("postgres://u:{secret}@h:notaport/d"),
            format!("postgres://u:{secret}/x@h/d"),
            format!("postgres://u:{secret}?x@h/d"),
            format!("postgres://u:{secret}%zz@h/d"),
            format!("postgres://u:{secret}@h/d?sslmode=nope"),
            format!("postgres://u:{secret}@h/d?bogus=1"),
            format!("postgres://u:{secret}@[::1/d"),
            format!("mysql://u:{secret}@h/d"),
        ];
        for url in bad {
            let err = ConnectionConfig::parse(&url).unwrap_err();
            assert!(!err.contains(secret), "{url} -> {err}");
            assert!(!err.contains("Sup3"), "{url} -> {err}");
        }
    }

    #[test]
    fn errors_name_the_bad_part() {
        let err = |url: &str| ConnectionConfig::parse(url).unwrap_err();
        assert!(err("http://u@h/d").contains("postgres://"));
        assert!(err("postgres://h/d").contains("missing user name"));
        assert!(err("postgres://u@h:0/d").contains("invalid port \"0\""));
        assert!(err("postgres://u@h:99999/d").contains("invalid port"));
        assert!(err("postgres://u@h/d?sslrootcert=").contains("sslrootcert"));
        assert!(err("postgres://u@h/d?connect_timeout=soon").contains("connect_timeout"));
        assert!(
            err("postgres://u@h/d?target_session_attrs=any").contains("\"target_session_attrs\"")
        );
        assert!(err("postgres://u@h/d?sslmode").contains("\"sslmode\" has no '=value'"));
        assert!(err("postgres://u@h1,h2/d").contains("several hosts"));
        assert!(err("postgres://u@h/d%ff").contains("database name"));
    }

    #[test]
    fn a_zero_connect_timeout_means_no_limit() {
        let cfg = parse("postgres://u@h/d?connect_timeout=0");
        assert_eq!(cfg.connect_limit(), None);
        assert_eq!(
            parse("postgres://u@h/d").connect_limit(),
            Some(DEFAULT_CONNECT_TIMEOUT)
        );
    }

    #[test]
    fn the_redacted_url_parses_back_to_the_same_settings() {
        let cfg = parse(
            "postgres://r%40p:pw@db:6000/a%2Fb?sslmode=require&application_name=x%26y&connect_timeout=5",
        );
        let shown = cfg.redacted();
        assert_eq!(
            shown,
            "postgres://r%40p@db:6000/a%2Fb?sslmode=require&application_name=x%26y&connect_timeout=5"
        );
        let back = parse(&shown);
        assert_eq!(back.user, "r@p");
        assert_eq!(back.dbname, "a/b");
        assert_eq!(back.application_name, "x&y");
        assert_eq!(back.connect_timeout, Duration::from_secs(5));
        assert!(back.password.is_none());
    }
}
