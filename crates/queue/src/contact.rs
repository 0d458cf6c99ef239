//! What a driver gives to be reached when called: a phone number or a vehicle plate.

use serde::{Deserialize, Serialize};

/// Province abbreviations that start a mainland Chinese plate.
const PROVINCES: &str = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼使领";

/// A validated, normalised contact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum Contact {
    /// Digits with an optional leading `+` (mainland mobiles as 11 digits, `+86` dropped).
    Phone(String),
    /// Upper case, without spaces or the middle dot: `湘A12345`, `湘AD12345`.
    Plate(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContactError {
    #[error("contact is empty")]
    Empty,
    #[error("contact is too long")]
    TooLong,
    #[error(
        "contact is neither a phone number (11-digit mobile or +country number) nor a plate (such as 湘A12345)"
    )]
    Invalid,
}

impl Contact {
    /// Parses what a driver typed.
    pub fn parse(input: &str) -> Result<Contact, ContactError> {
        let s = input.trim();
        if s.is_empty() {
            return Err(ContactError::Empty);
        }
        if s.chars().count() > 32 {
            return Err(ContactError::TooLong);
        }
        let compact: String = s
            .chars()
            .filter(|c| !matches!(c, ' ' | '-' | '·' | '.' | '(' | ')'))
            .collect();
        if let Some(phone) = phone(&compact) {
            return Ok(Contact::Phone(phone));
        }
        if let Some(plate) = plate(&compact) {
            return Ok(Contact::Plate(plate));
        }
        Err(ContactError::Invalid)
    }

    pub fn as_str(&self) -> &str {
        match self {
            Contact::Phone(s) | Contact::Plate(s) => s,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Contact::Phone(_) => "phone",
            Contact::Plate(_) => "plate",
        }
    }

    /// How the contact is shown to anyone but staff: a phone's last four digits, a plate's
    /// province and last two characters.
    pub fn masked(&self) -> String {
        mask(self.as_str())
    }
}

/// Masks a stored contact string (as [`Contact::as_str`] gives it).
pub fn mask(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    if chars.first().is_some_and(|c| !c.is_ascii()) {
        let tail: String = chars[chars.len().saturating_sub(2)..].iter().collect();
        let head: String = chars.iter().take(2).collect();
        return format!("{head}***{tail}");
    }
    let tail: String = chars[chars.len().saturating_sub(4)..].iter().collect();
    format!("***{tail}")
}

fn phone(s: &str) -> Option<String> {
    let (plus, digits) = match s.strip_prefix('+') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let mobile =
        |d: &str| d.len() == 11 && d.starts_with('1') && matches!(d.as_bytes()[1], b'3'..=b'9');
    if plus {
        if let Some(cn) = digits.strip_prefix("86") {
            return mobile(cn).then(|| cn.to_owned());
        }
        return (8..=15)
            .contains(&digits.len())
            .then(|| format!("+{digits}"));
    }
    mobile(digits).then(|| digits.to_owned())
}

fn plate(s: &str) -> Option<String> {
    let upper = s.to_uppercase();
    let mut chars = upper.chars();
    let province = chars.next()?;
    if !PROVINCES.contains(province) {
        return None;
    }
    let letter = chars.next()?;
    if !letter.is_ascii_uppercase() {
        return None;
    }
    let rest: Vec<char> = chars.collect();
    // 5 characters on blue and yellow plates, 6 on new-energy (green) plates; the last may be
    // 挂, 学, 警 and the like.
    let body_ok = rest.iter().enumerate().all(|(i, c)| {
        c.is_ascii_digit()
            || c.is_ascii_uppercase()
            || (i + 1 == rest.len() && "挂学警港澳领".contains(*c))
    });
    ((5..=6).contains(&rest.len()) && body_ok && rest.iter().any(char::is_ascii_digit))
        .then_some(upper)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones_and_plates() {
        assert_eq!(
            Contact::parse(" 138 0013 8000 "),
            Ok(Contact::Phone("13800138000".into()))
        );
        assert_eq!(
            Contact::parse("+86 138-0013-8000"),
            Ok(Contact::Phone("13800138000".into()))
        );
        assert_eq!(
            Contact::parse("+44 7700 900123"),
            Ok(Contact::Phone("+447700900123".into()))
        );
        assert_eq!(
            Contact::parse("湘a·12345"),
            Ok(Contact::Plate("湘A12345".into()))
        );
        assert_eq!(
            Contact::parse("湘AD12345"),
            Ok(Contact::Plate("湘AD12345".into()))
        );
        for bad in [
            "12345",
            "abc",
            "湘A1",
            "XA12345",
            "湘ABCDEF",
            "1380013800",
            "+86123",
        ] {
            assert_eq!(Contact::parse(bad), Err(ContactError::Invalid), "{bad}");
        }
        assert_eq!(Contact::parse("  "), Err(ContactError::Empty));
        assert_eq!(Contact::parse(&"1".repeat(40)), Err(ContactError::TooLong));
    }

    #[test]
    fn masking() {
        assert_eq!(Contact::Phone("13800138000".into()).masked(), "***8000");
        assert_eq!(Contact::Plate("湘A12345".into()).masked(), "湘A***45");
    }
}
