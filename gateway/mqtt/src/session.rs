//! Connection settings for the parts that subscribe through rumqttc's client (the recorder,
//! the Sparkplug node): TLS, credentials and keep-alive made the same way as for the
//! publishing sink's own connection, in one place.

use crate::tls::{self, TlsError, TlsFiles};
use rumqttc::{MqttOptions, TlsConfiguration, Transport};
use std::time::Duration;

/// The keep-alive of every subscribing client: a broker gone silent is noticed within one
/// and a half of it.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Where and as whom one client connects.
#[derive(Debug)]
pub struct Settings<'a> {
    /// The client id, unique per broker.
    pub client_id: String,
    /// Host name or address.
    pub host: &'a str,
    /// TCP port.
    pub port: u16,
    /// TLS set up from these files (`mqtts://`), or plain TCP when `None`.
    pub tls: Option<TlsFiles<'a>>,
    /// Username and password, when the broker asks for them.
    pub credentials: Option<(&'a str, String)>,
    /// The largest packet taken or sent, bytes.
    pub max_packet: usize,
}

/// rumqttc's options for `s`; the caller adds the session rules (clean session, manual
/// acknowledgement, a will).
pub fn options(s: Settings<'_>) -> Result<MqttOptions, TlsError> {
    let mut options = MqttOptions::new(s.client_id, s.host, s.port);
    options
        .set_keep_alive(KEEP_ALIVE)
        .set_max_packet_size(s.max_packet, s.max_packet);
    if let Some((user, password)) = s.credentials {
        options.set_credentials(user, password);
    }
    if let Some(files) = s.tls {
        let config = tls::client_config(files)?;
        options.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(config)));
    }
    Ok(options)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn plain_options_carry_id_credentials_and_limits() {
        let o = options(Settings {
            client_id: "shopfloor-record-hall".into(),
            host: "broker.local",
            port: 1884,
            tls: None,
            credentials: Some(("hall", "secret".into())),
            max_packet: 1 << 20,
        })
        .unwrap();
        assert_eq!(o.client_id(), "shopfloor-record-hall");
        assert_eq!(o.broker_address(), ("broker.local".to_string(), 1884));
        assert_eq!(o.keep_alive(), KEEP_ALIVE);
        let login = o.credentials().unwrap();
        assert_eq!(
            (login.username.as_str(), login.password.as_str()),
            ("hall", "secret")
        );
        assert_eq!(o.max_packet_size(), 1 << 20);
    }

    #[test]
    fn a_missing_ca_file_is_an_error_not_a_plain_connection() {
        let missing = std::path::Path::new("/nonexistent/ca.pem");
        let got = options(Settings {
            client_id: "c".into(),
            host: "h",
            port: 8883,
            tls: Some(TlsFiles {
                ca_file: Some(missing),
                ..TlsFiles::default()
            }),
            credentials: None,
            max_packet: 1024,
        });
        assert!(got.is_err());
    }
}
