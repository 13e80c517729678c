//! A recipient's notification preferences and their validation.
//!
//! Stored in the recipient's notification actor. E-mail is on by default (the address is the
//! account's); SMS and push are off until the recipient gives a number or a token. Order
//! updates and marketing (abandoned carts) can be switched off; account messages (welcome)
//! and stock alerts follow the channel switches only.

use serde::{Deserialize, Serialize};

use super::channel::ChannelKind;
use super::templates::Topic;

/// Longest accepted push token (provider tokens are a few hundred characters at most).
pub const MAX_PUSH_TOKEN_LEN: usize = 512;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NotificationPreferences {
    pub email: bool,
    pub sms: bool,
    pub push: bool,
    /// E.164: `+` then 8 to 15 digits, the first not 0.
    pub sms_number: Option<String>,
    pub push_token: Option<String>,
    pub order_updates: bool,
    pub marketing: bool,
}

impl Default for NotificationPreferences {
    fn default() -> Self {
        Self {
            email: true,
            sms: false,
            push: false,
            sms_number: None,
            push_token: None,
            order_updates: true,
            marketing: true,
        }
    }
}

/// Why preferences were refused; each variant names its field.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum PreferencesRejection {
    #[error("sms_number: expected + and 8 to 15 digits (E.164), got {0:?}")]
    SmsNumber(String),
    #[error("sms_number: required when sms is on")]
    SmsNumberMissing,
    #[error("push_token: expected 1 to {MAX_PUSH_TOKEN_LEN} visible ASCII characters")]
    PushToken,
    #[error("push_token: required when push is on")]
    PushTokenMissing,
}

impl PreferencesRejection {
    /// The field at fault, as named in the preferences.
    pub fn field(&self) -> &'static str {
        match self {
            Self::SmsNumber(_) | Self::SmsNumberMissing => "sms_number",
            Self::PushToken | Self::PushTokenMissing => "push_token",
        }
    }
}

impl NotificationPreferences {
    /// Check shapes and that every enabled channel has an address.
    pub fn validate(&self) -> Result<(), PreferencesRejection> {
        if let Some(number) = &self.sms_number
            && !is_e164(number)
        {
            return Err(PreferencesRejection::SmsNumber(number.clone()));
        }
        if let Some(token) = &self.push_token
            && !is_push_token(token)
        {
            return Err(PreferencesRejection::PushToken);
        }
        if self.sms && self.sms_number.is_none() {
            return Err(PreferencesRejection::SmsNumberMissing);
        }
        if self.push && self.push_token.is_none() {
            return Err(PreferencesRejection::PushTokenMissing);
        }
        Ok(())
    }

    /// Whether messages of `topic` are wanted at all.
    pub fn wants(&self, topic: Topic) -> bool {
        match topic {
            Topic::OrderUpdate => self.order_updates,
            Topic::Marketing => self.marketing,
            Topic::Account | Topic::Stock => true,
        }
    }

    /// The enabled SMS and push channels with their addresses (e-mail addresses come from
    /// the account, or the admin list).
    pub fn device_targets(&self) -> Vec<(ChannelKind, String)> {
        let mut targets = Vec::new();
        if self.sms
            && let Some(number) = &self.sms_number
        {
            targets.push((ChannelKind::Sms, number.clone()));
        }
        if self.push
            && let Some(token) = &self.push_token
        {
            targets.push((ChannelKind::Push, token.clone()));
        }
        targets
    }
}

fn is_e164(number: &str) -> bool {
    let Some(digits) = number.strip_prefix('+') else {
        return false;
    };
    (8..=15).contains(&digits.len())
        && digits.bytes().all(|byte| byte.is_ascii_digit())
        && !digits.starts_with('0')
}

fn is_push_token(token: &str) -> bool {
    (1..=MAX_PUSH_TOKEN_LEN).contains(&token.len())
        && token.bytes().all(|byte| byte.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(change: impl FnOnce(&mut NotificationPreferences)) -> NotificationPreferences {
        let mut preferences = NotificationPreferences::default();
        change(&mut preferences);
        preferences
    }

    #[test]
    fn defaults_are_email_and_every_topic() {
        let preferences = NotificationPreferences::default();
        assert!(preferences.validate().is_ok());
        assert!(preferences.email && preferences.order_updates && preferences.marketing);
        assert!(preferences.device_targets().is_empty());
    }

    #[test]
    fn phone_numbers_must_be_e164() {
        for bad in [
            "0612345678",
            "+12",
            "+1234567890123456",
            "+1 555 0100",
            "+0123456789",
        ] {
            let rejection = with(|p| p.sms_number = Some(bad.to_owned()))
                .validate()
                .unwrap_err();
            assert_eq!(rejection.field(), "sms_number", "{bad}");
        }
        assert!(
            with(|p| p.sms_number = Some("+4915112345678".to_owned()))
                .validate()
                .is_ok()
        );
    }

    #[test]
    fn an_enabled_channel_needs_its_address() {
        let rejection = with(|p| p.sms = true).validate().unwrap_err();
        assert_eq!(rejection, PreferencesRejection::SmsNumberMissing);
        let rejection = with(|p| p.push = true).validate().unwrap_err();
        assert_eq!(rejection.field(), "push_token");
        let long = "x".repeat(MAX_PUSH_TOKEN_LEN + 1);
        let rejection = with(|p| p.push_token = Some(long)).validate().unwrap_err();
        assert_eq!(rejection, PreferencesRejection::PushToken);
    }

    #[test]
    fn opting_out_of_a_topic_only_affects_that_topic() {
        let preferences = with(|p| p.order_updates = false);
        assert!(!preferences.wants(Topic::OrderUpdate));
        assert!(preferences.wants(Topic::Marketing));
        assert!(preferences.wants(Topic::Account));
    }
}
