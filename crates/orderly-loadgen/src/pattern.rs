//! Identity patterns such as `LG%05d`: a literal text with at most one printf-style decimal
//! directive (`%d`, `%5d`, `%05d`); `%%` is a literal percent sign.

use thiserror::Error;

/// Why a pattern was refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum PatternError {
    #[error("pattern {0:?} has more than one %d directive")]
    TooManyDirectives(String),
    #[error("pattern {0:?} has an unsupported % directive (use %d, %Nd, %0Nd or %%)")]
    BadDirective(String),
}

/// A parsed pattern; [`IdPattern::format`] renders it for one index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdPattern {
    prefix: String,
    suffix: String,
    /// `None` when the pattern has no directive (a fixed text such as one shared password).
    number: Option<NumberFormat>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct NumberFormat {
    width: usize,
    zero_pad: bool,
}

impl IdPattern {
    /// Parses `text`; a text without a directive is accepted and renders to itself.
    pub fn parse(text: &str) -> Result<Self, PatternError> {
        let mut prefix = String::new();
        let mut suffix = String::new();
        let mut number = None;
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            let out = if number.is_some() {
                &mut suffix
            } else {
                &mut prefix
            };
            if c != '%' {
                out.push(c);
                continue;
            }
            if chars.peek() == Some(&'%') {
                chars.next();
                out.push('%');
                continue;
            }
            let zero_pad = chars.peek() == Some(&'0');
            if zero_pad {
                chars.next();
            }
            let mut width = 0usize;
            while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
                chars.next();
                width = width
                    .checked_mul(10)
                    .and_then(|w| w.checked_add(d as usize))
                    .filter(|w| *w <= 64)
                    .ok_or_else(|| PatternError::BadDirective(text.to_owned()))?;
            }
            if chars.next() != Some('d') {
                return Err(PatternError::BadDirective(text.to_owned()));
            }
            if number.is_some() {
                return Err(PatternError::TooManyDirectives(text.to_owned()));
            }
            number = Some(NumberFormat { width, zero_pad });
        }
        Ok(Self {
            prefix,
            suffix,
            number,
        })
    }

    /// Renders the pattern for index `n`.
    pub fn format(&self, n: u64) -> String {
        match self.number {
            None => self.prefix.clone(),
            Some(NumberFormat { width, zero_pad }) => {
                let digits = if zero_pad {
                    format!("{n:0width$}")
                } else {
                    format!("{n:width$}")
                };
                format!("{}{}{}", self.prefix, digits, self.suffix)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_padded_directive() {
        let p = IdPattern::parse("LG%05d").unwrap();
        assert_eq!(p.format(7), "LG00007");
        assert_eq!(p.format(123456), "LG123456");
    }

    #[test]
    fn plain_directive_with_suffix_and_literal_percent() {
        let p = IdPattern::parse("cp-%d-100%%").unwrap();
        assert_eq!(p.format(42), "cp-42-100%");
    }

    #[test]
    fn space_padded_width() {
        assert_eq!(IdPattern::parse("%3d").unwrap().format(5), "  5");
    }

    #[test]
    fn fixed_text_renders_to_itself() {
        let p = IdPattern::parse("secret-pw").unwrap();
        assert_eq!(p.format(1), "secret-pw");
        assert_eq!(p.format(2), "secret-pw");
    }

    #[test]
    fn refuses_two_directives_and_other_conversions() {
        assert_eq!(
            IdPattern::parse("%d-%d"),
            Err(PatternError::TooManyDirectives("%d-%d".into()))
        );
        assert_eq!(
            IdPattern::parse("LG%s"),
            Err(PatternError::BadDirective("LG%s".into()))
        );
        assert_eq!(
            IdPattern::parse("LG%"),
            Err(PatternError::BadDirective("LG%".into()))
        );
    }
}
