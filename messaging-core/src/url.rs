//! Transport URLs in oslo.messaging's grammar.
//!
//! ```text
//! driver://[user[:pass]@]host[:port][,[user[:pass]@]host2[:port2]]...[/virtual_host][?query]
//! ```
//!
//! Credentials, the virtual host and query values are percent-decoded; IPv6 hosts go
//! in brackets (`[::1]:9092`); a query key may repeat (its values join with `,`).
//! A password never appears in `Debug` or `Display` output: it shows as `***`, and
//! only [`TransportUrl::to_string_with_password`] or [`TransportHost::password`]
//! reveal it. The same goes for the value of a query option whose name says it is a
//! secret ([`is_secret_key`], e.g. `ssl_client_key_password`), and for parse errors:
//! an error about a URL with credentials never quotes the text around them.
//!
//! ```
//! use messaging_core::TransportUrl;
//! let url = TransportUrl::parse("kafka://bob:s3cret@h?ssl_client_key_password=k3y").unwrap();
//! assert_eq!(url.to_string(), "kafka://bob:***@h?ssl_client_key_password=***");
//! assert!(!format!("{url:?}").contains("s3cret") && !format!("{url:?}").contains("k3y"));
//! ```

use std::fmt;
use std::str::FromStr;

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, CONTROLS};

use crate::error::{Error, Result};

/// Characters escaped in user names, passwords, the virtual host and query parts.
const COMPONENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'&')
    .add(b'+')
    .add(b',')
    .add(b'/')
    .add(b':')
    .add(b';')
    .add(b'<')
    .add(b'=')
    .add(b'>')
    .add(b'?')
    .add(b'@')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// Whether a query option (or driver setting) named `key` holds a secret, whose
/// value `Display` and `Debug` show as `***`: its name contains `password`,
/// `secret`, `token`, `sasl.oauthbearer` or `key.pem` (an inline private key), in
/// any case.
pub fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    ["password", "secret", "token", "sasl.oauthbearer", "key.pem"]
        .iter()
        .any(|word| key.contains(word))
}

/// A secret string whose `Debug` and `Display` never show the value.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Secret(String);

impl Secret {
    /// Wrap a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret value itself: call only where it is really needed.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"***\"")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// One host of a transport URL, with its optional port and credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportHost {
    /// Host name or address; an IPv6 address without its brackets.
    pub hostname: String,
    /// Port, if given.
    pub port: Option<u16>,
    /// User name, if given.
    pub username: Option<String>,
    password: Option<Secret>,
}

impl TransportHost {
    /// A host without credentials.
    pub fn new(hostname: impl Into<String>, port: Option<u16>) -> Self {
        TransportHost {
            hostname: hostname.into(),
            port,
            username: None,
            password: None,
        }
    }

    /// Set credentials.
    pub fn with_credentials(
        mut self,
        username: impl Into<String>,
        password: Option<String>,
    ) -> Self {
        self.username = Some(username.into());
        self.password = password.map(Secret);
        self
    }

    /// The password (explicit accessor: it is redacted everywhere else).
    pub fn password(&self) -> Option<&str> {
        self.password.as_ref().map(Secret::expose)
    }

    /// `host:port` with brackets around IPv6 addresses and `default_port` when none is given.
    pub fn address(&self, default_port: u16) -> String {
        let port = self.port.unwrap_or(default_port);
        if self.hostname.contains(':') {
            format!("[{}]:{port}", self.hostname)
        } else {
            format!("{}:{port}", self.hostname)
        }
    }

    fn write(&self, f: &mut fmt::Formatter<'_>, reveal: bool) -> fmt::Result {
        if let Some(user) = &self.username {
            write!(f, "{}", utf8_percent_encode(user, COMPONENT))?;
            if let Some(pass) = &self.password {
                if reveal {
                    write!(f, ":{}", utf8_percent_encode(pass.expose(), COMPONENT))?;
                } else {
                    f.write_str(":***")?;
                }
            }
            f.write_str("@")?;
        }
        if self.hostname.contains(':') {
            write!(f, "[{}]", self.hostname)?;
        } else {
            f.write_str(&self.hostname)?;
        }
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        Ok(())
    }
}

/// A parsed transport URL. `Display` and `Debug` hide every password and secret
/// option value (see the module docs).
#[derive(Clone, PartialEq, Eq)]
pub struct TransportUrl {
    scheme: String,
    hosts: Vec<TransportHost>,
    virtual_host: Option<String>,
    query: Vec<(String, String)>,
}

impl TransportUrl {
    /// Parse a URL; see the module docs for the grammar.
    pub fn parse(input: &str) -> Result<Self> {
        let input = input.trim();
        let (scheme, rest) = input.split_once("://").ok_or_else(|| {
            Error::invalid_url(format!(
                "no scheme in {:?}: expected driver://...",
                redact(input)
            ))
        })?;
        if scheme.is_empty()
            || !scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            || !scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        {
            return Err(Error::invalid_url(format!("invalid scheme {scheme:?}")));
        }
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, Some(q)),
            None => (rest, None),
        };
        let (netloc, path) = match rest.split_once('/') {
            Some((n, p)) => (n, Some(p)),
            None => (rest, None),
        };
        // With credentials in the URL, errors quote none of it: a password with an
        // unescaped `/`, `?` or `,` splits the URL in unexpected places, and any part
        // could be a piece of it.
        let quote = !input.contains('@');
        let mut hosts = Vec::new();
        if !netloc.is_empty() {
            for part in netloc.split(',') {
                hosts.push(parse_host(part, quote).map_err(|e| {
                    if quote {
                        e
                    } else {
                        Error::invalid_url(format!(
                            "{} (in {}; percent-encode reserved characters such as / ? # @ , : in user names and passwords)",
                            e.message(),
                            redact(input)
                        ))
                    }
                })?);
            }
        }
        let virtual_host = match path {
            Some(p) if !p.is_empty() => Some(decode(p, false, || {
                if quote {
                    format!("the virtual host {p:?}")
                } else {
                    "the virtual host".to_owned()
                }
            })?),
            _ => None,
        };
        let mut query_pairs = Vec::new();
        if let Some(q) = query {
            for pair in q.split('&').filter(|p| !p.is_empty()) {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                let key = decode(k, true, || "a query key".to_owned())?;
                if key.is_empty() {
                    return Err(Error::invalid_url("a query option with an empty key"));
                }
                let value = decode(v, true, || format!("the value of query option {key:?}"))?;
                query_pairs.push((key, value));
            }
        }
        Ok(TransportUrl {
            scheme: scheme.to_ascii_lowercase(),
            hosts,
            virtual_host,
            query: query_pairs,
        })
    }

    /// A URL for `scheme` with no hosts, no virtual host and no query.
    pub fn new(scheme: impl Into<String>) -> Self {
        TransportUrl {
            scheme: scheme.into(),
            hosts: Vec::new(),
            virtual_host: None,
            query: Vec::new(),
        }
    }

    /// The full scheme, e.g. `kafka+ssl`.
    pub fn scheme(&self) -> &str {
        &self.scheme
    }

    /// The driver name: the scheme with any `+suffix` stripped (`kafka+ssl` gives `kafka`).
    pub fn driver(&self) -> &str {
        self.scheme.split('+').next().unwrap_or(&self.scheme)
    }

    /// The scheme's `+suffix`, if any (`kafka+ssl` gives `Some("ssl")`).
    pub fn scheme_suffix(&self) -> Option<&str> {
        self.scheme.split_once('+').map(|(_, s)| s)
    }

    /// The hosts, in order.
    pub fn hosts(&self) -> &[TransportHost] {
        &self.hosts
    }

    /// Add a host.
    pub fn with_host(mut self, host: TransportHost) -> Self {
        self.hosts.push(host);
        self
    }

    /// The virtual host (the decoded path), if any.
    pub fn virtual_host(&self) -> Option<&str> {
        self.virtual_host.as_deref()
    }

    /// Set the virtual host.
    pub fn with_virtual_host(mut self, vhost: Option<String>) -> Self {
        self.virtual_host = vhost.filter(|v| !v.is_empty());
        self
    }

    /// The query pairs in the order written, repeated keys kept apart.
    pub fn query_pairs(&self) -> &[(String, String)] {
        &self.query
    }

    /// The value of a query key; repeated keys join with `,`.
    pub fn query(&self, key: &str) -> Option<String> {
        let values: Vec<&str> = self
            .query
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect();
        if values.is_empty() {
            None
        } else {
            Some(values.join(","))
        }
    }

    /// The query as key to joined value, keys in first-seen order.
    pub fn query_map(&self) -> Vec<(String, String)> {
        let mut keys: Vec<&str> = Vec::new();
        for (k, _) in &self.query {
            if !keys.contains(&k.as_str()) {
                keys.push(k);
            }
        }
        keys.into_iter()
            .map(|k| (k.to_owned(), self.query(k).unwrap_or_default()))
            .collect()
    }

    /// Add a query pair.
    pub fn with_query(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.query.push((key.into(), value.into()));
        self
    }

    /// The URL with its passwords, for handing to a client library. Never log it.
    pub fn to_string_with_password(&self) -> String {
        struct Reveal<'a>(&'a TransportUrl);
        impl fmt::Display for Reveal<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.write(f, true)
            }
        }
        Reveal(self).to_string()
    }

    fn write(&self, f: &mut fmt::Formatter<'_>, reveal: bool) -> fmt::Result {
        write!(f, "{}://", self.scheme)?;
        for (i, host) in self.hosts.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            host.write(f, reveal)?;
        }
        if let Some(v) = &self.virtual_host {
            write!(f, "/{}", utf8_percent_encode(v, COMPONENT))?;
        }
        for (i, (k, v)) in self.query.iter().enumerate() {
            f.write_str(if i == 0 { "?" } else { "&" })?;
            if !reveal && is_secret_key(k) {
                write!(f, "{}=***", utf8_percent_encode(k, COMPONENT))?;
                continue;
            }
            write!(
                f,
                "{}={}",
                utf8_percent_encode(k, COMPONENT),
                utf8_percent_encode(v, COMPONENT)
            )?;
        }
        Ok(())
    }
}

impl fmt::Debug for TransportUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let query: Vec<(&str, &str)> = self
            .query
            .iter()
            .map(|(k, v)| (k.as_str(), if is_secret_key(k) { "***" } else { v }))
            .collect();
        f.debug_struct("TransportUrl")
            .field("scheme", &self.scheme)
            .field("hosts", &self.hosts)
            .field("virtual_host", &self.virtual_host)
            .field("query", &query)
            .finish()
    }
}

impl fmt::Display for TransportUrl {
    /// The URL with every password (and secret option value) shown as `***`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write(f, false)
    }
}

impl FromStr for TransportUrl {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        TransportUrl::parse(s)
    }
}

/// Percent-decode `s`; the error names the part with `what` (which must not quote a
/// secret).
fn decode(s: &str, plus_is_space: bool, what: impl FnOnce() -> String) -> Result<String> {
    let replaced;
    let s = if plus_is_space && s.contains('+') {
        replaced = s.replace('+', " ");
        replaced.as_str()
    } else {
        s
    };
    percent_decode_str(s)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| Error::invalid_url(format!("{} does not percent-decode to UTF-8", what())))
}

/// One `[user[:pass]@]host[:port]`. With `quote` false (the URL has credentials
/// somewhere) the errors quote nothing of `part`.
fn parse_host(part: &str, quote: bool) -> Result<TransportHost> {
    let q = |text: &str| {
        if quote {
            format!(" {text:?}")
        } else {
            String::new()
        }
    };
    let (creds, hostport) = match part.rsplit_once('@') {
        Some((c, h)) => (Some(c), h),
        None => (None, part),
    };
    let (hostname, port_text) = if let Some(inner) = hostport.strip_prefix('[') {
        let (addr, after) = inner.split_once(']').ok_or_else(|| {
            Error::invalid_url(format!("malformed host{}: missing ']'", q(hostport)))
        })?;
        if addr.is_empty()
            || !addr
                .chars()
                .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
        {
            return Err(Error::invalid_url(format!(
                "malformed IPv6 host{}",
                q(hostport)
            )));
        }
        match after {
            "" => (addr, None),
            _ => match after.strip_prefix(':') {
                Some(p) => (addr, Some(p)),
                None => return Err(Error::invalid_url(format!("malformed host{}", q(hostport)))),
            },
        }
    } else {
        match hostport.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    if hostname.is_empty() {
        return Err(Error::invalid_url(format!(
            "malformed host{}: empty host name",
            q(part)
        )));
    }
    if !hostport.starts_with('[')
        && !hostname
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._~%".contains(c))
    {
        return Err(Error::invalid_url(format!("malformed host{}", q(hostname))));
    }
    let port = match port_text {
        None => None,
        Some(p) => Some(p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(|| {
            Error::invalid_url(format!(
                "bad port{} for host{}: expected 1-65535",
                q(p),
                q(hostname)
            ))
        })?),
    };
    let mut host = TransportHost::new(hostname, port);
    if let Some(creds) = creds {
        let (user, pass) = match creds.split_once(':') {
            Some((u, p)) => (u, Some(p)),
            None => (creds, None),
        };
        host.username = Some(decode(user, false, || "a user name".to_owned())?);
        host.password = pass
            .map(|p| decode(p, false, || "a password".to_owned()))
            .transpose()?
            .map(Secret);
    }
    Ok(host)
}

/// Hide anything between `://` and `@` so that an error never prints a password.
fn redact(input: &str) -> String {
    match (input.find("://"), input.rfind('@')) {
        (Some(s), Some(a)) if a > s => format!("{}://***{}", &input[..s], &input[a..]),
        _ => input.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use proptest::prelude::*;

    #[test]
    fn parses_full_grammar() {
        let url = TransportUrl::parse(
            "kafka+ssl://us%40er:p%3Ass@host1:9093,[::1]:9094,other/v%2Fhost?a=1&b=x+y&a=2",
        )
        .unwrap();
        assert_eq!(url.scheme(), "kafka+ssl");
        assert_eq!(url.driver(), "kafka");
        assert_eq!(url.scheme_suffix(), Some("ssl"));
        assert_eq!(url.hosts().len(), 3);
        assert_eq!(url.hosts()[0].username.as_deref(), Some("us@er"));
        assert_eq!(url.hosts()[0].password(), Some("p:ss"));
        assert_eq!(url.hosts()[0].port, Some(9093));
        assert_eq!(url.hosts()[1].hostname, "::1");
        assert_eq!(url.hosts()[1].address(9092), "[::1]:9094");
        assert_eq!(url.hosts()[2].address(9092), "other:9092");
        assert_eq!(url.virtual_host(), Some("v/host"));
        assert_eq!(url.query("a").as_deref(), Some("1,2"));
        assert_eq!(url.query("b").as_deref(), Some("x y"));
    }

    #[test]
    fn memory_url_without_hosts() {
        let url = TransportUrl::parse("memory://").unwrap();
        assert!(url.hosts().is_empty());
        assert_eq!(url.to_string(), "memory://");
    }

    #[test]
    fn password_is_redacted() {
        let url = TransportUrl::parse("kafka://me:hunter2@h:1").unwrap();
        assert_eq!(url.to_string(), "kafka://me:***@h:1");
        assert!(!format!("{url:?}").contains("hunter2"));
        assert_eq!(url.to_string_with_password(), "kafka://me:hunter2@h:1");
        let err = TransportUrl::parse("kafka://me:hunter2@h:99999").unwrap_err();
        assert!(!err.to_string().contains("hunter2"));
    }

    #[test]
    fn secret_query_values_are_redacted_but_kept() {
        let url = TransportUrl::parse(
            "kafka://h?ssl_client_key_password=k3y&rdkafka.sasl.oauthbearer.config=t0k&Api_Token=x1&acks=all",
        )
        .unwrap();
        let shown = format!("{url} {url:?}");
        for secret in ["k3y", "t0k", "x1"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(shown.contains("acks=all"), "{shown}");
        assert_eq!(url.query("ssl_client_key_password").as_deref(), Some("k3y"));
        assert!(url
            .to_string_with_password()
            .contains("ssl_client_key_password=k3y"));
        assert!(is_secret_key("sasl.PASSWORD") && !is_secret_key("sasl_mechanism"));
    }

    #[test]
    fn errors_about_a_url_with_credentials_quote_none_of_it() {
        // Unescaped reserved characters in a password split the URL elsewhere; bad
        // percent-encoding in a password or a secret option; each error stays typed.
        for bad in [
            "kafka://bob:pa/ss:w0rd@h:9092",
            "kafka://bob:pa,ss:w0rd@h:9092",
            "kafka://bob:pa?ss:w0rd@h",
            "kafka://bob:pa%FFssw0rd@h",
            "kafka://bob:passw0rd@h:9x",
            "kafka://bob:passw0rd@h?x=%FFssw0rd",
            "kafka://bob:passw0rd@[::1",
            "kafka://bob:passw0rd@ho st",
        ] {
            let err = TransportUrl::parse(bad).unwrap_err();
            assert_eq!(err.kind(), &ErrorKind::InvalidUrl, "{bad}");
            let shown = format!("{err} {err:?}");
            assert!(!shown.contains("w0rd"), "{bad}: {shown}");
            assert!(!shown.contains("ss:"), "{bad}: {shown}");
        }
        // Without credentials the error still quotes what is wrong.
        let err = TransportUrl::parse("kafka://h:9x").unwrap_err();
        assert!(err.to_string().contains("\"9x\""), "{err}");
    }

    #[test]
    fn typed_errors() {
        for bad in [
            "localhost:9092",
            "kafka://h:abc",
            "kafka://h:70000",
            "kafka://[::1",
            "kafka://ho st",
            "kafka://:9092",
            "://h",
        ] {
            let err = TransportUrl::parse(bad).unwrap_err();
            assert_eq!(err.kind(), &ErrorKind::InvalidUrl, "{bad}");
        }
        assert!(TransportUrl::parse("kafka://h:abc")
            .unwrap_err()
            .to_string()
            .contains("bad port"));
        assert!(TransportUrl::parse("localhost")
            .unwrap_err()
            .to_string()
            .contains("no scheme"));
    }

    fn text() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9 @:/?&=,+%é日-]{1,12}"
    }

    proptest! {
        #[test]
        fn display_round_trips(
            scheme in "[a-z][a-z0-9]{0,6}(\\+[a-z]{1,4})?",
            hosts in proptest::collection::vec(
                ("[a-z][a-z0-9.-]{0,10}|\\[::[0-9a-f]{1,4}\\]", proptest::option::of(1u16..), proptest::option::of((text(), proptest::option::of(text())))),
                0..4),
            vhost in proptest::option::of(text()),
            query in proptest::collection::vec(("[a-z_.]{1,8}", text()), 0..4),
        ) {
            let mut url = TransportUrl::new(scheme);
            for (h, port, creds) in hosts {
                let h = h.trim_start_matches('[').trim_end_matches(']').to_owned();
                let mut host = TransportHost::new(h, port);
                if let Some((u, p)) = creds { host = host.with_credentials(u, p); }
                url = url.with_host(host);
            }
            url = url.with_virtual_host(vhost);
            for (k, v) in query { url = url.with_query(k, v); }
            let printed = url.to_string_with_password();
            let parsed = TransportUrl::parse(&printed).unwrap();
            prop_assert_eq!(parsed, url);
        }
    }
}
