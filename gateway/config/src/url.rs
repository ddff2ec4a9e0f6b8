//! The few URL shapes the configuration takes: `mqtt://`, `mqtts://`, `http://`, `https://`.

use std::fmt;

/// A parsed URL: scheme, host, port and path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// Lower-case scheme.
    pub scheme: String,
    /// Host name or address (IPv6 without brackets).
    pub host: String,
    /// Port, or the scheme's default.
    pub port: u16,
    /// Path, `""` when none.
    pub path: String,
}

impl Url {
    /// Parses `text`, taking `schemes` with their default ports.
    pub fn parse(text: &str, schemes: &[(&str, u16)]) -> Result<Url, String> {
        let names: Vec<&str> = schemes.iter().map(|(s, _)| *s).collect();
        let (scheme, rest) = text
            .split_once("://")
            .ok_or_else(|| format!("{text:?} is not a URL: write {}://host:port", names[0]))?;
        let scheme = scheme.to_ascii_lowercase();
        let default_port = schemes
            .iter()
            .find(|(s, _)| *s == scheme)
            .map(|(_, p)| *p)
            .ok_or_else(|| {
                format!(
                    "URL scheme {scheme:?} is not supported here; use {}",
                    names.join(" or ")
                )
            })?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if authority.contains('@') {
            return Err(
                "credentials do not belong in the URL: use username and a *_env key".into(),
            );
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6
                .split_once(']')
                .ok_or_else(|| format!("{text:?}: unclosed [ in the host"))?;
            (h, after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(format!("{text:?} has no host"));
        }
        let port = match port {
            None => default_port,
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|&p| p != 0)
                .ok_or_else(|| format!("{text:?}: port {p:?} is not a number in 1..=65535"))?,
        };
        Ok(Url {
            scheme,
            host: host.to_owned(),
            port,
            path: path.trim_end_matches('/').to_owned(),
        })
    }
}

impl fmt::Display for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(
                f,
                "{}://[{}]:{}{}",
                self.scheme, self.host, self.port, self.path
            )
        } else {
            write!(
                f,
                "{}://{}:{}{}",
                self.scheme, self.host, self.port, self.path
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MQTT: &[(&str, u16)] = &[("mqtt", 1883), ("mqtts", 8883)];

    #[test]
    fn table() {
        let u = Url::parse("mqtt://127.0.0.1:1884", MQTT).unwrap();
        assert_eq!(
            (u.scheme.as_str(), u.host.as_str(), u.port),
            ("mqtt", "127.0.0.1", 1884)
        );
        assert_eq!(Url::parse("mqtts://broker.lan", MQTT).unwrap().port, 8883);
        assert_eq!(Url::parse("mqtt://[::1]:1000", MQTT).unwrap().host, "::1");
        for bad in [
            "127.0.0.1:1883",
            "http://x",
            "mqtt://",
            "mqtt://h:0",
            "mqtt://h:x",
            "mqtt://u:p@h",
            "mqtt://[::1",
        ] {
            assert!(Url::parse(bad, MQTT).is_err(), "{bad}");
        }
    }
}
