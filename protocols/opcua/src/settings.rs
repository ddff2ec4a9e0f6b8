//! The config keys of an OPC UA machine as this crate defines them: the words of its settings
//! ([`Word`] for security policy, security mode and mode) and its defaults, named once. The
//! gateway's config checker reads the file with these; the driver takes the values as they are.

use crate::driver::Mode;
use opcua::crypto::SecurityPolicy;
use opcua::types::MessageSecurityMode;
use shopfloor_core::word::Word;
use std::time::Duration;

/// `publishing_interval` (or the poll interval) when the file does not say.
pub const DEFAULT_PUBLISHING_INTERVAL: Duration = Duration::from_secs(1);
/// `timeout` (of connecting and of every request) when the file does not say.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// `security_policy`: the policies the gateway offers (the first is the default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Policy {
    /// No signing, no encryption.
    #[default]
    None,
    /// The policy most servers offer.
    Basic256Sha256,
    /// AES-128, SHA-256, RSA-OAEP.
    Aes128Sha256RsaOaep,
    /// AES-256, SHA-256, RSA-PSS.
    Aes256Sha256RsaPss,
}

impl Policy {
    /// The policy as async-opcua knows it.
    pub fn security(self) -> SecurityPolicy {
        match self {
            Policy::None => SecurityPolicy::None,
            Policy::Basic256Sha256 => SecurityPolicy::Basic256Sha256,
            Policy::Aes128Sha256RsaOaep => SecurityPolicy::Aes128Sha256RsaOaep,
            Policy::Aes256Sha256RsaPss => SecurityPolicy::Aes256Sha256RsaPss,
        }
    }
}

impl Word for Policy {
    const ALL: &'static [Self] = &[
        Policy::None,
        Policy::Basic256Sha256,
        Policy::Aes128Sha256RsaOaep,
        Policy::Aes256Sha256RsaPss,
    ];

    fn word(self) -> &'static str {
        match self {
            Policy::None => "None",
            Policy::Basic256Sha256 => "Basic256Sha256",
            Policy::Aes128Sha256RsaOaep => "Aes128Sha256RsaOaep",
            Policy::Aes256Sha256RsaPss => "Aes256Sha256RsaPss",
        }
    }
}

/// `security_mode` (the first is the default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SecurityMode {
    /// Messages neither signed nor encrypted.
    #[default]
    None,
    /// Messages signed.
    Sign,
    /// Messages signed and encrypted.
    SignAndEncrypt,
}

impl SecurityMode {
    /// The mode as async-opcua knows it.
    pub fn message_mode(self) -> MessageSecurityMode {
        match self {
            SecurityMode::None => MessageSecurityMode::None,
            SecurityMode::Sign => MessageSecurityMode::Sign,
            SecurityMode::SignAndEncrypt => MessageSecurityMode::SignAndEncrypt,
        }
    }
}

impl Word for SecurityMode {
    const ALL: &'static [Self] = &[
        SecurityMode::None,
        SecurityMode::Sign,
        SecurityMode::SignAndEncrypt,
    ];

    fn word(self) -> &'static str {
        match self {
            SecurityMode::None => "None",
            SecurityMode::Sign => "Sign",
            SecurityMode::SignAndEncrypt => "SignAndEncrypt",
        }
    }
}

impl Word for Mode {
    const ALL: &'static [Self] = &[Mode::Subscribe, Mode::Poll];

    fn word(self) -> &'static str {
        match self {
            Mode::Subscribe => "subscribe",
            Mode::Poll => "poll",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_word_reads_back_and_maps_to_async_opcua() {
        let cases = [
            ("None", SecurityPolicy::None),
            ("Basic256Sha256", SecurityPolicy::Basic256Sha256),
            ("Aes128Sha256RsaOaep", SecurityPolicy::Aes128Sha256RsaOaep),
            ("Aes256Sha256RsaPss", SecurityPolicy::Aes256Sha256RsaPss),
        ];
        for (word, want) in cases {
            assert_eq!(Policy::from_word(word).map(Policy::security), Some(want));
        }
        assert_eq!(Policy::from_word("basic256sha256"), None);
        assert_eq!(
            SecurityMode::from_word("SignAndEncrypt").map(SecurityMode::message_mode),
            Some(MessageSecurityMode::SignAndEncrypt)
        );
        assert_eq!(Mode::from_word("poll"), Some(Mode::Poll));
        assert_eq!(Mode::choices(), "subscribe or poll");
        assert_eq!(Policy::ALL[0], Policy::default());
        assert_eq!(SecurityMode::ALL[0], SecurityMode::default());
    }
}
